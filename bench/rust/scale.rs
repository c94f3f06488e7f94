//! The scale benchmark (bench/scale.sh runs it): hadns checking 100, 1,000 and 10,000 tcp
//! nodes every second (CPU share of one core, memory), the time to build a snapshot with
//! 100, 1,000 and 10,000 records, and with 1,000 to 50,000 static records beside one
//! failover record (the build a failover costs, and hadns's memory with that zone).

use std::time::{Duration, Instant};

use crate::support::*;

fn node_address(i: usize) -> String {
    format!("127.{}.{}.{}", 1 + i / 62_500, (i / 250) % 250, 1 + i % 250)
}

/// Config: `nodes` tcp nodes in pools of `per_pool`, one record per pool, checked every
/// second.
fn config(nodes: usize, per_pool: usize, port: u16) -> String {
    let mut text = String::new();
    for pool in 0..nodes.div_ceil(per_pool) {
        text.push_str(&format!(
            "[[pool]]\nname = \"p{pool}\"\ncheck = \"tcp\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n"
        ));
        for i in pool * per_pool..((pool + 1) * per_pool).min(nodes) {
            text.push_str(&format!(
                "[[pool.node]]\nname = \"n{i}\"\naddress = \"{}\"\nport = {port}\n",
                node_address(i)
            ));
        }
        text.push_str(&format!(
            "[[record]]\nname = \"r{pool}.example.internal.\"\npool = \"p{pool}\"\n"
        ));
    }
    text
}

/// (CPU seconds used, RSS in kB) of a process.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = 100.0; // USER_HZ on Linux
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (ticks / hz, rss)
}

pub async fn scale_benchmark() {
    // One backend listening on every loopback address: each node is its own address.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    println!("| nodes checked every 1s | CPU (% of one core) | RSS |");
    println!("| --- | --- | --- |");
    for nodes in [100, 1_000, 10_000] {
        let mut hadns = Hadns::start(&config(nodes, 10, port)).await;
        hadns
            .wait_for_log("first round of checks complete", Duration::from_secs(60))
            .await;
        let pid = hadns.child.id().unwrap();
        // Let it settle, then measure over ten seconds.
        let settle = Instant::now() + Duration::from_secs(3);
        while Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (cpu0, _) = usage(pid);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (cpu1, rss) = usage(pid);
        let share = (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
        println!("| {nodes} | {share:.1}% | {:.1} MB |", rss as f64 / 1024.0);
        hadns.stop().await;
    }

    println!("\n| records | snapshot build |");
    println!("| --- | --- |");
    for records in [100, 1_000, 10_000] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        std::fs::write(dir.path().join("zones/example.internal.zone"), ZONE).unwrap();
        let text = config(records, 1, 1);
        let prepared = hadns::prepare_str(&text, dir.path())
            .unwrap_or_else(|p| panic!("{:?}", &p[..p.len().min(3)]));
        let answers: Vec<hadns::dns::Published> = (0..records)
            .map(|i| {
                hadns::dns::Published::from(hadns::dns::Answer::Nodes(vec![
                    node_address(i).parse().unwrap(),
                ]))
            })
            .collect();
        let mut builder =
            hadns::dns::SnapshotBuilder::new(prepared.zones, &prepared.config.records, 1, None);
        builder.build(&answers);
        let mut changed = answers.clone();
        changed[0] = hadns::dns::Published::from(hadns::dns::Answer::Nodata);
        let rounds = 5;
        let t0 = Instant::now();
        for round in 0..rounds {
            builder.build(if round % 2 == 0 { &changed } else { &answers });
        }
        let per_build = t0.elapsed() / rounds;
        println!("| {records} | {:.2} ms |", per_build.as_secs_f64() * 1000.0);
    }

    // Large static zones beside one failover record: what a failover costs to publish
    // (a new snapshot with a new serial) and what the zone costs in memory.
    println!("\n| static records | snapshot build on a failover | hadns RSS |");
    println!("| --- | --- | --- |");
    for statics in [1_000, 10_000, 50_000] {
        let zone = zone_with_hosts(statics);
        let text = config(1, 1, port);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        std::fs::write(dir.path().join("zones/example.internal.zone"), &zone).unwrap();
        let prepared = hadns::prepare_str(&text, dir.path())
            .unwrap_or_else(|p| panic!("{:?}", &p[..p.len().min(3)]));
        let mut builder =
            hadns::dns::SnapshotBuilder::new(prepared.zones, &prepared.config.records, 1, None);
        let up = [hadns::dns::Published::from(hadns::dns::Answer::Nodes(
            vec![node_address(0).parse().unwrap()],
        ))];
        let down = [hadns::dns::Published::from(hadns::dns::Answer::Nodata)];
        builder.build(&up);
        let rounds = 10;
        let t0 = Instant::now();
        for round in 0..rounds {
            builder.build(if round % 2 == 0 { &down } else { &up });
        }
        let per_build = t0.elapsed() / rounds;
        let hadns = Hadns::with(&text).zone(&zone).start().await;
        hadns
            .wait_for_answer(
                "r0.example.internal.",
                &[node_address(0).parse().unwrap()],
                Duration::from_secs(60),
            )
            .await;
        let (_, rss) = usage(hadns.child.id().unwrap());
        println!(
            "| {statics} | {:.2} ms | {:.1} MB |",
            per_build.as_secs_f64() * 1000.0,
            rss as f64 / 1024.0
        );
        hadns.stop().await;
    }
}
