//! Replicas that stopped replicating, or replicate from the wrong place, leave `replicas`
//! (real PostgreSQL and MariaDB servers); `/status` says why; they return once they
//! replicate from the primary and have caught up.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::support::admin::{admin_section, cli, get_json, record};
use crate::support::dbs::{Maria, Pg};
use crate::support::*;

const DB: &str = "db.example.internal.";
const DB_RO: &str = "db-ro.example.internal.";
const LIMIT: Duration = Duration::from_secs(20);
const INTERVAL: Duration = Duration::from_millis(500);
const MAX_LAG: Duration = Duration::from_secs(2);

fn config(check: &str, user: &str, max_lag: &str, nodes: &str) -> String {
    format!(
        "[[pool]]\nname = \"db\"\ncheck = \"{check}\"\ninterval = \"{}ms\"\nrise = 1\nfall = 1\n\
         [pool.{check}]\nuser = \"{user}\"\nsslmode = \"disable\"\n{}\n{nodes}\n\
         [[record]]\nname = \"{DB}\"\npool = \"db\"\nselect = \"primary\"\n\
         [[record]]\nname = \"{DB_RO}\"\npool = \"db\"\nselect = \"replicas\"\nmax_lag = \"{max_lag}\"\n{}",
        INTERVAL.as_millis(),
        // Test accounts other than root have their name as password (support/dbs/).
        if check == "mysql" && user != "root" {
            format!("password = \"{user}\"")
        } else {
            String::new()
        },
        admin_section(false)
    )
}

/// Why `db-ro` leaves out `node`, from /status (empty when it does not).
async fn left_out(hadns: &mut Hadns, node: &str) -> String {
    let admin = hadns.admin().await;
    let status: Value = get_json(admin, "/status").await;
    record(&status, DB_RO)["left_out"][node]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Inserts a row into `table` on `pg` every 20 ms until dropped: a primary that keeps writing.
fn keep_writing(pg: &Pg) -> tokio::task::JoinHandle<()> {
    let config = pg.config("postgres");
    tokio::spawn(async move {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS ticks (at timestamptz)")
            .await
            .unwrap();
        loop {
            if client
                .batch_execute("INSERT INTO ticks VALUES (now())")
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_standby_that_stops_replicating_leaves_replicas() {
    let pg1 = Pg::init_primary();
    pg1.execute("CREATE ROLE hadns LOGIN; GRANT pg_monitor TO hadns")
        .await;
    let pg2 = Pg::init_standby(&pg1);
    pg2.wait_replaying().await;
    let nodes = pg1.node("pg1", 100) + &pg2.node("pg2", 50);
    let mut hadns = Hadns::start(&config("postgres", "hadns", "2s", &nodes)).await;
    hadns.wait_for_answer(DB, &[pg1.ip], LIMIT).await;
    hadns.wait_for_answer(DB_RO, &[pg2.ip], LIMIT).await;
    assert_eq!(hadns.log_count("lacks privileges"), 0);
    let writer = keep_writing(&pg1);

    // The standby's replication is cut (no WAL receiver) while the primary writes: to
    // itself it is perfectly up to date; compared with the primary it is not a replica.
    let conninfo: String = pg2
        .client()
        .await
        .query_one("SHOW primary_conninfo", &[])
        .await
        .unwrap()
        .get(0);
    pg2.execute("ALTER SYSTEM SET primary_conninfo = ''").await;
    pg2.execute("SELECT pg_reload_conf()").await;
    // Generous for a loaded machine (the full suite runs tests side by side); a design
    // that trusts the standby's own view would never leave at all.
    const SLACK: Duration = Duration::from_secs(3);
    let cut = Instant::now();
    hadns.wait_for_answer(DB_RO, &[], LIMIT).await;
    let gone = cut.elapsed();
    println!("a standby without a WAL receiver left db-ro after {gone:?}");
    assert!(
        gone <= MAX_LAG + INTERVAL + SLACK,
        "{gone:?}: more than max_lag plus one interval"
    );
    let why = left_out(&mut hadns, "pg2").await;
    assert!(why.contains("does not replicate"), "{why}");

    // Replication restored: it streams again, catches up, and returns.
    pg2.execute(&format!(
        "ALTER SYSTEM SET primary_conninfo = '{}'",
        conninfo.replace('\'', "''")
    ))
    .await;
    pg2.execute("SELECT pg_reload_conf()").await;
    hadns.wait_for_answer(DB_RO, &[pg2.ip], LIMIT).await;
    assert_eq!(left_out(&mut hadns, "pg2").await, "");

    // Streaming, but replaying nothing: the time lag grows on hadns's clock.
    pg2.execute("SELECT pg_wal_replay_pause()").await;
    let paused = Instant::now();
    hadns.wait_for_answer(DB_RO, &[], LIMIT).await;
    let gone = paused.elapsed();
    println!("a standby that stopped replaying left db-ro after {gone:?}");
    assert!(
        gone >= MAX_LAG - INTERVAL,
        "{gone:?}: left before it could have been over max_lag"
    );
    assert!(
        gone <= MAX_LAG + INTERVAL + SLACK,
        "{gone:?}: more than max_lag plus one interval"
    );
    let why = left_out(&mut hadns, "pg2").await;
    assert!(why.contains("over max_lag"), "{why}");
    pg2.execute("SELECT pg_wal_replay_resume()").await;
    hadns.wait_for_answer(DB_RO, &[pg2.ip], LIMIT).await;
    writer.abort();
    hadns.stop().await;

    // Without pg_monitor (pg_read_all_stats) the WAL receiver's state is hidden: hadns
    // warns at start, and cannot call the standby a replica.
    pg1.execute("CREATE ROLE hadns_nomonitor LOGIN").await;
    pg2.wait_replaying().await;
    let mut hadns = Hadns::start(&config("postgres", "hadns_nomonitor", "2s", &nodes)).await;
    hadns.wait_for_answer(DB, &[pg1.ip], LIMIT).await;
    let warning = hadns.wait_for_log("lacks privileges", LIMIT).await;
    assert!(warning.contains("pg_monitor"), "{warning}");
    hadns.wait_for_answer(DB_RO, &[], LIMIT).await;
    let why = left_out(&mut hadns, "pg2").await;
    assert!(why.contains("pg_read_all_stats"), "{why}");
    hadns.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mariadb_old_master_is_not_a_replica_until_it_replicates_from_the_new_one() {
    let m1 = Maria::start(1, false).await;
    let m2 = Maria::start(2, true).await;
    m2.replicate_from(&m1).await;
    m1.execute("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT)")
        .await;
    m1.execute("INSERT INTO app.t VALUES ()").await;
    let nodes = m1.node("m1", 100) + &m2.node("m2", 50);
    let mut hadns = Hadns::start(&config("mysql", "root", "3 transactions", &nodes)).await;
    hadns.wait_for_answer(DB, &[m1.ip], LIMIT).await;
    hadns.wait_for_answer(DB_RO, &[m2.ip], LIMIT).await;

    // The HA manager promotes m2; the old master stays up read-only, replicating from
    // nothing, without the new primary's writes.
    m1.execute("SET GLOBAL read_only = 1").await;
    m2.execute("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0")
        .await;
    m2.execute("INSERT INTO app.t VALUES ()").await;
    hadns.wait_for_answer(DB, &[m2.ip], LIMIT).await;
    hadns.wait_for_answer(DB_RO, &[], LIMIT).await;
    for _ in 0..50 {
        assert_eq!(hadns.addresses(DB_RO).await, Ok(vec![]));
    }
    let why = left_out(&mut hadns, "m1").await;
    assert!(why.contains("does not replicate"), "{why}");
    let (ok, shown, _) = cli(&mut hadns, &["status"]).await;
    assert!(ok);
    assert!(
        shown.contains(&format!("{DB_RO} leaves out m1: does not replicate")),
        "{shown}"
    );

    // Once it replicates from the new primary and has caught up, it is a replica.
    m1.replicate_from(&m2).await;
    hadns.wait_for_answer(DB_RO, &[m1.ip], LIMIT).await;

    // Behind by more than max_lag transactions (a delayed replica), it leaves; it returns
    // when it catches up.
    m1.execute("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 3600; START SLAVE")
        .await;
    for _ in 0..5 {
        m2.execute("INSERT INTO app.t VALUES ()").await;
    }
    hadns.wait_for_answer(DB_RO, &[], LIMIT).await;
    let why = left_out(&mut hadns, "m1").await;
    assert!(why.contains("lags 5 transactions, over max_lag"), "{why}");
    m1.execute("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE")
        .await;
    hadns.wait_for_answer(DB_RO, &[m1.ip], LIMIT).await;

    // A stopped SQL thread: not replicating, whatever the position.
    m1.execute("STOP SLAVE SQL_THREAD").await;
    hadns.wait_for_answer(DB_RO, &[], LIMIT).await;
    let why = left_out(&mut hadns, "m1").await;
    assert!(why.contains("SQL thread No"), "{why}");
    hadns.stop().await;
}
