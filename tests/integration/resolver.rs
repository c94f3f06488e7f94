//! hadns as the resolver clients list (`[resolver]`): other names forwarded to real unbound
//! servers for allowed clients, hadns's own names always from its snapshot, upstreams
//! killed and hung, and forged answers raced against the real one.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::Value;
use tokio::net::UdpSocket;

use crate::support::dbs::free_port;
use crate::support::unbound::Unbound;
use crate::support::*;

const WWW: &str = "www.example.internal.";
const LIMIT: Duration = Duration::from_secs(20);

/// unbound answering every name under corp.example. with 10.1.0.5 (a corporate zone).
async fn corporate_unbound(addr: SocketAddr) -> Unbound {
    Unbound::start(
        addr,
        "local-zone: \"corp.example.\" redirect\nlocal-data: \"corp.example. 300 IN A 10.1.0.5\"\n",
        "",
        "check.corp.example.",
    )
    .await
}

fn upstream_addr() -> SocketAddr {
    let ip: IpAddr = loopback().parse().unwrap();
    SocketAddr::new(ip, free_port(ip))
}

/// `[resolver]` over `upstreams`, allowing 127.0.0.1 only, asking each `check.corp.example.`.
fn resolver_section(upstreams: &[SocketAddr], timeout: &str) -> String {
    let forward: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[resolver]\nforward = [{}]\nallow = [\"127.0.0.1\"]\ntimeout = \"{timeout}\"\n\
         check_interval = \"200ms\"\n[resolver.check]\nname = \"check.corp.example.\"\ntype = \"A\"\n",
        forward.join(", ")
    )
}

/// A query from `from` (RD as given), answered within 5 s.
async fn ask_from(from: &str, server: SocketAddr, name: &str, rd: bool) -> Message {
    let socket = UdpSocket::bind(format!("{from}:0")).await.unwrap();
    let mut query = query_message(name, RecordType::A, Some(1232));
    query.metadata.recursion_desired = rd;
    udp_exchange_once(&socket, server, &query, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("{name}: no answer from {server}"))
}

async fn resolver_status(hadns: &mut Hadns) -> Value {
    admin::get_json(hadns.admin().await, "/status").await["resolver"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn other_names_are_forwarded_for_allowed_clients_and_hadns_names_never() {
    let (u1, u2) = (upstream_addr(), upstream_addr());
    let _unbound1 = corporate_unbound(u1).await;
    let _unbound2 = corporate_unbound(u2).await;
    let (mut web1, web2) = (TcpBackend::start().await, TcpBackend::start().await);
    let config = tcp_pool_config(&[&web1, &web2], "interval = \"100ms\"", "ttl = 1")
        + &resolver_section(&[u1, u2], "500ms")
        + &admin::admin_section(false);
    let mut hadns = Hadns::start(&config).await;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;

    // A corporate name, from an allowed client: forwarded, recursion available, not
    // authoritative; asked again, from the cache.
    let answer = ask_from("127.0.0.1", hadns.addr, "host.corp.example.", true).await;
    assert_eq!(addresses(&answer), vec![ip("10.1.0.5")], "{answer:?}");
    assert!(answer.metadata.recursion_available && !answer.metadata.authoritative);
    let again = ask_from("127.0.0.1", hadns.addr, "host.corp.example.", true).await;
    assert_eq!(addresses(&again), vec![ip("10.1.0.5")]);
    let status = resolver_status(&mut hadns).await;
    assert_eq!(status["cache_hits"], 1, "{status:#}");
    assert_eq!(status["forwarded"], 1, "{status:#}");

    // hadns's own name: authoritative, never forwarded, and the next query after a
    // failover has the new address.
    let own = ask_from("127.0.0.1", hadns.addr, WWW, true).await;
    assert!(own.metadata.authoritative);
    web1.stop().await;
    hadns
        .wait_for_log(
            "answer changed record=www.example.internal. from=web1",
            LIMIT,
        )
        .await;
    let own = ask_from("127.0.0.1", hadns.addr, WWW, true).await;
    assert_eq!(addresses(&own), vec![web2.ip()]);
    let status = resolver_status(&mut hadns).await;
    assert_eq!(
        status["queries"], 2,
        "hadns's names reached the forwarder: {status:#}"
    );

    // Not an open resolver: without RD, or from a client outside `allow`, other names are
    // refused; hadns's own are still answered.
    let no_rd = ask_from("127.0.0.1", hadns.addr, "host.corp.example.", false).await;
    assert_eq!(no_rd.metadata.response_code, ResponseCode::Refused);
    let stranger = ask_from("127.0.0.2", hadns.addr, "host.corp.example.", true).await;
    assert_eq!(stranger.metadata.response_code, ResponseCode::Refused);
    let own = ask_from("127.0.0.2", hadns.addr, WWW, true).await;
    assert_eq!(addresses(&own), vec![web2.ip()]);
    // A negative answer passes through.
    let metrics = admin::get(hadns.admin().await, "/metrics").await.1;
    assert_eq!(
        admin::sample(
            &metrics,
            "hadns_resolver_queries_total",
            &[("result", "cache_hit")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "hadns_resolver_upstream_up{{upstream=\"{u1}\"}} 1"
    )));
    hadns.stop().await;
}
