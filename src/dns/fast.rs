//! The UDP fast path: answers prepared in wire format, so a query only has its ID,
//! question and EDNS patched in. The zones' static names are prepared once per set of
//! zones and shared by every snapshot ([`StaticTable`]); failover names, and each zone's
//! SOA for negative answers, when a snapshot is built.
//!
//! Covered: plain queries (QUERY, one question, class IN, no records but an optional OPT
//! of version 0, whose client subnet option, if any, comes back with its scope) for
//! failover names (a `by_site` one answered per client site: prepared per site); for A, AAAA and TXT records and NODATA of static names
//! in zones without delegations, wildcards, DNAMEs or CNAMEs at the name; NXDOMAIN in such
//! zones; REFUSED outside every zone. Anything else, and any answer that would not fit the
//! client's UDP size, returns [`Verdict::Fallback`] and goes to hickory. The differential
//! tests (`fast_tests.rs`) hold both paths to answers with the same meaning. `fast/build.rs`
//! prepares the table when a snapshot is built.

use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::wire::{
    CLASS_IN, MAX_NAME, OPTION_ECS, RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL, TYPE_OPT,
};

mod build;
mod parse;

use parse::parse;

use crate::api::deadline::Deadline;

/// What the fast path did with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `out` holds the response.
    Answered,
    /// Not covered here: hand the query to hickory.
    Fallback,
    /// Not a query at all (a response, or shorter than a header): no answer, as hickory.
    Drop,
}

/// A prepared response part: everything after the question, minus a trailing OPT.
#[derive(Debug, Clone)]
struct Prepared {
    authoritative: bool,
    rcode: u8,
    answers: u16,
    authorities: u16,
    body: Vec<u8>,
    /// What the end of the question name must be, byte for byte (letter case included):
    /// owner names here point into the question, where hickory writes the zone's own case,
    /// so a question in another case goes to hickory. Empty: any case.
    case: Vec<u8>,
    /// A guarded failover name's answer (cluster mode): given only before this deadline,
    /// SERVFAIL after it.
    guard: Option<Arc<Deadline>>,
}

/// A zone's SOA as the negative answers write it.
#[derive(Debug)]
struct Soa {
    /// The apex as the zone file writes it (wire form, original case).
    apex: Vec<u8>,
    ttl: u32,
    negative_ttl: u32,
    mname: Vec<u8>,
    rname: Vec<u8>,
    /// Serial, refresh, retry, expire, minimum.
    numbers: [u8; 20],
}

/// Per zone, what its negative answers need besides the SOA.
#[derive(Debug)]
struct ZoneStatic {
    /// Lower-case wire form of the apex.
    apex: Vec<u8>,
    /// The zone has delegations, wildcards or DNAMEs: its NXDOMAIN goes to hickory.
    complex: bool,
}

/// The zones' static names prepared once per set of zones and shared by every snapshot
/// built from them (a zone of 50,000 names is not prepared again at each failover).
/// Nothing here depends on a serial: negative answers take the SOA of their snapshot.
#[derive(Debug, Default)]
pub(crate) struct StaticTable {
    /// Key: lower-case wire name followed by the type (big endian). `None`: the name has
    /// records of that type that hickory answers (MX and its additional records, ...).
    exact: FxHashMap<Vec<u8>, Option<Prepared>>,
    /// Names that exist (empty non-terminals included), answered NODATA for a type not in
    /// `exact`: the index of their zone. Key: wire name.
    names: FxHashMap<Vec<u8>, usize>,
    /// Names that must go to hickory whatever the type (CNAMEs, names in complex zones).
    fallback: FxHashSet<Vec<u8>>,
    zones: Vec<ZoneStatic>,
}

#[derive(Debug, Default)]
pub struct FastTable {
    /// The static names, shared with the other snapshots of the same zones.
    statics: std::sync::Arc<StaticTable>,
    /// Failover names (and the empty non-terminals above them), as `StaticTable::exact`;
    /// they replace whatever the zones have there.
    exact: FxHashMap<Vec<u8>, Option<Prepared>>,
    /// Failover names' answer for other types: NODATA, or SERVFAIL for every type.
    nodata: FxHashMap<Vec<u8>, Prepared>,
    /// Per zone (as `statics.zones`), its SOA with this snapshot's serial.
    soas: Vec<Option<Soa>>,
    /// `by_site` names (lower-case wire form): their answers per client site, the last
    /// for clients of no site.
    sited: FxHashMap<Vec<u8>, Vec<SiteAnswers>>,
    sites: std::sync::Arc<Vec<crate::config::Site>>,
    /// `[resolver] allow`: see `forwards`.
    forwarded: Option<std::sync::Arc<crate::dns::forward::Forwarder>>,
}

/// One `by_site` name's prepared answers for the clients of one site.
#[derive(Debug, Default)]
struct SiteAnswers {
    /// Key: lower-case wire name followed by the type, as in `FastTable::exact`.
    exact: FxHashMap<Vec<u8>, Option<Prepared>>,
    /// The answer for other types (NODATA, or SERVFAIL for every type).
    nodata: Option<Prepared>,
}

impl FastTable {
    /// Answers `query` into `out` if the fast path covers it and the answer fits in
    /// `max_udp` bytes (and the client's EDNS size, or 512 bytes without EDNS).
    /// `src`: the client's address (its site, for a `by_site` name, unless the query
    /// carries a client subnet).
    pub fn answer(&self, query: &[u8], out: &mut Vec<u8>, max_udp: u16, src: IpAddr) -> Verdict {
        if query.len() < 12 || query[2] & 0x80 != 0 {
            return Verdict::Drop;
        }
        let Some(q) = parse(query) else {
            return Verdict::Fallback;
        };
        // ANY, AXFR and IXFR: not here.
        if matches!(q.qtype, 251 | 252 | 255) {
            return Verdict::Fallback;
        }
        let qname = &query[12..12 + q.name_len];
        let mut key = [0u8; MAX_NAME + 2];
        for (k, b) in key.iter_mut().zip(qname) {
            *k = b.to_ascii_lowercase();
        }
        // Labels' length bytes are < 64, so lowering them changes nothing.
        key[q.name_len..q.name_len + 2].copy_from_slice(&q.qtype.to_be_bytes());
        let name = &key[..q.name_len];
        let built;
        // RA: set on the answers of `[resolver]`.
        let mut recursion = 0;
        // The ECS scope (RFC 7871): the site network's prefix for a by_site answer, 0 for
        // an answer that is the same for everyone.
        let mut scope = 0;
        let prepared = if let Some(variants) = self.sited.get(name) {
            let ecs = q.edns.and_then(|e| e.ecs);
            let client = ecs.map_or(src, |e| e.address);
            let site = crate::config::site_of(&self.sites, client);
            scope = match (site, ecs) {
                (Some((_, prefix)), _) => prefix,
                (None, Some(ecs)) => ecs.source,
                (None, None) => 0,
            };
            let variant = site.map_or(variants.len() - 1, |(site, _)| site);
            let Some(answers) = variants.get(variant) else {
                return Verdict::Fallback;
            };
            match answers.exact.get(&key[..q.name_len + 2]) {
                Some(Some(p)) => p,
                Some(None) => return Verdict::Fallback,
                None => match &answers.nodata {
                    Some(p) => p,
                    None => return Verdict::Fallback,
                },
            }
        } else if let Some(answer) = self.exact.get(&key[..q.name_len + 2]) {
            match answer {
                Some(p) => p,
                None => return Verdict::Fallback,
            }
        } else if let Some(p) = self.nodata.get(name) {
            p
        } else {
            let statics = &*self.statics;
            match statics.exact.get(&key[..q.name_len + 2]) {
                Some(None) => return Verdict::Fallback,
                Some(Some(p)) => p,
                None if statics.fallback.contains(name) => return Verdict::Fallback,
                None => {
                    // NODATA for a name that exists, NXDOMAIN below an apex, REFUSED
                    // outside every zone.
                    let negative = match statics.names.get(name) {
                        Some(&zone) => Some((zone, 0)),
                        None => match statics.zone_of(name) {
                            None => None,
                            Some(zone) if statics.zones[zone].complex => {
                                return Verdict::Fallback;
                            }
                            Some(zone) => Some((zone, RCODE_NXDOMAIN)),
                        },
                    };
                    let forwarded = negative.is_none() && self.forwards(query, src);
                    built = match negative {
                        // [resolver]: from its cache, or through hickory.
                        None if forwarded => {
                            recursion = 0x80;
                            let dnssec_ok = q.edns.is_some_and(|e| e.dnssec_ok);
                            match self.forwarded_answer(&key[..q.name_len + 2], dnssec_ok) {
                                Some(answer) => answer,
                                None => return Verdict::Fallback,
                            }
                        }
                        None => Prepared {
                            authoritative: false,
                            rcode: RCODE_REFUSED,
                            answers: 0,
                            authorities: 0,
                            body: Vec::new(),
                            case: Vec::new(),
                            guard: None,
                        },
                        Some((zone, rcode)) => match &self.soas[zone] {
                            Some(soa) => soa.negative(q.name_len, soa.ttl, rcode),
                            None => return Verdict::Fallback,
                        },
                    };
                    &built
                }
            }
        };
        // Checked at the query's own time, so a process that wakes from a pause refuses
        // before any timer of its has run.
        let refusal;
        let prepared = if prepared.guard.as_ref().is_some_and(|g| g.is_past()) {
            refusal = Prepared::refusal();
            &refusal
        } else {
            prepared
        };
        if !qname.ends_with(&prepared.case) {
            return Verdict::Fallback;
        }
        let limit = q
            .edns
            .map_or(512, |e| e.payload.max(512))
            .min(max_udp.max(512));
        let ecs = q.edns.and_then(|e| e.ecs);
        let ecs_len = ecs.map_or(0, |e| 4 + e.len);
        let size = 12
            + q.name_len
            + 4
            + prepared.body.len()
            + if q.edns.is_some() { 11 + ecs_len } else { 0 };
        if usize::from(limit) < size {
            return Verdict::Fallback;
        }
        out.clear();
        out.extend_from_slice(&query[0..2]);
        // QR, the request's opcode (0) and RD; AA as prepared; RA on [resolver] answers;
        // AD clear; CD copied.
        let flags_hi = 0x80 | (query[2] & 0x01) | if prepared.authoritative { 0x04 } else { 0 };
        let flags_lo = recursion | (query[3] & 0x10) | prepared.rcode;
        out.extend_from_slice(&[flags_hi, flags_lo, 0, 1]);
        out.extend_from_slice(&prepared.answers.to_be_bytes());
        out.extend_from_slice(&prepared.authorities.to_be_bytes());
        out.extend_from_slice(&u16::from(q.edns.is_some()).to_be_bytes());
        out.extend_from_slice(&query[12..12 + q.name_len + 4]);
        out.extend_from_slice(&prepared.body);
        if let Some(edns) = q.edns {
            out.push(0);
            out.extend_from_slice(&TYPE_OPT.to_be_bytes());
            out.extend_from_slice(&edns.payload.max(512).to_be_bytes());
            // Extended rcode 0, version 0, the DO bit copied (RFC 3225); the client
            // subnet option back, with its scope (RFC 7871), and no other.
            out.extend_from_slice(&[0, 0, edns.dnssec_ok as u8 * 0x80, 0]);
            out.extend_from_slice(&(ecs_len as u16).to_be_bytes());
            if let Some(ecs) = ecs {
                let data = &query[ecs.offset..ecs.offset + ecs.len];
                out.extend_from_slice(&OPTION_ECS.to_be_bytes());
                out.extend_from_slice(&(ecs.len as u16).to_be_bytes());
                out.extend_from_slice(&data[..3]);
                out.push(scope);
                out.extend_from_slice(&data[4..]);
            }
        }
        Verdict::Answered
    }
}

impl FastTable {
    /// Both tables were built over the same prepared static names.
    #[cfg(test)]
    pub(crate) fn shares_statics_with(&self, other: &FastTable) -> bool {
        std::sync::Arc::ptr_eq(&self.statics, &other.statics)
    }
}

impl StaticTable {
    /// The zone holding `name` (lower-case wire form): the longest apex that is a suffix
    /// on a label boundary.
    fn zone_of(&self, name: &[u8]) -> Option<usize> {
        let mut offset = 0;
        loop {
            let suffix = &name[offset..];
            if let Some(zone) = self.zones.iter().position(|z| z.apex == suffix) {
                return Some(zone);
            }
            let len = usize::from(*suffix.first()?);
            if len == 0 {
                return None;
            }
            offset += 1 + len;
        }
    }
}
