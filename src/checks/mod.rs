//! Health checkers: one task per (pool, node), each sending [`Observation`]s to the engine.
//!
//! A checker never returns an error: a failed probe is an observation with a reason.
//! Probes run every `interval` (up to 10% earlier, so checkers of many nodes spread out),
//! each bounded by `timeout`; the first probe runs at once.

pub mod dns;
mod exec;
mod failure;
mod fence;
mod http;
mod mysql;
mod postgres;
mod privileges;
pub mod promote;
mod tcp;
mod tls;

pub use exec::run_command;
pub use failure::Failure;
pub use fence::fence;

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Check, Node, Pool};
use crate::engine::{DbStatus, Observation};

/// One probe result from the checker with this id (ids are never reused, so a report
/// from a checker a reload stopped is recognised and dropped).
#[derive(Debug)]
pub struct Report {
    pub checker: u64,
    pub observation: Observation,
}

/// The addresses of a replication source named `host` (an address, a name, or a Unix
/// socket directory, which is on the replica's own host `own`); empty when a name does not
/// resolve within `limit`. Done after the probe, outside its timeout: a slow resolver makes
/// the replica's source unknown (not a fresh replica), never the node down.
async fn resolve(
    host: &str,
    port: Option<u16>,
    own: std::net::IpAddr,
    limit: Duration,
) -> Vec<std::net::IpAddr> {
    if let Ok(ip) = host.parse() {
        return vec![ip];
    }
    if host.starts_with('/') {
        return vec![own];
    }
    let lookup = tokio::net::lookup_host((host, port.unwrap_or(0)));
    match tokio::time::timeout(limit, lookup).await {
        Ok(Ok(addresses)) => addresses.map(|a| a.ip()).collect(),
        _ => Vec::new(),
    }
}

/// How one node is probed; built once per checker task.
enum Prober {
    Tcp,
    Http(http::HttpProber),
    Exec(exec::ExecProber),
    Postgres(Box<postgres::PgProber>),
    Mysql(Box<mysql::MysqlProber>),
    Dns(dns::DnsProber),
    /// Probe results played from a script, for the checker's paused-time tests.
    #[cfg(test)]
    Scripted(std::sync::Arc<tests::Script>),
}

impl Prober {
    fn new(pool: &Pool, node: &Node) -> Prober {
        match &pool.check {
            Check::Tcp => Prober::Tcp,
            Check::Http(check) => Prober::Http(http::HttpProber::new(check, node)),
            Check::Exec(check) => Prober::Exec(exec::ExecProber::new(check, pool, node)),
            Check::Postgres(check) => {
                Prober::Postgres(Box::new(postgres::PgProber::new(check, pool, node)))
            }
            Check::Mysql(check) => {
                Prober::Mysql(Box::new(mysql::MysqlProber::new(check, pool, node)))
            }
            Check::Dns(check) => Prober::Dns(dns::DnsProber::new(check, node)),
        }
    }

    async fn probe(&self, node: &Node, timeout: Duration) -> Observation {
        let started = Instant::now();
        // The probes other than tcp are futures of kilobytes (HTTP, database and DNS
        // clients): boxed while they run, so that every checker task does not carry the
        // largest of them for its whole life (~10 kB each, 100 MB at 10,000 nodes).
        let result: Result<(String, Option<DbStatus>), Failure> = match self {
            // Validation guarantees tcp and http nodes have a port.
            Prober::Tcp => bounded(timeout, tcp::probe(node.address, node.port.unwrap_or(0))).await,
            Prober::Http(p) => Box::pin(bounded(timeout, p.probe())).await,
            // Bounded by its own wait for the answer.
            Prober::Dns(p) => Box::pin(p.probe(timeout))
                .await
                .map(|d| (d, None))
                .map_err(Failure::from),
            // Exec bounds itself, to kill the whole process group on timeout.
            Prober::Exec(p) => Box::pin(p.probe(timeout))
                .await
                .map(|d| (d, None))
                .map_err(Failure::from),
            Prober::Postgres(p) => Box::pin(p.probe(timeout)).await.map(|(d, s)| (d, Some(s))),
            Prober::Mysql(p) => Box::pin(p.probe(timeout)).await.map(|(d, s)| (d, Some(s))),
            #[cfg(test)]
            Prober::Scripted(script) => script.next(),
        };
        let latency = started.elapsed();
        let result = match result {
            Ok((detail, Some(mut db))) => {
                if let Some(r) = &mut db.replication {
                    let limit = timeout.min(Duration::from_secs(1));
                    r.source_addresses =
                        Box::pin(resolve(&r.source_host, r.source_port, node.address, limit)).await;
                }
                Ok((detail, Some(db)))
            }
            other => other,
        };
        match result {
            Ok((detail, db)) => Observation {
                db,
                ..Observation::up(detail, latency)
            },
            Err(failure) => Observation {
                conclusive: failure.conclusive,
                // What a dns or exec check says is not the node's own refusal.
                refused: matches!(
                    self,
                    Prober::Tcp | Prober::Http(_) | Prober::Postgres(_) | Prober::Mysql(_)
                ) && failure::refused(&failure.reason),
                ..Observation::down(failure.reason, latency)
            },
        }
    }

    /// Resolves when the node's persistent session breaks; never for sessionless checks.
    async fn session_broken(&self) {
        match self {
            Prober::Postgres(p) => p.session_broken().await,
            Prober::Mysql(p) => p.session_broken().await,
            #[cfg(test)]
            Prober::Scripted(script) => script.broken.notified().await,
            _ => std::future::pending().await,
        }
    }
}

async fn bounded(
    timeout: Duration,
    probe: impl Future<Output = Result<String, String>>,
) -> Result<(String, Option<DbStatus>), Failure> {
    match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(detail)) => Ok((detail, None)),
        Ok(Err(reason)) => Err(Failure::from(reason)),
        Err(_) => Err(Failure::from(format!("timed out after {timeout:?}"))),
    }
}

/// Spawns the checker of one node into `tasks`; it reports as `id` until `stop`.
/// `degraded` tells it to probe at the pool's fast interval.
pub fn spawn(
    id: u64,
    pool: &Pool,
    node: &Node,
    reports: mpsc::Sender<Report>,
    degraded: watch::Receiver<bool>,
    stop: CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    let checker = Checker {
        id,
        prober: Prober::new(pool, node),
        pool: pool.clone(),
        node: node.clone(),
    };
    tasks.spawn(checker.run(reports, degraded, stop));
}

/// Whether a checker for `old` keeps working unchanged for `new`: the same check of the
/// same address. Its session and the node's health carry over a reload.
pub fn same_checker(old: (&Pool, &Node), new: (&Pool, &Node)) -> bool {
    let ((op, on), (np, nn)) = (old, new);
    op.check == np.check
        && op.interval == np.interval
        && op.fast_interval == np.fast_interval
        && op.timeout == np.timeout
        && on.name == nn.name
        && on.address == nn.address
        && on.port == nn.port
}

struct Checker {
    id: u64,
    pool: Pool,
    node: Node,
    prober: Prober,
}

impl Checker {
    async fn run(
        self,
        reports: mpsc::Sender<Report>,
        mut degraded: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        let mut pace = Pace::default();
        loop {
            let started = Instant::now();
            let observation = tokio::select! {
                o = self.prober.probe(&self.node, self.pool.timeout) => o,
                _ = shutdown.cancelled() => return,
            };
            debug!(
                pool = %self.pool.name, node = %self.node.name, ok = observation.ok,
                detail = %observation.detail, latency = ?observation.latency, "probe"
            );
            match pace.probed(observation.ok, &observation.detail) {
                Verdict::Inconclusive { first } => {
                    if first {
                        warn!(
                            pool = %self.pool.name, node = %self.node.name,
                            reason = %observation.detail,
                            "probe inconclusive: hadns itself is short of resources; the node keeps its state"
                        );
                    }
                }
                Verdict::Report { conclusive_again } => {
                    if conclusive_again {
                        info!(pool = %self.pool.name, node = %self.node.name, "probes conclusive again");
                    }
                    let report = Report {
                        checker: self.id,
                        observation,
                    };
                    // A full queue must not keep a checker from noticing shutdown.
                    tokio::select! {
                        sent = reports.send(report) => if sent.is_err() { return },
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
            // Wait for the next probe: the interval (the fast one while the pool is
            // degraded, backing off while this node does not answer), or at once when the
            // node's session breaks.
            loop {
                let interval = pace.wait(&self.pool, *degraded.borrow_and_update());
                tokio::select! {
                    _ = tokio::time::sleep_until(started + jittered(interval)) => break,
                    _ = self.prober.session_broken() => {
                        debug!(pool = %self.pool.name, node = %self.node.name, "session broken, probing now");
                        break;
                    }
                    changed = degraded.changed() => if changed.is_err() { return },
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// The checker's decisions, pure: whether a probe's result is reported, and how long to
/// wait before the next one. `Checker::run` carries them out.
#[derive(Debug, Default)]
struct Pace {
    /// Failed probes in a row, for the back-off while the pool is degraded.
    failures: u32,
    /// hadns itself was short of resources at the last probe.
    inconclusive: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Report the observation; `conclusive_again` after inconclusive probes.
    Report { conclusive_again: bool },
    /// hadns's own fault, not the node's: nothing is reported, the node keeps its state,
    /// and the next probe comes at the usual time. `first` of a run of them.
    Inconclusive { first: bool },
}

impl Pace {
    fn probed(&mut self, ok: bool, detail: &str) -> Verdict {
        if !ok && hadns_short_of_resources(detail) {
            return Verdict::Inconclusive {
                first: !std::mem::replace(&mut self.inconclusive, true),
            };
        }
        self.failures = if ok {
            0
        } else {
            self.failures.saturating_add(1)
        };
        Verdict::Report {
            conclusive_again: std::mem::replace(&mut self.inconclusive, false),
        }
    }

    /// The interval before the next probe (before jitter): the pool's, or while it is
    /// degraded its fast one, backing off while this node does not answer.
    fn wait(&self, pool: &Pool, degraded: bool) -> Duration {
        if degraded {
            degraded_interval(pool.fast_interval, pool.interval, self.failures)
        } else {
            pool.interval
        }
    }
}

/// The wait between probes while the pool is degraded: `fast` while the node answers (a
/// promotion may be under way), doubling with each failure in a row after the first up to
/// `interval`, so a pool where nothing answers is not probed in a storm.
fn degraded_interval(fast: Duration, interval: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    fast.saturating_mul(1 << doublings).min(interval.max(fast))
}

/// Whether a probe failed because hadns itself ran short (descriptors, memory, buffers):
/// such a failure says nothing about the node.
fn hadns_short_of_resources(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    [
        "too many open files",
        "cannot allocate memory",
        "no buffer space available",
    ]
    .iter()
    .any(|m| reason.contains(m))
}

/// Up to 10% shorter than `interval`, never longer: detection stays bounded by the interval.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(1.0 - rand::random_range(0.0..0.1))
}

#[cfg(test)]
mod tests;
