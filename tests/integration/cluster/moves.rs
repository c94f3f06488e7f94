//! What an operator or a database does, seen by every member: a drain through one member,
//! a PostgreSQL split brain seen differently, a vip holder cut off.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::support::cluster::{MEMBERS, Site, web_cluster};
use crate::support::dbs::Pg;
use crate::support::*;

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
/// between `old` and `new` a member may refuse (the old writer withdrawn, still taking
/// writes), and a member that refused or answered `new` never answers `old` again.
async fn sample_until(site: &Site, old: IpAddr, new: IpAddr) -> [bool; 3] {
    let mut moved = [false; 3];
    let mut left = [false; 3];
    let deadline = Instant::now() + LIMIT;
    while moved.iter().any(|m| !m) {
        assert!(
            Instant::now() < deadline,
            "not every member moved: {moved:?}"
        );
        for i in ALL {
            let answer = match site.answer(i, DB).await {
                Ok(answer) => answer,
                Err(ResponseCode::ServFail) => {
                    left[i] = true;
                    assert!(!moved[i], "{} refused after {new}", MEMBERS[i]);
                    continue;
                }
                Err(code) => panic!("{}: {code}", MEMBERS[i]),
            };
            assert!(
                answer.len() <= 1,
                "{} answered two nodes: {answer:?}",
                MEMBERS[i]
            );
            if answer == [new] {
                moved[i] = true;
            } else {
                assert!(!moved[i] && !left[i], "{} went back to {old}", MEMBERS[i]);
                assert_eq!(answer, [old], "{}", MEMBERS[i]);
            }
        }
    }
    left
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
    // pg1 still takes writes (nothing fences it here): withdrawn everywhere first, pg2
    // once every member served that and the TTL passed.
    let refused = sample_until(&site, pg1.ip, pg2.ip).await;
    assert_eq!(
        refused, [true; 3],
        "pg1 withdrawn on every member before pg2"
    );
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

/// Every member keeps answering `ip` for `db` (for `STILL`).
async fn holds_for_db(site: &Site, ip: IpAddr) {
    let end = Instant::now() + STILL;
    while Instant::now() < end {
        for i in ALL {
            assert_eq!(site.answer(i, DB).await, Ok(vec![ip]), "{}", MEMBERS[i]);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vip_holder_cut_off_from_etcd_and_its_peer_releases_within_its_lease() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

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

    // Who holds the vip, sampled all along (the cut included: a holder cut off must have
    // let go before the other takes it, or both hold it when the link comes back).
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (ns1, ns2, vip, stop) = (site.ns("m1"), site.ns("m2"), vip.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let m1 = crate::support::cluster::holds(&ns1, &vip);
                let m2 = crate::support::cluster::holds(&ns2, &vip);
                samples.push((Instant::now(), m1, m2));
            }
            samples
        })
    };

    let cut = Instant::now();
    site.plug(0, false);
    wait_for(LIMIT, "m1 to release the vip", || async {
        !site.holds(0, &vip)
    })
    .await;
    site.wait_answer(&[1, 2], WWW, Ok(vec![ip2]), LIMIT).await;
    wait_for(LIMIT, "m2 to take the vip", || async {
        site.holds(1, &vip)
    })
    .await;

    site.plug(0, true);
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
    let both = samples.iter().filter(|(_, m1, m2)| *m1 && *m2).count();
    assert_eq!(both, 0, "both held the vip ({} samples)", samples.len());
    // m1 let go (by the first sample without it) within its lease of the cut, timed from
    // its last acknowledged keepalive (before the cut), one keepalive early; m2 took it
    // only after that.
    let released = (samples.iter().find(|(_, m1, _)| !*m1))
        .expect("m1 released the vip")
        .0;
    let taken = (samples.iter().find(|(_, _, m2)| *m2))
        .expect("m2 took the vip")
        .0;
    eprintln!(
        "m1 released the vip {:?} after the cut (lease 2 s); m2 took it {:?} after that \
         ({} samples)",
        released.saturating_duration_since(cut),
        taken.saturating_duration_since(released),
        samples.len()
    );
    assert!(samples[0].1, "m1 held the vip when sampling began");
    assert!(released <= taken);
    assert!(
        released < cut + Duration::from_secs(2),
        "{:?}",
        released - cut
    );
    assert!(site.holds(1, &vip));
    drop(members);
}
