//! Serving a router on a TCP listener with the limits a daemon facing the internet needs, which
//! `axum::serve` does not set: it gives hyper no timer, so hyper's header-read timeout never
//! fires, and it accepts every connection. Here:
//! - **Header timeout** (`http.header_timeout`): hyper's own, measured from the first byte
//!   awaited to the end of the headers, for the first request and for each next one on a
//!   keep-alive connection. A client that sends half a request line (slowloris) or idles between
//!   requests is disconnected without an answer.
//! - **Request timeout** (`http.request_timeout`): applied by the router (`time_limit` in the
//!   parent module), because only there does a 408 reach the client as the API's JSON error.
//! - **Connection limit** (`http.max_connections`, per listener): a connection beyond it is
//!   answered `503 Service Unavailable` with `Retry-After` at once and closed. Refusing beats
//!   queueing: a queued client hears nothing until its own timeout and then retries anyway,
//!   while the slots it waits for may be held by exactly the slow clients the limit is there
//!   for; the billing system and the desk retry on 503, and an owner reloads the page. As many
//!   refusals as connections may be in progress at once (each lasts at most
//!   [`REFUSAL_DRAIN`]); past that a connection is closed without a word, so a flood costs a
//!   bounded number of sockets.
//!
//! Stopping is graceful: the listener closes, idle connections close, and requests in flight
//! finish, which the two timeouts bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

pub use wuye_config::http::HttpLimits;

/// What a refused client is told to wait, in seconds: most requests take milliseconds, so a slot
/// is usually free by then; a few seconds keep a retrying client from adding to the crowd.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Longest a refusal keeps its socket: time for the client to send what it had and read the 503
/// (closing with unread input would reset the connection and lose the answer).
const REFUSAL_DRAIN: Duration = Duration::from_secs(2);

/// Serves `app` on `listener` within `limits` until `stop` turns true, then waits for the
/// connections still open to finish. `key` names the listener in logs (`http.listen`).
pub async fn serve_limited(
    key: &'static str,
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let refusals = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut refused = Refused::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(key, e).await;
                continue;
            }
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let (app, stop) = (app.clone(), stop.clone());
                tokio::spawn(async move {
                    serve_connection(stream, app, limits, stop).await;
                    drop(slot);
                });
            }
            Err(_) => {
                refused.count(key, limits.max_connections);
                // Past the refusals in progress too: close at once, answering costs a socket.
                if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(refusal);
                    });
                }
            }
        }
    }
    drop(listener);
    // Every slot back means every connection has ended.
    let _ = slots.acquire_many(limits.max_connections).await;
    Ok(())
}

/// One connection through hyper with the header timeout; on `stop`, an idle connection closes
/// and one with a request in flight closes after answering it.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                // A client that timed out or went away: its business, not an error of ours.
                if let Err(e) = done {
                    tracing::debug!("http connection ended: {e}");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The answer to a connection beyond `http.max_connections`, sent without reading the request
/// (HTTP allows an early answer); the JSON error shape of every other API error.
fn refusal() -> String {
    let body = format!(
        "{{\"error\":{{\"field\":null,\"message\":\"the server has too many connections open; \
         retry in {RETRY_AFTER_SECS} seconds\"}}}}"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: {RETRY_AFTER_SECS}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn refuse(mut stream: TcpStream) {
    let answered = tokio::time::timeout(REFUSAL_DRAIN, async {
        stream.write_all(refusal().as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sends until it closes, so the close does not reset the
        // connection before it has read the answer.
        let mut sink = [0u8; 4096];
        let mut left = 64 * 1024usize;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        std::io::Result::Ok(())
    })
    .await;
    if let Ok(Err(e)) = answered {
        tracing::debug!("refusing an http connection: {e}");
    }
}

/// Counts refused connections and says so at most once a minute: a flood must not flood the log.
#[derive(Default)]
struct Refused {
    since_logged: u64,
    logged_at: Option<Instant>,
}

impl Refused {
    const EVERY: Duration = Duration::from_secs(60);

    fn count(&mut self, key: &'static str, max: u32) {
        self.since_logged += 1;
        if self.logged_at.is_none_or(|at| at.elapsed() >= Self::EVERY) {
            tracing::warn!(
                listener = key,
                refused = self.since_logged,
                "http.max_connections ({max}) reached: refusing connections with 503; raise it \
                 in wuyed.toml if this is regular traffic"
            );
            self.since_logged = 0;
            self.logged_at = Some(Instant::now());
        }
    }
}

/// Out of file descriptors or memory: wait a moment instead of spinning on the error (as
/// `axum::serve` does); a connection the client aborted before we took it is no news.
async fn accept_failed(key: &'static str, e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::error!(
        listener = key,
        "accepting an http connection failed: {e}; retrying in 1 s"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_answer() {
        let text = refusal();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("\r\nretry-after: 5\r\n"));
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["error"]["message"].as_str().unwrap().contains("retry"));
    }
}
