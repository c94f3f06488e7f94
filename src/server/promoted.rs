//! After a promotion: the new primary published (then the others repointed), deposed
//! nodes released once they follow the primary, and (`rejoin = "auto"`) attached to it.

use std::time::Instant;

use tracing::{info, warn};

use super::promotion::State;
use super::supervisor::Supervisor;
use crate::checks::promote::{Step, StepDone};
use crate::config::Rejoin;
use crate::engine::{NodeId, PoolId};

impl Supervisor {
    /// A promoted candidate whose pool's `primary` records now answer it: published; the
    /// other replicas are repointed next.
    pub(super) fn check_published(&mut self, pool: PoolId) {
        let name = self.config.pools[pool.0].name.clone();
        let entry = self.promotions.pool(&name);
        if entry.state != State::Running(Step::Publish) {
            return;
        }
        let Some(record) = &mut entry.last else {
            return;
        };
        let candidate = record.candidate;
        let answered = self.published_primary(pool) == Some(candidate);
        let entry = self.promotions.pool(&name);
        let Some(record) = &mut entry.last else {
            return;
        };
        let took = record.promoted_at.map(|t| t.elapsed()).unwrap_or_default();
        if !answered {
            // The candidate was promoted but is not seen writable (its probes fail, say):
            // after step_timeout the promotion ends, reported, and the rules take over.
            let limit = self.config.pools[pool.0].promote.step_timeout;
            if took > limit {
                let done = StepDone {
                    step: Step::Publish,
                    node: record.job.candidate.name.clone(),
                    took,
                    result: Err(format!("not seen writable within step_timeout ({limit:?})")),
                };
                let candidate = done.node.clone();
                self.on_step(&name, done);
                self.finish(&name, "promoted, not published".into(), Err(candidate));
            }
            return;
        }
        let done = StepDone {
            step: Step::Publish,
            node: record.job.candidate.name.clone(),
            took,
            result: Ok("answered by every primary record of the pool".into()),
        };
        let job = record.job.clone();
        self.on_step(&name, done);
        self.promotions.pool(&name).state = State::Running(Step::Repoint);
        self.promotions.repoint(name, job);
    }

    /// Deposed nodes that replicate from the pool's primary again are no danger: released.
    pub(super) fn release_deposed(&mut self, pool: PoolId) {
        let Some(engine) = self.promoter() else {
            return;
        };
        let count = self.config.pools[pool.0].nodes.len();
        let released: Vec<usize> = (0..count)
            .filter(|&n| {
                let id = NodeId::new(pool.0, n);
                engine.node(id).deposed && engine.follows_primary(id)
            })
            .collect();
        for n in released {
            let name = self.config.pools[pool.0].nodes[n].name.clone();
            info!(pool = %self.config.pools[pool.0].name, node = %name, "deposed node replicates from the primary: released");
            self.depose(pool, n, false, false);
        }
    }

    /// `rejoin = "auto"`: a deposed node that is back and read-only is attached to the new
    /// primary (once per time it is back).
    pub(super) fn start_rejoins(&mut self, pool: PoolId) {
        let config = &self.config.pools[pool.0];
        if config.promote.rejoin != Rejoin::Auto {
            return;
        }
        let Some(engine) = self.promoter() else {
            return;
        };
        let Some(primary) = engine.primary(pool) else {
            return;
        };
        let states: Vec<_> = (0..config.nodes.len())
            .map(|n| engine.node(NodeId::new(pool.0, n)).clone())
            .collect();
        for (n, state) in states.iter().enumerate() {
            let back = state.deposed
                && state.health == crate::engine::Health::Up
                && state.db.as_ref().is_some_and(|d| !d.writable);
            let entry = self.promotions.pool(&config.name);
            let name = &config.nodes[n].name;
            // One attempt per time it is back: forgotten once it is down or released (in
            // cluster mode that is when etcd's record says so, not when it is asked).
            if state.health != crate::engine::Health::Up || !state.deposed {
                entry.rejoining.retain(|r| r != name);
            }
            let retry = (entry.rejoin_after.get(name)).is_some_and(|at| *at <= Instant::now());
            if retry {
                entry.rejoin_after.remove(name);
                entry.rejoining.retain(|r| r != name);
            }
            if back && !entry.rejoining.contains(name) {
                entry.rejoining.push(name.clone());
                self.promotions
                    .rejoin(config, &config.nodes[n], &config.nodes[primary]);
            }
        }
    }

    /// At start: the deposed nodes and blocks that `promotions.toml` kept, by name.
    pub(super) fn load_promotions(&mut self) {
        // In cluster mode etcd keeps them.
        let Some(file) = self.promotions.file.clone().filter(|_| !self.in_cluster()) else {
            return;
        };
        let saved = match super::promotion_file::load(&file) {
            Ok(saved) => saved,
            Err(error) => {
                warn!(%error, "cannot read the promotion state; starting without it");
                return;
            }
        };
        let now = self.clock.now();
        for pool in &saved.pool {
            let Some(p) = self.config.pools.iter().position(|x| x.name == pool.name) else {
                continue;
            };
            for name in &pool.deposed {
                if let Some(n) = self.config.pools[p]
                    .nodes
                    .iter()
                    .position(|x| &x.name == name)
                {
                    info!(pool = %pool.name, node = %name, "still deposed after a promotion (promotions.toml)");
                    let events = (self.engine).set_deposed(NodeId::new(p, n), true, false, now);
                    self.decide(events, &[PoolId(p)]);
                }
            }
            let until = pool
                .blocked_until_unix_ms
                .map(|ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms));
            if let Some(left) =
                until.and_then(|u| u.duration_since(std::time::SystemTime::now()).ok())
            {
                let entry = self.promotions.pool(&pool.name);
                entry.blocked_until = until.map(|u| (std::time::Instant::now() + left, u));
            }
        }
        self.promotions.saved = saved;
    }

    /// Writes the promotion state when it changed (a failure is logged: the state in
    /// memory stays authoritative).
    pub(super) fn save_promotions(&mut self) {
        let Some(file) = self.promotions.file.clone().filter(|_| !self.in_cluster()) else {
            return;
        };
        let mut saved = super::promotion_file::Saved::default();
        for (p, config) in self.config.pools.iter().enumerate() {
            let deposed: Vec<String> = (0..config.nodes.len())
                .filter(|&n| self.engine.node(NodeId::new(p, n)).deposed)
                .map(|n| config.nodes[n].name.clone())
                .collect();
            let blocked = self.promotions.pools.get(&config.name).and_then(|e| {
                e.blocked(std::time::Instant::now())
                    .and_then(|u| u.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64)
            });
            if !deposed.is_empty() || blocked.is_some() {
                saved.pool.push(super::promotion_file::SavedPool {
                    name: config.name.clone(),
                    deposed,
                    blocked_until_unix_ms: blocked,
                });
            }
        }
        if saved == self.promotions.saved {
            return;
        }
        match super::promotion_file::save(&file, &saved) {
            Ok(()) => self.promotions.saved = saved,
            Err(error) => warn!(%error, "cannot write the promotion state"),
        }
    }
}
