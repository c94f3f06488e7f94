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
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

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
    vips: Vec<crate::vip::Prepared>,
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
    let (degraded, degraded_rx): (Vec<_>, Vec<_>) =
        config.pools.iter().map(|_| watch::channel(false)).unzip();
    checks::spawn_all(
        &config,
        reports_tx,
        &degraded_rx,
        shutdown.clone(),
        &mut tasks,
    );
    let mut vip_wanted = Vec::new();
    for vip in vips {
        let (tx, rx) = watch::channel(false);
        vip_wanted.push((vip.record(), vip.node(), tx));
        tasks.spawn(vip.run(rx, shutdown.clone()));
    }

    let started = Instant::now();
    let mut all_ready = false;
    let mut failing: Vec<Vec<Option<String>>> = config
        .pools
        .iter()
        .map(|p| vec![None; p.nodes.len()])
        .collect();
    loop {
        // Without pools there are no checkers and the channel closes at once: that branch
        // is then disabled and only shutdown ends the loop.
        let report = tokio::select! {
            Some(r) = reports.recv() => r,
            _ = shutdown.cancelled() => break,
        };
        let (pool, node) = (report.pool, report.node);
        let failure = (!report.observation.ok).then(|| report.observation.detail.clone());
        let events = engine.observe(pool, node, report.observation, started.elapsed());
        log_failure_change(
            &config,
            pool,
            node,
            &mut failing[pool][node],
            failure,
            &events,
        );

        // Fence the losers first, then move the name.
        for event in &events {
            if let Event::Fence { pool, node, reason } = event {
                fence(&config, *pool, *node, reason).await;
            }
        }
        if events
            .iter()
            .any(|e| matches!(e, Event::AnswerChanged { .. }))
        {
            snapshot.store(Arc::new(builder.build(&published(&config, &engine))));
        }
        log_events(&config, &snapshot.load(), &events);
        // A vip is held while its record answers exactly the local node and that node is up.
        for (record, node, wanted) in &vip_wanted {
            let pool = config.records[*record].pool;
            let hold = engine.answer(*record) == &Answer::Nodes(vec![*node])
                && engine.node(pool, *node).health == crate::engine::Health::Up;
            wanted.send_if_modified(|w| std::mem::replace(w, hold) != hold);
        }
        // Only this report's pool can have changed.
        let now_degraded = engine.pool_ready(pool) && engine.pool_degraded(pool);
        degraded[pool].send_if_modified(|d| std::mem::replace(d, now_degraded) != now_degraded);
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
    // Checkers waiting to report see the channel closed.
    drop(reports);
    while tasks.join_next().await.is_some() {}
    match dns.await {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(format!("dns server task: {e}"))),
    }
}

async fn fence(config: &Config, pool: usize, node: usize, reason: &str) {
    let (pool, node) = (&config.pools[pool], &config.pools[pool].nodes[node]);
    info!(pool = %pool.name, node = %node.name, reason, "fencing");
    match checks::fence(pool, node).await {
        Ok(done) => info!(pool = %pool.name, node = %node.name, done = %done, "fenced"),
        Err(error) => {
            error!(pool = %pool.name, node = %node.name, %error, "fencing failed; moving the answer anyway")
        }
    }
}

/// A failing probe is logged once per change of its reason (authentication failures, a
/// missing database, ...), not at every probe; state changes are logged as events.
fn log_failure_change(
    config: &Config,
    pool: usize,
    node: usize,
    last: &mut Option<String>,
    failure: Option<String>,
    events: &[Event],
) {
    if failure == *last {
        return;
    }
    let reported = events.iter().any(
        |e| matches!(e, Event::NodeChanged { pool: p, node: n, .. } if *p == pool && *n == node),
    );
    let (pool, node) = (&config.pools[pool], &config.pools[pool].nodes[node]);
    match (&failure, reported) {
        (Some(reason), false) => {
            warn!(pool = %pool.name, node = %node.name, reason = %reason, "probe failing")
        }
        (None, false) if last.is_some() => {
            info!(pool = %pool.name, node = %node.name, "probe succeeding again")
        }
        _ => {}
    }
    *last = failure;
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
            Event::SplitBrain {
                record,
                writable,
                outcome,
            } => {
                let pool = &config.pools[config.records[*record].pool];
                let writable: Vec<&str> = writable
                    .iter()
                    .map(|&n| pool.nodes[n].name.as_str())
                    .collect();
                error!(record = %config.records[*record].name, pool = %pool.name, writable = %writable.join(","), outcome = %outcome, "split_brain");
            }
            Event::ClusterMismatch {
                pool,
                node,
                cluster,
                expected,
            } => {
                let pool = &config.pools[*pool];
                error!(pool = %pool.name, node = %pool.nodes[*node].name, cluster = %cluster, expected = ?expected, "node excluded: cluster identity differs");
            }
            Event::ClusterRejoined { pool, node } => {
                let pool = &config.pools[*pool];
                info!(pool = %pool.name, node = %pool.nodes[*node].name, "node included again: cluster identity agrees");
            }
            Event::Stale { record, max_stale } => {
                warn!(record = %config.records[*record].name, max_stale = ?max_stale, "no node reachable; keeping the last answer (stale)");
            }
            // Logged where it is carried out.
            Event::Fence { .. } => {}
        }
    }
}
