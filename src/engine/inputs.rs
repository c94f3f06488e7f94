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
    /// PostgreSQL timeline: a promotion starts a higher one.
    pub timeline: Option<u64>,
    /// How far the node's data goes. PostgreSQL: the WAL position in bytes (the write
    /// position on a primary, the replay position on a standby); MySQL/MariaDB: the number
    /// of transactions in its GTID position.
    pub position: Option<u64>,
    /// MySQL/MariaDB GTID position, to tell a replica that diverged from its primary.
    pub gtid: Option<Gtid>,
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
