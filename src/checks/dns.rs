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
        DnsProber {
            // Validation gives dns nodes port 53 when they have none.
            server: SocketAddr::new(node.address, node.port.unwrap_or(53)),
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
                _ => super::describe(&e),
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
