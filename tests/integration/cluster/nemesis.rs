//! A randomized fault test with a checker (the Jepsen way): faults drawn at random from a
//! printed seed, one at a time, on three members, a three-member etcd and two nodes, while
//! a client samples every member every 10 ms; then the checker. `HADNS_NEMESIS_SECONDS`
//! (default 90) and `HADNS_NEMESIS_SEED` (default: drawn, printed) set the run;
//! bench/nemesis.sh runs it for as long as asked. The same seed draws the same faults
//! (what the machine's timing does with them may differ).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::support::cluster::checker::{Sample, Sampler, Seen, two_writers_while_up};
use crate::support::cluster::{web_cluster, web_pool};

const TTL: Duration = Duration::from_secs(1);
/// The members' lease (`member_config`).
const LEASE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// A member cut from every etcd member (blackhole routes in its namespace).
    CutFromEtcd(usize),
    /// A member cut from one node.
    CutFromNode(usize, usize),
    /// A member's link down: silent drops both ways, from everything.
    Unplug(usize),
    /// The current leader cut from etcd.
    CutLeader,
    /// SIGSTOP for longer than the lease, then SIGCONT (the zombie).
    Pause(usize),
    PauseLeader,
    /// SIGKILL, then a restart on the same configuration.
    Kill(usize),
    /// An etcd member killed and restarted on its data.
    KillEtcd(usize),
    /// A node's listener closed (its host refuses), then open again.
    Crash(usize),
    /// Data centre `d` cut off whole: its member from etcd, its etcd member stopped (the
    /// others' majority goes on), and the other members from its node (node1 lives in
    /// m1's data centre, node2 in m2's); the clients of its member still reach it.
    IsolateDc(usize),
}

fn draw(rng: &mut StdRng) -> Fault {
    let m = rng.random_range(0..3);
    match rng.random_range(0..11) {
        0 => Fault::CutFromEtcd(m),
        1 => Fault::CutFromNode(m, rng.random_range(0..2)),
        2 => Fault::Unplug(m),
        3 => Fault::CutLeader,
        4 => Fault::Pause(m),
        5 => Fault::PauseLeader,
        6 => Fault::Kill(m),
        7 => Fault::KillEtcd(rng.random_range(0..3)),
        8 => Fault::Crash(rng.random_range(0..2)),
        _ => Fault::IsolateDc(rng.random_range(0..2)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_randomized_fault_run_never_shows_two_writers() {
    let seconds: u64 = std::env::var("HADNS_NEMESIS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let seed: u64 = std::env::var("HADNS_NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("nemesis: seed {seed}, {seconds} s (HADNS_NEMESIS_SEED={seed} replays the faults)");
    let Some((mut site, members, mut node1, mut node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    let mut members: Vec<Option<Hadns>> = members.into_iter().map(Some).collect();
    let pool = web_pool(&node1, &node2);
    let nodes = [node1.ip(), node2.ip()];
    let sampler = Sampler::start(&site, WWW, Duration::from_millis(10));
    sampler.wait_named(nodes[0]).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut faults = 0;
    // When each node's listener was closed: it takes no writes then.
    let mut down: Vec<(IpAddr, Instant, Instant)> = Vec::new();
    while Instant::now() < end {
        let fault = draw(&mut rng);
        let hold = Duration::from_millis(rng.random_range(500..5000));
        let rest = Duration::from_millis(rng.random_range(300..2000));
        let leader = match fault {
            Fault::CutLeader | Fault::PauseLeader => {
                // Found through /status, as an operator would; none: skip this fault.
                let mut found = None;
                for i in ALL.into_iter().filter(|&i| members[i].is_some()) {
                    if let Ok(Some(l)) =
                        tokio::time::timeout(Duration::from_secs(1), leader_index(&site, i)).await
                    {
                        found = Some(l);
                        break;
                    }
                }
                match found {
                    Some(l) => l,
                    None => continue,
                }
            }
            _ => 0,
        };
        faults += 1;
        let on = match fault {
            Fault::CutLeader | Fault::PauseLeader => format!(" (m{})", leader + 1),
            _ => String::new(),
        };
        eprintln!(
            "nemesis: {:>6.1} s {fault:?}{on} for {hold:?}",
            started.elapsed().as_secs_f64()
        );
        match fault {
            Fault::CutFromEtcd(m) => site.cut_from_etcd(m),
            Fault::CutLeader => site.cut_from_etcd(leader),
            Fault::CutFromNode(m, n) => site.cut(m, &site.node_ip(n)),
            Fault::Unplug(m) => site.plug(m, false),
            Fault::Pause(m) => members[m].as_ref().unwrap().signal(Signal::SIGSTOP),
            Fault::PauseLeader => members[leader].as_ref().unwrap().signal(Signal::SIGSTOP),
            Fault::Kill(m) => {
                let killed = members[m].take().unwrap();
                killed.stop_with(Signal::SIGKILL).await;
            }
            Fault::KillEtcd(e) => site.stop_etcd_member(e),
            Fault::IsolateDc(d) => {
                site.cut_from_etcd(d);
                site.stop_etcd_member(d);
                for o in ALL.into_iter().filter(|&o| o != d) {
                    site.cut(o, &site.node_ip(d));
                }
            }
            Fault::Crash(0) => node1.stop().await,
            Fault::Crash(_) => node2.stop().await,
        }
        // A pause lasts longer than the lease: the zombie's case.
        let hold = match fault {
            Fault::Pause(_) | Fault::PauseLeader => hold + LEASE,
            _ => hold,
        };
        tokio::time::sleep(hold).await;
        match fault {
            Fault::CutFromEtcd(m) => site.heal_etcd(m),
            Fault::CutLeader => site.heal_etcd(leader),
            Fault::CutFromNode(m, n) => site.heal(m, &site.node_ip(n)),
            Fault::Unplug(m) => site.plug(m, true),
            Fault::Pause(m) => members[m].as_ref().unwrap().signal(Signal::SIGCONT),
            Fault::PauseLeader => members[leader].as_ref().unwrap().signal(Signal::SIGCONT),
            Fault::Kill(m) => {
                let config = site.member_config(m, "", &pool);
                members[m] = Some(site.start_member(m, &config).await);
            }
            Fault::KillEtcd(e) => site.restart_etcd_member(e),
            Fault::IsolateDc(d) => {
                site.restart_etcd_member(d);
                site.heal_etcd(d);
                for o in ALL.into_iter().filter(|&o| o != d) {
                    site.heal(o, &site.node_ip(d));
                }
            }
            Fault::Crash(0) => node1.restart().await,
            Fault::Crash(_) => node2.restart().await,
        }
        if let Fault::Crash(n) = fault {
            down.push((nodes[n], Instant::now() - hold, Instant::now()));
        }
        tokio::time::sleep(rest).await;
    }
    // Healed: every member agrees again.
    let healed = Instant::now();
    wait_for(LIMIT, "every member to agree after the heal", || async {
        let mut answers = Vec::new();
        for i in ALL {
            answers.push(site.answer(i, WWW).await);
        }
        answers[0].as_ref().is_ok_and(|a| a.len() == 1) && answers.iter().all(|a| *a == answers[0])
    })
    .await;
    let agreed = healed.elapsed();
    let samples = sampler.stop();
    let report = Report::of(&samples, &nodes, &down);
    eprintln!(
        "nemesis: seed {seed}: {faults} faults in {:.0} s, {} samples; two writers usable \
         {:?}; answers no leader decided {}; answers naming two nodes {}; a writer named in \
         {:.1}% of the answers, {:.1}% refused, {:.1}% lost; every member agreed {agreed:?} \
         after the last heal",
        started.elapsed().as_secs_f64(),
        samples.len(),
        report.two_writers,
        report.undecided,
        report.two_nodes,
        report.named * 100.0,
        report.refused * 100.0,
        report.lost * 100.0,
    );
    assert_eq!(
        report.two_writers,
        Duration::ZERO,
        "seed {seed}: two writers usable"
    );
    assert_eq!(
        report.undecided, 0,
        "seed {seed}: answers no leader decided"
    );
    assert_eq!(report.two_nodes, 0, "seed {seed}: answers naming two nodes");
    drop(members);
}

/// The checker's figures for one run.
struct Report {
    two_writers: Duration,
    /// Answers naming an address that is not one of the nodes.
    undecided: usize,
    two_nodes: usize,
    /// Fractions of all samples.
    named: f64,
    refused: f64,
    lost: f64,
}

impl Report {
    fn of(samples: &[Sample], nodes: &[IpAddr], down: &[(IpAddr, Instant, Instant)]) -> Report {
        let count = |f: &dyn Fn(&Seen) -> bool| samples.iter().filter(|s| f(&s.seen)).count();
        let all = samples.len().max(1) as f64;
        Report {
            two_writers: two_writers_while_up(samples, TTL, down),
            undecided: count(
                &|s| matches!(s, Seen::Nodes(n) if n.iter().any(|a| !nodes.contains(a))),
            ),
            two_nodes: count(&|s| matches!(s, Seen::Nodes(n) if n.len() > 1)),
            named: count(&|s| matches!(s, Seen::Nodes(n) if !n.is_empty())) as f64 / all,
            refused: count(&|s| matches!(s, Seen::Refused(_))) as f64 / all,
            lost: count(&|s| matches!(s, Seen::Lost)) as f64 / all,
        }
    }
}
