//! Real secondaries of hadns: NSD, Knot and BIND (`named`), each in the foreground on a
//! loopback port with its own directory, configured as docs/secondaries.md shows. And a
//! zone transfer client that checks hadns's TSIG chain with hickory's verifier.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::support::dbs::free_port;
use crate::support::*;

mod servers;
mod transfer;

pub use servers::{Key, Kind, Secondary};
pub use transfer::{soa_serial, transfer, transfer_request};

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
        Hadns::with(config)
            .zone(zone)
            .listen(&[listen])
            .prepare(move |dir| {
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
            })
            .start()
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
