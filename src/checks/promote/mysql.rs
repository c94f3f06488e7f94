//! Promotion on MySQL and MariaDB (GTID replication).

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::gtids::{not_executed, states_contained};
use super::job::{Job, Step, Timed, within};
use crate::checks::mysql::{column, connection_opts, describe, session};
use crate::checks::privileges::mysql_may_promote;
use crate::config::{DbCheck, Node, Pool};
use crate::engine::Gtid;

/// A session on `node`, and whether the server is MariaDB.
async fn open(check: &DbCheck, node: &Node) -> Result<(Conn, bool), String> {
    session(&connection_opts(check, node), check.sslmode).await
}

/// `sql`, its failure named after `what`.
async fn run(conn: &mut Conn, sql: &str, what: &str) -> Result<(), String> {
    conn.query_drop(sql)
        .await
        .map_err(|e| format!("{what}: {}", describe(&e)))
}

async fn replica_status(conn: &mut Conn, mariadb: bool) -> Result<Option<Row>, String> {
    let sql = if mariadb {
        "SHOW SLAVE STATUS"
    } else {
        "SHOW REPLICA STATUS"
    };
    conn.query_first(sql)
        .await
        .map_err(|e| format!("{sql}: {}", describe(&e)))
}

/// Catch-up and promotion of the candidate.
pub(super) async fn promote(job: &Job, check: &DbCheck, timed: &Timed<'_>) -> Result<(), String> {
    let promote = &job.pool.promote;
    let started = Instant::now();
    let caught_up = within(
        promote.apply_timeout + promote.step_timeout,
        "catching up",
        catch_up(job, check),
    )
    .await;
    timed(Step::CatchUp, &job.candidate, started, caught_up)?;
    super::job::expire(job, timed).await?;
    let started = Instant::now();
    let promoted = within(
        promote.step_timeout,
        "promoting",
        make_primary(check, &job.candidate),
    )
    .await;
    timed(Step::Promote, &job.candidate, started, promoted)?;
    Ok(())
}

/// Lets the candidate apply everything it received (a switchover: everything the demoted
/// primary has), within `apply_timeout`; on a timeout its replication is left running.
async fn catch_up(job: &Job, check: &DbCheck) -> Result<String, String> {
    let target = if job.switchover {
        let (mut old, mariadb) = open(check, &job.old).await?;
        let sql = if mariadb {
            "SELECT @@gtid_binlog_pos"
        } else {
            "SELECT @@gtid_executed"
        };
        let pos: Option<String> = old
            .query_first(sql)
            .await
            .map_err(|e| format!("reading the old primary's position: {}", describe(&e)))?;
        Some(pos.unwrap_or_default())
    } else {
        None
    };
    let (mut conn, mariadb) = open(check, &job.candidate).await?;
    let status = replica_status(&mut conn, mariadb)
        .await?
        .ok_or("the candidate does not replicate")?;
    let received = column(&status, ["Gtid_IO_Pos", "Retrieved_Gtid_Set"]);
    let delay = column(&status, ["SQL_Delay", "SQL_Delay"]);
    let sql_running = column(&status, ["Slave_SQL_Running", "Replica_SQL_Running"]) == "Yes";
    // Only start a stopped SQL thread, while the IO thread is left as it is: under GTID
    // replication MariaDB purges the relay log when a thread starts after both were
    // stopped, and any CHANGE MASTER (to drop a MASTER_DELAY, say) purges it too; with it
    // would go what the candidate received and the dead primary can no longer send. A
    // delayed replica applies at its pace, within apply_timeout, or is not promoted.
    if !sql_running {
        let start = if mariadb {
            "START SLAVE SQL_THREAD"
        } else {
            "START REPLICA SQL_THREAD"
        };
        run(&mut conn, start, "starting the SQL thread").await?;
    }
    let delay = delay.parse::<u64>().unwrap_or(0);
    let mut target = target.unwrap_or(received);
    if mariadb {
        target = still_to_apply(&mut conn, &target).await?;
        if target.is_empty() {
            return Ok("nothing left to apply".into());
        }
    }
    let seconds = job.pool.promote.apply_timeout.as_secs_f64();
    let wait = if mariadb {
        format!("SELECT MASTER_GTID_WAIT('{}', {seconds})", quote(&target))
    } else {
        format!(
            "SELECT WAIT_FOR_EXECUTED_GTID_SET('{}', {seconds})",
            quote(&target)
        )
    };
    let result: Option<i64> = conn
        .query_first(&wait)
        .await
        .map_err(|e| format!("waiting for the relay log to be applied: {}", describe(&e)))?;
    let _ = conn.disconnect().await;
    match result {
        Some(0) => Ok(format!("applied everything up to {target}")),
        _ => Err(format!(
            "did not apply everything it received ({target}) within apply_timeout ({:?}{}); \
             not promoted, nothing of its relay log dropped",
            job.pool.promote.apply_timeout,
            if delay > 0 {
                format!("; it has MASTER_DELAY = {delay} s")
            } else {
                String::new()
            }
        )),
    }
}

/// The part of MariaDB GTID position `target` the candidate has not executed yet
/// (`gtids::not_executed`).
async fn still_to_apply(conn: &mut Conn, target: &str) -> Result<String, String> {
    let (binlog, slave): (Option<String>, Option<String>) = conn
        .query_first("SELECT @@gtid_binlog_pos, @@gtid_slave_pos")
        .await
        .map_err(|e| format!("reading the candidate's positions: {}", describe(&e)))?
        .unwrap_or_default();
    not_executed(
        target,
        &binlog.unwrap_or_default(),
        &slave.unwrap_or_default(),
    )
}

/// Stops applying on `node` and makes it writable. Its replication is reset later
/// (`detach`, after publication): `STOP SLAVE` waits for an IO thread that is reconnecting
/// to a silent old primary until that connect times out (`slave_net_timeout`, in 2 s
/// ticks on MariaDB), while with the SQL thread stopped nothing it still receives is
/// applied.
async fn make_primary(check: &DbCheck, node: &Node) -> Result<String, String> {
    let (mut conn, mariadb) = open(check, node).await?;
    // What `detach` needs is checked now: after the publication it is too late to stop.
    mysql_may_promote(&mut conn, &node.name).await?;
    let steps: &[&str] = if mariadb {
        &["STOP SLAVE SQL_THREAD", "SET GLOBAL read_only = OFF"]
    } else {
        &[
            "STOP REPLICA SQL_THREAD",
            "SET GLOBAL super_read_only = OFF",
            "SET GLOBAL read_only = OFF",
        ]
    };
    for sql in steps {
        run(&mut conn, sql, sql).await?;
    }
    let _ = conn.disconnect().await;
    Ok("applying stopped, read_only off".into())
}

/// Ends the new primary's replication from the old one (`make_primary` left its IO
/// thread as it was); nothing to do when none is configured.
pub(super) async fn detach(job: &Job, check: &DbCheck) -> Result<String, String> {
    within(
        job.pool.promote.step_timeout,
        "resetting replication",
        async {
            let (mut conn, mariadb) = open(check, &job.candidate).await?;
            if replica_status(&mut conn, mariadb).await?.is_none() {
                return Ok("no replication configured".to_string());
            }
            let steps: &[&str] = if mariadb {
                &["STOP SLAVE", "RESET SLAVE ALL"]
            } else {
                &["STOP REPLICA", "RESET REPLICA ALL"]
            };
            for sql in steps {
                run(&mut conn, sql, sql).await?;
            }
            let _ = conn.disconnect().await;
            Ok("replication stopped and reset".to_string())
        },
    )
    .await
}

/// Undoes a switchover's demotion: the candidate replicates again (if it still can), the
/// old primary takes writes again.
pub(super) async fn undo(job: &Job, check: &DbCheck) -> Result<String, String> {
    within(
        job.pool.promote.step_timeout,
        "undoing the demotion",
        async {
            if let Ok((mut candidate, mariadb)) = open(check, &job.candidate).await {
                let start = if mariadb {
                    "START SLAVE"
                } else {
                    "START REPLICA"
                };
                // Fails when replication was reset already; the node is then left read-only.
                let _ = candidate.query_drop(start).await;
            }
            let (mut old, mariadb) = open(check, &job.old).await?;
            if !mariadb {
                run(
                    &mut old,
                    "SET GLOBAL super_read_only = OFF",
                    "SET GLOBAL super_read_only = OFF",
                )
                .await?;
            }
            run(
                &mut old,
                "SET GLOBAL read_only = OFF",
                "SET GLOBAL read_only = OFF",
            )
            .await?;
            Ok("the old primary takes writes again (read_only off)".to_string())
        },
    )
    .await
}

/// Points replica `node` at the new primary and checks that it replicates from it.
pub(super) async fn repoint(job: &Job, check: &DbCheck, node: &Node) -> Result<String, String> {
    let limit = job.pool.promote.step_timeout;
    within(limit, "repointing", async {
        let (mut conn, mariadb) = open(check, node).await?;
        let port = job.candidate.port.unwrap_or(3306);
        let host = job.candidate.address;
        let (stop, change, start) = if mariadb {
            (
                "STOP SLAVE",
                format!("CHANGE MASTER TO MASTER_HOST = '{host}', MASTER_PORT = {port}, MASTER_USE_GTID = slave_pos"),
                "START SLAVE",
            )
        } else {
            (
                "STOP REPLICA",
                format!("CHANGE REPLICATION SOURCE TO SOURCE_HOST = '{host}', SOURCE_PORT = {port}, SOURCE_AUTO_POSITION = 1"),
                "START REPLICA",
            )
        };
        run(&mut conn, stop, "stopping replication").await?;
        run(&mut conn, &change, "pointing replication at the new primary").await?;
        run(&mut conn, start, "starting replication").await?;
        replicating(&mut conn, mariadb, limit).await
    })
    .await
}

/// Waits until both replication threads run; the last error otherwise.
async fn replicating(conn: &mut Conn, mariadb: bool, limit: Duration) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    loop {
        let status = replica_status(conn, mariadb)
            .await?
            .ok_or("no replication configured")?;
        let io = column(&status, ["Slave_IO_Running", "Replica_IO_Running"]);
        let sql = column(&status, ["Slave_SQL_Running", "Replica_SQL_Running"]);
        if io == "Yes" && sql == "Yes" {
            return Ok(format!(
                "replicates from {}:{}",
                column(&status, ["Master_Host", "Source_Host"]),
                column(&status, ["Master_Port", "Source_Port"])
            ));
        }
        let errors = [
            column(&status, ["Last_IO_Error", "Last_IO_Error"]),
            column(&status, ["Last_SQL_Error", "Last_SQL_Error"]),
        ];
        if let Some(error) = errors.iter().find(|e| !e.is_empty()) {
            return Err(format!("IO thread {io}, SQL thread {sql}: {error}"));
        }
        if Instant::now() >= deadline {
            return Err(format!("IO thread {io}, SQL thread {sql} after {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Attaches `old` as a replica of `primary` when its GTID set is contained in the
/// primary's: nothing of it would be lost or conflict.
pub(super) async fn rejoin(
    pool: &Pool,
    check: &DbCheck,
    old: &Node,
    primary: &Node,
) -> Result<String, String> {
    let limit = pool.promote.step_timeout;
    within(limit, "rejoining", async {
        let (mut conn, mariadb) = open(check, old).await?;
        let (mut new, _) = open(check, primary).await?;
        // MariaDB: the binlog state has every (domain, server)'s last sequence, so a
        // transaction the old primary wrote and no replica received shows; MySQL: the
        // executed sets.
        let sql = if mariadb {
            "SELECT @@gtid_binlog_state"
        } else {
            "SELECT @@gtid_executed"
        };
        let mine: Option<String> = conn.query_first(sql).await.map_err(|e| describe(&e))?;
        let theirs: Option<String> = new.query_first(sql).await.map_err(|e| describe(&e))?;
        let (mine, theirs) = (mine.unwrap_or_default(), theirs.unwrap_or_default());
        let contained = if mariadb {
            states_contained(&mine, &theirs)?
        } else {
            Gtid::parse_mysql(&mine)?.within(&Gtid::parse_mysql(&theirs)?)
        };
        if !contained {
            return Err(format!(
                "its GTIDs {mine} are not all in the new primary's {theirs}: it has \
                 transactions the new primary lacks; left fenced (rebuild it, or reconcile \
                 by hand and undo its read_only)"
            ));
        }
        if let Some(done) = attached(&mut conn, mariadb, primary).await? {
            return Ok(done);
        }
        let user = pool.promote.replication_user.as_deref().unwrap_or_default();
        let password = pool
            .promote
            .replication_password
            .as_deref()
            .unwrap_or_default();
        let port = primary.port.unwrap_or(3306);
        let change = if mariadb {
            format!(
                "CHANGE MASTER TO MASTER_HOST = '{}', MASTER_PORT = {port}, MASTER_USER = '{}', \
                 MASTER_PASSWORD = '{}', MASTER_USE_GTID = current_pos",
                primary.address,
                quote(user),
                quote(password)
            )
        } else {
            format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST = '{}', SOURCE_PORT = {port}, \
                 SOURCE_USER = '{}', SOURCE_PASSWORD = '{}', SOURCE_AUTO_POSITION = 1",
                primary.address,
                quote(user),
                quote(password)
            )
        };
        let start = if mariadb {
            "START SLAVE"
        } else {
            "START REPLICA"
        };
        run(
            &mut conn,
            &change,
            "configuring replication from the new primary",
        )
        .await?;
        run(&mut conn, start, "starting replication").await?;
        replicating(&mut conn, mariadb, limit).await
    })
    .await
}

/// Already attached to `primary` (a rejoin that ended while hadns looked away, or a
/// second attempt): what to report; a CHANGE MASTER would be refused anyway.
async fn attached(
    conn: &mut Conn,
    mariadb: bool,
    primary: &Node,
) -> Result<Option<String>, String> {
    let Some(status) = replica_status(conn, mariadb).await? else {
        return Ok(None);
    };
    let host = column(&status, ["Master_Host", "Source_Host"]);
    let port = column(&status, ["Master_Port", "Source_Port"]);
    let io = column(&status, ["Slave_IO_Running", "Replica_IO_Running"]);
    let same = host == primary.address.to_string()
        && port == primary.port.unwrap_or(3306).to_string()
        && io != "No";
    Ok(same.then(|| format!("replicates from {host}:{port} already")))
}

/// `text` inside a single-quoted SQL string.
fn quote(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "''")
}
