//! Secondaries that carry only some of hadns's zones (most estates: each site's secondary
//! carries what its site needs). A zone the target refuses or never answers for, first in
//! zone order, must not hold up the NOTIFY of the zone it does carry.

use std::collections::HashMap;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::support::secondaries::{Kind, Primary, Secondary, all_answer};
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(30);
const WWW: &str = "www.example.internal.";
/// Sorted before `example.internal`, so it is the first zone hadns announces.
const OTHER: &str = "aaa.internal.";
const OTHER_ZONE: &str = "$TTL 300
@       IN SOA ns1.aaa.internal. hostmaster.aaa.internal. 1 3600 600 604800 5
@       IN NS  ns1.aaa.internal.
ns1     IN A   127.0.0.1
";
/// Well under the secondaries' own SOA refresh (3600 s) and retry (600 s): only a NOTIFY
/// brings them in this fast.
const NOTIFY_SPEED: Duration = Duration::from_secs(10);

/// Every secondary answers `expected`, each within [`NOTIFY_SPEED`] of hadns doing so;
/// returns how long each took.
async fn followed(
    primary: &Primary,
    secondaries: &[Secondary],
    expected: &[std::net::IpAddr],
) -> Vec<Duration> {
    primary.hadns.wait_for_answer(WWW, expected, LIMIT).await;
    let start = tokio::time::Instant::now();
    let mut took = Vec::new();
    for secondary in secondaries {
        secondary.wait_for_answer(WWW, expected, NOTIFY_SPEED).await;
        took.push(start.elapsed());
    }
    took
}

/// The `/status` notify entries: (target, zone) -> state.
async fn notify_states(admin: std::net::SocketAddr) -> HashMap<(String, String), String> {
    let status = get_json(admin, "/status").await;
    status["notify"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|n| {
                    (
                        (
                            n["target"].as_str().unwrap().to_string(),
                            n["zone"].as_str().unwrap().to_string(),
                        ),
                        n["state"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// NSD, Knot and BIND carry `example.internal` only; hadns also serves `aaa.internal`
/// (first in zone order) and notifies every zone to all three. Each refuses the other
/// zone, which is said once, and follows every failover at NOTIFY speed, also when the
/// failover happened while hadns was down (its start-up NOTIFY brings them in).
#[tokio::test(flavor = "multi_thread")]
async fn secondaries_that_carry_some_zones_follow_at_notify_speed() {
    let mut web1 = TcpBackend::start().await;
    let mut web2 = TcpBackend::start().await;
    let mut primary = Primary::start_zones(
        &[&web1, &web2],
        Kind::ALL.len(),
        None,
        "",
        ZONE,
        &[(OTHER, OTHER_ZONE)],
        "",
    )
    .await;
    let admin = primary.hadns.admin().await;
    primary
        .hadns
        .wait_for_answer(WWW, &[web1.ip()], LIMIT)
        .await;
    let secondaries = primary.start_secondaries(&Kind::ALL);
    all_answer(&secondaries, WWW, &[web1.ip()]).await;

    // Two failovers: every secondary follows at NOTIFY speed.
    web1.stop().await;
    let first = followed(&primary, &secondaries, &[web2.ip()]).await;
    web1.restart().await;
    let second = followed(&primary, &secondaries, &[web1.ip()]).await;
    eprintln!("secondaries followed after (NSD, Knot, BIND): {first:?}, {second:?}");
    // The failover timeline of the second change: each target's acknowledged NOTIFY and
    // each secondary's transfer of the new serial follow the publication (offset 0).
    let targets: Vec<String> = secondaries.iter().map(|s| s.addr.to_string()).collect();
    let last_change = wait_for_some(LIMIT, "the change's NOTIFYs and transfers", || async {
        let doc = crate::support::admin::get_json(admin, "/timeline?limit=5").await;
        let change = doc["timelines"]
            .as_array()?
            .iter()
            .find(|t| t["record"] == WWW)?
            .clone();
        let after = |kind: &str, target: &str| {
            change["entries"].as_array().is_some_and(|entries| {
                entries.iter().any(|e| {
                    e["kind"] == kind
                        && e["offset_ms"].as_i64().is_some_and(|ms| ms >= 0)
                        && e["subject"].as_str().is_some_and(|s| s.contains(target))
                })
            })
        };
        let notified = targets.iter().all(|t| after("notify", t));
        // A transfer comes from the secondary's own address, not from its listening port.
        let transfers = change["entries"]
            .as_array()?
            .iter()
            .filter(|e| e["kind"] == "transfer" && e["offset_ms"].as_i64() >= Some(0))
            .count();
        (notified && transfers >= targets.len()).then_some(change)
    })
    .await;
    assert!(
        last_change["to"]
            .as_str()
            .unwrap()
            .contains(&web1.ip().to_string()),
        "{last_change}"
    );

    // The other zone: refused by each, said once, in /status and the metrics.
    wait_for(LIMIT, "every target's aaa.internal not_served", || async {
        let states = notify_states(admin).await;
        targets.iter().all(|t| {
            states
                .get(&(t.clone(), OTHER.to_string()))
                .map(String::as_str)
                == Some("not_served")
                && states
                    .get(&(t.clone(), "example.internal.".to_string()))
                    .map(String::as_str)
                    == Some("acknowledged")
        })
    })
    .await;
    let refused = "does not serve this zone";
    assert_eq!(primary.hadns.log_count(refused), 3, "said once per target");
    for target in &targets {
        let not_served = [("target", target.as_str()), ("result", "not_served")];
        assert_eq!(
            crate::support::secondaries::metric(admin, "hadns_notifies_total", &not_served).await,
            1,
            "{target}: one NOTIFY of aaa.internal's one serial"
        );
    }

    // hadns is down while the answer moves; at start its NOTIFY brings everyone in.
    let (restarted, ()) = primary.restart_with(web1.stop()).await;
    primary = restarted;
    let third = followed(&primary, &secondaries, &[web2.ip()]).await;
    eprintln!("after a restart: {third:?}");
    web2.stop().await;
}

/// A target that never answers NOTIFYs of `aaa.internal` and acknowledges those of
/// `example.internal` (a scripted peer: no real server answers one zone and ignores
/// another): each `example.internal` change reaches it within a round trip, while
/// `aaa.internal` is retried with backoff, also to a black-holed address listed for that
/// zone only (`[[transfer.zone]]`); Knot, notified of `example.internal` only, follows.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_target_for_one_zone_holds_up_no_other_zone_or_target() {
    let mut web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    let scripted = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let black_hole = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (scripted_addr, hole_addr) = (
        scripted.local_addr().unwrap(),
        black_hole.local_addr().unwrap(),
    );
    let knot_port = Secondary::port();
    // `[transfer] notify` is empty: each zone's own list says where it goes.
    let transfer = format!(
        "[[transfer.zone]]\nname = \"example.internal\"\n\
         notify = [\"{scripted_addr}\", \"127.0.0.1:{knot_port}\"]\n\
         [[transfer.zone]]\nname = \"{OTHER}\"\nnotify = [\"{scripted_addr}\", \"{hole_addr}\"]\n"
    );
    let mut primary = Primary::start_zones(
        &[&web1, &web2],
        0,
        None,
        "",
        ZONE,
        &[(OTHER, OTHER_ZONE)],
        &transfer,
    )
    .await;
    // The scripted target: every NOTIFY it gets, (zone, when); answers example.internal.
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let responder = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let (len, from) = scripted.recv_from(&mut buf).await.unwrap();
            let Ok(message) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            if message.metadata.op_code != OpCode::Notify {
                continue;
            }
            let zone = message.queries[0].name().to_string();
            let _ = seen_tx.send((zone.clone(), tokio::time::Instant::now()));
            if zone == "example.internal." {
                let mut answer =
                    Message::new(message.metadata.id, MessageType::Response, OpCode::Notify);
                answer.metadata.authoritative = true;
                answer.metadata.response_code = ResponseCode::NoError;
                answer.add_queries(message.queries.clone());
                scripted
                    .send_to(&answer.to_vec().unwrap(), from)
                    .await
                    .unwrap();
            }
        }
    });
    primary
        .hadns
        .wait_for_answer(WWW, &[web1.ip()], LIMIT)
        .await;
    let knot = Secondary::start(Kind::Knot, knot_port, primary.hadns.addr, None);
    knot.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;

    // Each failover's NOTIFY of example.internal reaches the scripted target at once.
    let mut latencies = Vec::new();
    for (stop, expected) in [(true, web2.ip()), (false, web1.ip())] {
        while seen.try_recv().is_ok() {}
        if stop {
            web1.stop().await;
        } else {
            web1.restart().await;
        }
        primary.hadns.wait_for_answer(WWW, &[expected], LIMIT).await;
        let changed = tokio::time::Instant::now();
        let arrived = tokio::time::timeout(LIMIT, async {
            loop {
                let (zone, at) = seen.recv().await.unwrap();
                if zone == "example.internal." {
                    return at;
                }
            }
        })
        .await
        .expect("a NOTIFY of example.internal");
        latencies.push(arrived.saturating_duration_since(changed));
        knot.wait_for_answer(WWW, &[expected], NOTIFY_SPEED).await;
    }
    eprintln!("NOTIFY of example.internal after the answer changed: {latencies:?}");
    // hadns answered before the NOTIFY left (the snapshot first): a generous bound that a
    // NOTIFY stuck behind aaa.internal's backoff (1, 2, 4 ... 30 s) would break.
    for latency in &latencies {
        assert!(*latency < Duration::from_millis(900), "{latencies:?}");
    }
    // aaa.internal was retried (never answered), to both of its targets.
    let admin = primary.hadns.admin().await;
    wait_for(
        LIMIT,
        "aaa.internal failing to both of its targets",
        || async {
            let states = notify_states(admin).await;
            [scripted_addr, hole_addr].iter().all(|t| {
                states
                    .get(&(t.to_string(), OTHER.to_string()))
                    .map(String::as_str)
                    == Some("failing")
            }) && !states.contains_key(&(format!("127.0.0.1:{knot_port}"), OTHER.to_string()))
        },
    )
    .await;
    responder.abort();
}
