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
        let mut cmd = wuyed();
        for (name, _) in std::env::vars() {
            if name.starts_with("WUYE_") {
                cmd.env_remove(name);
            }
        }
        cmd.arg("check")
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
