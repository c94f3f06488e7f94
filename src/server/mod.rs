//! The running server: checkers feed the engine, the engine's decisions become snapshots.
//!
//! ```text
//! checkers --Report--> Supervisor (one task, owns the config and the engine)
//!                         | engine.observe(now) -> events -> Decision (decisions.rs)
//!                         | Outbox, in order: fence (own task) -> publish -> effects
//!                         |   Publication: SnapshotBuilder::build -> ArcSwap::store
//!                         |   effects: log + event log + metrics, on_change hooks, vip wishes
//! Handle --Command--------^  status, events, drain/undrain, reload (admin, SIGHUP)
//! ```
//!
//! - `checkers.rs`: the running checkers, kept or replaced by a reload.
//! - `decisions.rs`: the `Decision` boundary (the local engine, or in cluster mode the
//!   leader's proposals and the agreed answers) and the outbox that carries decisions out in
//!   order without waiting for fences inline.
//! - `cluster.rs`: cluster mode (`[cluster]`): views out, the leader's engine, the agreed
//!   answers in, `on_lost`, vips released at the lease's end.
//! - `serials.rs`: SOA serials reserved ahead on disk, so that they never go back.
//! - `publication.rs`: answers to snapshot to the store the DNS workers read.
//! - `plan.rs` (pure) and `reload.rs`: applying a new configuration in place.
//! - `commands.rs`, `drains.rs`: admin commands; the drain list and its file.
//! - `effects.rs`, `events.rs`, `hooks.rs`: what follows an event: log, `/events`,
//!   metrics, `on_change` commands (one queue per record, off the answer path).
//! - `status.rs`: the `/status` document.

mod changes;
mod checkers;
mod cluster;
mod commands;
mod decisions;
mod drains;
mod effects;
pub mod events;
mod handle;
mod hooks;
mod plan;
mod prepare;
mod publication;
mod reload;
mod serials;
pub mod status;

pub use drains::Drained;
pub use handle::{Handle, Server};
pub use prepare::{Prepared, prepare, prepare_str};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use crate::api::command::{Command, CommandError};
use crate::checks::Report;
use crate::config::Config;
use crate::dns::Sockets;
use crate::engine::{Engine, Event, PoolId};
use crate::metrics::Metrics;
use checkers::CheckerSet;
use decisions::{Decision, Fenced, Outbox, Route, Step};
use drains::Drains;
use events::EventLog;
use publication::Publication;
use status::Clock;

/// Reports waiting for the engine; checkers wait when it is full.
const REPORT_QUEUE: usize = 1024;
/// Admin requests waiting for the supervisor.
const COMMAND_QUEUE: usize = 64;

/// What `start` serves on, besides the prepared configuration.
pub struct Options {
    /// Re-read on SIGHUP and `POST /reload`; `None` disables reloading.
    pub config_file: Option<PathBuf>,
    pub sockets: Sockets,
    /// One per `[[vip]]` of the config, in its order (`vip::prepare`).
    pub vips: Vec<crate::vip::Prepared>,
}

/// Starts hadns on already bound sockets; it runs until `shutdown` is cancelled, then
/// stops every task it started.
pub fn start(
    prepared: Prepared,
    options: Options,
    shutdown: CancellationToken,
) -> std::io::Result<Server> {
    // Before anything is spawned: fails only when there is no signal support at all.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let metrics = Arc::new(Metrics::new());
    metrics.declare(&prepared.config);
    let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
    let token = Arc::new(ArcSwap::from_pointee(
        prepared.config.admin.as_ref().and_then(|a| a.token.clone()),
    ));
    let handle = Handle {
        commands: commands_tx,
        token: token.clone(),
        metrics: metrics.clone(),
    };
    let task = tokio::spawn(run(
        prepared,
        options,
        Inputs { commands, hangup },
        Shared { token, metrics },
        shutdown,
    ));
    Ok(Server { handle, task })
}

/// What the supervisor hears from outside besides reports.
struct Inputs {
    commands: mpsc::Receiver<Command>,
    hangup: tokio::signal::unix::Signal,
}

/// What the supervisor shares with the handle.
struct Shared {
    token: Arc<ArcSwap<Option<String>>>,
    metrics: Arc<Metrics>,
}

/// One thing for the supervisor to handle.
enum Input {
    Report(Report),
    Command(Command),
    Fenced(Fenced),
    Side(crate::api::event::EventRecord),
    Hangup,
    /// The cluster member task's state changed; `Tick`: once a second in cluster mode.
    Cluster,
    Tick,
    TaskEnded,
    Shutdown,
}

async fn run(
    prepared: Prepared,
    options: Options,
    mut inputs: Inputs,
    shared: Shared,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let config = prepared.config;
    let engine = Engine::new(&config);
    // Cluster mode: the serials are the agreed decisions' (monotonic across the cluster),
    // not reserved per member.
    let serial_file = config
        .dns
        .serial_file
        .clone()
        .filter(|_| config.cluster.is_none());
    let serials = match serials::Serials::load(serial_file) {
        Ok(serials) => serials,
        Err(problem) => {
            error!(%problem, "cannot read the serial file; serials may go back");
            serials::Serials::load(None).expect("no file, nothing to read")
        }
    };
    let publication = Publication::new(prepared.zones, &config, &engine, serials);
    let dns = tokio::spawn(crate::dns::serve(
        options.sockets,
        publication.store(),
        shared.metrics.queries.clone(),
        serve_settings(&config),
        shutdown.clone(),
    ));
    let mut tasks = JoinSet::new();
    let notify = crate::dns::notify::Board::default();
    tasks.spawn(crate::dns::notify::run(
        publication.store(),
        publication.subscribe(),
        shared.metrics.notifies.clone(),
        notify.clone(),
        shutdown.clone(),
    ));
    let (reports_tx, mut reports) = mpsc::channel(REPORT_QUEUE);
    // Events from vip actors and hook runners, for the event log.
    let (side_tx, mut side_events) = mpsc::unbounded_channel();
    let vips = options
        .vips
        .into_iter()
        .map(|vip| spawn_vip(vip, &side_tx, &shutdown, &mut tasks))
        .collect();
    let drain_file = config.admin.as_ref().and_then(|a| a.drain_file.clone());
    if config.cluster.is_some() && drain_file.is_some() {
        warn!("[admin] drain_file is not used in cluster mode: drains are kept in etcd");
    }
    let source = match config.cluster.clone() {
        Some(settings) => {
            let digest = crate::config::digest(&config);
            let member = crate::cluster::start(
                settings.clone(),
                digest.clone(),
                shutdown.clone(),
                &mut tasks,
            );
            Source::Cluster {
                member,
                side: Box::new(cluster::ClusterSource::new(settings, digest)),
            }
        }
        None => Source::Local,
    };
    let mut sup = Supervisor {
        events: EventLog::new(config.admin.as_ref().map_or(1000, |a| a.events)),
        checkers: CheckerSet::new(reports_tx, shutdown.clone()),
        config,
        config_file: options.config_file,
        config_loaded: Duration::ZERO,
        engine,
        publication,
        outbox: Outbox::new(),
        clock: Clock::start(),
        vips,
        hooks: hooks::Hooks::new(side_tx, shared.metrics.clone()),
        metrics: shared.metrics,
        all_ready: false,
        token: shared.token,
        drains: Drains::new(prepared.drained, drain_file),
        source,
        notify,
    };
    sup.start(&mut tasks).await;

    sup.serve(
        &mut inputs,
        &mut reports,
        &mut side_events,
        &mut tasks,
        &shutdown,
    )
    .await;

    // Checkers waiting to report see the channel closed; admin requests still queued get
    // their reply channel dropped (503).
    drop(reports);
    drop(inputs);
    while tasks.join_next().await.is_some() {}
    sup.hooks.finish().await;
    match dns.await {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(format!("dns server task: {e}"))),
    }
}

fn serve_settings(config: &Config) -> crate::dns::ServeSettings {
    crate::dns::ServeSettings {
        udp_coalesce: config.dns.udp_coalesce,
        max_udp_size: config.dns.max_udp_size,
        tcp_connections: config.dns.tcp_connections,
        tcp_connections_per_client: config.dns.tcp_connections_per_client,
        rate_limit: crate::dns::rrl::RrlSettings {
            rate: config.dns.rate_limit.rate,
            slip: config.dns.rate_limit.slip,
            ipv4_prefix: config.dns.rate_limit.ipv4_prefix,
            ipv6_prefix: config.dns.rate_limit.ipv6_prefix,
        },
    }
}

/// Starts the actor of a prepared vip into `tasks`; returns where to send its wish.
fn spawn_vip(
    vip: crate::vip::Prepared,
    events: &mpsc::UnboundedSender<crate::api::event::EventRecord>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> watch::Sender<bool> {
    let (wanted, desired) = watch::channel(false);
    tasks.spawn(vip.run(desired, events.clone(), shutdown.clone()));
    wanted
}

/// Where the answers served come from: each source turns what it hears into `Decision`s,
/// which the supervisor carries out the same way.
enum Source {
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
struct Supervisor {
    config: Config,
    config_file: Option<PathBuf>,
    /// When the running configuration was loaded (engine time).
    config_loaded: Duration,
    engine: Engine,
    clock: Clock,
    checkers: CheckerSet,
    publication: Publication,
    outbox: Outbox,
    drains: Drains,
    /// Per `[[vip]]` of the config, in order: its actor's wish to hold the address.
    vips: Vec<watch::Sender<bool>>,
    events: EventLog,
    hooks: hooks::Hooks,
    metrics: Arc<Metrics>,
    /// The admin token, replaced by a reload.
    token: Arc<ArcSwap<Option<String>>>,
    all_ready: bool,
    /// Where the answers served come from.
    source: Source,
    /// Where the NOTIFYs to each secondary stand (written by the NOTIFY tasks).
    notify: crate::dns::notify::Board,
}

impl Supervisor {
    /// Handles inputs one at a time until `shutdown`.
    async fn serve(
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
            let release_at = match &self.source {
                Source::Cluster { side, .. } => side.release_at(),
                Source::Local => None,
            };
            let input = tokio::select! {
                Some(report) = reports.recv() => Input::Report(report),
                _ = cluster_changed(&mut self.source) => Input::Cluster,
                _ = lease_ends(release_at) => Input::Cluster,
                _ = tick.tick(), if in_cluster => Input::Tick,
                Some(command) = inputs.commands.recv() => Input::Command(command),
                Some(fenced) = self.outbox.finished.recv() => Input::Fenced(fenced),
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
    async fn start(&mut self, tasks: &mut JoinSet<()>) {
        let (events, dropped) = self.apply_drain_list();
        self.decide(events, &[]);
        if dropped && let Err(error) = self.drains.save().await {
            warn!(%error, "cannot rewrite the drain file");
        }
        self.checkers.start_all(&self.config, tasks);
        self.check_ready();
    }

    fn on_report(&mut self, report: Report) {
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
        let events = self.engine.observe(id, observation, self.clock.now());
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
        self.share_view(id);
        self.check_ready();
    }

    /// Sends readiness (log, systemd) once every pool has completed its first round.
    fn check_ready(&mut self) {
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
    fn decide(&mut self, events: Vec<Event>, pools: &[PoolId]) {
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

    /// Carries out queued decisions in order until one waits for a fence.
    fn advance(&mut self) {
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
    }

    /// Publishes a decision's answers in one snapshot; then logs, records, counts and
    /// queues hooks for its events, and tells the vip actors.
    fn carry_out(&mut self, decision: Decision) {
        match (&decision.route, &decision.answers) {
            (Route::Local, Some(answers)) => self.publication.publish(answers),
            (Route::Agreed { serial }, Some(answers)) => {
                self.publication.publish_at(answers, *serial)
            }
            (Route::Propose(records), _) => self.propose(records.clone()),
            (_, None) => {}
        }
        let snapshot = self.publication.load();
        for event in &decision.events {
            self.effects(event, &snapshot);
        }
        for (wanted, hold) in self.vips.iter().zip(decision.holds.into_iter().flatten()) {
            wanted.send_if_modified(|w| std::mem::replace(w, hold) != hold);
        }
    }

    fn in_cluster(&self) -> bool {
        matches!(self.source, Source::Cluster { .. })
    }

    /// Cluster mode: the member task's state changed (`refresh`: the periodic tick).
    fn on_cluster(&mut self, refresh: bool) {
        let Source::Cluster { member, .. } = &mut self.source else {
            return;
        };
        let state = member.state.borrow_and_update().clone();
        if let Some(out) = self.with_cluster(|side, cx| side.step(state, refresh, cx)) {
            self.carry_cluster(out);
        }
    }

    /// Runs `step` on the cluster side with what it reads of the supervisor; `None`
    /// without `[cluster]`.
    fn with_cluster<R>(
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
    fn carry_cluster(&mut self, out: cluster::Output) {
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
    fn share_view(&self, id: crate::engine::NodeId) {
        if let Source::Cluster { member, .. } = &self.source
            && let Some(view) = cluster::view(&self.config, &self.engine, id)
        {
            let _ = member.requests.send(view);
        }
    }

    /// A leader's proposal whose fences are done: numbered and written (if it still leads).
    fn propose(&mut self, records: Vec<crate::cluster::AgreedRecord>) {
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
    fn cluster_reloaded(&mut self) {
        if let Some(out) = self.with_cluster(|side, cx| side.reloaded(cx)) {
            self.carry_cluster(out);
        }
    }

    /// Waits until every queued decision was carried out (before a reload changes what
    /// their indices mean).
    async fn flush(&mut self) {
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

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
