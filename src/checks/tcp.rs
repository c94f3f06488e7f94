//! `check = "tcp"`: the node accepts a TCP connection.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

pub async fn probe(address: IpAddr, port: u16) -> Result<String, String> {
    TcpStream::connect(SocketAddr::new(address, port))
        .await
        .map(|_| "connected".to_string())
        .map_err(|e| super::failure::describe(&e))
}
