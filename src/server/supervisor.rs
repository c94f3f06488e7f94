//! The supervisor: one task that owns the configuration, the engine and the source of
//! decisions (`Source`), and carries every decision out through the outbox, in order.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::checkers::CheckerSet;
use super::cluster;
use super::decisions::{Decision, Fenced, Outbox, Route, Step};
use super::drains::Drains;
use super::events::{self, EventLog};
use super::hooks;
use super::publication::Publication;
use super::status::Clock;
use crate::api::command::Command;
use crate::checks::Report;
use crate::config::Config;
use crate::engine::{Engine, Event, PoolId};
use crate::metrics::Metrics;

/// What the supervisor hears from outside besides reports.
pub(super) struct Inputs {
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) hangup: tokio::signal::unix::Signal,
}

/// One thing for the supervisor to handle.
enum Input {
    Report(Report),
    Command(Command),
    Fenced(Fenced),
    Promotion(super::promotion::Progress),
    Side(crate::api::event::EventRecord),
    Hangup,
    /// The cluster member task's state changed; `Tick`: once a second in cluster mode.
    Cluster,
    Tick,
    TaskEnded,
    Shutdown,
}

/// Where the answers served come from: each source turns what it hears into `Decision`s,
/// which the supervisor carries out the same way.
pub(super) enum Source {
    /// No `[cluster]`: the local engine decides alone (`Decision::local`).
    Local,
    /// `[cluster]`: the member task (etcd), and the cluster side that turns its state and
    /// the local engine's views into decisions (`cluster::ClusterSource`, pure).
    Cluster {
        member: crate::cluster::Cluster,
        side: Box<cluster::ClusterSource>,
    },
}

/// Owns the configuration, the engine and everything that follows from their decisions.
pub(super) struct Supervisor {
    pub(super) config: Config,
    pub(super) config_file: Option<PathBuf>,
    /// When the running configuration was loaded (engine time).
    pub(super) config_loaded: Duration,
    pub(super) engine: Engine,
    pub(super) clock: Clock,
    pub(super) checkers: CheckerSet,
    pub(super) publication: Publication,
    pub(super) outbox: Outbox,
    pub(super) drains: Drains,
    /// Per `[[vip]]` of the config, in order: its actor's wish to hold the address.
    pub(super) vips: Vec<watch::Sender<bool>>,
    pub(super) events: EventLog,
    pub(super) hooks: hooks::Hooks,
    pub(super) metrics: Arc<Metrics>,
    /// The admin token, replaced by a reload.
    pub(super) token: Arc<ArcSwap<Option<String>>>,
    pub(super) all_ready: bool,
    /// Where the answers served come from.
    pub(super) source: Source,
    /// Where the NOTIFYs to each secondary stand (written by the NOTIFY tasks).
    pub(super) notify: crate::dns::notify::Board,
    /// Each pool's promotion and the tasks that carry them out.
    pub(super) promotions: super::promotion::Promotions,
}

impl Supervisor {
    /// Handles inputs one at a time until `shutdown`.
    pub(super) async fn serve(
        &mut self,
        inputs: &mut Inputs,
        reports: &mut mpsc::Receiver<Report>,
        side_events: &mut mpsc::UnboundedReceiver<crate::api::event::EventRecord>,
        tasks: &mut JoinSet<()>,
        shutdown: &CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let in_cluster = self.in_cluster();
            let (release_at, wake_at) = match &self.source {
                Source::Cluster { side, .. } => (side.release_at(), side.wake_at()),
                Source::Local => (None, None),
            };
            let input = tokio::select! {
                Some(report) = reports.recv() => Input::Report(report),
                _ = cluster_changed(&mut self.source) => Input::Cluster,
                _ = lease_ends(release_at) => Input::Cluster,
                _ = lease_ends(wake_at) => Input::Tick,
                _ = tick.tick(), if in_cluster => Input::Tick,
                Some(command) = inputs.commands.recv() => Input::Command(command),
                Some(fenced) = self.outbox.finished.recv() => Input::Fenced(fenced),
                Some(progress) = self.promotions.finished.recv() => Input::Promotion(progress),
                Some(event) = side_events.recv() => Input::Side(event),
                _ = inputs.hangup.recv() => Input::Hangup,
                // Checkers stopped by a reload end here.
                Some(_) = tasks.join_next() => Input::TaskEnded,
                _ = shutdown.cancelled() => Input::Shutdown,
            };
            match input {
                Input::Report(report) => self.on_report(report),
                Input::Command(command) => self.on_command(command, tasks).await,
                Input::Fenced(fenced) => self.on_fenced(fenced),
                Input::Promotion(progress) => {
                    self.on_promotion(progress);
                    self.save_promotions();
                }
                Input::Side(event) => self.events.push(event),
                Input::Hangup => {
                    info!("SIGHUP: reloading the configuration");
                    let _ = self.reload(tasks).await;
                }
                Input::Cluster => self.on_cluster(false),
                Input::Tick => self.on_cluster(true),
                Input::TaskEnded => {}
                Input::Shutdown => break,
            }
        }
    }

    /// Applies the drain file's list, starts every checker.
    pub(super) async fn start(&mut self, tasks: &mut JoinSet<()>) {
        let (events, dropped) = self.apply_drain_list();
        self.decide(events, &[]);
        self.load_promotions();
        if dropped && let Err(error) = self.drains.save().await {
            warn!(%error, "cannot rewrite the drain file");
        }
        self.checkers.start_all(&self.config, tasks);
        self.check_ready();
    }

    pub(super) fn on_report(&mut self, report: Report) {
        // A checker stopped by a reload may still have had a report queued.
        let Some(id) = self.checkers.node_of(&report) else {
            return;
        };
        let pool = &self.config.pools[id.pool.0];
        let node = &pool.nodes[id.index];
        let observation = report.observation.clone();
        self.metrics
            .probe_duration
            .with_label_values(&[pool.name.as_str()])
            .observe(observation.latency.as_secs_f64());
        let failure = (!observation.ok).then(|| observation.detail.clone());
        let before = self.engine.node(id).health;
        let events = self
            .engine
            .observe(id, observation.clone(), self.clock.now());
        let after = self.engine.node(id);
        let counted = (after.failures, after.successes);
        if let Some(probe) = events::probe_event(pool, &node.name, before, counted, &observation) {
            self.events.push(probe);
        }
        let changed = events
            .iter()
            .any(|e| matches!(e, Event::NodeChanged { node, .. } if *node == id));
        events::log_failure_change(
            &pool.name,
            &node.name,
            self.checkers.failing(&report),
            failure,
            changed,
        );
        self.decide(events, &[id.pool]);
        self.consider_promotion(id.pool);
        self.save_promotions();
        self.share_view(id);
        self.check_ready();
    }

    /// Sends readiness (log, systemd) once every pool has completed its first round.
    pub(super) fn check_ready(&mut self) {
        let pools = self.config.pools.len();
        if !self.all_ready && (0..pools).all(|p| self.engine.pool_ready(PoolId(p))) {
            self.all_ready = true;
            info!(
                pools = self.config.pools.len(),
                records = self.config.records.len(),
                "first round of checks complete"
            );
            crate::notify::ready("first round of checks complete; serving");
        }
    }

    /// Hands the engine's decision after `events` to the outbox and carries out what
    /// can be carried out now; sets the fast interval of the `pools` whose state may have
    /// changed.
    pub(super) fn decide(&mut self, events: Vec<Event>, pools: &[PoolId]) {
        let decision = match &self.source {
            Source::Local => Some(Decision::local(&self.config, &self.engine, events)),
            Source::Cluster { .. } => cluster::observed(events),
        };
        if let Some(decision) = decision {
            self.outbox.submit(decision);
            self.advance();
        }
        for &p in pools {
            let degraded = self.engine.pool_ready(p) && self.engine.pool_degraded(p);
            self.checkers
                .set_degraded(&self.config.pools[p.0].name, degraded);
        }
    }

    /// Carries out queued decisions in order until one waits for a fence. In cluster
    /// mode, once nothing is left, tells the member task which state is now served (it
    /// moves the writers' deadline on only for that).
    pub(super) fn advance(&mut self) {
        while let Some(step) = self.outbox.next() {
            match step {
                Step::Fence(fences) => {
                    for (node, reason) in fences {
                        self.fencing(node, &reason);
                        self.outbox.fence(&self.config, node);
                    }
                }
                Step::Publish(decision) => self.carry_out(decision),
            }
        }
        if let Source::Cluster { member, side } = &self.source
            && self.outbox.is_idle()
        {
            let revision = side.revision();
            member
                .published
                .send_if_modified(|r| std::mem::replace(r, revision) != revision);
        }
    }

    /// Publishes a decision's answers in one snapshot; then logs, records, counts and
    /// queues hooks for its events, and tells the vip actors.
    pub(super) fn carry_out(&mut self, decision: Decision) {
        let published = match (&decision.route, &decision.answers) {
            (Route::Local, Some(answers)) => {
                self.publication.publish(answers);
                Some(self.publication.published_at())
            }
            (Route::Agreed { serial }, Some(answers)) => {
                self.publication.publish_at(answers, *serial);
                Some(self.publication.published_at())
            }
            (Route::Propose(records), _) => {
                self.propose(records.clone());
                None
            }
            (_, None) => None,
        };
        let snapshot = self.publication.load();
        for event in &decision.events {
            self.effects(event, &snapshot, published);
        }
        for (wanted, hold) in self.vips.iter().zip(decision.holds.into_iter().flatten()) {
            wanted.send_if_modified(|w| std::mem::replace(w, hold) != hold);
        }
    }

    pub(super) fn in_cluster(&self) -> bool {
        matches!(self.source, Source::Cluster { .. })
    }

    /// Cluster mode: the member task's state changed (`refresh`: the periodic tick).
    pub(super) fn on_cluster(&mut self, refresh: bool) {
        let Source::Cluster { member, .. } = &mut self.source else {
            return;
        };
        let state = member.state.borrow_and_update().clone();
        if let Some(out) = self.with_cluster(|side, cx| side.step(state, refresh, cx)) {
            self.carry_cluster(out);
        }
        self.cluster_promotions();
    }

    /// Runs `step` on the cluster side with what it reads of the supervisor; `None`
    /// without `[cluster]`.
    pub(super) fn with_cluster<R>(
        &mut self,
        step: impl FnOnce(&mut cluster::ClusterSource, &mut cluster::Context) -> R,
    ) -> Option<R> {
        let serials = self.publication.load().serials().to_vec();
        let Source::Cluster { side, .. } = &mut self.source else {
            return None;
        };
        let mut cx = cluster::Context {
            config: &self.config,
            engine: &mut self.engine,
            now: self.clock.now(),
            instant: std::time::Instant::now(),
            unix_ms: unix_ms(),
            serials: &serials,
        };
        Some(step(side, &mut cx))
    }

    /// Carries out a cluster step: requests to the member task, decisions to the outbox.
    pub(super) fn carry_cluster(&mut self, out: cluster::Output) {
        let Source::Cluster { member, .. } = &self.source else {
            return;
        };
        for request in out.requests {
            // The member task lives as long as the supervisor, but for shutdown.
            let _ = member.requests.send(request);
        }
        if let Some(age) = out.served_age {
            self.metrics.decision_served.observe(age.as_secs_f64());
        }
        for decision in out.decisions {
            self.outbox.submit(decision);
        }
        self.advance();
    }

    /// This member's view of a node, to etcd (cluster mode).
    pub(super) fn share_view(&self, id: crate::engine::NodeId) {
        if let Source::Cluster { member, .. } = &self.source
            && let Some(view) = cluster::view(&self.config, &self.engine, id)
        {
            let _ = member.requests.send(view);
        }
    }

    /// A leader's proposal whose fences are done: numbered and written (if it still leads).
    pub(super) fn propose(&mut self, records: Vec<crate::cluster::AgreedRecord>) {
        let requests = (self.with_cluster(|side, cx| side.propose(records, cx)))
            .flatten()
            .into_iter()
            .collect();
        self.carry_cluster(cluster::Output {
            requests,
            ..Default::default()
        });
    }

    /// After a reload, in cluster mode: the digest and views again, the agreed answers
    /// served again.
    pub(super) fn cluster_reloaded(&mut self) {
        if let Some(out) = self.with_cluster(|side, cx| side.reloaded(cx)) {
            self.carry_cluster(out);
        }
    }

    /// Waits until every queued decision was carried out (before a reload changes what
    /// their indices mean).
    pub(super) async fn flush(&mut self) {
        while !self.outbox.is_idle() {
            match self.outbox.finished.recv().await {
                Some(fenced) => self.on_fenced(fenced),
                None => break,
            }
        }
    }
}

/// Resolves when the cluster member task's state changed; never without `[cluster]` (or
/// once the task has ended).
async fn cluster_changed(source: &mut Source) {
    if let Source::Cluster { member, .. } = source
        && member.state.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// Resolves when this member's lease ends while it is cut off from etcd (its vips are then
/// released); never otherwise.
async fn lease_ends(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
