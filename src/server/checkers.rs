//! The running checkers, one per node: started, kept across a reload, stopped; the
//! reports they send, traced back to the node; and each pool's fast-interval signal.

use std::collections::HashMap;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::plan::{Checker as Planned, Plan};
use crate::checks::{self, Report};
use crate::config::Config;
use crate::engine::NodeId;

/// The checker of one node, as started.
struct Running {
    id: u64,
    stop: CancellationToken,
}

/// What a reload did to the checkers.
pub struct Restarted {
    pub kept: usize,
    pub started: usize,
    pub stopped: usize,
}

pub struct CheckerSet {
    /// Running checkers by (pool, node) name.
    running: HashMap<(String, String), Running>,
    /// Checker id -> its node in the running config.
    by_id: HashMap<u64, NodeId>,
    /// The last failure reason per checker id, to log each change once.
    failing: HashMap<u64, Option<String>>,
    next_id: u64,
    /// Per pool name: tells its checkers to probe at the fast interval.
    degraded: HashMap<String, watch::Sender<bool>>,
    reports: mpsc::Sender<Report>,
    shutdown: CancellationToken,
}

impl CheckerSet {
    pub fn new(reports: mpsc::Sender<Report>, shutdown: CancellationToken) -> CheckerSet {
        CheckerSet {
            running: HashMap::new(),
            by_id: HashMap::new(),
            failing: HashMap::new(),
            next_id: 0,
            degraded: HashMap::new(),
            reports,
            shutdown,
        }
    }

    /// Starts a checker for every node of `config`.
    pub fn start_all(&mut self, config: &Config, tasks: &mut JoinSet<()>) {
        for (p, pool) in config.pools.iter().enumerate() {
            self.degraded
                .insert(pool.name.clone(), watch::channel(false).0);
            for n in 0..pool.nodes.len() {
                self.start(config, p, n, tasks);
            }
        }
    }

    fn start(&mut self, config: &Config, p: usize, n: usize, tasks: &mut JoinSet<()>) {
        let (pool, node) = (&config.pools[p], &config.pools[p].nodes[n]);
        let id = self.next_id;
        self.next_id += 1;
        let stop = self.shutdown.child_token();
        // Pool names are keys of `degraded` for every pool of the running config.
        let degraded = self.degraded[&pool.name].subscribe();
        checks::spawn(
            id,
            pool,
            node,
            self.reports.clone(),
            degraded,
            stop.clone(),
            tasks,
        );
        self.by_id.insert(id, NodeId::new(p, n));
        self.running
            .insert((pool.name.clone(), node.name.clone()), Running { id, stop });
    }

    /// The (pool, node) a report is about; `None` for a checker a reload stopped that
    /// still had a report queued.
    pub fn node_of(&self, report: &Report) -> Option<NodeId> {
        self.by_id.get(&report.checker).copied()
    }

    /// The last failure reason of a checker, to log only its changes.
    pub fn failing(&mut self, report: &Report) -> &mut Option<String> {
        self.failing.entry(report.checker).or_default()
    }

    /// Tells the checkers of `pool` to probe at its fast interval, or not.
    pub fn set_degraded(&self, pool: &str, degraded: bool) {
        if let Some(sender) = self.degraded.get(pool) {
            sender.send_if_modified(|d| std::mem::replace(d, degraded) != degraded);
        }
    }

    /// Carries out the plan's checkers for `config` (the new one) against the running
    /// ones: keeps, starts, stops.
    pub fn restart(&mut self, config: &Config, plan: &Plan, tasks: &mut JoinSet<()>) -> Restarted {
        let mut old = std::mem::take(&mut self.running);
        let mut old_degraded = std::mem::take(&mut self.degraded);
        self.by_id.clear();
        let (mut kept, mut started) = (0, 0);
        for (p, nodes) in plan.checkers.iter().enumerate() {
            let name = config.pools[p].name.clone();
            let sender = old_degraded
                .remove(&name)
                .unwrap_or_else(|| watch::channel(false).0);
            self.degraded.insert(name.clone(), sender);
            for (n, checker) in nodes.iter().enumerate() {
                let key = (name.clone(), config.pools[p].nodes[n].name.clone());
                match (checker, old.remove(&key)) {
                    (Planned::Keep, Some(running)) => {
                        self.by_id.insert(running.id, NodeId::new(p, n));
                        self.running.insert(key, running);
                        kept += 1;
                    }
                    (_, replaced) => {
                        if let Some(running) = replaced {
                            running.stop.cancel();
                        }
                        self.start(config, p, n, tasks);
                        started += 1;
                    }
                }
            }
        }
        debug_assert_eq!(old.len(), plan.removed.len());
        let stopped = old.len();
        for running in old.into_values() {
            running.stop.cancel();
        }
        self.failing.retain(|id, _| self.by_id.contains_key(id));
        Restarted {
            kept,
            started,
            stopped,
        }
    }
}
