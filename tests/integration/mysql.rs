//! MariaDB primary and replica: `primary` follows `read_only`, and a crashed primary leaves
//! the answer at once through the watch session.

use std::time::Duration;

use tokio::time::Instant;

use crate::support::dbs::Maria;
use crate::support::*;

const DB: &str = "db.example.internal.";
const DB_RO: &str = "db-ro.example.internal.";
const LIMIT: Duration = Duration::from_secs(20);

/// A mysql pool `maria` with `settings` (interval, rise, fall, fencing) and `nodes`, and the
/// record `db` answering its primary.
fn pool(settings: &str, nodes: &str) -> String {
    format!(
        "[[pool]]\nname = \"maria\"\ncheck = \"mysql\"\n{settings}\n\
         [pool.mysql]\nuser = \"root\"\nsslmode = \"disable\"\n{nodes}\n\
         [[record]]\nname = \"{DB}\"\npool = \"maria\"\nselect = \"primary\"\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_primary_follows_read_only() {
    let m1 = Maria::start(1, false).await;
    let mut m2 = Maria::start(2, true).await;
    m2.replicate_from(&m1).await;
    let nodes = m1.node("m1", 100) + &m2.node("m2", 50);
    let config = pool(
        "interval = \"1s\"\ntimeout = \"1s\"\nrise = 1\nfall = 2",
        &nodes,
    ) + &format!(
        "\n[[record]]\nname = \"{DB_RO}\"\npool = \"maria\"\nselect = \"replicas\"\nmax_lag = \"5s\"\n"
    );
    let hadns = Hadns::start(&config).await;
    hadns.wait_for_answer(DB, &[m1.ip], LIMIT).await;
    hadns.wait_for_answer(DB_RO, &[m2.ip], LIMIT).await;
    let queries = QueryLoop::start(hadns.addr, DB);

    // Switch roles the way an HA manager does: the old primary read-only first.
    m1.execute("SET GLOBAL read_only = 1").await;
    hadns.wait_for_answer(DB, &[], LIMIT).await;
    m2.execute("STOP SLAVE").await;
    m2.execute("SET GLOBAL read_only = 0").await;
    hadns.wait_for_answer(DB, &[m2.ip], LIMIT).await;
    // The old primary is read-only but replicates from nothing: not a replica until it
    // replicates from the new one (replicas.rs has the details).
    hadns.wait_for_answer(DB_RO, &[], LIMIT).await;
    m1.replicate_from(&m2).await;
    hadns.wait_for_answer(DB_RO, &[m1.ip], LIMIT).await;

    // The writable server crashes: with interval 1s and fall 2 a periodic check would need
    // about two seconds; the broken watch session makes it leave the answer at once.
    m2.kill();
    let killed = Instant::now();
    hadns.wait_for_answer(DB, &[], LIMIT).await;
    let gone = killed.elapsed();
    println!("a killed mariadbd left the db answer after {gone:?}");
    assert!(
        gone < Duration::from_millis(900),
        "took {gone:?}: not event-driven"
    );

    // Clients saw m1, nothing while no node was writable, m2, and nothing after the crash:
    // in that order, never back, never two.
    let (seen, sequence) = queries.finish_with_sequence().await;
    println!("db answers: {seen:?}");
    assert_eq!(sequence, vec![Some(m1.ip), None, Some(m2.ip), None]);
    hadns.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_second_writable_node_is_fenced() {
    use mysql_async::prelude::Queryable;
    let m1 = Maria::start(1, false).await;
    let m2 = Maria::start(2, true).await;
    let nodes = m1.node("m1", 100) + &m2.node("m2", 50);
    let config = pool(
        "interval = \"100ms\"\nrise = 1\nfall = 1\nfence = \"read-only\"\nfence_timeout = \"15s\"",
        &nodes,
    );
    let mut hadns = Hadns::start(&config).await;
    hadns.wait_for_answer(DB, &[m1.ip], LIMIT).await;
    // The application has its own user: hadns's (root here) sessions are never killed.
    m2.create_user("app", "").await;
    let mut app = mysql_async::Conn::new(m2.opts_as("app")).await.unwrap();
    let queries = QueryLoop::start(hadns.addr, DB);

    // m2 becomes writable beside the published m1. MySQL has no timelines: the published
    // node stays, and the other writable node is fenced.
    m2.execute("SET GLOBAL read_only = 0").await;
    hadns
        .wait_for_log("split_brain record=db.example.internal.", LIMIT)
        .await;
    hadns.wait_for_log("fenced pool=maria node=m2", LIMIT).await;
    assert_eq!(hadns.addresses(DB).await, Ok(vec![m1.ip]));
    let mut admin = mysql_async::Conn::new(m2.opts()).await.unwrap();
    let read_only: i64 = admin
        .query_first("SELECT @@read_only")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read_only, 1, "the loser is not read-only");
    assert!(
        app.query_drop("SELECT 1").await.is_err(),
        "the client connection on the loser survived"
    );

    let seen = queries.finish().await;
    assert!(
        !seen.contains_key(&Some(m2.ip)),
        "the fenced node was answered: {seen:?}"
    );
    hadns.stop().await;
}
