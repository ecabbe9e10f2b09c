//! systemd readiness notification (`sd_notify`), written by hand: one datagram on the socket named
//! by `NOTIFY_SOCKET`, no libsystemd.
//!
//! With `Type=notify` systemd considers the unit started only on `READY=1`, so we send it after the
//! database is open and migrated and the scheduler is planning; `RELOADING=1` / `READY=1` bracket
//! a SIGHUP reload and `STOPPING=1` announces a clean stop. Outside systemd (`NOTIFY_SOCKET` unset)
//! every call is a no-op.
//!
//! With `WatchdogSec=` systemd sets `WATCHDOG_USEC` and restarts the service if no `WATCHDOG=1`
//! arrives within that interval. [`keep_alive`] sends one every half interval, but only after
//! the scheduler loop has answered a probe: a daemon whose loop is wedged (a pass stuck on the
//! database, a panicked task) stops feeding the watchdog and gets restarted, where a free-running
//! timer would have kept a dead daemon "healthy" forever.

use std::future::Future;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (`READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=...`, newline-separated) to the
/// service manager, if there is one. A failure is logged, never fatal: the daemon works without
/// systemd's attention.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let socket = socket.to_string_lossy().into_owned();
    if let Err(err) = notify_to(&socket, state) {
        tracing::warn!(socket = %socket, error = %err, "could not notify systemd");
    }
}

/// Sends `state` to the notification socket `socket`: a filesystem path, or an abstract socket
/// name written with a leading `@`.
pub fn notify_to(socket: &str, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        abstract_send(&sock, name, state.as_bytes())
    } else {
        sock.send_to(state.as_bytes(), socket).map(|_| ())
    }
}

/// The watchdog interval systemd expects pings within, if it watches this process: from
/// `WATCHDOG_USEC`, ignored when `WATCHDOG_PID` names another process (a wrapper script's child
/// must not answer for its parent) or when there is no `NOTIFY_SOCKET` to ping.
pub fn watchdog() -> Option<(String, Duration)> {
    let socket = std::env::var("NOTIFY_SOCKET").ok()?;
    let interval = watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )?;
    Some((socket, interval))
}

fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Feeds the watchdog on `socket` every half of `interval` for as long as `alive` (given the
/// time it may take) answers true; a round where it does not is logged and skipped, so systemd
/// sees the silence. Returns when `stop` resolves.
pub async fn keep_alive<F, Fut>(
    socket: String,
    interval: Duration,
    mut alive: F,
    stop: impl Future<Output = ()>,
) where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = bool>,
{
    let half = interval / 2;
    tokio::pin!(stop);
    let mut silent = false;
    loop {
        let round = tokio::time::Instant::now() + half;
        let answered = tokio::select! {
            answered = alive(half) => answered,
            () = &mut stop => return,
        };
        if answered {
            if silent {
                tracing::info!("the scheduler loop answers again; feeding the systemd watchdog");
                silent = false;
            }
            if let Err(err) = notify_to(&socket, "WATCHDOG=1") {
                tracing::warn!(socket = %socket, error = %err, "could not ping the systemd watchdog");
            }
        } else if !silent {
            tracing::error!(
                within = ?half,
                "the scheduler loop did not answer; not feeding the systemd watchdog, which \
                 restarts the daemon if this lasts"
            );
            silent = true;
        }
        tokio::select! {
            () = tokio::time::sleep_until(round) => {}
            () = &mut stop => return,
        }
    }
}

#[cfg(target_os = "linux")]
fn abstract_send(sock: &UnixDatagram, name: &str, message: &[u8]) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    sock.send_to_addr(message, &addr).map(|_| ())
}

#[cfg(not(target_os = "linux"))]
fn abstract_send(_sock: &UnixDatagram, name: &str, _message: &[u8]) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("abstract socket @{name} is only supported on Linux"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_the_state_to_a_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1\nSTATUS=planning").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=planning");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_the_state_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("wuye-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn the_watchdog_interval_is_for_this_process_only() {
        let me = std::process::id();
        let mine = me.to_string();
        assert_eq!(
            watchdog_interval(Some("30000000"), Some(&mine), me),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval(Some("30000000"), None, me),
            Some(Duration::from_secs(30))
        );
        assert_eq!(watchdog_interval(Some("30000000"), Some("1"), me), None);
        assert_eq!(watchdog_interval(Some("0"), None, me), None);
        assert_eq!(watchdog_interval(Some("soon"), None, me), None);
        assert_eq!(watchdog_interval(None, None, me), None);
    }

    /// Binds a notification socket as systemd would and returns it with its path.
    fn notify_socket(dir: &tempfile::TempDir) -> (UnixDatagram, String) {
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        (server, path.to_str().unwrap().to_string())
    }

    #[tokio::test]
    async fn pings_at_half_the_interval_while_the_loop_answers_and_stops_when_it_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let (server, socket) = notify_socket(&dir);
        let answering = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let probe = answering.clone();
        let task = tokio::spawn(keep_alive(
            socket,
            Duration::from_millis(200),
            move |within| {
                let answers = probe.load(std::sync::atomic::Ordering::SeqCst);
                async move {
                    if !answers {
                        // A wedged loop: no answer within the time allowed.
                        tokio::time::sleep(within).await;
                    }
                    answers
                }
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        let server = std::sync::Arc::new(server);
        let recv = |server: std::sync::Arc<UnixDatagram>| {
            tokio::task::spawn_blocking(move || {
                let mut buf = [0u8; 64];
                server.recv(&mut buf).map(|n| buf[..n].to_vec())
            })
        };
        let started = std::time::Instant::now();
        for _ in 0..3 {
            assert_eq!(recv(server.clone()).await.unwrap().unwrap(), b"WATCHDOG=1");
        }
        // Three pings, the first at once: two half-intervals (100 ms each) between them.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_secs(2),
            "{took:?}"
        );

        answering.store(false, std::sync::atomic::Ordering::SeqCst);
        // One ping may have been decided before the switch; after that, silence.
        let _ = recv(server.clone()).await.unwrap();
        let silent = recv(server.clone()).await.unwrap();
        assert!(silent.is_err(), "pinged while the loop did not answer");

        answering.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(recv(server.clone()).await.unwrap().unwrap(), b"WATCHDOG=1");
        stop_tx.send(()).unwrap();
        task.await.unwrap();
    }
}
