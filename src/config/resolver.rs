//! `[resolver]`: hadns as the resolver clients list; names outside its zones forwarded to
//! recursive resolvers, for allowed clients (docs/resolver.md).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::check::{RawDns, validate_dns_check};
use super::fields::{duration, duration_or_zero, parse_size};
use super::network::Network;
use super::{DnsCheck, DnsExpect, Problem};

#[derive(Deserialize, Default)]
pub(super) struct RawResolver {
    forward: Option<Vec<String>>,
    allow: Option<Vec<String>>,
    cache: Option<String>,
    min_ttl: Option<toml::Value>,
    max_ttl: Option<toml::Value>,
    timeout: Option<toml::Value>,
    check_interval: Option<toml::Value>,
    check: Option<RawDns>,
}

/// `[resolver]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolver {
    /// The recursive resolvers asked, the fastest healthy one first (port 53 unless given).
    pub forward: Vec<SocketAddr>,
    /// Who may ask for names outside hadns's zones; everyone else is REFUSED for them.
    pub allow: Vec<Network>,
    /// The cache's bound in bytes (`cache = "64MB"`); 0: no cache.
    pub cache_bytes: u64,
    /// TTL clamps on what is cached and answered (0: none below; `max_ttl` 1 day by default).
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// How long one upstream may take to answer before the next is asked.
    pub timeout: Duration,
    /// How often each upstream is asked `check` (the `dns` check's question).
    pub check_interval: Duration,
    pub check: DnsCheck,
}

const DEFAULT_CACHE: u64 = 64 << 20;
const DEFAULT_MAX_TTL: Duration = Duration::from_secs(86_400);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// At most this many upstreams: each is asked in turn, so more only add to a failure's cost.
const MAX_FORWARD: usize = 8;

pub(super) fn validate_resolver(raw: RawResolver, problems: &mut Vec<Problem>) -> Resolver {
    let forward = super::transfer::targets(
        raw.forward.unwrap_or_default(),
        "resolver.forward",
        problems,
    );
    if forward.is_empty() {
        problems.push(Problem::new(
            "resolver.forward",
            "needs at least one recursive resolver (\"10.0.0.53\" or \"10.0.0.53:53\")",
        ));
    }
    if forward.len() > MAX_FORWARD {
        problems.push(Problem::new(
            "resolver.forward",
            format!("{} resolvers; at most {MAX_FORWARD}", forward.len()),
        ));
    }
    let mut allow = Vec::new();
    let raw_allow = raw.allow.unwrap_or_default();
    if raw_allow.is_empty() {
        problems.push(Problem::new(
            "resolver.allow",
            "needs the clients that may resolve other names (\"10.0.0.0/8\"): \
             hadns is never an open resolver",
        ));
    }
    for (i, entry) in raw_allow.iter().enumerate() {
        match entry.parse::<Network>() {
            Ok(network) => allow.push(network),
            Err(message) => problems.push(Problem::new(format!("resolver.allow[{i}]"), message)),
        }
    }
    let cache_bytes = match raw.cache.as_deref().map(parse_size) {
        None => DEFAULT_CACHE,
        Some(Ok(bytes)) => bytes,
        Some(Err(message)) => {
            problems.push(Problem::new("resolver.cache", message));
            DEFAULT_CACHE
        }
    };
    let min_ttl = duration_or_zero(raw.min_ttl, Duration::ZERO, "resolver.min_ttl", problems);
    let max_ttl = duration(raw.max_ttl, DEFAULT_MAX_TTL, "resolver.max_ttl", problems);
    if min_ttl > max_ttl {
        problems.push(Problem::new(
            "resolver.min_ttl",
            format!("{min_ttl:?} is above max_ttl ({max_ttl:?})"),
        ));
    }
    let check = match &raw.check {
        Some(check) => validate_dns_check(Some(check), "resolver.check", problems),
        None => DnsCheck {
            name: ".".into(),
            qtype: "NS".into(),
            expect: DnsExpect::Answer,
        },
    };
    Resolver {
        forward,
        allow,
        cache_bytes,
        min_ttl,
        max_ttl,
        timeout: duration(raw.timeout, DEFAULT_TIMEOUT, "resolver.timeout", problems),
        check_interval: duration(
            raw.check_interval,
            DEFAULT_CHECK_INTERVAL,
            "resolver.check_interval",
            problems,
        ),
        check,
    }
}

impl Resolver {
    /// Whether `client` may ask for names outside hadns's zones.
    pub fn allows(&self, client: std::net::IpAddr) -> bool {
        self.allow.iter().any(|n| n.contains(client))
    }
}
