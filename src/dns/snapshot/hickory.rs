//! hickory's handler of each zone in a snapshot: the zone's records checked by hickory
//! once, then shared by every snapshot's handler, each with its own SOA serial.

use std::sync::Arc;

use hickory_proto::rr::{LowerName, RData, Record, RecordType, RrKey};
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, ZoneHandler, ZoneType};

use crate::dns::zones::StaticZone;

pub(super) fn soa_record(zone: &StaticZone) -> Record {
    let key = RrKey::new(LowerName::new(&zone.origin), RecordType::SOA);
    // ZoneSet::load refuses a zone without an SOA at its apex.
    zone.records[&key]
        .records_without_rrsigs()
        .next()
        .expect("zone has an SOA")
        .clone()
}

pub(super) fn with_serial(mut record: Record, serial: u32) -> Record {
    if let RData::SOA(soa) = &mut record.data {
        soa.serial = serial;
    }
    record
}

/// A zone's records as hickory's handler holds them, checked by hickory once (a record it
/// would not insert is a bug: the zone was parsed and checked already).
pub(super) type HandlerRecords =
    std::collections::BTreeMap<RrKey, Arc<hickory_proto::rr::RecordSet>>;

pub(super) fn handler_records(zone: &StaticZone) -> HandlerRecords {
    let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
        zone.origin.clone(),
        zone.records.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    )
    .expect("a parsed zone with an SOA is a valid zone");
    std::mem::take(handler.records_get_mut())
}

/// hickory's handler for a zone with `serial` in its SOA: the records shared with every
/// other snapshot's handler (a map of `Arc`s is cloned, no record), the SOA replaced.
pub(super) fn zone_handler(
    zone: &StaticZone,
    records: &HandlerRecords,
    serial: u32,
) -> Arc<dyn ZoneHandler> {
    let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
        zone.origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    let mut records = records.clone();
    let soa = with_serial(soa_record(zone), serial);
    let mut fresh =
        hickory_proto::rr::RecordSet::with_ttl(soa.name.clone(), RecordType::SOA, soa.ttl);
    fresh.insert(soa, serial);
    records.insert(
        RrKey::new(LowerName::new(&zone.origin), RecordType::SOA),
        Arc::new(fresh),
    );
    *handler.records_get_mut() = records;
    Arc::new(handler)
}
