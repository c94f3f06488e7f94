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

use super::answers::{FailoverEntry, Published, negative_ttl};
use super::zones::StaticZone;

const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_REFUSED: u8 = 5;
/// Longest name on the wire.
const MAX_NAME: usize = 255;

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

/// Per zone, what an NXDOMAIN needs.
#[derive(Debug)]
struct ZoneNegative {
    /// Lower-case wire form of the apex.
    apex: Vec<u8>,
    /// `None`: the zone has delegations, wildcards or DNAMEs; NXDOMAIN goes to hickory.
    soa: Option<Soa>,
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

/// The wire form of a name as written (letter case kept).
fn wire_as_written(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

impl Soa {
    fn new(zone: &StaticZone, soa: &Record) -> Option<Soa> {
        let RData::SOA(data) = &soa.data else {
            return None;
        };
        let mut numbers = [0u8; 20];
        for (i, n) in [
            data.serial,
            data.refresh as u32,
            data.retry as u32,
            data.expire as u32,
            data.minimum,
        ]
        .into_iter()
        .enumerate()
        {
            numbers[4 * i..4 * i + 4].copy_from_slice(&n.to_be_bytes());
        }
        Some(Soa {
            apex: wire_as_written(&zone.origin),
            ttl: soa.ttl,
            negative_ttl: negative_ttl(soa),
            mname: wire_as_written(&data.mname),
            rname: wire_as_written(&data.rname),
            numbers,
        })
    }

    /// The SOA record of a negative answer to a question of `qname_len` bytes: its owner
    /// points at the apex inside the question, and its names are compressed against it
    /// (and against each other), so it is never longer than hickory's.
    fn record(&self, qname_len: usize, ttl: u32) -> Vec<u8> {
        let apex_offset = 12 + qname_len - self.apex.len();
        let rdata_start = 12 + qname_len + 4 + 12;
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&(0xC000 | apex_offset as u16).to_be_bytes());
        out.extend_from_slice(&u16::from(RecordType::SOA).to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        let mut known: Vec<(usize, &[u8])> = vec![(apex_offset, &self.apex)];
        let mut rdata = Vec::with_capacity(48);
        for name in [&self.mname, &self.rname] {
            compress(&mut rdata, rdata_start, name, &mut known);
        }
        rdata.extend_from_slice(&self.numbers);
        let len = rdata.len() as u16;
        out[10..12].copy_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&rdata);
        out
    }

    /// A negative answer's prepared part for a question of `qname_len` bytes.
    fn negative(&self, qname_len: usize, ttl: u32, rcode: u8) -> Prepared {
        Prepared {
            authoritative: true,
            rcode,
            answers: 0,
            authorities: 1,
            body: self.record(qname_len, ttl),
            case: self.apex.clone(),
        }
    }
}

/// Appends `name` (wire form) to `out`, which starts at message offset `base`: its longest
/// suffix found in `known` (byte for byte) becomes a pointer, and what is written is added.
fn compress<'n>(
    out: &mut Vec<u8>,
    base: usize,
    name: &'n [u8],
    known: &mut Vec<(usize, &'n [u8])>,
) {
    let mut i = 0;
    let mut written = Vec::new();
    while name[i] != 0 {
        let suffix = &name[i..];
        if let Some(&(offset, _)) = known.iter().find(|(_, n)| *n == suffix) {
            out.extend_from_slice(&(0xC000 | offset as u16).to_be_bytes());
            known.extend(written);
            return;
        }
        let at = base + out.len();
        if at < 0x3FFF {
            written.push((at, suffix));
        }
        let len = usize::from(name[i]);
        out.extend_from_slice(&name[i..i + 1 + len]);
        i += 1 + len;
    }
    out.push(0);
    known.extend(written);
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
            let zone_soa = Soa::new(zone, soa);
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
                    let Some(first) = records.first() else {
                        continue;
                    };
                    if !matches!(rtype, RecordType::A | RecordType::AAAA | RecordType::TXT) {
                        table.exact.insert(key, None);
                        continue;
                    }
                    let body: Option<Vec<u8>> = records
                        .iter()
                        .map(|r| record_at(12, r, r.ttl))
                        .collect::<Option<Vec<_>>>()
                        .map(|parts| parts.concat());
                    let prepared = body.map(|body| Prepared {
                        authoritative: true,
                        rcode: 0,
                        answers: records.len() as u16,
                        authorities: 0,
                        body,
                        // hickory writes the owner as the zone file does.
                        case: wire_as_written(&first.name),
                    });
                    table.exact.insert(key, prepared);
                }
                if let Some(soa) = &zone_soa {
                    table
                        .nodata
                        .insert(name.clone(), soa.negative(name.len(), soa.ttl, 0));
                    // The empty non-terminals between the name and the apex exist too.
                    let mut ent = &name[..];
                    while ent.len() > apex.len() {
                        ent = &ent[1 + usize::from(ent[0])..];
                        if ent.len() > apex.len() {
                            table
                                .nodata
                                .entry(ent.to_vec())
                                .or_insert_with(|| soa.negative(ent.len(), soa.ttl, 0));
                        }
                    }
                }
            }
            table.zones.push(ZoneNegative {
                soa: zone_soa.filter(|_| !complex),
                apex,
            });
        }
        for (name, entry) in failover {
            let name = wire(&Name::from(name));
            table.fallback.remove(&name);
            let soa = soas
                .get(entry.zone)
                .and_then(|r| Soa::new(&zones[entry.zone], r));
            match &entry.answer {
                Published::Pending | Published::Servfail => {
                    let servfail = Prepared {
                        authoritative: true,
                        rcode: RCODE_SERVFAIL,
                        answers: 0,
                        authorities: 0,
                        body: Vec::new(),
                        case: Vec::new(),
                    };
                    // Every type gets SERVFAIL: store it as the name's "other types" answer.
                    table.nodata.insert(name, servfail);
                }
                Published::Nodata => {
                    if let Some(soa) = &soa {
                        let negative = soa.negative(name.len(), soa.negative_ttl, 0);
                        table.nodata.insert(name, negative);
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
                                // The handler answers with the question's own name.
                                case: Vec::new(),
                            }),
                        );
                    }
                    if let Some(soa) = &soa {
                        let negative = soa.negative(name.len(), soa.negative_ttl, 0);
                        table.nodata.insert(name, negative);
                    }
                }
            }
        }
        table
    }

    /// Answers `query` into `out` if the fast path covers it and the answer fits in
    /// `max_udp` bytes (and the client's EDNS size, or 512 bytes without EDNS).
    pub fn answer(&self, query: &[u8], out: &mut Vec<u8>, max_udp: u16) -> Verdict {
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
        let prepared = match self.exact.get(&key[..q.name_len + 2]) {
            Some(None) => return Verdict::Fallback,
            Some(Some(p)) => p,
            None if self.fallback.contains(name) => return Verdict::Fallback,
            None => match self.nodata.get(name) {
                Some(p) => p,
                None => match self.zone_of(name) {
                    None => {
                        built = Prepared {
                            authoritative: false,
                            rcode: RCODE_REFUSED,
                            answers: 0,
                            authorities: 0,
                            body: Vec::new(),
                            case: Vec::new(),
                        };
                        &built
                    }
                    Some(zone) => match &zone.soa {
                        None => return Verdict::Fallback,
                        Some(soa) => {
                            built = soa.negative(q.name_len, soa.ttl, RCODE_NXDOMAIN);
                            &built
                        }
                    },
                },
            },
        };
        if !qname.ends_with(&prepared.case) {
            return Verdict::Fallback;
        }
        let limit = q
            .edns
            .map_or(512, |e| e.payload.max(512))
            .min(max_udp.max(512));
        let size =
            12 + q.name_len + 4 + prepared.body.len() + if q.edns.is_some() { 11 } else { 0 };
        if usize::from(limit) < size {
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
        out.extend_from_slice(&u16::from(q.edns.is_some()).to_be_bytes());
        out.extend_from_slice(&query[12..12 + q.name_len + 4]);
        out.extend_from_slice(&prepared.body);
        if let Some(edns) = q.edns {
            out.push(0);
            out.extend_from_slice(&TYPE_OPT.to_be_bytes());
            out.extend_from_slice(&edns.payload.max(512).to_be_bytes());
            // Extended rcode 0, version 0, the DO bit copied (RFC 3225), no options.
            out.extend_from_slice(&[0, 0, edns.dnssec_ok as u8 * 0x80, 0, 0, 0]);
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
    edns: Option<EdnsRequest>,
}

#[derive(Clone, Copy)]
struct EdnsRequest {
    payload: u16,
    dnssec_ok: bool,
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
    let mut i = super::wire::plain_name_end(query, 12)?;
    let name_len = i - 12;
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*query.get(i + 2)?, *query.get(i + 3)?]);
    if qclass != CLASS_IN {
        return None;
    }
    i += 4;
    let mut edns = None;
    if count(10) == 1 {
        // An OPT record: root name, type 41, class = payload, ttl = rcode/version/flags.
        let opt = query.get(i..i + 11)?;
        if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != TYPE_OPT || opt[6] != 0 {
            return None;
        }
        edns = Some(EdnsRequest {
            payload: u16::from_be_bytes([opt[3], opt[4]]),
            dnssec_ok: opt[7] & 0x80 != 0,
        });
        let rdlen = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
        i += 11;
        // Options (code, length, data) must fill the OPT data exactly.
        let options = query.get(i..i + rdlen)?;
        let mut o = 0;
        while o < options.len() {
            let len = usize::from(u16::from_be_bytes([
                *options.get(o + 2)?,
                *options.get(o + 3)?,
            ]));
            o += 4 + len;
        }
        if o != options.len() {
            return None;
        }
        i += rdlen;
    }
    (i == query.len()).then_some(Question {
        name_len,
        qtype,
        edns,
    })
}
