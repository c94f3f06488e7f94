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
//! - `netlink.rs`: the interface, its MAC and addresses (rtnetlink).
//! - `packet.rs`: ARP and neighbour discovery frames on an `AF_PACKET` socket.

mod netlink;
mod packet;

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::event::{EventKind, EventRecord};
use crate::config::{Config, Vip};

/// How often the interface is compared with what should be held.
const RECONCILE: Duration = Duration::from_secs(1);
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
    pub fn record(&self) -> usize {
        self.vip.record
    }

    pub fn node(&self) -> usize {
        self.vip.node
    }

    fn address(&self) -> IpAddr {
        self.vip.address
    }

    /// Holds the address while `desired` says so, until `shutdown`; then releases it.
    /// Announcements run inside this loop, not inline, so a release never waits for them.
    pub async fn run(
        mut self,
        mut desired: watch::Receiver<bool>,
        events: mpsc::UnboundedSender<EventRecord>,
        shutdown: CancellationToken,
    ) {
        self.events = Some(events);
        let mut held = false;
        let mut reconcile = tokio::time::interval(RECONCILE);
        // Announcements still to send, and when the next one is due.
        let mut pending = 0;
        let mut next_announce = Instant::now();
        loop {
            let want = *desired.borrow_and_update();
            if want && !held {
                held = self.take(&desired, &shutdown).await;
                if held {
                    (pending, next_announce) = (self.vip.announce_count, Instant::now());
                }
            } else if !want && held {
                self.release("the answer moved away from the local node")
                    .await;
                (held, pending) = (false, 0);
            }
            tokio::select! {
                changed = desired.changed() => if changed.is_err() { break },
                _ = reconcile.tick() => held = self.reconcile(want, held).await,
                _ = tokio::time::sleep_until(next_announce), if held && (pending > 0 || !self.vip.refresh.is_zero()) => {
                    if let Err(e) = self.socket.announce(self.address()).await {
                        warn!(vip = %self.label, error = %e, "vip announcement not sent");
                    }
                    pending = pending.saturating_sub(1);
                    next_announce = Instant::now()
                        + if pending > 0 { self.vip.announce_interval } else { self.vip.refresh };
                }
                _ = shutdown.cancelled() => break,
            }
        }
        if held || self.link.has(self.address()).await.unwrap_or(false) {
            self.release("hadns is stopping").await;
        }
    }

    /// Compares the interface with what should be held; returns whether it is held.
    async fn reconcile(&self, want: bool, held: bool) -> bool {
        let present = match self.link.has(self.address()).await {
            Ok(p) => p,
            Err(e) => {
                error!(vip = %self.label, error = %e, "cannot read the interface's addresses");
                return held;
            }
        };
        match (want, held, present) {
            (true, true, false) => {
                warn!(vip = %self.label, "vip address disappeared while held; taking it again");
                false
            }
            (false, _, true) => {
                warn!(vip = %self.label, "vip address present while it should not be; removing it");
                self.release("it should not be held").await;
                false
            }
            (_, _, present) => held && present,
        }
    }

    /// Probes, waits or fences, adds and announces. Returns whether the address is held.
    async fn take(&self, desired: &watch::Receiver<bool>, shutdown: &CancellationToken) -> bool {
        let address = self.address();
        let deadline = Instant::now() + self.vip.takeover_timeout;
        let mut fenced = false;
        let mut reported = false;
        loop {
            let owners = match self.probe().await {
                Ok(owners) => owners,
                Err(e) => {
                    error!(vip = %self.label, error = %e, "vip probe failed; not taking the address");
                    return false;
                }
            };
            if owners.is_empty() {
                break;
            }
            let holder = owners.iter().map(mac_text).collect::<Vec<_>>().join(",");
            if !reported {
                error!(vip = %self.label, holder = %holder, "vip conflict: another host answers for the address; waiting");
                self.report(
                    EventKind::VipConflict,
                    format!("another host ({holder}) answers for the address; waiting"),
                );
                reported = true;
            }
            if !*desired.borrow() || shutdown.is_cancelled() {
                info!(vip = %self.label, "vip take abandoned: no longer wanted");
                return false;
            }
            if Instant::now() < deadline {
                continue;
            }
            match (&self.vip.fence_command, fenced) {
                (Some(command), false) => {
                    fenced = true;
                    self.fence(command, &holder).await;
                }
                _ => {
                    error!(vip = %self.label, holder = %holder, timeout = ?self.vip.takeover_timeout,
                        "vip not taken: another host still answers for the address");
                    return false;
                }
            }
        }
        if let Err(e) = self.link.add(address, self.vip.prefix_len).await {
            error!(vip = %self.label, error = %e, "cannot add the vip address");
            return false;
        }
        info!(vip = %self.label, announcements = self.vip.announce_count, "vip taken");
        self.report(
            EventKind::VipTaken,
            format!("{} added and announced", self.label),
        );
        true
    }

    /// Two probes, `PROBE_WAIT` apart: a lost packet does not make a held address look free.
    async fn probe(&self) -> std::io::Result<Vec<packet::Mac>> {
        let mut owners = self.socket.probe(self.address(), PROBE_WAIT).await?;
        if owners.is_empty() {
            owners = self.socket.probe(self.address(), PROBE_WAIT).await?;
        }
        Ok(owners)
    }

    async fn fence(&self, command: &[String], holder: &str) {
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

    async fn release(&self, why: &str) {
        match self.link.remove(self.address()).await {
            Ok(true) => {
                info!(vip = %self.label, reason = why, "vip released");
                self.report(EventKind::VipReleased, format!("{}: {why}", self.label));
            }
            Ok(false) => {}
            Err(e) => error!(vip = %self.label, error = %e, "cannot remove the vip address"),
        }
    }
}

impl Prepared {
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
