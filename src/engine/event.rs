//! What the engine's decisions cause: the [`Event`]s the supervisor logs, counts and acts on.

use std::time::Duration;

use super::{Answer, Health, NodeId, RecordId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    NodeChanged {
        node: NodeId,
        from: Health,
        to: Health,
        reason: String,
    },
    AnswerChanged {
        record: RecordId,
        from: Answer,
        to: Answer,
        reason: String,
    },
    /// Several writable nodes for a `primary` record; `outcome` says what was answered.
    SplitBrain {
        record: RecordId,
        writable: Vec<usize>,
        outcome: String,
    },
    /// A node's cluster identity differs from the pool's (`expected` is `None` when the
    /// pool has no majority identity); it is left out of every answer until it agrees.
    ClusterMismatch {
        node: NodeId,
        cluster: String,
        expected: Option<String>,
    },
    /// A node's cluster identity agrees again.
    ClusterRejoined { node: NodeId },
    /// No node of the pool can be reached: the last answer is kept for up to `max_stale`.
    Stale {
        record: RecordId,
        max_stale: Duration,
    },
    /// An operator drained a node (it leaves every answer) or undrained it.
    Drained { node: NodeId, drained: bool },
    /// Make this still-writable loser read-only before the new answer is published.
    Fence { node: NodeId, reason: String },
}
