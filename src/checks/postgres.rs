//! `check = "postgres"`: one persistent session per node; each probe is one round trip.
//!
//! The probe reads whether the node is in recovery or read-only, its cluster identity
//! (`system_identifier`), its timeline (on a primary from the current WAL file name, which
//! is up to date at once after a promotion, unlike `pg_control_checkpoint()`), and WAL
//! positions and replay delay. When the session breaks (the server died or was restarted),
//! `session_broken` fires so the checker probes again at once, and a refused reconnect is
//! a conclusive failure.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Mutex, Notify};
use tokio_postgres::{Client, SimpleQueryMessage};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::failure::Failure;
use crate::config::{DbCheck, Node, Pool, SslMode};
use crate::engine::{DbStatus, Replication};

const PROBE_SQL: &str = "SELECT pg_is_in_recovery(), \
  current_setting('default_transaction_read_only')::bool, \
  (SELECT system_identifier FROM pg_control_system()), \
  CASE WHEN pg_is_in_recovery() \
    THEN COALESCE(r.received_tli, (SELECT timeline_id FROM pg_control_checkpoint())) \
    ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END, \
  (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END) - '0/0'::pg_lsn, \
  r.pid, r.status, r.sender_host, r.sender_port, \
  (CASE WHEN pg_is_in_recovery() THEN GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) ELSE pg_current_wal_lsn() END) - '0/0'::pg_lsn, \
  (SELECT setting FROM pg_settings WHERE name = 'primary_conninfo') \
  FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true";

pub struct PgProber {
    config: tokio_postgres::Config,
    /// Who is checked, for the privilege warning; and whether the pool fences.
    pool: String,
    node: String,
    fencing: bool,
    /// The privileges have been checked (once, on the first session).
    privileges_checked: std::sync::atomic::AtomicBool,
    session: Mutex<Option<Client>>,
    broken: Arc<Notify>,
}

/// The connection settings for one node, shared by the checker and fencing.
pub fn connection_config(check: &DbCheck, node: &Node) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host(node.address.to_string())
        .port(node.port.unwrap_or(5432))
        .user(&check.user)
        .dbname(check.dbname.as_deref().unwrap_or("postgres"))
        .application_name("hadns")
        .connect_timeout(check.connect_timeout)
        .ssl_mode(match check.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require => tokio_postgres::config::SslMode::Require,
        });
    if let Some(password) = &check.password {
        config.password(password);
    }
    config
}

/// Opens a session; `on_close` is notified when it ends.
pub async fn connect(
    config: &tokio_postgres::Config,
    on_close: Arc<Notify>,
) -> Result<Client, String> {
    let tls = MakeRustlsConnect::new(super::tls::unverified_client_config());
    let (client, connection) = config.connect(tls).await.map_err(|e| describe(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
        on_close.notify_one();
    });
    Ok(client)
}

impl PgProber {
    pub fn new(check: &DbCheck, pool: &Pool, node: &Node) -> PgProber {
        PgProber {
            config: connection_config(check, node),
            pool: pool.name.clone(),
            node: node.name.clone(),
            fencing: pool.fence.read_only,
            privileges_checked: Default::default(),
            session: Mutex::new(None),
            broken: Arc::new(Notify::new()),
        }
    }

    fn config_user(&self) -> String {
        self.config.get_user().unwrap_or_default().to_string()
    }

    /// Resolves when the current session has broken.
    pub async fn session_broken(&self) {
        self.broken.notified().await
    }

    pub async fn probe(&self, timeout: Duration) -> Result<(String, DbStatus), Failure> {
        let mut session = self.session.lock().await;
        // A session that closed by itself: the server went away or restarted.
        let lost = session.as_ref().is_some_and(Client::is_closed);
        if lost {
            *session = None;
        }
        if session.is_none() {
            let client = super::failure::reconnect(
                timeout,
                lost,
                connect(&self.config, self.broken.clone()),
            )
            .await?;
            if !self.privileges_checked.swap(true, Ordering::Relaxed) {
                let missing = tokio::time::timeout(
                    timeout,
                    super::privileges::postgres_missing(&client, self.fencing),
                )
                .await
                .map_err(|_| "timed out".to_string())
                .and_then(|r| r.map_err(|e| describe(&e)));
                super::privileges::warn_missing(
                    &self.pool,
                    &self.node,
                    &self.config_user(),
                    missing,
                );
            }
            *session = Some(client);
        }
        // Just set above when it was empty.
        let client = session.as_ref().expect("session is open");
        let rows = match tokio::time::timeout(timeout, client.simple_query(PROBE_SQL)).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                let reason = describe(&e);
                if client.is_closed() {
                    *session = None;
                }
                return Err(Failure::from(reason));
            }
            Err(_) => return Err(Failure::from(format!("query timed out after {timeout:?}"))),
        };
        let row = rows
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .ok_or_else(|| Failure::from("probe query returned no row"))?;
        Ok(read_probe_row(row))
    }
}

/// The probe query's row as a status and a one-line description: role, timeline, position
/// and the WAL receiver (columns as `PROBE_SQL` selects them).
fn read_probe_row(row: &tokio_postgres::SimpleQueryRow) -> (String, DbStatus) {
    let text = |i: usize| row.get(i).map(str::to_string);
    let number = |i: usize| {
        row.get(i)
            .and_then(|v| v.split('.').next()?.parse::<u64>().ok())
    };
    let in_recovery = text(0).as_deref() == Some("t");
    let read_only = text(1).as_deref() == Some("t");
    let replication = match (text(5), text(6)) {
        // No WAL receiver: a primary, or a standby that receives nothing now (its primary
        // is gone, say); such a standby still says where it replicates from.
        (None, _) => configured_source(in_recovery, text(10).as_deref()),
        (Some(_), None) => Some(Replication {
            running: false,
            receiving: false,
            state: "the WAL receiver's state is hidden: the role needs pg_read_all_stats \
                    (or pg_monitor)"
                .into(),
            source_host: "unknown".into(),
            source_port: None,
            source_addresses: Vec::new(),
        }),
        (Some(_), Some(state)) => Some(Replication {
            running: state == "streaming",
            receiving: state == "streaming",
            source_host: text(7).unwrap_or_default(),
            source_port: row.get(8).and_then(|p| p.parse::<u16>().ok()),
            source_addresses: Vec::new(),
            state,
        }),
    };
    let status = DbStatus {
        writable: !in_recovery && !read_only,
        cluster: text(2),
        server: None,
        timeline: number(3),
        position: number(4),
        gtid: None,
        received: number(9),
        received_gtid: None,
        replication,
    };
    let timeline = status.timeline.unwrap_or(0);
    let detail = match (in_recovery, read_only, &status.replication) {
        (false, false, _) => format!("primary, timeline {timeline}"),
        (false, true, _) => "primary set read-only (default_transaction_read_only)".into(),
        (true, _, None) => format!("standby, timeline {timeline}, no WAL receiver"),
        (true, _, Some(r)) if r.running => {
            format!(
                "standby, timeline {timeline}, streaming from {}",
                r.source()
            )
        }
        (true, _, Some(r)) if r.state == "no WAL receiver" => format!(
            "standby, timeline {timeline}, no WAL receiver (primary_conninfo {})",
            r.source()
        ),
        (true, _, Some(r)) => format!("standby, timeline {timeline}, WAL receiver {}", r.state),
    };
    (detail, status)
}

/// A standby without a WAL receiver, as its `primary_conninfo` configures it (`None`: a
/// primary, no primary_conninfo, or one hadns may not read: pg_read_all_settings).
fn configured_source(in_recovery: bool, conninfo: Option<&str>) -> Option<Replication> {
    let conninfo = conninfo.filter(|c| in_recovery && !c.is_empty())?;
    let words = conninfo_words(conninfo);
    let value = |key: &str| {
        words
            .iter()
            .filter_map(|w| w.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().trim_matches('\'').to_string())
    };
    let host = value("hostaddr").or_else(|| value("host"))?;
    let port = value("port").and_then(|p| p.parse().ok()).or(Some(5432));
    Some(Replication {
        running: false,
        receiving: false,
        state: "no WAL receiver".into(),
        source_host: host,
        source_port: port,
        source_addresses: Vec::new(),
    })
}

/// The `key=value` words of a libpq conninfo string, quoted values kept whole.
pub(super) fn conninfo_words(conninfo: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut chars = conninfo.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                word.push(c);
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            '\'' => {
                quoted = !quoted;
                word.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The server's own message for database errors (`password authentication failed for user
/// "x"`), the IO cause for network errors (`connection refused`), else the error and its
/// causes (`error performing TLS handshake: server does not support TLS`).
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return super::failure::describe(io);
        }
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}
