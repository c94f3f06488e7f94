//! Who may be a member and what it serves: configurations that differ, etcd over TLS with
//! a user, a taken name, answers by site, and every member a primary of secondaries.

use std::net::IpAddr;
use std::time::Instant;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::*;
use crate::support::cluster::{MEMBERS, Site, web_cluster, web_pool};
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_member_whose_configuration_differs_from_the_leaders_is_reported() {
    let Some(mut site) = Site::build() else {
        return;
    };
    site.start_etcd().await;
    let node1 = TcpBackend::start_at(&site.node_ip(0)).await;
    let node2 = TcpBackend::start_at(&site.node_ip(1)).await;
    let pool = |interval: &str| {
        tcp_pool_config(&[&node1, &node2], &format!("interval = \"{interval}\""), "")
    };
    let intervals = ["100ms", "100ms", "150ms"];
    let mut members = site
        .start_members(|i| site.member_config(i, "", &pool(intervals[i])))
        .await;
    site.wait_answer(&ALL, WWW, Ok(vec![node1.ip()]), LIMIT)
        .await;
    // Whoever leads decides with its own configuration; the members that differ say so.
    let leader = leader_index(&site, 0).await.expect("a leader");
    for i in ALL {
        let expected = if leader == 2 { i != 2 } else { i == 2 };
        wait_for(
            LIMIT,
            &format!("{} to report the difference", MEMBERS[i]),
            || async { site.status(i).await["cluster"]["config_differs_from_leader"] == expected },
        )
        .await;
    }
    let differing = if leader == 2 { 0 } else { 2 };
    let metrics = site.get(differing, "/metrics").await;
    assert!(
        metrics.contains("hadns_cluster{what=\"config_mismatch\"} 1"),
        "{metrics}"
    );
    // The alert rules and the dashboard select only cluster series a member exports
    // (contrib.rs holds the other series against a single hadns).
    let wanted = crate::support::contrib::referenced()
        .into_iter()
        .filter(|s| s.name.starts_with("hadns_cluster"))
        .collect();
    let unmet = crate::support::contrib::unmet(&metrics, &wanted);
    assert!(unmet.is_empty(), "{unmet:#?}\n{metrics}");

    // m3 reloads the common configuration: its new digest goes to etcd, nobody differs,
    // and every member goes on serving the agreed answer.
    let config = site.member_config(2, "", &pool("100ms"));
    let listen = format!("{}:53", site.member_ip(2));
    std::fs::write(
        members[2].config_path(),
        format!("[dns]\nlisten = [\"{listen}\"]\nzones_dir = \"zones\"\n\n{config}"),
    )
    .unwrap();
    assert_eq!(members[2].sighup().await, "applied");
    for i in ALL {
        wait_for(
            LIMIT,
            &format!("{} to agree on the configuration", MEMBERS[i]),
            || async { site.status(i).await["cluster"]["config_differs_from_leader"] == false },
        )
        .await;
    }
    wait_for(LIMIT, "m3's new digest in etcd", || async {
        let status = site.status(0).await;
        let members = status["cluster"]["members"].as_array().unwrap().clone();
        members
            .iter()
            .all(|m| m["config_digest"] == status["cluster"]["config_digest"])
    })
    .await;
    site.wait_answer(&ALL, WWW, Ok(vec![node1.ip()]), LIMIT)
        .await;
    drop(members);
}

#[tokio::test(flavor = "multi_thread")]
async fn members_reach_etcd_over_tls_as_an_authenticated_user() {
    use std::os::unix::fs::PermissionsExt;

    let Some(mut site) = Site::build() else {
        return;
    };
    let ca = site.secure_etcd();
    site.start_etcd().await;
    let password = site.enable_auth();
    let secret = ca.with_file_name("etcd.password");
    std::fs::write(&secret, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let node1 = TcpBackend::start_at(&site.node_ip(0)).await;
    let node2 = TcpBackend::start_at(&site.node_ip(1)).await;
    let pool = tcp_pool_config(&[&node1, &node2], "interval = \"100ms\"", "");
    let extra = format!(
        "ca_file = \"{}\"\nuser = \"root\"\npassword_file = \"{}\"",
        ca.display(),
        secret.display()
    );
    let mut members = site
        .start_members(|i| site.member_config(i, &extra, &pool))
        .await;
    site.wait_answer(&ALL, WWW, Ok(vec![node1.ip()]), LIMIT)
        .await;
    let decision = site.etcdctl_run(&["get", "/hadns/test/decision", "--print-value-only"]);
    assert!(decision.contains("\"kind\":\"nodes\""), "{decision}");

    // Without the password, etcd refuses the member: it says so and serves nothing agreed.
    let wrong = secret.with_file_name("wrong.password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    drop(members.pop());
    let extra = extra.replace("etcd.password", "wrong.password");
    let refused = site
        .start_member(2, &site.member_config(2, &extra, &pool))
        .await;
    wait_for(LIMIT, "m3 to say why it is cut off", || async {
        let status = site.status(2).await;
        status["cluster"]["connected"] == false
            && status["cluster"]["lost_reason"]
                .as_str()
                .is_some_and(|r| r.contains("authentication failed"))
    })
    .await;
    assert_eq!(site.answer(2, WWW).await, Err(ResponseCode::ServFail));
    drop((members, refused));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_member_with_a_taken_name_stays_out() {
    let Some((site, _members, node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    // A copy of m1's configuration started on m3's host (ports of its own).
    let pool = tcp_pool_config(&[&node1, &node2], "interval = \"100ms\"", "");
    let config = site
        .member_config(2, "", &pool)
        .replace("name = \"m3\"", "name = \"m1\"")
        .replace(":9153", ":9154");
    let listen = format!("{}:5300", site.member_ip(2));
    let config = config.replace("token_file = \"token\"\n", "");
    let copy = Hadns::with(&config)
        .netns(&site.ns("m3"))
        .listen(&[&listen])
        .start()
        .await;
    let admin: std::net::SocketAddr = format!("{}:9154", site.member_ip(2)).parse().unwrap();
    wait_for(LIMIT, "the copy to say why it stays out", || async {
        let client = reqwest::Client::builder()
            .local_address(site.ip(50).parse::<IpAddr>().unwrap())
            .build()
            .unwrap();
        let Ok(response) = client.get(format!("http://{admin}/status")).send().await else {
            return false;
        };
        let status: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap();
        status["cluster"]["lost_reason"]
            .as_str()
            .is_some_and(|r| r.contains("another member named \"m1\" is live"))
    })
    .await;
    // The real m1 is undisturbed: still one of three members, answers as before.
    let status = site.status(0).await;
    assert_eq!(status["cluster"]["connected"], true);
    assert_eq!(status["cluster"]["members"].as_array().unwrap().len(), 3);
    holds_for(&site, &ALL, &Ok(vec![node1.ip()]), STILL).await;
    drop(copy);
}

/// `by_site` in cluster mode: the leader decides each site's answer and every member
/// serves it by the client's subnet (ECS here; the source address works alike), with the
/// site network's scope. dc1's node fails: dc1's clients get dc2's on every member, and
/// dc1's again when it returns. `/status` on a member that does not lead shows each site.
#[tokio::test(flavor = "multi_thread")]
async fn by_site_answers_are_agreed_per_site_and_served_by_every_member() {
    let Some(mut site) = Site::build() else {
        return;
    };
    site.start_etcd().await;
    let mut dc1 = TcpBackend::start_at(&site.node_ip(0)).await;
    let dc2 = TcpBackend::start_at(&site.node_ip(1)).await;
    let sites = "[[site]]\nname = \"dc1\"\nnetworks = [\"10.1.0.0/16\"]\n\n\
                 [[site]]\nname = \"dc2\"\nnetworks = [\"10.2.0.0/16\"]\n";
    let config = crate::support::web_by_site(&dc1, &dc2, sites, "healthy", "");
    let _members = site
        .start_members(|i| site.member_config(i, "", &config))
        .await;
    let both = {
        let mut both = vec![dc1.ip(), dc2.ip()];
        both.sort();
        both
    };
    let expect = [
        (Some("10.1.7.0"), vec![dc1.ip()], Some(16)),
        (Some("10.2.7.0"), vec![dc2.ip()], Some(16)),
        // A subnet of no site: the answer for no site, scoped to the subnet as sent.
        (Some("192.0.2.0"), both.clone(), Some(24)),
        (None, both.clone(), None),
    ];
    wait_by_site(&site, &expect).await;

    // Where the answers are not the leader's own: the follower's status shows each site.
    let leader = leader_index(&site, 0).await.expect("a leader");
    let follower = (leader + 1) % MEMBERS.len();
    let status = site.status(follower).await;
    let sites = &status["records"][0]["sites"];
    assert_eq!(sites[0]["site"], "dc1", "{sites}");
    assert_eq!(sites[0]["describe"], format!("w1({})", dc1.ip()), "{sites}");
    assert_eq!(sites[1]["describe"], format!("w2({})", dc2.ip()), "{sites}");

    dc1.stop().await;
    let fallback = [
        (Some("10.1.7.0"), vec![dc2.ip()], Some(16)),
        (Some("10.2.7.0"), vec![dc2.ip()], Some(16)),
        (None, vec![dc2.ip()], None),
    ];
    wait_by_site(&site, &fallback).await;
    dc1.restart().await;
    wait_by_site(&site, &expect).await;
}

/// Waits until every member answers www, for each (client subnet, addresses, scope).
async fn wait_by_site(site: &Site, expected: &[(Option<&str>, Vec<IpAddr>, Option<u8>)]) {
    for i in ALL {
        for (subnet, addresses, scope) in expected {
            wait_for_value(
                LIMIT,
                &format!("{} to answer {subnet:?}", MEMBERS[i]),
                &(addresses.clone(), *scope),
                || ask_with_subnet(site, i, *subnet),
            )
            .await;
        }
    }
}

/// Member `i`'s www addresses (sorted) for a client of `subnet` (a /24, by ECS), and the
/// scope of the ECS option in its answer.
async fn ask_with_subnet(site: &Site, i: usize, subnet: Option<&str>) -> (Vec<IpAddr>, Option<u8>) {
    let query = subnet_query(WWW, subnet.map(|s| (s.parse().unwrap(), 24)));
    subnet_answer(&site.exchange(i, &query).await)
}

/// Every member can be a primary of the same secondaries (docs/secondaries.md): each sends
/// the same zone under the same serial, NOTIFYs its targets of each decision's serial, and
/// answers an IXFR from a serial of before a failover with the same difference.
#[tokio::test(flavor = "multi_thread")]
async fn every_member_is_a_primary_with_the_same_serial_and_differences() {
    use crate::support::secondaries::{ZONE_NAME, soa_serial, transfer};
    let Some(mut site) = Site::build() else {
        return;
    };
    site.start_etcd().await;
    let mut node1 = TcpBackend::start_at(&site.node_ip(0)).await;
    let node2 = TcpBackend::start_at(&site.node_ip(1)).await;
    // A NOTIFY target on the host: what each member announces.
    let target = tokio::net::UdpSocket::bind((site.client_ip(), 0))
        .await
        .unwrap();
    let config = format!(
        "{}\n[transfer]\nallow = [\"{}/24\"]\nnotify = [\"{}\"]\n",
        web_pool(&node1, &node2),
        site.ip(0),
        target.local_addr().unwrap()
    );
    let _members = site
        .start_members(|i| site.member_config(i, "", &config))
        .await;
    site.wait_answer(&ALL, WWW, Ok(vec![node1.ip()]), LIMIT)
        .await;
    let primary =
        |i: usize| -> std::net::SocketAddr { format!("{}:53", site.member_ip(i)).parse().unwrap() };
    let shape = |records: &[hickory_proto::rr::Record]| -> Vec<String> {
        records
            .iter()
            .map(|r| match r.record_type() {
                RecordType::SOA => format!("SOA {}", soa_serial(r)),
                _ => format!("{} {} {}", r.name, r.record_type(), r.data),
            })
            .collect()
    };
    // The same zone, the same serial, from every member.
    let zone = shape(&transfer(primary(0), ZONE_NAME, None, None).await.unwrap());
    for i in [1, 2] {
        let other = shape(&transfer(primary(i), ZONE_NAME, None, None).await.unwrap());
        assert_eq!(other, zone, "{}'s zone", MEMBERS[i]);
    }
    let before = site.serial(0).await;
    assert_eq!(zone[0], format!("SOA {before}"));
    wait_for_notifies(&site, &target, before).await;

    node1.stop().await;
    site.wait_answer(&ALL, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    let after = site.serial(0).await;
    assert!(after > before, "{before} -> {after}");
    let expected = vec![
        format!("SOA {after}"),
        format!("SOA {before}"),
        format!("{WWW} A {}", node1.ip()),
        format!("SOA {after}"),
        format!("{WWW} A {}", node2.ip()),
        format!("SOA {after}"),
    ];
    for i in ALL {
        assert_eq!(site.serial(i).await, after, "{}'s serial", MEMBERS[i]);
        let delta = transfer(primary(i), ZONE_NAME, Some(before), None)
            .await
            .unwrap();
        assert_eq!(shape(&delta), expected, "{}'s IXFR", MEMBERS[i]);
    }
    wait_for_notifies(&site, &target, after).await;
}

/// Waits until every member has sent `target` a NOTIFY for `serial`.
async fn wait_for_notifies(site: &Site, target: &tokio::net::UdpSocket, serial: u32) {
    let mut from = std::collections::BTreeSet::new();
    let deadline = Instant::now() + LIMIT;
    let mut buf = vec![0; 4096];
    while from.len() < MEMBERS.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(received) = tokio::time::timeout(left, target.recv_from(&mut buf)).await else {
            panic!("NOTIFYs for {serial} only from {from:?}");
        };
        let (len, peer) = received.unwrap();
        let message = hickory_proto::op::Message::from_vec(&buf[..len]).unwrap();
        assert_eq!(message.metadata.op_code, hickory_proto::op::OpCode::Notify);
        let notified = message
            .answers
            .first()
            .map(crate::support::secondaries::soa_serial);
        if notified == Some(serial) {
            let member = (0..MEMBERS.len())
                .find(|&i| site.member_ip(i) == peer.ip().to_string())
                .unwrap_or_else(|| panic!("a NOTIFY from {peer}"));
            from.insert(member);
        }
    }
}
