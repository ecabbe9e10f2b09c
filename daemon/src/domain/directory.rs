//! The domain store as delivery's [`Directory`]: who a household's message goes to, and whether
//! the reason for a queued message (an unpaid bill, a missing callback) still stands.
//!
//! It reads through a [`DomainReader`]: delivery asks while a run's write transaction may be open
//! on another connection, and WAL lets it read the last committed state without waiting.

use std::sync::Arc;

use crate::deliver::{Channel, Contact, Directory, Relevance};
use crate::domain::{ContactChannel, Owner};
use crate::store::domain::DomainReader;

pub struct StoreDirectory {
    reader: Arc<DomainReader>,
}

impl StoreDirectory {
    pub fn new(reader: Arc<DomainReader>) -> StoreDirectory {
        StoreDirectory { reader }
    }
}

fn contact(o: Owner) -> Contact {
    Contact {
        id: o.id.to_string(),
        name: o.name,
        email: o.email,
        phone: o.phone,
        locale: Some(o.language.as_str().to_string()),
        preferred: Some(match o.preferred_contact {
            ContactChannel::Email => Channel::Email,
            ContactChannel::Sms => Channel::Sms,
        }),
    }
}

impl Directory for StoreDirectory {
    fn household_contact(
        &self,
        community: &str,
        household: &str,
    ) -> anyhow::Result<Option<Contact>> {
        Ok(self
            .reader
            .read(community, |d| d.household_primary_contact(household))?
            .map(contact))
    }

    fn household_contacts(
        &self,
        community: &str,
        households: &[String],
    ) -> anyhow::Result<std::collections::HashMap<String, Contact>> {
        Ok(self
            .reader
            .read(community, |d| d.household_primary_contacts(households))?
            .into_iter()
            .map(|(h, o)| (h, contact(o)))
            .collect())
    }

    fn owner(&self, community: &str, owner: &str) -> anyhow::Result<Option<Contact>> {
        // Owner ids are numbers in the store; anything else names nobody.
        let Ok(id) = owner.parse::<i64>() else {
            return Ok(None);
        };
        Ok(self.reader.read(community, |d| d.owner(id))?.map(contact))
    }

    fn still_relevant(
        &self,
        community: &str,
        reason: &serde_json::Value,
    ) -> anyhow::Result<Relevance> {
        Ok(
            match self.reader.read(community, |d| d.reason_gone(reason))? {
                None => Relevance::Relevant,
                Some(why) => Relevance::Gone(why),
            },
        )
    }
}
