//! What zone transfers send: each zone's records as of one snapshot, and the journal of
//! recent differences that IXFR answers from (RFC 1995).
//!
//! A zone's contents are its static records (fixed for one configuration) and the current
//! addresses of its failover names. A name whose answer has no address right now (SERVFAIL
//! while no node is healthy, or still pending) keeps the last addresses it had: a zone file
//! cannot say SERVFAIL, and a secondary without the name would answer NXDOMAIN, which
//! resolvers cache. A name that answers NODATA carries no address.
//!
//! The journal lives as long as one configuration: a reload starts a new one (the next
//! transfer of each zone is then a full one), and so does a restart.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::answers::{Answer, Published};

/// Differences kept per zone; an IXFR from before the oldest gets a full transfer.
const JOURNAL_LEN: usize = 1000;

/// One serial change of a zone: what IXFR sends between two SOAs.
#[derive(Debug)]
pub(crate) struct Delta {
    pub from: u32,
    pub to: u32,
    pub removed: Vec<Record>,
    pub added: Vec<Record>,
}

/// One zone as a transfer sends it, from one snapshot.
pub(crate) struct ZoneContents {
    pub origin: LowerName,
    /// The SOA with the snapshot's serial (its TTL as in the file).
    pub soa: Record,
    /// Every static record but the SOA.
    pub statics: Arc<Vec<Record>>,
    /// The failover names' records.
    pub failover: Vec<Record>,
    /// Oldest first; each `to` is the next one's `from`, the last `to` is `soa`'s serial.
    pub journal: VecDeque<Arc<Delta>>,
}

impl ZoneContents {
    /// The deltas from `serial` to the current one, if the journal reaches back to it.
    pub fn since(&self, serial: u32) -> Option<impl Iterator<Item = &Delta>> {
        let start = self.journal.iter().position(|d| d.from == serial)?;
        Some(self.journal.iter().skip(start).map(|d| d.as_ref()))
    }

    pub fn soa_at(&self, serial: u32) -> Record {
        let mut soa = self.soa.clone();
        if let RData::SOA(data) = &mut soa.data {
            data.serial = serial;
        }
        soa
    }
}

/// A failover name as transfers see it.
pub(crate) struct Slot {
    pub name: Name,
    pub zone: usize,
    pub ttl: u32,
}

/// The builder's side: what each failover name carries in transfers, and each zone's
/// journal, updated at every snapshot.
pub(crate) struct Journal {
    statics: Vec<Arc<Vec<Record>>>,
    /// Per failover name, the addresses transfers carry.
    carried: Vec<Vec<IpAddr>>,
    /// The serials and the carried addresses of the last snapshot.
    last: Option<(Vec<u32>, Vec<Vec<IpAddr>>)>,
    journals: Vec<VecDeque<Arc<Delta>>>,
}

impl Journal {
    /// `statics` per zone: every record but the SOA.
    pub fn new(statics: Vec<Vec<Record>>, names: usize) -> Journal {
        let zones = statics.len();
        Journal {
            statics: statics.into_iter().map(Arc::new).collect(),
            carried: vec![Vec::new(); names],
            last: None,
            journals: vec![VecDeque::new(); zones],
        }
    }

    /// Takes the answers of a new snapshot with these `serials`, journals what changed in
    /// each zone whose serial moved, and returns every zone's contents.
    pub fn advance(
        &mut self,
        slots: &[Slot],
        answers: &[Published],
        serials: &[u32],
        soas: &[Record],
    ) -> Vec<ZoneContents> {
        for (carried, answer) in self.carried.iter_mut().zip(answers) {
            // A by_site name carries its answer for clients of no site.
            match &answer.all {
                Answer::Nodes(addresses) if !addresses.is_empty() => carried.clone_from(addresses),
                Answer::Nodes(_) | Answer::Nodata => carried.clear(),
                Answer::Servfail | Answer::Pending => {}
            }
        }
        if let Some((last_serials, last_carried)) = &self.last {
            for zone in 0..serials.len() {
                if last_serials[zone] == serials[zone] {
                    continue;
                }
                let mut delta = Delta {
                    from: last_serials[zone],
                    to: serials[zone],
                    removed: Vec::new(),
                    added: Vec::new(),
                };
                for (i, slot) in slots.iter().enumerate() {
                    if slot.zone == zone && last_carried[i] != self.carried[i] {
                        delta.removed.extend(records(slot, &last_carried[i]));
                        delta.added.extend(records(slot, &self.carried[i]));
                    }
                }
                let journal = &mut self.journals[zone];
                journal.push_back(Arc::new(delta));
                if journal.len() > JOURNAL_LEN {
                    journal.pop_front();
                }
            }
        }
        self.last = Some((serials.to_vec(), self.carried.clone()));
        let mut failover = vec![Vec::new(); serials.len()];
        for (slot, carried) in slots.iter().zip(&self.carried) {
            failover[slot.zone].extend(records(slot, carried));
        }
        failover
            .into_iter()
            .enumerate()
            .map(|(zone, failover)| ZoneContents {
                origin: LowerName::new(&soas[zone].name),
                soa: soas[zone].clone(),
                statics: self.statics[zone].clone(),
                failover,
                journal: self.journals[zone].clone(),
            })
            .collect()
    }
}

/// Every record of a zone's static data but its SOA.
pub(crate) fn statics(
    origin: &Name,
    records: &std::collections::BTreeMap<hickory_proto::rr::RrKey, hickory_proto::rr::RecordSet>,
) -> Vec<Record> {
    let apex = LowerName::new(origin);
    records
        .iter()
        .filter(|(key, _)| !(key.record_type == RecordType::SOA && key.name() == &apex))
        .flat_map(|(_, set)| set.records_without_rrsigs().cloned())
        .collect()
}

fn records<'a>(slot: &'a Slot, addresses: &'a [IpAddr]) -> impl Iterator<Item = Record> + 'a {
    addresses.iter().map(|address| {
        let rdata = match address {
            IpAddr::V4(v4) => RData::A(A(*v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
        };
        Record::from_rdata(slot.name.clone(), slot.ttl, rdata)
    })
}
