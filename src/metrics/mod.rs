//! Prometheus metrics: counters fed as things happen, gauges filled from the status at
//! each scrape (so removed pools and nodes disappear with a reload).
//!
//! The DNS answer path counts into [`QueryCounters`] (`dns.rs`): per worker and batch, then
//! one atomic add per response code, never one per query.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::api::status::{Health, NotifyState, Role, Status};

mod dns;
mod resolver;
use dns::RCODES;
pub use dns::{Anomaly, QueryCounters, RCODE_SLOTS};

pub struct Metrics {
    registry: Registry,
    pub queries: std::sync::Arc<QueryCounters>,
    pub probe_duration: HistogramVec,
    pub transitions: IntCounterVec,
    pub answer_changes: IntCounterVec,
    pub split_brain: IntCounterVec,
    pub reloads: IntCounterVec,
    pub hooks: IntCounterVec,
    pub fences: IntCounterVec,
    /// Promotions by outcome (promoted, failed, refused).
    pub promotions: IntCounterVec,
    /// NOTIFYs to secondaries, by target and result (sent, acknowledged, failed).
    pub notifies: IntCounterVec,
    node_up: IntGaugeVec,
    node_role: IntGaugeVec,
    node_drained: IntGaugeVec,
    record_nodes: IntGaugeVec,
    record_stale: IntGaugeVec,
    zone_serial: IntGaugeVec,
    notify_state: IntGaugeVec,
    cluster: IntGaugeVec,
    promotion_state: IntGaugeVec,
    /// `[resolver]`, from `/status` at each scrape.
    resolver: resolver::ResolverMetrics,
    /// Cluster mode: from the leader's decision to its being served here.
    pub decision_served: prometheus::Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("hadns".into()), None).expect("a constant, valid prefix");
        // Names and labels below are constants: registering them cannot fail.
        fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
            r.register(Box::new(c.clone()))
                .expect("metric names are constant and unique");
            c
        }
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let dns = counter(
            "dns_queries_total",
            "DNS responses sent, by protocol and response code.",
            &["protocol", "rcode"],
        );
        let per_rcode = |protocol: &str| {
            RCODES
                .iter()
                .map(|rcode| dns.with_label_values(&[protocol, rcode]))
                .collect()
        };
        let anomalies = counter(
            "dns_anomalies_total",
            "Problems with DNS packets and connections, by kind (counted, not logged).",
            &["kind"],
        );
        let queries = std::sync::Arc::new(QueryCounters {
            udp: per_rcode("udp"),
            tcp: per_rcode("tcp"),
            anomalies: Anomaly::ALL
                .iter()
                .map(|a| anomalies.with_label_values(&[a.label()]))
                .collect(),
            transfers: counter(
                "transfers_total",
                "Zone transfer requests, by kind (axfr, ixfr) and result (full, incremental, \
                 soa, refused).",
                &["kind", "result"],
            ),
        });
        let build = gauge(
            "build_info",
            "Always 1; the version and the commit in labels.",
            &["version", "commit"],
        );
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), crate::api::COMMIT])
            .set(1);
        let probe_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new("probe_duration_seconds", "Health probe duration, by pool.")
                    .buckets(vec![
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ]),
                &["pool"],
            )
            .expect("valid metric"),
        );
        let decision_served = register(
            &registry,
            prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "cluster_decision_served_seconds",
                    "Cluster mode: from the leader's decision to its being served by this member.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )
            .expect("valid metric"),
        );
        Metrics {
            queries,
            probe_duration,
            decision_served,
            cluster: gauge(
                "cluster",
                "Cluster mode, as this member sees it: connected (1 with a live etcd session), \
                 leader (1 while it leads), epoch and decision (of the served decision), \
                 config_mismatch (1 while the leader's configuration differs), resyncs, \
                 unreadable (values in etcd that could not be read).",
                &["what"],
            ),
            notifies: counter(
                "notifies_total",
                "NOTIFY messages to secondaries, by target and result (sent, acknowledged, \
                 not_served: answered NOTAUTH, REFUSED, NOTIMP or NXDOMAIN, failed: no or a bad answer \
                 in time).",
                &["target", "result"],
            ),
            transitions: counter(
                "node_transitions_total",
                "Node health state changes, by the state entered.",
                &["pool", "node", "to"],
            ),
            answer_changes: counter(
                "answer_changes_total",
                "Published answer changes per failover record.",
                &["record"],
            ),
            split_brain: counter(
                "split_brain_total",
                "Split-brain events (several writable nodes) per record.",
                &["record"],
            ),
            reloads: counter(
                "reloads_total",
                "Configuration reloads, by result (applied, rejected).",
                &["result"],
            ),
            hooks: counter(
                "hook_runs_total",
                "on_change hook runs per record, by result (ok, failed, dropped).",
                &["record", "result"],
            ),
            fences: counter(
                "fences_total",
                "Fences of a losing writable node, by result (fenced, failed).",
                &["pool", "node", "result"],
            ),
            promotions: counter(
                "promotions_total",
                "Promotions by outcome: promoted, failed (stopped before the candidate was \
                 promoted), refused (the primary is down but no replica may be promoted, or \
                 promotion is blocked).",
                &["pool", "outcome"],
            ),
            resolver: resolver::ResolverMetrics::new(&registry),
            promotion_state: gauge(
                "promotion_state",
                "1 for where the pool's promotion stands (idle, running, refused, blocked), \
                 0 for the other states; pools with promotion off have none.",
                &["pool", "state"],
            ),
            node_up: gauge(
                "node_up",
                "1 when the node is up, 0 when down or not probed yet.",
                &["pool", "node"],
            ),
            node_role: gauge(
                "node_role",
                "1 for the node's current role (primary, replica) as its check reports it.",
                &["pool", "node", "role"],
            ),
            node_drained: gauge(
                "node_drained",
                "1 while an operator has drained the node.",
                &["pool", "node"],
            ),
            record_nodes: gauge(
                "record_answer_nodes",
                "Nodes in the record's current answer.",
                &["record"],
            ),
            record_stale: gauge(
                "record_stale",
                "1 while no node of the record's pool can be reached and its last answer is \
                 kept (up to max_stale).",
                &["record"],
            ),
            zone_serial: gauge("zone_serial", "The zone's current SOA serial.", &["zone"]),
            notify_state: gauge(
                "notify_state",
                "1 for where the NOTIFYs of a zone to a secondary stand (acknowledged, pending, \
                 failing, not_served), 0 for the other states.",
                &["target", "zone", "state"],
            ),
            registry,
        }
    }

    /// Creates every series the configuration implies, at 0, so Prometheus sees them from
    /// the start (a counter that first appears at 1 hides its first increase from rate()).
    /// Called at start and after each reload; series of removed things stay until restart.
    pub fn declare(&self, config: &crate::config::Config) {
        for result in ["applied", "rejected"] {
            self.reloads.with_label_values(&[result]);
        }
        for kind in ["axfr", "ixfr"] {
            for result in ["full", "incremental", "soa", "refused"] {
                self.queries.transfers.with_label_values(&[kind, result]);
            }
        }
        for pool in &config.pools {
            self.probe_duration.with_label_values(&[pool.name.as_str()]);
            if pool.promote.mode != crate::config::PromoteMode::Off {
                for outcome in ["promoted", "failed", "refused"] {
                    self.promotions.with_label_values(&[&pool.name, outcome]);
                }
            }
            for node in &pool.nodes {
                if pool.fence.is_enabled() {
                    for result in ["fenced", "failed"] {
                        self.fences
                            .with_label_values(&[&pool.name, &node.name, result]);
                    }
                }
                for to in ["up", "down"] {
                    self.transitions.with_label_values(&[
                        pool.name.as_str(),
                        node.name.as_str(),
                        to,
                    ]);
                }
            }
        }
        for record in &config.records {
            let name = record.name.as_str();
            self.answer_changes.with_label_values(&[name]);
            if record.select == crate::config::Select::Primary {
                self.split_brain.with_label_values(&[name]);
            }
            if record.on_change.is_some() {
                for result in ["ok", "failed", "dropped"] {
                    self.hooks.with_label_values(&[name, result]);
                }
            }
        }
    }

    /// The Prometheus text exposition, with the gauges taken from `status`.
    pub fn render(&self, status: &Status) -> String {
        for gauge in [&self.node_up, &self.node_role, &self.node_drained] {
            gauge.reset();
        }
        self.record_nodes.reset();
        self.record_stale.reset();
        self.zone_serial.reset();
        for pool in &status.pools {
            for node in &pool.nodes {
                let labels = [pool.name.as_str(), node.name.as_str()];
                self.node_up
                    .with_label_values(&labels)
                    .set(i64::from(node.health == Health::Up));
                self.node_drained
                    .with_label_values(&labels)
                    .set(i64::from(node.drained));
                // Database pools: both roles, 1 for the current one, 0 for the other (and
                // both 0 while the node's role is unknown).
                if matches!(pool.check.as_str(), "postgres" | "mysql") {
                    for role in [Role::Primary, Role::Replica] {
                        self.node_role
                            .with_label_values(&[labels[0], labels[1], &role.to_string()])
                            .set(i64::from(node.role == Some(role)));
                    }
                }
            }
        }
        for record in &status.records {
            self.record_nodes
                .with_label_values(&[record.name.as_str()])
                .set(record.nodes.len() as i64);
            self.record_stale
                .with_label_values(&[record.name.as_str()])
                .set(i64::from(record.stale));
        }
        for zone in &status.zones {
            self.zone_serial
                .with_label_values(&[zone.name.as_str()])
                .set(i64::from(zone.serial));
        }
        self.notify_state.reset();
        for n in &status.notify {
            for state in [
                NotifyState::Acknowledged,
                NotifyState::Pending,
                NotifyState::Failing,
                NotifyState::NotServed,
            ] {
                self.notify_state
                    .with_label_values(&[n.target.as_str(), n.zone.as_str(), &state.to_string()])
                    .set(i64::from(n.state == state));
            }
        }
        self.render_promotions(status);
        self.resolver.render(status);
        self.cluster.reset();
        if let Some(c) = &status.cluster {
            for (what, value) in [
                ("connected", i64::from(c.connected)),
                ("leader", i64::from(c.leading)),
                ("epoch", c.epoch.unwrap_or(0)),
                ("decision", c.decision.unwrap_or(0) as i64),
                ("config_mismatch", i64::from(c.config_differs_from_leader)),
                ("resyncs", c.resyncs as i64),
                ("unreadable", c.unreadable as i64),
                ("members", c.members.len() as i64),
            ] {
                self.cluster.with_label_values(&[what]).set(value);
            }
        }
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which ours are not.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Metrics {
    /// One `promotion_state` per pool that promotes: 1 for its state, 0 for the others.
    fn render_promotions(&self, status: &Status) {
        self.promotion_state.reset();
        for pool in &status.pools {
            if let Some(p) = &pool.promotion {
                for state in ["idle", "running", "refused", "blocked"] {
                    self.promotion_state
                        .with_label_values(&[pool.name.as_str(), state])
                        .set(i64::from(p.state == state));
                }
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
