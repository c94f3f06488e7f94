//! Promotion in cluster mode (issue 25): only the leader promotes, on the majority's
//! merged views, under the rules that keep two writers from being named. Three real
//! MariaDB servers on the site's node addresses (the host's side), three hadns members in
//! their namespaces, a real three-member etcd.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use mysql_async::prelude::Queryable;
use serde_json::Value;

use super::*;
use crate::promotion::{ports, replicated_trio};
use crate::support::cluster::checker::{
    Sampler, Seen, first_named, last_named, two_writers, two_writers_while_up,
};
use crate::support::dbs::{Maria, Writer};

const TTL: Duration = Duration::from_secs(1);

/// The site, its members (promoting `db` automatically) and the three servers: m1 the
/// primary (priority 100), m2 (50) and m3 (10) its replicas, which notice a silent
/// primary within 2 s (`slave_net_timeout`).
async fn maria_cluster(semisync: bool) -> Option<(Site, Vec<Hadns>, Vec<Maria>)> {
    let promote = "mode = \"auto\"";
    let (site, members, servers, _) = self::maria_cluster_with(semisync, promote).await?;
    Some((site, members, servers))
}

/// The same with `promote` as `[pool.promote]` (rejoin added); the pool's configuration
/// too.
pub(super) async fn maria_cluster_with(
    semisync: bool,
    promote: &str,
) -> Option<(Site, Vec<Hadns>, Vec<Maria>, String)> {
    let mut site = Site::build()?;
    site.start_etcd().await;
    let mut servers = Vec::new();
    for (i, read_only) in [false, true, true].into_iter().enumerate() {
        servers.push(Maria::start_on(&site.node_ip(i), i as u32 + 1, read_only, false).await);
    }
    let servers: [Maria; 3] = servers.try_into().ok().unwrap();
    let servers = replicated_trio(servers, semisync).await;
    for replica in &servers[1..] {
        replica
            .execute("SET GLOBAL slave_net_timeout = 2; STOP SLAVE; START SLAVE")
            .await;
    }
    let nodes: String = (servers.iter().zip([100, 50, 10]).enumerate())
        .map(|(i, (m, priority))| m.node(&format!("m{}", i + 1), priority))
        .collect();
    let pool = format!(
        "[[pool]]\nname = \"db\"\ncheck = \"mysql\"\ninterval = \"200ms\"\ntimeout = \"500ms\"\n\
         rise = 1\nfall = 2\nfence = \"read-only\"\n\
         [pool.mysql]\nuser = \"root\"\nsslmode = \"disable\"\n\
         [pool.promote]\n{promote}\nrejoin = \"auto\"\nreplication_user = \"root\"\n\
         replication_password = \"\"\n{nodes}\n\
         [[record]]\nname = \"{DB}\"\npool = \"db\"\nselect = \"primary\"\nttl = 1\n"
    );
    let members = site
        .start_members(|i| site.member_config(i, "", &pool))
        .await;
    site.wait_answer(&ALL, DB, Ok(vec![servers[0].ip]), LIMIT)
        .await;
    Some((site, members, servers, pool))
}

/// Member `i`'s view of pool `db`'s promotion (`/status`).
async fn promotion(site: &Site, i: usize) -> Value {
    site.status(i).await["pools"][0]["promotion"].clone()
}

/// Whether `server` is read-only (false while it cannot say: a fence ends sessions).
async fn read_only(server: &Maria) -> bool {
    let Ok(mut conn) = mysql_async::Conn::new(server.opts()).await else {
        return false;
    };
    let on: Option<u8> = conn.query_first("SELECT @@read_only").await.unwrap_or(None);
    on == Some(1)
}

/// The host `server` replicates from (none while it cannot say).
async fn source(server: &Maria) -> Option<String> {
    let mut conn = mysql_async::Conn::new(server.opts()).await.ok()?;
    let row: Option<mysql_async::Row> = conn.query_first("SHOW SLAVE STATUS").await.ok()?;
    row?.get::<String, _>("Master_Host")
}

async fn numbers(server: &Maria) -> Vec<u64> {
    let mut conn = mysql_async::Conn::new(server.opts()).await.unwrap();
    conn.query("SELECT n FROM app.t ORDER BY n").await.unwrap()
}

/// Events of kind `kind` on member `i`.
async fn events_of(site: &Site, i: usize, kind: &str) -> Vec<Value> {
    (site.events(i).await.into_iter())
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leader_promotes_a_killed_primarys_replica_and_no_acknowledged_write_is_lost() {
    let Some((site, _members, mut servers)) = maria_cluster(true).await else {
        return;
    };
    let dns: SocketAddr = format!("{}:53", site.member_ip(1)).parse().unwrap();
    let writer = Writer::start(dns, DB, ports(&servers));
    wait_for(LIMIT, "writes through the name", || async {
        writer.acks().len() >= 200
    })
    .await;
    let sampler = Sampler::start(&site, DB, Duration::from_millis(10));
    let killed = tokio::time::Instant::now();
    servers[0].kill();
    // Semi-sync waits for one replica: the other may miss the last transaction, and then
    // the one that received it is promoted; with both equal, m2's priority.
    let candidates = [servers[1].ip, servers[2].ip];
    wait_for(LIMIT, "member 1 to name a new primary", || async {
        matches!(site.answer(0, DB).await.as_deref(), Ok([ip]) if candidates.contains(ip))
    })
    .await;
    let new = match site.answer(0, DB).await.as_deref() {
        Ok([ip]) if *ip == servers[1].ip => 1,
        _ => 2,
    };
    let (name, follower) = (format!("m{}", new + 1), 3 - new);
    site.wait_answer(&ALL, DB, Ok(vec![servers[new].ip]), LIMIT)
        .await;
    let moved = killed.elapsed();
    let first = writer.wait_for_write(servers[new].ip, killed, LIMIT).await;
    let samples = sampler.stop();
    // m1 takes no writes from anyone while it is down (until its restart below).
    let restart = Instant::now() + Duration::from_secs(3600);
    let down = [(servers[0].ip, killed.into_std(), restart)];
    let overlap = two_writers_while_up(&samples, TTL, &down);
    let acks = writer.stop().await;
    // Semi-synchronous: every acknowledged write is on the new primary.
    let kept = numbers(&servers[new]).await;
    let lost: Vec<u64> = (acks.iter().map(|a| a.n))
        .filter(|n| kept.binary_search(n).is_err())
        .collect();
    eprintln!(
        "{} writes acknowledged, {} lost; every member named {name} {moved:?} after the kill, \
         the first write on {name} {:?} after it; two usable writers named {overlap:?}",
        acks.len(),
        lost.len(),
        first - killed,
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert_eq!(overlap, Duration::ZERO);
    // One member promoted: the leader. Every member shows the outcome in its way.
    let leader = leader_index(&site, 0).await.expect("a leader");
    let mut promoted = Vec::new();
    for i in ALL {
        if !events_of(&site, i, "promoted").await.is_empty() {
            promoted.push(i);
        }
    }
    assert_eq!(promoted, vec![leader], "only the leader promotes");
    wait_for(LIMIT, "the promotion to end on the leader", || async {
        promotion(&site, leader).await["last"]["outcome"] == "promoted"
    })
    .await;
    // Another member shows it from etcd once the leader's last record reached it.
    let other = (leader + 1) % 3;
    wait_for(
        LIMIT,
        "another member to show the promotion ended",
        || async { promotion(&site, other).await["state"] == "idle" },
    )
    .await;
    let shown = promotion(&site, other).await;
    assert!(
        shown["detail"].as_str().unwrap().contains("leader"),
        "{shown:#}"
    );
    // The other replica follows the new primary.
    let primary = Some(servers[new].ip.to_string());
    wait_for(
        LIMIT,
        "the other replica to follow the new primary",
        || async { source(&servers[follower]).await == primary },
    )
    .await;
    // The old primary back, writable: fenced by the leader, never named, rejoined.
    servers[0].restart(false).await;
    wait_for(LIMIT, "the old primary fenced", || read_only(&servers[0])).await;
    wait_for(LIMIT, "the old primary rejoined", || async {
        source(&servers[0]).await == primary
    })
    .await;
    for i in ALL {
        assert_eq!(site.answer(i, DB).await, Ok(vec![servers[new].ip]));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_cut_off_from_one_member_only_is_not_replaced() {
    let Some((site, _members, servers)) = maria_cluster(false).await else {
        return;
    };
    let alone = 2;
    site.cut(alone, &site.node_ip(0));
    wait_for(LIMIT, "m3 to see m1 down", || async {
        site.status(alone).await["pools"][0]["nodes"][0]["health"] == "down"
    })
    .await;
    // Long enough for a promotion a broken rule allowed: detection, the steps, a lease.
    let end = Instant::now() + STILL;
    while Instant::now() < end {
        for i in ALL {
            assert_eq!(
                site.answer(i, DB).await,
                Ok(vec![servers[0].ip]),
                "{}",
                MEMBERS[i]
            );
        }
    }
    assert!(read_only(&servers[1]).await && read_only(&servers[2]).await);
    assert!(!read_only(&servers[0]).await);
    for i in ALL {
        assert!(events_of(&site, i, "promotion").await.is_empty());
    }
    site.heal(alone, &site.node_ip(0));
}

/// Data centre A (m1's member, its etcd member, the primary and A's client) cut off whole,
/// the replicas' streams from the primary with it. The majority promotes m2, but names it only once A's
/// member cannot name m1 (its lease ended) and the TTL passed; A refuses meanwhile. Healed,
/// the old primary (never fenced: it was out of reach, and took writes on its side) is
/// fenced at once and never named.
#[tokio::test(flavor = "multi_thread")]
async fn a_primarys_data_centre_cut_off_is_replaced_only_under_the_partition_rules() {
    let Some((site, _members, servers)) = maria_cluster(false).await else {
        return;
    };
    let clients: Vec<IpAddr> = ALL.iter().map(|&d| site.dc_client_ip(d)).collect();
    let sampler = Sampler::clients(&site, &clients, DB, Duration::from_millis(10));
    sampler.wait_named(servers[0].ip).await;
    let primary = site.node_ip(0);
    let cut = Instant::now();
    site.isolate_dc(0, true);
    // The replicas (on the host, whose connections leave from its first address) lose
    // the primary too.
    let host = site.client_ip().to_string();
    site.cut_between(&host, &primary);
    site.wait_answer(&[1, 2], DB, Ok(vec![servers[1].ip]), LIMIT)
        .await;
    let moved = cut.elapsed();
    site.wait_answer(&[0], DB, Err(ResponseCode::ServFail), LIMIT)
        .await;
    assert!(!read_only(&servers[1]).await, "m2 promoted");
    site.isolate_dc(0, false);
    site.heal_between(&host, &primary);
    wait_for(LIMIT, "the old primary fenced", || read_only(&servers[0])).await;
    site.wait_answer(&ALL, DB, Ok(vec![servers[1].ip]), LIMIT)
        .await;
    let samples = sampler.stop();
    let overlap = two_writers(&samples, TTL);
    let first = first_named(&samples, servers[1].ip).unwrap();
    let last = last_named(&samples, servers[0].ip);
    eprintln!(
        "data centre A cut off: B and C name m2 {moved:?} after the cut (lease 2 s, TTL 1 s); \
         m1 last named {:?} after the cut; two writers named {overlap:?}",
        last.iter().flatten().max().map(|l| *l - cut)
    );
    assert_eq!(overlap, Duration::ZERO, "two writers named at once");
    assert!(last.iter().flatten().all(|l| first - *l >= TTL));
    assert!(
        (samples.iter())
            .all(|s| s.at < first
                || !matches!(&s.seen, Seen::Nodes(n) if n.contains(&servers[0].ip))),
        "the old primary named again"
    );
}

/// The leader stalls (SIGSTOP) while its candidate is still applying what it received (a
/// table lock holds its SQL thread): the next leader finds the promotion in etcd, reports
/// that it stopped, and promotes itself once the candidate can apply; the stalled leader,
/// resumed, stops before promoting anything (its lease is no longer proven).
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_stalled_mid_promotion_is_relieved_by_the_next_and_never_promotes() {
    let Some((site, members, mut servers)) = maria_cluster(false).await else {
        return;
    };
    let leader = leader_index(&site, 0).await.expect("a leader");
    // m2's SQL thread waits behind a lock; what m1 writes meanwhile sits in its relay log.
    let mut lock = mysql_async::Conn::new(servers[1].opts()).await.unwrap();
    lock.query_drop("LOCK TABLES app.t WRITE").await.unwrap();
    servers[0]
        .execute("INSERT INTO app.t (n) VALUES (1), (2), (3)")
        .await;
    wait_for(LIMIT, "m2 to receive the writes, not applied", || async {
        let mut conn = mysql_async::Conn::new(servers[1].opts()).await.unwrap();
        let row: Option<mysql_async::Row> = conn.query_first("SHOW SLAVE STATUS").await.unwrap();
        let received = row.unwrap().get::<String, _>("Gtid_IO_Pos");
        let applied: Option<String> = conn.query_first("SELECT @@gtid_slave_pos").await.unwrap();
        received.is_some_and(|r| r.ends_with("-3")) && applied.is_some_and(|a| a.ends_with("-2"))
    })
    .await;
    servers[0].kill();
    // Its record is in etcd and its steps are under way (the failover's fence, refused,
    // ends at once; the catch-up waits behind the lock).
    wait_for(LIMIT, "the leader to be catching m2 up", || async {
        let p = promotion(&site, leader).await;
        p["state"] == "running" && p["last"]["steps"].as_array().is_some_and(|s| !s.is_empty())
    })
    .await;
    members[leader].signal(nix::sys::signal::Signal::SIGSTOP);
    let others: Vec<usize> = ALL.into_iter().filter(|&i| i != leader).collect();
    wait_for(LIMIT, "another member to lead", || async {
        leader_index(&site, others[0])
            .await
            .is_some_and(|n| n != leader)
    })
    .await;
    let next = leader_index(&site, others[0]).await.expect("a leader");
    wait_for(
        LIMIT,
        "the next leader to report the stopped promotion",
        || async {
            (events_of(&site, next, "promotion_failed").await.iter()).any(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("stopped before")
            })
        },
    )
    .await;
    assert!(
        read_only(&servers[1]).await,
        "m2 promoted while it had not applied"
    );
    lock.query_drop("UNLOCK TABLES").await.unwrap();
    site.wait_answer(&others, DB, Ok(vec![servers[1].ip]), LIMIT)
        .await;
    assert_eq!(numbers(&servers[1]).await, vec![1, 2, 3], "applied first");
    // The stalled leader wakes: it never takes another step.
    members[leader].signal(nix::sys::signal::Signal::SIGCONT);
    site.wait_answer(&ALL, DB, Ok(vec![servers[1].ip]), LIMIT)
        .await;
    wait_for(LIMIT, "the stalled leader's promotion to end", || async {
        promotion(&site, leader).await["last"]["outcome"].is_string()
    })
    .await;
    let last = promotion(&site, leader).await["last"].clone();
    let steps = last["steps"].as_array().unwrap();
    assert!(
        !steps.iter().any(|s| s["step"] == "promote"),
        "the stalled leader took the promotion step: {last:#}"
    );
    assert!(
        last["outcome"]
            .as_str()
            .unwrap()
            .contains("the next leader decides"),
        "{last:#}"
    );
    let promoted = events_of(&site, next, "promoted").await;
    assert_eq!(promoted.len(), 1, "{promoted:#?}");
}
