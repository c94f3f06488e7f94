//! L2 mode: hold a virtual IP while a record answers the local node. Only this module
//! knows netlink and raw sockets.
//!
//! One actor per `[[vip]]`, told by the server whether it should hold its address (a
//! `watch` of bool). Taking is careful: probe who answers for the address; while another
//! host does (a hung primary's kernel still answers ARP), wait up to `takeover_timeout`,
//! then run `fence_command` if set and probe again; never add an address another host
//! answers for. Then add it with netlink and announce it `announce_count` times. Releasing
//! removes it at once. Every second the actor compares the interface with what it should
//! hold and puts right any difference.
//!
//! - `actor.rs`: the take/release/announce decisions as a pure state machine and the loop
//!   that drives it over a `Wire` (this module's netlink and raw socket), tested in paused
//!   time with a scripted wire.
//! - `netlink.rs`: the interface, its MAC and addresses (rtnetlink).
//! - `packet.rs`: ARP and neighbour discovery frames on an `AF_PACKET` socket.

mod actor;
mod netlink;
mod packet;

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::event::{EventKind, EventRecord};
use crate::config::{Config, Vip};

/// Each probe waits this long for answers; a take sends two.
const PROBE_WAIT: Duration = Duration::from_millis(40);

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;

/// A `[[vip]]` whose interface and sockets were opened at start-up.
pub struct Prepared {
    vip: Vip,
    /// Takes, releases and conflicts, for the event log; set by `run`.
    events: Option<mpsc::UnboundedSender<EventRecord>>,
    /// `vip[N] (ADDRESS on INTERFACE)`, for logs.
    label: String,
    link: netlink::Link,
    socket: packet::LinkSocket,
}

/// Opens every vip's interface and raw socket. Fails with a clear message when a
/// capability or an interface is missing: nothing silently does nothing.
pub async fn prepare(config: &Config) -> Result<Vec<Prepared>, String> {
    if config.vips.is_empty() {
        return Ok(Vec::new());
    }
    let missing = missing_capabilities();
    if !missing.is_empty() {
        return Err(format!(
            "[[vip]] needs {} (run as root, or give the service these capabilities: see docs/operations.md)",
            missing.join(" and ")
        ));
    }
    let mut prepared = Vec::new();
    for (i, vip) in config.vips.iter().enumerate() {
        let label = format!(
            "vip[{i}] ({}/{} on {})",
            vip.address, vip.prefix_len, vip.interface
        );
        let link = netlink::Link::open(&vip.interface)
            .await
            .map_err(|e| format!("vip[{i}].interface: {e}"))?;
        let socket = packet::LinkSocket::open(link.index, link.mac, vip.address).map_err(|e| {
            format!(
                "vip[{i}]: cannot open a raw socket on {}: {e}",
                vip.interface
            )
        })?;
        prepared.push(Prepared {
            vip: vip.clone(),
            events: None,
            label,
            link,
            socket,
        });
    }
    Ok(prepared)
}

/// Effective capabilities this process lacks among CAP_NET_ADMIN and CAP_NET_RAW.
fn missing_capabilities() -> Vec<&'static str> {
    let effective = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_NET_RAW, "CAP_NET_RAW"),
    ]
    .into_iter()
    .filter(|(bit, _)| effective & (1 << bit) == 0)
    .map(|(_, name)| name)
    .collect()
}

impl Prepared {
    fn address(&self) -> IpAddr {
        self.vip.address
    }

    /// Holds the address while `desired` says so, until `shutdown`; then releases it.
    pub async fn run(
        mut self,
        desired: watch::Receiver<bool>,
        events: mpsc::UnboundedSender<EventRecord>,
        shutdown: CancellationToken,
    ) {
        self.events = Some(events);
        let machine = actor::Machine::new(&self.vip, self.label.clone());
        actor::drive(machine, &self, desired, shutdown).await;
    }
}

impl actor::Wire for Prepared {
    /// Two probes, `PROBE_WAIT` apart: a lost packet does not make a held address look free.
    async fn probe(&self) -> Result<Vec<String>, String> {
        let mut owners = self.socket.probe(self.address(), PROBE_WAIT).await;
        if owners.as_ref().is_ok_and(|o| o.is_empty()) {
            owners = self.socket.probe(self.address(), PROBE_WAIT).await;
        }
        owners
            .map(|o| o.iter().map(mac_text).collect())
            .map_err(|e| e.to_string())
    }

    async fn add(&self) -> Result<(), String> {
        self.link
            .add(self.address(), self.vip.prefix_len)
            .await
            .map_err(|e| e.to_string())
    }

    async fn remove(&self, why: &str) {
        match self.link.remove(self.address()).await {
            Ok(true) => {
                info!(vip = %self.label, reason = why, "vip released");
                self.report(EventKind::VipReleased, format!("{}: {why}", self.label));
            }
            Ok(false) => {}
            Err(e) => error!(vip = %self.label, error = %e, "cannot remove the vip address"),
        }
    }

    async fn has(&self) -> Result<bool, String> {
        self.link
            .has(self.address())
            .await
            .map_err(|e| e.to_string())
    }

    async fn announce(&self) {
        if let Err(e) = self.socket.announce(self.address()).await {
            warn!(vip = %self.label, error = %e, "vip announcement not sent");
        }
    }

    async fn fence(&self, holder: &str) {
        let Some(command) = &self.vip.fence_command else {
            return;
        };
        info!(vip = %self.label, holder = %holder, command = %command.join(" "), "vip fence: running fence_command");
        self.report(
            EventKind::VipFence,
            format!("running {} against {holder}", command.join(" ")),
        );
        let env = vec![
            ("HADNS_VIP", self.address().to_string()),
            ("HADNS_INTERFACE", self.vip.interface.clone()),
            ("HADNS_HOLDER_MAC", holder.to_string()),
        ];
        match crate::checks::run_command(command, &env, self.vip.takeover_timeout).await {
            Ok(_) => info!(vip = %self.label, "vip fence: fence_command succeeded; probing again"),
            Err(e) => error!(vip = %self.label, error = %e, "vip fence: fence_command failed"),
        }
    }

    fn report(&self, kind: EventKind, message: String) {
        if let Some(events) = &self.events {
            // The supervisor outlives the actors; a send can only fail during shutdown.
            let _ = events.send(EventRecord::new(kind, message));
        }
    }
}

fn mac_text(mac: &packet::Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
