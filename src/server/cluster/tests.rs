//! The cluster side without etcd: states as the member task would publish them, the
//! decisions that come out. Each test names the rule it holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::cluster::{AgreedAnswer, AgreedNode, MemberInfo};
use crate::engine::{Answer, Observation};
use crate::server::decisions::Route;

mod guard;
mod promotion;

const MEMBERS: [&str; 3] = ["m1", "m2", "m3"];

fn config(on_lost: &str) -> Config {
    let text = format!(
        r#"
[dns]
listen = ["127.0.0.1:5300"]
zones_dir = "zones"

[cluster]
name = "m1"
members = ["m1", "m2", "m3"]
etcd = ["http://127.0.0.1:2379"]
lease = "3s"
on_lost = "{on_lost}"

[[pool]]
name = "web"
check = "tcp"
[[pool.node]]
name = "web1"
address = "192.0.2.1"
port = 80
[[pool.node]]
name = "web2"
address = "192.0.2.2"
port = 80

[[record]]
name = "www.example.internal"
pool = "web"
select = "first"

[[vip]]
record = "www.example.internal"
node = "web1"
address = "192.0.2.100/24"
interface = "lo"
"#
    );
    Config::from_toml(&text, std::path::Path::new("/etc/hadns")).unwrap_or_else(|p| panic!("{p:?}"))
}

/// A member's view of web1 and web2.
fn views(web1: Health, web2: Health) -> BTreeMap<String, NodeView> {
    [("web1", web1), ("web2", web2)]
        .into_iter()
        .map(|(node, health)| {
            let view = NodeView {
                pool: "web".into(),
                node: node.into(),
                health,
                reason: String::new(),
                refused: false,
                db: None,
            };
            (format!("web/{node}"), view)
        })
        .collect()
}

fn agreed_node(n: usize) -> AgreedNode {
    AgreedNode {
        node: format!("web{n}"),
        address: format!("192.0.2.{n}").parse().unwrap(),
    }
}

fn decision(seq: u64, node: usize) -> Agreed {
    Agreed {
        leader: "m2".into(),
        epoch: 5,
        seq,
        serial: 1000 + seq as u32,
        decided_ms: 1_000_000,
        digest: "other".into(),
        records: vec![AgreedRecord {
            name: "www.example.internal.".into(),
            answer: AgreedAnswer::Nodes(vec![agreed_node(node)]),
            sites: BTreeMap::new(),
            reason: "agreed".into(),
        }],
    }
}

/// Connected, three live members; m1 leads when `leading`; each member's view of web1 as
/// given, web2 up everywhere.
fn state(leading: bool, web1: [Health; 3], decision: Option<Agreed>) -> State {
    State {
        connected: true,
        last_contact: Some(Instant::now()),
        leading,
        leader: Some((if leading { "m1" } else { "m2" }.into(), 5)),
        members: (MEMBERS.iter())
            .map(|m| {
                let info = MemberInfo {
                    digest: "d".into(),
                    version: "test".into(),
                    served: 0,
                };
                (m.to_string(), info)
            })
            .collect(),
        views: (MEMBERS.iter().zip(web1))
            .map(|(m, h)| (m.to_string(), views(h, Health::Up)))
            .collect(),
        decision,
        ..State::default()
    }
}

/// `state` where every member that sees web1 down says its host refused the connection.
fn refused(mut state: State) -> State {
    for views in state.views.values_mut() {
        let web1 = views.get_mut("web/web1").unwrap();
        web1.refused = web1.health == Health::Down;
    }
    state
}

/// A member's supervisor in miniature: its config, its local engine, its serials.
struct Member {
    config: Config,
    engine: Engine,
    source: ClusterSource,
    instant: Instant,
    serials: Vec<u32>,
}

impl Member {
    fn new(on_lost: &str) -> Member {
        let config = config(on_lost);
        let engine = Engine::new(&config);
        let writers = Arc::new(crate::api::deadline::Deadline::passed());
        let source = ClusterSource::new(config.cluster.clone().unwrap(), "d".into(), writers);
        Member {
            config,
            engine,
            source,
            instant: Instant::now(),
            serials: vec![500],
        }
    }

    fn step(&mut self, state: State, refresh: bool) -> Output {
        let mut cx = Context {
            config: &self.config,
            engine: &mut self.engine,
            now: Duration::from_secs(10),
            instant: self.instant,
            unix_ms: 1_000_250,
            serials: &self.serials,
        };
        self.source.step(Arc::new(state), refresh, &mut cx)
    }

    fn propose(&mut self, records: Vec<AgreedRecord>) -> Option<Agreed> {
        let cx = Context {
            config: &self.config,
            engine: &mut self.engine,
            now: Duration::from_secs(10),
            instant: self.instant,
            unix_ms: 2_000_000,
            serials: &self.serials,
        };
        match self.source.propose(records, &cx)? {
            Request::Propose(decision) => Some(decision),
            _ => panic!("a proposal is a Propose request"),
        }
    }
}

/// The records the step proposes, if it does.
fn proposed(out: &Output) -> Option<Vec<AgreedRecord>> {
    out.decisions.iter().find_map(|d| match &d.route {
        Route::Propose(records) => Some(records.clone()),
        _ => None,
    })
}

/// The decision that serves agreed answers, if the step made one.
fn served(out: &Output) -> Option<&Decision> {
    (out.decisions.iter()).find(|d| matches!(d.route, Route::Agreed { .. }))
}

fn addresses(decision: &Decision) -> Answer<std::net::IpAddr> {
    decision.answers.as_ref().unwrap()[0].all.clone()
}

const UP: Health = Health::Up;
const DOWN: Health = Health::Down;

#[test]
fn the_leader_moves_an_answer_only_when_a_majority_sees_the_node_down() {
    let mut m1 = Member::new("keep");
    let out = m1.step(state(true, [DOWN, UP, UP], None), false);
    let records = proposed(&out).expect("the first merged round is proposed");
    assert_eq!(records[0].answer, AgreedAnswer::Nodes(vec![agreed_node(1)]));
    // Agreed; then a second member sees web1 down: a majority.
    let agreed = decision(1, 1);
    m1.step(state(true, [DOWN, UP, UP], Some(agreed.clone())), false);
    let out = m1.step(refused(state(true, [DOWN, DOWN, UP], Some(agreed))), false);
    let records = proposed(&out).expect("a majority moved web1 down");
    assert_eq!(records[0].answer, AgreedAnswer::Nodes(vec![agreed_node(2)]));
}

#[test]
fn a_member_that_does_not_lead_proposes_nothing() {
    let mut m1 = Member::new("keep");
    let out = m1.step(
        state(false, [DOWN, DOWN, DOWN], Some(decision(1, 1))),
        false,
    );
    assert!(proposed(&out).is_none());
}

#[test]
fn a_new_leader_keeps_the_agreed_answer_until_its_merge_covers_the_pool() {
    let mut m1 = Member::new("keep");
    // web2 agreed; the views name only web1 (web2's not merged yet): the pool has not
    // completed a merged round, so its record keeps what was agreed, not `pending`.
    let mut partial = state(true, [UP, UP, UP], Some(decision(4, 2)));
    for views in partial.views.values_mut() {
        views.remove("web/web2");
    }
    let out = m1.step(partial, false);
    assert!(proposed(&out).is_none(), "{:?}", proposed(&out));
    // With every view merged, the leader's engine decides (web1 first again: web2, still
    // up, withdrawn first, see tests/guard.rs).
    let out = m1.step(state(true, [UP, UP, UP], Some(decision(4, 2))), false);
    let records = proposed(&out).expect("the merged round decides");
    assert_eq!(records[0].answer, AgreedAnswer::Servfail);
}

#[test]
fn proposals_are_numbered_after_the_agreed_decision_and_never_twice() {
    let mut m1 = Member::new("keep");
    let agreed = decision(7, 1);
    let out = m1.step(state(true, [DOWN, DOWN, UP], Some(agreed.clone())), false);
    let records = proposed(&out).unwrap();
    let written = m1.propose(records.clone()).expect("written");
    assert_eq!(written.seq, 8);
    assert_eq!(written.serial, crate::dns::serial_next(agreed.serial));
    assert_eq!(written.epoch, 5);
    assert_eq!(written.leader, "m1");
    // The same answers again (before etcd echoed them back): nothing new to write.
    assert!(m1.propose(records).is_none());
}

#[test]
fn a_proposal_etcd_did_not_take_within_a_lease_is_numbered_again_after_the_agreed_one() {
    let mut m1 = Member::new("keep");
    let agreed = decision(7, 1);
    let out = m1.step(state(true, [DOWN, DOWN, UP], Some(agreed.clone())), false);
    let records = proposed(&out).unwrap();
    assert_eq!(m1.propose(records.clone()).unwrap().seq, 8);
    // Within the lease (3 s) the leader counts on it: a further change follows it.
    m1.instant += Duration::from_millis(2900);
    let out = m1.step(state(true, [DOWN, DOWN, UP], Some(agreed.clone())), true);
    assert!(
        proposed(&out).is_none(),
        "the same answers: nothing to propose"
    );
    // Past the lease and still not agreed: it was lost (the member writes a decision only
    // after the one it follows), so the same answers are proposed again, as seq 8.
    m1.instant += Duration::from_millis(200);
    let out = m1.step(state(true, [DOWN, DOWN, UP], Some(agreed.clone())), true);
    let again = m1.propose(proposed(&out).expect("proposed again")).unwrap();
    assert_eq!(again.seq, 8);
    assert_eq!(again.serial, crate::dns::serial_next(agreed.serial));
}

#[test]
fn the_first_decision_moves_every_serial() {
    let mut m1 = Member::new("keep");
    // A zone's serial far above the Unix time (a date-style serial).
    m1.serials = vec![2_026_120_301];
    let out = m1.step(state(true, [UP, UP, UP], None), false);
    let written = m1.propose(proposed(&out).unwrap()).unwrap();
    assert_eq!(written.seq, 1);
    assert!(crate::dns::serial_after(written.serial, 2_026_120_301));
}

#[test]
fn every_member_serves_the_agreed_answer_with_its_serial() {
    let mut m3 = Member::new("keep");
    let out = m3.step(state(false, [UP, UP, UP], Some(decision(3, 2))), false);
    let decision = served(&out).expect("served");
    assert!(matches!(decision.route, Route::Agreed { serial: 1003 }));
    assert_eq!(
        addresses(decision),
        Answer::Nodes(vec!["192.0.2.2".parse().unwrap()])
    );
    assert_eq!(out.served_age, Some(Duration::from_millis(250)));
    assert!(
        matches!(&decision.events[..], [Event::AnswerChanged { to: Answer::Nodes(n), .. }] if n == &[1]),
        "{:?}",
        decision.events
    );
    // The same decision again: nothing to do.
    let again = m3.step(
        state(false, [UP, UP, UP], Some(self::decision(3, 2))),
        false,
    );
    assert!(served(&again).is_none());
}

#[test]
fn cut_off_with_on_lost_servfail_refuses_at_once_and_releases_the_vips() {
    let mut m1 = Member::new("servfail");
    m1.step(state(false, [UP, UP, UP], Some(decision(3, 1))), false);
    let mut cut = state(false, [UP, UP, UP], Some(decision(3, 1)));
    cut.connected = false;
    let out = m1.step(cut, false);
    let refusal = served(&out).expect("a refusal");
    assert_eq!(addresses(refusal), Answer::Servfail);
    assert!(
        matches!(refusal.route, Route::Agreed { serial: 1003 }),
        "the serial stays"
    );
    assert_eq!(refusal.holds, Some(vec![false]));
}

#[test]
fn cut_off_with_on_lost_keep_keeps_answers_and_vips_until_the_lease_ends() {
    let mut m1 = Member::new("keep");
    let out = m1.step(state(false, [UP, UP, UP], Some(decision(3, 1))), false);
    assert_eq!(
        served(&out).unwrap().holds,
        Some(vec![true]),
        "web1 is agreed: held"
    );
    let mut cut = state(false, [UP, UP, UP], Some(decision(3, 1)));
    cut.connected = false;
    let contact = m1.instant;
    cut.last_contact = Some(contact);
    // Within the lease (3 s; released one keepalive interval early, at 2 s).
    m1.instant = contact + Duration::from_millis(1900);
    let out = m1.step(cut.clone(), false);
    let kept = served(&out).expect("the connection changed: served again");
    assert_eq!(
        addresses(kept),
        Answer::Nodes(vec!["192.0.2.1".parse().unwrap()])
    );
    assert_eq!(kept.holds, None, "vips stay as they are");
    assert_eq!(
        m1.source.release_at(),
        Some(contact + Duration::from_secs(2)),
        "the supervisor wakes at the lease's end"
    );
    m1.instant = contact + Duration::from_secs(2);
    let out = m1.step(cut, false);
    let released = served(&out).expect("released");
    assert_eq!(released.holds, Some(vec![false]));
    assert_eq!(
        addresses(released),
        Answer::Nodes(vec!["192.0.2.1".parse().unwrap()])
    );
    assert_eq!(m1.source.release_at(), None);
}

#[test]
fn back_in_touch_a_member_takes_a_vip_only_when_connected_and_named() {
    let mut m1 = Member::new("keep");
    let mut cut = state(false, [UP, UP, UP], Some(decision(3, 1)));
    cut.connected = false;
    cut.last_contact = None;
    let out = m1.step(cut, false);
    assert!(
        out.decisions.iter().all(|d| d.holds != Some(vec![true])),
        "never before a session"
    );
    let out = m1.step(state(false, [UP, UP, UP], Some(decision(3, 2))), false);
    assert_eq!(
        served(&out).unwrap().holds,
        Some(vec![false]),
        "web2 is agreed"
    );
    let out = m1.step(state(false, [UP, UP, UP], Some(decision(4, 1))), false);
    assert_eq!(served(&out).unwrap().holds, Some(vec![true]));
}

#[test]
fn the_vip_rule_is_the_same_for_both_sources() {
    let config = config("keep");
    let named = |_| Some(Answer::Nodes(vec![0]));
    assert_eq!(vip_rule(&config, named, true), vec![true]);
    // Named but not up (the local engine's view in local mode): not held.
    assert_eq!(vip_rule(&config, named, false), vec![false]);
    // Up but another node named, or several: not held.
    assert_eq!(
        vip_rule(&config, |_| Some(Answer::Nodes(vec![1])), true),
        vec![false]
    );
    assert_eq!(
        vip_rule(&config, |_| Some(Answer::Nodes(vec![0, 1])), true),
        vec![false]
    );
    assert_eq!(vip_rule(&config, |_| None, true), vec![false]);
}

fn vip_rule(
    config: &Config,
    answer: impl Fn(crate::engine::RecordId) -> Option<Answer>,
    up: bool,
) -> Vec<bool> {
    crate::server::decisions::vip_holds(config, answer, |_| up)
}

#[test]
fn a_new_session_sends_every_known_view_again() {
    let mut m1 = Member::new("keep");
    let id = NodeId::new(0, 0);
    m1.engine.observe(
        id,
        Observation::up("connected", Duration::ZERO),
        Duration::ZERO,
    );
    let mut cut = state(false, [UP, UP, UP], None);
    cut.connected = false;
    m1.step(cut, false);
    let out = m1.step(state(false, [UP, UP, UP], None), false);
    let views: Vec<&str> = (out.requests.iter())
        .filter_map(|r| match r {
            Request::View(v) => Some(v.node.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(views, ["web1"], "web2 has no view yet: not sent");
}

#[test]
fn the_cluster_wide_drains_reach_the_local_engine() {
    let mut m1 = Member::new("keep");
    let mut drained = state(false, [UP, UP, UP], None);
    drained.drains = vec![Drain {
        pool: "web".into(),
        node: "web2".into(),
        since: String::new(),
    }];
    let out = m1.step(drained, false);
    assert!(m1.engine.node(NodeId::new(0, 1)).drained);
    assert!(
        (out.decisions.iter()).any(|d| d.events.iter().any(|e| matches!(e, Event::Drained { .. }))),
        "the drain has its effects here"
    );
    // The leader's engine decides with the same list: web1 drained moves the answer.
    let mut leading = state(true, [UP, UP, UP], Some(decision(2, 1)));
    leading.drains = vec![Drain {
        pool: "web".into(),
        node: "web1".into(),
        since: String::new(),
    }];
    // (web1 still takes writes: withdrawn first, web2 once nobody names web1, see
    // tests/guard.rs.)
    let records = proposed(&m1.step(leading, false)).expect("a drain moves the answer");
    assert_eq!(records[0].answer, AgreedAnswer::Servfail);
    // The list to write: the current one with one entry changed, never duplicated.
    assert_eq!(
        m1.source
            .drains_with("web", "web1", true, "now".into())
            .len(),
        1
    );
    assert_eq!(
        m1.source
            .drains_with("web", "web2", true, "now".into())
            .len(),
        2
    );
    assert!(
        m1.source
            .drains_with("web", "web1", false, String::new())
            .is_empty()
    );
}
