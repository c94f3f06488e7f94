//! A minimal stub client: one question over UDP, for the demo and self-checks.

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
    let name = Name::from_str(name)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut addresses = Vec::new();
    for qtype in [RecordType::A, RecordType::AAAA] {
        let mut message = Message::query();
        message.metadata.id = rand::random();
        message.add_query(Query::query(name.clone(), qtype));
        let bytes = message.to_vec().map_err(io::Error::other)?;
        socket.send_to(&bytes, server).await?;
        let mut buf = [0u8; 4096];
        let response = loop {
            let (len, from) = tokio::time::timeout(timeout, socket.recv_from(&mut buf))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??;
            let Ok(response) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            if from == server && response.metadata.id == message.metadata.id {
                break response;
            }
        };
        if response.metadata.response_code != ResponseCode::NoError {
            return Ok(Err(response.metadata.response_code.to_string()));
        }
        for record in response.answers {
            match record.data {
                RData::A(a) => addresses.push(IpAddr::V4(a.0)),
                RData::AAAA(a) => addresses.push(IpAddr::V6(a.0)),
                _ => {}
            }
        }
    }
    Ok(Ok(addresses))
}
