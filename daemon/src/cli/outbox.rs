//! `wuyed outbox`: what is queued, sent, failed; requeue or cancel one message; owners nobody
//! could reach. Owner addresses are masked unless `--show-contacts` is given (PIPL).
//!
//! `list` (also what a bare `wuyed outbox` does) shows times in each community's own timezone,
//! as the desk and the owners read them, in columns aligned by display width (Chinese names
//! take two columns), and ends with what each state shown means. `retry` and `cancel` change
//! the database only; a running daemon notices within a second (see `deliver::dispatch`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::Settings;
use crate::deliver::{Channel, Channels, Dispatcher, NoDirectory, Status, mask_address};
use crate::exit::Coded;
use crate::report::text::{Align, Table};
use crate::store::Tx;
use crate::store::outbox::OutboxFilter;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    wuyed outbox list --status failed --community shuipan\n  \
    wuyed outbox list --since 2026-12-01 --until 2026-12-07 --channel sms\n  \
    wuyed outbox retry 42")]
pub struct Args {
    /// Configuration directory.
    #[arg(long, default_value = "config", global = true)]
    pub config: PathBuf,
    /// Only this community.
    #[arg(long, global = true)]
    pub community: Option<String>,
    /// Show owners' phone numbers and email addresses in full (an admin's deliberate choice).
    #[arg(long, global = true)]
    pub show_contacts: bool,
    // Without a subcommand: `list` with these filters.
    #[command(flatten)]
    pub filters: Filters,
    #[command(subcommand)]
    pub action: Option<Action>,
}

/// Which messages `list` shows.
#[derive(Debug, Clone, clap::Args)]
pub struct Filters {
    /// Only messages in this state: pending, deferred, sending, sent, failed, dead, expired,
    /// cancelled or unknown (the list's legend says what each means).
    #[arg(long, value_name = "STATE", value_parser = parse_status)]
    pub status: Option<Status>,
    /// Only this channel: email or sms.
    #[arg(long, value_name = "CHANNEL", value_parser = parse_channel)]
    pub channel: Option<Channel>,
    /// Only messages queued on or after this day (YYYY-MM-DD, local time).
    #[arg(long, value_name = "DATE")]
    pub since: Option<NaiveDate>,
    /// Only messages queued on or before this day (YYYY-MM-DD, local time, inclusive).
    #[arg(long, value_name = "DATE")]
    pub until: Option<NaiveDate>,
    /// At most this many, newest first.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
}

fn parse_status(s: &str) -> Result<Status, String> {
    s.parse()
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    s.parse()
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List messages, newest first: state, recipient (masked), tries, when sent or next tried
    /// (local time), and why, with a legend of the states.
    List(Filters),
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
    let db = settings.data_dir.join(crate::store::DB_FILE);
    let clock = SystemClock::new();
    match &args.action {
        None => list(&args, &args.filters, &settings, &db),
        Some(Action::List(filters)) => list(&args, filters, &settings, &db),
        Some(Action::Retry { id }) => change(
            &db,
            *id,
            |tx| Ok(tx.outbox_retry(*id, clock.now())?),
            "requeued",
        ),
        Some(Action::Cancel { id }) => change(
            &db,
            *id,
            |tx| Ok(tx.outbox_cancel(*id, "cancelled by an administrator", clock.now())?),
            "cancelled",
        ),
        Some(Action::Unreachable) => unreachable(&args, &db),
        Some(Action::Dispatch { once }) => dispatch(settings, &db, *once),
    }
}

/// Runs `f` in one transaction on the outbox. The daemon may be committing: its lock is waited
/// for a bounded time, then the command fails (exit 75) saying who holds it.
fn with_tx<T>(db: &Path, f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let mut conn = crate::store::outbox::open(db)?;
    crate::store::outbox::transaction(&mut conn, f).map_err(|e| {
        if crate::store::lock::is_lock_conflict_any(&e) {
            crate::exit::Coded::temporary(e).into()
        } else {
            e
        }
    })
}

/// Runs `f` on a snapshot of the outbox: never waits for the daemon's writes.
fn read<T>(db: &Path, f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let mut conn = crate::store::outbox::open(db)?;
    crate::store::outbox::read(&mut conn, f)
}

fn list(args: &Args, filters: &Filters, settings: &Settings, db: &Path) -> anyhow::Result<()> {
    // Days and times are read and shown in a community's own timezone; without --community the
    // days are the daemon's (`daemon.timezone`).
    let default_tz: Tz = settings.tz;
    let tz_of = |community: &str| settings.community(community).map_or(default_tz, |c| c.tz);
    let day_tz = args.community.as_deref().map_or(default_tz, tz_of);
    let midnight = |day: NaiveDate| crate::report::local_midnight(day_tz, day);
    if let (Some(since), Some(until)) = (filters.since, filters.until)
        && until < since
    {
        return Err(
            Coded::usage(anyhow::anyhow!("--until {until} is before --since {since}")).into(),
        );
    }
    let filter = OutboxFilter {
        status: filters.status,
        community: args.community.as_deref(),
        channel: filters.channel,
        since: filters.since.map(midnight),
        until: filters.until.map(|d| midnight(d.succ_opt().unwrap_or(d))),
    };
    let rows = read(db, |tx| Ok(tx.outbox_find(&filter, filters.limit)?))?;

    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("STATE", Align::Left),
        ("COMMUNITY", Align::Left),
        ("WORKFLOW", Align::Left),
        ("CHANNEL", Align::Left),
        ("TO", Align::Left),
        ("TRIES", Align::Right),
        ("QUEUED", Align::Left),
        ("SENT / NEXT TRY", Align::Left),
        ("NOTE", Align::Left),
    ]);
    let mut shown: Vec<Status> = Vec::new();
    let mut zones: Vec<(String, Tz)> = Vec::new();
    for m in &rows {
        let tz = tz_of(&m.community);
        if !zones.iter().any(|(c, _)| *c == m.community) {
            zones.push((m.community.clone(), tz));
        }
        if !shown.contains(&m.status) {
            shown.push(m.status);
        }
        let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
        let to = if args.show_contacts {
            m.address.clone()
        } else {
            mask_address(m.channel, &m.address)
        };
        // The next try only means something while the message waits.
        let when = match m.status {
            Status::Sent => m.sent_at.map(local),
            Status::Pending | Status::Deferred | Status::Failed => Some(local(m.next_attempt_at)),
            _ => None,
        };
        let note = m
            .last_error
            .clone()
            .or(m.subject.clone())
            .unwrap_or_default();
        table.row(vec![
            m.id.to_string(),
            m.status.to_string(),
            m.community.clone(),
            m.workflow.clone(),
            m.channel.to_string(),
            to,
            m.attempts.to_string(),
            local(m.created_at),
            when.unwrap_or_else(|| "-".into()),
            // One line per message: a multi-line server answer would break the columns.
            note.split_whitespace().collect::<Vec<_>>().join(" "),
        ]);
    }
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if rows.is_empty() {
        writeln!(out, "no message matches")?;
        out.flush()?;
        return Ok(());
    }
    write!(out, "{}", table.render())?;
    let n = rows.len();
    let more = if n == filters.limit {
        format!(" (the newest {n}; --limit shows more)")
    } else {
        String::new()
    };
    writeln!(out, "{n} message{}{more}", if n == 1 { "" } else { "s" })?;
    let zones: Vec<String> = zones.iter().map(|(c, tz)| format!("{c} {tz}")).collect();
    writeln!(out, "Times are local: {}.", zones.join(", "))?;
    writeln!(out, "States:")?;
    let width = shown.iter().map(|s| s.as_str().len()).max().unwrap_or(0);
    for s in Status::ALL.iter().filter(|s| shown.contains(*s)) {
        writeln!(out, "  {:<width$}  {}", s.as_str(), s.meaning())?;
    }
    out.flush()?;
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
    let rows = read(db, |tx| Ok(tx.unreachable_list(args.community.as_deref())?))?;
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
