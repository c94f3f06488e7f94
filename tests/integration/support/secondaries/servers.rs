//! NSD, Knot and BIND as secondaries of hadns, each in the foreground in a directory of
//! its own, configured as docs/secondaries.md shows.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RecordType, TSigner};

use super::*;
use crate::support::dbs::free_port;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nsd,
    Knot,
    Bind,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Nsd, Kind::Knot, Kind::Bind];
}

/// A TSIG key as the secondaries' configs and hadns's `[[tsig]]` both take it.
#[derive(Clone)]
pub struct Key {
    pub name: String,
    pub secret: String,
}

impl Key {
    /// A fresh random 32-byte hmac-sha256 key, base64.
    pub fn random(name: &str) -> Key {
        use std::io::Read;
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut bytes)
            .unwrap();
        Key {
            name: name.into(),
            secret: data_encoding::BASE64.encode(&bytes),
        }
    }

    pub(super) fn signer(&self) -> TSigner {
        let secret = data_encoding::BASE64
            .decode(self.secret.as_bytes())
            .unwrap();
        TSigner::new(
            secret,
            TsigAlgorithm::HmacSha256,
            Name::from_str(&self.name).unwrap(),
            300,
        )
        .unwrap()
    }
}

pub struct Secondary {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Secondary {
    /// A free loopback port for a secondary (hadns's `notify` names it before it starts).
    pub fn port() -> u16 {
        free_port("127.0.0.1".parse().unwrap())
    }

    /// Starts a secondary of `example.internal` from `primary` (hadns) on 127.0.0.1:`port`,
    /// signing with `key` when given, accepting NOTIFY from the primary and serving AXFR
    /// to 127.0.0.1 (to count what it loaded).
    pub fn start(kind: Kind, port: u16, primary: SocketAddr, key: Option<&Key>) -> Secondary {
        let listen = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
        Secondary::start_on(kind, listen, primary, key)
    }

    /// [`Secondary::start`] listening on `listen` (an address a primary in a network
    /// namespace can send its NOTIFY to).
    pub fn start_on(
        kind: Kind,
        listen: SocketAddr,
        primary: SocketAddr,
        key: Option<&Key>,
    ) -> Secondary {
        let (ip, port) = (listen.ip(), listen.port());
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let (p_ip, p_port) = (primary.ip(), primary.port());
        let (conf, mut command) = match kind {
            Kind::Nsd => {
                let (key_clause, key_ref) = match key {
                    Some(k) => (
                        format!(
                            "key:\n  name: \"{}\"\n  algorithm: hmac-sha256\n  secret: \"{}\"\n",
                            k.name, k.secret
                        ),
                        k.name.clone(),
                    ),
                    None => (String::new(), "NOKEY".into()),
                };
                // On loopback, its own source address (see NSD_SOURCE); elsewhere the
                // address it listens on.
                let source = if ip.is_loopback() {
                    NSD_SOURCE.to_string()
                } else {
                    ip.to_string()
                };
                let conf = format!(
                    "server:\n  ip-address: {ip}@{port}\n  port: {port}\n  username: \"\"\n  \
                     chroot: \"\"\n  zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  \
                     xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  \
                     xfrdir: \"{d}\"\n  logfile: \"{d}/secondary.log\"\n  verbosity: 2\n  \
                     do-ip6: no\n  server-count: 1\n\
                     remote-control:\n  control-enable: no\n\
                     {key_clause}\
                     zone:\n  name: example.internal\n  zonefile: \"{d}/example.internal.zone\"\n  \
                     allow-notify: {p_ip} {key_ref}\n  request-xfr: {p_ip}@{p_port} {key_ref}\n  \
                     provide-xfr: 127.0.0.1 NOKEY\n  outgoing-interface: {source}\n"
                );
                let mut command = Command::new("nsd");
                command.args(["-d", "-c"]);
                (conf, command)
            }
            Kind::Knot => {
                let (key_clause, key_ref) = match key {
                    Some(k) => (
                        format!(
                            "key:\n  - id: {}\n    algorithm: hmac-sha256\n    secret: {}\n",
                            k.name, k.secret
                        ),
                        format!("\n    key: {}", k.name),
                    ),
                    None => (String::new(), String::new()),
                };
                let conf = format!(
                    "server:\n  listen: {ip}@{port}\n  rundir: \"{d}\"\n\
                     log:\n  - target: \"{d}/secondary.log\"\n    any: info\n\
                     database:\n  storage: \"{d}\"\n\
                     {key_clause}\
                     remote:\n  - id: hadns\n    address: {p_ip}@{p_port}{key_ref}\n\
                     acl:\n  - id: from_hadns\n    address: {p_ip}{key_ref}\n    action: notify\n\
                     \x20 - id: local_xfr\n    address: 127.0.0.1\n    action: transfer\n\
                     template:\n  - id: default\n    storage: \"{d}\"\n\
                     zone:\n  - domain: example.internal\n    master: hadns\n    \
                     acl: [from_hadns, local_xfr]\n    zonefile-sync: -1\n    \
                     zonefile-load: none\n    journal-content: changes\n"
                );
                let mut command = Command::new("knotd");
                command.arg("-c");
                (conf, command)
            }
            Kind::Bind => {
                let (key_clause, key_ref) = match key {
                    Some(k) => (
                        format!(
                            "key \"{}\" {{ algorithm hmac-sha256; secret \"{}\"; }};\n",
                            k.name, k.secret
                        ),
                        format!(" key \"{}\"", k.name),
                    ),
                    None => (String::new(), String::new()),
                };
                let conf = format!(
                    "options {{\n  directory \"{d}\";\n  listen-on port {port} {{ {ip}; }};\n  \
                     listen-on-v6 {{ none; }};\n  pid-file \"{d}/named.pid\";\n  \
                     session-keyfile \"{d}/session.key\";\n  recursion no;\n  \
                     dnssec-validation no;\n  notify no;\n  allow-transfer {{ 127.0.0.1; }};\n}};\n\
                     controls {{ }};\n\
                     logging {{\n  channel file {{ file \"{d}/secondary.log\"; severity info; print-time yes; }};\n  \
                     category default {{ file; }};\n  category xfer-in {{ file; }};\n  category notify {{ file; }};\n}};\n\
                     {key_clause}\
                     zone \"example.internal\" {{\n  type secondary;\n  \
                     primaries port {p_port} {{ {p_ip}{key_ref}; }};\n  \
                     file \"{d}/example.internal.bk\";\n  allow-notify {{ {p_ip}; }};\n}};\n"
                );
                let mut command = Command::new("named");
                command.args(["-f", "-c"]);
                (conf, command)
            }
        };
        let path = dir.path().join("secondary.conf");
        std::fs::write(&path, conf).unwrap();
        let child = command
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {kind:?} (scripts/test.sh installs it): {e}"));
        Secondary {
            kind,
            addr: listen,
            child,
            dir,
        }
    }

    /// The secondary's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("secondary.log")
    }

    /// The secondary's answer for `name` A (SERVFAIL/REFUSED while it has no zone); `None`
    /// when no answer came (it is not up, or the datagram was lost).
    pub async fn answer(&self, name: &str) -> Option<Result<Vec<std::net::IpAddr>, ResponseCode>> {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let query = query_message(name, RecordType::A, None);
        let m = udp_exchange_once(&socket, self.addr, &query, Duration::from_millis(300)).await?;
        Some(match m.metadata.response_code {
            ResponseCode::NoError => Ok(addresses(&m)),
            code => Err(code),
        })
    }

    /// [`Secondary::answer`], a lost one as SERVFAIL (for waits that ask again).
    pub async fn addresses(&self, name: &str) -> Result<Vec<std::net::IpAddr>, ResponseCode> {
        self.answer(name)
            .await
            .unwrap_or(Err(ResponseCode::ServFail))
    }

    pub async fn wait_for_answer(
        &self,
        name: &str,
        expected: &[std::net::IpAddr],
        limit: Duration,
    ) {
        let what = format!("{:?} to answer {name} {expected:?}", self.kind);
        wait_for(limit, &what, || async {
            self.addresses(name).await.as_deref() == Ok(expected)
        })
        .await;
    }
}

impl Drop for Secondary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {:?} log ---\n{}", self.kind, self.log());
        }
    }
}
