//! The running server: checkers feed the engine, the engine's answers become snapshots.
//!
//! ```text
//! checkers --Report--> supervisor loop: engine.observe(now) -> events
//!                         | any answer changed
//!                         v
//!              SnapshotBuilder::build -> ArcSwap::store (one atomic swap)
//!                         |
//!                    DNS handler (one snapshot per query)
//! ```

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::checks;
use crate::config::Config;
use crate::dns::{Published, Snapshot, SnapshotBuilder, Sockets, ZoneSet};
use crate::engine::{Answer, Engine, Event};

/// Reports waiting for the engine; checkers wait when it is full.
const REPORT_QUEUE: usize = 1024;

/// Runs hadns on already bound sockets until `shutdown` is cancelled, then stops every
/// task it started and returns.
pub async fn run(
    config: Config,
    zones: ZoneSet,
    sockets: Sockets,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let start_serial = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1);
    let mut builder = SnapshotBuilder::new(zones, &config.records, start_serial);
    let mut engine = Engine::new(&config);
    let snapshot = Arc::new(ArcSwap::from_pointee(
        builder.build(&published(&config, &engine)),
    ));

    let mut tasks = JoinSet::new();
    let dns = tokio::spawn(crate::dns::serve(
        sockets,
        snapshot.clone(),
        shutdown.clone(),
    ));
    let (reports_tx, mut reports) = mpsc::channel(REPORT_QUEUE);
    checks::spawn_all(&config, reports_tx, shutdown.clone(), &mut tasks);

    let started = Instant::now();
    let mut all_ready = false;
    loop {
        let report = tokio::select! {
            r = reports.recv() => r,
            _ = shutdown.cancelled() => None,
        };
        let Some(report) = report else { break };
        let events = engine.observe(
            report.pool,
            report.node,
            report.observation,
            started.elapsed(),
        );
        if events
            .iter()
            .any(|e| matches!(e, Event::AnswerChanged { .. }))
        {
            snapshot.store(Arc::new(builder.build(&published(&config, &engine))));
        }
        log_events(&config, &snapshot.load(), &events);
        if !all_ready && (0..config.pools.len()).all(|p| engine.pool_ready(p)) {
            all_ready = true;
            info!(
                pools = config.pools.len(),
                records = config.records.len(),
                "first round of checks complete"
            );
        }
    }

    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    match dns.await {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(format!("dns server task: {e}"))),
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

/// `web1,web2`, `nodata`, `servfail` or `pending`.
pub fn describe_answer(config: &Config, record: usize, answer: &Answer) -> String {
    match answer {
        Answer::Pending => "pending".into(),
        Answer::Nodata => "nodata".into(),
        Answer::Servfail => "servfail".into(),
        Answer::Nodes(nodes) => {
            let pool = &config.pools[config.records[record].pool];
            nodes
                .iter()
                .map(|&n| format!("{}({})", pool.nodes[n].name, pool.nodes[n].address))
                .collect::<Vec<_>>()
                .join(",")
        }
    }
}

fn log_events(config: &Config, snapshot: &Snapshot, events: &[Event]) {
    for event in events {
        match event {
            Event::NodeChanged {
                pool,
                node,
                from,
                to,
                reason,
            } => {
                let pool = &config.pools[*pool];
                info!(pool = %pool.name, node = %pool.nodes[*node].name, from = %from, to = %to, reason = %reason, "node state changed");
            }
            Event::AnswerChanged {
                record,
                from,
                to,
                reason,
            } => {
                let name = &config.records[*record].name;
                let serial = snapshot.serial_of(name).unwrap_or_default();
                let (from, to) = (
                    describe_answer(config, *record, from),
                    describe_answer(config, *record, to),
                );
                if matches!(
                    event,
                    Event::AnswerChanged {
                        to: Answer::Nodata | Answer::Servfail,
                        ..
                    }
                ) {
                    error!(record = %name, from = %from, to = %to, reason = %reason, serial, "answer changed: no node qualifies");
                } else {
                    info!(record = %name, from = %from, to = %to, reason = %reason, serial, "answer changed");
                }
            }
        }
    }
}
