//! `wuyed simulate`: the configured workflows over a span of days on a virtual clock, with the
//! real plugins and a copy of the store's data, and a day-by-day account of who would get what.
//!
//! It runs the daemon's own scheduler and executor (`cli::run::executor`) against a snapshot of
//! the database in a temporary folder, moving a [`ManualClock`] from one due instant to the next
//! and waiting for each to settle. Nothing is delivered: the outbox rows the runs commit are the
//! capture, and the real store is never touched.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::clock::{ManualClock, SharedClock};
use crate::exit::Coded;
use crate::scheduler::Scheduler;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration directory.
    #[arg(long, value_name = "DIR", default_value = "config")]
    pub config: PathBuf,
    /// First day simulated (YYYY-MM-DD, from local midnight).
    #[arg(long, value_name = "DATE")]
    pub from: NaiveDate,
    /// Last day simulated (inclusive).
    #[arg(long, value_name = "DATE")]
    pub to: NaiveDate,
    /// Only this community.
    #[arg(long, value_name = "ID")]
    pub community: Option<String>,
    /// `text` (a timeline) or `json` (one object per message, for tools).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.to < args.from {
        return Err(Coded::usage(anyhow::anyhow!(
            "--to {} is before --from {}",
            args.to,
            args.from
        ))
        .into());
    }
    let real_clock = crate::clock::SystemClock::new();
    let mut settings = super::run::load(&args.config, &real_clock).map_err(Coded::config)?;
    if let Some(id) = &args.community {
        settings.communities.retain(|c| &c.id == id);
        if settings.communities.is_empty() {
            return Err(
                Coded::usage(anyhow::anyhow!("no community {id:?} in the configuration")).into(),
            );
        }
    }
    let tz: Tz = settings
        .communities
        .first()
        .map(|c| c.tz)
        .unwrap_or(chrono_tz::Asia::Shanghai);
    let local = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(tz).earliest())
            .map(|t| t.with_timezone(&Utc))
            .expect("local midnight exists")
    };
    let (start, end) = (
        local(args.from),
        local(args.to.succ_opt().unwrap_or(args.to)),
    );

    // The copy: the real database if there is one (its owners, bills, tickets), else an empty one.
    let sandbox = tempfile::tempdir()?;
    let real_db = settings.data_dir.join(crate::store::DB_FILE);
    if real_db.is_file() {
        Store::open(&real_db)?.snapshot_to(&sandbox.path().join(crate::store::DB_FILE))?;
    }
    settings.data_dir = sandbox.path().to_path_buf();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let messages = runtime.block_on(simulate(settings, start, end))?;
    print(&messages, &args.format, tz)
}

/// One message the simulated runs queued.
#[derive(Debug, serde::Serialize)]
struct Captured {
    at: DateTime<Utc>,
    community: String,
    workflow: String,
    template: String,
    recipient: String,
    channel: String,
    subject: String,
}

async fn simulate(
    settings: crate::config::Settings,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> anyhow::Result<Vec<Captured>> {
    let manual = ManualClock::new(start);
    let clock: SharedClock = Arc::new(manual.clone());
    let store = Arc::new(Store::open_in(&settings.data_dir)?);
    let reader = Arc::new(crate::store::domain::DomainReader::open(store.path())?);
    let (executor, _reloadable) = super::run::executor(&settings, &store, &clock, reader)?;
    let scheduler = Scheduler::new(store.clone(), clock.clone(), executor)
        .start(&settings)
        .await?;
    // Step from one wake-up of the scheduler to the next; a pass that left nothing to wait for
    // jumps to the end. The cap only guards against a loop that never advances.
    let mut steps = 0u64;
    while clock.now() < end && steps < 5_000_000 {
        steps += 1;
        scheduler.settled(clock.now()).await;
        let next = scheduler
            .status()
            .sleeping_until
            .unwrap_or(end)
            .max(clock.now() + chrono::Duration::milliseconds(1))
            .min(end);
        manual.set(next);
    }
    scheduler.settled(end).await;
    scheduler.shutdown(Duration::from_secs(30)).await?;

    let rows = store.read(|tx| Ok(tx.outbox_list(None, None, usize::MAX >> 1)?))?;
    let mut out: Vec<Captured> = rows
        .into_iter()
        .map(|m| Captured {
            at: m.created_at,
            community: m.community,
            workflow: m.workflow,
            template: m.template,
            recipient: m.recipient,
            channel: format!("{:?}", m.channel).to_lowercase(),
            subject: m
                .subject
                .unwrap_or_else(|| m.body_text.chars().take(40).collect()),
        })
        .collect();
    out.sort_by(|a, b| (a.at, &a.community, &a.recipient).cmp(&(b.at, &b.community, &b.recipient)));
    Ok(out)
}

/// Messages of one day are grouped by (community, workflow, template).
type Group = (String, String, String);

fn print(messages: &[Captured], format: &str, tz: Tz) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if format == "json" {
        for m in messages {
            writeln!(out, "{}", serde_json::to_string(m)?)?;
        }
        return Ok(());
    }
    let mut days: BTreeMap<NaiveDate, BTreeMap<Group, Vec<&Captured>>> = BTreeMap::new();
    for m in messages {
        days.entry(m.at.with_timezone(&tz).date_naive())
            .or_default()
            .entry((m.community.clone(), m.workflow.clone(), m.template.clone()))
            .or_default()
            .push(m);
    }
    for (day, groups) in &days {
        writeln!(out, "{day}")?;
        for ((community, _workflow, template), list) in groups {
            let staff = list
                .iter()
                .filter(|m| m.recipient.starts_with("staff:"))
                .count();
            let who = if staff == list.len() {
                format!("{staff} staff")
            } else {
                format!("{} owner(s)", list.len() - staff)
            };
            writeln!(
                out,
                "  {community:<12} {template:<40} {:>4} × to {who}",
                list.len()
            )?;
        }
    }
    writeln!(
        out,
        "{} message(s) over {} day(s) with messages",
        messages.len(),
        days.len()
    )?;
    Ok(())
}
