//! DNS over TCP (RFC 7766): length-prefixed messages, answered one after another per
//! connection through the [`Responder`] (a zone transfer in as many messages as it takes).
//!
//! Connections are bounded: at most `connections` per listener and `per_client` per client
//! address; one over either limit is closed at once (and counted). A connection must deliver
//! each whole message, and take each response, within `idle`; otherwise it is closed. So
//! held or slow connections cannot use up hadns's descriptors, which its health checks need.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::respond::Responder;
use crate::limits::{Connections, Occasional};
use crate::metrics::{Anomaly, QueryCounters};

/// How many TCP connections hadns keeps, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// Open connections per listener.
    pub connections: usize,
    /// Open connections per client address.
    pub per_client: usize,
    /// The longest wait for a message (or a response to be taken) on a connection.
    pub idle: Duration,
}

/// Refused connections are logged at most this often (and always counted).
static REFUSED_LOG: Occasional = Occasional::new(Duration::from_secs(10));

/// After `accept` fails (out of descriptors, say), wait this long before the next one, so
/// the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves one listener until `shutdown`; open connections are closed then.
pub async fn serve(
    listener: TcpListener,
    responder: Arc<Responder>,
    counters: Arc<QueryCounters>,
    limits: TcpLimits,
    shutdown: CancellationToken,
) {
    let limits_open = Connections::new(limits.connections, limits.per_client);
    let mut connections = JoinSet::new();
    let mut accept_failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if accept_failing {
                        accept_failing = false;
                        warn!("tcp connections are accepted again");
                    }
                    let Some(permit) = limits_open.admit(peer.ip()) else {
                        counters.anomaly(Anomaly::TcpRefused);
                        if let Some(held_back) = REFUSED_LOG.allow() {
                            warn!(
                                %peer, open = limits_open.open(), held_back,
                                "tcp connection refused: over dns.tcp_connections or dns.tcp_connections_per_client"
                            );
                        }
                        continue;
                    };
                    let (responder, counters) = (responder.clone(), counters.clone());
                    connections.spawn(async move {
                        let _permit = permit;
                        connection(stream, peer, &responder, &counters, limits.idle).await;
                    });
                }
                Err(error) => {
                    if !accept_failing {
                        accept_failing = true;
                        warn!(%error, "cannot accept tcp connections");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            }
        }
    }
    connections.shutdown().await;
}

/// Answers the messages of one connection until the client closes it, sends something that
/// is not DNS, or takes longer than `idle`.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    responder: &Responder,
    counters: &QueryCounters,
    idle: Duration,
) {
    let mut query = Vec::new();
    loop {
        let read = tokio::time::timeout(idle, async {
            let len = stream.read_u16().await?;
            query.resize(usize::from(len), 0);
            stream.read_exact(&mut query).await
        })
        .await;
        match read {
            Ok(Ok(_)) => {}
            // Closed, reset, or a length with fewer bytes behind it.
            Ok(Err(_)) => return,
            Err(_) => {
                counters.anomaly(Anomaly::TcpTimeout);
                return;
            }
        }
        let Some(messages) = responder.respond_all(&query, peer, true).await else {
            return;
        };
        // Each message (several for a zone transfer) must be taken within `idle`.
        for response in messages {
            // A TCP message carries at most 64 KB; none of hadns's is larger (a zone
            // transfer's are about 16 KB), but a length must never wrap.
            let Ok(len) = u16::try_from(response.len()) else {
                warn!(%peer, bytes = response.len(), "a response too large for tcp; connection closed");
                return;
            };
            let mut framed = Vec::with_capacity(2 + response.len());
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&response);
            match tokio::time::timeout(idle, stream.write_all(&framed)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    counters.anomaly(Anomaly::TcpTimeout);
                    return;
                }
            }
        }
    }
}
