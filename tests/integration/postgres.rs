//! PostgreSQL primaries and replicas, with real clusters built by the tests.

use std::time::Duration;

use tokio::time::Instant;

use crate::support::admin::{admin_section, event_kinds, get, get_json, node, sample};
use crate::support::dbs::{Pg, pg_pool as pool};
use crate::support::*;

const DB: &str = "db.example.internal.";
const DB_RO: &str = "db-ro.example.internal.";
const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn postgres_primary_and_replicas_follow_the_cluster() {
    let pg1 = Pg::init_primary();
    let pg2 = Pg::init_standby(&pg1);
    // A separate initdb: another cluster, whatever it claims to be.
    let other = Pg::init_primary();
    pg2.wait_replaying().await;
    let nodes = pg1.node("pg1", 100) + &pg2.node("pg2", 50) + &other.node("other", 10);
    let mut hadns = Hadns::start(&pool(&nodes, "")).await;
    hadns.wait_for_answer(DB, &[pg1.ip], LIMIT).await;
    hadns.wait_for_answer(DB_RO, &[pg2.ip], LIMIT).await;
    hadns
        .wait_for_log(
            "node excluded: cluster identity differs pool=pg node=other",
            LIMIT,
        )
        .await;
    // Two records share the pool: still one session per node.
    let sessions = pg1
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hadns'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(
        sessions, 1,
        "one checker session per node, however many records"
    );
    let queries = QueryLoop::start(hadns.addr, DB);

    // A replica that stops replaying while the primary writes leaves db-ro, and returns.
    pg2.execute("SELECT pg_wal_replay_pause()").await;
    pg1.execute(
        "CREATE TABLE filler AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 20000) g",
    )
    .await;
    hadns.wait_for_answer(DB_RO, &[], LIMIT).await;
    hadns.wait_for_log("pg2 lags", LIMIT).await;
    pg2.execute("SELECT pg_wal_replay_resume()").await;
    hadns.wait_for_answer(DB_RO, &[pg2.ip], LIMIT).await;

    // The primary dies; the standby is promoted: db follows, well before the next interval.
    pg1.stop_immediate();
    hadns.wait_for_answer(DB, &[], LIMIT).await;
    pg2.promote();
    let promoted = Instant::now();
    hadns.wait_for_answer(DB, &[pg2.ip], LIMIT).await;
    println!(
        "db answered the promoted standby {:?} after promotion completed",
        promoted.elapsed()
    );

    // The old primary comes back alone, writable, on the older timeline: it never wins.
    pg1.start();
    hadns
        .wait_for_log("split_brain record=db.example.internal.", LIMIT)
        .await;
    for _ in 0..200 {
        assert_eq!(hadns.addresses(DB).await, Ok(vec![pg2.ip]));
    }
    let seen = queries.finish().await;
    println!("db answers during the test: {seen:?}");
    assert!(seen.contains_key(&Some(pg1.ip)) && seen.contains_key(&Some(pg2.ip)));
    assert!(
        !seen.contains_key(&Some(other.ip)),
        "the node of another cluster was answered"
    );
    hadns.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_split_brain_fences_the_loser() {
    let pg1 = Pg::init_primary();
    let pg2 = Pg::init_standby(&pg1);
    pg2.wait_replaying().await;
    pg1.execute("CREATE ROLE app LOGIN").await;
    let nodes = pg1.node("pg1", 100) + &pg2.node("pg2", 50);
    // A generous fence_timeout: a promotion's checkpoint can stall a loaded test machine's
    // disk for seconds, and this test is about the fence succeeding.
    let fencing = "fence = \"read-only\"\nfence_timeout = \"15s\"";
    let config = pool(&nodes, fencing) + &admin_section(false);
    let mut hadns = Hadns::start(&config).await;
    let admin_addr = hadns.admin().await;
    hadns.wait_for_answer(DB, &[pg1.ip], LIMIT).await;
    let status = get_json(admin_addr, "/status").await;
    assert_eq!(node(&status, "pg", "pg1")["role"], "primary");
    assert_eq!(node(&status, "pg", "pg2")["role"], "replica");
    assert!(node(&status, "pg", "pg2")["lag_bytes"].is_u64(), "{status}");
    let app = pg1.client_as("app").await;
    app.simple_query("SELECT 1").await.unwrap();
    let queries = QueryLoop::start(hadns.addr, DB);

    // Promote the standby while the old primary still runs and accepts writes.
    pg2.promote();
    hadns.wait_for_answer(DB, &[pg2.ip], LIMIT).await;
    hadns.wait_for_log("fenced pool=pg node=pg1", LIMIT).await;

    // The loser is read-only, and the application's session on it was ended.
    let admin = pg1.client().await;
    let row = admin
        .query_one("SHOW default_transaction_read_only", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "on");
    assert!(
        app.simple_query("SELECT 1").await.is_err(),
        "the app session on the loser survived"
    );
    let err = pg1
        .client_as("app")
        .await
        .simple_query("CREATE TABLE t (x int)")
        .await
        .unwrap_err();
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(message.contains("read-only"), "{err:?}");

    // pg1 until the promotion, then pg2: never back to the fenced loser.
    let (seen, sequence) = queries.finish_with_sequence().await;
    println!("db answers during the split brain: {seen:?}");
    let answered: Vec<_> = sequence.into_iter().flatten().collect();
    assert_eq!(answered, vec![pg1.ip, pg2.ip]);

    // The split brain and the fencing are events and metrics.
    let kinds = event_kinds(admin_addr).await;
    for kind in ["split_brain", "fencing", "fenced"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }
    let metrics = get(admin_addr, "/metrics").await.1;
    // At least once: a loaded machine may see the old primary flap before it is fenced.
    let split = sample(&metrics, "hadns_split_brain_total", &[("record", DB)]);
    assert!(split.is_some_and(|n| n >= 1.0), "{metrics}");
    hadns.stop().await;
}

/// The target: interval 1s; the primary's postmaster is killed (SIGKILL) and the
/// standby promoted right after; how long after the promotion completes db answers it.
/// Completion is seen by polling `pg_is_in_recovery()` on the standby every millisecond.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_failover_time_after_promotion() {
    // Three rounds, for a median: the checker's fast interval itself is covered in paused
    // time (checks::tests); this is the real promotion, end to end.
    let mut times = Vec::new();
    for _ in 0..3 {
        let primary = Pg::init_primary();
        let standby = Pg::init_standby(&primary);
        standby.wait_replaying().await;
        let nodes = primary.node("a", 100) + &standby.node("b", 50);
        let hadns = Hadns::start(&pool(&nodes, "")).await;
        hadns.wait_for_answer(DB, &[primary.ip], LIMIT).await;
        let watcher = standby.client().await;
        primary.kill_postmaster();
        standby.promote_nowait();
        standby.wait_promoted(&watcher, LIMIT).await;
        let promoted = Instant::now();
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        loop {
            let m = udp_exchange(
                &socket,
                hadns.addr,
                &query_message(DB, hickory_proto::rr::RecordType::A, None),
            )
            .await;
            if addresses(&m) == vec![standby.ip] {
                break;
            }
            assert!(promoted.elapsed() < LIMIT);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(promoted.elapsed());
        hadns.stop().await;
    }
    times.sort();
    let median = times[times.len() / 2];
    println!("postgres failover after promotion (interval 1s): {times:?}, median {median:?}");
    // Generous: well below the 1s interval means the degraded pool was probed fast.
    assert!(median < Duration::from_millis(900), "median {median:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_errors_are_reported_once_per_change() {
    let pg = Pg::init_primary();
    let config = pool(&pg.node("pg1", 100), "")
        .replace("interval = \"1s\"", "interval = \"50ms\"")
        .replace(
            "user = \"postgres\"",
            "user = \"postgres\"\ndbname = \"nope\"",
        );
    let mut hadns = Hadns::with(&config)
        .log("info,hadns::checks=debug,hickory_server=warn")
        .start()
        .await;
    // Many probes fail the same way...
    hadns
        .wait_until("ten failed probes", LIMIT, |lines| {
            lines
                .iter()
                .filter(|l| l.contains("probe") && l.contains("ok=false"))
                .count()
                >= 10
        })
        .await;
    // ...and the reason is logged once (in the state change), not at every probe.
    let reason = "database \"nope\" does not exist";
    let info_lines: Vec<String> = hadns
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| {
            l.contains(reason) && (l.contains("node state changed") || l.contains("probe failing"))
        })
        .cloned()
        .collect();
    assert_eq!(info_lines.len(), 1, "{info_lines:?}");
    assert!(info_lines[0].contains("node state changed pool=pg node=pg1 from=unknown to=down"));
    // A different failure is a change of condition: reported again.
    pg.stop_immediate();
    hadns
        .wait_for_log(
            "probe failing pool=pg node=pg1 reason=connection refused",
            LIMIT,
        )
        .await;
    assert_eq!(hadns.log_count("reason=connection refused"), 1);
    hadns.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_password_file() {
    let pg = Pg::init_primary();
    // A role that must authenticate with a password (first pg_hba line wins).
    let hba = pg.data.join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all secret 127.0.0.0/8 scram-sha-256\n{text}"),
    )
    .unwrap();
    pg.execute("CREATE ROLE secret LOGIN SUPERUSER PASSWORD 's3cret'; SELECT pg_reload_conf()")
        .await;

    let secrets = tempfile::tempdir().unwrap();
    let good = secrets.path().join("good");
    let bad = secrets.path().join("bad");
    std::fs::write(&good, "s3cret\n").unwrap();
    std::fs::write(&bad, "wrong\n").unwrap();
    let config = |file: &std::path::Path, name: &str| {
        format!(
            "[[pool]]\nname = \"{name}\"\ncheck = \"postgres\"\ninterval = \"100ms\"\n\
             [pool.postgres]\nuser = \"secret\"\npassword_file = \"{}\"\nsslmode = \"disable\"\n{}\n\
             [[record]]\nname = \"{name}.example.internal.\"\npool = \"{name}\"\nselect = \"primary\"\n",
            file.display(),
            pg.node("pg1", 100)
        )
    };
    let text = config(&good, "good") + &config(&bad, "bad");
    let mut hadns = Hadns::start(&text).await;
    hadns
        .wait_for_answer("good.example.internal.", &[pg.ip], LIMIT)
        .await;
    hadns
        .wait_for_log("pool=bad node=pg1 from=unknown to=down reason=password authentication failed for user \"secret\"", LIMIT)
        .await;
    hadns.stop().await;
}

/// The pids of hadns's sessions on `pg`.
async fn hadns_sessions(pg: &Pg) -> Vec<i32> {
    pg.client()
        .await
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'hadns' ORDER BY pid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_keeps_database_sessions_of_unchanged_checks() {
    let pg1 = Pg::init_primary();
    let nodes = pg1.node("pg1", 100);
    let mut hadns = Hadns::start(&pool(&nodes, "")).await;
    hadns.wait_for_answer(DB, &[pg1.ip], LIMIT).await;
    let before = hadns_sessions(&pg1).await;
    assert_eq!(before.len(), 1);

    // Another record on the same pool: the checker and its session stay.
    let more =
        "\n[[record]]\nname = \"db2.example.internal.\"\npool = \"pg\"\nselect = \"primary\"\n";
    hadns.rewrite(&(pool(&nodes, "") + more), None);
    assert_eq!(hadns.sighup().await, "applied");
    hadns
        .wait_for_answer("db2.example.internal.", &[pg1.ip], LIMIT)
        .await;
    assert_eq!(hadns.addresses(DB).await.unwrap(), vec![pg1.ip]);
    assert_eq!(hadns_sessions(&pg1).await, before, "the same session");

    // A changed check gets a new checker: a new session, and the old one is closed.
    let changed = pool(&nodes, "").replace("timeout = \"1s\"", "timeout = \"2s\"");
    hadns.rewrite(&changed, None);
    assert_eq!(hadns.sighup().await, "applied");
    let old = before[0];
    wait_for(LIMIT, "one new session", || async {
        let now = hadns_sessions(&pg1).await;
        now.len() == 1 && now[0] != old
    })
    .await;
    assert_eq!(hadns.addresses(DB).await.unwrap(), vec![pg1.ip]);
}
