//! Host binding for `wuye:plugin@0.1.0` (the first release). Frozen: plugins built against it
//! must keep loading and behaving the same, whatever later versions add.

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit/since_v0.1.0",
    world: "plugin",
    imports: { default: trappable },
    with: { "wuye:plugin/host.community": crate::plugin::wit::CommunityHandle },
});

super::host_impl!({});
