//! [`MockHost`]: a community in memory, so plugin logic is unit-tested natively with `cargo test`
//! (no wasm, no daemon). Fill its public fields with data, call a hook, assert on what it recorded.

use std::collections::BTreeMap;

use crate::{
    Balance, Bill, Event, Household, Level, Message, Money, NewTicket, Owner, Run, StaffNotice,
    Survey, SurveyAnswer, Ticket, Timestamp, host::Host,
};

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

/// An in-memory [`Host`]: data in, intents out.
#[derive(Debug, Clone, Default)]
pub struct MockHost {
    pub community_id: String,
    pub community_name: String,
    pub timezone: String,
    pub households: Vec<Household>,
    pub owners: Vec<Owner>,
    pub bills: Vec<Bill>,
    pub balances: Vec<Balance>,
    pub tickets: Vec<Ticket>,
    pub surveys: Vec<Survey>,
    pub survey_answers: Vec<SurveyAnswer>,
    pub events: Vec<Event>,
    /// `YYYY-MM-DD` → workday or not; dates absent here answer `None`.
    pub workdays: BTreeMap<String, bool>,
    /// What [`Host::now`] returns; move it between calls to simulate time.
    pub now: Timestamp,
    /// The plugin's key-value store (writes land here at once).
    pub kv: BTreeMap<String, String>,

    /// Recorded output.
    pub logs: Vec<LogLine>,
    pub messages: Vec<Message>,
    pub staff_notices: Vec<StaffNotice>,
    pub timers: Vec<(Timestamp, String)>,
    pub new_tickets: Vec<NewTicket>,
}

impl MockHost {
    /// An empty community with this id, in Asia/Shanghai, at 2026-01-01T00:00:00Z.
    pub fn new(community_id: &str) -> Self {
        MockHost {
            community_id: community_id.to_string(),
            community_name: community_id.to_string(),
            timezone: "Asia/Shanghai".to_string(),
            now: 1_767_225_600_000,
            ..MockHost::default()
        }
    }

    /// A [`Run`] of `workflow` in this community, due now, with `params` as JSON.
    pub fn run(&self, workflow: &str, params: &str) -> Run {
        Run {
            community: self.community_id.clone(),
            workflow: workflow.to_string(),
            due_at: self.now,
            params: params.to_string(),
        }
    }

    /// Moves the clock to `instant`, written as RFC 3339 with its offset
    /// (`"2027-02-21T10:00:00+08:00"`), the way a test reads a scenario. Panics on a malformed
    /// instant: it is the test's own text.
    pub fn at(&mut self, instant: &str) -> &mut Self {
        let t = chrono::DateTime::parse_from_rfc3339(instant).unwrap_or_else(|e| {
            panic!("MockHost::at({instant:?}): not an RFC 3339 instant ({e}); write it like \"2027-02-21T10:00:00+08:00\"")
        });
        self.now = t.timestamp_millis();
        self
    }

    /// Adds household `id` in `building`, `unit`, with one owner `<id>-owner` who reads
    /// Chinese (see [`MockHost::with_owner`] for more owners).
    pub fn with_household(&mut self, id: &str, building: &str, unit: &str) -> &mut Self {
        let owner = format!("{id}-owner");
        self.households.push(Household {
            id: id.to_string(),
            building: building.to_string(),
            unit: unit.to_string(),
            owners: vec![owner.clone()],
        });
        self.owners.push(Owner {
            id: owner,
            household: id.to_string(),
            name: format!("{id} owner"),
            language: "zh-CN".to_string(),
            opted_out: false,
        });
        self
    }

    /// Adds owner `id` of `household` (which must exist) speaking `language` (`en`, `zh-CN`).
    pub fn with_owner(
        &mut self,
        id: &str,
        household: &str,
        name: &str,
        language: &str,
    ) -> &mut Self {
        let Some(h) = self.households.iter_mut().find(|h| h.id == household) else {
            panic!("MockHost::with_owner({id:?}): add household {household:?} first");
        };
        h.owners.push(id.to_string());
        self.owners.push(Owner {
            id: id.to_string(),
            household: household.to_string(),
            name: name.to_string(),
            language: language.to_string(),
            opted_out: false,
        });
        self
    }

    /// Adds an unpaid property-fee bill `id` of `household` for `period` (`2026-09`), of
    /// `amount`, due on `due_date` (`YYYY-MM-DD`). Set `paid_fen` on the last of
    /// [`MockHost::bills`] for a partial payment.
    pub fn with_bill(
        &mut self,
        id: &str,
        household: &str,
        period: &str,
        amount: Money,
        due_date: &str,
    ) -> &mut Self {
        self.bills.push(Bill {
            id: id.to_string(),
            household: household.to_string(),
            fee_type: "property".to_string(),
            period: period.to_string(),
            amount_fen: amount.as_fen(),
            paid_fen: 0,
            due_date: due_date.to_string(),
        });
        self
    }

    /// Marks `date` (`YYYY-MM-DD`) a workday or a holiday in the community's calendar.
    pub fn with_workday(&mut self, date: &str, workday: bool) -> &mut Self {
        self.workdays.insert(date.to_string(), workday);
        self
    }

    /// The messages sent with `template`, in order.
    pub fn messages_with(&self, template: &str) -> Vec<&Message> {
        self.messages
            .iter()
            .filter(|m| m.template == template)
            .collect()
    }

    /// Forgets recorded output (not data, not kv), between two simulated runs.
    pub fn clear_output(&mut self) {
        self.logs.clear();
        self.messages.clear();
        self.staff_notices.clear();
        self.timers.clear();
        self.new_tickets.clear();
    }
}

impl Host for MockHost {
    fn community_id(&self) -> String {
        self.community_id.clone()
    }
    fn community_name(&self) -> String {
        self.community_name.clone()
    }
    fn timezone(&self) -> String {
        self.timezone.clone()
    }
    fn households(&self) -> Vec<Household> {
        self.households.clone()
    }
    fn household(&self, id: &str) -> Option<Household> {
        self.households.iter().find(|h| h.id == id).cloned()
    }
    fn owners(&self, household: &str) -> Vec<Owner> {
        self.owners
            .iter()
            .filter(|o| o.household == household)
            .cloned()
            .collect()
    }
    fn owner(&self, id: &str) -> Option<Owner> {
        self.owners.iter().find(|o| o.id == id).cloned()
    }
    fn unpaid_bills(&self) -> Vec<Bill> {
        self.bills
            .iter()
            .filter(|b| b.paid_fen < b.amount_fen)
            .cloned()
            .collect()
    }
    fn bills(&self, household: &str) -> Vec<Bill> {
        self.bills
            .iter()
            .filter(|b| b.household == household)
            .cloned()
            .collect()
    }
    fn balances(&self) -> Vec<Balance> {
        self.balances.clone()
    }
    fn tickets(&self, since: Timestamp) -> Vec<Ticket> {
        self.tickets
            .iter()
            .filter(|t| t.closed_at.is_none_or(|c| c >= since))
            .cloned()
            .collect()
    }
    fn ticket(&self, id: &str) -> Option<Ticket> {
        self.tickets.iter().find(|t| t.id == id).cloned()
    }
    fn surveys(&self) -> Vec<Survey> {
        self.surveys.clone()
    }
    fn survey_answers(&self, survey: &str) -> Vec<SurveyAnswer> {
        self.survey_answers
            .iter()
            .filter(|a| a.survey == survey)
            .cloned()
            .collect()
    }
    fn events(&self) -> Vec<Event> {
        self.events.clone()
    }
    fn is_workday(&self, date: &str) -> Option<bool> {
        self.workdays.get(date).copied()
    }
    fn unpaid_bills_due_by(&self, date: &str) -> Vec<Bill> {
        // `YYYY-MM-DD` strings order as dates do. A due date in another shape is kept, so a
        // test can check how the plugin reports it (the daemon's store only holds real dates).
        let is_date = |d: &str| {
            d.len() == 10
                && d.bytes().enumerate().all(|(i, c)| {
                    if i == 4 || i == 7 {
                        c == b'-'
                    } else {
                        c.is_ascii_digit()
                    }
                })
        };
        self.unpaid_bills()
            .into_iter()
            .filter(|b| !is_date(&b.due_date) || b.due_date.as_str() <= date)
            .collect()
    }
    fn tickets_awaiting_callback(&self, since: Timestamp) -> Vec<Ticket> {
        let mut out: Vec<Ticket> = self
            .tickets
            .iter()
            // Desk tasks (`task`) owe no callback, as in the daemon.
            .filter(|t| {
                t.kind != "task"
                    && t.closed_at.is_some_and(|closed| {
                        closed >= since && t.callback.as_ref().is_none_or(|c| c.done_at < closed)
                    })
            })
            .cloned()
            .collect();
        out.sort_by_key(|t| t.closed_at);
        out
    }
    fn households_by_id(&self, ids: &[String]) -> Vec<Household> {
        ids.iter().filter_map(|id| self.household(id)).collect()
    }
    fn now(&self) -> Timestamp {
        self.now
    }
    fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]) {
        self.logs.push(LogLine {
            level,
            message: message.to_string(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        });
    }
    fn kv_get(&self, key: &str) -> Option<String> {
        self.kv.get(key).cloned()
    }
    fn kv_put(&mut self, key: &str, value: &str) {
        self.kv.insert(key.to_string(), value.to_string());
    }
    fn kv_delete(&mut self, key: &str) {
        self.kv.remove(key);
    }
    fn send(&mut self, message: Message) {
        self.messages.push(message);
    }
    fn notify_staff(&mut self, notice: StaffNotice) {
        self.staff_notices.push(notice);
    }
    fn set_timer(&mut self, at: Timestamp, payload: &str) {
        self.timers.push((at, payload.to_string()));
    }
    fn create_ticket(&mut self, ticket: NewTicket) {
        self.new_tickets.push(ticket);
    }
}
