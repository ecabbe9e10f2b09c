//! `wuyed report` through the real binary on the shuipan demo data: import the CSV files as an
//! administrator would, add what the demo files do not carry (survey answers for two quarters,
//! a late callback, a bad callback that reopens a ticket) through the domain store, then assert
//! the exact lines of figures an office manager reads, and that the HTML page is well formed
//! with one SVG bar per figure.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use wuye::domain::SurveyScores;
use wuye::store::domain::{CallbackInput, open_standalone, with_tx};

use crate::util::{repo_root, run, stderr, stdout};

/// A configuration with shuipan only (staff names and the callback SLA as the report reads
/// them) and an absolute data dir.
fn config(dir: &Path) -> PathBuf {
    let cfg = dir.join("config");
    std::fs::create_dir_all(cfg.join("communities")).unwrap();
    std::fs::write(
        cfg.join("wuyed.toml"),
        format!(
            "[daemon]\ndata_dir = {:?}\n",
            dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(
        cfg.join("communities/shuipan.toml"),
        r#"id = "shuipan"
name = "水畔花园"
timezone = "Asia/Shanghai"

[[staff]]
id = "chen-jing"
name = "陈静"
role = "customer_service"

[[staff]]
id = "weixiu-zhao"
name = "赵师傅"
role = "customer_service"

[workflows.callback_escalation]
plugin = "callback_escalation"
enabled = false
[workflows.callback_escalation.params]
sla_hours_repair = 24
sla_hours_complaint = 48
"#,
    )
    .unwrap();
    cfg
}

fn local(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Shanghai
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn scores(s: [Option<u8>; 5]) -> SurveyScores {
    SurveyScores {
        reception: s[0],
        repairs: s[1],
        cleaning: s[2],
        security: s[3],
        greenery: s[4],
    }
}

/// Imports the demo files, then adds two survey quarters and callbacks.
fn demo_db(dir: &Path) -> PathBuf {
    let cfg = config(dir);
    for kind in ["owners", "bills", "payments", "balances", "tickets"] {
        let file = repo_root().join(format!("config/data/shuipan/{kind}.csv"));
        let o = run(&[
            "import",
            kind,
            file.to_str().unwrap(),
            "--community",
            "shuipan",
            "--config",
            cfg.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "import {kind}: {}", stderr(&o));
    }
    let mut conn = open_standalone(&dir.join("data/wuye.db")).unwrap();
    let n = None;
    // Q2: 10 invited, 6 answered. Q3: 10 invited, 8 answered.
    let q2: [([Option<u8>; 5], &str); 6] = [
        ([Some(4), Some(4), Some(4), Some(4), Some(4)], ""),
        ([Some(3), Some(3), Some(4), Some(4), Some(4)], ""),
        ([Some(5), Some(4), Some(4), Some(5), Some(3)], ""),
        ([Some(4), Some(2), Some(3), Some(4), Some(4)], ""),
        ([Some(2), Some(4), Some(4), Some(5), Some(4)], ""),
        ([Some(5), Some(5), Some(5), Some(4), n], ""),
    ];
    let q3: [([Option<u8>; 5], &str); 8] = [
        ([Some(5), Some(5), Some(4), Some(5), Some(4)], ""),
        ([Some(4), Some(4), Some(4), Some(4), Some(4)], ""),
        ([Some(5), Some(3), Some(4), Some(5), Some(5)], ""),
        (
            [Some(4), Some(2), Some(5), Some(4), n],
            "水管维修拖了一周 <急>",
        ),
        ([Some(3), Some(4), Some(4), Some(5), Some(4)], ""),
        ([Some(5), Some(5), Some(3), Some(4), Some(4)], ""),
        (
            [Some(4), Some(1), Some(2), Some(3), Some(5)],
            "保洁不到位，报修没人管 请回电13812345678",
        ),
        ([Some(5), Some(4), Some(5), Some(5), Some(4)], ""),
    ];
    with_tx(&mut conn, |tx| -> anyhow::Result<()> {
        let d = tx.domain("shuipan");
        let households: Vec<String> = d.households()?.into_iter().map(|h| h.id).take(10).collect();
        for (key, month, answers) in [("2026Q2", 4, &q2[..]), ("2026Q3", 7, &q3[..])] {
            let opens = local(2026, month, 1, 9);
            let c = d.upsert_campaign(key, opens, local(2026, month, 28, 18))?;
            let inv = d.invite(c.id, &households, opens)?;
            for (i, (s, comment)) in answers.iter().enumerate() {
                tx.record_survey_response(
                    &inv[i].token,
                    scores(*s),
                    comment,
                    local(2026, month, 3, 20),
                )?;
            }
        }
        let cb = |at, satisfied, score| CallbackInput {
            done_at: at,
            done_by: "kefu-chen".into(),
            satisfied,
            score,
            notes: String::new(),
        };
        // The complaint closed 08-31 16:00 is called back after 66 h: late against 48 h.
        d.record_callback(
            "SP-T012",
            &cb(local(2026, 9, 3, 10), true, 4),
            local(2026, 9, 3, 10),
        )?;
        // A bad callback reopens SP-T013; it is fixed again and the second callback is good.
        let o = d.record_callback(
            "SP-T013",
            &cb(local(2026, 9, 24, 10), false, 2),
            local(2026, 9, 24, 10),
        )?;
        assert!(o.reopened);
        d.close_ticket(
            "SP-T013",
            local(2026, 9, 26, 16),
            None,
            local(2026, 9, 26, 16),
        )?;
        d.record_callback(
            "SP-T013",
            &cb(local(2026, 9, 27, 10), true, 4),
            local(2026, 9, 27, 10),
        )?;
        Ok(())
    })
    .unwrap();
    cfg
}

fn report(cfg: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--community", "shuipan", "--config", cfg.to_str().unwrap()]);
    run(&all)
}

fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        stderr(o)
    );
    stdout(o)
}

fn assert_lines(text: &str, lines: &[&str]) {
    for l in lines {
        assert!(
            text.lines().any(|x| x == *l),
            "missing line {l:?} in:\n{text}"
        );
    }
}

/// A strict well-formedness check: every `<` opens a tag, every non-void element is closed in
/// order, attribute quotes balance, and `&` starts an entity.
fn assert_well_formed(html: &str) {
    const VOID: [&str; 4] = ["meta", "br", "hr", "img"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(['<', '&']) {
        let (c, after) = (rest.as_bytes()[i], &rest[i + 1..]);
        if c == b'&' {
            let end = after.find(';').expect("& without ;");
            let ent = &after[..end];
            assert!(
                ["amp", "lt", "gt", "quot", "#39"].contains(&ent),
                "bad entity &{ent};"
            );
            rest = &after[end + 1..];
            continue;
        }
        let end = after.find('>').expect("unclosed tag");
        let tag = &after[..end];
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        assert!(!tag.contains('<'), "'<' inside a tag: <{tag}>");
        rest = &after[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name, "</{name}> closes <{open}>");
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        assert!(!name.is_empty(), "'<' that opens no tag: <{tag}>");
        if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn satisfaction_report_on_demo_data_with_two_survey_quarters() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = demo_db(tmp.path());
    let text = ok(&report(&cfg, &["satisfaction", "--period", "2026Q3"]));
    assert_lines(
        &text,
        &[
            "水畔花园 业主满意度报告",
            "期间：2026Q3 (2026-07-01 – 2026-09-30)",
            "2026Q3        10         8   80.0%",
            // Reception 7/8 vs 4/6: +20.8 points from the exact fractions.
            "接待服务         8           7   87.5%    4.38           66.7%  +20.8 个百分点",
            "报修维修         8           5   62.5%    3.50           66.7%   -4.2 个百分点",
            // Greenery: one household had no opinion; 7/7.
            "绿化             7           7  100.0%    4.29           80.0%  +20.0 个百分点",
            "低分（≤2 分）：3 项，2 户次",
        ],
    );
    assert_lines(
        &text,
        &[
            "1-1-202  报修维修 2          水管维修拖了一周 <急>",
            // The phone number the owner wrote into the comment is masked.
            "1-1-401  报修维修 1，保洁 2  保洁不到位，报修没人管 请回电138****5678",
        ],
    );
    // No owner names or phones in a report that circulates in the office.
    assert!(
        !text.contains("吴军") && !text.contains("1380000") && !text.contains("13812345678"),
        "{text}"
    );

    // A quarter without campaign says so; the previous one has nothing to compare with.
    let q1 = ok(&report(&cfg, &["satisfaction", "--period", "2026Q1"]));
    assert!(
        q1.ends_with("本期（2026Q1 (2026-01-01 – 2026-03-31)）没有满意度调查\n"),
        "{q1}"
    );
    let q1_html = ok(&report(
        &cfg,
        &["satisfaction", "--period", "2026Q1", "--format", "html"],
    ));
    assert_well_formed(&q1_html);
    assert!(
        q1_html.contains("<p class=\"note\">本期（2026Q1"),
        "{q1_html}"
    );
    assert!(!q1_html.contains("<svg"));
    let q2 = ok(&report(&cfg, &["satisfaction", "--period", "2026Q2"]));
    assert!(
        q2.contains("上期（2026Q1）没有满意度调查，无法比较\n"),
        "{q2}"
    );
    // The half year holds both campaigns and totals them.
    let h1 = ok(&report(&cfg, &["satisfaction", "--period", "2026"]));
    assert_lines(&h1, &["合计          20        14   70.0%"]);

    let out = tmp.path().join("satisfaction.html");
    let o = report(
        &cfg,
        &[
            "satisfaction",
            "--period",
            "2026Q3",
            "--format",
            "html",
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok(&o).is_empty());
    let html = std::fs::read_to_string(&out).unwrap();
    assert_well_formed(&html);
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Self-contained: nothing fetched from anywhere, no scripts.
    for external in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(!html.contains(external), "{external} in the page");
    }
    assert_eq!(html.matches("<svg").count(), 1);
    // 5 areas x (this quarter, previous quarter).
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 10);
    assert!(html.contains("水管维修拖了一周 &lt;急&gt;"));
    assert!(html.contains("<td class=\"n\">87.5%</td>"));
}

#[test]
fn callbacks_report_counts_late_missed_and_reopened_tickets() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = demo_db(tmp.path());
    let text = ok(&report(
        &cfg,
        &["callbacks", "--period", "2026Q3", "--as-of", "2026-11-20"],
    ));
    assert_lines(
        &text,
        &[
            "期间：2026Q3 (2026-07-01 – 2026-09-30)；回访时限：报修 24 小时，投诉 48 小时；截至 2026-11-20 日终",
            "回访率：100.0%（结案 4 单，已回访 4 单）",
            "及时率：75.0%（应回访 4 单，及时 3 单）",
            // The bad callback counts: 4 of 5 satisfied, (5+4+4+2+4)/5.
            "回访满意率：80.0%（回访 5 次，满意 4 次），平均分 3.80",
            "超过时限、应升级至主管：1 单（超时回访 1 单，未回访 0 单）",
            "因回访不满意重开：1 单",
        ],
    );
    assert_lines(
        &text,
        &[
            "报修     3       3  100.0%     3     0       0       0         4   75.0%    3.75",
            "投诉     1       1  100.0%     0     1       0       0         1  100.0%    4.00",
            // The desk member who took every call owns every callback (首问负责制).
            "陈静 (chen-jing)     4       4  100.0%     3     1       0       0         5   80.0%    3.80",
            // The bad callback counts against the repair worker's satisfaction.
            "赵师傅 (weixiu-zhao)     2       2  100.0%     2     0       0       0         3   66.7%    3.67",
        ],
    );

    // Q4 so far: SP-T014, closed 10-14 16:00 without callback, is missed by the end of 10-20;
    // at the end of 10-14 its 24 h had not run out, so it was pending and nothing was due.
    let q4 = ok(&report(
        &cfg,
        &["callbacks", "--period", "2026Q4", "--as-of", "2026-10-20"],
    ));
    assert_lines(
        &q4,
        &[
            "回访率：0.0%（结案 1 单，已回访 0 单）",
            "及时率：0.0%（应回访 1 单，及时 0 单）",
        ],
    );
    let early = ok(&report(
        &cfg,
        &["callbacks", "--period", "2026Q4", "--as-of", "2026-10-14"],
    ));
    assert_lines(&early, &["及时率：—（应回访 0 单，及时 0 单）"]);

    // Judged on 09-02, SP-T012's callback (done 09-03) had not happened and its 48 h were up;
    // SP-T013 had not been closed yet.
    let sept2 = ok(&report(
        &cfg,
        &["callbacks", "--period", "2026Q3", "--as-of", "2026-09-02"],
    ));
    assert_lines(
        &sept2,
        &[
            "回访率：66.7%（结案 3 单，已回访 2 单）",
            "超过时限、应升级至主管：1 单（超时回访 0 单，未回访 1 单）",
            "回访满意率：100.0%（回访 2 次，满意 2 次），平均分 4.50",
        ],
    );

    let html = ok(&report(
        &cfg,
        &["callbacks", "--period", "2026Q3", "--format", "html"],
    ));
    assert_well_formed(&html);
    // (repair, complaint, total) x (callback rate, on time, satisfied).
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 9);

    let none = ok(&report(&cfg, &["callbacks", "--period", "2025-12"]));
    assert!(
        none.ends_with("本期（2025-12）没有结案工单，也没有回访\n"),
        "{none}"
    );
}

#[test]
fn fees_report_on_demo_data_counts_payments_as_the_books_stood_at_period_end() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = demo_db(tmp.path());
    let text = ok(&report(&cfg, &["fees", "--period", "2026Q3"]));
    assert_lines(
        &text,
        &[
            "停车费    13   ¥5,850.00   ¥5,850.00      ¥0.00  100.0%   ¥5,850.00",
            "物业费   120  ¥32,377.50  ¥28,415.00  ¥3,962.50   87.8%  ¥28,415.00",
            "合计     133  ¥38,227.50  ¥34,265.00  ¥3,962.50   89.6%  ¥34,265.00",
            "收缴率：89.6%",
            "欠费户（截至 2026-09-30）：7 户",
            "0–30 天       2     7  ¥1,945.00",
            "90 天以上     1     1    ¥230.00",
            "合计          7    16  ¥4,192.50",
            "2-1-402     4  ¥920.00  2026-06-15       107",
            "预付费余额低于提醒线（最新读数）：13 项",
            "1-1-501  水    -¥4.16  ¥20.00",
        ],
    );
    let html = ok(&report(
        &cfg,
        &["fees", "--period", "2026Q3", "--format", "html"],
    ));
    assert_well_formed(&html);
    // (parking, property) x (billed, collected).
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 4);

    // A half year not over yet counts only the bills due by the reference day: December's
    // bills are not owed on 11-20. (Checked against the CSV files by hand.)
    let h2 = ok(&report(
        &cfg,
        &["fees", "--period", "2026H2", "--as-of", "2026-11-20"],
    ));
    assert_lines(
        &h2,
        &[
            "期间：2026H2 (2026-07-01 – 2026-12-31)；截至 2026-11-20 日终",
            "合计     226  ¥65,662.50  ¥56,290.00  ¥9,372.50   85.7%  ¥56,290.00",
        ],
    );

    let none = ok(&report(&cfg, &["fees", "--period", "2025-06"]));
    assert_lines(&none, &["本期（2025-06）没有到期账单", "收缴率：—"]);
}

#[test]
fn bad_period_unknown_community_and_missing_database_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let o = report(&cfg, &["fees", "--period", "2026Q5"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("period \"2026Q5\": quarter must be 1–4"),
        "{}",
        stderr(&o)
    );

    let o = run(&[
        "report",
        "fees",
        "--period",
        "2026Q3",
        "--community",
        "nowhere",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("community \"nowhere\" is not configured"),
        "{}",
        stderr(&o)
    );

    let o = report(&cfg, &["fees", "--period", "2026Q3"]);
    assert_eq!(o.status.code(), Some(74), "{}", stderr(&o));
    assert!(
        !tmp.path().join("data/wuye.db").exists(),
        "a report must not create the database"
    );

    // A database without the domain tables (the daemon ran, nothing was imported).
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    rusqlite::Connection::open(tmp.path().join("data/wuye.db"))
        .unwrap()
        .execute_batch("CREATE TABLE runs (id INTEGER PRIMARY KEY);")
        .unwrap();
    let o = report(&cfg, &["callbacks", "--period", "2026Q3"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("holds no owner, bill or ticket data yet: import it first"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_file(tmp.path().join("data/wuye.db")).unwrap();
    let o = report(&cfg, &["fees", "--period", "2026Q3"]);
    assert_eq!(o.status.code(), Some(74), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("wuye.db does not exist: import data first"),
        "{}",
        stderr(&o)
    );
    assert!(
        !tmp.path().join("data/wuye.db").exists(),
        "a report must not create the database"
    );

    // A nonsense SLA in the community file is a configuration error naming the key.
    let f = cfg.join("communities/shuipan.toml");
    let s = std::fs::read_to_string(&f)
        .unwrap()
        .replace("sla_hours_repair = 24", "sla_hours_repair = \"soon\"");
    std::fs::write(&f, s).unwrap();
    let _ = demo_db_into(tmp.path());
    let o = report(&cfg, &["callbacks", "--period", "2026Q3"]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("workflows.callback_escalation.params.sla_hours_repair"),
        "{}",
        stderr(&o)
    );
}

/// An empty database (schema only) where `config` put the data dir.
fn demo_db_into(dir: &Path) -> rusqlite::Connection {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    open_standalone(&dir.join("data/wuye.db")).unwrap()
}

/// The words of a report in the other language's script, once the data (names, ids, comments,
/// periods) is taken out: only labels are the report's own.
fn foreign_words(text: &str, english: bool, data: &[&str]) -> Vec<String> {
    let mut t = text.to_string();
    for d in data {
        t = t.replace(d, " ");
    }
    if english {
        t.chars()
            .filter(|c| matches!(*c as u32, 0x3000..=0x303f | 0x3400..=0x9fff | 0xff00..=0xffef))
            .map(String::from)
            .collect()
    } else {
        t.split(|c: char| !c.is_ascii_alphabetic())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn reports_print_the_communitys_language_or_the_one_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = demo_db(tmp.path());
    // Data, not labels: the community's and staff names and ids, owners' comments, periods.
    let data = [
        "水畔花园",
        "陈静",
        "赵师傅",
        "chen-jing",
        "weixiu-zhao",
        "weixiu-sun",
        "水管维修拖了一周 <急>",
        "保洁不到位，报修没人管 请回电138****5678",
        "2026Q3",
        "2026Q2",
    ];
    for kind in ["satisfaction", "callbacks", "fees"] {
        // shuipan's locale is zh-CN (the default): Chinese labels only.
        let zh = ok(&report(&cfg, &[kind, "--period", "2026Q3"]));
        assert_eq!(
            foreign_words(&zh, false, &data),
            Vec::<String>::new(),
            "{zh}"
        );
        let en = ok(&report(&cfg, &[kind, "--period", "2026Q3", "--lang", "en"]));
        assert_eq!(
            foreign_words(&en, true, &data),
            Vec::<String>::new(),
            "{en}"
        );
        let page = ok(&report(
            &cfg,
            &[
                kind, "--period", "2026Q3", "--lang", "en", "--format", "html",
            ],
        ));
        assert_well_formed(&page);
        assert!(page.contains("<html lang=\"en\">"), "{page}");
    }
    let en = ok(&report(
        &cfg,
        &["satisfaction", "--period", "2026Q3", "--lang", "en"],
    ));
    assert_lines(
        &en,
        &[
            "水畔花园: owner satisfaction report",
            "Period: 2026Q3 (2026-07-01 – 2026-09-30)",
        ],
    );

    // A community whose locale is en gets English without asking.
    let f = cfg.join("communities/shuipan.toml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(
        &f,
        text.replace(
            "timezone = \"Asia/Shanghai\"",
            "timezone = \"Asia/Shanghai\"\nlocale = \"en\"",
        ),
    )
    .unwrap();
    let fees = ok(&report(&cfg, &["fees", "--period", "2026Q3"]));
    assert!(
        fees.starts_with("水畔花园: fee collection report\n"),
        "{fees}"
    );
    let o = report(&cfg, &["fees", "--period", "2026Q3", "--lang", "fr"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("expected zh-CN or en"),
        "{}",
        stderr(&o)
    );
}

/// The README's demo: after `scripts/demo.sh` imports the demo files, the satisfaction report
/// of 2026Q3 has a surveyed quarter, compared with 2026Q2.
#[test]
fn the_demo_surveys_import_and_give_a_quarter_to_report() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    for kind in ["owners", "surveys"] {
        let file = repo_root().join(format!("config/data/shuipan/{kind}.csv"));
        let o = run(&[
            "import",
            kind,
            file.to_str().unwrap(),
            "--community",
            "shuipan",
            "--config",
            cfg.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "import {kind}: {}", stderr(&o));
    }
    let text = ok(&report(&cfg, &["satisfaction", "--period", "2026Q3"]));
    // Every household invited, most answered; the quarter before is there to compare with.
    let campaign = text
        .lines()
        .find(|l| l.starts_with("2026Q3 "))
        .unwrap_or_else(|| panic!("no campaign line in\n{text}"));
    let cells: Vec<&str> = campaign.split_whitespace().collect();
    assert_eq!(cells[1], "40", "{campaign}");
    let answered: u32 = cells[2].parse().unwrap();
    assert!((20..40).contains(&answered), "{campaign}");
    assert!(!text.contains("没有满意度调查"), "{text}");
    assert!(
        text.contains("个百分点"),
        "a change from 2026Q2 is shown:\n{text}"
    );
    // Importing the file again changes nothing.
    let file = repo_root().join("config/data/shuipan/surveys.csv");
    let o = run(&[
        "import",
        "surveys",
        file.to_str().unwrap(),
        "--community",
        "shuipan",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(
        stdout(&o).contains("0 inserted, 0 updated, 80 unchanged"),
        "{}",
        stdout(&o)
    );
}
