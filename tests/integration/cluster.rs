//! Cluster mode (docs/cluster.md): three hadns members, each in a namespace of its own,
//! agreeing through a real three-member etcd (cluster_site.rs). Members are cut off from a
//! node or from etcd with blackhole routes; etcd members and hadns members are killed.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::cluster_site::{MEMBERS, Site, web_cluster, web_pool};
use crate::dbs::Pg;
use crate::harness::*;

const WWW: &str = "www.example.internal.";
const DB: &str = "db.example.internal.";
/// Generous: etcd elections, leases of 2 s, and a loaded machine.
const LIMIT: Duration = Duration::from_secs(30);
const ALL: [usize; 3] = [0, 1, 2];

/// Asserts that every member in `members` answers `expected` on every query for `period`
/// (what must not happen is a move: this watches for one).
async fn holds_for(
    site: &Site,
    members: &[usize],
    expected: &Result<Vec<IpAddr>, ResponseCode>,
    period: Duration,
) {
    let end = Instant::now() + period;
    while Instant::now() < end {
        for &i in members {
            let answer = site.answer(i, WWW).await;
            assert_eq!(&answer, expected, "{} moved", MEMBERS[i]);
        }
    }
}

/// Waits until member `i`'s status says it is (or is not) connected to etcd.
async fn wait_connected(site: &Site, i: usize, connected: bool) {
    wait_for(
        LIMIT,
        &format!("{} connected={connected}", MEMBERS[i]),
        || async { site.status(i).await["cluster"]["connected"] == connected },
    )
    .await;
}

/// The member index of the leader, as member `i` sees it.
async fn leader_index(site: &Site, i: usize) -> Option<usize> {
    let name = site.leader(i).await?;
    MEMBERS.iter().position(|m| *m == name)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_member_gives_the_same_answer_and_serial_for_tcp_and_postgres() {
    let Some(mut site) = Site::build() else {
        return;
    };
    site.start_etcd().await;
    let node1 = TcpBackend::start(&site.node_ip(0)).await;
    let node2 = TcpBackend::start(&site.node_ip(1)).await;
    let pg1 = Pg::init_primary_at(&site.node_ip(2), Some(5432));
    let pg2 = Pg::init_standby_at(&site.node_ip(3), &pg1, Some(5432));
    let pools = tcp_pool_config(&[&node1, &node2], "interval = \"100ms\"\nfall = 1", "")
        + &pg_pool(&pg1.node("pg1", 100), &pg2.node("pg2", 50));
    let members = site
        .start_members(|i| site.member_config(i, "", &pools))
        .await;
    site.wait_answer(&ALL, WWW, Ok(vec![node1.ip()]), LIMIT)
        .await;
    site.wait_answer(&ALL, DB, Ok(vec![pg1.ip]), LIMIT).await;
    let agreed = || async {
        let mut seen = Vec::new();
        for i in ALL {
            seen.push((
                site.answer(i, WWW).await,
                site.answer(i, DB).await,
                site.serial(i).await,
            ));
        }
        seen.windows(2).all(|w| w[0] == w[1])
    };
    wait_for(LIMIT, "the same answers and serial on every member", agreed).await;
    let serial = site.serial(0).await;

    // A change: every member serves it, with one new serial, the same everywhere.
    let mut node1 = node1;
    node1.stop().await;
    site.wait_answer(&ALL, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    wait_for(LIMIT, "the same serial after the change", agreed).await;
    assert!(site.serial(1).await > serial);
    let status = site.status(2).await;
    assert_eq!(status["cluster"]["members"].as_array().unwrap().len(), 3);
    assert_eq!(status["cluster"]["config_differs_from_leader"], false);

    // `hadns status` shows the cluster: this member, the leader, every member's view.
    wait_for(LIMIT, "every member's view of web1 to be down", || async {
        let status = site.status(0).await;
        let views = status["cluster"]["nodes"][0]["views"].clone();
        ["m1", "m2", "m3"].iter().all(|m| views[m] == "down")
    })
    .await;
    let admin = format!("http://{}:9153", site.member_ip(0));
    let output = hadns_command(&["status", "--admin", &admin], &members[0].config_path())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("cluster: member m1 · connected to etcd · leader m"),
        "{text}"
    );
    let web1 = text
        .lines()
        .skip_while(|l| !l.starts_with("cluster:"))
        .find(|l| l.starts_with("web ") && l.contains("web1"))
        .unwrap_or_else(|| panic!("no web1 row in {text}"));
    let words: Vec<&str> = web1.split_whitespace().collect();
    assert_eq!(words[2..], ["down", "down", "down", "down"], "{text}");
    // And the status page, rendered by a browser.
    let dom = crate::admin::browser_dom(&format!("{admin}/")).await;
    assert!(
        dom.contains("member m1 · connected to etcd · leader m"),
        "{dom}"
    );
    assert!(!dom.contains("<div id=\"cluster\" hidden"), "{dom}");
    drop(members);
}

/// The postgres pool of the cluster tests: checked every 200 ms, `db` the primary.
fn pg_pool(pg1: &str, pg2: &str) -> String {
    format!(
        "\n[[pool]]\nname = \"pg\"\ncheck = \"postgres\"\ninterval = \"200ms\"\ntimeout = \"1s\"\n\
         rise = 1\nfall = 1\n[pool.postgres]\nuser = \"postgres\"\nsslmode = \"disable\"\n\
         {pg1}{pg2}\n[[record]]\nname = \"{DB}\"\npool = \"pg\"\nselect = \"primary\"\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_cut_off_from_a_node_moves_nobody_where_alone_it_would() {
    let Some((site, _members, node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    site.cut(0, &site.node_ip(0));
    wait_for(LIMIT, "m1 to see node1 down", || async {
        let status = site.status(0).await;
        let nodes = status["cluster"]["nodes"].as_array().unwrap().clone();
        nodes
            .iter()
            .any(|n| n["node"] == "web1" && n["views"]["m1"] == "down" && n["merged"] == "up")
    })
    .await;
    // Ten probe intervals: nobody moves.
    holds_for(&site, &ALL, &Ok(vec![node1.ip()]), Duration::from_secs(1)).await;

    // The same member's view alone: a hadns without [cluster] in the same namespace moves.
    let alone = tcp_pool_config(&[&node1, &node2], "interval = \"100ms\"\nfall = 1", "");
    let listen = format!("{}:5300", site.member_ip(0));
    let single = Hadns::start_in_netns_at(&site.ns("m1"), &alone, &[&listen], |_| {}).await;
    let socket = tokio::net::UdpSocket::bind((site.ip(50).parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    wait_for(LIMIT, "the lone hadns to move to node2", || async {
        let m = udp_exchange(
            &socket,
            single.addr,
            &query_message(WWW, hickory_proto::rr::RecordType::A, None),
        )
        .await;
        addresses(&m) == vec![node2.ip()]
    })
    .await;
    holds_for(
        &site,
        &ALL,
        &Ok(vec![node1.ip()]),
        Duration::from_millis(300),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_node_moves_every_member() {
    let Some((site, _members, mut node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    node1.stop().await;
    site.wait_answer(&ALL, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    node1.restart().await;
    site.wait_answer(&ALL, WWW, Ok(vec![node1.ip()]), LIMIT)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_leader_is_replaced_and_the_new_one_follows_a_failure() {
    let Some((site, members, mut node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    let old = leader_index(&site, 0).await.expect("a leader");
    let mut members: Vec<Option<Hadns>> = members.into_iter().map(Some).collect();
    let killed = Instant::now();
    members[old]
        .take()
        .unwrap()
        .stop_with(nix::sys::signal::Signal::SIGKILL)
        .await;
    let rest: Vec<usize> = ALL.into_iter().filter(|&i| i != old).collect();
    for &i in &rest {
        wait_for(LIMIT, "a new leader", || async {
            leader_index(&site, i).await.is_some_and(|l| l != old)
        })
        .await;
    }
    let takeover = killed.elapsed();
    eprintln!("new leader {takeover:?} after the SIGKILL (lease 2 s)");
    // Within the lease plus an election and a keepalive round, with slack for the machine.
    assert!(takeover < Duration::from_secs(10), "{takeover:?}");
    node1.stop().await;
    site.wait_answer(&rest, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;

    // The killed member restarts (its old lease ended with the takeover): it joins and
    // serves the current answer at once.
    let pool = web_pool(&node1, &node2);
    let _back = site
        .start_member(old, &site.member_config(old, "", &pool))
        .await;
    site.wait_answer(&[old], WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    wait_for(LIMIT, "three members again", || async {
        site.status(old).await["cluster"]["members"]
            .as_array()
            .is_some_and(|m| m.len() == 3)
    })
    .await;
    drop(members);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_cut_off_from_etcd_keeps_or_refuses_and_rejoins() {
    let extras = ["", "on_lost = \"servfail\"", "on_lost = \"keep\""];
    let Some((site, _members, mut node1, node2)) = web_cluster(extras).await else {
        return;
    };
    site.cut_from_etcd(1);
    site.cut_from_etcd(2);
    wait_connected(&site, 1, false).await;
    wait_connected(&site, 2, false).await;
    site.wait_answer(&[1], WWW, Err(ResponseCode::ServFail), LIMIT)
        .await;
    holds_for(
        &site,
        &[2],
        &Ok(vec![node1.ip()]),
        Duration::from_millis(300),
    )
    .await;
    let status = site.status(1).await;
    assert_eq!(status["cluster"]["serving"], "servfail (cut off from etcd)");
    let metrics = site.get(1, "/metrics").await;
    assert!(
        metrics.contains("hadns_cluster{what=\"connected\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hadns_cluster_decision_served_seconds_count"),
        "{metrics}"
    );

    // The connected member (a majority of the live observers alone) moves; the others
    // cannot know.
    node1.stop().await;
    site.wait_answer(&[0], WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    holds_for(
        &site,
        &[2],
        &Ok(vec![node1.ip()]),
        Duration::from_millis(300),
    )
    .await;
    site.wait_answer(&[1], WWW, Err(ResponseCode::ServFail), LIMIT)
        .await;

    site.heal_etcd(1);
    site.heal_etcd(2);
    site.wait_answer(&ALL, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    wait_connected(&site, 1, true).await;
    assert_eq!(site.status(1).await["cluster"]["serving"], "agreed");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_etcd_quorum_no_answer_changes_until_it_returns() {
    let Some((mut site, _members, mut node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    site.stop_etcd_member(1);
    site.stop_etcd_member(2);
    for i in ALL {
        wait_connected(&site, i, false).await;
    }
    node1.stop().await;
    holds_for(&site, &ALL, &Ok(vec![node1.ip()]), Duration::from_secs(2)).await;
    site.restart_etcd_member(1);
    site.restart_etcd_member(2);
    site.wait_answer(&ALL, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_whose_watch_revision_was_compacted_reads_again() {
    let Some((site, _members, mut node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    site.cut_from_etcd(2);
    wait_connected(&site, 2, false).await;
    node1.stop().await;
    site.wait_answer(&[0, 1], WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    let status = site.etcdctl_run(&["endpoint", "status", "-w", "json"]);
    let revision = serde_json::from_str::<serde_json::Value>(&status).unwrap()[0]["Status"]
        ["header"]["revision"]
        .as_i64()
        .unwrap();
    site.etcdctl_run(&["compact", &revision.to_string()]);
    assert_eq!(site.status(2).await["cluster"]["resyncs"], 0);
    site.heal_etcd(2);
    site.wait_answer(&[2], WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    wait_for(LIMIT, "m3 to count its resynchronisation", || async {
        site.status(2).await["cluster"]["resyncs"] == 1
    })
    .await;
}

/// A decision (or drain list) in etcd that cannot be read is logged and counted, and the
/// member keeps serving the last one it read; the leader's next decision replaces it.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_decision_is_counted_and_the_last_one_kept() {
    let Some((site, _members, mut node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    site.etcdctl_run(&["put", "/hadns/test/decision", "{not json"]);
    site.etcdctl_run(&["put", "/hadns/test/drains", "[{\"pool\": 1}]"]);
    for i in ALL {
        wait_for(
            LIMIT,
            &format!("{} to count both values", MEMBERS[i]),
            || async { site.status(i).await["cluster"]["unreadable"] == 2 },
        )
        .await;
    }
    holds_for(
        &site,
        &ALL,
        &Ok(vec![node1.ip()]),
        Duration::from_millis(300),
    )
    .await;
    node1.stop().await;
    site.wait_answer(&ALL, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    let decision = site.etcdctl_run(&["get", "/hadns/test/decision", "--print-value-only"]);
    assert!(decision.contains("\"kind\":\"nodes\""), "{decision}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_through_one_member_moves_every_member() {
    let Some((site, _members, node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    let (code, body) = site.admin_post(1, "/pools/web/nodes/web1/drain").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("cluster-wide"), "{body}");
    site.wait_answer(&ALL, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    let status = site.status(2).await;
    let web1 = &status["pools"][0]["nodes"][0];
    assert_eq!(web1["drained"], true, "{web1}");
    let (code, body) = site.admin_post(0, "/pools/web/nodes/web1/undrain").await;
    assert_eq!(code, 200, "{body}");
    site.wait_answer(&ALL, WWW, Ok(vec![node1.ip()]), LIMIT)
        .await;
}

/// Samples every member's `db` answer until all answer `new`: no answer names two nodes,
/// and a member that answered `new` never answers `old` again.
async fn sample_until(site: &Site, old: IpAddr, new: IpAddr) {
    let mut moved = [false; 3];
    let deadline = Instant::now() + LIMIT;
    while moved.iter().any(|m| !m) {
        assert!(
            Instant::now() < deadline,
            "not every member moved: {moved:?}"
        );
        for i in ALL {
            let answer = site.answer(i, DB).await.expect("db answers");
            assert!(
                answer.len() <= 1,
                "{} answered two nodes: {answer:?}",
                MEMBERS[i]
            );
            if answer == [new] {
                moved[i] = true;
            } else {
                assert!(!moved[i], "{} went back to {old}", MEMBERS[i]);
                assert_eq!(answer, [old], "{}", MEMBERS[i]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_split_brain_seen_differently_agrees_on_the_newer_timeline() {
    let Some(mut site) = Site::build() else {
        return;
    };
    site.start_etcd().await;
    let pg1 = Pg::init_primary_at(&site.node_ip(2), Some(5432));
    let pg2 = Pg::init_standby_at(&site.node_ip(3), &pg1, Some(5432));
    pg2.wait_replaying().await;
    let pools = pg_pool(&pg1.node("pg1", 100), &pg2.node("pg2", 50));
    let members = site
        .start_members(|i| site.member_config(i, "", &pools))
        .await;
    site.wait_answer(&ALL, DB, Ok(vec![pg1.ip]), LIMIT).await;
    // m1 sees only the old primary, m2 only the standby about to be promoted; m3 both.
    site.cut(0, &site.node_ip(3));
    site.cut(1, &site.node_ip(2));
    wait_for(LIMIT, "m1 and m2 to lose a node each", || async {
        let status = site.status(2).await;
        let nodes = status["cluster"]["nodes"].as_array().unwrap().clone();
        let view = |node: &str, member: &str| {
            nodes
                .iter()
                .find(|n| n["node"] == node)
                .map(|n| n["views"][member].clone())
        };
        view("pg2", "m1") == Some("down".into()) && view("pg1", "m2") == Some("down".into())
    })
    .await;
    pg2.promote();
    sample_until(&site, pg1.ip, pg2.ip).await;
    let status = site.status(0).await;
    let db = status["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == DB)
        .unwrap()
        .clone();
    assert_eq!(db["nodes"], serde_json::json!(["pg2"]), "{db}");
    holds_for_db(&site, pg2.ip).await;
    drop(members);
}

/// Every member keeps answering `ip` for `db` for a second.
async fn holds_for_db(site: &Site, ip: IpAddr) {
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        for i in ALL {
            assert_eq!(site.answer(i, DB).await, Ok(vec![ip]), "{}", MEMBERS[i]);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vip_holder_cut_off_from_etcd_and_its_peer_releases_within_its_lease() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    let Some(mut site) = Site::build() else {
        return;
    };
    site.start_etcd().await;
    let _services = [site.start_service(0).await, site.start_service(1).await];
    let (ip1, ip2): (IpAddr, IpAddr) = (
        site.member_ip(0).parse().unwrap(),
        site.member_ip(1).parse().unwrap(),
    );
    let vip = site.ip(100);
    let pool = format!(
        "[[pool]]\nname = \"web\"\ncheck = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"300ms\"\n\
         rise = 1\nfall = 1\n\
         [[pool.node]]\nname = \"web1\"\naddress = \"{ip1}\"\nport = 7000\npriority = 100\n\
         [[pool.node]]\nname = \"web2\"\naddress = \"{ip2}\"\nport = 7000\npriority = 50\n\n\
         [[record]]\nname = \"{WWW}\"\npool = \"web\"\nfailback = false\n"
    );
    let vip_of = |node: &str| {
        format!(
            "\n[[vip]]\nrecord = \"{WWW}\"\nnode = \"{node}\"\naddress = \"{vip}\"\n\
             interface = \"eth0\"\nannounce_count = 3\nannounce_interval = \"100ms\"\n\
             takeover_timeout = \"1s\"\n"
        )
    };
    let configs = [
        pool.clone() + &vip_of("web1"),
        pool.clone() + &vip_of("web2"),
        pool.clone(),
    ];
    let members = site
        .start_members(|i| site.member_config(i, "", &configs[i]))
        .await;
    site.wait_answer(&ALL, WWW, Ok(vec![ip1]), LIMIT).await;
    wait_for(LIMIT, "m1 to hold the vip", || async {
        site.holds(0, &vip)
    })
    .await;

    // Who holds the vip, sampled; both at once counts only while both can be seen.
    let (stop, visible, both) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicU32::new(0)),
    );
    let sampler = {
        let (ns1, ns2, vip) = (site.ns("m1"), site.ns("m2"), vip.clone());
        let (stop, visible, both) = (stop.clone(), visible.clone(), both.clone());
        std::thread::spawn(move || {
            let mut samples = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let seen = visible.load(Ordering::SeqCst);
                let held = crate::cluster_site::holds(&ns1, &vip)
                    && crate::cluster_site::holds(&ns2, &vip);
                if held && seen && visible.load(Ordering::SeqCst) {
                    both.fetch_add(1, Ordering::Relaxed);
                }
                samples += 1;
            }
            samples
        })
    };

    visible.store(false, Ordering::SeqCst);
    let cut = Instant::now();
    site.plug(0, false);
    wait_for(LIMIT, "m1 to release the vip", || async {
        !site.holds(0, &vip)
    })
    .await;
    let released = cut.elapsed();
    eprintln!("m1 released the vip {released:?} after the cut (lease 2 s)");
    // Timed from its last keepalive answer, before the cut; slack for sampling.
    assert!(released < Duration::from_millis(2300), "{released:?}");
    site.wait_answer(&[1, 2], WWW, Ok(vec![ip2]), LIMIT).await;
    wait_for(LIMIT, "m2 to take the vip", || async {
        site.holds(1, &vip)
    })
    .await;

    site.plug(0, true);
    visible.store(true, Ordering::SeqCst);
    site.wait_answer(&[0], WWW, Ok(vec![ip2]), LIMIT).await;
    wait_connected(&site, 0, true).await;
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        assert!(!site.holds(0, &vip), "m1 took the vip back");
    }
    // Back in touch, it never even tried: it serves (and holds for) what it caught up
    // with, not the decision it knew when it was cut off.
    let events = site.events(0).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "vip_taken").count(),
        1,
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"vip_conflict"), "{kinds:?}");
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    assert!(samples > 10, "{samples} samples");
    assert_eq!(
        both.load(Ordering::Relaxed),
        0,
        "both held the vip in sight"
    );
    assert!(site.holds(1, &vip));
    drop(members);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_whose_configuration_differs_from_the_leaders_is_reported() {
    let Some(mut site) = Site::build() else {
        return;
    };
    site.start_etcd().await;
    let node1 = TcpBackend::start(&site.node_ip(0)).await;
    let node2 = TcpBackend::start(&site.node_ip(1)).await;
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
    let node1 = TcpBackend::start(&site.node_ip(0)).await;
    let node2 = TcpBackend::start(&site.node_ip(1)).await;
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
    let copy = Hadns::start_in_netns_at(&site.ns("m3"), &config, &[&listen], |_| {}).await;
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
    holds_for(
        &site,
        &ALL,
        &Ok(vec![node1.ip()]),
        Duration::from_millis(300),
    )
    .await;
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
    let mut dc1 = TcpBackend::start(&site.node_ip(0)).await;
    let dc2 = TcpBackend::start(&site.node_ip(1)).await;
    let sites = "[[site]]\nname = \"dc1\"\nnetworks = [\"10.1.0.0/16\"]\n\n\
                 [[site]]\nname = \"dc2\"\nnetworks = [\"10.2.0.0/16\"]\n";
    let config = crate::sites::web_by_site(&dc1, &dc2, sites, "healthy", "");
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
    use crate::secondary::{ZONE_NAME, soa_serial, transfer};
    let Some(mut site) = Site::build() else {
        return;
    };
    site.start_etcd().await;
    let mut node1 = TcpBackend::start(&site.node_ip(0)).await;
    let node2 = TcpBackend::start(&site.node_ip(1)).await;
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
        let notified = message.answers.first().map(crate::secondary::soa_serial);
        if notified == Some(serial) {
            let member = (0..MEMBERS.len())
                .find(|&i| site.member_ip(i) == peer.ip().to_string())
                .unwrap_or_else(|| panic!("a NOTIFY from {peer}"));
            from.insert(member);
        }
    }
}
