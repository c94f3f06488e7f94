//! Test harness: the real `hadns` binary on loopback with ephemeral ports, real backends,
//! and a small DNS client over UDP and TCP.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

pub const ZONE: &str = "$TTL 300
@       IN SOA ns1.example.internal. hostmaster.example.internal. 7 3600 600 604800 5
@       IN NS  ns1.example.internal.
ns1     IN A   127.0.0.1
mail    IN A   127.0.0.25
mail    IN MX  10 mail.example.internal.
alias   IN CNAME mail.example.internal.
";

/// [`ZONE`] and `hosts` more A records (`host0` ... , 10.x.y.z): a large zone.
pub fn zone_with_hosts(hosts: usize) -> String {
    let mut zone = ZONE.to_string();
    for i in 0..hosts {
        zone += &format!(
            "host{i} IN A 10.{}.{}.{}\n",
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        );
    }
    zone
}

/// Waits for `condition` to hold, checking again every few milliseconds, until `limit`.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for_value(limit, what, &true, condition).await;
}

/// Waits until `value()` is `expected`, asking again every few milliseconds, until
/// `limit`; a timeout names the last value seen.
pub async fn wait_for_value<T, F, Fut>(limit: Duration, what: &str, expected: &T, mut value: F)
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last = value().await;
        if &last == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what} (last: {last:?})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// === the hadns process ===

/// The `addr=...` field of a log line.
fn addr_field(line: &str) -> SocketAddr {
    line.split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no addr= in {line}"))
}

pub struct Hadns {
    pub child: Child,
    /// The first listening address.
    pub addr: SocketAddr,
    pub addrs: Vec<SocketAddr>,
    /// Holds the config and zone files for as long as hadns runs.
    dir: tempfile::TempDir,
    pub log: Arc<Mutex<Vec<String>>>,
    log_changed: Arc<Notify>,
}

/// Writes `config` (with `listen` and `zones_dir` filled in) and the zone file to a
/// temporary directory.
pub fn write_config(config: &str, zone: &str, listen: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    std::fs::write(dir.path().join("zones/example.internal.zone"), zone).unwrap();
    let path = dir.path().join("hadns.toml");
    let listen: Vec<String> = listen.iter().map(|l| format!("{l:?}")).collect();
    let full = format!(
        "[dns]\nlisten = [{}]\nzones_dir = \"zones\"\n\n{config}",
        listen.join(", ")
    );
    std::fs::write(&path, full).unwrap();
    (dir, path)
}

/// The log filter the tests run hadns with.
pub const TEST_LOG: &str = "info,hickory_server=warn";

pub fn hadns_command(args: &[&str], config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hadns"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", TEST_LOG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

impl Hadns {
    /// Starts `hadns serve` and waits for its "listening" line.
    pub async fn start(config: &str) -> Hadns {
        Hadns::start_with_zone(config, ZONE).await
    }

    pub async fn start_with_zone(config: &str, zone: &str) -> Hadns {
        Hadns::start_listening(config, zone, &["127.0.0.1:0"]).await
    }

    /// Starts hadns listening on each of `listen`; `addrs` has the bound addresses in order.
    pub async fn start_listening(config: &str, zone: &str, listen: &[&str]) -> Hadns {
        Hadns::start_logging(config, zone, listen, TEST_LOG).await
    }

    /// Like `start_listening`, with hadns's log filter (RUST_LOG) set to `log`.
    pub async fn start_logging(config: &str, zone: &str, listen: &[&str], log: &str) -> Hadns {
        Hadns::start_env(config, zone, listen, &[("RUST_LOG", log)], |_| {}).await
    }

    /// Starts hadns with extra environment variables; `prepare` may add files to the
    /// config's directory (token files, hook scripts) before hadns reads it.
    pub async fn start_env(
        config: &str,
        zone: &str,
        listen: &[&str],
        env: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Hadns {
        let (dir, path) = write_config(config, zone, listen);
        prepare(dir.path());
        let mut command = hadns_command(&["serve"], &path);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        Hadns::attach(child, dir, listen.len()).await
    }

    /// Starts hadns with its soft and hard limits on open files set to `nofile`, on
    /// 127.0.0.1:0, logging with `log`.
    pub async fn start_with_nofile(
        config: &str,
        zone: &str,
        (soft, hard): (u64, u64),
        log: &str,
    ) -> Hadns {
        let (dir, path) = write_config(config, zone, &["127.0.0.1:0"]);
        let mut command = hadns_command(&["serve"], &path);
        command.env("RUST_LOG", log);
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_NOFILE,
                    soft,
                    hard,
                )
                .map_err(std::io::Error::from)
            });
        }
        Hadns::attach(command.spawn().unwrap(), dir, 1).await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// The directory with the config (`hadns.toml`) and `zones/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hadns.toml")
    }

    /// Replaces the config file (listening on 127.0.0.1:0, as `start` wrote it) and, if
    /// given, the zone file; nothing is reloaded yet.
    pub fn rewrite(&self, config: &str, zone: Option<&str>) {
        let full = format!("[dns]\nlisten = [\"127.0.0.1:0\"]\nzones_dir = \"zones\"\n\n{config}");
        std::fs::write(self.config_path(), full).unwrap();
        if let Some(zone) = zone {
            std::fs::write(self.dir().join("zones/example.internal.zone"), zone).unwrap();
        }
    }

    /// Sends SIGHUP and waits for the reload's outcome in the log (the `n`th outcome
    /// since start, `applied` or `rejected`); returns it.
    pub async fn sighup(&mut self) -> &'static str {
        let outcomes = |lines: &[String]| {
            lines
                .iter()
                .filter(|l| {
                    l.contains("configuration reloaded")
                        || l.contains("reload rejected; the running configuration stays")
                })
                .count()
        };
        let before = outcomes(&self.log.lock().unwrap());
        self.signal(nix::sys::signal::Signal::SIGHUP);
        self.wait_until("a reload outcome", Duration::from_secs(20), |lines| {
            outcomes(lines) > before
        })
        .await;
        let lines = self.log.lock().unwrap();
        let last = lines
            .iter()
            .rev()
            .find(|l| {
                l.contains("configuration reloaded")
                    || l.contains("reload rejected; the running configuration stays")
            })
            .unwrap();
        if last.contains("configuration reloaded") {
            "applied"
        } else {
            "rejected"
        }
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.id().unwrap() as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
    }

    /// The admin endpoint's address, from its "admin endpoint listening" line.
    pub async fn admin(&mut self) -> SocketAddr {
        let line = self
            .wait_for_log("admin endpoint listening", Duration::from_secs(10))
            .await;
        addr_field(&line)
    }

    /// Starts `hadns serve` inside network namespace `ns` (`ip netns exec`, which execs
    /// hadns, so signals reach it directly).
    pub async fn start_in_netns(ns: &str, config: &str) -> Hadns {
        Hadns::start_in_netns_at(ns, config, &["127.0.0.1:0"], |_| {}).await
    }

    /// Like `start_in_netns`, listening on `listen`; `prepare` may add files to the
    /// config's directory first.
    pub async fn start_in_netns_at(
        ns: &str,
        config: &str,
        listen: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> Hadns {
        let (dir, path) = write_config(config, ZONE, listen);
        prepare(dir.path());
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                env!("CARGO_BIN_EXE_hadns"),
                "serve",
                "--config",
            ])
            .arg(&path)
            .env("RUST_LOG", TEST_LOG)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Hadns::attach(child, dir, listen.len()).await
    }

    /// Follows a started hadns: collects its log and waits for its listening lines.
    pub async fn attach(mut child: Child, dir: tempfile::TempDir, listeners: usize) -> Hadns {
        let log = Arc::new(Mutex::new(Vec::new()));
        let log_changed = Arc::new(Notify::new());
        let stderr = child.stderr.take().unwrap();
        let (log2, changed2) = (log.clone(), log_changed.clone());
        let pid = child.id().unwrap_or(0);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("hadns {pid}| {line}");
                log2.lock().unwrap().push(line);
                changed2.notify_waiters();
            }
            changed2.notify_waiters();
        });
        let mut hadns = Hadns {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            addrs: Vec::new(),
            dir,
            log,
            log_changed,
        };
        let listening = |lines: &[String]| -> Vec<SocketAddr> {
            lines
                .iter()
                .filter(|l| l.contains("listening on udp and tcp"))
                .map(|l| addr_field(l))
                .collect()
        };
        hadns
            .wait_until("every listening line", Duration::from_secs(10), |lines| {
                listening(lines).len() == listeners
            })
            .await;
        hadns.addrs = listening(&hadns.log.lock().unwrap());
        hadns.addr = hadns.addrs[0];
        hadns
    }

    /// Waits for a log line containing `needle` and returns it.
    pub async fn wait_for_log(&mut self, needle: &str, limit: Duration) -> String {
        self.wait_until(needle, limit, |lines| {
            lines.iter().any(|l| l.contains(needle))
        })
        .await;
        let lines = self.log.lock().unwrap();
        lines.iter().find(|l| l.contains(needle)).unwrap().clone()
    }

    /// Waits until `condition` holds for the log lines so far.
    pub async fn wait_until(
        &mut self,
        what: &str,
        limit: Duration,
        condition: impl Fn(&[String]) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.log_changed.notified();
            if condition(&self.log.lock().unwrap()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("hadns exited ({status}) before logging {what:?}");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "hadns did not log {what:?} within {limit:?}"
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
        }
    }

    /// How many log lines so far contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn stop(self) -> std::process::ExitStatus {
        self.stop_with(nix::sys::signal::Signal::SIGTERM).await
    }

    /// Sends `signal` and waits for the exit status.
    pub async fn stop_with(mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        self.signal(signal);
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("hadns did not exit within 10s of the signal")
            .unwrap()
    }

    pub async fn query(&self, name: &str, qtype: RecordType) -> Message {
        udp_query(self.addr, name, qtype, None).await
    }

    /// The A/AAAA addresses of `name`, or the response code if not NOERROR.
    pub async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, ResponseCode> {
        let m = self.query(name, RecordType::A).await;
        if m.metadata.response_code != ResponseCode::NoError {
            return Err(m.metadata.response_code);
        }
        Ok(addresses(&m))
    }

    /// Waits until `name` answers exactly `expected`.
    pub async fn wait_for_answer(&self, name: &str, expected: &[IpAddr], limit: Duration) {
        wait_for(limit, &format!("{name} to answer {expected:?}"), || async {
            self.addresses(name).await.as_deref() == Ok(expected)
        })
        .await;
    }

    pub async fn soa_serial(&self) -> u32 {
        let m = self.query("example.internal.", RecordType::SOA).await;
        match &m.answers[0].data {
            RData::SOA(soa) => soa.serial,
            other => panic!("not an SOA: {other:?}"),
        }
    }
}

pub fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

pub use crate::raw::*;

// === admin endpoint client ===

/// GET `path` from an admin endpoint: the status code and the body.
pub async fn get(admin: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{admin}{path}")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// GET a JSON document (status 200 asserted).
pub async fn get_json(admin: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = get(admin, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

// === DNS client ===

pub fn query_message(name: &str, qtype: RecordType, edns_payload: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(payload) = edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        m.set_edns(edns);
    }
    m
}

/// A query for `name` (A, EDNS with a 1232-byte payload) carrying an EDNS Client Subnet
/// option for `subnet` (address, source prefix) when given.
pub fn subnet_query(name: &str, subnet: Option<(IpAddr, u8)>) -> Message {
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
    let mut query = query_message(name, RecordType::A, Some(1232));
    if let Some((address, prefix)) = subnet {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(address, prefix, 0)));
        query.set_edns(edns);
    }
    query
}

/// An answer's addresses, sorted, and the scope prefix of its ECS option (read from the
/// option's wire form: family, source, scope).
pub fn subnet_answer(answer: &Message) -> (Vec<IpAddr>, Option<u8>) {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    use hickory_proto::serialize::binary::BinEncodable;
    let scope = answer
        .edns
        .as_ref()
        .and_then(|e| match e.options().get(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(subnet)) => Some(subnet.to_bytes().unwrap()[3]),
            _ => None,
        });
    let mut addresses = addresses(answer);
    addresses.sort();
    (addresses, scope)
}

pub async fn udp_query(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    edns: Option<u16>,
) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp_exchange(&socket, server, &query_message(name, qtype, edns)).await
}

/// Sends `query` once and waits up to `wait` for its answer (answers to other ids, late
/// ones to earlier queries, are skipped): `None` is a lost query.
pub async fn udp_exchange_once(
    socket: &UdpSocket,
    server: SocketAddr,
    query: &Message,
    wait: Duration,
) -> Option<Message> {
    let mut buf = vec![0u8; 65535];
    socket
        .send_to(&query.to_vec().unwrap(), server)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        let (len, _) = received.unwrap();
        let m = Message::from_vec(&buf[..len]).unwrap();
        if m.metadata.id == query.metadata.id {
            return Some(m);
        }
    }
    None
}

/// Sends `query` and waits for its answer as a stub resolver does: a datagram may be lost
/// on a loaded machine, so it is sent again after 2 s, up to three times in all. Every
/// retry is printed; three unanswered tries fail the test. Tests that must see every lost
/// query (the query loop, the concurrency test) use `udp_exchange_once`.
pub async fn udp_exchange(socket: &UdpSocket, server: SocketAddr, query: &Message) -> Message {
    const TRIES: u32 = 3;
    for attempt in 1..=TRIES {
        let answer = udp_exchange_once(socket, server, query, Duration::from_secs(2)).await;
        if let Some(m) = answer {
            return m;
        }
        eprintln!(
            "no UDP answer from {server} within 2s (try {attempt} of {TRIES}) to {:?}",
            query.queries
        );
    }
    panic!(
        "{server} did not answer {:?} in {TRIES} tries",
        query.queries
    );
}

/// Sends one query on an open TCP connection and reads its answer.
pub async fn tcp_exchange(stream: &mut TcpStream, query: &Message) -> Message {
    let bytes = query.to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

// === backends ===

/// A TCP service on a fixed address that can be stopped (listener closed) and started.
pub struct TcpBackend {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
}

fn bind_reusable(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

impl TcpBackend {
    pub async fn start(ip: &str) -> TcpBackend {
        let listener = bind_reusable(SocketAddr::new(ip.parse().unwrap(), 0)).unwrap();
        let mut backend = TcpBackend {
            addr: listener.local_addr().unwrap(),
            stop: None,
        };
        backend.serve(listener);
        backend
    }

    fn serve(&mut self, listener: TcpListener) {
        let (tx, mut rx) = oneshot::channel::<oneshot::Sender<()>>();
        self.stop = Some(tx);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => { let _ = accepted; }
                    ack = &mut rx => {
                        drop(listener);
                        if let Ok(ack) = ack { let _ = ack.send(()); }
                        return;
                    }
                }
            }
        });
    }

    /// Closes the listener; returns once it is closed.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let (ack, done) = oneshot::channel();
            stop.send(ack).unwrap();
            done.await.unwrap();
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        // While the listener is closed, a probe's connection to this address can take the
        // same port as its own source port (a TCP self-connect: both ports come from the
        // ephemeral range); the port is free again once that probe closes it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match bind_reusable(self.addr) {
                Ok(listener) => break listener,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    pub fn ip(&self) -> IpAddr {
        self.addr.ip()
    }
}

/// An HTTP service whose status and body the test sets.
pub struct HttpBackend {
    pub addr: SocketAddr,
    pub reply: Arc<Mutex<(u16, String)>>,
}

impl HttpBackend {
    pub async fn start(ip: &str, status: u16, body: &str) -> HttpBackend {
        let listener = TcpListener::bind(SocketAddr::new(ip.parse().unwrap(), 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let reply = Arc::new(Mutex::new((status, body.to_string())));
        let reply2 = reply.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let reply = reply2.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let (status, body) = reply.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        HttpBackend { addr, reply }
    }

    pub fn set(&self, status: u16, body: &str) {
        *self.reply.lock().unwrap() = (status, body.to_string());
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A pool of tcp nodes with one `first` record `www`, one node per backend.
pub fn tcp_pool_config(backends: &[&TcpBackend], pool_extra: &str, record_extra: &str) -> String {
    let mut s = format!("[[pool]]\nname = \"web\"\ncheck = \"tcp\"\n{pool_extra}\n");
    for (i, b) in backends.iter().enumerate() {
        s.push_str(&format!(
            "[[pool.node]]\nname = \"web{}\"\naddress = \"{}\"\nport = {}\npriority = {}\n",
            i + 1,
            b.addr.ip(),
            b.addr.port(),
            100 - i * 10
        ));
    }
    s.push_str(&format!(
        "\n[[record]]\nname = \"www.example.internal.\"\npool = \"web\"\n{record_extra}\n"
    ));
    s
}

/// hadns with one tcp backend on `ip` behind www.example.internal. (checked every 100 ms)
/// and `dns_lines` in its [dns] table; returns once www answers the backend.
pub async fn start_with_web(ip: &str, dns_lines: &str, zone: &str) -> (Hadns, TcpBackend) {
    let web = TcpBackend::start(ip).await;
    let config = dns_lines.to_string() + &tcp_pool_config(&[&web], "interval = \"100ms\"", "");
    let hadns = Hadns::start_with_zone(&config, zone).await;
    hadns
        .wait_for_answer(
            "www.example.internal.",
            &[web.ip()],
            Duration::from_secs(10),
        )
        .await;
    (hadns, web)
}

/// Queries `name` A in a tight loop until stopped, each query sent once; returns how often
/// each address was answered, and fails the test if any answer held more than one address
/// or any query went unanswered for 2 s.
pub struct QueryLoop {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Result<(Seen, Sequence), String>>,
}

/// The answers in the order they appeared, each run of the same answer once.
pub type Sequence = Vec<Option<IpAddr>>;

pub type Seen = std::collections::HashMap<Option<IpAddr>, u64>;

impl QueryLoop {
    pub fn start(server: SocketAddr, name: &str) -> QueryLoop {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop2, name) = (stop.clone(), name.to_string());
        let task = tokio::spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut seen = Seen::new();
            let mut sequence = Sequence::new();
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let query = query_message(&name, RecordType::A, None);
                let Some(m) =
                    udp_exchange_once(&socket, server, &query, Duration::from_secs(2)).await
                else {
                    return Err(format!("{name}: a query went unanswered (after {seen:?})"));
                };
                let got = addresses(&m);
                if got.len() > 1 {
                    return Err(format!(
                        "{name} answered two primaries: {got:?} (after {seen:?})"
                    ));
                }
                let answer = got.first().copied();
                *seen.entry(answer).or_insert(0) += 1;
                if sequence.last() != Some(&answer) {
                    sequence.push(answer);
                }
            }
            Ok((seen, sequence))
        });
        QueryLoop { stop, task }
    }

    /// How often each answer was seen.
    pub async fn finish(self) -> Seen {
        self.finish_with_sequence().await.0
    }

    /// How often each answer was seen, and the answers in the order they appeared (each
    /// run of the same answer once).
    pub async fn finish_with_sequence(self) -> (Seen, Sequence) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.task.await {
            Ok(Ok(seen)) => seen,
            Ok(Err(problem)) => panic!("{problem}"),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}
