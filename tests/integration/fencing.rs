//! Fencing with exactly the grants docs/configuration.md lists, and with each one taken
//! away: the fence ends every application session on the loser (never hadns's own, and
//! counts only the others), and fails loudly, naming the privilege, when one is missing.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde_json::Value;

use crate::support::admin::{admin_section, get_json, node};
use crate::support::dbs::{Maria, Pg};
use crate::support::*;

const DB: &str = "db.example.internal.";
const LIMIT: Duration = Duration::from_secs(20);

fn config(check: &str, user: &str, password: bool, nodes: &str) -> String {
    format!(
        "[[pool]]\nname = \"db\"\ncheck = \"{check}\"\ninterval = \"100ms\"\nrise = 1\nfall = 1\n\
         fence = \"read-only\"\nfence_timeout = \"10s\"\n\
         [pool.{check}]\nuser = \"{user}\"\nsslmode = \"disable\"\n{}\n{nodes}\n\
         [[record]]\nname = \"{DB}\"\npool = \"db\"\nselect = \"primary\"\n{}",
        if password {
            format!("password = \"{user}\"")
        } else {
            String::new()
        },
        admin_section(false)
    )
}

/// The node's last fence in /status, and the fences counted in /metrics.
async fn fence_status(hadns: &mut Hadns, name: &str) -> (Value, String) {
    let admin = hadns.admin().await;
    let status = get_json(admin, "/status").await;
    let (_, metrics) = crate::support::admin::get(admin, "/metrics").await;
    let counted = metrics
        .lines()
        .filter(|l| l.starts_with("hadns_fences_total") && l.contains(&format!("node=\"{name}\"")))
        .collect::<Vec<_>>()
        .join("\n");
    (node(&status, "db", name)["fence"].clone(), counted)
}

/// MariaDB 10.11's grants, as docs/configuration.md gives them.
const MARIADB_GRANTS: [&str; 4] = [
    "SLAVE MONITOR",
    "PROCESS",
    "CONNECTION ADMIN",
    "READ_ONLY ADMIN",
];

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_fencing_with_exactly_the_documented_grants() {
    let m1 = Maria::start(1, false).await;
    let m2 = Maria::start(2, true).await;
    let nodes = m1.node("m1", 100) + &m2.node("m2", 50);
    for m in [&m1, &m2] {
        m.create_user("app", "").await;
    }

    // Every grant, then each one missing, then SUPER in place of the three admin grants
    // (what the docs listed before: on 10.11 SUPER no longer includes READ_ONLY ADMIN).
    let without = |missing: &str| -> Vec<&str> {
        MARIADB_GRANTS
            .iter()
            .copied()
            .filter(|g| *g != missing)
            .collect()
    };
    let mut cases = vec![(MARIADB_GRANTS.to_vec(), None)];
    cases.extend(MARIADB_GRANTS.iter().map(|g| (without(g), Some(*g))));
    cases.push((vec!["SUPER", "PROCESS"], Some("READ_ONLY ADMIN")));
    for (grants, missing) in cases {
        println!("--- grants {grants:?} (missing {missing:?})");
        for m in [&m1, &m2] {
            m.create_user("hadns", &grants.join(", ")).await;
        }
        m2.execute("SET GLOBAL read_only = 1").await;
        let mut hadns = Hadns::start(&config("mysql", "hadns", true, &nodes)).await;
        if missing == Some("SLAVE MONITOR") {
            // The probe itself needs it: no node can be checked, nothing is answered.
            let warning = hadns.wait_for_log("lacks privileges", LIMIT).await;
            assert!(warning.contains("SLAVE MONITOR"), "{warning}");
            hadns.wait_for_log("SLAVE MONITOR privilege", LIMIT).await;
            hadns.wait_for_answer(DB, &[], LIMIT).await;
            hadns.stop().await;
            continue;
        }
        hadns.wait_for_answer(DB, &[m1.ip], LIMIT).await;
        match missing {
            None => assert_eq!(hadns.log_count("lacks privileges"), 0),
            Some(grant) => {
                let warning = hadns.wait_for_log("lacks privileges", LIMIT).await;
                assert!(warning.contains(grant), "{warning}");
            }
        }
        // The application's session on m2, which then turns writable beside m1.
        let mut app = mysql_async::Conn::new(m2.opts_as("app")).await.unwrap();
        app.query_drop("SELECT 1").await.unwrap();
        m2.execute("SET GLOBAL read_only = 0").await;
        let (fence, counted) = match missing {
            None => {
                let line = hadns.wait_for_log("fenced pool=db node=m2", LIMIT).await;
                // hadns's own two sessions to m2 are not counted, nor killed.
                assert!(
                    line.contains("set read_only, killed 1 client connections"),
                    "{line}"
                );
                assert!(
                    app.query_drop("SELECT 1").await.is_err(),
                    "the application's session on the fenced node survived"
                );
                let read_only: i64 = mysql_async::Conn::new(m2.opts())
                    .await
                    .unwrap()
                    .query_first("SELECT @@read_only")
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(read_only, 1);
                let (fence, counted) = fence_status(&mut hadns, "m2").await;
                assert_eq!(fence["result"], "fenced", "{fence}");
                (fence, counted)
            }
            Some(grant) => {
                let line = hadns.wait_for_log("fencing failed", LIMIT).await;
                assert!(line.contains(grant), "{grant}: {line}");
                let (fence, counted) = fence_status(&mut hadns, "m2").await;
                assert_eq!(fence["result"], "fence_failed", "{fence}");
                assert!(fence["detail"].as_str().unwrap().contains(grant), "{fence}");
                let kinds = crate::support::admin::event_kinds(hadns.admin().await).await;
                assert!(kinds.contains(&"fence_failed".to_string()), "{kinds:?}");
                if grant != "READ_ONLY ADMIN" {
                    // read_only was set, but the application could go on in its session.
                    assert!(app.query_drop("SELECT 1").await.is_ok());
                }
                (fence, counted)
            }
        };
        println!("fence: {fence}\n{counted}");
        let result = if missing.is_none() {
            "fenced"
        } else {
            "failed"
        };
        assert!(
            counted.contains(&format!("result=\"{result}\"}} 1")),
            "{counted}"
        );
        hadns.stop().await;
    }
}

/// A commit waiting for a semi-synchronous ACK that never comes (no replica left: they
/// follow a new primary) holds `SET GLOBAL read_only` back, and after
/// `rpl_semi_sync_master_timeout` (60 s here) would answer its client OK as an
/// asynchronous commit on the loser. The fence kills the session while read_only waits:
/// fenced within fence_timeout, and the client never gets its OK.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_a_fence_ends_a_commit_waiting_for_a_semi_sync_ack() {
    let m1 = Maria::start(1, false).await;
    let m2 = Maria::start(2, true).await;
    m2.execute("CREATE DATABASE app; CREATE TABLE app.t (n BIGINT PRIMARY KEY)")
        .await;
    m2.semisync(true).await;
    // An account that may write while read_only is on (READ_ONLY ADMIN, as a DBA's).
    m2.create_user("dba", "ALL PRIVILEGES").await;
    let nodes = m1.node("m1", 100) + &m2.node("m2", 50);
    let mut hadns = Hadns::start(&config("mysql", "root", false, &nodes)).await;
    hadns.wait_for_answer(DB, &[m1.ip], LIMIT).await;
    let mut dba = mysql_async::Conn::new(m2.opts_as("dba")).await.unwrap();
    let insert =
        tokio::spawn(async move { dba.query_drop("INSERT INTO app.t (n) VALUES (1)").await });
    wait_for(
        LIMIT,
        "the commit to wait for its semi-sync ACK",
        || async {
            let mut conn = mysql_async::Conn::new(m2.opts()).await.unwrap();
            let waiting: Option<u64> = conn
                .query_first(
                    "SELECT id FROM information_schema.processlist \
                 WHERE user = 'dba' AND state LIKE 'Waiting for semi-sync ACK%'",
                )
                .await
                .unwrap();
            waiting.is_some()
        },
    )
    .await;
    m2.execute("SET GLOBAL read_only = 0").await;
    let line = hadns.wait_for_log("fenced pool=db node=m2", LIMIT).await;
    assert!(line.contains("killed 1 client connections"), "{line}");
    let acknowledged = insert.await.unwrap();
    assert!(acknowledged.is_err(), "the client got its OK on the loser");
    let read_only: Option<i64> = mysql_async::Conn::new(m2.opts())
        .await
        .unwrap()
        .query_first("SELECT @@read_only")
        .await
        .unwrap();
    assert_eq!(read_only, Some(1));
    hadns.stop().await;
}

/// PostgreSQL 15's grants, as docs/configuration.md gives them.
const POSTGRES_GRANTS: [&str; 3] = [
    "pg_signal_backend",
    "ALTER SYSTEM ON PARAMETER default_transaction_read_only",
    "EXECUTE ON FUNCTION pg_reload_conf()",
];

#[tokio::test(flavor = "multi_thread")]
async fn postgres_fencing_with_exactly_the_documented_grants() {
    let pg1 = Pg::init_primary();
    // One role per case, made before the standby is copied so both nodes have them.
    let mut cases = vec![None];
    cases.extend(POSTGRES_GRANTS.iter().map(|g| Some(*g)));
    let mut setup = String::from("CREATE ROLE app LOGIN;");
    for (i, missing) in cases.iter().enumerate() {
        setup.push_str(&format!(
            "CREATE ROLE hadns{i} LOGIN; GRANT pg_monitor TO hadns{i};"
        ));
        for grant in POSTGRES_GRANTS.iter().filter(|g| Some(**g) != *missing) {
            setup.push_str(&format!("GRANT {grant} TO hadns{i};"));
        }
    }
    pg1.execute(&setup).await;
    let pg2 = Pg::init_standby(&pg1);
    pg2.wait_replaying().await;
    // pg2 is promoted: the newer timeline is the primary, pg1 the loser to fence whenever
    // it is writable.
    pg2.promote();
    let nodes = pg1.node("pg1", 100) + &pg2.node("pg2", 50);
    for (i, missing) in cases.iter().enumerate() {
        println!("--- missing {missing:?}");
        pg1.execute("ALTER SYSTEM RESET default_transaction_read_only")
            .await;
        pg1.execute("SELECT pg_reload_conf()").await;
        let app = pg1.client_as("app").await;
        // No superuser session may be left on pg1: hadns's role could not end it.
        wait_for(LIMIT, "the test's own sessions on pg1 to end", || async {
            app.query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'postgres' \
                 AND backend_type = 'client backend'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
                == 0
        })
        .await;
        let mut hadns =
            Hadns::start(&config("postgres", &format!("hadns{i}"), false, &nodes)).await;
        hadns.wait_for_answer(DB, &[pg2.ip], LIMIT).await;
        match missing {
            None => {
                let line = hadns.wait_for_log("fenced pool=db node=pg1", LIMIT).await;
                assert_eq!(hadns.log_count("lacks privileges"), 0);
                assert!(
                    line.contains("ended 1 client sessions"),
                    "only the application's session counts: {line}"
                );
                assert!(
                    app.query_one("SELECT 1", &[]).await.is_err(),
                    "the application's session on the fenced node survived"
                );
                let (fence, counted) = fence_status(&mut hadns, "pg1").await;
                assert_eq!(fence["result"], "fenced", "{fence}");
                assert!(counted.contains("result=\"fenced\"} 1"), "{counted}");
            }
            Some(grant) => {
                let warning = hadns.wait_for_log("lacks privileges", LIMIT).await;
                assert!(warning.contains(grant), "{grant}: {warning}");
                let line = hadns.wait_for_log("fencing failed", LIMIT).await;
                assert!(line.contains(grant), "{grant}: {line}");
                let (fence, counted) = fence_status(&mut hadns, "pg1").await;
                assert_eq!(fence["result"], "fence_failed", "{fence}");
                assert!(counted.contains("result=\"failed\"} 1"), "{counted}");
            }
        }
        hadns.stop().await;
    }
}

/// A fence that takes long holds back the answers decided after it (fence, then publish)
/// but not hadns: `/status` and `/events` answer while it runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_fence_holds_back_answers_but_not_the_server() {
    let m1 = Maria::start(1, false).await;
    let m2 = Maria::start(2, true).await;
    for m in [&m1, &m2] {
        m.create_user("hadns", &MARIADB_GRANTS.join(", ")).await;
    }
    let release = tempfile::tempdir().unwrap();
    let released = release.path().join("released");
    let config = format!(
        "[[pool]]\nname = \"db\"\ncheck = \"mysql\"\ninterval = \"100ms\"\nrise = 1\nfall = 1\n\
         fence_command = [\"sh\", \"-c\", \"while [ ! -e {} ]; do sleep 0.02; done; echo released\"]\n\
         fence_timeout = \"60s\"\n\
         [pool.mysql]\nuser = \"hadns\"\npassword = \"hadns\"\nsslmode = \"disable\"\n{}{}\n\
         [[record]]\nname = \"{DB}\"\npool = \"db\"\nselect = \"primary\"\n{}",
        released.display(),
        m1.node("m1", 100),
        m2.node("m2", 50),
        admin_section(false)
    );
    let mut hadns = Hadns::start(&config).await;
    hadns.wait_for_answer(DB, &[m1.ip], LIMIT).await;
    let admin = hadns.admin().await;

    // m2 turns writable beside m1: it is the loser to fence, and its fence waits.
    m2.execute("SET GLOBAL read_only = 0").await;
    wait_for(LIMIT, "the fence of m2 to start", || async {
        crate::support::admin::event_kinds(admin)
            .await
            .contains(&"fencing".to_string())
    })
    .await;
    // m1 stops taking writes: the engine now decides m2, but that waits for the fence.
    m1.execute("SET GLOBAL read_only = 1").await;
    wait_for(LIMIT, "the engine to see m1 read-only", || async {
        let status = tokio::time::timeout(Duration::from_secs(5), get_json(admin, "/status"))
            .await
            .expect("/status must answer while a fence runs");
        node(&status, "db", "m1")["role"] == "replica"
    })
    .await;
    let fence = node(&get_json(admin, "/status").await, "db", "m2")["fence"].clone();
    assert!(
        fence.is_null(),
        "the fence finished before it was released: {fence}"
    );
    assert_eq!(
        hadns.addresses(DB).await,
        Ok(vec![m1.ip]),
        "an answer was published before the fence that precedes it finished"
    );

    std::fs::write(&released, "").unwrap();
    hadns.wait_for_answer(DB, &[m2.ip], LIMIT).await;
    let (fence, counted) = fence_status(&mut hadns, "m2").await;
    assert_eq!(fence["result"], "fenced", "{fence}");
    assert!(counted.contains("result=\"fenced\"} 1"), "{counted}");
    hadns.stop().await;
}
