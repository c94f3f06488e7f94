//! What an operator or a database does, seen by every member: a drain through one member,
//! a PostgreSQL split brain seen differently.

use std::net::IpAddr;
use std::time::Instant;

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
