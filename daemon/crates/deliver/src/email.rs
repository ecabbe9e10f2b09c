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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::sync::Semaphore;

use super::{Category, OutboxMessage, Outcome, SmtpSettings, SmtpTls, key_digest};

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
    wuye_core::privacy::create_private_dir(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    wuye_core::privacy::private_file()
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
        let timeout = s.timeout.to_std().context("timeout")?;
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
    ///
    /// The answer depends on how far the conversation got, because only the relay's reply to
    /// the final "." of DATA says it took the message:
    /// - a failure or timeout before the final "." was written (connecting, MAIL, RCPT, DATA,
    ///   the body) is temporary: the relay cannot have the message, so it is sent again later;
    /// - a timeout or dropped connection once the final "." may have gone out is `unknown`: the
    ///   relay may have queued the message. It is held for the desk (`wuyed outbox list`) like an
    ///   SMS of unknown outcome, never resent by itself; `wuyed outbox retry ID` resends it with
    ///   the same Message-ID;
    /// - the relay's own reply (2xx, 4xx, 5xx) is never ambiguous.
    pub async fn send(&self, email: &lettre::Message) -> Outcome {
        let Ok(_permit) = self.permits.acquire().await else {
            return Outcome::Temporary("SMTP pool closed".into());
        };
        let idle = self.idle.lock().expect("pool poisoned").pop();
        // Set by `deliver` once the whole body is written: from then on the final "." may be
        // on the wire. Outside the future, so a timeout that drops it can still read it.
        let body_written = AtomicBool::new(false);
        let fut = async {
            let mut conn = match idle {
                Some(c) => c,
                None => self.connect().await?,
            };
            // After an error the connection is dropped, never pooled (as lettre's own `send`
            // does): a relay that closed it, or is mid-conversation, would fail the next message.
            let response = deliver(&mut conn, email, &body_written).await?;
            Ok((conn, response))
        };
        let sent_dot = || body_written.load(Ordering::SeqCst);
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok((conn, response))) => {
                self.idle.lock().expect("pool poisoned").push(conn);
                Outcome::Sent {
                    provider_id: response.first_line().map(|l| l.to_string()),
                }
            }
            Ok(Err(SendError::Smtp(e))) if e.is_permanent() => Outcome::Permanent(e.to_string()),
            // The relay answered 4xx: it said no, for now.
            Ok(Err(SendError::Smtp(e))) if e.is_transient() => Outcome::Temporary(e.to_string()),
            Ok(Err(SendError::Smtp(e))) if sent_dot() => Outcome::Unknown(format!(
                "SMTP connection lost after the end of the message, before the relay's answer \
                 ({e}); the relay may have it: check, then `wuyed outbox retry` (same \
                 Message-ID) or `cancel`"
            )),
            Ok(Err(SendError::Smtp(e))) => Outcome::Temporary(e.to_string()),
            Ok(Err(SendError::Io(e))) => Outcome::Temporary(format!("cannot connect: {e}")),
            // Like a refused login: the relay's configuration, retried until max_attempts.
            Ok(Err(SendError::Unsendable(why))) => Outcome::Temporary(why.to_string()),
            Ok(Err(SendError::Auth(e))) => {
                Outcome::Temporary(format!("SMTP authentication failed: {e}"))
            }
            Err(_) if sent_dot() => Outcome::Unknown(format!(
                "SMTP relay did not answer within {:?} after the end of the message; it may \
                 have it: check, then `wuyed outbox retry` (same Message-ID) or `cancel`",
                self.timeout
            )),
            // Before the end of the message: the relay cannot have it.
            Err(_) => Outcome::Temporary(format!(
                "SMTP timed out after {:?} before the message was handed over; will resend",
                self.timeout
            )),
        }
    }
}

/// One SMTP transaction, as lettre's `AsyncSmtpConnection::send` does it (MAIL with the
/// SMTPUTF8/8BITMIME parameters the message needs, RCPT, DATA, body), except that
/// `body_written` is set the moment the body has been written and only the final "." remains:
/// lettre asks the iterator for the next part after writing the previous one, and writes the
/// "." once it has none.
async fn deliver(
    conn: &mut AsyncSmtpConnection,
    email: &lettre::Message,
    body_written: &AtomicBool,
) -> Result<lettre::transport::smtp::response::Response, SendError> {
    use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
    use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
    let envelope = email.envelope();
    let bytes = email.formatted();
    let info = conn.server_info();
    let mut options = Vec::new();
    let non_ascii = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    // Refused before anything is sent, as lettre refuses them: the relay cannot take these.
    if non_ascii {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::Unsendable(
                "the address is not ASCII but the SMTP relay does not support SMTPUTF8",
            ));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !bytes.is_ascii() {
        if !info.supports_feature(Extension::EightBitMime) {
            return Err(SendError::Unsendable(
                "the message is not ASCII but the SMTP relay does not support 8BITMIME",
            ));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    conn.command(Mail::new(envelope.from().cloned(), options))
        .await?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![])).await?;
    }
    conn.command(Data).await?;
    let mut parts = std::iter::once(bytes.as_slice());
    let body = std::iter::from_fn(|| {
        let part = parts.next();
        if part.is_none() {
            body_written.store(true, Ordering::SeqCst);
        }
        part
    });
    Ok(conn.message_iter(body).await?)
}

enum SendError {
    Io(std::io::Error),
    /// The relay lacks an extension this message needs (found before sending anything).
    Unsendable(&'static str),
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
