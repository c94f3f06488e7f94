//! Promotion: from a primary's death (SIGKILL) to the first write a client that reconnects
//! at once gets accepted through the name, over rounds, for MariaDB (semi-synchronous, a
//! writer running all along) and PostgreSQL; each round split into detection (kill to the
//! promotion's start), fence, catch-up, promotion, publication and reconnect (the rest);
//! and for MariaDB a primary's host that goes silent, to the name's new answer. The
//! candidate takes writes once no answer naming the old primary is usable (`expire`: the
//! TTL after its withdrawal), or at once when a `fence_command` fenced it.

use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::time::Instant;

use super::promotion::{
    DB, answered_instead_of, lsn, maria_config, mariadb_trio, promotion_ended,
    replicas_let_go_after, with_admin, write_through_name, writing,
};
use crate::support::dbs::{Pg, pg_pool};
use crate::support::nft::Silenced;
use crate::support::*;

const ROUNDS: usize = 10;

/// One round: the total and its parts, in milliseconds.
struct Round {
    total: f64,
    parts: Vec<(String, f64)>,
}

fn parse_time(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).expect("an RFC 3339 time")
}

/// The round's split from the promotion in /status: detection from the fault's wall time,
/// then `steps`, then `rest` (what is left of the total).
fn split(p: &Value, killed_wall: SystemTime, total: Duration, steps: &[&str], rest: &str) -> Round {
    let started = parse_time(p["last"]["started"].as_str().unwrap());
    let detection = started.duration_since(killed_wall).unwrap_or_default();
    let mut parts = vec![("detection".to_string(), detection.as_secs_f64() * 1000.0)];
    // In the order given: a failover's fence ends before or after the catch-up.
    let done = p["last"]["steps"].as_array().unwrap();
    for name in steps {
        let ms =
            (done.iter().find(|s| s["step"] == *name)).map_or(0.0, |s| s["ms"].as_f64().unwrap());
        parts.push((name.to_string(), ms));
    }
    let total = total.as_secs_f64() * 1000.0;
    let known: f64 = parts.iter().map(|(_, ms)| ms).sum();
    parts.push((rest.to_string(), (total - known).max(0.0)));
    Round { total, parts }
}

/// `stonith`: the pool has a `fence_command` (here one that only says it ran), which
/// fences the dead primary: the candidate does not wait for the answers naming it to expire.
async fn mariadb_round(stonith: bool) -> Round {
    let mut servers = mariadb_trio(true).await;
    let mut config = maria_config(&servers, "mode = \"auto\"\nblock = \"0s\"");
    if stonith {
        let command = "fence = \"read-only\"\nfence_command = [\"true\"]\n";
        config = config.replacen("fence = \"read-only\"\n", command, 1);
    }
    let mut hadns = with_admin(&config).await;
    let writer = writing(&hadns, &servers, 100).await;
    let killed_wall = SystemTime::now();
    servers[0].kill();
    let killed = Instant::now();
    let p = promotion_ended(&mut hadns).await;
    let candidate = p["last"]["candidate"].as_str().unwrap();
    let ip = if candidate == "m2" {
        servers[1].ip
    } else {
        servers[2].ip
    };
    let resumed = writer
        .wait_for_write(ip, killed, Duration::from_secs(30))
        .await;
    writer.stop().await;
    hadns.stop().await;
    split(&p, killed_wall, resumed - killed, KILLED_STEPS, "reconnect")
}

/// The steps a killed primary's promotion waits for, in order.
const KILLED_STEPS: &[&str] = &["fence", "catch_up", "expire", "promote", "publish"];

/// The primary's host goes silent: its packets dropped both ways (nftables, so root), the
/// replicas letting go after 1 s (`slave_net_timeout`); from the silence to the name
/// answering the new primary. The old primary's fence runs beside the other steps (it
/// waits for `fence_timeout`): it is not in the split.
async fn mariadb_silent_round() -> Round {
    let servers = mariadb_trio(true).await;
    replicas_let_go_after(&servers, 1).await;
    let config = maria_config(&servers, "mode = \"auto\"\nblock = \"0s\"");
    let mut hadns = with_admin(&config).await;
    let writer = writing(&hadns, &servers, 100).await;
    let silence = Silenced::server(servers[0].ip, servers[0].port);
    let (silent_wall, silent) = (SystemTime::now(), Instant::now());
    let (_, moved) = answered_instead_of(&hadns, servers[0].ip).await;
    let p = promotion_ended(&mut hadns).await;
    drop(silence);
    writer.stop().await;
    hadns.stop().await;
    let steps = &["catch_up", "expire", "promote", "publish"];
    split(&p, silent_wall, moved - silent, steps, "answer")
}

async fn postgres_round() -> Round {
    let p1 = Pg::init_primary();
    p1.execute("CREATE TABLE t (n bigint PRIMARY KEY, pad text)")
        .await;
    let p2 = Pg::init_standby(&p1);
    let p3 = Pg::init_standby(&p1);
    p2.wait_replaying().await;
    p3.wait_replaying().await;
    let nodes = p1.node("p1", 100) + &p2.node("p2", 50) + &p3.node("p3", 10);
    let config = pg_pool(&nodes, "fence = \"read-only\"").replace(
        "[pool.postgres]",
        "[pool.promote]\nmode = \"auto\"\nblock = \"0s\"\n[pool.postgres]",
    ) + &admin::admin_section(true);
    let mut hadns = with_admin(&config).await;
    hadns
        .wait_for_answer(DB, &[p1.ip], Duration::from_secs(30))
        .await;
    let written = lsn(&p1, "SELECT pg_current_wal_lsn()::text").await;
    for standby in [&p2, &p3] {
        wait_for_value(
            Duration::from_secs(30),
            "the standby to receive",
            &written,
            || lsn(standby, "SELECT pg_last_wal_receive_lsn()::text"),
        )
        .await;
    }
    let killed_wall = SystemTime::now();
    p1.kill_postmaster();
    let killed = Instant::now();
    write_through_name(&hadns, &[&p1, &p2, &p3], 1).await;
    let total = killed.elapsed();
    let p = promotion_ended(&mut hadns).await;
    hadns.stop().await;
    split(&p, killed_wall, total, KILLED_STEPS, "reconnect")
}

fn report(name: &str, rounds: &[Round]) {
    let mut totals: Vec<f64> = rounds.iter().map(|r| r.total).collect();
    totals.sort_by(f64::total_cmp);
    let median = totals[totals.len() / 2];
    let max = totals[totals.len() - 1];
    let parts: Vec<String> = rounds[0]
        .parts
        .iter()
        .enumerate()
        .map(|(i, (part, _))| {
            let mut values: Vec<f64> = rounds.iter().map(|r| r.parts[i].1).collect();
            values.sort_by(f64::total_cmp);
            format!("{part} {:.0}", values[values.len() / 2])
        })
        .collect();
    println!(
        "| {name} | {} | {median:.0} ms | {max:.0} ms | {} |",
        rounds.len(),
        parts.join(" · ")
    );
}

pub async fn promotion_benchmark() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    println!("| database | rounds | median to first write | max | median split (ms) |");
    println!("| --- | --- | --- | --- | --- |");
    let mut maria = Vec::new();
    for _ in 0..rounds {
        maria.push(mariadb_round(false).await);
    }
    report("MariaDB 10.11, semi-sync, single hadns", &maria);
    let mut stonith = Vec::new();
    for _ in 0..rounds {
        stonith.push(mariadb_round(true).await);
    }
    report(
        "MariaDB 10.11, semi-sync, single hadns, fence_command",
        &stonith,
    );
    let mut pg = Vec::new();
    for _ in 0..rounds {
        pg.push(postgres_round().await);
    }
    report("PostgreSQL, single hadns", &pg);
    println!();
    let mut silent = Vec::new();
    for _ in 0..rounds {
        silent.push(mariadb_silent_round().await);
    }
    println!(
        "| primary's host silent | rounds | median to the new answer | max | median split (ms) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    report("MariaDB 10.11, semi-sync, single hadns", &silent);
    println!();
}
