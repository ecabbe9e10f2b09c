//! What a plugin may read: one community's owners, households, bills, tickets, surveys and events.
//!
//! [`CommunityData`] is bound to one community when it is made ([`DataSource::community`]), and a
//! run is handed only its own. No method takes a community id, so a plugin cannot even name
//! another community's data: cross-community reads are impossible by construction, not by a check
//! that could be forgotten. The store-backed implementation belongs to the domain module;
//! [`MemoryData`] serves fixtures (`wuyed plugin test`), tests and benchmarks.
//!
//! Owners carry no phone number or email here on purpose: contacts stay in the daemon.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Household {
    pub id: String,
    #[serde(default)]
    pub building: String,
    #[serde(default)]
    pub unit: String,
    /// Owner ids, primary contact first.
    #[serde(default)]
    pub owners: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub id: String,
    pub household: String,
    pub name: String,
    #[serde(default = "zh_cn")]
    pub language: String,
    #[serde(default)]
    pub opted_out: bool,
}

fn zh_cn() -> String {
    "zh-CN".to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bill {
    pub id: String,
    pub household: String,
    pub fee_type: String,
    pub period: String,
    pub amount_fen: i64,
    #[serde(default)]
    pub paid_fen: i64,
    pub due_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Balance {
    pub household: String,
    pub utility: String,
    pub balance_fen: i64,
    pub threshold_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    pub done_at: DateTime<Utc>,
    pub by: String,
    pub satisfied: bool,
    pub score: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    pub id: String,
    pub household: String,
    pub kind: String,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub assignee: Option<String>,
    pub callback: Option<Callback>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Survey {
    pub id: String,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    #[serde(default)]
    pub invited: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyAnswer {
    pub survey: String,
    pub household: String,
    pub area: String,
    pub score: u8,
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: String,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    #[serde(default)]
    pub rsvps: Vec<String>,
    #[serde(default)]
    pub summary_done: bool,
}

/// Read access to one community. Errors (a database that went away) fail the run.
pub trait CommunityData: Send + Sync {
    fn id(&self) -> &str;
    fn name(&self) -> String;
    fn timezone(&self) -> String;
    fn households(&self) -> anyhow::Result<Vec<Household>>;
    fn household(&self, id: &str) -> anyhow::Result<Option<Household>>;
    fn owners(&self, household: &str) -> anyhow::Result<Vec<Owner>>;
    fn owner(&self, id: &str) -> anyhow::Result<Option<Owner>>;
    fn unpaid_bills(&self) -> anyhow::Result<Vec<Bill>>;
    fn bills(&self, household: &str) -> anyhow::Result<Vec<Bill>>;
    fn balances(&self) -> anyhow::Result<Vec<Balance>>;
    /// Tickets closed at or after `since`, and all open ones.
    fn tickets(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<Ticket>>;
    fn ticket(&self, id: &str) -> anyhow::Result<Option<Ticket>>;
    fn surveys(&self) -> anyhow::Result<Vec<Survey>>;
    fn survey_answers(&self, survey: &str) -> anyhow::Result<Vec<SurveyAnswer>>;
    fn events(&self) -> anyhow::Result<Vec<Event>>;
    /// Workday per the community's business calendar; `None` without one.
    fn is_workday(&self, date: NaiveDate) -> Option<bool>;

    /// Unpaid bills due on or before `date`. The default filters [`unpaid_bills`]; a store
    /// answers from its index instead.
    ///
    /// [`unpaid_bills`]: CommunityData::unpaid_bills
    fn unpaid_bills_due_by(&self, date: NaiveDate) -> anyhow::Result<Vec<Bill>> {
        let mut bills = self.unpaid_bills()?;
        bills.retain(|b| b.due_date <= date);
        Ok(bills)
    }

    /// Tickets closed at or after `since` with no callback dated at or after their closing,
    /// oldest closing first.
    fn tickets_awaiting_callback(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<Ticket>> {
        let mut tickets: Vec<Ticket> = self
            .tickets(since)?
            .into_iter()
            .filter(|t| {
                t.closed_at.is_some_and(|closed| {
                    closed >= since && t.callback.as_ref().is_none_or(|c| c.done_at < closed)
                })
            })
            .collect();
        tickets.sort_by_key(|t| t.closed_at);
        Ok(tickets)
    }

    /// The households named, in the order asked; unknown ids left out.
    fn households_by_id(&self, ids: &[String]) -> anyhow::Result<Vec<Household>> {
        let mut all: std::collections::HashMap<String, Household> = self
            .households()?
            .into_iter()
            .map(|h| (h.id.clone(), h))
            .collect();
        Ok(ids.iter().filter_map(|id| all.remove(id)).collect())
    }
}

/// Hands out the data of one community at a time.
pub trait DataSource: Send + Sync + 'static {
    fn community(&self, id: &str) -> anyhow::Result<Arc<dyn CommunityData>>;
}

pub use wuye_store::plugin_kv::{KvRead, KvUsage};

/// One community's data in memory.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryData {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "shanghai")]
    pub timezone: String,
    #[serde(default)]
    pub households: Vec<Household>,
    #[serde(default)]
    pub owners: Vec<Owner>,
    #[serde(default)]
    pub bills: Vec<Bill>,
    #[serde(default)]
    pub balances: Vec<Balance>,
    #[serde(default)]
    pub tickets: Vec<Ticket>,
    #[serde(default)]
    pub surveys: Vec<Survey>,
    #[serde(default)]
    pub survey_answers: Vec<SurveyAnswer>,
    #[serde(default)]
    pub events: Vec<Event>,
    /// `YYYY-MM-DD` → workday; absent dates answer "no calendar".
    #[serde(default)]
    pub workdays: BTreeMap<NaiveDate, bool>,
}

fn shanghai() -> String {
    "Asia/Shanghai".to_string()
}

impl MemoryData {
    pub fn new(id: &str) -> Self {
        MemoryData {
            id: id.to_string(),
            name: id.to_string(),
            timezone: shanghai(),
            ..MemoryData::default()
        }
    }
}

impl CommunityData for MemoryData {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn timezone(&self) -> String {
        self.timezone.clone()
    }
    fn households(&self) -> anyhow::Result<Vec<Household>> {
        Ok(self.households.clone())
    }
    fn household(&self, id: &str) -> anyhow::Result<Option<Household>> {
        Ok(self.households.iter().find(|h| h.id == id).cloned())
    }
    fn owners(&self, household: &str) -> anyhow::Result<Vec<Owner>> {
        Ok(self
            .owners
            .iter()
            .filter(|o| o.household == household)
            .cloned()
            .collect())
    }
    fn owner(&self, id: &str) -> anyhow::Result<Option<Owner>> {
        Ok(self.owners.iter().find(|o| o.id == id).cloned())
    }
    fn unpaid_bills(&self) -> anyhow::Result<Vec<Bill>> {
        Ok(self
            .bills
            .iter()
            .filter(|b| b.paid_fen < b.amount_fen)
            .cloned()
            .collect())
    }
    fn bills(&self, household: &str) -> anyhow::Result<Vec<Bill>> {
        Ok(self
            .bills
            .iter()
            .filter(|b| b.household == household)
            .cloned()
            .collect())
    }
    fn balances(&self) -> anyhow::Result<Vec<Balance>> {
        Ok(self.balances.clone())
    }
    fn tickets(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<Ticket>> {
        Ok(self
            .tickets
            .iter()
            .filter(|t| t.closed_at.is_none_or(|c| c >= since))
            .cloned()
            .collect())
    }
    fn ticket(&self, id: &str) -> anyhow::Result<Option<Ticket>> {
        Ok(self.tickets.iter().find(|t| t.id == id).cloned())
    }
    fn surveys(&self) -> anyhow::Result<Vec<Survey>> {
        Ok(self.surveys.clone())
    }
    fn survey_answers(&self, survey: &str) -> anyhow::Result<Vec<SurveyAnswer>> {
        Ok(self
            .survey_answers
            .iter()
            .filter(|a| a.survey == survey)
            .cloned()
            .collect())
    }
    fn events(&self) -> anyhow::Result<Vec<Event>> {
        Ok(self.events.clone())
    }
    fn is_workday(&self, date: NaiveDate) -> Option<bool> {
        self.workdays.get(&date).copied()
    }
}

/// Several communities in memory.
#[derive(Default)]
pub struct MemorySource {
    pub communities: HashMap<String, Arc<MemoryData>>,
}

impl MemorySource {
    pub fn new(communities: impl IntoIterator<Item = MemoryData>) -> Self {
        MemorySource {
            communities: communities
                .into_iter()
                .map(|c| (c.id.clone(), Arc::new(c)))
                .collect(),
        }
    }
}

impl DataSource for MemorySource {
    fn community(&self, id: &str) -> anyhow::Result<Arc<dyn CommunityData>> {
        match self.communities.get(id) {
            Some(c) => Ok(c.clone()),
            None => anyhow::bail!("no data for community {id:?}"),
        }
    }
}

/// A key-value store in memory, keyed by (community, plugin, key).
#[derive(Debug, Default)]
pub struct MemoryKv {
    pub values: Mutex<BTreeMap<(String, String, String), String>>,
}

impl MemoryKv {
    pub fn insert(&self, community: &str, plugin: &str, key: &str, value: &str) {
        self.values.lock().expect("kv poisoned").insert(
            (community.to_string(), plugin.to_string(), key.to_string()),
            value.to_string(),
        );
    }
}

impl KvRead for MemoryKv {
    fn get(&self, community: &str, plugin: &str, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .values
            .lock()
            .expect("kv poisoned")
            .get(&(community.to_string(), plugin.to_string(), key.to_string()))
            .cloned())
    }

    fn usage(&self, community: &str, plugin: &str) -> anyhow::Result<KvUsage> {
        let values = self.values.lock().expect("kv poisoned");
        let mut usage = KvUsage::default();
        for ((c, p, k), v) in values.iter() {
            if c == community && p == plugin {
                usage.bytes += k.len() + v.len();
                usage.keys += 1;
            }
        }
        Ok(usage)
    }
}
