//! What a promotion is made of, shared by the steps of each database: the job, its steps
//! as they end, its outcome.

use std::sync::Arc;
use std::time::Duration;

use crate::api::deadline::{Deadline, Leadership};

use crate::config::{Node, Pool};

/// One promotion to carry out.
#[derive(Debug, Clone)]
pub struct Job {
    pub pool: Pool,
    pub old: Node,
    pub candidate: Node,
    /// The other replicas, to repoint at the candidate.
    pub others: Vec<Node>,
    /// The old primary is alive: demote it first and lose nothing (else a failover).
    pub switchover: bool,
    /// Cluster mode: the leadership the promotion was decided under.
    pub mandate: Option<Mandate>,
}

/// A cluster leader acts only while it still leads under the epoch it decided in and its
/// lease is proven current (the writers' deadline): a leader that stalled (SIGSTOP, a
/// frozen VM) or lost etcd stops before its next step, since another may lead by then.
#[derive(Debug, Clone)]
pub struct Mandate {
    pub epoch: i64,
    pub leadership: Arc<Leadership>,
    pub writers: Arc<Deadline>,
}

impl Job {
    /// The promotion of node `candidate` of `pool` in place of node `old` (positions in the
    /// pool), repointing `others`; without a mandate (cluster mode sets one).
    pub fn new(
        pool: &Pool,
        old: usize,
        candidate: usize,
        others: impl IntoIterator<Item = usize>,
        switchover: bool,
    ) -> Job {
        Job {
            pool: pool.clone(),
            old: pool.nodes[old].clone(),
            candidate: pool.nodes[candidate].clone(),
            others: others.into_iter().map(|i| pool.nodes[i].clone()).collect(),
            switchover,
            mandate: None,
        }
    }

    /// Whether this member may still take the next step.
    pub fn may_act(&self) -> Result<(), String> {
        self.mandate.as_ref().map_or(Ok(()), Mandate::check)
    }
}

impl Mandate {
    /// Whether the leader still leads under its epoch with a proven lease.
    pub fn check(&self) -> Result<(), String> {
        if !self.leadership.holds(self.epoch) {
            return Err(format!(
                "this member no longer leads the cluster (it decided as leader {}): the next \
                 leader decides",
                self.epoch
            ));
        }
        if self.writers.is_past() {
            return Err(
                "this member's lease is not proven current (etcd has not confirmed \
                        it in time): the next leader decides"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The steps, in order, as `/status` and the events name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Fence,
    CatchUp,
    Promote,
    Publish,
    /// The new primary's replication from the old one reset (MySQL/MariaDB).
    Detach,
    Repoint,
    Rejoin,
    /// A switchover that stopped after the demotion: the old primary made writable again.
    Undo,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        f.write_str(name.as_str().unwrap_or_default())
    }
}

/// Times a step that started at the given instant on a node, reports it, and hands its
/// result back.
pub(super) type Timed<'a> = dyn Fn(Step, &Node, std::time::Instant, Result<String, String>) -> Result<String, String>
    + Send
    + Sync
    + 'a;

/// One step that ended.
#[derive(Debug, Clone)]
pub struct StepDone {
    pub step: Step,
    /// The node it was done on.
    pub node: String,
    pub took: Duration,
    /// What was done, or why it failed.
    pub result: Result<String, String>,
}

/// How a promotion ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The candidate accepts writes.
    Promoted,
    /// Stopped before the candidate was made writable, and why; nothing was promoted.
    Aborted(String),
}

/// `step` bounded by `limit`, its timeout named.
pub(super) async fn within<T>(
    limit: Duration,
    what: &str,
    step: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(limit, step)
        .await
        .unwrap_or_else(|_| Err(format!("{what} timed out after {limit:?}")))
}
