//! Fencing: make the loser of a primary election stop taking writes before the name moves.
//!
//! `fence = "read-only"` connects with the pool's credentials and, on PostgreSQL, sets
//! `default_transaction_read_only` with `ALTER SYSTEM`, reloads, and terminates every
//! client backend of another role than hadns's own; on MySQL/MariaDB it sets `read_only`
//! (`super_read_only` on MySQL) and kills every connection of another user. What cannot be
//! done (a missing privilege) fails the fence with the privilege named. `fence_command`
//! then runs with the node in its environment, killed at `fence_timeout`.

use mysql_async::prelude::Queryable;
use tokio::sync::Notify;

use super::{exec, mysql, postgres, privileges};
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
            .map_err(|e| format!("read-only fence failed: {e}"));
        match summary {
            Ok(summary) => done.push(summary),
            // A node that cannot be made read-only (down, silent, a missing grant) is
            // still fenced by the command, if there is one: exit 0 means fenced.
            Err(failed) if pool.fence.command.is_some() => done.push(failed),
            Err(failed) => return Err(failed),
        }
    }
    if let Some(command) = &pool.fence.command {
        let prober = exec::ExecProber::new(
            &ExecCheck {
                command: command.clone(),
            },
            pool,
            node,
        );
        prober.probe(pool.fence.timeout).await.map_err(|e| {
            done.push(format!("fence_command failed: {e}"));
            done.join("; ")
        })?;
        done.push(format!("ran {}", command[0]));
    }
    Ok(done.join("; "))
}

/// Sets `default_transaction_read_only` and ends every client session but those of
/// hadns's own role (its checkers, here and in other hadns instances). A session that
/// cannot be ended fails the fence, naming why.
async fn postgres_read_only(config: &tokio_postgres::Config) -> Result<String, String> {
    let client = postgres::connect(config, std::sync::Arc::new(Notify::new())).await?;
    let pg = |step: &'static str| {
        move |e: tokio_postgres::Error| format!("{step}: {}", postgres::describe(&e))
    };
    // Two statements: ALTER SYSTEM cannot run inside the implicit transaction of a batch.
    client
        .batch_execute("ALTER SYSTEM SET default_transaction_read_only = on")
        .await
        .map_err(pg("ALTER SYSTEM SET default_transaction_read_only (needs GRANT ALTER SYSTEM ON PARAMETER default_transaction_read_only, or SUPERUSER)"))?;
    client
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .map_err(pg(
            "pg_reload_conf() (needs GRANT EXECUTE ON FUNCTION pg_reload_conf())",
        ))?;
    let sessions = client
        .query(
            "SELECT pid, usename FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' \
             AND usename IS DISTINCT FROM current_user",
            &[],
        )
        .await
        .map_err(pg("listing client sessions"))?;
    let mut ended = 0;
    let mut failed = Vec::new();
    for session in &sessions {
        let (pid, user): (i32, Option<String>) = (session.get(0), session.get(1));
        match client
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .await
        {
            Ok(row) if row.get::<_, bool>(0) => ended += 1,
            // Gone by itself in the meantime.
            Ok(_) => {}
            Err(e) => failed.push(format!(
                "session {pid} of {}: {}",
                user.unwrap_or_default(),
                postgres::describe(&e)
            )),
        }
    }
    outcome(
        format!("set default_transaction_read_only, ended {ended} client sessions"),
        failed,
        "could not end",
        "pg_signal_backend; sessions of superusers need SUPERUSER",
    )
}

/// Sets `read_only` (MySQL: `super_read_only`) and kills every client connection but those
/// of hadns's own user. Without `PROCESS` the other users' connections are invisible, so
/// the fence fails rather than report that there were none.
///
/// The kills run while `read_only` is being set, not after: a commit waiting for a
/// semi-synchronous ACK that will never come (its replicas now follow the new primary)
/// holds `SET GLOBAL read_only` back until `rpl_semi_sync_master_timeout`, and then
/// answers its client OK as an asynchronous commit. Killed, its session ends without an
/// OK and `read_only` goes through. Sessions are killed again once it is set.
async fn mysql_read_only(opts: &mysql_async::Opts, sslmode: SslMode) -> Result<String, String> {
    let connect = || async {
        mysql::connect(opts, sslmode)
            .await
            .map_err(|e| mysql::describe(&e))
    };
    let (mut setter, mut killer) = (connect().await?, connect().await?);
    let result = mysql_fence(&mut setter, &mut killer).await;
    let _ = setter.disconnect().await;
    let _ = killer.disconnect().await;
    result
}

fn my(step: &'static str) -> impl Fn(mysql_async::Error) -> String {
    move |e| format!("{step}: {}", mysql::describe(&e))
}

async fn mysql_fence(
    setter: &mut mysql_async::Conn,
    killer: &mut mysql_async::Conn,
) -> Result<String, String> {
    let version: Option<String> = killer
        .query_first("SELECT @@version")
        .await
        .map_err(my("reading the version"))?;
    let (_, mariadb) = privileges::mysql_version(&version.unwrap_or_default());
    let variable = if mariadb {
        "read_only"
    } else {
        "super_read_only"
    };
    let grants: Vec<String> = killer
        .query("SHOW GRANTS")
        .await
        .map_err(my("SHOW GRANTS"))?;
    let process =
        privileges::mysql_missing(&[vec!["PROCESS"]], &privileges::global_privileges(&grants));
    let mut kills = Kills::default();
    {
        let set = setter.query_drop(format!("SET GLOBAL {variable} = ON"));
        let mut set = std::pin::pin!(set);
        // Sessions that reconnect while it waits are killed again on the next tick.
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            tokio::select! {
                set = &mut set => {
                    set.map_err(my("SET GLOBAL read_only"))?;
                    break;
                }
                _ = tick.tick(), if process.is_empty() => kills.pass(killer).await?,
            }
        }
    }
    if !process.is_empty() {
        return Err(format!(
            "set {variable}, but cannot see other users' connections to kill them: \
             the user needs the PROCESS privilege"
        ));
    }
    kills.pass(killer).await?;
    outcome(
        format!(
            "set {variable}, killed {} client connections",
            kills.killed.len()
        ),
        kills.failed,
        "could not kill",
        "CONNECTION ADMIN, or SUPER",
    )
}

/// The client connections a fence killed, and those it could not.
#[derive(Default)]
struct Kills {
    killed: std::collections::BTreeSet<u64>,
    failed: Vec<String>,
}

impl Kills {
    /// Kills every client connection but the fence's own and those of hadns's user.
    async fn pass(&mut self, conn: &mut mysql_async::Conn) -> Result<(), String> {
        let sessions: Vec<(u64, String)> = conn
            .query(
                "SELECT id, user FROM information_schema.processlist \
                 WHERE id <> CONNECTION_ID() AND user <> SUBSTRING_INDEX(CURRENT_USER(), '@', 1) \
                 AND command NOT IN ('Daemon', 'Binlog Dump', 'Binlog Dump GTID') \
                 AND user NOT IN ('system user', 'event_scheduler')",
            )
            .await
            .map_err(my("listing client connections"))?;
        self.failed.clear();
        for (id, user) in sessions {
            match conn.query_drop(format!("KILL {id}")).await {
                Ok(()) => {
                    self.killed.insert(id);
                }
                // ER_NO_SUCH_THREAD: ended by itself in the meantime.
                Err(mysql_async::Error::Server(e)) if e.code == 1094 => {}
                Err(e) => self.failed.push(format!(
                    "connection {id} of {user}: {}",
                    mysql::describe(&e)
                )),
            }
        }
        Ok(())
    }
}

/// What a fence did, or, when some sessions survived it, a failure that says what was done,
/// which sessions survived and why, and the privilege that `needs` names.
fn outcome(done: String, failed: Vec<String>, verb: &str, needs: &str) -> Result<String, String> {
    if failed.is_empty() {
        return Ok(done);
    }
    Err(format!(
        "{done}, but {verb} {} (needs {needs}): {}",
        failed.len(),
        failed.join("; ")
    ))
}
