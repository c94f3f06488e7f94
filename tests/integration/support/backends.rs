//! Real backends for the checks: TCP and HTTP services on loopback addresses the
//! harness hands out, and the pool configuration that names them.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

use super::Hadns;

/// A TCP service on one address and port that can be stopped (listener closed) and started again.
pub struct TcpBackend {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
}

fn bind_reusable(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

/// A loopback address of the caller's own, new at every call (127.77.0.1, 127.77.0.2, ...):
/// tests run at once, and each backend's address names it alone in the answers. The
/// tests that need an address in a given subnet (a site's) pass it to `start_at`.
pub fn loopback() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    assert!(n < 0xfeff, "more than 65,000 test addresses");
    format!("127.77.{}.{}", n >> 8, n & 0xff)
}

impl TcpBackend {
    /// A TCP service on an ephemeral port of a fresh loopback address ([`loopback`]).
    pub async fn start() -> TcpBackend {
        TcpBackend::start_at(&loopback()).await
    }

    /// A TCP service on an ephemeral port of `ip`.
    pub async fn start_at(ip: &str) -> TcpBackend {
        let listener = bind_reusable(SocketAddr::new(ip.parse().unwrap(), 0)).unwrap();
        let mut backend = TcpBackend {
            addr: listener.local_addr().unwrap(),
            stop: None,
        };
        backend.serve(listener);
        backend
    }

    fn serve(&mut self, listener: TcpListener) {
        let (tx, mut rx) = oneshot::channel::<oneshot::Sender<()>>();
        self.stop = Some(tx);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => { let _ = accepted; }
                    ack = &mut rx => {
                        drop(listener);
                        if let Ok(ack) = ack { let _ = ack.send(()); }
                        return;
                    }
                }
            }
        });
    }

    /// Closes the listener; returns once it is closed.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let (ack, done) = oneshot::channel();
            stop.send(ack).unwrap();
            done.await.unwrap();
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        // While the listener is closed, a probe's connection to this address can take the
        // same port as its own source port (a TCP self-connect: both ports come from the
        // ephemeral range); the port is free again once that probe closes it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match bind_reusable(self.addr) {
                Ok(listener) => break listener,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    pub fn ip(&self) -> IpAddr {
        self.addr.ip()
    }
}

/// An HTTP service whose status and body the test sets.
pub struct HttpBackend {
    pub addr: SocketAddr,
    pub reply: Arc<Mutex<(u16, String)>>,
}

impl HttpBackend {
    /// An HTTP service on a fresh loopback address ([`loopback`]) answering `status` and
    /// `body` until [`HttpBackend::set`] changes them.
    pub async fn start(status: u16, body: &str) -> HttpBackend {
        let listener = TcpListener::bind(SocketAddr::new(loopback().parse().unwrap(), 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let reply = Arc::new(Mutex::new((status, body.to_string())));
        let reply2 = reply.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let reply = reply2.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let (status, body) = reply.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        HttpBackend { addr, reply }
    }

    pub fn set(&self, status: u16, body: &str) {
        *self.reply.lock().unwrap() = (status, body.to_string());
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A pool of tcp nodes with one `first` record `www`, one node per backend.
pub fn tcp_pool_config(backends: &[&TcpBackend], pool_extra: &str, record_extra: &str) -> String {
    let mut s = format!("[[pool]]\nname = \"web\"\ncheck = \"tcp\"\n{pool_extra}\n");
    for (i, b) in backends.iter().enumerate() {
        s.push_str(&format!(
            "[[pool.node]]\nname = \"web{}\"\naddress = \"{}\"\nport = {}\npriority = {}\n",
            i + 1,
            b.addr.ip(),
            b.addr.port(),
            100 - i * 10
        ));
    }
    s.push_str(&format!(
        "\n[[record]]\nname = \"www.example.internal.\"\npool = \"web\"\n{record_extra}\n"
    ));
    s
}

/// hadns with one tcp backend behind www.example.internal. (checked every 100 ms) and
/// `dns_lines` in its [dns] table; returns once www answers the backend.
pub async fn start_with_web(dns_lines: &str, zone: &str) -> (Hadns, TcpBackend) {
    let web = TcpBackend::start().await;
    let config = dns_lines.to_string() + &tcp_pool_config(&[&web], "interval = \"100ms\"", "");
    let hadns = Hadns::with(&config).zone(zone).start().await;
    hadns
        .wait_for_answer(
            "www.example.internal.",
            &[web.ip()],
            Duration::from_secs(10),
        )
        .await;
    (hadns, web)
}

/// `sites` (the `[[site]]` tables), then www over w1 (`dc1`'s node) and w2 (`dc2`'s),
/// `select` by site, and `extra` after it.
pub fn web_by_site(
    dc1: &TcpBackend,
    dc2: &TcpBackend,
    sites: &str,
    select: &str,
    extra: &str,
) -> String {
    format!(
        "{sites}\n[[pool]]\nname = \"web\"\ncheck = \"tcp\"\ninterval = \"100ms\"\n\
         [[pool.node]]\nname = \"w1\"\naddress = \"{}\"\nport = {}\nsite = \"dc1\"\n\
         [[pool.node]]\nname = \"w2\"\naddress = \"{}\"\nport = {}\nsite = \"dc2\"\n\n\
         [[record]]\nname = \"www.example.internal.\"\npool = \"web\"\nselect = \"{select}\"\nby_site = true\n\n{extra}",
        dc1.addr.ip(),
        dc1.addr.port(),
        dc2.addr.ip(),
        dc2.addr.port()
    )
}
