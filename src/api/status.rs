//! The `/status` document: what hadns believes right now, as `/status` serves it,
//! `hadns status` prints it and the metrics' gauges read it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A node's health as the checks decided it (rise/fall applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No probe has completed yet.
    Unknown,
    Up,
    Down,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        })
    }
}

/// A database node's role as its check reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writable.
    Primary,
    /// Read-only.
    Replica,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    /// The commit hadns was built from (`unknown` outside a git checkout).
    #[serde(default)]
    pub commit: String,
    pub started: String,
    pub uptime_seconds: f64,
    /// Every pool has completed its first round of checks.
    pub ready: bool,
    #[serde(default)]
    pub config_file: Option<String>,
    /// When the running configuration was loaded (start or last reload).
    pub config_loaded: String,
    pub zones: Vec<ZoneStatus>,
    pub records: Vec<RecordStatus>,
    pub pools: Vec<PoolStatus>,
    /// `[cluster]`: this member, the leader, every member's view; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
    /// NOTIFY to secondaries: one entry per (target, zone) announced to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifyStatus>,
    /// `[resolver]`: names outside the zones forwarded; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<ResolverStatus>,
}

/// The forwarder: its counts (since its configuration was loaded) and each upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolverStatus {
    /// Queries for other names from allowed clients.
    pub queries: u64,
    pub cache_hits: u64,
    /// Cache misses an upstream answered.
    pub forwarded: u64,
    /// Answered SERVFAIL: no upstream up, or none answered.
    pub servfail: u64,
    pub upstreams: Vec<UpstreamStatus>,
}

/// One recursive resolver hadns forwards to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamStatus {
    pub address: String,
    pub up: bool,
    /// Smoothed round trip of its checks and answered queries (0 before the first).
    pub rtt_ms: f64,
    /// Queries sent to it (checks aside), and those it did not answer in time.
    pub queries: u64,
    pub failed: u64,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// Where the NOTIFYs of one zone to one secondary stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyState {
    /// The target acknowledged the current serial.
    Acknowledged,
    /// Sent, or about to be; no answer yet.
    Pending,
    /// The last attempt failed (no answer, an error answer, a bad signature); retried with
    /// backoff.
    Failing,
    /// The target answered NOTAUTH, REFUSED, NOTIMP or NXDOMAIN: it does not carry the zone (or does
    /// not take this key). Sent once per later serial only.
    NotServed,
}

impl fmt::Display for NotifyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotifyState::Acknowledged => "acknowledged",
            NotifyState::Pending => "pending",
            NotifyState::Failing => "failing",
            NotifyState::NotServed => "not_served",
        })
    }
}

/// One (target, zone) of NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyStatus {
    pub target: String,
    pub zone: String,
    pub state: NotifyState,
    /// The serial being announced.
    pub serial: u32,
    /// The last serial the target acknowledged.
    #[serde(default)]
    pub acknowledged: Option<u32>,
    /// The last problem (the answer or the error), until an acknowledgement.
    #[serde(default)]
    pub problem: Option<String>,
}

/// Cluster mode as this member sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This member.
    pub name: String,
    /// Has a live session with etcd.
    pub connected: bool,
    /// Why not, while cut off.
    #[serde(default)]
    pub lost_reason: Option<String>,
    /// The etcd endpoint of the current session, or the one being tried (one at a time,
    /// the next one after each loss).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Seconds since etcd last confirmed this member's lease.
    #[serde(default)]
    pub last_contact_seconds: Option<f64>,
    /// Cut off for longer than the lease: vips released.
    pub expired: bool,
    /// `agreed`, `servfail (cut off from etcd)`, or `nothing agreed yet`.
    pub serving: String,
    pub on_lost: String,
    /// What writer records (`primary`, `first`) answer once this member cannot vouch for
    /// its view: `servfail` or `keep`.
    #[serde(default)]
    pub writers_on_lost: String,
    /// How long this member may still name writers (seconds; 0: it refuses them now).
    #[serde(default)]
    pub writers_current_seconds: f64,
    #[serde(default)]
    pub leader: Option<String>,
    pub leading: bool,
    /// The leadership that wrote the served decision (the leader key's create revision).
    #[serde(default)]
    pub epoch: Option<i64>,
    /// The served decision's number and age.
    #[serde(default)]
    pub decision: Option<u64>,
    #[serde(default)]
    pub decision_age_seconds: Option<f64>,
    /// This member's configuration digest (pools and records) and whether the leader's
    /// differs.
    pub config_digest: String,
    pub config_differs_from_leader: bool,
    pub members: Vec<ClusterMember>,
    /// Per node: each live member's view and the majority's.
    pub nodes: Vec<ClusterNode>,
    /// Watches re-read after etcd compacted past them.
    pub resyncs: u64,
    /// Values in etcd this member could not read (each logged).
    pub unreadable: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterMember {
    pub name: String,
    pub version: String,
    pub config_digest: String,
    pub leader: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterNode {
    pub pool: String,
    pub node: String,
    /// Member name -> its view (`up`, `down`, `unknown`).
    pub views: std::collections::BTreeMap<String, Health>,
    /// What a majority of the configured members say; `tie` (short of one) keeps the last state.
    pub merged: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoneStatus {
    pub name: String,
    pub serial: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordStatus {
    pub name: String,
    pub pool: String,
    pub select: String,
    pub ttl: u32,
    /// `nodes`, `nodata`, `servfail` or `pending`.
    pub answer: String,
    /// The answered nodes and their addresses (`answer = "nodes"`).
    pub nodes: Vec<String>,
    pub addresses: Vec<String>,
    /// The answer as the logs show it: `db1(10.0.0.1)`, `nodata`.
    pub describe: String,
    /// When the answer last changed (absent while pending), and why.
    #[serde(default)]
    pub since: Option<String>,
    pub reason: String,
    /// The SOA serial of the record's zone.
    pub serial: u32,
    /// No node is reachable and the last answer is kept (up to `max_stale`).
    pub stale: bool,
    #[serde(default)]
    pub stale_since: Option<String>,
    /// The writable nodes of a current split brain.
    pub split_brain: Vec<String>,
    /// `replicas` records: the read-only nodes left out, and why (`replication is not
    /// running (stopped)`, `lags 3.2s, over max_lag`).
    #[serde(default)]
    pub left_out: std::collections::BTreeMap<String, String>,
    /// `by_site` records: what each site's clients get (its fallback followed), in the
    /// order of `[[site]]`.
    #[serde(default)]
    pub sites: Vec<SiteAnswer>,
}

/// A `by_site` record's answer for the clients of one site.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteAnswer {
    pub site: String,
    /// As the logs show an answer: `w1(10.1.0.21)`, `nodata`.
    pub describe: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolStatus {
    pub name: String,
    pub check: String,
    pub interval_ms: u64,
    /// Every node has completed one probe.
    pub ready: bool,
    /// Some record of the pool has no answer or a stale one: probing at `fast_interval`.
    pub degraded: bool,
    pub nodes: Vec<NodeStatus>,
    /// `[pool.promote]` with a mode other than `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionStatus>,
}

/// Where a pool's promotion stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionStatus {
    /// `manual` or `auto`.
    pub mode: String,
    /// `idle`, `running`, `refused` or `blocked`.
    pub state: String,
    /// The step running: `fence`, `catch_up`, `expire`, `promote`, `publish`, `repoint`.
    #[serde(default)]
    pub step: Option<String>,
    /// Why it is refused or blocked, or what keeps it idle.
    #[serde(default)]
    pub detail: String,
    /// No automatic promotion before this (`hadns ack` lifts it).
    #[serde(default)]
    pub blocked_until: Option<String>,
    /// The running or last promotion.
    #[serde(default)]
    pub last: Option<PromotionRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionRecord {
    pub started: String,
    pub old: String,
    pub candidate: String,
    pub switchover: bool,
    pub manual: bool,
    /// What the candidate had not received when the old primary was last seen.
    #[serde(default)]
    pub behind: Option<String>,
    /// `promoted`, or why it stopped; absent while it runs.
    #[serde(default)]
    pub outcome: Option<String>,
    pub steps: Vec<StepStatus>,
}

/// One step of a promotion, as it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStatus {
    pub step: String,
    pub node: String,
    pub ms: f64,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub port: Option<u16>,
    /// `up`, `down` or `unknown` (not probed yet).
    pub health: Health,
    /// When `health` last changed.
    #[serde(default)]
    pub since: Option<String>,
    /// `primary` (writable) or `replica`, for database checks.
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub timeline: Option<u64>,
    /// A read-only node's lag behind the primary its pool's replicas are compared with,
    /// as hadns measures it (docs/failover-semantics.md): time, and WAL bytes (PostgreSQL)
    /// or transactions (MySQL/MariaDB).
    #[serde(default)]
    pub lag_seconds: Option<f64>,
    #[serde(default)]
    pub lag_bytes: Option<u64>,
    #[serde(default)]
    pub lag_transactions: Option<u64>,
    /// How the node replicates, from its last probe (`replicating from 10.0.0.1:5432`).
    #[serde(default)]
    pub replication: Option<String>,
    /// The last fence of this node since hadns started.
    #[serde(default)]
    pub fence: Option<FenceStatus>,
    #[serde(default)]
    pub last_probe: Option<ProbeStatus>,
    /// Consecutive successful and failed probes.
    pub successes: u32,
    pub failures: u32,
    pub drained: bool,
    /// No probe result for longer than two intervals plus the timeout: the checker is
    /// stuck or hadns is overloaded, and `health` is old news.
    pub stale: bool,
    /// Left out because its cluster identity differs (PostgreSQL system identifier).
    #[serde(default)]
    pub excluded_cluster: Option<String>,
    /// Records whose answer holds this node.
    pub answered_by: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FenceStatus {
    /// `fencing`, `fenced` or `fence_failed`.
    pub result: String,
    /// What was done, or what failed and which privilege was missing.
    pub detail: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeStatus {
    pub ok: bool,
    pub detail: String,
    pub latency_ms: f64,
    pub at: String,
}
