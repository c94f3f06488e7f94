//! hadns as the resolver clients list (`[resolver]`): other names forwarded to real unbound
//! servers for allowed clients, hadns's own names always from its snapshot, upstreams
//! killed and hung, and forged answers raced against the real one.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::Value;
use tokio::net::UdpSocket;

use crate::support::dbs::free_port;
use crate::support::netns;
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

/// Waits until every upstream is `up` (or every one down) in `/status`.
async fn wait_upstreams(admin: SocketAddr, up: bool) {
    wait_for(LIMIT, &format!("every upstream up: {up}"), || async {
        let status = admin::get_json(admin, "/status").await;
        let upstreams = status["resolver"]["upstreams"].as_array().unwrap().clone();
        upstreams.iter().all(|u| u["up"] == up)
    })
    .await;
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
    // The cached answer (the UDP fast path's): still RA, never AA, its TTL counting down.
    assert!(again.metadata.recursion_available && !again.metadata.authoritative);
    assert!(again.answers[0].ttl <= 300, "{again:?}");
    // Also in another letter case, over TCP (hickory's path), from the same cache.
    let mut tcp = tokio::net::TcpStream::connect(hadns.addr).await.unwrap();
    let query = query_message("HOST.corp.EXAMPLE.", RecordType::A, None);
    let over_tcp = tcp_exchange(&mut tcp, &query).await;
    assert_eq!(addresses(&over_tcp), vec![ip("10.1.0.5")]);
    assert!(over_tcp.metadata.recursion_available);
    let status = resolver_status(&mut hadns).await;
    assert_eq!(status["cache_hits"], 2, "{status:#}");
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
        status["queries"], 3,
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
    let metrics = admin::get(hadns.admin().await, "/metrics").await.1;
    assert_eq!(
        admin::sample(
            &metrics,
            "hadns_resolver_queries_total",
            &[("result", "cache_hit")]
        ),
        Some(2.0),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "hadns_resolver_upstream_up{{upstream=\"{u1}\"}} 1"
    )));
    hadns.stop().await;
}

/// `count` lookups of fresh names (cache misses) from an allowed client, one after
/// another: how long each took, and how many failed (not NOERROR).
async fn lookups(server: SocketAddr, tag: &str, count: usize) -> (Vec<Duration>, usize) {
    let (mut took, mut failed) = (Vec::new(), 0);
    for i in 0..count {
        let started = std::time::Instant::now();
        let answer = ask_from(
            "127.0.0.1",
            server,
            &format!("{tag}-{i}.corp.example."),
            true,
        )
        .await;
        took.push(started.elapsed());
        if answer.metadata.response_code != ResponseCode::NoError {
            failed += 1;
        }
    }
    (took, failed)
}

/// 50 lookups of fresh names after an upstream was `lost` (killed, hung): none fails, at
/// most one waits for it (its `timeout`, once); returns the worst.
async fn lookups_past_a_lost_upstream(
    server: SocketAddr,
    lost: &str,
    timeout: Duration,
) -> Duration {
    let (took, failed) = lookups(server, lost, 50).await;
    let worst = *took.iter().max().unwrap();
    println!("upstream {lost}: 50 lookups, worst {worst:?}, failed {failed}");
    assert_eq!(failed, 0);
    let slow = took.iter().filter(|t| **t >= timeout / 2).count();
    assert!(
        slow <= 1,
        "{slow} lookups waited for the {lost} upstream: {took:?}"
    );
    worst
}

/// An upstream killed, then the other hung (SIGSTOP): lookups go on through the one left;
/// an upstream costs at most its timeout once. Both gone: SERVFAIL at once, the cache
/// still answers; one back: answers again.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_or_hung_upstream_costs_its_timeout_once_and_none_left_is_a_quick_servfail() {
    let (u1, u2) = (upstream_addr(), upstream_addr());
    let unbound1 = corporate_unbound(u1).await;
    let unbound2 = corporate_unbound(u2).await;
    let web = TcpBackend::start().await;
    let timeout = Duration::from_millis(500);
    let config = tcp_pool_config(&[&web], "interval = \"100ms\"", "")
        + &resolver_section(&[u1, u2], "500ms")
        + &admin::admin_section(false);
    let mut hadns = Hadns::start(&config).await;
    hadns.wait_for_answer(WWW, &[web.ip()], LIMIT).await;
    let admin = hadns.admin().await;
    let cached = ask_from("127.0.0.1", hadns.addr, "kept.corp.example.", true).await;
    assert_eq!(addresses(&cached), vec![ip("10.1.0.5")]);

    // Killed: over UDP nothing refuses, so one lookup pays the timeout.
    drop(unbound1);
    lookups_past_a_lost_upstream(hadns.addr, "killed", timeout).await;

    // u1 back; then u2 hung: it answers nothing, not even a refusal.
    let _unbound1 = corporate_unbound(u1).await;
    wait_upstreams(admin, true).await;
    let u2_pid = nix::unistd::Pid::from_raw(unbound2.pid() as i32);
    nix::sys::signal::kill(u2_pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let worst = lookups_past_a_lost_upstream(hadns.addr, "hung", timeout).await;
    assert!(worst < timeout + Duration::from_millis(500), "{worst:?}");

    // Both gone: SERVFAIL, quickly once both are known down; the cache still answers.
    drop(_unbound1);
    wait_upstreams(admin, false).await;
    let started = std::time::Instant::now();
    let answer = ask_from("127.0.0.1", hadns.addr, "gone.corp.example.", true).await;
    println!("no upstream: SERVFAIL in {:?}", started.elapsed());
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    let cached = ask_from("127.0.0.1", hadns.addr, "kept.corp.example.", true).await;
    assert_eq!(addresses(&cached), vec![ip("10.1.0.5")]);
    let own = ask_from("127.0.0.1", hadns.addr, WWW, true).await;
    assert_eq!(addresses(&own), vec![web.ip()]);

    // The hung one resumes: its next check brings it back.
    nix::sys::signal::kill(u2_pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    wait_for(LIMIT, "lookups answered again", || async {
        let answer = ask_from("127.0.0.1", hadns.addr, "back.corp.example.", true).await;
        answer.metadata.response_code == ResponseCode::NoError
    })
    .await;
    drop(unbound2);
    hadns.stop().await;
}

/// A fake upstream that races forged answers against its real one: first a wrong ID, then
/// the right ID with another question, then the answer, which carries records about names
/// nobody asked for (an address for bank.example., a delegation of example.).
async fn forging_upstream(
    socket: UdpSocket,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(u16, u16, String)>>>,
) {
    use hickory_proto::rr::rdata::{A, NS};
    use hickory_proto::rr::{Name, RData, Record};
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let Ok(query) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let Some(q) = query.queries.first().cloned() else {
            continue;
        };
        let name = q.name().to_ascii().to_ascii_lowercase();
        seen.lock()
            .unwrap()
            .push((from.port(), query.metadata.id, name.clone()));
        let record = |owner: &str, octets: [u8; 4]| {
            Record::from_rdata(
                Name::from_ascii(owner).unwrap(),
                300,
                RData::A(A(std::net::Ipv4Addr::from(octets))),
            )
        };
        let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
        reply.metadata.recursion_available = true;
        reply.add_query(q.clone());
        if name == "race.corp.example." {
            let mut wrong_id = reply.clone();
            wrong_id.metadata.id ^= 0x5a5a;
            wrong_id.add_answer(record("race.corp.example.", [6, 6, 6, 1]));
            let _ = socket.send_to(&wrong_id.to_vec().unwrap(), from).await;
            let mut other = Message::response(query.metadata.id, query.metadata.op_code);
            other.add_query(hickory_proto::op::Query::query(
                Name::from_ascii("other.corp.example.").unwrap(),
                RecordType::A,
            ));
            other.add_answer(record("race.corp.example.", [6, 6, 6, 2]));
            let _ = socket.send_to(&other.to_vec().unwrap(), from).await;
            reply.add_answer(record("race.corp.example.", [10, 9, 9, 9]));
            reply.add_answer(record("bank.example.", [6, 6, 6, 3]));
            reply.add_authority(Record::from_rdata(
                Name::from_ascii("example.").unwrap(),
                300,
                RData::NS(NS(Name::from_ascii("evil.example.").unwrap())),
            ));
            reply.add_additional(record("bank.example.", [6, 6, 6, 4]));
        } else if name == "bank.example." {
            reply.add_answer(record("bank.example.", [10, 7, 7, 7]));
        } else {
            reply.add_answer(record(&name, [10, 9, 9, 1]));
        }
        let _ = socket.send_to(&reply.to_vec().unwrap(), from).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_answers_lose_the_race_and_nothing_outside_the_asked_name_is_kept() {
    let socket = UdpSocket::bind(upstream_addr()).await.unwrap();
    let upstream = socket.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    tokio::spawn(forging_upstream(socket, seen.clone()));
    let web = TcpBackend::start().await;
    let config = tcp_pool_config(&[&web], "interval = \"100ms\"", "")
        + &resolver_section(&[upstream], "1s")
        + &admin::admin_section(false);
    let hadns = Hadns::start(&config).await;
    hadns.wait_for_answer(WWW, &[web.ip()], LIMIT).await;

    let answer = ask_from("127.0.0.1", hadns.addr, "race.corp.example.", true).await;
    println!("race: {answer:?}");
    assert_eq!(addresses(&answer), vec![ip("10.9.9.9")], "{answer:?}");
    assert!(
        answer.authorities.is_empty() && answer.additionals.is_empty(),
        "{answer:?}"
    );
    // bank.example. was never cached from that answer: it is asked for.
    let bank = ask_from("127.0.0.1", hadns.addr, "bank.example.", true).await;
    assert_eq!(addresses(&bank), vec![ip("10.7.7.7")], "{bank:?}");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|(_, _, n)| n == "bank.example.")
    );

    // A fresh source port and ID per upstream query.
    seen.lock().unwrap().clear();
    let (_, failed) = lookups(hadns.addr, "spread", 50).await;
    assert_eq!(failed, 0);
    let seen = seen.lock().unwrap().clone();
    let asked: Vec<_> = seen
        .iter()
        .filter(|(_, _, n)| n.starts_with("spread-"))
        .collect();
    let ports: HashSet<u16> = asked.iter().map(|(p, _, _)| *p).collect();
    let ids: HashSet<u16> = asked.iter().map(|(_, id, _)| *id).collect();
    println!(
        "{} upstream queries: {} source ports, {} IDs",
        asked.len(),
        ports.len(),
        ids.len()
    );
    assert_eq!(asked.len(), 50);
    assert!(
        ports.len() >= 45 && ids.len() >= 45,
        "ports {} ids {}",
        ports.len(),
        ids.len()
    );
    hadns.stop().await;
}

/// One getaddrinfo per name in the client namespace (glibc, through its resolv.conf):
/// the first IPv4 address of each, or the error.
const GETADDRINFO: &str = r#"
import socket, sys
for name in sys.argv[1:]:
    try:
        print(name, socket.getaddrinfo(name, 80, socket.AF_INET)[0][4][0])
    except Exception as e:
        print(name, "error", e)
"#;

fn glibc_lookup(topology: &netns::Topology, names: &[&str]) -> Vec<String> {
    let out = topology
        .command("client", "python3")
        .args(["-c", GETADDRINFO])
        .args(names)
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .collect()
}

/// A host whose resolv.conf lists only hadns: glibc resolves a failover name and a name a
/// real upstream serves, and after a failover its next lookup has the new address.
#[tokio::test(flavor = "multi_thread")]
async fn a_glibc_client_listing_only_hadns_resolves_both_kinds_and_sees_a_failover_next() {
    let Some(topology) = netns::Topology::build() else {
        return;
    };
    let mut service1 = topology.start_service("node1");
    let mut service2 = topology.start_service("node2");
    let upstream: SocketAddr = "192.0.2.12:5353".parse().unwrap();
    let _unbound = Unbound::start_in(
        &topology.ns("node2"),
        upstream,
        "local-zone: \"corp.example.\" redirect\nlocal-data: \"corp.example. 300 IN A 10.1.0.5\"\n",
        "check.corp.example.",
    );
    let config = netns::service_pool("ttl = 1")
        + &format!(
            "[resolver]\nforward = [\"{upstream}\"]\nallow = [\"192.0.2.0/24\"]\n\
             [resolver.check]\nname = \"check.corp.example.\"\ntype = \"A\"\n"
        );
    let mut hadns = Hadns::with(&config)
        .netns(&topology.ns("node1"))
        .listen(&["192.0.2.11:53"])
        .start()
        .await;
    let etc = format!("/etc/netns/{}", topology.ns("client"));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(format!("{etc}/resolv.conf"), "nameserver 192.0.2.11\n").unwrap();
    let _etc = scopeguard(etc);
    hadns
        .wait_for_log(
            "answer changed record=svc.example.internal. from=pending",
            LIMIT,
        )
        .await;
    let names = ["svc.example.internal", "host.corp.example"];
    assert_eq!(
        glibc_lookup(&topology, &names),
        vec!["192.0.2.11", "10.1.0.5"]
    );

    // node1's service stops: the lookup right after hadns moved the name has node2.
    let _ = service1.kill();
    let _ = service1.wait();
    hadns
        .wait_for_log(
            "answer changed record=svc.example.internal. from=node1",
            LIMIT,
        )
        .await;
    assert_eq!(
        glibc_lookup(&topology, &names),
        vec!["192.0.2.12", "10.1.0.5"]
    );
    hadns.stop().await;
    let _ = service2.kill();
    let _ = service2.wait();
}

/// Removes a directory when dropped.
fn scopeguard(dir: String) -> impl Drop {
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    Remove(dir)
}
