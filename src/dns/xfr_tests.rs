//! Zone transfers from snapshots: the journal's IXFR chains, what a name without an
//! answer carries, messages of a large zone, UDP fitting.

use std::net::IpAddr;

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};

use super::answers::{Answer, Published};
use super::snapshot::{Snapshot, SnapshotBuilder};
use super::xfr::{Kind, MESSAGE_SOFT_LIMIT, Served, answer};

const CONFIG: &str = r#"
[dns]
zones_dir = "zones"
[transfer]
allow = ["127.0.0.1"]
[[pool]]
name = "web"
check = "tcp"
[[pool.node]]
name = "web1"
address = "192.0.2.1"
port = 1
[[pool.node]]
name = "web2"
address = "192.0.2.2"
port = 1
[[record]]
name = "www.example.internal."
pool = "web"
"#;

fn builder(extra_records: u32) -> SnapshotBuilder {
    let dir = super::test_zones::zone_dir(extra_records, "");
    let prepared = crate::prepare_str(CONFIG, dir.path()).unwrap();
    SnapshotBuilder::new(
        prepared.zones,
        &prepared.config.records,
        100,
        prepared.config.transfer.as_ref(),
    )
}

fn at(address: &str) -> Published {
    Published::from(Answer::Nodes(vec![address.parse::<IpAddr>().unwrap()]))
}

/// A transfer request for the zone, as bytes, and where its question ends.
fn request(kind: Kind) -> (Vec<u8>, usize) {
    let qtype = match kind {
        Kind::Axfr => RecordType::AXFR,
        Kind::Ixfr(_) => RecordType::IXFR,
    };
    let mut message = Message::query();
    let name = hickory_proto::rr::Name::from_ascii("example.internal.").unwrap();
    message.add_query(hickory_proto::op::Query::query(name, qtype));
    let bytes = message.to_vec().unwrap();
    let end = bytes.len();
    (bytes, end)
}

/// Each record of the response in order, as "SOA serial" or "name address".
fn shape(snapshot: &Snapshot, kind: Kind, udp: Option<usize>) -> (Vec<String>, Served, usize) {
    let transfer = snapshot.transfer.as_ref().unwrap();
    let (query, end) = request(kind);
    let (messages, served) = answer(&transfer.zones[0], kind, &query, end, udp).unwrap();
    let mut records = Vec::new();
    for (i, bytes) in messages.iter().enumerate() {
        let message = Message::from_vec(bytes).unwrap();
        assert_eq!(
            message.queries.len(),
            usize::from(i == 0),
            "the question in the first message only"
        );
        assert!(message.metadata.authoritative);
        for r in message.answers {
            records.push(match &r.data {
                RData::SOA(soa) => format!("SOA {}", soa.serial),
                data => format!("{} {data}", r.name),
            });
        }
    }
    (records, served, messages.len())
}

/// Cluster mode's serials come from the decisions: across the 2^32 wrap each snapshot
/// takes the decision's serial (the zone file's 42 is not "higher" than 1 or 2 in RFC
/// 1982 order), and IXFR chains across the wrap.
#[test]
fn agreed_serials_cross_the_wrap_and_ixfr_follows() {
    let mut agreed = builder(0);
    let near = u32::MAX - 1;
    let s0 = agreed.build_at(&[at("192.0.2.1")], near);
    assert_eq!(s0.serial(0), near);
    agreed.build_at(&[at("192.0.2.2")], u32::MAX);
    let s2 = agreed.build_at(&[at("192.0.2.1")], 1);
    assert_eq!(s2.serial(0), 1, "the decision's serial after the wrap");
    let s3 = agreed.build_at(&[at("192.0.2.2")], 2);
    assert_eq!(s3.serial(0), 2);
    let (records, served, _) = shape(&s3, Kind::Ixfr(near), None);
    assert_eq!(served, Served::Incremental);
    let soas: Vec<&String> = records.iter().filter(|r| r.starts_with("SOA")).collect();
    assert_eq!(
        soas,
        [
            "SOA 2",
            &format!("SOA {near}"),
            &format!("SOA {}", u32::MAX),
            &format!("SOA {}", u32::MAX),
            "SOA 1",
            "SOA 1",
            "SOA 2",
            "SOA 2"
        ]
    );
    // A secondary at u32::MAX is behind 2: it gets the difference, not "up to date".
    assert_eq!(
        shape(&s3, Kind::Ixfr(u32::MAX), None).1,
        Served::Incremental
    );
    // Single mode: increments wrap too, skipping 0.
    let mut single = builder(0);
    // From 100 to u32::MAX in two steps of less than 2^31 (the serial file's floors).
    single.raise_serials(|_| Some(100 + (1 << 31) - 1));
    single.raise_serials(|_| Some(u32::MAX));
    let s = single.build(&[at("192.0.2.1")]);
    assert_eq!(s.serial(0), u32::MAX);
    assert_eq!(single.build(&[at("192.0.2.2")]).serial(0), 1);
}

#[test]
fn ixfr_chains_the_journal_from_any_serial_it_holds() {
    let mut builder = builder(0);
    let s0 = builder.build(&[at("192.0.2.1")]);
    let base = s0.serial(0);
    builder.build(&[at("192.0.2.2")]);
    // No answer: transfers keep the last addresses; the serial still moves.
    builder.build(&[Published::from(Answer::Servfail)]);
    let s3 = builder.build(&[at("192.0.2.1")]);
    let (www, b) = ("www.example.internal.", base);
    let (records, served, _) = shape(&s3, Kind::Ixfr(base), None);
    assert_eq!(served, Served::Incremental);
    assert_eq!(
        records,
        vec![
            format!("SOA {}", b + 3),
            format!("SOA {b}"),
            format!("{www} 192.0.2.1"),
            format!("SOA {}", b + 1),
            format!("{www} 192.0.2.2"),
            format!("SOA {}", b + 1),
            format!("SOA {}", b + 2),
            format!("SOA {}", b + 2),
            format!("{www} 192.0.2.2"),
            format!("SOA {}", b + 3),
            format!("{www} 192.0.2.1"),
            format!("SOA {}", b + 3),
        ]
    );
    // From the middle of the journal: only what came after.
    let (records, _, _) = shape(&s3, Kind::Ixfr(b + 2), None);
    assert_eq!(records.len(), 6);
    // Current or ahead: the SOA alone. Unknown: the whole zone.
    assert_eq!(shape(&s3, Kind::Ixfr(b + 3), None).1, Served::Soa);
    assert_eq!(shape(&s3, Kind::Ixfr(b + 4), None).1, Served::Soa);
    let (records, served, _) = shape(&s3, Kind::Ixfr(b - 1), None);
    assert_eq!(served, Served::Full);
    assert_eq!(records, shape(&s3, Kind::Axfr, None).0);
}

#[test]
fn a_name_without_answer_keeps_its_last_addresses_and_nodata_has_none() {
    let mut builder = builder(0);
    let www = |s: &Snapshot| {
        shape(s, Kind::Axfr, None)
            .0
            .into_iter()
            .filter(|r| r.starts_with("www"))
            .collect::<Vec<_>>()
    };
    assert!(www(&builder.build(&[Published::from(Answer::Pending)])).is_empty());
    assert_eq!(
        www(&builder.build(&[at("192.0.2.2")])),
        vec!["www.example.internal. 192.0.2.2"]
    );
    assert_eq!(
        www(&builder.build(&[Published::from(Answer::Servfail)])),
        vec!["www.example.internal. 192.0.2.2"]
    );
    assert!(www(&builder.build(&[Published::from(Answer::Nodata)])).is_empty());
}

#[test]
fn a_large_zone_goes_in_many_messages_each_record_once() {
    let mut builder = builder(5000);
    let snapshot = builder.build(&[at("192.0.2.1")]);
    let (records, _, messages) = shape(&snapshot, Kind::Axfr, None);
    // SOA, NS, ns1, 5000 hosts, www, SOA.
    assert_eq!(records.len(), 5000 + 5);
    assert!(messages > 4, "{messages} messages");
    let unique: std::collections::HashSet<_> = records[1..records.len() - 1].iter().collect();
    assert_eq!(unique.len(), records.len() - 2);
    let transfer = snapshot.transfer.as_ref().unwrap();
    let (query, end) = request(Kind::Axfr);
    let (all, _) = answer(&transfer.zones[0], Kind::Axfr, &query, end, None).unwrap();
    assert!(all.iter().all(|m| m.len() <= MESSAGE_SOFT_LIMIT + 512));
}

#[test]
fn over_udp_a_difference_that_does_not_fit_is_the_soa_alone() {
    let mut builder = builder(0);
    let base = builder.build(&[at("192.0.2.1")]).serial(0);
    let snapshot = builder.build(&[at("192.0.2.2")]);
    let (records, served, _) = shape(&snapshot, Kind::Ixfr(base), Some(512));
    assert_eq!((records.len(), served), (6, Served::Incremental));
    let (records, served, _) = shape(&snapshot, Kind::Ixfr(base), Some(100));
    assert_eq!((records.len(), served), (1, Served::Soa));
}
