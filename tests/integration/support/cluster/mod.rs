//! A site for the cluster tests: the nodes and the clients on the host's side of a veth
//! pair, three etcd members and three hadns members, each in a network namespace of its
//! own on a bridge, all on a /24 of 198.18.0.0/15 (RFC 2544 benchmarking addresses) that
//! only this site uses. Cuts are silent drops both ways, as real partitions are: nftables
//! rules in the bridge's forward hook (between the namespaces and the host) and in the
//! host's input hook (between addresses on the host); the sender's packets leave, nothing
//! arrives, nobody is told. Loss is the same rules with a random share. Every host opens
//! its connections from its own address (the host's first address, .50, is the test's
//! client, which no cut names), so a cut between two addresses is what it says.
//!
//! ```text
//! host: .50 the test's client   .11 .12 .13 .14 nodes   .51 .52 .53 one client per DC
//!   | veth
//! bridge (own namespace) -- m1 .21 -- m2 .22 -- m3 .23   (hadns: DNS :53, admin :9153)
//!                        -- e0 .1  -- e1 .2  -- e2 .3    (etcd: clients :2379, peers :2380)
//! ```
//!
//! Data centre `d` (the nemesis's unit of isolation) is member `d`, etcd member `d`, node
//! `d` (nodes 0 and 1) and client `d`.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::net::UdpSocket;

use crate::support::dbs::run;
use crate::support::netns::ip;
use crate::support::*;

pub mod checker;
mod etcd;
mod partitions;

use partitions::Filter;

pub use etcd::Tls;

static SITES: AtomicU32 = AtomicU32::new(0);

pub const MEMBERS: [&str; 3] = ["m1", "m2", "m3"];
const ETCD: [u8; 3] = [1, 2, 3];
/// Host addresses for the nodes' services and databases.
pub const NODES: [u8; 4] = [11, 12, 13, 14];
const CLIENT: u8 = 50;
/// One client per data centre (`dc_client_ip`).
const DC_CLIENTS: [u8; 3] = [51, 52, 53];

pub struct Site {
    prefix: String,
    /// `198.18.x.` or `198.19.x.`
    net: String,
    veth: String,
    etcd: Vec<Option<Child>>,
    dir: tempfile::TempDir,
    /// etcd serves clients over TLS with these files (`secure_etcd`).
    tls: Option<Tls>,
    /// etcd's root user's password, once authentication is enabled.
    password: Option<String>,
    /// The cuts in force (pairs of addresses, each dropped both ways; a pair cut twice
    /// heals when healed twice) and the lossy addresses with their loss in percent.
    filter: Mutex<Filter>,
}

impl Site {
    /// Builds the namespaces and links, or returns None where the netns tests are skipped
    /// (HADNS_SKIP_NETNS=1 without root; see support/netns.rs).
    pub fn build() -> Option<Site> {
        if !super::netns::can_build() {
            return None;
        }
        let n = SITES.fetch_add(1, Ordering::SeqCst);
        // A /24 no other site on this host uses (another test process may run beside
        // this one): the first free one from a start that differs per process.
        let start = (std::process::id().wrapping_mul(2_654_435_761) >> 7) + n * 37;
        let index = (0..512)
            .map(|k| (start + k) % 512)
            .find(|&i| {
                let net = format!("198.{}.{}.0/24", 18 + i / 256, i % 256);
                let out = Command::new("ip")
                    .args(["-o", "addr", "show", "to", &net])
                    .output();
                out.is_ok_and(|o| o.stdout.is_empty())
            })
            .expect("a free /24 in 198.18.0.0/15");
        let site = Site {
            prefix: format!("hc{}x{n}", std::process::id()),
            net: format!("198.{}.{}.", 18 + index / 256, index % 256),
            veth: format!("hc{}v{n}", std::process::id()),
            etcd: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            tls: None,
            password: None,
            filter: Mutex::new(Filter::default()),
        };
        let br = site.ns("br");
        ip(&["netns", "add", &br]);
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        ip(&[
            "link", "add", &site.veth, "type", "veth", "peer", "name", "host", "netns", &br,
        ]);
        ip(&["-n", &br, "link", "set", "host", "master", "br0", "up"]);
        // The first address is the source of every connection the host opens to an
        // address of its own (the others are secondary): the test's client, never cut.
        for last in [CLIENT].iter().chain(&NODES).chain(&DC_CLIENTS) {
            let addr = format!("{}/24", site.ip(*last));
            ip(&["addr", "add", &addr, "dev", &site.veth]);
        }
        ip(&["link", "set", &site.veth, "up"]);
        site.write_filter(&Filter::default());
        for (i, member) in MEMBERS.iter().enumerate() {
            site.attach(member, &format!("p{i}"), &site.member_ip(i));
        }
        // etcd members each in a namespace of their own: their connections to each other
        // leave from their own addresses, so a cut between two of them is one rule (on
        // the host they would all leave from its first address).
        for e in 0..ETCD.len() {
            site.attach(&format!("e{e}"), &format!("q{e}"), &site.etcd_ip(e));
        }
        Some(site)
    }

    /// A namespace `host` on the bridge through port `port`, with `address` on its eth0.
    fn attach(&self, host: &str, port: &str, address: &str) {
        let (ns, br) = (self.ns(host), self.ns("br"));
        ip(&["netns", "add", &ns]);
        ip(&[
            "-n", &br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["-n", &br, "link", "set", port, "master", "br0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        let addr = format!("{address}/24");
        ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
    }

    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    pub fn ip(&self, last: u8) -> String {
        format!("{}{last}", self.net)
    }

    pub fn member_ip(&self, member: usize) -> String {
        self.ip(21 + member as u8)
    }

    /// A node's address on the host side (`NODES[i]`).
    pub fn node_ip(&self, i: usize) -> String {
        self.ip(NODES[i])
    }

    /// Starts an HTTP service on member `i`'s address, port 7000, in its namespace (a node
    /// of the pool on the member's own host, for the vip test); returns once it accepts.
    pub async fn start_service(&self, i: usize) -> ServiceProcess {
        let ip = self.member_ip(i);
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(MEMBERS[i]),
                "python3",
                "-m",
                "http.server",
            ])
            .args(["--bind", &ip, "7000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start python3");
        let addr: SocketAddr = format!("{ip}:7000").parse().unwrap();
        wait_for(Duration::from_secs(20), "the member's service", || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        ServiceProcess(child)
    }

    /// Whether member `i` holds `address` on its eth0.
    pub fn holds(&self, i: usize, address: &str) -> bool {
        holds(&self.ns(MEMBERS[i]), address)
    }

    /// The `[dns]`, `[admin]` and `[cluster]` tables of member `i`, and `rest`.
    pub fn member_config(&self, i: usize, cluster_extra: &str, rest: &str) -> String {
        format!(
            "[admin]\nlisten = \"{ip}:9153\"\ntoken_file = \"token\"\n\n\
             [cluster]\nname = \"{name}\"\nmembers = [\"m1\", \"m2\", \"m3\"]\n\
             etcd = [{endpoints}]\nprefix = \"/hadns/test/\"\n\
             lease = \"2s\"\n{cluster_extra}\n\n{rest}",
            ip = self.member_ip(i),
            name = MEMBERS[i],
            endpoints = self.endpoints(i),
        )
    }

    /// Starts hadns in member `i`'s namespace with `config` (from `member_config`, or
    /// any other), DNS on its address, port 53.
    pub async fn start_member(&self, i: usize, config: &str) -> Hadns {
        let listen = format!("{}:53", self.member_ip(i));
        Hadns::with(config)
            .netns(&self.ns(MEMBERS[i]))
            .listen(&[&listen])
            .prepare(|dir| {
                let token = dir.join("token");
                std::fs::write(&token, "cluster-test-token\n").unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
            })
            .start()
            .await
    }

    /// Starts the three members, member `i` with `config(i)` (`member_config`).
    pub async fn start_members(&self, config: impl Fn(usize) -> String) -> Vec<Hadns> {
        let mut members = Vec::new();
        for i in 0..MEMBERS.len() {
            members.push(self.start_member(i, &config(i)).await);
        }
        members
    }

    /// Queries member `i` for `name` from the host's client address.
    pub async fn query(&self, i: usize, name: &str, qtype: RecordType) -> Message {
        self.exchange(i, &query_message(name, qtype, None)).await
    }

    /// Sends `query` to member `i` over UDP from the host's client address: one try, no
    /// retry, so that a member that stops answering is seen (a lost query fails the test;
    /// `ask` returns it).
    pub async fn exchange(&self, i: usize, query: &Message) -> Message {
        let answer = self.exchange_once(i, query).await;
        answer.unwrap_or_else(|| panic!("{} lost a query ({:?})", MEMBERS[i], query.queries))
    }

    /// One query to member `i`, its answer if it came within a second (a member answers in
    /// well under a millisecond: a second is a loaded machine's margin, not a retry).
    async fn exchange_once(&self, i: usize, query: &Message) -> Option<Message> {
        let socket = UdpSocket::bind(SocketAddr::new(self.client_ip(), 0))
            .await
            .unwrap();
        let server: SocketAddr = format!("{}:53", self.member_ip(i)).parse().unwrap();
        udp_exchange_once(&socket, server, query, Duration::from_secs(1)).await
    }

    /// What a client asking member `i` for `name` once saw, a lost query included.
    pub async fn ask(&self, i: usize, name: &str) -> checker::Seen {
        let query = query_message(name, RecordType::A, None);
        match self.exchange_once(i, &query).await {
            None => checker::Seen::Lost,
            Some(m) if m.metadata.response_code == ResponseCode::NoError => {
                checker::Seen::Nodes(addresses(&m))
            }
            Some(m) => checker::Seen::Refused(m.metadata.response_code),
        }
    }

    pub fn client_ip(&self) -> IpAddr {
        self.ip(CLIENT).parse().unwrap()
    }

    /// Member `i`'s answer for `name`: its addresses, or the response code.
    pub async fn answer(&self, i: usize, name: &str) -> Result<Vec<IpAddr>, ResponseCode> {
        let m = self.query(i, name, RecordType::A).await;
        if m.metadata.response_code != ResponseCode::NoError {
            return Err(m.metadata.response_code);
        }
        Ok(addresses(&m))
    }

    pub async fn serial(&self, i: usize) -> u32 {
        let m = self.query(i, "example.internal.", RecordType::SOA).await;
        match &m.answers[0].data {
            RData::SOA(soa) => soa.serial,
            other => panic!("not an SOA: {other:?}"),
        }
    }

    /// Waits until each of `members` answers `name` with `expected` (a lost query is not
    /// `expected`: the wait goes on).
    pub async fn wait_answer(
        &self,
        members: &[usize],
        name: &str,
        expected: Result<Vec<IpAddr>, ResponseCode>,
        limit: Duration,
    ) {
        for &i in members {
            wait_for(
                limit,
                &format!("{} to answer {name} {expected:?}", MEMBERS[i]),
                || async {
                    let seen = match self.ask(i, name).await {
                        checker::Seen::Nodes(nodes) => Ok(nodes),
                        checker::Seen::Refused(code) => Err(code),
                        checker::Seen::Lost => return false,
                    };
                    seen == expected
                },
            )
            .await;
        }
    }

    /// GET `path` from member `i`'s admin endpoint: the body.
    pub async fn get(&self, i: usize, path: &str) -> String {
        let client = reqwest::Client::builder()
            .local_address(self.client_ip())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let url = format!("http://{}:9153{path}", self.member_ip(i));
        client.get(url).send().await.unwrap().text().await.unwrap()
    }

    /// Member `i`'s `/status`.
    pub async fn status(&self, i: usize) -> serde_json::Value {
        let body = self.get(i, "/status").await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// Member `i`'s `/events`, newest first.
    pub async fn events(&self, i: usize) -> Vec<serde_json::Value> {
        let body = self.get(i, "/events").await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// POSTs an admin command (`/drain?pool=web&node=web1`) to member `i`.
    pub async fn admin_post(&self, i: usize, path: &str) -> (u16, String) {
        let client = reqwest::Client::builder()
            .local_address(self.client_ip())
            .build()
            .unwrap();
        let url = format!("http://{}:9153{path}", self.member_ip(i));
        let response = client
            .post(url)
            .bearer_auth("cluster-test-token")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// The member that leads, as member `i` sees it.
    pub async fn leader(&self, i: usize) -> Option<String> {
        self.status(i).await["cluster"]["leader"]
            .as_str()
            .map(String::from)
    }
}

/// The tcp pool of two nodes most cluster tests use: node1 preferred, checked every
/// 100 ms, rise and fall 1; `www` answers it.
pub fn web_pool(node1: &TcpBackend, node2: &TcpBackend) -> String {
    tcp_pool_config(
        &[node1, node2],
        "interval = \"100ms\"\ntimeout = \"500ms\"\nrise = 1\nfall = 1",
        "",
    )
}

/// A site with etcd and three members over `web_pool`, each member with its `[cluster]`
/// extras; returns once every member answers node1 (None where netns tests are skipped).
pub async fn web_cluster(extras: [&str; 3]) -> Option<(Site, Vec<Hadns>, TcpBackend, TcpBackend)> {
    let mut site = Site::build()?;
    site.start_etcd().await;
    let node1 = TcpBackend::start_at(&site.node_ip(0)).await;
    let node2 = TcpBackend::start_at(&site.node_ip(1)).await;
    let pool = web_pool(&node1, &node2);
    let members = site
        .start_members(|i| site.member_config(i, extras[i], &pool))
        .await;
    site.wait_answer(
        &[0, 1, 2],
        "www.example.internal.",
        Ok(vec![node1.ip()]),
        Duration::from_secs(30),
    )
    .await;
    Some((site, members, node1, node2))
}

/// Whether the host of namespace `ns` holds `address` on its eth0.
pub fn holds(ns: &str, address: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "addr", "show", "dev", "eth0"])
        .output()
        .expect("cannot run ip");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .any(|w| w.split('/').next() == Some(address))
}

/// A process killed when dropped.
pub struct ServiceProcess(Child);

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        for i in 0..self.etcd.len() {
            self.stop_etcd_member(i);
        }
        for host in MEMBERS.iter().chain(&["e0", "e1", "e2", "br"]) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(host)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.host_table()])
            .output();
    }
}
