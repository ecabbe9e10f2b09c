//! Host binding for `wuye:plugin@0.2.0`, which adds `community.is-workday` (business calendars
//! with 调休 make-up days are easy to get wrong in every plugin, so the host answers it).

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit/since_v0.2.0",
    world: "plugin",
    imports: { default: trappable },
    with: { "wuye:plugin/host.community": crate::plugin::wit::CommunityHandle },
});

super::host_impl!({
    fn is_workday(
        &mut self,
        _: Resource<CommunityHandle>,
        date: String,
    ) -> wasmtime::Result<Option<bool>> {
        Ok(super::is_workday(self.ctx.data.as_ref(), &date))
    }
});
