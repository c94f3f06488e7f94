//! One query in, one response out (or, for a zone transfer over TCP, several): the path of
//! every TCP query and of every UDP query the fast path leaves. A signed query's TSIG is
//! checked first and its response signed ([`tsig`]). hadns checks the query's shape itself
//! ([`wire::inspect`]), answers zone transfers from the snapshot ([`xfr`]), lets hickory
//! answer the rest, then copies the DO bit and fits UDP responses into their size limit.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::rr::LowerName;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tracing::{info, warn};

use super::handler::Handler;
use super::wire::{self, Refusal};
use super::{tsig, xfr};
use crate::api::event::{EventKind, EventRecord, EventSink};
use crate::limits::Occasional;
use crate::metrics::{Anomaly, QueryCounters};

const TYPE_AXFR: u16 = 252;
const TYPE_IXFR: u16 = 251;
/// What a TSIG record takes in a UDP response (an HMAC-SHA512 with a long key name).
const TSIG_ROOM: usize = 160;

/// Refused transfers and signatures are logged at most this often (and always counted).
static REFUSED_LOG: Occasional = Occasional::new(Duration::from_secs(10));

/// Answers queries for the UDP fallback and for TCP.
pub struct Responder {
    handler: Handler,
    counters: Arc<QueryCounters>,
    /// The largest UDP response hadns sends (`dns.max_udp_size`).
    max_udp: u16,
    /// Where served zone transfers are told, for the event log and its timeline.
    events: EventSink,
}

impl Responder {
    pub fn new(handler: Handler, counters: Arc<QueryCounters>, max_udp: u16) -> Responder {
        Responder {
            handler,
            counters,
            max_udp,
            events: EventSink::default(),
        }
    }

    /// Served zone transfers are sent to `events` too.
    pub fn with_events(mut self, events: EventSink) -> Responder {
        self.events = events;
        self
    }

    pub fn counters(&self) -> &QueryCounters {
        &self.counters
    }

    /// The response to `query` from `src`, or `None` when nothing is to be sent (shorter
    /// than a header, or a response rather than a query). A zone transfer's first message
    /// only: TCP uses [`Responder::respond_all`].
    pub async fn respond(&self, query: &[u8], src: SocketAddr, tcp: bool) -> Option<Vec<u8>> {
        self.respond_all(query, src, tcp).await?.into_iter().next()
    }

    /// Every message of the response to `query`: one, except for a zone transfer over TCP.
    /// A signed query (TSIG) is checked first; its response is signed.
    pub async fn respond_all(
        &self,
        query: &[u8],
        src: SocketAddr,
        tcp: bool,
    ) -> Option<Vec<Vec<u8>>> {
        if query.len() < 12 || query[2] & 0x80 != 0 {
            self.counters.anomaly(Anomaly::Dropped);
            return None;
        }
        let Some(at) = wire::tsig_start(query) else {
            return Some(self.respond_unsigned(query, src, tcp, None).await);
        };
        let snapshot = self.handler.snapshot();
        let key = snapshot
            .transfer
            .as_ref()
            .and_then(|t| t.policy.key.as_ref());
        let signed = match tsig::verify(query, key) {
            Ok(signed) => signed,
            Err(failure) => {
                if let Some(held_back) = REFUSED_LOG.allow() {
                    warn!(peer = %src, %failure, held_back, "signed query refused: tsig");
                }
                let bare = wire::error_response(query, tsig::RCODE_NOTAUTH);
                self.counters.add(tcp, u16::from(tsig::RCODE_NOTAUTH), 1);
                return Some(vec![tsig::failure_response(bare, query, &failure, key)]);
            }
        };
        let stripped = wire::without_last_record(query, at);
        let mut messages = self
            .respond_unsigned(&stripped, src, tcp, Some(&signed))
            .await;
        if let Err(error) = signed.sign(&mut messages) {
            warn!(peer = %src, %error, "cannot sign a response");
            return Some(vec![wire::error_response(query, wire::RCODE_SERVFAIL)]);
        }
        Some(messages)
    }

    /// The response to a query without its TSIG (`signed` when it had a good one).
    async fn respond_unsigned(
        &self,
        query: &[u8],
        src: SocketAddr,
        tcp: bool,
        signed: Option<&tsig::Signed>,
    ) -> Vec<Vec<u8>> {
        let shape = match wire::inspect(query) {
            Ok(shape) => shape,
            Err(refusal) => {
                self.counters.anomaly(match refusal {
                    Refusal::Malformed | Refusal::FormErr(_) => Anomaly::Malformed,
                    Refusal::NotImp(_) | Refusal::BadVers(_) => Anomaly::Unsupported,
                    Refusal::Class(_) => Anomaly::OtherClass,
                });
                let response = wire::refusal_response(query, &refusal);
                self.counters.add(tcp, u16::from(response[3] & 0x0f), 1);
                return vec![response];
            }
        };
        let qtype =
            u16::from_be_bytes([query[shape.question_end - 4], query[shape.question_end - 3]]);
        if qtype == TYPE_AXFR || qtype == TYPE_IXFR {
            return self.transfer(query, &shape, src, tcp, signed);
        }
        let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
        let request = match Request::from_bytes(query.to_vec(), src, protocol) {
            Ok(request) => request,
            Err(_) => {
                self.counters.anomaly(Anomaly::Malformed);
                let response = wire::refusal_response(query, &Refusal::FormErr(shape));
                self.counters.add(tcp, u16::from(wire::RCODE_FORMERR), 1);
                return vec![response];
            }
        };
        let capture = Capture::default();
        self.handler
            .handle_request::<_, TokioTime>(&request, capture.clone())
            .await;
        let Some(mut response) = capture.0.lock().ok().and_then(|mut slot| slot.take()) else {
            return vec![wire::error_response(query, wire::RCODE_SERVFAIL)];
        };
        wire::copy_dnssec_ok(&mut response, shape.opt);
        wire::echo_ecs(query, &shape, &mut response);
        if tcp {
            return vec![response];
        }
        let mut limit = wire::udp_limit(shape.opt, self.max_udp);
        if signed.is_some() {
            // Room for the signature.
            limit = limit.saturating_sub(TSIG_ROOM);
        }
        if response.len() > limit {
            self.counters.anomaly(Anomaly::Truncated);
        }
        vec![wire::fit(query, &shape, response, limit)]
    }

    /// A zone transfer (AXFR or IXFR): refused unless `[transfer]` allows `src` (and, with
    /// a key, the query was signed with it).
    fn transfer(
        &self,
        query: &[u8],
        shape: &wire::Shape,
        src: SocketAddr,
        tcp: bool,
        signed: Option<&tsig::Signed>,
    ) -> Vec<Vec<u8>> {
        let snapshot = self.handler.snapshot();
        let kind_label = if query[shape.question_end - 3] == (TYPE_AXFR & 0xff) as u8 {
            "axfr"
        } else {
            "ixfr"
        };
        let refuse = |why: &str| {
            if let Some(held_back) = REFUSED_LOG.allow() {
                warn!(peer = %src, kind = kind_label, held_back, "zone transfer refused: {why}");
            }
            self.counters.transfer(kind_label, "refused");
            self.error(query, tcp, wire::RCODE_REFUSED)
        };
        let Some(transfer) = snapshot.transfer.as_ref() else {
            return refuse("no [transfer] in the configuration");
        };
        if !transfer.policy.allows(src.ip()) {
            return refuse("the address is not in transfer.allow");
        }
        if transfer.policy.key.is_some() && signed.is_none() {
            return refuse("not signed with transfer.key");
        }
        let Some((kind, zone_name, _)) = xfr::parse(query) else {
            self.counters.anomaly(Anomaly::Malformed);
            return self.error(query, tcp, wire::RCODE_FORMERR);
        };
        let Some(zone) = transfer.zone(&zone_name) else {
            self.counters.transfer(kind_label, "refused");
            return self.error(query, tcp, tsig::RCODE_NOTAUTH);
        };
        if let Some(why) = transfer.unserved(&zone_name) {
            if let Some(held_back) = REFUSED_LOG.allow() {
                warn!(peer = %src, zone = %zone_name, held_back, "zone transfer not served yet: {why} (SERVFAIL; the secondary keeps its copy)");
            }
            return self.error(query, tcp, wire::RCODE_SERVFAIL);
        }
        if kind == xfr::Kind::Axfr && !tcp {
            return refuse("AXFR is served over TCP only");
        }
        let udp_limit = (!tcp).then(|| {
            wire::udp_limit(shape.opt, self.max_udp).saturating_sub(if signed.is_some() {
                TSIG_ROOM
            } else {
                0
            })
        });
        match xfr::answer(zone, kind, query, shape.question_end, udp_limit) {
            Ok((messages, served)) => {
                info!(
                    peer = %src,
                    zone = %zone_name,
                    request = ?kind,
                    served = served.as_str(),
                    serial = snapshot.serial_of_zone(&zone_name),
                    messages = messages.len(),
                    bytes = messages.iter().map(Vec::len).sum::<usize>(),
                    key = signed.map(tsig::Signed::key_name),
                    protocol = if tcp { "tcp" } else { "udp" },
                    "zone transfer"
                );
                self.counters.transfer(kind_label, served.as_str());
                self.counters.add(tcp, 0, messages.len() as u64);
                self.events
                    .send_some(transfer_event(src, &zone_name, kind, served, &snapshot));
                messages
            }
            Err(error) => {
                warn!(peer = %src, zone = %zone_name, %error, "zone transfer failed");
                self.error(query, tcp, wire::RCODE_SERVFAIL)
            }
        }
    }

    /// An error response to `query` with `rcode`, counted.
    fn error(&self, query: &[u8], tcp: bool, rcode: u8) -> Vec<Vec<u8>> {
        self.counters.add(tcp, u16::from(rcode), 1);
        vec![wire::error_response(query, rcode)]
    }
}

/// The event log's record of a served transfer; none for an up-to-date client's SOA-only
/// answer, which changes nothing.
fn transfer_event(
    src: SocketAddr,
    zone: &LowerName,
    kind: xfr::Kind,
    served: xfr::Served,
    snapshot: &super::snapshot::Snapshot,
) -> Option<EventRecord> {
    if served == xfr::Served::Soa {
        return None;
    }
    let serial = snapshot.serial_of_zone(zone);
    let asked = match kind {
        xfr::Kind::Axfr => "AXFR".to_string(),
        xfr::Kind::Ixfr(from) => format!("IXFR from serial {from}"),
    };
    let text = match serial {
        Some(serial) => format!(
            "{src} transferred {zone} serial {serial} ({asked}: {})",
            served.as_str()
        ),
        None => format!("{src} transferred {zone} ({asked}: {})", served.as_str()),
    };
    let mut event = EventRecord::new(EventKind::Transfer, text);
    event.record = Some(zone.to_string());
    event.node = Some(src.to_string());
    event.serial = serial;
    Some(event)
}

/// A hickory ResponseHandler that keeps the encoded response, whole: [`wire::fit`] decides
/// what fits (hickory's own truncation can leave part of a record behind).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
            impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
            impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
            impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, hickory_server::net::NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(u16::MAX);
        let info = response
            .destructive_emit(&mut encoder)
            .map_err(|e| hickory_server::net::NetError::from(e.to_string()))?;
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(bytes);
        }
        Ok(info)
    }
}
