//! What a plugin declares it needs of the workflows that run it: the `params` it reads (key,
//! type, required, description) and the templates it sends with the variables each may use.
//!
//! A plugin's params and templates belong to the community's files while the rules that read
//! them live in the plugin; without a declaration a misspelt template variable or a param of the
//! wrong type is found by the first run, at 09:00 on the day, and every run after it fails. With
//! one, `wuyed check` validates each community against it (`daemon/src/cli/check/plugin_needs.rs`).
//!
//! The declaration is TOML (the plugin's `manifest.toml`) that the SDK's `manifest!` macro writes
//! into the custom section `wuye:manifest` of the component's core module. A custom section
//! keeps the frozen WIT worlds as they are, costs the sandbox nothing, and is read here without
//! instantiating the plugin. A plugin built without it (older SDKs, the legacy test plugins)
//! simply declares nothing: it loads and runs as before, unvalidated.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The custom section the SDK's `manifest!` writes (`wuye_plugin_sdk::MANIFEST_SECTION`).
pub const SECTION: &str = "wuye:manifest";

/// A plugin's declaration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Every key the workflow's `params` table may have.
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    /// Every template the plugin may send, by its default name.
    #[serde(default)]
    pub templates: BTreeMap<String, TemplateSpec>,
}

/// One key of `params`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// A workflow without it is refused by the plugin (default: optional).
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: String,
    /// For an array: the type of every item.
    #[serde(default)]
    pub items: Option<ParamType>,
    /// For a string: the only values it may take (`manager`, `supervisor`, ...).
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    /// An integer or a float.
    Number,
    Boolean,
    Array,
    Table,
}

impl ParamType {
    fn accepts(self, v: &toml::Value) -> bool {
        matches!(
            (self, v),
            (ParamType::String, toml::Value::String(_))
                | (ParamType::Integer, toml::Value::Integer(_))
                | (
                    ParamType::Number,
                    toml::Value::Integer(_) | toml::Value::Float(_)
                )
                | (ParamType::Boolean, toml::Value::Boolean(_))
                | (ParamType::Array, toml::Value::Array(_))
                | (ParamType::Table, toml::Value::Table(_))
        )
    }

    fn describe(self) -> &'static str {
        match self {
            ParamType::String => "a string",
            ParamType::Integer => "an integer",
            ParamType::Number => "a number",
            ParamType::Boolean => "true or false",
            ParamType::Array => "an array",
            ParamType::Table => "a table",
        }
    }
}

/// One template the plugin sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    #[serde(default)]
    pub description: String,
    /// The variables the plugin sets on it, dotted (`household.label`); the daemon adds its own
    /// (`community.name`, `recipient.name`, links: `wiring::host_variables`).
    pub vars: Vec<String>,
    /// Params whose value replaces the default name (`invite_template`; `ladder.*.template`
    /// for a key of every item of an array). When the first key is set, the names found are the
    /// ones sent; an item without the last key sends the default.
    #[serde(default)]
    pub named_by: Vec<String>,
    /// Sent only when this param is set and not `false` (`remind_desk`, `notify`).
    #[serde(default)]
    pub when: Option<String>,
    /// A notice to staff rather than a message to owners (the daemon adds different links).
    #[serde(default)]
    pub staff: bool,
}

/// A problem with a workflow's `params`, located by its key (and item, for an array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamProblem {
    /// The key under `params`; empty for the table itself.
    pub key: String,
    pub index: Option<usize>,
    pub message: String,
}

/// The declaration in a component or core module: the first `wuye:manifest` section found in it
/// or in a module it embeds.
pub fn from_wasm(bytes: &[u8]) -> Result<Option<Manifest>, String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("not a wasm file: {e}"))?;
        if let wasmparser::Payload::CustomSection(c) = payload
            && c.name() == SECTION
        {
            let text = std::str::from_utf8(c.data())
                .map_err(|_| format!("its {SECTION} section is not UTF-8 text"))?;
            return parse(text)
                .map(Some)
                .map_err(|e| format!("its declaration ({SECTION} section) is unusable: {e}"));
        }
    }
    Ok(None)
}

/// Parses a declaration (the text of a plugin's `manifest.toml`).
pub fn parse(text: &str) -> Result<Manifest, String> {
    let m: Manifest = toml::from_str(text).map_err(|e| e.message().to_string())?;
    for (name, spec) in &m.params {
        if spec.items.is_some() && spec.kind != ParamType::Array {
            return Err(format!("params.{name}: `items` is for arrays"));
        }
        if !spec.values.is_empty() && spec.kind != ParamType::String {
            return Err(format!("params.{name}: `values` is for strings"));
        }
    }
    for (name, spec) in &m.templates {
        if let Some(w) = &spec.when
            && !m.params.contains_key(w)
        {
            return Err(format!("templates.{name}.when: no param {w:?} is declared"));
        }
        for path in &spec.named_by {
            let first = path.split('.').next().unwrap_or(path);
            if !m.params.contains_key(first) {
                return Err(format!(
                    "templates.{name}.named_by: no param {first:?} is declared"
                ));
            }
        }
    }
    Ok(m)
}

impl Manifest {
    /// Every problem with `params` against the declaration: an unknown key, a value of the wrong
    /// type or outside its values, a required key missing.
    pub fn check_params(&self, params: &toml::Table) -> Vec<ParamProblem> {
        let mut out = Vec::new();
        let problem = |key: &str, index, message| ParamProblem {
            key: key.to_string(),
            index,
            message,
        };
        for (key, value) in params {
            let Some(spec) = self.params.get(key) else {
                out.push(problem(
                    key,
                    None,
                    format!(
                        "unknown parameter (the plugin takes: {})",
                        names(self.params.keys())
                    ),
                ));
                continue;
            };
            if !spec.kind.accepts(value) {
                out.push(problem(
                    key,
                    None,
                    format!(
                        "expected {}, got {}{}",
                        spec.kind.describe(),
                        shown(value),
                        describe(&spec.description)
                    ),
                ));
                continue;
            }
            if let (Some(items), toml::Value::Array(a)) = (spec.items, value) {
                for (i, item) in a.iter().enumerate().filter(|(_, v)| !items.accepts(v)) {
                    out.push(problem(
                        key,
                        Some(i),
                        format!("expected {}, got {}", items.describe(), shown(item)),
                    ));
                }
            }
            if let toml::Value::String(s) = value
                && !spec.values.is_empty()
                && !spec.values.contains(s)
            {
                out.push(problem(
                    key,
                    None,
                    format!("{s:?} is not one of: {}", names(spec.values.iter())),
                ));
            }
        }
        // Top down as a reader fixes them, whatever order the table keeps its keys in.
        out.sort_by(|a, b| (&a.key, a.index).cmp(&(&b.key, b.index)));
        for (key, spec) in &self.params {
            if spec.required && !params.contains_key(key) {
                out.push(problem(
                    "",
                    None,
                    format!("`{key}` is required{}", describe(&spec.description)),
                ));
            }
        }
        out
    }

    /// The templates a workflow with these `params` may send, by the name it sends them under,
    /// with their declaration. A name two declarations share is listed once per declaration.
    pub fn templates_sent<'a>(&'a self, params: &toml::Table) -> Vec<(String, &'a TemplateSpec)> {
        let mut out = Vec::new();
        for (default, spec) in &self.templates {
            if let Some(w) = &spec.when
                && matches!(params.get(w), None | Some(toml::Value::Boolean(false)))
            {
                continue;
            }
            let mut named: Vec<String> = Vec::new();
            let mut overridden = false;
            for path in &spec.named_by {
                let keys: Vec<&str> = path.split('.').collect();
                if params.contains_key(keys[0]) {
                    overridden = true;
                    names_at(
                        &toml::Value::Table(params.clone()),
                        &keys,
                        default,
                        &mut named,
                    );
                }
            }
            if !overridden {
                named.push(default.clone());
            }
            named.sort();
            named.dedup();
            out.extend(named.into_iter().map(|n| (n, spec)));
        }
        out
    }
}

/// The strings at `keys` under `value` (`*` for every item of an array); where the table holding
/// the last key lacks it, `default`.
fn names_at(value: &toml::Value, keys: &[&str], default: &str, out: &mut Vec<String>) {
    match (keys, value) {
        ([], toml::Value::String(s)) => out.push(s.clone()),
        (["*", rest @ ..], toml::Value::Array(a)) => {
            for item in a {
                names_at(item, rest, default, out);
            }
        }
        ([key, rest @ ..], toml::Value::Table(t)) => match t.get(*key) {
            Some(v) => names_at(v, rest, default, out),
            None if rest.is_empty() => out.push(default.to_string()),
            None => {}
        },
        // A value of the wrong type is the params check's to report.
        _ => {}
    }
}

fn names<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let all: Vec<&str> = keys.map(String::as_str).collect();
    if all.is_empty() {
        "none".to_string()
    } else {
        all.join(", ")
    }
}

fn describe(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(" ({description})")
    }
}

/// A value as the message shows it: its type and, for a short scalar, itself.
fn shown(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("a string ({s:?})"),
        toml::Value::Integer(i) => format!("an integer ({i})"),
        toml::Value::Float(f) => format!("a float ({f})"),
        toml::Value::Boolean(b) => format!("a boolean ({b})"),
        toml::Value::Datetime(d) => format!("a date ({d})"),
        toml::Value::Array(_) => "an array".to_string(),
        toml::Value::Table(_) => "a table".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLARED: &str = r#"
[params.sla_hours]
type = "integer"
description = "hours the desk has"

[params.report_to]
type = "string"
values = ["supervisor", "manager"]

[params.fee_types]
type = "array"
items = "string"

[params.region]
type = "string"
required = true

[params.remind_desk]
type = "boolean"

[params.ladder]
type = "array"
items = "table"

[params.invite_template]
type = "string"

[templates.invitation]
vars = ["survey"]
named_by = ["invite_template"]

[templates.bill_notice]
vars = ["total"]
named_by = ["ladder.*.template"]

[templates.callback_due]
vars = ["ticket.id"]
when = "remind_desk"
"#;

    fn params(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn params_of_the_declared_types_pass() {
        let m = parse(DECLARED).unwrap();
        let p = params(
            r#"sla_hours = 24
report_to = "manager"
fee_types = ["property"]
region = "north""#,
        );
        assert_eq!(m.check_params(&p), vec![]);
    }

    #[test]
    fn each_params_problem_names_its_key_and_says_what_was_expected() {
        let m = parse(DECLARED).unwrap();
        let p = params(
            r#"sla_hours = "24"
report_to = "janitor"
fee_types = ["property", 3]
sla_hour = 1"#,
        );
        let got: Vec<(String, Option<usize>, String)> = m
            .check_params(&p)
            .into_iter()
            .map(|p| (p.key, p.index, p.message))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "fee_types".into(),
                    Some(1),
                    "expected a string, got an integer (3)".into()
                ),
                (
                    "report_to".into(),
                    None,
                    "\"janitor\" is not one of: supervisor, manager".into()
                ),
                (
                    "sla_hour".into(),
                    None,
                    "unknown parameter (the plugin takes: fee_types, invite_template, ladder, \
                     region, remind_desk, report_to, sla_hours)"
                        .into()
                ),
                (
                    "sla_hours".into(),
                    None,
                    "expected an integer, got a string (\"24\") (hours the desk has)".into()
                ),
                ("".into(), None, "`region` is required".into()),
            ]
        );
    }

    #[test]
    fn templates_sent_follow_the_params_that_rename_or_switch_them() {
        let m = parse(DECLARED).unwrap();
        let sent = |p: &str| -> Vec<String> {
            m.templates_sent(&params(p))
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(sent(""), ["bill_notice", "invitation"]);
        assert_eq!(
            sent(
                r#"invite_template = "invite_short"
remind_desk = true
ladder = [{ days = 0, template = "due_today" }, { days = 60 }]"#
            ),
            ["bill_notice", "due_today", "callback_due", "invite_short"]
        );
        assert_eq!(sent("remind_desk = false"), ["bill_notice", "invitation"]);
    }

    #[test]
    fn a_declaration_naming_an_undeclared_param_is_refused() {
        let e = parse("[templates.x]\nvars = []\nwhen = \"nope\"\n").unwrap_err();
        assert_eq!(e, "templates.x.when: no param \"nope\" is declared");
    }

    #[test]
    fn the_standard_plugins_declarations_parse() {
        let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../plugins");
        let read = |rel: &str| std::fs::read_to_string(plugins.join(rel)).unwrap();
        let ladder = read("fee-ladder/manifest.toml");
        for (plugin, text) in [
            ("fee-reminder", ladder.clone()),
            (
                "payment-plan-reminder",
                ladder.clone() + &read("payment-plan-reminder/manifest.toml"),
            ),
            (
                "callback-escalation",
                read("callback-escalation/manifest.toml"),
            ),
            ("quarterly-survey", read("quarterly-survey/manifest.toml")),
            ("semiannual-event", read("semiannual-event/manifest.toml")),
            ("overdue-notice", read("overdue-notice/manifest.toml")),
            ("heartbeat", read("heartbeat/manifest.toml")),
        ] {
            let m = parse(&text).unwrap_or_else(|e| panic!("{plugin}: {e}"));
            assert!(!m.templates.is_empty(), "{plugin} declares its templates");
        }
    }

    #[test]
    fn a_wasm_without_the_section_declares_nothing() {
        // The smallest valid core module: magic and version.
        assert!(from_wasm(b"\0asm\x01\0\0\0").unwrap().is_none());
        assert!(from_wasm(b"not wasm").is_err());
    }
}
