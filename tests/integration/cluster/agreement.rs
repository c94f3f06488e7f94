//! Members agree: the same answer and serial everywhere, and every failure of a node, a
//! member, a leader, etcd or its history moves all members together or none.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use super::*;
use crate::support::cluster::{MEMBERS, Site, web_cluster, web_pool};
use crate::support::dbs::Pg;
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn every_member_gives_the_same_answer_and_serial_for_tcp_and_postgres() {
    let Some(mut site) = Site::build() else {
        return;
    };
    site.start_etcd().await;
    let node1 = TcpBackend::start_at(&site.node_ip(0)).await;
    let node2 = TcpBackend::start_at(&site.node_ip(1)).await;
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
    let dom = crate::support::admin::browser_dom(&format!("{admin}/")).await;
    assert!(
        dom.contains("member m1 · connected to etcd · leader m"),
        "{dom}"
    );
    assert!(!dom.contains("<div id=\"cluster\" hidden"), "{dom}");
    drop(members);
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
    // Thirty probe intervals, a lease and a TTL: nobody moves.
    holds_for(&site, &ALL, &Ok(vec![node1.ip()]), STILL).await;

    // The same member's view alone: a hadns without [cluster] in the same namespace moves.
    let alone = tcp_pool_config(&[&node1, &node2], "interval = \"100ms\"\nfall = 1", "");
    let listen = format!("{}:5300", site.member_ip(0));
    let single = Hadns::with(&alone)
        .netns(&site.ns("m1"))
        .listen(&[&listen])
        .start()
        .await;
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
    holds_for(&site, &ALL, &Ok(vec![node1.ip()]), STILL).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_node_moves_every_member() {
    let Some((site, _members, mut node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    // A client on each member, asking as fast as answers come, one try each: a lost query
    // or an answer with two nodes fails the test.
    let loops: Vec<QueryLoop> = (ALL.iter())
        .map(|&i| {
            let server = format!("{}:53", site.member_ip(i)).parse().unwrap();
            QueryLoop::start_from(site.client_ip(), server, WWW)
        })
        .collect();
    node1.stop().await;
    site.wait_answer(&ALL, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    node1.restart().await;
    site.wait_answer(&ALL, WWW, Ok(vec![node1.ip()]), LIMIT)
        .await;
    for (i, client) in ALL.into_iter().zip(loops) {
        let (seen, sequence) = client.finish_with_sequence().await;
        // Refusals between the writers (the old one withdrawn first) are left out: each
        // member named node1, node2, node1, and never went back.
        let writers: Vec<_> = sequence.into_iter().flatten().collect();
        assert_eq!(
            writers,
            [node1.ip(), node2.ip(), node1.ip()],
            "{}: {seen:?}",
            MEMBERS[i]
        );
    }
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
async fn members_cut_off_from_etcd_refuse_writers_and_rejoin() {
    let Some((site, _members, mut node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    // The two that do not lead are cut off: the leader is left alone, connected, with no
    // majority of the configured members behind it (`without_etcd_quorum_...` cuts the
    // leader off with the rest; `writers::a_cut_off_leader_...` the leader alone).
    let leader = leader_index(&site, 0).await.expect("a leader");
    let cut: Vec<usize> = ALL.into_iter().filter(|&i| i != leader).collect();
    for &i in &cut {
        site.cut_from_etcd(i);
    }
    for &i in &cut {
        wait_connected(&site, i, false).await;
    }
    // By default a writer record (www, `first`) is refused once a member cannot vouch for
    // its view.
    site.wait_answer(&cut, WWW, Err(ResponseCode::ServFail), LIMIT)
        .await;
    let status = site.status(cut[0]).await;
    assert_eq!(status["cluster"]["writers_on_lost"], "servfail");
    assert_eq!(status["cluster"]["writers_current_seconds"], 0.0);
    let www = &status["records"].as_array().unwrap()[0];
    assert_eq!(www["answer"], "servfail", "{www}");
    let metrics = site.get(cut[0], "/metrics").await;
    assert!(
        metrics.contains("hadns_cluster{what=\"connected\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hadns_cluster_decision_served_seconds_count"),
        "{metrics}"
    );

    // The connected leader alone is not a majority of the three configured: it sees node1
    // fail and moves nothing (its own view says down: it waits for a majority's).
    node1.stop().await;
    wait_for(LIMIT, "the leader to see node1 down", || async {
        let status = site.status(leader).await;
        let nodes = status["cluster"]["nodes"].as_array().unwrap().clone();
        (nodes.iter()).any(|n| n["node"] == "web1" && n["views"][MEMBERS[leader]] == "down")
    })
    .await;
    holds_for(&site, &[leader], &Ok(vec![node1.ip()]), STILL).await;
    site.wait_answer(&cut, WWW, Err(ResponseCode::ServFail), LIMIT)
        .await;

    for &i in &cut {
        site.heal_etcd(i);
    }
    site.wait_answer(&ALL, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    for &i in &cut {
        wait_connected(&site, i, true).await;
        assert_eq!(site.status(i).await["cluster"]["serving"], "agreed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_etcd_quorum_no_answer_changes_until_it_returns() {
    // Writers kept (`writers_on_lost = "keep"`) to see that nothing is decided: by
    // default they would be refused once etcd stops confirming the leases (see
    // members_cut_off_from_etcd_refuse_writers_and_rejoin).
    let keep = "writers_on_lost = \"keep\"";
    let Some((mut site, _members, mut node1, node2)) = web_cluster([keep; 3]).await else {
        return;
    };
    site.stop_etcd_member(1);
    site.stop_etcd_member(2);
    for i in ALL {
        wait_connected(&site, i, false).await;
        let status = site.status(i).await;
        assert_eq!(
            status["cluster"]["writers_on_lost"], "keep",
            "{}",
            MEMBERS[i]
        );
    }
    node1.stop().await;
    holds_for(&site, &ALL, &Ok(vec![node1.ip()]), STILL).await;
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
    holds_for(&site, &ALL, &Ok(vec![node1.ip()]), STILL).await;
    node1.stop().await;
    site.wait_answer(&ALL, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    let decision = site.etcdctl_run(&["get", "/hadns/test/decision", "--print-value-only"]);
    assert!(decision.contains("\"kind\":\"nodes\""), "{decision}");
}

/// A member paused for longer than its lease (a long GC pause, a frozen VM), while the
/// writer dies and the others move: woken, it must not name the old writer even once,
/// neither to the queries that waited in its socket during the pause nor to new ones,
/// before its own timers have run. Its writer records answer SERVFAIL until etcd confirms
/// its lease again and it has caught up, then the agreed writer.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_woken_from_a_pause_never_names_the_old_writer() {
    use nix::sys::signal::Signal;
    let Some((site, members, mut node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    members[2].signal(Signal::SIGSTOP);
    node1.stop().await;
    site.wait_answer(&[0, 1], WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    // Paused for longer than its lease: etcd dropped its key.
    wait_for(LIMIT, "m3's key to expire", || async {
        let status = site.status(0).await;
        (status["cluster"]["members"].as_array().unwrap().iter()).all(|m| m["name"] != "m3")
    })
    .await;
    // Queries that wait in the paused member's socket, then the member woken.
    let socket = UdpSocket::bind(SocketAddr::new(site.client_ip(), 0))
        .await
        .unwrap();
    let server: SocketAddr = format!("{}:53", site.member_ip(2)).parse().unwrap();
    let waiting: Vec<Message> = (0..20)
        .map(|_| query_message(WWW, RecordType::A, None))
        .collect();
    for query in &waiting {
        socket
            .send_to(&query.to_vec().unwrap(), server)
            .await
            .unwrap();
    }
    members[2].signal(Signal::SIGCONT);
    let mut answers = Vec::new();
    let mut buf = vec![0u8; 4096];
    while answers.len() < waiting.len() {
        let received = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
            .await
            .expect("the woken member answers the queries that waited");
        answers.push(Message::from_vec(&buf[..received.unwrap()]).unwrap());
    }
    for answer in &answers {
        assert!(
            !addresses(answer).contains(&node1.ip()),
            "the woken member named the old writer: {answer:?}"
        );
    }
    // And every answer after, until it serves the agreed writer: never node1.
    let deadline = Instant::now() + LIMIT;
    loop {
        let query = query_message(WWW, RecordType::A, None);
        let answer = udp_exchange_once(&socket, server, &query, Duration::from_secs(2))
            .await
            .expect("the woken member answers");
        let got = addresses(&answer);
        assert!(
            !got.contains(&node1.ip()),
            "named the old writer: {answer:?}"
        );
        if got == vec![node2.ip()] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "m3 did not serve node2 again: {answer:?}"
        );
    }
    assert!(
        (answers.iter()).any(|a| a.metadata.response_code == ResponseCode::ServFail),
        "the queries that waited were refused"
    );
}
