//! systemd readiness (`Type=notify`): a datagram to `$NOTIFY_SOCKET`, nothing without it.
//!
//! `READY=1` once the first round of checks is done, so units ordered after hadns start
//! when its answers mean something; `RELOADING=1` and `READY=1` around a reload (what
//! `Type=notify-reload` expects). Twenty lines do not need a crate.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use tracing::warn;

pub fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={status}"));
}

pub fn reloading() {
    let monotonic = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0);
    send(&format!(
        "RELOADING=1\nMONOTONIC_USEC={monotonic}\nSTATUS=reloading the configuration"
    ));
}

fn send(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.as_bytes();
    // `@name` is a socket in the abstract namespace.
    let address = match path.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(OsStr::from_bytes(path)),
    };
    let result = address.and_then(|address| {
        let socket = UnixDatagram::unbound()?;
        socket.send_to_addr(message.as_bytes(), &address)
    });
    if let Err(error) = result {
        warn!(%error, "cannot notify systemd through NOTIFY_SOCKET");
    }
}
