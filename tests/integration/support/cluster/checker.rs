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
    /// Which client asked (`Sampler::clients`), and in which of its rounds (a round asks
    /// every member at once).
    pub client: usize,
    pub round: u64,
    pub member: usize,
    pub seen: Seen,
}

/// A member's SOA serial, as a client saw it (every tenth round).
#[derive(Debug, Clone)]
pub struct SerialSample {
    pub client: usize,
    pub member: usize,
    pub serial: u32,
    /// When it was received, in Unix milliseconds (the decisions' clock).
    pub at_ms: u64,
}

/// Queries `name` on every member, one UDP query each (no retries: a lost query is a
/// sample of its own), about every `every`, until dropped or `stop`ped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    serials: Arc<Mutex<Vec<SerialSample>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sampler {
    /// One client, the site's.
    pub fn start(site: &Site, name: &str, every: Duration) -> Sampler {
        Sampler::clients(site, &[site.client_ip()], name, every)
    }

    /// A client at each of `clients`, each asking every member at once every `every`.
    pub fn clients(site: &Site, clients: &[IpAddr], name: &str, every: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let serials = Arc::new(Mutex::new(Vec::new()));
        let servers: Vec<SocketAddr> = (0..super::MEMBERS.len())
            .map(|i| format!("{}:53", site.member_ip(i)).parse().unwrap())
            .collect();
        let zone = site_zone(name);
        let mut tasks = Vec::new();
        for (client, &address) in clients.iter().enumerate() {
            let (servers, name, zone) = (servers.clone(), name.to_string(), zone.clone());
            let (out, serials_out) = (samples.clone(), serials.clone());
            tasks.push(tokio::spawn(async move {
                let mut sockets = Vec::new();
                for _ in &servers {
                    sockets.push(UdpSocket::bind(SocketAddr::new(address, 0)).await.unwrap());
                }
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for round in 0u64.. {
                    tick.tick().await;
                    let asks = servers.iter().zip(&sockets).map(|(server, socket)| {
                        let (name, zone) = (&name, &zone);
                        async move {
                            let wait = Duration::from_millis(200);
                            let query = query_message(name, RecordType::A, None);
                            let answer = udp_exchange_once(socket, *server, &query, wait).await;
                            let at = Instant::now();
                            let serial = match round % 10 {
                                0 => {
                                    let query = query_message(zone, RecordType::SOA, None);
                                    let soa = udp_exchange_once(socket, *server, &query, wait);
                                    soa.await.and_then(|m| soa_serial(&m))
                                }
                                _ => None,
                            };
                            (answer, at, serial)
                        }
                    });
                    let answers = futures_util::future::join_all(asks).await;
                    for (member, (answer, at, serial)) in answers.into_iter().enumerate() {
                        let seen = match answer {
                            None => Seen::Lost,
                            Some(m) if m.metadata.response_code == ResponseCode::NoError => {
                                Seen::Nodes(addresses(&m))
                            }
                            Some(m) => Seen::Refused(m.metadata.response_code),
                        };
                        let sample = Sample {
                            at,
                            client,
                            round,
                            member,
                            seen,
                        };
                        out.lock().unwrap().push(sample);
                        if let Some(serial) = serial {
                            let at_ms = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_millis() as u64);
                            let sample = SerialSample {
                                client,
                                member,
                                serial,
                                at_ms,
                            };
                            serials_out.lock().unwrap().push(sample);
                        }
                    }
                }
            }));
        }
        Sampler {
            samples,
            serials,
            tasks,
        }
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
        self.tasks.iter().for_each(JoinHandle::abort);
        self.samples()
    }

    /// The serials seen so far.
    pub fn serials(&self) -> Vec<SerialSample> {
        self.serials.lock().unwrap().clone()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// The zone of `name`: its last two labels (`www.example.internal.` → `example.internal.`).
fn site_zone(name: &str) -> String {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    format!("{}.", labels[labels.len().saturating_sub(2)..].join("."))
}

fn soa_serial(m: &hickory_proto::op::Message) -> Option<u32> {
    m.answers.iter().find_map(|r| match &r.data {
        hickory_proto::rr::RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
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
    (overlaps(samples, ttl, down).iter())
        .map(|(from, until)| *until - *from)
        .sum()
}

/// The intervals during which two different writers were usable at once
/// (`two_writers_while_up` is their total), in order.
pub fn overlaps(
    samples: &[Sample],
    ttl: Duration,
    down: &[(IpAddr, Instant, Instant)],
) -> Vec<(Instant, Instant)> {
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
    let (mut writers, mut since, mut found) = (0, None, Vec::new());
    for (at, step) in edges {
        writers += step;
        match (writers >= 2, since) {
            (true, None) => since = Some(at),
            (false, Some(from)) => {
                if at > from {
                    found.push((from, at));
                }
                since = None;
            }
            _ => {}
        }
    }
    found
}

/// The answers naming a node that were usable during `[from, until)`: what a failing
/// run prints to show who named whom.
pub fn usable_during(
    samples: &[Sample],
    ttl: Duration,
    from: Instant,
    until: Instant,
) -> Vec<&Sample> {
    (samples.iter())
        .filter(|s| matches!(&s.seen, Seen::Nodes(n) if !n.is_empty()))
        .filter(|s| s.at < until && s.at + ttl > from)
        .collect()
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

/// The answers `name` was given in `decisions` (etcd's JSON), each its addresses sorted.
pub fn decided(decisions: &[serde_json::Value], name: &str) -> Vec<Vec<IpAddr>> {
    fn addresses_in(v: &serde_json::Value, out: &mut Vec<IpAddr>) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value.as_str().map(str::parse)) {
                        ("address", Some(Ok(address))) => out.push(address),
                        _ => addresses_in(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| addresses_in(i, out)),
            _ => {}
        }
    }
    let mut answers = Vec::new();
    for decision in decisions {
        let records = decision["records"].as_array().into_iter().flatten();
        for record in records.filter(|r| r["name"] == name) {
            let mut addresses = Vec::new();
            addresses_in(&record["answer"], &mut addresses);
            addresses.sort();
            answers.push(addresses);
        }
    }
    answers
}

/// Answers naming nodes that no decision named (`decided`).
pub fn undecided(samples: &[Sample], decided: &[Vec<IpAddr>]) -> usize {
    (samples.iter())
        .filter(|s| match &s.seen {
            Seen::Nodes(nodes) if !nodes.is_empty() => {
                let mut nodes = nodes.clone();
                nodes.sort();
                !decided.contains(&nodes)
            }
            _ => false,
        })
        .count()
}

/// Decisions written out of turn: a seq that is not the one after the last, or an epoch
/// (the leadership that wrote it) older than the last one's: a deposed leader's write.
pub fn out_of_turn(decisions: &[serde_json::Value]) -> usize {
    out_of_turn_at(decisions).len()
}

/// Where decisions were written out of turn: the index of each such decision.
pub fn out_of_turn_at(decisions: &[serde_json::Value]) -> Vec<usize> {
    (1..decisions.len())
        .filter(|&i| {
            let (a, b) = (&decisions[i - 1], &decisions[i]);
            b["seq"].as_u64() != a["seq"].as_u64().map(|s| s + 1)
                || b["epoch"].as_i64() < a["epoch"].as_i64()
        })
        .collect()
}

/// Serials a member served after a later decision's serial, as one client saw them in
/// order (each client asks each member one query at a time): a member's decisions must
/// only move forward. Serials of no decision (a member's own before it agreed) are left
/// out, and so is a serial seen before the decision that carries it was decided: a
/// restarted member's own serial (its clock) can equal a later decision's.
pub fn backwards(serials: &[SerialSample], decisions: &[serde_json::Value]) -> usize {
    let order: BTreeMap<u32, (usize, u64)> = (decisions.iter().enumerate())
        .filter_map(|(i, d)| {
            let decided = d["decided_ms"].as_u64()?;
            Some((d["serial"].as_u64()? as u32, (i, decided)))
        })
        .collect();
    let mut last: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut count = 0;
    for sample in serials {
        let Some(&(index, decided)) = order.get(&sample.serial) else {
            continue;
        };
        if sample.at_ms < decided {
            continue;
        }
        let seen = last.entry((sample.client, sample.member)).or_insert(index);
        if index < *seen {
            count += 1;
        }
        *seen = index.max(*seen);
    }
    count
}

#[cfg(test)]
mod tests;
