//! The checker's own tests: each figure counted from samples and decisions made by hand.

use super::*;

fn at(base: Instant, ms: u64, member: usize, node: Option<u8>) -> Sample {
    Sample {
        at: base + Duration::from_millis(ms),
        client: 0,
        round: ms / 10,
        member,
        seen: match node {
            Some(n) => Seen::Nodes(vec![IpAddr::from([10, 0, 0, n])]),
            None => Seen::Refused(ResponseCode::ServFail),
        },
    }
}

#[test]
fn the_checker_counts_only_overlapping_usable_answers() {
    let t = Instant::now();
    let ttl = Duration::from_secs(1);
    // node 1 until 500 ms, refusals, node 2 from 1500 ms: touching, no overlap.
    let clean = [
        at(t, 0, 0, Some(1)),
        at(t, 500, 1, Some(1)),
        at(t, 900, 0, None),
    ];
    let mut samples = clean.to_vec();
    samples.push(at(t, 1500, 2, Some(2)));
    assert_eq!(two_writers(&samples, ttl), Duration::ZERO);
    // node 2 at 1200 ms: usable with node 1's last answer for 300 ms.
    samples.push(at(t, 1200, 1, Some(2)));
    assert_eq!(two_writers(&samples, ttl), Duration::from_millis(300));
    // node 1 down from 1000 to 1600 ms: its answer at 500 ms is usable only until then.
    let down = [(
        IpAddr::from([10, 0, 0, 1]),
        t + Duration::from_millis(1000),
        t + Duration::from_millis(1600),
    )];
    assert_eq!(two_writers_while_up(&samples, ttl, &down), Duration::ZERO);
    let early = [(
        IpAddr::from([10, 0, 0, 1]),
        t + Duration::from_millis(1300),
        t + Duration::from_millis(1600),
    )];
    assert_eq!(
        two_writers_while_up(&samples, ttl, &early),
        Duration::from_millis(100)
    );
    // Two members naming different nodes at once: for node2's whole TTL.
    let split = [
        at(t, 0, 0, Some(1)),
        at(t, 0, 1, Some(2)),
        at(t, 400, 0, Some(1)),
    ];
    assert_eq!(two_writers(&split, ttl), Duration::from_millis(1000));
}

fn node(n: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, n])
}

/// A decision as the leader writes it (`wire::Agreed`), `db` naming `nodes` (none:
/// SERVFAIL) and `www` always naming node 9.
fn decision(seq: u64, epoch: i64, serial: u32, nodes: &[u8]) -> serde_json::Value {
    use hadns::cluster::wire::{Agreed, AgreedNode, AgreedRecord};
    use hadns::engine::Answer;
    let named = |ns: &[u8]| {
        let nodes = ns.iter().map(|&n| AgreedNode {
            node: format!("node{n}"),
            address: node(n),
        });
        Answer::Nodes(nodes.collect())
    };
    let db = match nodes {
        [] => Answer::Servfail,
        _ => named(nodes),
    };
    let record = |name: &str, answer| AgreedRecord {
        name: name.into(),
        answer,
        sites: BTreeMap::new(),
        reason: String::new(),
    };
    let agreed = Agreed {
        leader: "m1".into(),
        epoch,
        seq,
        serial,
        decided_ms: seq * 1000,
        digest: String::new(),
        records: vec![
            record("db.example.internal.", db),
            record("www", named(&[9])),
        ],
    };
    serde_json::to_value(agreed).unwrap()
}

#[test]
fn decided_answers_are_read_from_every_decision_of_the_name() {
    let decisions = [
        decision(1, 5, 100, &[2, 1]),
        decision(2, 5, 101, &[]),
        decision(3, 5, 102, &[3]),
    ];
    let answers = decided(&decisions, "db.example.internal.");
    assert_eq!(answers, [vec![node(1), node(2)], vec![], vec![node(3)]]);
    assert_eq!(
        decided(&decisions, "www"),
        [[node(9)], [node(9)], [node(9)]]
    );
    assert!(decided(&decisions, "other").is_empty());
}

#[test]
fn undecided_counts_answers_no_decision_gave() {
    let decided = decided(&[decision(1, 5, 100, &[1, 2])], "db.example.internal.");
    let t = Instant::now();
    let with = |nodes: Vec<IpAddr>| Sample {
        seen: Seen::Nodes(nodes),
        ..at(t, 0, 0, None)
    };
    // The decided set in any order, refusals and losses: all decided (or no answer).
    let fine = [
        with(vec![node(2), node(1)]),
        with(vec![node(1), node(2)]),
        at(t, 10, 1, None),
        Sample {
            seen: Seen::Lost,
            ..at(t, 20, 2, None)
        },
    ];
    assert_eq!(undecided(&fine, &decided), 0);
    // One of the two, or a third: no leader named that.
    let mut samples = fine.to_vec();
    samples.extend([with(vec![node(1)]), with(vec![node(1), node(3)])]);
    assert_eq!(undecided(&samples, &decided), 2);
}

#[test]
fn decisions_out_of_turn_are_a_skipped_seq_or_an_older_leadership() {
    let in_turn = [
        decision(1, 5, 100, &[1]),
        decision(2, 5, 101, &[2]),
        decision(3, 9, 102, &[2]),
    ];
    assert_eq!(out_of_turn(&in_turn), 0);
    let skipped = [decision(1, 5, 100, &[1]), decision(3, 5, 101, &[2])];
    assert_eq!(out_of_turn(&skipped), 1);
    let deposed = [decision(1, 9, 100, &[1]), decision(2, 5, 101, &[2])];
    assert_eq!(out_of_turn(&deposed), 1);
    let repeated = [decision(1, 5, 100, &[1]), decision(1, 5, 100, &[1])];
    assert_eq!(out_of_turn(&repeated), 1);
}

#[test]
fn a_member_serving_an_older_decision_after_a_newer_one_is_backwards() {
    let decisions = [
        decision(1, 5, 100, &[1]),
        decision(2, 5, 101, &[2]),
        decision(3, 5, 102, &[3]),
    ];
    let seen = |client, member, serial| SerialSample {
        client,
        member,
        serial,
        at_ms: 10_000,
    };
    // Each (client, member) forward; members apart from each other may lag; serials of no
    // decision (a member's own, before it agreed) are left out.
    let forward = [
        seen(0, 0, 100),
        seen(0, 0, 102),
        seen(0, 1, 101),
        seen(1, 0, 100),
        seen(0, 0, 7),
        seen(0, 0, 102),
    ];
    assert_eq!(backwards(&forward, &decisions), 0);
    let mut samples = forward.to_vec();
    samples.extend([seen(0, 0, 101), seen(0, 0, 100)]);
    assert_eq!(backwards(&samples, &decisions), 2);
    // A restarted member's own serial, equal to a decision not yet decided when it was
    // seen, then the agreed one: not that decision, so not backwards.
    let own = SerialSample {
        at_ms: 500,
        ..seen(2, 2, 102)
    };
    assert_eq!(backwards(&[own, seen(2, 2, 100)], &decisions), 0);
}
