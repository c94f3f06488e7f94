//! The VIP switchover benchmark (bench/vip-switchover.sh runs it): in the namespace
//! topology, the gap a client sees (last reply from node1 to first reply from node2) when
//! node1's service dies, for hadns with interval = "100ms" and for keepalived (VRRPv3,
//! advert_int 1 and 0.1, a track_script on the same service), in the same run.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::Hadns;
use crate::support::netns::*;

const VIP: &str = "192.0.2.100/24";
const LIMIT: Duration = Duration::from_secs(30);

enum Contender {
    Hadns,
    Keepalived { advert_int: &'static str },
}

impl Contender {
    fn name(&self) -> String {
        match self {
            Contender::Hadns => "hadns (interval 100ms, fall 1)".into(),
            Contender::Keepalived { advert_int } => {
                format!("keepalived VRRPv3 advert_int {advert_int}")
            }
        }
    }
}

/// What runs on one node for one round; stopped on drop.
enum Running {
    /// Held for its drop, which stops it.
    Hadns { _process: Box<Hadns> },
    Keepalived {
        child: Child,
        _dir: tempfile::TempDir,
    },
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Running::Keepalived { child, .. } = self {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
}

/// The shared service pool and record, and a vip with default settings.
fn hadns_config(local: &str) -> String {
    service_pool("")
        + &format!(
            "\n[[vip]]\nrecord = \"svc.example.internal.\"\nnode = \"{local}\"\naddress = \"{VIP}\"\ninterface = \"eth0\"\n"
        )
}

fn keepalived(topology: &Topology, host: &str, priority: u32, advert_int: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("check.sh");
    std::fs::write(&script, "#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/7000\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let conf = dir.path().join("keepalived.conf");
    std::fs::write(
        &conf,
        format!(
            r#"
global_defs {{
    script_user root
    enable_script_security
    vrrp_version 3
}}
vrrp_script check_service {{
    script "{}"
    interval 1
    timeout 1
    fall 1
    rise 2
}}
vrrp_instance VI {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert_int}
    virtual_ipaddress {{
        {VIP}
    }}
    track_script {{
        check_service
    }}
}}
"#,
            script.display()
        ),
    )
    .unwrap();
    let pid = |name: &str| dir.path().join(name).display().to_string();
    let child = topology
        .command(host, "keepalived")
        .args(["--dont-fork", "--log-console", "--use-file"])
        .arg(&conf)
        .args([
            "--pid",
            &pid("k.pid"),
            "--vrrp_pid",
            &pid("v.pid"),
            "--checkers_pid",
            &pid("c.pid"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "cannot start keepalived: apt-get install keepalived (bench/vip-switchover.sh does)",
        );
    Running::Keepalived { child, _dir: dir }
}

async fn one_round(contender: &Contender) -> Option<Duration> {
    let topology = Topology::build()?;
    let mut services = [
        topology.start_service("node1"),
        topology.start_service("node2"),
    ];
    let address: IpAddr = "192.0.2.100".parse().unwrap();
    let _running: Vec<Running> = match contender {
        Contender::Hadns => vec![
            Running::Hadns {
                _process: Box::new(
                    Hadns::with(&hadns_config("node1"))
                        .netns(&topology.ns("node1"))
                        .start()
                        .await,
                ),
            },
            Running::Hadns {
                _process: Box::new(
                    Hadns::with(&hadns_config("node2"))
                        .netns(&topology.ns("node2"))
                        .start()
                        .await,
                ),
            },
        ],
        Contender::Keepalived { advert_int } => {
            vec![
                keepalived(&topology, "node1", 100, advert_int),
                keepalived(&topology, "node2", 50, advert_int),
            ]
        }
    };
    topology.wait_holds("node1", address, true, LIMIT);
    let client = ClientLoop::start(&topology, SocketAddr::new(address, 7000));
    client.wait_for("node1", LIMIT);
    let sampler = HolderSampler::start(&topology, address);
    services[0].kill().unwrap();
    services[0].wait().unwrap();
    client.wait_for("node2", LIMIT);
    let gap = client.gap("node1", "node2");
    let (samples, both) = sampler.finish();
    assert_eq!(
        both,
        0,
        "{}: the vip was on both nodes in {both} of {samples} samples",
        contender.name()
    );
    client.finish();
    let _ = services[1].kill();
    let _ = services[1].wait();
    gap
}

pub async fn vip_switchover_benchmark() {
    let rounds: usize = std::env::var("HADNS_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let contenders = [
        Contender::Hadns,
        Contender::Keepalived { advert_int: "1" },
        Contender::Keepalived { advert_int: "0.1" },
    ];
    let mut table = Vec::new();
    for contender in &contenders {
        let mut gaps = Vec::new();
        for _ in 0..rounds {
            match one_round(contender).await {
                Some(gap) => gaps.push(gap),
                None => return,
            }
        }
        gaps.sort();
        println!("{}: {gaps:?}", contender.name());
        table.push((
            contender.name(),
            gaps[gaps.len() / 2],
            gaps[0],
            gaps[gaps.len() - 1],
        ));
    }
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!("\n| contender | median gap | min | max | hadns median / this |");
    println!("| --- | --- | --- | --- | --- |");
    let hadns = table[0].1;
    for (name, median, min, max) in &table {
        println!(
            "| {name} | {} | {} | {} | {:.2} |",
            ms(*median),
            ms(*min),
            ms(*max),
            hadns.as_secs_f64() / median.as_secs_f64()
        );
    }
    println!("\n{rounds} rounds each; zero samples with the vip on both nodes.");
}
