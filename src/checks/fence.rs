//! Fencing: make the loser of a primary election stop taking writes before the name moves.
//!
//! `fence = "read-only"` connects with the pool's credentials and, on PostgreSQL, sets
//! `default_transaction_read_only` with `ALTER SYSTEM`, reloads, and terminates the other
//! client backends of non-superusers; on MySQL/MariaDB it sets `read_only` (and
//! `super_read_only` on MySQL) and kills the other client connections. `fence_command`
//! then runs with the node in its environment, killed at `fence_timeout`.

use mysql_async::prelude::Queryable;
use tokio::sync::Notify;

use super::{exec, mysql, postgres};
use crate::config::{Check, ExecCheck, Node, Pool, SslMode};

/// Fences `node` of `pool` as configured; returns what was done, or why it failed.
pub async fn fence(pool: &Pool, node: &Node) -> Result<String, String> {
    let mut done = Vec::new();
    if pool.fence.read_only {
        let read_only = async {
            match &pool.check {
                Check::Postgres(check) => {
                    postgres_read_only(&postgres::connection_config(check, node)).await
                }
                Check::Mysql(check) => {
                    mysql_read_only(&mysql::connection_opts(check, node), check.sslmode).await
                }
                // Validation allows read-only fencing only on database checks.
                _ => Err("read-only fencing needs a database check".to_string()),
            }
        };
        let summary = tokio::time::timeout(pool.fence.timeout, read_only)
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {:?}", pool.fence.timeout)))
            .map_err(|e| format!("read-only fence failed: {e}"))?;
        done.push(summary);
    }
    if let Some(command) = &pool.fence.command {
        let prober = exec::ExecProber::new(
            &ExecCheck {
                command: command.clone(),
            },
            pool,
            node,
        );
        prober
            .probe(pool.fence.timeout)
            .await
            .map_err(|e| format!("fence_command failed: {e}"))?;
        done.push(format!("ran {}", command[0]));
    }
    Ok(done.join("; "))
}

async fn postgres_read_only(config: &tokio_postgres::Config) -> Result<String, String> {
    let client = postgres::connect(config, std::sync::Arc::new(Notify::new())).await?;
    // Two statements: ALTER SYSTEM cannot run inside the implicit transaction of a batch.
    for sql in [
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "SELECT pg_reload_conf()",
    ] {
        client
            .batch_execute(sql)
            .await
            .map_err(|e| postgres::describe(&e))?;
    }
    let rows = client
        .query(
            "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a \
             JOIN pg_roles r ON r.oid = a.usesysid \
             WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend' AND NOT r.rolsuper",
            &[],
        )
        .await
        .map_err(|e| postgres::describe(&e))?;
    Ok(format!(
        "set default_transaction_read_only, ended {} client sessions",
        rows.len()
    ))
}

async fn mysql_read_only(opts: &mysql_async::Opts, sslmode: SslMode) -> Result<String, String> {
    let mut conn = mysql::connect(opts, sslmode)
        .await
        .map_err(|e| mysql::describe(&e))?;
    let version: Option<String> = conn
        .query_first("SELECT @@version")
        .await
        .map_err(|e| mysql::describe(&e))?;
    let sql = if version.unwrap_or_default().contains("MariaDB") {
        "SET GLOBAL read_only = ON"
    } else {
        "SET GLOBAL super_read_only = ON"
    };
    conn.query_drop(sql)
        .await
        .map_err(|e| mysql::describe(&e))?;
    let ids: Vec<u64> = conn
        .query(
            "SELECT id FROM information_schema.processlist \
             WHERE id <> CONNECTION_ID() AND command NOT IN ('Daemon', 'Binlog Dump', 'Binlog Dump GTID') \
             AND user NOT IN ('system user', 'event_scheduler')",
        )
        .await
        .map_err(|e| mysql::describe(&e))?;
    let mut killed = 0;
    for id in ids {
        // A connection may have ended by itself in the meantime.
        if conn.query_drop(format!("KILL {id}")).await.is_ok() {
            killed += 1;
        }
    }
    let _ = conn.disconnect().await;
    Ok(format!(
        "set {}, killed {killed} client connections",
        sql.trim_start_matches("SET GLOBAL ")
    ))
}
