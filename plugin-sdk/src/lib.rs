//! Write wuye community plugins in plain Rust.
//!
//! A plugin decides; the daemon acts. Each hook reads the run's community through a [`Host`] and
//! answers with *intents* (send this template to that household, tell the supervisor, wake me
//! again at 09:00 on the 15th, remember this value). The daemon buffers them and applies them
//! atomically when the run commits, so a plugin that fails half-way has done nothing, and a dry
//! run or a simulation can show exactly what a plugin would do. A plugin never sees an owner's
//! phone number or email address: it addresses owners and households by id.
//!
//! Implement [`Plugin`] (every hook has a default body that does nothing), export it with
//! [`export_plugin!`], and test the logic natively against [`MockHost`] with plain `cargo test`.
//!
//! ```
//! use wuye_plugin_sdk::prelude::*;
//!
//! /// Reminds every household with an unpaid bill, once per run.
//! #[derive(Default)]
//! struct Nudge;
//!
//! #[derive(serde::Deserialize)]
//! struct Params {
//!     template: String,
//! }
//!
//! impl Plugin for Nudge {
//!     fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
//!         let params: Params = run.params()?;
//!         let mut households: Vec<String> =
//!             host.unpaid_bills().into_iter().map(|b| b.household).collect();
//!         households.sort();
//!         households.dedup();
//!         for h in &households {
//!             host.send(Message::to_household(h, &params.template, "nudge"));
//!         }
//!         host.log(Level::Info, "nudged", &[("households", &households.len().to_string())]);
//!         Ok(())
//!     }
//! }
//!
//! export_plugin!(Nudge);
//!
//! // The same logic, natively, against a mock community:
//! let mut host = MockHost::new("lakeside");
//! host.households.push(Household {
//!     id: "1-101".into(),
//!     building: "1".into(),
//!     unit: "101".into(),
//!     owners: vec!["o1".into()],
//! });
//! host.bills.push(Bill {
//!     id: "b1".into(),
//!     household: "1-101".into(),
//!     fee_type: "property".into(),
//!     period: "2026-09".into(),
//!     amount_fen: 35_000,
//!     paid_fen: 0,
//!     due_date: "2026-09-30".into(),
//! });
//! let run = host.run("fee_reminder", r#"{"template": "fee_due"}"#);
//! Nudge.on_schedule(&run, &mut host).unwrap();
//! assert_eq!(host.messages.len(), 1);
//! assert_eq!(host.messages[0].template, "fee_due");
//! ```
//!
//! Build the `.wasm` with `cargo build --release --target wasm32-wasip2 -p my-plugin` (after
//! `rustup target add wasm32-wasip2`), then preview it in the real sandbox with
//! `wuyed plugin test target/wasm32-wasip2/release/my_plugin.wasm --fixture fixture.toml`.
//!
//! # Template variables
//!
//! Variables cross into the daemon as `(key, value)` strings ([`Message::var`]); these conventions
//! give templates their structure back (the same for [`Message`] and [`StaffNotice`]):
//!
//! - a dotted key nests: `.var("household.label", ..)` is `{{ household.label }}`;
//! - a value that is a JSON array or object is passed as that value, so a template can loop over
//!   it (`{% for b in bills %}`): build one with [`Message::json_var`];
//! - `bill_ids` (a JSON list of bill ids) and `ticket.id` name the message's *reason*: just before
//!   sending, the daemon checks it still stands and cancels a reminder whose bills were all paid
//!   meanwhile, or a callback notice whose ticket got its callback. Set them with
//!   [`Message::about_bills`] and [`Message::about_ticket`];
//! - the daemon adds `community.id`, `community.name`, `recipient.id`, `recipient.name`, `locale`
//!   and `workflow` to every message, a personal `link` to one with a `survey` variable, and the
//!   place and RSVP link to one with `event.id`; plugins never see those tokens;
//! - `step` (the third argument of [`Message::to_household`]) is part of the message's
//!   idempotency key with the workflow, the run's slot and the recipient: a second message of
//!   one run to one household with the same step is dropped as a duplicate, so give each its
//!   own step; that key is also why a run redone after a crash sends nothing twice.
//!
//! The template is found as `templates/<workflow>/<template>.<locale>.toml` in the
//! configuration, one file per locale the community's owners use; `wuyed check` names any that is
//! missing or uses a variable the plugin's manifest does not declare.
//!
//! # Dates, money and state
//!
//! [`HostExt::today`] and [`Run::local_date`] give the community-local date, [`calendar`] parses and
//! moves dates and turns a local time into a timer instant ([`HostExt::at_local`]), [`Money`] adds
//! and prints fen as yuan, [`Household::label`] names a household the way the desk does, and the
//! typed key-value helpers ([`HostExt::kv_date`], [`HostExt::kv_number`], [`HostExt::once_every_days`])
//! keep what a plugin must remember between runs.
//!
//! Logging: use [`Host::log`], or the usual `log` macros (`log::info!`), which the SDK forwards to
//! the daemon's log when running as a plugin.

pub mod calendar;
mod host;
mod mock;
mod money;

pub use calendar::Date;
pub use host::{Host, HostExt};
pub use mock::{LogLine, MockHost};
pub use money::Money;

/// The date and time library the SDK's [`calendar`] is built on, for arithmetic it does not
/// cover, without a second dependency to keep in step.
#[doc(no_inline)]
pub use chrono;

/// The bindings generated from `wit/since_v0.3.0`. Private: plugin authors use the re-exported
/// types below, so the SDK can move to a newer WIT version without breaking them.
#[doc(hidden)]
#[allow(unsafe_code, clippy::all, missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit/since_v0.3.0",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_wuye_plugin_world",
        default_bindings_module: "wuye_plugin_sdk::__private::bindings",
        additional_derives: [PartialEq],
    });
}

/// The WIT package version this SDK builds plugins against.
pub const WIT_VERSION: &str = "0.3.0";

pub use bindings::wuye::plugin::types::{
    Balance, Bill, Callback, Category, Channel, Event, EventIn, Field, Household, Level, Message,
    NewTicket, Owner, PluginError, Recipient, Role, Run, StaffNotice, Survey, SurveyAnswer, Ticket,
    Timestamp,
};

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        Balance, Bill, Callback, Category, Channel, DAY_MS, Date, Event, EventIn, Host, HostExt,
        Household, Level, Message, MockHost, Money, NewTicket, Owner, Plugin, PluginError,
        Recipient, Role, Run, StaffNotice, Survey, SurveyAnswer, Ticket, Timestamp, export_plugin,
    };
}

/// A community rule. Every hook has a default body that does nothing and succeeds, so a plugin
/// implements only what it reacts to, and a hook added in a later SDK breaks nobody.
///
/// The daemon makes a fresh instance for every run: keep state across runs in the key-value
/// store ([`Host::kv_put`]), not in fields.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a wuye plugin",
    note = "implement `wuye_plugin_sdk::Plugin` for it (all hooks have default bodies) and derive `Default`"
)]
pub trait Plugin: Default {
    /// A schedule slot of the workflow came due.
    fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        let _ = (run, host);
        Ok(())
    }

    /// A timer this plugin set with [`Host::set_timer`] fired.
    fn on_timer(
        &mut self,
        run: &Run,
        payload: &str,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        let _ = (run, payload, host);
        Ok(())
    }

    /// Something happened in the community (`ticket.closed`, `payment.posted`, ...).
    fn on_event(
        &mut self,
        run: &Run,
        event: &EventIn,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        let _ = (run, event, host);
        Ok(())
    }
}

impl Run {
    /// The workflow's `params` table, deserialised; a mismatch names the offending key.
    pub fn params<T: serde::de::DeserializeOwned>(&self) -> Result<T, PluginError> {
        let src = if self.params.trim().is_empty() {
            "{}"
        } else {
            &self.params
        };
        serde_json::from_str(src).map_err(|e| PluginError::InvalidParams(e.to_string()))
    }

    /// The community-local date the run is for (its slot, timer or event instant): "today" for
    /// a daily run, right in Shanghai before 08:00 too, and the same date when a run is retried
    /// or caught up later.
    pub fn local_date(&self, host: &dyn Host) -> Result<Date, PluginError> {
        Ok(calendar::local_date(
            self.due_at,
            calendar::zone(&host.timezone())?,
        ))
    }
}

impl Household {
    /// How the desk and the owners name the household in a Chinese message: `3栋1201`
    /// (building and unit), or its id when either is missing. Send it as the `household.label`
    /// variable, and [`Household::label_en`] as `household.label_en` for English templates: the
    /// plugin does not know which language each owner reads, the template does.
    pub fn label(&self) -> String {
        if !self.building.is_empty() && !self.unit.is_empty() {
            format!("{}栋{}", self.building, self.unit)
        } else {
            self.id.clone()
        }
    }

    /// The same label as an English message writes it: `Building 3, Unit 2, Room 301` (the host
    /// writes a unit as `2单元301`: 单元 and room), `Building 3, Room 1201` for a unit without
    /// 单元, or the id when building or unit is missing. Send it as `household.label_en`.
    pub fn label_en(&self) -> String {
        if self.building.is_empty() || self.unit.is_empty() {
            return self.id.clone();
        }
        // The last 单元 separates the room: a spreadsheet that wrote the unit as `2单元` gives
        // the host `2单元单元301`.
        let unit = match self.unit.rsplit_once("单元") {
            Some((unit, room)) if !room.is_empty() && !unit.trim_end_matches("单元").is_empty() =>
            {
                format!("Unit {}, Room {room}", unit.trim_end_matches("单元"))
            }
            _ => format!("Room {}", self.unit),
        };
        format!("Building {}, {unit}", self.building)
    }
}

impl Bill {
    /// What is still owed on the bill.
    pub fn outstanding(&self) -> Money {
        Money::fen(self.amount_fen.saturating_sub(self.paid_fen))
    }

    /// The due date; a malformed one is bad data naming the bill.
    pub fn due(&self) -> Result<Date, PluginError> {
        calendar::parse_date(&format!("bill {} due_date", self.id), &self.due_date)
    }
}

impl Role {
    /// The role as written in config and params: `customer_service`, `supervisor`, `manager`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::CustomerService => "customer_service",
            Role::Supervisor => "supervisor",
            Role::Manager => "manager",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = PluginError;

    fn from_str(s: &str) -> Result<Role, PluginError> {
        match s {
            "customer_service" => Ok(Role::CustomerService),
            "supervisor" => Ok(Role::Supervisor),
            "manager" => Ok(Role::Manager),
            other => Err(PluginError::InvalidParams(format!(
                "unknown role {other:?} (customer_service, supervisor, manager)"
            ))),
        }
    }
}

/// A role in a plugin's params (`notify = "supervisor"`), so `Run::params` reads it directly.
impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: PluginError| match e {
            PluginError::InvalidParams(m) | PluginError::BadData(m) | PluginError::Failed(m) => {
                serde::de::Error::custom(m)
            }
        })
    }
}

// One set of variable helpers for both kinds of intent that carry a template.
macro_rules! template_vars {
    ($t:ty) => {
        impl $t {
            /// Adds a template variable (see [the conventions](crate#template-variables)).
            pub fn var(mut self, key: &str, value: impl ToString) -> Self {
                self.vars.push(Field {
                    key: key.to_string(),
                    value: value.to_string(),
                });
                self
            }

            /// Adds a template variable holding structured data (a list of bills, a table),
            /// which the template reads as a list or map.
            pub fn json_var(self, key: &str, value: &impl serde::Serialize) -> Self {
                let json = serde_json::to_string(value).unwrap_or_else(|_| "null".to_string());
                self.var(key, json)
            }

            /// The bills this message is about (`bill_ids`): the daemon drops it unsent if they
            /// are all paid before it goes out.
            pub fn about_bills<S: AsRef<str>>(self, ids: impl IntoIterator<Item = S>) -> Self {
                let ids: Vec<String> = ids.into_iter().map(|s| s.as_ref().to_string()).collect();
                self.json_var("bill_ids", &ids)
            }

            /// The ticket (by its number) this message is about (`ticket.id`): a callback
            /// notice is dropped unsent once the ticket has its callback.
            pub fn about_ticket(self, ticket: &str) -> Self {
                self.var("ticket.id", ticket)
            }

            /// The value of variable `key` as last set, for tests.
            pub fn get(&self, key: &str) -> Option<&str> {
                self.vars
                    .iter()
                    .rev()
                    .find(|f| f.key == key)
                    .map(|f| f.value.as_str())
            }
        }
    };
}

template_vars!(Message);
template_vars!(StaffNotice);

impl Message {
    fn new(to: Recipient, template: &str, step: &str) -> Self {
        Message {
            to,
            template: template.to_string(),
            vars: Vec::new(),
            channel: Channel::Preferred,
            category: Category::Transactional,
            step: step.to_string(),
        }
    }

    /// A message to every owner of a household, on their preferred channel, transactional.
    pub fn to_household(household: &str, template: &str, step: &str) -> Self {
        Message::new(Recipient::Household(household.to_string()), template, step)
    }

    /// A message to one owner, on their preferred channel, transactional.
    pub fn to_owner(owner: &str, template: &str, step: &str) -> Self {
        Message::new(Recipient::Owner(owner.to_string()), template, step)
    }

    pub fn category(mut self, category: Category) -> Self {
        self.category = category;
        self
    }

    pub fn channel(mut self, channel: Channel) -> Self {
        self.channel = channel;
        self
    }
}

impl StaffNotice {
    pub fn new(role: Role, template: &str, step: &str) -> Self {
        StaffNotice {
            role,
            template: template.to_string(),
            vars: Vec::new(),
            step: step.to_string(),
        }
    }
}

/// Milliseconds in a day, for timer arithmetic on [`Timestamp`]s.
pub const DAY_MS: Timestamp = 86_400_000;

/// Exports a [`Plugin`] implementation as the component's hooks. The plugin's only glue:
///
/// ```ignore
/// #[derive(Default)]
/// struct MyRule;
/// impl wuye_plugin_sdk::Plugin for MyRule {}
/// wuye_plugin_sdk::export_plugin!(MyRule);
/// ```
///
/// Natively (for `cargo test`) it expands to nothing.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            struct Glue;
            impl $crate::__private::Guest for Glue {
                fn on_schedule(
                    run: $crate::Run,
                ) -> ::core::result::Result<(), $crate::PluginError> {
                    $crate::__private::on_schedule::<$plugin>(run)
                }
                fn on_timer(
                    run: $crate::Run,
                    payload: ::std::string::String,
                ) -> ::core::result::Result<(), $crate::PluginError> {
                    $crate::__private::on_timer::<$plugin>(run, payload)
                }
                fn on_event(
                    run: $crate::Run,
                    event: $crate::EventIn,
                ) -> ::core::result::Result<(), $crate::PluginError> {
                    $crate::__private::on_event::<$plugin>(run, event)
                }
            }
            $crate::__private::bindings::__export_wuye_plugin_world!(
                Glue with_types_in $crate::__private::bindings
            );
        };
    };
}

/// Declares what the plugin needs of the workflows that run it: its `params` (key, type,
/// required, description) and the templates it sends with the variables each may use. `wuyed
/// check` reads the declaration from the `.wasm` and validates every community's `params` and
/// templates against it, naming file, key and line, so a misspelt `{{ totl }}` or a
/// `sla_hours_repair = "24"` fails the check instead of every run. A plugin that declares nothing
/// still loads and runs; `check` then says it cannot validate its params and templates.
///
/// The argument is TOML text, usually the plugin's `manifest.toml` (see the SDK's README for its
/// keys):
///
/// ```ignore
/// wuye_plugin_sdk::manifest!(include_str!("../manifest.toml"));
/// ```
///
/// It becomes the custom section `wuye:manifest` of the component's core module (the way Zed's
/// extension API stamps its version into an extension), so the WIT world stays as it is and the
/// host reads it without running the plugin. Natively it expands to nothing.
#[macro_export]
macro_rules! manifest {
    ($toml:expr) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            const TEXT: &str = $toml;
            // `used`: nothing references the bytes, and the linker must keep them anyway.
            #[unsafe(link_section = "wuye:manifest")]
            #[used]
            static MANIFEST: [u8; TEXT.len()] =
                $crate::__private::manifest_bytes::<{ TEXT.len() }>(TEXT);
        };
    };
}

/// The custom section [`manifest!`] writes; the daemon reads the same name.
pub const MANIFEST_SECTION: &str = "wuye:manifest";

/// Used by [`export_plugin!`] and [`manifest!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings;
    pub use crate::bindings::exports::wuye::plugin::hooks::Guest;

    use crate::host::WasmHost;
    use crate::{EventIn, Plugin, PluginError, Run};

    /// `text` as the byte array a link section holds (a `&str` cannot be one), at compile time.
    pub const fn manifest_bytes<const N: usize>(text: &str) -> [u8; N] {
        let bytes = text.as_bytes();
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = bytes[i];
            i += 1;
        }
        out
    }

    pub fn on_schedule<P: Plugin>(run: Run) -> Result<(), PluginError> {
        crate::host::install_logger();
        P::default().on_schedule(&run, &mut WasmHost::new())
    }

    pub fn on_timer<P: Plugin>(run: Run, payload: String) -> Result<(), PluginError> {
        crate::host::install_logger();
        P::default().on_timer(&run, &payload, &mut WasmHost::new())
    }

    pub fn on_event<P: Plugin>(run: Run, event: EventIn) -> Result<(), PluginError> {
        crate::host::install_logger();
        P::default().on_event(&run, &event, &mut WasmHost::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn household(building: &str, unit: &str) -> Household {
        Household {
            id: "3-2-301".into(),
            building: building.into(),
            unit: unit.into(),
            owners: Vec::new(),
        }
    }

    #[test]
    fn a_household_is_labelled_in_chinese_and_in_english() {
        let h = household("3", "2单元301");
        assert_eq!(h.label(), "3栋2单元301");
        assert_eq!(h.label_en(), "Building 3, Unit 2, Room 301");
        let h = household("3", "2单元单元301");
        assert_eq!(h.label_en(), "Building 3, Unit 2, Room 301");
        let h = household("3", "1201");
        assert_eq!(h.label(), "3栋1201");
        assert_eq!(h.label_en(), "Building 3, Room 1201");
        // Missing parts: the id, in either language, rather than a half address.
        let h = household("", "1201");
        assert_eq!(
            (h.label(), h.label_en()),
            ("3-2-301".into(), "3-2-301".into())
        );
    }
}
