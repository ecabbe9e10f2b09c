//! `wuyed simulate`: the configured workflows over a span of days on a virtual clock, with the
//! real plugins and a copy of the store's data, and a day-by-day account of who would get what.
//!
//! It runs the daemon's own scheduler, executor (`cli::run::executor`) and outbox dispatcher
//! against a snapshot of the database in a temporary folder, moving a [`ManualClock`] from one
//! wake-up (of the scheduler or the dispatcher) to the next and waiting for each to settle.
//! The communities are split into parts that do not affect each other ([`split`]), each with
//! its own copy, clock and thread, so a simulation uses every core. The
//! dispatcher's channels are replaced whatever the configuration says (mail and SMS are
//! captured in the outbox copy), so nothing leaves the machine; what it did
//! to each message (sent after quiet hours, cancelled because the bill was paid, expired) is the
//! capture. The real store is never touched; compiled plugins go to the real data directory's
//! plugin cache, which is what makes a second simulation (and the daemon's next start) skip
//! compiling.
//!
//! A run that fails (a template that does not render, a plugin that traps) is listed with its
//! error after the timeline and makes the command exit 70 (EX_SOFTWARE): a simulation that
//! printed "0 message(s)" and exited 0 looked like a quiet month, not a broken workflow.
//!
//! `--show-messages` prints each message in full after the timeline, read back from the
//! copy's outbox as delivery rendered it ([`show`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::blocking::Blocking;
use crate::clock::{ManualClock, SharedClock};
use crate::exit::Coded;
use crate::scheduler::Scheduler;
use crate::store::Store;

mod show;
mod side_by_side;
mod split;

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
    /// What the desk and owners do meanwhile (payments, reversals, closed tickets, callbacks,
    /// survey answers, events), as `[[step]]`s of a TOML file played through the API at their
    /// times: see `docs/OPERATION.md`.
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// At most how many parts of the communities run side by side, each on its own copy of the
    /// data (default: the machine's cores). Communities whose owners or staff share an SMS
    /// number under a limit stay in one part, and a `--script` runs as one. The messages are
    /// the same whatever the split (docs/OPERATION.md).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// Only the messages to this household (its id as imported, `1-1-101`) and its owners, in
    /// every simulated community that has it (add --community for one): the timeline, the JSON
    /// and --show-messages alike. Staff notices are left out; everything is still simulated.
    #[arg(long, value_name = "ID")]
    pub household: Option<String>,
    /// After the timeline, every message in full as its recipient would get it: community,
    /// recipient (address masked as in the daemon's log), locale, channel, when it goes in the
    /// community's local time, and the email's subject and text or the SMS, exactly as
    /// delivery rendered them from the templates. With --format json, each line gains a
    /// `message` object with every part. Long on a real community: pipe it to `less`, or narrow
    /// it with --household, --community and --limit.
    #[arg(long)]
    pub show_messages: bool,
    /// With --show-messages: also print the HTML of emails that have one (by default a line
    /// says it exists).
    #[arg(long, requires = "show_messages")]
    pub show_html: bool,
    /// With --show-messages (text): at most N messages in full [default: 20]: one of each
    /// template first, then one of each of its locales and channels, then the earliest others;
    /// a last line says how many were left out. 0 shows all.
    #[arg(long, value_name = "N", requires = "show_messages")]
    pub limit: Option<usize>,
}

/// How many messages `--show-messages` prints in full unless `--limit` says otherwise: enough
/// to see each kind, not a page per household of a 5,000-household community.
const DEFAULT_SHOW_LIMIT: usize = 20;

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.to < args.from {
        return Err(Coded::usage(anyhow::anyhow!(
            "--to {} is before --from {}",
            args.to,
            args.from
        ))
        .into());
    }
    if args.limit.is_some() && args.format == "json" {
        return Err(Coded::usage(anyhow::anyhow!(
            "--limit is for the text format; with --format json --show-messages every message \
             is printed in full (filter with --household or --community, or cut with head)"
        ))
        .into());
    }
    // The whole script is checked before anything runs.
    let script = match &args.script {
        Some(file) => Some(super::desk_script::DeskScript::load(file).map_err(Coded::usage)?),
        None => None,
    };
    // Quiet unless asked: `RUST_LOG=wuye=info` shows every simulated run as the daemon logs it.
    crate::logging::init(crate::logging::LogFormat::Text, "off");
    let real_clock = crate::clock::SystemClock::new();
    // Nothing leaves the machine: the daemon's secrets (API tokens, SMTP password) are not needed.
    let options = crate::config::LoadOptions::offline(&real_clock);
    let mut settings = crate::config::load_with(&args.config, &options)
        .map_err(|errors| Coded::config(anyhow::anyhow!("{}: {errors}", args.config.display())))?;
    if let Some(id) = &args.community {
        settings.communities.retain(|c| &c.id == id);
        if settings.communities.is_empty() {
            return Err(
                Coded::usage(anyhow::anyhow!("no community {id:?} in the configuration")).into(),
            );
        }
    }
    // A span the calendars do not cover puts surveys and reminders on public holidays: say so,
    // once per calendar, before the timeline shows it.
    let mut warned = std::collections::HashSet::new();
    for c in &settings.communities {
        if let Some(cal) = &c.calendar
            && warned.insert(cal.name.clone())
            && let Some(warning) = cal.coverage_warning(args.from, args.to)
        {
            eprintln!("warning: {warning}");
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
    // In memory where the machine has a tmpfs: every simulated run commits, and on a throwaway
    // copy the disk writes are pure cost.
    let shm = std::path::Path::new("/dev/shm");
    let sandbox = if shm.is_dir() {
        tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir())?
    } else {
        tempfile::tempdir()?
    };
    let plugin_cache = crate::plugin::host::HostOptions::for_daemon(&settings.data_dir);
    let real_db = settings.data_dir.join(crate::store::DB_FILE);
    let snapshot = sandbox.path().join(crate::store::DB_FILE);
    if real_db.is_file() {
        Store::open(&real_db)?.snapshot_to(&snapshot)?;
    }
    warn_without_households(&settings, &snapshot)?;
    if let Some(household) = &args.household {
        check_household(&settings, &snapshot, household)?;
    }
    let jobs = match args.jobs {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    // A script's steps may touch any community through the API, so it plays on one copy.
    let parts = if script.is_some() { 1 } else { jobs };
    let parts = split_parts(&settings, &snapshot, parts)?;
    tracing::info!(
        communities = settings.communities.len(),
        parts = parts.len(),
        "simulating the communities in {} part(s) side by side",
        parts.len()
    );
    // A part's copy holds everyone's pending work; only the part's own is worked there.
    let alone = parts.len() > 1 || args.community.is_some();
    let (mut runs, mut part_dbs) = (Vec::new(), Vec::new());
    for (i, communities) in parts.iter().enumerate() {
        let dir = sandbox.path().join(format!("part-{i}"));
        std::fs::create_dir_all(&dir)?;
        if snapshot.is_file() {
            std::fs::copy(&snapshot, dir.join(crate::store::DB_FILE))?;
        }
        part_dbs.push(dir.join(crate::store::DB_FILE));
        let mut part = settings.clone();
        part.communities.retain(|c| communities.contains(&c.id));
        part.data_dir = dir;
        runs.push(part);
    }
    if snapshot.is_file() {
        std::fs::remove_file(&snapshot)?;
    }

    // Each part on its own thread with its own single-threaded runtime, plugins and commits
    // in place (crate::blocking): its scheduler, runs and dispatcher hand work to each other
    // all along the year, and on one thread they do so without waking another.
    let mut script = script;
    let runs: Vec<_> = runs.into_iter().map(|part| (part, script.take())).collect();
    let parts = side_by_side::run(runs, |(part, script), abandon| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(simulate(
            part,
            plugin_cache.clone(),
            script,
            Span { start, end },
            args.household.as_deref(),
            alone,
            abandon,
        ))
    })?;
    // Part order, then the stable sort: what one simulation of everything would list.
    let (mut messages, mut failed) = (Vec::new(), Vec::new());
    for (part, (m, f)) in parts.into_iter().enumerate() {
        messages.extend(m.into_iter().map(|m| Captured { part, ..m }));
        failed.extend(f);
    }
    sort_captured(&mut messages);
    failed.sort_by(|a: &FailedRun, b| {
        (a.due_at, &a.community, &a.workflow).cmp(&(b.due_at, &b.community, &b.workflow))
    });
    if args.show_messages {
        let mut rows = show::Rows::open(&part_dbs)?;
        if args.format == "json" {
            show::print_json(&messages, &mut rows, &settings)?;
        } else {
            print(&messages, &args.format, tz)?;
            let options = show::Options {
                limit: match args.limit.unwrap_or(DEFAULT_SHOW_LIMIT) {
                    0 => usize::MAX,
                    n => n,
                },
                html: args.show_html,
            };
            show::print_text(&messages, &mut rows, &settings, &options)?;
        }
    } else {
        print(&messages, &args.format, tz)?;
    }
    if failed.is_empty() {
        return Ok(());
    }
    print_failed(&failed, &args.format, &settings)?;
    Err(Coded::new(
        crate::exit::SOFTWARE,
        anyhow::anyhow!(
            "{} run(s) failed in the simulated span (listed above); fix them before the daemon \
             meets them",
            failed.len()
        ),
    )
    .into())
}

/// Warns about each community without a household in the data to be simulated (`snapshot`,
/// absent when there is no database yet): its workflows have nobody to write to, so a quiet
/// timeline says nothing about them.
fn warn_without_households(
    settings: &crate::config::Settings,
    snapshot: &std::path::Path,
) -> anyhow::Result<()> {
    let mut households = std::collections::HashMap::new();
    if snapshot.is_file() {
        households = Store::open(snapshot)?.read(|tx| Ok(tx.household_counts()?))?;
    }
    for c in &settings.communities {
        if households.get(&c.id).copied().unwrap_or(0) == 0 {
            eprintln!(
                "warning: community {} has no households in {}: its workflows have nobody to \
                 write to; import its owners first (wuyed import owners FILE --community {})",
                c.id,
                settings.data_dir.join(crate::store::DB_FILE).display(),
                c.id
            );
        }
    }
    Ok(())
}

/// Refuses a `--household` none of the simulated communities has, before the simulation: an
/// empty timeline after a minute's work would look like a household nobody writes to.
fn check_household(
    settings: &crate::config::Settings,
    snapshot: &std::path::Path,
    household: &str,
) -> anyhow::Result<()> {
    let mut found = false;
    if snapshot.is_file() {
        found = Store::open(snapshot)?.read(|tx| {
            for c in &settings.communities {
                if tx.domain(&c.id).household(household)?.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        })?;
    }
    if found {
        return Ok(());
    }
    let ids: Vec<&str> = settings.communities.iter().map(|c| c.id.as_str()).collect();
    Err(Coded::usage(anyhow::anyhow!(
        "no household {household:?} in {} {} in {}: give its id as the owners file was \
         imported (building-unit-room, 1-1-101)",
        if ids.len() == 1 {
            "community"
        } else {
            "communities"
        },
        ids.join(", "),
        settings.data_dir.join(crate::store::DB_FILE).display()
    ))
    .into())
}

/// A simulated run that failed, and why.
#[derive(Debug, serde::Serialize)]
struct FailedRun {
    due_at: DateTime<Utc>,
    community: String,
    workflow: String,
    error: String,
}

/// The failed runs after the timeline, each with its error, in the community's local time. On
/// stdout with the timeline; with `--format json` on stderr, one object a line, so stdout stays
/// one message a line.
fn print_failed(
    failed: &[FailedRun],
    format: &str,
    settings: &crate::config::Settings,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    if format == "json" {
        let mut err = std::io::stderr().lock();
        for f in failed {
            writeln!(err, "{}", serde_json::to_string(f)?)?;
        }
        return Ok(());
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "{} run(s) failed:", failed.len())?;
    for f in failed {
        let tz = settings
            .community(&f.community)
            .map_or(chrono_tz::Asia::Shanghai, |c| c.tz);
        let due = f.due_at.with_timezone(&tz).format("%Y-%m-%d %H:%M");
        writeln!(out, "  {due}  {} {}:", f.community, f.workflow)?;
        for line in f.error.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The communities of `settings` in at most `parts` groups that can be simulated apart (see
/// [`split`]), weighed by their households in the `snapshot` (if there is one).
fn split_parts(
    settings: &crate::config::Settings,
    snapshot: &std::path::Path,
    parts: usize,
) -> anyhow::Result<Vec<Vec<String>>> {
    let ids: Vec<String> = settings.communities.iter().map(|c| c.id.clone()).collect();
    if parts <= 1 || ids.len() <= 1 {
        return Ok(vec![ids]);
    }
    // Communities whose SMS channel counts messages per number. Two communities sharing a
    // number are linked when either counts: the one that counts sees the other's sends.
    let limited: std::collections::HashSet<&str> = settings
        .communities
        .iter()
        .filter(|c| {
            let own = c.delivery.sms.as_ref();
            own.or(settings.daemon.delivery.sms.as_ref())
                .is_some_and(|s| {
                    s.daily_limit().is_some() || s.same_content_secs().is_some_and(|n| n > 0)
                })
        })
        .map(|c| c.id.as_str())
        .collect();
    // Staff SMS numbers as sent to: the configuration (crates/config/src/compile.rs) keeps their digits and `+` only.
    let staff: Vec<(&str, String)> = if limited.is_empty() {
        Vec::new()
    } else {
        settings
            .communities
            .iter()
            .flat_map(|c| {
                let id = c.id.as_str();
                c.staff
                    .iter()
                    .filter_map(move |s| Some((id, s.phone.clone()?)))
            })
            .collect()
    };
    let mut linked = Vec::new();
    for (i, (a, pa)) in staff.iter().enumerate() {
        for (b, pb) in &staff[i + 1..] {
            if a != b && pa == pb {
                linked.push((a.to_string(), b.to_string()));
            }
        }
    }
    let mut households = std::collections::HashMap::new();
    if snapshot.is_file() {
        Store::open(snapshot)?.read(|tx| {
            households = tx.household_counts()?;
            if !limited.is_empty() {
                linked.extend(tx.communities_sharing_owner_numbers()?);
                for (community, phone) in &staff {
                    for other in tx.communities_with_owner_number(phone)? {
                        linked.push((community.to_string(), other));
                    }
                }
            }
            Ok(())
        })?;
    }
    linked
        .retain(|(a, b)| a != b && (limited.contains(a.as_str()) || limited.contains(b.as_str())));
    Ok(split::split(&ids, &linked, &households, parts))
}

/// One message the simulated runs queued (or could not queue: `delivery` = `unreachable`).
#[derive(Debug, serde::Serialize)]
struct Captured {
    /// When the run queued it.
    at: DateTime<Utc>,
    community: String,
    workflow: String,
    template: String,
    recipient: String,
    channel: String,
    subject: String,
    /// What the dispatcher did with it: `sent`, `cancelled`, `expired`, `dead`, `failed`,
    /// `deferred` (still waiting when the simulation ended) or `unreachable` (never queued: no
    /// usable address; listed for the desk to call).
    delivery: String,
    /// When it was sent, in the community's local time (RFC 3339 with offset).
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_at: Option<String>,
    /// Why it was not sent (`reason gone: bill 2027-03 paid`, `quiet hours`, `no usable email`).
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// The locale of its template (empty when unreachable): one kind `--show-messages` shows.
    #[serde(skip)]
    locale: String,
    /// Where its rendered row is: the part whose copy holds it and its outbox id (none when
    /// unreachable: nothing was rendered).
    #[serde(skip)]
    part: usize,
    #[serde(skip)]
    outbox_id: Option<i64>,
}

/// The simulated span: from local midnight of the first day to that of the day after the last.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// After the last simulated day the dispatcher alone goes on this long, so a message queued late
/// on the last evening still shows when quiet hours would have let it go.
fn drain_after_end() -> chrono::Duration {
    chrono::Duration::days(3)
}

async fn simulate(
    settings: crate::config::Settings,
    plugin_cache: crate::plugin::host::HostOptions,
    mut script: Option<super::desk_script::DeskScript>,
    Span { start, end }: Span,
    household: Option<&str>,
    alone: bool,
    abandon: &side_by_side::Abandon,
) -> anyhow::Result<(Vec<Captured>, Vec<FailedRun>)> {
    let manual = ManualClock::new(start);
    let clock: SharedClock = Arc::new(manual.clone());
    let store = Arc::new(Store::open_in(&settings.data_dir)?.for_throwaway_copy()?);
    if alone {
        let ids: Vec<&str> = settings.communities.iter().map(|c| c.id.as_str()).collect();
        store.forget_pending_work_except(&ids)?;
    }
    let reader =
        Arc::new(crate::store::domain::DomainReader::open(store.path())?.for_throwaway_copy()?);
    let (executor, _reloadable) = super::run::executor_with(
        &settings,
        &store,
        &clock,
        reader.clone(),
        plugin_cache,
        Blocking::InPlace,
    )?;
    let dispatcher = crate::deliver::Dispatcher::new(
        store.path(),
        Arc::new(settings.clone()),
        clock.clone(),
        file_channels(&settings)?,
        Arc::new(crate::domain::directory::StoreDirectory::new(reader)),
    )?
    .for_throwaway_copy()?;
    // Events still pending in the copy (a file imported just before) reach the workflows first,
    // as they would at the daemon's start.
    crate::scheduler::events::route_pending_events(&store, &settings, start)?;
    let scheduler = Scheduler::new(store.clone(), clock.clone(), executor)
        .with_blocking(Blocking::InPlace)
        .start(&settings)
        .await?;
    let desk = match &script {
        Some(_) => Some(super::desk_script::Desk::new(
            &settings,
            store.path(),
            clock.clone(),
        )?),
        None => None,
    };
    // Step from one wake-up to the next: the scheduler's (a slot, a timer), the dispatcher's (a
    // message whose quiet hours end) or the script's (the desk's next step). A pass that left
    // nothing to wait for jumps to the end. The cap only guards against a loop that never
    // advances.
    let mut steps = 0u64;
    while clock.now() < end && steps < 5_000_000 {
        steps += 1;
        abandon.check()?;
        let now = clock.now();
        if let (Some(script), Some(desk)) = (script.as_mut(), desk.as_ref())
            && script.play_due(desk, now).await? > 0
        {
            // What the steps wrote becomes event runs now, as the daemon's API writes do.
            crate::scheduler::events::route_pending_events(&store, &settings, now)?;
            scheduler.wake();
        }
        scheduler.settled(now).await;
        dispatcher.dispatch_once(now).await?;
        let next_step = script.as_ref().and_then(|s| s.next_at());
        let next = [
            scheduler.status().sleeping_until,
            dispatcher.next_due()?,
            next_step,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(end)
        .max(now + chrono::Duration::milliseconds(1))
        .min(end);
        manual.set(next);
    }
    scheduler.settled(end).await;
    scheduler.shutdown(Duration::from_secs(30)).await?;
    dispatcher.dispatch_once(end).await?;
    let drain_until = end + drain_after_end();
    while let Some(next) = dispatcher.next_due()?.filter(|t| *t <= drain_until)
        && steps < 5_000_000
    {
        steps += 1;
        abandon.check()?;
        manual.set(next.max(clock.now()));
        dispatcher.dispatch_once(clock.now()).await?;
    }

    let tz_of = |community: &str| {
        settings
            .communities
            .iter()
            .find(|c| c.id == community)
            .map(|c| c.tz)
            .unwrap_or(chrono_tz::Asia::Shanghai)
    };
    let (rows, unreachable) =
        store.read(|tx| Ok((tx.outbox_outcomes(start)?, tx.unreachable_list(None)?)))?;
    // Messages already in the copied store before the simulated span are not its doing.
    let mut out: Vec<Captured> = rows
        .into_iter()
        .map(|m| {
            let sent = m.status == crate::deliver::Status::Sent;
            Captured {
                at: m.created_at,
                sent_at: m
                    .sent_at
                    .filter(|_| sent)
                    .map(|t| t.with_timezone(&tz_of(&m.community)).to_rfc3339()),
                detail: m.last_error.filter(|_| !sent),
                delivery: m.status.to_string(),
                community: m.community,
                workflow: m.workflow,
                template: m.template,
                recipient: m.recipient,
                channel: format!("{:?}", m.channel).to_lowercase(),
                subject: m.headline,
                locale: m.locale,
                part: 0,
                outbox_id: Some(m.id),
            }
        })
        .collect();
    out.extend(
        unreachable
            .into_iter()
            .filter(|u| u.created_at >= start)
            .map(|u| Captured {
                at: u.created_at,
                community: u.community,
                workflow: u.workflow,
                // The desk's list keeps the step, not the template: the run could not render
                // a message for nobody.
                template: String::new(),
                recipient: u.recipient,
                channel: String::new(),
                subject: format!("{} ({})", u.name, u.step),
                delivery: "unreachable".into(),
                sent_at: None,
                detail: Some(u.why),
                locale: String::new(),
                part: 0,
                outbox_id: None,
            }),
    );
    if let Some(household) = household {
        let owners = store.read(|tx| {
            let mut owners = std::collections::HashSet::new();
            for c in &settings.communities {
                for o in tx.domain(&c.id).household_recipients(household)? {
                    owners.insert((c.id.clone(), format!("owner:{}", o.id)));
                }
            }
            Ok(owners)
        })?;
        let to_household = format!("household:{household}");
        out.retain(|m| {
            m.recipient == to_household
                || owners.contains(&(m.community.clone(), m.recipient.clone()))
        });
    }
    sort_captured(&mut out);
    // This part's own: a part's copy holds the other communities' data too.
    let failed = store
        .failed_runs_since(start)?
        .into_iter()
        .filter(|r| settings.community(&r.community).is_some())
        .map(|r| FailedRun {
            due_at: r.due_at,
            community: r.community,
            workflow: r.workflow,
            error: r.error.unwrap_or_default(),
        })
        .collect();
    Ok((out, failed))
}

/// Time order; within an instant, by community and recipient (stable: one recipient's messages
/// of one instant keep the order the store listed them in, newest first).
fn sort_captured(messages: &mut [Captured]) {
    messages.sort_by(|a, b| {
        (a.at, &a.community, &a.recipient).cmp(&(b.at, &b.community, &b.recipient))
    });
}

/// The configured channels with every destination replaced: mail and SMS are captured (the
/// outbox row is the record). Per-number SMS limits keep the configured provider's values, so
/// their deferrals show.
fn file_channels(settings: &crate::config::Settings) -> anyhow::Result<crate::deliver::Channels> {
    use crate::deliver::{SmsProvider, SmsSettings};
    let to_file = |s: &SmsSettings| SmsSettings {
        provider: SmsProvider::File,
        daily_limit: s.daily_limit(),
        same_content_secs: s.same_content_secs(),
        ..SmsSettings::default()
    };
    let mut delivery = settings.daemon.delivery.clone();
    delivery.email.smtp = None;
    delivery.sms = delivery.sms.as_ref().map(to_file);
    let mut channels = crate::deliver::Channels::build(
        &settings.dir,
        &settings.data_dir,
        &delivery,
        settings.communities.iter().map(|c| {
            let sms = c.delivery.sms.as_ref();
            (c.id.clone(), sms.map(to_file))
        }),
    )?;
    // Nobody reads the simulated mail or SMS: the sandbox goes when the simulation ends.
    channels.capture();
    Ok(channels)
}

/// `2027-03-01T09:00:00+08:00` → `03-01 09:00`.
fn local_minute(rfc3339: &str) -> String {
    rfc3339.get(5..16).unwrap_or(rfc3339).replacen('T', " ", 1)
}

/// Messages of one day are grouped by (community, workflow, template).
type Group = (String, String, String);

fn print(messages: &[Captured], format: &str, tz: Tz) -> anyhow::Result<()> {
    use std::io::Write as _;
    // Buffered: stdout flushes at every newline otherwise, a write per message.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if format == "json" {
        for m in messages {
            writeln!(out, "{}", serde_json::to_string(m)?)?;
        }
        out.flush()?;
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
            // What delivery made of them: "10 sent, 2 cancelled", and the first and last send
            // in local time when quiet hours held some back.
            let mut fates: BTreeMap<&str, usize> = BTreeMap::new();
            for m in list {
                *fates.entry(m.delivery.as_str()).or_default() += 1;
            }
            let fates: Vec<String> = fates.iter().map(|(d, n)| format!("{n} {d}")).collect();
            let sent: Vec<&str> = list.iter().filter_map(|m| m.sent_at.as_deref()).collect();
            let when = match (sent.iter().min(), sent.iter().max()) {
                (Some(first), Some(last)) if first[..16] == last[..16] => {
                    format!(" at {}", local_minute(first))
                }
                (Some(first), Some(last)) => {
                    format!(" {}–{}", local_minute(first), local_minute(last))
                }
                _ => String::new(),
            };
            let template = if template.is_empty() {
                format!("{_workflow} (no message)")
            } else {
                template.clone()
            };
            writeln!(
                out,
                "  {community:<12} {template:<40} {:>4} × to {who}: {}{when}",
                list.len(),
                fates.join(", ")
            )?;
        }
    }
    writeln!(
        out,
        "{} message(s) over {} day(s) with messages",
        messages.len(),
        days.len()
    )?;
    out.flush()?;
    Ok(())
}
