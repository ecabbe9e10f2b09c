//! legacy-v010: built against the frozen `wuye:plugin@0.1.0` world, as a plugin compiled before
//! 0.2.0 existed would be. The host must keep loading and running it unchanged (tests in
//! `daemon/src/plugin/tests.rs`). It counts households and records the figure in kv and a staff
//! notice, which shows reads, kv and intents all still work through the 0.1.0 adapter.

// Raw wit-bindgen output and its export macro use `unsafe` and `export_name`; the SDK hides this
// from ordinary plugins, this one deliberately does without the SDK.
#![allow(unsafe_code)]

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../plugin-sdk/wit/since_v0.1.0",
        world: "plugin",
    });
}

use bindings::exports::wuye::plugin::hooks::Guest;
use bindings::wuye::plugin::host;
use bindings::wuye::plugin::types::{EventIn, Field, PluginError, Role, Run, StaffNotice};

struct Legacy;

impl Guest for Legacy {
    fn on_schedule(run: Run) -> Result<(), PluginError> {
        let community = host::current_community();
        let n = community.households().len();
        host::kv_put("households", &n.to_string());
        host::log(
            bindings::wuye::plugin::types::Level::Info,
            "legacy plugin ran",
            &[Field {
                key: "community".into(),
                value: run.community.clone(),
            }],
        );
        host::notify_staff(&StaffNotice {
            role: Role::Supervisor,
            template: "household-count".into(),
            vars: vec![Field {
                key: "households".into(),
                value: n.to_string(),
            }],
            step: "count".into(),
        });
        Ok(())
    }

    fn on_timer(_run: Run, _payload: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn on_event(_run: Run, _event: EventIn) -> Result<(), PluginError> {
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Legacy with_types_in bindings);
