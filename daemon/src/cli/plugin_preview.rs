//! `wuyed plugin test … --config DIR --community ID`: the messages an owner (or the staff) would
//! receive, rendered through the community's real templates.
//!
//! The intents a plugin returns say which template to send with which variables; whether that
//! makes a message is only known once a template renders them. Without this, a missing template
//! or a misspelt variable surfaced at the first real run, as a failed run and no message. Here
//! every message intent is rendered the way the outbox renders it (the same template lookup,
//! strict mode, the variables the daemon adds), for every locale its recipients read and every
//! channel its template offers, and any that cannot be rendered fails the command, naming the
//! template file and the reason.
//!
//! The daemon-added values a plugin never sees (personal survey and RSVP links, an event's
//! place) are shown as placeholders: they depend on the database, not on the plugin.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

use crate::config::{Community, Settings};
use crate::deliver::{Channel, TemplateSet, Templates};
use crate::plugin::data::MemoryData;
use crate::plugin::intent::{Intent, Recipient};

/// What the rendering of a run's intents produced: the text to print and the failures.
pub struct Preview {
    pub text: String,
    pub failures: Vec<String>,
}

/// Renders every message and staff-notice intent of `intents` with `community`'s templates.
/// `data` is the fixture's community, for the recipients' names and languages.
pub fn render_intents(
    settings: &Settings,
    community: &Community,
    workflow: &str,
    data: &MemoryData,
    intents: &[Intent],
) -> Preview {
    let mut out = Preview {
        text: String::new(),
        failures: Vec::new(),
    };
    let ids = [community.id.as_str()];
    let templates = match Templates::load(&settings.dir.join("templates"), &ids) {
        Ok(t) => t,
        Err(errors) => {
            out.failures.extend(errors.iter().map(|e| e.to_string()));
            return out;
        }
    };
    let community_locale = community.locale.as_str();
    let _ = writeln!(
        out.text,
        "messages (templates of {}, community {}):",
        settings.dir.join("templates").display(),
        community.id
    );
    for intent in intents {
        let (who, template, vars, readers, to_staff) = match intent {
            Intent::Send(m) => {
                let (who, readers) = readers(data, &m.to);
                (who, &m.template, &m.vars, readers, false)
            }
            Intent::NotifyStaff(n) => (
                format!("staff {}", n.role.as_str()),
                &n.template,
                &n.vars,
                vec![(format!("<{}>", n.role.as_str()), String::new())],
                true,
            ),
            _ => continue,
        };
        let declared: Vec<String> = vars.iter().map(|(k, _)| k.clone()).collect();
        let mut own = crate::wiring::template_variables(vars);
        add_placeholders(&mut own, &declared, to_staff);
        // One rendering per locale: the first recipient reading it stands for the others.
        let mut seen = BTreeSet::new();
        for (name, language) in readers {
            let locale = if language.is_empty() {
                community_locale.to_string()
            } else {
                language
            };
            if !seen.insert(locale.clone()) {
                continue;
            }
            let Some(set) =
                templates.find(&community.id, workflow, template, &locale, community_locale)
            else {
                out.failures.push(format!(
                    "{who}: no template {workflow}/{template} for locale {locale} (looked for \
                     templates/{workflow}/{template}.{locale}.toml, its community override and \
                     the {community_locale} one)"
                ));
                continue;
            };
            let context = minijinja::context! {
                community => minijinja::context! { id => community.id, name => community.name },
                recipient => minijinja::context! { id => name.clone(), name => name },
                locale => set.locale,
                workflow => workflow,
                ..minijinja::Value::from_serialize(&own)
            };
            let _ = writeln!(
                out.text,
                "  {who}: {template}, {} ({})",
                set.locale,
                set.path.display()
            );
            render_set(&templates, set, &context, &mut out);
        }
    }
    out
}

/// Who a message reaches in the fixture, and for each the name and language to render with.
fn readers(data: &MemoryData, to: &Recipient) -> (String, Vec<(String, String)>) {
    let owners: Vec<_> = match to {
        Recipient::Owner(id) => data.owners.iter().filter(|o| &o.id == id).collect(),
        Recipient::Household(id) => data.owners.iter().filter(|o| &o.household == id).collect(),
    };
    let who = match to {
        Recipient::Owner(id) => format!("owner {id}"),
        Recipient::Household(id) => format!("household {id}"),
    };
    let readers = if owners.is_empty() {
        // No owner in the fixture: the community's locale, an anonymous reader.
        vec![("<owner>".to_string(), String::new())]
    } else {
        owners
            .into_iter()
            .map(|o| (o.name.clone(), o.language.clone()))
            .collect()
    };
    (who, readers)
}

/// The values the daemon adds from its database, as visible placeholders.
fn add_placeholders(vars: &mut Value, declared: &[String], to_staff: bool) {
    let Value::Object(map) = vars else { return };
    for name in crate::wiring::host_variables(declared, to_staff) {
        let placeholder = match name {
            "link" => "<personal survey link>",
            "survey_invitation" => "<invitation>",
            "event.place" => "<event place>",
            "event.rsvp_link" => "<personal RSVP link>",
            "ticket.first_receiver" => "<first receiver>",
            // community, recipient, locale, workflow: set for each rendering.
            _ => continue,
        };
        match name.split_once('.') {
            Some((outer, inner)) => {
                let entry = map
                    .entry(outer.to_string())
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Value::Object(m) = entry {
                    m.entry(inner.to_string())
                        .or_insert_with(|| placeholder.into());
                }
            }
            None => {
                map.entry(name.to_string())
                    .or_insert_with(|| placeholder.into());
            }
        }
    }
}

fn render_set(
    templates: &Templates,
    set: &TemplateSet,
    context: &minijinja::Value,
    out: &mut Preview,
) {
    let mut any = false;
    if set.supports(Channel::Email, false) {
        any = true;
        match templates.render_email(set, context) {
            Ok(mail) => {
                let _ = writeln!(out.text, "    email subject: {}", mail.subject);
                let _ = writeln!(out.text, "    email text:");
                indent(&mut out.text, &mail.text);
                if let Some(html) = &mail.html {
                    let _ = writeln!(out.text, "    email html:");
                    indent(&mut out.text, html);
                }
            }
            Err(e) => out
                .failures
                .push(format!("{}: email: {e:#}", set.path.display())),
        }
    }
    if set.supports(Channel::Sms, false) {
        any = true;
        match templates.render_sms(set, context) {
            Ok(sms) => {
                let code = sms
                    .code
                    .as_deref()
                    .map(|c| format!(" [{c}]"))
                    .unwrap_or_default();
                let _ = writeln!(out.text, "    sms{code}: {}", sms.body);
            }
            Err(e) => out
                .failures
                .push(format!("{}: sms: {e:#}", set.path.display())),
        }
    }
    if !any {
        out.failures.push(format!(
            "{}: has neither subject and text (email) nor sms / sms_code",
            set.path.display()
        ));
    }
}

fn indent(out: &mut String, text: &str) {
    for line in text.trim_end().lines() {
        let _ = writeln!(out, "      {line}");
    }
}
