//! Promotion on PostgreSQL (streaming replication, 13 or later for the repointing).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_postgres::Client;

use super::job::{Job, Step, Timed, within};
use crate::checks::postgres::{connect, connection_config, describe};
use crate::config::{DbCheck, Node};

async fn open(check: &DbCheck, node: &Node) -> Result<Client, String> {
    connect(&connection_config(check, node), Arc::new(Notify::new())).await
}

/// One value of one row of `sql`, as text (`None`: NULL).
async fn value(client: &Client, sql: &str, what: &str) -> Result<Option<String>, String> {
    let rows = client
        .simple_query(sql)
        .await
        .map_err(|e| format!("{what}: {}", describe(&e)))?;
    Ok(rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    }))
}

/// Catch-up (a switchover: until the candidate replayed the demoted primary's last
/// position) and `pg_promote()`, which replays all WAL received before it ends recovery.
pub(super) async fn promote(job: &Job, check: &DbCheck, timed: &Timed<'_>) -> Result<(), String> {
    let promote = &job.pool.promote;
    let started = Instant::now();
    let caught_up = within(promote.apply_timeout, "catching up", catch_up(job, check)).await;
    timed(Step::CatchUp, &job.candidate, started, caught_up)?;
    super::job::expire(job, timed).await?;
    let started = Instant::now();
    let seconds = promote.step_timeout.as_secs().max(1);
    let promoted = within(
        promote.step_timeout + Duration::from_secs(1),
        "promoting",
        async {
            let client = open(check, &job.candidate).await?;
            let done = value(
                &client,
                &format!("SELECT pg_promote(true, {seconds})"),
                "pg_promote() (needs GRANT EXECUTE ON FUNCTION pg_promote, or SUPERUSER)",
            )
            .await?;
            match done.as_deref() {
                Some("t") => Ok("promoted (pg_promote)".to_string()),
                _ => Err(format!("pg_promote() did not finish within {seconds} s")),
            }
        },
    )
    .await;
    timed(Step::Promote, &job.candidate, started, promoted)?;
    Ok(())
}

async fn catch_up(job: &Job, check: &DbCheck) -> Result<String, String> {
    let client = open(check, &job.candidate).await?;
    if !job.switchover {
        let received = value(
            &client,
            "SELECT GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())",
            "reading the received position",
        )
        .await?;
        return Ok(format!(
            "received up to {}; pg_promote replays it all",
            received.unwrap_or_default()
        ));
    }
    let old = open(check, &job.old).await?;
    let target = value(
        &old,
        "SELECT pg_current_wal_lsn()",
        "the old primary's position",
    )
    .await?
    .unwrap_or_default();
    let sql = format!("SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn");
    loop {
        if value(&client, &sql, "comparing positions")
            .await?
            .as_deref()
            == Some("t")
        {
            return Ok(format!("replayed up to the old primary's {target}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Undoes a switchover's demotion: the old primary's `default_transaction_read_only`
/// reset (the candidate is still a standby: `pg_promote` is the last thing that can fail).
pub(super) async fn undo(job: &Job, check: &DbCheck) -> Result<String, String> {
    within(
        job.pool.promote.step_timeout,
        "undoing the demotion",
        async {
            let client = open(check, &job.old).await?;
            client
                .batch_execute("ALTER SYSTEM RESET default_transaction_read_only")
                .await
                .map_err(|e| {
                    format!(
                        "ALTER SYSTEM RESET default_transaction_read_only: {}",
                        describe(&e)
                    )
                })?;
            value(&client, "SELECT pg_reload_conf()", "pg_reload_conf()").await?;
            Ok(
                "the old primary takes writes again (default_transaction_read_only reset)"
                    .to_string(),
            )
        },
    )
    .await
}

/// Points standby `node` at the new primary (its `primary_conninfo` with the new host and
/// port, every other setting kept) and checks that it streams from it.
pub(super) async fn repoint(job: &Job, check: &DbCheck, node: &Node) -> Result<String, String> {
    let limit = job.pool.promote.step_timeout;
    within(limit, "repointing", async {
        let client = open(check, node).await?;
        let conninfo = value(&client, "SHOW primary_conninfo", "reading primary_conninfo")
            .await?
            .unwrap_or_default();
        let host = job.candidate.address.to_string();
        let port = job.candidate.port.unwrap_or(5432).to_string();
        let conninfo = with_host(&conninfo, &host, &port);
        client
            .batch_execute(&format!(
                "ALTER SYSTEM SET primary_conninfo = '{}'",
                conninfo.replace('\'', "''")
            ))
            .await
            .map_err(|e| {
                format!(
                    "ALTER SYSTEM SET primary_conninfo (needs GRANT ALTER SYSTEM ON PARAMETER \
                     primary_conninfo, or SUPERUSER): {}",
                    describe(&e)
                )
            })?;
        value(&client, "SELECT pg_reload_conf()", "pg_reload_conf()").await?;
        let deadline = Instant::now() + limit;
        let sql = "SELECT status || ' from ' || sender_host || ':' || sender_port \
                   FROM pg_stat_wal_receiver";
        loop {
            let state = value(&client, sql, "reading the WAL receiver").await?;
            let want = format!("streaming from {host}:{port}");
            if state.as_deref() == Some(want.as_str()) {
                return Ok(want);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the WAL receiver is {} after {limit:?}",
                    state.unwrap_or_else(|| "not running".into())
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// `conninfo` (libpq `key=value` words) with `host` and `port` replaced, every other word
/// kept as written.
fn with_host(conninfo: &str, host: &str, port: &str) -> String {
    let mut words: Vec<String> = crate::checks::postgres::conninfo_words(conninfo)
        .into_iter()
        .filter(|w| {
            !matches!(
                w.split('=').next().map(str::trim),
                Some("host" | "hostaddr" | "port")
            )
        })
        .collect();
    words.push(format!("host={host}"));
    words.push(format!("port={port}"));
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_host_and_port_change_in_the_conninfo() {
        let before = "user=replicator password='a b\\'c' host=10.0.0.1 port=5432 \
                      sslmode=prefer application_name=pg2";
        assert_eq!(
            with_host(before, "10.0.0.3", "5433"),
            "user=replicator password='a b\\'c' sslmode=prefer application_name=pg2 \
             host=10.0.0.3 port=5433"
        );
        assert_eq!(with_host("", "h", "1"), "host=h port=1");
    }
}
