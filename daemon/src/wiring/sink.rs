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
        let mut ahead: RenderedAhead = prepared
            .and_then(|p| p.0.downcast::<RenderedAhead>().ok())
            .map(|a| *a)
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
        let invitations = invite_all(tx, community, intents, now)?;
        // Where owners open their links; the same for every message of the run.
        let base = public_url(&loaded.settings);
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
                        .raw
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
        ahead: &RenderedAhead,
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

/// `[("household.label", "1-2-301"), ("bills", "[...]")]` → `{"household": {"label": ...},
/// "bills": [...]}`.
pub(crate) fn variables(vars: &[(String, String)]) -> Value {
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

/// Where owners reach the survey pages: `http.public_url`, else the listen address.
fn public_url(settings: &Settings) -> String {
    match &settings.daemon.http.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("http://{}", settings.daemon.http.listen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A community of `households` households (the even ones by SMS, the odd ones by email),
    /// its store, and a sink rendering with the shipped templates.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: crate::store::Store,
        sink: OutboxSink,
        run: RunRequest,
    }

    const HOUSEHOLDS: usize = 131;

    fn fixture() -> Fixture {
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
        // The shipped templates, read in place.
        std::os::unix::fs::symlink(&templates, config.join("templates")).unwrap();
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
        };
        let settings = Arc::new(crate::config::load_with(&config, &options).unwrap());
        let store = crate::store::Store::open_in(&dir.path().join("data")).unwrap();
        store
            .write(|tx| {
                let d = tx.domain("big");
                for i in 0..HOUSEHOLDS {
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
                }
                Ok(())
            })
            .unwrap();
        let reader = Arc::new(crate::store::domain::DomainReader::open(store.path()).unwrap());
        let sink = OutboxSink::new(
            settings.clone(),
            Arc::new(crate::domain::directory::StoreDirectory::new(reader)),
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
        }
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

    /// A run writing to many households (their contacts read in one query) queues every
    /// household its own rendered notice, with its own contact, in intent order.
    #[test]
    fn a_large_run_queues_each_household_its_own_message_and_contact() {
        let Fixture {
            store, sink, run, ..
        } = fixture();
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

    /// Rendering a large run's messages ahead, while its plugin decides, queues exactly what
    /// rendering them in the transaction does, including the messages that need the
    /// transaction: a survey invitation (its link), an owner who opted out of the channel a
    /// message was rendered for, a household nobody can reach, a message naming a ticket.
    #[test]
    fn rendering_ahead_queues_what_the_transaction_would() {
        let mut intents: Vec<Intent> = (0..HOUSEHOLDS).map(|i| Intent::Send(notice(i))).collect();
        let mut survey = notice(3);
        survey.vars.push(("survey".into(), "2027Q1".into()));
        // The household's id before its label, so the label nests (see `variables`).
        survey
            .vars
            .insert(0, ("household".into(), "1-1-104".into()));
        survey.step = "invitation".into();
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
        intents.push(Intent::Send(notice(HOUSEHOLDS)));

        let queued = |ahead: bool| {
            let Fixture {
                store, sink, run, ..
            } = fixture();
            let now = run.due_at;
            store
                .write(|tx| {
                    let d = tx.domain("big");
                    // Household 1-1-232 (the extra notice's) has only a mistyped address.
                    d.upsert_household("1", "1", &format!("{}", 101 + HOUSEHOLDS))?;
                    d.upsert_owner(&crate::store::domain::OwnerInput {
                        household: format!("1-1-{}", 101 + HOUSEHOLDS),
                        name: "地址有误".into(),
                        phone: None,
                        email: Some("zhang.example.com".into()),
                        language: crate::domain::Language::ZhCn,
                        preferred_contact: crate::domain::ContactChannel::Sms,
                    })?;
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
            let prepared = ahead.then(|| {
                let p = sink.prepare(&run).expect("the outbox sink renders ahead");
                for (i, intent) in intents.iter().enumerate() {
                    p.observe(i, intent);
                }
                let prepared = p.finish();
                let rendered = prepared.0.downcast_ref::<RenderedAhead>().unwrap();
                // All but the survey invitation, the ticket and the unreachable household.
                assert_eq!(rendered.len(), HOUSEHOLDS - 2);
                prepared
            });
            let summary = store
                .write(|tx| sink.apply(tx, &run, &intents, prepared))
                .unwrap();
            let mut rows = store
                .read(|tx| Ok(tx.outbox_list(None, None, usize::MAX >> 1)?))
                .unwrap();
            for m in &mut rows {
                m.id = 0;
            }
            rows.sort_by(|a, b| (&a.recipient, &a.step).cmp(&(&b.recipient, &b.step)));
            let unreachable = store
                .read(|tx| Ok(tx.unreachable_list(Some("big"))?))
                .unwrap()
                .len();
            (summary.messages, rows, unreachable)
        };
        let (in_tx, ahead) = (queued(false), queued(true));
        assert_eq!(in_tx.0, HOUSEHOLDS);
        assert_eq!(in_tx.2, 1, "the household nobody can reach is listed");
        let opted_out = in_tx
            .1
            .iter()
            .find(|m| m.recipient == "household:1-1-105")
            .unwrap();
        assert_eq!(opted_out.channel, deliver::Channel::Email);
        assert!(
            in_tx.1.iter().any(|m| m.body_text.contains("/survey/")
                || m.reason != Value::Null && m.step == "invitation"),
            "the survey invitation was queued"
        );
        assert_eq!(in_tx, ahead);
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
