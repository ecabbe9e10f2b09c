//! Delivery throughput, outbox to server, in one run so the figures compare as ratios:
//!
//! 1. wuye's dispatcher over its pooled SMTP connections (TCP_NODELAY) to a local aiosmtpd;
//! 2. a plain Python smtplib loop sending the same messages to the same sink;
//! 3. lettre's own pooled `AsyncSmtpTransport` (no TCP_NODELAY), fewer messages: it is slow;
//! 4. the dispatcher to a local HTTP SMS gateway (webhook provider, an axum server in-process).
//!
//! Every dispatched message must end recorded as `sent`. Run:
//! `cargo bench -p wuye --bench deliver` (needs python3 with aiosmtpd). `N=5000` changes the count,
//! `POOL=8` the number of SMTP connections (default 4, the shipped default), `SINKS=1` the number
//! of aiosmtpd processes sharing the sink's one port with SO_REUSEPORT (default 2), `ROUNDS=5` how
//! many times 1. and 2. alternate (default 3; medians reported).
//!
//! One aiosmtpd process is single-threaded Python and tops out near one core: it is the ceiling
//! of every client here. Several processes behind one port (SO_REUSEPORT: the kernel hands each
//! new connection to one of them) are how a real relay serves several connections at once; the
//! dispatcher is configured as a user would, with one host and port. Python's smtplib loop uses one
//! connection, so it meets one sink process whatever SINKS is. To show where the time goes, the
//! run also measures the sink's own ceiling (a raw client that pipelines every command, which
//! aiosmtpd tolerates though it does not advertise PIPELINING), wuye's SMTP pool alone without the
//! outbox, and the CPU seconds each side spent.

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
    let db = settings.data_dir.join(wuye::store::DB_FILE);
    let mut conn = wuye::store::outbox::open(&db).unwrap();
    let community = settings.communities[0].clone();
    let now = Utc::now();
    wuye::store::outbox::transaction(&mut conn, |tx| {
        let ctx = EnqueueContext::new(
            &community,
            &Owners,
            templates,
            &settings.daemon.delivery,
            now,
        );
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
    let db = settings.data_dir.join(wuye::store::DB_FILE);
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

/// Starts `count` aiosmtpd processes sharing one port (SO_REUSEPORT when more than one).
fn start_sinks(dir: &Path, count: usize) -> (Vec<std::process::Child>, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let children = (0..count)
        .map(|_| {
            let mut cmd = Command::new("python3");
            cmd.arg(repo().join("tests/support/smtp_sink.py"))
                .args(["--count-only", "--out"])
                .arg(dir);
            if count > 1 {
                cmd.args(["--reuse-port", "--port", &port.to_string()]);
            } else {
                cmd.args(["--port", &port.to_string()]);
            }
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3 with aiosmtpd");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), format!("READY {port}"), "sink did not start");
            child
        })
        .collect();
    (children, port)
}

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of the sink processes and of this process (the dispatcher, its runtime, SQLite).
fn cpu_now(sinks: &[std::process::Child]) -> (f64, f64) {
    (
        sinks.iter().map(|c| cpu_secs(&c.id().to_string())).sum(),
        cpu_secs("self"),
    )
}

/// The sink's own ceiling: `conns` raw connections, each writing every command of its share of
/// `msgs` without waiting (pipelining), then counting the 250 answers to the message bodies.
async fn pipelined(port: u16, msgs: Arc<Vec<Vec<u8>>>, conns: usize) -> usize {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut set = tokio::task::JoinSet::new();
    for c in 0..conns {
        let msgs = msgs.clone();
        set.spawn(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            tcp.set_nodelay(true).unwrap();
            let (r, mut w) = tcp.into_split();
            let mut r = BufReader::new(r);
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            w.write_all(b"EHLO bench\r\n").await.unwrap();
            loop {
                line.clear();
                r.read_line(&mut line).await.unwrap();
                if line.as_bytes().get(3) == Some(&b' ') {
                    break;
                }
            }
            let mine: Vec<usize> = (c..msgs.len()).step_by(conns).collect();
            let expect = mine.len();
            let writer = tokio::spawn(async move {
                let mut buf = Vec::new();
                for i in mine {
                    buf.extend_from_slice(
                        b"MAIL FROM:<desk@shuipan.example>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\n",
                    );
                    buf.extend_from_slice(&msgs[i]);
                    buf.extend_from_slice(b"\r\n.\r\n");
                    if buf.len() > 64 * 1024 {
                        w.write_all(&buf).await.unwrap();
                        buf.clear();
                    }
                }
                w.write_all(&buf).await.unwrap();
                w
            });
            let mut queued = 0;
            while queued < expect {
                line.clear();
                if r.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                if line.starts_with("250 2.0.0 queued") {
                    queued += 1;
                }
            }
            let mut w = writer.await.unwrap();
            let _ = w.write_all(b"QUIT\r\n").await;
            queued
        });
    }
    let mut total = 0;
    while let Some(n) = set.join_next().await {
        total += n.unwrap();
    }
    total
}

const PY_LOOP: &str = r#"
import smtplib, sys, time, os
port, folder = int(sys.argv[1]), sys.argv[2]
msgs = []
for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), "rb") as f:
        msgs.append(f.read())
s = smtplib.SMTP("127.0.0.1", port)
c = time.process_time()
t = time.perf_counter()
for m in msgs:
    s.sendmail("desk@shuipan.example", ["rcpt@example.com"], m)
dt = time.perf_counter() - t
s.quit()
print(len(msgs), dt, time.process_time() - c)
"#;

fn main() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n, pool, sinks_n) = (env("N", 3000), env("POOL", 4), env("SINKS", 2));
    let rounds = env("ROUNDS", 3).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (mut sinks, port) = start_sinks(&tmp.path().join("sink"), sinks_n);
    println!(
        "Delivery benchmark: {n} messages per run, {sinks_n} aiosmtpd process(es) on 127.0.0.1:{port}{}",
        if sinks_n > 1 { " (SO_REUSEPORT)" } else { "" }
    );
    let per_msg = |cpu: f64, count: f64| cpu / count * 1e6;

    // Rounds alternate 1. and 2., so both meet the same moments of a shared machine's load; the
    // summary gives medians.
    let mut wuye_rates = Vec::new();
    let mut py_rates = Vec::new();
    let mut ratios = Vec::new();
    let eml = tmp.path().join("eml");
    let mut formatted = Vec::new();
    for round in 1..=rounds {
        // 1. wuye: outbox → pooled SMTP (NODELAY), each message recorded as sent.
        let (settings, templates) = setup(
            &tmp.path().join(format!("wuye-{round}")),
            &format!(
                "[delivery.email]\nfrom = \"水畔花园物业 <desk@shuipan.example>\"\n\
                 smtp = {{ host = \"127.0.0.1\", port = {port}, tls = \"none\", pool_size = {pool} }}\n"
            ),
            "",
        );
        enqueue(&settings, &templates, n, Channel::Email);
        let (sink0, self0) = cpu_now(&sinks);
        let (secs, sent, recorded) = dispatch(settings.clone(), &rt);
        let (sink1, self1) = cpu_now(&sinks);
        assert_eq!(recorded as usize, n, "every message recorded as sent");
        let wuye_rate = sent as f64 / secs;
        println!(
            "[{round}] wuye outbox -> SMTP pool ({pool} conns, NODELAY): {sent} in {secs:.2}s = {wuye_rate:.0} msg/s \
             (CPU per message: wuye {:.0} µs, sink {:.0} µs)",
            per_msg(self1 - self0, sent as f64),
            per_msg(sink1 - sink0, sent as f64)
        );

        // 2. Python smtplib loop, the same messages (as built by wuye), the same sink.
        if round == 1 {
            std::fs::create_dir_all(&eml).unwrap();
            let db = settings.data_dir.join(wuye::store::DB_FILE);
            let mut conn = wuye::store::outbox::open(&db).unwrap();
            let rows =
                wuye::store::outbox::transaction(
                    &mut conn,
                    |tx| Ok(tx.outbox_list(None, None, n)?),
                )
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
                formatted.push(e);
            }
        }
        let (sink0, _) = cpu_now(&sinks);
        let out = Command::new("python3")
            .args(["-c", PY_LOOP, &port.to_string()])
            .arg(&eml)
            .output()
            .unwrap();
        let (sink1, _) = cpu_now(&sinks);
        let s = String::from_utf8_lossy(&out.stdout);
        let mut it = s.split_whitespace();
        let py_n: f64 = it.next().unwrap().parse().unwrap();
        let py_secs: f64 = it.next().unwrap().parse().unwrap();
        let py_cpu: f64 = it.next().unwrap().parse().unwrap();
        let py_rate = py_n / py_secs;
        println!(
            "[{round}] python smtplib loop (1 conn):               {py_n} in {py_secs:.2}s = {py_rate:.0} msg/s \
             (CPU per message: python {:.0} µs, sink {:.0} µs)",
            per_msg(py_cpu, py_n),
            per_msg(sink1 - sink0, py_n)
        );
        wuye_rates.push(wuye_rate);
        py_rates.push(py_rate);
        ratios.push(wuye_rate / py_rate);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "median of {rounds}: wuye {:.0} msg/s, python {:.0} msg/s, ratio wuye / python {:.2}x (per round: {})",
        median(&mut wuye_rates),
        median(&mut py_rates),
        median(&mut ratios.clone()),
        ratios
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Where the time goes: wuye's SMTP pool alone (the same messages, no outbox, no SQLite) ...
    {
        let smtp: wuye::deliver::SmtpSettings = toml::from_str(&format!(
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\npool_size = {pool}\n"
        ))
        .unwrap();
        let smtp_pool = Arc::new(wuye::deliver::SmtpPool::new(&smtp, tmp.path()).unwrap());
        let msgs = Arc::new(formatted);
        let (sink0, self0) = cpu_now(&sinks);
        let t = Instant::now();
        let ok = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..msgs.len() {
                let (p, msgs) = (smtp_pool.clone(), msgs.clone());
                set.spawn(async move { p.send(&msgs[i]).await });
            }
            let mut ok = 0;
            while let Some(r) = set.join_next().await {
                ok += usize::from(matches!(r.unwrap(), wuye::deliver::Outcome::Sent { .. }));
            }
            ok
        });
        let secs = t.elapsed().as_secs_f64();
        let (sink1, self1) = cpu_now(&sinks);
        assert_eq!(ok, n);
        println!(
            "wuye SMTP pool alone ({pool} conns, no outbox): {ok} in {secs:.2}s = {:.0} msg/s \
             (CPU per message: wuye {:.0} µs, sink {:.0} µs)",
            ok as f64 / secs,
            per_msg(self1 - self0, ok as f64),
            per_msg(sink1 - sink0, ok as f64)
        );
    }
    // ... and the sink's ceiling: every command pipelined over `pool` raw connections.
    {
        let raw: Vec<Vec<u8>> = (0..n)
            .map(|i| std::fs::read(eml.join(format!("{i:06}.eml"))).unwrap())
            .collect();
        let (sink0, _) = cpu_now(&sinks);
        let t = Instant::now();
        let ok = rt.block_on(pipelined(port, Arc::new(raw), pool));
        let secs = t.elapsed().as_secs_f64();
        let (sink1, _) = cpu_now(&sinks);
        assert_eq!(ok, n, "the sink answered every pipelined message");
        println!(
            "sink ceiling (raw client, {pool} conns, pipelined): {ok} in {secs:.2}s = {:.0} msg/s \
             (CPU per message: sink {:.0} µs)",
            ok as f64 / secs,
            per_msg(sink1 - sink0, ok as f64)
        );
    }

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
    for sink in &mut sinks {
        let _ = sink.stdin.take().map(|mut s| s.write_all(b""));
        let _ = sink.kill();
        let _ = sink.wait();
    }

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
