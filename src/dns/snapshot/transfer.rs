//! What a snapshot carries for zone transfers.

use std::sync::Arc;

use hickory_proto::rr::LowerName;

use crate::api::deadline::Deadline;

/// Zone transfers as of one snapshot.
pub(crate) struct Transfer {
    pub policy: Arc<crate::dns::xfr::Policy>,
    pub zones: Vec<crate::dns::journal::ZoneContents>,
    /// False until every failover name has an answer (the first round of checks): such a
    /// snapshot is neither transferred nor announced, so a restart never hands secondaries
    /// a zone without its failover names.
    pub complete: bool,
    /// Zones (by index) with guarded records, transferred only before `guard`.
    pub(super) guard: Option<Arc<Deadline>>,
    pub(super) guarded_zones: Vec<usize>,
}

impl Transfer {
    pub fn zone(&self, origin: &LowerName) -> Option<&crate::dns::journal::ZoneContents> {
        self.zones.iter().find(|z| &z.origin == origin)
    }

    /// Why the zone may not be transferred now: before the first round of checks (a
    /// restart never hands secondaries a zone without its failover names), or past the
    /// deadline of its guarded records (a secondary would serve a writer this member
    /// cannot vouch for).
    pub fn unserved(&self, origin: &LowerName) -> Option<&'static str> {
        let guarded = (self.zones.iter().position(|z| &z.origin == origin))
            .is_some_and(|zone| self.guarded_zones.contains(&zone));
        if !self.complete {
            Some("the first round of checks has not completed")
        } else if guarded && self.guard.as_ref().is_some_and(|g| g.is_past()) {
            Some("this member cannot vouch for the zone's writer records (cut off from etcd)")
        } else {
            None
        }
    }
}
