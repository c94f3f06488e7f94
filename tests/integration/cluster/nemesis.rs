//! A randomized fault test with a checker (the Jepsen way): faults drawn at random from a
//! printed seed, one or two at a time and overlapping, on three data centres (each a
//! member, an etcd member, a client, and in two of them a node), while each data centre's
//! client asks every member every 10 ms; then the checker. `HADNS_NEMESIS_SECONDS`
//! (default 90) and `HADNS_NEMESIS_SEED` (default: drawn, printed) set the run;
//! bench/nemesis.sh runs it for as long as asked. The same seed draws the same faults
//! (what the machine's timing does with them may differ).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::promotion::maria_cluster_with;
use super::*;
use crate::support::cluster::checker::{
    Sample, Sampler, Seen, SerialSample, backwards, decided, out_of_turn, out_of_turn_at, overlaps,
    two_writers_while_up, undecided, usable_during,
};
use crate::support::cluster::{Site, web_cluster, web_pool};
use crate::support::dbs::Maria;

const TTL: Duration = Duration::from_secs(1);
/// The members' lease (`member_config`).
const LEASE: Duration = Duration::from_secs(2);
/// The least time a crashed node stays down: a member that has not yet heard of its
/// replacement names it until its writers deadline (at most the lease after its last
/// answered keepalive), a client holds that for the TTL; and a second for detection.
const CRASH_DOWN: Duration = Duration::from_secs(4);
const PREFIX: &str = "/hadns/test/";

/// One fault. Every cut is a silent drop both ways (nftables, see support/cluster).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// A member cut from every etcd member.
    CutFromEtcd(usize),
    /// A member cut from one node.
    CutFromNode(usize, usize),
    /// A member's link down: from everything, its clients included.
    Unplug(usize),
    /// The current leader (found through `/status`) cut from etcd.
    CutLeader,
    /// SIGSTOP for longer than the lease, then SIGCONT (the zombie).
    Pause(usize),
    PauseLeader,
    /// SIGKILL, then a restart on the same configuration.
    Kill(usize),
    /// An etcd member SIGKILLed and restarted on its data.
    KillEtcd(usize),
    /// The etcd leader (found through `etcdctl endpoint status`) killed.
    KillEtcdLeader,
    /// An etcd member cut from the other etcd members (its clients still reach it).
    IsolateEtcd(usize),
    IsolateEtcdLeader,
    /// A node's listener closed (its host refuses), then open again; with databases, its
    /// server SIGKILLed, then restarted as it was (a primary comes back writable).
    Crash(usize),
    /// With databases: the server that takes writes now killed (hadns promotes a replica).
    CrashWriter,
    /// Data centre `d` cut from the others whole: its member, etcd member, node, client.
    IsolateDc(usize),
    /// A share (percent) of a member's packets lost, both ways.
    Lossy(usize, u8),
    /// A member's link congested both ways (queueing delay, then drops).
    Slow(usize),
}

/// Draws a fault. Those that move the writer (a node crashed, the writer's data centre
/// or a member cut from a node) weigh more: a run where the writer never moves tests
/// little.
fn draw(rng: &mut StdRng, databases: bool) -> Fault {
    let m = rng.random_range(0..3);
    let n = rng.random_range(0..2);
    match rng.random_range(0..22) {
        12..=14 if databases => Fault::CrashWriter,
        0 => Fault::CutFromEtcd(m),
        1 | 2 => Fault::CutFromNode(m, n),
        3 => Fault::Unplug(m),
        4 => Fault::CutLeader,
        5 => Fault::Pause(m),
        6 => Fault::PauseLeader,
        7 => Fault::Kill(m),
        8 => Fault::KillEtcd(m),
        9 => Fault::KillEtcdLeader,
        10 => Fault::IsolateEtcd(m),
        11 => Fault::IsolateEtcdLeader,
        12..=15 => Fault::Crash(n),
        16 => Fault::Lossy(m, rng.random_range(10..60)),
        17 => Fault::Slow(m),
        18 | 19 => Fault::IsolateDc(n),
        _ => Fault::IsolateDc(m),
    }
}

/// What a fault holds while it lasts: a second fault wanting the same is skipped.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Holds {
    Member(usize),
    Etcd(usize),
    Node(usize),
    Link(usize),
}

/// The nodes: two web servers, or three MariaDB servers promoted by hadns
/// (`[pool.promote]`, the "promotion" target).
enum Nodes {
    Web([TcpBackend; 2]),
    Databases(Vec<Maria>),
}

/// The run's world: the site, the members (None while killed), the nodes, and what the
/// faults in force hold.
struct World {
    site: Site,
    members: Vec<Option<Hadns>>,
    nodes: Nodes,
    /// The writer record the clients ask.
    name: &'static str,
    pool: String,
    held: Vec<Holds>,
    /// Per database server, whether it was writable when it was killed.
    restart_writable: [bool; 3],
    /// When each node's listener was closed, and each data centre isolated.
    down: Vec<(IpAddr, Instant, Instant)>,
    isolated: Vec<(usize, Instant, Instant)>,
}

/// A fault as applied: its targets resolved (the leaders found), what it holds.
#[derive(Debug, Clone, Copy)]
struct Applied {
    fault: Fault,
    /// The member or etcd member a leader fault found.
    target: usize,
    since: Instant,
}

impl World {
    /// The hadns leader as a live member sees it (None: no answer within 1 s).
    async fn leader(&self) -> Option<usize> {
        for i in ALL.into_iter().filter(|&i| self.members[i].is_some()) {
            if let Ok(Some(l)) =
                tokio::time::timeout(Duration::from_secs(1), leader_index(&self.site, i)).await
            {
                return Some(l);
            }
        }
        None
    }

    /// Applies `fault`, or None when its target is missing or held by another fault.
    async fn apply(&mut self, fault: Fault) -> Option<Applied> {
        let target = match fault {
            Fault::CutLeader | Fault::PauseLeader => self.leader().await?,
            Fault::KillEtcdLeader | Fault::IsolateEtcdLeader => self.site.etcd_leader()?,
            Fault::CrashWriter => self.writer().await?,
            _ => 0,
        };
        let holds = holds(fault, target);
        let paused_or_killed =
            |m: usize| self.members[m].is_none() || self.held.contains(&Holds::Member(m));
        let needs_member = match fault {
            Fault::Pause(m) | Fault::Kill(m) => Some(m),
            Fault::PauseLeader => Some(target),
            _ => None,
        };
        if holds.iter().any(|h| self.held.contains(h)) || needs_member.is_some_and(paused_or_killed)
        {
            return None;
        }
        self.held.extend(&holds);
        let site = &mut self.site;
        match fault {
            Fault::CutFromEtcd(m) => site.cut_from_etcd(m),
            Fault::CutLeader => site.cut_from_etcd(target),
            Fault::CutFromNode(m, n) => site.cut(m, &site.node_ip(n)),
            Fault::Unplug(m) => site.plug(m, false),
            Fault::Pause(m) => self.members[m].as_ref().unwrap().signal(Signal::SIGSTOP),
            Fault::PauseLeader => self.members[target]
                .as_ref()
                .unwrap()
                .signal(Signal::SIGSTOP),
            Fault::Kill(m) => {
                let killed = self.members[m].take().unwrap();
                killed.stop_with(Signal::SIGKILL).await;
            }
            Fault::KillEtcd(e) => site.stop_etcd_member(e),
            Fault::KillEtcdLeader => site.stop_etcd_member(target),
            Fault::IsolateEtcd(e) => isolate_etcd(site, e, true),
            Fault::IsolateEtcdLeader => isolate_etcd(site, target, true),
            Fault::Crash(n) => self.crash(n).await,
            Fault::CrashWriter => self.crash(target).await,
            Fault::IsolateDc(d) => site.isolate_dc(d, true),
            Fault::Lossy(m, percent) => site.lose(&site.member_ip(m), percent),
            Fault::Slow(m) => site.slow(m, Some(200)),
        }
        Some(Applied {
            fault,
            target,
            since: Instant::now(),
        })
    }

    async fn heal(&mut self, applied: Applied) {
        let Applied { fault, target, .. } = applied;
        let site = &mut self.site;
        match fault {
            Fault::CutFromEtcd(m) => site.heal_etcd(m),
            Fault::CutLeader => site.heal_etcd(target),
            Fault::CutFromNode(m, n) => site.heal(m, &site.node_ip(n)),
            Fault::Unplug(m) => site.plug(m, true),
            Fault::Pause(m) => self.members[m].as_ref().unwrap().signal(Signal::SIGCONT),
            Fault::PauseLeader => self.members[target]
                .as_ref()
                .unwrap()
                .signal(Signal::SIGCONT),
            Fault::Kill(m) => {
                let config = site.member_config(m, "", &self.pool);
                self.members[m] = Some(site.start_member(m, &config).await);
            }
            Fault::KillEtcd(e) => site.restart_etcd_member(e),
            Fault::KillEtcdLeader => site.restart_etcd_member(target),
            Fault::IsolateEtcd(e) => isolate_etcd(site, e, false),
            Fault::IsolateEtcdLeader => isolate_etcd(site, target, false),
            Fault::Crash(n) => self.restart(n, applied.since).await,
            Fault::CrashWriter => self.restart(target, applied.since).await,
            Fault::IsolateDc(d) => {
                site.isolate_dc(d, false);
                self.isolated.push((d, applied.since, Instant::now()));
            }
            Fault::Lossy(m, _) => site.lose(&site.member_ip(m), 0),
            Fault::Slow(m) => site.slow(m, None),
        }
        let released = holds(fault, target);
        self.held.retain(|h| !released.contains(h));
    }
}

impl World {
    /// The database server that takes writes now, if one does.
    async fn writer(&self) -> Option<usize> {
        let Nodes::Databases(servers) = &self.nodes else {
            return None;
        };
        for (i, server) in servers.iter().enumerate() {
            if !self.held.contains(&Holds::Node(i)) && !read_only(server).await? {
                return Some(i);
            }
        }
        None
    }

    async fn crash(&mut self, n: usize) {
        match &mut self.nodes {
            Nodes::Web(nodes) => nodes[n].stop().await,
            Nodes::Databases(servers) => {
                let writable = read_only(&servers[n]).await == Some(false);
                self.restart_writable[n] = writable;
                servers[n].kill();
            }
        }
    }

    async fn restart(&mut self, n: usize, since: Instant) {
        let ip = match &mut self.nodes {
            Nodes::Web(nodes) => {
                nodes[n].restart().await;
                nodes[n].ip()
            }
            Nodes::Databases(servers) => {
                servers[n].restart(!self.restart_writable[n]).await;
                servers[n].ip
            }
        };
        self.down.push((ip, since, Instant::now()));
    }
}

/// Whether `server` is read-only (None: it does not answer).
async fn read_only(server: &Maria) -> Option<bool> {
    use mysql_async::prelude::Queryable;
    let connect = mysql_async::Conn::new(server.opts());
    let mut conn = tokio::time::timeout(Duration::from_secs(1), connect)
        .await
        .ok()?
        .ok()?;
    let on: Option<u8> = conn.query_first("SELECT @@read_only").await.ok()?;
    Some(on? == 1)
}

/// What `fault` (on `target`, for the faults that find theirs) holds while in force: no
/// other fault may take it meanwhile.
fn holds(fault: Fault, target: usize) -> Vec<Holds> {
    match fault {
        Fault::Pause(m) | Fault::Kill(m) => vec![Holds::Member(m)],
        Fault::PauseLeader => vec![Holds::Member(target)],
        Fault::KillEtcd(e) | Fault::IsolateEtcd(e) => vec![Holds::Etcd(e)],
        Fault::KillEtcdLeader | Fault::IsolateEtcdLeader => vec![Holds::Etcd(target)],
        Fault::Crash(n) => vec![Holds::Node(n)],
        Fault::CrashWriter => vec![Holds::Node(target)],
        Fault::Unplug(m) | Fault::Lossy(m, _) | Fault::Slow(m) => vec![Holds::Link(m)],
        _ => vec![],
    }
}

/// Etcd member `e` cut from the other two (or healed).
fn isolate_etcd(site: &Site, e: usize, cut: bool) {
    for o in (0..3).filter(|&o| o != e) {
        match cut {
            true => site.cut_between(&site.etcd_ip(e), &site.etcd_ip(o)),
            false => site.heal_between(&site.etcd_ip(e), &site.etcd_ip(o)),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_randomized_fault_run_never_shows_two_writers() {
    let Some((site, members, node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    let pool = web_pool(&node1, &node2);
    let first = node1.ip();
    run(
        site,
        members,
        Nodes::Web([node1, node2]),
        WWW,
        pool,
        first,
        90,
    )
    .await;
}

/// The same faults, and the writer's database killed at random, on MariaDB servers that
/// hadns promotes itself (`block = "0s"`: every kill gets its promotion; the old primary
/// rejoins when it is back).
#[tokio::test(flavor = "multi_thread")]
async fn a_randomized_fault_run_with_promotion_never_shows_two_writers() {
    let promote = "mode = \"auto\"\nblock = \"0s\"";
    let Some((site, members, servers, pool)) = maria_cluster_with(false, promote).await else {
        return;
    };
    let first = servers[0].ip;
    run(
        site,
        members,
        Nodes::Databases(servers),
        DB,
        pool,
        first,
        60,
    )
    .await;
}

async fn run(
    site: Site,
    members: Vec<Hadns>,
    nodes: Nodes,
    name: &'static str,
    pool: String,
    first: IpAddr,
    default_seconds: u64,
) {
    let seconds: u64 = std::env::var("HADNS_NEMESIS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seconds);
    let seed: u64 = std::env::var("HADNS_NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("nemesis: seed {seed}, {seconds} s (HADNS_NEMESIS_SEED={seed} replays the faults)");
    let databases = matches!(nodes, Nodes::Databases(_));
    let clients: Vec<IpAddr> = (0..3).map(|d| site.dc_client_ip(d)).collect();
    let sampler = Sampler::clients(&site, &clients, name, Duration::from_millis(10));
    sampler.wait_named(first).await;
    let mut world = World {
        site,
        members: members.into_iter().map(Some).collect(),
        nodes,
        name,
        restart_writable: [false; 3],
        pool,
        held: Vec::new(),
        down: Vec::new(),
        isolated: Vec::new(),
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut faults = 0;
    while Instant::now() < end {
        // One fault, or two overlapping: the second starts during the first and may end
        // after it. Each event at its offset from the step's start.
        let count = if rng.random_range(0..3) == 0 { 2 } else { 1 };
        let mut events: Vec<(Duration, bool, usize)> = Vec::new();
        let mut drawn = Vec::new();
        for k in 0..count {
            let fault = draw(&mut rng, databases);
            let start = match k {
                0 => Duration::ZERO,
                _ => Duration::from_millis(rng.random_range(0..3000)),
            };
            let mut hold = Duration::from_millis(rng.random_range(500..5000));
            if matches!(fault, Fault::Pause(_) | Fault::PauseLeader) {
                // Longer than the lease: the zombie's case.
                hold += LEASE;
            }
            if matches!(fault, Fault::Crash(_) | Fault::CrashWriter) {
                // A crashed writer is replaced at once (its refusals prove it takes no
                // writes), without waiting for every member to serve that; one back before
                // every member and every client cache let go of it would take writes from
                // the clients that still hold it. docs/cluster.md states this condition of
                // the fast path: a crashed writer stays down for the lease and the TTL.
                hold = hold.max(CRASH_DOWN);
            }
            events.push((start, true, k));
            events.push((start + hold, false, k));
            drawn.push(fault);
        }
        let rest = Duration::from_millis(rng.random_range(300..2000));
        events.sort_by_key(|&(at, apply, _)| (at, !apply));
        let step = Instant::now();
        let mut applied: Vec<Option<Applied>> = vec![None; count];
        for (at, apply, k) in events {
            tokio::time::sleep_until((step + at).into()).await;
            if apply {
                applied[k] = world.apply(drawn[k]).await;
                let Some(a) = applied[k] else { continue };
                faults += 1;
                let on = match drawn[k] {
                    Fault::CutLeader | Fault::PauseLeader => format!(" (m{})", a.target + 1),
                    Fault::KillEtcdLeader | Fault::IsolateEtcdLeader => {
                        format!(" (etcd e{})", a.target)
                    }
                    _ => String::new(),
                };
                eprintln!(
                    "nemesis: {:>6.1} s {:?}{on}",
                    started.elapsed().as_secs_f64(),
                    drawn[k]
                );
            } else if let Some(a) = applied[k].take() {
                world.heal(a).await;
                eprintln!(
                    "nemesis: {:>6.1} s healed {:?}",
                    started.elapsed().as_secs_f64(),
                    drawn[k]
                );
            }
        }
        tokio::time::sleep(rest).await;
    }
    // Healed: every member agrees again.
    let healed = Instant::now();
    let site = &world.site;
    wait_for(LIMIT, "every member to agree after the heal", || async {
        let mut answers = Vec::new();
        for i in ALL {
            answers.push(site.ask(i, world.name).await);
        }
        matches!(&answers[0], Seen::Nodes(a) if a.len() == 1)
            && answers.iter().all(|a| *a == answers[0])
    })
    .await;
    let agreed = healed.elapsed();
    let serials = sampler.serials();
    let samples = sampler.stop();
    let decisions = site.decisions(PREFIX).await;
    let report = Report::of(&samples, &serials, &decisions, &world);
    eprintln!(
        "nemesis: seed {seed}: {faults} faults in {:.0} s, {} samples, {} decisions; two \
         writers usable {:?}; answers no leader decided {}; decisions out of turn {}; \
         serials gone back {}; answers naming two nodes {}; a writer named in {:.1}% of \
         the answers, {:.1}% refused, {:.1}% lost; a majority-side client had a writer in \
         {:.1}% of its rounds; every member agreed {agreed:?} after the last heal",
        started.elapsed().as_secs_f64(),
        samples.len(),
        decisions.len(),
        report.two_writers,
        report.undecided,
        report.out_of_turn,
        report.backwards,
        report.two_nodes,
        report.named * 100.0,
        report.refused * 100.0,
        report.lost * 100.0,
        report.majority_had_writer * 100.0,
    );
    for (from, until) in overlaps(&samples, TTL, &world.down).into_iter().take(5) {
        print_overlap(&samples, started, from, until);
    }
    for i in out_of_turn_at(&decisions) {
        for d in &decisions[i - 1..=i] {
            eprintln!(
                "nemesis: out of turn: seq {} epoch {} by {} at {} ms: {}",
                d["seq"], d["epoch"], d["leader"], d["decided_ms"], d["records"]
            );
        }
    }
    assert_eq!(
        report.two_writers,
        Duration::ZERO,
        "seed {seed}: two writers usable"
    );
    assert_eq!(
        report.undecided, 0,
        "seed {seed}: answers no leader decided"
    );
    assert_eq!(
        report.out_of_turn, 0,
        "seed {seed}: decisions written out of turn"
    );
    assert_eq!(
        report.backwards, 0,
        "seed {seed}: a member's serial went back"
    );
    assert_eq!(report.two_nodes, 0, "seed {seed}: answers naming two nodes");
}

/// The checker's figures for one run.
/// Who named which node, usable during an overlap of two writers: per node, per client
/// and member, the first and last such answer (seconds into the run).
fn print_overlap(samples: &[Sample], started: Instant, from: Instant, until: Instant) {
    let at = |t: Instant| t.saturating_duration_since(started).as_secs_f64();
    eprintln!(
        "nemesis: two writers usable from {:.3} s to {:.3} s:",
        at(from),
        at(until)
    );
    let mut named: std::collections::BTreeMap<(String, usize, usize), (Instant, Instant)> =
        Default::default();
    for s in usable_during(samples, TTL, from, until) {
        let Seen::Nodes(nodes) = &s.seen else {
            continue;
        };
        let key = (format!("{nodes:?}"), s.client, s.member);
        let span = named.entry(key).or_insert((s.at, s.at));
        span.1 = s.at;
    }
    for ((nodes, client, member), (first, last)) in named {
        eprintln!(
            "nemesis:   {nodes} from m{} to client {client}, answers at {:.3}-{:.3} s",
            member + 1,
            at(first),
            at(last)
        );
    }
}

struct Report {
    two_writers: Duration,
    /// Answers naming nodes that no decision in etcd's history named.
    undecided: usize,
    out_of_turn: usize,
    backwards: usize,
    two_nodes: usize,
    /// Fractions of all samples.
    named: f64,
    refused: f64,
    lost: f64,
    /// Of the rounds of clients whose data centre was not isolated, those in which some
    /// member named a writer (a resolver asks the next nameserver on a refusal).
    majority_had_writer: f64,
}

impl Report {
    fn of(
        samples: &[Sample],
        serials: &[SerialSample],
        decisions: &[serde_json::Value],
        world: &World,
    ) -> Report {
        let count = |f: &dyn Fn(&Seen) -> bool| samples.iter().filter(|s| f(&s.seen)).count();
        let all = samples.len().max(1) as f64;
        let mut rounds: std::collections::BTreeMap<(usize, u64), (Instant, bool)> =
            Default::default();
        for s in samples {
            let named = matches!(&s.seen, Seen::Nodes(n) if !n.is_empty());
            let round = rounds.entry((s.client, s.round)).or_insert((s.at, false));
            round.1 |= named;
        }
        let majority: Vec<bool> = (rounds.iter())
            .filter(|((client, _), (at, _))| {
                !(world.isolated.iter())
                    .any(|(d, from, until)| d == client && from <= at && at <= until)
            })
            .map(|(_, (_, named))| *named)
            .collect();
        Report {
            two_writers: two_writers_while_up(samples, TTL, &world.down),
            undecided: undecided(samples, &decided(decisions, world.name)),
            out_of_turn: out_of_turn(decisions),
            backwards: backwards(serials, decisions),
            two_nodes: count(&|s| matches!(s, Seen::Nodes(n) if n.len() > 1)),
            named: count(&|s| matches!(s, Seen::Nodes(n) if !n.is_empty())) as f64 / all,
            refused: count(&|s| matches!(s, Seen::Refused(_))) as f64 / all,
            lost: count(&|s| matches!(s, Seen::Lost)) as f64 / all,
            majority_had_writer: majority.iter().filter(|n| **n).count() as f64
                / majority.len().max(1) as f64,
        }
    }
}
