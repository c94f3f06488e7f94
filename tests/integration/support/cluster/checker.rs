//! Clients that sample every member's writer answer, and the checker of what they saw:
//! an answer is usable by a client for its TTL after it was received, so two different
//! writers are usable at once when their usable intervals overlap (must be 0).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::Site;
use crate::support::{addresses, query_message, udp_exchange_once};

/// One query's outcome, as a client saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Nodes(Vec<IpAddr>),
    Refused(ResponseCode),
    /// No answer within the wait: the client would retry or ask another nameserver.
    Lost,
}

#[derive(Debug, Clone)]
pub struct Sample {
    /// When the answer was received.
    pub at: Instant,
    pub member: usize,
    pub seen: Seen,
}

/// Queries `name` on every member, one UDP query each (no retries: a lost query is a
/// sample of its own), about every `every`, until dropped or `stop`ped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: JoinHandle<()>,
}

impl Sampler {
    pub fn start(site: &Site, name: &str, every: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let servers: Vec<SocketAddr> = (0..super::MEMBERS.len())
            .map(|i| format!("{}:53", site.member_ip(i)).parse().unwrap())
            .collect();
        let (client, name, out) = (site.client_ip(), name.to_string(), samples.clone());
        let task = tokio::spawn(async move {
            let socket = UdpSocket::bind(SocketAddr::new(client, 0)).await.unwrap();
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                for (member, server) in servers.iter().enumerate() {
                    let query = query_message(&name, RecordType::A, None);
                    let answer =
                        udp_exchange_once(&socket, *server, &query, Duration::from_millis(200))
                            .await;
                    let seen = match answer {
                        None => Seen::Lost,
                        Some(m) if m.metadata.response_code == ResponseCode::NoError => {
                            Seen::Nodes(addresses(&m))
                        }
                        Some(m) => Seen::Refused(m.metadata.response_code),
                    };
                    let sample = Sample {
                        at: Instant::now(),
                        member,
                        seen,
                    };
                    out.lock().unwrap().push(sample);
                }
            }
        });
        Sampler { samples, task }
    }

    /// Waits until every member has been seen answering `node`.
    pub async fn wait_named(&self, node: IpAddr) {
        crate::support::wait_for(Duration::from_secs(30), "every member sampled", || async {
            last_named(&self.samples(), node)
                .iter()
                .all(Option::is_some)
        })
        .await;
    }

    /// The samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// Stops sampling; the samples taken.
    pub fn stop(self) -> Vec<Sample> {
        self.task.abort();
        self.samples()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long two different writers were usable by some clients at once: each answer
/// naming one node is usable for `ttl` after it was received.
pub fn two_writers(samples: &[Sample], ttl: Duration) -> Duration {
    two_writers_while_up(samples, ttl, &[])
}

/// `two_writers`, where an answer is not usable while its node was down (`down`: node,
/// from, until): a node whose listener is closed takes no writes from anyone, which is
/// what lets the leader replace it at once.
pub fn two_writers_while_up(
    samples: &[Sample],
    ttl: Duration,
    down: &[(IpAddr, Instant, Instant)],
) -> Duration {
    // Per writer, its usable intervals merged; then a sweep over all of them.
    let mut usable: BTreeMap<IpAddr, Vec<(Instant, Instant)>> = BTreeMap::new();
    for sample in samples {
        if let Seen::Nodes(nodes) = &sample.seen {
            for node in nodes {
                usable
                    .entry(*node)
                    .or_default()
                    .push((sample.at, sample.at + ttl));
            }
        }
    }
    let mut edges: Vec<(Instant, i32)> = Vec::new();
    for (node, intervals) in usable.iter_mut() {
        // Not usable while the node was down.
        for &(_, from, until) in down.iter().filter(|(n, _, _)| n == node) {
            *intervals = (intervals.iter())
                .flat_map(|&(start, end)| [(start, end.min(from)), (start.max(until), end)])
                .filter(|(start, end)| start < end)
                .collect();
        }
        intervals.sort();
        let mut merged: Vec<(Instant, Instant)> = Vec::new();
        for &(start, end) in intervals.iter() {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        for (start, end) in merged {
            edges.push((start, 1));
            edges.push((end, -1));
        }
    }

    // Ends before starts at the same instant: touching intervals do not overlap.
    edges.sort();
    let (mut writers, mut since, mut total) = (0, None, Duration::ZERO);
    for (at, step) in edges {
        writers += step;
        match (writers >= 2, since) {
            (true, None) => since = Some(at),
            (false, Some(from)) => {
                total += at - from;
                since = None;
            }
            _ => {}
        }
    }
    total
}

/// When any member first answered `node`, if it did.
pub fn first_named(samples: &[Sample], node: IpAddr) -> Option<Instant> {
    (samples.iter())
        .filter(|s| matches!(&s.seen, Seen::Nodes(n) if n.contains(&node)))
        .map(|s| s.at)
        .min()
}

/// When each member last answered `node` (`None`: it never did).
pub fn last_named(samples: &[Sample], node: IpAddr) -> [Option<Instant>; 3] {
    let mut last = [None; 3];
    for s in samples {
        if matches!(&s.seen, Seen::Nodes(n) if n.contains(&node)) {
            last[s.member] = Some(s.at);
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64, member: usize, node: Option<u8>) -> Sample {
        Sample {
            at: base + Duration::from_millis(ms),
            member,
            seen: match node {
                Some(n) => Seen::Nodes(vec![IpAddr::from([10, 0, 0, n])]),
                None => Seen::Refused(ResponseCode::ServFail),
            },
        }
    }

    #[test]
    fn the_checker_counts_only_overlapping_usable_answers() {
        let t = Instant::now();
        let ttl = Duration::from_secs(1);
        // node 1 until 500 ms, refusals, node 2 from 1500 ms: touching, no overlap.
        let clean = [
            at(t, 0, 0, Some(1)),
            at(t, 500, 1, Some(1)),
            at(t, 900, 0, None),
        ];
        let mut samples = clean.to_vec();
        samples.push(at(t, 1500, 2, Some(2)));
        assert_eq!(two_writers(&samples, ttl), Duration::ZERO);
        // node 2 at 1200 ms: usable with node 1's last answer for 300 ms.
        samples.push(at(t, 1200, 1, Some(2)));
        assert_eq!(two_writers(&samples, ttl), Duration::from_millis(300));
        // node 1 down from 1000 to 1600 ms: its answer at 500 ms is usable only until then.
        let down = [(
            IpAddr::from([10, 0, 0, 1]),
            t + Duration::from_millis(1000),
            t + Duration::from_millis(1600),
        )];
        assert_eq!(two_writers_while_up(&samples, ttl, &down), Duration::ZERO);
        let early = [(
            IpAddr::from([10, 0, 0, 1]),
            t + Duration::from_millis(1300),
            t + Duration::from_millis(1600),
        )];
        assert_eq!(
            two_writers_while_up(&samples, ttl, &early),
            Duration::from_millis(100)
        );
        // Two members naming different nodes at once: for node2's whole TTL.
        let split = [
            at(t, 0, 0, Some(1)),
            at(t, 0, 1, Some(2)),
            at(t, 400, 0, Some(1)),
        ];
        assert_eq!(two_writers(&split, ttl), Duration::from_millis(1000));
    }
}
