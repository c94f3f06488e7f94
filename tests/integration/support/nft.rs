//! nftables from tests: scripts run in a namespace or on the host, and a host gone silent
//! (its server's packets dropped both ways, as a powered-off or cut-off host's are: no
//! reset, no answer).

use std::net::IpAddr;
use std::process::{Command, Stdio};

/// Runs `script` with nft in namespace `ns` (None: the host's).
pub fn nft(ns: Option<&str>, script: &str) {
    let mut cmd = match ns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns, "nft", "-f", "-"]);
            cmd
        }
        None => {
            let mut cmd = Command::new("nft");
            cmd.args(["-f", "-"]);
            cmd
        }
    };
    let mut child = (cmd.stdin(Stdio::piped()).stdout(Stdio::null()))
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run nft (the nftables package; scripts/test.sh installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The server on `ip:port` silent while this lives: every packet to or from it dropped on
/// the host (loopback traffic passes the input hook), existing connections included.
pub struct Silenced {
    table: String,
}

impl Silenced {
    pub fn server(ip: IpAddr, port: u16) -> Silenced {
        let table = format!("hadns_silent_{port}");
        nft(
            None,
            &format!(
                "table inet {table} {{}}\ndelete table inet {table}\n\
                 table inet {table} {{\nchain filter {{\n\
                 type filter hook input priority -10; policy accept;\n\
                 ip daddr {ip} tcp dport {port} drop\n\
                 ip saddr {ip} tcp sport {port} drop\n}}\n}}\n"
            ),
        );
        Silenced { table }
    }
}

impl Drop for Silenced {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .output();
    }
}
