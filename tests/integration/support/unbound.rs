//! A real unbound in the foreground, in a temporary directory: the server `check = "dns"`
//! probes, and the recursive resolver in front of hadns in the sites tests.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::rr::RecordType;

use super::*;

pub struct Unbound {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Unbound {
    /// unbound on `addr` with `server` lines added to its `server:` clause (each ending in
    /// a line end) and `more` clauses after it; returns once it answers `probe` (A).
    pub async fn start(addr: SocketAddr, server: &str, more: &str, probe: &str) -> Unbound {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = dir.path().join("unbound.conf");
        let lines: String = server.lines().map(|l| format!("  {l}\n")).collect();
        std::fs::write(
            &conf,
            format!(
                "server:\n  interface: {}\n  port: {}\n  do-daemonize: no\n  chroot: \"\"\n  \
                 username: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  \
                 use-syslog: no\n  do-ip6: no\n  num-threads: 1\n  \
                 access-control: 127.0.0.0/8 allow\n{lines}{more}",
                addr.ip(),
                addr.port()
            ),
        )
        .unwrap();
        let child = Command::new("unbound")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start unbound (scripts/test.sh installs it)");
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        wait_for(Duration::from_secs(20), "unbound to answer", || async {
            let query = query_message(probe, RecordType::A, None);
            udp_exchange_once(&socket, addr, &query, Duration::from_millis(200))
                .await
                .is_some()
        })
        .await;
        Unbound {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Unbound {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
