//! What the engine knows of one node: its health, the hysteresis counters, its last probe.

use std::time::Duration;

use super::*;

#[derive(Debug, Clone)]
pub struct NodeState {
    pub health: Health,
    /// Consecutive successful probes.
    pub successes: u32,
    /// Consecutive failed probes.
    pub failures: u32,
    pub last: Option<Observation>,
    /// The last database status from a successful probe.
    pub db: Option<DbStatus>,
    /// When `health` last changed.
    pub since: Duration,
    /// Set while the node's cluster identity differs from the pool's: the node is left out.
    pub excluded: Option<String>,
    /// When the last probe result arrived.
    pub last_at: Duration,
    /// Set by an operator: the node leaves every answer but is still checked.
    pub drained: bool,
    /// Replaced by a promotion: never answered, fenced whenever it is writable, until it
    /// replicates from the pool's primary again.
    pub deposed: bool,
    /// Fencing was requested during the node's current writable episode.
    pub(super) fenced: bool,
}

impl NodeState {
    pub(super) fn new() -> NodeState {
        NodeState {
            health: Health::Unknown,
            successes: 0,
            failures: 0,
            last: None,
            db: None,
            since: Duration::ZERO,
            excluded: None,
            last_at: Duration::ZERO,
            drained: false,
            deposed: false,
            fenced: false,
        }
    }

    /// Up and of the pool's cluster: it counts in split-brain decisions.
    pub(super) fn reachable(&self) -> bool {
        self.health == Health::Up && self.excluded.is_none()
    }

    /// Reachable and not drained: it may be answered.
    pub(super) fn eligible(&self) -> bool {
        self.reachable() && !self.drained && !self.deposed
    }

    pub(super) fn writable(&self) -> bool {
        self.reachable() && self.db.as_ref().is_some_and(|d| d.writable)
    }
}
