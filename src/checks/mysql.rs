//! `check = "mysql"` (MySQL and MariaDB): one persistent session per node.
//!
//! Each probe reads `@@read_only` (and `@@super_read_only` on MySQL), the server's identity
//! and GTID position, then the replica status for its delay. The protocol has no way to be
//! told that a session died, so a second "watch" session per node sits in `SELECT
//! SLEEP(...)`: when the server goes away that query fails at once, `session_broken`
//! fires, and the checker probes again immediately.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row, SslOpts};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

use super::failure::Failure;
use crate::config::{DbCheck, Node, Pool, SslMode};
use crate::engine::{DbStatus, Gtid, Replication};

/// How long one watch query sleeps before it is issued again.
const WATCH_SLEEP_SECONDS: u32 = 300;

pub struct MysqlProber {
    opts: Opts,
    /// Who is checked, for the privilege warning; and whether the pool fences.
    pool: String,
    node: String,
    duties: super::privileges::Duties,
    /// The privileges have been checked (once, on the first session).
    privileges_checked: AtomicBool,
    sslmode: SslMode,
    session: Mutex<Option<Session>>,
    broken: Arc<Notify>,
}

struct Session {
    conn: Conn,
    mariadb: bool,
    lost: Arc<AtomicBool>,
    watcher: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// The connection settings for one node, shared by the checker and fencing.
pub fn connection_opts(check: &DbCheck, node: &Node) -> Opts {
    let tls = (check.sslmode != SslMode::Disable).then(|| {
        // Encrypt without verifying the certificate: libpq's `require` (see tls.rs).
        SslOpts::default()
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true)
    });
    OptsBuilder::default()
        .ip_or_hostname(node.address.to_string())
        .tcp_port(node.port.unwrap_or(3306))
        .user(Some(check.user.clone()))
        .pass(check.password.clone())
        .db_name(check.dbname.clone())
        .prefer_socket(false)
        .ssl_opts(tls)
        .into()
}

/// Connects with `opts`; with `sslmode = "prefer"` a server without TLS gets a plain session.
pub async fn connect(opts: &Opts, sslmode: SslMode) -> Result<Conn, mysql_async::Error> {
    match Conn::new(opts.clone()).await {
        Err(mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer))
            if sslmode == SslMode::Prefer =>
        {
            Conn::new(OptsBuilder::from_opts(opts.clone()).ssl_opts(None)).await
        }
        other => other,
    }
}

/// A session with `opts`, and whether the server is MariaDB.
pub async fn session(opts: &Opts, sslmode: SslMode) -> Result<(Conn, bool), String> {
    let mut conn = connect(opts, sslmode).await.map_err(|e| describe(&e))?;
    let version: Option<String> = conn
        .query_first("SELECT @@version")
        .await
        .map_err(|e| describe(&e))?;
    Ok((conn, version.unwrap_or_default().contains("MariaDB")))
}

impl MysqlProber {
    pub fn new(check: &DbCheck, pool: &Pool, node: &Node) -> MysqlProber {
        MysqlProber {
            opts: connection_opts(check, node),
            pool: pool.name.clone(),
            node: node.name.clone(),
            duties: super::privileges::Duties {
                fencing: pool.fence.read_only,
                promoting: !pool.promote.is_off(),
            },
            privileges_checked: AtomicBool::new(false),
            sslmode: check.sslmode,
            session: Mutex::new(None),
            broken: Arc::new(Notify::new()),
        }
    }

    pub async fn session_broken(&self) {
        self.broken.notified().await
    }

    async fn open(&self) -> Result<Session, String> {
        let (mut conn, mariadb) = session(&self.opts, self.sslmode).await?;
        if !self.privileges_checked.swap(true, Ordering::Relaxed) {
            let missing = super::privileges::mysql_missing_on(&mut conn, self.duties)
                .await
                .map_err(|e| describe(&e));
            let user = self.opts.user().unwrap_or_default();
            super::privileges::warn_missing(&self.pool, &self.node, user, missing);
        }
        let lost = Arc::new(AtomicBool::new(false));
        let watch = connect(&self.opts, self.sslmode)
            .await
            .map_err(|e| describe(&e))?;
        let watcher = tokio::spawn(watch_session(watch, lost.clone(), self.broken.clone()));
        Ok(Session {
            conn,
            mariadb,
            lost,
            watcher,
        })
    }

    pub async fn probe(&self, timeout: Duration) -> Result<(String, DbStatus), Failure> {
        let mut session = self.session.lock().await;
        let lost = session
            .as_ref()
            .is_some_and(|s| s.lost.load(Ordering::SeqCst));
        if lost {
            *session = None;
        }
        if session.is_none() {
            let opened = super::failure::reconnect(timeout, lost, self.open()).await?;
            *session = Some(opened);
        }
        // Just set above when it was empty.
        let s = session.as_mut().expect("session is open");
        match tokio::time::timeout(timeout, query(s)).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(reason)) => {
                *session = None;
                Err(Failure::from(reason))
            }
            Err(_) => {
                *session = None;
                Err(Failure::from(format!("query timed out after {timeout:?}")))
            }
        }
    }
}

async fn query(s: &mut Session) -> Result<(String, DbStatus), String> {
    let sql = if s.mariadb {
        // MariaDB always keeps GTIDs.
        "SELECT @@read_only, 0, CAST(@@server_id AS CHAR), @@gtid_current_pos, 'ON'"
    } else {
        "SELECT @@read_only, @@super_read_only, @@server_uuid, @@gtid_executed, @@gtid_mode"
    };
    let row: (i64, i64, String, String, String) = s
        .conn
        .query_first(sql)
        .await
        .map_err(|e| describe(&e))?
        .ok_or("no row from the status query")?;
    let gtid = gtid_position(&row.3, &row.4, s.mariadb);
    let replica: Option<Row> = match s.conn.query_first("SHOW REPLICA STATUS").await {
        Ok(r) => r,
        Err(_) => s
            .conn
            .query_first("SHOW SLAVE STATUS")
            .await
            .map_err(|e| describe(&e))?,
    };
    let replication = replica.as_ref().map(replication);
    let received_gtid = match (
        &gtid,
        replica.as_ref().and_then(|r| retrieved(r, s.mariadb)),
    ) {
        (Ok(executed), Some(retrieved)) => Some(executed.union(&retrieved)),
        (Ok(executed), None) => Some(executed.clone()),
        (Err(_), _) => None,
    };
    let read_only = row.0 != 0 || row.1 != 0;
    let role = if read_only { "read-only" } else { "writable" };
    let replicating = match &replication {
        None => "no replication".to_string(),
        Some(r) if r.running => format!("replicating from {}", r.source()),
        Some(r) => format!("replication from {}: {}", r.source(), r.state),
    };
    let position = match &gtid {
        Ok(g) => format!("gtid {g}"),
        Err(why) => why.clone(),
    };
    let gtid = gtid.ok();
    let detail = format!("{role}, server {}, {position}, {replicating}", row.2);
    let status = DbStatus {
        writable: !read_only,
        cluster: None,
        server: Some(row.2),
        timeline: None,
        position: gtid.as_ref().map(Gtid::transactions),
        gtid,
        received: received_gtid.as_ref().map(Gtid::transactions),
        received_gtid,
        replication,
    };
    Ok((detail, status))
}

/// The node's GTID position from its text and `gtid_mode`, or why there is none: without
/// GTIDs (MySQL's `gtid_mode` OFF) two servers' positions cannot be compared, and a text
/// hadns cannot read makes the node's replicas incomparable, never the node down.
fn gtid_position(text: &str, mode: &str, mariadb: bool) -> Result<Gtid, String> {
    if mode != "ON" {
        return Err(format!("gtid_mode {mode}"));
    }
    if mariadb {
        Gtid::parse_mariadb(text)
    } else {
        Gtid::parse_mysql(text)
    }
}

/// The replication state from a `SHOW REPLICA STATUS` row (MariaDB and MySQL before 8.0.22
/// name the columns `Master_*` and `Slave_*`, later MySQL `Source_*` and `Replica_*`).
fn replication(row: &Row) -> Replication {
    let text = |names: [&str; 2]| column(row, names);
    let io = text(["Slave_IO_Running", "Replica_IO_Running"]);
    let sql = text(["Slave_SQL_Running", "Replica_SQL_Running"]);
    let host = text(["Master_Host", "Source_Host"]);
    let port = text(["Master_Port", "Source_Port"]).parse::<u16>().ok();
    let mut state = format!("IO thread {io}, SQL thread {sql}");
    for error in [
        text(["Last_IO_Error", "Last_IO_Error"]),
        text(["Last_SQL_Error", "Last_SQL_Error"]),
    ] {
        if !error.is_empty() {
            state = format!("{state}: {error}");
        }
    }
    Replication {
        running: io == "Yes" && sql == "Yes",
        receiving: io == "Yes",
        source_host: host,
        source_port: port,
        source_addresses: Vec::new(),
        state,
    }
}

/// A `SHOW REPLICA STATUS` column by either of its names (MariaDB and older MySQL
/// `Master_*`/`Slave_*`, later MySQL `Source_*`/`Replica_*`); empty when absent.
pub(super) fn column(row: &Row, names: [&str; 2]) -> String {
    names
        .iter()
        .find_map(|name| row.get_opt::<Option<String>, &str>(name)?.ok().flatten())
        .unwrap_or_default()
}

/// What a replica's IO thread received (relay log included): MariaDB `Gtid_IO_Pos`,
/// MySQL `Retrieved_Gtid_Set`; `None` when absent or unreadable.
fn retrieved(row: &Row, mariadb: bool) -> Option<Gtid> {
    let column = if mariadb {
        "Gtid_IO_Pos"
    } else {
        "Retrieved_Gtid_Set"
    };
    let text: String = row
        .get_opt::<Option<String>, &str>(column)?
        .ok()
        .flatten()?;
    let parsed = if mariadb {
        Gtid::parse_mariadb(&text)
    } else {
        Gtid::parse_mysql(&text)
    };
    parsed.ok()
}

/// Sleeps in a query until the session dies, then reports it.
async fn watch_session(mut conn: Conn, lost: Arc<AtomicBool>, broken: Arc<Notify>) {
    let sql = format!("SELECT SLEEP({WATCH_SLEEP_SECONDS})");
    while conn.query_drop(&sql).await.is_ok() {}
    lost.store(true, Ordering::SeqCst);
    broken.notify_one();
}

/// The server's message for server errors, the IO cause for network errors.
pub fn describe(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => s.message.clone(),
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => super::failure::describe(io),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_hadns_cannot_read_is_no_probe_failure() {
        assert_eq!(
            gtid_position("0-1-9", "ON", true).map(|g| g.transactions()),
            Ok(9)
        );
        assert_eq!(gtid_position("", "OFF", false), Err("gtid_mode OFF".into()));
        let unreadable = gtid_position("0-1-9-garbage,\u{0}", "ON", true).unwrap_err();
        assert!(unreadable.contains("not a MariaDB GTID"), "{unreadable}");
    }
}
