//! One host binding per supported WIT version, like Zed's extension host.
//!
//! Every released `wuye:plugin@X.Y.Z` world in `plugin-sdk/wit/since_vX.Y.Z/` gets a module here
//! with its own `bindgen!` output. The host's own types ([`super::data`], [`super::intent`]) are
//! the current ones; each module adapts its generated types to them, so the rest of the daemon
//! never sees a version. A plugin's version is read from what it exports
//! (`wuye:plugin/hooks@X.Y.Z`); a version newer than any known is refused with the list of
//! supported ones. The host-function bodies are shared through `host_impl!`, because a new
//! version adds to the world and everything that existed before behaves the same, with one
//! difference per version: what it may be handed (`compat::Vocabulary`). A ticket kind or an
//! event kind added after a world was superseded never reaches its plugins.

use std::path::Path;

use chrono::{DateTime, Utc};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker};

use super::host::{Hook, LoadError, RunState};

pub mod compat;
pub mod since_v0_1_0;
pub mod since_v0_2_0;
pub mod since_v0_3_0;

/// Versions this host loads, oldest first.
pub const SUPPORTED_VERSIONS: &[WitVersion] =
    &[WitVersion::V0_1_0, WitVersion::V0_2_0, WitVersion::V0_3_0];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum WitVersion {
    V0_1_0,
    V0_2_0,
    V0_3_0,
}

impl WitVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1_0 => "0.1.0",
            WitVersion::V0_2_0 => "0.2.0",
            WitVersion::V0_3_0 => "0.3.0",
        }
    }

    pub fn parse(s: &str) -> Option<WitVersion> {
        SUPPORTED_VERSIONS.iter().copied().find(|v| v.as_str() == s)
    }

    /// The values this world may be handed; each version module says which and why.
    pub(crate) fn vocabulary(self) -> compat::Vocabulary {
        match self {
            WitVersion::V0_1_0 => since_v0_1_0::VOCABULARY,
            WitVersion::V0_2_0 => since_v0_2_0::VOCABULARY,
            WitVersion::V0_3_0 => since_v0_3_0::VOCABULARY,
        }
    }
}

impl std::fmt::Display for WitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `community.is-workday` (since 0.2.0): `None` for a date that is not `YYYY-MM-DD` or a
/// community without a calendar.
pub(crate) fn is_workday(data: &dyn super::data::CommunityData, date: &str) -> Option<bool> {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .and_then(|d| data.is_workday(d))
}

/// The marker type behind the `community` resource: a run's store holds one, for its community.
pub struct CommunityHandle;

/// What a hook is told about its run, before adaptation to a version's `run` record.
pub(crate) struct RunMeta {
    pub community: String,
    pub workflow: String,
    pub due_at: DateTime<Utc>,
    pub params_json: String,
}

const HOOKS_PREFIX: &str = "wuye:plugin/hooks@";

/// Reads the WIT version a component was built against from its exported hooks interface.
pub(crate) fn detect(
    engine: &wasmtime::Engine,
    component: &Component,
    path: &Path,
) -> Result<WitVersion, LoadError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    version_of_exports(&exports, path)
}

/// What `detect` reads, from the component's bytes without compiling it: the names of its
/// top-level exports, parsed with `wasmparser` as `plugin::manifest` reads its declaration.
/// For `wuyed check`'s warnings, which need a plugin's world but not a running plugin; both go
/// through one reading of the names, so they agree (tested on the built plugins). Anything that
/// is not a component (a core module, a file that is not wasm) exports nothing, so is not a
/// plugin.
pub fn detect_bytes(bytes: &[u8], path: &Path) -> Result<WitVersion, LoadError> {
    let mut exports = Vec::new();
    // Nested modules and components come inline; only the outer component's exports count.
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        match payload {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) if depth == 0 => break,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader.into_iter().flatten() {
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    version_of_exports(&exports, path)
}

/// The version in the first `wuye:plugin/hooks@X.Y.Z` of a component's export names.
fn version_of_exports(exports: &[String], path: &Path) -> Result<WitVersion, LoadError> {
    let Some(found) = exports.iter().find_map(|n| n.strip_prefix(HOOKS_PREFIX)) else {
        return Err(LoadError::NotAPlugin {
            path: path.to_path_buf(),
            exports: if exports.is_empty() {
                "none".to_string()
            } else {
                exports.join(", ")
            },
        });
    };
    WitVersion::parse(found).ok_or_else(|| LoadError::Unsupported {
        path: path.to_path_buf(),
        found: found.to_string(),
        supported: SUPPORTED_VERSIONS
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Adds every supported version's host interfaces to the linker (they differ by version in their
/// names, so they coexist).
pub(crate) fn add_to_linker(linker: &mut Linker<RunState>) -> anyhow::Result<()> {
    since_v0_1_0::add_to_linker(linker)?;
    since_v0_2_0::add_to_linker(linker)?;
    since_v0_3_0::add_to_linker(linker)?;
    Ok(())
}

/// A pre-linked plugin of a known version.
pub(crate) enum VersionedPre {
    V0_1_0(since_v0_1_0::PluginPre<RunState>),
    V0_2_0(since_v0_2_0::PluginPre<RunState>),
    V0_3_0(since_v0_3_0::PluginPre<RunState>),
}

impl VersionedPre {
    pub fn new(version: WitVersion, pre: InstancePre<RunState>) -> wasmtime::Result<Self> {
        Ok(match version {
            WitVersion::V0_1_0 => VersionedPre::V0_1_0(since_v0_1_0::PluginPre::new(pre)?),
            WitVersion::V0_2_0 => VersionedPre::V0_2_0(since_v0_2_0::PluginPre::new(pre)?),
            WitVersion::V0_3_0 => VersionedPre::V0_3_0(since_v0_3_0::PluginPre::new(pre)?),
        })
    }

    /// Instantiates and calls one hook. The outer error is a trap; the inner one the plugin's
    /// own typed error, rendered.
    pub fn call(
        &self,
        store: &mut Store<RunState>,
        run: &RunMeta,
        hook: &Hook,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            VersionedPre::V0_1_0(pre) => since_v0_1_0::call(pre, store, run, hook),
            VersionedPre::V0_2_0(pre) => since_v0_2_0::call(pre, store, run, hook),
            VersionedPre::V0_3_0(pre) => since_v0_3_0::call(pre, store, run, hook),
        }
    }
}

/// A live instance, for callers that reuse one (benchmarks); runs use a fresh one each.
pub(crate) enum VersionedInstance {
    V0_1_0(since_v0_1_0::Plugin),
    V0_2_0(since_v0_2_0::Plugin),
    V0_3_0(since_v0_3_0::Plugin),
}

impl VersionedPre {
    pub fn instantiate(&self, store: &mut Store<RunState>) -> wasmtime::Result<VersionedInstance> {
        Ok(match self {
            VersionedPre::V0_1_0(pre) => VersionedInstance::V0_1_0(pre.instantiate(store)?),
            VersionedPre::V0_2_0(pre) => VersionedInstance::V0_2_0(pre.instantiate(store)?),
            VersionedPre::V0_3_0(pre) => VersionedInstance::V0_3_0(pre.instantiate(store)?),
        })
    }
}

impl VersionedInstance {
    pub fn call(
        &self,
        store: &mut Store<RunState>,
        run: &RunMeta,
        hook: &Hook,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            VersionedInstance::V0_1_0(p) => since_v0_1_0::call_on(p, store, run, hook),
            VersionedInstance::V0_2_0(p) => since_v0_2_0::call_on(p, store, run, hook),
            VersionedInstance::V0_3_0(p) => since_v0_3_0::call_on(p, store, run, hook),
        }
    }
}

/// The host functions of a version module, written once. `$version` is the module's own
/// version, whose [`WitVersion::vocabulary`] filters what its plugins are handed; `$extra` holds
/// the `community` methods that version added.
macro_rules! host_impl {
    ($version:expr, { $($extra:tt)* }) => {
        use chrono::{DateTime, Utc};
        use wasmtime::component::Resource;

        use wuye_config::Role as HostRole;
        use crate::data;
        use crate::host::{Hook, LogLevel, RunState};
        use crate::intent::{self, Intent};
        use crate::wit::{CommunityHandle, RunMeta, WitVersion};
        use self::wuye::plugin::host as h;

        const VERSION: WitVersion = $version;
        use self::wuye::plugin::types as t;

        pub(crate) fn add_to_linker(
            linker: &mut wasmtime::component::Linker<RunState>,
        ) -> anyhow::Result<()> {
            Plugin::add_to_linker::<RunState, wasmtime::component::HasSelf<RunState>>(linker, |s| s)?;
            Ok(())
        }

        fn ms(t: DateTime<Utc>) -> t::Timestamp {
            t.timestamp_millis()
        }

        fn from_ms(ms: t::Timestamp) -> DateTime<Utc> {
            // Out of chrono's range: the nearest end, so a far-future time stays in the future.
            DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
                DateTime::<Utc>::MIN_UTC
            } else {
                DateTime::<Utc>::MAX_UTC
            })
        }

        fn fields(v: Vec<t::Field>) -> Vec<(String, String)> {
            v.into_iter().map(|f| (f.key, f.value)).collect()
        }

        fn role(r: t::Role) -> HostRole {
            match r {
                t::Role::CustomerService => HostRole::CustomerService,
                t::Role::Supervisor => HostRole::Supervisor,
                t::Role::Manager => HostRole::Manager,
            }
        }

        fn household(x: data::Household) -> t::Household {
            t::Household { id: x.id, building: x.building, unit: x.unit, owners: x.owners }
        }

        fn owner(x: data::Owner) -> t::Owner {
            t::Owner {
                id: x.id,
                household: x.household,
                name: x.name,
                language: x.language,
                opted_out: x.opted_out,
            }
        }

        fn bill(x: data::Bill) -> t::Bill {
            t::Bill {
                id: x.id,
                household: x.household,
                fee_type: x.fee_type,
                period: x.period,
                amount_fen: x.amount_fen,
                paid_fen: x.paid_fen,
                due_date: x.due_date.to_string(),
            }
        }

        fn balance(x: data::Balance) -> t::Balance {
            t::Balance {
                household: x.household,
                utility: x.utility,
                balance_fen: x.balance_fen,
                threshold_fen: x.threshold_fen,
            }
        }

        fn ticket(x: data::Ticket) -> t::Ticket {
            t::Ticket {
                id: x.id,
                household: x.household,
                kind: x.kind,
                opened_at: ms(x.opened_at),
                closed_at: x.closed_at.map(ms),
                assignee: x.assignee,
                callback: x.callback.map(|c| t::Callback {
                    done_at: ms(c.done_at),
                    by: c.by,
                    satisfied: c.satisfied,
                    score: c.score,
                }),
            }
        }

        /// Tickets of a kind this world has; the others are omitted (wit/compat.rs says why).
        fn known_tickets(v: Vec<data::Ticket>) -> Vec<t::Ticket> {
            let known = VERSION.vocabulary();
            v.into_iter().filter(|x| known.knows_ticket(x)).map(ticket).collect()
        }

        fn survey(x: data::Survey) -> t::Survey {
            t::Survey {
                id: x.id,
                opens_at: ms(x.opens_at),
                closes_at: ms(x.closes_at),
                invited: x.invited,
            }
        }

        fn answer(x: data::SurveyAnswer) -> t::SurveyAnswer {
            t::SurveyAnswer {
                survey: x.survey,
                household: x.household,
                area: x.area,
                score: x.score,
                comment: x.comment,
            }
        }

        fn event(x: data::Event) -> t::Event {
            t::Event {
                id: x.id,
                title: x.title,
                starts_at: ms(x.starts_at),
                rsvps: x.rsvps,
                summary_done: x.summary_done,
            }
        }

        fn message(m: t::Message) -> intent::Message {
            intent::Message {
                to: match m.to {
                    t::Recipient::Owner(id) => intent::Recipient::Owner(id),
                    t::Recipient::Household(id) => intent::Recipient::Household(id),
                },
                template: m.template,
                vars: fields(m.vars),
                channel: match m.channel {
                    t::Channel::Preferred => intent::Channel::Preferred,
                    t::Channel::Email => intent::Channel::Email,
                    t::Channel::Sms => intent::Channel::Sms,
                },
                category: match m.category {
                    t::Category::Transactional => intent::Category::Transactional,
                    t::Category::Urgent => intent::Category::Urgent,
                    t::Category::Informational => intent::Category::Informational,
                },
                step: m.step,
            }
        }

        fn plugin_error(e: t::PluginError) -> String {
            match e {
                t::PluginError::InvalidParams(m) => format!("invalid params: {m}"),
                t::PluginError::BadData(m) => format!("bad data: {m}"),
                t::PluginError::Failed(m) => m,
            }
        }

        pub(crate) fn call(
            pre: &PluginPre<RunState>,
            store: &mut wasmtime::Store<RunState>,
            run: &RunMeta,
            hook: &Hook,
        ) -> wasmtime::Result<Result<(), String>> {
            let plugin = pre.instantiate(&mut *store)?;
            call_on(&plugin, store, run, hook)
        }

        pub(crate) fn call_on(
            plugin: &Plugin,
            store: &mut wasmtime::Store<RunState>,
            run: &RunMeta,
            hook: &Hook,
        ) -> wasmtime::Result<Result<(), String>> {
            let hooks = plugin.wuye_plugin_hooks();
            let r = t::Run {
                community: run.community.clone(),
                workflow: run.workflow.clone(),
                due_at: ms(run.due_at),
                params: run.params_json.clone(),
            };
            let out = match hook {
                Hook::Schedule => hooks.call_on_schedule(&mut *store, &r)?,
                Hook::Timer { payload } => hooks.call_on_timer(&mut *store, &r, payload)?,
                Hook::Event { kind, payload } => {
                    let data = store.data().ctx.data.clone();
                    match VERSION.vocabulary().withholds_event(VERSION, kind, payload, data.as_ref()) {
                        Ok(None) => {}
                        // Not delivered is not a failure: the run did what this world can do.
                        Ok(Some(why)) => {
                            store.data_mut().ctx.log(LogLevel::Info, why, Vec::new());
                            return Ok(Ok(()));
                        }
                        Err(e) => return Err(store.data_mut().ctx.host_err(e)),
                    }
                    hooks.call_on_event(
                        &mut *store,
                        &r,
                        &t::EventIn { kind: kind.clone(), payload: payload.clone() },
                    )?
                }
            };
            Ok(out.map_err(plugin_error))
        }

        impl t::Host for RunState {}

        impl h::Host for RunState {
            fn current_community(&mut self) -> wasmtime::Result<Resource<CommunityHandle>> {
                Ok(self.table.push(CommunityHandle)?)
            }

            fn now(&mut self) -> wasmtime::Result<t::Timestamp> {
                Ok(ms(self.ctx.clock.now()))
            }

            fn log(
                &mut self,
                level: t::Level,
                message: String,
                f: Vec<t::Field>,
            ) -> wasmtime::Result<()> {
                let level = match level {
                    t::Level::Trace => LogLevel::Trace,
                    t::Level::Debug => LogLevel::Debug,
                    t::Level::Info => LogLevel::Info,
                    t::Level::Warn => LogLevel::Warn,
                    t::Level::Error => LogLevel::Error,
                };
                self.ctx.log_from_plugin(level, message, fields(f))
            }

            fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
                self.ctx.kv_get(&key)
            }

            fn kv_put(&mut self, key: String, value: String) -> wasmtime::Result<()> {
                self.ctx.kv_put(key, Some(value))
            }

            fn kv_delete(&mut self, key: String) -> wasmtime::Result<()> {
                self.ctx.kv_put(key, None)
            }

            fn send(&mut self, m: t::Message) -> wasmtime::Result<()> {
                self.ctx.push(Intent::Send(message(m)))
            }

            fn notify_staff(&mut self, n: t::StaffNotice) -> wasmtime::Result<()> {
                self.ctx.push(Intent::NotifyStaff(intent::StaffNotice {
                    role: role(n.role),
                    template: n.template,
                    vars: fields(n.vars),
                    step: n.step,
                }))
            }

            fn set_timer(&mut self, at: t::Timestamp, payload: String) -> wasmtime::Result<()> {
                self.ctx.push(Intent::SetTimer { at: from_ms(at), payload })
            }

            fn create_ticket(&mut self, x: t::NewTicket) -> wasmtime::Result<()> {
                self.ctx.push(Intent::CreateTicket(intent::NewTicket {
                    household: x.household,
                    kind: x.kind,
                    summary: x.summary,
                }))
            }
        }

        /// Reads go to `self.ctx.data`, the run's own community; the handle only proves the
        /// plugin got it from `current-community` (a forged handle traps before reaching here).
        impl h::HostCommunity for RunState {
            fn id(&mut self, _: Resource<CommunityHandle>) -> wasmtime::Result<String> {
                Ok(self.ctx.data.id().to_string())
            }
            fn name(&mut self, _: Resource<CommunityHandle>) -> wasmtime::Result<String> {
                Ok(self.ctx.data.name())
            }
            fn timezone(&mut self, _: Resource<CommunityHandle>) -> wasmtime::Result<String> {
                Ok(self.ctx.data.timezone())
            }
            fn households(&mut self, _: Resource<CommunityHandle>) -> wasmtime::Result<Vec<t::Household>> {
                let r = self.ctx.data.households();
                r.map(|v| v.into_iter().map(household).collect()).map_err(|e| self.ctx.host_err(e))
            }
            fn household(&mut self, _: Resource<CommunityHandle>, id: String) -> wasmtime::Result<Option<t::Household>> {
                let r = self.ctx.data.household(&id);
                r.map(|v| v.map(household)).map_err(|e| self.ctx.host_err(e))
            }
            fn owners(&mut self, _: Resource<CommunityHandle>, hh: String) -> wasmtime::Result<Vec<t::Owner>> {
                let r = self.ctx.data.owners(&hh);
                r.map(|v| v.into_iter().map(owner).collect()).map_err(|e| self.ctx.host_err(e))
            }
            fn owner(&mut self, _: Resource<CommunityHandle>, id: String) -> wasmtime::Result<Option<t::Owner>> {
                let r = self.ctx.data.owner(&id);
                r.map(|v| v.map(owner)).map_err(|e| self.ctx.host_err(e))
            }
            fn unpaid_bills(&mut self, _: Resource<CommunityHandle>) -> wasmtime::Result<Vec<t::Bill>> {
                let r = self.ctx.data.unpaid_bills();
                r.map(|v| v.into_iter().map(bill).collect()).map_err(|e| self.ctx.host_err(e))
            }
            fn bills(&mut self, _: Resource<CommunityHandle>, hh: String) -> wasmtime::Result<Vec<t::Bill>> {
                let r = self.ctx.data.bills(&hh);
                r.map(|v| v.into_iter().map(bill).collect()).map_err(|e| self.ctx.host_err(e))
            }
            fn balances(&mut self, _: Resource<CommunityHandle>) -> wasmtime::Result<Vec<t::Balance>> {
                let r = self.ctx.data.balances();
                r.map(|v| v.into_iter().map(balance).collect()).map_err(|e| self.ctx.host_err(e))
            }
            fn tickets(&mut self, _: Resource<CommunityHandle>, since: t::Timestamp) -> wasmtime::Result<Vec<t::Ticket>> {
                let r = self.ctx.data.tickets(from_ms(since));
                r.map(known_tickets).map_err(|e| self.ctx.host_err(e))
            }
            fn ticket(&mut self, _: Resource<CommunityHandle>, id: String) -> wasmtime::Result<Option<t::Ticket>> {
                let r = self.ctx.data.ticket(&id);
                let known = VERSION.vocabulary();
                r.map(|v| v.filter(|x| known.knows_ticket(x)).map(ticket))
                    .map_err(|e| self.ctx.host_err(e))
            }
            fn surveys(&mut self, _: Resource<CommunityHandle>) -> wasmtime::Result<Vec<t::Survey>> {
                let r = self.ctx.data.surveys();
                r.map(|v| v.into_iter().map(survey).collect()).map_err(|e| self.ctx.host_err(e))
            }
            fn survey_answers(&mut self, _: Resource<CommunityHandle>, s: String) -> wasmtime::Result<Vec<t::SurveyAnswer>> {
                let r = self.ctx.data.survey_answers(&s);
                r.map(|v| v.into_iter().map(answer).collect()).map_err(|e| self.ctx.host_err(e))
            }
            fn events(&mut self, _: Resource<CommunityHandle>) -> wasmtime::Result<Vec<t::Event>> {
                let r = self.ctx.data.events();
                r.map(|v| v.into_iter().map(event).collect()).map_err(|e| self.ctx.host_err(e))
            }
            fn drop(&mut self, handle: Resource<CommunityHandle>) -> wasmtime::Result<()> {
                self.table.delete(handle)?;
                Ok(())
            }
            $($extra)*
        }
    };
}

pub(crate) use host_impl;
