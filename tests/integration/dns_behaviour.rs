//! Authoritative DNS behaviour over UDP and TCP.

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use tokio::net::TcpStream;

use crate::support::*;

/// A zone with a name whose TXT set is far larger than 512 bytes, for truncation.
fn big_zone() -> String {
    let mut zone = ZONE.to_string();
    for i in 0..40 {
        zone.push_str(&format!(
            "big IN TXT \"{i:02} padding padding padding padding padding padding\"\n"
        ));
    }
    zone
}

async fn started() -> (Hadns, TcpBackend) {
    let web = TcpBackend::start().await;
    let config = tcp_pool_config(&[&web], "interval = \"100ms\"", "ttl = 2")
        + "\n[[record]]\nname = \"db.prod.example.internal.\"\npool = \"web\"\n";
    let hadns = Hadns::with(&config).zone(&big_zone()).start().await;
    hadns
        .wait_for_answer("www.example.internal.", &[web.ip()], Duration::from_secs(5))
        .await;
    (hadns, web)
}

#[tokio::test(flavor = "multi_thread")]
async fn authoritative_answers_and_negative_responses() {
    let (hadns, web) = started().await;

    // Failover record: AA, the node's address, the record's TTL, no recursion offered.
    let m = hadns.query("www.example.internal.", RecordType::A).await;
    assert!(m.metadata.authoritative);
    assert!(!m.metadata.recursion_available);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&m), vec![web.ip()]);
    assert_eq!(m.answers[0].ttl, 2);

    // Mixed case is the same name; the answer echoes the question's case.
    let m = hadns.query("WwW.Example.INTERNAL.", RecordType::A).await;
    assert_eq!(addresses(&m), vec![web.ip()]);
    assert_eq!(
        m.queries[0].name().to_string(),
        "WwW.Example.INTERNAL.",
        "question case kept (0x20)"
    );
    assert_eq!(m.answers[0].name.to_string(), "WwW.Example.INTERNAL.");

    // AAAA for an IPv4 node: NODATA with the SOA (TTL capped by its minimum) in authority.
    let m = hadns.query("www.example.internal.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert!(matches!(m.authorities[0].data, RData::SOA(_)));
    assert_eq!(m.authorities[0].ttl, 5);

    // Static records.
    let m = hadns.query("mail.example.internal.", RecordType::A).await;
    assert!(m.metadata.authoritative);
    assert_eq!(addresses(&m), vec![ip("127.0.0.25")]);
    let m = hadns.query("mail.example.internal.", RecordType::MX).await;
    assert_eq!(m.answers.len(), 1);

    // Static NODATA: name exists, type does not.
    let m = hadns
        .query("mail.example.internal.", RecordType::AAAA)
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(
        m.authorities
            .iter()
            .any(|r| matches!(r.data, RData::SOA(_)))
    );

    // NXDOMAIN with the SOA.
    let m = hadns.query("nope.example.internal.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(
        m.authorities
            .iter()
            .any(|r| matches!(r.data, RData::SOA(_)))
    );

    // The empty non-terminal above a failover name exists: NODATA, not NXDOMAIN.
    let m = hadns.query("prod.example.internal.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        m.authorities
            .iter()
            .any(|r| matches!(r.data, RData::SOA(_)))
    );

    // Outside every zone: REFUSED.
    let m = hadns.query("example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);

    hadns.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_truncates_and_tcp_carries_several_queries() {
    let (hadns, _web) = started().await;

    // Without EDNS, UDP answers are at most 512 bytes: the big TXT set is truncated.
    let m = udp_query(hadns.addr, "big.example.internal.", RecordType::TXT, None).await;
    assert!(m.metadata.truncation, "expected TC without EDNS");
    // With EDNS and a large buffer it is still capped at dns.max_udp_size (1232 by
    // default): TC, the question and the OPT, no records.
    let m = udp_query(
        hadns.addr,
        "big.example.internal.",
        RecordType::TXT,
        Some(4096),
    )
    .await;
    assert!(m.metadata.truncation, "over max_udp_size without TC");
    assert!(m.answers.is_empty() && m.authorities.is_empty());
    assert_eq!(m.queries.len(), 1);
    assert!(m.edns.is_some());
    // EDNS on a failover answer is echoed as well.
    let m = udp_query(
        hadns.addr,
        "www.example.internal.",
        RecordType::A,
        Some(1232),
    )
    .await;
    assert!(m.edns.is_some());

    // TCP: several queries on one connection, including the one too big for UDP.
    let mut stream = TcpStream::connect(hadns.addr).await.unwrap();
    for _ in 0..3 {
        let m = tcp_exchange(
            &mut stream,
            &query_message("big.example.internal.", RecordType::TXT, None),
        )
        .await;
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 40);
        let m = tcp_exchange(
            &mut stream,
            &query_message("www.example.internal.", RecordType::A, None),
        )
        .await;
        assert_eq!(m.answers.len(), 1);
        assert!(m.metadata.authoritative);
    }
    hadns.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_packets_do_not_stop_the_server() {
    let (hadns, web) = started().await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let good = query_message("www.example.internal.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 5],
        vec![0xff; 12],
        good[..good.len() - 3].to_vec(),
        {
            let mut v = good.clone();
            v[5] = 9; // claims nine questions
            v
        },
        (0..600).map(|i| (i * 7) as u8).collect(),
    ];
    for packet in &junk {
        socket.send_to(packet, hadns.addr).await.unwrap();
    }
    let mut stream = TcpStream::connect(hadns.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, &[0, 4, 1, 2, 3, 4])
        .await
        .unwrap();
    drop(stream);
    // Still answering, correctly.
    assert_eq!(
        hadns.addresses("www.example.internal.").await,
        Ok(vec![web.ip()])
    );
    hadns.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_releases_the_ports() {
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let (mut hadns, _web) = started().await;
        let addr = hadns.addr;
        // A TCP client in the middle of a connection does not keep hadns alive.
        let _idle = TcpStream::connect(addr).await.unwrap();
        hadns
            .wait_for_log("first round of checks complete", Duration::from_secs(10))
            .await;
        let status = hadns.stop_with(signal).await;
        assert!(status.success(), "{signal}: exit status {status}");
        // Both sockets are free again.
        std::net::UdpSocket::bind(addr).expect("udp port still bound after shutdown");
        std::net::TcpListener::bind(addr).expect("tcp port still bound after shutdown");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv6_listeners_and_aaaa_answers() {
    let web4 = TcpBackend::start().await;
    let web6 = TcpBackend::start_at("::1").await;
    let config = tcp_pool_config(
        &[&web4, &web6],
        "interval = \"100ms\"",
        "select = \"healthy\"",
    );
    let hadns = Hadns::with(&config)
        .listen(&["127.0.0.1:0", "[::1]:0"])
        .start()
        .await;
    let v6 = hadns.addrs[1];
    assert!(v6.is_ipv6());
    wait_for(Duration::from_secs(10), "both nodes healthy", || async {
        udp_query(hadns.addr, "www.example.internal.", RecordType::A, None)
            .await
            .answers
            .len()
            == 1
            && udp_query(hadns.addr, "www.example.internal.", RecordType::AAAA, None)
                .await
                .answers
                .len()
                == 1
    })
    .await;
    // Over IPv6, UDP and TCP: A answers the IPv4 node, AAAA the IPv6 one.
    let socket = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
    let m = udp_exchange(
        &socket,
        v6,
        &query_message("www.example.internal.", RecordType::AAAA, None),
    )
    .await;
    assert_eq!(addresses(&m), vec![ip("::1")]);
    let m = udp_exchange(
        &socket,
        v6,
        &query_message("www.example.internal.", RecordType::A, None),
    )
    .await;
    assert_eq!(addresses(&m), vec![web4.ip()]);
    // The apex's SOA is hickory's (the fallback): its answer goes back to the IPv6 source
    // address the UDP worker read from the kernel.
    let m = udp_exchange(
        &socket,
        v6,
        &query_message("example.internal.", RecordType::SOA, None),
    )
    .await;
    assert_eq!(m.answers.len(), 1, "{m:?}");
    assert_eq!(m.answers[0].record_type(), RecordType::SOA);
    let mut stream = TcpStream::connect(v6).await.unwrap();
    let m = tcp_exchange(
        &mut stream,
        &query_message("www.example.internal.", RecordType::AAAA, None),
    )
    .await;
    assert_eq!(addresses(&m), vec![ip("::1")]);
    hadns.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn static_zones_alone_are_served_until_shutdown() {
    // No pools, no records: nothing to check, and hadns still serves and waits for a signal.
    let hadns = Hadns::start("").await;
    wait_for(Duration::from_secs(5), "mail to answer", || async {
        hadns.addresses("mail.example.internal.").await == Ok(vec![ip("127.0.0.25")])
    })
    .await;
    assert!(hadns.stop().await.success());
}

/// Bursts fill the UDP workers' batches, so they take the coalescing path (a short wait
/// before the next receive, `dns.udp_coalesce`): every query is still answered, correctly.
#[tokio::test(flavor = "multi_thread")]
async fn bursts_of_udp_queries_are_all_answered() {
    let (hadns, web) = started().await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..20 {
        let mut sent = std::collections::HashMap::new();
        for i in 0..50u16 {
            let (name, expected) = if i % 2 == 0 {
                ("www.example.internal.", web.ip())
            } else {
                ("mail.example.internal.", ip("127.0.0.25"))
            };
            let mut query = query_message(name, RecordType::A, None);
            query.metadata.id = i;
            socket
                .send_to(&query.to_vec().unwrap(), hadns.addr)
                .await
                .unwrap();
            sent.insert(i, expected);
        }
        let mut buf = [0u8; 512];
        while !sent.is_empty() {
            let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
                .await
                .expect("every query of the burst is answered")
                .unwrap();
            let response = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
            let expected = sent
                .remove(&response.metadata.id)
                .expect("one response per query");
            assert_eq!(response.metadata.response_code, ResponseCode::NoError);
            assert_eq!(addresses(&response), vec![expected]);
        }
    }
}
