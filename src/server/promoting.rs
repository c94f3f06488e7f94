//! The supervisor's side of promotion: after each decision about a pool, ask the engine
//! whether to promote (`engine::promote`), start it, follow its steps, publish, repoint,
//! depose the old primary; the running failover told when the old primary's answers
//! expire (`follow_old_primary`); `hadns promote` and `hadns ack`.

use std::time::{Duration, Instant, SystemTime};

use tracing::{error, info, warn};

use super::promotion::{Progress, Record, State};
use super::supervisor::{Source, Supervisor};
use crate::api::command::CommandError;
use crate::api::event::{EventKind, EventRecord};
use crate::checks::promote::{Job, Outcome, Step, StepDone};
use crate::config::PromoteMode;
use crate::engine::{NodeId, Plan, PoolId, Verdict};

impl Supervisor {
    /// After a decision about `pool`: deposed nodes that follow the primary again are
    /// released, a promotion waiting for its publication goes on, and with `mode = "auto"`
    /// the engine's rule may start one.
    pub(super) fn consider_promotion(&mut self, pool: PoolId) {
        let config = &self.config.pools[pool.0];
        if config.promote.mode == PromoteMode::Off || self.promoter().is_none() {
            return;
        }
        self.release_deposed(pool);
        self.follow_old_primary(pool);
        self.check_published(pool);
        self.start_rejoins(pool);
        let config = &self.config.pools[pool.0];
        let name = config.name.clone();
        let now = Instant::now();
        let Some(verdict) = self.promoter().map(|e| e.promotion(pool, config, None)) else {
            return;
        };
        let entry = self.promotions.pool(&name);
        if config.promote.mode != PromoteMode::Auto || entry.busy() {
            return;
        }
        let state = match verdict {
            Verdict::Idle(why) => State::Watching(why),
            Verdict::Refused(why) => State::Refused(why),
            Verdict::Promote(plan) => match entry.blocked(now) {
                Some(until) => State::Blocked(format!(
                    "{} would replace {}, but automatic promotion is blocked until {} \
                     (`block`, after the last one; `hadns ack {name}` lifts it)",
                    config.nodes[plan.candidate].name,
                    config.nodes[plan.old].name,
                    crate::api::event::rfc3339(until)
                )),
                None if entry.retry_at.is_some_and(|at| at > now) => return,
                None if !self.may_promote() => return,
                None => {
                    self.start_promotion(pool, plan, false);
                    return;
                }
            },
        };
        self.set_state(pool, state);
    }

    /// Tells a running promotion of `pool` until when answers naming its old primary may
    /// be used (`checks::promote::OldPrimary`): from this hadns's publications, or in
    /// cluster mode from the leader's guard, which knows what every member served.
    pub(super) fn follow_old_primary(&mut self, pool: PoolId) {
        let config = &self.config.pools[pool.0];
        let Some(record) = (self.promotions.pools.get(&config.name)).and_then(|e| e.last.as_ref())
        else {
            return;
        };
        if record.outcome.is_some() || record.promoted_at.is_some() {
            return;
        }
        let until = match &self.source {
            Source::Local => (self.publication)
                .writer_usable_until(&config.name, config.nodes[record.old].address),
            Source::Cluster { side, .. } => {
                let old = NodeId::new(pool.0, record.old);
                side.writer_usable_until(&self.config, old, Instant::now())
            }
        };
        record.job.old_primary_named(until);
    }

    /// Records a new state; a refusal or a block is an event (once per reason).
    fn set_state(&mut self, pool: PoolId, state: State) {
        let name = self.config.pools[pool.0].name.clone();
        let entry = self.promotions.pool(&name);
        if entry.state == state {
            return;
        }
        entry.state = state.clone();
        if let State::Refused(why) | State::Blocked(why) = &state {
            warn!(pool = %name, %why, "promotion refused");
            self.metrics
                .promotions
                .with_label_values(&[name.as_str(), "refused"])
                .inc();
            let mut record = EventRecord::new(EventKind::PromotionRefused, why.clone());
            record.pool = Some(name);
            self.events.push(record);
        }
    }

    /// Starts carrying out `plan` (`manual`: an operator asked).
    pub(super) fn start_promotion(&mut self, pool: PoolId, plan: Plan, manual: bool) {
        let config = &self.config.pools[pool.0];
        let others = plan.others.iter().copied();
        let job = Job::new(config, plan.old, plan.candidate, others, plan.switchover);
        let kind = if plan.switchover {
            "switchover"
        } else {
            "failover"
        };
        let message = format!(
            "{kind}: promoting {} in place of {}{}",
            job.candidate.name,
            job.old.name,
            plan.behind
                .as_ref()
                .map(|b| format!("; it was {b}"))
                .unwrap_or_default()
        );
        info!(pool = %config.name, %message, "promotion started");
        let mut record = EventRecord::new(EventKind::Promotion, message)
            .at(&config.name, &job.candidate.name)
            .change(&job.old.name, &job.candidate.name);
        record.pool = Some(config.name.clone());
        self.events.push(record);
        let name = config.name.clone();
        // From now on the old primary is never answered, and fenced whenever it is
        // writable: should it come back during the promotion, no client reaches it. In
        // cluster mode etcd records it first, with the promotion, before any step. The
        // candidate is released if an earlier promotion deposed it: it replicates from the
        // old primary (or it would not be a candidate), and a deposed candidate would be
        // fenced the moment it is promoted (seen in the nemesis run: the new primary made
        // read-only again, never published, the pool left without a writer).
        let old = NodeId::new(pool.0, plan.old);
        let candidate_deposed = self
            .promoter()
            .is_some_and(|e| e.node(NodeId::new(pool.0, plan.candidate)).deposed);
        let was_deposed = self.promoter().is_some_and(|e| e.node(old).deposed);
        let mut job = job;
        let recorded = match self.running_record(&job) {
            Some((running, mandate)) => {
                job.mandate = Some(mandate);
                let (taken, recorded) = tokio::sync::oneshot::channel();
                self.write_promotion(pool, Some(taken), |record| {
                    record
                        .deposed
                        .retain(|d| *d != running.old && *d != running.candidate);
                    record.deposed.push(running.old.clone());
                    record.running = Some(running);
                });
                Some(recorded)
            }
            None => {
                self.depose(pool, plan.old, true, plan.switchover);
                if candidate_deposed {
                    self.depose(pool, plan.candidate, false, false);
                }
                None
            }
        };
        let entry = self.promotions.pool(&name);
        entry.state = State::Running(Step::Fence);
        entry.last = Some(Record {
            started: SystemTime::now(),
            started_at: Instant::now(),
            job: job.clone(),
            old: plan.old,
            candidate: plan.candidate,
            behind: plan.behind,
            manual,
            steps: Vec::new(),
            promoted_at: None,
            outcome: None,
            was_deposed,
        });
        self.promotions.start(name, job, recorded);
        self.follow_old_primary(pool);
    }

    /// What a promotion task reported.
    pub(super) fn on_promotion(&mut self, progress: Progress) {
        match progress {
            Progress::Step(pool, done) => self.on_step(&pool, done),
            Progress::Finished(pool, outcome) => self.on_finished(&pool, outcome),
            Progress::Repointed(pool) => self.finish(&pool, "promoted".into(), Ok(())),
            // The node stays in `rejoining` until it is released or goes down; a failed
            // attempt is made again after step_timeout.
            Progress::Rejoined(pool, done) => {
                self.log_step(&pool, &done);
                let retry = (self.config.pools.iter().find(|p| p.name == pool))
                    .map_or(Duration::from_secs(10), |p| p.promote.step_timeout);
                let entry = self.promotions.pool(&pool);
                if done.result.is_err() && entry.rejoining.contains(&done.node) {
                    entry.rejoin_after.insert(done.node, Instant::now() + retry);
                }
            }
        }
    }

    fn log_step(&mut self, pool: &str, done: &StepDone) {
        let (kind, text) = match &done.result {
            Ok(what) => (EventKind::Promotion, what.clone()),
            Err(why) => (EventKind::PromotionFailed, why.clone()),
        };
        let ms = done.took.as_secs_f64() * 1000.0;
        let message = format!("{} on {} ({ms:.0} ms): {text}", done.step, done.node);
        if done.result.is_ok() {
            info!(pool, step = %done.step, node = %done.node, ms, %text, "promotion step");
        } else {
            warn!(pool, step = %done.step, node = %done.node, ms, %text, "promotion step failed");
        }
        self.events
            .push(EventRecord::new(kind, message).at(pool, &done.node));
    }

    pub(super) fn on_step(&mut self, pool: &str, done: StepDone) {
        self.log_step(pool, &done);
        let entry = self.promotions.pool(pool);
        let next = match done.step {
            Step::Fence => Step::CatchUp,
            Step::CatchUp => Step::Expire,
            Step::Expire => Step::Promote,
            Step::Promote => Step::Publish,
            Step::Undo => Step::Undo,
            other => other,
        };
        let fenced = (done.step == Step::Fence && done.result.is_ok())
            .then(|| entry.last.as_ref().map(|l| l.old))
            .flatten();
        // Only forward: a failover's fence may end after the steps that follow it.
        if entry.state == State::Running(done.step) {
            entry.state = State::Running(next);
        }
        if let Some(record) = &mut entry.last {
            record.steps.push(done);
        }
        // In cluster mode a fenced old primary is proven unusable: the guard may name the
        // new one without waiting for every member and the TTL.
        if let (Some(old), Some(p)) = (
            fenced,
            self.config.pools.iter().position(|x| x.name == pool),
        ) && let Source::Cluster { side, .. } = &mut self.source
        {
            side.fenced(&self.config, NodeId::new(p, old));
        }
    }

    fn on_finished(&mut self, pool: &str, outcome: Outcome) {
        let Some(p) = self.config.pools.iter().position(|x| x.name == pool) else {
            return;
        };
        let entry = self.promotions.pool(pool);
        let Some(record) = &mut entry.last else {
            return;
        };
        match outcome {
            Outcome::Aborted(why) => {
                let candidate = record.job.candidate.name.clone();
                let (old, was_deposed) = (record.old, record.was_deposed);
                self.finish(pool, format!("not promoted: {why}"), Err(candidate));
                if !was_deposed {
                    self.depose(PoolId(p), old, false, false);
                }
            }
            Outcome::Promoted => {
                record.promoted_at = Some(Instant::now());
                let (old, candidate) = (record.old, record.candidate);
                let manual = record.manual;
                entry.state = State::Running(Step::Publish);
                let block = self.config.pools[p].promote.block;
                // Anti-flap for automatic promotions; a person's is their own decision.
                if !manual && !block.is_zero() {
                    entry.blocked_until = Some((Instant::now() + block, SystemTime::now() + block));
                }
                let message = format!(
                    "{} promoted in place of {}",
                    self.config.pools[p].nodes[candidate].name,
                    self.config.pools[p].nodes[old].name
                );
                info!(pool, %message, "promoted");
                self.metrics
                    .promotions
                    .with_label_values(&[pool, "promoted"])
                    .inc();
                self.events.push(
                    EventRecord::new(EventKind::Promoted, message)
                        .at(pool, &self.config.pools[p].nodes[candidate].name),
                );
                let blocked = (self.promotions.pool(pool).blocked_until)
                    .and_then(|(_, until)| until.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64);
                self.write_promotion(PoolId(p), None, |record| {
                    if let Some(running) = &mut record.running {
                        running.stage = crate::cluster::Stage::Promoted;
                    }
                    record.blocked_until_ms = blocked;
                });
                if !self.in_cluster() {
                    self.depose(PoolId(p), old, true, false);
                }
                self.consider_promotion(PoolId(p));
            }
        }
    }

    /// Ends the running promotion: its outcome, the operator's reply, the state.
    pub(super) fn finish(&mut self, pool: &str, outcome: String, result: Result<(), String>) {
        let retry = self
            .config
            .pools
            .iter()
            .find(|x| x.name == pool)
            .map(|p| p.promote.step_timeout)
            .unwrap_or_default();
        let entry = self.promotions.pool(pool);
        let Some(record) = &mut entry.last else {
            return;
        };
        record.outcome = Some(outcome.clone());
        let p = self.config.pools.iter().position(|x| x.name == pool);
        let summary = format!(
            "{}: {outcome} ({:.0} ms)",
            record.job.candidate.name,
            record.took().as_secs_f64() * 1000.0
        );
        entry.state = match &result {
            Ok(()) => State::Idle,
            Err(_) => State::Refused(outcome.clone()),
        };
        if result.is_err() {
            entry.retry_at = Some(Instant::now() + retry);
            error!(pool, %summary, "promotion failed");
            self.metrics
                .promotions
                .with_label_values(&[pool, "failed"])
                .inc();
            self.events.push(
                EventRecord::new(EventKind::PromotionFailed, summary.clone())
                    .at(pool, &record.job.candidate.name),
            );
        }
        if let Some(reply) = entry.reply.take() {
            let _ = reply.send(
                result
                    .map(|()| summary)
                    .map_err(|_| CommandError::Refused(outcome)),
            );
        }
        if let Some(p) = p {
            self.write_promotion(PoolId(p), None, |record| record.running = None);
        }
    }
}
