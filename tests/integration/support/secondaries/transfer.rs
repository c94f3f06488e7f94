//! A zone transfer client that checks hadns's TSIG chain with hickory's verifier.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// The records of one transfer (AXFR, or IXFR from `ixfr_from`) of `zone` over TCP, every
/// message's TSIG checked in the chain when `key` signs the request. `Err` carries the
/// response code of a refusal.
pub async fn transfer(
    server: SocketAddr,
    zone: &str,
    ixfr_from: Option<u32>,
    key: Option<&Key>,
) -> Result<Vec<Record>, ResponseCode> {
    let mut stream = TcpStream::connect(server).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let request = transfer_request(zone, ixfr_from, key);
    let mut framed = (request.0.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&request.0);
    stream.write_all(&framed).await.unwrap();
    let mut records = Vec::new();
    let mut soas = 0;
    let mut previous_mac = request.1;
    let mut first = true;
    loop {
        let len = tokio::time::timeout(Duration::from_secs(10), stream.read_u16())
            .await
            .expect("a transfer message in time")
            .unwrap();
        let mut bytes = vec![0; usize::from(len)];
        stream.read_exact(&mut bytes).await.unwrap();
        let message = Message::from_vec(&bytes).unwrap();
        // A refusal of a bad signature is itself unsigned (RFC 8945 5.3.2).
        if message.metadata.response_code == ResponseCode::NotAuth {
            return Err(ResponseCode::NotAuth);
        }
        if let (Some(key), Some(mac)) = (key, previous_mac.as_ref()) {
            let (next, _, _) = key
                .signer()
                .verify_message_byte(&bytes, Some(mac), first)
                .expect("every message of a signed transfer verifies in the chain");
            previous_mac = Some(next);
        }
        first = false;
        if message.metadata.response_code != ResponseCode::NoError {
            return Err(message.metadata.response_code);
        }
        for record in message.answers {
            let soa = record.record_type() == RecordType::SOA;
            records.push(record);
            if soa {
                soas += 1;
            }
        }
        // Done: a lone SOA (up to date), or the closing SOA.
        let done = records.len() == 1 && soas == 1
            || records.len() > 1
                && records.last().unwrap().record_type() == RecordType::SOA
                && is_closing(&records);
        if done {
            return Ok(records);
        }
    }
}

/// The last record closes the transfer: for AXFR the second SOA; for IXFR the SOA with
/// the current serial after an even number of delta SOAs.
fn is_closing(records: &[Record]) -> bool {
    let serial = soa_serial(&records[0]);
    let soas: Vec<u32> = records
        .iter()
        .filter(|r| r.record_type() == RecordType::SOA)
        .map(soa_serial)
        .collect();
    // AXFR form: exactly two SOAs.
    let axfr = records[1].record_type() != RecordType::SOA;
    if axfr {
        return soas.len() == 2;
    }
    // IXFR: first SOA, pairs (old, new), last SOA.
    soas.len() >= 4 && soas.len().is_multiple_of(2) && *soas.last().unwrap() == serial
}

pub fn soa_serial(record: &Record) -> u32 {
    match &record.data {
        RData::SOA(soa) => soa.serial,
        _ => 0,
    }
}

/// A transfer request (signed with `key` when given) and its MAC.
pub fn transfer_request(
    zone: &str,
    ixfr_from: Option<u32>,
    key: Option<&Key>,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    let name = Name::from_str(zone).unwrap();
    let qtype = if ixfr_from.is_some() {
        RecordType::IXFR
    } else {
        RecordType::AXFR
    };
    message.add_query(Query::query(name.clone(), qtype));
    if let Some(serial) = ixfr_from {
        let soa = hickory_proto::rr::rdata::SOA::new(
            Name::from_str("ns1.example.internal.").unwrap(),
            Name::from_str("hostmaster.example.internal.").unwrap(),
            serial,
            3600,
            600,
            604800,
            5,
        );
        message
            .authorities
            .push(Record::from_rdata(name, 0, RData::SOA(soa)));
    }
    match key {
        Some(key) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let (signature, _) = key.signer().sign_message(&message, now).unwrap();
            let mac = signature.data.mac.clone();
            message.set_signature(signature);
            (message.to_vec().unwrap(), Some(mac))
        }
        None => (message.to_vec().unwrap(), None),
    }
}
