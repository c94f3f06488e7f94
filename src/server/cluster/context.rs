//! What every step of the cluster side reads, and the small rules its parts share.

use std::time::{Duration, Instant};

use crate::cluster::{Drain, State};
use crate::config::Config;
use crate::engine::Engine;

/// What a step reads besides the cluster's state.
pub struct Context<'a> {
    pub config: &'a Config,
    /// The local engine: its drained flags follow the cluster-wide list.
    pub engine: &'a mut Engine,
    /// Engine time.
    pub now: Duration,
    /// The monotonic clock (the lease is timed on it) and the wall clock in Unix
    /// milliseconds (decisions carry it).
    pub instant: Instant,
    pub unix_ms: u64,
    /// Every zone's serial now.
    pub serials: &'a [u32],
}

pub(super) fn is_drained(drains: &[Drain], pool: &str, node: &str) -> bool {
    drains.iter().any(|d| d.pool == pool && d.node == node)
}

/// Whether `pool`/`node` is deposed by a promotion (etcd's record), and whether a
/// switchover demotes it now (its fence is the promotion's first step, not the engine's).
pub(super) fn is_deposed(state: &State, pool: &str, node: &str) -> (bool, bool) {
    let Some(record) = state.promotions.get(pool) else {
        return (false, false);
    };
    let demoting = (record.running.as_ref()).is_some_and(|r| r.switchover && r.old == node);
    (record.deposed.iter().any(|d| d == node), demoting)
}

/// How long after its last answered keepalive a cut-off member releases its vips: the
/// lease less one keepalive interval. etcd counts the lease from when it received the
/// keepalive, a little before its answer arrived here; releasing one interval early keeps
/// the release inside the lease as etcd counts it.
pub(super) fn release_after(settings: &crate::config::Cluster) -> Duration {
    settings.lease - crate::cluster::keepalive_interval(settings.lease)
}
