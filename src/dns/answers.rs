//! What a failover name answers, as the snapshot and the fast path both see it: the lowest
//! layer of `dns`, so that `snapshot` (which builds the fast path's tables) and `fast`
//! (which reads these) depend on it and not on each other.

use std::net::IpAddr;

use hickory_proto::rr::{RData, Record};

/// What one failover record answers right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The first round of checks has not completed: SERVFAIL, so clients retry.
    Pending,
    /// A and AAAA answers, in this order.
    Addresses(Vec<IpAddr>),
    /// NOERROR with no records and the SOA in the authority section.
    Nodata,
    Servfail,
    /// A `by_site` record: `sites[i]` for a client of site `i` (its fallback already
    /// followed), `all` for a client of no site.
    BySite {
        all: Box<Published>,
        sites: Vec<Published>,
    },
}

impl Published {
    /// The answer for a client of `site` (`None`: of no site).
    pub fn for_site(&self, site: Option<usize>) -> &Published {
        match (self, site) {
            (Published::BySite { sites, .. }, Some(site)) => sites.get(site).unwrap_or(self),
            (Published::BySite { all, .. }, None) => all,
            _ => self,
        }
        .plain()
    }

    /// Without the sites: what a client of no site gets.
    pub fn plain(&self) -> &Published {
        match self {
            Published::BySite { all, .. } => all.plain(),
            other => other,
        }
    }

    /// Whether the answer depends on the client's site.
    pub fn by_site(&self) -> bool {
        matches!(self, Published::BySite { .. })
    }
}

/// The answer data for one failover name.
#[derive(Debug)]
pub(crate) struct FailoverEntry {
    pub zone: usize,
    pub ttl: u32,
    pub answer: Published,
}

/// The TTL of an SOA in a negative answer (RFC 2308): min(SOA TTL, minimum).
pub(super) fn negative_ttl(soa: &Record) -> u32 {
    match &soa.data {
        RData::SOA(s) => soa.ttl.min(s.minimum),
        _ => soa.ttl,
    }
}
