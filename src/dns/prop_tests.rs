//! Property tests over generated queries: whatever arrives, nothing panics, every response
//! parses and fits, and wherever the fast path answers, hickory's path means the same.
//! Generators rather than a fixed list, so the 256-byte name, the option that runs past
//! its OPT, the odd letter case and the odd class are found without being named.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::Message;
use proptest::prelude::*;

use super::Snapshot;
use super::fast::Verdict;
use super::fast_tests::{meaning, responder, snapshots};
use super::respond::Responder;

const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const MAX_UDP: u16 = 1232;

/// Names the test zones hold, and a few around them.
const KNOWN: [&str; 12] = [
    "www.example.internal",
    "db.prod.example.internal",
    "prod.example.internal",
    "mail.example.internal",
    "multi.example.internal",
    "text.example.internal",
    "big.example.internal",
    "a.deep.ent.example.internal",
    "example.internal",
    "plain.complex.test",
    "x.wild.complex.test",
    "host.sub.complex.test",
];

/// A name in wire form: a known one in random letter case, random labels under a known
/// one, or labels of any bytes and lengths (up to and past the 255-byte limit).
fn name() -> impl Strategy<Value = Vec<u8>> {
    let case = prop_oneof![Just(0u64), any::<u64>()];
    let known = (0..KNOWN.len(), case).prop_map(|(i, case)| {
        let mut out = Vec::new();
        for (k, label) in KNOWN[i].split('.').enumerate() {
            out.push(label.len() as u8);
            out.extend(label.bytes().enumerate().map(|(j, b)| {
                if case >> ((k * 7 + j) % 64) & 1 == 1 {
                    b.to_ascii_uppercase()
                } else {
                    b
                }
            }));
        }
        out.push(0);
        out
    });
    let under = (
        prop::collection::vec("[a-zA-Z0-9-]{1,20}", 1..4),
        0..KNOWN.len(),
    )
        .prop_map(|(labels, i)| {
            let mut out = Vec::new();
            for label in labels.iter().map(String::as_str).chain(KNOWN[i].split('.')) {
                out.push(label.len() as u8);
                out.extend_from_slice(label.as_bytes());
            }
            out.push(0);
            out
        });
    let wild =
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..6).prop_map(|labels| {
            let mut out = Vec::new();
            for label in labels.iter().filter(|l| !l.is_empty()) {
                out.push(label.len() as u8);
                out.extend_from_slice(label);
            }
            out.push(0);
            out
        });
    // 250 to 258 bytes on the wire: either side of the limit.
    let long = (250usize..=258).prop_map(|total| {
        // Labels of 50 (51 bytes each) and one of what is left over; the root byte last.
        let bytes = total - 1;
        let mut lens = vec![50usize; bytes / 51];
        match bytes % 51 {
            0 => {}
            1 => {
                lens[0] = 49;
                lens.push(1);
            }
            rest => lens.push(rest - 1),
        }
        let mut out = Vec::new();
        for len in lens {
            out.push(len as u8);
            out.extend(std::iter::repeat_n(b'a', len));
        }
        out.push(0);
        assert_eq!(out.len(), total);
        out
    });
    prop_oneof![4 => known, 3 => under, 1 => wild, 1 => long]
}

/// An OPT record: any payload, usually version 0, the DO bit either way, options that
/// usually fit their data exactly and sometimes do not.
fn opt() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u16>(),
        prop_oneof![8 => Just(0u8), 1 => any::<u8>()],
        any::<bool>(),
        prop::collection::vec(
            (
                any::<u16>(),
                prop::collection::vec(any::<u8>(), 0..12),
                prop_oneof![6 => Just(0i8), 1 => -3i8..4],
            ),
            0..3,
        ),
        prop_oneof![6 => Just(0i8), 1 => -4i8..4],
        prop::option::of((0u8..=32, any::<[u8; 4]>())),
    )
        .prop_map(|(payload, version, dnssec_ok, options, skew, subnet)| {
            let mut data = Vec::new();
            // A well-formed client subnet (RFC 7871): both paths give it back, scope 0.
            if let Some((source, address)) = subnet {
                let bytes = &address[..usize::from(source).div_ceil(8)];
                data.extend_from_slice(&8u16.to_be_bytes());
                data.extend_from_slice(&(4 + bytes.len() as u16).to_be_bytes());
                data.extend_from_slice(&[0, 1, source, 0]);
                data.extend_from_slice(bytes);
            }
            for (code, value, len_skew) in options {
                // A skewed option length: runs past the OPT data, or into the next option.
                let len = (value.len() as i32 + i32::from(len_skew)).max(0) as u16;
                data.extend_from_slice(&code.to_be_bytes());
                data.extend_from_slice(&len.to_be_bytes());
                data.extend_from_slice(&value);
            }
            // A skewed length: the options run past the data, or leave some unused.
            let len = (data.len() as i32 + i32::from(skew)).max(0) as u16;
            let mut out = vec![0, 0, 41];
            out.extend_from_slice(&payload.to_be_bytes());
            out.extend_from_slice(&[0, version, u8::from(dnssec_ok) << 7, 0]);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&data);
            out
        })
}

/// A query: header flags (mostly opcode 0), one question, maybe an OPT.
fn query() -> impl Strategy<Value = Vec<u8>> {
    let qtype = prop_oneof![
        Just(1u16),
        Just(28),
        Just(16),
        Just(15),
        Just(2),
        Just(6),
        Just(5),
        Just(255),
        Just(33),
        Just(252),
        Just(251),
        any::<u16>()
    ];
    let class = prop_oneof![12 => Just(1u16), 1 => Just(3), 1 => Just(255), 1 => Just(254), 1 => any::<u16>()];
    let opcode = prop_oneof![10 => Just(0u8), 1 => 0u8..16];
    (
        any::<u16>(),
        opcode,
        any::<u8>(),
        name(),
        qtype,
        class,
        prop::option::of(opt()),
    )
        .prop_map(|(id, opcode, flags, name, qtype, class, opt)| {
            let mut q = id.to_be_bytes().to_vec();
            // QR clear; opcode; AA/TC/RD and the low byte's Z/AD/CD bits from `flags`.
            q.push((opcode << 3) | (flags & 0x07));
            q.push(flags & 0x70);
            q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
            q.extend_from_slice(&name);
            q.extend_from_slice(&qtype.to_be_bytes());
            q.extend_from_slice(&class.to_be_bytes());
            if let Some(opt) = opt {
                q.extend_from_slice(&opt);
            }
            q
        })
}

/// Every snapshot state, with its responder, and a runtime for the async path.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    states: Vec<(&'static str, Arc<ArcSwap<Snapshot>>, Responder)>,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let states = snapshots()
        .into_iter()
        .map(|(label, snapshot)| {
            let responder = responder(&snapshot);
            (label, snapshot, responder)
        })
        .collect();
    Fixture { runtime, states }
}

/// The largest UDP response for `query`, from its OPT (512 without one).
fn limit(query: &[u8]) -> usize {
    match super::wire::inspect(query) {
        Ok(shape) => super::wire::udp_limit(shape.opt, MAX_UDP),
        Err(_) => usize::from(MAX_UDP),
    }
}

/// What every response to `query` must be: at least a header, its ID, QR set, within the
/// UDP limit, and a message hickory can read.
fn check_response(query: &[u8], response: &[u8], tcp: bool) -> Result<(), TestCaseError> {
    prop_assert!(response.len() >= 12, "{} bytes", response.len());
    prop_assert_eq!(&response[..2], &query[..2], "ID");
    prop_assert!(response[2] & 0x80 != 0, "QR");
    if !tcp {
        prop_assert!(
            response.len() <= limit(query),
            "{} bytes over the limit",
            response.len()
        );
    }
    if let Err(e) = Message::from_vec(response) {
        return Err(TestCaseError::fail(format!(
            "unparsable response: {e}: {response:02x?}"
        )));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Generated queries, every state: the fast path and hickory's path agree.
    #[test]
    fn generated_queries_mean_the_same_on_both_paths(query in query()) {
        thread_local!(static FIXTURE: Fixture = fixture());
        FIXTURE.with(|f| {
            let src: SocketAddr = "127.0.0.1:5000".parse().unwrap();
            for (state, snapshot, responder) in &f.states {
                let mut fast = Vec::new();
                let verdict = snapshot.load().fast.answer(&query, &mut fast, MAX_UDP, LOCALHOST);
                let slow = f.runtime.block_on(responder.respond(&query, src, false));
                match verdict {
                    Verdict::Drop => prop_assert!(slow.is_none(), "{state}: hickory answers what the fast path drops"),
                    Verdict::Answered => {
                        check_response(&query, &fast, false)?;
                        let slow = slow.expect("hickory answered nothing");
                        prop_assert_eq!(meaning(&fast), meaning(&slow), "state {}", state);
                        prop_assert!(fast.len() <= slow.len(), "{}: fast {} > hickory {}", state, fast.len(), slow.len());
                    }
                    Verdict::Fallback => {}
                }
                if let Some(slow) = &f.runtime.block_on(responder.respond(&query, src, false)) {
                    check_response(&query, slow, false)?;
                }
                if let Some(tcp) = &f.runtime.block_on(responder.respond(&query, src, true)) {
                    check_response(&query, tcp, true)?;
                }
            }
            Ok::<(), TestCaseError>(())
        })?;
    }

    /// A query with a TSIG record of any content behind it: no panic, and a well-formed
    /// response, NOTAUTH (hadns has no key here) or FORMERR, over both protocols.
    #[test]
    fn any_tsig_record_gets_a_well_formed_response(query in query(), rdata in prop::collection::vec(any::<u8>(), 0..120)) {
        thread_local!(static FIXTURE: Fixture = fixture());
        let mut packet = query;
        let additional = u16::from_be_bytes([packet[10], packet[11]]) + 1;
        packet[10..12].copy_from_slice(&additional.to_be_bytes());
        packet.extend_from_slice(&[3, b'x', b'f', b'r', 0, 0, 250, 0, 255, 0, 0, 0, 0]);
        packet.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        packet.extend_from_slice(&rdata);
        FIXTURE.with(|f| {
            let src: SocketAddr = "127.0.0.1:5000".parse().unwrap();
            let (_, _, responder) = &f.states[0];
            for tcp in [false, true] {
                let response = f.runtime.block_on(responder.respond(&packet, src, tcp));
                // Answered, never dropped: NOTAUTH (no key here, or a bad signature) or
                // FORMERR (a TSIG record that does not parse, or one not last).
                let Some(response) = response else {
                    return Err(TestCaseError::fail("a query with a TSIG record got no answer"));
                };
                check_response(&packet, &response, tcp)?;
                let rcode = response[3] & 0x0f;
                prop_assert!(
                    rcode == 9 || rcode == 1,
                    "rcode {} for a query with a TSIG record", rcode
                );
            }
            Ok::<(), TestCaseError>(())
        })?;
    }

    /// Any bytes at all: no panic, and whatever is sent back is a response to them.
    #[test]
    fn any_bytes_get_a_well_formed_response_or_none(packet in prop::collection::vec(any::<u8>(), 0..600)) {
        thread_local!(static FIXTURE: Fixture = fixture());
        FIXTURE.with(|f| {
            let src: SocketAddr = "127.0.0.1:5000".parse().unwrap();
            let (_, snapshot, responder) = &f.states[0];
            let mut fast = Vec::new();
            if snapshot.load().fast.answer(&packet, &mut fast, MAX_UDP, LOCALHOST) == Verdict::Answered {
                check_response(&packet, &fast, false)?;
            }
            for tcp in [false, true] {
                if let Some(response) = f.runtime.block_on(responder.respond(&packet, src, tcp)) {
                    check_response(&packet, &response, tcp)?;
                }
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}
