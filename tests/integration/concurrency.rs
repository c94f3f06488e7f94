//! Queries in tight loops while backends flap: a `first` record never answers two
//! addresses, and never SERVFAIL or empty while a node is healthy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_stay_single_and_never_empty_while_backends_flap() {
    let mut web1 = TcpBackend::start().await;
    // web2 never stops, so some node is healthy throughout.
    let web2 = TcpBackend::start().await;
    let config = tcp_pool_config(
        &[&web1, &web2],
        "interval = \"20ms\"\ntimeout = \"100ms\"\nfall = 1\nrise = 1",
        "",
    );
    let hadns = Hadns::start(&config).await;
    hadns
        .wait_for_answer(
            "www.example.internal.",
            &[web1.ip()],
            Duration::from_secs(10),
        )
        .await;
    let (ip1, ip2) = (web1.ip(), web2.ip());

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for n in 0..3 {
        let (stop, addr) = (stop.clone(), hadns.addr);
        clients.push(tokio::spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let (mut seen1, mut seen2, mut total) = (0u32, 0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let q = query_message("www.example.internal.", RecordType::A, None);
                // One client in three uses TCP.
                // Each UDP query is sent once: a lost one fails the test.
                let m = if n == 2 {
                    tcp_exchange(&mut tcp, &q).await
                } else {
                    udp_exchange_once(&socket, addr, &q, Duration::from_secs(2))
                        .await
                        .unwrap_or_else(|| panic!("query {} went unanswered", q.metadata.id))
                };
                assert_eq!(
                    m.metadata.response_code,
                    ResponseCode::NoError,
                    "response {m:?}"
                );
                let got = addresses(&m);
                assert_eq!(got.len(), 1, "a first record answered {got:?}");
                if got[0] == ip1 {
                    seen1 += 1;
                } else {
                    assert_eq!(got[0], ip2);
                    seen2 += 1;
                }
                total += 1;
            }
            (seen1, seen2, total)
        }));
    }

    let flaps = 20;
    for _ in 0..flaps {
        web1.stop().await;
        hadns
            .wait_for_answer("www.example.internal.", &[ip2], Duration::from_secs(10))
            .await;
        web1.restart().await;
        hadns
            .wait_for_answer("www.example.internal.", &[ip1], Duration::from_secs(10))
            .await;
    }
    stop.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut total = 0;
    for client in clients {
        let (seen1, seen2, n) = client.await.expect("a client saw a wrong answer");
        assert!(
            seen1 > 0 && seen2 > 0,
            "the flapping was not observed: {seen1} / {seen2}"
        );
        total += n;
    }
    println!(
        "{total} answers checked across {flaps} flaps in {:?}",
        started.elapsed()
    );
    hadns.stop().await;
}
