//! What the engine is fed: one probe's [`Observation`], with what a database check learned.

use std::time::Duration;

use super::{Gtid, Replication};

/// What a database check learned about a node, besides being reachable.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DbStatus {
    /// Accepts writes: not in recovery and not read-only.
    pub writable: bool,
    /// PostgreSQL `system_identifier`; nodes of one cluster share it.
    pub cluster: Option<String>,
    /// MySQL/MariaDB: the server's own identity (`server_uuid`, MariaDB `server_id`), which
    /// its own transactions carry in their GTIDs.
    #[serde(default)]
    pub server: Option<String>,
    /// PostgreSQL timeline: a promotion starts a higher one.
    pub timeline: Option<u64>,
    /// How far the node's data goes. PostgreSQL: the WAL position in bytes (the write
    /// position on a primary, the replay position on a standby); MySQL/MariaDB: the number
    /// of transactions in its GTID position.
    pub position: Option<u64>,
    /// MySQL/MariaDB GTID position, to tell a replica that diverged from its primary.
    pub gtid: Option<Gtid>,
    /// How far a replica has *received* (applied or not), which is what a promotion keeps:
    /// PostgreSQL `pg_last_wal_receive_lsn()` in bytes; MySQL/MariaDB the transactions of
    /// `received_gtid`. The same as `position` on a primary.
    #[serde(default)]
    pub received: Option<u64>,
    /// MySQL/MariaDB: the GTID position with the relay log included (MariaDB
    /// `Gtid_IO_Pos`, MySQL `Retrieved_Gtid_Set`, joined with the executed position).
    #[serde(default)]
    pub received_gtid: Option<Gtid>,
    /// How the node replicates; `None` when no replication is configured on it.
    pub replication: Option<Replication>,
}

/// The result of one probe. A failed probe is data, not an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub ok: bool,
    /// Why the probe failed (`connection refused`), or a short note on success.
    pub detail: String,
    pub latency: Duration,
    /// A failure that needs no confirmation: the node's session broke and it refused a new
    /// one. The node goes down at once instead of after `fall` failures.
    pub conclusive: bool,
    /// The node's host refused or reset the connection: nothing there accepts writes on
    /// the checked port now (a timeout, which a partition also gives, is not this).
    pub refused: bool,
    pub db: Option<DbStatus>,
}

impl Observation {
    pub fn up(detail: impl Into<String>, latency: Duration) -> Self {
        Observation {
            ok: true,
            detail: detail.into(),
            latency,
            conclusive: false,
            refused: false,
            db: None,
        }
    }

    pub fn down(detail: impl Into<String>, latency: Duration) -> Self {
        Observation {
            ok: false,
            ..Observation::up(detail, latency)
        }
    }
}
