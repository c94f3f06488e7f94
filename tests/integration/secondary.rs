//! Real secondaries of hadns: NSD, Knot and BIND (`named`), each in the foreground on a
//! loopback port with its own directory, configured as docs/secondaries.md shows. And a
//! zone transfer client that checks hadns's TSIG chain with hickory's verifier.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dbs::free_port;
use crate::harness::*;

pub const ZONE_NAME: &str = "example.internal.";
/// The admin token of the hadns these tests start (drains drive bursts of changes).
pub const ADMIN_TOKEN: &str = "secondaries-token";
/// NSD transfers from its own loopback address, so that hadns's log tells its transfers
/// from Knot's and BIND's (its log does not say IXFR or AXFR).
pub const NSD_SOURCE: &str = "127.0.0.3";

/// hadns as the primary of the secondaries: tcp backends behind www (checked every
/// 100 ms), `[transfer]` allowing 127.0.0.1 and notifying `notify` secondaries' ports
/// (chosen before it starts: [`Primary::ports`]), signed with its key when it has one, an
/// admin endpoint, and a serial file in a directory of its own, so that a restart keeps
/// its serials. It listens on a fixed port, the same after a restart.
pub struct Primary {
    pub hadns: Hadns,
    /// The config it runs (without `[dns]`), for a reload to start from.
    pub config: String,
    /// The secondaries' ports its `notify` names, in order.
    pub ports: Vec<u16>,
    key: Option<Key>,
    zone: String,
    /// More zone files (origin, text) beside `example.internal`'s.
    zones: Vec<(String, String)>,
    listen: String,
    _state: tempfile::TempDir,
}

impl Primary {
    /// `pool_extra`: more `[[pool]]` keys (`fall = 1`); `zone`: the zone file.
    pub async fn start(
        web: &[&TcpBackend],
        notify: usize,
        key: Option<&Key>,
        pool_extra: &str,
        zone: &str,
    ) -> Primary {
        Primary::start_zones(web, notify, key, pool_extra, zone, &[], "").await
    }

    /// [`Primary::start`] with more zones (origin, text) and more `[transfer]` tables
    /// (`[[transfer.zone]]`).
    pub async fn start_zones(
        web: &[&TcpBackend],
        notify: usize,
        key: Option<&Key>,
        pool_extra: &str,
        zone: &str,
        zones: &[(&str, &str)],
        transfer_extra: &str,
    ) -> Primary {
        let state = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..notify).map(|_| Secondary::port()).collect();
        let targets: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
        let mut config = format!(
            "serial_file = \"{}\"\n\n[transfer]\nallow = [\"127.0.0.1\", \"{NSD_SOURCE}\"]\nnotify = [{}]\n",
            state.path().join("serials.toml").display(),
            targets.join(", ")
        );
        if let Some(key) = key {
            config += &format!("key = \"{}\"\n", key.name);
        }
        config += transfer_extra;
        if let Some(key) = key {
            config += &format!(
                "\n[[tsig]]\nname = \"{}\"\nalgorithm = \"hmac-sha256\"\nsecret_file = \"xfr.key\"\n",
                key.name
            );
        }
        config += "\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n\n";
        config += &tcp_pool_config(web, &format!("interval = \"100ms\"\n{pool_extra}"), "");
        let listen = format!("127.0.0.1:{}", free_port("127.0.0.1".parse().unwrap()));
        let zones: Vec<(String, String)> = zones
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string()))
            .collect();
        let hadns = Primary::run(&config, zone, &zones, &listen, key).await;
        Primary {
            hadns,
            config,
            ports,
            key: key.cloned(),
            zone: zone.to_string(),
            zones,
            listen,
            _state: state,
        }
    }

    /// hadns with `config`, its key's secret file and the admin token.
    async fn run(
        config: &str,
        zone: &str,
        zones: &[(String, String)],
        listen: &str,
        key: Option<&Key>,
    ) -> Hadns {
        let secret = key.map(|k| k.secret.clone());
        let zones = zones.to_vec();
        Hadns::start_env(
            config,
            zone,
            &[listen],
            &[("RUST_LOG", TEST_LOG)],
            move |dir| {
                use std::os::unix::fs::PermissionsExt;
                for (origin, text) in zones {
                    std::fs::write(dir.join("zones").join(format!("{origin}zone")), text).unwrap();
                }
                let mut files = vec![("admin.token", ADMIN_TOKEN.to_string())];
                if let Some(secret) = secret {
                    files.push(("xfr.key", secret));
                }
                for (name, content) in files {
                    let file = dir.join(name);
                    std::fs::write(&file, format!("{content}\n")).unwrap();
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                        .unwrap();
                }
            },
        )
        .await
    }

    /// Stops hadns and starts it again: same config, port and serial file.
    pub async fn restart(self) -> Primary {
        self.restart_with(async {}).await.0
    }

    /// Stops hadns, awaits `between` while it is down, and starts it again: same config,
    /// port and serial file.
    pub async fn restart_with<T>(
        self,
        between: impl std::future::Future<Output = T>,
    ) -> (Primary, T) {
        self.restart_after(nix::sys::signal::Signal::SIGTERM, between)
            .await
    }

    /// Kills hadns with SIGKILL (it writes nothing on the way out) and starts it again.
    pub async fn kill_and_restart(self) -> Primary {
        self.restart_after(nix::sys::signal::Signal::SIGKILL, async {})
            .await
            .0
    }

    /// The file hadns reserves its serials in.
    pub fn serial_file(&self) -> PathBuf {
        self._state.path().join("serials.toml")
    }

    async fn restart_after<T>(
        self,
        signal: nix::sys::signal::Signal,
        between: impl std::future::Future<Output = T>,
    ) -> (Primary, T) {
        let Primary { hadns, .. } = self;
        let _ = hadns.stop_with(signal).await;
        let between = between.await;
        let hadns = Primary::run(
            &self.config,
            &self.zone,
            &self.zones,
            &self.listen,
            self.key.as_ref(),
        )
        .await;
        (Primary { hadns, ..self }, between)
    }

    /// Replaces its config (on its own port) and reloads; the reload's outcome.
    pub async fn reload(&mut self, config: &str) -> &'static str {
        let full = format!(
            "[dns]\nlisten = [\"{}\"]\nzones_dir = \"zones\"\n\n{config}",
            self.listen
        );
        std::fs::write(self.hadns.config_path(), full).unwrap();
        self.hadns.sighup().await
    }

    /// hadns answers `expected` for `name`, then every one of `secondaries` does.
    pub async fn everyone_answers(
        &self,
        secondaries: &[Secondary],
        name: &str,
        expected: &[std::net::IpAddr],
    ) {
        self.hadns
            .wait_for_answer(name, expected, Duration::from_secs(30))
            .await;
        all_answer(secondaries, name, expected).await;
    }

    /// Waits until hadns has served NSD at least `count` incremental transfers (told by
    /// NSD's own source address, [`NSD_SOURCE`]: its log does not say IXFR or AXFR).
    pub async fn wait_nsd_incremental(&mut self, count: usize) {
        let nsd = format!("peer={NSD_SOURCE}:");
        self.hadns
            .wait_until(
                &format!("{count} incremental transfers to NSD"),
                Duration::from_secs(30),
                |lines| {
                    lines
                        .iter()
                        .filter(|l| l.contains(&nsd) && l.contains("served=\"incremental\""))
                        .count()
                        >= count
                },
            )
            .await;
    }

    /// Starts a secondary of each kind on the notified ports, in order, signing with the
    /// primary's key.
    pub fn start_secondaries(&self, kinds: &[Kind]) -> Vec<Secondary> {
        kinds
            .iter()
            .zip(&self.ports)
            .map(|(&kind, &port)| Secondary::start(kind, port, self.hadns.addr, self.key.as_ref()))
            .collect()
    }
}

/// Each secondary answers `expected` for `name`.
pub async fn all_answer(secondaries: &[Secondary], name: &str, expected: &[std::net::IpAddr]) {
    for secondary in secondaries {
        secondary
            .wait_for_answer(name, expected, Duration::from_secs(30))
            .await;
    }
}

/// Each secondary has the zone at `serial`.
pub async fn all_at_serial(secondaries: &[Secondary], serial: u32) {
    for s in secondaries {
        wait_for(
            Duration::from_secs(30),
            &format!("{:?} at serial {serial}", s.kind),
            || async { secondary_serial(s.addr).await == Some(serial) },
        )
        .await;
    }
}

/// Waits until Knot's and BIND's own logs show at least `count` incremental transfers
/// each: Knot logs an IXFR when it starts and when it finishes; BIND counts a difference's
/// records (SOA, old SOA, old address, new SOA, new address, SOA) where the whole zone
/// has 8.
pub async fn wait_incremental(knot: &Secondary, bind: &Secondary, count: usize) {
    assert_eq!((knot.kind, bind.kind), (Kind::Knot, Kind::Bind));
    let limit = Duration::from_secs(30);
    wait_for(limit, &format!("Knot to log {count} IXFRs"), || async {
        knot.log().matches("IXFR, incoming").count() >= 2 * count
    })
    .await;
    wait_for(limit, &format!("BIND to log {count} IXFRs"), || async {
        bind.log()
            .matches("Transfer completed: 1 messages, 6 records")
            .count()
            >= count
    })
    .await;
}

/// Drains (`drain` true) or undrains a node through the admin endpoint; returns once the
/// change is published.
pub async fn drain(admin: SocketAddr, node: &str, drain: bool) {
    let verb = if drain { "drain" } else { "undrain" };
    let response = reqwest::Client::new()
        .post(format!("http://{admin}/pools/web/nodes/{node}/{verb}"))
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{verb} {node}");
}

/// The sum of the samples of `name` whose labels include every one of `labels`.
pub async fn metric(admin: SocketAddr, name: &str, labels: &[(&str, &str)]) -> u64 {
    let (_, text) = get(admin, "/metrics").await;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name)
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap() as u64)
        .sum()
}

/// What a burst of changes cost.
#[derive(Debug)]
pub struct Burst {
    /// NOTIFYs sent, per target in `notify` order.
    pub notifies: Vec<u64>,
    /// Transfers served (full or incremental), all secondaries together.
    pub transfers: u64,
    pub serial: u32,
}

/// `changes` answer changes of www within about `over` (drain and undrain of web1 in
/// turn), then waits until every secondary has hadns's last serial; counts what it cost.
pub async fn burst(
    hadns: &Hadns,
    admin: SocketAddr,
    secondaries: &[Secondary],
    changes: usize,
    over: Duration,
) -> Burst {
    let targets: Vec<String> = secondaries.iter().map(|s| s.addr.to_string()).collect();
    let sent = || async {
        let mut counts = Vec::new();
        for target in &targets {
            counts.push(
                metric(
                    admin,
                    "hadns_notifies_total",
                    &[("target", target), ("result", "sent")],
                )
                .await,
            );
        }
        counts
    };
    let transfers = || async {
        metric(admin, "hadns_transfers_total", &[("result", "full")]).await
            + metric(admin, "hadns_transfers_total", &[("result", "incremental")]).await
    };
    let (sent_before, transfers_before) = (sent().await, transfers().await);
    let start = tokio::time::Instant::now();
    for i in 0..changes {
        drain(admin, "web1", i % 2 == 0).await;
        tokio::time::sleep_until(start + over.mul_f64((i + 1) as f64 / changes as f64)).await;
    }
    let serial = hadns.soa_serial().await;
    for secondary in secondaries {
        wait_for(
            Duration::from_secs(30),
            &format!("{:?} at serial {serial}", secondary.kind),
            || async { secondary_serial(secondary.addr).await == Some(serial) },
        )
        .await;
    }
    let notifies = sent()
        .await
        .iter()
        .zip(&sent_before)
        .map(|(after, before)| after - before)
        .collect();
    Burst {
        notifies,
        transfers: transfers().await - transfers_before,
        serial,
    }
}

/// The SOA serial a server answers for the zone.
pub async fn secondary_serial(server: SocketAddr) -> Option<u32> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let query = query_message(ZONE_NAME, RecordType::SOA, None);
    let m = udp_exchange_once(&socket, server, &query, Duration::from_millis(300)).await?;
    m.answers.first().map(soa_serial)
}

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

    fn signer(&self) -> TSigner {
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

/// The records of one transfer (AXFR, or IXFR from `ixfr_from`) of `zone` over TCP, every
/// message's TSIG checked in the chain when `key` signs the request. `Err` carries the
/// response code of a refusal.
pub async fn transfer(
    server: SocketAddr,
    zone: &str,
    ixfr_from: Option<u32>,
    key: Option<&Key>,
) -> Result<Vec<Record>, ResponseCode> {
    let mut stream = TcpStream::connect(server).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let request = transfer_request(zone, ixfr_from, key);
    let mut framed = (request.0.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&request.0);
    stream.write_all(&framed).await.unwrap();
    let mut records = Vec::new();
    let mut soas = 0;
    let mut previous_mac = request.1;
    let mut first = true;
    loop {
        let len = tokio::time::timeout(Duration::from_secs(10), stream.read_u16())
            .await
            .expect("a transfer message in time")
            .unwrap();
        let mut bytes = vec![0; usize::from(len)];
        stream.read_exact(&mut bytes).await.unwrap();
        let message = Message::from_vec(&bytes).unwrap();
        // A refusal of a bad signature is itself unsigned (RFC 8945 5.3.2).
        if message.metadata.response_code == ResponseCode::NotAuth {
            return Err(ResponseCode::NotAuth);
        }
        if let (Some(key), Some(mac)) = (key, previous_mac.as_ref()) {
            let (next, _, _) = key
                .signer()
                .verify_message_byte(&bytes, Some(mac), first)
                .expect("every message of a signed transfer verifies in the chain");
            previous_mac = Some(next);
        }
        first = false;
        if message.metadata.response_code != ResponseCode::NoError {
            return Err(message.metadata.response_code);
        }
        for record in message.answers {
            let soa = record.record_type() == RecordType::SOA;
            records.push(record);
            if soa {
                soas += 1;
            }
        }
        // Done: a lone SOA (up to date), or the closing SOA.
        let done = records.len() == 1 && soas == 1
            || records.len() > 1
                && records.last().unwrap().record_type() == RecordType::SOA
                && is_closing(&records);
        if done {
            return Ok(records);
        }
    }
}

/// The last record closes the transfer: for AXFR the second SOA; for IXFR the SOA with
/// the current serial after an even number of delta SOAs.
fn is_closing(records: &[Record]) -> bool {
    let serial = soa_serial(&records[0]);
    let soas: Vec<u32> = records
        .iter()
        .filter(|r| r.record_type() == RecordType::SOA)
        .map(soa_serial)
        .collect();
    // AXFR form: exactly two SOAs.
    let axfr = records[1].record_type() != RecordType::SOA;
    if axfr {
        return soas.len() == 2;
    }
    // IXFR: first SOA, pairs (old, new), last SOA.
    soas.len() >= 4 && soas.len().is_multiple_of(2) && *soas.last().unwrap() == serial
}

pub fn soa_serial(record: &Record) -> u32 {
    match &record.data {
        RData::SOA(soa) => soa.serial,
        _ => 0,
    }
}

/// A transfer request (signed with `key` when given) and its MAC.
pub fn transfer_request(
    zone: &str,
    ixfr_from: Option<u32>,
    key: Option<&Key>,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    let name = Name::from_str(zone).unwrap();
    let qtype = if ixfr_from.is_some() {
        RecordType::IXFR
    } else {
        RecordType::AXFR
    };
    message.add_query(Query::query(name.clone(), qtype));
    if let Some(serial) = ixfr_from {
        let soa = hickory_proto::rr::rdata::SOA::new(
            Name::from_str("ns1.example.internal.").unwrap(),
            Name::from_str("hostmaster.example.internal.").unwrap(),
            serial,
            3600,
            600,
            604800,
            5,
        );
        message
            .authorities
            .push(Record::from_rdata(name, 0, RData::SOA(soa)));
    }
    match key {
        Some(key) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let (signature, _) = key.signer().sign_message(&message, now).unwrap();
            let mac = signature.data.mac.clone();
            message.set_signature(signature);
            (message.to_vec().unwrap(), Some(mac))
        }
        None => (message.to_vec().unwrap(), None),
    }
}
