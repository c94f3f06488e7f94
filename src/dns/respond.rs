//! One query in, one response out: the path of every TCP query and of every UDP query the
//! fast path leaves. hadns checks the query's shape itself ([`wire::inspect`]), lets hickory
//! answer what passes, then copies the DO bit and fits UDP responses into their size limit.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;

use super::handler::Handler;
use super::wire::{self, Refusal};
use crate::metrics::{Anomaly, QueryCounters};

/// Answers queries for the UDP fallback and for TCP.
pub struct Responder {
    handler: Handler,
    counters: Arc<QueryCounters>,
    /// The largest UDP response hadns sends (`dns.max_udp_size`).
    max_udp: u16,
}

impl Responder {
    pub fn new(handler: Handler, counters: Arc<QueryCounters>, max_udp: u16) -> Responder {
        Responder {
            handler,
            counters,
            max_udp,
        }
    }

    pub fn counters(&self) -> &QueryCounters {
        &self.counters
    }

    /// The response to `query` from `src`, or `None` when nothing is to be sent (shorter
    /// than a header, or a response rather than a query).
    pub async fn respond(&self, query: &[u8], src: SocketAddr, tcp: bool) -> Option<Vec<u8>> {
        if query.len() < 12 || query[2] & 0x80 != 0 {
            self.counters.anomaly(Anomaly::Dropped);
            return None;
        }
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
                return Some(response);
            }
        };
        let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
        let request = match Request::from_bytes(query.to_vec(), src, protocol) {
            Ok(request) => request,
            Err(_) => {
                self.counters.anomaly(Anomaly::Malformed);
                let response = wire::refusal_response(query, &Refusal::FormErr(shape));
                self.counters.add(tcp, u16::from(wire::RCODE_FORMERR), 1);
                return Some(response);
            }
        };
        let capture = Capture::default();
        self.handler
            .handle_request::<_, TokioTime>(&request, capture.clone())
            .await;
        let mut response = capture.0.lock().ok()?.take()?;
        wire::copy_dnssec_ok(&mut response, shape.opt);
        if tcp {
            return Some(response);
        }
        let limit = wire::udp_limit(shape.opt, self.max_udp);
        if response.len() > limit {
            self.counters.anomaly(Anomaly::Truncated);
        }
        Some(wire::fit(query, &shape, response, limit))
    }
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
