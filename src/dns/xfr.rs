//! Zone transfers: AXFR (RFC 5936) and IXFR (RFC 1995) of one snapshot, to the addresses
//! `[transfer] allow` lists (and, with `key`, only signed).
//!
//! AXFR goes over TCP only, in as many messages as the zone needs (each about 16 KB, names
//! compressed within a message), from the SOA to the SOA. IXFR answers from the journal:
//! the differences since the client's serial, or the whole zone (AXFR form) when the
//! journal does not reach back that far; over UDP when it fits, else the single SOA that
//! sends the client to TCP.

use std::net::IpAddr;

use hickory_proto::op::Message;
use hickory_proto::rr::{LowerName, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable, BinEncoder};

use super::journal::ZoneContents;
use super::serial::serial_after;
use super::tsig;
use crate::config;

/// A message is closed once it holds this much; a record never splits.
pub(super) const MESSAGE_SOFT_LIMIT: usize = 16 * 1024;

/// Who may transfer, from `[transfer]`.
pub struct Policy {
    allow: Vec<config::Network>,
    pub key: Option<tsig::Key>,
    /// Where NOTIFY goes: `[transfer] notify`, unless the zone has its own list.
    notify: Vec<std::net::SocketAddr>,
    zone_notify: Vec<config::ZoneNotify>,
}

impl Policy {
    pub fn new(transfer: &config::Transfer) -> Policy {
        Policy {
            allow: transfer.allow.clone(),
            notify: transfer.notify.clone(),
            zone_notify: transfer.zones.clone(),
            // The config checked the key's name and secret.
            key: transfer
                .key
                .as_ref()
                .map(|k| tsig::Key::new(k).expect("a validated tsig key")),
        }
    }

    /// The NOTIFY targets of the zone `origin`.
    pub fn notify_of(&self, origin: &hickory_proto::rr::LowerName) -> &[std::net::SocketAddr] {
        let origin = origin.to_string();
        self.zone_notify
            .iter()
            .find(|z| z.name.eq_ignore_ascii_case(&origin))
            .map_or(&self.notify, |z| &z.notify)
    }

    pub fn allows(&self, address: IpAddr) -> bool {
        self.allow.iter().any(|n| n.contains(address))
    }
}

/// What a transfer request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Axfr,
    /// IXFR from the client's serial.
    Ixfr(u32),
}

/// How a transfer was answered, for the log and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The whole zone (AXFR, or IXFR from a serial the journal does not reach).
    Full,
    /// The differences since the client's serial.
    Incremental,
    /// Only the current SOA: the client is up to date, or (UDP) the answer does not fit.
    Soa,
}

impl Served {
    pub fn as_str(self) -> &'static str {
        match self {
            Served::Full => "full",
            Served::Incremental => "incremental",
            Served::Soa => "soa",
        }
    }
}

/// The request's kind, zone name and id; `None` when it is not a readable transfer
/// request (an IXFR needs the client's SOA in the authority section).
pub fn parse(query: &[u8]) -> Option<(Kind, LowerName, u16)> {
    let message = Message::from_vec(query).ok()?;
    let [question] = message.queries.as_slice() else {
        return None;
    };
    let kind = match question.query_type() {
        RecordType::AXFR => Kind::Axfr,
        RecordType::IXFR => {
            let serial = message.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            })?;
            Kind::Ixfr(serial)
        }
        _ => return None,
    };
    Some((kind, LowerName::new(question.name()), message.metadata.id))
}

/// The messages that answer a transfer of `zone` (the request's question is `question`,
/// the bytes after the header up to its end). `udp_limit`: the size a UDP answer must fit.
pub fn answer(
    zone: &ZoneContents,
    kind: Kind,
    query: &[u8],
    question_end: usize,
    udp_limit: Option<usize>,
) -> Result<(Vec<Vec<u8>>, Served), String> {
    let current = soa_serial(&zone.soa);
    let header = Header {
        id: [query[0], query[1]],
        rd: query[2] & 0x01,
        question: &query[12..question_end],
    };
    let soa_only = || header.messages([&zone.soa].into_iter(), usize::MAX);
    let (records, served): (Vec<&Record>, Served) = match kind {
        Kind::Ixfr(serial) if serial == current || serial_after(serial, current) => {
            return Ok((soa_only()?, Served::Soa));
        }
        Kind::Ixfr(serial) => match zone.since(serial) {
            Some(deltas) => return incremental(zone, deltas, &header, udp_limit),
            None => (full(zone), Served::Full),
        },
        Kind::Axfr => (full(zone), Served::Full),
    };
    if let Some(limit) = udp_limit {
        let messages = header.messages(records.into_iter(), usize::MAX)?;
        if messages[0].len() > limit {
            return Ok((soa_only()?, Served::Soa));
        }
        return Ok((messages, served));
    }
    Ok((
        header.messages(records.into_iter(), MESSAGE_SOFT_LIMIT)?,
        served,
    ))
}

fn full(zone: &ZoneContents) -> Vec<&Record> {
    let mut records = Vec::with_capacity(zone.statics.len() + zone.failover.len() + 2);
    records.push(&zone.soa);
    records.extend(zone.statics.iter());
    records.extend(zone.failover.iter());
    records.push(&zone.soa);
    records
}

/// RFC 1995 4: the current SOA, then per change the old SOA, what went, the new SOA, what
/// came; the current SOA again.
fn incremental<'z>(
    zone: &'z ZoneContents,
    deltas: impl Iterator<Item = &'z super::journal::Delta>,
    header: &Header<'_>,
    udp_limit: Option<usize>,
) -> Result<(Vec<Vec<u8>>, Served), String> {
    let deltas: Vec<_> = deltas.collect();
    let soas: Vec<(Record, Record)> = deltas
        .iter()
        .map(|d| (zone.soa_at(d.from), zone.soa_at(d.to)))
        .collect();
    let mut records: Vec<&Record> = vec![&zone.soa];
    for (delta, (from, to)) in deltas.iter().zip(&soas) {
        records.push(from);
        records.extend(delta.removed.iter());
        records.push(to);
        records.extend(delta.added.iter());
    }
    records.push(&zone.soa);
    match udp_limit {
        Some(limit) => {
            let messages = header.messages(records.into_iter(), usize::MAX)?;
            if messages[0].len() > limit {
                Ok((
                    header.messages([&zone.soa].into_iter(), usize::MAX)?,
                    Served::Soa,
                ))
            } else {
                Ok((messages, Served::Incremental))
            }
        }
        None => Ok((
            header.messages(records.into_iter(), MESSAGE_SOFT_LIMIT)?,
            Served::Incremental,
        )),
    }
}

fn soa_serial(soa: &Record) -> u32 {
    match &soa.data {
        RData::SOA(soa) => soa.serial,
        _ => 0,
    }
}

/// What every message of a response repeats.
struct Header<'q> {
    id: [u8; 2],
    rd: u8,
    /// The question as the request wrote it (the first message carries it).
    question: &'q [u8],
}

impl Header<'_> {
    /// `records` in messages of about `limit` bytes each (one message when `usize::MAX`).
    fn messages<'r>(
        &self,
        records: impl Iterator<Item = &'r Record>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, String> {
        let mut records = records.peekable();
        let mut messages = Vec::new();
        loop {
            let first = messages.is_empty();
            let mut buf = Vec::with_capacity(if first { 4096 } else { limit.min(65_535) + 512 });
            let mut count: u16 = 0;
            {
                let mut encoder = BinEncoder::new(&mut buf);
                // ID; QR, AA, RD copied; NOERROR; counts patched below.
                let flags = [0x84 | self.rd, 0x00];
                let error = |e: hickory_proto::ProtoError| e.to_string();
                encoder.emit_vec(&self.id).map_err(error)?;
                encoder.emit_vec(&flags).map_err(error)?;
                encoder.emit_vec(&[0; 8]).map_err(error)?;
                if first {
                    // The question is plain labels (wire::inspect checked it): copied, and
                    // remembered for compression by decoding it through the encoder.
                    let question = hickory_proto::op::Query::from_bytes(self.question)
                        .map_err(|e| e.to_string())?;
                    question.emit(&mut encoder).map_err(error)?;
                }
                while let Some(record) = records.peek() {
                    if count > 0 && encoder.len() >= limit {
                        break;
                    }
                    if count == u16::MAX {
                        break;
                    }
                    record.emit(&mut encoder).map_err(|e| {
                        format!("record {} does not fit in a message: {e}", record.name)
                    })?;
                    count += 1;
                    records.next();
                }
            }
            buf[4..6].copy_from_slice(&u16::from(first).to_be_bytes());
            buf[6..8].copy_from_slice(&count.to_be_bytes());
            messages.push(buf);
            if records.peek().is_none() {
                return Ok(messages);
            }
        }
    }
}
