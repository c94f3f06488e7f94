//! `check = "dns"` against a real unbound (local data on a loopback address): a node that
//! answers as expected is up; stopped, or answering another address, it is down, and the
//! reason says which.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::dbs::free_port;
use crate::support::unbound::Unbound;
use crate::support::*;

const RESOLVER: &str = "resolver.example.internal.";
const LIMIT: Duration = Duration::from_secs(20);
/// unbound on `at`, answering `probe.test.` with `address`.
async fn start_unbound(at: SocketAddr, address: &str) -> Unbound {
    let server = format!(
        "module-config: \"iterator\"\nlocal-zone: \"probe.test.\" static\n\
         local-data: \"probe.test. 60 IN A {address}\"\n"
    );
    Unbound::start(at, &server, "", "probe.test.").await
}

/// The `reason` of the only node's last probe, from `/status`.
async fn last_probe(admin: SocketAddr) -> String {
    let status = get_json(admin, "/status").await;
    status["pools"][0]["nodes"][0]["last_probe"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dns_check_follows_a_real_server_that_answers_fails_and_stops() {
    let node = ip(&loopback());
    let port = free_port(node);
    let at = SocketAddr::new(node, port);
    let unbound = start_unbound(at, "10.9.9.9").await;
    let config = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[pool]]\nname = \"resolvers\"\ncheck = \"dns\"\ninterval = \"100ms\"\n\
         timeout = \"300ms\"\nrise = 1\nfall = 1\n\
         [pool.dns]\nname = \"probe.test.\"\nexpect = \"10.9.9.9\"\n\
         [[pool.node]]\nname = \"u1\"\naddress = \"{node}\"\nport = {port}\n\n\
         [[record]]\nname = \"{RESOLVER}\"\npool = \"resolvers\"\nmax_stale = \"0s\"\n"
    );
    let mut hadns = Hadns::start(&config).await;
    let admin = hadns.admin().await;
    hadns.wait_for_answer(RESOLVER, &[node], LIMIT).await;
    assert!(last_probe(admin).await.contains("answered 10.9.9.9"));

    // Stopped: no answer.
    drop(unbound);
    hadns.wait_for_answer(RESOLVER, &[], LIMIT).await;
    wait_for(LIMIT, "the reason: no answer", || async {
        last_probe(admin).await.contains("no answer within")
            || last_probe(admin).await.contains("refused")
    })
    .await;

    // Answering, but not what is expected: still down, and the reason says so.
    let unbound = start_unbound(at, "10.8.8.8").await;
    wait_for(LIMIT, "the reason: another address", || async {
        last_probe(admin).await.contains("expected 10.9.9.9")
    })
    .await;
    assert_eq!(hadns.addresses(RESOLVER).await, Ok(vec![]));
    drop(unbound);

    // Answering as expected again: up.
    let _unbound = start_unbound(at, "10.9.9.9").await;
    hadns.wait_for_answer(RESOLVER, &[node], LIMIT).await;
}

/// The health of pool `p`'s only node, from `/status`.
async fn health(admin: SocketAddr, p: usize) -> String {
    let status = get_json(admin, "/status").await;
    status["pools"][p]["nodes"][0]["health"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Without `expect` any NOERROR/NXDOMAIN answer is up, so a server that answers REFUSED is
/// down; with `expect = "REFUSED"` it is just that answer that is up.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_and_the_rcode_forms_of_expect_follow_a_real_server() {
    let node = ip(&loopback());
    let port = free_port(node);
    let answering = "module-config: \"iterator\"\nlocal-zone: \"probe.test.\" static\n\
                     local-data: \"probe.test. 60 IN A 10.9.9.9\"\n";
    let refusing = "module-config: \"iterator\"\nlocal-zone: \"probe.test.\" refuse\n";
    let addr = SocketAddr::new(node, port);
    let unbound = Unbound::start(addr, answering, "", "probe.test.").await;
    let pool = |name: &str, expect: &str| {
        format!(
            "[[pool]]\nname = \"{name}\"\ncheck = \"dns\"\ninterval = \"100ms\"\n\
             timeout = \"300ms\"\nrise = 1\nfall = 1\n[pool.dns]\nname = \"probe.test.\"\n{expect}\
             [[pool.node]]\nname = \"u1\"\naddress = \"{node}\"\nport = {port}\n\n\
             [[record]]\nname = \"{name}.example.internal.\"\npool = \"{name}\"\nmax_stale = \"0s\"\n\n"
        )
    };
    let config = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n{}{}",
        pool("any", ""),
        pool("refused", "expect = \"REFUSED\"\n")
    );
    let mut hadns = Hadns::start(&config).await;
    let admin = hadns.admin().await;
    let states = || async { (health(admin, 0).await, health(admin, 1).await) };
    wait_for_value(
        LIMIT,
        "any up, refused down",
        &("up".into(), "down".into()),
        states,
    )
    .await;
    drop(unbound);
    let _unbound = Unbound::start(addr, refusing, "", "probe.test.").await;
    wait_for_value(
        LIMIT,
        "any down, refused up",
        &("down".into(), "up".into()),
        states,
    )
    .await;
    hadns
        .wait_for_answer("refused.example.internal.", &[node], LIMIT)
        .await;
    assert_eq!(hadns.addresses("any.example.internal.").await, Ok(vec![]));
}
