//! A minimal stub client: one question over UDP, for the demo, self-checks and
//! `check = "dns"`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

/// The A and AAAA addresses `server` answers for `name`, or the response code when it is
/// not NOERROR.
pub async fn query_addresses(
    socket: &UdpSocket,
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> io::Result<Result<Vec<IpAddr>, String>> {
    let name = parse_name(name)?;
    let mut addresses = Vec::new();
    for qtype in [RecordType::A, RecordType::AAAA] {
        let response = exchange(socket, server, &name, qtype, timeout).await?;
        if response.metadata.response_code != ResponseCode::NoError {
            return Ok(Err(response.metadata.response_code.to_string()));
        }
        addresses.extend(addresses_of(&response));
    }
    Ok(Ok(addresses))
}

/// What a server answered to one question (`check = "dns"`).
pub struct Reply {
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...
    pub rcode: String,
    /// The A and AAAA addresses in the answer section.
    pub addresses: Vec<IpAddr>,
    /// Records in the answer section.
    pub answers: usize,
}

/// Asks `server` one question (`qtype` by its name, `A`, `SOA`, ...) over UDP.
pub async fn ask(
    server: SocketAddr,
    name: &str,
    qtype: &str,
    timeout: Duration,
) -> io::Result<Reply> {
    let name = parse_name(name)?;
    let qtype = RecordType::from_str(qtype)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    let response = exchange(&socket, server, &name, qtype, timeout).await?;
    Ok(Reply {
        rcode: mnemonic(response.metadata.response_code),
        addresses: addresses_of(&response),
        answers: response.answers.len(),
    })
}

/// A response code as zone files and dig write it (RFC 1035, 2136).
fn mnemonic(rcode: ResponseCode) -> String {
    match u16::from(rcode) {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

fn parse_name(name: &str) -> io::Result<Name> {
    Name::from_str(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// Sends one query and waits up to `timeout` for its answer (others are skipped).
async fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    timeout: Duration,
) -> io::Result<Message> {
    let mut message = Message::query();
    message.metadata.id = rand::random();
    message.add_query(Query::query(name.clone(), qtype));
    let bytes = message.to_vec().map_err(io::Error::other)?;
    socket.send_to(&bytes, server).await?;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (len, from) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??;
        let Ok(response) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        if from == server && response.metadata.id == message.metadata.id {
            return Ok(response);
        }
    }
}

fn addresses_of(response: &Message) -> Vec<IpAddr> {
    response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}
