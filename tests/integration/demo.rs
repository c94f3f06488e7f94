//! `hadns demo`, the README's run command: its server answers the name it prints, and the
//! answer follows web1 down and back up.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::*;

const NAME: &str = "www.example.internal.";

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_fails_over_and_back() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hadns"))
        .args(["demo", "--cycles", "1", "--port", "0"])
        .env("RUST_LOG", TEST_LOG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the demo printed nothing for 30 s")
            .unwrap()
            .expect("the demo's output ended early")
    };

    // "  try it:   dig @127.0.0.1 -p PORT www.example.internal. +norec"
    let server = loop {
        let line = next().await;
        if let Some(rest) = line.trim().strip_prefix("try it:") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            assert_eq!(words[4], NAME, "{line}");
            let ip = words[1].trim_start_matches('@');
            break format!("{ip}:{}", words[3]).parse::<SocketAddr>().unwrap();
        }
    };
    let mut printed = Vec::new();
    let mut expect = async |wanted: &str| {
        loop {
            // On a loaded machine a probe may time out and the demo print an "unexpected
            // change" in between; what matters is that each expected answer comes.
            let line = next().await;
            printed.push(line.clone());
            if line.contains(wanted) {
                return;
            }
        }
    };
    let answers = async |wanted: &str| {
        let wanted = vec![ip(wanted)];
        wait_for(
            Duration::from_secs(5),
            "the demo's server to answer",
            || async { addresses(&udp_query(server, NAME, RecordType::A, None).await) == wanted },
        )
        .await;
    };
    expect("-> 127.0.0.11").await;
    // The name the demo told us to dig answers what it printed.
    answers("127.0.0.11").await;
    expect("--- stopping web1 (cycle 1)").await;
    expect("-> 127.0.0.12").await;
    answers("127.0.0.12").await;
    expect("--- starting web1 again").await;
    expect("-> 127.0.0.11").await;
    expect("demo finished").await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the demo did not exit after its last cycle")
        .unwrap();
    assert!(status.success(), "{status}: {printed:#?}");
}
