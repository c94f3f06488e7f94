//! UDP serving: worker threads on SO_REUSEPORT sockets, receiving and sending in batches
//! (recvmmsg/sendmmsg). Each batch is answered from one snapshot through the fast path;
//! what it does not cover goes to hickory on the async runtime, and its answer is sent
//! from the same socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::fast::Verdict;
use super::handler::Handler;
use super::snapshot::Snapshot;
use crate::metrics::{QueryCounters, RCODE_SLOTS};

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

/// A query the fast path left to hickory.
struct Fallback {
    query: Vec<u8>,
    src: SocketAddr,
    socket: Arc<UdpSocket>,
}

/// Serves UDP on `sockets` until `stop` is set; returns when every worker has stopped.
pub async fn serve(
    sockets: Vec<UdpSocket>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    counters: Arc<QueryCounters>,
    coalesce: Duration,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let handler = Arc::new(Handler::new(snapshot.clone(), counters.clone()));
    let (tx, mut rx) = mpsc::channel::<Fallback>(FALLBACK_QUEUE);
    let mut workers = Vec::new();
    for socket in sockets {
        socket.set_read_timeout(Some(WAKE))?;
        let (socket, snapshot, counters, stop, tx) = (
            Arc::new(socket),
            snapshot.clone(),
            counters.clone(),
            stop.clone(),
            tx.clone(),
        );
        workers.push(
            std::thread::Builder::new()
                .name("hadns-udp".into())
                .spawn(move || worker(socket, snapshot, counters, coalesce, stop, tx))?,
        );
    }
    drop(tx);
    let fallbacks = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        while let Some(f) = rx.recv().await {
            let handler = handler.clone();
            tasks.spawn(async move {
                if let Some(response) = hickory_answer(&handler, f.query, f.src).await
                    && let Err(error) = f.socket.send_to(&response, f.src)
                {
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

fn worker(
    socket: Arc<UdpSocket>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    counters: Arc<QueryCounters>,
    coalesce: Duration,
    stop: Arc<AtomicBool>,
    fallback: mpsc::Sender<Fallback>,
) -> io::Result<()> {
    if !coalesce.is_zero() {
        // The default timer slack (50µs) would stretch every wait; 1µs keeps it exact.
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    }
    let mut batch = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        let received = match batch.receive(&socket) {
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
                warn!(error = %e, "udp receive failed");
                continue;
            }
        };
        // One snapshot for the whole batch.
        let current = snapshot.load();
        let mut answered = 0;
        let mut tally = [0u64; RCODE_SLOTS];
        for i in 0..received {
            // Fields borrowed one by one: the query from `buffers`, the answer into `responses`.
            let header = &batch.headers[i];
            if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                continue;
            }
            let query = &batch.buffers[i][..header.msg_len as usize];
            match current.fast.answer(query, &mut batch.responses[i]) {
                Verdict::Answered => {
                    batch.answered[answered] = i;
                    answered += 1;
                    tally[QueryCounters::slot(batch.responses[i][3] & 0x0f)] += 1;
                }
                Verdict::Drop => {}
                Verdict::Fallback => {
                    if let Some(src) = sockaddr_to_std(&batch.addrs[i]) {
                        let f = Fallback {
                            query: query.to_vec(),
                            src,
                            socket: socket.clone(),
                        };
                        // A full queue drops the query; the client will retry.
                        let _ = fallback.try_send(f);
                    }
                }
            }
        }
        drop(current);
        if let Err(e) = batch.send(&socket, answered) {
            debug!(error = %e, "udp send failed");
        }
        counters.add_udp_tally(&tally);
        // Under load, let more queries queue: fewer wake-ups and system calls per query
        // (interrupt coalescing, as NICs do), at the cost of up to `coalesce` of delay.
        if (COALESCE_FROM..BATCH).contains(&received) && !coalesce.is_zero() {
            std::thread::sleep(coalesce);
        }
    }
    Ok(())
}

/// Buffers for one recvmmsg call and the sendmmsg of its answers, reused for every batch.
/// The send headers point at the received source addresses: no conversion per query.
struct Batch {
    buffers: Vec<[u8; MAX_QUERY]>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    responses: Vec<Vec<u8>>,
    /// Indices of the datagrams answered in this batch.
    answered: [usize; BATCH],
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

/// Answers one UDP query through hickory; None when hickory sends nothing.
pub(crate) async fn hickory_answer(
    handler: &Handler,
    query: Vec<u8>,
    src: SocketAddr,
) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let request = match Request::from_bytes(query.clone(), src, Protocol::Udp) {
        Ok(r) => r,
        // As hickory's own server: a readable header gets FORMERR with no question.
        Err(_) => return Some(formerr(&query)),
    };
    let capture = Capture::default();
    handler
        .handle_request::<_, TokioTime>(&request, capture.clone())
        .await;
    capture.0.lock().ok()?.take()
}

fn formerr(query: &[u8]) -> Vec<u8> {
    let mut out = query[..2].to_vec();
    out.push(0x80 | (query[2] & 0x78));
    out.push(1);
    out.extend_from_slice(&[0; 8]);
    out
}

/// A hickory ResponseHandler that keeps the encoded response.
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
        // As hickory's UDP path: the client's EDNS size, or 512 bytes without EDNS.
        encoder.set_max_size(response.edns().map_or(512, |e| e.max_payload()));
        let info = response
            .destructive_emit(&mut encoder)
            .map_err(|e| hickory_server::net::NetError::from(e.to_string()))?;
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(bytes);
        }
        Ok(info)
    }
}
