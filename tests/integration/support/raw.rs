//! Raw DNS for the tests that send what a normal client would not: bytes in, bytes out,
//! and a sample from /metrics.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Sends raw bytes as a query and returns the response with the same ID, sending again
/// after 2 s, three times in all; `None` when nothing came back.
pub async fn raw_udp(server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = vec![0u8; 65535];
    for _ in 0..3 {
        socket.send_to(packet, server).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
        {
            let (len, _) = received.unwrap();
            if len >= 2 && packet.len() >= 2 && buf[..2] == packet[..2] {
                return Some(buf[..len].to_vec());
            }
        }
    }
    None
}

/// Sends raw bytes as one message on a TCP connection and reads the response.
pub async fn raw_tcp(stream: &mut TcpStream, packet: &[u8]) -> Vec<u8> {
    stream
        .write_all(&(packet.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(packet).await.unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await.unwrap();
    buf
}

/// A query for `name` (wire form, any bytes) of `qtype` in `class`, with an OPT of
/// `edns` bytes when given.
pub fn raw_query(id: u16, name: &[u8], qtype: u16, class: u16, edns: Option<u16>) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    q.extend_from_slice(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&class.to_be_bytes());
    if let Some(size) = edns {
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&size.to_be_bytes());
        q.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    q
}

pub fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A sample's value from /metrics (0 when absent).
pub async fn metric(admin: SocketAddr, series: &str) -> u64 {
    let (_, text) = super::get(admin, "/metrics").await;
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .map_or(0, |n| n as u64)
}
