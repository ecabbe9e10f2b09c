//! `wuyed run`: the daemon.
//!
//! Order matters for operators and systemd: signals are hooked first (an early SIGHUP must not kill
//! us), then the configuration is checked (exit 78 with every error), the database opened and
//! migrated (exit 75 if it is locked or unavailable), the scheduler started, and only then is
//! systemd told READY. SIGHUP reloads (validate first; a broken file keeps the old configuration
//! running) and re-reads every configured plugin (one that fails to load keeps its previous
//! version running), SIGTERM/SIGINT stop: runs in flight get a bounded time to finish, and any
//! still going are abandoned without a trace of their effects, to be redone at the next start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::signal::unix::{SignalKind, signal};

use crate::blocking::Blocking;
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{self, LoadOptions, Settings};
use crate::exit::Coded;
use crate::logging::{self, LogFormat};
use crate::scheduler::{Executor, Scheduler};
use crate::store::Store;
use crate::systemd;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration directory (wuyed.toml and communities/).
    #[arg(long, value_name = "DIR", default_value = "config")]
    pub config: PathBuf,

    /// How long a stop (SIGTERM, SIGINT) waits for runs in flight before leaving them to be redone
    /// at the next start, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    pub stop_timeout: u64,

    /// For testing: start the daemon's clock at this instant (RFC 3339, e.g.
    /// 2026-11-22T07:59:58+08:00) instead of now; time then passes at the normal rate. Never use
    /// it on a production database: slots planned "in the future" are not planned again.
    #[arg(long, value_name = "RFC3339", hide_short_help = true, value_parser = parse_instant)]
    pub clock_start: Option<DateTime<Utc>>,
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 instant like 2026-11-22T08:00:00+08:00: {e}"))
}

/// What executes runs: the plugin host, reading community data from the domain store and
/// handing intents to the outbox, timers and the desk's ticket queue (crate::wiring). Returns the
/// parts that must follow a configuration reload.
pub(super) fn executor(
    settings: &Settings,
    store: &Arc<Store>,
    clock: &SharedClock,
    reader: Arc<crate::store::domain::DomainReader>,
) -> anyhow::Result<(Arc<dyn Executor>, Reloadable)> {
    let host = crate::plugin::host::HostOptions::for_daemon(&settings.data_dir);
    executor_with(settings, store, clock, reader, host, Blocking::Pool)
}

/// `executor` with the plugin host's options and where plugins run given: `wuyed simulate` runs
/// on a copy of the data directory but compiles into (and reads from) the real one's plugin
/// cache, in place on each part's thread; the workflows benchmark times a run through exactly
/// what `wuyed run` builds.
pub fn executor_with(
    settings: &Settings,
    store: &Arc<Store>,
    clock: &SharedClock,
    reader: Arc<crate::store::domain::DomainReader>,
    host: crate::plugin::host::HostOptions,
    blocking: Blocking,
) -> anyhow::Result<(Arc<dyn Executor>, Reloadable)> {
    use crate::plugin::{PluginExecutor, PluginHost};
    let shared = Arc::new(settings.clone());
    let host = Arc::new(PluginHost::new(host)?);
    let data = Arc::new(crate::wiring::StoreData::new(
        reader.clone(),
        shared.clone(),
    ));
    let sink = Arc::new(crate::wiring::OutboxSink::new(
        shared,
        Arc::new(crate::domain::directory::StoreDirectory::new(reader)),
        clock.clone(),
    )?);
    let executor = PluginExecutor::new(
        host,
        data.clone(),
        store.clone(),
        sink.clone(),
        clock.clone(),
        settings.daemon.plugins.clone(),
    )
    .with_blocking(blocking);
    // Pauses survive a restart: a workflow that kept failing stays paused until its plugin
    // changes or someone resumes it.
    for p in store.read(|tx| Ok(tx.plugin_paused()?))? {
        tracing::warn!(community = %p.community, workflow = %p.workflow, "workflow paused after repeated plugin failures");
        executor.set_paused(&p.community, &p.workflow);
    }
    let plugins = executor.clone();
    Ok((
        Arc::new(executor),
        Reloadable {
            data,
            sink,
            plugins,
        },
    ))
}

/// The parts of the executor that hold configuration, and the plugins it runs.
pub struct Reloadable {
    data: Arc<crate::wiring::StoreData>,
    sink: Arc<crate::wiring::OutboxSink>,
    plugins: crate::plugin::PluginExecutor,
}

impl Reloadable {
    fn reload(&self, settings: &Settings) -> anyhow::Result<()> {
        // Every configured plugin file is re-read now, not at its workflow's next run: an operator
        // who swapped a .wasm and sent SIGHUP hears at once whether it loaded. This blocks the
        // signal loop (block_on's thread, not a runtime worker) while a changed plugin compiles.
        self.plugins.reload_plugins(settings);
        let shared = Arc::new(settings.clone());
        self.sink.reload(shared.clone())?;
        self.data.reload(shared);
        Ok(())
    }
}

pub fn run(args: Args, log_format: LogFormat) -> anyhow::Result<()> {
    let clock: SharedClock = match args.clock_start {
        Some(start) => Arc::new(SystemClock::starting_at(start)),
        None => Arc::new(SystemClock::new()),
    };
    let settings = load(&args.config, clock.as_ref()).map_err(Coded::config)?;
    logging::init(log_format, &settings.daemon.daemon.log_level);
    // Two workers: the loop and a run or two; SQLite work goes to blocking threads made on demand.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(daemon(args, settings, clock));
    // Blocking tasks (a commit in progress) get a moment; SQLite makes an interrupted one a no-op.
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

async fn daemon(args: Args, settings: Settings, clock: SharedClock) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;

    let data_dir = settings.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open_in(&data_dir)).await??;
    // Runs, timers and event routing wait out another process's lock however long it is held.
    let store = Arc::new(store.waiting_while_locked());
    tracing::info!(
        db = %store.path().display(),
        schema = crate::store::LATEST_VERSION,
        communities = settings.communities.len(),
        "database ready"
    );
    // The outbox dispatcher: sends what runs committed, with quiet hours, retries and the
    // re-check just before sending; asks the domain store who owners are and whether a reason
    // still stands.
    // One read connection serves the dispatcher's directory and the plugin host's data.
    let reader = Arc::new(crate::store::domain::DomainReader::open(store.path())?);
    let channels = crate::deliver::Channels::from_settings(&settings).map_err(Coded::config)?;
    let dispatcher = crate::deliver::Dispatcher::new(
        store.path(),
        Arc::new(settings.clone()),
        clock.clone(),
        channels,
        Arc::new(crate::domain::directory::StoreDirectory::new(
            reader.clone(),
        )),
    )?;
    let outbox_waker = dispatcher.waker();
    let outbox_reload = dispatcher.reloader();
    let (executor, reloadable) = executor(&settings, &store, &clock, reader)?;
    // Events written while the daemon was stopped (an import) become runs before the scheduler
    // takes its first run, so a catch-up run does not miss what they tell.
    crate::scheduler::events::route_pending_events(&store, &settings, clock.now())?;
    let scheduler = Scheduler::new(store.clone(), clock.clone(), executor)
        .notify_on_messages(outbox_waker)
        .start(&settings)
        .await?;

    // Domain events written by the HTTP API become event runs as soon as they are committed.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (settings_tx, settings_rx) = tokio::sync::watch::channel(Arc::new(settings.clone()));
    let written = Arc::new(tokio::sync::Notify::new());
    let router = tokio::spawn(route_events(
        store.clone(),
        clock.clone(),
        settings_rx,
        written.clone(),
        scheduler.waker(),
        stop_rx.clone(),
    ));
    // Supervised: restarted with backoff if it fails or panics; /healthz reports its heartbeat.
    let dispatcher = Arc::new(dispatcher);
    crate::deliver::supervise::publish(dispatcher.health());
    let (mut dispatch_stop, stop_for_task) = (stop_rx.clone(), stop_rx.clone());
    let dispatch = tokio::spawn(crate::deliver::supervise::supervise(
        dispatcher.health(),
        move || {
            let (dispatcher, mut stop) = (dispatcher.clone(), stop_for_task.clone());
            async move {
                dispatcher
                    .run(async move {
                        let _ = stop.wait_for(|stop| *stop).await;
                    })
                    .await
            }
        },
        async move {
            let _ = dispatch_stop.wait_for(|stop| *stop).await;
        },
    ));
    let mut http_stop = stop_rx.clone();
    let http = crate::http::start(&settings, clock.clone(), Some(written), async move {
        let _ = http_stop.wait_for(|stop| *stop).await;
    })
    .await?;
    let http_reload = crate::http::HttpReload::of(http.as_ref());

    systemd::notify("READY=1\nSTATUS=scheduling");
    tracing::info!(config = %args.config.display(), "wuyed running");
    // WatchdogSec=: fed only while the scheduler loop answers (systemd.rs).
    let watchdog = systemd::watchdog().map(|(socket, interval)| {
        let liveness = scheduler.liveness();
        let mut stop = stop_rx.clone();
        tokio::spawn(systemd::keep_alive(
            socket,
            interval,
            move |within| {
                let mut liveness = liveness.clone();
                async move { liveness.answers(within).await }
            },
            async move {
                let _ = stop.wait_for(|stop| *stop).await;
            },
        ))
    });

    let mut current = settings;
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping");
                break;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping");
                break;
            }
            _ = hup.recv() => {
                systemd::notify("RELOADING=1\nSTATUS=reloading the configuration");
                let dir = args.config.clone();
                let clock = clock.clone();
                match tokio::task::spawn_blocking(move || load(&dir, clock.as_ref())).await? {
                    Ok(new) => {
                        if new.data_dir != current.data_dir {
                            tracing::warn!(
                                old = %current.data_dir.display(),
                                new = %new.data_dir.display(),
                                "daemon.data_dir changed: it takes effect at the next restart"
                            );
                        }
                        if let Err(e) = reloadable.reload(&new) {
                            tracing::error!("templates of the new configuration failed to load, keeping the old ones: {e:#}");
                        }
                        // Sends in flight finish on the old channels; the next round uses these.
                        match outbox_reload.reload(Arc::new(new.clone())) {
                            Ok(()) => tracing::info!("delivery settings reloaded"),
                            Err(e) => tracing::error!("delivery settings of the new configuration are unusable, the outbox keeps the old ones: {e:#}"),
                        }
                        http_reload.reload(&new);
                        scheduler.reload(new.clone()).await?;
                        settings_tx.send_replace(Arc::new(new.clone()));
                        current = new;
                    }
                    Err(errors) => tracing::error!(
                        "configuration reload rejected, still running on the previous \
                         configuration: {errors:#}"
                    ),
                }
                systemd::notify("READY=1\nSTATUS=scheduling");
            }
        }
    }
    systemd::notify("STOPPING=1\nSTATUS=stopping");
    let _ = stop_tx.send(true);
    if let Some(http) = http {
        // In-flight requests finish (graceful shutdown); their writes are committed or not at all.
        let _ = http.task.await;
    }
    let _ = router.await;
    if let Some(watchdog) = watchdog {
        let _ = watchdog.await;
    }
    scheduler
        .shutdown(Duration::from_secs(args.stop_timeout))
        .await?;
    // A send in progress finishes or is recorded as of unknown outcome, to be resolved at start.
    if let Err(e) = dispatch.await {
        tracing::error!("outbox dispatcher's supervisor panicked: {e}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long events written by another process (an import) may wait to be routed.
const EVENT_POLL: std::time::Duration = std::time::Duration::from_secs(60);

/// Routes pending domain events into event runs: once at start (events written before a stop),
/// then each time the API reports a write and at least every [`EVENT_POLL`], until the daemon
/// stops.
async fn route_events(
    store: Arc<Store>,
    clock: SharedClock,
    settings: tokio::sync::watch::Receiver<Arc<Settings>>,
    written: Arc<tokio::sync::Notify>,
    scheduler: Arc<tokio::sync::Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (store2, settings2, now) = (store.clone(), settings.borrow().clone(), clock.now());
        match tokio::task::spawn_blocking(move || {
            crate::scheduler::events::route_pending_events(&store2, &settings2, now)
        })
        .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                tracing::debug!(runs = n, "domain events queued as runs");
                scheduler.notify_one();
            }
            // The events stay pending and are taken at the next write or start.
            Ok(Err(e)) => tracing::error!("routing domain events failed: {e:#}"),
            Err(e) => tracing::error!("routing domain events panicked: {e}"),
        }
        tokio::select! {
            _ = written.notified() => {}
            // Other processes write events too (`wuyed import`); nobody wakes us for those.
            _ = tokio::time::sleep(EVENT_POLL) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Loads the configuration against the process environment, "today" read from the daemon's
/// clock; the error lists every problem as `file:line: key: message`.
pub(super) fn load(dir: &Path, clock: &dyn Clock) -> anyhow::Result<Settings> {
    config::load_with(dir, &LoadOptions::from_env(clock))
        .map_err(|errors| anyhow::anyhow!("{}: {errors}", dir.display()))
}
