//! The HTTP listener of the real `wuyed run` under clients that misbehave, and its tokens and
//! communities changed by SIGHUP: a client sending half a request line is disconnected, a body
//! trickled byte by byte ends in 408, connections beyond `http.max_connections` are answered
//! 503 while the daemon stays usable, and a reload revokes, rescopes and admits, while a
//! rejected one changes nothing. Each test runs its own daemon on a small configuration of its
//! own (no plugins: only HTTP is at stake), spoken to over raw sockets, since the point is what
//! the bytes on the wire do.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::daemon::free_port;
use crate::util::LoggedDaemon;

const DESK: &str = "desk-token-0123456789abcdef";
const BILLING: &str = "billing-token-0123456789abcdef";

/// `wuyed.toml` with `[http]` on `port`, `http` added under it (limits, tokens).
fn write_config(cfg: &Path, port: u16, http: &str) {
    std::fs::write(
        cfg.join("wuyed.toml"),
        format!(
            "[daemon]\ndata_dir = \"../data\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n{http}\n"
        ),
    )
    .unwrap();
}

fn write_community(cfg: &Path, id: &str) {
    std::fs::write(
        cfg.join(format!("communities/{id}.toml")),
        format!("id = \"{id}\"\nname = \"{id}\"\ntimezone = \"Asia/Shanghai\"\n"),
    )
    .unwrap();
}

struct Daemon {
    // Declared before the directory it runs in: killed before that is removed.
    daemon: LoggedDaemon,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// `wuyed run` on a fresh config with community `shuipan` and `http` under `[http]`;
    /// returns once it accepts connections.
    ///
    /// Ready means this daemon logged that it listens on the port, not that the port answers: a
    /// free port found here can be taken by another test's daemon before this one binds it, and
    /// a connect would then reach that daemon (with its own limits). Such a daemon exits with
    /// "cannot listen", and the next port is tried.
    fn start(http: &str) -> Daemon {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let cfg = dir.path().join("config");
            std::fs::create_dir_all(cfg.join("communities")).unwrap();
            write_community(&cfg, "shuipan");
            let port = free_port();
            write_config(&cfg, port, http);
            let mut daemon = LoggedDaemon::start(&cfg);
            let listening = format!("127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if !daemon
                    .records(|v| {
                        v["message"] == "http api listening"
                            && v["addr"].as_str() == Some(listening.as_str())
                    })
                    .is_empty()
                {
                    return Daemon {
                        daemon,
                        port,
                        _dir: dir,
                    };
                }
                if let Ok(Some(_)) = daemon.child.try_wait() {
                    assert!(
                        daemon.log().contains("cannot listen"),
                        "wuyed exited at start:\n{}",
                        daemon.log()
                    );
                    break; // the port was taken meanwhile: another one
                }
                assert!(
                    Instant::now() < deadline,
                    "wuyed did not listen within 60 s:\n{}",
                    daemon.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("five free ports in a row were taken before wuyed could listen on them");
    }

    fn config(&self) -> std::path::PathBuf {
        self._dir.path().join("config")
    }

    fn log_text(&self) -> String {
        self.daemon.log()
    }

    /// Polls `f` until it holds; fails with the daemon's log after a minute.
    fn wait_until(&self, what: &str, f: impl FnMut() -> bool) {
        self.daemon.wait_until(what, Duration::from_secs(60), f);
    }

    /// Sends SIGHUP and waits for the daemon to log `outcome`, past the lines logged before.
    fn reload(&self, outcome: &str) {
        let seen = self.daemon.line_count();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.daemon.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_until(outcome, || self.daemon.logged_since(seen, outcome));
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        // Every read in these tests ends well before this; it only keeps a bug from hanging.
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s
    }

    /// One whole request with `token` (if any), answered in full: the status and the answer.
    fn request(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let mut s = self.connect();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let answer = read_answer(&mut s);
        (status(&answer), answer)
    }

    /// Opens ticket `no` in `community` with `token`: 201 (new), 401, 403, 404...
    fn open_ticket(&self, community: &str, token: &str, no: &str) -> u16 {
        let body = format!(r#"{{"no":"{no}","kind":"repair","first_receiver":"chen-jing"}}"#);
        let path = format!("/api/v1/communities/{community}/tickets");
        let (status, answer) = self.request("POST", &path, Some(token), &body);
        assert!(
            [201, 401, 403, 404].contains(&status),
            "unexpected answer: {answer}\nlog:\n{}",
            self.log_text()
        );
        status
    }

    /// Whether `token` may write to `community`, without writing: a ticket of no known kind
    /// passes the token check and is then refused (422); otherwise 401, 403 or 404. (Back-to-back
    /// writes can meet the event router's transaction and fail with "database is locked", a
    /// store matter this test is not about.)
    fn admits(&self, community: &str, token: &str) -> u16 {
        let body = r#"{"no":"X-1","kind":"no-such-kind","first_receiver":"chen-jing"}"#;
        let path = format!("/api/v1/communities/{community}/tickets");
        let (status, answer) = self.request("POST", &path, Some(token), body);
        assert!(
            [422, 401, 403, 404].contains(&status),
            "unexpected answer: {answer}\nlog:\n{}",
            self.log_text()
        );
        status
    }

    /// SIGTERM, and the daemon stops cleanly within a bound (no connection holds it up).
    fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.daemon.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.daemon.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "wuyed did not stop");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{}", self.log_text());
    }
}

/// Everything the server sent until it closed (a reset after the answer still leaves the
/// answer, which is all these tests read).
fn read_answer(s: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn healthy(d: &Daemon) -> bool {
    d.request("GET", "/healthz", None, "").0 == 200
}

#[test]
fn a_client_sending_half_a_request_line_is_disconnected() {
    let d = Daemon::start("header_timeout = \"1s\"\n");
    let mut slow = d.connect();
    slow.write_all(b"POST /api/v1/communities/shui").unwrap();
    let started = Instant::now();
    // The server closes without an answer: end of stream (or a reset), and nothing read; not
    // our own read timeout.
    let mut buf = [0u8; 64];
    match slow.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed, read {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the half request held its connection for {:?}",
        started.elapsed()
    );
    // The rest of the request, too late: nobody listens any more.
    let _ = slow.write_all(b"pan/tickets HTTP/1.1\r\n\r\n");
    assert!(
        healthy(&d),
        "the daemon serves others after the slow client"
    );
    d.stop();
}

#[test]
fn a_body_trickled_byte_by_byte_gets_408_and_nothing_is_written() {
    let d = Daemon::start(&format!(
        "request_timeout = \"2s\"\n\
         tokens = [{{ name = \"desk\", token = \"{DESK}\", communities = [\"shuipan\"] }}]\n"
    ));
    let body = r#"{"no":"T-SLOW","kind":"repair","first_receiver":"chen-jing","summary":"slow"}"#;
    let mut s = d.connect();
    write!(
        s,
        "POST /api/v1/communities/shuipan/tickets HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {DESK}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // One byte every 200 ms: the body would take 16 s, far past the 2 s allowed.
    let mut writer = s.try_clone().unwrap();
    let bytes = body.as_bytes().to_vec();
    let trickle = std::thread::spawn(move || {
        for b in bytes {
            if writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let started = Instant::now();
    let answer = read_answer(&mut s);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "answered only after {:?}",
        started.elapsed()
    );
    assert_eq!(status(&answer), 408, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("took longer than 2 s"), "{answer}");
    drop(s);
    trickle.join().unwrap();
    // The cut-off request left no ticket: the same one posted whole is new.
    assert_eq!(d.open_ticket("shuipan", DESK, "T-SLOW"), 201);
    d.stop();
}

#[test]
fn connections_beyond_the_limit_get_503_and_the_daemon_serves_again_once_they_go() {
    // A long header timeout: only the clients leaving can free the slots within the test.
    let d = Daemon::start("max_connections = 2\nheader_timeout = \"120s\"\n");
    let idle: Vec<TcpStream> = (0..2).map(|_| d.connect()).collect();
    // Accepted in order, so both slots are taken before this one is looked at.
    let started = Instant::now();
    let (code, answer) = d.request("GET", "/healthz", None, "");
    assert_eq!(code, 503, "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("\r\nretry-after: 5\r\n"), "{answer}");
    assert!(answer.contains("too many connections"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the refusal took {:?}",
        started.elapsed()
    );
    d.wait_until("the refusal to be logged", || {
        d.log_text().contains("http.max_connections (2) reached")
    });

    drop(idle);
    d.wait_until("a request answered once the idle clients left", || {
        healthy(&d)
    });
    d.stop();
}

#[test]
fn sighup_revokes_a_removed_token_rescopes_one_and_admits_a_new_community() {
    let tokens = |desk: &str, billing: bool| {
        let mut t =
            format!("tokens = [{{ name = \"desk\", token = \"{DESK}\", communities = [{desk}] }}");
        if billing {
            t.push_str(&format!(
                ", {{ name = \"billing\", token = \"{BILLING}\", communities = [\"shuipan\"] }}"
            ));
        }
        t + "]\n"
    };
    let d = Daemon::start(&tokens("\"shuipan\"", true));
    let cfg = d.config();
    assert_eq!(d.admits("shuipan", BILLING), 422);
    assert_eq!(d.admits("shuipan", DESK), 422);
    assert_eq!(d.admits("lakeside", DESK), 404);

    // A broken configuration (a token too short to be safe) is rejected whole: nothing changes.
    write_community(&cfg, "lakeside");
    write_config(
        &cfg,
        d.port,
        "tokens = [{ name = \"desk\", token = \"short\", communities = [\"lakeside\"] }]\n",
    );
    d.reload("configuration reload rejected");
    assert_eq!(d.admits("shuipan", BILLING), 422);
    assert_eq!(d.admits("shuipan", DESK), 422);
    assert_eq!(d.admits("lakeside", DESK), 404);

    // billing removed, desk moved from shuipan to the new community lakeside.
    write_config(&cfg, d.port, &tokens("\"lakeside\"", false));
    d.reload("http tokens and communities reloaded");
    assert_eq!(d.admits("shuipan", BILLING), 401);
    assert_eq!(d.admits("shuipan", DESK), 403);
    // The new community takes a real write.
    assert_eq!(d.open_ticket("lakeside", DESK, "L-1"), 201);
    // Tokens are never logged, only their names.
    let log = d.log_text();
    assert!(!log.contains(DESK) && !log.contains(BILLING), "{log}");
    d.stop();
}
