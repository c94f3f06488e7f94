//! hadns promotes a replica itself (`[pool.promote]`): MariaDB with GTIDs and
//! PostgreSQL, real servers, a client writing through the name all along.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde_json::Value;
use tokio::time::Instant;

use crate::support::dbs::{Maria, Writer};
use crate::support::*;

const DB: &str = "db.example.internal.";
const DB_RO: &str = "db-ro.example.internal.";
const LIMIT: Duration = Duration::from_secs(30);

/// A primary (server 1) and two replicas of it, a table `app.t` on all three; with
/// `semisync`, lossless semi-synchronous replication.
async fn mariadb_trio(semisync: bool) -> Vec<Maria> {
    let m1 = Maria::start(1, false).await;
    let m2 = Maria::start(2, true).await;
    let m3 = Maria::start(3, true).await;
    m1.execute("CREATE DATABASE app; CREATE TABLE app.t (n BIGINT PRIMARY KEY)")
        .await;
    for replica in [&m2, &m3] {
        replica.replicate_from(&m1).await;
    }
    if semisync {
        m1.semisync(true).await;
        m2.semisync(false).await;
        m3.semisync(false).await;
    }
    for replica in [&m2, &m3] {
        wait_for(LIMIT, "the replica to have app.t", || async {
            let mut conn = mysql_async::Conn::new(replica.opts()).await.unwrap();
            conn.query_drop("SELECT 1 FROM app.t LIMIT 1").await.is_ok()
        })
        .await;
    }
    vec![m1, m2, m3]
}

/// The pool `db` over `servers` (priorities 100, 50, 10), promoting with `promote`.
fn maria_config(servers: &[Maria], promote: &str) -> String {
    let nodes: String = servers
        .iter()
        .zip([100, 50, 10])
        .enumerate()
        .map(|(i, (m, priority))| m.node(&format!("m{}", i + 1), priority))
        .collect();
    format!(
        "[[pool]]\nname = \"db\"\ncheck = \"mysql\"\ninterval = \"200ms\"\ntimeout = \"500ms\"\n\
         rise = 1\nfall = 2\nfence = \"read-only\"\n\
         [pool.mysql]\nuser = \"root\"\nsslmode = \"disable\"\n\
         [pool.promote]\n{promote}\n{nodes}\n\
         [[record]]\nname = \"{DB}\"\npool = \"db\"\nselect = \"primary\"\nttl = 1\n\
         [[record]]\nname = \"{DB_RO}\"\npool = \"db\"\nselect = \"replicas\"\nttl = 1\n{}",
        admin::admin_section(true)
    )
}

fn ports(servers: &[Maria]) -> HashMap<IpAddr, u16> {
    servers.iter().map(|m| (m.ip, m.port)).collect()
}

/// The pool's promotion in /status.
async fn promotion(hadns: &mut Hadns) -> Value {
    let admin = hadns.admin().await;
    let status = admin::get_json(admin, "/status").await;
    status["pools"][0]["promotion"].clone()
}

/// Waits until the last promotion has an outcome; returns the promotion part.
async fn promotion_ended(hadns: &mut Hadns) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let p = promotion(hadns).await;
        if p["last"]["outcome"].is_string() && p["state"] != "running" {
            return p;
        }
        assert!(Instant::now() < deadline, "no promotion ended: {p:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn numbers(server: &Maria) -> Vec<u64> {
    let mut conn = mysql_async::Conn::new(server.opts()).await.unwrap();
    conn.query("SELECT n FROM app.t ORDER BY n").await.unwrap()
}

async fn replication_source(server: &Maria) -> Option<(String, String, String)> {
    let mut conn = mysql_async::Conn::new(server.opts()).await.unwrap();
    let row: Option<mysql_async::Row> = conn.query_first("SHOW SLAVE STATUS").await.unwrap();
    row.map(|r| {
        let text = |c: &str| {
            r.get::<Option<String>, &str>(c)
                .flatten()
                .unwrap_or_default()
        };
        (
            text("Master_Host"),
            text("Slave_IO_Running"),
            text("Slave_SQL_Running"),
        )
    })
}

fn steps(p: &Value) -> String {
    p["last"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {} {:.0}ms {}",
                s["step"],
                s["node"],
                s["ms"].as_f64().unwrap(),
                s["ok"]
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_a_killed_primary_is_replaced_and_no_acknowledged_write_is_lost() {
    let mut servers = mariadb_trio(true).await;
    let config = maria_config(
        &servers,
        "mode = \"auto\"\nmax_lag = \"100 transactions\"\nrejoin = \"auto\"\n\
         replication_user = \"root\"\nreplication_password = \"\"",
    );
    let mut hadns = Hadns::with(&config)
        .prepare(admin::write_token)
        .start()
        .await;
    let (m1, m2) = (servers[0].ip, servers[1].ip);
    hadns.wait_for_answer(DB, &[m1], LIMIT).await;
    let writer = Writer::start(hadns.addr, DB, ports(&servers));
    let started = Instant::now();
    writer.wait_for_write(m1, started, LIMIT).await;
    // Let some writes through, then kill the primary in the middle of them.
    wait_for(LIMIT, "200 acknowledged writes", || async {
        writer.acks().len() >= 200
    })
    .await;
    let queries = QueryLoop::start(hadns.addr, DB);
    servers[0].kill();
    let killed = Instant::now();

    let p = promotion_ended(&mut hadns).await;
    println!("promotion: {p:#}");
    assert_eq!(p["last"]["outcome"], "promoted", "{p:#}");
    // Both replicas received everything (semi-sync): priority chooses m2.
    assert_eq!(p["last"]["candidate"], "m2");
    let resumed = writer.wait_for_write(m2, killed, LIMIT).await;
    println!(
        "from the kill to the first write accepted through the name: {:?}; steps: {}",
        resumed - killed,
        steps(&p)
    );
    hadns.wait_for_answer(DB, &[m2], LIMIT).await;
    // The other replica follows the new primary.
    let m3 = servers[2].ip;
    let want = Some((m2.to_string(), "Yes".into(), "Yes".into()));
    wait_for_value(LIMIT, "m3 to replicate from m2", &want, || {
        replication_source(&servers[2])
    })
    .await;
    hadns.wait_for_answer(DB_RO, &[m3], LIMIT).await;

    // The old primary comes back writable, as a crashed server restarts: fenced at once,
    // never answered, then (rejoin = "auto") a replica of the new primary.
    servers[0].restart(false).await;
    wait_for(LIMIT, "m1 to replicate from m2", || async {
        replication_source(&servers[0]).await.map(|r| r.0) == Some(m2.to_string())
    })
    .await;
    let mut ro = vec![servers[0].ip, m3];
    ro.sort();
    hadns.wait_for_answer(DB_RO, &ro, LIMIT).await;
    let acks = writer.stop().await;
    // Clients saw m1, perhaps nothing for a moment, then m2: never m1 again, never m3.
    let (_, sequence) = queries.finish_with_sequence().await;
    println!("db answers: {sequence:?}");
    let after: Vec<_> = sequence.iter().skip_while(|a| **a == Some(m1)).collect();
    assert!(
        after.iter().all(|a| a.is_none() || **a == Some(m2)),
        "{sequence:?}"
    );
    assert_eq!(sequence.last(), Some(&Some(m2)));

    // Every acknowledged write is on the new primary, and on the replica that follows it.
    let on_m2 = numbers(&servers[1]).await;
    let lost: Vec<u64> = acks
        .iter()
        .map(|a| a.n)
        .filter(|n| on_m2.binary_search(n).is_err())
        .collect();
    println!(
        "{} writes acknowledged, {} on m2, lost: {lost:?}",
        acks.len(),
        on_m2.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged writes missing on the new primary: {lost:?}"
    );
    let kinds = admin::event_kinds(hadns.admin().await).await;
    assert!(kinds.iter().any(|k| k == "promoted"), "{kinds:?}");
    let metrics = admin::get(hadns.admin().await, "/metrics").await.1;
    assert_eq!(
        admin::sample(
            &metrics,
            "hadns_promotions_total",
            &[("pool", "db"), ("outcome", "promoted")]
        ),
        Some(1.0)
    );
    hadns.stop().await;
}
