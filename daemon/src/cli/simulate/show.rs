//! `wuyed simulate --show-messages`: each simulated message in full, as its recipient would get
//! it.
//!
//! Nothing is rendered here. A simulated run queues its messages through the daemon's own
//! delivery path (`deliver::enqueue`: the recipient's locale, the channel and its fallback, the
//! template lookup with community overrides, strict rendering), which stores the rendered
//! subject, text, HTML and SMS in the outbox row the dispatcher later sends as it is. So the text
//! shown is read back from the rows of the simulation's copy: what the owner would read, byte
//! for byte, not a second rendering that could drift from it. (`plugin test --community` has to
//! render intents itself, having no owners or bills; here the real ones are at hand.) A template
//! that cannot render fails its run, which the failed-run list names with the template file.
//!
//! Only the messages printed are read back, after the simulation: a year of a large community
//! is hundreds of thousands of rows, and their bodies need not all be in memory at once.
//! Addresses are masked as the daemon's log masks them (PIPL): the recipient id says who it is,
//! the masked address which of their addresses, and nobody reading a terminal or a pasted
//! transcript learns an owner's phone number.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::Captured;
use crate::deliver::{Channel, OutboxMessage, Status, mask_address};

/// The outbox of each part's copy, to read rendered messages back from.
pub(super) struct Rows {
    parts: Vec<(PathBuf, Option<rusqlite::Connection>)>,
}

impl Rows {
    /// `dbs`: each part's database, in part order. Opened when first read.
    pub(super) fn open(dbs: &[PathBuf]) -> anyhow::Result<Rows> {
        Ok(Rows {
            parts: dbs.iter().map(|p| (p.clone(), None)).collect(),
        })
    }

    /// The rendered row of `m`; `None` for a recipient nobody could reach (nothing rendered).
    fn get(&mut self, m: &Captured) -> anyhow::Result<Option<OutboxMessage>> {
        let Some(id) = m.outbox_id else {
            return Ok(None);
        };
        let (path, conn) = self
            .parts
            .get_mut(m.part)
            .with_context(|| format!("no simulation part {}", m.part))?;
        let conn = match conn {
            Some(c) => c,
            None => conn.insert(crate::store::outbox::open(path)?),
        };
        let row = crate::store::outbox::read(conn, |tx| Ok(tx.outbox_get(id)?))?;
        row.map(Some)
            .with_context(|| format!("outbox row {id} of {} is gone", path.display()))
    }
}

/// How `--show-messages` prints as text.
pub(super) struct Options {
    /// At most this many messages in full (`usize::MAX`: all).
    pub limit: usize,
    /// Emails' HTML too, not just a line saying there is one.
    pub html: bool,
}

/// Which of `messages` (sorted by time) to print when at most `limit` may be, in time order:
/// first one message of each template (per community), then one of each locale and channel of
/// it, then the earliest of the rest. A month of fee reminders is thousands of near-identical
/// bills before the staff's notice or the first English one; one of each is what a reader checks
/// first, and the templates come before their variants so a small limit still shows them all.
fn pick(messages: &[Captured], limit: usize) -> Vec<usize> {
    if messages.len() <= limit {
        return (0..messages.len()).collect();
    }
    let template = |m: &Captured| {
        (
            m.community.clone(),
            m.template.clone(),
            m.outbox_id.is_some(),
        )
    };
    let variant = |m: &Captured| (template(m), m.locale.clone(), m.channel.clone());
    let mut picked: Vec<usize> = Vec::new();
    let mut taken = HashSet::new();
    let (mut templates, mut variants) = (HashSet::new(), HashSet::new());
    for (i, m) in messages.iter().enumerate() {
        if picked.len() == limit {
            break;
        }
        if templates.insert(template(m)) {
            variants.insert(variant(m));
            picked.push(i);
            taken.insert(i);
        }
    }
    for (i, m) in messages.iter().enumerate() {
        if picked.len() == limit {
            break;
        }
        if !taken.contains(&i) && variants.insert(variant(m)) {
            picked.push(i);
            taken.insert(i);
        }
    }
    let room = limit - picked.len();
    picked.extend(
        (0..messages.len())
            .filter(|i| !taken.contains(i))
            .take(room),
    );
    picked.sort_unstable();
    picked
}

/// The messages in full after the timeline: a header per message (when, community, template),
/// who and how, then the parts as the recipient sees them. Times are the community's own.
pub(super) fn print_text(
    messages: &[Captured],
    rows: &mut Rows,
    settings: &crate::config::Settings,
    options: &Options,
) -> anyhow::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let picked = pick(messages, options.limit);
    writeln!(out)?;
    if picked.len() < messages.len() {
        writeln!(
            out,
            "{} of {} message(s) in full (one of each template, then of each locale and channel, \
             first), in each community's local time:",
            picked.len(),
            messages.len()
        )?;
    } else {
        writeln!(
            out,
            "{} message(s) in full, in each community's local time:",
            messages.len()
        )?;
    }
    let approved_only = |m: &Captured| {
        settings.community(&m.community).is_some_and(|c| {
            crate::deliver::sends_approved_sms_only(&c.delivery, &settings.daemon.delivery)
        })
    };
    for (n, &i) in picked.iter().enumerate() {
        let m = &messages[i];
        let tz = settings
            .community(&m.community)
            .map_or(chrono_tz::Asia::Shanghai, |c| c.tz);
        let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
        writeln!(out)?;
        let what = if m.template.is_empty() {
            m.workflow.as_str()
        } else {
            m.template.as_str()
        };
        writeln!(
            out,
            "[{}/{}] {}  {}  {what}",
            n + 1,
            picked.len(),
            local(m.at),
            m.community
        )?;
        let Some(row) = rows.get(m)? else {
            // Listed for the desk: no address it could go to, so no message.
            writeln!(out, "  to:       {}", m.recipient)?;
            writeln!(
                out,
                "  not sent: nobody reachable ({}); listed for the desk to call",
                m.detail.as_deref().unwrap_or("no usable address")
            )?;
            continue;
        };
        writeln!(
            out,
            "  to:       {} {}",
            row.recipient,
            mask_address(row.channel, &row.address)
        )?;
        writeln!(out, "  channel:  {}, {}", row.channel, row.locale)?;
        writeln!(out, "  {}", when(&row, &local, tz))?;
        match row.channel {
            Channel::Email => {
                writeln!(
                    out,
                    "  subject:  {}",
                    row.subject.as_deref().unwrap_or_default()
                )?;
                writeln!(out, "  text:")?;
                indent(&mut out, &row.body_text)?;
                match &row.body_html {
                    Some(html) if options.html => {
                        writeln!(out, "  html:")?;
                        indent(&mut out, html)?;
                    }
                    Some(html) => writeln!(
                        out,
                        "  html:     also sent as HTML ({} line(s); --show-html prints it)",
                        html.trim_end().lines().count()
                    )?,
                    None => {}
                }
            }
            Channel::Sms => match row.sms_code.as_deref().filter(|_| approved_only(m)) {
                // What the provider gets is the code and the parameters; it sends the wording
                // it approved, of which the `sms` text (if any) is the record.
                Some(code) => {
                    let params: Vec<String> = row
                        .sms_params
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    writeln!(
                        out,
                        "  sms:      approved template {code} with {}",
                        params.join(", ")
                    )?;
                    writeln!(out, "  wording:  {}", row.body_text)?;
                }
                None => writeln!(out, "  sms:      {}", row.body_text)?,
            },
        }
    }
    let left = messages.len() - picked.len();
    if left > 0 {
        writeln!(out)?;
        writeln!(
            out,
            "{left} more message(s) not shown in full: --limit 0 shows them all (pipe to less), \
             --household ID one household's"
        )?;
    }
    out.flush()?;
    Ok(())
}

/// When the message went (or why it did not), in the community's local time.
fn when(row: &OutboxMessage, local: &dyn Fn(DateTime<Utc>) -> String, tz: chrono_tz::Tz) -> String {
    let queued = local(row.created_at);
    let why = row
        .last_error
        .as_deref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    match (row.status, row.sent_at) {
        (Status::Sent, Some(sent)) if local(sent) == queued => {
            format!("sent:     {queued} {tz}")
        }
        // Quiet hours or a provider's per-number limit held it back.
        (Status::Sent, Some(sent)) => {
            format!("sent:     {} {tz} (queued {queued})", local(sent))
        }
        (Status::Pending | Status::Deferred | Status::Failed, _) => format!(
            "waiting:  still {} when the simulation ended, next try {} {tz} (queued {queued}){why}",
            row.status,
            local(row.next_attempt_at)
        ),
        (status, _) => format!("not sent: {status} (queued {queued} {tz}){why}"),
    }
}

fn indent(out: &mut impl std::io::Write, text: &str) -> std::io::Result<()> {
    for line in text.trim_end().lines() {
        if line.trim().is_empty() {
            writeln!(out)?;
        } else {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}

/// The rendered message as `--format json --show-messages` adds it to a line.
#[derive(serde::Serialize)]
struct Full {
    /// The address, masked.
    to: String,
    locale: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    /// The email's text, or the SMS.
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sms_code: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sms_params: Vec<(String, String)>,
    /// When it goes (or went), in the community's local time (RFC 3339 with offset): the send,
    /// or the next try of one still waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    goes_at: Option<String>,
}

#[derive(serde::Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    captured: &'a Captured,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Full>,
}

/// One JSON object a line, as without `--show-messages`, each with its `message` (none for a
/// recipient nobody could reach).
pub(super) fn print_json(
    messages: &[Captured],
    rows: &mut Rows,
    settings: &crate::config::Settings,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for m in messages {
        let tz = settings
            .community(&m.community)
            .map_or(chrono_tz::Asia::Shanghai, |c| c.tz);
        let message = rows.get(m)?.map(|row| {
            let goes_at = match row.status {
                Status::Sent => row.sent_at,
                Status::Pending | Status::Deferred | Status::Failed => Some(row.next_attempt_at),
                _ => None,
            };
            Full {
                to: row.masked_address(),
                goes_at: goes_at.map(|t| t.with_timezone(&tz).to_rfc3339()),
                locale: row.locale,
                subject: row.subject,
                text: row.body_text,
                html: row.body_html,
                sms_code: row.sms_code,
                sms_params: row.sms_params,
            }
        });
        serde_json::to_writer(
            &mut out,
            &Line {
                captured: m,
                message,
            },
        )?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message queued at minute `at` of community `c` with `template`, `locale`, `channel`.
    fn message(at: i64, c: &str, template: &str, locale: &str, channel: &str) -> Captured {
        Captured {
            at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(at),
            community: c.into(),
            workflow: "fee_reminder".into(),
            template: template.into(),
            recipient: format!("household:{at}"),
            channel: channel.into(),
            subject: String::new(),
            delivery: "sent".into(),
            sent_at: None,
            detail: None,
            locale: locale.into(),
            part: 0,
            outbox_id: Some(at),
        }
    }

    #[test]
    fn a_limit_takes_each_template_then_each_variant_then_the_earliest() {
        let mut all: Vec<Captured> = (0..6)
            .map(|i| message(i, "shuipan", "bill_notice", "zh-CN", "sms"))
            .collect();
        all.push(message(6, "shuipan", "bill_notice", "en", "email"));
        all.push(message(7, "shuipan", "bill_notice", "zh-CN", "sms"));
        all.push(message(8, "shuipan", "manager_visit", "zh-CN", "email"));
        all.push(message(9, "hillside", "bill_notice", "zh-CN", "sms"));
        // Two: the first of each template of shuipan, though hillside's comes before neither.
        assert_eq!(pick(&all, 2), [0, 8]);
        // Four: every template, then the English email.
        assert_eq!(pick(&all, 4), [0, 6, 8, 9]);
        // Six: and then the earliest of the rest, in time order.
        assert_eq!(pick(&all, 6), [0, 1, 2, 6, 8, 9]);
        assert_eq!(pick(&all, 10), (0..10).collect::<Vec<_>>());
        assert_eq!(pick(&all, 99).len(), 10);
    }

    #[test]
    fn unreachable_recipients_are_a_kind_of_their_own() {
        let mut unreachable = message(1, "shuipan", "", "", "");
        unreachable.outbox_id = None;
        let all = vec![
            message(0, "shuipan", "bill_notice", "zh-CN", "sms"),
            message(0, "shuipan", "bill_notice", "zh-CN", "sms"),
            unreachable,
        ];
        assert_eq!(pick(&all, 2), [0, 2]);
    }
}
