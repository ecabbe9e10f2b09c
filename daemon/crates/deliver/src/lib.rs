//! Getting messages to owners and staff: outbox, channels, templates, quiet hours, retries.
//!
//! Plugins never talk to a mail server. A run's decision to message someone becomes a
//! [`MessageRequest`], which [`enqueue`] turns, inside the run's completing transaction, into
//! rendered rows of the outbox (one per recipient, keyed by an idempotency key: community,
//! workflow, slot, recipient and step). A large run's messages to households may be rendered before
//! that transaction ([`render_for_household`]) and only queued in it ([`enqueue_rendered`]). The
//! [`Dispatcher`] then works the outbox: re-checks that the reason still stands, waits out quiet
//! hours, respects SMS providers' per-number limits, hands the message to a channel, and records
//! the answer: sent, retry later, dead letter, or "unknown" when the daemon lost track mid-send (an
//! email is then resent with the same Message-ID; an SMS is looked up at the provider where it can
//! be, else waits for a human).
//!
//! Content is rendered before it is queued, so the outbox shows exactly what was (or will be)
//! sent. Owner data comes from the host through the narrow [`Directory`] trait so this crate does not
//! depend on how owners are stored. The settings, the quiet-hour window and the templates are
//! configuration (`wuye-config`), re-exported here, so `wuyed check` applies the rules delivery
//! applies.

mod channel;
mod dispatch;
pub(crate) mod email;
mod failpoint;
mod sms;
pub mod supervise;

use chrono::{DateTime, SecondsFormat, Utc};

pub use channel::{Channels, Outcome};
pub use dispatch::{DispatchReport, Dispatcher, DispatcherReload};
pub use email::{SmtpPool, build_email};
pub use sms::{
    SmsRequest, aliyun_signature, percent_encode, tencent_authorization, tencent_authorization_for,
};
pub use supervise::DispatcherHealth;
/// The delivery settings are configuration, checked by `wuyed check` as they are applied here.
pub use wuye_config::delivery::*;
pub use wuye_config::quiet::{QuietWindow, earliest_send};
pub use wuye_config::templates::{
    CONTEXT_VARIABLES, RenderedEmail, RenderedSms, TemplateFile, TemplateSet, Templates,
    UndefinedVariable, check_templates,
};
pub use wuye_store::message::{
    Category, Channel, OutboxMessage, Status, idempotency_key, key_digest, mask_address,
};

use wuye_config::{Community, Role};
use wuye_store::Tx;

/// Someone a message can go to, as the host knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    /// The owner's (or staff member's) id; opt-outs are recorded against it.
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `zh-CN` or `en`; the community's default when absent.
    pub locale: Option<String>,
    pub preferred: Option<Channel>,
}

/// Is the reason for a message still there?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relevance {
    Relevant,
    /// Gone, with why ("bill 12 paid on 2026-03-02").
    Gone(String),
}

/// What delivery needs to know about owners, supplied by the host (the domain store).
/// Kept narrow so delivery can be tested with an in-memory map and the store can change.
pub trait Directory: Send + Sync {
    /// The household's contact for this message: its preferred contact among the co-owners,
    /// resolved by the host. `None` if there is no such household.
    fn household_contact(
        &self,
        community: &str,
        household: &str,
    ) -> anyhow::Result<Option<Contact>>;
    /// [`household_contact`] of many households at once, by household id (unknown ones left
    /// out): a run that writes to thousands of households reads their contacts in one go. The
    /// default asks one by one.
    ///
    /// [`household_contact`]: Directory::household_contact
    fn household_contacts(
        &self,
        community: &str,
        households: &[String],
    ) -> anyhow::Result<std::collections::HashMap<String, Contact>> {
        let mut out = std::collections::HashMap::new();
        for h in households {
            if let Some(c) = self.household_contact(community, h)? {
                out.insert(h.clone(), c);
            }
        }
        Ok(out)
    }
    /// One owner. `None` if there is no such owner.
    fn owner(&self, community: &str, owner: &str) -> anyhow::Result<Option<Contact>>;
    /// Whether the reason of a message (as the workflow wrote it, `{"bills": [12, 13]}`) still
    /// stands. Called just before sending.
    fn still_relevant(
        &self,
        community: &str,
        reason: &serde_json::Value,
    ) -> anyhow::Result<Relevance>;
}

/// A directory that knows nobody and finds every reason still standing: for running the
/// dispatcher before the domain store is wired in, and for staff-only messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDirectory;

impl Directory for NoDirectory {
    fn household_contact(&self, _: &str, _: &str) -> anyhow::Result<Option<Contact>> {
        Ok(None)
    }
    fn owner(&self, _: &str, _: &str) -> anyhow::Result<Option<Contact>> {
        Ok(None)
    }
    fn still_relevant(&self, _: &str, _: &serde_json::Value) -> anyhow::Result<Relevance> {
        Ok(Relevance::Relevant)
    }
}

/// Which occurrence of a workflow a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurrence {
    /// The run's due instant.
    Due(DateTime<Utc>),
    /// A durable timer's id.
    Timer(i64),
}

impl Occurrence {
    pub fn slot(self) -> String {
        match self {
            Occurrence::Due(at) => at.to_rfc3339_opts(SecondsFormat::Secs, true),
            Occurrence::Timer(id) => format!("timer:{id}"),
        }
    }
}

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    Owner(String),
    /// One message per household per run, to its preferred contact.
    Household(String),
    /// Everyone of the community's staff with this role.
    StaffRole(Role),
    Staff(String),
}

/// A plugin's (or the host's) request to message someone.
#[derive(Debug, Clone)]
pub struct MessageRequest {
    pub community: String,
    pub workflow: String,
    pub occurrence: Occurrence,
    pub audience: Audience,
    /// Distinguishes several messages of one run to the same recipient (`reminder`, `escalate-2`).
    pub step: String,
    /// Template name within the workflow's folder (`bill_notice`).
    pub template: String,
    /// Variables for the template (several unpaid bills of a household go in one list here).
    pub variables: serde_json::Value,
    pub category: Category,
    /// The channel to try first; the recipient's preference, then email, when absent.
    pub channel: Option<Channel>,
    /// What the message is about, re-checked before sending (`{"bills": [12, 13]}`).
    pub reason: serde_json::Value,
}

/// What became of a request for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    Queued {
        id: i64,
        recipient: String,
        channel: Channel,
    },
    /// Already queued by an earlier attempt of the same run: nothing new.
    Duplicate { recipient: String },
    /// No usable channel: listed for the desk to call.
    Unreachable { recipient: String, why: String },
    /// Informational, and the owner opted out of every usable channel.
    OptedOut { recipient: String },
}

/// What [`enqueue`] needs besides the transaction.
pub struct EnqueueContext<'a> {
    pub community: &'a Community,
    pub directory: &'a dyn Directory,
    pub templates: &'a Templates,
    pub delivery: &'a DeliverySettings,
    pub now: DateTime<Utc>,
    /// The right-hand side of every Message-ID, from the sender address: parsed once per run
    /// rather than once per message.
    message_id_domain: String,
}

impl<'a> EnqueueContext<'a> {
    pub fn new(
        community: &'a Community,
        directory: &'a dyn Directory,
        templates: &'a Templates,
        delivery: &'a DeliverySettings,
        now: DateTime<Utc>,
    ) -> EnqueueContext<'a> {
        EnqueueContext {
            community,
            directory,
            templates,
            delivery,
            now,
            message_id_domain: delivery.message_id_domain(community),
        }
    }
}

/// Renders and queues a message request, in the caller's transaction (the run's completing
/// one). Repeats of the same request are no-ops. The caller wakes the dispatcher
/// ([`Dispatcher::waker`]) after committing.
pub fn enqueue(
    tx: &Tx<'_>,
    ctx: &EnqueueContext<'_>,
    req: &MessageRequest,
) -> anyhow::Result<Vec<Enqueued>> {
    let community = ctx.community;
    let mut out = Vec::new();
    for (recipient, contact, is_owner) in recipients(ctx, req)? {
        let optout = |ch| tx.optout_active(&community.id, &contact.id, ch);
        let choice = render(ctx, req, recipient, &contact, is_owner, optout)?;
        out.push(queue(tx, ctx, req, choice)?);
    }
    Ok(out)
}

/// A household's message rendered ahead of the transaction that queues it
/// ([`render_for_household`]), with its opt-out not yet checked.
#[derive(Debug)]
pub struct Rendered(Choice);

/// Renders a message to a household for `contact` without the transaction: everything
/// [`enqueue`] would write except what depends on the moment of queueing, so a large run's
/// messages can be rendered on another thread while its plugin still decides. An owner's opt-out
/// is assumed absent here and checked by [`enqueue_rendered`]. `None` when the message needs
/// the transaction anyway (nobody reachable: the desk's list is written there).
pub fn render_for_household(
    ctx: &EnqueueContext<'_>,
    req: &MessageRequest,
    contact: &Contact,
) -> anyhow::Result<Option<Rendered>> {
    let Audience::Household(id) = &req.audience else {
        return Ok(None);
    };
    check_community(ctx, req)?;
    match render(ctx, req, format!("household:{id}"), contact, true, |_| {
        Ok(false)
    })? {
        choice @ Choice::Render { .. } => Ok(Some(Rendered(choice))),
        Choice::OptedOut { .. } | Choice::Unreachable { .. } => Ok(None),
    }
}

/// Queues what [`render_for_household`] rendered, as [`enqueue`] would have. `None` when the
/// owner opted out of the rendered channel of an informational message: the caller then
/// enqueues the request afresh, which picks the next channel or records the refusal.
pub fn enqueue_rendered(
    tx: &Tx<'_>,
    ctx: &EnqueueContext<'_>,
    rendered: Rendered,
) -> anyhow::Result<Option<Enqueued>> {
    let Choice::Render { msg, optout_of } = rendered.0 else {
        unreachable!("only rendered messages are kept");
    };
    if let Some(owner) = &optout_of
        && tx.optout_active(&ctx.community.id, owner, msg.channel)?
    {
        return Ok(None);
    }
    queue_rendered(tx, ctx, msg).map(Some)
}

/// What becomes of one recipient of a request.
#[derive(Debug)]
enum Choice {
    Render {
        msg: Box<OutboxMessage>,
        /// The owner whose opt-out of `msg.channel` was assumed absent, when one applies.
        optout_of: Option<String>,
    },
    OptedOut {
        recipient: String,
    },
    Unreachable {
        recipient: String,
        name: String,
        why: String,
    },
}

fn check_community(ctx: &EnqueueContext<'_>, req: &MessageRequest) -> anyhow::Result<()> {
    if req.community != ctx.community.id {
        anyhow::bail!(
            "message request for community {} handed to community {}",
            req.community,
            ctx.community.id
        );
    }
    Ok(())
}

/// Everyone a request goes to: `(recipient key, contact, is an owner)`.
fn recipients(
    ctx: &EnqueueContext<'_>,
    req: &MessageRequest,
) -> anyhow::Result<Vec<(String, Contact, bool)>> {
    use anyhow::{Context as _, bail};
    check_community(ctx, req)?;
    let community = ctx.community;
    let mut recipients: Vec<(String, Contact, bool)> = Vec::new();
    match &req.audience {
        Audience::Owner(id) => {
            let c = ctx
                .directory
                .owner(&community.id, id)?
                .with_context(|| format!("community {}: no owner {id}", community.id))?;
            recipients.push((format!("owner:{id}"), c, true));
        }
        Audience::Household(id) => {
            let c = ctx
                .directory
                .household_contact(&community.id, id)?
                .with_context(|| format!("community {}: no household {id}", community.id))?;
            recipients.push((format!("household:{id}"), c, true));
        }
        Audience::StaffRole(role) => {
            for s in community.staff.iter().filter(|s| s.role == *role) {
                recipients.push((format!("staff:{}", s.id), staff_contact(s), false));
            }
            if recipients.is_empty() {
                bail!(
                    "community {}: nobody on the staff has role {}",
                    community.id,
                    role.as_str()
                );
            }
        }
        Audience::Staff(id) => {
            let s = community
                .staff
                .iter()
                .find(|s| &s.id == id)
                .with_context(|| format!("community {}: no staff member {id}", community.id))?;
            recipients.push((format!("staff:{id}"), staff_contact(s), false));
        }
    }
    Ok(recipients)
}

/// Whether the SMS provider of a community (its `[delivery.sms]`, else the daemon's) sends
/// nothing but pre-approved templates (Aliyun, Tencent): code and parameters, not the `sms` text.
/// `community` is the community's delivery overrides.
pub fn sends_approved_sms_only(community: &CommunityDelivery, daemon: &DeliverySettings) -> bool {
    let provider = community
        .sms
        .as_ref()
        .or(daemon.sms.as_ref())
        .map(|s| s.provider)
        .unwrap_or_default();
    matches!(provider, SmsProvider::Aliyun | SmsProvider::Tencent)
}

/// Picks the channel for one recipient and renders the message on it; `optout` answers
/// whether an owner declined a channel (asked only for informational messages).
fn render(
    ctx: &EnqueueContext<'_>,
    req: &MessageRequest,
    recipient: String,
    contact: &Contact,
    is_owner: bool,
    mut optout: impl FnMut(Channel) -> rusqlite::Result<bool>,
) -> anyhow::Result<Choice> {
    use anyhow::Context as _;
    let community = ctx.community;
    let slot = req.occurrence.slot();
    // The community's delivery overrides, read in place: a clone per message showed in the
    // profile of a 20,000-message run.
    let cdel = &community.delivery;
    let approved_only = sends_approved_sms_only(cdel, ctx.delivery);
    let locale = contact
        .locale
        .clone()
        .unwrap_or_else(|| community.locale.as_str().to_string());
    let set = ctx
        .templates
        .find(
            &community.id,
            &req.workflow,
            &req.template,
            &locale,
            community.locale.as_str(),
        )
        .with_context(|| {
            format!(
                "community {}: no template {}/{} for locale {locale}",
                community.id, req.workflow, req.template
            )
        })?;
    let first = req.channel.or(contact.preferred).unwrap_or(Channel::Email);
    let mut order = vec![first];
    if cdel.fallback != Fallback::None {
        order.push(first.other());
    }
    let asks_optout = is_owner && req.category == Category::Informational;
    let mut opted_out = false;
    let mut missing = Vec::new();
    let mut chosen = None;
    for ch in order {
        let address = match ch {
            Channel::Email => contact.email.as_deref().filter(|e| usable_email(e)),
            Channel::Sms => contact.phone.as_deref().filter(|p| usable_phone(p)),
        };
        let Some(address) = address else {
            missing.push(format!("no usable {ch}"));
            continue;
        };
        if !set.supports(ch, approved_only) {
            missing.push(if ch == Channel::Sms && approved_only {
                "template has no approved SMS template code (sms_code)".to_string()
            } else {
                format!("template has no {ch} version")
            });
            continue;
        }
        if asks_optout && optout(ch)? {
            opted_out = true;
            continue;
        }
        chosen = Some((ch, address.to_string()));
        break;
    }
    let Some((channel, address)) = chosen else {
        // An owner who declined the channels we could use has said no; the desk does not
        // call them about a survey either.
        if opted_out {
            return Ok(Choice::OptedOut { recipient });
        }
        return Ok(Choice::Unreachable {
            recipient,
            name: contact.name.clone(),
            why: missing.join("; "),
        });
    };

    let vars = template_context(community, contact, &locale, req);
    let key = idempotency_key(&community.id, &req.workflow, &slot, &recipient, &req.step);
    let digest = key_digest(&key);
    let domain = &ctx.message_id_domain;
    let mut msg = OutboxMessage {
        id: 0,
        community: community.id.clone(),
        workflow: req.workflow.clone(),
        slot,
        recipient,
        step: req.step.clone(),
        channel,
        address,
        display_name: Some(contact.name.clone()).filter(|n| !n.is_empty()),
        locale: set.locale.clone(),
        category: req.category,
        template: format!("{}/{}", req.workflow, req.template),
        subject: None,
        body_text: String::new(),
        body_html: None,
        sms_code: None,
        sms_params: Vec::new(),
        reason: req.reason.clone(),
        message_id: format!("<{digest}@{domain}>"),
        status: Status::Pending,
        attempts: 0,
        // Set when queued.
        next_attempt_at: DateTime::<Utc>::MIN_UTC,
        expires_at: DateTime::<Utc>::MIN_UTC,
        provider_id: None,
        last_error: None,
        created_at: DateTime::<Utc>::MIN_UTC,
        updated_at: DateTime::<Utc>::MIN_UTC,
        sent_at: None,
    };
    match channel {
        Channel::Email => {
            let e = ctx.templates.render_email(set, &vars)?;
            msg.subject = Some(e.subject);
            msg.body_text = e.text;
            msg.body_html = e.html;
        }
        Channel::Sms => {
            let s = ctx.templates.render_sms(set, &vars)?;
            msg.body_text = s.body;
            msg.sms_code = s.code;
            msg.sms_params = s.params;
        }
    }
    Ok(Choice::Render {
        msg: Box::new(msg),
        optout_of: asks_optout.then(|| contact.id.clone()),
    })
}

/// Writes one recipient's outcome: the rendered message into the outbox, due now or when quiet
/// hours end, or the desk's list when nobody is reachable.
fn queue(
    tx: &Tx<'_>,
    ctx: &EnqueueContext<'_>,
    req: &MessageRequest,
    choice: Choice,
) -> anyhow::Result<Enqueued> {
    let community = ctx.community;
    let msg = match choice {
        Choice::Render { msg, .. } => msg,
        Choice::OptedOut { recipient } => return Ok(Enqueued::OptedOut { recipient }),
        Choice::Unreachable {
            recipient,
            name,
            why,
        } => {
            tx.unreachable_insert(
                &community.id,
                &req.workflow,
                &req.occurrence.slot(),
                &recipient,
                &req.step,
                &name,
                &why,
                ctx.now,
            )?;
            tracing::warn!(community = %community.id, workflow = %req.workflow, %recipient,
                %why, "nobody reachable; listed for the desk to call");
            return Ok(Enqueued::Unreachable { recipient, why });
        }
    };
    queue_rendered(tx, ctx, msg)
}

/// Inserts a rendered message, due now or, by its category, when quiet hours end.
fn queue_rendered(
    tx: &Tx<'_>,
    ctx: &EnqueueContext<'_>,
    mut msg: Box<OutboxMessage>,
) -> anyhow::Result<Enqueued> {
    let community = ctx.community;
    msg.next_attempt_at = ctx.now;
    msg.expires_at = ctx.now + ctx.delivery.validity.of(msg.category);
    msg.created_at = ctx.now;
    msg.updated_at = ctx.now;
    let at = earliest_send(
        ctx.now,
        msg.category,
        &community.quiet,
        community.quiet_spread,
        &msg.spread_seed(),
    );
    if at > ctx.now {
        msg.status = Status::Deferred;
        msg.next_attempt_at = at;
    }
    Ok(match tx.outbox_insert(&msg)? {
        Some(id) => Enqueued::Queued {
            id,
            recipient: msg.recipient,
            channel: msg.channel,
        },
        None => Enqueued::Duplicate {
            recipient: msg.recipient,
        },
    })
}

fn staff_contact(s: &wuye_config::StaffMember) -> Contact {
    Contact {
        id: s.id.clone(),
        name: s.name.clone(),
        email: s.email.clone(),
        // Bare digits: config keeps staff phones as numbers, separators dropped at load.
        phone: s.phone.clone(),
        locale: None,
        preferred: None,
    }
}

/// Enough to reject blanks and typos like `zhang.example.com`; the server judges the rest.
pub fn usable_email(e: &str) -> bool {
    e.parse::<lettre::Address>().is_ok()
}

/// Digits, optionally a leading `+`, 6 to 16 of them.
pub fn usable_phone(p: &str) -> bool {
    let digits = p.strip_prefix('+').unwrap_or(p);
    (6..=16).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The variables a template sees: the request's own, plus `community`, `recipient`, `locale`
/// and `workflow` (which win over a request variable of the same name; [`CONTEXT_VARIABLES`]). Merged lazily rather
/// than copied: a reminder's variables (its bills) were deep-copied once per message.
fn template_context(
    community: &Community,
    contact: &Contact,
    locale: &str,
    req: &MessageRequest,
) -> minijinja::Value {
    let own = match &req.variables {
        serde_json::Value::Object(_) => minijinja::Value::from_serialize(&req.variables),
        serde_json::Value::Null => minijinja::Value::from(()),
        other => minijinja::context! { value => minijinja::Value::from_serialize(other) },
    };
    minijinja::context! {
        community => minijinja::context! { id => community.id, name => community.name },
        recipient => minijinja::context! { id => contact.id, name => contact.name },
        locale => locale,
        workflow => req.workflow,
        ..own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A staff callback notice by email, for tests here and in `dispatch`.
    pub(super) fn message(slot: &str, step: &str) -> OutboxMessage {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        OutboxMessage {
            id: 7,
            community: "c".into(),
            workflow: "callback_escalation".into(),
            slot: slot.into(),
            recipient: "staff:s1".into(),
            step: step.into(),
            channel: Channel::Email,
            address: "s1@example.com".into(),
            display_name: None,
            locale: "zh-CN".into(),
            category: Category::Transactional,
            template: "callback_escalation/callback_overdue".into(),
            subject: None,
            body_text: String::new(),
            body_html: None,
            sms_code: None,
            sms_params: Vec::new(),
            reason: serde_json::Value::Null,
            message_id: String::new(),
            status: Status::Pending,
            attempts: 0,
            next_attempt_at: t,
            expires_at: t,
            provider_id: None,
            last_error: None,
            created_at: t,
            updated_at: t,
            sent_at: None,
        }
    }

    /// The quiet-hours minute of a timer's or an event run's message does not depend on row
    /// ids, which differ between copies of the store; a scheduled message's seed is its key, so
    /// its minute did not move.
    #[test]
    fn the_spread_seed_leaves_out_row_ids() {
        assert_eq!(
            message("timer:12", "escalate").spread_seed(),
            message("timer:3407", "escalate").spread_seed()
        );
        assert_eq!(
            message("2027-01-01T02:00:00Z", "callback@run12").spread_seed(),
            message("2027-01-01T02:00:00Z", "callback@run98").spread_seed()
        );
        let scheduled = message("2027-01-01T02:00:00Z", "due-7d");
        assert_eq!(scheduled.spread_seed(), scheduled.idempotency_key());
        // What is not a row id still tells messages apart.
        assert_ne!(
            message("timer:12", "escalate").spread_seed(),
            message("timer:12", "escalate-2").spread_seed()
        );
        assert_ne!(
            message("2027-01-01T02:00:00Z", "x@runner").spread_seed(),
            message("2027-01-01T02:00:00Z", "x").spread_seed()
        );
    }
}
