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
use wuye_schedule::{CalendarError, CronExpr, parse_duration};

use super::{
    Calendar, Community, CommunityFile, ConfigError, DaemonFile, HttpSection, LoadOptions,
    NonWorkday, Report, Role, Schedule, Settings, Workflow,
};
use crate::quiet::QuietWindow;
use wuye_core::domain::Language;

/// The daemon's own file, in the config directory.
pub const DAEMON_FILE: &str = "wuyed.toml";
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
    /// Some community file's id could not be read.
    unknown_ids: bool,
    /// `wuyed.toml` as read, for rules that need the communities first (owner links).
    daemon_doc: Option<FileDoc>,
}

/// Checks owned by other modules, run on every load once the files are read; each returns its
/// problems located like ours: the delivery settings and every message template (a template
/// error is found by `wuyed check`, not at 09:00 on the day it is first rendered).
fn module_checks(dir: &Path, daemon: &DaemonFile, ids: &[&str]) -> Vec<ConfigError> {
    let mut errors =
        crate::delivery::check_delivery_settings(&daemon.delivery, &dir.join("wuyed.toml"));
    errors.extend(crate::templates::check_templates(dir, ids));
    errors
}

pub(crate) fn compile(dir: &Path, options: &LoadOptions) -> Report {
    let mut cx = Compiler {
        dir,
        options,
        errors: Vec::new(),
        warnings: Vec::new(),
        calendars: BTreeMap::new(),
        unknown_ids: false,
        daemon_doc: None,
    };
    let settings = cx.run();
    Report {
        settings: settings.filter(|_| cx.errors.is_empty()),
        errors: top_down(cx.errors),
        warnings: top_down(cx.warnings),
    }
}

/// Files in the order they were read, each file's problems top down (the rules run in their own
/// order, but people fix a file from the top), problems without a line last.
fn top_down(mut list: Vec<ConfigError>) -> Vec<ConfigError> {
    let mut files: Vec<PathBuf> = Vec::new();
    for e in &list {
        if !files.contains(&e.file) {
            files.push(e.file.clone());
        }
    }
    list.sort_by_key(|e| {
        let file = files.iter().position(|f| f == &e.file);
        (file, e.line.unwrap_or(usize::MAX))
    });
    list
}

impl Compiler<'_> {
    fn run(&mut self) -> Option<Settings> {
        if !self.dir.is_dir() {
            self.errors.push(ConfigError {
                file: self.dir.to_path_buf(),
                key: String::new(),
                line: None,
                message:
                    "not a configuration directory (expected wuyed.toml and communities/ in it)"
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
                self.errors
                    .push(doc.at(&KeyPath::root().key("id"), message));
            } else {
                seen_ids.insert(file.id.clone(), doc.shown.clone());
            }
            for e in crate::delivery::check_community_delivery(&file, &doc.shown) {
                self.errors.push(doc.at(&KeyPath::parse(&e.key), e.message));
            }
            if let Some(c) = self.community(&doc, file, &daemon, daemon_tz) {
                communities.push(Arc::new(c));
            }
        }
        let ids: Vec<&str> = seen_ids.keys().map(String::as_str).collect();
        for e in module_checks(self.dir, &daemon, &ids) {
            // The delivery rules name their key; the line is found here, as for ours.
            let located = match &self.daemon_doc {
                Some(doc) if doc.shown == e.file && e.line.is_none() && !e.key.is_empty() => {
                    doc.at(&KeyPath::parse(&e.key), e.message)
                }
                _ => e,
            };
            self.errors.push(located);
        }
        self.owner_links(&daemon.http, &communities);
        // With a community file whose id could not be read, an override may well be meant for
        // it: its own error says what to fix first.
        let unmatched = if self.unknown_ids {
            BTreeMap::new()
        } else {
            community_env
        };
        for (id, overrides) in unmatched {
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
            // A bad name is an error above, and a configuration with errors is refused.
            tz: daemon_tz.unwrap_or(chrono_tz::Asia::Shanghai),
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
            self.errors
                .push(doc.at(&KeyPath::parse("daemon.timezone"), m));
        }
        if let Err(m) = check_log_level(&d.log_level) {
            self.errors
                .push(doc.at(&KeyPath::parse("daemon.log_level"), m));
        }
        if let Err(m) = check_listen(&daemon.http.listen) {
            self.errors.push(doc.at(&KeyPath::parse("http.listen"), m));
        }
        self.api_tokens(&doc, &daemon.http.tokens);
        self.http(&doc, &daemon.http);
        self.daemon_doc = Some(doc);
        daemon
    }

    /// Each API token passes the rule the daemon applies when it starts the API
    /// (`crate::http::check_token`), so `check` rejects what `run` would. One that cannot be
    /// read was reported by [`Compiler::secrets`].
    fn api_tokens(&mut self, doc: &FileDoc, tokens: &[crate::http::ApiToken]) {
        if !self.options.resolve_secrets {
            return;
        }
        let env = &self.options.env;
        let lookup = |name: &str| env.get(name).cloned();
        for (i, t) in tokens.iter().enumerate() {
            if let Ok(secret) = t.token.resolve_with(self.dir, &lookup)
                && let Err(m) = crate::http::check_token(secret.expose())
            {
                let at = KeyPath::parse("http.tokens").index(i).key("token");
                self.errors
                    .push(doc.at(&at, format!("token {:?}: {m}", t.name)));
            }
        }
    }

    /// `[http]`: where the owner pages are served, the address their links use, and the
    /// timeouts and connection limit of the listeners (`crate::http::HttpLimits`, the rule the
    /// daemon applies as it starts serving).
    fn http(&mut self, doc: &FileDoc, http: &HttpSection) {
        if let Err(errors) = crate::http::HttpLimits::from_section(http) {
            for (key, m) in errors {
                self.errors.push(doc.at(&KeyPath::parse(key), m));
            }
        }
        if let Err(m) = check_public_listen(&http.public_listen, &http.listen) {
            self.errors
                .push(doc.at(&KeyPath::parse("http.public_listen"), m));
        }
        if let Some(url) = &http.public_url {
            let at = KeyPath::parse("http.public_url");
            match check_public_url(url) {
                Ok(None) => {}
                Ok(Some(warning)) => self.warnings.push(doc.at(&at, warning)),
                Err(m) => self.errors.push(doc.at(&at, m)),
            }
        }
    }

    /// Warns when the links in owners' messages would point where owners cannot follow them
    /// (see [`check_owner_links`]). Which workflows send such links is read from their
    /// templates; broken templates are reported by their own check.
    fn owner_links(&mut self, http: &HttpSection, communities: &[Arc<Community>]) {
        let Some(doc) = &self.daemon_doc else { return };
        let ids: Vec<&str> = communities.iter().map(|c| c.id.as_str()).collect();
        let senders: Vec<String> =
            match crate::templates::Templates::load(&self.dir.join("templates"), &ids) {
                Ok(templates) => communities
                    .iter()
                    .flat_map(|c| {
                        c.workflows
                            .iter()
                            .filter(|w| {
                                templates.mentions(
                                    &c.id,
                                    &w.name,
                                    &crate::templates::OWNER_LINK_VARIABLES,
                                )
                            })
                            .map(|w| format!("{}/{}", c.id, w.name))
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
        if let Some(m) = check_owner_links(http, &senders) {
            self.warnings
                .push(doc.at(&KeyPath::parse("http.public_url"), m));
        }
    }

    /// Strict read, then overrides, then secrets; errors recorded. The value is whatever could
    /// be read (possibly with bad parts pruned), so later rules still run on the rest.
    fn read<T: serde::de::DeserializeOwned>(&mut self, doc: &FileDoc) -> Option<T> {
        let read = source::read_strict::<T>(&doc.shown, &doc.text);
        let clean = read.errors.is_empty();
        self.errors.extend(read.errors);
        let (mut value, mut secrets) = (read.value, read.secrets);
        if clean && !doc.overrides.is_empty() {
            let (merged, errors) = source::read_merged::<T>(&doc.shown, &doc.text, &doc.overrides);
            self.errors.extend(errors);
            if let Some((v, s)) = merged {
                value = Some(v);
                secrets = s;
            }
        }
        self.secrets(doc, &secrets);
        value
    }

    /// Every `{ env = ... }` / `{ file = ... }` secret must resolve (when the command needs
    /// them, [`LoadOptions::resolve_secrets`]); the message names the variable or file, never a
    /// value.
    fn secrets(&mut self, doc: &FileDoc, secrets: &[SecretSource]) {
        if !self.options.resolve_secrets {
            return;
        }
        let env = &self.options.env;
        let lookup = |name: &str| env.get(name).cloned();
        // In the file, or else set by a variable (`WUYE_..._PASSWORD='{ env = "X" }'`).
        let locate = |secret: &SecretSource| {
            find_secret(&doc.text, secret)
                .or_else(|| {
                    doc.overrides
                        .iter()
                        .find(|o| find_secret(&format!("v = {}", o.value), secret).is_some())
                        .map(|o| o.path.clone())
                })
                .unwrap_or_default()
        };
        for secret in secrets {
            match secret.resolve_with(self.dir, &lookup) {
                Ok(value) if value.expose().is_empty() => {
                    self.warnings
                        .push(doc.at(&locate(secret), "the secret is empty"));
                }
                Ok(_) => {}
                Err(message) => {
                    self.errors.push(doc.at(&locate(secret), message));
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
                self.unknown_ids = true;
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
        self.unknown_ids |= declared.is_none();
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
        let locale = check_locale(&file.locale)
            .map_err(|m| self.errors.push(doc.at(&key("locale"), m)))
            .ok();
        let calendar = match &file.calendar {
            Some(name) => self.calendar(doc, name),
            None => None,
        };
        let quiet = self.hours(doc, &file);
        let staffed = self.staff(doc, &file);

        let mut workflows = Vec::new();
        for (name, wf) in &file.workflows {
            let at = KeyPath::root().key("workflows").key(name);
            if let Some(w) =
                self.workflow(doc, &at, name, wf, &file, daemon, &staffed, tz, &calendar)
                && wf.enabled
            {
                workflows.push(w);
            }
        }

        if self.errors.len() > errors_before {
            return None;
        }
        // Staff phones may be written `138 0000 0001` (checked above); delivery wants the number
        // itself, as owners' phones are stored by import, or it finds no usable phone and lists
        // the person as unreachable.
        let CommunityFile {
            id,
            name,
            mut staff,
            limits,
            delivery,
            workflows: mut written,
            ..
        } = file;
        let callback_params = written.remove("callback_escalation").map(|w| w.params);
        for s in &mut staff {
            if let Some(phone) = &mut s.phone {
                phone.retain(|c| c.is_ascii_digit() || c == '+');
            }
        }
        let delivery = delivery.unwrap_or_default();
        let tz = tz?;
        let (start, end) = quiet?;
        Some(Community {
            file: doc.shown.clone(),
            id,
            name,
            tz,
            calendar: calendar.flatten(),
            locale: locale?,
            quiet: QuietWindow { tz, start, end },
            quiet_spread: delivery
                .quiet_spread
                .unwrap_or(daemon.delivery.quiet_spread),
            staff,
            limits,
            delivery,
            workflows,
            callback_params,
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
            match Calendar::load(&path) {
                Ok(cal) => {
                    // Through the end of next year: next year's holidays are published late in
                    // the year before, and a community should hear about it before January.
                    let today = self.options.today;
                    let end = chrono::NaiveDate::from_ymd_opt(today.year() + 1, 12, 31);
                    if let Some(m) = end.and_then(|end| cal.coverage_warning(today, end)) {
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
                    // The calendar's own error names its file, key and line: report it there,
                    // and say which community wanted the calendar.
                    match e.downcast_ref::<CalendarError>() {
                        Some(ce) => self.errors.push(ConfigError {
                            file: PathBuf::from(&ce.file),
                            key: ce.key.clone(),
                            line: ce.line,
                            message: ce.message.clone(),
                        }),
                        None => self.errors.push(ConfigError {
                            file: path.clone(),
                            key: String::new(),
                            line: None,
                            message: format!("{e:#}"),
                        }),
                    }
                    let message =
                        format!("calendar {name:?} cannot be used (see {})", path.display());
                    self.errors.push(doc.at(&at, message));
                    None
                }
            }
        };
        self.calendars.insert(name.to_string(), loaded.clone());
        loaded.map(Some)
    }

    /// Reception and quiet hours; returns the quiet window's start and end when both parse.
    fn hours(&mut self, doc: &FileDoc, file: &CommunityFile) -> Option<(NaiveTime, NaiveTime)> {
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
        Some((start?, end?))
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

        if let Err(m) = check_name("workflow name", name) {
            self.errors.push(doc.at(at, m));
        }

        let plugin_path = resolve_plugin(self.dir, &daemon.plugins.dir, &wf.plugin);
        match plugin_path {
            Err(ref m) => self.errors.push(doc.at(&key("plugin"), m.clone())),
            // A disabled workflow may name a plugin that is not built yet.
            Ok(ref path) if wf.enabled => {
                if let Err(m) = check_plugin_file(path, &wf.plugin, self.options.plugin_check) {
                    self.errors.push(doc.at(&key("plugin"), m));
                }
            }
            Ok(_) => {}
        }

        let cron = match &wf.schedule {
            Some(expr) => match CronExpr::parse(expr) {
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
        // The parser never yields a negative duration: it takes no sign.
        let mut duration = |k: &str, text: &str| {
            parse_duration(text)
                .map_err(|m| self.errors.push(doc.at(&key(k), m)))
                .ok()
        };
        let window = duration("catch_up_window", &wf.catch_up_window);
        let jitter = duration("jitter", &wf.jitter);

        for (i, message) in check_notifies(&wf.notifies, staffed) {
            self.errors.push(doc.at(&key("notifies").index(i), message));
        }
        for (i, pattern) in wf.events.iter().enumerate() {
            if let Err(message) = check_event_pattern(pattern) {
                self.errors.push(doc.at(&key("events").index(i), message));
            }
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
            notifies: wf.notifies.clone(),
            events: wf.events.clone(),
            params: wf.params.clone(),
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
            if p.extension()? != "toml" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
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

/// Exactly as the templates' file names spell it (`bill_notice.zh-CN.toml`), so only these two.
pub(crate) fn check_locale(locale: &str) -> Result<Language, String> {
    match locale {
        "zh-CN" => Ok(Language::ZhCn),
        "en" => Ok(Language::En),
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

/// `http.public_listen`: empty (owner pages stay on `listen`) or an address of its own.
pub(crate) fn check_public_listen(public: &str, listen: &str) -> Result<(), String> {
    if public.is_empty() {
        return Ok(());
    }
    let Ok(addr) = public.parse::<std::net::SocketAddr>() else {
        return Err(format!(
            "invalid listen address {public:?}: expected IP:PORT such as \"0.0.0.0:8761\", or \"\" to serve the owner pages on http.listen"
        ));
    };
    // Two sockets on one port clash when their IPs are equal or either is a wildcard.
    if let Ok(api) = listen.parse::<std::net::SocketAddr>()
        && api.port() == addr.port()
        && addr.port() != 0
        && (api.ip() == addr.ip() || api.ip().is_unspecified() || addr.ip().is_unspecified())
    {
        return Err(format!(
            "{public:?} clashes with http.listen = {listen:?}: give the owner pages a port of their own, or set \"\" to serve them on http.listen"
        ));
    }
    Ok(())
}

/// `http.public_url`: an absolute http(s) URL that `/survey/<token>` can be appended to. `Ok(Some)`
/// is a warning: plain http to a host other than this machine.
pub(crate) fn check_public_url(text: &str) -> Result<Option<String>, String> {
    const EXAMPLE: &str = "an absolute URL such as \"https://wuye.example.com\"";
    let url = url::Url::parse(text)
        .map_err(|e| format!("invalid URL {text:?} ({e}): expected {EXAMPLE}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(format!(
            "{text:?} is not a web address owners can open: expected {EXAMPLE}"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{text:?} has a query or fragment, but links are made by appending /survey/<token>: give the address alone (a path such as \"https://example.com/wuye\" is fine)"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{:?} carries a user name or password, which every owner's link would show: remove it",
            url.host_str().unwrap_or_default()
        ));
    }
    if url.scheme() == "http" && !is_local(&url) {
        return Ok(Some(format!(
            "{text:?} is plain http: each link carries a household's personal survey or RSVP token, readable by anyone on the way; use https (TLS at a reverse proxy, see docs/OPERATION.md)"
        )));
    }
    Ok(None)
}

/// A URL only this machine can open: `localhost`, a loopback or a wildcard address.
fn is_local(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
        None => true,
    }
}

/// The owner links of messages sent by `senders` (`community/workflow`): a warning when they
/// would point where owners cannot follow them (no `public_url` set, or one on this machine).
pub(crate) fn check_owner_links(http: &HttpSection, senders: &[String]) -> Option<String> {
    const SET_IT: &str = "set http.public_url in wuyed.toml to the address owners open the owner pages at (for example \"https://wuye.example.com\")";
    let which = match senders {
        [] => String::new(),
        [a] => format!(" of {a}"),
        [a, b] => format!(" of {a} and {b}"),
        [a, b, rest @ ..] => format!(" of {a}, {b} and {} more", rest.len()),
    };
    match &http.public_url {
        None if senders.is_empty() => None,
        None if http.owner_listen().is_empty() => Some(format!(
            "not set, and HTTP is off (http.listen = \"\"), so the survey and RSVP links in messages{which} lead nowhere: serve the owner pages and {SET_IT}"
        )),
        None => {
            let base = http.owner_base_url();
            let reach = match url::Url::parse(&base) {
                Ok(u) if is_local(&u) => "which only this machine can open",
                _ => "the daemon's own address, not one meant for owners",
            };
            Some(format!(
                "not set, so the survey and RSVP links in messages{which} point at {base}, {reach}: {SET_IT}"
            ))
        }
        Some(url) => match url::Url::parse(url) {
            Ok(u) if is_local(&u) => Some(format!(
                "{url:?} is an address of this machine, so the links in owners' messages{which} only open here: {SET_IT}"
            )),
            _ => None,
        },
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
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    }) && !email.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "not an email address: {:?}",
            wuye_core::privacy::mask_email(email)
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
            wuye_core::privacy::mask_phone(phone)
        ))
    }
}

/// `plugin = "fee_reminder"` is `<plugins.dir>/fee_reminder.wasm`; anything with a `/` or
/// ending in `.wasm` is a path (relative to the config directory).
pub(crate) fn resolve_plugin(
    dir: &Path,
    plugins_dir: &Path,
    plugin: &str,
) -> Result<PathBuf, String> {
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
                "build it with `cargo build --release --target wasm32-wasip2 -p {}` (crates use '-' where files use '_'; ./scripts/build-plugins.sh builds them all), or point plugins.dir in wuyed.toml at where it is",
                plugin.replace('_', "-")
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
/// An `events` entry: a kind the daemon emits, a family (`payment.*`) or `*`. A typo here would
/// silently leave a workflow deaf, so unknown kinds are errors.
pub(crate) fn check_event_pattern(pattern: &str) -> Result<(), String> {
    const KINDS: &[&str] = &wuye_core::domain::event_kind::ALL;
    let known = match pattern.strip_suffix('*') {
        Some(prefix) => prefix.is_empty() || KINDS.iter().any(|k| k.starts_with(prefix)),
        None => KINDS.contains(&pattern),
    };
    if known {
        Ok(())
    } else {
        Err(format!(
            "unknown event {pattern:?}: expected one of {}, a family such as \"payment.*\", or \"*\"",
            KINDS.join(", ")
        ))
    }
}

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

#[cfg(test)]
mod event_pattern_tests {
    use super::check_event_pattern;

    #[test]
    fn event_subscriptions_must_name_events_the_daemon_emits() {
        assert!(check_event_pattern("ticket.closed").is_ok());
        assert!(check_event_pattern("payment.*").is_ok());
        assert!(check_event_pattern("*").is_ok());
        let err = check_event_pattern("ticket.close").unwrap_err();
        assert!(
            err.starts_with("unknown event \"ticket.close\": expected one of ticket.opened"),
            "{err}"
        );
        assert!(check_event_pattern("import.*").is_ok(), "import.bills");
        assert!(check_event_pattern("invoice.*").is_err());
    }
}

#[cfg(test)]
mod http_tests {
    use super::{HttpSection, check_owner_links, check_public_listen, check_public_url};

    #[test]
    fn public_url_is_an_absolute_web_address_links_can_be_appended_to() {
        assert_eq!(check_public_url("https://wuye.example.com"), Ok(None));
        assert_eq!(check_public_url("https://example.com/wuye/"), Ok(None));
        // This machine's own address is not this rule's business (see owner links).
        assert_eq!(check_public_url("http://127.0.0.1:8760"), Ok(None));
        assert_eq!(
            check_public_url("not-a-url").unwrap_err(),
            "invalid URL \"not-a-url\" (relative URL without a base): expected an absolute URL such as \"https://wuye.example.com\""
        );
        assert_eq!(
            check_public_url("ftp://wuye.example.com").unwrap_err(),
            "\"ftp://wuye.example.com\" is not a web address owners can open: expected an absolute URL such as \"https://wuye.example.com\""
        );
        for bad in [
            "/survey",
            "wuye.example.com",
            "mailto:desk@example.com",
            "https://wuye.example.com/?from=sms",
            "https://wuye.example.com/#top",
            "https://desk:hunter2@wuye.example.com",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
        // A password in the URL is not repeated in the message.
        let m = check_public_url("https://desk:hunter2@wuye.example.com").unwrap_err();
        assert!(!m.contains("hunter2"), "{m}");
        let warning = check_public_url("http://wuye.example.com")
            .unwrap()
            .unwrap();
        assert!(
            warning.starts_with("\"http://wuye.example.com\" is plain http: "),
            "{warning}"
        );
    }

    #[test]
    fn public_listen_is_an_address_of_its_own() {
        assert_eq!(check_public_listen("", "127.0.0.1:8760"), Ok(()));
        assert_eq!(
            check_public_listen("127.0.0.1:8761", "127.0.0.1:8760"),
            Ok(())
        );
        assert_eq!(check_public_listen("0.0.0.0:8761", ""), Ok(()));
        assert_eq!(check_public_listen("127.0.0.1:0", "127.0.0.1:0"), Ok(()));
        assert_eq!(
            check_public_listen("0.0.0.0:8760", "127.0.0.1:8760").unwrap_err(),
            "\"0.0.0.0:8760\" clashes with http.listen = \"127.0.0.1:8760\": give the owner pages a port of their own, or set \"\" to serve them on http.listen"
        );
        assert!(check_public_listen("127.0.0.1:8760", "127.0.0.1:8760").is_err());
        assert_eq!(
            check_public_listen("localhost:8761", "").unwrap_err(),
            "invalid listen address \"localhost:8761\": expected IP:PORT such as \"0.0.0.0:8761\", or \"\" to serve the owner pages on http.listen"
        );
    }

    #[test]
    fn owner_links_are_warned_about_only_where_owners_cannot_follow_them() {
        let http = |url: Option<&str>, listen: &str, public: &str| HttpSection {
            listen: listen.into(),
            public_listen: public.into(),
            tokens: Vec::new(),
            public_url: url.map(str::to_string),
            ..HttpSection::default()
        };
        let one = ["a/quarterly_survey".to_string()];
        let four: Vec<String> = ["a/x", "a/y", "b/x", "b/y"].map(String::from).into();
        // No message carries a link, or they carry public_url's: nothing to say.
        assert_eq!(
            check_owner_links(&http(None, "127.0.0.1:8760", ""), &[]),
            None
        );
        assert_eq!(
            check_owner_links(
                &http(Some("https://wuye.example.com"), "127.0.0.1:8760", ""),
                &four
            ),
            None
        );
        // Unset: the links fall back to where the owner pages are served.
        let m = check_owner_links(&http(None, "0.0.0.0:8760", "127.0.0.1:8761"), &one).unwrap();
        assert!(
            m.starts_with("not set, so the survey and RSVP links in messages of a/quarterly_survey point at http://127.0.0.1:8761, which only this machine can open: set http.public_url"),
            "{m}"
        );
        let m = check_owner_links(&http(None, "192.168.1.20:8760", ""), &four).unwrap();
        assert!(
            m.contains(" of a/x, a/y and 2 more point at http://192.168.1.20:8760, the daemon's own address, not one meant for owners: "),
            "{m}"
        );
        let m = check_owner_links(&http(None, "", ""), &one).unwrap();
        assert!(m.contains("HTTP is off"), "{m}");
        // Set to this machine: said even before any workflow sends links.
        for local in [
            "http://localhost:8760",
            "http://[::1]:8760/",
            "https://0.0.0.0",
        ] {
            let m = check_owner_links(&http(Some(local), "127.0.0.1:8760", ""), &[]).unwrap();
            assert!(m.contains("is an address of this machine"), "{local}: {m}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wuye_schedule::CronExpr;

    /// A config directory in a tempdir: wuyed.toml pointing plugins.dir at `plugins/` with an
    /// (empty) heartbeat.wasm, the shipped cn-mainland calendar, and the communities a test adds.
    struct Fixture {
        dir: tempfile::TempDir,
        env: BTreeMap<String, String>,
    }

    const DAEMON: &str = "[daemon]\ntimezone = \"Asia/Shanghai\"\n\n[plugins]\ndir = \"plugins\"\n";

    /// A community that passes every check; tests break one thing at a time.
    const GOOD: &str = r#"id = "lakeside"
name = "湖畔"
calendar = "cn-mainland"

[[staff]]
id = "a"
name = "A"
role = "customer_service"
phone = "138 0000 0001"

[[staff]]
id = "b"
name = "B"
role = "supervisor"
email = "b@example.com"

[[staff]]
id = "c"
name = "C"
role = "manager"
email = "c@example.com"

[workflows.heartbeat]
plugin = "heartbeat"
schedule = "*/30 8-20 * * *"
notifies = ["customer_service"]
"#;

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            std::fs::write(root.join(DAEMON_FILE), DAEMON).unwrap();
            std::fs::create_dir_all(root.join(COMMUNITIES_DIR)).unwrap();
            std::fs::create_dir_all(root.join("plugins")).unwrap();
            std::fs::write(root.join("plugins/heartbeat.wasm"), b"").unwrap();
            std::fs::create_dir_all(root.join(CALENDARS_DIR)).unwrap();
            let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../config/calendars/cn-mainland.toml");
            std::fs::copy(shipped, root.join("calendars/cn-mainland.toml")).unwrap();
            Fixture {
                dir,
                env: BTreeMap::new(),
            }
        }

        fn write(&self, rel: &str, text: &str) -> &Self {
            std::fs::write(self.dir.path().join(rel), text).unwrap();
            self
        }

        fn community(&self, name: &str, text: &str) -> &Self {
            self.write(&format!("communities/{name}.toml"), text)
        }

        fn env(mut self, var: &str, value: &str) -> Self {
            self.env.insert(var.into(), value.into());
            self
        }

        fn report(&self) -> Report {
            let options = LoadOptions {
                env: self.env.clone(),
                plugin_check: super::super::plugin_exists,
                // Next year (2026) is covered by the shipped calendar: no warning.
                today: chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(),
                resolve_secrets: true,
            };
            compile(self.dir.path(), &options)
        }

        /// Errors as `wuyed check` prints them, with the tempdir prefix removed.
        fn errors(&self) -> Vec<String> {
            self.lines(&self.report().errors)
        }

        fn warnings(&self) -> Vec<String> {
            self.lines(&self.report().warnings)
        }

        fn lines(&self, list: &[ConfigError]) -> Vec<String> {
            let prefix = format!("{}/", self.dir.path().display());
            list.iter()
                .map(|e| e.to_string().replace(&prefix, ""))
                .collect()
        }
    }

    /// GOOD with `from` replaced by `to` (which must occur).
    fn good_with(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "{from:?} not in GOOD");
        GOOD.replacen(from, to, 1)
    }

    #[test]
    fn a_good_community_compiles_to_settings() {
        let f = Fixture::new();
        f.community("lakeside", GOOD);
        let report = f.report();
        assert_eq!(f.lines(&report.errors), Vec::<String>::new());
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        let settings = report.settings.unwrap();
        assert_eq!(settings.data_dir, f.dir.path().join("data"));
        let c = settings.community("lakeside").unwrap();
        assert_eq!(c.tz, chrono_tz::Asia::Shanghai);
        assert_eq!(c.calendar.as_ref().unwrap().name, "cn-mainland");
        let w = c.workflow("heartbeat").unwrap();
        assert_eq!(w.plugin_path, f.dir.path().join("plugins/heartbeat.wasm"));
        assert_eq!(w.catch_up_window, chrono::Duration::days(1));
        assert_eq!(w.jitter, chrono::Duration::zero());
        // The schedule runs in the community's zone: 08:00 Shanghai is 00:00 UTC.
        let next = w
            .schedule
            .as_ref()
            .unwrap()
            .next_after("2026-03-02T23:00:00Z".parse().unwrap())
            .unwrap();
        assert_eq!(next.to_rfc3339(), "2026-03-03T00:00:00+00:00");
    }

    #[test]
    fn plugin_params_reach_the_settings_as_written() {
        let f = Fixture::new();
        f.community(
            "lakeside",
            &format!(
                "{GOOD}\n[workflows.heartbeat.params]\nfirst = 2026-01-05\ntiers = [30, 60]\nGreeting = {{ zh = \"您好\" }}\n"
            ),
        );
        let settings = f.report().settings.unwrap();
        let params = &settings.communities[0].workflows[0].params;
        assert_eq!(
            params["first"].as_datetime().unwrap().to_string(),
            "2026-01-05"
        );
        assert_eq!(params["tiers"].as_array().unwrap().len(), 2);
        assert_eq!(params["Greeting"]["zh"].as_str(), Some("您好"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_file_line_and_key() {
        let f = Fixture::new();
        f.community(
            "lakeside",
            &good_with(
                "schedule = \"*/30 8-20 * * *\"",
                "schedule = \"*/30 8-20 * * *\"\ncatch_up = \"lates\"\ngrace_days = 5",
            )
            .replacen("name = \"湖畔\"", "name = 7", 1),
        );
        assert_eq!(
            f.errors(),
            [
                "communities/lakeside.toml:2: name: invalid type: integer `7`, expected a string",
                "communities/lakeside.toml:26: workflows.heartbeat.catch_up: unknown variant `lates`, expected one of `latest`, `all`, `skip`",
                "communities/lakeside.toml:27: workflows.heartbeat.grace_days: unknown field `grace_days`, expected one of `plugin`, `schedule`, `on_non_workday`, `catch_up`, `catch_up_window`, `jitter`, `notifies`, `events`, `enabled`, `params`",
            ]
        );
    }

    #[test]
    fn a_bad_crontab_carries_the_parsers_reason() {
        let f = Fixture::new();
        f.community("lakeside", &good_with("*/30 8-20 * * *", "61 * * * *"));
        let why = CronExpr::parse("61 * * * *").unwrap_err();
        assert_eq!(
            f.errors(),
            [format!(
                "communities/lakeside.toml:25: workflows.heartbeat.schedule: invalid crontab expression \"61 * * * *\": {why}"
            )]
        );
    }

    /// Every duration and hour is parsed as the config loads: a bad one in `wuyed.toml` or in
    /// a community file is an error at its file, line and key, not a default at send time.
    #[test]
    fn bad_durations_and_hours_name_their_file_line_and_key() {
        let f = Fixture::new();
        f.write(
            DAEMON_FILE,
            &format!(
                "{DAEMON}\n[delivery]\nquiet_spread = \"half an hour\"\n[delivery.validity]\nurgent = \"12 h\"\n[delivery.retry]\nbase = \"0s\"\n"
            ),
        );
        f.community(
            "lakeside",
            &format!(
                "{}\n[delivery]\nquiet_spread = \"1.5h\"\n",
                good_with("\n[[staff]]", "\n[quiet_hours]\nend = \"8am\"\n\n[[staff]]",)
            ),
        );
        assert_eq!(
            f.errors(),
            [
                "wuyed.toml:8: delivery.quiet_spread: invalid duration \"half an hour\": expected a number before \"half an hour\" (durations look like \"90s\", \"10m\", \"2d\")",
                "wuyed.toml:10: delivery.validity.urgent: invalid duration \"12 h\": unknown unit \" h\" (s, m, h, d or w)",
                "wuyed.toml:12: delivery.retry.base: \"0s\" is too short: give at least \"1s\" (the first wait before a retry)",
                "communities/lakeside.toml:6: quiet_hours.end: invalid time \"8am\": expected HH:MM, 24-hour local time (\"08:30\")",
                "communities/lakeside.toml:32: delivery.quiet_spread: invalid duration \"1.5h\": only whole numbers are allowed (\"90m\", not \"1.5h\")",
            ]
        );
    }

    /// What a component reads is typed by the load: the quiet window and spread delivery
    /// waits on, validity and retry, the locale, the sender and SMS provider.
    #[test]
    fn values_reach_the_components_typed() {
        let f = Fixture::new();
        f.write(
            DAEMON_FILE,
            &format!(
                "{DAEMON}\n[delivery]\nquiet_spread = \"20m\"\n[delivery.validity]\nurgent = \"1h30m\"\n[delivery.retry]\nbase = \"1m\"\nmax = \"2h\"\n"
            ),
        );
        let with_hours = good_with(
            "\n[[staff]]",
            "locale = \"en\"\n[quiet_hours]\nstart = \"22:30\"\nend = \"07:15\"\n\n[[staff]]",
        );
        f.community(
            "lakeside",
            &format!("{with_hours}\n[delivery]\nfrom = \"湖畔 <desk@lakeside.example>\"\nquiet_spread = \"5m\"\n[delivery.sms]\nprovider = \"webhook\"\n"),
        );
        f.community("other", &good_with("id = \"lakeside\"", "id = \"other\""));
        let report = f.report();
        assert_eq!(f.lines(&report.errors), Vec::<String>::new());
        let s = report.settings.unwrap();
        let d = &s.daemon.delivery;
        assert_eq!(
            d.validity.of(wuye_core::message::Category::Urgent),
            chrono::Duration::minutes(90)
        );
        assert_eq!(
            d.validity.of(wuye_core::message::Category::Transactional),
            chrono::Duration::days(3)
        );
        assert_eq!(
            (d.retry.base, d.retry.max),
            (chrono::Duration::minutes(1), chrono::Duration::hours(2))
        );

        let c = s.community("lakeside").unwrap();
        assert_eq!(c.locale, Language::En);
        let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert_eq!(
            c.quiet,
            QuietWindow {
                tz: chrono_tz::Asia::Shanghai,
                start: hm(22, 30),
                end: hm(7, 15)
            }
        );
        assert_eq!(c.quiet_spread, chrono::Duration::minutes(5));
        assert_eq!(
            c.delivery.from.as_deref(),
            Some("湖畔 <desk@lakeside.example>")
        );
        assert_eq!(
            c.delivery.sms.as_ref().map(|s| s.provider),
            Some(crate::delivery::SmsProvider::Webhook)
        );
        assert_eq!(c.staff[0].phone.as_deref(), Some("13800000001"));

        // A community without its own takes the daemon's spread and the documented defaults.
        let other = s.community("other").unwrap();
        assert_eq!(other.quiet_spread, chrono::Duration::minutes(20));
        assert_eq!(other.locale, Language::ZhCn);
        assert_eq!((other.quiet.start, other.quiet.end), (hm(21, 0), hm(8, 0)));
    }

    #[test]
    fn workflow_durations_must_parse() {
        let f = Fixture::new();
        f.community(
            "lakeside",
            &good_with(
                "notifies",
                "catch_up_window = \"2 days\"\njitter = \"10x\"\nnotifies",
            ),
        );
        let why = |s| parse_duration(s).unwrap_err();
        assert_eq!(
            f.errors(),
            [
                format!(
                    "communities/lakeside.toml:26: workflows.heartbeat.catch_up_window: {}",
                    why("2 days")
                ),
                format!(
                    "communities/lakeside.toml:27: workflows.heartbeat.jitter: {}",
                    why("10x")
                ),
            ]
        );
    }

    #[test]
    fn timezones_must_be_iana_names() {
        let f = Fixture::new();
        f.community(
            "lakeside",
            &good_with("calendar", "timezone = \"Asia/Shanghia\"\ncalendar"),
        );
        f.write(
            DAEMON_FILE,
            &DAEMON.replace("Asia/Shanghai", "Mars/Olympus"),
        );
        assert_eq!(
            f.errors(),
            [
                "wuyed.toml:2: daemon.timezone: unknown timezone \"Mars/Olympus\": expected an IANA name such as \"Asia/Shanghai\"",
                "communities/lakeside.toml:3: timezone: unknown timezone \"Asia/Shanghia\": expected an IANA name such as \"Asia/Shanghai\"",
            ]
        );
    }

    #[test]
    fn duplicate_community_ids_name_both_files() {
        let f = Fixture::new();
        f.community("a-lakeside", GOOD).community("b-copy", GOOD);
        assert_eq!(
            f.errors(),
            [format!(
                "communities/b-copy.toml:1: id: duplicate community id \"lakeside\": {}/communities/a-lakeside.toml already uses it",
                f.dir.path().display()
            )
            .replace(&format!("{}/", f.dir.path().display()), "")]
        );
    }

    #[test]
    fn ids_are_lowercase_ascii() {
        let f = Fixture::new();
        f.community(
            "lakeside",
            &good_with("id = \"lakeside\"", "id = \"Lake Side\""),
        );
        assert_eq!(
            f.errors(),
            [
                "communities/lakeside.toml:1: id: invalid community id \"Lake Side\": use 1 to 63 lowercase ASCII letters, digits and '-', starting with a letter or digit"
            ]
        );
    }

    #[test]
    fn a_missing_plugin_says_where_it_looked_and_how_to_build_it() {
        let f = Fixture::new();
        f.community(
            "lakeside",
            &good_with("plugin = \"heartbeat\"", "plugin = \"fee_reminder\""),
        );
        assert_eq!(
            f.errors(),
            [
                "communities/lakeside.toml:24: workflows.heartbeat.plugin: plugin file not found: plugins/fee_reminder.wasm (build it with `cargo build --release --target wasm32-wasip2 -p fee-reminder` (crates use '-' where files use '_'; ./scripts/build-plugins.sh builds them all), or point plugins.dir in wuyed.toml at where it is)"
            ]
        );
        // A disabled workflow may name a plugin not built yet; it is left out of the settings.
        f.community(
            "lakeside",
            &good_with(
                "plugin = \"heartbeat\"",
                "plugin = \"fee_reminder\"\nenabled = false",
            ),
        );
        let report = f.report();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let settings = report.settings.unwrap();
        assert!(settings.communities[0].workflows.is_empty());
    }

    #[test]
    fn an_explicit_wasm_path_is_relative_to_the_config_dir() {
        let f = Fixture::new();
        f.community(
            "lakeside",
            &good_with(
                "plugin = \"heartbeat\"",
                "plugin = \"plugins/heartbeat.wasm\"",
            ),
        );
        let settings = f.report().settings.unwrap();
        assert_eq!(
            settings.communities[0].workflows[0].plugin_path,
            f.dir.path().join("plugins/heartbeat.wasm")
        );
    }

    #[test]
    fn the_plugin_hook_can_reject_a_file() {
        let f = Fixture::new();
        f.community("lakeside", GOOD);
        let options = LoadOptions {
            env: BTreeMap::new(),
            plugin_check: |_| Err("not a wasm component (empty file)".into()),
            today: chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(),
            resolve_secrets: true,
        };
        let report = compile(f.dir.path(), &options);
        assert_eq!(
            f.lines(&report.errors),
            [
                "communities/lakeside.toml:24: workflows.heartbeat.plugin: plugin plugins/heartbeat.wasm: not a wasm component (empty file)"
            ]
        );
    }

    #[test]
    fn notified_roles_and_their_escalation_must_be_staffed() {
        let f = Fixture::new();
        // Only customer service is staffed: notifying it needs 主管 and 经理 for escalation.
        let only_cs = GOOD
            .split("[[staff]]")
            .take(2)
            .collect::<Vec<_>>()
            .join("[[staff]]")
            + "[workflows.heartbeat]\nplugin = \"heartbeat\"\nnotifies = [\"customer_service\", \"manager\"]\n";
        f.community("lakeside", &only_cs);
        assert_eq!(
            f.errors(),
            [
                "communities/lakeside.toml:13: workflows.heartbeat.notifies[0]: notifications to customer_service (客服) escalate to supervisor (主管), which is not staffed (ladder: customer_service (客服) → supervisor (主管) → manager (经理))",
                "communities/lakeside.toml:13: workflows.heartbeat.notifies[1]: role manager (经理) is not staffed: add a [[staff]] entry with role = \"manager\"",
            ]
        );
    }

    #[test]
    fn skip_or_shift_needs_a_calendar_and_the_calendar_must_exist() {
        let f = Fixture::new();
        f.community(
            "lakeside",
            &good_with("calendar = \"cn-mainland\"\n", "").replacen(
                "notifies",
                "on_non_workday = \"shift\"\nnotifies",
                1,
            ),
        );
        assert_eq!(
            f.errors(),
            [
                "communities/lakeside.toml:25: workflows.heartbeat.on_non_workday: \"shift\" needs a business calendar: set `calendar` (for example \"cn-mainland\") at the top of the file"
            ]
        );
        f.community("lakeside", &good_with("cn-mainland", "cn-mainlnd"));
        assert_eq!(
            f.errors(),
            [format!(
                "communities/lakeside.toml:3: calendar: calendar \"cn-mainlnd\" not found: no file {} (available: cn-mainland)",
                f.dir.path().join("calendars/cn-mainlnd.toml").display()
            )
            .replace(&format!("{}/", f.dir.path().display()), "")]
        );
    }

    #[test]
    fn a_broken_calendar_is_reported_in_its_own_file_and_where_it_is_used() {
        let f = Fixture::new();
        f.write("calendars/cn-mainland.toml", "weekend = [\"caturday\"]\n");
        f.community("lakeside", GOOD);
        let errors = f.errors();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("calendars/cn-mainland.toml:1: weekend"),
            "{errors:?}"
        );
        assert_eq!(
            errors[1],
            format!(
                "communities/lakeside.toml:3: calendar: calendar \"cn-mainland\" cannot be used (see {})",
                f.dir.path().join("calendars/cn-mainland.toml").display()
            )
            .replace(&format!("{}/", f.dir.path().display()), "")
        );
    }

    #[test]
    fn a_calendar_that_ends_before_next_year_is_a_warning() {
        let f = Fixture::new();
        f.community("lakeside", GOOD);
        let options = LoadOptions {
            env: BTreeMap::new(),
            plugin_check: super::super::plugin_exists,
            today: chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
            resolve_secrets: true,
        };
        let report = compile(f.dir.path(), &options);
        assert!(report.errors.is_empty());
        assert!(report.settings.is_some());
        assert_eq!(
            f.lines(&report.warnings),
            [
                "calendars/cn-mainland.toml: calendar cn-mainland has no holidays for 2027 (it covers 2025-2026); those years count weekends only"
            ]
        );
    }

    #[test]
    fn hours_are_hh_mm_and_reception_closes_after_it_opens() {
        let f = Fixture::new();
        f.community(
            "lakeside",
            &good_with(
                "\n[[staff]]",
                "\n[reception_hours]\nopen = \"18:00\"\nclose = \"09:00\"\n[quiet_hours]\nstart = \"9pm\"\nend = \"8:00\"\n\n[[staff]]",
            ),
        );
        assert_eq!(
            f.errors(),
            [
                "communities/lakeside.toml:7: reception_hours.close: reception closes (09:00) before it opens (18:00)",
                "communities/lakeside.toml:9: quiet_hours.start: invalid time \"9pm\": expected HH:MM, 24-hour local time (\"08:30\")",
                "communities/lakeside.toml:10: quiet_hours.end: invalid time \"8:00\": expected HH:MM, 24-hour local time (\"08:30\")",
            ]
        );
    }

    #[test]
    fn staff_ids_are_unique_and_reports_to_names_a_colleague() {
        let f = Fixture::new();
        f.community(
            "lakeside",
            &good_with("id = \"b\"", "id = \"a\"\nreports_to = \"nobody\"").replacen(
                "role = \"customer_service\"",
                "role = \"customer_service\"\nreports_to = \"a\"",
                1,
            ),
        );
        assert_eq!(
            f.errors(),
            [
                "communities/lakeside.toml:9: staff[0].reports_to: a staff member cannot report to themselves",
                "communities/lakeside.toml:13: staff[1].id: duplicate staff id \"a\" (also staff[0])",
                "communities/lakeside.toml:14: staff[1].reports_to: no staff member has id \"nobody\"",
            ]
        );
    }

    #[test]
    fn staff_contacts_are_checked_and_printed_masked() {
        let f = Fixture::new();
        f.community(
            "lakeside",
            &good_with("phone = \"138 0000 0001\"", "phone = \"13800001234x\"").replacen(
                "b@example.com",
                "b.example.com",
                1,
            ),
        );
        assert_eq!(
            f.errors(),
            [
                "communities/lakeside.toml:9: staff[0].phone: not a phone number: \"138****234x\" (7 to 15 digits, optionally +country code, spaces and '-')",
                "communities/lakeside.toml:15: staff[1].email: not an email address: \"***\"",
            ]
        );
        f.community("lakeside", &good_with("phone = \"138 0000 0001\"\n", ""));
        assert_eq!(
            f.warnings(),
            [
                "communities/lakeside.toml:5: staff[0]: \"a\" has neither email nor phone, so notifications cannot reach them"
            ]
        );
    }

    #[test]
    fn errors_across_files_are_all_collected() {
        let f = Fixture::new();
        f.write(
            DAEMON_FILE,
            &format!("{DAEMON}\n[http]\nlisten = \"localhost\"\n"),
        );
        f.community(
            "a",
            &good_with("\"*/30 8-20 * * *\"", "\"*/30 8-20 * * * * *\""),
        );
        f.community(
            "b",
            &good_with("lakeside", "b").replacen("name = \"湖畔\"", "nam = \"x\"", 1),
        );
        let errors = f.errors();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert_eq!(
            errors[0],
            "wuyed.toml:8: http.listen: invalid listen address \"localhost\": expected IP:PORT such as \"127.0.0.1:8760\", or \"\" to disable HTTP"
        );
        assert!(errors[1].starts_with("communities/a.toml:25: workflows.heartbeat.schedule: "));
        assert_eq!(
            errors[2],
            "communities/b.toml:2: nam: unknown field `nam`, expected one of `id`, `name`, `timezone`, `calendar`, `locale`, `reception_hours`, `quiet_hours`, `staff`, `workflows`, `limits`, `delivery`"
        );
        assert_eq!(errors[3], "communities/b.toml: name: missing field `name`");
    }

    #[test]
    fn syntax_errors_stop_only_their_file() {
        // The override may be meant for the broken file: no second error about it.
        let f = Fixture::new().env("WUYE_COMMUNITY__A__NAME", "x");
        f.community("a", "id = \"a\nname = \"x\"\n");
        f.community("b", GOOD);
        let errors = f.errors();
        assert!(
            errors.iter().all(|e| e.starts_with("communities/a.toml:")),
            "{errors:?}"
        );
        assert!(!errors.is_empty());
    }

    #[test]
    fn environment_overrides_daemon_and_community_keys() {
        let f = Fixture::new()
            .env("WUYE_DAEMON__DATA_DIR", "/var/lib/wuye")
            .env("WUYE_HTTP__LISTEN", "0.0.0.0:9000")
            .env("WUYE_COMMUNITY__LAKE_SIDE__QUIET_HOURS__START", "22:30")
            .env(
                "WUYE_COMMUNITY__LAKE_SIDE__STAFF__1__PHONE",
                "138 0000 0099",
            )
            .env(
                "WUYE_COMMUNITY__LAKE_SIDE__WORKFLOWS__HEARTBEAT__NOTIFIES",
                "[\"supervisor\"]",
            )
            .env("WUYE_CONFIG", "not-an-override")
            .env("PATH", "/usr/bin");
        f.community(
            "lakeside",
            &good_with("id = \"lakeside\"", "id = \"lake-side\""),
        );
        let report = f.report();
        assert_eq!(f.lines(&report.errors), Vec::<String>::new());
        let s = report.settings.unwrap();
        assert_eq!(s.data_dir, Path::new("/var/lib/wuye"));
        assert_eq!(s.daemon.http.listen, "0.0.0.0:9000");
        let c = s.community("lake-side").unwrap();
        assert_eq!(c.quiet.start, NaiveTime::from_hms_opt(22, 30, 0).unwrap());
        // The override applied, and like every staff phone it is kept as the bare number.
        assert_eq!(c.staff[1].phone.as_deref(), Some("13800000099"));
        assert_eq!(c.workflows[0].notifies, [Role::Supervisor]);
    }

    #[test]
    fn a_bad_override_is_blamed_on_its_variable() {
        let f = Fixture::new()
            .env("WUYE_DAEMON__DATA_DIRR", "/x")
            .env("WUYE_COMMUNITY__LAKESIDE__QUIET_HOURS__START", "late")
            .env("WUYE_COMMUNITY__NOPE__NAME", "x");
        f.community("lakeside", GOOD);
        assert_eq!(
            f.errors(),
            [
                "wuyed.toml: daemon.data_dirr: unknown field `data_dirr`, expected one of `data_dir`, `timezone`, `log_level` (set by WUYE_DAEMON__DATA_DIRR)",
                "communities/lakeside.toml: quiet_hours.start: invalid time \"late\": expected HH:MM, 24-hour local time (\"08:30\") (set by WUYE_COMMUNITY__LAKESIDE__QUIET_HOURS__START)",
                "environment: WUYE_COMMUNITY__NOPE__NAME: no community has an id matching \"NOPE\" (known: lakeside)",
            ]
        );
    }

    #[test]
    fn override_variables_parse_into_key_paths() {
        let parse = |v: &str| {
            parse_override(v, "x")
                .unwrap()
                .map(|(c, o)| (c, o.path.to_string()))
        };
        assert_eq!(parse("HOME"), None);
        assert_eq!(parse("WUYE_CONFIG"), None);
        assert_eq!(
            parse("WUYE_DAEMON__DATA_DIR"),
            Some((None, "daemon.data_dir".into()))
        );
        assert_eq!(
            parse("WUYE_COMMUNITY__SHUIPAN__STAFF__0__PHONE"),
            Some((Some("SHUIPAN".into()), "staff[0].phone".into()))
        );
        assert_eq!(
            parse_override("WUYE_DAEMON____X", "x").unwrap_err(),
            "empty key between `__` separators"
        );
        assert_eq!(
            parse_override("WUYE_COMMUNITY__SHUIPAN", "x").unwrap_err(),
            "expected WUYE_COMMUNITY__<ID>__<KEY>"
        );
    }

    /// A settings section holding secrets, as the delivery module's do.
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct WithSecrets {
        smtp: Smtp,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Smtp {
        password: SecretSource,
        api_key: SecretSource,
        token: SecretSource,
    }

    /// Listener timeouts and the connection limit are checked as `wuyed run` reads them, each
    /// error at its own key and line.
    #[test]
    fn http_limits_are_refused_at_their_key() {
        let f = Fixture::new();
        f.write(
            DAEMON_FILE,
            &format!(
                "{DAEMON}\n[http]\nheader_timeout = \"10 s\"\nrequest_timeout = \"0s\"\nmax_connections = 0\n"
            ),
        )
        .community("lakeside", GOOD);
        assert_eq!(
            f.lines(&f.report().errors),
            [
                "wuyed.toml:8: http.header_timeout: invalid duration \"10 s\": unknown unit \" s\" (s, m, h, d or w)",
                "wuyed.toml:9: http.request_timeout: \"0s\" is out of range: give between 1s and 600s",
                "wuyed.toml:10: http.max_connections: 0 is out of range: give between 1 and 10000 (each connection holds a file descriptor)",
            ]
        );
    }

    /// An API token `wuyed run` would refuse fails the load at its key; offline commands
    /// (secrets not resolved) load the same files without the variable at all.
    #[test]
    fn api_tokens_pass_the_daemons_rule_and_only_when_secrets_are_resolved() {
        let daemon = format!(
            "{DAEMON}\n[http]\ntokens = [{{ name = \"desk\", token = {{ env = \"WUYE_TOKEN_DESK\" }}, communities = [\"*\"] }}]\n"
        );
        let short = Fixture::new().env("WUYE_TOKEN_DESK", "short");
        short
            .write(DAEMON_FILE, &daemon)
            .community("lakeside", GOOD);
        assert_eq!(
            short.lines(&short.report().errors),
            [
                "wuyed.toml:8: http.tokens[0].token: token \"desk\": the token is shorter than 16 \
                 characters; use a long random one (`openssl rand -hex 24`)"
            ]
        );

        let unset = Fixture::new();
        unset
            .write(DAEMON_FILE, &daemon)
            .community("lakeside", GOOD);
        assert_eq!(
            unset.lines(&unset.report().errors),
            ["wuyed.toml:8: http.tokens[0].token: environment variable WUYE_TOKEN_DESK is not set"]
        );
        let offline = LoadOptions {
            env: BTreeMap::new(),
            plugin_check: super::super::plugin_exists,
            today: chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(),
            resolve_secrets: false,
        };
        let report = compile(unset.dir.path(), &offline);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.settings.is_some());
    }

    #[test]
    fn secrets_must_resolve_and_are_never_printed() {
        let f = Fixture::new().env("SMTP_PASSWORD", "hunter2-from-env");
        f.write("token", "hunter3-from-file\n");
        let text = "[smtp]\npassword = { env = \"SMTP_PASSWORD\" }\napi_key = { env = \"SMS_KEY\" }\ntoken = { file = \"token\" }\n";
        let options = LoadOptions {
            env: f.env.clone(),
            plugin_check: super::super::plugin_exists,
            today: chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(),
            resolve_secrets: true,
        };
        let mut cx = Compiler {
            dir: f.dir.path(),
            options: &options,
            errors: Vec::new(),
            warnings: Vec::new(),
            calendars: BTreeMap::new(),
            unknown_ids: false,
            daemon_doc: None,
        };
        let doc = FileDoc {
            shown: PathBuf::from("wuyed.toml"),
            text: text.to_string(),
            overrides: Vec::new(),
        };
        let value = cx.read::<WithSecrets>(&doc).unwrap();
        assert_eq!(
            f.lines(&cx.errors),
            ["wuyed.toml:3: smtp.api_key: environment variable SMS_KEY is not set"]
        );
        let everything = format!("{:?} {:?} {value:?}", cx.errors, cx.warnings);
        assert!(!everything.contains("hunter"), "{everything}");

        // A missing file names the file, and only the file.
        std::fs::remove_file(f.dir.path().join("token")).unwrap();
        cx.errors.clear();
        cx.read::<WithSecrets>(&doc).unwrap();
        assert_eq!(cx.errors.len(), 2);
        assert!(
            cx.errors[1]
                .to_string()
                .starts_with("wuyed.toml:4: smtp.token: cannot read secret file "),
            "{}",
            cx.errors[1]
        );

        // A source set by a variable is blamed on it.
        std::fs::write(f.dir.path().join("token"), "t").unwrap();
        cx.errors.clear();
        let doc = FileDoc {
            overrides: vec![Override {
                var: "WUYE_SMTP__API_KEY".into(),
                path: KeyPath::parse("smtp.api_key"),
                value: "{ env = \"OTHER_KEY\" }".into(),
            }],
            ..doc
        };
        cx.read::<WithSecrets>(&doc).unwrap();
        assert_eq!(
            f.lines(&cx.errors),
            [
                "wuyed.toml: smtp.api_key: environment variable OTHER_KEY is not set (set by WUYE_SMTP__API_KEY)"
            ]
        );
    }

    #[test]
    fn rules_give_exact_messages() {
        assert!(check_id("community id", "shuipan").is_ok());
        assert!(check_id("community id", "-x").is_err());
        assert!(check_name("workflow name", "fee_reminder").is_ok());
        assert_eq!(
            check_name("workflow name", "Fee").unwrap_err(),
            "invalid workflow name \"Fee\": use lowercase ASCII letters, digits, '_' and '-'"
        );
        assert!(check_hhmm("23:59").is_ok());
        assert!(check_hhmm("24:00").is_err());
        assert_eq!(
            check_locale("fr").unwrap_err(),
            "unsupported locale \"fr\": expected \"zh-CN\" or \"en\""
        );
        assert!(check_listen("").is_ok());
        assert!(check_listen("[::1]:8760").is_ok());
        assert!(check_log_level("wuye=debug,info").is_ok());
        assert!(check_log_level("wuye=loud").is_err());
        assert!(check_phone("+86 138-0000-0001").is_ok());
        assert!(check_email("desk@example.com").is_ok());
        assert!(check_email("desk@localhost").is_err());
    }
}
