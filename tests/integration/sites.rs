//! `by_site` records (issue 15, first part): a client's site from its source address or
//! from the EDNS Client Subnet a resolver sends, its own site's nodes first, then the
//! fallback sites in order, then `on_empty`; the ECS scope in the answer.

use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use crate::support::unbound::Unbound;
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(20);
const WWW: &str = "www.example.internal.";

/// Asks hadns for www from `source`, with a client subnet when given; the addresses and
/// the ECS scope of the answer.
async fn ask(hadns: &Hadns, source: &str, ecs: Option<(&str, u8)>) -> (Vec<IpAddr>, Option<u8>) {
    ask_over(hadns, source, ecs, false).await
}

/// [`ask`] over UDP (the fast path) or TCP (hickory's path); both must answer alike.
async fn ask_over(
    hadns: &Hadns,
    source: &str,
    ecs: Option<(&str, u8)>,
    tcp: bool,
) -> (Vec<IpAddr>, Option<u8>) {
    let query = subnet_query(WWW, ecs.map(|(address, prefix)| (ip(address), prefix)));
    let answer: Message = if tcp {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((ip(source), 0).into()).unwrap();
        let mut stream = socket.connect(hadns.addr).await.unwrap();
        tcp_exchange(&mut stream, &query).await
    } else {
        let socket = UdpSocket::bind((ip(source), 0)).await.unwrap();
        udp_exchange(&socket, hadns.addr, &query).await
    };
    subnet_answer(&answer)
}

async fn wait_for_site_answer(hadns: &Hadns, source: &str, expected: &[IpAddr]) {
    wait_for(LIMIT, &format!("{source} to get {expected:?}"), || async {
        ask(hadns, source, None).await.0 == expected
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_get_their_own_sites_nodes_then_the_fallbacks_with_the_ecs_scope() {
    let mut dc1 = TcpBackend::start_at("127.0.1.21").await;
    let dc2 = TcpBackend::start_at("127.0.2.21").await;
    let sites = "[[site]]\nname = \"dc1\"\nnetworks = [\"127.0.1.0/24\", \"10.1.0.0/16\"]\n\
                 fallback = [\"dc2\"]\n\n\
                 [[site]]\nname = \"dc2\"\nnetworks = [\"127.0.2.0/24\"]\n\n\
                 [[site]]\nname = \"dc3\"\nnetworks = [\"127.0.3.0/24\"]\nfallback = []\n";
    let admin = "[admin]\nlisten = \"127.0.0.1:0\"\n";
    let config = web_by_site(&dc1, &dc2, sites, "healthy", admin);
    let mut hadns = Hadns::start(&config).await;
    let (w1, w2) = (dc1.ip(), dc2.ip());
    wait_for_site_answer(&hadns, "127.0.1.5", &[w1]).await;

    // By source address: each site its own node; no site: every healthy node; dc3 has no
    // node and no fallback: on_empty (NODATA).
    assert_eq!(ask(&hadns, "127.0.1.5", None).await, (vec![w1], None));
    assert_eq!(ask(&hadns, "127.0.2.5", None).await, (vec![w2], None));
    assert_eq!(ask(&hadns, "127.0.9.5", None).await.0, vec![w1, w2]);
    assert_eq!(ask(&hadns, "127.0.3.5", None).await.0, Vec::<IpAddr>::new());

    // By the client subnet a resolver sends (from an address of no site), with the scope
    // of the site network that matched; a subnet of no site gets everything, scoped as
    // the query was.
    assert_eq!(
        ask(&hadns, "127.0.0.1", Some(("127.0.2.0", 24))).await,
        (vec![w2], Some(24))
    );
    assert_eq!(
        ask(&hadns, "127.0.0.1", Some(("10.1.7.0", 24))).await,
        (vec![w1], Some(16))
    );
    assert_eq!(
        ask(&hadns, "127.0.0.1", Some(("192.0.2.0", 24))).await,
        (vec![w1, w2], Some(24))
    );

    // hickory's path (TCP) answers every case as the fast path (UDP) does.
    for (source, ecs) in [
        ("127.0.1.5", None),
        ("127.0.2.5", None),
        ("127.0.9.5", None),
        ("127.0.3.5", None),
        ("127.0.0.1", Some(("127.0.2.0", 24))),
        ("127.0.0.1", Some(("10.1.7.0", 24))),
        ("127.0.0.1", Some(("192.0.2.0", 24))),
    ] {
        assert_eq!(
            ask_over(&hadns, source, ecs, true).await,
            ask_over(&hadns, source, ecs, false).await,
            "{source} {ecs:?}"
        );
    }
    // A static name is the same everywhere: scope 0.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let query = subnet_query("mail.example.internal.", Some((ip("127.0.1.0"), 24)));
    let answer = udp_exchange(&socket, hadns.addr, &query).await;
    let (addresses, scope) = subnet_answer(&answer);
    assert!(!addresses.is_empty());
    assert_eq!(scope, Some(0), "{answer:?}");

    // /status and `hadns status` show each site's answer.
    let admin = hadns.admin().await;
    let status = get_json(admin, "/status").await;
    let sites = &status["records"][0]["sites"];
    assert_eq!(sites[0]["site"], "dc1");
    assert_eq!(sites[0]["describe"], format!("w1({w1})"));
    assert_eq!(sites[1]["describe"], format!("w2({w2})"));
    assert_eq!(sites[2]["describe"], "nodata", "{status}");
    let (ok, out, err) = crate::support::admin::cli(&mut hadns, &["status"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("{WWW} for site dc2: w2({w2})")),
        "{out}"
    );
    let dom = crate::support::admin::browser_dom(&format!("http://{admin}/")).await;
    assert!(
        dom.contains(&format!("; dc2: w2({w2})")),
        "the status page: {dom}"
    );

    // dc1's node fails: its clients get dc2's (fallback); dc2's clients are unaffected;
    // it returns and dc1's clients get it back.
    dc1.stop().await;
    wait_for_site_answer(&hadns, "127.0.1.5", &[w2]).await;
    assert_eq!(ask(&hadns, "127.0.2.5", None).await.0, vec![w2]);
    let status = get_json(admin, "/status").await;
    assert_eq!(
        status["records"][0]["sites"][0]["describe"],
        format!("w2({w2})")
    );
    dc1.restart().await;
    wait_for_site_answer(&hadns, "127.0.1.5", &[w1]).await;
    assert_eq!(ask(&hadns, "127.0.9.5", None).await.0, vec![w1, w2]);

    // A reload gives dc3 a fallback: its clients get dc2's node.
    hadns.rewrite(
        &config.replace("fallback = []", "fallback = [\"dc2\"]"),
        None,
    );
    assert_eq!(hadns.sighup().await, "applied");
    assert_eq!(ask(&hadns, "127.0.3.5", None).await.0, vec![w2]);
}

/// unbound as the recursive resolver in front of hadns, sending each client's /24 as a
/// client subnet (its `subnetcache` module) and caching per subnet by hadns's scope.
struct Resolver(Unbound);

impl Resolver {
    async fn start(hadns: std::net::SocketAddr) -> Resolver {
        let addr = ip(&loopback());
        let port = crate::support::dbs::free_port(addr);
        let server = format!(
            "module-config: \"subnetcache iterator\"\nsend-client-subnet: {}\n\
             client-subnet-always-forward: yes\nmax-client-subnet-ipv4: 24\n\
             do-not-query-localhost: no\ndomain-insecure: \"example.internal\"\n",
            hadns.ip()
        );
        let stub = format!(
            "stub-zone:\n  name: \"example.internal\"\n  stub-addr: {}@{}\n",
            hadns.ip(),
            hadns.port()
        );
        let probe = "mail.example.internal.";
        Resolver(Unbound::start((addr, port).into(), &server, &stub, probe).await)
    }

    /// www as the resolver answers a client at `source`.
    async fn ask(&self, source: &str) -> Vec<IpAddr> {
        let socket = UdpSocket::bind((ip(source), 0)).await.unwrap();
        let query = query_message(WWW, RecordType::A, None);
        match udp_exchange_once(&socket, self.0.addr, &query, Duration::from_millis(500)).await {
            Some(m) => addresses(&m),
            None => Vec::new(),
        }
    }

    async fn wait_for(&self, source: &str, expected: &[IpAddr]) {
        wait_for(
            LIMIT,
            &format!("{source} through unbound to get {expected:?}"),
            || async { self.ask(source).await == expected },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn through_a_resolver_that_sends_client_subnets_each_site_gets_its_own_node() {
    let mut dc1 = TcpBackend::start_at("127.0.1.31").await;
    let dc2 = TcpBackend::start_at("127.0.2.31").await;
    let sites = "[[site]]\nname = \"dc1\"\nnetworks = [\"127.0.1.0/24\"]\n\n\
                 [[site]]\nname = \"dc2\"\nnetworks = [\"127.0.2.0/24\"]\n";
    let config = web_by_site(&dc1, &dc2, sites, "first", "");
    let hadns = Hadns::start(&config).await;
    let (w1, w2) = (dc1.ip(), dc2.ip());
    wait_for_site_answer(&hadns, "127.0.1.5", &[w1]).await;
    let resolver = Resolver::start(hadns.addr).await;

    // Each site's client, through the same resolver, gets its own site's node.
    resolver.wait_for("127.0.1.5", &[w1]).await;
    resolver.wait_for("127.0.2.5", &[w2]).await;
    assert_eq!(
        resolver.ask("127.0.1.6").await,
        vec![w1],
        "the resolver's cache is per subnet"
    );

    // dc1's node fails: dc1's clients get dc2's node; it returns: their own again.
    dc1.stop().await;
    resolver.wait_for("127.0.1.5", &[w2]).await;
    assert_eq!(resolver.ask("127.0.2.5").await, vec![w2]);
    dc1.restart().await;
    resolver.wait_for("127.0.1.5", &[w1]).await;
    resolver.wait_for("127.0.2.5", &[w2]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_replicas_by_site_each_site_reads_its_own_replica() {
    use crate::support::dbs::Pg;
    const DB: &str = "db.example.internal.";
    const DB_RO: &str = "db-ro.example.internal.";
    let pg1 = Pg::init_primary_at("127.0.1.40", None);
    pg1.execute("CREATE ROLE hadns LOGIN; GRANT pg_monitor TO hadns")
        .await;
    let pg2 = Pg::init_standby_at("127.0.1.41", &pg1, None);
    let pg3 = Pg::init_standby_at("127.0.2.41", &pg1, None);
    pg2.wait_replaying().await;
    pg3.wait_replaying().await;
    let nodes = pg1.node("pg1", 100)
        + "site = \"dc1\"\n"
        + &pg2.node("pg2", 50)
        + "site = \"dc1\"\n"
        + &pg3.node("pg3", 10)
        + "site = \"dc2\"\n";
    let config = format!(
        "[[site]]\nname = \"dc1\"\nnetworks = [\"127.0.1.0/24\"]\n\n\
         [[site]]\nname = \"dc2\"\nnetworks = [\"127.0.2.0/24\"]\n\n\
         [[pool]]\nname = \"db\"\ncheck = \"postgres\"\ninterval = \"200ms\"\nrise = 1\nfall = 1\n\
         [pool.postgres]\nuser = \"hadns\"\nsslmode = \"disable\"\n{nodes}\n\
         [[record]]\nname = \"{DB}\"\npool = \"db\"\nselect = \"primary\"\n\n\
         [[record]]\nname = \"{DB_RO}\"\npool = \"db\"\nselect = \"replicas\"\nmax_lag = \"16MB\"\n\
         by_site = true\n"
    );
    let hadns = Hadns::start(&config).await;
    hadns.wait_for_answer(DB, &[pg1.ip], LIMIT).await;
    let ask = |name: &'static str, source: &'static str| {
        let server = hadns.addr;
        async move {
            let socket = UdpSocket::bind((ip(source), 0)).await.unwrap();
            let query = query_message(name, RecordType::A, None);
            addresses(&udp_exchange(&socket, server, &query).await)
        }
    };
    let wait = |name: &'static str, source: &'static str, expected: Vec<IpAddr>| async move {
        wait_for(
            LIMIT,
            &format!("{source}: {name} = {expected:?}"),
            || async { ask(name, source).await == expected },
        )
        .await;
    };
    // Each site reads its own replica; everyone writes to the one primary.
    wait(DB_RO, "127.0.1.5", vec![pg2.ip]).await;
    wait(DB_RO, "127.0.2.5", vec![pg3.ip]).await;
    assert_eq!(ask(DB, "127.0.2.5").await, vec![pg1.ip]);
    assert_eq!(ask(DB, "127.0.1.5").await, vec![pg1.ip]);

    // dc2's replica stops: dc2 reads from dc1's; it starts again, replays, and is dc2's.
    pg3.stop_immediate();
    wait(DB_RO, "127.0.2.5", vec![pg2.ip]).await;
    assert_eq!(ask(DB_RO, "127.0.1.5").await, vec![pg2.ip]);
    pg3.start();
    pg3.wait_replaying().await;
    wait(DB_RO, "127.0.2.5", vec![pg3.ip]).await;
}
