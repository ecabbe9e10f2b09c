//! `wuyed outbox`: what is queued, sent, failed; requeue or cancel one message; owners nobody
//! could reach. Owner addresses are masked unless `--show-contacts` is given (PIPL).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::Settings;
use crate::deliver::{Channels, Dispatcher, NoDirectory, Status, mask_address};
use crate::exit::Coded;
use crate::store::Tx;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration directory.
    #[arg(long, default_value = "config", global = true)]
    pub config: PathBuf,
    /// Only messages in this state (pending, deferred, sending, sent, failed, dead, expired,
    /// cancelled, unknown).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this community.
    #[arg(long, global = true)]
    pub community: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Show owners' phone numbers and email addresses in full (an admin's deliberate choice).
    #[arg(long, global = true)]
    pub show_contacts: bool,
    #[command(subcommand)]
    pub action: Option<Action>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Requeue a failed, dead, expired, cancelled or unknown message now.
    Retry { id: i64 },
    /// Cancel a message that has not gone out.
    Cancel { id: i64 },
    /// Owners no channel could reach: the desk should call them.
    Unreachable,
    /// Work the outbox (the daemon does this itself; for tests and manual runs).
    #[command(hide = true)]
    Dispatch {
        /// Send what is due now and exit, instead of running until interrupted.
        #[arg(long)]
        once: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let settings = crate::config::load(&args.config).map_err(Coded::config)?;
    let db = crate::deliver::db_path(&settings.data_dir);
    let clock = SystemClock::new();
    match args.action {
        None => list(&args, &db),
        Some(Action::Retry { id }) => change(
            &db,
            id,
            |tx| Ok(tx.outbox_retry(id, clock.now())?),
            "requeued",
        ),
        Some(Action::Cancel { id }) => change(
            &db,
            id,
            |tx| Ok(tx.outbox_cancel(id, "cancelled by an administrator", clock.now())?),
            "cancelled",
        ),
        Some(Action::Unreachable) => unreachable(&args, &db),
        Some(Action::Dispatch { once }) => dispatch(settings, &db, once),
    }
}

fn with_tx<T>(db: &Path, f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let mut conn = crate::store::outbox::open(db)?;
    let tx = Tx(conn.transaction()?);
    let v = f(&tx)?;
    tx.0.commit()?;
    Ok(v)
}

fn list(args: &Args, db: &Path) -> anyhow::Result<()> {
    let status = args
        .status
        .as_deref()
        .map(|s| s.parse::<Status>())
        .transpose()
        .map_err(|e| Coded::usage(anyhow::anyhow!("--status: {e}")))?;
    let rows = with_tx(db, |tx| {
        Ok(tx.outbox_list(status, args.community.as_deref(), args.limit)?)
    })?;
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let h = [
        "ID",
        "STATUS",
        "COMMUNITY",
        "WORKFLOW",
        "CHAN",
        "TO",
        "TRY",
        "NEXT/SENT (UTC)",
        "NOTE",
    ];
    writeln!(
        out,
        "{:>6}  {:<9}  {:<12}  {:<16}  {:<5}  {:<22}  {:>3}  {:<20}  {}",
        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
    )?;
    for m in rows {
        let to = if args.show_contacts {
            m.address.clone()
        } else {
            mask_address(m.channel, &m.address)
        };
        let when = m
            .sent_at
            .unwrap_or(m.next_attempt_at)
            .format("%Y-%m-%d %H:%M:%S");
        let note = m
            .last_error
            .clone()
            .or(m.subject.clone())
            .unwrap_or_default();
        writeln!(
            out,
            "{:>6}  {:<9}  {:<12}  {:<16}  {:<5}  {:<22}  {:>3}  {:<20}  {}",
            m.id, m.status, m.community, m.workflow, m.channel, to, m.attempts, when, note
        )?;
    }
    Ok(())
}

fn change(
    db: &Path,
    id: i64,
    f: impl FnOnce(&Tx<'_>) -> anyhow::Result<bool>,
    what: &str,
) -> anyhow::Result<()> {
    let (ok, row) = with_tx(db, |tx| {
        let row = tx.outbox_get(id)?;
        let ok = row.is_some() && f(tx)?;
        Ok((ok, row))
    })?;
    match (ok, row) {
        (true, _) => {
            println!("message {id} {what}");
            Ok(())
        }
        (false, None) => Err(Coded::data(anyhow::anyhow!("no message with id {id}")).into()),
        (false, Some(m)) => Err(Coded::data(anyhow::anyhow!(
            "message {id} is {} and cannot be {what}",
            m.status
        ))
        .into()),
    }
}

fn unreachable(args: &Args, db: &Path) -> anyhow::Result<()> {
    let rows = with_tx(db, |tx| Ok(tx.unreachable_list(args.community.as_deref())?))?;
    for u in rows {
        println!(
            "{}  {}  {}  {}  {}  {}  ({})",
            u.id, u.community, u.workflow, u.slot, u.recipient, u.name, u.why
        );
    }
    Ok(())
}

fn dispatch(settings: Settings, db: &Path, once: bool) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let channels = Channels::from_settings(&settings).map_err(Coded::config)?;
    let clock: SharedClock = Arc::new(SystemClock::new());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let d = Dispatcher::new(db, settings, clock.clone(), channels, Arc::new(NoDirectory))?;
        if once {
            d.recover()?;
            d.resolve_unknown().await?;
            let r = d.dispatch_once(clock.now()).await?;
            println!(
                "sent {} failed {} dead {} unknown {} deferred {} expired {} cancelled {}",
                r.sent, r.failed, r.dead, r.unknown, r.deferred, r.expired, r.cancelled
            );
            Ok(())
        } else {
            d.run(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
        }
    })
}
