//! The TOML configuration: raw serde types, then `validate()` into a typed [`Config`].
//!
//! Every problem is collected and reported with its TOML path (`pool[0].interval: "200"
//! has no unit`), unknown keys included, so an operator fixes a file in one pass. Reading
//! is split from parsing: [`Config::from_toml`] needs no file.
//!
//! Unknown keys are found with `serde_ignored` rather than `deny_unknown_fields`, because
//! the latter stops at the first one and we want to report them all.

use crate::api::id::{NodeId, PoolId, RecordId};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod admin;
mod check;
mod cluster;
mod digest;
mod error;
mod fields;
mod network;
mod parse;
mod pool;
mod promote;
mod record;
mod resolver;
mod site;
#[cfg(test)]
mod tests;
mod transfer;
mod validate;
mod vip;

pub use cluster::{Cluster, OnLost, Tls};
pub use digest::digest;
pub use error::{ConfigError, Problem};
pub use fields::{normalize_name, parse_duration};
pub use network::Network;
pub use promote::{Promote, PromoteMode, Rejoin};
pub use resolver::Resolver;
pub use site::{Site, site_of};
pub use transfer::{Transfer, TsigAlgorithm, TsigKey, ZoneNotify};

// === typed configuration ===

/// A validated configuration. There is no `Default`: a `Config` only comes from `validate`.
#[derive(Debug, Clone)]
pub struct Config {
    pub dns: Dns,
    pub pools: Vec<Pool>,
    pub records: Vec<Record>,
    pub vips: Vec<Vip>,
    /// `[admin]`: the HTTP endpoint; absent = no endpoint.
    pub admin: Option<Admin>,
    /// `[cluster]`: agree with other members through etcd; absent = decide alone.
    pub cluster: Option<Cluster>,
    /// `[[site]]`: client networks, for records answered `by_site`.
    pub sites: Vec<Site>,
    /// `[transfer]`: zone transfers to secondaries and NOTIFY; absent = AXFR/IXFR refused.
    pub transfer: Option<Transfer>,
    /// `[resolver]`: names outside the zones forwarded for allowed clients; absent =
    /// REFUSED for everyone.
    pub resolver: Option<Resolver>,
}

/// `[admin]`: status, metrics, events and maintenance over HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
    /// Read from `token_file` when the config is loaded; without one, the changing
    /// endpoints (drain, undrain, reload) are disabled.
    pub token: Option<String>,
    /// How many recent events `/events` keeps.
    pub events: usize,
    /// Where drains are kept across restarts; without it they last until hadns stops.
    pub drain_file: Option<PathBuf>,
    /// Host names (lower case) the endpoint answers for, beside IP addresses and
    /// `localhost`: requests for any other `Host` are refused (DNS rebinding).
    pub hosts: Vec<String>,
}

/// `[[vip]]`: hold an address on this host while a record answers the local node.
#[derive(Debug, Clone, PartialEq)]
pub struct Vip {
    /// Index into `Config::records`.
    pub record: RecordId,
    /// Index of the local node in the record's pool.
    pub node: usize,
    pub address: IpAddr,
    pub prefix_len: u8,
    pub interface: String,
    pub announce_count: u32,
    pub announce_interval: Duration,
    /// Re-announce this often while held; zero = never.
    pub refresh: Duration,
    pub fence_command: Option<Vec<String>>,
    pub takeover_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Dns {
    /// UDP and TCP are served on every address.
    pub listen: Vec<SocketAddr>,
    /// Absolute, or relative to the working directory when the config came from a string.
    pub zones_dir: PathBuf,
    /// UDP sockets (and threads) per listen address, sharing the port with SO_REUSEPORT.
    pub udp_workers: usize,
    /// Under load (a receive returned several queries but not a full batch), a UDP worker
    /// waits this long before its next receive, so more queries arrive per system call.
    /// Zero: never wait.
    pub udp_coalesce: Duration,
    /// The largest UDP response (the client's EDNS size applies below it); larger answers
    /// are sent truncated (TC) so the client retries over TCP.
    pub max_udp_size: u16,
    /// Open TCP connections per listen address.
    pub tcp_connections: usize,
    /// Open TCP connections per client address.
    pub tcp_connections_per_client: usize,
    /// Response rate limiting of UDP answers.
    pub rate_limit: RateLimit,
    /// Where the SOA serials reserved per zone are kept, so that they never go back across
    /// restarts (`dns.serial_file`; by default `serials.toml` beside `admin.drain_file`).
    pub serial_file: Option<PathBuf>,
}

/// `dns.rate_limit*`: responses per second per client prefix over UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// 0: off (the default).
    pub rate: u32,
    /// Over the rate, every `slip`th response is sent truncated; 0: all are dropped.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Pool {
    pub name: String,
    pub check: Check,
    pub interval: Duration,
    /// The probe interval while a record of this pool has no answer (or a stale one).
    pub fast_interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// How the loser of a primary election is fenced; empty = not at all.
    pub fence: Fencing,
    /// `[pool.promote]`: whether and how hadns promotes a replica itself. Left out of the
    /// cluster digest while off, so that older members agree.
    #[serde(skip_serializing_if = "Promote::is_off")]
    pub promote: Promote,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Fencing {
    /// `fence = "read-only"`: make the node read-only and end its client sessions.
    pub read_only: bool,
    /// `fence_command`: run with the node in its environment, after `read_only`.
    pub command: Option<Vec<String>>,
    pub timeout: Duration,
}

impl Fencing {
    pub fn is_enabled(&self) -> bool {
        self.read_only || self.command.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Check {
    Tcp,
    Http(HttpCheck),
    Exec(ExecCheck),
    Postgres(DbCheck),
    Mysql(DbCheck),
    Dns(DnsCheck),
}

/// `[pool.dns]`: one question to the node, a DNS server.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DnsCheck {
    pub name: String,
    /// The question's type by name: `A`, `AAAA`, `SOA`, ...
    pub qtype: String,
    pub expect: DnsExpect,
}

/// What a `dns` check's answer must be.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum DnsExpect {
    /// Any answer with NOERROR or NXDOMAIN: the server works.
    Answer,
    /// NOERROR with this address in the answer section.
    Address(IpAddr),
    /// This response code (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`).
    Rcode(String),
}

impl Check {
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Tcp => "tcp",
            Check::Http(_) => "http",
            Check::Exec(_) => "exec",
            Check::Postgres(_) => "postgres",
            Check::Mysql(_) => "mysql",
            Check::Dns(_) => "dns",
        }
    }

    /// Whether the check tells a writable primary from a read-only replica.
    pub fn knows_roles(&self) -> bool {
        matches!(self, Check::Postgres(_) | Check::Mysql(_))
    }

    /// The port a node without one is checked on.
    pub fn default_port(&self) -> Option<u16> {
        match self {
            Check::Postgres(_) => Some(5432),
            Check::Mysql(_) => Some(3306),
            Check::Dns(_) => Some(53),
            _ => None,
        }
    }
}

/// `[pool.postgres]` and `[pool.mysql]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DbCheck {
    pub user: String,
    /// From `password`, or read from `password_file` when the config is loaded. Never in
    /// the cluster's configuration digest.
    #[serde(skip)]
    pub password: Option<String>,
    pub dbname: Option<String>,
    pub sslmode: SslMode,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HttpCheck {
    pub path: String,
    /// Accepted status codes.
    pub status: Vec<RangeInclusive<u16>>,
    /// The body must contain this substring, when set.
    pub body: Option<String>,
    /// Host header; the node's address when unset.
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExecCheck {
    /// Program and arguments; never run through a shell.
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Node {
    pub name: String,
    pub address: IpAddr,
    /// Required by tcp and http checks; optional for exec.
    pub port: Option<u16>,
    /// Higher wins for `select = "first"`.
    pub priority: u32,
    /// The node's `[[site]]` (an index into `Config::sites`).
    pub site: Option<usize>,
    /// `promote = false`: never a candidate for promotion (in the digest only then).
    #[serde(skip_serializing_if = "is_true")]
    pub promote: bool,
}

fn is_true(value: &bool) -> bool {
    *value
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    /// Where the file defines it (`record[3]`), for problems found later (against the
    /// zones): an earlier invalid record is left out of `Config::records`, so the position
    /// in that list is not the position in the file.
    #[serde(skip)]
    pub path: String,
    /// Lower case, fully qualified, with the trailing dot.
    pub name: String,
    /// Index into `Config::pools`.
    pub pool: PoolId,
    pub select: Select,
    pub ttl: u32,
    pub failback: bool,
    pub on_empty: OnEmpty,
    /// `select = "replicas"`: the most a replica may lag and still be answered.
    pub max_lag: Option<MaxLag>,
    /// When no node of the pool can be reached, keep the last answer this long.
    pub max_stale: Duration,
    /// Run when the answer changes, one at a time, killed after `on_change_timeout`.
    pub on_change: Option<Vec<String>>,
    pub on_change_timeout: Duration,
    /// Answer each client from the nodes of its site first (`[[site]]`).
    pub by_site: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum MaxLag {
    /// WAL bytes behind the primary (PostgreSQL).
    Bytes(u64),
    /// Transactions behind the primary's GTID position (MySQL/MariaDB).
    Transactions(u64),
    /// How long ago the primary was first seen past the replica's position.
    Time(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    /// The highest-priority healthy node.
    First,
    /// Every healthy node.
    Healthy,
    /// The one healthy writable node (database checks).
    Primary,
    /// Healthy read-only nodes within `max_lag` (database checks).
    Replicas,
}

impl Select {
    /// The record names one writer at a time (`primary`, and `first`: one active node, as
    /// in active/standby pairs): two members naming two of them is a split brain.
    pub fn names_a_writer(self) -> bool {
        matches!(self, Select::Primary | Select::First)
    }
}

impl Config {
    /// Per record, whether its answer depends on this member's view being current: a
    /// writer record in cluster mode, unless `writers_on_lost = "keep"` was chosen.
    pub fn guarded_records(&self) -> Vec<bool> {
        let guard = (self.cluster.as_ref()).is_some_and(|c| c.writers_on_lost == OnLost::Servfail);
        (self.records.iter())
            .map(|r| guard && r.select.names_a_writer())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnEmpty {
    Nodata,
    Servfail,
    All,
}

// === loading ===

impl Config {
    pub fn pool(&self, pool: PoolId) -> &Pool {
        &self.pools[pool.0]
    }

    pub fn node(&self, node: NodeId) -> &Node {
        &self.pools[node.pool.0].nodes[node.index]
    }

    /// A node's pool and node names, for logs, events and metric labels.
    pub fn names(&self, node: NodeId) -> (&str, &str) {
        let pool = &self.pools[node.pool.0];
        (&pool.name, &pool.nodes[node.index].name)
    }

    pub fn record(&self, record: RecordId) -> &Record {
        &self.records[record.0]
    }

    /// The pool a record answers from.
    pub fn record_pool(&self, record: RecordId) -> &Pool {
        &self.pools[self.records[record.0].pool.0]
    }
}

/// The directory relative paths in a config file are resolved against.
pub fn base_dir(config_file: &Path) -> &Path {
    match config_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
