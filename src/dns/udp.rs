//! UDP serving: worker threads on SO_REUSEPORT sockets, receiving and sending in batches
//! (recvmmsg/sendmmsg). Each batch is answered from one snapshot through the fast path;
//! what it does not cover goes to hickory on the async runtime, and its answer is sent
//! from the same socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

mod batch;

use batch::{BATCH, Batch, source};

use super::fast::Verdict;
use super::respond::Responder;
use super::rrl::{Decision, Limiter};
use super::snapshot::Snapshot;
use super::wire;
use crate::limits::Occasional;
use crate::metrics::{Anomaly, QueryCounters, RCODE_SLOTS};

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
            let client = source(&batch.addrs[i], batch.headers[i].msg_hdr.msg_namelen)
                .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |src| src.ip());
            match current
                .fast
                .answer(query, out, self.settings.max_udp, client)
            {
                Verdict::Answered => {
                    let decision = match (
                        &self.settings.limiter,
                        source(&batch.addrs[i], batch.headers[i].msg_hdr.msg_namelen),
                    ) {
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
                    if let Some(src) = source(&batch.addrs[i], batch.headers[i].msg_hdr.msg_namelen)
                    {
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
