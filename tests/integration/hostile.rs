//! Hostile packets against the real binary: each test here reproduces a defect found by
//! attacking hadns (issue #10) and holds the fix. Exhausted resources: exhaustion.rs.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use tokio::net::TcpStream;

use crate::support::admin::admin_section;
use crate::support::*;

/// A zone with a TXT set of about 8.5 KB: an amplifier, if hadns let it be one.
fn amplifier_zone() -> String {
    let mut zone = ZONE.to_string();
    for i in 0..40 {
        zone.push_str(&format!("big IN TXT \"{i:02} {}\"\n", "x".repeat(200)));
    }
    zone
}

fn rcode(response: &[u8]) -> u8 {
    response[3] & 0x0f
}

/// Defect 1: a 256-byte name panicked the fast path and closed the worker's socket.
#[tokio::test(flavor = "multi_thread")]
async fn no_packet_stops_a_udp_worker() {
    let (hadns, web) = start_with_web("udp_workers = 2\n", ZONE).await;
    // Labels of 63, 63, 63 and 62 octets and the root: 256 bytes on the wire.
    let mut long = Vec::new();
    for len in [63u8, 63, 63, 62] {
        long.push(len);
        long.extend(std::iter::repeat_n(b'a', usize::from(len)));
    }
    long.push(0);
    assert_eq!(long.len(), 256);
    // More packets than workers, with and without EDNS (both parsers see them).
    for i in 0..16u16 {
        let edns = (i % 2 == 0).then_some(1232);
        let response = raw_udp(hadns.addr, &raw_query(i, &long, 1, 1, edns))
            .await
            .expect("the overlong name got no answer");
        assert_eq!(rcode(&response), 1, "FORMERR");
        assert_eq!(response.len(), 12, "nothing of the name is echoed");
    }
    // Every worker still answers (several sockets share the port: many queries, many
    // source ports, so the kernel spreads them over all of them).
    for _ in 0..64 {
        assert_eq!(
            hadns.addresses("www.example.internal.").await,
            Ok(vec![web.ip()])
        );
    }
    assert!(hadns.stop().await.success());
}

/// Defects 3 and 4: 8.5 KB answered to a 39-byte query (219x), and a truncated response
/// that ended in part of a record.
#[tokio::test(flavor = "multi_thread")]
async fn udp_responses_are_capped_and_truncated_cleanly() {
    let (hadns, _web) = start_with_web("", &amplifier_zone()).await;
    let name = wire_name("big.example.internal.");
    for (edns, limit) in [
        (None, 512),
        (Some(65535), 1232),
        (Some(4096), 1232),
        (Some(700), 700),
    ] {
        let query = raw_query(7, &name, 16, 1, edns);
        let response = raw_udp(hadns.addr, &query).await.unwrap();
        assert!(
            response.len() <= limit,
            "edns {edns:?}: {} bytes",
            response.len()
        );
        // Nothing but the header, the question and the OPT: exactly the query's size.
        assert_eq!(response.len(), query.len(), "edns {edns:?}");
        let m = Message::from_vec(&response).expect("a truncated response parses whole");
        assert!(m.metadata.truncation, "edns {edns:?}: TC");
        assert!(m.answers.is_empty() && m.authorities.is_empty());
        assert_eq!(&response[12..12 + name.len()], &name[..]);
        assert_eq!(m.edns.is_some(), edns.is_some());
    }
    // TCP carries the whole set.
    let mut stream = TcpStream::connect(hadns.addr).await.unwrap();
    let response = raw_tcp(&mut stream, &raw_query(8, &name, 16, 1, None)).await;
    let m = Message::from_vec(&response).unwrap();
    assert_eq!(m.answers.len(), 40);
    assert!(response.len() > 8000);
    assert!(hadns.stop().await.success());
}

/// dns.max_udp_size raises the cap for clients that ask for more.
#[tokio::test(flavor = "multi_thread")]
async fn max_udp_size_is_configurable() {
    let mut zone = ZONE.to_string();
    for i in 0..10 {
        zone.push_str(&format!("mid IN TXT \"{i:02} {}\"\n", "x".repeat(150)));
    }
    let query = raw_query(9, &wire_name("mid.example.internal."), 16, 1, Some(4096));
    // About 1.6 KB of answer: over the default cap, under 4096.
    for (setting, truncated) in [("", true), ("max_udp_size = 4096\n", false)] {
        // Before any table: the harness's [dns] section.
        let hadns = Hadns::with(setting).zone(&zone).start().await;
        let response = raw_udp(hadns.addr, &query).await.unwrap();
        let m = Message::from_vec(&response).unwrap();
        assert_eq!(
            m.metadata.truncation,
            truncated,
            "{setting:?}: {} bytes",
            response.len()
        );
        assert_eq!(m.answers.len(), if truncated { 0 } else { 10 });
        assert!(hadns.stop().await.success());
    }
}

/// Defect 4: a question whose name is a compression pointer got the pointer copied back,
/// pointing into the response's own header.
#[tokio::test(flavor = "multi_thread")]
async fn a_compressed_question_gets_formerr_without_its_pointer() {
    let (hadns, _web) = start_with_web("", ZONE).await;
    let query = raw_query(11, &[0xC0, 0x0C], 1, 1, None);
    let response = raw_udp(hadns.addr, &query).await.unwrap();
    assert_eq!(rcode(&response), 1);
    assert_eq!(response.len(), 12, "header only");
    assert_eq!(&response[4..6], &[0, 0], "no question");
    let mut stream = TcpStream::connect(hadns.addr).await.unwrap();
    let response = raw_tcp(&mut stream, &query).await;
    assert_eq!(rcode(&response), 1);
    assert_eq!(response.len(), 12);
    assert!(hadns.stop().await.success());
}

/// Defect 5: `www A` in class CH, ANY or NONE got NXDOMAIN, `mail A` in CH the IN record.
#[tokio::test(flavor = "multi_thread")]
async fn only_class_in_is_answered() {
    let (hadns, _web) = start_with_web("", ZONE).await;
    let mut stream = TcpStream::connect(hadns.addr).await.unwrap();
    for name in [
        "www.example.internal.",
        "mail.example.internal.",
        "version.bind.",
    ] {
        for (class, label) in [(3u16, "CH"), (255, "ANY"), (254, "NONE"), (4, "HS")] {
            let query = raw_query(class, &wire_name(name), 1, class, None);
            for (transport, response) in [
                ("udp", raw_udp(hadns.addr, &query).await.unwrap()),
                ("tcp", raw_tcp(&mut stream, &query).await),
            ] {
                let m = Message::from_vec(&response).unwrap();
                assert_eq!(
                    m.metadata.response_code,
                    ResponseCode::Refused,
                    "{name} A {label} over {transport}"
                );
                assert!(m.answers.is_empty(), "{name} {label}: no data of class IN");
                assert!(!m.metadata.authoritative);
                assert_eq!(m.queries.len(), 1, "the question is echoed");
            }
        }
    }
    // IN is answered as before.
    assert_eq!(
        hadns.addresses("mail.example.internal.").await,
        Ok(vec!["127.0.0.25".parse().unwrap()])
    );
    assert!(hadns.stop().await.success());
}

/// Defect 9: 200,000 malformed packets gave 11,492 WARN lines. Per-packet problems are
/// counted in hadns_dns_anomalies_total and answered, not logged.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_packets_are_counted_not_logged() {
    let web = TcpBackend::start().await;
    let config = tcp_pool_config(&[&web], "", "") + &admin_section(false);
    let mut hadns = Hadns::start(&config).await;
    let admin = hadns.admin().await;
    hadns
        .wait_for_log("first round of checks complete", Duration::from_secs(10))
        .await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let www = wire_name("www.example.internal.");
    let mut sent = 0u64;
    for i in 0..5000u16 {
        // Four shapes: a compressed question, a class hadns does not serve, an OPT whose
        // option runs past its data, an opcode it does not implement.
        let packet = match i % 4 {
            0 => raw_query(i, &[0xC0, 0x0C], 1, 1, None),
            1 => raw_query(i, &www, 1, 3, None),
            2 => {
                let mut q = raw_query(i, &www, 1, 1, None);
                q[11] = 1;
                q.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 4, 0, 10, 0, 8]);
                q
            }
            _ => {
                let mut q = raw_query(i, &www, 1, 1, None);
                q[2] = 2 << 3;
                q
            }
        };
        // One at a time, each answered: no loss to blur the count.
        socket.send_to(&packet, hadns.addr).await.unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
            .await
            .expect("a malformed packet got no answer")
            .unwrap();
        assert_eq!(&buf[..2], &packet[..2]);
        assert!(n >= 12);
        sent += 1;
    }
    let counted: u64 = ["malformed", "other_class", "unsupported"]
        .iter()
        .map(|kind| async move {
            metric(
                admin,
                &format!("hadns_dns_anomalies_total{{kind=\"{kind}\"}}"),
            )
            .await
        })
        .collect::<futures_util::future::JoinAll<_>>()
        .await
        .into_iter()
        .sum();
    assert_eq!(counted, sent);
    let warnings = hadns.log_count(" WARN ") + hadns.log_count(" ERROR ");
    assert_eq!(warnings, 0, "warnings for {sent} malformed packets");
    assert!(hadns.stop().await.success());
}

/// Sends `rounds` x 100 queries for `query` from one address as fast as it can (each
/// hundred counted in by hadns before the next), reads every reply hadns sent, then
/// returns bytes received / bytes sent.
async fn amplification(hadns: &Hadns, admin: SocketAddr, query: &[u8], rounds: u64) -> f64 {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    socket.set_recv_buffer_size(8 << 20).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.set_nonblocking(true).unwrap();
    let socket = tokio::net::UdpSocket::from_std(socket.into()).unwrap();
    let answered = || async {
        metric(
            admin,
            "hadns_dns_queries_total{protocol=\"udp\",rcode=\"NOERROR\"}",
        )
        .await
    };
    let dropped = || async {
        metric(
            admin,
            "hadns_dns_anomalies_total{kind=\"rate_limit_dropped\"}",
        )
        .await
    };
    let (answered_before, dropped_before) = (answered().await, dropped().await);
    let mut received = 0usize;
    let mut replies = 0u64;
    let mut buf = vec![0u8; 4096];
    for round in 1..=rounds {
        for _ in 0..100 {
            socket.send_to(query, hadns.addr).await.unwrap();
        }
        wait_for(
            Duration::from_secs(20),
            "hadns to take the round",
            || async {
                answered().await + dropped().await >= answered_before + dropped_before + round * 100
            },
        )
        .await;
        while let Ok((n, _)) = socket.try_recv_from(&mut buf) {
            received += n;
            replies += 1;
        }
    }
    // Every reply hadns counted as sent is read, the last round's too (a reply can reach
    // the socket after hadns counted it).
    let sent = answered().await - answered_before;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while replies < sent {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Ok(Ok((n, _))) = tokio::time::timeout(left, socket.recv_from(&mut buf)).await else {
            panic!("{replies} of {sent} replies arrived");
        };
        received += n;
        replies += 1;
    }
    received as f64 / (rounds * 100 * query.len() as u64) as f64
}

/// Response rate limiting: the amplification a flood with a spoofed source gets, with
/// and without it.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limiting_bounds_the_amplification_of_a_spoofed_flood() {
    let mut zone = ZONE.to_string();
    for i in 0..5 {
        zone.push_str(&format!("amp IN TXT \"{i:02} {}\"\n", "x".repeat(200)));
    }
    let query = raw_query(77, &wire_name("amp.example.internal."), 16, 1, Some(1232));
    let mut results = Vec::new();
    for setting in ["", "rate_limit = 20\nrate_limit_slip = 2\n"] {
        let config = setting.to_string() + &admin_section(false);
        let mut hadns = Hadns::with(&config).zone(&zone).start().await;
        let admin = hadns.admin().await;
        let ratio = amplification(&hadns, admin, &query, 10).await;
        eprintln!("amplification with {setting:?}: {ratio:.2}");
        results.push(ratio);
        assert!(hadns.stop().await.success());
    }
    // About 1.1 KB answers to 50-byte queries: over 20x unlimited; limited, at most 20 full
    // answers a second and one truncated (query-sized) answer in two over the rate.
    assert!(
        results[0] > 15.0,
        "without rate limiting: {:.2}",
        results[0]
    );
    assert!(results[1] < 2.0, "with rate limiting: {:.2}", results[1]);
}
