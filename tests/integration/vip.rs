//! L2 mode in network namespaces: a virtual IP follows the service between two hosts, each
//! with its own hadns, and is never on both.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::netns::*;
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(20);

/// The config of the hadns on `local`: both nodes' services checked over HTTP, one record,
/// and the vip for the local node.
fn config(local: &str, vip: &str, failback: bool, vip_extra: &str) -> String {
    service_pool(&format!("failback = {failback}\nmax_stale = \"0s\""))
        + &format!(
            r#"
[[vip]]
record = "svc.example.internal."
node = "{local}"
address = "{vip}"
interface = "eth0"
announce_count = 5
announce_interval = "100ms"
takeover_timeout = "1s"
{vip_extra}

[admin]
listen = "127.0.0.1:0"
"#
        )
}

/// GET `path` from the admin endpoint of the hadns on `host` (on the host's own loopback,
/// so from inside its namespace).
fn admin_get(t: &Topology, host: &str, admin: SocketAddr, path: &str) -> String {
    let fetch =
        "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())";
    let out = t
        .command(host, "python3")
        .args(["-c", fetch, &format!("http://{admin}{path}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `/status` document of the hadns on `host`.
fn status(t: &Topology, host: &str, admin: SocketAddr) -> serde_json::Value {
    let body = admin_get(t, host, admin, "/status");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET /status on {host}: {e}: {body}"))
}

/// Waits until the `/events` of the hadns on `host` (its admin endpoint on the host's own
/// loopback) contain an event of `kind`.
fn wait_event(t: &Topology, host: &str, admin: SocketAddr, kind: &str) {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        if admin_get(t, host, admin, "/events").contains(&format!("\"kind\":\"{kind}\"")) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {kind} event on {host}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Running {
    topology: Topology,
    services: Vec<std::process::Child>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for s in &mut self.services {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.id() as i32), Signal::SIGCONT);
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

fn start_services() -> Option<Running> {
    let topology = Topology::build()?;
    let services = vec![
        topology.start_service("node1"),
        topology.start_service("node2"),
    ];
    Some(Running { topology, services })
}

async fn moves_with_the_service(vip: &str, service_addr: SocketAddr, failback: bool) {
    let Some(mut running) = start_services() else {
        return;
    };
    let address: IpAddr = vip.split('/').next().unwrap().parse().unwrap();
    let t = &running.topology;
    let mut h1 = Hadns::with(&config("node1", vip, failback, ""))
        .netns(&t.ns("node1"))
        .start()
        .await;
    let h2 = Hadns::with(&config("node2", vip, failback, ""))
        .netns(&t.ns("node2"))
        .start()
        .await;
    t.wait_holds("node1", address, true, LIMIT);
    let admin1 = h1.admin().await;

    // The interface is put right: an address removed behind hadns's back comes back, one
    // added where it should not be goes.
    let family = if address.is_ipv4() { "-4" } else { "-6" };
    let del = t
        .command("node1", "ip")
        .args([family, "addr", "del", vip, "dev", "eth0"])
        .status()
        .unwrap();
    assert!(del.success());
    t.wait_holds("node1", address, true, LIMIT);
    let add = t
        .command("node2", "ip")
        .args([family, "addr", "add", vip, "dev", "eth0", "nodad"])
        .status()
        .unwrap();
    assert!(add.success());
    t.wait_holds("node2", address, false, LIMIT);
    // node2's hadns removed it (a release is an event).
    let mut h2 = h2;
    wait_event(t, "node2", h2.admin().await, "vip_released");

    let sampler = HolderSampler::start(t, address);
    let client = ClientLoop::start(t, service_addr);
    client.wait_for("node1", LIMIT);
    assert_eq!(t.neighbour("client", address), Some(t.mac("node1")));

    // node1's service stops: the vip moves to node2, and so do the client's neighbour
    // entry and its connections.
    let mut s1 = running.services.remove(0);
    s1.kill().unwrap();
    s1.wait().unwrap();
    t.wait_holds("node2", address, true, LIMIT);
    client.wait_for("node2", LIMIT);
    assert!(!t.holds("node1", address));
    // Takes and releases are events (node2's are checked by its log below).
    wait_event(t, "node1", admin1, "vip_taken");
    wait_event(t, "node1", admin1, "vip_released");
    t.wait_neighbour("client", address, "node2", LIMIT);
    println!(
        "client-visible gap node1 -> node2: {:?}",
        client.gap("node1", "node2")
    );

    // node1's service comes back: failback decides.
    running.services.insert(0, t.start_service("node1"));
    if failback {
        t.wait_holds("node1", address, true, LIMIT);
        client.wait_for("node1", LIMIT);
        assert!(!t.holds("node2", address));
    } else {
        // node1's hadns sees node1 up again (its second `to=up`: the first was at start).
        // The answer is published before that line is logged, so it is decided by now:
        // node2 stays, and with it the vip (failback ignored would answer node1 here, and
        // node1's hadns would take the vip).
        h1.wait_until("node1 up again", LIMIT, |lines| {
            lines
                .iter()
                .filter(|l| l.contains("node=node1") && l.contains("to=up"))
                .count()
                >= 2
        })
        .await;
        let svc =
            crate::support::admin::record(&status(t, "node1", admin1), "svc.example.internal.")
                .clone();
        assert_eq!(svc["nodes"], serde_json::json!(["node2"]), "{svc}");
        assert!(
            t.holds("node2", address),
            "failback = false, yet the vip left node2"
        );
        assert!(!t.holds("node1", address));
        let (samples, both) = sampler.finish();
        assert_eq!(
            both, 0,
            "the vip was on both nodes in {both} of {samples} samples"
        );
        client.finish();
        h1.stop().await;
        h2.stop().await;
        return;
    }
    let (samples, both) = sampler.finish();
    println!("{samples} samples of both nodes' addresses");
    assert_eq!(
        both, 0,
        "the vip was on both nodes in {both} of {samples} samples"
    );
    client.finish();

    // A graceful stop of the holder releases the address.
    let status = h1.stop().await;
    assert!(status.success());
    assert!(
        !t.holds("node1", address),
        "the stopped hadns left the vip behind"
    );
    h2.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vip_follows_the_service_ipv4() {
    moves_with_the_service("192.0.2.100/24", "192.0.2.100:7000".parse().unwrap(), true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vip_follows_the_service_ipv6_without_failback() {
    moves_with_the_service(
        "2001:db8::100/64",
        "[2001:db8::100]:7000".parse().unwrap(),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vip_is_not_taken_from_a_hung_holder_until_it_is_fenced() {
    let Some(running) = start_services() else {
        return;
    };
    let t = &running.topology;
    let vip = "192.0.2.100/24";
    let address: IpAddr = "192.0.2.100".parse().unwrap();
    let fence = format!(
        "fence_command = [\"ip\", \"netns\", \"exec\", \"{}\", \"ip\", \"addr\", \"del\", \"{vip}\", \"dev\", \"eth0\"]",
        t.ns("node1")
    );
    let h1 = Hadns::with(&config("node1", vip, true, ""))
        .netns(&t.ns("node1"))
        .start()
        .await;
    let mut h2 = Hadns::with(&config("node2", vip, true, &fence))
        .netns(&t.ns("node2"))
        .start()
        .await;
    t.wait_holds("node1", address, true, LIMIT);
    let sampler = HolderSampler::start(t, address);

    // Freeze node1's hadns and its service: node1's kernel still answers ARP for the vip.
    signal(&running.services[0], Signal::SIGSTOP);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(h1.child.id().unwrap() as i32),
        Signal::SIGSTOP,
    )
    .unwrap();

    let admin2 = h2.admin().await;
    wait_event(t, "node2", admin2, "vip_conflict");
    assert!(
        !t.holds("node2", address),
        "node2 took the vip while node1 still answered for it"
    );
    wait_event(t, "node2", admin2, "vip_fence");
    wait_event(t, "node2", admin2, "vip_taken");
    assert!(t.holds("node2", address));
    assert!(!t.holds("node1", address));
    let (samples, both) = sampler.finish();
    assert_eq!(
        both, 0,
        "the vip was on both nodes in {both} of {samples} samples"
    );

    signal(&running.services[0], Signal::SIGCONT);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(h1.child.id().unwrap() as i32),
        Signal::SIGCONT,
    )
    .unwrap();
    h1.stop().await;
    h2.stop().await;
}

/// Runs `hadns serve` on a vip config through `wrapper` (a command prefix) and expects it to
/// refuse to start with `message`, before binding anything.
async fn refuses_to_start(wrapper: &[&str], interface: &str, message: &str) {
    let config = config("node1", "192.0.2.100/24", true, "").replace(
        "interface = \"eth0\"",
        &format!("interface = \"{interface}\""),
    );
    let (_dir, path) = write_config(&config, ZONE, &["127.0.0.1:0"]);
    let out = tokio::process::Command::new(wrapper[0])
        .args(&wrapper[1..])
        .args([env!("CARGO_BIN_EXE_hadns"), "serve", "--config"])
        .arg(&path)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", wrapper[0]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(message), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_interface_is_an_error_at_start() {
    let Some(t) = Topology::build() else {
        return;
    };
    let ns = t.ns("node1");
    refuses_to_start(
        &["ip", "netns", "exec", &ns],
        "eth9",
        "vip[0].interface: no interface \"eth9\"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_capabilities_are_an_error_at_start() {
    // Same preconditions as the namespace tests (root, iproute2).
    let Some(_topology) = Topology::build() else {
        return;
    };
    // Root without CAP_NET_ADMIN and CAP_NET_RAW in its bounding set (setpriv, util-linux).
    refuses_to_start(
        &["setpriv", "--bounding-set=-net_admin,-net_raw"],
        "lo",
        "[[vip]] needs CAP_NET_ADMIN and CAP_NET_RAW",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_re_announces_while_held() {
    let Some(running) = start_services() else {
        return;
    };
    let t = &running.topology;
    let address: IpAddr = "192.0.2.100".parse().unwrap();
    // The idle client learns addresses from gratuitous ARP alone.
    let ok = t
        .command("client", "sysctl")
        .args(["-qw", "net.ipv4.conf.eth0.arp_accept=1"])
        .status()
        .unwrap();
    assert!(ok.success());
    // One announcement at take-over: every later one is the refresh.
    let config = config("node1", "192.0.2.100/24", true, "refresh = \"200ms\"")
        .replace("announce_count = 5", "announce_count = 1");
    let h1 = Hadns::with(&config).netns(&t.ns("node1")).start().await;
    t.wait_holds("node1", address, true, LIMIT);
    // Forget the entry: only a later announcement (the refresh) can bring it back, since the
    // client sends nothing to the vip.
    for _ in 0..3 {
        let flushed = t
            .command("client", "ip")
            .args(["neigh", "flush", "dev", "eth0"])
            .status()
            .unwrap();
        assert!(flushed.success());
        t.wait_neighbour("client", address, "node1", LIMIT);
    }
    h1.stop().await;
}
