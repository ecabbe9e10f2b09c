//! [`PluginExecutor`]: the scheduler's [`Executor`] backed by plugins.
//!
//! A run loads (or hot-reloads) its workflow's plugin, calls the hook for its trigger in a fresh
//! sandbox on a blocking thread, and turns what the plugin asked for into [`Effects`]: kv writes
//! (store/plugin_kv.rs) and intents (through the [`IntentSink`]), applied by the scheduler in the
//! transaction that marks the run done. Nothing happens before that commit.
//!
//! A failed run (trap, limit, plugin error) fails that run only, logged with plugin, hook, the
//! plugin's own message and the wasm backtrace. After `plugins.pause_after_failures` failures in
//! a row the workflow is paused for that community, and that last run completes with effects that
//! record the pause and tell the workflow's staff (its `notifies` roles, else the manager), rather
//! than failing forever. A paused workflow is refused until resumed or until its plugin changes.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use super::data::{DataSource, KvRead};
use super::host::{Hook, LogLevel, PluginHost, Reload, RunInput, RunReport};
use super::intent::{Intent, IntentSink, Preparation, StaffNotice};
use super::{Limits, PluginSettings};
use wuye_config::{Role, Settings};
use wuye_core::blocking::Blocking;
use wuye_core::clock::SharedClock;
use wuye_scheduler::{EffectSummary, Effects, Executor, RunRequest, Trigger};

/// A run refused because its workflow is paused for its community.
#[derive(Debug, thiserror::Error)]
#[error("workflow {workflow} is paused for community {community} after repeated plugin failures")]
pub struct Paused {
    pub community: String,
    pub workflow: String,
}

type Key = (String, String);

/// Runs workflows' plugins for the scheduler. Cheap to share: state sits behind an `Arc`, and a
/// clone is the same executor.
#[derive(Clone)]
pub struct PluginExecutor {
    inner: Arc<Inner>,
    blocking: Blocking,
}

struct Inner {
    host: Arc<PluginHost>,
    data: Arc<dyn DataSource>,
    kv: Arc<dyn KvRead>,
    sink: Arc<dyn IntentSink>,
    clock: SharedClock,
    settings: PluginSettings,
    streaks: Mutex<HashMap<Key, u32>>,
    /// Paused (community, workflow) → plugin hash at the time, so a new plugin file resumes it.
    paused: Mutex<HashMap<Key, String>>,
    resumed_by_reload: Mutex<HashSet<Key>>,
}

impl PluginExecutor {
    pub fn new(
        host: Arc<PluginHost>,
        data: Arc<dyn DataSource>,
        kv: Arc<dyn KvRead>,
        sink: Arc<dyn IntentSink>,
        clock: SharedClock,
        settings: PluginSettings,
    ) -> Self {
        PluginExecutor {
            inner: Arc::new(Inner::new(host, data, kv, sink, clock, settings)),
            blocking: Blocking::Pool,
        }
    }

    /// Where plugins run (`wuyed simulate`: in place; see [`Blocking`]).
    pub fn with_blocking(mut self, blocking: Blocking) -> Self {
        self.blocking = blocking;
        self
    }

    /// Marks a workflow paused (at startup, from `Tx::plugin_paused`).
    pub fn set_paused(&self, community: &str, workflow: &str) {
        self.inner.set_paused(community, workflow)
    }

    /// Lets a paused workflow run again (after `Tx::plugin_resume`).
    pub fn resume(&self, community: &str, workflow: &str) {
        self.inner.resume(community, workflow)
    }

    pub fn is_paused(&self, community: &str, workflow: &str) -> bool {
        self.inner.is_paused(community, workflow)
    }

    /// Re-reads every plugin file `settings` configures, now (SIGHUP), rather than at each one's
    /// next run: logs each that was reloaded, and each that failed to load with the reason and
    /// whether its previous version keeps running. Blocking (a changed plugin is compiled).
    pub fn reload_plugins(&self, settings: &Settings) -> ReloadSummary {
        let paths: Vec<PathBuf> = settings
            .communities
            .iter()
            .flat_map(|c| c.workflows.iter().map(|w| w.plugin_path.clone()))
            .collect();
        let mut summary = ReloadSummary::default();
        for (path, outcome) in self.inner.host.reload(&paths) {
            match outcome {
                Reload::Unchanged(_) => summary.unchanged += 1,
                Reload::Loaded(p) => {
                    summary.loaded += 1;
                    tracing::info!(plugin = %p.name, path = %path.display(), version = %p.version, "plugin loaded");
                }
                Reload::Reloaded(p) => {
                    summary.reloaded += 1;
                    tracing::info!(plugin = %p.name, path = %path.display(), version = %p.version, "plugin reloaded");
                }
                Reload::Kept { error, .. } => {
                    summary.failed += 1;
                    tracing::warn!(path = %path.display(), error = %error, "plugin failed to load; keeping the previous version");
                }
                Reload::Failed(error) => {
                    summary.failed += 1;
                    tracing::error!(path = %path.display(), error = %error, "plugin failed to load; its workflows fail until it is fixed");
                }
            }
        }
        tracing::info!(
            loaded = summary.loaded,
            reloaded = summary.reloaded,
            unchanged = summary.unchanged,
            failed = summary.failed,
            "plugin files re-read"
        );
        summary
    }
}

/// What a reload did with the configured plugin files: loaded for the first time (none of their
/// workflows had run yet), reloaded because their content changed, unchanged, or unusable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReloadSummary {
    pub loaded: usize,
    pub reloaded: usize,
    pub unchanged: usize,
    pub failed: usize,
}

impl Inner {
    fn new(
        host: Arc<PluginHost>,
        data: Arc<dyn DataSource>,
        kv: Arc<dyn KvRead>,
        sink: Arc<dyn IntentSink>,
        clock: SharedClock,
        settings: PluginSettings,
    ) -> Self {
        Inner {
            host,
            data,
            kv,
            sink,
            clock,
            settings,
            streaks: Mutex::new(HashMap::new()),
            paused: Mutex::new(HashMap::new()),
            resumed_by_reload: Mutex::new(HashSet::new()),
        }
    }

    fn set_paused(&self, community: &str, workflow: &str) {
        self.paused
            .lock()
            .expect("poisoned")
            .insert((community.to_string(), workflow.to_string()), String::new());
    }

    fn resume(&self, community: &str, workflow: &str) {
        let key = (community.to_string(), workflow.to_string());
        self.paused.lock().expect("poisoned").remove(&key);
        self.streaks.lock().expect("poisoned").remove(&key);
    }

    fn is_paused(&self, community: &str, workflow: &str) -> bool {
        self.paused
            .lock()
            .expect("poisoned")
            .contains_key(&(community.to_string(), workflow.to_string()))
    }

    fn run_blocking(
        &self,
        run: &RunRequest,
        observer: Option<Arc<dyn Preparation>>,
    ) -> anyhow::Result<RunReport> {
        let plugin = self.host.get(&run.workflow.plugin_path)?;
        let key = (run.community.id.clone(), run.workflow.name.clone());
        {
            let mut paused = self.paused.lock().expect("poisoned");
            if let Some(hash) = paused.get(&key) {
                if !hash.is_empty() && *hash != plugin.hash {
                    // The operator shipped a new plugin: give it a chance.
                    paused.remove(&key);
                    self.resumed_by_reload
                        .lock()
                        .expect("poisoned")
                        .insert(key.clone());
                    self.streaks.lock().expect("poisoned").remove(&key);
                } else {
                    return Err(Paused {
                        community: key.0,
                        workflow: key.1,
                    }
                    .into());
                }
            }
        }
        let limits = Limits::resolve(&self.settings, run.community.limits.as_ref())
            .map_err(|e| anyhow::anyhow!("{}: {}", run.community.file.display(), e.join("; ")))?;
        let hook = match &run.trigger {
            Trigger::Schedule => Hook::Schedule,
            Trigger::Timer { payload, .. } => Hook::Timer {
                payload: payload.clone(),
            },
            Trigger::Event { kind, payload } => Hook::Event {
                kind: kind.clone(),
                payload: payload.clone(),
            },
        };
        let input = RunInput {
            workflow: run.workflow.name.clone(),
            due_at: run.due_at,
            params_json: serde_json::to_string(&run.workflow.params)?,
            hook,
            data: self.data.community(&run.community.id)?,
            kv: self.kv.clone(),
            clock: self.clock.clone(),
            limits,
            observer,
        };
        Ok(self.host.run(&plugin, input))
    }

    fn emit_logs(report: &RunReport, run: &RunRequest) {
        for line in &report.logs {
            let fields = line
                .fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let (p, c, w, m) = (
                &report.plugin,
                &run.community.id,
                &run.workflow.name,
                &line.message,
            );
            match line.level {
                LogLevel::Error => {
                    tracing::error!(plugin = %p, community = %c, workflow = %w, run = run.run_id, %fields, "{m}")
                }
                LogLevel::Warn => {
                    tracing::warn!(plugin = %p, community = %c, workflow = %w, run = run.run_id, %fields, "{m}")
                }
                LogLevel::Info => {
                    tracing::info!(plugin = %p, community = %c, workflow = %w, run = run.run_id, %fields, "{m}")
                }
                LogLevel::Debug => {
                    tracing::debug!(plugin = %p, community = %c, workflow = %w, run = run.run_id, %fields, "{m}")
                }
                LogLevel::Trace => {
                    tracing::trace!(plugin = %p, community = %c, workflow = %w, run = run.run_id, %fields, "{m}")
                }
            }
        }
    }

    fn fail(&self, run: RunRequest, hook: &str, error: anyhow::Error) -> anyhow::Result<Effects> {
        let key = (run.community.id.clone(), run.workflow.name.clone());
        if error.downcast_ref::<Paused>().is_some() {
            return Err(error);
        }
        let backtrace = error
            .downcast_ref::<super::RunFailure>()
            .and_then(|f| f.backtrace.clone())
            .unwrap_or_default();
        tracing::error!(
            community = %run.community.id,
            workflow = %run.workflow.name,
            plugin = %run.workflow.plugin_path.display(),
            hook,
            run = run.run_id,
            backtrace = %backtrace,
            "plugin run failed: {error:#}"
        );
        let streak = {
            let mut streaks = self.streaks.lock().expect("poisoned");
            let s = streaks.entry(key.clone()).or_insert(0);
            *s += 1;
            *s
        };
        if streak < self.settings.pause_after_failures.max(1) {
            return Err(error);
        }
        let hash = self
            .host
            .get(&run.workflow.plugin_path)
            .map(|p| p.hash.clone())
            .unwrap_or_default();
        self.paused
            .lock()
            .expect("poisoned")
            .insert(key.clone(), hash);
        self.streaks.lock().expect("poisoned").remove(&key);
        let message = format!("{error:#}");
        tracing::warn!(community = %key.0, workflow = %key.1, streak, "workflow paused after {streak} failed runs in a row; staff notified");
        let roles = if run.workflow.notifies.is_empty() {
            vec![Role::Manager]
        } else {
            run.workflow.notifies.clone()
        };
        let notices: Vec<Intent> = roles
            .into_iter()
            .map(|role| {
                Intent::NotifyStaff(StaffNotice {
                    role,
                    template: "workflow-paused".to_string(),
                    vars: vec![
                        ("workflow".to_string(), key.1.clone()),
                        ("failures".to_string(), streak.to_string()),
                        ("error".to_string(), message.clone()),
                    ],
                    step: "paused".to_string(),
                })
            })
            .collect();
        let sink = self.sink.clone();
        let at = self.clock.now();
        Ok(Box::new(move |tx| {
            tx.plugin_pause(&key.0, &key.1, streak, &message, at)?;
            let mut summary = sink.apply(tx, &run, &notices, None)?;
            summary.notes.push(format!(
                "plugin failed {streak} times in a row ({message}); workflow paused for this community"
            ));
            Ok(summary)
        }))
    }
}

impl Executor for PluginExecutor {
    fn execute(
        &self,
        run: RunRequest,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Effects>> + Send + '_>> {
        Box::pin(async move {
            let hook = match run.trigger {
                Trigger::Schedule => "on-schedule",
                Trigger::Timer { .. } => "on-timer",
                Trigger::Event { .. } => "on-event",
            };
            let inner = self.inner.clone();
            // The sink may render a large run's messages on a second thread while the plugin
            // decides. Not in place (`wuyed simulate`): there every core already runs a part.
            let preparation = match self.blocking {
                Blocking::Pool => inner.sink.prepare(&run),
                Blocking::InPlace => None,
            };
            let (run, report, prepared) = self
                .blocking
                .run(move || {
                    let report = inner.run_blocking(&run, preparation.clone());
                    let prepared = preparation.and_then(|p| match &report {
                        Ok(r) if r.result.is_ok() => Some(p.finish()),
                        _ => {
                            p.abandon();
                            None
                        }
                    });
                    (run, report, prepared)
                })
                .await
                .map_err(|panic| anyhow::anyhow!("the plugin host {panic}"))?;
            let inner = &self.inner;
            let report = match report {
                Ok(r) => r,
                Err(e) => return inner.fail(run, hook, e),
            };
            Inner::emit_logs(&report, &run);
            if let Err(failure) = report.result {
                wuye_metrics::plugin_failed(
                    &run.community.id,
                    &run.workflow.name,
                    failure.kind.as_str(),
                );
                let name = report.plugin.clone();
                return inner.fail(
                    run,
                    hook,
                    anyhow::Error::new(failure).context(format!("plugin {name}, hook {hook}")),
                );
            }
            let key = (run.community.id.clone(), run.workflow.name.clone());
            inner.streaks.lock().expect("poisoned").remove(&key);
            let resumed = inner
                .resumed_by_reload
                .lock()
                .expect("poisoned")
                .remove(&key);
            let sink = inner.sink.clone();
            let at = inner.clock.now();
            let (plugin, intents, kv) = (report.plugin, report.intents, report.kv_writes);
            Ok(Box::new(move |tx: &wuye_store::Tx<'_>| {
                tx.plugin_kv_apply(&key.0, &plugin, &kv, at)?;
                tx.plugin_clear_failures(&key.0, &key.1)?;
                if resumed {
                    tx.plugin_resume(&key.0, &key.1)?;
                }
                // What the sink refuses (another community's ids, too many pending timers)
                // fails the run as the sandbox's limits do: naming the plugin and its hook.
                let mut summary = if intents.is_empty() {
                    EffectSummary::default()
                } else {
                    sink.apply(tx, &run, &intents, prepared)
                        .map_err(|e| e.context(format!("plugin {plugin}, hook {hook}")))?
                };
                if !kv.is_empty() {
                    summary.notes.push(format!("{} kv write(s)", kv.len()));
                }
                Ok(summary)
            }) as Effects)
        })
    }
}
