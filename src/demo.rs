//! `hadns demo`: hadns with two built-in local backends, failing over on a timer.
//!
//! It writes a real config and zone file to a temporary directory, starts two TCP
//! backends (127.0.0.11 and 127.0.0.12), serves DNS, and then stops and restarts the
//! primary backend, printing every answer change and how long it took after the stop.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const NAME: &str = "www.example.internal.";
/// How long each phase (primary up, primary down) lasts.
const PHASE: Duration = Duration::from_secs(3);
/// How often the demo asks hadns for the answer.
const POLL: Duration = Duration::from_millis(5);

const ZONE: &str = "$TTL 60
@   IN SOA ns1.example.internal. admin.example.internal. 1 60 60 3600 1
@   IN NS  ns1.example.internal.
ns1 IN A   127.0.0.1
";

/// A TCP backend that can be stopped and started on a fixed address.
struct Backend {
    name: &'static str,
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Backend {
    async fn start(name: &'static str, ip: [u8; 4]) -> anyhow::Result<Backend> {
        let listener = listen(SocketAddr::from((ip, 0)))?;
        let addr = listener.local_addr()?;
        let mut backend = Backend {
            name,
            addr,
            task: None,
        };
        backend.task = Some(tokio::spawn(accept_forever(listener)));
        Ok(backend)
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        // The aborted task drops its listener when it is next polled; retry until the port is free.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match listen(self.addr) {
                Ok(l) => break l,
                Err(_) if Instant::now() < deadline => tokio::task::yield_now().await,
                Err(e) => {
                    return Err(e).with_context(|| format!("restarting backend {}", self.name));
                }
            }
        };
        self.task = Some(tokio::spawn(accept_forever(listener)));
        Ok(())
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

async fn accept_forever(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        drop(stream);
    }
}

pub async fn run(cycles: u32, port: u16, shutdown: CancellationToken) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("hadns-demo-{}", std::process::id()));
    let result = demo(&dir, cycles, port, shutdown).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn demo(
    dir: &Path,
    cycles: u32,
    port: u16,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut web1 = Backend::start("web1", [127, 0, 0, 11])
        .await
        .context("starting backend web1")?;
    let web2 = Backend::start("web2", [127, 0, 0, 12])
        .await
        .context("starting backend web2")?;

    let config_path = dir.join("hadns.toml");
    let (prepared, sockets, admin) =
        set_up(dir, &config_path, port, (web1.addr, web2.addr)).await?;
    let server_addr = sockets.local_addrs()[0];
    let admin_addr = admin.local_addr()?;
    let server_shutdown = CancellationToken::new();
    let server = crate::server::start(
        prepared,
        crate::server::Options {
            config_file: Some(config_path.clone()),
            sockets,
            vips: Vec::new(),
        },
        server_shutdown.clone(),
    )?;
    let admin = tokio::spawn(crate::admin::serve(
        admin,
        server.handle().admin_state(Vec::new()),
        server_shutdown.clone(),
    ));

    banner(
        &config_path,
        (web1.addr, web2.addr),
        admin_addr,
        server_addr,
    );
    println!();

    let client = UdpSocket::bind("127.0.0.1:0").await?;
    let mut watch = Watch {
        client,
        server: server_addr,
        last: String::new(),
        started: Instant::now(),
    };
    let outcome = fail_over_and_back(&mut watch, &mut web1, cycles);
    let result = tokio::select! {
        r = outcome => r,
        _ = shutdown.cancelled() => Ok(()),
    };
    server_shutdown.cancel();
    server.wait().await?;
    admin.await??;
    drop(web2);
    println!("demo finished");
    result
}

/// Writes the config and zone into `dir`, reads them back as `hadns serve` would, and
/// binds the DNS port (a free one if `port` is taken) and the admin port (9153, or free).
async fn set_up(
    dir: &Path,
    config_path: &Path,
    port: u16,
    (web1, web2): (SocketAddr, SocketAddr),
) -> anyhow::Result<(
    crate::server::Prepared,
    crate::dns::Sockets,
    tokio::net::TcpListener,
)> {
    std::fs::create_dir_all(dir.join("zones"))?;
    std::fs::write(config_path, demo_config(port, web1, web2))?;
    std::fs::write(dir.join("zones/example.internal.zone"), ZONE)?;
    let prepared = crate::server::prepare(config_path)?;
    let mut listen = prepared.config.dns.listen.clone();
    let sockets = match crate::dns::Sockets::bind(&listen, 1).await {
        Ok(s) => s,
        Err(e) => {
            println!("port {port} is taken ({e}); using a free port instead");
            listen[0].set_port(0);
            crate::dns::Sockets::bind(&listen, 1).await?
        }
    };
    let admin = match crate::admin::bind(SocketAddr::from(([127, 0, 0, 1], 9153))).await {
        Ok(listener) => listener,
        Err(_) => crate::admin::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?,
    };
    Ok((prepared, sockets, admin))
}

/// Stops web1 and starts it again, `cycles` times (0: until stopped), printing each change
/// of the answer as it happens.
async fn fail_over_and_back(
    watch: &mut Watch,
    web1: &mut Backend,
    cycles: u32,
) -> anyhow::Result<()> {
    watch
        .until_changed(Duration::from_secs(5), "hadns starts")
        .await?;
    let mut cycle = 0;
    while cycles == 0 || cycle < cycles {
        cycle += 1;
        watch.hold(PHASE).await?;
        println!("--- stopping web1 (cycle {cycle})");
        web1.stop();
        watch
            .until_changed(Duration::from_secs(5), "web1 stopped")
            .await?;
        watch.hold(PHASE).await?;
        println!("--- starting web1 again");
        web1.restart().await?;
        watch
            .until_changed(Duration::from_secs(5), "web1 restarted")
            .await?;
    }
    anyhow::Ok(())
}

/// The demo's configuration: one pool of the two backends, one failover name.
fn demo_config(port: u16, web1: SocketAddr, web2: SocketAddr) -> String {
    format!(
        r#"[dns]
listen = ["127.0.0.1:{port}"]
zones_dir = "zones"

[[pool]]
name = "web"
check = "tcp"
interval = "100ms"
timeout = "200ms"
rise = 2
fall = 1
[[pool.node]]
name = "web1"
address = "{}"
port = {}
priority = 100
[[pool.node]]
name = "web2"
address = "{}"
port = {}
priority = 50

[[record]]
name = "{NAME}"
pool = "web"
select = "first"
ttl = 1
failback = true

[admin]
listen = "127.0.0.1:9153"
"#,
        web1.ip(),
        web1.port(),
        web2.ip(),
        web2.port()
    )
}

/// What runs where, and what to try.
fn banner(
    config_path: &Path,
    (web1, web2): (SocketAddr, SocketAddr),
    admin_addr: SocketAddr,
    server_addr: SocketAddr,
) {
    println!("hadns demo");
    println!(
        "  config:   {} (zone files beside it)",
        config_path.display()
    );
    println!(
        "  backends: web1 at {} (priority 100), web2 at {} (priority 50)",
        web1, web2
    );
    println!("  checks:   tcp every 100ms, down after 1 failure, up after 2 successes");
    println!(
        "  status:   http://{admin_addr}/ (a page in your browser), /status, /metrics, /events"
    );
    println!(
        "  try it:   dig @{} -p {} {NAME} +norec",
        server_addr.ip(),
        server_addr.port()
    );
}

/// Polls hadns for the demo name and prints each change.
struct Watch {
    client: UdpSocket,
    server: SocketAddr,
    last: String,
    started: Instant,
}

impl Watch {
    async fn answer(&self) -> anyhow::Result<String> {
        let answer =
            crate::dns::query_addresses(&self.client, self.server, NAME, Duration::from_secs(1))
                .await?;
        Ok(match answer {
            Ok(addresses) if addresses.is_empty() => "no address (NODATA)".to_string(),
            Ok(addresses) => addresses
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            Err(rcode) => rcode,
        })
    }

    /// Waits until the answer changes, and prints how long that took.
    async fn until_changed(&mut self, limit: Duration, after: &str) -> anyhow::Result<()> {
        let since = Instant::now();
        loop {
            let answer = self.answer().await?;
            if answer != self.last && !(self.last.is_empty() && answer == "SERVFAIL") {
                println!(
                    "[{:>6.2}s] {NAME} -> {answer:<12} ({} ms after {after})",
                    self.started.elapsed().as_secs_f64(),
                    since.elapsed().as_millis()
                );
                self.last = answer;
                return Ok(());
            }
            anyhow::ensure!(
                since.elapsed() < limit,
                "the answer did not change within {limit:?} after {after}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Keeps polling for `phase`, reporting any unexpected change.
    async fn hold(&mut self, phase: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + phase;
        while Instant::now() < until {
            let answer = self.answer().await?;
            if answer != self.last {
                println!(
                    "[{:>6.2}s] {NAME} -> {answer} (unexpected change)",
                    self.started.elapsed().as_secs_f64()
                );
                self.last = answer;
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }
}
