//! Cluster mode (bench/cluster.sh), on the cluster tests' site (three etcd members on the
//! host's side of a veth, three hadns members in namespaces of their own):
//! - failover: node1's listener closes; the time until the last of the three members
//!   answers node2, beside a single hadns (no `[cluster]`) watching the same nodes in the
//!   same run; interval 100 ms, fall 1;
//! - the disagreement window: for every change (failover and failback), the time between
//!   the first and the last member serving it, as clients see it;
//! - etcd writes (revisions) per second with 1,000 nodes, steady and during a change.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use crate::sampler::Sampler;
use crate::support::cluster::{Site, web_cluster, web_pool};
use crate::support::*;

const WWW: &str = "www.example.internal.";
const ROUNDS: usize = 10;
const LIMIT: Duration = Duration::from_secs(30);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub async fn cluster_benchmark() {
    let (site, members, mut node1, node2) = web_cluster(["", "", ""])
        .await
        .expect("the cluster benchmark needs root and ip");
    let pool = web_pool(&node1, &node2);
    let single = Hadns::start(&pool).await;
    single.wait_for_answer(WWW, &[node1.ip()], LIMIT).await;
    let client: IpAddr = site.ip(50).parse().unwrap();
    let mut samplers = Vec::new();
    for i in 0..3 {
        let server = format!("{}:53", site.member_ip(i)).parse().unwrap();
        samplers.push(Sampler::start(client, server).await);
    }
    let lone = Sampler::start("127.0.0.1".parse().unwrap(), single.addr).await;

    let (mut last_member, mut alone, mut windows) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for (to, failover) in [(node2.ip(), true), (node1.ip(), false)] {
            // A random phase against the probes (the rounds would otherwise fall into
            // step with the 100 ms interval).
            tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 100)).await;
            let start = Instant::now();
            if failover {
                node1.stop().await;
            } else {
                node1.restart().await;
            }
            let deadline = start + LIMIT;
            let (times, lone_time) = loop {
                let times: Option<Vec<Instant>> =
                    samplers.iter().map(|s| s.first(to, start)).collect();
                let lone_time = lone.first(to, start);
                if let (Some(times), Some(l)) = (times, lone_time) {
                    break (times, l);
                }
                assert!(
                    Instant::now() < deadline,
                    "no member moved within {LIMIT:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let first = *times.iter().min().unwrap();
            let last = *times.iter().max().unwrap();
            windows.push(ms(last - first));
            if failover {
                last_member.push(ms(last - start));
                alone.push(ms(lone_time - start));
            }
        }
    }
    for v in [&mut last_member, &mut alone, &mut windows] {
        v.sort_by(f64::total_cmp);
    }
    println!("| failover, interval 100 ms, fall 1 ({ROUNDS} rounds) | median | max |");
    println!("| --- | ---: | ---: |");
    println!(
        "| last of three cluster members answers node2 | {:.0} ms | {:.0} ms |",
        percentile(&last_member, 0.5),
        last_member.last().unwrap()
    );
    println!(
        "| single hadns (no [cluster]), same run | {:.0} ms | {:.0} ms |",
        percentile(&alone, 0.5),
        alone.last().unwrap()
    );
    println!();
    println!(
        "| disagreement window, {} changes | p50 | p99 | max |",
        windows.len()
    );
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| first to last member serving a change | {:.1} ms | {:.1} ms | {:.1} ms |",
        percentile(&windows, 0.5),
        percentile(&windows, 0.99),
        windows.last().unwrap()
    );
    drop((samplers, lone, members, single));
    etcd_writes(&site).await;
}

/// etcd's revision: every write (put, delete, transaction with a put) adds one; lease
/// keepalives add none.
fn revision(site: &Site) -> i64 {
    let status = site.etcdctl_run(&["endpoint", "status", "-w", "json"]);
    serde_json::from_str::<serde_json::Value>(&status).unwrap()[0]["Status"]["header"]["revision"]
        .as_i64()
        .unwrap()
}

async fn etcd_writes(site: &Site) {
    const NODES: usize = 1000;
    let mut backends = Vec::new();
    for i in 0..NODES {
        backends.push(TcpBackend::start_at(&site.node_ip(i % 2)).await);
    }
    let mut pool = String::from(
        "[[pool]]\nname = \"big\"\ncheck = \"tcp\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
    );
    for (i, b) in backends.iter().enumerate() {
        pool.push_str(&format!(
            "[[pool.node]]\nname = \"n{i}\"\naddress = \"{}\"\nport = {}\npriority = {}\n",
            b.addr.ip(),
            b.addr.port(),
            NODES - i
        ));
    }
    pool.push_str(&format!("\n[[record]]\nname = \"{WWW}\"\npool = \"big\"\n"));
    let mut members = Vec::new();
    for i in 0..3 {
        let config = site
            .member_config(i, "", &pool)
            .replace("/hadns/test/", "/hadns/big/");
        members.push(site.start_member(i, &config).await);
    }
    let first = backends[0].ip();
    site.wait_answer(&[0, 1, 2], WWW, Ok(vec![first]), LIMIT)
        .await;
    // Every member's first views are written; let the writes of start-up end.
    let settle = Instant::now();
    let mut before = revision(site);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = revision(site);
        if now == before || settle.elapsed() > LIMIT {
            break;
        }
        before = now;
    }
    let window = Duration::from_secs(10);
    let start = revision(site);
    tokio::time::sleep(window).await;
    let steady = revision(site) - start;

    // A change: the answered node and 9 others stop; every member sees them down.
    let start = revision(site);
    let began = Instant::now();
    for b in backends.iter_mut().take(10) {
        b.stop().await;
    }
    for i in 0..3 {
        wait_for(LIMIT, "every member to answer n10", || async {
            site.status(i).await["records"][0]["nodes"] == serde_json::json!(["n10"])
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let change = revision(site) - start;
    let span = began.elapsed();
    println!();
    println!("| etcd writes, {NODES} nodes, three members, interval 1 s | writes | per second |");
    println!("| --- | ---: | ---: |");
    println!(
        "| steady state, {} s | {steady} | {:.1} |",
        window.as_secs(),
        steady as f64 / window.as_secs_f64()
    );
    println!(
        "| 10 nodes (the answered one first) stop, {:.1} s around it | {change} | {:.1} |",
        span.as_secs_f64(),
        change as f64 / span.as_secs_f64()
    );
    drop(members);
}
