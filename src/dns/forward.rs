//! `[resolver]`: names outside hadns's zones, asked by an allowed client with RD, are
//! answered from a cache or forwarded to recursive resolvers (docs/resolver.md).
//!
//! hickory does the DNS: each upstream is a `NameServerPool` of one server (a fresh random
//! source port and ID per query over UDP, the answer's source, ID and question checked,
//! TCP when truncated), and the cache is hickory's `ResponseCache` (per question, TTLs
//! honoured and clamped, negative answers by their SOA). What is here is the choice of
//! upstream: the healthy ones, fastest first (smoothed round trip of checks and queries),
//! each given `timeout` once; an upstream that did not answer in time is down until its
//! next check says otherwise, so it costs that timeout once (the last one up is taken down
//! only by its check). None up: SERVFAIL at once.
//! Only records about the asked name are kept (`bailiwick`), and DNSSEC records go to
//! clients that set the DO bit (upstreams are always asked with it). hadns's own zones
//! never reach this module: they are answered from the snapshot.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{DnsRequest, DnsRequestOptions, Query, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::BinEncodable;
use hickory_resolver::config::{NameServerConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::FirstAnswer;
use hickory_resolver::net::{DnsError, DnsHandle, NetError};
use hickory_resolver::{NameServerPool, PoolContext, ResponseCache, TlsConfig, TtlConfig};

use crate::config;

pub mod bailiwick;
mod wire;

pub use wire::WireAnswer;

/// What one cache entry is counted as, against `cache`'s byte bound: a typical answer
/// (its records, names and the cache's own bookkeeping) measured in memory.
pub const ENTRY_BYTES: u64 = 1024;

/// The forwarder of one configuration; kept across publications (its cache and the
/// upstreams' health with it).
pub struct Forwarder {
    pub config: config::Resolver,
    pub upstreams: Vec<Upstream>,
    cache: Option<ResponseCache>,
    /// The cache's answers in wire form for the UDP fast path, per lower-case wire name,
    /// type and DO bit (`prepared_key`), as many as the cache holds.
    prepared: Option<moka::sync::Cache<Vec<u8>, Arc<WireAnswer>>>,
    pub counters: Counters,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("forward", &self.config.forward)
            .finish_non_exhaustive()
    }
}

/// The fast path's key of a question: its lower-case wire name, type and DO bit.
pub fn prepared_key(name_and_type: &[u8], dnssec_ok: bool) -> Vec<u8> {
    let mut key = Vec::with_capacity(name_and_type.len() + 1);
    key.extend_from_slice(name_and_type);
    key.push(u8::from(dnssec_ok));
    key
}

/// One recursive resolver and what hadns knows of it.
pub struct Upstream {
    pub address: SocketAddr,
    pool: NameServerPool<TokioRuntimeProvider>,
    up: AtomicBool,
    /// Smoothed round trip in microseconds (checks and answered queries).
    srtt_us: AtomicU64,
    pub forwarded: AtomicU64,
    pub failed: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

#[derive(Default)]
pub struct Counters {
    /// Queries for other names from allowed clients.
    pub queries: AtomicU64,
    pub cache_hits: AtomicU64,
    /// Answered by an upstream (cache misses that got an answer).
    pub forwarded: AtomicU64,
    /// Answered SERVFAIL: no upstream up, or none answered.
    pub servfail: AtomicU64,
}

/// The answer to a forwarded question.
#[derive(Debug)]
pub struct Resolution {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
}

impl Resolution {
    fn servfail() -> Resolution {
        Resolution {
            rcode: ResponseCode::ServFail,
            answers: Vec::new(),
            authorities: Vec::new(),
        }
    }

    /// From a cached or fresh result: a message, or a negative answer.
    fn from_result(result: Result<hickory_proto::op::Message, NetError>) -> Resolution {
        match result {
            Ok(message) => Resolution {
                rcode: message.metadata.response_code,
                answers: message.answers,
                authorities: message.authorities,
            },
            Err(NetError::Dns(DnsError::NoRecordsFound(no))) => Resolution {
                rcode: no.response_code,
                answers: Vec::new(),
                authorities: no.authorities.map(|a| a.to_vec()).unwrap_or_default(),
            },
            Err(_) => Resolution::servfail(),
        }
    }

    /// Leaves out the DNSSEC records a client without the DO bit did not ask for.
    fn for_client(mut self, dnssec_ok: bool, asked: hickory_proto::rr::RecordType) -> Self {
        if !dnssec_ok {
            self.answers.retain(|r| !bailiwick::is_dnssec(r, asked));
            self.authorities.retain(|r| !bailiwick::is_dnssec(r, asked));
        }
        self
    }
}

impl Upstream {
    fn new(address: SocketAddr, options: &ResolverOpts) -> Upstream {
        let mut server = NameServerConfig::udp_and_tcp(address.ip());
        for connection in &mut server.connections {
            connection.port = address.port();
        }
        // Without a TLS feature there is nothing in it that can fail.
        let tls = TlsConfig::new().expect("an empty TLS configuration");
        let context = Arc::new(PoolContext::new(options.clone(), tls));
        Upstream {
            address,
            pool: NameServerPool::from_config([server], context, TokioRuntimeProvider::default()),
            up: AtomicBool::new(true),
            srtt_us: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_error: std::sync::Mutex::new(None),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The smoothed round trip (zero before the first answer).
    pub fn srtt(&self) -> Duration {
        Duration::from_micros(self.srtt_us.load(Ordering::Relaxed))
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// An answer (a check's or a query's) after `rtt`: up, and the round trip smoothed
    /// (7/8 of the old, 1/8 of the new). Returns whether it was down.
    pub fn answered(&self, rtt: Duration) -> bool {
        let rtt = rtt.as_micros().min(u128::from(u32::MAX)) as u64;
        let old = self.srtt_us.load(Ordering::Relaxed);
        let new = if old == 0 { rtt } else { (old * 7 + rtt) / 8 };
        self.srtt_us.store(new.max(1), Ordering::Relaxed);
        !self.up.swap(true, Ordering::Relaxed)
    }

    /// No answer (a check's or a query's): with `down`, down until the next check
    /// answers. Returns whether it was up and is now down.
    pub fn failed(&self, why: String, down: bool) -> bool {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(why);
        }
        down && self.up.swap(false, Ordering::Relaxed)
    }
}

impl Forwarder {
    pub fn new(config: &config::Resolver) -> Forwarder {
        let mut options = ResolverOpts::default();
        options.timeout = config.timeout;
        options.attempts = 0;
        options.num_concurrent_reqs = 1;
        options.edns0 = true;
        options.positive_min_ttl = Some(config.min_ttl);
        options.negative_min_ttl = Some(config.min_ttl);
        options.positive_max_ttl = Some(config.max_ttl);
        options.negative_max_ttl = Some(config.max_ttl);
        let upstreams = (config.forward.iter())
            .map(|&address| Upstream::new(address, &options))
            .collect();
        let entries = (config.cache_bytes / ENTRY_BYTES).max(1);
        let cache = (config.cache_bytes > 0)
            .then(|| ResponseCache::new(entries, TtlConfig::from_opts(&options)));
        let prepared = (config.cache_bytes > 0).then(|| moka::sync::Cache::new(entries));
        Forwarder {
            config: config.clone(),
            upstreams,
            cache,
            prepared,
            counters: Counters::default(),
        }
    }

    /// Keeps `resolution` of `query` in wire form for the fast path.
    pub fn prepare(&self, query: &Query, dnssec_ok: bool, resolution: &Resolution) {
        let Some(prepared) = &self.prepared else {
            return;
        };
        let mut key = query.name().to_lowercase().to_bytes().unwrap_or_default();
        key.extend_from_slice(&u16::from(query.query_type()).to_be_bytes());
        if let Some(wire) = WireAnswer::encode(query, resolution, Instant::now()) {
            prepared.insert(prepared_key(&key, dnssec_ok), Arc::new(wire));
        }
    }

    /// A cached answer for the fast path (`prepared_key`): its rcode, counts and records
    /// with their TTLs counted down; counted as a cache hit.
    pub fn prepared(&self, key: &[u8]) -> Option<(u8, u16, u16, Vec<u8>)> {
        let wire = self.prepared.as_ref()?.get(key)?;
        let body = wire.body_at(Instant::now())?;
        self.counters.queries.fetch_add(1, Ordering::Relaxed);
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some((wire.rcode, wire.answers, wire.authorities, body))
    }

    /// The upstreams to ask, in order: those up, fastest first.
    fn order(&self) -> Vec<&Upstream> {
        let mut up: Vec<&Upstream> = self.upstreams.iter().filter(|u| u.is_up()).collect();
        up.sort_by_key(|u| u.srtt());
        up
    }

    /// Answers `query` from the cache or an upstream.
    pub async fn resolve(&self, query: &Query, dnssec_ok: bool) -> Resolution {
        self.counters.queries.fetch_add(1, Ordering::Relaxed);
        let asked = query.query_type();
        if let Some(hit) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(query, Instant::now()))
        {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Resolution::from_result(hit).for_client(dnssec_ok, asked);
        }
        for upstream in self.order() {
            if let Some(result) = self.ask(upstream, query).await {
                self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                if let Some(cache) = &self.cache {
                    cache.insert(query.clone(), result.clone(), Instant::now());
                }
                return Resolution::from_result(result).for_client(dnssec_ok, asked);
            }
        }
        self.counters.servfail.fetch_add(1, Ordering::Relaxed);
        Resolution::servfail()
    }

    /// One upstream's answer (positive or negative, kept to the asked name's bailiwick),
    /// or None: it failed (timed out, unreachable: marked down) or could not answer
    /// (SERVFAIL, REFUSED: the next is asked, it stays up).
    async fn ask(
        &self,
        upstream: &Upstream,
        query: &Query,
    ) -> Option<Result<hickory_proto::op::Message, NetError>> {
        let mut options = DnsRequestOptions::default();
        options.use_edns = true;
        options.edns_payload_len = 1232;
        options.edns_set_dnssec_ok = true;
        options.recursion_desired = true;
        let request = DnsRequest::from_query(query.clone(), options);
        let started = Instant::now();
        let sent = upstream.pool.send(request).first_answer();
        let result = match tokio::time::timeout(self.config.timeout, sent).await {
            Ok(result) => result,
            Err(_) => Err(NetError::Timeout),
        };
        upstream.forwarded.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(response) => {
                upstream.answered(started.elapsed());
                let mut message = response.into_message();
                message.answers = bailiwick::answers(query.name(), message.answers);
                let last = bailiwick::chain(query.name(), &message.answers).pop();
                let last = last.unwrap_or_else(|| query.name().clone());
                message.authorities = bailiwick::authorities(&last, message.authorities);
                message.additionals.clear();
                Some(Ok(message))
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(mut no)))
                if matches!(
                    no.response_code,
                    ResponseCode::NXDomain | ResponseCode::NoError
                ) =>
            {
                upstream.answered(started.elapsed());
                let kept = bailiwick::authorities(
                    query.name(),
                    no.authorities
                        .take()
                        .map(|a| a.to_vec())
                        .unwrap_or_default(),
                );
                no.authorities = (!kept.is_empty()).then(|| kept.into());
                no.ns = None;
                Some(Err(NetError::Dns(DnsError::NoRecordsFound(no))))
            }
            Err(NetError::Dns(error)) => {
                if let Ok(mut last) = upstream.last_error.lock() {
                    *last = Some(error.to_string());
                }
                None
            }
            Err(error) => {
                let why = match error {
                    NetError::Timeout => format!("no answer within {:?}", self.config.timeout),
                    other => other.to_string(),
                };
                // The last one up is taken down only by its check: one lost packet must
                // not turn every lookup into SERVFAIL until then.
                let others =
                    (self.upstreams.iter()).any(|u| !std::ptr::eq(u, upstream) && u.is_up());
                if upstream.failed(why.clone(), others) {
                    tracing::warn!(upstream = %upstream.address, %why, "resolver upstream down");
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, RecordType};

    use super::*;

    #[test]
    fn dnssec_records_go_only_to_clients_that_set_do_or_ask_for_them() {
        let name = Name::from_str("www.corp.example.").unwrap();
        let a = Record::from_rdata(name.clone(), 60, RData::A(A([10, 0, 0, 5].into())));
        let mut sig = a.clone();
        sig.data = RData::Update0(RecordType::RRSIG);
        let resolution = || Resolution {
            rcode: ResponseCode::NoError,
            answers: vec![a.clone(), sig.clone()],
            authorities: Vec::new(),
        };
        assert_eq!(
            resolution().for_client(true, RecordType::A).answers.len(),
            2
        );
        let plain = resolution().for_client(false, RecordType::A);
        assert_eq!(plain.answers, vec![a.clone()]);
        // Asked for by type: kept.
        let asked = resolution().for_client(false, RecordType::RRSIG);
        assert_eq!(asked.answers.len(), 2);
    }
}
