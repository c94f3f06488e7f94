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
        let unbound = Unbound::spawn(Command::new("unbound"), addr, server, more);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        wait_for(Duration::from_secs(20), "unbound to answer", || async {
            let query = query_message(probe, RecordType::A, None);
            udp_exchange_once(&socket, addr, &query, Duration::from_millis(200))
                .await
                .is_some()
        })
        .await;
        unbound
    }

    /// The same in network namespace `ns` (its clients on 192.0.2.0/24 allowed).
    pub fn start_in(ns: &str, addr: SocketAddr, server: &str, probe: &str) -> Unbound {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns, "unbound"]);
        let server = format!("access-control: 192.0.2.0/24 allow\n{server}");
        let unbound = Unbound::spawn(command, addr, &server, "");
        let query = query_message(probe, RecordType::A, None).to_vec().unwrap();
        crate::support::netns::in_namespace(ns, move || {
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let mut buf = [0u8; 1500];
            loop {
                socket.send_to(&query, addr).unwrap();
                if socket.recv_from(&mut buf).is_ok() {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "unbound on {addr} did not answer"
                );
            }
        });
        unbound
    }

    fn spawn(mut command: Command, addr: SocketAddr, server: &str, more: &str) -> Unbound {
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
        let child = command
            .args(["-d", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start unbound (scripts/test.sh installs it)");
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
