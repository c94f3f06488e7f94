//! The DNS side: static zones, answer snapshots and the server. Only this module knows hickory.
//!
//! - `zones`: RFC 1035 master files -> [`ZoneSet`], and the checks of failover records
//!   against them.
//! - `snapshot`: [`SnapshotBuilder`] turns the zones and the current failover answers into
//!   an immutable [`Snapshot`].
//! - `handler`: the hickory `RequestHandler` that answers each query from one snapshot.

mod answers;
pub mod client;
mod fast;
#[cfg(test)]
mod fast_tests;
pub mod forward;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod handler;
mod journal;
pub mod notify;
#[cfg(test)]
mod prop_tests;
mod respond;
pub mod rrl;
mod serial;
mod snapshot;
mod tcp;
#[cfg(test)]
mod test_zones;
pub mod tsig;
mod udp;
pub mod wire;
mod xfr;
#[cfg(test)]
mod xfr_tests;
mod zones;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use client::query_addresses;

use crate::metrics::QueryCounters;
pub use answers::{Answer, Published};
pub use serial::{serial_after, serial_beyond, serial_max, serial_next};
pub use snapshot::{Snapshot, SnapshotBuilder};
pub use zones::ZoneSet;

/// A TCP connection that sends no whole query for this long is closed.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the DNS server answers, from `[dns]`.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub udp_coalesce: Duration,
    pub max_udp_size: u16,
    pub tcp_connections: usize,
    pub tcp_connections_per_client: usize,
    pub rate_limit: rrl::RrlSettings,
    /// Where served zone transfers are told (the event log).
    pub events: crate::api::event::EventSink,
}

/// The bound DNS sockets: per listen address, `udp_workers` UDP sockets sharing the port
/// (SO_REUSEPORT) and a TCP listener on the same port.
pub struct Sockets {
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: Vec<TcpListener>,
}

impl Sockets {
    /// Binds UDP and TCP on every address. With port 0 the kernel picks a UDP port and TCP
    /// binds the same one (retried a few times if TCP finds it taken).
    pub async fn bind(listen: &[SocketAddr], udp_workers: usize) -> io::Result<Sockets> {
        let mut sockets = Sockets {
            udp: Vec::new(),
            tcp: Vec::new(),
        };
        for &addr in listen {
            let (udp, tcp) = bind_address(addr, udp_workers.max(1)).await?;
            sockets.udp.extend(udp);
            sockets.tcp.push(tcp);
        }
        Ok(sockets)
    }

    /// The actual addresses, port 0 resolved (one per listen address).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }
}

/// A UDP socket on `addr`; `shared` sets SO_REUSEPORT (the workers' sockets).
fn udp_socket(addr: SocketAddr, shared: bool) -> io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        None,
    )?;
    socket.set_reuse_port(shared)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// `udp_workers` UDP sockets sharing one port, and a TCP listener on the same port.
///
/// SO_REUSEPORT lets a socket join any group of the same user on its port, so the port is
/// first claimed by a socket without it: a port another process already serves is an error
/// rather than a silent share of its queries (each side would lose what the kernel hands to
/// the other), and port 0 gets a port no UDP socket uses. TCP binds while the claim is held;
/// the claim then makes way for the workers' sockets.
async fn bind_address(
    addr: SocketAddr,
    udp_workers: usize,
) -> io::Result<(Vec<std::net::UdpSocket>, TcpListener)> {
    let attempts = if addr.port() == 0 { 16 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let claim = udp_socket(addr, false).map_err(|e| in_use(e, "udp", addr))?;
        let bound = claim.local_addr()?;
        let tcp = match TcpListener::bind(bound).await {
            Ok(tcp) => tcp,
            Err(e) => {
                last_error = Some(in_use(e, "tcp", bound));
                continue;
            }
        };
        drop(claim);
        let udp: io::Result<Vec<_>> = (0..udp_workers)
            .map(|_| udp_socket(bound, true).map_err(|e| in_use(e, "udp", bound)))
            .collect();
        match udp {
            Ok(udp) => return Ok((udp, tcp)),
            // Taken in the instant between the claim and the workers' sockets.
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other(format!("cannot bind {addr}"))))
}

/// The bind error for `protocol` on `addr`, saying so when another process has the port.
fn in_use(e: io::Error, protocol: &str, addr: SocketAddr) -> io::Error {
    let what = if e.kind() == io::ErrorKind::AddrInUse {
        format!("cannot bind {protocol} {addr}: the port is in use by another process")
    } else {
        format!("cannot bind {protocol} {addr}: {e}")
    };
    io::Error::new(e.kind(), what)
}

/// Serves DNS on `sockets` from whatever snapshot `snapshot` holds, until `shutdown`:
/// UDP through the fast path (hickory behind it), TCP through hickory. Returns an error if
/// any part of the server ends before `shutdown`, so hadns never serves half its sockets.
pub async fn serve(
    sockets: Sockets,
    snapshot: Arc<ArcSwap<Snapshot>>,
    counters: Arc<QueryCounters>,
    settings: ServeSettings,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handler = handler::Handler::new(snapshot.clone(), counters.clone());
    let responder = Arc::new(
        respond::Responder::new(handler, counters.clone(), settings.max_udp_size)
            .with_events(settings.events.clone()),
    );
    let mut parts = JoinSet::new();
    let udp_settings = udp::UdpSettings {
        coalesce: settings.udp_coalesce,
        max_udp: settings.max_udp_size,
        limiter: rrl::Limiter::new(settings.rate_limit).map(Arc::new),
    };
    parts.spawn(udp::serve(
        sockets.udp,
        snapshot,
        responder.clone(),
        counters.clone(),
        udp_settings,
        stop.clone(),
    ));
    let limits = tcp::TcpLimits {
        connections: settings.tcp_connections,
        per_client: settings.tcp_connections_per_client,
        idle: TCP_IDLE_TIMEOUT,
    };
    for listener in sockets.tcp {
        let serving = tcp::serve(
            listener,
            responder.clone(),
            counters.clone(),
            limits,
            shutdown.clone(),
        );
        parts.spawn(async move {
            serving.await;
            Ok(())
        });
    }
    let early = tokio::select! {
        biased;
        _ = shutdown.cancelled() => None,
        Some(ended) = parts.join_next() => Some(ended),
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut result = match early {
        None => Ok(()),
        // A listener that saw the shutdown first.
        Some(Ok(Ok(()))) if shutdown.is_cancelled() => Ok(()),
        Some(Ok(Ok(()))) => Err(io::Error::other("a dns listener stopped unexpectedly")),
        Some(Ok(Err(e))) => Err(io::Error::other(format!("dns server: {e}"))),
        Some(Err(e)) => Err(io::Error::other(format!("dns server task: {e}"))),
    };
    shutdown.cancel();
    while let Some(ended) = parts.join_next().await {
        let ended = ended
            .map_err(io::Error::other)
            .and_then(|r| r.map_err(|e| io::Error::other(format!("dns server: {e}"))));
        if let (Ok(()), Err(e)) = (&result, ended) {
            result = Err(e);
        }
    }
    result
}
