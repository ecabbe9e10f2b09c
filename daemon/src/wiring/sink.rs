//! [`OutboxSink`]: what a plugin asked for, applied in the transaction that completes its run.
//!
//! - messages and staff notices are rendered and queued in the outbox (`deliver::enqueue`); a
//!   large run's messages to households come rendered already (`super::ahead`);
//! - timers go to the scheduler's durable timer table;
//! - tickets go to the desk's queue in the domain store.
//!
//! Template variables cross the WIT boundary as strings. Two conventions (documented in the SDK
//! and docs/WORKFLOWS.md) give templates structure back: a dotted key (`household.label`) nests,
//! and a value that is a JSON array or object is passed as that value. `bill_ids` and
//! `ticket.id` name the message's reason, re-checked just before sending, so a bill paid after
//! its reminder was queued cancels the reminder. A survey invitation gets the household's
//! personal link here, a message about an event its place and RSVP link, and a staff notice
//! about a ticket is recorded against it (`records`): plugins never see tokens.
//!
//! Every key derived here comes from the run (its id, due instant and the intent's position), so
//! a run redone after a crash writes exactly the same rows, which the outbox's and the timer
//! table's UNIQUE keys then ignore.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::ahead::{RenderAhead, RenderedAhead};
use crate::clock::SharedClock;
use crate::config::{Community, Role, Settings};
use crate::deliver::{self, Audience, EnqueueContext, Enqueued, MessageRequest, Occurrence};
use crate::domain::TicketKind;
use crate::plugin::intent::{self, Intent, IntentSink, Preparation, Prepared};
use crate::scheduler::{EffectSummary, RunRequest, Trigger};
use crate::store::Tx;
use crate::store::domain::{DomainRead, TicketInput};

/// The templates and settings a sink renders with; swapped whole on reload.
pub(super) struct Loaded {
    pub settings: Arc<Settings>,
    pub templates: deliver::Templates,
}

pub struct OutboxSink {
    loaded: RwLock<Arc<Loaded>>,
    directory: Arc<dyn deliver::Directory>,
    clock: SharedClock,
}

impl OutboxSink {
    /// Loads the templates of `settings.dir/templates` (already checked by `config::load`).
    pub fn new(
        settings: Arc<Settings>,
        directory: Arc<dyn deliver::Directory>,
        clock: SharedClock,
    ) -> anyhow::Result<OutboxSink> {
        Ok(OutboxSink {
            loaded: RwLock::new(Arc::new(load(settings)?)),
            directory,
            clock,
        })
    }

    /// Takes a reloaded configuration and its templates; runs already deciding keep the old ones.
    pub fn reload(&self, settings: Arc<Settings>) -> anyhow::Result<()> {
        let loaded = Arc::new(load(settings)?);
        *self.loaded.write().expect("sink poisoned") = loaded;
        Ok(())
    }
}

fn load(settings: Arc<Settings>) -> anyhow::Result<Loaded> {
    let ids: Vec<&str> = settings.communities.iter().map(|c| c.id.as_str()).collect();
    let templates =
        deliver::Templates::load(&settings.dir.join("templates"), &ids).map_err(|errors| {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}: {}", e.file.display(), e.key, e.message))
                .collect();
            anyhow::anyhow!("templates: {}", lines.join("; "))
        })?;
    Ok(Loaded {
        settings,
        templates,
    })
}

impl IntentSink for OutboxSink {
    fn prepare(&self, run: &RunRequest) -> Option<Arc<dyn Preparation>> {
        let loaded = self.loaded.read().expect("sink poisoned").clone();
        Some(Arc::new(RenderAhead::new(
            loaded,
            self.directory.clone(),
            self.clock.clone(),
            run,
        )))
    }

    fn apply(
        &self,
        tx: &Tx<'_>,
        run: &RunRequest,
        intents: &[Intent],
        prepared: Option<Prepared>,
    ) -> anyhow::Result<EffectSummary> {
        let loaded = self.loaded.read().expect("sink poisoned").clone();
        let now = self.clock.now();
        let community: &Community = &run.community;
        // Rows rendered with templates a reload has replaced since are rendered again here.
        let mut ahead: HashMap<usize, deliver::Rendered> = prepared
            .and_then(|p| p.0.downcast::<RenderedAhead>().ok())
            .filter(|a| Arc::ptr_eq(&a.loaded, &loaded))
            .map(|a| a.rows)
            .unwrap_or_default();
        let directory = Prefetched::for_run(self.directory.as_ref(), community, intents, &ahead)?;
        let ctx = EnqueueContext::new(
            community,
            &directory,
            &loaded.templates,
            &loaded.settings.daemon.delivery,
            now,
        );
        let mut summary = EffectSummary::default();
        let timers = intents
            .iter()
            .filter(|i| matches!(i, Intent::SetTimer { .. }))
            .count() as i64;
        if timers > 0 {
            let pending = tx.pending_timers(&community.id, &run.workflow.name)?;
            let max = crate::plugin::ceiling::PENDING_TIMERS;
            anyhow::ensure!(
                pending + timers <= max,
                "the run set {timers} timer(s) while {pending} are pending; at most {max} may \
                 be pending for one workflow of a community, so the run is refused whole"
            );
        }
        super::scope::refuse_foreign_ids(tx, &community.id, intents)?;
        let invitations = invite_all(tx, community, intents, now)?;
        // Where owners open their links; the same for every message of the run.
        let base = loaded.settings.daemon.http.owner_base_url();
        for (i, intent) in intents.iter().enumerate() {
            match intent {
                Intent::Send(m) => {
                    if let Some(rendered) = ahead.remove(&i)
                        && let Some(queued) = deliver::enqueue_rendered(tx, &ctx, rendered)?
                    {
                        count(&mut summary, vec![queued]);
                        continue;
                    }
                    let mut variables = variables(&m.vars);
                    let reason = reason(tx, community, &variables)?;
                    // The invitation and every reminder carry the household's own link.
                    if variables.get("survey").is_some() {
                        survey_link(&invitations, &base, &mut variables)?;
                    }
                    let household = match &m.to {
                        intent::Recipient::Household(h) => Some(h.as_str()),
                        intent::Recipient::Owner(_) => None,
                    };
                    super::records::event_details(
                        tx,
                        &base,
                        community,
                        household,
                        &mut variables,
                        now,
                    )?;
                    let request = message_request(run, m, variables, reason);
                    count(&mut summary, deliver::enqueue(tx, &ctx, &request)?);
                }
                Intent::NotifyStaff(n) => {
                    let mut variables = variables(&n.vars);
                    let step = step(run, &n.step);
                    super::records::event_details(tx, &base, community, None, &mut variables, now)?;
                    let addressee = super::records::ticket_notice(
                        tx,
                        community,
                        &mut variables,
                        n.role,
                        &n.template,
                        &step,
                        now,
                    )?;
                    let request = MessageRequest {
                        community: community.id.clone(),
                        workflow: run.workflow.name.clone(),
                        occurrence: occurrence(run),
                        audience: match addressee {
                            Some(id) => Audience::Staff(id),
                            None => Audience::StaffRole(n.role),
                        },
                        step,
                        template: n.template.clone(),
                        variables,
                        category: deliver::Category::Transactional,
                        channel: None,
                        // Staff are told even when the owner's matter is settled meanwhile:
                        // the desk wants the record.
                        reason: Value::Null,
                    };
                    count(&mut summary, deliver::enqueue(tx, &ctx, &request)?);
                }
                Intent::SetTimer { at, payload } => {
                    let key = format!("run{}:{i}", run.run_id);
                    tx.set_timer(
                        &community.id,
                        &run.workflow.name,
                        &key,
                        *at,
                        payload,
                        now,
                        Some(run.run_id),
                    )?;
                    summary.timers += 1;
                }
                Intent::CreateTicket(t) => {
                    let no = format!("W{}-{i}", run.run_id);
                    let first_receiver = community
                        .staff
                        .iter()
                        .find(|s| s.role == Role::CustomerService)
                        .map(|s| s.id.clone())
                        .context("a workflow opened a ticket, but no customer_service staff is configured to receive it")?;
                    // A kind of the plugin's own (`fee-visit`) is desk work, not an owner's
                    // repair or complaint: no callback is owed on it. The label stays in the
                    // summary.
                    let kind = t.kind.parse().unwrap_or(TicketKind::Task);
                    let input = TicketInput {
                        no: no.clone(),
                        household: t.household.clone(),
                        kind,
                        summary: format!("[{}] {}", t.kind, t.summary),
                        first_receiver,
                        assignee: None,
                        opened_at: now,
                        assigned_at: None,
                        closed_at: None,
                    };
                    tx.domain(&community.id)
                        .open_ticket(&input, now)
                        .map_err(|e| anyhow::anyhow!("opening ticket {no}: {e}"))?;
                    summary.notes.push(format!("opened ticket {no}"));
                }
            }
        }
        Ok(summary)
    }
}

/// The directory with the contacts of every household a run writes to read up front, in one
/// query: a due date in a large community queues thousands of messages, and a lookup each was
/// a fifth of the run's cost.
struct Prefetched<'a> {
    inner: &'a dyn deliver::Directory,
    community: &'a str,
    contacts: HashMap<String, deliver::Contact>,
}

impl<'a> Prefetched<'a> {
    /// Skips the messages rendered `ahead`: their contacts were read then.
    fn for_run(
        inner: &'a dyn deliver::Directory,
        community: &'a Community,
        intents: &[Intent],
        ahead: &HashMap<usize, deliver::Rendered>,
    ) -> anyhow::Result<Prefetched<'a>> {
        let mut households: Vec<String> = intents
            .iter()
            .enumerate()
            .filter(|(i, _)| !ahead.contains_key(i))
            .filter_map(|(_, i)| match i {
                Intent::Send(m) => match &m.to {
                    intent::Recipient::Household(h) => Some(h.clone()),
                    intent::Recipient::Owner(_) => None,
                },
                _ => None,
            })
            .collect();
        households.sort_unstable();
        households.dedup();
        let contacts = if households.len() > 1 {
            inner.household_contacts(&community.id, &households)?
        } else {
            HashMap::new()
        };
        Ok(Prefetched {
            inner,
            community: &community.id,
            contacts,
        })
    }
}

impl deliver::Directory for Prefetched<'_> {
    fn household_contact(
        &self,
        community: &str,
        household: &str,
    ) -> anyhow::Result<Option<deliver::Contact>> {
        match self.contacts.get(household) {
            Some(c) if community == self.community => Ok(Some(c.clone())),
            _ => self.inner.household_contact(community, household),
        }
    }

    fn owner(&self, community: &str, owner: &str) -> anyhow::Result<Option<deliver::Contact>> {
        self.inner.owner(community, owner)
    }

    fn still_relevant(
        &self,
        community: &str,
        reason: &Value,
    ) -> anyhow::Result<deliver::Relevance> {
        self.inner.still_relevant(community, reason)
    }
}

/// The delivery request for a plugin's message, its variables and reason worked out.
pub(super) fn message_request(
    run: &RunRequest,
    m: &intent::Message,
    variables: Value,
    reason: Value,
) -> MessageRequest {
    MessageRequest {
        community: run.community.id.clone(),
        workflow: run.workflow.name.clone(),
        occurrence: occurrence(run),
        audience: match &m.to {
            intent::Recipient::Owner(id) => Audience::Owner(id.clone()),
            intent::Recipient::Household(id) => Audience::Household(id.clone()),
        },
        step: step(run, &m.step),
        template: m.template.clone(),
        variables,
        category: category(m.category),
        channel: match m.channel {
            intent::Channel::Preferred => None,
            intent::Channel::Email => Some(deliver::Channel::Email),
            intent::Channel::Sms => Some(deliver::Channel::Sms),
        },
        reason,
    }
}

fn count(summary: &mut EffectSummary, outcomes: Vec<Enqueued>) {
    for o in outcomes {
        match o {
            Enqueued::Queued { .. } => summary.messages += 1,
            Enqueued::Duplicate { .. } => {}
            Enqueued::Unreachable { recipient, why } => summary.notes.push(format!(
                "{recipient} unreachable ({why}): listed for the desk"
            )),
            Enqueued::OptedOut { recipient } => {
                summary.notes.push(format!("{recipient} opted out"))
            }
        }
    }
}

fn category(c: intent::Category) -> deliver::Category {
    match c {
        intent::Category::Transactional => deliver::Category::Transactional,
        intent::Category::Urgent => deliver::Category::Urgent,
        intent::Category::Informational => deliver::Category::Informational,
    }
}

/// Schedule and event runs are keyed by their instant; a timer run by its timer, so two timers
/// firing at the same instant stay two occurrences.
fn occurrence(run: &RunRequest) -> Occurrence {
    match run.trigger {
        Trigger::Timer { timer_id, .. } => Occurrence::Timer(timer_id),
        _ => Occurrence::Due(run.due_at),
    }
}

/// Two events at the same instant (two tickets closed in one second) are separate occurrences:
/// their runs differ, so their steps must too.
fn step(run: &RunRequest, step: &str) -> String {
    match run.trigger {
        Trigger::Event { .. } => format!("{step}@run{}", run.run_id),
        _ => step.to_string(),
    }
}

/// The variables the daemon adds to a plugin's message with the variables `declared` (the
/// plugin's own): what every template sees ([`deliver::CONTEXT_VARIABLES`]), a survey
/// message's personal `link` (`survey_link`), an event's place and, for owners, RSVP link,
/// and a staff notice's ticket's first receiver (`records`). `wuyed check` holds templates
/// against these and the plugin's declaration, so this list follows what those functions insert.
pub fn host_variables(declared: &[String], to_staff: bool) -> Vec<&'static str> {
    let mut out = deliver::CONTEXT_VARIABLES.to_vec();
    let has = |v: &str| declared.iter().any(|d| d == v);
    if has("survey") {
        out.extend(["link", "survey_invitation"]);
    }
    if has("event.id") {
        out.push("event.place");
        if !to_staff {
            out.push("event.rsvp_link");
        }
    }
    if has("ticket.id") && to_staff {
        out.push("ticket.first_receiver");
    }
    out
}

/// `[("household.label", "1-2-301"), ("bills", "[...]")]` → `{"household": {"label": ...},
/// "bills": [...]}`.
pub fn variables(vars: &[(String, String)]) -> Value {
    let mut root = Map::new();
    for (key, text) in vars {
        let value = match text.trim_start().chars().next() {
            Some('[' | '{') => serde_json::from_str(text).unwrap_or_else(|_| text.clone().into()),
            _ => Value::String(text.clone()),
        };
        let mut node = &mut root;
        let mut parts = key.split('.').peekable();
        let mut value = Some(value);
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                node.insert(part.to_string(), value.take().unwrap_or_default());
                break;
            }
            let entry = node
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                // `household` was set as a plain value before `household.label`: the nested
                // key wins, the plain value stays reachable as `household._`.
                let plain = entry.take();
                let mut m = Map::new();
                m.insert("_".into(), plain);
                *entry = Value::Object(m);
            }
            node = entry.as_object_mut().expect("made an object above");
        }
    }
    Value::Object(root)
}

/// The reason re-checked before sending: the bills a reminder lists, the ticket a callback is
/// for. `Null` (always relevant) when the message names neither.
fn reason(tx: &Tx<'_>, community: &Community, vars: &Value) -> anyhow::Result<Value> {
    if let Some(reason) = reason_without_tx(vars) {
        return Ok(reason);
    }
    if let Some(no) = vars.pointer("/ticket/id").and_then(Value::as_str) {
        let d = DomainRead::new(tx.conn(), &community.id);
        if let Some(t) = d.ticket_by_no(no)? {
            return Ok(serde_json::json!({ "ticket": t.id }));
        }
    }
    Ok(Value::Null)
}

/// [`reason`] when it reads nothing: the bills a message lists, or `Null` when it names no
/// ticket either. `None` when it names a ticket (found by its number in the store).
pub(super) fn reason_without_tx(vars: &Value) -> Option<Value> {
    if let Some(ids) = vars.get("bill_ids") {
        let ids: Vec<i64> = match ids {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
                .collect(),
            Value::String(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
            _ => Vec::new(),
        };
        if !ids.is_empty() {
            return Some(serde_json::json!({ "bills": ids }));
        }
    }
    match vars.pointer("/ticket/id").and_then(Value::as_str) {
        Some(_) => None,
        None => Some(Value::Null),
    }
}

/// A survey's invitations, by (survey key, household): `(invitation id, token)`.
type Invitations = HashMap<(String, String), (i64, String)>;

/// The survey and household an invitation message is for, from its variables.
fn invitation_target(vars: &Value) -> Option<(String, String)> {
    Some((
        vars.get("survey")?.as_str()?.to_string(),
        vars.get("household")?.as_str()?.to_string(),
    ))
}

/// Finds or creates every invitation the run's survey messages need, one campaign at a
/// time: one insert per household and one read of the campaign's invitations, where a lookup per
/// message read all of them each time (500 households: 500 reads of 500 rows).
fn invite_all(
    tx: &Tx<'_>,
    community: &Community,
    intents: &[Intent],
    now: DateTime<Utc>,
) -> anyhow::Result<Invitations> {
    // Survey key → (closes_at of its first message, households in order).
    let mut wanted: Vec<(String, DateTime<Utc>, Vec<String>)> = Vec::new();
    for intent in intents {
        let Intent::Send(m) = intent else { continue };
        // Only survey messages need their variables read here: parsing every message's twice
        // (here and when it is queued) was a tenth of a large fee-reminder run's effects.
        if !m.vars.iter().any(|(k, _)| k == "survey") {
            continue;
        }
        let vars = variables(&m.vars);
        let Some((survey, household)) = invitation_target(&vars) else {
            continue;
        };
        match wanted.iter_mut().find(|(s, _, _)| *s == survey) {
            Some((_, _, households)) => households.push(household),
            None => {
                let closes_at = vars
                    .get("closes_on")
                    .and_then(Value::as_str)
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                    .and_then(|d| d.and_hms_opt(23, 59, 59))
                    .and_then(|t| t.and_local_timezone(community.tz).latest())
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(now + chrono::Duration::days(14));
                wanted.push((survey, closes_at, vec![household]));
            }
        }
    }
    let mut out = Invitations::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let write = tx.domain(&community.id);
    let read = DomainRead::new(tx.conn(), &community.id);
    for (survey, closes_at, households) in wanted {
        let campaign = match read.campaign(&survey)? {
            Some(c) => c,
            None => write.upsert_campaign(&survey, now, closes_at)?,
        };
        for i in write.invite(campaign.id, &households, now)? {
            out.insert((survey.clone(), i.household), (i.id, i.token));
        }
    }
    Ok(out)
}

/// Adds the household's personal `link` to an invitation (made by [`invite_all`]).
fn survey_link(invitations: &Invitations, base: &str, vars: &mut Value) -> anyhow::Result<()> {
    let Some(target) = invitation_target(vars) else {
        return Ok(());
    };
    let (id, token) = invitations
        .get(&target)
        .context("invitation just written is missing")?;
    if let Value::Object(map) = vars {
        map.insert(
            "link".into(),
            Value::String(format!("{base}/survey/{token}")),
        );
        map.insert("survey_invitation".into(), Value::from(*id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A community of `households` households (the even ones by SMS, the odd ones by email),
    /// its store, and a sink rendering with the shipped templates through a directory that
    /// counts the households it is asked about.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: crate::store::Store,
        sink: OutboxSink,
        run: RunRequest,
        settings: Arc<Settings>,
        asked: Arc<std::sync::atomic::AtomicUsize>,
    }

    const HOUSEHOLDS: usize = 131;

    /// Delegates to the store's directory, counting the households looked up.
    struct Counting {
        inner: crate::domain::directory::StoreDirectory,
        asked: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl deliver::Directory for Counting {
        fn household_contact(
            &self,
            community: &str,
            household: &str,
        ) -> anyhow::Result<Option<deliver::Contact>> {
            self.asked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.household_contact(community, household)
        }
        fn household_contacts(
            &self,
            community: &str,
            households: &[String],
        ) -> anyhow::Result<HashMap<String, deliver::Contact>> {
            self.asked
                .fetch_add(households.len(), std::sync::atomic::Ordering::Relaxed);
            self.inner.household_contacts(community, households)
        }
        fn owner(&self, community: &str, owner: &str) -> anyhow::Result<Option<deliver::Contact>> {
            self.inner.owner(community, owner)
        }
        fn still_relevant(
            &self,
            community: &str,
            reason: &Value,
        ) -> anyhow::Result<deliver::Relevance> {
            self.inner.still_relevant(community, reason)
        }
    }

    fn fixture(households: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join("communities")).unwrap();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        std::fs::write(dir.path().join("plugins/fee_reminder.wasm"), b"").unwrap();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let templates = repo.join("config/templates");
        std::fs::write(
            config.join("wuyed.toml"),
            "[daemon]\ndata_dir = \"../data\"\n\n[plugins]\ndir = \"../plugins\"\n",
        )
        .unwrap();
        // The shipped templates of the fee reminders, and the survey invitation among them.
        let own = config.join("templates/fee_reminder");
        std::fs::create_dir_all(&own).unwrap();
        for entry in std::fs::read_dir(templates.join("fee_reminder")).unwrap() {
            let path = entry.unwrap().path();
            std::os::unix::fs::symlink(&path, own.join(path.file_name().unwrap())).unwrap();
        }
        for locale in ["zh-CN", "en"] {
            let name = format!("invitation.{locale}.toml");
            let path = templates.join("quarterly_survey").join(&name);
            std::os::unix::fs::symlink(path, own.join(name)).unwrap();
        }
        std::fs::write(
            config.join("communities/big.toml"),
            "id = \"big\"\nname = \"大社区\"\n\n[workflows.fee_reminder]\nplugin = \"fee_reminder\"\n",
        )
        .unwrap();
        let now = Utc.with_ymd_and_hms(2027, 3, 15, 2, 0, 0).unwrap();
        let options = crate::config::LoadOptions {
            env: Default::default(),
            plugin_check: |_| Ok(()),
            today: now.date_naive(),
            resolve_secrets: true,
        };
        let settings = Arc::new(crate::config::load_with(&config, &options).unwrap());
        let store = crate::store::Store::open_in(&dir.path().join("data")).unwrap();
        store
            .write(|tx| {
                let d = tx.domain("big");
                for i in 0..households {
                    d.upsert_household("1", "1", &format!("{}", 101 + i))?;
                    d.upsert_owner(&crate::store::domain::OwnerInput {
                        household: format!("1-1-{}", 101 + i),
                        name: format!("业主{i}"),
                        phone: Some(format!("139{i:08}")),
                        email: Some(format!("o{i}@example.com")),
                        language: crate::domain::Language::ZhCn,
                        preferred_contact: if i % 2 == 0 {
                            crate::domain::ContactChannel::Sms
                        } else {
                            crate::domain::ContactChannel::Email
                        },
                    })?;
                    // The bill its notice names: a run may only name its community's bills.
                    bill(tx, i)?;
                }
                Ok(())
            })
            .unwrap();
        let reader = Arc::new(crate::store::domain::DomainReader::open(store.path()).unwrap());
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sink = OutboxSink::new(
            settings.clone(),
            Arc::new(Counting {
                inner: crate::domain::directory::StoreDirectory::new(reader),
                asked: asked.clone(),
            }),
            Arc::new(crate::clock::ManualClock::new(now)),
        )
        .unwrap();
        let community = settings.communities[0].clone();
        let run = RunRequest {
            run_id: 1,
            workflow: community.workflows[0].clone(),
            community,
            due_at: now,
            trigger: Trigger::Schedule,
        };
        Fixture {
            _dir: dir,
            store,
            sink,
            run,
            settings,
            asked,
        }
    }

    /// Household `i`'s February bill, with id `i`, as [`notice`] names it.
    fn bill(tx: &Tx<'_>, i: usize) -> rusqlite::Result<usize> {
        tx.conn().execute(
            "INSERT INTO bills (id, community, household, fee_type, period, amount_fen, due_date)
             VALUES (?1, 'big', ?2, 'property', '2027-02', ?3, '2027-02-15')",
            rusqlite::params![i as i64, format!("1-1-{}", 101 + i), (i as i64 + 1) * 100],
        )
    }

    /// A firm bill notice to household `i`.
    fn notice(i: usize) -> intent::Message {
        let vars = [
            ("household.label", format!("1栋1单元{}", 101 + i)),
            ("tone", "firm".to_string()),
            ("days_overdue", "28".to_string()),
            ("total", format!("{i}.00")),
            ("bill_ids", format!("[{i}]")),
            (
                "bills",
                format!(
                    r#"[{{"id":"{i}","fee_type":"property","period":"2027-02","amount":"{i}.00","due_date":"2027-02-15"}}]"#
                ),
            ),
        ];
        intent::Message {
            to: intent::Recipient::Household(format!("1-1-{}", 101 + i)),
            template: "bill_notice".into(),
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            channel: intent::Channel::Preferred,
            category: intent::Category::Transactional,
            step: "overdue-7d".into(),
        }
    }

    /// A plugin that sets timers run after run stops at the pending-timer cap: the run that
    /// would pass it is refused whole, and the timers already pending stay as they were.
    #[test]
    fn a_run_that_would_pass_the_pending_timer_cap_is_refused_whole() {
        let Fixture {
            _dir,
            store,
            sink,
            run,
            ..
        } = fixture(1);
        let max = crate::plugin::ceiling::PENDING_TIMERS as usize;
        let timers = |n: usize| -> Vec<Intent> {
            (0..n)
                .map(|i| Intent::SetTimer {
                    at: run.due_at + chrono::Duration::hours(1),
                    payload: format!("t{i}"),
                })
                .collect()
        };
        store
            .write(|tx| sink.apply(tx, &run, &timers(max - 1), None))
            .unwrap();
        let mut next = run.clone();
        next.run_id = 2;
        let err = store
            .write(|tx| sink.apply(tx, &next, &timers(2), None))
            .unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!(
                "the run set 2 timer(s) while {} are pending; at most {max} may be pending",
                max - 1
            )),
            "{err:#}"
        );
        let pending = store
            .write(|tx| tx.pending_timers(&run.community.id, &run.workflow.name))
            .unwrap();
        assert_eq!(pending, (max - 1) as i64);
    }

    /// A run writing to many households (their contacts read in one query) queues every
    /// household its own rendered notice, with its own contact, in intent order.
    #[test]
    fn a_large_run_queues_each_household_its_own_message_and_contact() {
        let Fixture {
            store, sink, run, ..
        } = fixture(HOUSEHOLDS);
        let intents: Vec<Intent> = (0..HOUSEHOLDS).map(|i| Intent::Send(notice(i))).collect();
        let summary = store
            .write(|tx| sink.apply(tx, &run, &intents, None))
            .unwrap();
        assert_eq!(summary.messages, HOUSEHOLDS);

        let rows = store
            .read(|tx| Ok(tx.outbox_list(None, None, usize::MAX >> 1)?))
            .unwrap();
        let mut rows = rows;
        rows.sort_by_key(|m| m.id);
        assert_eq!(rows.len(), HOUSEHOLDS);
        for (i, m) in rows.iter().enumerate() {
            assert_eq!(m.recipient, format!("household:1-1-{}", 101 + i));
            let body = &m.body_text;
            assert!(
                body.contains(&format!("1栋1单元{}", 101 + i)),
                "{i}: {body}"
            );
            if i % 2 == 0 {
                assert_eq!(m.channel, deliver::Channel::Sms, "{i}");
                assert_eq!(m.address, format!("139{i:08}"));
            } else {
                assert_eq!(m.channel, deliver::Channel::Email, "{i}");
                assert_eq!(m.address, format!("o{i}@example.com"));
                assert!(body.contains(&format!("{i}.00 元")), "{i}: {body}");
                assert!(body.contains(&format!("业主{i}")), "{i}: {body}");
            }
        }
    }

    /// How a run's messages are rendered in [`rendering_ahead_queues_what_the_transaction_would`].
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Render {
        InTransaction,
        Ahead,
        /// Ahead, then the templates are reloaded before the run commits.
        AheadThenReload,
    }

    /// Rendering a large run's messages ahead, while its plugin decides, queues exactly what
    /// rendering them in the transaction does, including the messages that need the
    /// transaction: a survey invitation (its link), an owner who opted out of the channel a
    /// message was rendered for, a household nobody can reach, a message naming a ticket. Rows
    /// rendered before a reload are rendered again.
    #[test]
    fn rendering_ahead_queues_what_the_transaction_would() {
        // Enough for the worker to take full batches while the "plugin" still asks.
        let households = 3 * 256 + 131;
        let mut intents: Vec<Intent> = (0..households).map(|i| Intent::Send(notice(i))).collect();
        let survey = intent::Message {
            to: intent::Recipient::Household("1-1-104".into()),
            template: "invitation".into(),
            vars: [
                ("quarter", "2027Q1"),
                ("survey", "2027Q1"),
                ("household", "1-1-104"),
                ("closes_on", "2027-03-31"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            channel: intent::Channel::Email,
            category: intent::Category::Informational,
            step: "invitation".into(),
        };
        intents[3] = Intent::Send(survey);
        // Household 5's owner opted out of SMS (their preferred channel) for informational
        // messages: rendered ahead by SMS, queued by email.
        let mut informational = notice(4);
        informational.category = intent::Category::Informational;
        informational.to = intent::Recipient::Household("1-1-105".into());
        intents[4] = Intent::Send(informational);
        let mut ticket = notice(6);
        ticket.vars.retain(|(k, _)| k != "bill_ids");
        ticket.vars.push(("ticket.id".into(), "T-1".into()));
        intents[6] = Intent::Send(ticket);
        intents.push(Intent::Send(notice(households)));
        let intents = Arc::new(intents);

        let queued = |how: Render| {
            // `_dir` kept: the reload reads the templates again.
            let Fixture {
                _dir,
                store,
                sink,
                run,
                settings,
                asked,
            } = fixture(households);
            let now = run.due_at;
            store
                .write(|tx| {
                    let d = tx.domain("big");
                    // The extra notice's household has only a mistyped address.
                    d.upsert_household("1", "1", &format!("{}", 101 + households))?;
                    d.upsert_owner(&crate::store::domain::OwnerInput {
                        household: format!("1-1-{}", 101 + households),
                        name: "地址有误".into(),
                        phone: None,
                        email: Some("zhang.example.com".into()),
                        language: crate::domain::Language::ZhCn,
                        preferred_contact: crate::domain::ContactChannel::Sms,
                    })?;
                    bill(tx, households)?;
                    // The desk's ticket a message names.
                    d.open_ticket(
                        &TicketInput {
                            no: "T-1".into(),
                            household: Some("1-1-107".into()),
                            kind: TicketKind::Repair,
                            summary: "楼道灯不亮".into(),
                            first_receiver: "chen-jing".into(),
                            assignee: None,
                            opened_at: now,
                            assigned_at: None,
                            closed_at: None,
                        },
                        now,
                    )
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                    let owner = crate::store::domain::DomainRead::new(tx.conn(), "big")
                        .household_recipients("1-1-105")?
                        .remove(0);
                    tx.optout_record(
                        "big",
                        &owner.id.to_string(),
                        deliver::Channel::Sms,
                        "desk",
                        now,
                    )?;
                    Ok(())
                })
                .unwrap();
            let prepared = (how != Render::InTransaction).then(|| {
                let p = sink.prepare(&run).expect("the outbox sink renders ahead");
                // The plugin asks on its own thread, as it does in the executor.
                let asking = {
                    let (p, intents) = (p.clone(), intents.clone());
                    std::thread::spawn(move || {
                        for (i, intent) in intents.iter().enumerate() {
                            p.observe(i, intent);
                        }
                    })
                };
                asking.join().unwrap();
                let prepared = p.finish();
                let rendered = prepared.0.downcast_ref::<RenderedAhead>().unwrap();
                // All but the survey invitation, the ticket and the unreachable household.
                assert_eq!(rendered.rows.len(), households - 2);
                prepared
            });
            if how == Render::AheadThenReload {
                sink.reload(settings).unwrap();
            }
            asked.store(0, std::sync::atomic::Ordering::Relaxed);
            let summary = store
                .write(|tx| sink.apply(tx, &run, &intents, prepared))
                .unwrap();
            let asked = asked.load(std::sync::atomic::Ordering::Relaxed);
            let mut rows = store
                .read(|tx| Ok(tx.outbox_list(None, None, usize::MAX >> 1)?))
                .unwrap();
            for m in &mut rows {
                m.id = 0;
                // Invitation tokens are random: each store draws its own.
                m.body_text = without_tokens(&m.body_text);
                m.body_html = m.body_html.as_deref().map(without_tokens);
            }
            rows.sort_by(|a, b| (&a.recipient, &a.step).cmp(&(&b.recipient, &b.step)));
            let (unreachable, invitations) = store
                .read(|tx| {
                    Ok((
                        tx.unreachable_list(Some("big"))?.len(),
                        tx.conn().query_row(
                            "SELECT count(*) FROM survey_invitations",
                            [],
                            |r| r.get::<_, i64>(0),
                        )?,
                    ))
                })
                .unwrap();
            (summary.messages, rows, unreachable, invitations, asked)
        };
        let in_tx = queued(Render::InTransaction);
        assert_eq!(in_tx.0, households);
        assert_eq!(in_tx.2, 1, "the household nobody can reach is listed");
        assert_eq!(in_tx.3, 1, "the survey invitation was written");
        assert!(
            in_tx.4 >= households,
            "every contact read in the transaction"
        );
        let opted_out = in_tx
            .1
            .iter()
            .find(|m| m.recipient == "household:1-1-105")
            .unwrap();
        assert_eq!(opted_out.channel, deliver::Channel::Email);
        let invitation = in_tx.1.iter().find(|m| m.step == "invitation").unwrap();
        assert!(
            invitation.body_text.contains("/survey/"),
            "{}",
            invitation.body_text
        );

        let ahead = queued(Render::Ahead);
        // The transaction looked up only what was not rendered ahead (the invitation, the
        // ticket, the unreachable household) and the owner who opted out.
        assert_eq!(ahead.4, 4, "households looked up");
        assert_eq!((in_tx.0, in_tx.2, in_tx.3), (ahead.0, ahead.2, ahead.3));
        same_rows(&in_tx.1, &ahead.1);

        let reloaded = queued(Render::AheadThenReload);
        assert!(reloaded.4 >= households, "rendered again after the reload");
        same_rows(&in_tx.1, &reloaded.1);
    }

    /// A run that fails, or whose thread dies, before its preparation finishes leaves no
    /// thread behind waiting for messages to render.
    #[test]
    fn an_abandoned_preparation_lets_its_worker_go() {
        let f = fixture(1);
        let loaded = f.sink.loaded.read().unwrap().clone();
        let idle = Arc::strong_count(&loaded);
        let started = || {
            let p = f.sink.prepare(&f.run).unwrap();
            // Enough to start the worker, too few for it to have a batch: it waits for more.
            for i in 0..super::super::ahead::START_AFTER + 10 {
                p.observe(i, &Intent::Send(notice(0)));
            }
            assert!(
                Arc::strong_count(&loaded) > idle,
                "the worker holds the templates"
            );
            p
        };
        // The plugin failed: the executor abandons the work.
        let p = started();
        p.abandon();
        drop(p);
        assert_eq!(Arc::strong_count(&loaded), idle);
        // The run's thread panicked: neither finish nor abandon was called.
        drop(started());
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&loaded) > idle {
            assert!(
                std::time::Instant::now() < until,
                "the worker is still waiting for messages"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// `text` with each survey link's token replaced by `TOKEN`.
    fn without_tokens(text: &str) -> String {
        ["/survey/", "&#x2f;survey&#x2f;"]
            .iter()
            .fold(text.to_string(), |text, marker| {
                let mut out = String::new();
                let mut rest = text.as_str();
                while let Some(at) = rest.find(marker) {
                    let (head, tail) = rest.split_at(at + marker.len());
                    out.push_str(head);
                    out.push_str("TOKEN");
                    let end = tail
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                        .unwrap_or(tail.len());
                    rest = &tail[end..];
                }
                out.push_str(rest);
                out
            })
    }

    /// The same rows in the same order, the first difference shown alone.
    fn same_rows(expected: &[deliver::OutboxMessage], got: &[deliver::OutboxMessage]) {
        for (e, g) in expected.iter().zip(got) {
            assert_eq!(e, g);
        }
        assert_eq!(expected.len(), got.len());
    }

    #[test]
    fn dotted_keys_nest_and_json_values_become_structure() {
        let vars = [
            ("household.label".to_string(), "3栋2单元301".to_string()),
            ("bills".to_string(), r#"[{"period":"2026-10"}]"#.to_string()),
            ("total".to_string(), "650.00".to_string()),
            ("note".to_string(), "[not json".to_string()),
        ];
        assert_eq!(
            variables(&vars),
            serde_json::json!({
                "household": {"label": "3栋2单元301"},
                "bills": [{"period": "2026-10"}],
                "total": "650.00",
                "note": "[not json",
            })
        );
    }
}
