//! Transcripts: each line is one of
//! - `at TIME NODE ok|fail|lost [detail]`: a probe result (`lost`: the session broke and a
//!   new one was refused, a conclusive failure);
//! - `at TIME NODE primary|standby [tl=N] [lsn=N] [gtid=G] [from=NODE] [stopped=NODE]
//!   [cluster=ID]`: a successful database probe (cluster defaults to `A`; `from`: replicating
//!   from that node, `stopped`: configured to but not running; `gtid`: a MariaDB position);
//! - `at TIME drain|undrain NODE`: an operator drains or undrains a node;
//! - `expect RECORD = ANSWER`: node names joined by `,`, or `pending`, `nodata`, `servfail`;
//! - (expectations look at every event since the previous expectation, over all the steps
//!   in between; an unknown event kind fails the transcript)
//! - `expect event node NODE FROM->TO`, `expect event split-brain`, `expect event fence NODE`,
//!   `expect event mismatch NODE`, `expect event rejoined NODE`, `expect event stale`,
//!   `expect no events`, `expect no event KIND`;
//! - `expect why RECORD NODE TEXT`: why the `replicas` record leaves NODE out contains TEXT,
//!   `expect why RECORD NODE -`: it does not leave it out.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::parse_duration;
use crate::engine::{Gtid, Replication};

pub(super) fn config(check: &str, pool_extra: &str, records: &str) -> Config {
    let section = match check {
        "postgres" | "mysql" => format!("[pool.{check}]\nuser = \"hadns\"\n"),
        _ => String::new(),
    };
    let text = format!(
        r#"
[[pool]]
name = "p"
check = "{check}"
{pool_extra}
{section}
[[pool.node]]
name = "n1"
address = "127.0.0.10"
port = 1
priority = 100
[[pool.node]]
name = "n2"
address = "127.0.0.11"
port = 1
priority = 50
[[pool.node]]
name = "n3"
address = "::1"
port = 1
priority = 10

{records}
"#
    );
    match Config::from_toml(&text, Path::new(".")) {
        Ok(c) => c,
        Err(p) => panic!("{p:?}"),
    }
}

/// One `first` record `www` on a tcp pool, with extra record keys.
fn tcp(pool_extra: &str, record_extra: &str) -> Config {
    config(
        "tcp",
        pool_extra,
        &format!("[[record]]\nname = \"www.example.internal.\"\npool = \"p\"\n{record_extra}"),
    )
}

/// `db` (primary) and `db-ro` (replicas) on a postgres pool.
fn pg(pool_extra: &str, db_extra: &str, ro_extra: &str) -> Config {
    config(
        "postgres",
        pool_extra,
        &format!(
            "[[record]]\nname = \"db.example.internal.\"\npool = \"p\"\nselect = \"primary\"\n{db_extra}\n\
             [[record]]\nname = \"db-ro.example.internal.\"\npool = \"p\"\nselect = \"replicas\"\n{ro_extra}"
        ),
    )
}

fn show(engine: &Engine, config: &Config, record: usize) -> String {
    let pool = &config.pools[config.records[record].pool.0];
    match engine.answer(RecordId(record)) {
        Answer::Pending => "pending".into(),
        Answer::Nodata => "nodata".into(),
        Answer::Servfail => "servfail".into(),
        Answer::Nodes(n) => n
            .iter()
            .map(|&i| pool.nodes[i].name.as_str())
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn db_observation(config: &Config, role: &str, args: &[&str]) -> Observation {
    let mut db = DbStatus {
        writable: role == "primary",
        cluster: Some("A".into()),
        ..DbStatus::default()
    };
    for arg in args {
        let (k, v) = arg
            .split_once('=')
            .unwrap_or_else(|| panic!("bad argument {arg}"));
        match k {
            "tl" => db.timeline = Some(v.parse().unwrap()),
            "lsn" => db.position = Some(v.parse().unwrap()),
            "gtid" => {
                let gtid = Gtid::parse_mariadb(v).unwrap();
                db.position = Some(gtid.transactions());
                db.gtid = Some(gtid);
            }
            "recv" => {
                let gtid = Gtid::parse_mariadb(v).unwrap();
                db.received = Some(gtid.transactions());
                db.received_gtid = Some(gtid);
            }
            "rlsn" => db.received = Some(v.parse().unwrap()),
            "server" => db.server = Some(v.to_string()),
            "from" | "stopped" | "io" | "lost" => {
                let node = config.pools[0].nodes.iter().find(|n| n.name == v).unwrap();
                db.replication = Some(Replication {
                    running: k == "from",
                    receiving: k == "from" || k == "io",
                    state: if k == "from" { "streaming" } else { "stopped" }.into(),
                    source_host: v.to_string(),
                    source_addresses: vec![node.address],
                    source_port: node.port,
                });
            }
            "cluster" => db.cluster = Some(v.to_string()),
            _ => panic!("unknown argument {arg}"),
        }
    }
    Observation {
        db: Some(db),
        ..Observation::up(role, Duration::from_millis(1))
    }
}

/// The event kinds a transcript may name; any other is a mistake in the transcript.
const EVENT_KINDS: [&str; 7] = [
    "split-brain",
    "stale",
    "answer",
    "fence",
    "mismatch",
    "rejoined",
    "drained",
];

fn event_matches(event: &Event, kind: &str, node: Option<usize>) -> bool {
    assert!(
        EVENT_KINDS.contains(&kind),
        "unknown event kind {kind:?} in a transcript (known: {EVENT_KINDS:?})"
    );
    match (event, kind) {
        (Event::SplitBrain { .. }, "split-brain") => true,
        (Event::Stale { .. }, "stale") => true,
        (Event::AnswerChanged { .. }, "answer") => true,
        (Event::Fence { node: n, .. }, "fence") => Some(n.index) == node,
        (Event::ClusterMismatch { node: n, .. }, "mismatch") => Some(n.index) == node,
        (Event::ClusterRejoined { node: n, .. }, "rejoined") => Some(n.index) == node,
        (Event::Drained { node: n, .. }, "drained") => Some(n.index) == node,
        _ => false,
    }
}

pub(super) fn run(config: &Config, transcript: &str) {
    let mut engine = Engine::new(config);
    let pool = &config.pools[0];
    let node_index = |name: &str| pool.nodes.iter().position(|x| x.name == name).unwrap();
    // Events since the last expectation: a step after an expectation starts a new batch.
    let mut events = Vec::new();
    let mut expected = false;
    let take = |events: &mut Vec<Event>, expected: &mut bool, new: Vec<Event>| {
        if std::mem::take(expected) {
            events.clear();
        }
        events.extend(new);
    };
    for (n, line) in transcript.lines().map(str::trim).enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["at", time, action @ ("depose" | "undepose"), node] => {
                let now = parse_duration(time).unwrap();
                let id = NodeId::new(0, node_index(node));
                let new = engine.set_deposed(id, *action == "depose", false, now);
                take(&mut events, &mut expected, new);
            }
            ["expect", which @ ("promote" | "ask"), text @ ..] => {
                let ask = (*which == "ask").then(Ask::default);
                let got = match engine.promotion(PoolId(0), pool, ask) {
                    Verdict::Promote(plan) => format!(
                        "{}{} replaces {}, others [{}]",
                        if plan.switchover { "switchover: " } else { "" },
                        pool.nodes[plan.candidate].name,
                        pool.nodes[plan.old].name,
                        plan.others
                            .iter()
                            .map(|&i| pool.nodes[i].name.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    Verdict::Idle(why) => format!("idle: {why}"),
                    Verdict::Refused(why) => format!("refused: {why}"),
                };
                let want = text.join(" ");
                assert!(
                    got.contains(&want),
                    "line {n} `{line}`: the verdict is {got:?}"
                );
            }
            ["at", time, action @ ("drain" | "undrain"), node] => {
                let now = parse_duration(time).unwrap();
                let new =
                    engine.set_drained(NodeId::new(0, node_index(node)), *action == "drain", now);
                take(&mut events, &mut expected, new);
            }
            ["at", time, node, result, rest @ ..] => {
                let now = parse_duration(time).unwrap();
                let obs = match *result {
                    "ok" => Observation::up(rest.join(" "), Duration::from_millis(1)),
                    "fail" => Observation::down(rest.join(" "), Duration::from_millis(1)),
                    "lost" => Observation {
                        conclusive: true,
                        ..Observation::down(rest.join(" "), Duration::from_millis(1))
                    },
                    "refused" => Observation {
                        refused: true,
                        ..Observation::down("connection refused", Duration::from_millis(1))
                    },
                    role @ ("primary" | "standby") => db_observation(config, role, rest),
                    other => panic!("line {n}: unknown result {other}"),
                };
                let new = engine.observe(NodeId::new(0, node_index(node)), obs, now);
                take(&mut events, &mut expected, new);
            }
            ["expect", "event", "node", node, change] => {
                let (from, to) = change.split_once("->").unwrap();
                let found = events.iter().any(|e| match e {
                    Event::NodeChanged {
                        node: i,
                        from: f,
                        to: t,
                        ..
                    } => {
                        pool.nodes[i.index].name == *node
                            && f.to_string() == from
                            && t.to_string() == to
                    }
                    _ => false,
                });
                assert!(found, "line {n} `{line}`: events were {events:?}");
            }
            ["expect", "event", kind, node @ ..] => {
                let node = node.first().map(|x| node_index(x));
                assert!(
                    events.iter().any(|e| event_matches(e, kind, node)),
                    "line {n} `{line}`: events were {events:?}"
                );
            }
            ["expect", "no", "event", kind, node @ ..] => {
                let node = node.first().map(|x| node_index(x));
                assert!(
                    !events.iter().any(|e| event_matches(e, kind, node)),
                    "line {n} `{line}`: events were {events:?}"
                );
            }
            ["expect", "no", "events"] => assert!(
                events.is_empty(),
                "line {n} `{line}`: events were {events:?}"
            ),
            ["expect", "why", record, node, text @ ..] => {
                let r = config
                    .records
                    .iter()
                    .position(|r| r.name.split('.').next() == Some(record))
                    .unwrap_or_else(|| panic!("line {n}: no record {record}"));
                let why = engine.unfit(RecordId(r), node_index(node));
                match (why, text.join(" ")) {
                    (None, t) if t == "-" => {}
                    (Some(why), t) if t != "-" && why.contains(&t) => {}
                    (why, _) => panic!("line {n} `{line}`: the reason is {why:?}"),
                }
            }
            ["expect", record, "=", answer] => {
                let r = config
                    .records
                    .iter()
                    .position(|r| r.name.split('.').next() == Some(record))
                    .unwrap_or_else(|| panic!("line {n}: no record {record}"));
                assert_eq!(&show(&engine, config, r), answer, "line {n} `{line}`");
            }
            _ => panic!("bad transcript line {n}: {line}"),
        }
        if words.first() == Some(&"expect") {
            expected = true;
        }
    }
}

// === tcp-style pools: rise/fall, first, healthy, on_empty ===

#[test]
fn startup_waits_for_the_whole_first_round() {
    run(
        &tcp("", ""),
        "at 0ms n2 ok
         expect www = pending
         at 1ms n1 fail connection refused
         expect www = pending
         at 2ms n3 ok
         expect www = n2",
    );
}

#[test]
fn fall_and_rise_hysteresis() {
    run(
        &tcp("rise = 2\nfall = 2", ""),
        "at 0ms n1 ok
         at 0ms n2 ok
         at 0ms n3 ok
         expect www = n1
         at 100ms n1 fail connection refused
         expect www = n1
         expect no events
         at 200ms n1 ok
         at 300ms n1 fail connection refused
         expect www = n1
         at 400ms n1 fail connection refused
         expect event node n1 up->down
         expect www = n2
         at 500ms n1 ok
         expect www = n2
         at 600ms n1 ok
         expect event node n1 down->up
         expect www = n1",
    );
}

#[test]
fn a_lost_session_needs_no_confirmation() {
    run(
        &tcp("fall = 3", ""),
        "at 0ms n1 ok
         at 0ms n2 ok
         at 0ms n3 ok
         at 100ms n1 fail timeout
         expect www = n1
         at 110ms n1 lost connection refused
         expect event node n1 up->down
         expect www = n2",
    );
}

#[test]
fn failback_false_keeps_the_current_node() {
    run(
        &tcp("rise = 1\nfall = 1", "failback = false"),
        "at 0ms n1 fail timeout
         at 0ms n2 ok
         at 0ms n3 ok
         expect www = n2
         at 100ms n1 ok
         expect www = n2
         at 200ms n2 fail connection refused
         expect www = n1
         at 300ms n2 ok
         expect www = n1",
    );
}

#[test]
fn on_empty_policies() {
    for (policy, expected) in [
        ("nodata", "nodata"),
        ("servfail", "servfail"),
        ("all", "n1,n2,n3"),
    ] {
        // n2 and n3 stay reachable (up for tcp means reachable), so nothing is stale.
        run(
            &tcp(
                "fall = 1",
                &format!("on_empty = \"{policy}\"\nmax_stale = \"0s\""),
            ),
            &format!(
                "at 0ms n1 ok
                 at 0ms n2 fail refused
                 at 0ms n3 fail refused
                 expect www = n1
                 at 1s n1 fail refused
                 expect www = {expected}"
            ),
        );
    }
}

#[test]
fn healthy_selects_every_healthy_node() {
    run(
        &tcp("fall = 1\nrise = 1", "select = \"healthy\""),
        "at 0ms n1 ok
         at 0ms n2 fail refused
         at 0ms n3 ok
         expect www = n1,n3
         at 1s n2 ok
         expect www = n1,n2,n3
         at 2s n1 fail refused
         expect www = n2,n3",
    );
}

#[test]
fn answer_events_say_why() {
    let c = tcp("fall = 1", "");
    let mut e = Engine::new(&c);
    for node in 0..3 {
        e.observe(
            NodeId::new(0, node),
            Observation::up("ok", Duration::ZERO),
            Duration::ZERO,
        );
    }
    let events = e.observe(
        NodeId::new(0, 0),
        Observation::down("connection refused", Duration::ZERO),
        Duration::from_secs(1),
    );
    assert_eq!(
        events[1],
        Event::AnswerChanged {
            record: RecordId(0),
            from: Answer::Nodes(vec![0]),
            to: Answer::Nodes(vec![1]),
            reason: "n1 down: connection refused".into()
        }
    );
    assert_eq!(e.node(NodeId::new(0, 0)).since, Duration::from_secs(1));
}

// === staleness ===

#[test]
fn an_unreachable_pool_keeps_its_answer_until_max_stale() {
    run(
        &tcp("fall = 1", "max_stale = \"10s\""),
        "at 0ms n1 ok
         at 0ms n2 ok
         at 0ms n3 ok
         at 1s n2 fail timeout
         at 1s n3 fail timeout
         expect www = n1
         at 2s n1 fail timeout
         expect event stale
         expect www = n1
         at 11s n1 fail timeout
         expect www = n1
         at 12s n1 fail timeout
         expect event answer
         expect www = nodata",
    );
    // With a node still reachable nothing is kept: see primary_and_replicas_follow_roles,
    // where the primary's loss gives NODATA at once while the standbys answer probes.
}

#[test]
fn a_pool_whose_hosts_refuse_is_reachable_and_keeps_no_stale_answer() {
    // Every process down but their hosts answering (connection refused): hadns is not the
    // one cut off, and a dead writer kept named would keep clients' caches of it fresh.
    run(
        &tcp("fall = 1", "max_stale = \"10s\""),
        "at 0ms n1 ok
         at 0ms n2 ok
         at 0ms n3 ok
         at 1s n2 refused
         at 1s n3 fail timeout
         expect www = n1
         at 2s n1 refused
         expect event answer
         expect www = nodata",
    );
}

#[test]
fn on_empty_all_is_not_kept_as_stale_again_and_again() {
    // on_empty = "all" answers nodes too; those must not start a new stale period (and a
    // new "keeping the last answer" warning) every max_stale while nothing answers.
    run(
        &tcp(
            "fall = 1\nrise = 1",
            "max_stale = \"10s\"\non_empty = \"all\"",
        ),
        "at 0ms n1 ok
         at 0ms n2 ok
         at 0ms n3 ok
         expect www = n1
         at 1s n1 fail timeout
         at 1s n2 fail timeout
         at 1s n3 fail timeout
         expect event stale
         expect www = n3
         at 12s n1 fail timeout
         expect event answer
         expect www = n1,n2,n3
         at 13s n2 fail timeout
         expect no event stale
         at 30s n1 fail timeout
         expect no event stale
         at 45s n3 fail timeout
         expect no event stale
         expect www = n1,n2,n3
         at 46s n2 ok
         expect www = n2",
    );
}

// === database roles ===

#[test]
fn primary_and_replicas_follow_roles() {
    run(
        &pg("fall = 1\nrise = 1", "", ""),
        "at 0ms n1 primary tl=1 lsn=1000
         at 0ms n2 standby lsn=1000 from=n1
         at 0ms n3 standby lsn=990 from=n1
         expect db = n1
         expect db-ro = n2,n3
         at 1s n1 lost connection refused
         expect db = nodata
         expect db-ro = n2,n3
         at 1100ms n2 primary tl=2 lsn=1100
         expect db = n2
         expect db-ro = nodata
         expect why db-ro n3 replicates from n1:1, not from the primary n2 (127.0.0.11:1)
         at 1200ms n3 standby lsn=1100 from=n2
         expect db-ro = n3
         expect why db-ro n3 -",
    );
}

#[test]
fn the_newest_timeline_wins_a_split_brain() {
    run(
        &pg("fall = 1\nrise = 1", "", ""),
        "at 0ms n1 primary tl=1 lsn=1000
         at 0ms n2 standby lsn=1000
         at 0ms n3 standby lsn=1000
         expect db = n1
         at 1s n2 primary tl=2 lsn=1000
         expect event split-brain
         expect db = n2
         at 2s n1 primary tl=1 lsn=5000
         expect no event split-brain
         expect db = n2
         at 3s n2 fail connection refused
         expect db = n1",
    );
}

#[test]
fn a_timeline_tie_keeps_the_published_node_or_answers_nothing() {
    run(
        &pg("fall = 1\nrise = 1", "", ""),
        "at 0ms n1 primary tl=3
         at 0ms n2 standby
         at 0ms n3 standby
         expect db = n1
         at 1s n2 primary tl=3
         expect event split-brain
         expect db = n1
         at 2s n1 primary tl=3
         expect db = n1",
    );
    // Nothing published when the tie appears: no answer at all.
    run(
        &pg("fall = 1\nrise = 1", "", ""),
        "at 0ms n1 primary tl=3
         at 0ms n2 primary tl=3
         at 0ms n3 standby
         expect event split-brain
         expect db = nodata",
    );
    // The published node stops being writable during a tie: no answer, never the other.
    run(
        &pg("fall = 1\nrise = 1", "", ""),
        "at 0ms n1 primary tl=3
         at 0ms n2 standby
         at 0ms n3 standby
         at 1s n2 primary tl=3
         at 1s n3 primary tl=3
         expect db = n1
         at 2s n1 standby
         expect db = nodata",
    );
}

#[test]
fn a_node_of_another_cluster_is_excluded() {
    run(
        &pg("fall = 1\nrise = 1", "", ""),
        "at 0ms n1 primary tl=1 lsn=1 cluster=A
         at 0ms n2 standby lsn=1 cluster=A from=n1
         at 0ms n3 primary tl=9 cluster=B
         expect event mismatch n3
         expect db = n1
         expect db-ro = n2
         at 1s n3 standby lsn=1 cluster=A from=n1
         expect event rejoined n3
         expect db-ro = n2,n3",
    );
    // Two nodes, two identities, nothing published: neither is trusted.
    run(
        &pg("fall = 1\nrise = 1", "", ""),
        "at 0ms n1 primary tl=1 cluster=A
         at 0ms n2 standby cluster=B
         at 0ms n3 fail refused
         expect db = nodata
         expect db-ro = nodata",
    );
}

#[test]
fn replicas_over_max_lag_leave_until_they_catch_up() {
    run(
        &pg("fall = 1\nrise = 1", "", "max_lag = \"1kB\""),
        "at 0ms n1 primary tl=1 lsn=10000
         at 0ms n2 standby lsn=10000 from=n1
         at 0ms n3 standby lsn=9900 from=n1
         expect db-ro = n2,n3
         at 1s n1 primary tl=1 lsn=20000
         at 1s n2 standby lsn=20000 from=n1
         at 1s n3 standby lsn=10000 from=n1
         expect db-ro = n2
         expect why db-ro n3 lags 10000 bytes, over max_lag
         at 2s n3 standby lsn=19300 from=n1
         expect db-ro = n2
         at 3s n3 standby lsn=19600 from=n1
         expect db-ro = n2,n3",
    );
    // Time: from when the primary was first seen past the replica's position to the
    // replica's probe, on hadns's clock; nothing the replica says about itself.
    run(
        &pg("fall = 1\nrise = 1", "", "max_lag = \"5s\""),
        "at 0ms n1 primary tl=1 lsn=100
         at 0ms n2 standby lsn=100 from=n1
         at 0ms n3 standby lsn=100 from=n1
         expect db-ro = n2,n3
         at 1s n1 primary tl=1 lsn=200
         at 1s n2 standby lsn=200 from=n1
         at 1s n3 standby lsn=100 from=n1
         expect db-ro = n2,n3
         at 4900ms n3 standby lsn=100 from=n1
         expect db-ro = n2,n3
         at 5100ms n3 standby lsn=100 from=n1
         expect db-ro = n2
         expect why db-ro n3 lags 5.1s, over max_lag
         at 6s n1 primary tl=1 lsn=300
         at 7s n3 standby lsn=250 from=n1
         expect db-ro = n2
         expect why db-ro n3 lags 6.0s, over max_lag
         at 8s n3 standby lsn=300 from=n1
         expect db-ro = n2,n3",
    );
}

#[test]
fn a_replica_must_replicate_from_the_published_primary() {
    run(
        &pg("fall = 1\nrise = 1", "", ""),
        "at 0ms n1 primary tl=1 lsn=100
         at 0ms n2 standby lsn=100
         at 0ms n3 standby lsn=100 stopped=n1
         expect db = n1
         expect db-ro = nodata
         expect why db-ro n2 does not replicate (the primary is n1)
         expect why db-ro n3 replication is not running (stopped)
         at 1s n3 standby lsn=100 from=n2
         expect why db-ro n3 replicates from n2
         at 2s n3 standby lsn=100 from=n1
         expect db-ro = n3
         at 3s n2 standby lsn=100 from=n1
         expect db-ro = n2,n3
         at 4s n3 standby lsn=100 stopped=n1
         expect why db-ro n3 replication is not running
         at 5s n3 lost connection refused
         expect why db-ro n3 -",
    );
}

#[test]
fn without_a_primary_replicas_are_compared_with_the_last_one() {
    // The primary goes away: replicas cannot stream from it, and are compared with what it
    // last reported; a time limit counts from when it was last seen.
    run(
        &pg("fall = 1\nrise = 1", "", "max_lag = \"5s\""),
        "at 0ms n1 primary tl=1 lsn=100
         at 0ms n2 standby lsn=100 from=n1
         at 0ms n3 standby lsn=100 from=n1
         expect db-ro = n2,n3
         at 1s n1 lost connection refused
         expect db = nodata
         at 2s n2 standby lsn=100 stopped=n1
         expect db-ro = n2,n3
         at 4900ms n3 standby lsn=100 stopped=n1
         expect db-ro = n2,n3
         at 5100ms n3 standby lsn=100 stopped=n1
         expect db-ro = nodata
         expect why db-ro n2 lags 5.1s
         at 6s n2 primary tl=2 lsn=150
         expect db = n2
         expect db-ro = nodata
         at 6100ms n3 standby lsn=150 from=n2
         expect db-ro = n3",
    );
    // A byte limit: the positions do not move while nothing is written anywhere.
    run(
        &pg("fall = 1\nrise = 1", "", "max_lag = \"1kB\""),
        "at 0ms n1 primary tl=1 lsn=100
         at 0ms n2 standby lsn=100 from=n1
         at 0ms n3 standby lsn=100 from=n1
         at 1s n1 lost connection refused
         at 60s n2 standby lsn=100 stopped=n1
         expect db-ro = n2,n3",
    );
    // No primary seen since start: nothing to compare with, no replica is fresh.
    run(
        &pg("fall = 1\nrise = 1", "", "max_lag = \"1kB\""),
        "at 0ms n1 fail refused
         at 0ms n2 standby lsn=100 stopped=n1
         at 0ms n3 standby lsn=100 stopped=n1
         expect db-ro = nodata
         expect why db-ro n2 no primary has been seen",
    );
}

#[test]
fn mariadb_replicas_are_compared_by_gtid() {
    let config = config(
        "mysql",
        "fall = 1\nrise = 1",
        "[[record]]\nname = \"db.example.internal.\"\npool = \"p\"\nselect = \"primary\"\n\
         [[record]]\nname = \"db-ro.example.internal.\"\npool = \"p\"\nselect = \"replicas\"\n\
         max_lag = \"2 transactions\"",
    );
    run(
        &config,
        "at 0ms n1 primary gtid=0-1-10
         at 0ms n2 standby gtid=0-1-10 from=n1
         at 0ms n3 standby gtid=0-3-10 from=n1
         expect db = n1
         expect db-ro = n2
         expect why db-ro n3 diverged
         at 1s n2 standby gtid=0-1-7 from=n1
         expect db-ro = nodata
         expect why db-ro n2 lags 3 transactions, over max_lag
         at 2s n2 standby gtid=0-1-9 from=n1
         expect db-ro = n2",
    );
    // The old primary, fenced read-only, replicates from nothing: never a replica.
    run(
        &config,
        "at 0ms n1 primary gtid=0-1-9
         at 0ms n2 standby gtid=0-1-9 from=n1
         at 0ms n3 fail refused
         at 1s n1 standby gtid=0-1-9
         at 1s n2 primary gtid=0-1-9,0-2-10
         expect db = n2
         expect db-ro = nodata
         expect why db-ro n1 does not replicate",
    );
}

#[test]
fn the_losing_writable_node_is_fenced_once() {
    run(
        &pg("fall = 1\nrise = 1\nfence = \"read-only\"", "", ""),
        "at 0ms n1 primary tl=1
         at 0ms n2 standby
         at 0ms n3 standby
         expect no event fence n1
         at 1s n2 primary tl=2
         expect event fence n1
         expect db = n2
         at 2s n1 primary tl=1
         expect no event fence n1
         at 3s n1 standby
         at 4s n1 primary tl=1
         expect event fence n1",
    );
    // Without fencing configured, no fence events.
    run(
        &pg("fall = 1\nrise = 1", "", ""),
        "at 0ms n1 primary tl=1
         at 0ms n2 primary tl=2
         at 0ms n3 standby
         expect no event fence n1
         expect db = n2",
    );
}

#[test]
fn degraded_pools_are_reported() {
    let c = pg("fall = 1\nrise = 1", "", "");
    let mut e = Engine::new(&c);
    let up = |role| db_observation(&c, role, &["tl=1", "lsn=1", "from=n1"]);
    e.observe(
        NodeId::new(0, 0),
        db_observation(&c, "primary", &["tl=1", "lsn=1"]),
        Duration::ZERO,
    );
    e.observe(NodeId::new(0, 1), up("standby"), Duration::ZERO);
    e.observe(NodeId::new(0, 2), up("standby"), Duration::ZERO);
    assert!(!e.pool_degraded(PoolId(0)));
    e.observe(
        NodeId::new(0, 0),
        Observation::down("refused", Duration::ZERO),
        Duration::from_secs(1),
    );
    assert!(e.pool_degraded(PoolId(0)), "no primary: probe faster");
}

// === maintenance and reload ===

#[test]
fn a_drained_node_leaves_every_answer_and_returns_when_undrained() {
    run(
        &config(
            "tcp",
            "",
            "[[record]]\nname = \"www.example.internal.\"\npool = \"p\"\n\
             [[record]]\nname = \"all.example.internal.\"\npool = \"p\"\nselect = \"healthy\"\n",
        ),
        "
        at 0s n1 ok
        at 0s n2 ok
        at 0s n3 ok
        expect www = n1
        expect all = n1,n2,n3
        at 1s drain n1
        expect event drained n1
        expect event answer
        expect www = n2
        expect all = n2,n3
        at 2s n1 ok
        expect www = n2
        at 3s drain n1
        expect no events
        at 4s undrain n1
        expect www = n1
        expect all = n1,n2,n3
        ",
    );
}

#[test]
fn a_drained_primary_is_never_the_answer_but_counts_in_split_brain() {
    run(
        &pg("", "", ""),
        "
        at 0s n1 primary tl=1
        at 0s n2 standby
        at 0s n3 standby
        expect db = n1
        at 1s drain n1
        expect db = nodata
        at 2s n2 primary tl=2
        expect event split-brain
        expect db = n2
        at 3s undrain n1
        expect db = n2
        ",
    );
    // A drained winner is not replaced by the loser: no answer.
    run(
        &pg("", "", ""),
        "
        at 0s n1 primary tl=2
        at 0s n2 primary tl=1
        at 0s n3 standby
        expect db = n1
        at 1s drain n1
        expect db = nodata
        ",
    );
}

#[test]
fn a_reload_keeps_the_state_of_continued_nodes_and_answers_at_once() {
    let old_config = tcp("", "");
    let mut old = Engine::new(&old_config);
    for n in 0..3 {
        old.observe(
            NodeId::new(0, n),
            Observation::up("ok", Duration::ZERO),
            Duration::ZERO,
        );
    }
    old.set_drained(NodeId::new(0, 1), true, Duration::from_secs(1));
    let lost = Observation {
        conclusive: true,
        ..Observation::down("refused", Duration::ZERO)
    };
    old.observe(NodeId::new(0, 0), lost, Duration::from_secs(2));
    assert_eq!(old.answer(RecordId(0)), &Answer::Nodes(vec![2]));

    // The new config drops n1, keeps n2 and n3 in another order, adds n4 and a record.
    let text = r#"
[[pool]]
name = "p"
check = "tcp"
[[pool.node]]
name = "n3"
address = "::1"
port = 1
priority = 10
[[pool.node]]
name = "n4"
address = "127.0.0.12"
port = 1
priority = 200
[[pool.node]]
name = "n2"
address = "127.0.0.11"
port = 1
priority = 50
[[record]]
name = "www.example.internal."
pool = "p"
[[record]]
name = "all.example.internal."
pool = "p"
select = "healthy"
"#;
    let config = Config::from_toml(text, Path::new(".")).unwrap();
    let kept = |_p: usize, n: usize| match n {
        0 => Some((0, 2)),
        2 => Some((0, 1)),
        _ => None,
    };
    let (engine, events) = Engine::reloaded(
        &config,
        &old,
        kept,
        |r| (r == 0).then_some(0),
        Duration::from_secs(3),
    );
    // n2 is still drained, n3 still up, n4 unknown: www keeps n3, no change event.
    assert!(engine.node(NodeId::new(0, 2)).drained);
    assert_eq!(engine.node(NodeId::new(0, 0)).health, Health::Up);
    assert_eq!(engine.node(NodeId::new(0, 1)).health, Health::Unknown);
    assert_eq!(engine.answer(RecordId(0)), &Answer::Nodes(vec![0]));
    assert!(engine.pool_ready(PoolId(0)));
    assert_eq!(
        events,
        vec![Event::AnswerChanged {
            record: RecordId(1),
            from: Answer::Pending,
            to: Answer::Nodes(vec![0]),
            reason: "first round of checks complete (configuration reloaded)".into(),
        }]
    );
}

#[test]
fn a_pool_whose_nodes_were_all_replaced_waits_for_its_first_round() {
    let old_config = tcp("", "");
    let mut old = Engine::new(&old_config);
    for n in 0..3 {
        old.observe(
            NodeId::new(0, n),
            Observation::up("ok", Duration::ZERO),
            Duration::ZERO,
        );
    }
    let (mut engine, events) =
        Engine::reloaded(&old_config, &old, |_, _| None, Some, Duration::from_secs(1));
    assert!(events.is_empty(), "{events:?}");
    assert!(!engine.pool_ready(PoolId(0)));
    assert_eq!(engine.answer(RecordId(0)), &Answer::Pending);
    for n in 0..3 {
        engine.observe(
            NodeId::new(0, n),
            Observation::up("ok", Duration::ZERO),
            Duration::from_secs(2),
        );
    }
    assert_eq!(engine.answer(RecordId(0)), &Answer::Nodes(vec![0]));
}

#[test]
fn an_assumed_answer_is_kept_like_a_published_one() {
    // A new cluster leader starts its engine from the agreed answer: with failback = false
    // the agreed node stays while it is up, although a higher priority one is up too.
    let config = tcp("rise = 1\nfall = 1", "failback = false");
    let mut engine = Engine::new(&config);
    engine.assume(RecordId(0), Answer::Nodes(vec![1]));
    let mut events = Vec::new();
    for node in 0..3 {
        let probe = Observation::up("connected", Duration::ZERO);
        events.extend(engine.observe(NodeId::new(0, node), probe, Duration::ZERO));
    }
    assert_eq!(engine.answer(RecordId(0)), &Answer::Nodes(vec![1]));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::AnswerChanged { .. })),
        "{events:?}"
    );
    // Without it, the first round answers the highest priority node.
    let mut fresh = Engine::new(&config);
    for node in 0..3 {
        let probe = Observation::up("connected", Duration::ZERO);
        fresh.observe(NodeId::new(0, node), probe, Duration::ZERO);
    }
    assert_eq!(fresh.answer(RecordId(0)), &Answer::Nodes(vec![0]));
}

// === sites ===

#[test]
fn a_site_answer_runs_the_selector_on_the_sites_nodes() {
    // n1 (priority 100) in site A; n2 (50) and n3 (10) in site B.
    let in_a = |n: usize| n == 0;
    let in_b = |n: usize| n != 0;
    let c = tcp("fall = 1", "");
    let mut e = Engine::new(&c);
    let up = |e: &mut Engine, node: usize, ok: bool, at: u64| {
        let obs = if ok {
            Observation::up("ok", Duration::ZERO)
        } else {
            Observation::down("refused", Duration::ZERO)
        };
        e.observe(NodeId::new(0, node), obs, Duration::from_secs(at));
    };
    for node in 0..3 {
        up(&mut e, node, true, 0);
    }
    let www = RecordId(0);
    // first: the highest priority of each site; the record's own answer is n1.
    assert_eq!(e.answer(www), &Answer::Nodes(vec![0]));
    assert_eq!(e.site_answer(www, in_a), vec![0]);
    assert_eq!(e.site_answer(www, in_b), vec![1]);
    // B's first goes down: B gets its next; the record's answer does not change.
    up(&mut e, 1, false, 1);
    assert_eq!(e.answer(www), &Answer::Nodes(vec![0]));
    assert_eq!(e.site_answer(www, in_b), vec![2]);
    // A's only node goes down: A has none (the caller falls back); drained counts as none.
    up(&mut e, 0, false, 2);
    assert_eq!(e.site_answer(www, in_a), Vec::<usize>::new());
    e.set_drained(NodeId::new(0, 2), true, Duration::from_secs(3));
    assert_eq!(e.site_answer(www, in_b), Vec::<usize>::new());

    // healthy: every eligible node of the site.
    let c = tcp("fall = 1", "select = \"healthy\"");
    let mut e = Engine::new(&c);
    for node in 0..3 {
        up(&mut e, node, true, 0);
    }
    assert_eq!(e.site_answer(www, in_b), vec![1, 2]);
    up(&mut e, 2, false, 1);
    assert_eq!(e.site_answer(www, in_b), vec![1]);
}

#[test]
fn a_site_answer_of_replicas_is_the_sites_fresh_replicas() {
    let c = pg("fall = 1\nrise = 1", "", "max_lag = \"100B\"");
    let mut e = Engine::new(&c);
    let ms = Duration::from_millis;
    let observe = |e: &mut Engine, node: usize, role: &str, args: &[&str], at: u64| {
        let obs = db_observation(&c, role, args);
        e.observe(NodeId::new(0, node), obs, ms(at));
    };
    observe(&mut e, 0, "primary", &["tl=1", "lsn=1000"], 0);
    observe(&mut e, 1, "standby", &["lsn=1000", "from=n1"], 0);
    observe(&mut e, 2, "standby", &["lsn=1000", "from=n1"], 0);
    let ro = RecordId(1);
    // n1 (the primary) and n2 in site A, n3 in site B.
    let in_a = |n: usize| n < 2;
    let in_b = |n: usize| n == 2;
    assert_eq!(e.answer(ro), &Answer::Nodes(vec![1, 2]));
    assert_eq!(
        e.site_answer(ro, in_a),
        vec![1],
        "the primary is not a replica"
    );
    assert_eq!(e.site_answer(ro, in_b), vec![2]);
    // n3 falls behind by more than max_lag: B has no fresh replica.
    observe(&mut e, 0, "primary", &["tl=1", "lsn=5000"], 100);
    observe(&mut e, 1, "standby", &["lsn=5000", "from=n1"], 100);
    observe(&mut e, 2, "standby", &["lsn=1000", "from=n1"], 100);
    assert_eq!(e.answer(ro), &Answer::Nodes(vec![1]));
    assert_eq!(e.site_answer(ro, in_b), Vec::<usize>::new());
    assert_eq!(e.site_answer(ro, in_a), vec![1]);
}

#[test]
fn site_answers_follow_each_sites_fallback_order() {
    // n1 in dc1 (falls back to dc3, then dc2), n2 in dc2, n3 in dc3 (default: all others).
    let c = Config::from_toml(
        "[[site]]\nname = \"dc1\"\nnetworks = [\"10.1.0.0/16\"]\nfallback = [\"dc3\", \"dc2\"]\n\
         [[site]]\nname = \"dc2\"\nnetworks = [\"10.2.0.0/16\"]\n\
         [[site]]\nname = \"dc3\"\nnetworks = [\"10.3.0.0/16\"]\n\
         [[pool]]\nname = \"p\"\ncheck = \"tcp\"\nfall = 1\n\
         [[pool.node]]\nname = \"n1\"\naddress = \"10.1.0.1\"\nport = 1\nsite = \"dc1\"\n\
         [[pool.node]]\nname = \"n2\"\naddress = \"10.2.0.1\"\nport = 1\nsite = \"dc2\"\n\
         [[pool.node]]\nname = \"n3\"\naddress = \"10.3.0.1\"\nport = 1\nsite = \"dc3\"\n\
         [[record]]\nname = \"www.example.internal.\"\npool = \"p\"\nselect = \"healthy\"\n\
         by_site = true\n",
        std::path::Path::new("."),
    )
    .unwrap();
    let mut e = Engine::new(&c);
    let www = RecordId(0);
    // Pending: nothing per site yet.
    assert_eq!(e.site_answers(&c, www), None);
    let observe = |e: &mut Engine, node: usize, ok: bool, at: u64| {
        let obs = if ok {
            Observation::up("ok", Duration::ZERO)
        } else {
            Observation::down("refused", Duration::ZERO)
        };
        e.observe(NodeId::new(0, node), obs, Duration::from_secs(at));
    };
    for node in 0..3 {
        observe(&mut e, node, true, 0);
    }
    let nodes = |n: &[usize]| Answer::Nodes(n.to_vec());
    assert_eq!(
        e.site_answers(&c, www),
        Some(vec![nodes(&[0]), nodes(&[1]), nodes(&[2])])
    );
    // dc1's node fails: dc1 gets dc3's (its first fallback), dc3's fails too: dc2's.
    observe(&mut e, 0, false, 1);
    assert_eq!(
        e.site_answers(&c, www),
        Some(vec![nodes(&[2]), nodes(&[1]), nodes(&[2])])
    );
    observe(&mut e, 2, false, 2);
    assert_eq!(
        e.site_answers(&c, www),
        Some(vec![nodes(&[1]), nodes(&[1]), nodes(&[1])])
    );
}
