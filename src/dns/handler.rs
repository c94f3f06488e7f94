//! The hickory request handler: one snapshot per query.
//!
//! Failover names (and the empty non-terminals above them) are answered here from the
//! snapshot's failover table; everything else goes to the snapshot's hickory `Catalog`,
//! which holds the static zones. Both come from the same `Arc<Snapshot>`, loaded once.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::warn;

use super::answers::{Answer, FailoverEntry};
use super::forward::Forwarder;
use super::snapshot::Snapshot;
use crate::metrics::QueryCounters;

pub struct Handler {
    snapshot: Arc<ArcSwap<Snapshot>>,
    counters: Arc<QueryCounters>,
}

impl Handler {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>, counters: Arc<QueryCounters>) -> Self {
        Handler { snapshot, counters }
    }

    /// The snapshot a query that is not answered by hickory reads (zone transfers).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let snapshot = self.snapshot.load_full();
        let info = match failover_entry(&snapshot, request) {
            Some(entry) => answer_failover(&snapshot, entry, request, response_handle).await,
            None => match forwarder(&snapshot, request) {
                Some(forwarder) => answer_forwarded(forwarder, request, response_handle).await,
                None => {
                    snapshot
                        .catalog
                        .handle_request::<R, T>(request, response_handle)
                        .await
                }
            },
        };
        let tcp = request.protocol() == hickory_server::net::xfer::Protocol::Tcp;
        self.counters.add(tcp, u16::from(info.response_code), 1);
        info
    }
}

/// The failover entry this request asks about, if it is a plain query we answer ourselves.
/// Anything unusual (several questions, another class, EDNS version > 0, updates) goes to
/// the catalog, which knows how to refuse it.
fn failover_entry<'s>(snapshot: &'s Snapshot, request: &Request) -> Option<&'s FailoverEntry> {
    let metadata = &request.metadata;
    if metadata.message_type != MessageType::Query || metadata.op_code != OpCode::Query {
        return None;
    }
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return None;
    }
    let [query] = request.queries.queries() else {
        return None;
    };
    if query.query_class() != DNSClass::IN || query.query_type() == RecordType::AXFR {
        return None;
    }
    snapshot.failover.get(query.name())
}

/// The forwarder, when `[resolver]` answers this request: a plain recursive query (RD) of
/// an allowed client for a name outside every zone. Anything else outside the zones goes
/// to the catalog, which refuses it.
fn forwarder<'s>(snapshot: &'s Snapshot, request: &Request) -> Option<&'s Forwarder> {
    let forwarder = snapshot.resolver.as_deref()?;
    let metadata = &request.metadata;
    if metadata.message_type != MessageType::Query
        || metadata.op_code != OpCode::Query
        || !metadata.recursion_desired
        || request.edns.as_ref().is_some_and(|e| e.version() > 0)
        || !forwarder.config.allows(request.src().ip())
    {
        return None;
    }
    let [query] = request.queries.queries() else {
        return None;
    };
    let qtype = query.query_type();
    if query.query_class() != DNSClass::IN
        || matches!(qtype, RecordType::AXFR | RecordType::IXFR)
        || snapshot.catalog.find(query.name()).is_some()
    {
        return None;
    }
    Some(forwarder)
}

/// A forwarded question's answer: from the cache or an upstream, RA set, never
/// authoritative.
async fn answer_forwarded<R: ResponseHandler>(
    forwarder: &Forwarder,
    request: &Request,
    mut response_handle: R,
) -> ResponseInfo {
    let query = request.queries.queries()[0].original().clone();
    let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    let resolution = forwarder.resolve(&query, dnssec_ok).await;
    forwarder.prepare(&query, dnssec_ok, &resolution);
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.recursion_available = true;
    metadata.response_code = resolution.rcode;
    let edns = request.edns.as_ref().map(|req| {
        let mut edns = Edns::new();
        edns.set_max_payload(req.max_payload().max(512));
        edns.set_version(0);
        edns.set_dnssec_ok(dnssec_ok);
        edns
    });
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(edns) = &edns {
        builder.edns(edns);
    }
    let response = builder.build(
        metadata,
        resolution.answers.iter(),
        resolution.authorities.iter(),
        None,
        None,
    );
    sent(response_handle.send_response(response).await, request)
}

/// What was sent, or a SERVFAIL header when the response could not be.
fn sent(result: Result<ResponseInfo, impl std::fmt::Display>, request: &Request) -> ResponseInfo {
    match result {
        Ok(info) => info,
        Err(error) => {
            warn!(%error, "cannot send a response");
            let mut header = Metadata::response_from_request(&request.metadata);
            header.response_code = ResponseCode::ServFail;
            ResponseInfo::from(hickory_proto::op::Header {
                metadata: header,
                counts: Default::default(),
            })
        }
    }
}

async fn answer_failover<R: ResponseHandler>(
    snapshot: &Snapshot,
    entry: &FailoverEntry,
    request: &Request,
    mut response_handle: R,
) -> ResponseInfo {
    // request_info() succeeds: failover_entry checked there is exactly one query.
    let query = request.queries.queries()[0].original();
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.authoritative = true;
    let mut answers = Vec::new();
    let ecs = request
        .edns
        .as_ref()
        .and_then(|e| match e.options().get(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(subnet)) => Some(*subnet),
            _ => None,
        });
    // The client's site: from its subnet (RFC 7871) when the resolver sent one, else from
    // the source address; only a by_site answer asks.
    let client = ecs.as_ref().map_or(request.src().ip(), |s| s.addr());
    let site = entry
        .answer
        .by_site()
        .then(|| crate::config::site_of(&snapshot.sites, client))
        .flatten();
    // A guarded name past its deadline (cluster mode) is refused, as on the fast path.
    let answer = if entry.current() {
        entry.answer.for_site(site.map(|(site, _)| site))
    } else {
        &Answer::Servfail
    };
    match answer {
        Answer::Pending | Answer::Servfail => metadata.response_code = ResponseCode::ServFail,
        Answer::Nodata => {}
        Answer::Nodes(addresses) => {
            let qtype = query.query_type();
            for address in addresses {
                let rdata = match (address, qtype) {
                    (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(*v4)),
                    (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(*v6)),
                    _ => continue,
                };
                answers.push(Record::from_rdata(query.name().clone(), entry.ttl, rdata));
            }
        }
    }
    let soa = if answers.is_empty() && metadata.response_code == ResponseCode::NoError {
        Some(&snapshot.negative_soa[entry.zone])
    } else {
        None
    };
    let response_edns = response_edns(request, ecs.as_ref(), entry.answer.by_site(), site);
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(edns) = &response_edns {
        builder.edns(edns);
    }
    let response = builder.build(metadata, answers.iter(), None, soa, None);
    sent(response_handle.send_response(response).await, request)
}

/// The response's OPT record when the query had one: version 0, the query's payload (at
/// least 512), and its client subnet back with the scope the answer holds for.
fn response_edns(
    request: &Request,
    ecs: Option<&ClientSubnet>,
    by_site: bool,
    site: Option<(usize, u8)>,
) -> Option<Edns> {
    request.edns.as_ref().map(|req| {
        let mut edns = Edns::new();
        edns.set_max_payload(req.max_payload().max(512));
        edns.set_version(0);
        if let Some(subnet) = ecs {
            // The scope: the matched site network's prefix for an answer by site (for a
            // client of no site, as precise as the query was); 0 for one that is the same
            // for everyone.
            let scope = match (by_site, site) {
                (true, Some((_, prefix))) => prefix,
                (true, None) => subnet.source_prefix(),
                (false, _) => 0,
            };
            edns.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(
                    subnet.addr(),
                    subnet.source_prefix(),
                    scope,
                )));
        }
        edns
    })
}
