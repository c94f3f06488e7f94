//! What a failover name answers, as the snapshot and the fast path both see it: the lowest
//! layer of `dns`, so that `snapshot` (which builds the fast path's tables) and `fast`
//! (which reads these) depend on it and not on each other.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::{RData, Record};

use crate::api::deadline::Deadline;
pub use crate::engine::{Answer, Sited};

/// What one failover record answers right now: addresses (A and AAAA, in this order);
/// NOERROR with no records and the SOA in the authority section (`Nodata`); SERVFAIL
/// (`Servfail`, and `Pending` until the first round of checks, so that clients retry); and
/// for a `by_site` record the same per site.
pub type Published = Sited<IpAddr>;

/// The answer data for one failover name.
#[derive(Debug)]
pub(crate) struct FailoverEntry {
    pub zone: usize,
    pub ttl: u32,
    pub answer: Published,
    /// A writer record in cluster mode: answered only before this deadline, SERVFAIL
    /// after it (the member cannot know its view is current).
    pub guard: Option<Arc<Deadline>>,
}

impl FailoverEntry {
    /// The answer may be given now: the name is not guarded, or its deadline is ahead.
    pub fn current(&self) -> bool {
        self.guard.as_ref().is_none_or(|g| !g.is_past())
    }
}

/// The TTL of an SOA in a negative answer (RFC 2308): min(SOA TTL, minimum).
pub(super) fn negative_ttl(soa: &Record) -> u32 {
    match &soa.data {
        RData::SOA(s) => soa.ttl.min(s.minimum),
        _ => soa.ttl,
    }
}
