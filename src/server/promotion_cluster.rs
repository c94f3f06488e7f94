//! Promotion in cluster mode (docs/failover-semantics.md, "Promotion"): only the leader
//! promotes, asking the engine that decides for the cluster (the merged views: down only
//! for a majority). Each pool's promotion lives in etcd (`{prefix}promotions/{pool}`:
//! deposed nodes, the block, the promotion under way), written by the leader in a
//! transaction guarded by its leadership before the steps start and at each stage, so
//! that the next leader finishes it or says that it stopped. Every member shows it. Without
//! `[cluster]` the local engine decides and `promotions.toml` keeps the state.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::promotion::{Record, State};
use super::supervisor::{Source, Supervisor, unix_ms};
use crate::api::event::{EventKind, EventRecord};
use crate::checks::promote::{Job, Mandate, Step};
use crate::cluster::{AgreedPromotion, Request, RunningPromotion, Stage};
use crate::config::{PromoteMode, Select};
use crate::engine::{Answer, Engine, Health, NodeId, PoolId};

impl Supervisor {
    /// The engine that decides promotions here: the local one, or in cluster mode the
    /// leader's; `None` on a member that does not lead.
    pub(super) fn promoter(&self) -> Option<&Engine> {
        match &self.source {
            Source::Local => Some(&self.engine),
            Source::Cluster { side, .. } => side.leading().map(|(engine, _)| engine),
        }
    }

    /// Deposes (or releases) a node: in the local engine, or in etcd's record, which both
    /// engines of every member follow.
    pub(super) fn depose(&mut self, pool: PoolId, node: usize, deposed: bool, demoting: bool) {
        if self.in_cluster() {
            let name = self.config.pools[pool.0].nodes[node].name.clone();
            self.write_promotion(pool, None, move |record| {
                record.deposed.retain(|d| *d != name);
                if deposed {
                    record.deposed.push(name);
                }
            });
            return;
        }
        let id = NodeId::new(pool.0, node);
        let events = (self.engine).set_deposed(id, deposed, demoting, self.clock.now());
        self.decide(events, &[pool]);
    }

    /// Cluster mode: changes the pool's record (as this leader last wrote it, or as etcd
    /// holds it) and writes it; `reply` says whether etcd took it. Refused when this
    /// member does not lead; nothing without `[cluster]`.
    pub(super) fn write_promotion(
        &mut self,
        pool: PoolId,
        reply: Option<oneshot::Sender<Result<(), String>>>,
        change: impl FnOnce(&mut AgreedPromotion),
    ) {
        let Source::Cluster { member, side } = &self.source else {
            return;
        };
        let name = &self.config.pools[pool.0].name;
        let Some((_, epoch)) = side.leading() else {
            if let Some(reply) = reply {
                let _ = reply.send(Err("this member does not lead the cluster".into()));
            }
            return;
        };
        let mut record = match self.promotions.written.get(name) {
            Some((e, record)) if *e == epoch => record.clone(),
            _ => (side.state().promotions.get(name).cloned()).unwrap_or_default(),
        };
        change(&mut record);
        (self.promotions.written).insert(name.clone(), (epoch, record.clone()));
        // The member task lives as long as the supervisor, but for shutdown.
        let _ = member.requests.send(Request::Promotion {
            pool: name.clone(),
            epoch,
            record,
            reply,
        });
    }

    /// The record of a promotion this leader starts, and the leadership its steps are
    /// bounded by (`None` without `[cluster]`).
    pub(super) fn running_record(&self, job: &Job) -> Option<(RunningPromotion, Mandate)> {
        let Source::Cluster { side, member } = &self.source else {
            return None;
        };
        let (_, epoch) = side.leading()?;
        let running = RunningPromotion {
            leader: side.name().into(),
            epoch,
            old: job.old.name.clone(),
            candidate: job.candidate.name.clone(),
            switchover: job.switchover,
            stage: Stage::Started,
            started_ms: unix_ms(),
        };
        Some((running, side.mandate(&member.leadership)?))
    }

    /// Whether this member may start a promotion now: always without `[cluster]`; in
    /// cluster mode while it leads with a proven lease (a start it could not finish would
    /// only wait for its retry).
    pub(super) fn may_promote(&self) -> bool {
        match &self.source {
            Source::Local => true,
            Source::Cluster { side, member } => {
                (side.mandate(&member.leadership)).is_some_and(|m| m.check().is_ok())
            }
        }
    }

    /// The node a pool's `primary` records answer as served here: the local engine's, or
    /// the agreed decision's in cluster mode.
    pub(super) fn published_primary(&self, pool: PoolId) -> Option<usize> {
        let Source::Cluster { side, .. } = &self.source else {
            return self.engine.primary(pool);
        };
        let agreed = side.served()?.by_name();
        let nodes = &self.config.pools[pool.0].nodes;
        (self.config.records.iter())
            .filter(|r| r.pool == pool && matches!(r.select, Select::Primary))
            .find_map(|r| match &agreed.get(r.name.as_str())?.answer {
                Answer::Nodes(named) if named.len() == 1 => {
                    nodes.iter().position(|n| n.name == named[0].node)
                }
                _ => None,
            })
    }

    /// Cluster mode, after each step of the cluster side: every member shows each pool's
    /// block and promotion as etcd holds them; the leader takes over (or reports) one a
    /// former leader left, and asks the rule again.
    pub(super) fn cluster_promotions(&mut self) {
        let Source::Cluster { side, .. } = &self.source else {
            return;
        };
        let epoch = side.leading().map(|(_, epoch)| epoch);
        let leader = (side.state().leader.as_ref()).map_or("none".into(), |(n, _)| n.clone());
        let records = side.state().promotions.clone();
        for p in 0..self.config.pools.len() {
            let config = &self.config.pools[p];
            if config.promote.mode == PromoteMode::Off {
                continue;
            }
            // What this leader last wrote, before its watch brings it back.
            let record = match self.promotions.written.get(&config.name) {
                Some((e, record)) if Some(*e) == epoch => record.clone(),
                _ => records.get(&config.name).cloned().unwrap_or_default(),
            };
            let entry = self.promotions.pool(&config.name);
            entry.blocked_until = record.blocked_until_ms.and_then(blocked_until);
            let ours = (entry.last.as_ref()).is_some_and(|l| l.outcome.is_none());
            let Some(epoch) = epoch else {
                // Another member leads: show its promotion; one this member had under way
                // is its to finish now.
                if ours && let Some(last) = &mut entry.last {
                    last.outcome = Some(
                        "handed over: this member no longer leads; the next leader decides".into(),
                    );
                }
                entry.state = shown(&record, &leader);
                continue;
            };
            if entry.busy() && !ours {
                entry.state = State::Idle;
            }
            if let Some(running) = record.running.filter(|r| r.epoch != epoch && !ours) {
                self.take_over(PoolId(p), running);
            }
            self.consider_promotion(PoolId(p));
        }
    }

    /// A promotion a former leader started: finished here when its candidate takes
    /// writes (published, the others repointed), reported as stopped otherwise (the rule
    /// decides again; the old primary stays deposed).
    fn take_over(&mut self, pool: PoolId, running: RunningPromotion) {
        let config = &self.config.pools[pool.0];
        let position = |name: &str| config.nodes.iter().position(|n| n.name == name);
        let (old, candidate) = (position(&running.old), position(&running.candidate));
        let writable = |engine: &Engine, n: usize| {
            let state = engine.node(NodeId::new(pool.0, n));
            state.health == Health::Up && state.db.as_ref().is_some_and(|d| d.writable)
        };
        let promoted = match (old, candidate, self.promoter()) {
            (Some(old), Some(c), Some(engine)) if writable(engine, c) => Some((old, c)),
            _ => None,
        };
        let name = config.name.clone();
        let Some((old, candidate)) = promoted else {
            let message = format!(
                "the promotion of {} in place of {} by {} stopped before {} took writes ({} \
                 no longer leads); the rule decides again",
                running.candidate, running.old, running.leader, running.candidate, running.leader
            );
            warn!(pool = %name, %message, "promotion taken over");
            self.events.push(
                EventRecord::new(EventKind::PromotionFailed, message).at(&name, &running.candidate),
            );
            return self.write_promotion(pool, None, |r| r.running = None);
        };
        let message = format!(
            "taken over from {}: {} accepts writes; publishing it and repointing the others",
            running.leader, running.candidate
        );
        info!(pool = %name, %message, "promotion taken over");
        self.events
            .push(EventRecord::new(EventKind::Promotion, message).at(&name, &running.candidate));
        let others = (0..config.nodes.len()).filter(|&n| n != old && n != candidate);
        let job = Job::new(config, old, candidate, others, running.switchover);
        let mine = self.running_record(&job).map(|(mut mine, _)| {
            mine.stage = Stage::Promoted;
            mine.started_ms = running.started_ms;
            mine
        });
        let started = UNIX_EPOCH + Duration::from_millis(running.started_ms);
        let entry = self.promotions.pool(&name);
        entry.state = State::Running(Step::Publish);
        entry.last = Some(Record {
            started,
            started_at: Instant::now(),
            job,
            old,
            candidate,
            behind: None,
            manual: false,
            steps: Vec::new(),
            promoted_at: Some(Instant::now()),
            outcome: None,
            was_deposed: true,
        });
        self.write_promotion(pool, None, |r| r.running = mine);
    }
}

/// What a member that does not lead shows of a pool's promotion.
fn shown(record: &AgreedPromotion, leader: &str) -> State {
    match &record.running {
        Some(r) if r.stage == Stage::Promoted => State::Running(Step::Publish),
        Some(_) => State::Running(Step::Promote),
        None => State::Watching(format!(
            "the cluster's leader ({leader}) decides promotions"
        )),
    }
}

/// A block kept in etcd (Unix milliseconds), as the supervisor times it; `None` once
/// past.
fn blocked_until(ms: u64) -> Option<(Instant, SystemTime)> {
    let until = UNIX_EPOCH + Duration::from_millis(ms);
    let left = until.duration_since(SystemTime::now()).ok()?;
    Some((Instant::now() + left, until))
}
