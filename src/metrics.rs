//! Prometheus metrics: counters fed as things happen, gauges filled from the status at
//! each scrape (so removed pools and nodes disappear with a reload).
//!
//! The DNS answer path counts into [`QueryCounters`]: per worker and batch, then one
//! atomic add per response code, never one per query.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::server::status::Status;

/// Response codes counted separately; anything else is `other`.
const RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];

/// Slots of a per-batch tally of responses by code ([`QueryCounters::slot`]).
pub const RCODE_SLOTS: usize = RCODES.len();

/// DNS responses sent, by protocol and response code.
pub struct QueryCounters {
    udp: Vec<IntCounter>,
    tcp: Vec<IntCounter>,
}

impl QueryCounters {
    /// Adds `count` responses with response code `rcode` sent over UDP or TCP.
    pub fn add(&self, tcp: bool, rcode: u16, count: u64) {
        let counters = if tcp { &self.tcp } else { &self.udp };
        counters[usize::from(rcode).min(RCODES.len() - 1)].inc_by(count);
    }

    /// Index of a response code (the header's 4 bits) in a per-batch tally.
    pub fn slot(rcode: u8) -> usize {
        usize::from(rcode).min(RCODES.len() - 1)
    }

    /// Adds a per-batch tally (indexed by [`QueryCounters::slot`]) of UDP responses.
    pub fn add_udp_tally(&self, tally: &[u64; RCODE_SLOTS]) {
        for (counter, &n) in self.udp.iter().zip(tally) {
            if n > 0 {
                counter.inc_by(n);
            }
        }
    }
}

pub struct Metrics {
    registry: Registry,
    pub queries: std::sync::Arc<QueryCounters>,
    pub probe_duration: HistogramVec,
    pub transitions: IntCounterVec,
    pub answer_changes: IntCounterVec,
    pub split_brain: IntCounterVec,
    pub reloads: IntCounterVec,
    pub hooks: IntCounterVec,
    node_up: IntGaugeVec,
    node_role: IntGaugeVec,
    node_drained: IntGaugeVec,
    record_nodes: IntGaugeVec,
    zone_serial: IntGaugeVec,
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
        let queries = std::sync::Arc::new(QueryCounters {
            udp: per_rcode("udp"),
            tcp: per_rcode("tcp"),
        });
        let build = gauge(
            "build_info",
            "Always 1; the version in a label.",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
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
        Metrics {
            queries,
            probe_duration,
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
            zone_serial: gauge("zone_serial", "The zone's current SOA serial.", &["zone"]),
            registry,
        }
    }

    /// The Prometheus text exposition, with the gauges taken from `status`.
    pub fn render(&self, status: &Status) -> String {
        for gauge in [&self.node_up, &self.node_role, &self.node_drained] {
            gauge.reset();
        }
        self.record_nodes.reset();
        self.zone_serial.reset();
        for pool in &status.pools {
            for node in &pool.nodes {
                let labels = [pool.name.as_str(), node.name.as_str()];
                self.node_up
                    .with_label_values(&labels)
                    .set(i64::from(node.health == "up"));
                self.node_drained
                    .with_label_values(&labels)
                    .set(i64::from(node.drained));
                if let Some(role) = &node.role {
                    self.node_role
                        .with_label_values(&[labels[0], labels[1], role])
                        .set(1);
                }
            }
        }
        for record in &status.records {
            self.record_nodes
                .with_label_values(&[record.name.as_str()])
                .set(record.nodes.len() as i64);
        }
        for zone in &status.zones {
            self.zone_serial
                .with_label_values(&[zone.name.as_str()])
                .set(i64::from(zone.serial));
        }
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which ours are not.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
