//! Cluster mode across the 2^32 serial wrap: every member serves each decision's serial,
//! also after it wraps, and NSD, Knot and BIND (each the secondary of one member) follow
//! every failover by IXFR.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::cluster::{MEMBERS, Site};
use crate::support::secondaries::{
    Kind, Secondary, ZONE_NAME, all_answer, all_at_serial, soa_serial, transfer, wait_incremental,
};
use crate::support::*;

const WWW: &str = "www.example.internal.";
const LIMIT: Duration = Duration::from_secs(30);
const ALL: [usize; 3] = [0, 1, 2];

#[tokio::test(flavor = "multi_thread")]
async fn agreed_serials_cross_the_wrap_and_every_members_secondary_follows() {
    let Some(mut site) = Site::build() else {
        return;
    };
    site.start_etcd().await;
    // An earlier decision near 2^32 (as a long-lived cluster reaches it): the leader
    // numbers its decisions on from there.
    let seeded = u32::MAX - 4;
    let decision = format!(
        "{{\"leader\":\"earlier\",\"epoch\":0,\"seq\":1,\"serial\":{seeded},\"decided_ms\":0,\
         \"digest\":\"\",\"records\":[]}}"
    );
    site.etcdctl_run(&["put", "/hadns/test/decision", &decision]);

    let mut node1 = TcpBackend::start_at(&site.node_ip(0)).await;
    let mut node2 = TcpBackend::start_at(&site.node_ip(1)).await;
    // Member i notifies secondary i, which listens on the host's side of the bridge.
    let ports: Vec<u16> = ALL.iter().map(|_| Secondary::port()).collect();
    let target = |i: usize| SocketAddr::new(site.client_ip(), ports[i]);
    let config = |i: usize| {
        let rest = format!(
            "{}\n[transfer]\nallow = [\"{}/24\"]\nnotify = [\"{}\"]\n",
            // No failback: each change below is one decision (a failback to a node while
            // the other still takes writes withdraws that one first, a decision more).
            tcp_pool_config(
                &[&node1, &node2],
                "interval = \"100ms\"\ntimeout = \"500ms\"\nrise = 1\nfall = 1",
                "failback = false",
            ),
            site.ip(0),
            target(i)
        );
        site.member_config(i, "", &rest)
    };
    let _members = site.start_members(config).await;
    site.wait_answer(&ALL, WWW, Ok(vec![node1.ip()]), LIMIT)
        .await;
    // One or two decisions (the first round may come in parts) after the seeded one.
    let first = site.serial(0).await;
    assert!([u32::MAX - 3, u32::MAX - 2].contains(&first), "{first}");
    for i in ALL {
        assert_eq!(site.serial(i).await, first, "{}'s serial", MEMBERS[i]);
    }
    let secondaries: Vec<Secondary> = [Kind::Nsd, Kind::Knot, Kind::Bind]
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let primary = format!("{}:53", site.member_ip(i)).parse().unwrap();
            Secondary::start_on(kind, target(i), primary, None)
        })
        .collect();
    for s in &secondaries {
        s.wait_for_answer(WWW, &[node1.ip()], LIMIT).await;
    }

    // Four failovers, each a serial after the last (0 skipped at the wrap), on every member
    // and every secondary.
    let mut serials = Vec::new();
    for step in 0..4 {
        // The writer stops (its host refuses: replaced at once); the other one, back
        // and seen up by every member first, takes over.
        let expected = if step % 2 == 0 {
            if step > 0 {
                node2.restart().await;
                seen_up(&site, "web2").await;
            }
            node1.stop().await;
            node2.ip()
        } else {
            node1.restart().await;
            seen_up(&site, "web1").await;
            node2.stop().await;
            node1.ip()
        };
        site.wait_answer(&ALL, WWW, Ok(vec![expected]), LIMIT).await;
        let serial = site.serial(0).await;
        for i in ALL {
            assert_eq!(site.serial(i).await, serial, "{}'s serial", MEMBERS[i]);
        }
        all_answer(&secondaries, WWW, &[expected]).await;
        all_at_serial(&secondaries, serial).await;
        serials.push(serial);
    }
    let next = |s: u32| s.wrapping_add(1).max(1);
    let mut expected = vec![next(first)];
    for _ in 1..4 {
        expected.push(next(*expected.last().unwrap()));
    }
    assert_eq!(serials, expected);
    assert!(
        serials.contains(&u32::MAX) && serials.contains(&1),
        "{serials:?}"
    );

    // IXFR from before the wrap, from any member: the four differences.
    for i in ALL {
        let primary: SocketAddr = format!("{}:53", site.member_ip(i)).parse().unwrap();
        let delta = transfer(primary, ZONE_NAME, Some(first), None)
            .await
            .unwrap();
        let soas: Vec<u32> = delta
            .iter()
            .filter(|r| r.record_type() == hickory_proto::rr::RecordType::SOA)
            .map(soa_serial)
            .collect();
        // The current SOA, then each change's old and new SOA, then the current one:
        // last, first, s1, s1, s2, s2, s3, s3, last, last.
        let last = serials[3];
        let mut chain = vec![last, first];
        for &s in &serials[..3] {
            chain.extend([s, s]);
        }
        chain.extend([last, last]);
        assert_eq!(soas, chain, "{}'s IXFR from {first}", MEMBERS[i]);
    }
    // Knot and BIND took the changes incrementally.
    wait_incremental(&secondaries[1], &secondaries[2], 4).await;
}

/// Waits until every member's view of `node` (of the web pool) is up.
async fn seen_up(site: &Site, node: &str) {
    wait_for(LIMIT, &format!("every member to see {node} up"), || async {
        let status = site.status(0).await;
        let nodes = status["cluster"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let Some(views) = nodes
            .iter()
            .find(|n| n["node"] == node)
            .map(|n| &n["views"])
        else {
            return false;
        };
        MEMBERS.iter().all(|m| views[*m] == "up")
    })
    .await;
}
