//! Secondaries (bench/secondaries.sh): hadns as the primary of NSD, Knot and BIND on
//! loopback, as the integration tests build them (`tests/integration/support/secondaries/servers.rs`):
//! - for 10 changes of www (web1's listener closes, then opens again, 5 times; interval
//!   100 ms, fall = rise = 1, changes 1.5 s apart), the time from hadns answering the new
//!   address to each secondary answering it (NOTIFY, then IXFR), seen by clients that
//!   query every millisecond, then by clients that query every 20 ms (NSD keeps answering
//!   from its old server process while queries keep it busy: about 1.4 s at one query per
//!   millisecond);
//! - a burst of 100 changes in one second (drain and undrain through the admin API): the
//!   NOTIFYs sent per secondary and the transfers served;
//! - the 10 changes again (clients every 20 ms) with secondaries that carry only
//!   `example.internal` while hadns also serves `aaa.internal`, first in zone order and
//!   announced to all three (each refuses it): the lag must not grow.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::sampler::Sampler;
use crate::support::secondaries::{self, Kind, Primary, Secondary, all_answer};
use crate::support::*;

const WWW: &str = "www.example.internal.";
const CHANGES: usize = 10;
const LIMIT: Duration = Duration::from_secs(30);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn secondaries_benchmark() {
    let mut web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    let mut primary = Primary::start(
        &[&web1, &web2],
        Kind::ALL.len(),
        None,
        "fall = 1\nrise = 1\n",
        ZONE,
    )
    .await;
    let admin = primary.hadns.admin().await;
    let hadns = &primary.hadns;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    let secondaries = primary.start_secondaries(&Kind::ALL);
    all_answer(&secondaries, WWW, &[web1.ip()]).await;

    println!(
        "| server | answers the new address after hadns: median | max | clients query every |"
    );
    println!("| --- | --- | --- | --- |");
    for every in [Duration::from_millis(1), Duration::from_millis(20)] {
        let lags = follow(hadns, &secondaries, &mut web1, web2.ip(), every).await;
        print_rows(&lags, every);
    }
    println!();

    web1.restart().await;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    let started = Instant::now();
    let burst =
        crate::support::secondaries::burst(hadns, admin, &secondaries, 100, Duration::from_secs(1))
            .await;
    let settled = started.elapsed();
    println!("| burst of 100 changes in 1 s | NOTIFYs sent | |");
    println!("| --- | --- | --- |");
    for (s, sent) in secondaries.iter().zip(&burst.notifies) {
        println!("| {:?} | {sent} | |", s.kind);
    }
    println!(
        "| transfers served (all three) | {} | all at the last serial {:.2} s after the burst began |",
        burst.transfers,
        settled.as_secs_f64()
    );
    println!();
    drop(secondaries);
    drop(primary);

    // Secondaries that carry one of hadns's two zones.
    let other = "$TTL 300\n@ IN SOA ns1.aaa.internal. hostmaster.aaa.internal. 1 3600 600 604800 5\n\
                 @ IN NS ns1.aaa.internal.\nns1 IN A 127.0.0.1\n";
    let primary = Primary::start_zones(
        &[&web1, &web2],
        Kind::ALL.len(),
        None,
        "fall = 1\nrise = 1\n",
        ZONE,
        &[("aaa.internal.", other)],
        "",
    )
    .await;
    let hadns = &primary.hadns;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    let secondaries = primary.start_secondaries(&Kind::ALL);
    all_answer(&secondaries, WWW, &[web1.ip()]).await;
    println!(
        "| server carrying 1 of 2 zones (the other refused, first in order) | answers the new address after hadns: median | max | clients query every |"
    );
    println!("| --- | --- | --- | --- |");
    let every = Duration::from_millis(20);
    let lags = follow(hadns, &secondaries, &mut web1, web2.ip(), every).await;
    print_rows(&lags, every);
    println!();
}

/// One table row per server: the median and the longest lag, and the clients' rate.
fn print_rows(lags: &[(String, Vec<f64>)], every: Duration) {
    for (name, lag) in lags {
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {} ms |",
            median(lag.clone()),
            lag.iter().cloned().fold(0.0, f64::max),
            every.as_millis()
        );
    }
}

/// `CHANGES` changes of www (web1 stops, starts again, ...), each measured by clients that
/// query every `every`: hadns's own detection (from the listener's change), and per
/// secondary its lag behind hadns. web1 is up again at the end.
async fn follow(
    hadns: &Hadns,
    secondaries: &[Secondary],
    web1: &mut TcpBackend,
    web2: IpAddr,
    every: Duration,
) -> Vec<(String, Vec<f64>)> {
    let local = ip("127.0.0.1");
    let at_hadns = Sampler::start_every(local, hadns.addr, every).await;
    let mut at_secondaries = Vec::new();
    for s in secondaries {
        at_secondaries.push(Sampler::start_every(local, s.addr, every).await);
    }
    let mut lags: Vec<Vec<f64>> = vec![Vec::new(); secondaries.len()];
    let mut detection = Vec::new();
    for change in 0..CHANGES {
        let to = if change % 2 == 0 { web2 } else { web1.ip() };
        let since = Instant::now();
        if change % 2 == 0 {
            web1.stop().await;
        } else {
            web1.restart().await;
        }
        let served = at_hadns.wait_for(to, since, LIMIT).await;
        detection.push(ms(served - since));
        for (i, sampler) in at_secondaries.iter().enumerate() {
            let seen = sampler.wait_for(to, since, LIMIT).await;
            lags[i].push(ms(seen.saturating_duration_since(served)));
        }
        // Changes 1.5 s apart, as failovers are.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let mut out = vec![(
        "hadns itself (from the listener's change)".to_string(),
        detection,
    )];
    for (s, lag) in secondaries.iter().zip(lags) {
        out.push((format!("{:?}", s.kind), lag));
    }
    out
}
