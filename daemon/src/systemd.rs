//! systemd readiness notification (`sd_notify`), written by hand: one datagram on the socket named
//! by `NOTIFY_SOCKET`, no libsystemd.
//!
//! With `Type=notify` systemd considers the unit started only on `READY=1`, so we send it after the
//! database is open and migrated and the scheduler is planning; `RELOADING=1` / `READY=1` bracket
//! a SIGHUP reload and `STOPPING=1` announces a clean stop. Outside systemd (`NOTIFY_SOCKET` unset)
//! every call is a no-op.

use std::io;
use std::os::unix::net::UnixDatagram;

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
}
