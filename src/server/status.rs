//! Builds the `/status` document (its types are in `api::status`) from the engine, the
//! config and the current snapshot.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::events::describe_answer;
use crate::api::event::rfc3339;
pub use crate::api::status::*;
use crate::config::{Config, Select};
use crate::dns::Snapshot;
use crate::engine::{Answer, Engine, NodeId, PoolId, RecordId};

/// Converts the engine's virtual times (since start) to wall-clock times.
#[derive(Clone, Copy)]
pub struct Clock {
    pub started: tokio::time::Instant,
    pub started_wall: SystemTime,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            started: tokio::time::Instant::now(),
            started_wall: SystemTime::now(),
        }
    }

    /// The engine's `now`.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn wall(&self, at: Duration) -> String {
        rfc3339(self.started_wall + at)
    }
}

pub struct Context<'a> {
    pub config: &'a Config,
    pub engine: &'a Engine,
    pub snapshot: &'a Snapshot,
    pub zone_names: &'a [String],
    pub clock: Clock,
    pub config_file: Option<String>,
    pub config_loaded: Duration,
    /// The last fence per (pool, node) name.
    pub fences: &'a std::collections::HashMap<(String, String), FenceStatus>,
    /// NOTIFY per (target, zone).
    pub notify: Vec<NotifyStatus>,
}

pub fn build(cx: &Context<'_>) -> Status {
    let (config, engine) = (cx.config, cx.engine);
    let now = cx.clock.now();
    let records: Vec<RecordStatus> = (0..config.records.len())
        .map(|r| record(cx, RecordId(r)))
        .collect();
    let pools = config
        .pools
        .iter()
        .enumerate()
        .map(|(p, pool)| (PoolId(p), pool))
        .map(|(p, pool)| PoolStatus {
            name: pool.name.clone(),
            check: pool.check.kind().into(),
            interval_ms: pool.interval.as_millis() as u64,
            ready: engine.pool_ready(p),
            degraded: engine.pool_ready(p) && engine.pool_degraded(p),
            nodes: (0..pool.nodes.len())
                .map(|n| node(cx, NodeId { pool: p, index: n }, &records))
                .collect(),
            // The supervisor adds it (it owns the promotions).
            promotion: None,
        })
        .collect();
    Status {
        version: env!("CARGO_PKG_VERSION").into(),
        commit: crate::api::COMMIT.into(),
        started: rfc3339(cx.clock.started_wall),
        uptime_seconds: now.as_secs_f64(),
        ready: (0..config.pools.len()).all(|p| engine.pool_ready(PoolId(p))),
        config_file: cx.config_file.clone(),
        config_loaded: cx.clock.wall(cx.config_loaded),
        zones: cx
            .zone_names
            .iter()
            .zip(cx.snapshot.serials())
            .map(|(name, &serial)| ZoneStatus {
                name: name.clone(),
                serial,
            })
            .collect(),
        records,
        pools,
        cluster: None,
        notify: cx.notify.clone(),
        resolver: cx.snapshot.resolver.as_deref().map(resolver),
    }
}

/// The forwarder's counts and upstreams.
fn resolver(f: &crate::dns::forward::Forwarder) -> ResolverStatus {
    use std::sync::atomic::Ordering::Relaxed;
    ResolverStatus {
        queries: f.counters.queries.load(Relaxed),
        cache_hits: f.counters.cache_hits.load(Relaxed),
        forwarded: f.counters.forwarded.load(Relaxed),
        servfail: f.counters.servfail.load(Relaxed),
        upstreams: (f.upstreams.iter())
            .map(|u| UpstreamStatus {
                address: u.address.to_string(),
                up: u.is_up(),
                rtt_ms: u.srtt().as_secs_f64() * 1000.0,
                queries: u.forwarded.load(Relaxed),
                failed: u.failed.load(Relaxed),
                last_error: u.last_error(),
            })
            .collect(),
    }
}

/// One record: its answer, since when and why, and the nodes it leaves out.
fn record(cx: &Context<'_>, r: RecordId) -> RecordStatus {
    let (config, engine) = (cx.config, cx.engine);
    let record = config.record(r);
    let pool = config.record_pool(r);
    let answer = engine.answer(r);
    let nodes = match answer {
        Answer::Nodes(n) => n.clone(),
        _ => Vec::new(),
    };
    let (changed_at, reason) = engine.answer_changed(r);
    RecordStatus {
        name: record.name.clone(),
        pool: pool.name.clone(),
        select: select_name(record.select).into(),
        ttl: record.ttl,
        answer: match answer {
            Answer::Nodes(_) => "nodes",
            Answer::Nodata => "nodata",
            Answer::Servfail => "servfail",
            Answer::Pending => "pending",
        }
        .into(),
        nodes: nodes.iter().map(|&n| pool.nodes[n].name.clone()).collect(),
        addresses: nodes
            .iter()
            .map(|&n| pool.nodes[n].address.to_string())
            .collect(),
        describe: describe_answer(config, r, answer),
        since: (*answer != Answer::Pending).then(|| cx.clock.wall(changed_at)),
        reason: reason.to_string(),
        serial: cx.snapshot.serial_of(&record.name).unwrap_or_default(),
        stale: engine.stale_since(r).is_some(),
        stale_since: engine.stale_since(r).map(|s| cx.clock.wall(s)),
        split_brain: engine
            .split_brain(r)
            .iter()
            .map(|&n| pool.nodes[n].name.clone())
            .collect(),
        left_out: (0..pool.nodes.len())
            .filter_map(|n| Some((pool.nodes[n].name.clone(), engine.unfit(r, n)?.into())))
            .collect(),
        sites: match cx
            .snapshot
            .answer_of(&record.name)
            .and_then(|a| a.sites.as_ref())
        {
            Some(sites) => config
                .sites
                .iter()
                .zip(sites)
                .map(|(site, answer)| SiteAnswer {
                    site: site.name.clone(),
                    describe: describe_published(pool, answer),
                })
                .collect(),
            _ => Vec::new(),
        },
    }
}

/// A published answer as the logs show one: the nodes behind its addresses.
fn describe_published(pool: &crate::config::Pool, answer: &Answer<IpAddr>) -> String {
    match answer {
        Answer::Nodes(addresses) => addresses
            .iter()
            .map(|a| match pool.nodes.iter().find(|n| n.address == *a) {
                Some(node) => format!("{}({a})", node.name),
                None => a.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        other => other.kind().into(),
    }
}

/// One node: health, last probe, database role and lag, fence; the records answering it.
fn node(cx: &Context<'_>, id: NodeId, records: &[RecordStatus]) -> NodeStatus {
    let (pool, engine, now) = (cx.config.pool(id.pool), cx.engine, cx.clock.now());
    let node = &pool.nodes[id.index];
    let mysql = matches!(pool.check, crate::config::Check::Mysql(_));
    let state = engine.node(id);
    let db = state.db.as_ref().filter(|_| state.health == Health::Up);
    let known = state.health != Health::Unknown;
    let stale_after = pool.interval * 2 + pool.timeout;
    let lag = db
        .filter(|d| !d.writable)
        .and_then(|_| engine.replica_lag(id, now));
    NodeStatus {
        name: node.name.clone(),
        address: node.address.to_string(),
        port: node.port,
        health: state.health,
        since: known.then(|| cx.clock.wall(state.since)),
        role: db.map(|d| {
            if d.writable {
                Role::Primary
            } else {
                Role::Replica
            }
        }),
        timeline: db.and_then(|d| d.timeline),
        lag_seconds: lag.map(|l| l.time.as_secs_f64()),
        lag_bytes: lag.filter(|_| !mysql).map(|l| l.behind),
        lag_transactions: lag.filter(|_| mysql).map(|l| l.behind),
        replication: db.and_then(|d| {
            let r = d.replication.as_ref()?;
            Some(if r.running {
                format!("replicating from {}", r.source())
            } else {
                format!("from {}: {}", r.source(), r.state)
            })
        }),
        fence: cx
            .fences
            .get(&(pool.name.clone(), node.name.clone()))
            .cloned(),
        last_probe: state.last.as_ref().map(|o| ProbeStatus {
            ok: o.ok,
            detail: o.detail.clone(),
            latency_ms: o.latency.as_secs_f64() * 1000.0,
            at: cx.clock.wall(state.last_at),
        }),
        successes: state.successes,
        failures: state.failures,
        drained: state.drained,
        stale: known && now.saturating_sub(state.last_at) > stale_after,
        excluded_cluster: state.excluded.clone(),
        answered_by: records
            .iter()
            .filter(|r| r.pool == pool.name && r.nodes.contains(&node.name))
            .map(|r| r.name.clone())
            .collect(),
    }
}

fn select_name(select: Select) -> &'static str {
    match select {
        Select::First => "first",
        Select::Healthy => "healthy",
        Select::Primary => "primary",
        Select::Replicas => "replicas",
    }
}
