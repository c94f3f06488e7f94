//! Health checkers: one task per (pool, node), each sending [`Observation`]s to the engine.
//!
//! A checker never returns an error: a failed probe is an observation with a reason.
//! Probes run every `interval` (up to 10% earlier, so checkers of many nodes spread out),
//! each bounded by `timeout`; the first probe runs at once.

mod exec;
mod http;
mod tcp;

use std::io;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::{Check, Config, Node, Pool};
use crate::engine::Observation;

/// One probe result, addressed to its pool and node.
#[derive(Debug)]
pub struct Report {
    pub pool: usize,
    pub node: usize,
    pub observation: Observation,
}

/// How one node is probed; built once per checker task.
enum Prober {
    Tcp,
    Http(http::HttpProber),
    Exec(exec::ExecProber),
}

impl Prober {
    fn new(pool: &Pool, node: &Node) -> Prober {
        match &pool.check {
            Check::Tcp => Prober::Tcp,
            Check::Http(check) => Prober::Http(http::HttpProber::new(check, node)),
            Check::Exec(check) => Prober::Exec(exec::ExecProber::new(check, pool, node)),
        }
    }

    async fn probe(&self, node: &Node, timeout: Duration) -> Observation {
        let started = Instant::now();
        let result = match self {
            // Validation guarantees tcp and http nodes have a port.
            Prober::Tcp => bounded(timeout, tcp::probe(node.address, node.port.unwrap_or(0))).await,
            Prober::Http(p) => bounded(timeout, p.probe()).await,
            // Exec bounds itself, to kill the whole process group on timeout.
            Prober::Exec(p) => p.probe(timeout).await,
        };
        let latency = started.elapsed();
        match result {
            Ok(detail) => Observation::up(detail, latency),
            Err(reason) => Observation::down(reason, latency),
        }
    }
}

async fn bounded(
    timeout: Duration,
    probe: impl Future<Output = Result<String, String>>,
) -> Result<String, String> {
    tokio::time::timeout(timeout, probe)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {timeout:?}")))
}

/// Spawns one checker per node of every pool into `tasks`.
pub fn spawn_all(
    config: &Config,
    reports: mpsc::Sender<Report>,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    for (p, pool) in config.pools.iter().enumerate() {
        for (n, node) in pool.nodes.iter().enumerate() {
            let checker = Checker {
                pool_index: p,
                node_index: n,
                prober: Prober::new(pool, node),
                pool: pool.clone(),
                node: node.clone(),
            };
            tasks.spawn(checker.run(reports.clone(), shutdown.clone()));
        }
    }
}

struct Checker {
    pool_index: usize,
    node_index: usize,
    pool: Pool,
    node: Node,
    prober: Prober,
}

impl Checker {
    async fn run(self, reports: mpsc::Sender<Report>, shutdown: CancellationToken) {
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
            let report = Report {
                pool: self.pool_index,
                node: self.node_index,
                observation,
            };
            if reports.send(report).await.is_err() {
                return;
            }
            let next = started + jittered(self.pool.interval);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Up to 10% shorter than `interval`, never longer: detection stays bounded by the interval.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(1.0 - rand::random_range(0.0..0.1))
}

/// A short, lowercase reason for an IO error: `connection refused`, `host unreachable`.
fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", e.kind()),
    }
}
