//! A small DNS client over UDP and TCP, and a query loop that watches an answer change.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

// === DNS client ===

pub fn query_message(name: &str, qtype: RecordType, edns_payload: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(payload) = edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        m.set_edns(edns);
    }
    m
}

/// A query for `name` (A, EDNS with a 1232-byte payload) carrying an EDNS Client Subnet
/// option for `subnet` (address, source prefix) when given.
pub fn subnet_query(name: &str, subnet: Option<(IpAddr, u8)>) -> Message {
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
    let mut query = query_message(name, RecordType::A, Some(1232));
    if let Some((address, prefix)) = subnet {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(address, prefix, 0)));
        query.set_edns(edns);
    }
    query
}

/// An answer's addresses, sorted, and the scope prefix of its ECS option (read from the
/// option's wire form: family, source, scope).
pub fn subnet_answer(answer: &Message) -> (Vec<IpAddr>, Option<u8>) {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    use hickory_proto::serialize::binary::BinEncodable;
    let scope = answer
        .edns
        .as_ref()
        .and_then(|e| match e.options().get(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(subnet)) => Some(subnet.to_bytes().unwrap()[3]),
            _ => None,
        });
    let mut addresses = addresses(answer);
    addresses.sort();
    (addresses, scope)
}

pub async fn udp_query(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    edns: Option<u16>,
) -> Message {
    // Loopback for hadns on loopback; any address (the route's) for one on a test site.
    let bind = if server.ip().is_loopback() {
        "127.0.0.1:0"
    } else {
        "0.0.0.0:0"
    };
    let socket = UdpSocket::bind(bind).await.unwrap();
    udp_exchange(&socket, server, &query_message(name, qtype, edns)).await
}

/// Sends `query` once and waits up to `wait` for its answer (answers to other ids, late
/// ones to earlier queries, are skipped): `None` is a lost query.
pub async fn udp_exchange_once(
    socket: &UdpSocket,
    server: SocketAddr,
    query: &Message,
    wait: Duration,
) -> Option<Message> {
    let mut buf = vec![0u8; 65535];
    socket
        .send_to(&query.to_vec().unwrap(), server)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        let (len, _) = received.unwrap();
        let m = Message::from_vec(&buf[..len]).unwrap();
        if m.metadata.id == query.metadata.id {
            return Some(m);
        }
    }
    None
}

/// Sends `query` and waits for its answer as a stub resolver does: a datagram may be lost
/// on a loaded machine, so it is sent again after 2 s, up to three times in all. Every
/// retry is printed; three unanswered tries fail the test. Tests that must see every lost
/// query (the query loop, the concurrency test) use `udp_exchange_once`.
pub async fn udp_exchange(socket: &UdpSocket, server: SocketAddr, query: &Message) -> Message {
    const TRIES: u32 = 3;
    for attempt in 1..=TRIES {
        let answer = udp_exchange_once(socket, server, query, Duration::from_secs(2)).await;
        if let Some(m) = answer {
            return m;
        }
        eprintln!(
            "no UDP answer from {server} within 2s (try {attempt} of {TRIES}) to {:?}",
            query.queries
        );
    }
    panic!(
        "{server} did not answer {:?} in {TRIES} tries",
        query.queries
    );
}

/// Sends one query on an open TCP connection and reads its answer.
pub async fn tcp_exchange(stream: &mut TcpStream, query: &Message) -> Message {
    let bytes = query.to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

/// Queries `name` A in a tight loop until stopped, each query sent once; returns how often
/// each address was answered, and fails the test if any answer held more than one address
/// or any query went unanswered for 2 s.
pub struct QueryLoop {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Result<(Seen, Sequence), String>>,
}

/// The answers in the order they appeared, each run of the same answer once.
pub type Sequence = Vec<Option<IpAddr>>;

pub type Seen = std::collections::HashMap<Option<IpAddr>, u64>;

impl QueryLoop {
    pub fn start(server: SocketAddr, name: &str) -> QueryLoop {
        QueryLoop::start_from([127, 0, 0, 1].into(), server, name)
    }

    /// The loop from a client at `client` (an address of this host).
    pub fn start_from(client: IpAddr, server: SocketAddr, name: &str) -> QueryLoop {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop2, name) = (stop.clone(), name.to_string());
        let task = tokio::spawn(async move {
            let socket = UdpSocket::bind(SocketAddr::new(client, 0)).await.unwrap();
            let mut seen = Seen::new();
            let mut sequence = Sequence::new();
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let query = query_message(&name, RecordType::A, None);
                let Some(m) =
                    udp_exchange_once(&socket, server, &query, Duration::from_secs(2)).await
                else {
                    return Err(format!("{name}: a query went unanswered (after {seen:?})"));
                };
                let got = addresses(&m);
                if got.len() > 1 {
                    return Err(format!(
                        "{name} answered two primaries: {got:?} (after {seen:?})"
                    ));
                }
                let answer = got.first().copied();
                *seen.entry(answer).or_insert(0) += 1;
                if sequence.last() != Some(&answer) {
                    sequence.push(answer);
                }
            }
            Ok((seen, sequence))
        });
        QueryLoop { stop, task }
    }

    /// How often each answer was seen.
    pub async fn finish(self) -> Seen {
        self.finish_with_sequence().await.0
    }

    /// How often each answer was seen, and the answers in the order they appeared (each
    /// run of the same answer once).
    pub async fn finish_with_sequence(self) -> (Seen, Sequence) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.task.await {
            Ok(Ok(seen)) => seen,
            Ok(Err(problem)) => panic!("{problem}"),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}
