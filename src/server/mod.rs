//! The running server: checkers feed the engine, the engine's answers become snapshots.
//!
//! ```text
//! checkers --Report--> Supervisor (one task, owns the engine and the config)
//!                         | engine.observe(now) -> events
//!                         | fence losers, then SnapshotBuilder::build -> ArcSwap::store
//!                         | log + event log + metrics, on_change hooks (queued), vip wishes
//! admin / SIGHUP --Command--^  status, events, drain/undrain, reload
//! ```
//!
//! - `events.rs`: logging of engine events and the bounded event log behind `/events`.
//! - `status.rs`: the `/status` document.
//! - `reload.rs`: applying a new configuration in place.
//! - `hooks.rs`: `on_change` commands, one queue per record, off the answer path.

mod changes;
pub mod drains;
mod effects;
pub mod events;
mod hooks;
mod plan;
mod reload;
pub mod status;

pub use drains::Drained;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use crate::api::command::{Command, CommandError};
use crate::checks::{self, Report};
use crate::config::Config;
use crate::dns::{Published, Snapshot, SnapshotBuilder, Sockets};
use crate::engine::{Answer, Engine, Event, Health};
use crate::metrics::Metrics;
use events::{EventKind, EventLog, describe_answer};
use status::{Clock, Status};

/// Reports waiting for the engine; checkers wait when it is full.
const REPORT_QUEUE: usize = 1024;
/// Admin requests waiting for the supervisor.
const COMMAND_QUEUE: usize = 64;

/// What `run` serves on, besides the prepared configuration.
pub struct Options {
    /// Re-read on SIGHUP and `POST /reload`; `None` disables reloading.
    pub config_file: Option<PathBuf>,
    pub sockets: Sockets,
    /// The bound `[admin]` listener, if the config has one.
    pub admin: Option<TcpListener>,
    pub vips: Vec<crate::vip::Prepared>,
}

/// Runs hadns on already bound sockets until `shutdown` is cancelled, then stops every
/// task it started and returns.
pub async fn run(
    prepared: crate::Prepared,
    options: Options,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let (config, drained) = (prepared.config, prepared.drained);
    let metrics = Arc::new(Metrics::new());
    metrics.declare(&config);
    let mut builder = SnapshotBuilder::new(prepared.zones, &config.records, unix_now());
    let engine = Engine::new(&config);
    let snapshot = Arc::new(ArcSwap::from_pointee(
        builder.build(&published(&config, &engine)),
    ));
    let dns = tokio::spawn(crate::dns::serve(
        options.sockets,
        snapshot.clone(),
        metrics.queries.clone(),
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
        },
        shutdown.clone(),
    ));
    let (commands_tx, mut commands) = mpsc::channel(COMMAND_QUEUE);
    let token = Arc::new(ArcSwap::from_pointee(
        config.admin.as_ref().and_then(|a| a.token.clone()),
    ));
    let admin = options.admin.map(|listener| {
        let state = crate::admin::State {
            commands: commands_tx.clone(),
            token: token.clone(),
            metrics: metrics.clone(),
            hosts: Arc::new(
                config
                    .admin
                    .as_ref()
                    .map(|a| a.hosts.clone())
                    .unwrap_or_default(),
            ),
        };
        tokio::spawn(crate::admin::serve(listener, state, shutdown.clone()))
    });
    drop(commands_tx);
    let (reports_tx, mut reports) = mpsc::channel(REPORT_QUEUE);
    // Events from vip actors and hook runners, for the event log.
    let (side_tx, mut side_events) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    let mut vips = Vec::new();
    for vip in options.vips {
        let (tx, rx) = watch::channel(false);
        vips.push(VipSlot {
            record: vip.record(),
            node: vip.node(),
            wanted: tx,
        });
        tasks.spawn(vip.run(rx, side_tx.clone(), shutdown.clone()));
    }
    let mut sup = Supervisor {
        events: EventLog::new(config.admin.as_ref().map_or(1000, |a| a.events)),
        zone_names: builder.zone_names(),
        config,
        config_file: options.config_file,
        config_loaded: Duration::ZERO,
        engine,
        builder,
        snapshot: snapshot.clone(),
        clock: Clock::start(),
        checkers: HashMap::new(),
        by_id: HashMap::new(),
        failing: HashMap::new(),
        next_id: 0,
        degraded: HashMap::new(),
        vips,
        hooks: hooks::Hooks::new(side_tx, metrics.clone()),
        metrics,
        all_ready: false,
        reports: reports_tx,
        token,
        drains: drained,
        fences: HashMap::new(),
        shutdown: shutdown.clone(),
    };
    let (events, dropped) = sup.apply_drain_list();
    sup.apply(events, &[]).await;
    if dropped && let Err(error) = sup.save_drains(sup.drains.clone()).await {
        warn!(%error, "cannot rewrite the drain file");
    }
    for p in 0..sup.config.pools.len() {
        let (sender, _) = watch::channel(false);
        sup.degraded
            .insert(sup.config.pools[p].name.clone(), sender);
        for n in 0..sup.config.pools[p].nodes.len() {
            sup.start_checker(p, n, &mut tasks);
        }
    }
    sup.check_ready();

    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        tokio::select! {
            Some(report) = reports.recv() => sup.on_report(report).await,
            Some(command) = commands.recv() => sup.on_command(command, &mut tasks).await,
            Some(event) = side_events.recv() => sup.events.push(event),
            _ = hangup.recv() => {
                info!("SIGHUP: reloading the configuration");
                let _ = sup.reload(&mut tasks).await;
            }
            // Checkers stopped by a reload end here.
            Some(_) = tasks.join_next() => {}
            _ = shutdown.cancelled() => break,
        }
    }

    shutdown.cancel();
    // Checkers waiting to report see the channel closed; admin requests still queued get
    // their reply channel dropped (503), so the admin server can finish.
    drop(reports);
    drop(commands);
    while tasks.join_next().await.is_some() {}
    sup.hooks.finish().await;
    if let Some(admin) = admin {
        match admin.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "admin endpoint"),
            Err(e) => error!(error = %e, "admin endpoint task"),
        }
    }
    match dns.await {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(format!("dns server task: {e}"))),
    }
}

/// The checker of one node, as started.
struct CheckerHandle {
    id: u64,
    stop: CancellationToken,
}

/// A vip actor's wish: hold the address while `record` answers exactly `node`.
struct VipSlot {
    record: usize,
    node: usize,
    wanted: watch::Sender<bool>,
}

/// Owns the configuration, the engine and everything that follows from their decisions.
struct Supervisor {
    config: Config,
    config_file: Option<PathBuf>,
    /// When the running configuration was loaded (engine time).
    config_loaded: Duration,
    engine: Engine,
    builder: SnapshotBuilder,
    zone_names: Vec<String>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    clock: Clock,
    /// Running checkers by (pool, node) name.
    checkers: HashMap<(String, String), CheckerHandle>,
    /// Checker id -> (pool, node) index in the running config.
    by_id: HashMap<u64, (usize, usize)>,
    /// The last failure reason per checker id, to log each change once.
    failing: HashMap<u64, Option<String>>,
    next_id: u64,
    /// Per pool name: tells its checkers to probe at the fast interval.
    degraded: HashMap<String, watch::Sender<bool>>,
    vips: Vec<VipSlot>,
    events: EventLog,
    hooks: hooks::Hooks,
    metrics: Arc<Metrics>,
    all_ready: bool,
    reports: mpsc::Sender<Report>,
    /// The admin token, replaced by a reload.
    token: Arc<ArcSwap<Option<String>>>,
    /// The drained nodes by name, as the drain file has them (kept without a file too);
    /// the engine's `drained` flags are set from it.
    drains: Vec<Drained>,
    /// The last fence per (pool, node) name, for `/status`.
    fences: HashMap<(String, String), status::FenceStatus>,
    shutdown: CancellationToken,
}

impl Supervisor {
    fn start_checker(&mut self, p: usize, n: usize, tasks: &mut JoinSet<()>) {
        let (pool, node) = (&self.config.pools[p], &self.config.pools[p].nodes[n]);
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
        let handle = CheckerHandle { id, stop };
        self.by_id.insert(id, (p, n));
        self.checkers
            .insert((pool.name.clone(), node.name.clone()), handle);
    }

    async fn on_report(&mut self, report: Report) {
        // A checker stopped by a reload may still have had a report queued.
        let Some(&(p, n)) = self.by_id.get(&report.checker) else {
            return;
        };
        let observation = report.observation;
        let (pool, node) = (&self.config.pools[p], &self.config.pools[p].nodes[n]);
        self.metrics
            .probe_duration
            .with_label_values(&[pool.name.as_str()])
            .observe(observation.latency.as_secs_f64());
        let failure = (!observation.ok).then(|| observation.detail.clone());
        let events = self.engine.observe(p, n, observation, self.clock.now());
        let changed = events.iter().any(
            |e| matches!(e, Event::NodeChanged { pool, node, .. } if (*pool, *node) == (p, n)),
        );
        events::log_failure_change(
            &pool.name,
            &node.name,
            self.failing.entry(report.checker).or_default(),
            failure,
            changed,
        );
        self.apply(events, &[p]).await;
        self.check_ready();
    }

    /// Sends readiness (log, systemd) once every pool has completed its first round.
    fn check_ready(&mut self) {
        if !self.all_ready && (0..self.config.pools.len()).all(|p| self.engine.pool_ready(p)) {
            self.all_ready = true;
            info!(
                pools = self.config.pools.len(),
                records = self.config.records.len(),
                "first round of checks complete"
            );
            crate::notify::ready("first round of checks complete; serving");
        }
    }

    /// Carries out the engine's decisions: fence the losers, then publish the new answers
    /// in one snapshot; then log, record, count, run hooks, tell the vip actors, and set
    /// the fast interval of the `pools` whose state may have changed.
    async fn apply(&mut self, events: Vec<Event>, pools: &[usize]) {
        for event in &events {
            if let Event::Fence { pool, node, reason } = event {
                self.fence(*pool, *node, reason).await;
            }
        }
        if events
            .iter()
            .any(|e| matches!(e, Event::AnswerChanged { .. }))
        {
            self.publish();
        }
        let snapshot = self.snapshot.load();
        for event in &events {
            self.effects(event, &snapshot);
        }
        // A vip is held while its record answers exactly the local node and that node is up.
        for slot in &self.vips {
            let pool = self.config.records[slot.record].pool;
            let hold = self.engine.answer(slot.record) == &Answer::Nodes(vec![slot.node])
                && self.engine.node(pool, slot.node).health == Health::Up;
            slot.wanted
                .send_if_modified(|w| std::mem::replace(w, hold) != hold);
        }
        for &p in pools {
            let degraded = self.engine.pool_ready(p) && self.engine.pool_degraded(p);
            if let Some(sender) = self.degraded.get(&self.config.pools[p].name) {
                sender.send_if_modified(|d| std::mem::replace(d, degraded) != degraded);
            }
        }
    }

    /// Builds a snapshot of the current answers and stores it: one atomic swap.
    fn publish(&mut self) {
        let answers = published(&self.config, &self.engine);
        self.snapshot.store(Arc::new(self.builder.build(&answers)));
    }

    async fn fence(&mut self, pool: usize, node: usize, reason: &str) {
        let (pool, node) = (
            &self.config.pools[pool],
            &self.config.pools[pool].nodes[node],
        );
        self.events.push(events::fence_event(
            &pool.name,
            &node.name,
            EventKind::Fencing,
            reason,
        ));
        let (kind, detail) = match checks::fence(pool, node).await {
            Ok(done) => (EventKind::Fenced, done),
            Err(e) => (EventKind::FenceFailed, e.to_string()),
        };
        self.metrics
            .fences
            .with_label_values(&[
                pool.name.as_str(),
                node.name.as_str(),
                if kind == EventKind::Fenced {
                    "fenced"
                } else {
                    "failed"
                },
            ])
            .inc();
        self.fences.insert(
            (pool.name.clone(), node.name.clone()),
            status::FenceStatus {
                result: kind.to_string(),
                detail: detail.clone(),
                at: self.clock.wall(self.clock.now()),
            },
        );
        self.events
            .push(events::fence_event(&pool.name, &node.name, kind, &detail));
    }

    async fn on_command(&mut self, command: Command, tasks: &mut JoinSet<()>) {
        // A requester that went away is no reason to stop: replies may go nowhere.
        match command {
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Events { limit, reply } => {
                let _ = reply.send(self.events.recent(limit));
            }
            Command::Drain {
                pool,
                node,
                drained,
                reply,
            } => {
                let _ = reply.send(self.drain(&pool, &node, drained).await);
            }
            Command::Reload(reply) => {
                let _ = reply.send(self.reload(tasks).await);
            }
        }
    }

    fn status(&self) -> Status {
        let snapshot = self.snapshot.load();
        status::build(&status::Context {
            config: &self.config,
            engine: &self.engine,
            snapshot: &snapshot,
            zone_names: &self.zone_names,
            clock: self.clock,
            config_file: self.config_file.as_ref().map(|p| p.display().to_string()),
            config_loaded: self.config_loaded,
            fences: &self.fences,
        })
    }

    /// The (pool, node) indices of a node named by an operator.
    fn node_index(&self, pool: &str, node: &str) -> Result<(usize, usize), CommandError> {
        let p = self
            .config
            .pools
            .iter()
            .position(|x| x.name == pool)
            .ok_or_else(|| CommandError::NotFound(format!("no pool named {pool:?}")))?;
        let n = self.config.pools[p]
            .nodes
            .iter()
            .position(|x| x.name == node)
            .ok_or_else(|| {
                CommandError::NotFound(format!("pool {pool:?} has no node named {node:?}"))
            })?;
        Ok((p, n))
    }

    /// Writes `drains` to the drain file, if there is one; the write and its fsync run off
    /// the runtime's threads (a busy disk may take a while), the supervisor waits for them.
    async fn save_drains(&self, drains: Vec<Drained>) -> Result<(), String> {
        let Some(file) = self
            .config
            .admin
            .as_ref()
            .and_then(|a| a.drain_file.clone())
        else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || drains::save(&file, &drains))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Sets the engine's drained flags from `self.drains`, by name: at start (the drain
    /// file's list) and on the engine a reload built. An entry naming a node the
    /// configuration does not have is dropped with a warning. Returns the engine's events
    /// and whether anything was dropped.
    fn apply_drain_list(&mut self) -> (Vec<Event>, bool) {
        let now = self.clock.now();
        let listed = std::mem::take(&mut self.drains);
        let count = listed.len();
        let mut events = Vec::new();
        for drain in listed {
            match self.node_index(&drain.pool, &drain.node) {
                Ok((p, n)) => {
                    events.extend(self.engine.set_drained(p, n, true, now));
                    self.drains.push(drain);
                }
                Err(e) => warn!(pool = %drain.pool, node = %drain.node, since = %drain.since,
                    "a drained node is not in the configuration ({e}); its drain is dropped"),
            }
        }
        (events, self.drains.len() != count)
    }

    /// Drains or undrains a node. With a drain file, the file is written first: if that
    /// fails, nothing changes and the caller hears why.
    async fn drain(
        &mut self,
        pool: &str,
        node: &str,
        drained: bool,
    ) -> Result<String, CommandError> {
        let (p, n) = self.node_index(pool, node)?;
        if self.engine.node(p, n).drained != drained {
            let mut next: Vec<Drained> = self
                .drains
                .iter()
                .filter(|d| !(d.pool == pool && d.node == node))
                .cloned()
                .collect();
            if drained {
                next.push(Drained {
                    pool: pool.to_string(),
                    node: node.to_string(),
                    since: events::rfc3339(std::time::SystemTime::now()),
                });
            }
            self.save_drains(next.clone())
                .await
                .map_err(CommandError::Unsaved)?;
            self.drains = next;
        }
        let events = self.engine.set_drained(p, n, drained, self.clock.now());
        self.apply(events, &[p]).await;
        let answers: Vec<String> = self
            .config
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.pool == p)
            .map(|(i, r)| {
                format!(
                    "{} answers {}",
                    r.name,
                    describe_answer(&self.config, i, self.engine.answer(i))
                )
            })
            .collect();
        let verb = if drained { "drained" } else { "undrained" };
        Ok(if answers.is_empty() {
            format!("{node} of pool {pool} {verb}")
        } else {
            format!("{node} of pool {pool} {verb}; {}", answers.join("; "))
        })
    }
}

/// The engine's answers as addresses, one per configured record.
fn published(config: &Config, engine: &Engine) -> Vec<Published> {
    config
        .records
        .iter()
        .enumerate()
        .map(|(i, record)| match engine.answer(i) {
            Answer::Pending => Published::Pending,
            Answer::Nodata => Published::Nodata,
            Answer::Servfail => Published::Servfail,
            Answer::Nodes(nodes) => {
                let pool = &config.pools[record.pool];
                Published::Addresses(nodes.iter().map(|&n| pool.nodes[n].address).collect())
            }
        })
        .collect()
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
}
