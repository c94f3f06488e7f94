//! hadns as the (hidden) primary of real secondaries: NSD, Knot and BIND load the zone by
//! AXFR, follow a failover through NOTIFY and IXFR, with and without TSIG, and keep
//! following across a restart of hadns. Refusals (address, key), IXFR's forms and a
//! 50,000-record zone are checked with a transfer client that verifies the TSIG chain.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::secondaries::{
    self, Key, Kind, Primary, Secondary, ZONE_NAME, all_answer, soa_serial, transfer,
};
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(30);
const WWW: &str = "www.example.internal.";

/// The three secondaries load the zone, follow a failover (by NOTIFY and IXFR), and
/// follow again after hadns restarts (its serial is higher; their IXFR from before the
/// restart is answered with the whole zone).
async fn secondaries_follow(key: Option<&Key>) {
    let web1 = TcpBackend::start().await;
    let mut web2 = TcpBackend::start().await;
    let mut primary = Primary::start(&[&web1, &web2], Kind::ALL.len(), key, "", ZONE).await;
    primary
        .hadns
        .wait_for_answer(WWW, &[web1.ip()], LIMIT)
        .await;
    let secondaries = primary.start_secondaries(&Kind::ALL);
    all_answer(&secondaries, WWW, &[web1.ip()]).await;

    // A failover: every secondary follows, by IXFR.
    let mut web1 = web1;
    let incremental_before = primary.hadns.log_count("served=\"incremental\"");
    web1.stop().await;
    primary
        .everyone_answers(&secondaries, WWW, &[web2.ip()])
        .await;
    let serial = primary.hadns.soa_serial().await;
    wait_for(LIMIT, "three incremental transfers", || async {
        primary.hadns.log_count("served=\"incremental\"") >= incremental_before + 3
    })
    .await;
    // NSD's among them (Knot's and BIND's logs say so below).
    primary.wait_nsd_incremental(1).await;
    // Every secondary acknowledged a NOTIFY (its signature checked, with a key).
    for port in &primary.ports {
        let target = format!("notify acknowledged target=127.0.0.1:{port}");
        primary
            .hadns
            .wait_until(&target, LIMIT, |lines| {
                lines.iter().any(|l| l.contains(&target))
            })
            .await;
    }
    // The secondaries say so too.
    secondaries::wait_incremental(&secondaries[1], &secondaries[2], 1).await;
    for secondary in &secondaries {
        let records = transfer(secondary.addr, ZONE_NAME, None, None)
            .await
            .unwrap();
        assert_eq!(
            soa_serial(&records[0]),
            serial,
            "{:?} has hadns's serial",
            secondary.kind
        );
    }
    // hadns logs through a background writer: a transfer's line can come after the
    // secondary has the zone, so these wait for the lines rather than count them at once.
    if key.is_some() {
        wait_for(LIMIT, "three signed transfers in hadns's log", || async {
            primary.hadns.log_count("key=\"xfr\"") >= 3
        })
        .await;
    }

    // hadns restarts: its serial goes up, the secondaries ask for IXFR from their serial,
    // which the new journal does not reach: the whole zone. Then they follow a failover.
    web1.restart().await;
    primary = primary.restart().await;
    primary
        .hadns
        .wait_for_answer(WWW, &[web1.ip()], LIMIT)
        .await;
    let restarted = primary.hadns.soa_serial().await;
    assert!(
        restarted > serial,
        "the serial went on: {serial} -> {restarted}"
    );
    all_answer(&secondaries, WWW, &[web1.ip()]).await;
    wait_for(
        LIMIT,
        "IXFR from before the restart answered with the whole zone, three times",
        || async { primary.hadns.log_count("served=\"full\"") >= 3 },
    )
    .await;
    web1.stop().await;
    primary
        .everyone_answers(&secondaries, WWW, &[web2.ip()])
        .await;
    web2.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nsd_knot_and_bind_follow_hadns_across_a_failover_and_a_restart() {
    secondaries_follow(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nsd_knot_and_bind_follow_hadns_with_tsig_and_a_wrong_key_is_refused() {
    let key = Key::random("xfr");
    secondaries_follow(Some(&key)).await;

    // A secondary with another secret under the same name gets nothing; so do an unsigned
    // and a wrongly signed transfer.
    let web = TcpBackend::start().await;
    let mut primary = Primary::start(&[&web], 0, Some(&key), "", ZONE).await;
    let hadns = &mut primary.hadns;
    hadns.wait_for_answer(WWW, &[web.ip()], LIMIT).await;
    let wrong = Key::random("xfr");
    let nsd = Secondary::start(Kind::Nsd, Secondary::port(), hadns.addr, Some(&wrong));
    hadns
        .wait_for_log("signed query refused: tsig", LIMIT)
        .await;
    // NSD runs and answers, without the zone (a lost query is not taken for that).
    wait_for(LIMIT, "NSD to answer that it has no zone", || async {
        matches!(nsd.answer(WWW).await, Some(Err(_)))
    })
    .await;
    assert_eq!(
        transfer(hadns.addr, ZONE_NAME, None, None)
            .await
            .map(|r| r.len()),
        Err(ResponseCode::Refused),
        "unsigned"
    );
    assert_eq!(
        transfer(hadns.addr, ZONE_NAME, None, Some(&wrong))
            .await
            .map(|r| r.len()),
        Err(ResponseCode::NotAuth),
        "signed with the wrong secret"
    );
    let records = transfer(hadns.addr, ZONE_NAME, None, Some(&key))
        .await
        .unwrap();
    assert!(records.iter().any(|r| r.name.to_string() == WWW));
    // IXFR the same: unsigned REFUSED, the wrong secret NOTAUTH, the key the differences
    // (none here: the SOA alone).
    let serial = soa_serial(&records[0]);
    for (key, refused) in [
        (None, Err(ResponseCode::Refused)),
        (Some(&wrong), Err(ResponseCode::NotAuth)),
        (Some(&key), Ok(1)),
    ] {
        assert_eq!(
            transfer(hadns.addr, ZONE_NAME, Some(serial), key)
                .await
                .map(|r| r.len()),
            refused,
            "IXFR signed with {:?}",
            key.map(|k| &k.secret)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transfers_are_refused_outside_allow_and_ixfr_sends_differences_or_the_zone() {
    let web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    let mut primary = Primary::start(&[&web1, &web2], 0, None, "", ZONE).await;
    let hadns = &mut primary.hadns;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    let server = hadns.addr;

    // Another address: REFUSED, and logged with it.
    let other = SocketAddr::new(ip("127.0.0.2"), 0);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(other).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let query = query_message(ZONE_NAME, RecordType::AXFR, None);
    let response = tcp_exchange(&mut stream, &query).await;
    assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    hadns.wait_for_log("not in transfer.allow", LIMIT).await;
    // IXFR too, over TCP and UDP.
    let (ixfr, _) = secondaries::transfer_request(ZONE_NAME, Some(1), None);
    let ixfr = hickory_proto::op::Message::from_vec(&ixfr).unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(other).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let response = tcp_exchange(&mut stream, &ixfr).await;
    assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    let udp_other = tokio::net::UdpSocket::bind(other).await.unwrap();
    let response = udp_exchange(&udp_other, server, &ixfr).await;
    assert_eq!(response.metadata.response_code, ResponseCode::Refused);

    // AXFR: SOA, everything, SOA.
    let zone = transfer(server, ZONE_NAME, None, None).await.unwrap();
    let before = soa_serial(&zone[0]);
    assert_eq!(soa_serial(zone.last().unwrap()), before);
    // ZONE: SOA NS A A MX CNAME, and www.
    assert_eq!(zone.len(), 6 + 1 + 1);

    // Up to date: the SOA alone. From an unknown serial: the whole zone.
    let up_to_date = transfer(server, ZONE_NAME, Some(before), None)
        .await
        .unwrap();
    assert_eq!(up_to_date.len(), 1);
    let unknown = transfer(server, ZONE_NAME, Some(before.wrapping_sub(5000)), None)
        .await
        .unwrap();
    assert_eq!(unknown.len(), zone.len(), "AXFR form");
    assert_ne!(unknown[1].record_type(), RecordType::SOA);

    // A failover: IXFR from the serial before sends exactly the change.
    let mut web1 = web1;
    web1.stop().await;
    hadns.wait_for_answer(WWW, &[web2.ip()], LIMIT).await;
    let after = hadns.soa_serial().await;
    let delta = transfer(server, ZONE_NAME, Some(before), None)
        .await
        .unwrap();
    let shape: Vec<String> = delta
        .iter()
        .map(|r| match r.record_type() {
            RecordType::SOA => format!("SOA {}", soa_serial(r)),
            _ => format!("{} {}", r.name, r.data),
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            format!("SOA {after}"),
            format!("SOA {before}"),
            format!("{WWW} {}", web1.ip()),
            format!("SOA {after}"),
            format!("{WWW} {}", web2.ip()),
            format!("SOA {after}"),
        ]
    );

    // Over UDP the difference fits: the same records in one datagram; AXFR is TCP only.
    let (udp_query, _) = secondaries::transfer_request(ZONE_NAME, Some(before), None);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&udp_query, server).await.unwrap();
    let mut buf = vec![0; 4096];
    let (len, _) = tokio::time::timeout(LIMIT, socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let udp = hickory_proto::op::Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(udp.answers.len(), delta.len());
    let axfr_udp = query_message(ZONE_NAME, RecordType::AXFR, None);
    let response = udp_exchange(&socket, server, &axfr_udp).await;
    assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    wait_for(LIMIT, "two incremental transfers in the log", || async {
        hadns.log_count("served=\"incremental\"") >= 2
    })
    .await;

    // A reload takes the new allow list: now 127.0.0.2 may transfer, 127.0.0.1 may not
    // (NSD's own source address stays allowed).
    let reloaded = primary
        .config
        .replace("allow = [\"127.0.0.1\", ", "allow = [\"127.0.0.2\", ");
    assert_eq!(primary.reload(&reloaded).await, "applied");
    assert_eq!(
        transfer(server, ZONE_NAME, None, None)
            .await
            .map(|r| r.len()),
        Err(ResponseCode::Refused)
    );
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(other).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let response = tcp_exchange(&mut stream, &query).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(
        response.answers.len() >= zone.len(),
        "the whole zone in one message"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_50000_record_zone_transfers_completely_to_hadns_clients_and_knot() {
    const HOSTS: usize = 50_000;
    let zone = zone_with_hosts(HOSTS);
    let web = TcpBackend::start().await;
    let mut primary = Primary::start(&[&web], 1, None, "", &zone).await;
    primary.hadns.wait_for_answer(WWW, &[web.ip()], LIMIT).await;
    let hadns = &mut primary.hadns;

    let records = transfer(hadns.addr, ZONE_NAME, None, None).await.unwrap();
    // SOA, the static records, the hosts, www, SOA.
    assert_eq!(records.len(), 6 + HOSTS + 1 + 1);
    let line = hadns.wait_for_log("served=\"full\"", LIMIT).await;
    // About 16 KB a message: a zone of this size takes dozens, never one.
    let messages: usize = line
        .split("messages=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no message count in {line}"));
    assert!(
        (20..=400).contains(&messages),
        "{messages} messages: {line}"
    );

    let knot = primary.start_secondaries(&[Kind::Knot]).remove(0);
    knot.wait_for_answer(WWW, &[web.ip()], LIMIT).await;
    let from_knot = transfer(knot.addr, ZONE_NAME, None, None).await.unwrap();
    assert_eq!(from_knot.len(), records.len());
    knot.wait_for_answer(
        &format!("host{}.example.internal.", HOSTS - 1),
        &[ip("10.0.195.79")],
        LIMIT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_100_changes_costs_a_few_notifies_and_transfers_not_a_storm() {
    let web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    // A fourth target where no secondary runs: its NOTIFYs fail (port unreachable) and
    // hold up nobody.
    let mut primary = Primary::start(&[&web1, &web2], 4, None, "", ZONE).await;
    let admin = primary.hadns.admin().await;
    let hadns = &primary.hadns;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    let secondaries = primary.start_secondaries(&Kind::ALL);
    all_answer(&secondaries, WWW, &[web1.ip()]).await;

    let before = hadns.soa_serial().await;
    let burst = secondaries::burst(hadns, admin, &secondaries, 100, Duration::from_secs(1)).await;
    assert_eq!(
        burst.serial,
        before.wrapping_add(100),
        "every change published"
    );
    // One NOTIFY per HOLD (250 ms) at most while changes come, then the last one: a
    // handful, where one per change would be 100.
    for (secondary, sent) in secondaries.iter().zip(&burst.notifies) {
        assert!(
            (1..=10).contains(sent),
            "{:?} was sent {sent} NOTIFYs for 100 changes",
            secondary.kind
        );
    }
    assert!(
        burst.transfers <= 30,
        "{} transfers for 100 changes to 3 secondaries",
        burst.transfers
    );
    all_answer(&secondaries, WWW, &[web1.ip()]).await;
    let dead = format!("127.0.0.1:{}", primary.ports[3]);
    let failed = [("target", dead.as_str()), ("result", "failed")];
    assert!(secondaries::metric(admin, "hadns_notifies_total", &failed).await > 0);
    let acknowledged = [("target", dead.as_str()), ("result", "acknowledged")];
    assert_eq!(
        secondaries::metric(admin, "hadns_notifies_total", &acknowledged).await,
        0
    );
}
