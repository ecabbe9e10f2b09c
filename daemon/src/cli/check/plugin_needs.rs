//! What each enabled workflow's plugin needs of its community, checked by `wuyed check`: the
//! plugin's declaration (`plugin::manifest`) against the workflow's `params`, and every template
//! the workflow can send, in every locale and community override, against the variables the
//! plugin declares plus those the daemon adds (`wiring::host_variables`).
//!
//! Rendering is strict, so a template variable nobody provides fails the run that sends it, and
//! a param of the wrong type fails every run of the workflow; both otherwise surface at 09:00 on
//! the day. Templates are loaded with the daemon's own loader (`deliver::Templates`) and looked
//! up as a run looks them up (`Templates::find`), so `check` and `run` cannot disagree on which
//! file a message uses. A plugin that declares nothing is not validated; `check` says so.
//!
//! Each workflow's `events = [...]` is also held against its plugin's WIT world (read from the
//! component's exports, as the host reads it at load): an entry whose every kind that world
//! predates is never delivered (`plugin::wit::compat`), so the workflow never runs on it. That
//! is a warning, not an error: the configuration works, the subscription is just deaf until the
//! plugin is rebuilt.
//!
//! This check lives with the CLI, not with the configuration, because it reads plugin files
//! through the plugin host, which sits above the configuration crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::config::{Community, ConfigError, KeyPath, Settings, Workflow, line_of_key};
use crate::deliver::Templates;
use crate::plugin::manifest::{self, Manifest};
use crate::plugin::wit::{self, WitVersion};

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct NeedsReport {
    pub errors: Vec<ConfigError>,
    /// Event subscriptions a plugin's WIT world is never handed.
    pub warnings: Vec<ConfigError>,
    /// Plugins that declare nothing, so whose params and templates went unchecked.
    pub notes: Vec<String>,
}

/// What is read of a plugin file, once however many workflows run it.
struct PluginFile {
    manifest: Result<Option<Manifest>, String>,
    /// `None` when it is not a plugin the host can load: the configuration load already says
    /// why (`plugin::check_file`).
    version: Option<WitVersion>,
}

impl PluginFile {
    fn read(path: &Path) -> PluginFile {
        match std::fs::read(path) {
            Ok(bytes) => PluginFile {
                manifest: manifest::from_wasm(&bytes),
                version: wit::detect_bytes(&bytes, path).ok(),
            },
            Err(e) => PluginFile {
                manifest: Err(format!("cannot read: {e}")),
                version: None,
            },
        }
    }
}

/// Checks every enabled workflow of `settings` against its plugin's declaration.
pub fn check(settings: &Settings) -> NeedsReport {
    let mut report = NeedsReport::default();
    let ids: Vec<&str> = settings.communities.iter().map(|c| c.id.as_str()).collect();
    // A template that does not compile is already an error of the configuration load.
    let Ok(templates) = Templates::load(&settings.dir.join("templates"), &ids) else {
        return report;
    };
    let mut plugins: BTreeMap<PathBuf, PluginFile> = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut push = |report: &mut NeedsReport, e: ConfigError| {
        // A default template shared by several communities is reported once.
        if seen.insert(e.to_string()) {
            report.errors.push(e);
        }
    };
    for community in &settings.communities {
        let text = std::fs::read_to_string(&community.file).unwrap_or_default();
        for workflow in &community.workflows {
            let plugin = plugins
                .entry(workflow.plugin_path.clone())
                .or_insert_with(|| PluginFile::read(&workflow.plugin_path));
            if let Some(version) = plugin.version {
                report
                    .warnings
                    .extend(events_never_delivered(community, &text, workflow, version));
            }
            let m = match &plugin.manifest {
                Ok(Some(m)) => m,
                Ok(None) => {
                    let note = format!(
                        "{}: declares no params or templates, so those of workflow {} are not \
                         checked (plugins built with wuye-plugin-sdk declare them with manifest!)",
                        workflow.plugin_path.display(),
                        workflow.name
                    );
                    if !report.notes.contains(&note) {
                        report.notes.push(note);
                    }
                    continue;
                }
                Err(message) => {
                    let e = ConfigError {
                        file: workflow.plugin_path.clone(),
                        key: String::new(),
                        line: None,
                        message: message.clone(),
                    };
                    push(&mut report, e);
                    continue;
                }
            };
            for e in params(community, &text, workflow, m) {
                push(&mut report, e);
            }
            for e in templates_of(settings, &templates, community, workflow, m) {
                push(&mut report, e);
            }
        }
    }
    report
}

/// The workflow's `events` entries that a plugin of `version` is never handed any kind of,
/// located in the community's file.
fn events_never_delivered(
    community: &Community,
    text: &str,
    workflow: &Workflow,
    version: WitVersion,
) -> Vec<ConfigError> {
    let plugin = workflow
        .plugin_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, pattern) in workflow.events.iter().enumerate() {
        let Some(kinds) = wit::compat::never_delivered(version, pattern) else {
            continue;
        };
        let predates = if kinds.len() == 1 && kinds[0] == pattern {
            "that event; rebuild it against the current wuye-plugin-sdk to receive it".to_string()
        } else {
            format!(
                "every event it covers ({}); rebuild it against the current wuye-plugin-sdk to \
                 receive them",
                kinds.join(", ")
            )
        };
        let path = KeyPath::root()
            .key("workflows")
            .key(&workflow.name)
            .key("events")
            .index(i);
        out.push(ConfigError {
            file: community.file.clone(),
            line: line_of_key(text, &path),
            key: path.to_string(),
            message: format!(
                "{pattern:?} is never delivered to this plugin ({plugin}): it is built for \
                 wuye:plugin@{version}, which predates {predates}"
            ),
        });
    }
    out
}

/// The workflow's `params` against the declaration, located in the community's file.
fn params(
    community: &Community,
    text: &str,
    workflow: &Workflow,
    m: &Manifest,
) -> Vec<ConfigError> {
    m.check_params(&workflow.params)
        .into_iter()
        .map(|p| {
            let mut path = KeyPath::root()
                .key("workflows")
                .key(&workflow.name)
                .key("params");
            if !p.key.is_empty() {
                path = path.key(&p.key);
            }
            if let Some(i) = p.index {
                path = path.index(i);
            }
            ConfigError {
                file: community.file.clone(),
                line: line_of_key(text, &path),
                key: path.to_string(),
                message: p.message,
            }
        })
        .collect()
}

/// Every template the workflow can send: present in the community's locale, and every file of
/// it (each locale, the default and the community's override, each part) using only variables
/// the workflow provides.
fn templates_of(
    settings: &Settings,
    templates: &Templates,
    community: &Community,
    workflow: &Workflow,
    m: &Manifest,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let locale = community.locale.as_str();
    for (name, spec) in m.templates_sent(&workflow.params) {
        let mut provided: BTreeSet<String> = spec.vars.iter().cloned().collect();
        provided.extend(
            crate::wiring::host_variables(&spec.vars, spec.staff)
                .into_iter()
                .map(String::from),
        );
        if templates
            .find(&community.id, &workflow.name, &name, locale, locale)
            .is_none()
        {
            errors.push(ConfigError {
                file: template_path(&settings.dir, None, &workflow.name, &name, locale),
                key: String::new(),
                line: None,
                message: format!(
                    "missing: workflow {} of community {} ({}) sends template {name:?} in {locale}; \
                     write this file, or {} for that community alone",
                    workflow.name,
                    community.id,
                    community.file.display(),
                    template_path(
                        &settings.dir,
                        Some(&community.id),
                        &workflow.name,
                        &name,
                        locale
                    )
                    .display()
                ),
            });
        }
        let list = provided.iter().cloned().collect::<Vec<_>>().join(", ");
        for set in templates.variants(&community.id, &workflow.name, &name) {
            for u in templates.undefined_variables(set, &provided) {
                errors.push(ConfigError {
                    file: set.path.clone(),
                    key: u.part,
                    line: u.line,
                    message: format!(
                        "undefined variable `{}` ({} provides: {list})",
                        u.variable, workflow.name
                    ),
                });
            }
        }
    }
    errors
}

/// Where a template is looked for: `templates/[<community>/]<workflow>/<name>.<locale>.toml`.
fn template_path(
    dir: &Path,
    community: Option<&str>,
    workflow: &str,
    name: &str,
    locale: &str,
) -> PathBuf {
    let mut p = dir.join("templates");
    if let Some(c) = community {
        p.push(c);
    }
    p.join(workflow).join(format!("{name}.{locale}.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadOptions;

    /// A core module holding only a `wuye:manifest` custom section with `text`: what the SDK's
    /// `manifest!` leaves in a plugin, without the rest of a plugin.
    fn wasm_declaring(text: &str) -> Vec<u8> {
        fn leb(mut n: usize, out: &mut Vec<u8>) {
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                out.push(if n == 0 { byte } else { byte | 0x80 });
                if n == 0 {
                    break;
                }
            }
        }
        let mut body = Vec::new();
        leb(manifest::SECTION.len(), &mut body);
        body.extend(manifest::SECTION.as_bytes());
        body.extend(text.as_bytes());
        let mut wasm = b"\0asm\x01\0\0\0\0".to_vec();
        leb(body.len(), &mut wasm);
        wasm.extend(body);
        wasm
    }

    const DECLARED: &str = r#"
[params.sla_hours]
type = "integer"

[templates.overdue]
staff = true
vars = ["ticket.id", "total"]
"#;

    const COMMUNITY: &str = r#"id = "lakeside"
name = "湖畔"
locale = "en"

[[staff]]
id = "c"
name = "C"
role = "manager"
email = "c@example.com"

[workflows.chase]
plugin = "chase.wasm"
notifies = ["manager"]
params = { sla_hours = 24 }
"#;

    /// A config dir with one community running `chase.wasm` (declaring `DECLARED`), its
    /// community file and templates as given; what `check` finds, tempdir prefix removed.
    fn needs(community: &str, templates: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
        needs_of(&wasm_declaring(DECLARED), community, templates)
    }

    /// [`needs`] with `chase.wasm` holding `plugin`.
    fn needs_of(
        plugin: &[u8],
        community: &str,
        templates: &[(&str, &str)],
    ) -> (Vec<String>, Vec<String>) {
        let (errors, _, notes) = found_of(plugin, community, templates);
        (errors, notes)
    }

    /// [`needs_of`] with the warnings: `(errors, warnings, notes)`.
    fn found_of(
        plugin: &[u8],
        community: &str,
        templates: &[(&str, &str)],
    ) -> (Vec<String>, Vec<String>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("wuyed.toml"),
            "[daemon]\ntimezone = \"Asia/Shanghai\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("communities")).unwrap();
        std::fs::write(root.join("communities/lakeside.toml"), community).unwrap();
        std::fs::write(root.join("chase.wasm"), plugin).unwrap();
        for (rel, text) in templates {
            let path = root.join("templates").join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let options = LoadOptions {
            env: Default::default(),
            plugin_check: crate::config::plugin_exists,
            today: chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(),
            resolve_secrets: true,
        };
        let report = crate::config::check(root, &options);
        assert_eq!(report.errors, vec![], "the config itself loads");
        let found = check(&report.settings.unwrap());
        let prefix = format!("{}/", root.display());
        let shown = |e: &ConfigError| e.to_string().replace(&prefix, "");
        (
            found.errors.iter().map(shown).collect(),
            found.warnings.iter().map(shown).collect(),
            found.notes,
        )
    }

    const OVERDUE: &str = "subject = \"Ticket {{ ticket.id }}\"\ntext = \"\"\"\n{{ recipient.name }}: {{ total }} for {{ ticket.first_receiver }}\n\"\"\"\n";

    #[test]
    fn templates_using_only_what_the_workflow_provides_pass() {
        let (errors, notes) = needs(COMMUNITY, &[("chase/overdue.en.toml", OVERDUE)]);
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(notes, Vec::<String>::new());
    }

    #[test]
    fn an_undefined_variable_in_an_override_names_file_part_line_and_what_is_provided() {
        let bad = OVERDUE.replace("{{ total }}", "{{ totl }}");
        let (errors, _) = needs(
            COMMUNITY,
            &[
                ("chase/overdue.en.toml", OVERDUE),
                ("lakeside/chase/overdue.en.toml", &bad),
            ],
        );
        assert_eq!(
            errors,
            [
                "templates/lakeside/chase/overdue.en.toml:3: text: undefined variable `totl` \
              (chase provides: community.id, community.name, locale, recipient.id, \
              recipient.name, ticket.first_receiver, ticket.id, total, workflow)"
            ]
        );
    }

    #[test]
    fn a_template_missing_in_the_community_locale_is_an_error() {
        let (errors, _) = needs(COMMUNITY, &[("chase/overdue.zh-CN.toml", OVERDUE)]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "templates/chase/overdue.en.toml: missing: workflow chase of community lakeside"
            ),
            "{errors:?}"
        );
        assert!(
            errors[0].contains("templates/lakeside/chase/overdue.en.toml for that community alone")
        );
    }

    #[test]
    fn a_param_of_the_wrong_type_names_the_community_file_key_and_line() {
        let community = COMMUNITY.replace("sla_hours = 24", "sla_hours = \"24\"");
        let (errors, _) = needs(&community, &[("chase/overdue.en.toml", OVERDUE)]);
        assert_eq!(
            errors,
            [
                "communities/lakeside.toml:14: workflows.chase.params.sla_hours: expected an \
              integer, got a string (\"24\")"
            ]
        );
    }

    #[test]
    fn a_plugin_that_declares_nothing_is_noted_not_failed() {
        let bad = OVERDUE.replace("{{ total }}", "{{ totl }}");
        let community = COMMUNITY.replace("sla_hours = 24", "sla_hours = \"24\"");
        let (errors, notes) = needs_of(
            b"\0asm\x01\0\0\0",
            &community,
            &[("chase/overdue.en.toml", &bad)],
        );
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].ends_with(
                "chase.wasm: declares no params or templates, so those of workflow chase are \
                 not checked (plugins built with wuye-plugin-sdk declare them with manifest!)"
            ),
            "{notes:?}"
        );
    }

    /// A built plugin of the test plugins (`plugin::test_plugins::wasm`).
    fn built(name: &str) -> Vec<u8> {
        std::fs::read(crate::plugin::test_plugins::wasm().join(format!("{name}.wasm"))).unwrap()
    }

    fn subscribing(events: &str) -> String {
        COMMUNITY.replace(
            "notifies = [\"manager\"]",
            &format!("notifies = [\"manager\"]\nevents = {events}"),
        )
    }

    #[test]
    fn events_an_old_plugin_is_never_handed_are_warned_about_not_failed() {
        let community =
            subscribing(r#"["ticket.closed", "import.bills", "payment.*", "import.*", "*"]"#);
        let (errors, warnings, _) = found_of(&built("legacy_v020"), &community, &[]);
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(
            warnings,
            [
                "communities/lakeside.toml:14: workflows.chase.events[1]: \"import.bills\" is \
                 never delivered to this plugin (chase.wasm): it is built for wuye:plugin@0.2.0, \
                 which predates that event; rebuild it against the current wuye-plugin-sdk to \
                 receive it",
                "communities/lakeside.toml:14: workflows.chase.events[3]: \"import.*\" is never \
                 delivered to this plugin (chase.wasm): it is built for wuye:plugin@0.2.0, which \
                 predates every event it covers (import.owners, import.bills, import.payments, \
                 import.balances, import.tickets, import.surveys); rebuild it against the \
                 current wuye-plugin-sdk to receive them",
            ]
        );

        let community = subscribing(r#"["payment_plan.agreed", "payment_plan.*"]"#);
        let (_, warnings, _) = found_of(&built("legacy_v010"), &community, &[]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("wuye:plugin@0.1.0"), "{warnings:?}");
    }

    #[test]
    fn the_newest_world_gets_every_event_so_no_warning() {
        let community = subscribing(r#"["import.bills", "import.*", "*"]"#);
        let (_, warnings, _) = found_of(&built("heartbeat"), &community, &[]);
        assert_eq!(warnings, Vec::<String>::new());
        // Nor for a file check cannot read a world from (the load reports that).
        let (_, warnings, _) = found_of(&wasm_declaring(DECLARED), &community, &[]);
        assert_eq!(warnings, Vec::<String>::new());
    }
}
