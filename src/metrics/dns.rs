//! What the DNS answer path counts: responses by protocol and code, per-packet anomalies,
//! zone transfers; per worker and batch, then one atomic add per response code.

use prometheus::{IntCounter, IntCounterVec};

/// Response codes counted separately; anything else is `other`.
pub(super) const RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];

/// Slots of a per-batch tally of responses by code ([`QueryCounters::slot`]).
pub const RCODE_SLOTS: usize = RCODES.len();

/// Per-packet and per-connection problems on the DNS side: counted here, never logged
/// one line per packet (a flood of them must not flood the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anomaly {
    /// Not a query (shorter than a header, or a response): no answer.
    Dropped,
    /// FORMERR: a question hadns cannot read, or a malformed message around it.
    Malformed,
    /// NOTIMP or BADVERS: an opcode or EDNS version hadns does not speak.
    Unsupported,
    /// REFUSED: a class other than IN.
    OtherClass,
    /// A UDP answer too large for the client's size or `dns.max_udp_size`: sent with TC.
    Truncated,
    /// The queue to the hickory path was full: the query was dropped (the client retries).
    FallbackQueueFull,
    /// A TCP connection closed at once: over `dns.tcp_connections` or the per-client limit.
    TcpRefused,
    /// A TCP connection closed for idling or for sending too slowly.
    TcpTimeout,
    /// A UDP worker panicked and was restarted.
    UdpWorkerRestarted,
    /// Response rate limiting dropped a response.
    RateLimitDropped,
    /// Response rate limiting sent a truncated response instead (slip).
    RateLimitSlipped,
}

impl Anomaly {
    pub const ALL: [Anomaly; 11] = [
        Anomaly::Dropped,
        Anomaly::Malformed,
        Anomaly::Unsupported,
        Anomaly::OtherClass,
        Anomaly::Truncated,
        Anomaly::FallbackQueueFull,
        Anomaly::TcpRefused,
        Anomaly::TcpTimeout,
        Anomaly::UdpWorkerRestarted,
        Anomaly::RateLimitDropped,
        Anomaly::RateLimitSlipped,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Anomaly::Dropped => "dropped",
            Anomaly::Malformed => "malformed",
            Anomaly::Unsupported => "unsupported",
            Anomaly::OtherClass => "other_class",
            Anomaly::Truncated => "truncated",
            Anomaly::FallbackQueueFull => "fallback_queue_full",
            Anomaly::TcpRefused => "tcp_refused",
            Anomaly::TcpTimeout => "tcp_timeout",
            Anomaly::UdpWorkerRestarted => "udp_worker_restarted",
            Anomaly::RateLimitDropped => "rate_limit_dropped",
            Anomaly::RateLimitSlipped => "rate_limit_slipped",
        }
    }
}

/// DNS responses sent, by protocol and response code, and the anomalies on the way.
pub struct QueryCounters {
    pub(super) udp: Vec<IntCounter>,
    pub(super) tcp: Vec<IntCounter>,
    pub(super) anomalies: Vec<IntCounter>,
    pub(super) transfers: IntCounterVec,
}

impl QueryCounters {
    /// Counts one zone transfer request: `kind` axfr or ixfr; `result` full, incremental,
    /// soa (up to date, or too large for UDP) or refused.
    pub fn transfer(&self, kind: &str, result: &str) {
        self.transfers.with_label_values(&[kind, result]).inc();
    }

    /// Transfers of this kind and result so far.
    pub fn transfer_count(&self, kind: &str, result: &str) -> u64 {
        self.transfers.with_label_values(&[kind, result]).get()
    }

    /// Adds `count` responses with response code `rcode` sent over UDP or TCP.
    pub fn add(&self, tcp: bool, rcode: u16, count: u64) {
        let counters = if tcp { &self.tcp } else { &self.udp };
        counters[usize::from(rcode).min(RCODES.len() - 1)].inc_by(count);
    }

    /// Counts one anomaly.
    pub fn anomaly(&self, anomaly: Anomaly) {
        self.anomalies_of(anomaly).inc();
    }

    /// Counts `n` anomalies of one kind (per batch on the UDP path).
    pub fn anomalies(&self, anomaly: Anomaly, n: u64) {
        if n > 0 {
            self.anomalies_of(anomaly).inc_by(n);
        }
    }

    /// How many of this anomaly so far.
    pub fn anomaly_count(&self, anomaly: Anomaly) -> u64 {
        self.anomalies_of(anomaly).get()
    }

    fn anomalies_of(&self, anomaly: Anomaly) -> &IntCounter {
        let i = Anomaly::ALL.iter().position(|a| *a == anomaly);
        // ALL lists every variant, and `anomalies` has one counter per entry of ALL.
        &self.anomalies[i.expect("every anomaly is in Anomaly::ALL")]
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
