//! Delivery throughput, outbox to server, in one run so the figures compare as ratios:
//!
//! 1. wuye's dispatcher over its pooled SMTP connections (TCP_NODELAY) to a local aiosmtpd;
//! 2. a plain Python smtplib loop sending the same messages to the same sink;
//! 3. lettre's own pooled `AsyncSmtpTransport` (no TCP_NODELAY), fewer messages: it is slow;
//! 4. the dispatcher to a local HTTP SMS gateway (webhook provider, an axum server in-process).
//!
//! Every dispatched message must end recorded as `sent`. Run:
//! `cargo bench -p wuye --bench deliver` (needs python3 with aiosmtpd). `N=5000` changes the count,
//! `POOL=8` the number of SMTP connections (default 4, the shipped default).

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use wuye::clock::{SharedClock, SystemClock};
use wuye::deliver::{
    Audience, Category, Channel, Channels, Contact, Directory, Dispatcher, EnqueueContext,
    MessageRequest, Occurrence, Relevance, Status, Templates,
};

struct Owners;

impl Directory for Owners {
    fn household_contact(&self, _: &str, h: &str) -> anyhow::Result<Option<Contact>> {
        Ok(Some(Contact {
            id: format!("o-{h}"),
            name: format!("业主{h}"),
            email: Some(format!("{h}@example.com")),
            phone: Some(format!(
                "138{:08}",
                h.trim_start_matches('h').parse::<u32>().unwrap_or(0)
            )),
            locale: Some("zh-CN".into()),
            preferred: None,
        }))
    }
    fn owner(&self, _: &str, _: &str) -> anyhow::Result<Option<Contact>> {
        Ok(None)
    }
    fn still_relevant(&self, _: &str, _: &serde_json::Value) -> anyhow::Result<Relevance> {
        Ok(Relevance::Relevant)
    }
}

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn setup(
    dir: &Path,
    daemon_toml: &str,
    community_extra: &str,
) -> (Arc<wuye::config::Settings>, Templates) {
    let cfg = dir.join("config");
    std::fs::create_dir_all(cfg.join("communities")).unwrap();
    std::fs::write(
        cfg.join("wuyed.toml"),
        format!("[daemon]\ndata_dir = \"../data\"\n{daemon_toml}"),
    )
    .unwrap();
    std::fs::write(
        cfg.join("communities/shuipan.toml"),
        format!(
            "id = \"shuipan\"\nname = \"水畔花园\"\ntimezone = \"Asia/Shanghai\"\n\
             [quiet_hours]\nstart = \"00:00\"\nend = \"00:00\"\n{community_extra}"
        ),
    )
    .unwrap();
    let settings = wuye::config::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let templates = Templates::load(&repo().join("config/templates"), &[]).unwrap();
    (Arc::new(settings), templates)
}

fn enqueue(settings: &wuye::config::Settings, templates: &Templates, n: usize, channel: Channel) {
    let db = wuye::deliver::db_path(&settings.data_dir);
    let mut conn = wuye::store::outbox::open(&db).unwrap();
    let community = settings.communities[0].clone();
    let now = Utc::now();
    wuye::store::outbox::transaction(&mut conn, |tx| {
        let ctx = EnqueueContext {
            community: &community,
            directory: &Owners,
            templates,
            delivery: &settings.daemon.delivery,
            now,
        };
        for i in 0..n {
            wuye::deliver::enqueue(
                tx,
                &ctx,
                &MessageRequest {
                    community: "shuipan".into(),
                    workflow: "fee_reminder".into(),
                    occurrence: Occurrence::Due(now),
                    audience: Audience::Household(format!("h{i}")),
                    step: "due".into(),
                    template: "bill_notice".into(),
                    variables: serde_json::json!({
                        "household": {"label": format!("{i} 室")},
                        "bills": [{"fee_type": "物业费", "period": "2026Q1", "amount": "1,280.00", "due_date": "2026-03-31"}],
                        "total": "1280.00",
                    }),
                    category: Category::Transactional,
                    channel: Some(channel),
                    reason: serde_json::Value::Null,
                },
            )?;
        }
        Ok(())
    })
    .unwrap();
}

fn dispatch(
    settings: Arc<wuye::config::Settings>,
    rt: &tokio::runtime::Runtime,
) -> (f64, usize, i64) {
    let db = wuye::deliver::db_path(&settings.data_dir);
    let clock: SharedClock = Arc::new(SystemClock::new());
    let channels = Channels::from_settings(&settings).unwrap();
    let d = Dispatcher::new(&db, settings, clock.clone(), channels, Arc::new(Owners)).unwrap();
    let t = Instant::now();
    let r = rt.block_on(d.dispatch_once(clock.now())).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let mut conn = wuye::store::outbox::open(&db).unwrap();
    let sent = wuye::store::outbox::transaction(&mut conn, |tx| Ok(tx.outbox_count(Status::Sent)?))
        .unwrap();
    (secs, r.sent, sent)
}

fn start_sink(dir: &Path) -> (std::process::Child, u16) {
    let mut child = Command::new("python3")
        .arg(repo().join("tests/support/smtp_sink.py"))
        .args(["--count-only", "--out"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with aiosmtpd");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("READY ")
        .expect("sink ready")
        .parse()
        .unwrap();
    (child, port)
}

const PY_LOOP: &str = r#"
import smtplib, sys, time, os
port, folder = int(sys.argv[1]), sys.argv[2]
msgs = []
for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), "rb") as f:
        msgs.append(f.read())
s = smtplib.SMTP("127.0.0.1", port)
t = time.perf_counter()
for m in msgs:
    s.sendmail("desk@shuipan.example", ["rcpt@example.com"], m)
dt = time.perf_counter() - t
s.quit()
print(len(msgs), dt)
"#;

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let pool: usize = std::env::var("POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (mut sink, port) = start_sink(&tmp.path().join("sink"));
    println!("Delivery benchmark: {n} messages per run, aiosmtpd on 127.0.0.1:{port}");

    // 1. wuye: outbox → pooled SMTP (NODELAY), each message recorded as sent.
    let (settings, templates) = setup(
        &tmp.path().join("wuye"),
        &format!(
            "[delivery.email]\nfrom = \"水畔花园物业 <desk@shuipan.example>\"\n\
             smtp = {{ host = \"127.0.0.1\", port = {port}, tls = \"none\", pool_size = {pool} }}\n"
        ),
        "",
    );
    enqueue(&settings, &templates, n, Channel::Email);
    let (secs, sent, recorded) = dispatch(settings.clone(), &rt);
    assert_eq!(recorded as usize, n, "every message recorded as sent");
    let wuye_rate = sent as f64 / secs;
    println!(
        "wuye outbox -> SMTP pool ({pool} conns, NODELAY): {sent} in {secs:.2}s = {wuye_rate:.0} msg/s"
    );

    // 2. Python smtplib loop, the same messages (as built by wuye), the same sink.
    let eml = tmp.path().join("eml");
    std::fs::create_dir_all(&eml).unwrap();
    {
        let db = wuye::deliver::db_path(&settings.data_dir);
        let mut conn = wuye::store::outbox::open(&db).unwrap();
        let rows =
            wuye::store::outbox::transaction(&mut conn, |tx| Ok(tx.outbox_list(None, None, n)?))
                .unwrap();
        for (i, m) in rows.iter().enumerate() {
            let e = wuye::deliver::build_email(
                m,
                "水畔花园物业 <desk@shuipan.example>",
                None,
                Utc::now(),
            )
            .unwrap();
            std::fs::write(eml.join(format!("{i:06}.eml")), e.formatted()).unwrap();
        }
    }
    let out = Command::new("python3")
        .args(["-c", PY_LOOP, &port.to_string()])
        .arg(&eml)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.split_whitespace();
    let py_n: f64 = it.next().unwrap().parse().unwrap();
    let py_secs: f64 = it.next().unwrap().parse().unwrap();
    let py_rate = py_n / py_secs;
    println!(
        "python smtplib loop (1 conn):               {py_n} in {py_secs:.2}s = {py_rate:.0} msg/s"
    );
    println!("ratio wuye / python: {:.2}x", wuye_rate / py_rate);

    // 3. lettre's pooled transport as shipped: no TCP_NODELAY.
    {
        use lettre::AsyncTransport;
        let m = 200.min(n);
        let files: Vec<_> = (0..m)
            .map(|i| std::fs::read(eml.join(format!("{i:06}.eml"))).unwrap())
            .collect();
        let env = lettre::address::Envelope::new(
            Some("desk@shuipan.example".parse().unwrap()),
            vec!["rcpt@example.com".parse().unwrap()],
        )
        .unwrap();
        let t = Instant::now();
        rt.block_on(async {
            // Built and dropped inside the runtime: its pool spawns tasks.
            let transport = Arc::new(
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
                    "127.0.0.1",
                )
                .port(port)
                .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(4))
                .build(),
            );
            let mut set = tokio::task::JoinSet::new();
            let files = Arc::new(files);
            for w in 0..4 {
                let (transport, files, env) = (transport.clone(), files.clone(), env.clone());
                set.spawn(async move {
                    for f in files.iter().skip(w).step_by(4) {
                        transport.send_raw(&env, f).await.unwrap();
                    }
                });
            }
            while set.join_next().await.is_some() {}
        });
        let secs = t.elapsed().as_secs_f64();
        println!(
            "lettre AsyncSmtpTransport pool (4, no NODELAY): {m} in {secs:.2}s = {:.0} msg/s",
            m as f64 / secs
        );
    }
    let _ = sink.stdin.take().map(|mut s| s.write_all(b""));
    let _ = sink.kill();
    let _ = sink.wait();

    // 4. outbox → HTTP SMS gateway (webhook), bounded concurrency.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let gw_port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        use axum::routing::post;
        let app = axum::Router::new().route(
            "/sms",
            post(|body: axum::Json<serde_json::Value>| async move {
                axum::Json(serde_json::json!({"id": body["id"]}))
            }),
        );
        axum::serve(listener, app).await.unwrap();
    });
    let (settings, templates) = setup(
        &tmp.path().join("wuye-sms"),
        "",
        &format!(
            "[delivery.sms]\nprovider = \"webhook\"\nendpoint = \"http://127.0.0.1:{gw_port}/sms\"\nconcurrency = 32\n\
             same_content_secs = 0\n"
        ),
    );
    enqueue(&settings, &templates, n, Channel::Sms);
    let (secs, sent, recorded) = dispatch(settings, &rt);
    assert_eq!(recorded as usize, n, "every SMS recorded as sent");
    println!(
        "wuye outbox -> HTTP SMS gateway (webhook, 32 in flight): {sent} in {secs:.2}s = {:.0} req/s",
        sent as f64 / secs
    );
}
