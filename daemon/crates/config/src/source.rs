//! Reading one TOML file into its typed model with every problem located, and layering the
//! `WUYE_` environment overrides on top.
//!
//! serde stops at the first error, but an administrator fixing a file wants all of them at once.
//! So a file is deserialised from toml's spanned document, and after each error the offending
//! value is pruned from the document and the read retried: an unknown key, a wrong type and a bad
//! enum value in the same file are all reported, each with its dotted key path and the line toml
//! knows. A "missing field" that only appears because a bad value was pruned is not reported
//! twice; instead its whole table is pruned. Array indices are mapped back to the file's own, so
//! `staff[2]` is the third `[[staff]]` as written even after `staff[0]` was pruned.
//!
//! Overrides go through the `config` crate (file source + `set_override` per variable) only after
//! the file passed on its own: a file must stay valid without the environment of one machine,
//! and the `config` crate converts types leniently (`name = 123` would pass), so the strict read
//! is the one that checks what administrators wrote.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::ConfigError;
use super::secret::{self, SecretSource};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted key path as administrators read it: `workflows.fee_reminder.schedule`, `staff[1].role`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    pub fn key(mut self, key: &str) -> Self {
        self.0.push(Seg::Key(key.to_string()));
        self
    }

    pub fn index(mut self, i: usize) -> Self {
        self.0.push(Seg::Index(i));
        self
    }

    /// Parses the dotted form back (`a.b[2].c`); used for the paths the loader builds itself.
    pub fn parse(dotted: &str) -> Self {
        let mut path = KeyPath::root();
        for part in dotted.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(open) = rest.find('[') {
                path = path.key(&rest[..open]);
                rest = &rest[open..];
                while let Some(close) = rest.find(']') {
                    if let Ok(i) = rest[1..close].parse() {
                        path = path.index(i);
                    }
                    rest = &rest[close + 1..];
                }
            } else {
                path = path.key(rest);
            }
        }
        path
    }

    fn from_serde(path: &serde_path_to_error::Path) -> Self {
        let mut out = KeyPath::root();
        for seg in path.iter() {
            match seg {
                serde_path_to_error::Segment::Map { key } => out = out.key(key),
                serde_path_to_error::Segment::Seq { index } => out = out.index(*index),
                serde_path_to_error::Segment::Enum { .. } => {}
                serde_path_to_error::Segment::Unknown => break,
            }
        }
        out
    }

    pub fn starts_with(&self, prefix: &KeyPath) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// 1-based line of a byte offset.
pub fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The line where `path` is written in `text`, or of its nearest written ancestor (a key that
/// was left to its default has no line of its own, but its table does).
pub fn line_of(text: &str, path: &KeyPath) -> Option<usize> {
    let (doc, _) = DeTable::parse_recoverable(text);
    let mut span: Option<Range<usize>> = None;
    let mut here: &DeTable<'_> = doc.get_ref();
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for seg in &path.0 {
        let next = match (seg, value.map(|v| v.get_ref())) {
            (Seg::Key(k), None) => here.get_key_value(k.as_str()),
            (Seg::Key(k), Some(DeValue::Table(t))) => {
                here = t;
                here.get_key_value(k.as_str())
            }
            (Seg::Index(i), Some(DeValue::Array(a))) => {
                let Some(item) = a.get(*i) else { break };
                span = Some(item.span());
                value = Some(item);
                continue;
            }
            _ => break,
        };
        let Some((key, v)) = next else { break };
        // A table's line is its header (or its key); a scalar's is where its value is written,
        // which differs for a multi-line array.
        span = Some(match v.get_ref() {
            DeValue::Table(_) => key.span(),
            _ => v.span(),
        });
        value = Some(v);
    }
    span.map(|s| line_at(text, s.start))
}

/// What reading one file produced.
pub(crate) struct Read<T> {
    /// The typed value, when the file (minus whatever was pruned) deserialised. With errors it
    /// still lets later checks report problems in the parts that were fine.
    pub value: Option<T>,
    pub errors: Vec<ConfigError>,
    /// Every secret the final read deserialised.
    pub secrets: Vec<SecretSource>,
}

/// Reads `text` (shown as `file` in messages) strictly into `T`, collecting every error.
pub(crate) fn read_strict<T: DeserializeOwned>(file: &Path, text: &str) -> Read<T> {
    let err = |key: String, line: Option<usize>, message: String| ConfigError {
        file: file.to_path_buf(),
        key,
        line,
        message,
    };
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // A file that does not parse as TOML cannot be trusted in any part.
        return Read {
            value: None,
            errors: syntax
                .iter()
                .map(|e| {
                    let line = e.span().map(|s| line_at(text, s.start));
                    err(String::new(), line, e.message().to_string())
                })
                .collect(),
            secrets: Vec::new(),
        };
    }
    let mut doc = doc.into_inner();
    let mut errors = Vec::new();
    // Pruned paths, in the file's own coordinates.
    let mut pruned: Vec<KeyPath> = Vec::new();
    // Each round prunes something, so this terminates; the cap is only a guard.
    for _ in 0..200 {
        let attempt = Spanned::new(0..text.len(), doc.clone());
        let (result, secrets) = secret::collect(|| {
            serde_path_to_error::deserialize::<_, T>(toml::de::Deserializer::from(attempt))
        });
        let e = match result {
            Ok(value) => {
                return Read {
                    value: Some(value),
                    errors: by_line(errors),
                    secrets,
                };
            }
            Err(e) => e,
        };
        let here = KeyPath::from_serde(e.path());
        let message = e.inner().message().to_string();
        let span = e.inner().span();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'));
        let at = match missing {
            Some(field) => {
                let field_path = original(&here, &pruned).key(field);
                if !pruned.contains(&field_path) {
                    // A table without a required key: its span is the table, so its line is the
                    // header, which is where the key belongs.
                    // At the top level that "table" is the whole file: no useful line.
                    let line = span
                        .filter(|_| !here.0.is_empty())
                        .map(|s| line_at(text, s.start));
                    errors.push(err(field_path.to_string(), line, message));
                }
                here
            }
            None => {
                let line = span.map(|s| line_at(text, s.start));
                errors.push(err(original(&here, &pruned).to_string(), line, message));
                here
            }
        };
        if at.0.is_empty() {
            break;
        }
        let orig = original(&at, &pruned);
        if !prune(&mut doc, &at) {
            break;
        }
        pruned.push(orig);
    }
    Read {
        value: None,
        errors: by_line(errors),
        secrets: Vec::new(),
    }
}

/// serde meets problems in its own order (maps sorted by key); people read a file top down.
fn by_line(mut errors: Vec<ConfigError>) -> Vec<ConfigError> {
    errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
    errors
}

/// Maps a path in the pruned document back to the file's own indices.
fn original(current: &KeyPath, pruned: &[KeyPath]) -> KeyPath {
    let mut out = KeyPath::root();
    for seg in &current.0 {
        match seg {
            Seg::Key(k) => out = out.key(k),
            Seg::Index(i) => {
                let mut kept = 0;
                let mut j = 0;
                loop {
                    if !pruned.contains(&out.clone().index(j)) {
                        if kept == *i {
                            break;
                        }
                        kept += 1;
                    }
                    j += 1;
                }
                out = out.index(j);
            }
        }
    }
    out
}

/// Removes the value at `path` from `doc`; false when there is nothing there to remove.
fn prune(doc: &mut DeTable<'_>, path: &KeyPath) -> bool {
    match path.0.as_slice() {
        [Seg::Key(k)] => doc.remove(k.as_str()).is_some(),
        [Seg::Key(k), rest @ ..] => doc
            .get_mut(k.as_str())
            .is_some_and(|v| prune_value(v.get_mut(), rest)),
        _ => false,
    }
}

fn prune_value<'i>(value: &mut DeValue<'i>, path: &[Seg]) -> bool {
    match (value, path) {
        (DeValue::Table(t), [Seg::Key(k)]) => t.remove(k.as_str()).is_some(),
        (DeValue::Table(t), [Seg::Key(k), rest @ ..]) => t
            .get_mut(k.as_str())
            .is_some_and(|v| prune_value(v.get_mut(), rest)),
        (DeValue::Array(a), [Seg::Index(i)]) if *i < a.len() => {
            let kept: DeArray<'i> = std::mem::replace(a, DeArray::new())
                .into_iter()
                .enumerate()
                .filter(|(j, _)| j != i)
                .map(|(_, v)| v)
                .collect();
            *a = kept;
            true
        }
        (DeValue::Array(a), [Seg::Index(i), rest @ ..]) => a
            .get_mut(*i)
            .is_some_and(|v| prune_value(v.get_mut(), rest)),
        _ => false,
    }
}

/// One `WUYE_...` variable aimed at one file, translated to a key path of that file.
#[derive(Debug, Clone)]
pub(crate) struct Override {
    pub var: String,
    pub path: KeyPath,
    pub value: String,
}

/// Layers `overrides` over `text` with the `config` crate and deserialises the result.
///
/// Errors are blamed on the variable that set the key (the file already read clean); that
/// variable is then dropped and the rest applied again, so one bad variable neither hides the
/// others' problems nor undoes their values. `None` when not even the file alone would do.
pub(crate) fn read_merged<T: DeserializeOwned>(
    file: &Path,
    text: &str,
    overrides: &[Override],
) -> (Option<(T, Vec<SecretSource>)>, Vec<ConfigError>) {
    let err = |key: String, message: String| ConfigError {
        file: file.to_path_buf(),
        key,
        line: None,
        message,
    };
    let mut errors = Vec::new();
    let mut live: Vec<&Override> = overrides.iter().collect();
    // Each round drops at least one variable, then one more round with none.
    for _ in 0..=overrides.len() {
        let Some(base) = replaced(text, &live) else {
            break;
        };
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(&base, config::FileFormat::Toml));
        let mut applied = Vec::new();
        for o in live {
            match builder
                .clone()
                .set_override(o.path.to_string(), override_value(&o.value))
            {
                Ok(b) => {
                    builder = b;
                    applied.push(o);
                }
                Err(e) => errors.push(err(
                    o.path.to_string(),
                    format!("cannot apply {}: {e}", o.var),
                )),
            }
        }
        live = applied;
        let merged = match builder.build() {
            Ok(merged) => merged,
            Err(e) => {
                let message = format!("cannot apply environment overrides: {e}");
                errors.push(err(String::new(), message));
                live.clear();
                continue;
            }
        };
        let (result, secrets) =
            secret::collect(|| serde_path_to_error::deserialize::<_, T>(merged).map_err(Box::new));
        let e = match result {
            Ok(value) => return (Some((value, secrets)), errors),
            Err(e) => e,
        };
        let path = KeyPath::from_serde(e.path());
        let (blamed, innocent): (Vec<&Override>, Vec<&Override>) = live
            .iter()
            .partition(|o| o.path.starts_with(&path) || path.starts_with(&o.path));
        let (blamed, innocent) = if blamed.is_empty() {
            (innocent, Vec::new())
        } else {
            (blamed, innocent)
        };
        let vars: Vec<&str> = blamed.iter().map(|o| o.var.as_str()).collect();
        errors.push(err(
            path.to_string(),
            format!("{} (set by {})", config_message(e.inner()), vars.join(", ")),
        ));
        if live.is_empty() {
            break;
        }
        live = innocent;
    }
    (None, errors)
}

/// `text` without the values the overrides replace, so an override replaces a table or an
/// array instead of being merged into it (`{ file = ... }` over `{ env = ... }` is a new
/// secret source, not one with both keys). None if `text` is not TOML (already reported).
fn replaced(text: &str, overrides: &[&Override]) -> Option<String> {
    fn remove(v: &mut toml::Value, path: &[Seg]) {
        match (v, path) {
            (toml::Value::Table(t), [Seg::Key(k)]) => {
                t.remove(k);
            }
            (toml::Value::Table(t), [Seg::Key(k), rest @ ..]) => {
                if let Some(v) = t.get_mut(k) {
                    remove(v, rest);
                }
            }
            (toml::Value::Array(a), [Seg::Index(i), rest @ ..]) if !rest.is_empty() => {
                if let Some(v) = a.get_mut(*i) {
                    remove(v, rest);
                }
            }
            _ => {}
        }
    }
    if overrides.is_empty() {
        return Some(text.to_string());
    }
    let mut doc = toml::Value::Table(toml::from_str::<toml::Table>(text).ok()?);
    for o in overrides {
        remove(&mut doc, &o.path.0);
    }
    toml::to_string(&doc).ok()
}

/// The `config` crate appends where a value came from; the variable is named by us instead.
fn config_message(e: &config::ConfigError) -> String {
    let text = e.to_string();
    match text.find(" for key `") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// An environment value is a string, except that a TOML array or inline table (`[...]`,
/// `{...}`) is taken as one, so lists (`notifies`) and secret sources can be overridden too.
fn override_value(raw: &str) -> config::Value {
    let trimmed = raw.trim_start();
    if (trimmed.starts_with('[') || trimmed.starts_with('{'))
        && let Ok(table) = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        && let Some(v) = table.get("v")
    {
        return toml_to_config(v);
    }
    config::Value::new(None, raw.to_string())
}

fn toml_to_config(v: &toml::Value) -> config::Value {
    use config::{Value, ValueKind};
    let kind = match v {
        toml::Value::String(s) => ValueKind::String(s.clone()),
        toml::Value::Integer(i) => ValueKind::I64(*i),
        toml::Value::Float(f) => ValueKind::Float(*f),
        toml::Value::Boolean(b) => ValueKind::Boolean(*b),
        toml::Value::Datetime(d) => ValueKind::String(d.to_string()),
        toml::Value::Array(items) => ValueKind::Array(items.iter().map(toml_to_config).collect()),
        toml::Value::Table(t) => ValueKind::Table(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_config(v)))
                .collect(),
        ),
    };
    Value::new(None, kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        id: String,
        #[serde(default)]
        staff: Vec<Person>,
        #[serde(default)]
        jobs: BTreeMap<String, Job>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Person {
        id: String,
        role: super::super::Role,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Job {
        plugin: String,
        #[serde(default)]
        retries: u32,
    }

    fn lines(read: &Read<Doc>) -> Vec<String> {
        read.errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn every_error_in_a_file_is_reported_with_key_and_line() {
        let text = "\
id = 'x'
[[staff]]
id = 'a'
role = 'ceo'
[[staff]]
id = 'b'
role = 'manager'
phone = '138'
[jobs.fee]
plugin = 'p'
retries = 'five'
[jobs.survey]
retries = 2
";
        let read: Read<Doc> = read_strict(Path::new("c.toml"), text);
        assert_eq!(
            lines(&read),
            [
                "c.toml:4: staff[0].role: unknown variant `ceo`, expected one of `customer_service`, `supervisor`, `manager`",
                "c.toml:8: staff[1].phone: unknown field `phone`, expected `id` or `role`",
                "c.toml:11: jobs.fee.retries: invalid type: string \"five\", expected u32",
                "c.toml:12: jobs.survey.plugin: missing field `plugin`",
            ]
        );
        // The parts that were fine survive, so later checks still see them.
        let doc = read.value.unwrap();
        assert_eq!(doc.staff.len(), 1);
        assert_eq!(doc.staff[0].id, "b");
    }

    #[test]
    fn syntax_errors_are_all_reported_with_lines() {
        let read: Read<Doc> = read_strict(Path::new("c.toml"), "id = 'x\nname =\n");
        assert!(read.value.is_none());
        let lines = lines(&read);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("c.toml:1: "), "{lines:?}");
        assert!(lines[1].starts_with("c.toml:2: "), "{lines:?}");
    }

    #[test]
    fn a_missing_top_level_key_has_no_line() {
        let read: Read<Doc> = read_strict(Path::new("c.toml"), "[jobs.a]\nplugin = 'p'\n");
        assert_eq!(lines(&read), ["c.toml: id: missing field `id`"]);
    }

    #[test]
    fn line_of_finds_keys_tables_and_array_items() {
        let text =
            "id = 'x'\n\n[[staff]]\nid = 'a'\n[[staff]]\nid = 'b'\n\n[jobs.fee]\nplugin = 'p'\n";
        assert_eq!(line_of(text, &KeyPath::parse("id")), Some(1));
        assert_eq!(line_of(text, &KeyPath::parse("staff[1].id")), Some(6));
        assert_eq!(line_of(text, &KeyPath::parse("jobs.fee")), Some(8));
        assert_eq!(line_of(text, &KeyPath::parse("jobs.fee.plugin")), Some(9));
        // Not written: the nearest written ancestor.
        assert_eq!(line_of(text, &KeyPath::parse("jobs.fee.retries")), Some(8));
        assert_eq!(line_of(text, &KeyPath::parse("nothing")), None);
    }

    #[test]
    fn key_paths_print_and_parse_alike() {
        for dotted in ["a", "a.b_c", "staff[2].role", "jobs.fee-x.plugin"] {
            assert_eq!(KeyPath::parse(dotted).to_string(), dotted);
        }
        assert_eq!(KeyPath::root().key("水畔").to_string(), "\"水畔\"");
    }

    #[test]
    fn overrides_replace_values_and_blame_their_variable() {
        let text = "id = 'x'\n[jobs.fee]\nplugin = 'p'\n";
        let o = |var: &str, path: &str, value: &str| Override {
            var: var.into(),
            path: KeyPath::parse(path),
            value: value.into(),
        };
        let (merged, errs) = read_merged::<Doc>(
            Path::new("c.toml"),
            text,
            &[o("V1", "jobs.fee.retries", "3"), o("V2", "id", "y")],
        );
        assert!(errs.is_empty(), "{errs:?}");
        let (doc, _) = merged.unwrap();
        assert_eq!(doc.jobs["fee"].retries, 3);
        assert_eq!(doc.id, "y");

        let (merged, errs) = read_merged::<Doc>(
            Path::new("c.toml"),
            text,
            &[
                o("WUYE_X__JOBS__FEE__RETRIES", "jobs.fee.retries", "many"),
                o("WUYE_X__ID", "id", "kept"),
            ],
        );
        // The bad variable is dropped; the good one still applies.
        assert_eq!(merged.unwrap().0.id, "kept");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "jobs.fee.retries");
        assert_eq!(errs[0].line, None);
        assert!(
            errs[0]
                .message
                .ends_with("(set by WUYE_X__JOBS__FEE__RETRIES)"),
            "{}",
            errs[0].message
        );

        let (_, errs) = read_merged::<Doc>(
            Path::new("c.toml"),
            text,
            &[o("WUYE_X__JOBS__FEE__RETRYS", "jobs.fee.retrys", "3")],
        );
        assert_eq!(
            errs[0].to_string(),
            "c.toml: jobs.fee.retrys: unknown field `retrys`, expected `plugin` or `retries` (set by WUYE_X__JOBS__FEE__RETRYS)"
        );
    }

    #[test]
    fn an_override_can_be_a_toml_list() {
        let text = "id = 'x'\n[[staff]]\nid = 'a'\nrole = 'manager'\n";
        let (merged, _) = read_merged::<Doc>(
            Path::new("c.toml"),
            text,
            &[Override {
                var: "V".into(),
                path: KeyPath::parse("staff[0].role"),
                value: "supervisor".into(),
            }],
        );
        let (doc, _) = merged.unwrap();
        assert_eq!(doc.staff[0].role, super::super::Role::Supervisor);
        assert!(matches!(
            toml_to_config(&toml::Value::Array(vec![])).kind,
            config::ValueKind::Array(_)
        ));
        assert!(matches!(
            override_value("[\"a\", \"b\"]").kind,
            config::ValueKind::Array(ref v) if v.len() == 2
        ));
        assert!(matches!(
            override_value("[not toml").kind,
            config::ValueKind::String(_)
        ));
    }

    #[test]
    fn an_override_replaces_a_table_instead_of_merging_into_it() {
        #[derive(Debug, Deserialize)]
        struct Mail {
            password: SecretSource,
        }
        let text = "password = { env = \"SMTP_PASSWORD\" }\n";
        let read = |value: &str| {
            let (merged, errs) = read_merged::<Mail>(
                Path::new("wuyed.toml"),
                text,
                &[Override {
                    var: "V".into(),
                    path: KeyPath::parse("password"),
                    value: value.into(),
                }],
            );
            assert!(errs.is_empty(), "{errs:?}");
            merged.unwrap().0.password
        };
        assert_eq!(
            read("{ file = \"/run/secrets/smtp\" }"),
            SecretSource::File {
                file: "/run/secrets/smtp".into()
            }
        );
        assert_eq!(read("plain"), SecretSource::Inline("plain".into()));
    }
}
