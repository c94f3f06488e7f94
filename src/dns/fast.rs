//! The UDP fast path: answers prepared in wire format when a snapshot is built, so a
//! query only has its ID, question and EDNS patched in.
//!
//! Covered: plain queries (QUERY, one question, class IN, no records but an optional OPT
//! of version 0) for failover names; for A, AAAA and TXT records and NODATA of static names
//! in zones without delegations, wildcards, DNAMEs or CNAMEs at the name; NXDOMAIN in such
//! zones; REFUSED outside every zone. Anything else, and any answer that would not fit the
//! client's UDP size, returns [`Verdict::Fallback`] and goes to hickory. The differential
//! tests (`fast_tests.rs`) hold both paths to answers with the same meaning.

use std::collections::HashMap;

use rustc_hash::{FxHashMap, FxHashSet};
use std::net::IpAddr;

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::snapshot::{FailoverEntry, Published, negative_ttl};
use super::zones::StaticZone;

const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_REFUSED: u8 = 5;
/// Longest name on the wire.
const MAX_NAME: usize = 255;

/// What the fast path did with a query.
#[derive(Debug, PartialEq, Eq)]
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
}

/// Per zone, what an NXDOMAIN needs: the SOA record after its owner name.
#[derive(Debug)]
struct ZoneNegative {
    /// Lower-case wire form of the apex.
    apex: Vec<u8>,
    /// `None`: the zone has delegations, wildcards or DNAMEs; NXDOMAIN goes to hickory.
    soa_tail: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct FastTable {
    /// Key: lower-case wire name followed by the type (big endian). `None`: the name has
    /// records of that type that hickory answers (MX and its additional records, ...).
    exact: FxHashMap<Vec<u8>, Option<Prepared>>,
    /// Names that exist, answered NODATA for a type not in `exact`. Key: wire name.
    nodata: FxHashMap<Vec<u8>, Prepared>,
    /// Names that must go to hickory whatever the type (CNAMEs, names in complex zones).
    fallback: FxHashSet<Vec<u8>>,
    zones: Vec<ZoneNegative>,
}

/// The wire form of a name, lower case.
fn wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// A resource record whose owner is a compression pointer to `owner_offset`.
fn record_at(owner_offset: usize, record: &Record, ttl: u32) -> Option<Vec<u8>> {
    let mut rdata = Vec::new();
    {
        // No name compression: the rdata is spliced into other messages.
        let mut encoder = BinEncoder::new(&mut rdata);
        encoder.set_name_encoding(NameEncoding::Uncompressed);
        record.data.emit(&mut encoder).ok()?;
    }
    let mut out = Vec::with_capacity(12 + rdata.len());
    out.extend_from_slice(&(0xC000 | owner_offset as u16).to_be_bytes());
    out.extend_from_slice(&u16::from(record.record_type()).to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
    Some(out)
}

/// The SOA record for a negative answer to a query for `qname_len` bytes of name in `zone`:
/// its owner points into the question at the apex's offset. Failover names use the RFC 2308
/// TTL, min(SOA TTL, minimum), as the handler does; static names the SOA's own TTL, as
/// hickory does.
fn negative(qname_len: usize, apex_len: usize, soa: &Record, ttl: u32) -> Option<Prepared> {
    let offset = 12 + qname_len - apex_len;
    Some(Prepared {
        authoritative: true,
        rcode: 0,
        answers: 0,
        authorities: 1,
        body: record_at(offset, soa, ttl)?,
    })
}

impl FastTable {
    /// Prepares the answers of one snapshot. `soas` holds each zone's SOA for negative
    /// answers, its serial already current.
    pub(crate) fn build(
        zones: &[StaticZone],
        soas: &[Record],
        failover: &HashMap<LowerName, FailoverEntry>,
    ) -> FastTable {
        let mut table = FastTable::default();
        for (zone, soa) in zones.iter().zip(soas) {
            let apex = wire(&zone.origin);
            let complex = zone.records.keys().any(|k| {
                let below_apex = k.name().num_labels() > zone.origin.num_labels();
                k.name().is_wildcard()
                    || k.record_type == RecordType::DNAME
                    || (k.record_type == RecordType::NS && below_apex)
            });
            table.zones.push(ZoneNegative {
                soa_tail: (!complex)
                    .then(|| record_at(0, soa, soa.ttl).map(|r| r[2..].to_vec()))
                    .flatten(),
                apex: apex.clone(),
            });
            let mut by_name: HashMap<Vec<u8>, Vec<(RecordType, Vec<&Record>)>> = HashMap::new();
            for (key, set) in &zone.records {
                let name = wire(&Name::from(key.name()));
                let records: Vec<&Record> = set.records_without_rrsigs().collect();
                by_name
                    .entry(name)
                    .or_default()
                    .push((key.record_type, records));
            }
            for (name, sets) in by_name {
                let has_cname = sets.iter().any(|(t, _)| *t == RecordType::CNAME);
                if complex || has_cname || name == apex {
                    // Referrals, wildcards, CNAME chains, the apex's SOA/NS: hickory's job.
                    table.fallback.insert(name);
                    continue;
                }
                for (rtype, records) in &sets {
                    let mut key = name.clone();
                    key.extend_from_slice(&u16::from(*rtype).to_be_bytes());
                    if !matches!(rtype, RecordType::A | RecordType::AAAA | RecordType::TXT) {
                        table.exact.insert(key, None);
                        continue;
                    }
                    let mut body = Vec::new();
                    for r in records {
                        match record_at(12, r, r.ttl) {
                            Some(bytes) => body.extend_from_slice(&bytes),
                            None => continue,
                        }
                    }
                    let prepared = Prepared {
                        authoritative: true,
                        rcode: 0,
                        answers: records.len() as u16,
                        authorities: 0,
                        body,
                    };
                    table.exact.insert(key, Some(prepared));
                }
                if let Some(p) = negative(name.len(), apex.len(), soa, soa.ttl) {
                    table.nodata.insert(name.clone(), p);
                }
                // The empty non-terminals between the name and the apex exist too.
                let mut ent = &name[..];
                while ent.len() > apex.len() {
                    ent = &ent[1 + usize::from(ent[0])..];
                    if ent.len() > apex.len()
                        && let Some(p) = negative(ent.len(), apex.len(), soa, soa.ttl)
                    {
                        table.nodata.entry(ent.to_vec()).or_insert(p);
                    }
                }
            }
        }
        for (name, entry) in failover {
            let name = wire(&Name::from(name));
            let apex_len = table.zones[entry.zone].apex.len();
            let soa = &soas[entry.zone];
            table.fallback.remove(&name);
            match &entry.answer {
                Published::Pending | Published::Servfail => {
                    let servfail = Prepared {
                        authoritative: true,
                        rcode: RCODE_SERVFAIL,
                        answers: 0,
                        authorities: 0,
                        body: Vec::new(),
                    };
                    // Every type gets SERVFAIL: store it as the name's "other types" answer.
                    table.nodata.insert(name, servfail);
                }
                Published::Nodata => {
                    if let Some(p) = negative(name.len(), apex_len, soa, negative_ttl(soa)) {
                        table.nodata.insert(name, p);
                    }
                }
                Published::Addresses(addresses) => {
                    for rtype in [RecordType::A, RecordType::AAAA] {
                        let records: Vec<Record> = addresses
                            .iter()
                            .filter_map(|a| match (a, rtype) {
                                (IpAddr::V4(v4), RecordType::A) => Some(RData::A((*v4).into())),
                                (IpAddr::V6(v6), RecordType::AAAA) => {
                                    Some(RData::AAAA((*v6).into()))
                                }
                                _ => None,
                            })
                            .map(|rdata| Record::from_rdata(Name::root(), entry.ttl, rdata))
                            .collect();
                        if records.is_empty() {
                            continue;
                        }
                        let body: Vec<u8> = records
                            .iter()
                            .filter_map(|r| record_at(12, r, entry.ttl))
                            .flatten()
                            .collect();
                        let mut key = name.clone();
                        key.extend_from_slice(&u16::from(rtype).to_be_bytes());
                        table.exact.insert(
                            key,
                            Some(Prepared {
                                authoritative: true,
                                rcode: 0,
                                answers: records.len() as u16,
                                authorities: 0,
                                body,
                            }),
                        );
                    }
                    if let Some(p) = negative(name.len(), apex_len, soa, negative_ttl(soa)) {
                        table.nodata.insert(name, p);
                    }
                }
            }
        }
        table
    }

    /// Answers `query` into `out` if the fast path covers it.
    pub fn answer(&self, query: &[u8], out: &mut Vec<u8>) -> Verdict {
        if query.len() < 12 || query[2] & 0x80 != 0 {
            return Verdict::Drop;
        }
        let Some(q) = parse(query) else {
            return Verdict::Fallback;
        };
        let qname = &query[12..12 + q.name_len];
        let mut key = [0u8; MAX_NAME + 2];
        for (k, b) in key.iter_mut().zip(qname) {
            *k = b.to_ascii_lowercase();
        }
        // Labels' length bytes are < 64, so lowering them changes nothing.
        key[q.name_len..q.name_len + 2].copy_from_slice(&q.qtype.to_be_bytes());
        let name = &key[..q.name_len];
        let refused;
        let nxdomain;
        // ANY, AXFR and IXFR, and names hickory must answer: not here.
        if matches!(q.qtype, 251 | 252 | 255) {
            return Verdict::Fallback;
        }
        let prepared = match self.exact.get(&key[..q.name_len + 2]) {
            Some(None) => return Verdict::Fallback,
            Some(Some(p)) => p,
            None if self.fallback.contains(name) => return Verdict::Fallback,
            None => match self.nodata.get(name) {
                Some(p) => p,
                None => match self.zone_of(name) {
                    None => {
                        refused = Prepared {
                            authoritative: false,
                            rcode: RCODE_REFUSED,
                            answers: 0,
                            authorities: 0,
                            body: Vec::new(),
                        };
                        &refused
                    }
                    Some(zone) => match &zone.soa_tail {
                        None => return Verdict::Fallback,
                        Some(tail) => {
                            let offset = 12 + q.name_len - zone.apex.len();
                            let mut body = (0xC000 | offset as u16).to_be_bytes().to_vec();
                            body.extend_from_slice(tail);
                            nxdomain = Prepared {
                                authoritative: true,
                                rcode: RCODE_NXDOMAIN,
                                answers: 0,
                                authorities: 1,
                                body,
                            };
                            &nxdomain
                        }
                    },
                },
            },
        };
        let limit = q.edns_payload.map_or(512, |p| usize::from(p.max(512)));
        let size = 12
            + q.name_len
            + 4
            + prepared.body.len()
            + if q.edns_payload.is_some() { 11 } else { 0 };
        if size > limit {
            return Verdict::Fallback;
        }
        out.clear();
        out.extend_from_slice(&query[0..2]);
        // QR, the request's opcode (0) and RD; AA as prepared; RA, AD clear; CD copied.
        let flags_hi = 0x80 | (query[2] & 0x01) | if prepared.authoritative { 0x04 } else { 0 };
        let flags_lo = (query[3] & 0x10) | prepared.rcode;
        out.extend_from_slice(&[flags_hi, flags_lo, 0, 1]);
        out.extend_from_slice(&prepared.answers.to_be_bytes());
        out.extend_from_slice(&prepared.authorities.to_be_bytes());
        out.extend_from_slice(&u16::from(q.edns_payload.is_some()).to_be_bytes());
        out.extend_from_slice(&query[12..12 + q.name_len + 4]);
        out.extend_from_slice(&prepared.body);
        if let Some(payload) = q.edns_payload {
            out.push(0);
            out.extend_from_slice(&TYPE_OPT.to_be_bytes());
            out.extend_from_slice(&payload.max(512).to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        Verdict::Answered
    }

    /// The zone holding `name` (lower-case wire form): the longest apex that is a suffix
    /// on a label boundary.
    fn zone_of(&self, name: &[u8]) -> Option<&ZoneNegative> {
        let mut offset = 0;
        loop {
            let suffix = &name[offset..];
            if let Some(zone) = self.zones.iter().find(|z| z.apex == suffix) {
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

struct Question {
    name_len: usize,
    qtype: u16,
    edns_payload: Option<u16>,
}

/// A plain query the fast path covers, or None.
fn parse(query: &[u8]) -> Option<Question> {
    let opcode = (query[2] >> 3) & 0x0f;
    let count = |i: usize| u16::from_be_bytes([query[i], query[i + 1]]);
    if opcode != 0
        || query[2] & 0x02 != 0
        || count(4) != 1
        || count(6) != 0
        || count(8) != 0
        || count(10) > 1
    {
        return None;
    }
    // The question name: plain labels only (no compression), at most 255 bytes.
    let mut i = 12;
    loop {
        let len = usize::from(*query.get(i)?);
        if len == 0 {
            i += 1;
            break;
        }
        if len > 63 {
            return None;
        }
        i += 1 + len;
        if i - 12 > MAX_NAME {
            return None;
        }
    }
    let name_len = i - 12;
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*query.get(i + 2)?, *query.get(i + 3)?]);
    if qclass != CLASS_IN {
        return None;
    }
    i += 4;
    let mut edns_payload = None;
    if count(10) == 1 {
        // An OPT record: root name, type 41, class = payload, ttl = rcode/version/flags.
        let opt = query.get(i..i + 11)?;
        if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != TYPE_OPT || opt[6] != 0 {
            return None;
        }
        edns_payload = Some(u16::from_be_bytes([opt[3], opt[4]]));
        let rdlen = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
        i += 11 + rdlen;
    }
    (i == query.len()).then_some(Question {
        name_len,
        qtype,
        edns_payload,
    })
}
