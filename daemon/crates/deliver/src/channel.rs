//! The channels a message can leave by, chosen from the settings, and what a send attempt says.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use super::email::{EmailChannel, SmtpPool};
use super::sms::SmsChannel;
use super::{DeliverySettings, SmsSettings};
use wuye_config::Settings;

/// The answer to one send attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; the provider's id where it gives one.
    Sent { provider_id: Option<String> },
    /// Try again later (SMTP 4xx, refused connection, HTTP 429/5xx, provider rate limit).
    Temporary(String),
    /// Will never work (SMTP 5xx, invalid number, blacklisted): dead letter with this reason.
    Permanent(String),
    /// Handed over, answer lost (timeout after the request went out).
    Unknown(String),
}

/// Every channel of the daemon: one email channel, one SMS channel per community (falling back
/// to the daemon's).
pub struct Channels {
    pub(crate) email: EmailChannel,
    pub(crate) sms_default: Arc<SmsChannel>,
    pub(crate) sms: HashMap<String, Arc<SmsChannel>>,
}

impl Channels {
    /// Every channel keeps what it would send in memory instead of sending or writing it
    /// (`wuyed simulate`: nobody reads the simulated mail or SMS, and writing a file per message
    /// was a tenth of a year's simulation). Channels are built fresh for the simulation, so each
    /// is still unshared here.
    pub fn capture(&mut self) {
        self.email = EmailChannel::Capture;
        for ch in std::iter::once(&mut self.sms_default).chain(self.sms.values_mut()) {
            if let Some(ch) = Arc::get_mut(ch) {
                ch.capture = true;
            }
        }
    }

    /// Builds the channels the settings describe. Credentials are resolved here, so a missing
    /// secret stops the daemon at start with the key named, not at the first send.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Channels> {
        Self::build(
            &settings.dir,
            &settings.data_dir,
            &settings.daemon.delivery,
            settings
                .communities
                .iter()
                .map(|c| (c.id.clone(), c.delivery.sms.clone())),
        )
    }

    pub fn build(
        config_dir: &Path,
        data_dir: &Path,
        delivery: &DeliverySettings,
        community_sms: impl Iterator<Item = (String, Option<SmsSettings>)>,
    ) -> anyhow::Result<Channels> {
        let outbox_dir: PathBuf = data_dir.join("outbox");
        let email = match &delivery.email.smtp {
            Some(smtp) => EmailChannel::Smtp(Arc::new(
                SmtpPool::new(smtp, config_dir).context("delivery.email.smtp")?,
            )),
            None => EmailChannel::Files(outbox_dir.join("mail")),
        };
        let default_sms = delivery.sms.clone().unwrap_or_default();
        let sms_default = Arc::new(
            SmsChannel::new(&default_sms, config_dir, &outbox_dir).context("delivery.sms")?,
        );
        let mut sms = HashMap::new();
        for (id, s) in community_sms {
            if let Some(s) = s {
                let ch = SmsChannel::new(&s, config_dir, &outbox_dir)
                    .with_context(|| format!("community {id}: delivery.sms"))?;
                sms.insert(id, Arc::new(ch));
            }
        }
        Ok(Channels {
            email,
            sms_default,
            sms,
        })
    }

    pub(crate) fn sms_for(&self, community: &str) -> &Arc<SmsChannel> {
        self.sms.get(community).unwrap_or(&self.sms_default)
    }
}
