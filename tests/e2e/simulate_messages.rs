//! `wuyed simulate --show-messages` on the shipped demo: the messages themselves, as the owners
//! would read them (their language, their household, their amounts), with no owner's phone
//! number or email address in clear, and what quiet hours, filters and a broken template do to
//! the listing.

use std::ffi::OsStr;
use std::process::Output;

use crate::daemon::Demo;

/// `wuyed simulate --config <demo> ARGS...`.
fn simulate(demo: &Demo, args: &[&str]) -> Output {
    demo.cmd()
        .args(["simulate", "--config"])
        .arg(&demo.config)
        .args(args.iter().map(OsStr::new))
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The messages printed in full: each block from its `[i/n]` header to the next.
fn blocks(stdout: &str) -> Vec<&str> {
    let full = stdout
        .split_once(" in full")
        .unwrap_or_else(|| panic!("no messages in full:\n{stdout}"))
        .1;
    full.split("\n[").skip(1).collect()
}

/// The one block that contains every one of `needles`.
fn block_with<'a>(stdout: &'a str, needles: &[&str]) -> &'a str {
    let found: Vec<&str> = blocks(stdout)
        .into_iter()
        .filter(|b| needles.iter().all(|n| b.contains(n)))
        .collect();
    assert_eq!(found.len(), 1, "{needles:?} in:\n{stdout}");
    found[0]
}

/// Every phone number and email address of 水畔花园's owners, as imported.
fn owner_contacts(demo: &Demo) -> Vec<String> {
    let file = demo.config.join("data/shuipan/owners.csv");
    let text = std::fs::read_to_string(file).unwrap();
    let contacts: Vec<String> = text
        .lines()
        .skip(1)
        .flat_map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            [cols[4].to_string(), cols[5].to_string()]
        })
        .filter(|c| !c.is_empty())
        .collect();
    assert!(contacts.len() > 20, "{contacts:?}");
    contacts
}

#[test]
fn show_messages_prints_what_each_owner_reads_in_their_language_with_contacts_masked() {
    let demo = Demo::new();
    let out = simulate(
        &demo,
        &[
            "--from",
            "2026-11-23",
            "--to",
            "2026-12-08",
            "--community",
            "shuipan",
            "--show-messages",
            "--limit",
            "0",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    // The timeline first, then every message it counts, in full.
    let total: usize = stdout
        .lines()
        .find_map(|l| l.strip_suffix(" day(s) with messages"))
        .and_then(|l| l.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no total:\n{stdout}"));
    assert!(stdout.contains(&format!(
        "\n{total} message(s) in full, in each community's local time:"
    )));
    assert_eq!(blocks(&stdout).len(), total);

    // A zh-CN owner who reads email: the Chinese demand letter, with her household and amounts.
    let zh = block_with(&stdout, &["household:2-1-102 ", "物业费书面催告函"]);
    assert!(
        zh.contains("  to:       household:2-1-102 o***@example.com\n"),
        "{zh}"
    );
    assert!(zh.contains("  channel:  email, zh-CN\n"), "{zh}");
    assert!(
        zh.contains("  sent:     2026-11-23 10:00 Asia/Shanghai\n"),
        "{zh}"
    );
    assert!(
        zh.contains("  subject:  水畔花园：2栋1单元102 物业费书面催告函\n"),
        "{zh}"
    );
    assert!(zh.contains("    史丽，您好：\n"), "{zh}");
    assert!(zh.contains("    合计 1,090.00 元。"), "{zh}");
    // The HTML exists and is not printed unless asked for.
    assert!(zh.contains("  html:     also sent as HTML ("), "{zh}");
    assert!(!zh.contains("<p>"), "{zh}");

    // An English owner who reads email: the English template, in yuan too.
    let en = block_with(&stdout, &["household:1-1-402 ", "payment reminder"]);
    assert!(
        en.lines()
            .next()
            .unwrap()
            .ends_with("] 2026-12-08 10:00  shuipan  fee_reminder/bill_notice"),
        "{en}"
    );
    assert!(en.contains("  channel:  email, en\n"), "{en}");
    assert!(
        en.contains("  to:       household:1-1-402 h***@example.com\n"),
        "{en}"
    );
    assert!(
        en.contains("  subject:  水畔花园: Building 1, Unit 1, Room 402 payment reminder\n"),
        "{en}"
    );
    assert!(en.contains("    Dear Hannah Müller,\n"), "{en}");
    assert!(en.contains("    Total: CNY 287.50."), "{en}");

    // A zh-CN owner who prefers SMS: the SMS text as the gateway gets it.
    let sms = block_with(
        &stdout,
        &["household:1-1-101 ", "2026-11-23 10:00", "bill_notice"],
    );
    assert!(
        sms.contains("  to:       household:1-1-101 138****0001\n"),
        "{sms}"
    );
    assert!(
        sms.contains("  sms:      【水畔花园】吴军您好，1栋1单元101本期账单合计220.00元，"),
        "{sms}"
    );

    // The staff's notices are messages too; their addresses are masked as well.
    let to_manager: Vec<&str> = blocks(&stdout)
        .into_iter()
        .filter(|b| b.contains("  to:       staff:lin-hua "))
        .collect();
    assert!(!to_manager.is_empty(), "{stdout}");
    for b in to_manager {
        assert!(
            b.contains("  to:       staff:lin-hua l***@example.com\n"),
            "{b}"
        );
    }
    assert!(!stdout.contains("lin.hua@example.com"), "{stdout}");

    // Not one owner's phone number or email address in clear.
    for contact in owner_contacts(&demo) {
        assert!(
            !stdout.contains(&contact) && !stderr.contains(&contact),
            "{contact} shown in clear"
        );
    }
}

#[test]
fn show_messages_prints_at_most_the_limit_one_of_each_kind_first() {
    let demo = Demo::new();
    let day = [
        "--from",
        "2026-11-23",
        "--to",
        "2026-11-23",
        "--community",
        "shuipan",
    ];
    let out = simulate(
        &demo,
        &[&day[..], &["--show-messages", "--limit", "3"]].concat(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let total: usize = stdout
        .lines()
        .find_map(|l| l.strip_suffix(" message(s) over 1 day(s) with messages"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no total:\n{stdout}"));
    assert!(total > 20, "{stdout}");
    assert!(stdout.contains(&format!("\n3 of {total} message(s) in full (one of each")));
    let shown = blocks(&stdout);
    assert_eq!(shown.len(), 3, "{stdout}");
    // The day's three templates, one each, though the bills and balances to owners come first.
    for template in ["bill_notice", "low_balance", "manager_visit"] {
        assert_eq!(
            shown
                .iter()
                .filter(|b| b.lines().next().unwrap().ends_with(template))
                .count(),
            1,
            "{template}:\n{stdout}"
        );
    }
    assert!(
        stdout.trim_end().ends_with(&format!(
            "{} more message(s) not shown in full: --limit 0 shows them all (pipe to less), \
             --household ID one household's",
            total - 3
        )),
        "{stdout}"
    );

    // Without --limit: 20.
    let out = simulate(&demo, &[&day[..], &["--show-messages"]].concat());
    let (stdout, _) = text(&out);
    assert_eq!(blocks(&stdout).len(), 20, "{stdout}");

    // One household: its messages only, the timeline included, and no staff notice.
    let out = simulate(
        &demo,
        &[&day[..], &["--show-messages", "--household", "1-1-102"]].concat(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let shown = blocks(&stdout);
    assert!(!shown.is_empty());
    for b in &shown {
        assert!(b.contains("  to:       household:1-1-102 "), "{b}");
    }
    assert!(
        stdout.contains(&format!("\n{} message(s) over 1 day(s)", shown.len())),
        "{stdout}"
    );
    assert!(!stdout.contains("staff"), "{stdout}");

    // A household nobody has: refused before a minute is spent simulating.
    let out = simulate(&demo, &[&day[..], &["--household", "9-9-999"]].concat());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(64), "{stdout}{stderr}");
    assert!(
        stderr.contains("no household \"9-9-999\" in community shuipan"),
        "{stderr}"
    );

    // --limit is for the text; JSON lines carry every message in full.
    let out = simulate(
        &demo,
        &[
            &day[..],
            &["--show-messages", "--format", "json", "--limit", "3"],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(64), "{}", text(&out).1);
    let out = simulate(
        &demo,
        &[
            &day[..],
            &[
                "--show-messages",
                "--format",
                "json",
                "--household",
                "2-1-102",
            ],
        ]
        .concat(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let message = &line["message"];
    assert_eq!(message["to"], "o***@example.com", "{line}");
    assert_eq!(message["locale"], "zh-CN", "{line}");
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .contains("合计 1,090.00 元"),
        "{line}"
    );
    assert!(
        message["html"]
            .as_str()
            .unwrap()
            .contains("<b>1,090.00 元</b>"),
        "{line}"
    );
    assert_eq!(message["goes_at"], line["sent_at"], "{line}");
}

/// Quiet hours over the 10:00 fee run: each message shows when it was queued and the local
/// minute it goes out at once they end; --show-html prints the HTML as sent.
#[test]
fn show_messages_says_when_quiet_hours_let_a_message_go() {
    let demo = Demo::new();
    let file = demo.config.join("communities/shuipan.toml");
    let config = std::fs::read_to_string(&file).unwrap();
    let old = "[quiet_hours]\nstart = \"21:00\"\nend = \"08:00\"\n";
    assert!(config.contains(old));
    std::fs::write(
        &file,
        config.replace(old, "[quiet_hours]\nstart = \"09:30\"\nend = \"11:00\"\n"),
    )
    .unwrap();
    let out = simulate(
        &demo,
        &[
            "--from",
            "2026-11-23",
            "--to",
            "2026-11-23",
            "--community",
            "shuipan",
            "--household",
            "2-1-102",
            "--show-messages",
            "--show-html",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let letter = block_with(&stdout, &["物业费书面催告函"]);
    let sent = letter
        .lines()
        .find_map(|l| l.strip_prefix("  sent:     "))
        .unwrap_or_else(|| panic!("{letter}"));
    // Held until 11:00, spread over the minutes after it.
    assert!(sent.starts_with("2026-11-23 11:"), "{sent}");
    assert!(
        sent.ends_with(" Asia/Shanghai (queued 2026-11-23 10:00)"),
        "{sent}"
    );
    assert!(
        letter.contains("  html:\n    <p>史丽，您好：</p>\n"),
        "{letter}"
    );
    assert!(letter.contains("<b>1,090.00 元</b>"), "{letter}");
}

/// A template that fails when rendered (not one `check` can see: a string plus a number) fails
/// the run that would have sent it; with --show-messages the command still exits 70 and names
/// the template file, and what other runs queued is still shown.
#[test]
fn show_messages_exits_non_zero_naming_a_template_that_cannot_render() {
    let demo = Demo::new();
    let file = demo
        .config
        .join("templates/fee_reminder/bill_notice.en.toml");
    let template = std::fs::read_to_string(&file).unwrap();
    let old = "Total: CNY {{ total }}.";
    assert!(template.contains(old));
    std::fs::write(&file, template.replace(old, "Total: CNY {{ total + 1 }}.")).unwrap();
    let out = simulate(
        &demo,
        &[
            "--from",
            "2026-12-08",
            "--to",
            "2026-12-08",
            "--show-messages",
            "--limit",
            "0",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(70), "{stdout}{stderr}");
    let failed = stdout
        .split_once("run(s) failed:\n")
        .unwrap_or_else(|| panic!("no failed runs listed:\n{stdout}"))
        .1;
    assert!(
        failed.contains("2026-12-08 10:00  shuipan fee_reminder:"),
        "{failed}"
    );
    assert!(
        failed.contains("template fee_reminder/bill_notice.en.toml#text: invalid operation"),
        "{failed}"
    );
    assert!(
        stderr.contains("run(s) failed in the simulated span"),
        "{stderr}"
    );
    // 水畔花园's run failed whole: none of its messages was queued, so none is shown as if sent;
    // 世纪新筑's English owners read SMS, which that file renders, and its run's are shown.
    assert!(!stdout.contains("  shuipan  fee_reminder"), "{stdout}");
    assert!(
        blocks(&stdout)
            .iter()
            .any(|b| b.contains("  shijixinzhu  fee_reminder/bill_notice\n")),
        "{stdout}"
    );
}
