//! Message templates (minijinja), per workflow and locale, with community overrides.
//!
//! Layout under `config/templates/`:
//! - `<workflow>/<name>.<locale>.toml`: the shipped default (`fee_reminder/bill_notice.zh-CN.toml`);
//! - `<community>/<workflow>/<name>.<locale>.toml`: that community's override.
//!
//! One file holds every form of one message: `subject`, `text` and `html` for email; `sms` (the
//! body for gateways that take text) and `sms_code` + `[[sms_params]]` for providers that only
//! send pre-approved templates (Aliyun, Tencent). A file without `sms` and `sms_code` cannot go
//! by SMS, which is how survey invitations stay email/link only (Chinese providers refuse survey
//! wording in SMS templates).
//!
//! Every template is compiled when loaded, so `wuyed check` reports a syntax error with its file,
//! key and line instead of a run failing at 09:00 on the day. `check` also holds every part
//! against the variables its workflow's plugin declares ([`Templates::undefined_variables`]):
//! rendering is strict, so a variable nobody provides fails the run that sends the message.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::ConfigError;
use wuye_core::message::Channel;

/// The variables through which the host gives a message its link to an owner page (a survey
/// invitation's `link`, an event announcement's `event.rsvp_link`), as templates write them:
/// `wuyed check` looks for them to tell whether a workflow's messages carry such links.
pub const OWNER_LINK_VARIABLES: [&str; 2] = ["link", "event.rsvp_link"];

/// What delivery gives every template besides the request's own variables (for
/// `wuyed check`, which holds templates against what their workflow provides).
pub const CONTEXT_VARIABLES: [&str; 6] = [
    "community.id",
    "community.name",
    "recipient.id",
    "recipient.name",
    "locale",
    "workflow",
];

/// One template file as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    /// Email subject (one line).
    pub subject: Option<String>,
    /// Email plain-text body.
    pub text: Option<String>,
    /// Email HTML alternative; variables are HTML-escaped.
    pub html: Option<String>,
    /// SMS body for providers that send free text (Twilio, webhook, file).
    pub sms: Option<String>,
    /// The provider's approved template code (Aliyun `SMS_123456789`, Tencent `1234567`).
    pub sms_code: Option<String>,
    /// Parameters of the approved template, in its order (Tencent takes them by position,
    /// Aliyun by name).
    #[serde(default)]
    pub sms_params: Vec<SmsParam>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmsParam {
    pub name: String,
    pub value: String,
}

/// A loaded template file.
#[derive(Debug, Clone)]
pub struct TemplateSet {
    /// Template-engine name prefix (the file's path relative to the templates folder).
    pub name: String,
    pub locale: String,
    pub file: TemplateFile,
    /// The file it was read from, as the config directory was given (for messages).
    pub path: PathBuf,
}

/// A variable a template part uses that its workflow does not provide (see
/// [`Templates::undefined_variables`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndefinedVariable {
    /// `subject`, `text`, `html`, `sms` or `sms_params.<i>`.
    pub part: String,
    /// As written, with its attribute path (`household.lable`).
    pub variable: String,
    /// Line in the file, where it could be found.
    pub line: Option<usize>,
}

impl TemplateSet {
    /// Whether this template can go by `ch`; `approved_only` is for SMS providers that send
    /// nothing but pre-approved templates (Aliyun, Tencent), which need `sms_code`.
    pub fn supports(&self, ch: Channel, approved_only: bool) -> bool {
        match ch {
            Channel::Email => self.file.subject.is_some() && self.file.text.is_some(),
            Channel::Sms if approved_only => self.file.sms_code.is_some(),
            Channel::Sms => self.file.sms.is_some() || self.file.sms_code.is_some(),
        }
    }
}

pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

pub struct RenderedSms {
    pub body: String,
    pub code: Option<String>,
    pub params: Vec<(String, String)>,
}

/// Key: (community or None for the default, workflow, name, locale).
type Key = (Option<String>, String, String, String);

/// Every template of a configuration, compiled.
pub struct Templates {
    env: Environment<'static>,
    sets: BTreeMap<Key, TemplateSet>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("sets", &self.sets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Templates {
    /// An empty set (no message can be rendered): for tests and tools that only dispatch.
    pub fn empty() -> Templates {
        Templates {
            env: new_env(),
            sets: BTreeMap::new(),
        }
    }

    /// Loads and compiles every template under `dir` (`config/templates`). A missing folder is
    /// an empty set. `communities` are the ids whose folders hold overrides.
    pub fn load(dir: &Path, communities: &[&str]) -> Result<Templates, Vec<ConfigError>> {
        let mut t = Templates::empty();
        let mut errors = Vec::new();
        for path in toml_files(dir) {
            let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
            let parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            let (community, workflow, file_name) = match parts.as_slice() {
                [w, f] => (None, w.clone(), f.clone()),
                [c, w, f] if communities.contains(&c.as_str()) => {
                    (Some(c.clone()), w.clone(), f.clone())
                }
                [c, _, _] => {
                    errors.push(err(
                        &path,
                        "",
                        None,
                        format!("folder {c:?} is not a configured community id"),
                    ));
                    continue;
                }
                _ => {
                    errors.push(err(
                        &path,
                        "",
                        None,
                        "expected templates/<workflow>/<name>.<locale>.toml or \
                         templates/<community>/<workflow>/<name>.<locale>.toml"
                            .into(),
                    ));
                    continue;
                }
            };
            let stem = file_name.trim_end_matches(".toml");
            let Some((name, locale)) = stem.split_once('.') else {
                errors.push(err(
                    &path,
                    "",
                    None,
                    "file name must be <name>.<locale>.toml (bill_notice.zh-CN.toml)".into(),
                ));
                continue;
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(err(&path, "", None, format!("cannot read: {e}")));
                    continue;
                }
            };
            let file: TemplateFile = match toml::from_str(&text) {
                Ok(f) => f,
                Err(e) => {
                    let line = e.span().map(|s| text[..s.start].lines().count().max(1));
                    errors.push(err(&path, "", line, e.message().to_string()));
                    continue;
                }
            };
            if file.subject.is_some() != file.text.is_some() {
                errors.push(err(
                    &path,
                    if file.subject.is_some() {
                        "text"
                    } else {
                        "subject"
                    },
                    None,
                    "an email needs both subject and text".into(),
                ));
            }
            if file.subject.is_none() && file.sms.is_none() && file.sms_code.is_none() {
                errors.push(err(
                    &path,
                    "",
                    None,
                    "defines neither an email (subject, text) nor an SMS (sms or sms_code)".into(),
                ));
            }
            let prefix = rel.to_string_lossy().replace('\\', "/");
            let mut ok = true;
            for (k, src) in file.parts() {
                if let Err(e) = t
                    .env
                    .add_template_owned(format!("{prefix}#{k}"), src.to_string())
                {
                    ok = false;
                    let line = e.line().map(|l| part_line(&text, &k) + l);
                    errors.push(err(&path, &k, line, template_error_text(&e)));
                }
            }
            if ok {
                t.sets.insert(
                    (community, workflow, name.to_string(), locale.to_string()),
                    TemplateSet {
                        name: prefix,
                        locale: locale.to_string(),
                        file,
                        path: path.clone(),
                    },
                );
            }
        }
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(errors)
        }
    }

    /// The template for a recipient: the community's override in their locale, the default in
    /// their locale, then the same in the community's default locale.
    pub fn find(
        &self,
        community: &str,
        workflow: &str,
        name: &str,
        locale: &str,
        community_locale: &str,
    ) -> Option<&TemplateSet> {
        for loc in [locale, community_locale] {
            for c in [Some(community.to_string()), None] {
                let key = (c, workflow.to_string(), name.to_string(), loc.to_string());
                if let Some(s) = self.sets.get(&key) {
                    return Some(s);
                }
            }
        }
        None
    }

    /// Every loaded file of `workflow`'s template `name` a recipient in `community` may get: the
    /// default and the community's override, in every locale.
    pub fn variants<'a>(
        &'a self,
        community: &'a str,
        workflow: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a TemplateSet> + 'a {
        self.sets.iter().filter_map(move |((c, w, n, _), set)| {
            (c.as_deref().is_none_or(|c| c == community) && w == workflow && n == name)
                .then_some(set)
        })
    }

    /// The variables the parts of `set` use that neither `provided` (dotted paths: `bills`,
    /// `household.label`) nor the template engine's globals (`range`, `dict`, ...) cover. A
    /// path is covered by itself, by a prefix (`bills` covers `bills.0`), or by a longer
    /// provided path (`household.label` makes `household` defined). Static: every branch counts,
    /// so a variable only some runs provide must be declared (and tested with `is defined` or
    /// `default` in the template).
    pub fn undefined_variables(
        &self,
        set: &TemplateSet,
        provided: &BTreeSet<String>,
    ) -> Vec<UndefinedVariable> {
        let globals: BTreeSet<&str> = self.env.globals().map(|(k, _)| k).collect();
        let covered = |var: &str| {
            let root = var.split('.').next().unwrap_or(var);
            globals.contains(root)
                || provided.iter().any(|p| {
                    p == var
                        || var
                            .strip_prefix(p.as_str())
                            .is_some_and(|r| r.starts_with('.'))
                        || p.strip_prefix(var).is_some_and(|r| r.starts_with('.'))
                })
        };
        let text = std::fs::read_to_string(&set.path).unwrap_or_default();
        let mut out = Vec::new();
        for (part, _) in set.file.parts() {
            let Ok(tmpl) = self.env.get_template(&format!("{}#{part}", set.name)) else {
                continue;
            };
            let mut used: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
            used.sort();
            for variable in used.into_iter().filter(|v| !covered(v)) {
                out.push(UndefinedVariable {
                    line: use_line(&text, &part, &variable),
                    part: part.clone(),
                    variable,
                });
            }
        }
        out
    }

    /// Renders one part; `vars` is converted once per message by the caller, not once per part
    /// (subject, text and html each re-serialised the whole context: a fifth of a 20,000-message
    /// run's time).
    fn render(
        &self,
        set: &TemplateSet,
        key: &str,
        vars: &minijinja::Value,
    ) -> anyhow::Result<String> {
        let name = format!("{}#{key}", set.name);
        let tmpl = self.env.get_template(&name)?;
        tmpl.render(vars)
            .map_err(|e| anyhow::anyhow!("template {name}: {}", template_error_text(&e)))
    }

    pub fn render_email(
        &self,
        set: &TemplateSet,
        vars: &minijinja::Value,
    ) -> anyhow::Result<RenderedEmail> {
        let subject = self.render(set, "subject", vars)?;
        // A subject is one line; a template's trailing newline or a variable with one must not
        // start a header injection.
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(RenderedEmail {
            subject,
            text: self.render(set, "text", vars)?,
            html: match set.file.html {
                Some(_) => Some(self.render(set, "html", vars)?),
                None => None,
            },
        })
    }

    pub fn render_sms(
        &self,
        set: &TemplateSet,
        vars: &minijinja::Value,
    ) -> anyhow::Result<RenderedSms> {
        let mut params = Vec::new();
        for (i, p) in set.file.sms_params.iter().enumerate() {
            params.push((
                p.name.clone(),
                self.render(set, &format!("sms_params.{i}"), vars)?,
            ));
        }
        let body = match set.file.sms {
            Some(_) => self.render(set, "sms", vars)?,
            // Only a template code: the body recorded is the parameters, so the outbox shows
            // what the provider received.
            None => params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        Ok(RenderedSms {
            body: body.trim().to_string(),
            code: set.file.sms_code.clone(),
            params,
        })
    }

    /// Whether any template of `workflow` (the shipped default or `community`'s override) uses
    /// one of `variables`, written as templates do (`link`, `event.rsvp_link`).
    pub fn mentions(&self, community: &str, workflow: &str, variables: &[&str]) -> bool {
        self.sets
            .iter()
            .filter(|((c, w, _, _), _)| {
                w == workflow && c.as_deref().is_none_or(|c| c == community)
            })
            .flat_map(|(_, set)| {
                let prefix = format!("{}#", set.name);
                // Collected before asking each one: `templates()` holds the environment's lock
                // while it iterates, and `undeclared_variables` takes it again (a deadlock).
                let parts: Vec<_> = self
                    .env
                    .templates()
                    .filter(|(name, _)| name.starts_with(&prefix))
                    .map(|(_, t)| t)
                    .collect();
                parts
                    .into_iter()
                    .map(|t| t.undeclared_variables(true))
                    .collect::<Vec<_>>()
            })
            .any(|used| variables.iter().any(|v| used.contains(*v)))
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

/// What `wuyed check` calls: loads every template under `<config_dir>/templates` and returns
/// each problem with file, key and line. `communities` are the configured community ids.
pub fn check_templates(config_dir: &Path, communities: &[&str]) -> Vec<ConfigError> {
    match Templates::load(&config_dir.join("templates"), communities) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

fn new_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with("#html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // A misspelt variable renders as an error at queue time (the run fails, visibly), not as an
    // empty gap in a message to an owner.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(false);
    env
}

impl TemplateFile {
    /// The parts present with their source, named as the template engine knows them after
    /// `#`: `subject`, `text`, `html`, `sms`, `sms_params.<i>`.
    fn parts(&self) -> Vec<(String, &str)> {
        let mut parts: Vec<(String, &str)> = [
            ("subject", &self.subject),
            ("text", &self.text),
            ("html", &self.html),
            ("sms", &self.sms),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.as_deref()?)))
        .collect();
        parts.extend(
            self.sms_params
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("sms_params.{i}"), p.value.as_str())),
        );
        parts
    }
}

fn template_error_text(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.to_string(),
    }
}

/// Where `part` (`text`, `sms_params.1`) starts in the TOML text: the 0-based index of its
/// `key = ` line (for `sms_params.<i>`, the `value = ` line under the i-th `[[sms_params]]`).
fn part_start(text: &str, part: &str) -> Option<usize> {
    let is_key = |line: &str, k: &str| {
        let line = line.trim_start();
        line.strip_prefix(k)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    let lines: Vec<&str> = text.lines().collect();
    match part.split_once('.') {
        Some(("sms_params", i)) => {
            let i: usize = i.parse().ok()?;
            let header = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.trim() == "[[sms_params]]")
                .nth(i)?
                .0;
            (header..lines.len()).find(|&n| is_key(lines[n], "value"))
        }
        _ => lines.iter().position(|l| is_key(l, part)),
    }
}

/// The file line (1-based) just before the template's first line: a template's line `l` is
/// file line `part_line + l`. A multi-line string opened at the end of the key's line (`text =
/// """` and a newline, which TOML drops) starts on the next line.
fn part_line(text: &str, part: &str) -> usize {
    let Some(n) = part_start(text, part) else {
        return 0;
    };
    let opens_alone = text.lines().nth(n).is_some_and(|l| {
        let l = l.trim_end();
        l.ends_with("\"\"\"") || l.ends_with("'''")
    });
    n + usize::from(opens_alone)
}

/// The file line (1-based) where `part` first uses `variable`: its first whole-word occurrence
/// from the part's key on (the engine reports no position for what it merely looks up). `None`
/// when it cannot be found as written (`household["label"]`).
fn use_line(text: &str, part: &str, variable: &str) -> Option<usize> {
    let from = part_start(text, part)?;
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    text.lines()
        .enumerate()
        .skip(from)
        .find(|(_, line)| {
            line.match_indices(variable).any(|(at, _)| {
                let before = line[..at].chars().next_back();
                let after = line[at + variable.len()..].chars().next();
                !before.is_some_and(word) && !after.is_some_and(|c| word(c) && c != '.')
            })
        })
        .map(|(n, _)| n + 1)
}

fn err(path: &Path, key: &str, line: Option<usize>, message: String) -> ConfigError {
    ConfigError {
        file: path.to_path_buf(),
        key: key.to_string(),
        line,
        message,
    }
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_names_file_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fee_reminder")).unwrap();
        std::fs::write(
            dir.path().join("fee_reminder/bill_notice.en.toml"),
            "subject = \"Bill\"\ntext = \"\"\"\nDear {{ recipient.name }},\n{% for b in bills %}\n\"\"\"\n",
        )
        .unwrap();
        let errs = Templates::load(dir.path(), &[]).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].key, "text");
        assert!(errs[0].file.ends_with("fee_reminder/bill_notice.en.toml"));
        assert!(
            errs[0].message.contains("unexpected end of input"),
            "{}",
            errs[0].message
        );
        assert!(errs[0].line.is_some());
    }

    #[test]
    fn a_syntax_error_is_placed_on_its_line_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fee_reminder")).unwrap();
        std::fs::write(
            dir.path().join("fee_reminder/bill_notice.en.toml"),
            "subject = \"Bill\"\ntext = \"\"\"\nDear owner,\nTotal: {{ total + }}\n\"\"\"\n",
        )
        .unwrap();
        let errs = Templates::load(dir.path(), &[]).unwrap_err();
        assert_eq!(
            (errs[0].key.as_str(), errs[0].line),
            ("text", Some(4)),
            "{errs:?}"
        );
    }

    #[test]
    fn undefined_variables_are_named_with_their_part_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fee_reminder")).unwrap();
        std::fs::write(
            dir.path().join("fee_reminder/bill_notice.en.toml"),
            r#"subject = "Bill for {{ household.label }}"
text = """
Dear {{ recipient.name }},
total {{ totl }}{% if late_fee is defined %}, late fee {{ late_fee }}{% endif %}
{% for b in bills %}{{ b.amount }} {{ range(2) | length }}{% endfor %}
"""

[[sms_params]]
name = "total"
value = "{{ total }}"

[[sms_params]]
name = "unit"
value = "{{ household.lable }}"
"#,
        )
        .unwrap();
        let t = Templates::load(dir.path(), &[]).unwrap();
        let set = t
            .find("c", "fee_reminder", "bill_notice", "en", "en")
            .unwrap();
        let provided: BTreeSet<String> = ["household.label", "bills", "total", "late_fee"]
            .into_iter()
            .chain(super::CONTEXT_VARIABLES)
            .map(String::from)
            .collect();
        let found: Vec<(String, String, Option<usize>)> = t
            .undefined_variables(set, &provided)
            .into_iter()
            .map(|u| (u.part, u.variable, u.line))
            .collect();
        assert_eq!(
            found,
            [
                ("text".into(), "totl".into(), Some(4)),
                ("sms_params.1".into(), "household.lable".into(), Some(14)),
            ]
        );
    }

    #[test]
    fn variants_are_the_default_and_the_community_override_in_every_locale() {
        let dir = tempfile::tempdir().unwrap();
        let sms = "sms = \"{{ total }}\"\n";
        for rel in [
            "fee_reminder/bill_notice.en.toml",
            "fee_reminder/bill_notice.zh-CN.toml",
            "lakeside/fee_reminder/bill_notice.en.toml",
            "hillside/fee_reminder/bill_notice.en.toml",
            "fee_reminder/low_balance.en.toml",
        ] {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, sms).unwrap();
        }
        let t = Templates::load(dir.path(), &["lakeside", "hillside"]).unwrap();
        let names: Vec<&str> = t
            .variants("lakeside", "fee_reminder", "bill_notice")
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "fee_reminder/bill_notice.en.toml",
                "fee_reminder/bill_notice.zh-CN.toml",
                "lakeside/fee_reminder/bill_notice.en.toml",
            ]
        );
    }

    #[test]
    fn the_shipped_templates_compile() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../config/templates");
        let t = Templates::load(&dir, &[]).unwrap_or_else(|e| panic!("{e:#?}"));
        assert!(!t.is_empty());
    }
}
