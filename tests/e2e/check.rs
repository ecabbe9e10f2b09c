//! `wuyed check` on the shipped `config/` and on broken copies of it: what an administrator sees
//! (one `FILE:LINE: KEY: MESSAGE` per problem, all of them, exit 78) and what a deploy script
//! relies on (exit 0 and one summary line when the config is usable).
//!
//! The shipped config names the `heartbeat` plugin. When it has been built (found in the target
//! dir) the test uses it, so a plugin host that validates components gets the real thing; else,
//! or with `WUYE_TEST_STUB_PLUGINS=1`, an empty `heartbeat.wasm` stands in, which is enough for
//! a loader that only checks the file exists.

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use crate::util::{copy_dir, repo_root, stderr, stdout, wuyed};

/// A copy of the shipped `config/` in a tempdir, with a plugin directory for it.
struct Copy {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    plugins: PathBuf,
}

/// Where a real `heartbeat.wasm` would be, if it was built.
fn built_plugins() -> Option<PathBuf> {
    if std::env::var("WUYE_TEST_STUB_PLUGINS").is_ok_and(|v| v == "1") {
        return None;
    }
    Some(crate::util::plugins_dir())
}

fn shipped_copy() -> Copy {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config");
    copy_dir(&repo_root().join("config"), &config);
    let plugins = built_plugins().unwrap_or_else(|| {
        let dir = tmp.path().join("plugins");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("heartbeat.wasm"), b"").unwrap();
        dir
    });
    Copy {
        _tmp: tmp,
        config,
        plugins,
    }
}

impl Copy {
    fn path(&self, rel: &str) -> PathBuf {
        self.config.join(rel)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    fn write(&self, rel: &str, text: &str) {
        fs::write(self.path(rel), text).unwrap();
    }

    /// Replaces `from` (which must occur) in a shipped file.
    fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{from:?} not in {rel}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// `wuyed check --config <copy> [extra]`, with plugins.dir pointed at the plugin dir through
    /// the environment (as an administrator would on a machine whose layout differs) and no
    /// other `WUYE_` variable of the test's own environment leaking in.
    fn check(&self, extra: &[&str]) -> Output {
        self.check_with_env(extra, &[])
    }

    fn check_with_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        self.wuyed("check", extra, env)
    }

    /// `wuyed COMMAND --config <copy> [extra]` in the environment `check_with_env` describes.
    fn wuyed(&self, command: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = wuyed();
        for (name, _) in std::env::vars() {
            if name.starts_with("WUYE_") || name == "SMTP_PASSWORD" {
                cmd.env_remove(name);
            }
        }
        cmd.arg(command)
            .arg("--config")
            .arg(&self.config)
            .args(extra)
            .env("WUYE_PLUGINS__DIR", &self.plugins)
            .envs(env.iter().copied())
            .output()
            .expect("failed to start wuyed")
    }

    /// `FILE:LINE: ` for the line of `rel` containing `needle` (exactly one must, comments aside).
    fn at(&self, rel: &str, needle: &str) -> String {
        let text = self.read(rel);
        let hits: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with('#') && l.contains(needle))
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(hits.len(), 1, "{needle:?} in {rel}: lines {hits:?}");
        format!("{}:{}: ", self.path(rel).display(), hits[0])
    }
}

fn lines(o: &Output) -> Vec<String> {
    stdout(o).lines().map(str::to_string).collect()
}

#[test]
fn the_shipped_config_passes_with_a_one_line_summary() {
    let copy = shipped_copy();
    let o = copy.check(&[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = lines(&o);
    // Only warnings (a calendar not covering next year yet, depending on today) may precede it.
    let (summary, before) = out.split_last().expect("a summary line");
    assert!(before.iter().all(|l| l.starts_with("warning: ")), "{out:?}");
    // The four real workflows in each community; the old heartbeat is kept but switched off.
    assert_eq!(
        summary,
        &format!(
            "ok: 2 communities, 8 workflows, 1 calendar ({})",
            copy.config.display()
        )
    );
}

#[test]
fn warnings_pass_unless_denied() {
    let copy = shipped_copy();
    // Links owners can open, so the calendar's is the only warning.
    copy.edit(
        "wuyed.toml",
        "listen = \"127.0.0.1:8760\"",
        "listen = \"127.0.0.1:8760\"\npublic_url = \"https://wuye.example.com\"",
    );
    // A calendar with only 2025 cannot cover next year, whenever this test runs.
    copy.write(
        "calendars/cn-mainland.toml",
        "weekend = [\"sat\", \"sun\"]\n\n[years.2025]\nholidays = [{ name = \"元旦\", from = 2025-01-01 }]\n",
    );
    let o = copy.check(&[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = lines(&o);
    assert_eq!(out.len(), 2, "{out:?}");
    let calendar = copy.path("calendars/cn-mainland.toml");
    assert!(
        out[0].starts_with(&format!(
            "warning: {}: calendar cn-mainland has no holidays for ",
            calendar.display()
        )),
        "{out:?}"
    );
    assert!(out[1].starts_with("ok: "), "{out:?}");

    let o = copy.check(&["--deny-warnings"]);
    assert_eq!(o.status.code(), Some(78), "{}{}", stdout(&o), stderr(&o));
    let out = lines(&o);
    assert_eq!(
        out.last().unwrap(),
        &format!("1 warning in {} (--deny-warnings)", copy.config.display())
    );
}

#[test]
fn a_broken_config_lists_every_error_with_file_line_and_key() {
    let copy = shipped_copy();
    let shuipan = "communities/shuipan.toml";
    let shiji = "communities/shijixinzhu.toml";
    // shijixinzhu keeps only its heartbeat, so each broken line below is the only one of its kind.
    let text = copy.read(shiji);
    let cut = text
        .find("# The four workflows of the service desk")
        .expect("shijixinzhu.toml introduces its workflows with this comment");
    copy.write(shiji, &text[..cut]);
    // A second file claiming shuipan's id (the original, untouched).
    fs::copy(copy.path(shuipan), copy.path("communities/zz-copy.toml")).unwrap();
    // shuipan: unknown key, wrong type, unknown zone, bad crontab.
    copy.edit(
        shuipan,
        "locale = \"zh-CN\"",
        "locale = \"zh-CN\"\ncolour = \"blue\"",
    );
    copy.edit(shuipan, "workdays_only = true", "workdays_only = \"yes\"");
    copy.edit(
        shuipan,
        "timezone = \"Asia/Shanghai\"",
        "timezone = \"Asia/Shangai\"",
    );
    copy.edit(
        shuipan,
        "schedule = \"*/30 8-20 * * *\"",
        "schedule = \"*/30 8-25 * * *\"",
    );
    // shijixinzhu: no manager any more but a workflow notifying one, and a plugin never built.
    copy.edit(shiji, "role = \"manager\"", "role = \"supervisor\"");
    copy.edit(shiji, "reports_to = \"sun-li\"\n", "");
    copy.edit(
        shiji,
        "catch_up = \"skip\"",
        "catch_up = \"skip\"\nnotifies = [\"manager\"]\n\n[workflows.fee_reminder]\nplugin = \"never_built\"",
    );

    let o = copy.check(&[]);
    assert_eq!(o.status.code(), Some(78), "{}{}", stdout(&o), stderr(&o));
    let out = lines(&o);
    // Files in name order, each top down.
    let expected = [
        format!(
            "{}workflows.heartbeat.notifies[0]: role manager (经理) is not staffed: add a [[staff]] entry with role = \"manager\"",
            copy.at(shiji, "notifies = [\"manager\"]")
        ),
        format!(
            "{}workflows.fee_reminder.plugin: plugin file not found: {} (build it with `cargo build --release --target wasm32-wasip2 -p never-built` (crates use '-' where files use '_'; ./scripts/build-plugins.sh builds them all), or point plugins.dir in wuyed.toml at where it is)",
            copy.at(shiji, "plugin = \"never_built\""),
            copy.plugins.join("never_built.wasm").display()
        ),
        format!(
            "{}timezone: unknown timezone \"Asia/Shangai\": expected an IANA name such as \"Asia/Shanghai\"",
            copy.at(shuipan, "Asia/Shangai")
        ),
        format!(
            "{}colour: unknown field `colour`, expected one of `id`, `name`, ",
            copy.at(shuipan, "colour")
        ),
        format!(
            "{}reception_hours.workdays_only: invalid type: string \"yes\", expected a boolean",
            copy.at(shuipan, "workdays_only")
        ),
        // The crontab parser's own reason follows; its wording is the schedule module's.
        format!(
            "{}workflows.heartbeat.schedule: invalid crontab expression \"*/30 8-25 * * *\": ",
            copy.at(shuipan, "8-25")
        ),
        format!(
            "{}id: duplicate community id \"shuipan\": {} already uses it",
            copy.at("communities/zz-copy.toml", "id = \"shuipan\""),
            copy.path(shuipan).display()
        ),
    ];
    let errors: Vec<&String> = out.iter().filter(|l| !l.starts_with("warning: ")).collect();
    assert_eq!(errors.len(), expected.len() + 1, "{}", out.join("\n"));
    for (got, want) in errors.iter().zip(&expected) {
        assert!(
            got.starts_with(want.as_str()),
            "expected a line starting\n  {want}\ngot\n  {got}\nin:\n{}",
            out.join("\n")
        );
    }
    assert_eq!(
        errors.last().unwrap().as_str(),
        format!("{} errors in {}", expected.len(), copy.config.display())
    );
    assert!(stderr(&o).contains("is not usable"), "{}", stderr(&o));
}

/// What a run would trip over at 09:00 is found now: a template variable the workflow's plugin
/// does not provide and a param of the wrong type, each with its file, line and key, from the
/// declarations built into the real plugins.
#[test]
fn a_template_variable_or_param_the_plugin_does_not_take_fails_with_file_line_and_key() {
    let copy = shipped_copy();
    let notice = "templates/fee_reminder/bill_notice.zh-CN.toml";
    let shuipan = "communities/shuipan.toml";
    copy.edit(notice, "合计 {{ total }} 元。", "合计 {{ totl }} 元。");
    copy.edit(
        shuipan,
        "sla_hours_repair = 24",
        "sla_hours_repair = \"24\"",
    );

    let o = copy.check(&[]);
    assert_eq!(o.status.code(), Some(78), "{}{}", stdout(&o), stderr(&o));
    let errors: Vec<String> = lines(&o)
        .into_iter()
        .filter(|l| !l.starts_with("warning: "))
        .collect();
    // Both communities use the default template: it is reported once.
    assert_eq!(errors.len(), 3, "{}", errors.join("\n"));
    let template = format!(
        "{}text: undefined variable `totl` (fee_reminder provides: bill_ids, bills, ",
        copy.at(notice, "{{ totl }}")
    );
    let param = format!(
        "{}workflows.callback_escalation.params.sla_hours_repair: expected an integer, got a \
         string (\"24\") (hours a repair's callback may take after the ticket closes (default 24))",
        copy.at(shuipan, "sla_hours_repair = \"24\"")
    );
    assert!(
        errors.iter().any(|l| l.starts_with(&template)),
        "no line starting\n  {template}\nin:\n{}",
        errors.join("\n")
    );
    assert!(
        errors.contains(&param),
        "no line\n  {param}\nin:\n{}",
        errors.join("\n")
    );
    assert_eq!(
        errors.last().unwrap(),
        &format!("2 errors in {}", copy.config.display())
    );
}

/// A workflow subscribing to an event its plugin's world predates is told so, with file, line
/// and key, as a warning: the configuration still works (exit 0), the subscription is just deaf.
#[test]
fn an_event_an_old_plugin_is_never_handed_is_a_warning_naming_file_line_and_key() {
    let copy = shipped_copy();
    let shuipan = "communities/shuipan.toml";
    // A plugin built against wuye:plugin@0.2.0, which predates the import events.
    fs::copy(
        crate::util::plugins_dir().join("legacy_v020.wasm"),
        copy.path("legacy_v020.wasm"),
    )
    .unwrap();
    copy.edit(
        shuipan,
        "plugin = \"fee_reminder\"",
        "plugin = \"legacy_v020.wasm\"",
    );
    copy.edit(
        shuipan,
        "events = [\"payment.*\", \"import.*\"]",
        "events = [\"payment.*\", \"import.bills\"]",
    );

    let o = copy.check(&[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = lines(&o);
    let want = format!(
        "warning: {}workflows.fee_reminder.events[1]: \"import.bills\" is never delivered to \
         this plugin (legacy_v020.wasm): it is built for wuye:plugin@0.2.0, which predates that \
         event; rebuild it against the current wuye-plugin-sdk to receive it",
        copy.at(shuipan, "\"import.bills\"")
    );
    assert!(
        out.contains(&want),
        "no line\n  {want}\nin:\n{}",
        out.join("\n")
    );
    // `payment.*` is delivered to 0.2.0: no warning about it.
    assert_eq!(
        out.iter()
            .filter(|l| l.contains("is never delivered"))
            .count(),
        1,
        "{}",
        out.join("\n")
    );
    assert!(
        out.last().unwrap().starts_with("ok: "),
        "{}",
        out.join("\n")
    );

    let o = copy.check(&["--deny-warnings"]);
    assert_eq!(o.status.code(), Some(78), "{}{}", stdout(&o), stderr(&o));
}

/// A template every community's locale needs, deleted, is named with the file to write.
#[test]
fn a_template_missing_in_a_community_locale_fails() {
    let copy = shipped_copy();
    fs::remove_file(copy.path("templates/semiannual_event/no_event.zh-CN.toml")).unwrap();
    let o = copy.check(&[]);
    assert_eq!(o.status.code(), Some(78), "{}{}", stdout(&o), stderr(&o));
    let want = format!(
        "{}: missing: workflow semiannual_event of community ",
        copy.path("templates/semiannual_event/no_event.zh-CN.toml")
            .display()
    );
    assert!(
        lines(&o).iter().any(|l| l.starts_with(&want)),
        "no line starting\n  {want}\nin:\n{}",
        stdout(&o)
    );
}

#[test]
fn an_environment_override_is_checked_and_blamed_on_its_variable() {
    let copy = shipped_copy();
    let o = copy.check_with_env(
        &[],
        &[
            ("WUYE_COMMUNITY__SHUIPAN__QUIET_HOURS__START", "late"),
            ("WUYE_HTTP__LISTEN", "0.0.0.0:9000"),
        ],
    );
    assert_eq!(o.status.code(), Some(78), "{}{}", stdout(&o), stderr(&o));
    let errors: Vec<String> = lines(&o)
        .into_iter()
        .filter(|l| !l.starts_with("warning: "))
        .collect();
    assert_eq!(
        errors,
        [
            format!(
                "{}: quiet_hours.start: invalid time \"late\": expected HH:MM, 24-hour local time (\"08:30\") (set by WUYE_COMMUNITY__SHUIPAN__QUIET_HOURS__START)",
                copy.path("communities/shuipan.toml").display()
            ),
            format!("1 error in {}", copy.config.display()),
        ]
    );
}

#[test]
fn a_missing_directory_is_a_config_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let o = wuyed()
        .args(["check", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        lines(&o),
        [
            format!(
                "{}: not a configuration directory (expected wuyed.toml and communities/ in it)",
                missing.display()
            ),
            format!("1 error in {}", missing.display()),
        ]
    );
}

/// The commented example at the end of a shipped file, from the line `# [delivery]`, with the
/// leading `# ` of each line removed, as its comment tells an administrator to do.
fn uncomment_delivery_example(text: &str) -> String {
    let start = text
        .find("\n# [delivery]\n")
        .expect("the file ends with a commented [delivery] example")
        + 1;
    let example: Vec<&str> = text[start..]
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .or_else(|| (l == "#").then_some(""))
                .unwrap_or_else(|| panic!("not a commented line in the example: {l:?}"))
        })
        .collect();
    format!("{}{}\n", &text[..start], example.join("\n"))
}

#[test]
fn the_documented_delivery_examples_pass_check_once_uncommented() {
    let copy = shipped_copy();
    for file in ["wuyed.toml", "communities/shuipan.toml"] {
        let text = uncomment_delivery_example(&copy.read(file));
        copy.write(file, &text);
    }
    // What the examples set, so the test cannot pass on an example that lost its sections.
    let daemon = copy.read("wuyed.toml");
    for section in [
        "[delivery]",
        "[delivery.email]",
        "[delivery.email.smtp]",
        "[delivery.sms]",
        "[delivery.validity]",
        "[delivery.retry]",
    ] {
        assert!(daemon.contains(&format!("\n{section}\n")), "{section}");
    }
    assert!(
        copy.read("communities/shuipan.toml")
            .contains("\nfallback = \"other_channel\"\n")
    );

    let secrets = [
        ("SMTP_PASSWORD", "smtp-secret"),
        ("WUYE_SMS_KEY_ID", "key-id"),
        ("WUYE_SMS_SECRET", "sms-secret"),
        ("WUYE_SHUIPAN_SMS_KEY_ID", "shuipan-key-id"),
        ("WUYE_SHUIPAN_SMS_SECRET", "shuipan-secret"),
    ];
    let o = copy.check_with_env(&[], &secrets);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(lines(&o).last().unwrap().starts_with("ok: 2 communities"));
    let printed = format!("{}{}", stdout(&o), stderr(&o));
    for (_, value) in secrets {
        assert!(!printed.contains(value), "a secret was printed: {printed}");
    }

    // The secrets are real references: without one, check names the file and the variable.
    let o = copy.check_with_env(&[], &secrets[..2]);
    assert_eq!(o.status.code(), Some(78), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.lines().any(
            |l| l.starts_with(&copy.path("wuyed.toml").display().to_string())
                && l.contains("WUYE_SMS_SECRET")
        ),
        "{out}"
    );
}

/// The API token as an administrator configures it: read from a variable.
const TOKEN_FROM_ENV: &str = "listen = \"127.0.0.1:8760\"\n\
    tokens = [{ name = \"desk\", token = { env = \"WUYE_TOKEN_DESK\" }, communities = [\"*\"] }]";

/// A token `wuyed run` refuses (too short to be a secret) fails `wuyed check` with the same
/// rule, naming the file and key, and `run` refuses it before touching the database.
#[test]
fn a_token_run_would_refuse_fails_the_check_naming_file_and_key() {
    let copy = shipped_copy();
    copy.edit("wuyed.toml", "listen = \"127.0.0.1:8760\"", TOKEN_FROM_ENV);
    let data = copy.config.with_file_name("data");
    let data_env = data.display().to_string();
    let env = [
        ("WUYE_TOKEN_DESK", "short"),
        ("WUYE_DAEMON__DATA_DIR", data_env.as_str()),
        ("WUYE_HTTP__LISTEN", "127.0.0.1:0"),
    ];
    let o = copy.check_with_env(&[], &env);
    assert_eq!(o.status.code(), Some(78), "{}{}", stdout(&o), stderr(&o));
    let message = "http.tokens[0].token: token \"desk\": the token is shorter than 16 characters";
    let at = copy.at("wuyed.toml", "tokens = [");
    assert!(
        lines(&o)
            .iter()
            .any(|l| l.starts_with(&format!("{at}{message}"))),
        "{}",
        stdout(&o)
    );

    let run = copy.wuyed("run", &[], &env);
    assert_eq!(run.status.code(), Some(78), "{}", stderr(&run));
    assert!(stderr(&run).contains(message), "{}", stderr(&run));
    assert!(!data.join("wuye.db").exists(), "run opened the database");

    // A long enough token passes both.
    let good = [("WUYE_TOKEN_DESK", "0123456789abcdef"), env[1], env[2]];
    let o = copy.check_with_env(&[], &good);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

/// `report`, `import`, `outbox`, `next` and `simulate` neither send nor serve: they work in a
/// shell without the daemon's API token or SMTP password, which `check` (like `run`) requires.
#[test]
fn offline_commands_work_without_the_daemons_secrets() {
    let copy = shipped_copy();
    copy.edit("wuyed.toml", "listen = \"127.0.0.1:8760\"", TOKEN_FROM_ENV);
    let text = copy.read("wuyed.toml");
    copy.write(
        "wuyed.toml",
        &format!(
            "{text}\n[delivery.email]\nfrom = \"desk@shuipan.example\"\n\
             smtp = {{ host = \"127.0.0.1\", port = 2525, tls = \"none\", username = \"desk\", \
             password = {{ env = \"SMTP_PASSWORD\" }} }}\n"
        ),
    );
    let data = copy.config.with_file_name("data");
    let data_env = data.display().to_string();
    let env = [("WUYE_DAEMON__DATA_DIR", data_env.as_str())];
    let owners = copy.path("data/shuipan/owners.csv");
    let owners = owners.to_str().unwrap();
    let commands: [(&str, &[&str]); 5] = [
        ("import", &["owners", owners, "--community", "shuipan"]),
        (
            "next",
            &[
                "--community",
                "shuipan",
                "--workflow",
                "fee_reminder",
                "-n",
                "1",
            ],
        ),
        ("outbox", &["list"]),
        (
            "report",
            &["fees", "--community", "shuipan", "--period", "2026-11"],
        ),
        (
            "simulate",
            &[
                "--from",
                "2026-11-23",
                "--to",
                "2026-11-23",
                "--community",
                "shuipan",
            ],
        ),
    ];
    for (command, args) in commands {
        let o = copy.wuyed(command, args, &env);
        assert!(
            o.status.success(),
            "wuyed {command}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }

    let o = copy.check_with_env(&[], &env);
    assert_eq!(o.status.code(), Some(78), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("environment variable WUYE_TOKEN_DESK is not set"),
        "{out}"
    );
    assert!(
        out.contains("environment variable SMTP_PASSWORD is not set"),
        "{out}"
    );
}

#[test]
fn public_url_must_be_a_web_address_and_links_owners_cannot_open_are_warned_about() {
    let copy = shipped_copy();
    let about_links = |o: &Output| -> Vec<String> {
        lines(o)
            .into_iter()
            .filter(|l| l.contains("http.public_url"))
            .collect()
    };
    // The demo sets no public_url, while its surveys and event announcements carry links.
    let o = copy.check(&[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let http = copy.at("wuyed.toml", "[http]");
    assert_eq!(
        about_links(&o),
        [format!(
            "warning: {http}http.public_url: not set, so the survey and RSVP links in messages of \
             shijixinzhu/quarterly_survey, shijixinzhu/semiannual_event and 2 more point at \
             http://127.0.0.1:8760, which only this machine can open: set http.public_url in \
             wuyed.toml to the address owners open the owner pages at (for example \
             \"https://wuye.example.com\")"
        )]
    );

    let listen = "listen = \"127.0.0.1:8760\"";
    let with_url = |url: &str| {
        let copy = shipped_copy();
        copy.edit(
            "wuyed.toml",
            listen,
            &format!("{listen}\npublic_url = \"{url}\""),
        );
        let o = copy.check(&[]);
        let at = copy.at("wuyed.toml", "public_url =");
        (o, at)
    };
    // Not a URL: an error naming the file, line and key; the check fails.
    let (o, at) = with_url("not-a-url");
    assert_eq!(o.status.code(), Some(78), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        about_links(&o),
        [format!(
            "{at}http.public_url: invalid URL \"not-a-url\" (relative URL without a base): \
             expected an absolute URL such as \"https://wuye.example.com\""
        )]
    );
    // This machine's own address: the links only open here.
    let (o, at) = with_url("http://localhost:8760");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        about_links(&o),
        [format!(
            "warning: {at}http.public_url: \"http://localhost:8760\" is an address of this \
             machine, so the links in owners' messages of shijixinzhu/quarterly_survey, \
             shijixinzhu/semiannual_event and 2 more only open here: set http.public_url in \
             wuyed.toml to the address owners open the owner pages at (for example \
             \"https://wuye.example.com\")"
        )]
    );
    // Plain http to another machine: the tokens would travel in clear.
    let (o, at) = with_url("http://wuye.example.com");
    assert_eq!(o.status.code(), Some(0));
    let warned = about_links(&o);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].starts_with(&format!(
            "warning: {at}http.public_url: \"http://wuye.example.com\" is plain http: "
        )),
        "{warned:?}"
    );
    // https to the address owners reach: nothing to say.
    let (o, _) = with_url("https://wuye.example.com/wuye");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(about_links(&o), Vec::<String>::new());
}
