//! Immutable answer snapshots: static zones plus the current failover answers.
//!
//! A [`Snapshot`] is never changed after it is built. The [`SnapshotBuilder`] makes a new
//! one whenever a failover answer changes, with the SOA serial of every zone whose
//! answers changed incremented, and the server swaps it in with one pointer store.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name, Record};
use hickory_server::zone_handler::{Catalog, ZoneHandler};

use super::answers::{Answer, FailoverEntry, Published, negative_ttl};
use super::serial::{serial_after, serial_max, serial_next};
use super::zones::ZoneSet;
use crate::api::deadline::Deadline;
use crate::config;

mod hickory;
mod transfer;

use hickory::{HandlerRecords, handler_records, soa_record, with_serial, zone_handler};
pub(crate) use transfer::Transfer;

/// One consistent state of everything hadns answers.
pub struct Snapshot {
    pub(crate) catalog: Catalog,
    /// Failover names, and the empty non-terminals above them (answered as `Nodata`).
    pub(crate) failover: HashMap<LowerName, FailoverEntry>,
    /// Per zone: the SOA record for negative answers (TTL = min(SOA TTL, minimum)).
    pub(crate) negative_soa: Vec<Record>,
    /// The same answers prepared in wire format for the UDP fast path.
    pub(crate) fast: super::fast::FastTable,
    serials: Vec<u32>,
    /// With `[transfer]`: who may transfer, and what each zone's transfer sends.
    pub(crate) transfer: Option<Transfer>,
    /// `[[site]]`: where clients are, for `by_site` answers.
    pub(crate) sites: Arc<Vec<config::Site>>,
    /// `[resolver]`: other names forwarded for allowed clients.
    pub(crate) resolver: Option<Arc<super::forward::Forwarder>>,
}

impl Snapshot {
    /// The SOA serial of the zone with this origin.
    pub fn serial(&self, zone: usize) -> u32 {
        self.serials[zone]
    }

    /// Every zone's SOA serial, in zone order.
    pub fn serials(&self) -> &[u32] {
        &self.serials
    }

    /// The SOA serial of the zone with this origin, if hadns serves it.
    pub(crate) fn serial_of_zone(&self, origin: &LowerName) -> Option<u32> {
        let zone = self
            .negative_soa
            .iter()
            .position(|soa| &LowerName::new(&soa.name) == origin)?;
        Some(self.serials[zone])
    }

    /// What a failover record publishes (per site for a `by_site` one).
    pub fn answer_of(&self, record_name: &str) -> Option<&Published> {
        let name = LowerName::new(&Name::from_str(record_name).ok()?);
        self.failover.get(&name).map(|e| &e.answer)
    }

    /// The SOA serial of the zone that holds a failover record.
    pub fn serial_of(&self, record_name: &str) -> Option<u32> {
        let name = LowerName::new(&Name::from_str(record_name).ok()?);
        self.failover.get(&name).map(|e| self.serials[e.zone])
    }
}

struct RecordSlot {
    name: LowerName,
    zone: usize,
    ttl: u32,
    /// Answered only before the builder's `guard` (a writer record in cluster mode).
    guarded: bool,
}

/// Builds successive snapshots; keeps the serials and reuses unchanged zones.
pub struct SnapshotBuilder {
    zones: ZoneSet,
    records: Vec<RecordSlot>,
    /// Empty non-terminals between failover names and their zone apex.
    ents: Vec<(LowerName, usize)>,
    serials: Vec<u32>,
    /// Per zone, its records as hickory holds them; each serial's handler shares them.
    handler_records: Vec<HandlerRecords>,
    handlers: Vec<Arc<dyn ZoneHandler>>,
    /// The fast path's static names, prepared once.
    fast_statics: Arc<super::fast::StaticTable>,
    last: Option<Vec<Published>>,
    transfer: Option<TransferState>,
    sites: Arc<Vec<config::Site>>,
    resolver: Option<Arc<super::forward::Forwarder>>,
    /// Until when guarded records may be answered (cluster mode).
    guard: Option<Arc<Deadline>>,
}

/// With `[transfer]`: the policy every snapshot carries, and the journal.
struct TransferState {
    policy: Arc<super::xfr::Policy>,
    slots: Vec<super::journal::Slot>,
    journal: super::journal::Journal,
}

impl SnapshotBuilder {
    /// `start_serial` is the serial for zones whose file has a lower one (the Unix time at
    /// start, so a restarted hadns does not go back below what secondaries have seen).
    /// The records must have passed [`ZoneSet::check_records`].
    /// With `transfer`, snapshots carry what zone transfers send and the journal for IXFR.
    pub fn new(
        zones: ZoneSet,
        records: &[config::Record],
        start_serial: u32,
        transfer: Option<&config::Transfer>,
    ) -> SnapshotBuilder {
        let records: Vec<RecordSlot> = records
            .iter()
            .map(|r| {
                // check_records has parsed this name and found its zone.
                let name =
                    LowerName::new(&Name::from_str(&r.name).expect("record name was validated"));
                let zone = zones.zone_of(&name).expect("record zone was validated");
                RecordSlot {
                    name,
                    zone,
                    ttl: r.ttl,
                    guarded: false,
                }
            })
            .collect();
        let ents = empty_non_terminals(&zones, &records);
        let serials: Vec<u32> = zones
            .zones
            .iter()
            .map(|z| serial_max(z.file_serial, start_serial))
            .collect();
        let handler_records: Vec<HandlerRecords> =
            zones.zones.iter().map(handler_records).collect();
        let handlers = zones
            .zones
            .iter()
            .zip(&handler_records)
            .zip(&serials)
            .map(|((z, r), &s)| zone_handler(z, r, s))
            .collect();
        let transfer = transfer.map(|t| transfer_state(&zones, &records, t));
        let fast_statics = Arc::new(super::fast::StaticTable::build(&zones.zones));
        SnapshotBuilder {
            zones,
            records,
            ents,
            serials,
            handler_records,
            handlers,
            fast_statics,
            last: None,
            transfer,
            sites: Arc::new(Vec::new()),
            resolver: None,
            guard: None,
        }
    }

    /// The records marked in `guarded` (one flag per record, in order) are answered only
    /// before `guard`, and SERVFAIL after it, on every path (UDP, TCP, transfers).
    pub fn set_guard(&mut self, guard: Arc<Deadline>, guarded: &[bool]) {
        for (slot, &guarded) in self.records.iter_mut().zip(guarded) {
            slot.guarded = guarded;
        }
        self.guard = Some(guard);
    }

    /// The sites `by_site` answers are chosen by (`[[site]]`).
    pub fn set_sites(&mut self, sites: Vec<config::Site>) {
        self.sites = Arc::new(sites);
    }

    /// The forwarder for names outside the zones (`[resolver]`).
    pub fn set_resolver(&mut self, resolver: Option<Arc<super::forward::Forwarder>>) {
        self.resolver = resolver;
    }

    /// The zones' origins (`example.internal.`), in zone order.
    pub fn zone_names(&self) -> Vec<String> {
        self.zones
            .zones
            .iter()
            .map(|z| z.origin.to_string())
            .collect()
    }

    /// Builds the snapshot for `answers` (one per configured record, in order). Zones whose
    /// failover answers differ from the previous build get their serial incremented.
    pub fn build(&mut self, answers: &[Published]) -> Snapshot {
        if let Some(last) = &self.last {
            let mut changed = vec![false; self.zones.zones.len()];
            for (i, slot) in self.records.iter().enumerate() {
                if last[i] != answers[i] {
                    changed[slot.zone] = true;
                }
            }
            for (zone, changed) in changed.into_iter().enumerate() {
                if changed {
                    self.set_serial(zone, serial_next(self.serials[zone]));
                }
            }
        }
        self.last = Some(answers.to_vec());
        self.assemble(answers)
    }

    /// Builds the snapshot for `answers` with every zone's serial set to `serial`: cluster
    /// mode, where the serial comes from the agreed decision, so that every member gives
    /// the same one. (A zone file's serial counts once, when the leader numbers its first
    /// decision after every zone's current serial; compared with each decision it would
    /// stall the zone at the wrap, where a file's 42 comes "after" 4294967290.)
    pub fn build_at(&mut self, answers: &[Published], serial: u32) -> Snapshot {
        for zone in 0..self.zones.zones.len() {
            if serial != self.serials[zone] {
                self.set_serial(zone, serial);
            }
        }
        self.last = Some(answers.to_vec());
        self.assemble(answers)
    }

    /// Raises each zone's serial to at least `floor(origin)` (RFC 1982 order): the serials
    /// reserved across restarts, or the previous configuration's serials + 1 on a reload.
    pub fn raise_serials(&mut self, floor: impl Fn(&str) -> Option<u32>) {
        for zone in 0..self.zones.zones.len() {
            let origin = self.zones.zones[zone].origin.to_string();
            if let Some(floor) = floor(&origin)
                && serial_after(floor, self.serials[zone])
            {
                self.set_serial(zone, floor);
            }
        }
    }

    fn set_serial(&mut self, zone: usize, serial: u32) {
        self.serials[zone] = serial;
        self.handlers[zone] =
            zone_handler(&self.zones.zones[zone], &self.handler_records[zone], serial);
    }

    fn assemble(&mut self, answers: &[Published]) -> Snapshot {
        let mut catalog = Catalog::new();
        for (zone, handler) in self.zones.zones.iter().zip(&self.handlers) {
            catalog.upsert(LowerName::new(&zone.origin), vec![handler.clone()]);
        }
        let mut failover = HashMap::new();
        for (name, zone) in &self.ents {
            let entry = FailoverEntry {
                zone: *zone,
                ttl: 0,
                answer: Answer::Nodata.into(),
                guard: None,
            };
            failover.insert(name.clone(), entry);
        }
        for (slot, answer) in self.records.iter().zip(answers) {
            let entry = FailoverEntry {
                zone: slot.zone,
                ttl: slot.ttl,
                answer: answer.clone(),
                guard: self.guard.clone().filter(|_| slot.guarded),
            };
            failover.insert(slot.name.clone(), entry);
        }
        let soas: Vec<Record> = self
            .zones
            .zones
            .iter()
            .zip(&self.serials)
            .map(|(z, &serial)| with_serial(soa_record(z), serial))
            .collect();
        let negative_soa = soas
            .iter()
            .map(|soa| {
                let mut record = soa.clone();
                record.ttl = negative_ttl(soa);
                record
            })
            .collect();
        let fast = super::fast::FastTable::build(
            self.fast_statics.clone(),
            &self.zones.zones,
            &soas,
            &failover,
            self.sites.clone(),
            self.resolver.clone(),
        );
        let serials = &self.serials;
        let guarded_zones = (self.records.iter())
            .filter(|slot| slot.guarded)
            .map(|slot| slot.zone)
            .collect();
        let transfer = self.transfer.as_mut().map(|t| Transfer {
            policy: t.policy.clone(),
            zones: t.journal.advance(&t.slots, answers, serials, &soas),
            complete: !answers.iter().any(|a| a.all == Answer::Pending),
            guard: self.guard.clone(),
            guarded_zones,
        });
        Snapshot {
            catalog,
            failover,
            negative_soa,
            fast,
            serials: self.serials.clone(),
            transfer,
            sites: self.sites.clone(),
            resolver: self.resolver.clone(),
        }
    }
}

/// The empty non-terminals failover names create (`a.b` for a record `x.a.b` where `a.b`
/// has no records): names that exist, with no data, so they answer NODATA, not NXDOMAIN.
fn empty_non_terminals(zones: &ZoneSet, records: &[RecordSlot]) -> Vec<(LowerName, usize)> {
    // Sets and ranges, not scans: 10,000 records in a zone of 50,000 names stay quick.
    let failover_names: std::collections::HashSet<&LowerName> =
        records.iter().map(|r| &r.name).collect();
    let mut ents = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for slot in records {
        let zone = &zones.zones[slot.zone];
        let apex = LowerName::new(&zone.origin);
        let mut name = slot.name.base_name();
        while name != apex && apex.zone_of(&name) {
            let static_name = zone.key_at(&name).is_some();
            if !static_name && !failover_names.contains(&name) && seen.insert(name.clone()) {
                ents.push((name.clone(), slot.zone));
            }
            name = name.base_name();
        }
    }
    ents
}

/// What serving transfers of the zones needs: the policy, each failover record's place
/// and the journal of differences.
fn transfer_state(zones: &ZoneSet, records: &[RecordSlot], t: &config::Transfer) -> TransferState {
    let statics = zones
        .zones
        .iter()
        .map(|z| super::journal::statics(&z.origin, &z.records))
        .collect();
    let slots = records
        .iter()
        .map(|r| super::journal::Slot {
            name: Name::from(&r.name),
            zone: r.zone,
            ttl: r.ttl,
        })
        .collect();
    TransferState {
        policy: Arc::new(super::xfr::Policy::new(t)),
        slots,
        journal: super::journal::Journal::new(statics, records.len()),
    }
}
