//! `[resolver]` metrics, read from `/status` at each scrape.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::api::status::Status;

pub(super) struct ResolverMetrics {
    queries: IntCounterVec,
    up: IntGaugeVec,
    rtt: GaugeVec,
    failures: IntCounterVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    r.register(Box::new(c.clone()))
        .expect("metric names are constant and unique");
    c
}

impl ResolverMetrics {
    pub(super) fn new(registry: &Registry) -> ResolverMetrics {
        // Names and labels are constants: creating them cannot fail.
        let opts = |name: &str, help: &str| Opts::new(name, help);
        ResolverMetrics {
            queries: register(
                registry,
                IntCounterVec::new(
                    opts(
                        "resolver_queries_total",
                        "Queries for names outside the zones from allowed clients, by result \
                         (cache_hit, forwarded, servfail).",
                    ),
                    &["result"],
                )
                .expect("valid metric"),
            ),
            up: register(
                registry,
                IntGaugeVec::new(
                    opts(
                        "resolver_upstream_up",
                        "1 while the upstream answers its checks and queries in time.",
                    ),
                    &["upstream"],
                )
                .expect("valid metric"),
            ),
            rtt: register(
                registry,
                GaugeVec::new(
                    opts(
                        "resolver_upstream_rtt_seconds",
                        "The upstream's smoothed round trip (checks and answered queries).",
                    ),
                    &["upstream"],
                )
                .expect("valid metric"),
            ),
            failures: register(
                registry,
                IntCounterVec::new(
                    opts(
                        "resolver_upstream_failures_total",
                        "Checks and queries the upstream did not answer in time.",
                    ),
                    &["upstream"],
                )
                .expect("valid metric"),
            ),
        }
    }

    /// The forwarder's counts (since its configuration was loaded) as counters: what they
    /// gained since the last scrape is added.
    pub(super) fn render(&self, status: &Status) {
        let Some(r) = &status.resolver else {
            return;
        };
        let counts = [
            ("cache_hit", r.cache_hits),
            ("forwarded", r.forwarded),
            ("servfail", r.servfail),
        ];
        for (result, count) in counts {
            let c = self.queries.with_label_values(&[result]);
            c.inc_by(count.saturating_sub(c.get()));
        }
        for u in &r.upstreams {
            let label = [u.address.as_str()];
            self.up.with_label_values(&label).set(i64::from(u.up));
            self.rtt.with_label_values(&label).set(u.rtt_ms / 1000.0);
            let c = self.failures.with_label_values(&label);
            c.inc_by(u.failed.saturating_sub(c.get()));
        }
    }
}
