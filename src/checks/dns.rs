//! `check = "dns"`: the node is a DNS server that answers one question as expected
//! (`[pool.dns]`): any NOERROR or NXDOMAIN answer by default, or an address in the answer,
//! or a given response code. A pool of DNS servers (resolvers, hadns members) can then
//! drive a record or a `[[vip]]` that gives clients one stable resolver address.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{DnsCheck, DnsExpect, Node};

pub struct DnsProber {
    server: SocketAddr,
    check: DnsCheck,
}

impl DnsProber {
    pub fn new(check: &DnsCheck, node: &Node) -> DnsProber {
        // Validation gives dns nodes port 53 when they have none.
        DnsProber::to(
            SocketAddr::new(node.address, node.port.unwrap_or(53)),
            check,
        )
    }

    /// Asks `server` (a `[resolver]` upstream, say).
    pub fn to(server: SocketAddr, check: &DnsCheck) -> DnsProber {
        DnsProber {
            server,
            check: check.clone(),
        }
    }

    /// One question; `timeout` bounds the wait for the answer (the caller bounds the rest).
    pub async fn probe(&self, timeout: Duration) -> Result<String, String> {
        let check = &self.check;
        let reply = crate::dns::client::ask(self.server, &check.name, &check.qtype, timeout)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => format!("no answer within {timeout:?}"),
                _ => super::failure::describe(&e),
            })?;
        let summary = format!(
            "{} {} answered {} ({} records)",
            check.name, check.qtype, reply.rcode, reply.answers
        );
        match &check.expect {
            DnsExpect::Answer if matches!(reply.rcode.as_str(), "NOERROR" | "NXDOMAIN") => {
                Ok(summary)
            }
            DnsExpect::Answer => Err(summary),
            DnsExpect::Rcode(rcode) if reply.rcode.eq_ignore_ascii_case(rcode) => Ok(summary),
            DnsExpect::Rcode(rcode) => Err(format!("{summary}, expected {rcode}")),
            DnsExpect::Address(address)
                if reply.rcode == "NOERROR" && reply.addresses.contains(address) =>
            {
                Ok(format!("{} {} answered {address}", check.name, check.qtype))
            }
            DnsExpect::Address(address) => Err(format!(
                "{summary} {:?}, expected {address}",
                reply.addresses
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DnsCheck;

    /// A DNS server on loopback that answers every question with `rcode` and, when given,
    /// one A record: the question copied, QR set, the answer pointing at the question name.
    async fn server(rcode: u8, address: Option<[u8; 4]>) -> SocketAddr {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            loop {
                let (len, from) = socket.recv_from(&mut buf).await.unwrap();
                // Header and the question only (no EDNS record).
                let question_end = 12 + buf[12..len].iter().position(|&b| b == 0).unwrap() + 1 + 4;
                let mut answer = buf[..question_end].to_vec();
                answer[2] = 0x84 | (answer[2] & 0x01);
                answer[3] = rcode;
                answer[10..12].copy_from_slice(&[0, 0]);
                if let Some(a) = address {
                    answer[6..8].copy_from_slice(&[0, 1]);
                    answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                    answer.extend_from_slice(&a);
                }
                socket.send_to(&answer, from).await.unwrap();
            }
        });
        addr
    }

    async fn probe(server: SocketAddr, expect: DnsExpect) -> Result<String, String> {
        let check = DnsCheck {
            name: "probe.test.".into(),
            qtype: "A".into(),
            expect,
        };
        let prober = DnsProber { server, check };
        prober.probe(Duration::from_millis(500)).await
    }

    #[tokio::test]
    async fn each_form_of_expect_tells_up_from_down() {
        let answers = server(0, Some([10, 9, 9, 9])).await;
        let nxdomain = server(3, None).await;
        let servfail = server(2, None).await;
        let refused = server(5, None).await;
        // The default: NOERROR or NXDOMAIN is up, SERVFAIL or REFUSED down.
        assert!(probe(answers, DnsExpect::Answer).await.is_ok());
        assert!(probe(nxdomain, DnsExpect::Answer).await.is_ok());
        let down = probe(servfail, DnsExpect::Answer).await.unwrap_err();
        assert!(down.contains("answered SERVFAIL"), "{down}");
        assert!(probe(refused, DnsExpect::Answer).await.is_err());
        // A response code: that one only.
        let rcode = || DnsExpect::Rcode("REFUSED".into());
        assert!(probe(refused, rcode()).await.is_ok());
        let down = probe(answers, rcode()).await.unwrap_err();
        assert!(down.contains("expected REFUSED"), "{down}");
        // An address: in a NOERROR answer.
        let address = |a: &str| DnsExpect::Address(a.parse().unwrap());
        assert!(probe(answers, address("10.9.9.9")).await.is_ok());
        let down = probe(answers, address("10.8.8.8")).await.unwrap_err();
        assert!(down.contains("expected 10.8.8.8"), "{down}");
        assert!(probe(nxdomain, address("10.9.9.9")).await.is_err());
        // Nobody there: no answer (or refused by the port).
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let down = probe(silent.local_addr().unwrap(), DnsExpect::Answer)
            .await
            .unwrap_err();
        assert!(down.contains("no answer within"), "{down}");
    }
}
