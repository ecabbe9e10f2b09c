//! Host binding for `wuye:plugin@0.2.0`, which adds `community.is-workday` (business calendars
//! with 调休 make-up days are easy to get wrong in every plugin, so the host answers it).

wasmtime::component::bindgen!({
    path: "../../../plugin-sdk/wit/since_v0.2.0",
    world: "plugin",
    imports: { default: trappable },
    with: { "wuye:plugin/host.community": crate::wit::CommunityHandle },
});

use wuye_core::domain::event_kind as ev;

/// What 0.2.0 plugins may be handed (wit/compat.rs): the values the host had when 0.3.0 was
/// released. Frozen.
pub(crate) const VOCABULARY: super::compat::Vocabulary = super::compat::Vocabulary::Frozen {
    // As in 0.1.0: desk tasks came after 0.3.0 and have no faithful equivalent here (a repair or
    // a complaint owes a callback, a task does not), so they are omitted.
    ticket_kinds: &["repair", "complaint"],
    // 0.1.0's kinds and the payment-plan and community-event kinds added while 0.2.0 was the
    // newest world (its plugins may subscribe to them). Import events came after 0.3.0: withheld.
    event_kinds: &[
        ev::TICKET_OPENED,
        ev::TICKET_CLOSED,
        ev::TICKET_REOPENED,
        ev::CALLBACK_RECORDED,
        ev::PAYMENT_POSTED,
        ev::PAYMENT_REVERSED,
        ev::SURVEY_ANSWERED,
        ev::COMMUNITY_EVENT_PLANNED,
        ev::PAYMENT_PLAN_AGREED,
        ev::PAYMENT_PLAN_ENDED,
    ],
};

super::host_impl!(super::WitVersion::V0_2_0, {
    fn is_workday(
        &mut self,
        _: Resource<CommunityHandle>,
        date: String,
    ) -> wasmtime::Result<Option<bool>> {
        Ok(super::is_workday(self.ctx.data.as_ref(), &date))
    }
});
