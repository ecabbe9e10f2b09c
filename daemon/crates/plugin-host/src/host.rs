//! The engine: loads plugins (compiled once, cached on disk, hot-reloaded when the file changes
//! or on demand, i.e. SIGHUP) and runs one hook in a fresh, limited instance.
//!
//! One [`wasmtime::Engine`] and one [`Linker`] serve every plugin. Each run gets its own
//! [`Store`] made from the plugin's pre-linked
//! [`InstancePre`](wasmtime::component::InstancePre) (cheap with the pooling allocator), so a
//! trapped instance is never entered again and no state leaks from one community's run into
//! another's. A thread ticks the engine's epoch every 10 ms; a store's deadline is counted in
//! those ticks, which is what stops an infinite loop.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::data::{CommunityData, KvRead};
use super::intent::{Intent, KvWrite, Preparation};
use super::sandbox_io::{self, CappedPipe};
use super::wit::{self, VersionedPre, WitVersion};
use super::{EPOCH_TICK, Limits};
use wuye_core::clock::SharedClock;

/// How the host is built.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Where compiled components are cached (`<data_dir>/plugin-cache`); `None` compiles in memory.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling instance allocator (fast fresh instances). Falls back to on-demand
    /// allocation if the pool cannot be reserved.
    pub pooling: bool,
}

impl HostOptions {
    /// What the daemon uses: the pooling allocator and `<data_dir>/plugin-cache`, so a restart
    /// does not recompile any plugin.
    pub fn for_daemon(data_dir: &Path) -> HostOptions {
        HostOptions {
            // wasmtime's cache wants an absolute path; the config gives one relative to itself.
            cache_dir: Some(
                std::path::absolute(data_dir)
                    .unwrap_or_else(|_| data_dir.to_path_buf())
                    .join("plugin-cache"),
            ),
            pooling: true,
        }
    }
}

/// Why a plugin file cannot be used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read plugin: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid wasm component: {message}")]
    Compile { path: PathBuf, message: String },
    #[error(
        "{path}: not a wuye plugin: it exports no `wuye:plugin/hooks` interface (exports: {exports})"
    )]
    NotAPlugin { path: PathBuf, exports: String },
    #[error(
        "{path}: built for wuye:plugin@{found}, which this wuyed does not know; supported versions: {supported}. Upgrade wuyed or build the plugin against an older SDK"
    )]
    Unsupported {
        path: PathBuf,
        found: String,
        supported: String,
    },
    #[error(
        "{path}: cannot be linked (it imports something the sandbox does not offer): {message}"
    )]
    Link { path: PathBuf, message: String },
}

/// A compiled, pre-linked plugin.
pub struct LoadedPlugin {
    /// File stem: the plugin's name for its key-value store and in logs.
    pub name: String,
    pub path: PathBuf,
    pub version: WitVersion,
    /// SHA-256 of the `.wasm`.
    pub hash: String,
    /// Time to compile (or fetch from the cache) and link.
    pub load_time: Duration,
    pub(crate) pre: VersionedPre,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Which hook to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    Schedule,
    Timer { payload: String },
    Event { kind: String, payload: String },
}

impl Hook {
    pub fn name(&self) -> &'static str {
        match self {
            Hook::Schedule => "on-schedule",
            Hook::Timer { .. } => "on-timer",
            Hook::Event { .. } => "on-event",
        }
    }
}

/// Everything one hook call needs.
pub struct RunInput {
    pub workflow: String,
    pub due_at: DateTime<Utc>,
    /// The workflow's params, as JSON.
    pub params_json: String,
    pub hook: Hook,
    /// The run's community, and only it.
    pub data: Arc<dyn CommunityData>,
    pub kv: Arc<dyn KvRead>,
    /// What `now` returns inside the plugin, and what WASI clocks read.
    pub clock: SharedClock,
    pub limits: Limits,
    /// Sees each intent as the plugin asks for it (the sink's head start on a large run).
    pub observer: Option<Arc<dyn Preparation>>,
}

/// A line a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Why a run failed; nothing it asked for is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The CPU deadline passed (epoch interruption).
    Deadline,
    /// The memory cap was reached.
    Memory,
    /// Too many intents.
    IntentCap,
    /// One intent, kv value or timer payload too large.
    Oversized,
    /// Everything the run handed the host added up to more than `max_run_bytes`.
    RunBytes,
    /// The run would leave the plugin's kv store of this community past its quota.
    KvQuota,
    /// The plugin trapped (a panic, `unreachable`, a bad handle).
    Trap,
    /// The hook returned an error.
    PluginError,
    /// The host could not serve a read (database error).
    Host,
}

impl FailureKind {
    /// The name logs and metrics use, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::IntentCap => "intent_cap",
            FailureKind::Oversized => "oversized",
            FailureKind::RunBytes => "run_bytes",
            FailureKind::KvQuota => "kv_quota",
            FailureKind::Trap => "trap",
            FailureKind::PluginError => "plugin_error",
            FailureKind::Host => "host",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunFailure {
    pub kind: FailureKind,
    /// The plugin's own message where it gave one (its panic message, its error).
    pub message: String,
    /// The wasm backtrace, with function names when the wasm has a name section.
    pub backtrace: Option<String>,
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for RunFailure {}

/// What one hook call did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub plugin: String,
    pub hook: &'static str,
    pub community: String,
    pub result: Result<(), RunFailure>,
    pub intents: Vec<Intent>,
    pub kv_writes: Vec<KvWrite>,
    pub logs: Vec<LogLine>,
    pub elapsed: Duration,
    pub deadline: Duration,
    pub peak_memory: usize,
    pub memory_limit: usize,
}

/// Per-run state the host functions see.
/// Point reads of the kv store a run makes before it reads the whole store at once.
const KV_SNAPSHOT_AFTER: usize = 32;

pub(crate) struct RunCtx {
    pub data: Arc<dyn CommunityData>,
    pub kv: Arc<dyn KvRead>,
    pub plugin: String,
    pub clock: SharedClock,
    pub limits: Limits,
    pub intents: Vec<Intent>,
    pub observer: Option<Arc<dyn Preparation>>,
    pub kv_writes: BTreeMap<String, Option<String>>,
    /// Point reads so far, and the whole (community, plugin) store once they pass
    /// [`KV_SNAPSHOT_AFTER`]: a run over 100,000 bills then makes one query, not 100,000
    /// transactions. Nothing else writes these keys while the run decides (runs of one
    /// workflow in one community never overlap), so the snapshot reads what point reads would.
    pub kv_reads: usize,
    pub kv_snapshot: Option<std::collections::HashMap<String, String>>,
    pub logs: Vec<LogLine>,
    pub log_bytes: usize,
    pub logs_dropped: usize,
    /// Bytes handed to the host so far, held to `max_run_bytes`.
    pub run_bytes: usize,
    /// The kv store as committed before the run (read at its first write) and the change its
    /// writes make to it, held to the kv quota. See [`RunCtx::kv_quota`].
    pub kv_committed: Option<super::data::KvUsage>,
    pub kv_delta: (i64, i64),
    pub kv_exact: bool,
    pub violation: Option<(FailureKind, String)>,
}

impl RunCtx {
    fn violate(&mut self, kind: FailureKind, message: String) -> wasmtime::Error {
        self.violation = Some((kind, message.clone()));
        wasmtime::Error::msg(message)
    }

    fn room_for_one_more(&mut self) -> wasmtime::Result<()> {
        if self.intents.len() + self.kv_writes.len() >= self.limits.max_intents {
            let max = self.limits.max_intents;
            return Err(self.violate(
                FailureKind::IntentCap,
                format!("more than {max} intents in one run (the limit); the run is refused whole"),
            ));
        }
        Ok(())
    }

    /// Counts `len` more bytes handed over as a `what` against `max_run_bytes`: each intent
    /// is held to `max_payload_bytes` and their number to `max_intents`, but without a total a
    /// run could make the host hold the product of the two (640 MiB by default) until it commits.
    fn charge(&mut self, len: usize, what: &str) -> wasmtime::Result<()> {
        self.run_bytes += len;
        if self.run_bytes > self.limits.max_run_bytes {
            let (max, total) = (self.limits.max_run_bytes, self.run_bytes);
            return Err(self.violate(
                FailureKind::RunBytes,
                format!(
                    "the run handed the host {total} bytes with a {what} of {len} bytes: the \
                     limit for one run is {max} bytes (max_run_bytes); the run is refused whole"
                ),
            ));
        }
        Ok(())
    }

    pub fn push(&mut self, mut intent: Intent) -> wasmtime::Result<()> {
        self.room_for_one_more()?;
        if let Intent::SetTimer { at, .. } = &mut intent {
            self.clamp_timer(at);
        }
        let len = intent.payload_len();
        let what = intent.what();
        if len > self.limits.max_payload_bytes {
            let max = self.limits.max_payload_bytes;
            return Err(self.violate(
                FailureKind::Oversized,
                format!("{what} of {len} bytes refused: the limit is {max} bytes"),
            ));
        }
        self.charge(len, what)?;
        if let Some(observer) = &self.observer {
            observer.observe(self.intents.len(), &intent);
        }
        self.intents.push(intent);
        Ok(())
    }

    /// A timer fires between now and the horizon (`ceiling::TIMER_HORIZON_DAYS`): one in the
    /// past fires at once, one past the horizon (year 10000, say) at the horizon, and the run's
    /// log says so. Unbounded times used to be stored as they came and sorted as text, where
    /// `+10000-...` came first and looked due forever.
    fn clamp_timer(&mut self, at: &mut DateTime<Utc>) {
        let now = self.clock.now();
        let horizon = now + chrono::Duration::days(super::ceiling::TIMER_HORIZON_DAYS);
        let asked = *at;
        *at = asked.clamp(now, horizon);
        if *at == horizon && asked > horizon {
            self.log(
                LogLevel::Warn,
                format!(
                    "timer for {asked} set for {horizon} instead: at most {} days ahead",
                    super::ceiling::TIMER_HORIZON_DAYS
                ),
                Vec::new(),
            );
        }
    }

    pub fn kv_get(&mut self, key: &str) -> wasmtime::Result<Option<String>> {
        if let Some(v) = self.kv_writes.get(key) {
            return Ok(v.clone());
        }
        if let Some(all) = &self.kv_snapshot {
            return Ok(all.get(key).cloned());
        }
        self.kv_reads += 1;
        if self.kv_reads == KV_SNAPSHOT_AFTER {
            match self.kv.snapshot(self.data.id(), &self.plugin) {
                Ok(Some(all)) => {
                    let v = all.get(key).cloned();
                    self.kv_snapshot = Some(all);
                    return Ok(v);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(self.violate(FailureKind::Host, format!("kv read failed: {e:#}")));
                }
            }
        }
        match self.kv.get(self.data.id(), &self.plugin, key) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.violate(FailureKind::Host, format!("kv read failed: {e:#}"))),
        }
    }

    pub fn kv_put(&mut self, key: String, value: Option<String>) -> wasmtime::Result<()> {
        if !self.kv_writes.contains_key(&key) {
            self.room_for_one_more()?;
        }
        let len = key.len() + value.as_ref().map_or(0, String::len);
        if len > self.limits.max_payload_bytes {
            let max = self.limits.max_payload_bytes;
            return Err(self.violate(
                FailureKind::Oversized,
                format!("kv value of {len} bytes refused: the limit is {max} bytes"),
            ));
        }
        self.charge(len, "kv write")?;
        let before = self.kv_size_before(&key)?;
        let after = value.as_ref().map(|v| key.len() + v.len());
        self.kv_writes.insert(key, value);
        self.kv_quota(before, after)
    }

    /// The size (key and value) `key` has before a write, as far as the quota knows: its value
    /// written earlier in this run, else, once the quota is counted exactly, its committed one;
    /// `None` where it has none.
    fn kv_size_before(&mut self, key: &str) -> wasmtime::Result<Option<usize>> {
        if let Some(v) = self.kv_writes.get(key) {
            return Ok(v.as_ref().map(|v| key.len() + v.len()));
        }
        if !self.kv_exact {
            return Ok(None);
        }
        Ok(self.kv_committed_value(key)?.map(|v| key.len() + v.len()))
    }

    fn kv_committed_value(&mut self, key: &str) -> wasmtime::Result<Option<String>> {
        if let Some(all) = &self.kv_snapshot {
            return Ok(all.get(key).cloned());
        }
        self.kv
            .get(self.data.id(), &self.plugin, key)
            .map_err(|e| self.violate(FailureKind::Host, format!("kv read failed: {e:#}")))
    }

    /// Holds the store the run would leave to `kv_max_bytes` and `kv_max_keys`, as a write
    /// changes one key from `before` to `after` (sizes, `None`: no such key).
    ///
    /// Counted cheaply first: what is committed plus what the run writes, as if every key were
    /// new (one query at the first write, then arithmetic). Only a run that this puts over the
    /// quota is counted exactly, with the committed value of each key it writes (the whole store
    /// read once), so a healthy plugin rewriting its own keys never pays for it and a hostile one
    /// is refused at the write that crosses the line, naming the size it would reach.
    fn kv_quota(&mut self, before: Option<usize>, after: Option<usize>) -> wasmtime::Result<()> {
        let committed = match self.kv_committed {
            Some(c) => c,
            None => {
                let c = self.kv.usage(self.data.id(), &self.plugin).map_err(|e| {
                    self.violate(FailureKind::Host, format!("kv read failed: {e:#}"))
                })?;
                self.kv_committed = Some(c);
                c
            }
        };
        let size = |s: Option<usize>| s.unwrap_or(0) as i64;
        self.kv_delta.0 += size(after) - size(before);
        self.kv_delta.1 += i64::from(after.is_some()) - i64::from(before.is_some());
        let total = |delta: (i64, i64)| {
            (
                (committed.bytes as i64 + delta.0).max(0) as usize,
                (committed.keys as i64 + delta.1).max(0) as usize,
            )
        };
        let (max_bytes, max_keys) = (self.limits.kv_max_bytes, self.limits.kv_max_keys);
        let (mut bytes, mut keys) = total(self.kv_delta);
        if (bytes > max_bytes || keys > max_keys) && !self.kv_exact {
            self.kv_exact = true;
            if self.kv_snapshot.is_none() {
                match self.kv.snapshot(self.data.id(), &self.plugin) {
                    Ok(all) => self.kv_snapshot = all,
                    Err(e) => {
                        return Err(
                            self.violate(FailureKind::Host, format!("kv read failed: {e:#}"))
                        );
                    }
                }
            }
            let writes: Vec<(String, Option<usize>)> = self
                .kv_writes
                .iter()
                .map(|(k, v)| (k.clone(), v.as_ref().map(|v| k.len() + v.len())))
                .collect();
            let mut delta = (0i64, 0i64);
            for (key, after) in writes {
                let before = self.kv_committed_value(&key)?.map(|v| key.len() + v.len());
                delta.0 += size(after) - size(before);
                delta.1 += i64::from(after.is_some()) - i64::from(before.is_some());
            }
            self.kv_delta = delta;
            (bytes, keys) = total(delta);
        }
        let names = |ctx: &Self| (ctx.plugin.clone(), ctx.data.id().to_string());
        if bytes > max_bytes {
            let (plugin, community) = names(self);
            return Err(self.violate(
                FailureKind::KvQuota,
                format!(
                    "plugin {plugin} would keep {bytes} bytes in community {community}'s kv \
                     store: its quota is {max_bytes} bytes (kv_max_bytes); the run is refused whole"
                ),
            ));
        }
        if keys > max_keys {
            let (plugin, community) = names(self);
            return Err(self.violate(
                FailureKind::KvQuota,
                format!(
                    "plugin {plugin} would keep {keys} keys in community {community}'s kv store: \
                     its quota is {max_keys} keys (kv_max_keys); the run is refused whole"
                ),
            ));
        }
        Ok(())
    }

    /// Keeps the run's log within `max_log_bytes`, fields included: a line that does not fit is
    /// cut with a visible marker (its message first, then its fields), later lines are counted
    /// and reported as dropped.
    pub fn log(&mut self, level: LogLevel, mut message: String, fields: Vec<(String, String)>) {
        let mut left = self.limits.max_log_bytes.saturating_sub(self.log_bytes);
        if left == 0 {
            self.logs_dropped += 1;
            return;
        }
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if size <= left {
            self.log_bytes += size;
            self.logs.push(LogLine {
                level,
                message,
                fields,
            });
            return;
        }
        let dropped = size - left;
        let cut_to = |text: &mut String, left: &mut usize| {
            let mut cut = (*left).min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            *left -= cut;
        };
        cut_to(&mut message, &mut left);
        let mut kept = Vec::new();
        for (key, mut value) in fields {
            if left <= key.len() {
                break;
            }
            left -= key.len();
            cut_to(&mut value, &mut left);
            kept.push((key, value));
        }
        message.push_str(&format!(" …[truncated {dropped} bytes: log limit]"));
        self.log_bytes = self.limits.max_log_bytes;
        self.logs.push(LogLine {
            level,
            message,
            fields: kept,
        });
    }

    /// `host.log`: [`RunCtx::log`], the bytes it keeps counted towards `max_run_bytes`. (What
    /// the plugin prints is held by its pipes, each within `max_log_bytes`, and read after the
    /// hook returns.)
    pub fn log_from_plugin(
        &mut self,
        level: LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let before = self.log_bytes;
        self.log(level, message, fields);
        let kept = self.log_bytes - before;
        self.charge(kept, "log line")
    }

    pub fn host_err(&mut self, e: anyhow::Error) -> wasmtime::Error {
        self.violate(FailureKind::Host, format!("host read failed: {e:#}"))
    }
}

/// Caps linear memory and remembers the peak.
pub(crate) struct MemLimiter {
    cap: usize,
    peak: usize,
    hit: Option<usize>,
}

impl wasmtime::ResourceLimiter for MemLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = Some(desired);
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The store's data.
pub struct RunState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    limiter: MemLimiter,
    pub(crate) ctx: RunCtx,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// WASI's wall clock is the daemon's clock, so a simulation's plugins see virtual time.
struct WallClock(SharedClock);

impl wasmtime_wasi::HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        let ms = self.0.now().timestamp_millis().max(0) as u64;
        Duration::from_millis(ms)
    }
}

/// A run's captured stdout and stderr.
struct Output {
    stdout: CappedPipe,
    stderr: CappedPipe,
}

impl Output {
    /// Adds what the plugin printed to its run's log, a line at a time and within the same log
    /// budget as `host.log`, so `plugin test`, `simulate` and the daemon's log show it.
    fn log_into(&self, ctx: &mut RunCtx) {
        for (name, pipe, level) in [
            ("stdout", &self.stdout, LogLevel::Info),
            ("stderr", &self.stderr, LogLevel::Warn),
        ] {
            let (text, dropped) = pipe.contents();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                ctx.log(level, format!("[{name}] {line}"), Vec::new());
            }
            if dropped > 0 {
                ctx.log(
                    LogLevel::Warn,
                    format!("[{name}] …[{dropped} more bytes not kept: log limit]"),
                    Vec::new(),
                );
            }
        }
    }
}

/// A fixed seed: plugins that want randomness get the same sequence on a replay.
const RANDOM_SEED: u128 = 0x7775_7965;

struct Slot {
    plugin: Arc<LoadedPlugin>,
    stamp: (SystemTime, u64),
    /// A newer file that failed to load, so it is not retried on every run.
    rejected: Option<(SystemTime, u64)>,
}

/// A plugin file's modification time and size: what [`PluginHost::get`] watches.
fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}

/// What re-reading one plugin file did.
#[derive(Debug)]
pub enum Reload {
    /// Not loaded before; now it is.
    Loaded(Arc<LoadedPlugin>),
    /// The content changed and the new version now runs.
    Reloaded(Arc<LoadedPlugin>),
    /// Same content as the running version.
    Unchanged(Arc<LoadedPlugin>),
    /// The file changed but cannot be used; the previous version keeps running.
    Kept {
        running: Arc<LoadedPlugin>,
        error: LoadError,
    },
    /// Cannot be used and there is no previous version: runs that need it fail.
    Failed(LoadError),
}

/// The plugin host: one per daemon.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<RunState>,
    plugins: Mutex<HashMap<PathBuf, Slot>>,
    stop: Arc<AtomicBool>,
    pub pooling: bool,
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn engine_config(opts: &HostOptions, pooling: bool) -> anyhow::Result<wasmtime::Config> {
    let mut cfg = wasmtime::Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    // Hooks are plain synchronous calls. With concurrency support on (wasmtime's default), every
    // call and every instantiation also sets up and tears down a guest task for the async
    // component model: about a third of a hook call (the plugin bench, docs/BENCHMARKS.md).
    cfg.concurrency_support(false);
    if let Some(dir) = &opts.cache_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create plugin cache {}: {e}", dir.display()))?;
        let mut cc = wasmtime::CacheConfig::new();
        cc.with_directory(dir);
        cfg.cache(Some(wasmtime::Cache::new(cc)?));
    }
    if pooling {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        // Enough concurrent instances for a busy daemon on a small machine; each memory slot
        // reserves address space, not RAM.
        pool.total_component_instances(128)
            .total_core_instances(1024)
            .total_memories(256)
            .total_tables(1024)
            .total_stacks(128)
            .max_memories_per_component(8)
            .max_tables_per_component(16)
            .max_core_instances_per_component(32)
            .max_memory_size((super::ceiling::MEMORY_MIB as usize) * 1024 * 1024)
            // A reused slot is reset in place (the image copied back, the rest zeroed) rather
            // than by madvise, up to 2 MiB of it: a small plugin touches about 1 MiB, and a
            // syscall plus page faults per run cost more than the copy. PAGEMAP_SCAN (Linux 6.7+,
            // ignored elsewhere) narrows that to the pages the run actually wrote; without it
            // the whole first 2 MiB (the guest's 1 MiB stack, its data) was reset on every run,
            // half of a fresh run's time.
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        cfg.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    Ok(cfg)
}

impl PluginHost {
    pub fn new(opts: HostOptions) -> anyhow::Result<PluginHost> {
        let (engine, pooling) = match opts.pooling {
            true => match Engine::new(&engine_config(&opts, true)?) {
                Ok(e) => (e, true),
                Err(e) => {
                    tracing::warn!(error = %e, "pooling allocator unavailable; allocating plugin instances on demand");
                    (Engine::new(&engine_config(&opts, false)?)?, false)
                }
            },
            false => (Engine::new(&engine_config(&opts, false)?)?, false),
        };
        let mut linker = Linker::<RunState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        sandbox_io::shadow_blocking_wasi(&mut linker)?;
        wit::add_to_linker(&mut linker)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let ticker_stop = stop.clone();
        std::thread::Builder::new()
            .name("wuye-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => return,
                    }
                }
            })?;
        Ok(PluginHost {
            engine,
            linker,
            plugins: Mutex::new(HashMap::new()),
            stop,
            pooling,
        })
    }

    /// Compiles, checks and links a plugin file without keeping it.
    pub fn check(&self, path: &Path) -> Result<LoadedPlugin, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.compile(path, &bytes)
    }

    fn compile(&self, path: &Path, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        let started = Instant::now();
        let component = Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        })?;
        let version = wit::detect(&self.engine, &component, path)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                path: path.to_path_buf(),
                message: format!("{e:#}"),
            })?;
        let pre = VersionedPre::new(version, pre).map_err(|e| LoadError::Link {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        })?;
        Ok(LoadedPlugin {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.to_path_buf(),
            version,
            hash: hex::encode(Sha256::digest(bytes)),
            load_time: started.elapsed(),
            pre,
        })
    }

    /// The plugin at `path`, loading it on first use and reloading it when the file changed
    /// (its modification time or size). A changed file that fails to load keeps the previous
    /// version running (and says why once).
    pub fn get(&self, path: &Path) -> Result<Arc<LoadedPlugin>, LoadError> {
        let stamp = file_stamp(path);
        {
            let plugins = self.plugins.lock().expect("plugin map poisoned");
            if let Some(slot) = plugins.get(path)
                && (stamp.is_none() || stamp == Some(slot.stamp) || stamp == slot.rejected)
            {
                return Ok(slot.plugin.clone());
            }
        }
        match self.refresh(path) {
            Reload::Loaded(p) | Reload::Unchanged(p) => Ok(p),
            Reload::Reloaded(p) => {
                tracing::info!(plugin = %p.name, path = %path.display(), version = %p.version, "plugin changed on disk: reloaded");
                Ok(p)
            }
            Reload::Kept { running, error } => {
                tracing::warn!(path = %path.display(), error = %error, "changed plugin failed to load; keeping the previous version");
                Ok(running)
            }
            Reload::Failed(e) => Err(e),
        }
    }

    /// Re-reads every file in `paths` now, whatever its modification time says (SIGHUP), and
    /// forgets loaded plugins no longer listed. Each file is compared by content: a new one is
    /// compiled (or fetched from the disk cache) and replaces the running version; one that fails
    /// to load leaves the previous version running.
    pub fn reload(&self, paths: &[PathBuf]) -> Vec<(PathBuf, Reload)> {
        let wanted: BTreeSet<&PathBuf> = paths.iter().collect();
        self.plugins
            .lock()
            .expect("plugin map poisoned")
            .retain(|path, _| wanted.contains(path));
        wanted
            .into_iter()
            .map(|path| (path.clone(), self.refresh(path)))
            .collect()
    }

    /// Reads `path` and makes its content the running version if it differs and loads.
    fn refresh(&self, path: &Path) -> Reload {
        // The stamp is taken before reading, so a write racing with the read is seen next time.
        let stamp = file_stamp(path);
        let read = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        });
        let mut plugins = self.plugins.lock().expect("plugin map poisoned");
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(error) => {
                return match plugins.get(path) {
                    Some(slot) => Reload::Kept {
                        running: slot.plugin.clone(),
                        error,
                    },
                    None => Reload::Failed(error),
                };
            }
        };
        let stamp = stamp.unwrap_or((SystemTime::UNIX_EPOCH, bytes.len() as u64));
        let hash = hex::encode(Sha256::digest(&bytes));
        if let Some(slot) = plugins.get_mut(path)
            && slot.plugin.hash == hash
        {
            slot.stamp = stamp;
            slot.rejected = None;
            return Reload::Unchanged(slot.plugin.clone());
        }
        match self.compile(path, &bytes) {
            Ok(p) => {
                let p = Arc::new(p);
                let slot = Slot {
                    plugin: p.clone(),
                    stamp,
                    rejected: None,
                };
                match plugins.insert(path.to_path_buf(), slot) {
                    Some(_) => Reload::Reloaded(p),
                    None => Reload::Loaded(p),
                }
            }
            Err(error) => match plugins.get_mut(path) {
                Some(slot) => {
                    slot.rejected = Some(stamp);
                    Reload::Kept {
                        running: slot.plugin.clone(),
                        error,
                    }
                }
                None => Reload::Failed(error),
            },
        }
    }

    fn store(&self, plugin: &LoadedPlugin, input: &RunInput) -> (Store<RunState>, Output) {
        let limits = input.limits;
        // Each keeps at most the run's log budget; what a plugin prints becomes its log lines.
        let output = Output {
            stdout: CappedPipe::new(limits.max_log_bytes.max(4096)),
            stderr: CappedPipe::new(limits.max_log_bytes.max(4096)),
        };
        let wasi = WasiCtxBuilder::new()
            .stdout(output.stdout.clone())
            .stderr(output.stderr.clone())
            .wall_clock(WallClock(input.clock.clone()))
            .insecure_random_seed(RANDOM_SEED)
            .build();
        let state = RunState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemLimiter {
                cap: limits.memory_bytes,
                peak: 0,
                hit: None,
            },
            ctx: RunCtx {
                data: input.data.clone(),
                kv: input.kv.clone(),
                plugin: plugin.name.clone(),
                clock: input.clock.clone(),
                limits,
                intents: Vec::new(),
                observer: input.observer.clone(),
                kv_writes: BTreeMap::new(),
                kv_reads: 0,
                kv_snapshot: None,
                logs: Vec::new(),
                log_bytes: 0,
                logs_dropped: 0,
                run_bytes: 0,
                kv_committed: None,
                kv_delta: (0, 0),
                kv_exact: false,
                violation: None,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(limits.deadline_ticks());
        store.epoch_deadline_trap();
        (store, output)
    }

    /// An instance kept alive across calls. Production never does this (a run gets a fresh
    /// instance, so nothing leaks between runs and a trap cannot poison the next one); the
    /// benchmarks use it to measure the bare cost of a hook call.
    #[doc(hidden)]
    pub fn session(&self, plugin: &LoadedPlugin, input: RunInput) -> anyhow::Result<Session> {
        let (mut store, _) = self.store(plugin, &input);
        let instance = plugin.pre.instantiate(&mut store)?;
        Ok(Session {
            store,
            instance,
            meta: wit::RunMeta {
                community: input.data.id().to_string(),
                workflow: input.workflow,
                due_at: input.due_at,
                params_json: input.params_json,
            },
            ticks: input.limits.deadline_ticks(),
        })
    }

    /// Runs one hook in a fresh instance. Blocking: call it from `spawn_blocking`.
    pub fn run(&self, plugin: &LoadedPlugin, input: RunInput) -> RunReport {
        let limits = input.limits;
        let community = input.data.id().to_string();
        let (mut store, output) = self.store(plugin, &input);
        let meta = wit::RunMeta {
            community: community.clone(),
            workflow: input.workflow,
            due_at: input.due_at,
            params_json: input.params_json,
        };
        let started = Instant::now();
        let outcome = plugin.pre.call(&mut store, &meta, &input.hook);
        let elapsed = started.elapsed();

        let state = store.into_data();
        let mut ctx = state.ctx;
        let (stderr, _) = output.stderr.contents();
        output.log_into(&mut ctx);
        if ctx.logs_dropped > 0 {
            ctx.logs.push(LogLine {
                level: LogLevel::Warn,
                message: format!(
                    "[log limit of {} bytes reached: {} more lines dropped]",
                    limits.max_log_bytes, ctx.logs_dropped
                ),
                fields: Vec::new(),
            });
        }
        let result = match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RunFailure {
                kind: FailureKind::PluginError,
                message: e,
                backtrace: None,
            }),
            Err(e) => Err(classify(
                e,
                ctx.violation.take(),
                state.limiter.hit,
                &limits,
                &stderr,
            )),
        };
        let (intents, kv_writes) = match result {
            Ok(()) => (
                ctx.intents,
                ctx.kv_writes
                    .into_iter()
                    .map(|(key, value)| KvWrite { key, value })
                    .collect(),
            ),
            // A failed run asked for nothing.
            Err(_) => (Vec::new(), Vec::new()),
        };
        RunReport {
            plugin: plugin.name.clone(),
            hook: input.hook.name(),
            community,
            result,
            intents,
            kv_writes,
            logs: ctx.logs,
            elapsed,
            deadline: limits.deadline,
            peak_memory: state.limiter.peak,
            memory_limit: limits.memory_bytes,
        }
    }
}

#[doc(hidden)]
pub struct Session {
    store: Store<RunState>,
    instance: wit::VersionedInstance,
    meta: wit::RunMeta,
    ticks: u64,
}

impl Session {
    /// Calls a hook on the live instance; intents accumulate and are discarded.
    pub fn call(&mut self, hook: &Hook) -> anyhow::Result<Result<(), String>> {
        self.store.set_epoch_deadline(self.ticks);
        let ctx = &mut self.store.data_mut().ctx;
        ctx.intents.clear();
        // Each call is a run of its own for the run's byte total.
        ctx.run_bytes = 0;
        Ok(self.instance.call(&mut self.store, &self.meta, hook)?)
    }
}

/// Names a trap after its cause: a limit the host saw, the epoch deadline, or the plugin's own
/// panic message (read from its stderr).
fn classify(
    e: wasmtime::Error,
    violation: Option<(FailureKind, String)>,
    memory_hit: Option<usize>,
    limits: &Limits,
    stderr: &str,
) -> RunFailure {
    let backtrace = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| bt.to_string())
        .filter(|s| !s.trim().is_empty());
    if let Some((kind, message)) = violation {
        return RunFailure {
            kind,
            message,
            backtrace,
        };
    }
    if matches!(
        e.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    ) {
        return RunFailure {
            kind: FailureKind::Deadline,
            message: format!(
                "stopped after the CPU deadline of {} ms",
                limits.deadline.as_millis()
            ),
            backtrace,
        };
    }
    if let Some(wanted) = memory_hit {
        return RunFailure {
            kind: FailureKind::Memory,
            message: format!(
                "memory limit of {} MiB reached (the plugin asked for {} MiB)",
                limits.memory_bytes / (1024 * 1024),
                wanted.div_ceil(1024 * 1024)
            ),
            backtrace,
        };
    }
    // The guest's stack lives in its own linear memory (Rust's shadow stack) and on wasm's
    // call stack: runaway recursion exhausts one or runs off the bottom of the other.
    let stack = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::StackOverflow) => {
            Some("stack overflow: the plugin's call stack is exhausted (runaway recursion?)")
        }
        Some(wasmtime::Trap::MemoryOutOfBounds) => Some(
            "out of bounds memory access: the plugin ran off its memory (a stack overflowed by \
             runaway recursion, or a bad pointer)",
        ),
        _ => None,
    };
    if let Some(message) = stack {
        return RunFailure {
            kind: FailureKind::Trap,
            message: message.to_string(),
            backtrace,
        };
    }
    // A Rust panic prints "thread '...' panicked at src/lib.rs:3:5:\n<message>\nnote: ..."
    // before trapping: that message is the plugin's own account of what went wrong.
    let panic = stderr.split_once("panicked at ").map(|(_, rest)| {
        let mut lines = rest.lines();
        let place = lines.next().unwrap_or("").trim_end_matches(':').to_string();
        let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note: ")).collect();
        format!("{}: {place}", message.join(" ").trim())
    });
    RunFailure {
        kind: FailureKind::Trap,
        message: match panic {
            Some(p) => format!("panicked: {p}"),
            None => e.root_cause().to_string(),
        },
        backtrace,
    }
}
