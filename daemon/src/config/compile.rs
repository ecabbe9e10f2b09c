//! From files to [`Settings`]: read every file, layer the environment, then run each rule.
//!
//! As in Vector's config compiler, each rule is a small `check_*` function that returns the
//! exact message for one value, and the orchestration here attaches the file, the dotted key
//! and the line. Nothing stops at the first problem: every file is read, every rule runs on what
//! could be read, and the [`Report`] carries all errors and warnings. `Settings` exists only when
//! there is no error, so the daemon never runs on a half-checked config.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Datelike, NaiveTime};
use chrono_tz::Tz;

use super::secret::SecretSource;
use super::source::{self, KeyPath, Override};
use super::{
    Calendar, Community, CommunityFile, ConfigError, DaemonFile, LoadOptions, NonWorkday, Report,
    Role, Schedule, Settings, Workflow,
};

/// The daemon's own file, in the config directory.
pub(crate) const DAEMON_FILE: &str = "wuyed.toml";
/// One file per community in this folder.
pub(crate) const COMMUNITIES_DIR: &str = "communities";
/// Business calendars, `<name>.toml`.
pub(crate) const CALENDARS_DIR: &str = "calendars";

/// One file as read, kept for line look-ups and blame.
struct FileDoc {
    shown: PathBuf,
    text: String,
    overrides: Vec<Override>,
}

impl FileDoc {
    /// A problem at `path` of this file. A value set by an environment variable is blamed on
    /// the variable (the file's line would point at a value that is not the one in force).
    fn at(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        let mut message = message.into();
        let set_by: Vec<&str> = self
            .overrides
            .iter()
            .filter(|o| path.starts_with(&o.path))
            .map(|o| o.var.as_str())
            .collect();
        let line = if set_by.is_empty() {
            source::line_of(&self.text, path)
        } else {
            message = format!("{message} (set by {})", set_by.join(", "));
            None
        };
        ConfigError {
            file: self.shown.clone(),
            key: path.to_string(),
            line,
            message,
        }
    }
}

struct Compiler<'a> {
    dir: &'a Path,
    options: &'a LoadOptions,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
    /// Calendars by name, loaded once; `None` when loading failed (already reported).
    calendars: BTreeMap<String, Option<Arc<Calendar>>>,
}

pub(crate) fn compile(dir: &Path, options: &LoadOptions) -> Report {
    let mut cx = Compiler {
        dir,
        options,
        errors: Vec::new(),
        warnings: Vec::new(),
        calendars: BTreeMap::new(),
    };
    let settings = cx.run();
    Report {
        settings: settings.filter(|_| cx.errors.is_empty()),
        errors: cx.errors,
        warnings: cx.warnings,
    }
}

impl Compiler<'_> {
    fn run(&mut self) -> Option<Settings> {
        if !self.dir.is_dir() {
            self.errors.push(ConfigError {
                file: self.dir.to_path_buf(),
                key: String::new(),
                line: None,
                message: "not a configuration directory (expected wuyed.toml and communities/ in it)"
                    .to_string(),
            });
            return None;
        }
        let (daemon_env, mut community_env) = self.environment();

        let daemon = self.daemon(daemon_env);
        let daemon_tz = check_timezone(&daemon.daemon.timezone).ok();

        let mut communities = Vec::new();
        let mut seen_ids: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in self.community_files() {
            let Some((doc, file)) = self.community_file(&path, &mut community_env) else {
                continue;
            };
            if let Some(first) = seen_ids.get(&file.id) {
                let message = format!(
                    "duplicate community id {:?}: {} already uses it",
                    file.id,
                    first.display()
                );
                self.errors.push(doc.at(&KeyPath::root().key("id"), message));
            } else {
                seen_ids.insert(file.id.clone(), doc.shown.clone());
            }
            if let Some(c) = self.community(&doc, file, &daemon, daemon_tz) {
                communities.push(Arc::new(c));
            }
        }
        for (id, overrides) in community_env {
            for o in overrides {
                self.errors.push(ConfigError {
                    file: PathBuf::from("environment"),
                    key: o.var.clone(),
                    line: None,
                    message: format!(
                        "no community has an id matching {id:?} (known: {})",
                        seen_ids.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        if communities.is_empty() && self.errors.is_empty() {
            self.warnings.push(ConfigError {
                file: self.dir.join(COMMUNITIES_DIR),
                key: String::new(),
                line: None,
                message: "no community is configured: the daemon will have nothing to do"
                    .to_string(),
            });
        }

        let data_dir = self.dir.join(&daemon.daemon.data_dir);
        Some(Settings {
            dir: self.dir.to_path_buf(),
            daemon,
            data_dir,
            communities,
        })
    }

    /// Splits the `WUYE_` variables into overrides of `wuyed.toml` and of communities (keyed by
    /// the id as written in the variable, uppercase).
    fn environment(&mut self) -> (Vec<Override>, BTreeMap<String, Vec<Override>>) {
        let mut daemon = Vec::new();
        let mut communities: BTreeMap<String, Vec<Override>> = BTreeMap::new();
        for (var, value) in &self.options.env {
            match parse_override(var, value) {
                Ok(None) => {}
                Ok(Some((None, o))) => daemon.push(o),
                Ok(Some((Some(id), o))) => communities.entry(id).or_default().push(o),
                Err(message) => self.errors.push(ConfigError {
                    file: PathBuf::from("environment"),
                    key: var.clone(),
                    line: None,
                    message,
                }),
            }
        }
        (daemon, communities)
    }

    /// Reads `wuyed.toml` (a missing or broken file is reported; the defaults stand in so the
    /// communities still get checked).
    fn daemon(&mut self, overrides: Vec<Override>) -> DaemonFile {
        let shown = self.dir.join(DAEMON_FILE);
        let text = match std::fs::read_to_string(&shown) {
            Ok(text) => text,
            Err(e) => {
                self.errors.push(ConfigError {
                    file: shown,
                    key: String::new(),
                    line: None,
                    message: format!("cannot read: {e}"),
                });
                return DaemonFile::default();
            }
        };
        let doc = FileDoc {
            shown,
            text,
            overrides,
        };
        let daemon = self.read::<DaemonFile>(&doc).unwrap_or_default();

        let d = &daemon.daemon;
        if let Err(m) = check_timezone(&d.timezone) {
            self.errors.push(doc.at(&KeyPath::parse("daemon.timezone"), m));
        }
        if let Err(m) = check_log_level(&d.log_level) {
            self.errors.push(doc.at(&KeyPath::parse("daemon.log_level"), m));
        }
        if let Err(m) = check_listen(&daemon.http.listen) {
            self.errors.push(doc.at(&KeyPath::parse("http.listen"), m));
        }
        daemon
    }

    /// Strict read, then overrides, then secrets; errors recorded. The value is whatever could
    /// be read (possibly with bad parts pruned), so later rules still run on the rest.
    fn read<T: serde::de::DeserializeOwned>(&mut self, doc: &FileDoc) -> Option<T> {
        let read = source::read_strict::<T>(&doc.shown, &doc.text);
        let clean = read.errors.is_empty();
        self.errors.extend(read.errors);
        let (mut value, mut secrets) = (read.value, read.secrets);
        if clean && !doc.overrides.is_empty() {
            match source::read_merged::<T>(&doc.shown, &doc.text, &doc.overrides) {
                Ok((v, s)) => {
                    value = Some(v);
                    secrets = s;
                }
                Err(errors) => self.errors.extend(errors),
            }
        }
        self.secrets(doc, &secrets);
        value
    }

    /// Every `{ env = ... }` / `{ file = ... }` secret must resolve; the message names the
    /// variable or file, never a value.
    fn secrets(&mut self, doc: &FileDoc, secrets: &[SecretSource]) {
        let env = &self.options.env;
        let lookup = |name: &str| env.get(name).cloned();
        for secret in secrets {
            match secret.resolve_with(self.dir, &lookup) {
                Ok(value) if value.expose().is_empty() => {
                    let path = find_secret(&doc.text, secret).unwrap_or_default();
                    self.warnings.push(doc.at(&path, "the secret is empty"));
                }
                Ok(_) => {}
                Err(message) => {
                    let path = find_secret(&doc.text, secret).unwrap_or_default();
                    self.errors.push(doc.at(&path, message));
                }
            }
        }
    }

    /// `communities/*.toml`, sorted by name so messages and ids come out in a stable order.
    fn community_files(&mut self) -> Vec<PathBuf> {
        let dir = self.dir.join(COMMUNITIES_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                self.errors.push(ConfigError {
                    file: dir,
                    key: String::new(),
                    line: None,
                    message: format!("cannot list community files: {e}"),
                });
                return Vec::new();
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        files
    }

    fn community_file(
        &mut self,
        shown: &Path,
        env: &mut BTreeMap<String, Vec<Override>>,
    ) -> Option<(FileDoc, CommunityFile)> {
        let text = match std::fs::read_to_string(shown) {
            Ok(text) => text,
            Err(e) => {
                self.errors.push(ConfigError {
                    file: shown.to_path_buf(),
                    key: String::new(),
                    line: None,
                    message: format!("cannot read: {e}"),
                });
                return None;
            }
        };
        // Overrides are found by the id the file declares, so peek at it first.
        let declared = toml::from_str::<toml::Table>(&text)
            .ok()
            .and_then(|t| t.get("id").and_then(|v| v.as_str().map(env_id)));
        let overrides = declared.and_then(|id| env.remove(&id)).unwrap_or_default();
        let doc = FileDoc {
            shown: shown.to_path_buf(),
            text,
            overrides,
        };
        let file = self.read::<CommunityFile>(&doc)?;
        Some((doc, file))
    }

    /// Every rule about one community; `Some` only when it passed them all.
    fn community(
        &mut self,
        doc: &FileDoc,
        file: CommunityFile,
        daemon: &DaemonFile,
        daemon_tz: Option<Tz>,
    ) -> Option<Community> {
        let errors_before = self.errors.len();
        let key = |k: &str| KeyPath::parse(k);

        if let Err(m) = check_id("community id", &file.id) {
            self.errors.push(doc.at(&key("id"), m));
        }
        if file.name.trim().is_empty() {
            self.errors.push(doc.at(&key("name"), "the name is empty"));
        }
        let tz = match &file.timezone {
            Some(name) => check_timezone(name)
                .map_err(|m| self.errors.push(doc.at(&key("timezone"), m)))
                .ok(),
            None => daemon_tz,
        };
        if let Err(m) = check_locale(&file.locale) {
            self.errors.push(doc.at(&key("locale"), m));
        }
        let calendar = match &file.calendar {
            Some(name) => self.calendar(doc, name),
            None => None,
        };
        self.hours(doc, &file);
        let staffed = self.staff(doc, &file);

        let mut workflows = Vec::new();
        for (name, wf) in &file.workflows {
            let at = KeyPath::root().key("workflows").key(name);
            if let Some(w) = self.workflow(doc, &at, name, wf, &file, daemon, &staffed, tz, &calendar)
                && wf.enabled
            {
                workflows.push(w);
            }
        }

        if self.errors.len() > errors_before {
            return None;
        }
        Some(Community {
            file: doc.shown.clone(),
            id: file.id.clone(),
            name: file.name.clone(),
            tz: tz?,
            calendar: calendar.flatten(),
            workflows,
            raw: file,
        })
    }

    /// Loads (once) the calendar `name`. The outer `None` means it could not be used (reported);
    /// `Some(None)` never occurs, the shape only keeps "not named" and "failed" apart for callers.
    fn calendar(&mut self, doc: &FileDoc, name: &str) -> Option<Option<Arc<Calendar>>> {
        let at = KeyPath::root().key("calendar");
        if let Err(m) = check_name("calendar name", name) {
            self.errors.push(doc.at(&at, m));
            return None;
        }
        if let Some(known) = self.calendars.get(name) {
            return known.clone().map(Some);
        }
        let dir = self.dir.join(CALENDARS_DIR);
        let path = dir.join(format!("{name}.toml"));
        let loaded = if !path.is_file() {
            let message = format!(
                "calendar {name:?} not found: no file {} (available: {})",
                path.display(),
                available_calendars(&dir)
            );
            self.errors.push(doc.at(&at, message));
            None
        } else {
            match (self.options.parsers.calendar)(&path) {
                Ok(cal) => {
                    if let Some(m) = check_calendar_coverage(&path, self.options.today) {
                        self.warnings.push(ConfigError {
                            file: path.clone(),
                            key: String::new(),
                            line: None,
                            message: m,
                        });
                    }
                    Some(Arc::new(cal))
                }
                Err(e) => {
                    let message = format!("calendar {name:?} ({}): {e}", path.display());
                    self.errors.push(doc.at(&at, message));
                    None
                }
            }
        };
        self.calendars.insert(name.to_string(), loaded.clone());
        loaded.map(Some)
    }

    fn hours(&mut self, doc: &FileDoc, file: &CommunityFile) {
        let mut time = |path: &str, text: &str| {
            check_hhmm(text)
                .map_err(|m| self.errors.push(doc.at(&KeyPath::parse(path), m)))
                .ok()
        };
        let open = time("reception_hours.open", &file.reception_hours.open);
        let close = time("reception_hours.close", &file.reception_hours.close);
        let start = time("quiet_hours.start", &file.quiet_hours.start);
        let end = time("quiet_hours.end", &file.quiet_hours.end);
        if let (Some(open), Some(close)) = (open, close)
            && close <= open
        {
            let message = format!(
                "reception closes ({}) before it opens ({})",
                file.reception_hours.close, file.reception_hours.open
            );
            self.errors
                .push(doc.at(&KeyPath::parse("reception_hours.close"), message));
        }
        if let (Some(start), Some(end)) = (start, end)
            && start == end
        {
            self.warnings.push(doc.at(
                &KeyPath::parse("quiet_hours"),
                "start and end are equal, so there are no quiet hours",
            ));
        }
    }

    /// Staff rules; returns the roles that have at least one member.
    fn staff(&mut self, doc: &FileDoc, file: &CommunityFile) -> BTreeSet<Role> {
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, s) in file.staff.iter().enumerate() {
            let at = KeyPath::root().key("staff").index(i);
            if let Err(m) = check_id("staff id", &s.id) {
                self.errors.push(doc.at(&at.clone().key("id"), m));
            }
            if let Some(first) = ids.insert(&s.id, i) {
                let message = format!("duplicate staff id {:?} (also staff[{first}])", s.id);
                self.errors.push(doc.at(&at.clone().key("id"), message));
            }
            if let Some(email) = &s.email
                && let Err(m) = check_email(email)
            {
                self.errors.push(doc.at(&at.clone().key("email"), m));
            }
            if let Some(phone) = &s.phone
                && let Err(m) = check_phone(phone)
            {
                self.errors.push(doc.at(&at.clone().key("phone"), m));
            }
            if s.email.is_none() && s.phone.is_none() {
                let message = format!(
                    "{:?} has neither email nor phone, so notifications cannot reach them",
                    s.id
                );
                self.warnings.push(doc.at(&at, message));
            }
        }
        for (i, s) in file.staff.iter().enumerate() {
            let Some(boss) = &s.reports_to else { continue };
            let at = KeyPath::root().key("staff").index(i).key("reports_to");
            match file.staff.iter().find(|b| &b.id == boss) {
                None => {
                    let message = format!("no staff member has id {boss:?}");
                    self.errors.push(doc.at(&at, message));
                }
                Some(b) if b.id == s.id => {
                    self.errors
                        .push(doc.at(&at, "a staff member cannot report to themselves"));
                }
                Some(b) if b.role <= s.role => {
                    let message = format!(
                        "{:?} is a {}, not above {:?} ({}): escalations go {}",
                        boss,
                        role_label(b.role),
                        s.id,
                        role_label(s.role),
                        LADDER
                    );
                    self.warnings.push(doc.at(&at, message));
                }
                Some(_) => {}
            }
        }
        file.staff.iter().map(|s| s.role).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn workflow(
        &mut self,
        doc: &FileDoc,
        at: &KeyPath,
        name: &str,
        wf: &super::WorkflowFile,
        file: &CommunityFile,
        daemon: &DaemonFile,
        staffed: &BTreeSet<Role>,
        tz: Option<Tz>,
        calendar: &Option<Option<Arc<Calendar>>>,
    ) -> Option<Workflow> {
        let errors_before = self.errors.len();
        let key = |k: &str| at.clone().key(k);
        let parsers = self.options.parsers;

        if let Err(m) = check_name("workflow name", name) {
            self.errors.push(doc.at(at, m));
        }

        let plugin_path = resolve_plugin(self.dir, &daemon.plugins.dir, &wf.plugin);
        match plugin_path {
            Err(m) => self.errors.push(doc.at(&key("plugin"), m)),
            // A disabled workflow may name a plugin that is not built yet.
            Ok(ref path) if wf.enabled => {
                if let Err(m) = check_plugin_file(path, &wf.plugin, self.options.plugin_check) {
                    self.errors.push(doc.at(&key("plugin"), m));
                }
            }
            Ok(_) => {}
        }

        let cron = match &wf.schedule {
            Some(expr) => match (parsers.cron)(expr) {
                Ok(cron) => Some(cron),
                Err(e) => {
                    let message = format!("invalid crontab expression {expr:?}: {e}");
                    self.errors.push(doc.at(&key("schedule"), message));
                    None
                }
            },
            None => None,
        };
        if wf.on_non_workday != NonWorkday::Run && file.calendar.is_none() {
            let message = format!(
                "{:?} needs a business calendar: set `calendar` (for example \"cn-mainland\") at the top of the file",
                non_workday_str(wf.on_non_workday)
            );
            self.errors.push(doc.at(&key("on_non_workday"), message));
        }
        let mut duration = |k: &str, text: &str| match (parsers.duration)(text) {
            Ok(d) if d < chrono::Duration::zero() => {
                let message = format!("invalid duration {text:?}: must not be negative");
                self.errors.push(doc.at(&key(k), message));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                let message = format!("invalid duration {text:?}: {e}");
                self.errors.push(doc.at(&key(k), message));
                None
            }
        };
        let window = duration("catch_up_window", &wf.catch_up_window);
        let jitter = duration("jitter", &wf.jitter);

        for (i, message) in check_notifies(&wf.notifies, staffed) {
            self.errors
                .push(doc.at(&key("notifies").index(i), message));
        }

        if self.errors.len() > errors_before {
            return None;
        }
        let schedule = match cron {
            Some(cron) => Some(Schedule {
                cron,
                tz: tz?,
                calendar: calendar.clone().flatten(),
                on_non_workday: wf.on_non_workday,
            }),
            None => None,
        };
        Some(Workflow {
            name: name.to_string(),
            plugin_path: plugin_path.ok()?,
            schedule,
            catch_up: wf.catch_up,
            catch_up_window: window?,
            jitter: jitter?,
            raw: wf.clone(),
        })
    }
}

/// The escalation ladder of 首问负责制, as messages print it.
const LADDER: &str = "customer_service (客服) → supervisor (主管) → manager (经理)";

fn role_label(role: Role) -> String {
    let zh = match role {
        Role::CustomerService => "客服",
        Role::Supervisor => "主管",
        Role::Manager => "经理",
    };
    format!("{} ({zh})", role.as_str())
}

/// The role a notification to `role` escalates to.
fn escalates_to(role: Role) -> Option<Role> {
    match role {
        Role::CustomerService => Some(Role::Supervisor),
        Role::Supervisor => Some(Role::Manager),
        Role::Manager => None,
    }
}

fn non_workday_str(n: NonWorkday) -> &'static str {
    match n {
        NonWorkday::Run => "run",
        NonWorkday::Skip => "skip",
        NonWorkday::Shift => "shift",
    }
}

/// Parses one `WUYE_` variable: `Ok(None)` when it is not an override, otherwise the community
/// id it targets (uppercase as written; `None` for `wuyed.toml`) and the override.
pub(crate) fn parse_override(
    var: &str,
    value: &str,
) -> Result<Option<(Option<String>, Override)>, String> {
    let Some(rest) = var.strip_prefix("WUYE_") else {
        return Ok(None);
    };
    if !rest.contains("__") {
        return Ok(None);
    }
    let parts: Vec<&str> = rest.split("__").collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("empty key between `__` separators".to_string());
    }
    let (community, keys) = if parts[0].eq_ignore_ascii_case("community") {
        if parts.len() < 3 {
            return Err("expected WUYE_COMMUNITY__<ID>__<KEY>".to_string());
        }
        (Some(parts[1].to_ascii_uppercase()), &parts[2..])
    } else {
        (None, &parts[..])
    };
    let mut path = KeyPath::root();
    for (i, part) in keys.iter().enumerate() {
        match part.parse::<usize>() {
            Ok(n) if i > 0 => path = path.index(n),
            _ => path = path.key(&part.to_ascii_lowercase()),
        }
    }
    Ok(Some((
        community,
        Override {
            var: var.to_string(),
            path,
            value: value.to_string(),
        },
    )))
}

/// A community id as an environment variable spells it: uppercase, `-` as `_`.
fn env_id(id: &str) -> String {
    id.replace('-', "_").to_ascii_uppercase()
}

/// Where in a file a secret is written: the table `{ env = ... }` or `{ file = ... }` equal to it.
fn find_secret(text: &str, secret: &SecretSource) -> Option<KeyPath> {
    fn walk(v: &toml::Value, path: KeyPath, want: &toml::Table) -> Option<KeyPath> {
        match v {
            toml::Value::Table(t) if t == want => Some(path),
            toml::Value::Table(t) => t
                .iter()
                .find_map(|(k, v)| walk(v, path.clone().key(k), want)),
            toml::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, path.clone().index(i), want)),
            _ => None,
        }
    }
    let want: toml::Table = match secret {
        SecretSource::Inline(_) => return None,
        SecretSource::Env { env } => [("env".to_string(), toml::Value::from(env.as_str()))]
            .into_iter()
            .collect(),
        SecretSource::File { file } => [(
            "file".to_string(),
            toml::Value::from(file.to_string_lossy().as_ref()),
        )]
        .into_iter()
        .collect(),
    };
    let doc: toml::Table = toml::from_str(text).ok()?;
    walk(&toml::Value::Table(doc), KeyPath::root(), &want)
}

fn available_calendars(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_string_lossy().into_owned())?
        })
        .collect();
    names.sort();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

// ---- rules: each returns the exact message for one value ----

/// Ids end up in the database, the CLI, environment variable names and idempotency keys.
pub(crate) fn check_id(what: &str, id: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} {id:?}: use 1 to 63 lowercase ASCII letters, digits and '-', starting with a letter or digit"
        ))
    }
}

/// Workflow and calendar names: like ids, `_` allowed too (`fee_reminder`, `cn-mainland`).
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} {name:?}: use lowercase ASCII letters, digits, '_' and '-'"
        ))
    }
}

pub(crate) fn check_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown timezone {name:?}: expected an IANA name such as \"Asia/Shanghai\"")
    })
}

pub(crate) fn check_hhmm(text: &str) -> Result<NaiveTime, String> {
    let well_formed = text.len() == 5 && text.as_bytes()[2] == b':';
    match NaiveTime::parse_from_str(text, "%H:%M") {
        Ok(t) if well_formed => Ok(t),
        _ => Err(format!(
            "invalid time {text:?}: expected HH:MM, 24-hour local time (\"08:30\")"
        )),
    }
}

pub(crate) fn check_locale(locale: &str) -> Result<(), String> {
    match locale {
        "zh-CN" | "en" => Ok(()),
        other => Err(format!(
            "unsupported locale {other:?}: expected \"zh-CN\" or \"en\""
        )),
    }
}

pub(crate) fn check_listen(listen: &str) -> Result<(), String> {
    if listen.is_empty() || listen.parse::<std::net::SocketAddr>().is_ok() {
        Ok(())
    } else {
        Err(format!(
            "invalid listen address {listen:?}: expected IP:PORT such as \"127.0.0.1:8760\", or \"\" to disable HTTP"
        ))
    }
}

pub(crate) fn check_log_level(filter: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(|_| ())
        .map_err(|e| format!("invalid log filter {filter:?}: {e}"))
}

/// Contact checks print the value masked: staff contacts are personal data too.
pub(crate) fn check_email(email: &str) -> Result<(), String> {
    let ok = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    }) && !email.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "not an email address: {:?}",
            crate::privacy::mask_email(email)
        ))
    }
}

pub(crate) fn check_phone(phone: &str) -> Result<(), String> {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let allowed = phone
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_digit() || c == ' ' || c == '-' || (c == '+' && i == 0));
    if allowed && (7..=15).contains(&digits) {
        Ok(())
    } else {
        Err(format!(
            "not a phone number: {:?} (7 to 15 digits, optionally +country code, spaces and '-')",
            crate::privacy::mask_phone(phone)
        ))
    }
}

/// `plugin = "fee_reminder"` is `<plugins.dir>/fee_reminder.wasm`; anything with a `/` or
/// ending in `.wasm` is a path (relative to the config directory).
pub(crate) fn resolve_plugin(dir: &Path, plugins_dir: &Path, plugin: &str) -> Result<PathBuf, String> {
    if plugin.ends_with(".wasm") || plugin.contains('/') {
        return Ok(dir.join(plugin));
    }
    check_name("plugin name", plugin)?;
    Ok(dir.join(plugins_dir).join(format!("{plugin}.wasm")))
}

pub(crate) fn check_plugin_file(
    path: &Path,
    plugin: &str,
    extra: fn(&Path) -> Result<(), String>,
) -> Result<(), String> {
    if !path.is_file() {
        let build = if plugin.ends_with(".wasm") || plugin.contains('/') {
            "check the path".to_string()
        } else {
            format!(
                "build it with `cargo build --release --target wasm32-wasip2 -p {plugin}`, or point plugins.dir in wuyed.toml at where it is"
            )
        };
        return Err(format!(
            "plugin file not found: {} ({build})",
            path.display()
        ));
    }
    extra(path).map_err(|e| format!("plugin {}: {e}", path.display()))
}

/// Each notified role must be staffed, and so must every role its notifications escalate to.
/// Returns `(index in notifies, message)`, one per missing role.
pub(crate) fn check_notifies(notifies: &[Role], staffed: &BTreeSet<Role>) -> Vec<(usize, String)> {
    let mut reported = BTreeSet::new();
    let mut out = Vec::new();
    for (i, &role) in notifies.iter().enumerate() {
        if !staffed.contains(&role) && reported.insert(role) {
            out.push((
                i,
                format!(
                    "role {} is not staffed: add a [[staff]] entry with role = {:?}",
                    role_label(role),
                    role.as_str()
                ),
            ));
        }
        let mut from = role;
        while let Some(up) = escalates_to(from) {
            if !staffed.contains(&up) && !notifies.contains(&up) && reported.insert(up) {
                out.push((
                    i,
                    format!(
                        "notifications to {} escalate to {}, which is not staffed (ladder: {LADDER})",
                        role_label(role),
                        role_label(up)
                    ),
                ));
            }
            from = up;
        }
    }
    out
}

/// A warning when the calendar file lists no date in next year: from then on every weekday
/// would count as a workday, holidays included. Reads the file's dates, whatever its layout.
pub(crate) fn check_calendar_coverage(path: &Path, today: chrono::NaiveDate) -> Option<String> {
    fn years(v: &toml::Value, out: &mut Vec<i32>) {
        match v {
            toml::Value::Datetime(d) => out.extend(d.date.map(|d| i32::from(d.year))),
            toml::Value::String(s) => {
                if let Ok(d) = chrono::NaiveDate::parse_from_str(s.get(..10).unwrap_or(""), "%Y-%m-%d") {
                    out.push(d.year());
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|v| years(v, out)),
            toml::Value::Table(t) => {
                for (k, v) in t {
                    if let Ok(y) = k.parse::<i32>()
                        && (1900..=2200).contains(&y)
                    {
                        out.push(y);
                    }
                    years(v, out);
                }
            }
            _ => {}
        }
    }
    let text = std::fs::read_to_string(path).ok()?;
    let doc: toml::Table = toml::from_str(&text).ok()?;
    let mut found = Vec::new();
    years(&toml::Value::Table(doc), &mut found);
    let next = today.year() + 1;
    let last = found.into_iter().max();
    match last {
        Some(last) if last >= next => None,
        Some(last) => Some(format!(
            "the calendar lists holidays up to {last} only: add {next} before it starts, or every weekday of {next} counts as a workday"
        )),
        None => Some(format!(
            "the calendar lists no dated holidays: add {next}, or every weekday counts as a workday"
        )),
    }
}
