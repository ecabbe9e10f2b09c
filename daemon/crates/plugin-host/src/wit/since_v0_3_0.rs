//! Host binding for `wuye:plugin@0.3.0`, which adds narrower reads: a daily run of a large
//! community should pay for the bills, tickets and households it acts on, not for all of them
//! (a year's simulation spent most of its time lowering next year's bills and open desk tasks
//! into plugins that skipped them).

wasmtime::component::bindgen!({
    path: "../../../plugin-sdk/wit/since_v0.3.0",
    world: "plugin",
    imports: { default: trappable },
    with: { "wuye:plugin/host.community": crate::wit::CommunityHandle },
});

/// The newest world: every ticket and event kind, as the host adds them (desk tasks and import
/// events reached its plugins this way; they handle both). When the next world is released,
/// this becomes the frozen list of that day (wit/compat.rs).
pub(crate) const VOCABULARY: super::compat::Vocabulary = super::compat::Vocabulary::Newest;

super::host_impl!(super::WitVersion::V0_3_0, {
    fn is_workday(
        &mut self,
        _: Resource<CommunityHandle>,
        date: String,
    ) -> wasmtime::Result<Option<bool>> {
        Ok(super::is_workday(self.ctx.data.as_ref(), &date))
    }

    fn unpaid_bills_due_by(
        &mut self,
        _: Resource<CommunityHandle>,
        date: String,
    ) -> wasmtime::Result<Vec<t::Bill>> {
        let Ok(date) = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d") else {
            return Ok(Vec::new());
        };
        let r = self.ctx.data.unpaid_bills_due_by(date);
        r.map(|v| v.into_iter().map(bill).collect())
            .map_err(|e| self.ctx.host_err(e))
    }

    fn tickets_awaiting_callback(
        &mut self,
        _: Resource<CommunityHandle>,
        since: t::Timestamp,
    ) -> wasmtime::Result<Vec<t::Ticket>> {
        let r = self.ctx.data.tickets_awaiting_callback(from_ms(since));
        r.map(known_tickets).map_err(|e| self.ctx.host_err(e))
    }

    fn households_by_id(
        &mut self,
        _: Resource<CommunityHandle>,
        ids: Vec<String>,
    ) -> wasmtime::Result<Vec<t::Household>> {
        let r = self.ctx.data.households_by_id(&ids);
        r.map(|v| v.into_iter().map(household).collect())
            .map_err(|e| self.ctx.host_err(e))
    }
});
