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
    let report = host.run(&plugin, input);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", render(&report, &plugin.version.to_string())),
    }
    if let Err(f) = &report.result {
        return Err(Coded::new(1, anyhow::anyhow!("the plugin failed: {f}")).into());
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
    std::fs::write(
        dir.join("fixture.toml"),
        SCAFFOLD_FIXTURE.replace("scaffold", &krate),
    )?;
    std::fs::write(dir.join("manifest.toml"), SCAFFOLD_MANIFEST)?;
    println!("created {}", dir.display());
    println!("build:   cargo build --release --target wasm32-wasip2 -p {name}");
    println!("unit:    cargo test -p {name}");
    println!(
        "preview: wuyed plugin test target/wasm32-wasip2/release/{krate}.wasm --fixture {}",
        dir.join("fixture.toml").display()
    );
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

use wuye_plugin_sdk::prelude::*;

/// The workflow's `params` table from the community file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Template to send to each household with an unpaid bill.
    template: Option<String>,
}

#[derive(Default)]
pub struct Scaffold;

impl Plugin for Scaffold {
    fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        let params: Params = run.params()?;
        let template = params.template.as_deref().unwrap_or("fee_due");
        let mut households: Vec<String> =
            host.unpaid_bills().into_iter().map(|b| b.household).collect();
        households.sort();
        households.dedup();
        for h in &households {
            host.send(Message::to_household(h, template, "reminder"));
        }
        host.log(Level::Info, "reminded", &[("households", &households.len().to_string())]);
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
    fn reminds_each_household_with_an_unpaid_bill_once() {
        let mut host = MockHost::new("lakeside");
        for (id, paid) in [("b1", 0), ("b2", 0), ("b3", 10_000)] {
            host.bills.push(Bill {
                id: id.into(),
                household: if id == "b3" { "2-202".into() } else { "1-101".into() },
                fee_type: "property".into(),
                period: "2026-09".into(),
                amount_fen: 10_000,
                paid_fen: paid,
                due_date: "2026-09-30".into(),
            });
        }
        let run = host.run("fee_reminder", "{}");
        Scaffold.on_schedule(&run, &mut host).unwrap();
        assert_eq!(host.messages.len(), 1);
        assert_eq!(host.messages[0].to, Recipient::Household("1-101".into()));
    }
}
"#;

const SCAFFOLD_MANIFEST: &str = r#"# What this plugin needs of a workflow that runs it, read by `wuyed check` (see the SDK's
# README). Keep it in step with `Params` and the messages in src/lib.rs.

[params.template]
type = "string"
description = "template to send to each household with an unpaid bill (default fee_due)"

[templates.fee_due]
named_by = ["template"]
vars = []
"#;

const SCAFFOLD_FIXTURE: &str = r#"# `wuyed plugin test target/wasm32-wasip2/release/scaffold.wasm --fixture fixture.toml`
[run]
hook = "schedule"
now = "2026-09-23T01:00:00Z"
params = { template = "fee_due" }

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
