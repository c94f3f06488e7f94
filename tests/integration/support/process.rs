//! The real `hadns` binary: started with [`Hadns::with`] (a builder: config, zone,
//! listening addresses, environment, files, limits, network namespace), followed through
//! its log, queried, signalled and stopped.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{addresses, udp_query, wait_for};

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

/// `hadns ARGS --config CONFIG` as the tests run it.
pub fn hadns_command(args: &[&str], config: &Path) -> Command {
    hadns_through(Command::new(env!("CARGO_BIN_EXE_hadns")), args, config)
}

/// `program` (hadns, or a command that ends with hadns's path and execs it: `ip netns
/// exec`, `setpriv`) given `ARGS --config CONFIG`, the tests' log filter, piped output,
/// and killed when dropped.
pub fn hadns_through(mut program: Command, args: &[&str], config: &Path) -> Command {
    program
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", TEST_LOG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    program
}

/// What a test writes into the config's directory before hadns reads it.
type Prepare<'a> = Box<dyn FnOnce(&Path) + 'a>;

/// How to start hadns: [`Hadns::with`] a config, then whatever the test changes from
/// the defaults ([`ZONE`], listening on 127.0.0.1:0, [`TEST_LOG`], this network
/// namespace), then [`Start::start`].
#[must_use = "a Start does nothing until .start().await"]
pub struct Start<'a> {
    config: String,
    zone: String,
    listen: Vec<String>,
    env: Vec<(String, String)>,
    prepare: Option<Prepare<'a>>,
    nofile: Option<(u64, u64)>,
    netns: Option<String>,
}

impl<'a> Start<'a> {
    /// The zone file of example.internal (default [`ZONE`]).
    pub fn zone(mut self, zone: &str) -> Self {
        self.zone = zone.to_string();
        self
    }

    /// Listens on each of `listen`; `Hadns::addrs` has the bound addresses in order.
    pub fn listen(mut self, listen: &[&str]) -> Self {
        self.listen = listen.iter().map(|l| l.to_string()).collect();
        self
    }

    /// hadns's log filter (RUST_LOG), default [`TEST_LOG`].
    pub fn log(self, filter: &str) -> Self {
        self.env("RUST_LOG", filter)
    }

    /// An environment variable of hadns's.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds files to the config's directory (token files, hook scripts, zones) before
    /// hadns reads it.
    pub fn prepare(mut self, prepare: impl FnOnce(&Path) + 'a) -> Self {
        self.prepare = Some(Box::new(prepare));
        self
    }

    /// hadns's soft and hard limits on open files.
    pub fn nofile(mut self, soft: u64, hard: u64) -> Self {
        self.nofile = Some((soft, hard));
        self
    }

    /// Runs hadns inside network namespace `ns` (`ip netns exec`, which execs hadns, so
    /// signals reach it directly).
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_string());
        self
    }

    /// Writes the files, starts `hadns serve` and waits for its listening lines.
    pub async fn start(self) -> Hadns {
        let listen: Vec<&str> = self.listen.iter().map(String::as_str).collect();
        let (dir, path) = write_config(&self.config, &self.zone, &listen);
        if let Some(prepare) = self.prepare {
            prepare(dir.path());
        }
        let mut command = match &self.netns {
            None => hadns_command(&["serve"], &path),
            Some(ns) => {
                let mut ip = Command::new("ip");
                ip.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_hadns")]);
                hadns_through(ip, &["serve"], &path)
            }
        };
        for (key, value) in &self.env {
            command.env(key, value);
        }
        if let Some((soft, hard)) = self.nofile {
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
        }
        Hadns::attach(command.spawn().unwrap(), dir, listen.len()).await
    }
}

impl Hadns {
    /// Starts `hadns serve` with `config` and the defaults; waits for its listening line.
    pub async fn start(config: &str) -> Hadns {
        Hadns::with(config).start().await
    }

    /// How to start hadns with `config`: a builder for what a test changes.
    pub fn with<'a>(config: &str) -> Start<'a> {
        Start {
            config: config.to_string(),
            zone: ZONE.to_string(),
            listen: vec!["127.0.0.1:0".to_string()],
            env: Vec::new(),
            prepare: None,
            nofile: None,
            netns: None,
        }
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
        let waited = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        // Past the deadline, ask the kernel directly (waitpid without blocking): an exit the
        // harness's wait did not notice is the harness's problem, and said so, not hadns's.
        let (status, noticed) = match waited {
            Ok(status) => (Some(status.unwrap()), true),
            Err(_) => (self.child.try_wait().ok().flatten(), false),
        };
        let log = self.log.lock().unwrap();
        let tail = log[log.len().saturating_sub(40)..].join("\n");
        // hadns ends a stuck shutdown itself (server/stopping.rs) and says where it was.
        let stuck = log.iter().any(|l| l.contains("shutdown did not finish"));
        match status {
            Some(status) if !stuck => {
                if !noticed {
                    eprintln!("hadns had exited ({status}), unnoticed by the wait for 10 s");
                }
                status
            }
            _ => panic!("hadns did not stop promptly after {signal}; its last log lines:\n{tail}"),
        }
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
