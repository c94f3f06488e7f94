//! UDP serving: worker threads on SO_REUSEPORT sockets, receiving and sending in batches
//! (recvmmsg/sendmmsg). Each batch is answered from one snapshot through the fast path;
//! what it does not cover goes to hickory on the async runtime, and its answer is sent
//! from the same socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use super::fast::Verdict;
use super::respond::Responder;
use super::rrl::{Decision, Limiter};
use super::snapshot::Snapshot;
use super::wire;
use crate::limits::Occasional;
use crate::metrics::{Anomaly, QueryCounters, RCODE_SLOTS};

/// Datagrams received or sent per system call.
const BATCH: usize = 32;
/// Largest query accepted; anything longer is truncated by the kernel and dropped.
const MAX_QUERY: usize = 4096;
/// Workers wake this often to notice shutdown.
const WAKE: Duration = Duration::from_millis(100);
/// Queries waiting for hickory; beyond this they are dropped (the client retries).
const FALLBACK_QUEUE: usize = 4096;
/// A receive of at least this many datagrams (but not a full batch) means load: the worker
/// then waits `udp_coalesce` before the next receive. Fewer, and it never waits, so a
/// lightly loaded server answers without any added delay.
const COALESCE_FROM: usize = 4;

/// Worker panics are logged at most this often (and always counted).
static PANIC_LOG: Occasional = Occasional::new(Duration::from_secs(10));

/// A query the fast path left to hickory.
struct Fallback {
    query: Vec<u8>,
    src: SocketAddr,
    socket: Arc<UdpSocket>,
}

/// How the UDP workers answer.
#[derive(Clone)]
pub struct UdpSettings {
    pub coalesce: Duration,
    /// The largest response sent (`dns.max_udp_size`).
    pub max_udp: u16,
    /// Response rate limiting; `None`: off.
    pub limiter: Option<Arc<Limiter>>,
}

/// Serves UDP on `sockets` until `stop` is set; returns when every worker has stopped.
pub async fn serve(
    sockets: Vec<UdpSocket>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    responder: Arc<Responder>,
    counters: Arc<QueryCounters>,
    settings: UdpSettings,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Fallback>(FALLBACK_QUEUE);
    let mut workers = Vec::new();
    for socket in sockets {
        socket.set_read_timeout(Some(WAKE))?;
        let worker = Worker {
            socket: Arc::new(socket),
            snapshot: snapshot.clone(),
            counters: counters.clone(),
            settings: settings.clone(),
            stop: stop.clone(),
            fallback: tx.clone(),
        };
        workers.push(
            std::thread::Builder::new()
                .name("hadns-udp".into())
                .spawn(move || worker.run())?,
        );
    }
    drop(tx);
    let fallbacks = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        while let Some(f) = rx.recv().await {
            let (responder, limiter) = (responder.clone(), settings.limiter.clone());
            tasks.spawn(async move {
                let Some(response) = responder.respond(&f.query, f.src, false).await else {
                    return;
                };
                let response = match limiter.as_deref().map(|l| l.decide(f.src.ip())) {
                    None | Some(Decision::Send) => response,
                    Some(Decision::Slip) => {
                        responder.counters().anomaly(Anomaly::RateLimitSlipped);
                        match wire::slipped(&f.query) {
                            Some(slipped) => slipped,
                            None => return,
                        }
                    }
                    Some(Decision::Drop) => {
                        responder.counters().anomaly(Anomaly::RateLimitDropped);
                        return;
                    }
                };
                if let Err(error) = f.socket.send_to(&response, f.src) {
                    debug!(%error, src = %f.src, "cannot send a response");
                }
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    });
    let joined = tokio::task::spawn_blocking(move || {
        workers.into_iter().map(|w| w.join()).collect::<Vec<_>>()
    })
    .await
    .map_err(io::Error::other)?;
    for result in joined {
        result.map_err(|_| io::Error::other("a UDP worker panicked"))??;
    }
    fallbacks.await.map_err(io::Error::other)
}

/// One UDP worker thread and what it needs.
struct Worker {
    socket: Arc<UdpSocket>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    counters: Arc<QueryCounters>,
    settings: UdpSettings,
    stop: Arc<AtomicBool>,
    fallback: mpsc::Sender<Fallback>,
}

impl Worker {
    /// Serves until `stop`. A panic while answering (a bug: no input should cause one)
    /// loses that batch, is logged and counted, and the worker goes on with fresh buffers:
    /// no packet can stop a worker.
    fn run(self) -> io::Result<()> {
        if !self.settings.coalesce.is_zero() {
            // The default timer slack (50µs) would stretch every wait; 1µs keeps it exact.
            // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only this thread.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
        }
        loop {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.serve())) {
                Ok(result) => return result,
                Err(panic) => {
                    self.counters.anomaly(Anomaly::UdpWorkerRestarted);
                    // Each panic takes a packet; a flood of them must not flood the log.
                    if let Some(held_back) = PANIC_LOG.allow() {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        error!(panic = %what, held_back, "a udp worker panicked; restarting it");
                    }
                }
            }
        }
    }

    fn serve(&self) -> io::Result<()> {
        let mut batch = Batch::new();
        let mut receive_failing = false;
        while !self.stop.load(Ordering::Relaxed) {
            let received = match batch.receive(&self.socket) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    // Logged when it starts, not per packet.
                    if !receive_failing {
                        warn!(error = %e, "udp receive failed");
                        receive_failing = true;
                    }
                    continue;
                }
            };
            receive_failing = false;
            let counts = self.answer_batch(&mut batch, received);
            if let Err(e) = batch.send(&self.socket, batch.answered_count) {
                debug!(error = %e, "udp send failed");
            }
            // Counted once sent: a reader of the metrics finds the responses out.
            counts.record(&self.counters);
            // Under load, let more queries queue: fewer wake-ups and system calls per query
            // (interrupt coalescing, as NICs do), at the cost of up to `coalesce` of delay.
            let coalesce = self.settings.coalesce;
            if (COALESCE_FROM..BATCH).contains(&received) && !coalesce.is_zero() {
                std::thread::sleep(coalesce);
            }
        }
        Ok(())
    }

    /// Answers the `received` datagrams of `batch` from one snapshot; what the fast path
    /// leaves goes to the fallback queue.
    fn answer_batch(&self, batch: &mut Batch, received: usize) -> BatchCounts {
        let current = self.snapshot.load();
        let mut answered = 0;
        let mut tally = [0u64; RCODE_SLOTS];
        let (mut dropped, mut queue_full, mut slipped, mut limited) = (0, 0, 0, 0);
        for i in 0..received {
            // Fields borrowed one by one: the query from `buffers`, the answer into `responses`.
            let header = &batch.headers[i];
            if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                dropped += 1;
                continue;
            }
            let query = &batch.buffers[i][..header.msg_len as usize];
            #[cfg(test)]
            tests::maybe_panic(query);
            let out = &mut batch.responses[i];
            match current.fast.answer(query, out, self.settings.max_udp) {
                Verdict::Answered => {
                    let decision = match (&self.settings.limiter, sockaddr_to_std(&batch.addrs[i]))
                    {
                        (Some(limiter), Some(src)) => limiter.decide(src.ip()),
                        _ => Decision::Send,
                    };
                    match decision {
                        Decision::Send => {}
                        Decision::Slip => match wire::slipped(query) {
                            Some(response) => {
                                *out = response;
                                slipped += 1;
                            }
                            None => continue,
                        },
                        Decision::Drop => {
                            limited += 1;
                            continue;
                        }
                    }
                    batch.answered[answered] = i;
                    answered += 1;
                    tally[QueryCounters::slot(out[3] & 0x0f)] += 1;
                }
                Verdict::Drop => dropped += 1,
                Verdict::Fallback => {
                    if let Some(src) = sockaddr_to_std(&batch.addrs[i]) {
                        let f = Fallback {
                            query: query.to_vec(),
                            src,
                            socket: self.socket.clone(),
                        };
                        // A full queue drops the query; the client will retry.
                        if self.fallback.try_send(f).is_err() {
                            queue_full += 1;
                        }
                    }
                }
            }
        }
        batch.answered_count = answered;
        BatchCounts {
            tally,
            anomalies: [
                (Anomaly::Dropped, dropped),
                (Anomaly::FallbackQueueFull, queue_full),
                (Anomaly::RateLimitSlipped, slipped),
                (Anomaly::RateLimitDropped, limited),
            ],
        }
    }
}

/// What one batch sent and met, counted per batch, not per query.
struct BatchCounts {
    tally: [u64; RCODE_SLOTS],
    anomalies: [(Anomaly, u64); 4],
}

impl BatchCounts {
    fn record(&self, counters: &QueryCounters) {
        counters.add_udp_tally(&self.tally);
        for (anomaly, n) in self.anomalies {
            counters.anomalies(anomaly, n);
        }
    }
}

/// Buffers for one recvmmsg call and the sendmmsg of its answers, reused for every batch.
/// The send headers point at the received source addresses: no conversion per query.
struct Batch {
    buffers: Vec<[u8; MAX_QUERY]>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    responses: Vec<Vec<u8>>,
    /// Indices of the datagrams answered in this batch, the first `answered_count`.
    answered: [usize; BATCH],
    answered_count: usize,
    send_iovecs: Vec<libc::iovec>,
    send_headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in the iovecs and headers point into this struct's own heap
// buffers, which never move while it lives; a Batch is used by one thread at a time.
unsafe impl Send for Batch {}

impl Batch {
    fn new() -> Batch {
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain data; all-zero is valid.
        let (zero_addr, zero_iovec, zero_header): (
            libc::sockaddr_storage,
            libc::iovec,
            libc::mmsghdr,
        ) = unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
        let mut batch = Batch {
            buffers: vec![[0u8; MAX_QUERY]; BATCH],
            addrs: vec![zero_addr; BATCH],
            iovecs: vec![zero_iovec; BATCH],
            headers: vec![zero_header; BATCH],
            responses: (0..BATCH).map(|_| Vec::with_capacity(512)).collect(),
            answered: [0; BATCH],
            answered_count: 0,
            send_iovecs: vec![zero_iovec; BATCH],
            send_headers: vec![zero_header; BATCH],
        };
        for i in 0..BATCH {
            batch.iovecs[i] = libc::iovec {
                iov_base: batch.buffers[i].as_mut_ptr().cast(),
                iov_len: MAX_QUERY,
            };
            let header = &mut batch.headers[i].msg_hdr;
            header.msg_name = (&mut batch.addrs[i] as *mut libc::sockaddr_storage).cast();
            header.msg_iov = &mut batch.iovecs[i];
            header.msg_iovlen = 1;
            let send = &mut batch.send_headers[i].msg_hdr;
            send.msg_iov = &mut batch.send_iovecs[i];
            send.msg_iovlen = 1;
        }
        batch
    }

    /// Blocks (up to the socket's read timeout) for at least one datagram.
    fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        for header in &mut self.headers {
            header.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        // SAFETY: every header points at live buffers of the stated sizes.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Sends the responses of the first `count` answered datagrams to their sources.
    fn send(&mut self, socket: &UdpSocket, count: usize) -> io::Result<()> {
        for k in 0..count {
            let i = self.answered[k];
            self.send_iovecs[k] = libc::iovec {
                iov_base: self.responses[i].as_ptr() as *mut libc::c_void,
                iov_len: self.responses[i].len(),
            };
            let header = &mut self.send_headers[k].msg_hdr;
            header.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = self.headers[i].msg_hdr.msg_namelen;
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: the headers point at `addrs`, `send_iovecs` and `responses`, all
            // alive and unchanged during the call.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.send_headers[sent..].as_mut_ptr(),
                    (count - sent) as u32,
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            sent += n as usize;
        }
        Ok(())
    }
}

fn sockaddr_to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits in it.
            let a =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which fits in it.
            let a = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use hickory_proto::rr::RecordType;

    use super::*;
    use crate::dns::fast_tests::{query, responder, snapshots};

    /// A datagram that makes a worker panic, in tests only: it stands for a bug.
    const PANIC_PACKET: &[u8] = b"hadns test panic";

    pub(super) fn maybe_panic(query: &[u8]) {
        if query == PANIC_PACKET {
            panic!("a test asked for a panic");
        }
    }

    /// Sends `packet` every 100 ms (a batch lost to a panic loses what came with it) and
    /// waits up to 2 s for a response.
    /// Sends `packet` (again every 100 ms) until an answer with its id arrives; a late
    /// answer to an earlier query is skipped.
    fn exchange(client: &UdpSocket, server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            client.send_to(packet, server).unwrap();
            while let Ok((n, _)) = client.recv_from(&mut buf) {
                if n >= 2 && buf[..2] == packet[..2] {
                    return Some(buf[..n].to_vec());
                }
            }
        }
        None
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_worker_is_restarted_and_answers_again() {
        let (_, snapshot) = snapshots().remove(0);
        let counters = crate::metrics::Metrics::new().queries.clone();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let serving = tokio::spawn(serve(
            vec![socket],
            snapshot.clone(),
            Arc::new(responder(&snapshot)),
            counters.clone(),
            UdpSettings {
                coalesce: Duration::ZERO,
                max_udp: 1232,
                limiter: None,
            },
            stop.clone(),
        ));
        let results = tokio::task::spawn_blocking(move || {
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            client
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let www = |id| query("www.example.internal.", RecordType::A, None, id);
            let before = exchange(&client, server, &www(1));
            let mut panics = Vec::new();
            for id in 2..5 {
                client.send_to(PANIC_PACKET, server).unwrap();
                panics.push(exchange(&client, server, &www(id)));
            }
            (before, panics)
        })
        .await
        .unwrap();
        stop.store(true, Ordering::Relaxed);
        serving.await.unwrap().unwrap();
        assert!(results.0.is_some(), "answered before the panic");
        for (i, after) in results.1.iter().enumerate() {
            assert!(after.is_some(), "no answer after panic {}", i + 1);
        }
        assert_eq!(counters.anomaly_count(Anomaly::UdpWorkerRestarted), 3);
    }
}
