//! [`Host`]: what a hook can ask of the daemon, as a trait so the same plugin logic runs against
//! the real host inside the sandbox ([`WasmHost`]) and against [`crate::MockHost`] in `cargo test`.

use crate::bindings::wuye::plugin::host as wit;
use crate::calendar::{self, Date};
use crate::{
    Balance, Bill, Event, Field, Household, Level, Message, NewTicket, Owner, PluginError,
    StaffNotice, Survey, SurveyAnswer, Ticket, Timestamp,
};

/// The run's view of the daemon. All reads are scoped to the run's community: no method takes a
/// community id. All writes are intents, applied when the run commits.
pub trait Host {
    /// The community's stable id (`lakeside`).
    fn community_id(&self) -> String;
    /// Its display name (水畔花园).
    fn community_name(&self) -> String;
    /// Its IANA timezone.
    fn timezone(&self) -> String;
    fn households(&self) -> Vec<Household>;
    fn household(&self, id: &str) -> Option<Household>;
    fn owners(&self, household: &str) -> Vec<Owner>;
    fn owner(&self, id: &str) -> Option<Owner>;
    /// Bills not fully paid, whatever their due date.
    fn unpaid_bills(&self) -> Vec<Bill>;
    fn bills(&self, household: &str) -> Vec<Bill>;
    fn balances(&self) -> Vec<Balance>;
    /// Tickets closed at or after `since`, and all open ones.
    fn tickets(&self, since: Timestamp) -> Vec<Ticket>;
    fn ticket(&self, id: &str) -> Option<Ticket>;
    fn surveys(&self) -> Vec<Survey>;
    fn survey_answers(&self, survey: &str) -> Vec<SurveyAnswer>;
    fn events(&self) -> Vec<Event>;
    /// Whether `date` (`YYYY-MM-DD`) is a workday in the community's calendar; `None` without a
    /// calendar. Needs a host that speaks WIT 0.2.0.
    fn is_workday(&self, date: &str) -> Option<bool>;
    /// Unpaid bills due on or before `date` (`YYYY-MM-DD`): what a ladder that starts N days
    /// before the due date needs (ask for today + N), without next year's bills. Needs a host
    /// that speaks WIT 0.3.0.
    fn unpaid_bills_due_by(&self, date: &str) -> Vec<Bill>;
    /// Tickets closed at or after `since` that no callback answered since their closing,
    /// oldest closing first. Needs WIT 0.3.0.
    fn tickets_awaiting_callback(&self, since: Timestamp) -> Vec<Ticket>;
    /// The households named, in the order asked; unknown ids left out. Needs WIT 0.3.0.
    fn households_by_id(&self, ids: &[String]) -> Vec<Household>;

    /// The daemon's clock, in milliseconds since the Unix epoch (virtual in simulations).
    fn now(&self) -> Timestamp;
    /// Writes to the daemon's log, tagged with plugin, community and run.
    fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]);

    /// The plugin's own key-value store for this community. Reads see this run's writes.
    fn kv_get(&self, key: &str) -> Option<String>;
    fn kv_put(&mut self, key: &str, value: &str);
    fn kv_delete(&mut self, key: &str);

    /// Sends a message to owners (buffered until the run commits).
    fn send(&mut self, message: Message);
    /// Tells the community's staff with a role.
    fn notify_staff(&mut self, notice: StaffNotice);
    /// Calls `on_timer` with `payload` at `at`.
    fn set_timer(&mut self, at: Timestamp, payload: &str);
    /// Opens a ticket for the service desk.
    fn create_ticket(&mut self, ticket: NewTicket);
}

/// Helpers built on [`Host`]'s methods, the same for every host (in the prelude).
///
/// A separate trait, implemented for every host, rather than default methods of `Host`: a
/// default method sits in every host's vtable, so the time-zone database behind
/// [`HostExt::today`] (a megabyte, and a second of compiling at each daemon start) would be
/// linked into every plugin, even one that never asks for a date. Here it is linked only into
/// the plugins that call these.
pub trait HostExt: Host {
    /// Today's date in the community's zone, by the daemon's clock. For "the day this run is
    /// for" prefer [`crate::Run::local_date`], which stays put when a run is retried late.
    fn today(&self) -> Result<Date, PluginError> {
        Ok(calendar::local_date(
            self.now(),
            calendar::zone(&self.timezone())?,
        ))
    }

    /// The instant of `time` (`HH:MM`) on `date` in the community's zone: when to
    /// [`set_timer`](Host::set_timer) for "09:00 on the 15th".
    fn at_local(&self, date: Date, time: &str) -> Result<Timestamp, PluginError> {
        let time = calendar::parse_time("time of day", time)?;
        Ok(calendar::at_local(
            date,
            time,
            calendar::zone(&self.timezone())?,
        ))
    }

    /// A date stored with [`kv_put_date`](HostExt::kv_put_date); `None` if absent or not a date.
    fn kv_date(&self, key: &str) -> Option<Date> {
        calendar::parse_date(key, &self.kv_get(key)?).ok()
    }

    /// Stores a date as `YYYY-MM-DD`.
    fn kv_put_date(&mut self, key: &str, date: Date) {
        self.kv_put(key, &date.format("%Y-%m-%d").to_string());
    }

    /// A whole number stored with [`kv_put_number`](HostExt::kv_put_number); `None` if absent or
    /// not a number.
    fn kv_number(&self, key: &str) -> Option<i64> {
        self.kv_get(key)?.trim().parse().ok()
    }

    fn kv_put_number(&mut self, key: &str, value: i64) {
        self.kv_put(key, &value.to_string());
    }

    /// Whether the thing named `key` may happen today, at most once every `days` days: true
    /// (and today is remembered under `key`) when it last happened `days` or more days ago, or
    /// never. "Remind a household of its balance at most once a week" is
    /// `host.once_every_days(&format!("low-balance:{household}"), 7)?`. The memory commits with
    /// the run, so a failed run leaves it as it was.
    fn once_every_days(&mut self, key: &str, days: u32) -> Result<bool, PluginError> {
        let today = self.today()?;
        if let Some(last) = self.kv_date(key)
            && calendar::days_between(last, today) < i64::from(days)
        {
            return Ok(false);
        }
        self.kv_put_date(key, today);
        Ok(true)
    }
}

/// The real host, through the component's imports. The community handle is fetched on first
/// use, so a hook that reads nothing pays no host call for it.
pub(crate) struct WasmHost {
    community: std::cell::OnceCell<wit::Community>,
}

impl WasmHost {
    pub(crate) fn new() -> Self {
        WasmHost {
            community: std::cell::OnceCell::new(),
        }
    }

    fn c(&self) -> &wit::Community {
        self.community.get_or_init(wit::current_community)
    }
}

fn fields(fields: &[(&str, &str)]) -> Vec<Field> {
    fields
        .iter()
        .map(|(k, v)| Field {
            key: (*k).to_string(),
            value: (*v).to_string(),
        })
        .collect()
}

impl Host for WasmHost {
    fn community_id(&self) -> String {
        self.c().id()
    }
    fn community_name(&self) -> String {
        self.c().name()
    }
    fn timezone(&self) -> String {
        self.c().timezone()
    }
    fn households(&self) -> Vec<Household> {
        self.c().households()
    }
    fn household(&self, id: &str) -> Option<Household> {
        self.c().household(id)
    }
    fn owners(&self, household: &str) -> Vec<Owner> {
        self.c().owners(household)
    }
    fn owner(&self, id: &str) -> Option<Owner> {
        self.c().owner(id)
    }
    fn unpaid_bills(&self) -> Vec<Bill> {
        self.c().unpaid_bills()
    }
    fn bills(&self, household: &str) -> Vec<Bill> {
        self.c().bills(household)
    }
    fn balances(&self) -> Vec<Balance> {
        self.c().balances()
    }
    fn tickets(&self, since: Timestamp) -> Vec<Ticket> {
        self.c().tickets(since)
    }
    fn ticket(&self, id: &str) -> Option<Ticket> {
        self.c().ticket(id)
    }
    fn surveys(&self) -> Vec<Survey> {
        self.c().surveys()
    }
    fn survey_answers(&self, survey: &str) -> Vec<SurveyAnswer> {
        self.c().survey_answers(survey)
    }
    fn events(&self) -> Vec<Event> {
        self.c().events()
    }
    fn is_workday(&self, date: &str) -> Option<bool> {
        self.c().is_workday(date)
    }
    fn unpaid_bills_due_by(&self, date: &str) -> Vec<Bill> {
        self.c().unpaid_bills_due_by(date)
    }
    fn tickets_awaiting_callback(&self, since: Timestamp) -> Vec<Ticket> {
        self.c().tickets_awaiting_callback(since)
    }
    fn households_by_id(&self, ids: &[String]) -> Vec<Household> {
        self.c().households_by_id(ids)
    }
    fn now(&self) -> Timestamp {
        wit::now()
    }
    fn log(&mut self, level: Level, message: &str, f: &[(&str, &str)]) {
        wit::log(level, message, &fields(f));
    }
    fn kv_get(&self, key: &str) -> Option<String> {
        wit::kv_get(key)
    }
    fn kv_put(&mut self, key: &str, value: &str) {
        wit::kv_put(key, value);
    }
    fn kv_delete(&mut self, key: &str) {
        wit::kv_delete(key);
    }
    fn send(&mut self, message: Message) {
        wit::send(&message);
    }
    fn notify_staff(&mut self, notice: StaffNotice) {
        wit::notify_staff(&notice);
    }
    fn set_timer(&mut self, at: Timestamp, payload: &str) {
        wit::set_timer(at, payload);
    }
    fn create_ticket(&mut self, ticket: NewTicket) {
        wit::create_ticket(&ticket);
    }
}

/// Forwards the `log` crate's macros to the daemon's log.
struct HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Error => Level::Error,
            log::Level::Warn => Level::Warn,
            log::Level::Info => Level::Info,
            log::Level::Debug => Level::Debug,
            log::Level::Trace => Level::Trace,
        };
        let target = record.target().to_string();
        wit::log(
            level,
            &record.args().to_string(),
            &fields(&[("target", &target)]),
        );
    }

    fn flush(&self) {}
}

static LOGGER: HostLogger = HostLogger;

pub(crate) fn install_logger() {
    // Fails only when already installed (a reused instance): fine either way.
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

impl<H: Host + ?Sized> HostExt for H {}
