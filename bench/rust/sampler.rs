//! A client querying one server for www in a loop (every millisecond unless told), keeping
//! when its answer changed: how the benchmarks see when a server answers something new.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use crate::support::*;

const WWW: &str = "www.example.internal.";

/// When a sampler's answer changed, and to what.
type Changes = Arc<Mutex<Vec<(Instant, Vec<IpAddr>)>>>;

/// A client querying one server in a loop (every millisecond), keeping when its answer
/// changed.
pub struct Sampler {
    changes: Changes,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub async fn start(client: IpAddr, server: SocketAddr) -> Sampler {
        Sampler::start_every(client, server, Duration::from_millis(1)).await
    }

    /// Queries every `every` instead of every millisecond.
    pub async fn start_every(client: IpAddr, server: SocketAddr, every: Duration) -> Sampler {
        let changes: Changes = Arc::new(Mutex::new(Vec::new()));
        let seen = changes.clone();
        let socket = UdpSocket::bind(SocketAddr::new(client, 0)).await.unwrap();
        let task = tokio::spawn(async move {
            let mut last = None;
            loop {
                let query = query_message(WWW, RecordType::A, None);
                let answer = udp_exchange_once(&socket, server, &query, Duration::from_secs(1))
                    .await
                    .map(|m| addresses(&m));
                if let Some(answer) = answer
                    && last.as_ref() != Some(&answer)
                {
                    seen.lock().unwrap().push((Instant::now(), answer.clone()));
                    last = Some(answer);
                }
                tokio::time::sleep(every).await;
            }
        });
        Sampler { changes, task }
    }

    /// When it first answered `ip` after `since`.
    pub fn first(&self, ip: IpAddr, since: Instant) -> Option<Instant> {
        self.changes
            .lock()
            .unwrap()
            .iter()
            .find(|(t, a)| *t >= since && a == &[ip])
            .map(|(t, _)| *t)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sampler {
    /// Waits (up to `limit`) until it answered `ip` after `since`; when it first did.
    pub async fn wait_for(&self, ip: IpAddr, since: Instant, limit: Duration) -> Instant {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(at) = self.first(ip, since) {
                return at;
            }
            assert!(Instant::now() < deadline, "no answer {ip} within {limit:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
