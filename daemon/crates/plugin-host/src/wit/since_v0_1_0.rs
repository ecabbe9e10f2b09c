//! Host binding for `wuye:plugin@0.1.0` (the first release). Frozen: plugins built against it
//! must keep loading and behaving the same, whatever later versions add.

wasmtime::component::bindgen!({
    path: "../../../plugin-sdk/wit/since_v0.1.0",
    world: "plugin",
    imports: { default: trappable },
    with: { "wuye:plugin/host.community": crate::wit::CommunityHandle },
});

use wuye_core::domain::event_kind as ev;

/// What 0.1.0 plugins may be handed (wit/compat.rs): the values the host had when 0.2.0 was
/// released beside it. Frozen.
pub(crate) const VOCABULARY: super::compat::Vocabulary = super::compat::Vocabulary::Frozen {
    // The two kinds `record ticket` documents. Desk tasks (`task`, added later) are omitted, not
    // mapped: a repair or a complaint owes the owner a callback and a task does not, so either
    // would send this world's callback plugins after calls nobody owes.
    ticket_kinds: &["repair", "complaint"],
    // What the desk and the API wrote then. Later kinds (payment plans, community events,
    // imports) are not delivered: a plugin may match the kinds its world had and trap on the rest.
    event_kinds: &[
        ev::TICKET_OPENED,
        ev::TICKET_CLOSED,
        ev::TICKET_REOPENED,
        ev::CALLBACK_RECORDED,
        ev::PAYMENT_POSTED,
        ev::PAYMENT_REVERSED,
        ev::SURVEY_ANSWERED,
    ],
};

super::host_impl!(super::WitVersion::V0_1_0, {});
