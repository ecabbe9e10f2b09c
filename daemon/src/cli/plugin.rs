//! `wuyed plugin`: tools for plugin authors.
//!
//! - `new NAME` scaffolds a plugin crate that builds with one command and has a MockHost test;
//! - `test PLUGIN.wasm --fixture FILE.toml` runs a built plugin in the real sandbox (same limits
//!   as production) against fixture data on a virtual clock and shows what it would do;
//! - `check FILE.wasm...` compiles and links plugins against the supported WIT versions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::ManualClock;
use crate::exit::Coded;
use crate::plugin::fixture::Fixture;
use crate::plugin::host::{HostOptions, RunReport};
use crate::plugin::{Intent, Limits, MemoryKv, PluginHost, PluginSettings, RunInput};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Scaffold a plugin crate (in `plugins/NAME` of this workspace by default).
    New(NewArgs),
    /// Run a built plugin against a fixture in the real sandbox and print what it would do.
    Test(TestArgs),
    /// Check that plugin files load: valid component, supported WIT version, nothing unknown imported.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// Crate name: lowercase letters, digits and `-`, starting with a letter.
    pub name: String,
    /// Parent directory of the new crate.
    #[arg(long, default_value = "plugins")]
    pub dir: PathBuf,
    /// Path to the wuye-plugin-sdk crate, for a plugin outside the wuye workspace.
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The built plugin (`target/wasm32-wasip2/release/NAME.wasm`).
    pub plugin: PathBuf,
    /// The fixture: community data, the run, its virtual time.
    #[arg(long)]
    pub fixture: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Render every message the run asks for through this configuration's templates (strict:
    /// a missing template or variable fails the command), for each recipient's locale and each
    /// channel the template offers.
    #[arg(long, value_name = "DIR", requires = "community")]
    pub config: Option<PathBuf>,
    /// The community of `--config` whose templates (and overrides) render the messages.
    #[arg(long, value_name = "ID", requires = "config")]
    pub community: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[arg(required = true)]
    pub plugins: Vec<PathBuf>,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::New(a) => new(a),
        Command::Test(a) => test(a),
        Command::Check(a) => check(a),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let host = PluginHost::new(HostOptions::default())?;
    let mut failed = 0;
    for path in &args.plugins {
        match host.check(path) {
            Ok(p) => println!(
                "{}: ok (wuye:plugin@{}, compiled in {} ms)",
                path.display(),
                p.version,
                p.load_time.as_millis()
            ),
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(Coded::config(anyhow::anyhow!("{failed} plugin(s) failed to load")).into());
    }
    Ok(())
}

fn test(args: TestArgs) -> anyhow::Result<()> {
    let fixture = Fixture::load(&args.fixture).map_err(Coded::data)?;
    // The configuration first: a typo in --config or --community fails before the plugin runs.
    let config = match (&args.config, &args.community) {
        (Some(dir), Some(id)) => {
            let settings = crate::config::load(dir).map_err(Coded::config)?;
            let Some(community) = settings.communities.iter().find(|c| &c.id == id).cloned() else {
                let known: Vec<&str> = settings.communities.iter().map(|c| c.id.as_str()).collect();
                return Err(Coded::usage(anyhow::anyhow!(
                    "--community {id}: no such community in {} (it has: {})",
                    dir.display(),
                    known.join(", ")
                ))
                .into());
            };
            Some((settings, community))
        }
        _ => None,
    };
    let host = PluginHost::new(HostOptions {
        cache_dir: None,
        pooling: false,
    })?;
    let plugin = host.check(&args.plugin).map_err(Coded::config)?;
    let limits =
        Limits::resolve(&PluginSettings::default(), fixture.limits.as_ref()).map_err(|e| {
            Coded::data(anyhow::anyhow!(
                "{}: {}",
                args.fixture.display(),
                e.join("; ")
            ))
        })?;
    let kv = MemoryKv::default();
    for (k, v) in &fixture.kv {
        kv.insert(&fixture.community.id, &plugin.name, k, v);
    }
    let clock = ManualClock::new(fixture.run.now);
    let input = RunInput {
        workflow: fixture
            .run
            .workflow
            .clone()
            .unwrap_or_else(|| plugin.name.clone()),
        due_at: fixture.run.due_at.unwrap_or(fixture.run.now),
        params_json: serde_json::to_string(&fixture.run.params)?,
        hook: fixture.run.hook(),
        data: Arc::new(fixture.community.clone()),
        kv: Arc::new(kv),
        clock: Arc::new(clock),
        limits,
        observer: None,
    };
    let workflow = input.workflow.clone();
    let report = host.run(&plugin, input);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", render(&report, &plugin.version.to_string())),
    }
    if let Err(f) = &report.result {
        return Err(Coded::new(1, anyhow::anyhow!("the plugin failed: {f}")).into());
    }
    if let Some((settings, community)) = config {
        let preview = super::plugin_preview::render_intents(
            &settings,
            &community,
            &workflow,
            &fixture.community,
            &report.intents,
        );
        if matches!(args.format, Format::Text) {
            print!("{}", preview.text);
        }
        if !preview.failures.is_empty() {
            for f in &preview.failures {
                eprintln!("error: {f}");
            }
            return Err(Coded::config(anyhow::anyhow!(
                "{} message(s) cannot be rendered with the templates of {}",
                preview.failures.len(),
                community.id
            ))
            .into());
        }
    }
    Ok(())
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn vars(v: &[(String, String)]) -> String {
    v.iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The human-readable report: result, resources against limits, intents, kv writes, logs.
pub fn render(r: &RunReport, version: &str) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "plugin {} (wuye:plugin@{version}), hook {}, community {}",
        r.plugin, r.hook, r.community
    );
    match &r.result {
        Ok(()) => {
            let _ = writeln!(s, "result: ok");
        }
        Err(f) => {
            let _ = writeln!(s, "result: FAILED ({:?}): {}", f.kind, f.message);
            if let Some(bt) = &f.backtrace {
                let _ = writeln!(s, "backtrace:\n{}", bt.trim_end());
            }
        }
    }
    let _ = writeln!(
        s,
        "time: {:.2} ms of {} ms limit",
        r.elapsed.as_secs_f64() * 1000.0,
        r.deadline.as_millis()
    );
    let _ = writeln!(
        s,
        "peak memory: {} of {} limit",
        mib(r.peak_memory),
        mib(r.memory_limit)
    );
    let _ = writeln!(s, "intents ({}):", r.intents.len());
    for i in &r.intents {
        let line = match i {
            Intent::Send(m) => format!(
                "send {} template {} step {} [{:?}, {:?}] {}",
                match &m.to {
                    crate::plugin::intent::Recipient::Owner(o) => format!("owner {o}"),
                    crate::plugin::intent::Recipient::Household(h) => format!("household {h}"),
                },
                m.template,
                m.step,
                m.category,
                m.channel,
                vars(&m.vars)
            ),
            Intent::NotifyStaff(n) => format!(
                "notify {} template {} step {} {}",
                n.role.as_str(),
                n.template,
                n.step,
                vars(&n.vars)
            ),
            Intent::SetTimer { at, payload } => {
                format!("timer at {} payload {payload:?}", at.to_rfc3339())
            }
            Intent::CreateTicket(t) => format!(
                "ticket {} for {} {:?}",
                t.kind,
                t.household.as_deref().unwrap_or("the community"),
                t.summary
            ),
        };
        let _ = writeln!(s, "  {}", line.trim_end());
    }
    let _ = writeln!(s, "kv writes ({}):", r.kv_writes.len());
    for w in &r.kv_writes {
        match &w.value {
            Some(v) => {
                let _ = writeln!(s, "  {} = {v:?}", w.key);
            }
            None => {
                let _ = writeln!(s, "  {} deleted", w.key);
            }
        }
    }
    let _ = writeln!(s, "logs ({}):", r.logs.len());
    for l in &r.logs {
        let level = format!("{:?}", l.level).to_uppercase();
        let _ = writeln!(
            s,
            "  {level} {} {}",
            l.message,
            vars(&l.fields).replace('"', "")
        )
        .map(|_| ());
    }
    s
}

fn new(args: NewArgs) -> anyhow::Result<()> {
    let name = &args.name;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(Coded::usage(anyhow::anyhow!(
            "plugin name {name:?}: use lowercase letters, digits and `-`, starting with a letter"
        ))
        .into());
    }
    let dir = args.dir.join(name);
    if dir.exists() {
        return Err(Coded::usage(anyhow::anyhow!("{} already exists", dir.display())).into());
    }
    let in_workspace = args.sdk.is_none() && workspace_has_sdk(&args.dir);
    let sdk_dep = match (&args.sdk, in_workspace) {
        (Some(p), _) => {
            let p = std::fs::canonicalize(p)
                .map_err(|e| Coded::usage(anyhow::anyhow!("--sdk {}: {e}", p.display())))?;
            format!(
                "wuye-plugin-sdk = {{ path = {:?} }}",
                p.display().to_string()
            )
        }
        (None, true) => "wuye-plugin-sdk.workspace = true".to_string(),
        (None, false) => {
            return Err(Coded::usage(anyhow::anyhow!(
                "{} is not inside the wuye workspace: pass --sdk PATH/TO/plugin-sdk",
                args.dir.display()
            ))
            .into());
        }
    };
    // Outside the workspace the crate is its own workspace, so its profile is its own: no DWARF
    // in the .wasm (std's alone is megabytes; the daemon never reads it, and the name section
    // that backtraces use stays). Inside, the workspace's .cargo/config.toml does the same.
    let (pkg, serde_dep, profile) = if in_workspace {
        (
            "version.workspace = true\nedition.workspace = true\nrust-version.workspace = true\nlicense.workspace = true",
            "serde.workspace = true",
            "",
        )
    } else {
        (
            "version = \"0.1.0\"\nedition = \"2024\"",
            "serde = { version = \"1\", features = [\"derive\"] }",
            "\n[profile.release]\nstrip = \"debuginfo\"\n",
        )
    };
    let krate = name.replace('-', "_");
    let ty: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\n{pkg}\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]\n{sdk_dep}\n{serde_dep}\n{profile}"
        ),
    )?;
    std::fs::write(
        dir.join("src/lib.rs"),
        SCAFFOLD_LIB.replace("Scaffold", &ty),
    )?;
    // Inside the workspace the .wasm lands in the workspace's target/; outside, in the crate's.
    let wasm = if in_workspace {
        format!("target/wasm32-wasip2/release/{krate}.wasm")
    } else {
        dir.join(format!("target/wasm32-wasip2/release/{krate}.wasm"))
            .display()
            .to_string()
    };
    let preview = format!(
        "wuyed plugin test {wasm} --fixture {}",
        dir.join("fixture.toml").display()
    );
    let from = if in_workspace {
        "from the workspace root"
    } else {
        "from here"
    };
    std::fs::write(
        dir.join("fixture.toml"),
        SCAFFOLD_FIXTURE.replace("PREVIEW", &format!("Preview, {from}: {preview}")),
    )?;
    std::fs::write(dir.join("manifest.toml"), SCAFFOLD_MANIFEST)?;
    let templates = dir.join("templates").join(&krate);
    std::fs::create_dir_all(&templates)?;
    for (file, text) in SCAFFOLD_TEMPLATES {
        std::fs::write(templates.join(file), text)?;
    }
    println!("created {}", dir.display());
    println!("build:   cargo build --release --target wasm32-wasip2 -p {name}");
    println!("unit:    cargo test -p {name}");
    println!("preview: {preview}");
    println!();
    println!("To run it in a community, copy its templates into the configuration:");
    println!("  cp -r {} CONFIG/templates/", templates.display());
    println!(
        "and add the workflow to CONFIG/communities/<id>.toml, then `wuyed check --config CONFIG`:"
    );
    println!();
    println!("[workflows.{krate}]");
    println!("plugin = \"{krate}\"          # <plugins.dir>/{krate}.wasm");
    println!("schedule = \"0 10 * * *\"     # 10:00 daily, community time");
    println!("on_non_workday = \"skip\"");
    println!("params = {{ template = \"fee_due\", days_before = 7 }}");
    Ok(())
}

/// Whether a Cargo.toml above `dir` declares the SDK as a workspace dependency.
fn workspace_has_sdk(dir: &Path) -> bool {
    let start = std::fs::canonicalize(dir)
        .or_else(|_| std::env::current_dir().map(|c| c.join(dir)))
        .unwrap_or_else(|_| dir.to_path_buf());
    start.ancestors().any(|d| {
        std::fs::read_to_string(d.join("Cargo.toml"))
            .map(|t| t.contains("[workspace.dependencies]") && t.contains("wuye-plugin-sdk"))
            .unwrap_or(false)
    })
}

const SCAFFOLD_LIB: &str = r#"//! A wuye community plugin. Build: `cargo build --release --target wasm32-wasip2 -p <name>`.

use std::collections::BTreeMap;

use wuye_plugin_sdk::calendar::add_days;
use wuye_plugin_sdk::prelude::*;

/// The workflow's `params` table from the community file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Template to send to each household with a bill due soon or overdue (default `fee_due`).
    template: Option<String>,
    /// Remind this many days before the due date (default 7).
    days_before: Option<u32>,
}

#[derive(Default)]
pub struct Scaffold;

impl Plugin for Scaffold {
    fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        let params: Params = run.params()?;
        let template = params.template.as_deref().unwrap_or("fee_due");
        // The community's own date of this run, not UTC's.
        let today = run.local_date(host)?;
        let horizon = add_days(today, i64::from(params.days_before.unwrap_or(7)));
        // The narrow read: only bills due by the horizon cross into the sandbox.
        let mut due: BTreeMap<String, Vec<Bill>> = BTreeMap::new();
        for bill in host.unpaid_bills_due_by(&horizon.to_string()) {
            due.entry(bill.household.clone()).or_default().push(bill);
        }
        let ids: Vec<String> = due.keys().cloned().collect();
        for household in host.households_by_id(&ids) {
            let bills = &due[&household.id];
            let total: Money = bills.iter().map(Bill::outstanding).sum();
            host.send(
                // The step is part of the message's idempotency key: one reminder a day.
                Message::to_household(&household.id, template, &format!("due-{today}"))
                    .var("household.label", household.label())
                    .var("total", total.amount())
                    .var("count", bills.len())
                    // Paid before it goes out: the daemon drops the reminder.
                    .about_bills(bills.iter().map(|b| &b.id)),
            );
        }
        host.log(Level::Info, "reminded", &[("households", &due.len().to_string())]);
        Ok(())
    }
}

export_plugin!(Scaffold);
// What this plugin takes and sends, for `wuyed check` to validate each community against.
wuye_plugin_sdk::manifest!(include_str!("../manifest.toml"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminds_each_household_with_a_bill_due_within_a_week_once() {
        let mut host = MockHost::new("lakeside");
        host.at("2026-09-23T10:00:00+08:00")
            .with_household("1-101", "1", "101")
            .with_household("2-202", "2", "202")
            .with_bill("b1", "1-101", "2026-09", Money::yuan(350), "2026-09-30")
            .with_bill("b2", "1-101", "2026-08", Money::fen(12_050), "2026-08-31")
            // Due in three weeks: not yet.
            .with_bill("b3", "2-202", "2026-10", Money::yuan(350), "2026-10-15");
        let run = host.run("scaffold", "{}");
        Scaffold.on_schedule(&run, &mut host).unwrap();
        assert_eq!(host.messages.len(), 1);
        let m = &host.messages[0];
        assert_eq!(m.to, Recipient::Household("1-101".into()));
        assert_eq!(m.get("household.label"), Some("1栋101"));
        assert_eq!(m.get("total"), Some("470.50"));
        assert_eq!(m.step, "due-2026-09-23");
    }
}
"#;

const SCAFFOLD_MANIFEST: &str = r#"# What this plugin needs of a workflow that runs it, read by `wuyed check` (see the SDK's
# README). Keep it in step with `Params` and the messages in src/lib.rs.

[params.template]
type = "string"
description = "template to send to each household with a bill due soon or overdue (default fee_due)"

[params.days_before]
type = "integer"
description = "remind this many days before the due date (default 7)"

[templates.fee_due]
named_by = ["template"]
vars = ["household.label", "total", "count"]
"#;

/// The message's templates, one per locale, in the layout the daemon reads them from
/// (`templates/<workflow>/<template>.<locale>.toml` in the config directory).
const SCAFFOLD_TEMPLATES: [(&str, &str); 2] = [
    (
        "fee_due.zh-CN.toml",
        r#"subject = "{{ community.name }}：{{ household.label }} 物业费提醒"
text = """
{{ recipient.name }}，您好：

{{ household.label }} 有 {{ count }} 笔物业费即将到期或已到期，合计 {{ total }} 元。请及时缴纳，如已缴纳请忽略本通知。

{{ community.name }}客服中心
"""
sms = "{{ community.name }}：{{ household.label }} 物业费合计 {{ total }} 元即将到期，请及时缴纳。"
"#,
    ),
    (
        "fee_due.en.toml",
        r#"subject = "{{ community.name }}: property fees of {{ household.label }}"
text = """
Dear {{ recipient.name }},

{{ household.label }} has {{ count }} property fee bill(s) due soon or overdue, CNY {{ total }} in all. Please pay in time; if you already have, please ignore this notice.

{{ community.name }} service desk
"""
sms = "{{ community.name }}: property fees of {{ household.label }}, CNY {{ total }}, are due. Please pay in time."
"#,
    ),
];

const SCAFFOLD_FIXTURE: &str = r#"# PREVIEW
[run]
hook = "schedule"
now = "2026-09-23T10:00:00+08:00"
params = { template = "fee_due", days_before = 7 }

[community]
id = "lakeside"
name = "水畔花园"

[[community.households]]
id = "1-101"
building = "1"
unit = "101"
owners = ["o1"]

[[community.owners]]
id = "o1"
household = "1-101"
name = "王芳"

[[community.bills]]
id = "b1"
household = "1-101"
fee_type = "property"
period = "2026-09"
amount_fen = 35000
due_date = "2026-09-30"
"#;
