//! Email: building the message (headers owners' mail programs rely on) and getting it out, by
//! SMTP through a small connection pool or as `.eml` files.
//!
//! Why our own pool instead of lettre's `AsyncSmtpTransport` pool: lettre 0.11 never sets
//! `TCP_NODELAY`, so every message on a reused connection waits for the peer's delayed ACK
//! (about 40 ms): ~23 messages/s against a local relay. Connecting the `TcpStream` ourselves with
//! `set_nodelay(true)` and handing it to `AsyncSmtpConnection::connect_with_transport` removes the
//! stall (docs/BENCHMARKS.md compares the two pools). Implicit TLS (port 465) still goes through
//! lettre's own connect, which does TLS but not NODELAY; STARTTLS (587) and plain relays get
//! NODELAY.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::sync::Semaphore;

use super::{Category, OutboxMessage, Outcome, SmtpSettings, SmtpTls, key_digest, parse_duration};

/// `List-Unsubscribe` (RFC 2369): lettre has no type for it.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(s.to_string()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// Builds the email of an outbox row: From, To with display name (RFC 2047-encoded by lettre
/// when not ASCII), Subject (likewise), Date (`now`), the Message-ID stored with the row (the
/// same for every attempt, so a mailbox can drop a resend), text with an HTML alternative, and
/// `List-Unsubscribe` unless the message is transactional.
pub fn build_email(
    m: &OutboxMessage,
    from: &str,
    unsubscribe_url: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<lettre::Message> {
    let (from, to) = mailboxes(m, from)?;
    let mut b = lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(m.subject.clone().unwrap_or_default())
        .message_id(Some(m.message_id.clone()))
        .date(SystemTime::from(now))
        .user_agent(format!("wuyed/{}", env!("CARGO_PKG_VERSION")));
    if m.category != Category::Transactional {
        let mut targets = Vec::new();
        if let Some(url) = unsubscribe_url {
            targets.push(format!(
                "<{}>",
                url.replace("{community}", &m.community)
                    .replace("{recipient}", &m.recipient)
            ));
        }
        targets.push(format!(
            "<mailto:{}?subject=unsubscribe%20{}>",
            from.email,
            key_digest(&m.idempotency_key())
        ));
        b = b.header(ListUnsubscribe(targets.join(", ")));
    }
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(m.body_text.clone());
    let msg = match &m.body_html {
        Some(html) => b.multipart(
            MultiPart::alternative().singlepart(text).singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html.clone()),
            ),
        )?,
        None => b.singlepart(text)?,
    };
    Ok(msg)
}

/// The sender and the recipient, parsed: what can make building a message fail (the rest of
/// [`build_email`] only encodes).
fn mailboxes(m: &OutboxMessage, from: &str) -> anyhow::Result<(Mailbox, Mailbox)> {
    let from: Mailbox = from
        .parse()
        .with_context(|| format!("delivery.email.from: not a mailbox: {from:?}"))?;
    let to = Mailbox::new(
        m.display_name.clone(),
        m.address
            .parse()
            .with_context(|| format!("not an email address: {}", m.masked_address()))?,
    );
    Ok((from, to))
}

/// Where email goes.
pub(crate) enum EmailChannel {
    Smtp(std::sync::Arc<SmtpPool>),
    /// `.eml` files named after the idempotency key: a resend overwrites, never duplicates.
    Files(PathBuf),
    /// Accepted and kept nowhere: `wuyed simulate`, whose capture is the outbox row itself
    /// (status, send time). Its addresses are still parsed, so a message that could not be
    /// built (a bad address) fails as it would for real; the encoding that nobody would read
    /// is skipped (a twentieth of a simulated year).
    Capture,
}

impl EmailChannel {
    /// Builds `m` from `from` (see [`build_email`]) and sends it: an unbuildable message is a
    /// permanent failure.
    pub(crate) async fn send(
        &self,
        m: &OutboxMessage,
        from: &str,
        unsubscribe_url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Outcome {
        let build = || build_email(m, from, unsubscribe_url, now);
        match self {
            EmailChannel::Capture => match mailboxes(m, from) {
                Ok(_) => Outcome::Sent { provider_id: None },
                Err(e) => Outcome::Permanent(format!("{e:#}")),
            },
            EmailChannel::Smtp(pool) => match build() {
                Ok(email) => pool.send(&email).await,
                Err(e) => Outcome::Permanent(format!("{e:#}")),
            },
            EmailChannel::Files(dir) => {
                let email = match build() {
                    Ok(email) => email,
                    Err(e) => return Outcome::Permanent(format!("{e:#}")),
                };
                let dir = dir.clone();
                let name = format!("{}.eml", key_digest(&m.idempotency_key()));
                let bytes = email.formatted();
                let r = tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
                    .await;
                match r {
                    Ok(Ok(())) => Outcome::Sent { provider_id: None },
                    Ok(Err(e)) => Outcome::Temporary(format!("cannot write mail file: {e}")),
                    Err(e) => Outcome::Temporary(format!("mail file writer failed: {e}")),
                }
            }
        }
    }
}

/// Writes `bytes` to `dir/name` so a reader never sees half a file.
pub(crate) fn write_atomically(
    dir: &std::path::Path,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    use std::io::Write as _;
    crate::privacy::create_private_dir(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    crate::privacy::private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?
        .write_all(bytes)?;
    std::fs::rename(&tmp, dir.join(name))
}

/// A bounded set of SMTP connections, reused across messages.
pub struct SmtpPool {
    host: String,
    port: u16,
    tls: SmtpTls,
    credentials: Option<Credentials>,
    ca_pem: Option<Vec<u8>>,
    timeout: Duration,
    hello: ClientId,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
    permits: Semaphore,
}

impl SmtpPool {
    pub fn new(s: &SmtpSettings, config_dir: &std::path::Path) -> anyhow::Result<SmtpPool> {
        let credentials = match (&s.username, &s.password) {
            (Some(u), Some(p)) => Some(Credentials::new(
                u.clone(),
                p.resolve(config_dir)
                    .map_err(|e| anyhow::anyhow!("password: {e}"))?
                    .expose()
                    .to_string(),
            )),
            (None, None) => None,
            _ => anyhow::bail!("username and password go together"),
        };
        let timeout = match &s.timeout {
            Some(t) => parse_duration(t)
                .map_err(|e| anyhow::anyhow!("timeout: {e}"))?
                .to_std()
                .unwrap_or(Duration::from_secs(30)),
            None => Duration::from_secs(30),
        };
        let ca_pem = match &s.ca_file {
            Some(f) => {
                let path = config_dir.join(f);
                let pem = std::fs::read(&path)
                    .with_context(|| format!("ca_file: cannot read {}", path.display()))?;
                lettre::transport::smtp::client::Certificate::from_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("ca_file: {}: {e}", path.display()))?;
                Some(pem)
            }
            None => None,
        };
        let size = s.pool_size.clamp(1, 64);
        // The semaphore bounds messages in flight and so the connections opened.
        Ok(SmtpPool {
            host: s.host.clone(),
            port: s.port.unwrap_or(match s.tls {
                SmtpTls::Starttls => 587,
                SmtpTls::Implicit => 465,
                SmtpTls::None => 25,
            }),
            tls: s.tls,
            credentials,
            ca_pem,
            timeout,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size),
        })
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tls = || {
            let mut b = TlsParameters::builder(self.host.clone());
            if let Some(pem) = &self.ca_pem {
                b = b.add_root_certificate(lettre::transport::smtp::client::Certificate::from_pem(
                    pem,
                )?);
            }
            b.build()
        };
        let mut conn = match self.tls {
            SmtpTls::Implicit => {
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(self.timeout),
                    &self.hello,
                    Some(tls()?),
                    None,
                )
                .await?
            }
            SmtpTls::Starttls | SmtpTls::None => {
                let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .map_err(SendError::Io)?;
                tcp.set_nodelay(true).map_err(SendError::Io)?;
                let mut c =
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?;
                if self.tls == SmtpTls::Starttls {
                    c.starttls(tls()?, &self.hello).await?;
                }
                c
            }
        };
        if let Some(creds) = &self.credentials {
            // A refused login is the relay's configuration, not this message's fault: retried
            // (until max_attempts) so the queue drains once an administrator fixes the password.
            conn.auth(&[Mechanism::Plain, Mechanism::Login], creds)
                .await
                .map_err(SendError::Auth)?;
        }
        Ok(conn)
    }

    /// Sends one message over a pooled connection.
    pub async fn send(&self, email: &lettre::Message) -> Outcome {
        let Ok(_permit) = self.permits.acquire().await else {
            return Outcome::Temporary("SMTP pool closed".into());
        };
        let idle = self.idle.lock().expect("pool poisoned").pop();
        let fut = async {
            let mut conn = match idle {
                Some(c) => c,
                None => self.connect().await?,
            };
            match conn.send(email.envelope(), &email.formatted()).await {
                Ok(r) => Ok((conn, r)),
                Err(e) => {
                    if !conn.has_broken() {
                        self.idle.lock().expect("pool poisoned").push(conn);
                    }
                    Err(SendError::Smtp(e))
                }
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok((conn, response))) => {
                self.idle.lock().expect("pool poisoned").push(conn);
                Outcome::Sent {
                    provider_id: response.first_line().map(|l| l.to_string()),
                }
            }
            Ok(Err(SendError::Smtp(e))) if e.is_permanent() => Outcome::Permanent(e.to_string()),
            Ok(Err(SendError::Smtp(e))) => Outcome::Temporary(e.to_string()),
            Ok(Err(SendError::Io(e))) => Outcome::Temporary(format!("cannot connect: {e}")),
            Ok(Err(SendError::Auth(e))) => {
                Outcome::Temporary(format!("SMTP authentication failed: {e}"))
            }
            // The message may have been accepted; the Message-ID makes the resend harmless.
            Err(_) => Outcome::Temporary(format!(
                "SMTP timed out after {:?}; outcome unknown, will resend with the same Message-ID",
                self.timeout
            )),
        }
    }
}

enum SendError {
    Io(std::io::Error),
    Auth(lettre::transport::smtp::Error),
    Smtp(lettre::transport::smtp::Error),
}

impl From<lettre::transport::smtp::Error> for SendError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        SendError::Smtp(e)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn mail_files_and_their_folders_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let mail = dir.path().join("outbox").join("mail");
        super::write_atomically(&mail, "a.eml", b"To: owner").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&mail.join("a.eml")), 0o600);
        assert_eq!(mode(&mail), 0o700);
        assert_eq!(mode(&dir.path().join("outbox")), 0o700);
        assert_eq!(std::fs::read(mail.join("a.eml")).unwrap(), b"To: owner");
    }
}
