//! DNS over TCP (RFC 7766): length-prefixed messages, answered one after another per
//! connection through the [`Responder`].
//!
//! Connections are bounded: at most `connections` per listener and `per_client` per client
//! address; one over either limit is closed at once (and counted). A connection must deliver
//! each whole message, and take each response, within `idle`; otherwise it is closed. So
//! held or slow connections cannot use up hadns's descriptors, which its health checks need.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::respond::Responder;
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

/// After `accept` fails (out of descriptors, say), wait this long before the next one, so
/// the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Open connections per client address, shared by one listener's connections.
#[derive(Default)]
struct Clients(Mutex<HashMap<IpAddr, usize>>);

/// One client's connection slot; dropping it gives the slot back.
struct Slot {
    clients: Arc<Clients>,
    ip: IpAddr,
}

impl Clients {
    fn acquire(self: &Arc<Self>, ip: IpAddr, per_client: usize) -> Option<Slot> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let open = map.entry(ip).or_insert(0);
        if *open >= per_client {
            return None;
        }
        *open += 1;
        Some(Slot {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = map.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serves one listener until `shutdown`; open connections are closed then.
pub async fn serve(
    listener: TcpListener,
    responder: Arc<Responder>,
    counters: Arc<QueryCounters>,
    limits: TcpLimits,
    shutdown: CancellationToken,
) {
    let clients = Arc::new(Clients::default());
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
                    let slot = (connections.len() < limits.connections)
                        .then(|| clients.acquire(peer.ip(), limits.per_client))
                        .flatten();
                    let Some(slot) = slot else {
                        counters.anomaly(Anomaly::TcpRefused);
                        continue;
                    };
                    let (responder, counters) = (responder.clone(), counters.clone());
                    connections.spawn(async move {
                        let _slot = slot;
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
        let Some(response) = responder.respond(&query, peer, true).await else {
            return;
        };
        let mut framed = Vec::with_capacity(2 + response.len());
        framed.extend_from_slice(&(response.len() as u16).to_be_bytes());
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
