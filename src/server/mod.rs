//! The running server: checkers feed the engine, a source of decisions turns what it hears
//! into `Decision`s, the supervisor carries them out.
//!
//! ```text
//! checkers --Report--> Supervisor (supervisor.rs: one task, owns the config, the engine
//!                         | and the Source)
//!                         | Source::Local:   engine.observe -> Decision::local
//!                         | Source::Cluster: cluster::ClusterSource::step(member state)
//!                         |                  -> Decisions + requests to the member task
//!                         | Outbox, in order: fence (own task) -> publish -> effects
//!                         |   Publication: SnapshotBuilder::build -> ArcSwap::store
//!                         |   effects: log + event log + metrics, on_change hooks, vip wishes
//! Handle --Command--------^  status, events, drain/undrain, reload (admin, SIGHUP)
//! ```
//!
//! - `mod.rs`: `start` and the task that wires everything (`run`).
//! - `supervisor.rs`: the supervisor's loop, its sources, carrying decisions out.
//! - `decisions.rs`: the `Decision` boundary every source speaks, the fence extraction and
//!   the vip rule both sources use, and the outbox that carries decisions out in order
//!   without waiting for fences inline.
//! - `cluster/`: cluster mode (`[cluster]`) as a pure source: views out, the leader's
//!   engine, the agreed answers in, `on_lost`, vips released at the lease's end.
//! - `checkers.rs`: the running checkers, kept or replaced by a reload.
//! - `serials.rs`: SOA serials reserved ahead on disk, so that they never go back.
//! - `publication.rs`: answers to snapshot to the store the DNS workers read.
//! - `prepare.rs`: a configuration and its zones read and checked before anything is bound.
//! - `plan.rs` (pure) and `reload.rs`: applying a new configuration in place.
//! - `commands.rs`, `drains.rs`: admin commands; the drain list and its file.
//! - `effects.rs`, `events.rs`, `hooks.rs`: what follows an event: log, `/events`,
//!   metrics, `on_change` commands (one queue per record, off the answer path).
//! - `status.rs`: the `/status` document.
//! - `stopping.rs`: shutdown's stages, watched; a stuck one is named and bounded.
//! - `withdrawals.rs`: until when clients may use a published writer (promotion waits).

mod changes;
mod checkers;
mod cluster;
mod commands;
mod decisions;
mod descriptors;
mod drains;
mod effects;
pub mod events;
mod handle;
mod hooks;
mod plan;
mod prepare;
mod promote_command;
mod promoted;
mod promoting;
mod promotion;
mod promotion_cluster;
mod promotion_file;
mod publication;
mod reload;
mod resolver;
mod serials;
pub mod status;
pub mod stopping;
mod supervisor;
mod withdrawals;

pub use descriptors::descriptor_budget;
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
use tracing::{error, warn};

pub use crate::api::command::{Command, CommandError};
use crate::api::deadline::Deadline;
use crate::api::event::{EventRecord, EventSink};
use crate::config::Config;
use crate::dns::Sockets;
use crate::engine::Engine;
use crate::metrics::Metrics;
use checkers::CheckerSet;
use decisions::Outbox;
use drains::Drains;
use events::EventLog;
use publication::Publication;
use status::Clock;
use supervisor::{Inputs, Source, Supervisor};

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

/// What the supervisor shares with the handle.
struct Shared {
    token: Arc<ArcSwap<Option<String>>>,
    metrics: Arc<Metrics>,
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
    let serials = load_serials(&config);
    let publication = Publication::new(prepared.zones, &config, &engine, serials);
    let mut tasks = JoinSet::new();
    // Events from vip actors and hook runners, for the event log; NOTIFY and transfers
    // send theirs through a bounded sink that never waits (forwarded here).
    let (side_tx, mut side_events) = mpsc::unbounded_channel();
    let sink = event_sink(side_tx.clone(), &shutdown, &mut tasks);
    let (dns, notify) = start_dns(
        options.sockets,
        &publication,
        &shared.metrics,
        (&config, sink),
        &shutdown,
        &mut tasks,
    );
    let (reports_tx, mut reports) = mpsc::channel(REPORT_QUEUE);
    let vips = options
        .vips
        .into_iter()
        .map(|vip| spawn_vip(vip, &side_tx, &shutdown, &mut tasks))
        .collect();
    let drain_file = config.admin.as_ref().and_then(|a| a.drain_file.clone());
    if config.cluster.is_some() && drain_file.is_some() {
        warn!("[admin] drain_file is not used in cluster mode: drains are kept in etcd");
    }
    let source = start_source(&config, publication.writers(), &shutdown, &mut tasks);
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
        drains: Drains::new(prepared.drained, drain_file.clone()),
        source,
        notify,
        promotions: promotion::Promotions::new(promotion_file::path(drain_file.as_deref())),
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
    stop_in_stages(tasks, sup.hooks, dns).await
}

/// After the supervisor stopped: its tasks end (checkers, NOTIFY, vips, the cluster
/// member), the queued hooks run, the DNS listeners close; each stage named for the
/// shutdown watch (`stopping.rs`).
async fn stop_in_stages(
    mut tasks: JoinSet<()>,
    hooks: hooks::Hooks,
    dns: tokio::task::JoinHandle<std::io::Result<()>>,
) -> std::io::Result<()> {
    while !tasks.is_empty() {
        stopping::stage(format!("the server's tasks ({} left)", tasks.len()));
        tasks.join_next().await;
    }
    stopping::hooks();
    hooks.finish().await;
    stopping::stage("the DNS listeners");
    match dns.await {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(format!("dns server task: {e}"))),
    }
}

/// The DNS server on `sockets` (its own task, returned) and the NOTIFY sender (into
/// `tasks`, reporting to the board returned), both serving the publication's snapshots.
fn start_dns(
    sockets: Sockets,
    publication: &Publication,
    metrics: &Metrics,
    (config, events): (&Config, EventSink),
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> (
    tokio::task::JoinHandle<std::io::Result<()>>,
    crate::dns::notify::Board,
) {
    let dns = tokio::spawn(crate::dns::serve(
        sockets,
        publication.store(),
        metrics.queries.clone(),
        serve_settings(config, events.clone()),
        shutdown.clone(),
    ));
    let board = crate::dns::notify::Board::default();
    tasks.spawn(crate::dns::notify::run(
        publication.store(),
        publication.subscribe(),
        metrics.notifies.clone(),
        board.clone(),
        events,
        shutdown.clone(),
    ));
    (dns, board)
}

/// How many events NOTIFY and transfers may have waiting for the event log.
const SINK_QUEUE: usize = 256;

/// A sink whose events reach the supervisor's side channel, until `shutdown` (the DNS
/// server, which holds a sender, stops after the supervisor's tasks).
fn event_sink(
    side: mpsc::UnboundedSender<EventRecord>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> EventSink {
    let (tx, mut rx) = mpsc::channel(SINK_QUEUE);
    let stop = shutdown.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                Some(event) = rx.recv() => if side.send(event).is_err() { return },
                _ = stop.cancelled() => return,
            }
        }
    });
    EventSink::new(tx)
}

/// The serials reserved in `dns.serial_file`. Cluster mode: the serials are the agreed
/// decisions' (monotonic across the cluster), not reserved per member.
fn load_serials(config: &Config) -> serials::Serials {
    let serial_file = config
        .dns
        .serial_file
        .clone()
        .filter(|_| config.cluster.is_none());
    match serials::Serials::load(serial_file) {
        Ok(serials) => serials,
        Err(problem) => {
            error!(%problem, "cannot read the serial file; serials may go back");
            serials::Serials::load(None).expect("no file, nothing to read")
        }
    }
}

/// The source of decisions: the local engine, or the cluster's (its member task started
/// into `tasks`).
fn start_source(
    config: &Config,
    writers: Arc<Deadline>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Source {
    match config.cluster.clone() {
        Some(settings) => {
            let digest = crate::config::digest(config);
            let (name, own) = (digest.clone(), shutdown.clone());
            let member = crate::cluster::start(settings.clone(), name, writers.clone(), own, tasks);
            Source::Cluster {
                member,
                side: Box::new(cluster::ClusterSource::new(settings, digest, writers)),
            }
        }
        None => Source::Local,
    }
}

fn serve_settings(config: &Config, events: EventSink) -> crate::dns::ServeSettings {
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
        events,
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
