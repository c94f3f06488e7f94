//! Raw link-layer frames: ARP probes and gratuitous ARP for IPv4, neighbour solicitations
//! and unsolicited neighbour advertisements for IPv6, on an `AF_PACKET` socket.
//!
//! A probe asks "who has this address?" without claiming it (ARP sender 0.0.0.0, RFC 5227;
//! NS from `::`, as duplicate address detection does) and collects the link-layer
//! addresses of every host that answers. An announcement tells the segment that the
//! address now lives at our MAC (ARP request with sender = target = the address; NA with the
//! override flag to all nodes), so neighbour caches move at once.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

pub type Mac = [u8; 6];

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86DD;
const ICMPV6_NS: u8 = 135;
const ICMPV6_NA: u8 = 136;
const BROADCAST: Mac = [0xff; 6];

/// An `AF_PACKET` socket on one interface for one ethertype.
pub struct LinkSocket {
    fd: AsyncFd<OwnedFd>,
    ifindex: u32,
    mac: Mac,
    ethertype: u16,
}

impl LinkSocket {
    /// Opens the socket for `address`'s family. Fails with `PermissionDenied` without
    /// CAP_NET_RAW.
    pub fn open(ifindex: u32, mac: Mac, address: IpAddr) -> io::Result<LinkSocket> {
        let ethertype = if address.is_ipv4() {
            ETH_P_ARP
        } else {
            ETH_P_IPV6
        };
        // SAFETY: socket(2) with constant arguments; the result is checked before use and
        // owned by the OwnedFd from then on.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(ethertype.to_be()),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a valid descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let addr = sockaddr_ll(ifindex, ethertype, &[0; 6]);
        // SAFETY: `addr` is a valid sockaddr_ll and its size is passed with it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the OwnedFd is moved into the AsyncFd, so the descriptor stays open and the
        // same for the AsyncFd's whole lifetime.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(LinkSocket {
            fd,
            ifindex,
            mac,
            ethertype,
        })
    }

    async fn send(&self, dst: Mac, payload: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(14 + payload.len());
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(&self.mac);
        frame.extend_from_slice(&self.ethertype.to_be_bytes());
        frame.extend_from_slice(payload);
        let addr = sockaddr_ll(self.ifindex, self.ethertype, &dst);
        loop {
            let mut guard = self.fd.writable().await?;
            let sent = guard.try_io(|fd| {
                // SAFETY: `frame` and `addr` outlive the call; their sizes are passed.
                let rc = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&addr as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                };
                if rc < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match sent {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives one frame (Ethernet header included) into `buf`.
    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let got = guard.try_io(|fd| {
                // SAFETY: `buf` is valid for writes of its length.
                let rc =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if rc < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(rc as usize)
                }
            });
            match got {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Asks who has `address`, waiting `wait` for answers; returns the MACs that answered
    /// (never our own).
    pub async fn probe(&self, address: IpAddr, wait: Duration) -> io::Result<Vec<Mac>> {
        match address {
            IpAddr::V4(ip) => {
                self.send(
                    BROADCAST,
                    &arp(1, &self.mac, Ipv4Addr::UNSPECIFIED, &[0; 6], ip),
                )
                .await?
            }
            IpAddr::V6(ip) => {
                let dst = solicited_node(ip);
                let packet = icmpv6(Ipv6Addr::UNSPECIFIED, dst, &neighbour_solicitation(ip));
                self.send(multicast_mac(dst), &packet).await?
            }
        }
        let deadline = Instant::now() + wait;
        let mut owners = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(received) = tokio::time::timeout_at(deadline, self.recv(&mut buf)).await {
            let n = received?;
            if let Some(mac) =
                claims(&buf[..n], address).filter(|m| *m != self.mac && !owners.contains(m))
            {
                owners.push(mac);
            }
        }
        Ok(owners)
    }

    /// Tells the segment that `address` is at our MAC.
    pub async fn announce(&self, address: IpAddr) -> io::Result<()> {
        match address {
            IpAddr::V4(ip) => {
                self.send(BROADCAST, &arp(1, &self.mac, ip, &[0; 6], ip))
                    .await
            }
            IpAddr::V6(ip) => {
                let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                let packet = icmpv6(ip, all_nodes, &neighbour_advertisement(ip, &self.mac));
                self.send(multicast_mac(all_nodes), &packet).await
            }
        }
    }
}

fn sockaddr_ll(ifindex: u32, ethertype: u16, dst: &Mac) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ethertype.to_be();
    addr.sll_ifindex = ifindex as i32;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(dst);
    addr
}

/// An ARP packet for Ethernet and IPv4.
fn arp(op: u16, sha: &Mac, spa: Ipv4Addr, tha: &Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(sha);
    p.extend_from_slice(&spa.octets());
    p.extend_from_slice(tha);
    p.extend_from_slice(&tpa.octets());
    p
}

fn neighbour_solicitation(target: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![ICMPV6_NS, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m
}

fn neighbour_advertisement(target: Ipv6Addr, mac: &Mac) -> Vec<u8> {
    // Override flag set, not solicited, not a router; option 2: target link-layer address.
    let mut m = vec![ICMPV6_NA, 0, 0, 0, 0x20, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[2, 1]);
    m.extend_from_slice(mac);
    m
}

/// An IPv6 packet (hop limit 255, as neighbour discovery requires) carrying an ICMPv6
/// message, its checksum filled in.
fn icmpv6(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> Vec<u8> {
    let mut msg = message.to_vec();
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for chunk in bytes.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(&msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    msg[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let mut p = Vec::with_capacity(40 + msg.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    p.extend_from_slice(&[58, 255]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&msg);
    p
}

fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

fn multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The sender's MAC when `frame` claims `address`: an ARP packet whose sender is the
/// address, or a neighbour advertisement for it.
fn claims(frame: &[u8], address: IpAddr) -> Option<Mac> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let payload = frame.get(14..)?;
    match (address, ethertype) {
        (IpAddr::V4(ip), ETH_P_ARP) if payload.len() >= 28 => {
            let spa = Ipv4Addr::new(payload[14], payload[15], payload[16], payload[17]);
            (spa == ip)
                .then(|| payload[8..14].try_into().ok())
                .flatten()
        }
        (IpAddr::V6(ip), ETH_P_IPV6) if payload.len() >= 40 + 24 => {
            let icmp = &payload[40..];
            let target: [u8; 16] = icmp[8..24].try_into().ok()?;
            (payload[6] == 58 && icmp[0] == ICMPV6_NA && Ipv6Addr::from(target) == ip)
                .then(|| frame[6..12].try_into().ok())
                .flatten()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solicited_node_groups_and_their_macs() {
        let ip: Ipv6Addr = "2001:db8::1:2345:6789".parse().unwrap();
        let group = solicited_node(ip);
        assert_eq!(group, "ff02::1:ff45:6789".parse::<Ipv6Addr>().unwrap());
        assert_eq!(multicast_mac(group), [0x33, 0x33, 0xff, 0x45, 0x67, 0x89]);
    }

    #[test]
    fn icmpv6_checksum_verifies() {
        let src: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1".parse().unwrap();
        let p = icmpv6(src, dst, &neighbour_advertisement(src, &[2, 0, 0, 0, 0, 1]));
        // Summing the pseudo-header and the message including its checksum gives 0xffff.
        let msg = &p[40..];
        let mut sum: u32 = 0;
        let mut words = src.octets().to_vec();
        words.extend_from_slice(&dst.octets());
        words.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        words.extend_from_slice(&[0, 0, 0, 58]);
        words.extend_from_slice(msg);
        for c in words.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }

    #[test]
    fn arp_replies_claim_their_sender_address() {
        let mac = [2, 0, 0, 0, 0, 9];
        let ip: Ipv4Addr = "192.0.2.100".parse().unwrap();
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&mac);
        frame.extend_from_slice(&ETH_P_ARP.to_be_bytes());
        frame.extend_from_slice(&arp(2, &mac, ip, &[0; 6], "192.0.2.1".parse().unwrap()));
        assert_eq!(claims(&frame, IpAddr::V4(ip)), Some(mac));
        assert_eq!(
            claims(&frame, IpAddr::V4("192.0.2.101".parse().unwrap())),
            None
        );
        // A probe (sender 0.0.0.0) claims nothing.
        let mut probe = frame[..14].to_vec();
        probe.extend_from_slice(&arp(1, &mac, Ipv4Addr::UNSPECIFIED, &[0; 6], ip));
        assert_eq!(claims(&probe, IpAddr::V4(ip)), None);
    }
}
