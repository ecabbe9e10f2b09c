//! heartbeat: the smallest useful plugin, and the placeholder workflow of the demo config.
//!
//! Each run logs who it is and counts itself in the plugin's key-value store (`beats`), so an
//! operator can see the scheduler, the sandbox and the store working together before any real
//! workflow is configured. With `notify = "manager"` in its params it also tells that role every
//! `every`-th beat, which exercises the intent path end to end.

use wuye_plugin_sdk::prelude::*;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Role to tell every `every`-th beat (`customer_service`, `supervisor`, `manager`).
    notify: Option<String>,
    /// Defaults to 1: every beat.
    every: Option<u64>,
}

#[derive(Default)]
pub struct Heartbeat;

impl Heartbeat {
    fn beat(&self, run: &Run, why: &str, host: &mut dyn Host) -> Result<(), PluginError> {
        let params: Params = run.params()?;
        let beats = host
            .kv_get("beats")
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| PluginError::BadData(format!("kv `beats` is not a number: {v:?}")))
            })
            .transpose()?
            .unwrap_or(0)
            + 1;
        host.kv_put("beats", &beats.to_string());
        let community = host.community_id();
        host.log(
            Level::Info,
            "heartbeat",
            &[
                ("community", &community),
                ("workflow", &run.workflow),
                ("trigger", why),
                ("beats", &beats.to_string()),
            ],
        );
        if let Some(role) = &params.notify {
            let role = match role.as_str() {
                "customer_service" => Role::CustomerService,
                "supervisor" => Role::Supervisor,
                "manager" => Role::Manager,
                other => {
                    return Err(PluginError::InvalidParams(format!(
                        "notify: unknown role {other:?} (customer_service, supervisor, manager)"
                    )));
                }
            };
            if beats % params.every.unwrap_or(1).max(1) == 0 {
                host.notify_staff(
                    StaffNotice::new(role, "heartbeat", &format!("beat-{beats}"))
                        .var("beats", beats),
                );
            }
        }
        Ok(())
    }
}

impl Plugin for Heartbeat {
    fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        self.beat(run, "schedule", host)
    }

    fn on_timer(
        &mut self,
        run: &Run,
        _payload: &str,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        self.beat(run, "timer", host)
    }

    fn on_event(
        &mut self,
        run: &Run,
        event: &EventIn,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        self.beat(run, &event.kind, host)
    }
}

export_plugin!(Heartbeat);
wuye_plugin_sdk::manifest!(include_str!("../manifest.toml"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_run_counts_one_more_beat_in_the_kv_store() {
        let mut host = MockHost::new("lakeside");
        let run = host.run("heartbeat", "{}");
        Heartbeat.on_schedule(&run, &mut host).unwrap();
        Heartbeat.on_schedule(&run, &mut host).unwrap();
        assert_eq!(host.kv.get("beats").map(String::as_str), Some("2"));
        assert_eq!(host.logs.len(), 2);
        assert!(host.logs[1].fields.contains(&("beats".into(), "2".into())));
        assert!(host.staff_notices.is_empty());
    }

    #[test]
    fn tells_the_configured_role_every_nth_beat() {
        let mut host = MockHost::new("lakeside");
        let run = host.run("heartbeat", r#"{"notify": "manager", "every": 2}"#);
        for _ in 0..4 {
            Heartbeat.on_schedule(&run, &mut host).unwrap();
        }
        let steps: Vec<_> = host.staff_notices.iter().map(|n| n.step.as_str()).collect();
        assert_eq!(steps, ["beat-2", "beat-4"]);
        assert_eq!(host.staff_notices[0].role, Role::Manager);
    }

    #[test]
    fn an_unknown_role_is_a_params_error_naming_the_key() {
        let mut host = MockHost::new("lakeside");
        let run = host.run("heartbeat", r#"{"notify": "janitor"}"#);
        let err = Heartbeat.on_schedule(&run, &mut host).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidParams(m) if m.starts_with("notify: unknown role \"janitor\"")),
            "{err:?}"
        );
    }

    #[test]
    fn a_corrupt_counter_is_reported_not_reset() {
        let mut host = MockHost::new("lakeside");
        host.kv.insert("beats".into(), "many".into());
        let run = host.run("heartbeat", "{}");
        assert!(matches!(
            Heartbeat.on_schedule(&run, &mut host),
            Err(PluginError::BadData(_))
        ));
        assert_eq!(host.kv.get("beats").map(String::as_str), Some("many"));
    }
}
