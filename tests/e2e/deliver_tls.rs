//! SMTP with STARTTLS, implicit TLS and authentication, against aiosmtpd holding a certificate
//! made for the test (trusted through `ca_file`), with the password from a secret file.

use std::process::Command;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use wuye::clock::{Clock, ManualClock, SharedClock};
use wuye::deliver::{Channels, Dispatcher, Status};

use crate::deliver_support::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn cert(dir: &std::path::Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
        ])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl makes the test certificate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn send_one(
    tls: &str,
    password_env: &str,
    password: &str,
) -> (PyServer, wuye::deliver::OutboxMessage) {
    let tmp = tempfile::tempdir().unwrap().keep();
    cert(&tmp);
    let sink = PyServer::start(
        "smtp_sink.py",
        &tmp.join("sink"),
        &[
            "--tls",
            tls,
            "--cert",
            tmp.join("cert.pem").to_str().unwrap(),
            "--key",
            tmp.join("key.pem").to_str().unwrap(),
            "--auth",
            "desk:correct horse",
        ],
    );
    std::fs::write(tmp.join(password_env), format!("{password}\n")).unwrap();
    let cfg = write_config(
        &tmp,
        &format!(
            "[delivery.email]\nfrom = \"水畔花园物业 <desk@shuipan.example>\"\n\
             smtp = {{ host = \"127.0.0.1\", port = {}, tls = \"{tls}\", username = \"desk\", \
             password = {{ file = \"../{password_env}\" }}, ca_file = \"../cert.pem\" }}\n",
            sink.port
        ),
        NO_QUIET,
    );
    let env = Env::load(&cfg);
    let dir = Arc::new(MemDirectory::default().with_household(
        "3-1-502",
        contact(
            "o-zhang",
            "张伟",
            Some("zhang.wei@example.com"),
            None,
            "zh-CN",
        ),
    ));
    let clock = ManualClock::new(Utc::now());
    env.enqueue(
        dir.as_ref(),
        clock.now(),
        &[bill_request(
            "3-1-502",
            at("2026-03-02T01:00:00Z"),
            &[(1, "物业费", "2026Q1", "1,280.00")],
        )],
    );
    let shared: SharedClock = Arc::new(clock.clone());
    let d = Dispatcher::new(
        &env.db,
        env.settings.clone(),
        shared,
        Channels::from_settings(&env.settings).unwrap(),
        dir,
    )
    .unwrap();
    d.dispatch_once(clock.now()).await.unwrap();
    let row = env
        .with_tx(|tx| Ok(tx.outbox_list(None, None, 1)?))
        .remove(0);
    (sink, row)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_implicit_tls_with_auth_deliver_and_a_wrong_password_is_retried_not_lost() {
    for tls in ["starttls", "implicit"] {
        let var = format!("WUYE_TEST_SMTP_PASSWORD_{}", tls.to_uppercase());
        let (sink, row) = send_one(tls, &var, "correct horse").await;
        assert_eq!(row.status, Status::Sent, "{tls}: {:?}", row.last_error);
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(sink.dir.join("000001.json")).unwrap())
                .unwrap();
        assert_eq!(meta["tls"], true, "{tls}");
        assert_eq!(meta["authenticated"], true, "{tls}");
        assert_eq!(parse_mail(&sink.files("eml"))[0]["to_name"], "张伟");
    }
    let (sink, row) = send_one(
        "starttls",
        "WUYE_TEST_SMTP_PASSWORD_WRONG",
        "battery staple",
    )
    .await;
    // The relay's configuration, not the message, is at fault: it waits for a retry.
    assert_eq!(row.status, Status::Failed, "{row:?}");
    let why = row.last_error.unwrap();
    assert!(why.contains("535"), "{why}");
    assert!(
        !why.contains("battery staple"),
        "the password never appears: {why}"
    );
    assert!(sink.files("eml").is_empty());
}
