//! Building the fast path's tables: the static names once per set of zones, the failover
//! names when a snapshot is built; each answer prepared in wire format, each name that
//! hickory must answer marked.

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::super::answers::{Answer, FailoverEntry, Published, negative_ttl};
use super::super::zones::StaticZone;
use super::*;

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
    pub(super) fn negative(&self, qname_len: usize, ttl: u32, rcode: u8) -> Prepared {
        Prepared {
            authoritative: true,
            rcode,
            answers: 0,
            authorities: 1,
            body: self.record(qname_len, ttl),
            case: self.apex.clone(),
            guard: None,
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

impl StaticTable {
    /// Prepares the zones' static names: answers, NODATA, and what goes to hickory.
    pub(crate) fn build(zones: &[StaticZone]) -> StaticTable {
        let mut table = StaticTable::default();
        for (index, zone) in zones.iter().enumerate() {
            table.add_zone(index, zone);
        }
        table
    }

    fn add_zone(&mut self, index: usize, zone: &StaticZone) {
        let apex = wire(&zone.origin);
        let complex = zone.records.keys().any(|k| {
            let below_apex = k.name().num_labels() > zone.origin.num_labels();
            k.name().is_wildcard()
                || k.record_type == RecordType::DNAME
                || (k.record_type == RecordType::NS && below_apex)
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
                self.fallback.insert(name);
                continue;
            }
            self.add_static(&name, &sets);
            // The name exists, and so do the empty non-terminals between it and the apex.
            let mut ent = &name[..];
            while ent.len() > apex.len() {
                self.names.entry(ent.to_vec()).or_insert(index);
                ent = &ent[1 + usize::from(ent[0])..];
            }
        }
        self.zones.push(ZoneStatic { apex, complex });
    }

    /// One static name's record sets: A, AAAA and TXT prepared, other types left to hickory.
    fn add_static(&mut self, name: &[u8], sets: &[(RecordType, Vec<&Record>)]) {
        for (rtype, records) in sets {
            let mut key = name.to_vec();
            key.extend_from_slice(&u16::from(*rtype).to_be_bytes());
            let Some(first) = records.first() else {
                continue;
            };
            if !matches!(rtype, RecordType::A | RecordType::AAAA | RecordType::TXT) {
                self.exact.insert(key, None);
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
                guard: None,
            });
            self.exact.insert(key, prepared);
        }
    }
}

impl FastTable {
    /// Whether `query` (a name outside every zone) goes to the forwarder (hickory's path)
    /// instead of REFUSED: `[resolver]`, RD set, and `src` in its `allow`.
    pub(super) fn forwards(&self, query: &[u8], src: std::net::IpAddr) -> bool {
        let recursive = query[2] & 0x01 != 0;
        recursive && (self.forwarded.as_ref()).is_some_and(|f| f.config.allows(src))
    }

    /// The forwarder's cached answer to the question `key` (lower-case wire name and type)
    /// with `dnssec_ok`, prepared: not authoritative, TTLs counted down.
    pub(super) fn forwarded_answer(&self, key: &[u8], dnssec_ok: bool) -> Option<Prepared> {
        let forwarder = self.forwarded.as_ref()?;
        let key = crate::dns::forward::prepared_key(key, dnssec_ok);
        let (rcode, answers, authorities, body) = forwarder.prepared(&key)?;
        Some(Prepared {
            authoritative: false,
            rcode,
            answers,
            authorities,
            body,
            case: Vec::new(),
            guard: None,
        })
    }

    /// Prepares the answers of one snapshot over the zones' prepared `statics`. `soas`
    /// holds each zone's SOA for negative answers, its serial already current.
    pub(crate) fn build(
        statics: std::sync::Arc<StaticTable>,
        zones: &[StaticZone],
        soas: &[Record],
        failover: &HashMap<LowerName, FailoverEntry>,
        sites: std::sync::Arc<Vec<crate::config::Site>>,
        forwarded: Option<std::sync::Arc<crate::dns::forward::Forwarder>>,
    ) -> FastTable {
        let soas: Vec<Option<Soa>> = zones
            .iter()
            .zip(soas)
            .map(|(zone, soa)| Soa::new(zone, soa))
            .collect();
        let mut table = FastTable {
            statics,
            sites,
            forwarded,
            ..FastTable::default()
        };
        for (name, entry) in failover {
            let soa = soas.get(entry.zone).and_then(Option::as_ref);
            table.add_failover(wire(&Name::from(name)), entry, soa);
        }
        table.soas = soas;
        table
    }

    /// A failover name's published answer (it replaces whatever the zone had there).
    fn add_failover(&mut self, name: Vec<u8>, entry: &FailoverEntry, soa: Option<&Soa>) {
        if let Some(sites) = &entry.answer.sites {
            self.add_sited(name, entry, sites.len(), soa);
            return;
        }
        let addresses = match &entry.answer.all {
            Answer::Pending | Answer::Servfail => {
                let servfail = Prepared::refusal();
                // Every type gets SERVFAIL: store it as the name's "other types" answer.
                self.nodata.insert(name, servfail);
                return;
            }
            Answer::Nodata => &[][..],
            Answer::Nodes(addresses) => addresses.as_slice(),
        };
        for rtype in [RecordType::A, RecordType::AAAA] {
            let records: Vec<Record> = addresses
                .iter()
                .filter_map(|a| match (a, rtype) {
                    (IpAddr::V4(v4), RecordType::A) => Some(RData::A((*v4).into())),
                    (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA((*v6).into())),
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
            self.exact.insert(
                key,
                Some(Prepared {
                    authoritative: true,
                    rcode: 0,
                    answers: records.len() as u16,
                    authorities: 0,
                    body,
                    // The handler answers with the question's own name.
                    case: Vec::new(),
                    guard: entry.guard.clone(),
                }),
            );
        }
        if let Some(soa) = soa {
            let mut negative = soa.negative(name.len(), soa.negative_ttl, 0);
            negative.guard = entry.guard.clone();
            self.nodata.insert(name, negative);
        }
    }

    /// A `by_site` name: each of the `sites` sites' answers prepared like any failover
    /// name's, in a table of its own; the last for clients of no site.
    fn add_sited(&mut self, name: Vec<u8>, entry: &FailoverEntry, sites: usize, soa: Option<&Soa>) {
        let variants = (0..=sites)
            .map(|site| {
                let mut table = FastTable::default();
                let plain = FailoverEntry {
                    zone: entry.zone,
                    ttl: entry.ttl,
                    guard: entry.guard.clone(),
                    answer: Published::from(
                        entry
                            .answer
                            .for_site((site < sites).then_some(site))
                            .clone(),
                    ),
                };
                table.add_failover(name.clone(), &plain, soa);
                SiteAnswers {
                    exact: table.exact,
                    nodata: table.nodata.remove(&name),
                }
            })
            .collect();
        self.sited.insert(name, variants);
    }
}

impl Prepared {
    /// SERVFAIL, authoritative, nothing else: a guarded name past its deadline.
    pub(super) fn refusal() -> Prepared {
        Prepared {
            authoritative: true,
            rcode: RCODE_SERVFAIL,
            answers: 0,
            authorities: 0,
            body: Vec::new(),
            case: Vec::new(),
            guard: None,
        }
    }
}
