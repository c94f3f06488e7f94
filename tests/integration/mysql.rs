//! MariaDB primary and replica: `primary` follows `read_only`, and a crashed primary leaves
//! the answer at once through the watch session.

use std::time::Duration;

use tokio::time::Instant;

use crate::dbs::Maria;
use crate::harness::*;

const DB: &str = "db.example.internal.";
const DB_RO: &str = "db-ro.example.internal.";
const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_primary_follows_read_only() {
    let m1 = Maria::start("127.0.0.30", 1, false).await;
    let mut m2 = Maria::start("127.0.0.31", 2, true).await;
    m2.replicate_from(&m1).await;
    let config = format!(
        r#"
[[pool]]
name = "maria"
check = "mysql"
interval = "1s"
timeout = "1s"
rise = 1
fall = 2
[pool.mysql]
user = "root"
sslmode = "disable"
{}{}
[[record]]
name = "{DB}"
pool = "maria"
select = "primary"

[[record]]
name = "{DB_RO}"
pool = "maria"
select = "replicas"
max_lag = "5s"
"#,
        m1.node("m1", 100),
        m2.node("m2", 50)
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

    let seen = queries.finish().await;
    println!("db answers: {seen:?}");
    hadns.stop().await;
}
