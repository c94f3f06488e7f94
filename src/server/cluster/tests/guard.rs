//! The leader names a different writer only when no client can still use the old one
//! (`guard.rs`). Each test fails without the rule it names.

use super::*;
use crate::engine::NodeId;

/// The agreed decision `seq` that withdrew web1: the record answers SERVFAIL.
fn withdrawal(seq: u64) -> Agreed {
    let mut agreed = decision(seq, 1);
    agreed.records[0].answer = AgreedAnswer::Servfail;
    agreed
}

/// `state` where m1, m2, m3 serve the decisions `served` (`None`: the member left etcd).
fn serving(mut state: State, served: [Option<u64>; 3]) -> State {
    for (member, served) in MEMBERS.iter().zip(served) {
        match served {
            Some(seq) => state.members.get_mut(*member).unwrap().served = seq,
            None => {
                state.members.remove(*member);
                state.views.remove(*member);
            }
        }
    }
    state
}

/// What the step proposes, if anything.
fn proposal(out: &Output) -> Option<AgreedAnswer> {
    proposed(out).map(|records| records[0].answer.clone())
}

/// m1 leads with web1 agreed (decision 1), then m1 and m2 see web1 down: the decision it
/// proposes, written as decision 2.
fn web1_lost(m1: &mut Member, views: impl Fn(State) -> State) -> (Option<AgreedAnswer>, Agreed) {
    m1.step(state(true, [UP, UP, UP], Some(decision(1, 1))), false);
    let out = m1.step(
        views(state(true, [DOWN, DOWN, UP], Some(decision(1, 1)))),
        false,
    );
    let written = m1.propose(proposed(&out).expect("web1 is down")).unwrap();
    (proposal(&out), written)
}

fn ttl(m: &Member) -> Duration {
    Duration::from_secs(m.config.records[0].ttl.into())
}

const WEB2: fn() -> AgreedAnswer = || AgreedAnswer::Nodes(vec![agreed_node(2)]);

#[test]
fn a_writer_whose_host_refuses_connections_is_replaced_at_once() {
    let mut m1 = Member::new("servfail");
    let (answer, _) = web1_lost(&mut m1, refused);
    assert_eq!(answer, Some(WEB2()), "a crash costs no wait");
}

#[test]
fn a_silent_writer_is_withdrawn_until_every_member_served_that_and_the_ttl_passed() {
    let mut m1 = Member::new("servfail");
    let (answer, written) = web1_lost(&mut m1, |s| s);
    assert_eq!(
        answer,
        Some(AgreedAnswer::Servfail),
        "timeouts prove nothing"
    );
    assert_eq!(written.seq, 2);
    let down = || state(true, [DOWN, DOWN, UP], Some(written.clone()));
    // m3 still serves decision 1, which names web1.
    let out = m1.step(serving(down(), [Some(2), Some(2), Some(1)]), false);
    assert_ne!(proposal(&out), Some(WEB2()));
    assert_eq!(m1.source.wake_at(), None, "nothing to wait out yet");
    // All three serve the withdrawal: web2 once the TTL has passed since.
    let t0 = m1.instant;
    let all = serving(down(), [Some(2), Some(2), Some(2)]);
    assert_ne!(proposal(&m1.step(all.clone(), false)), Some(WEB2()));
    assert_eq!(m1.source.wake_at(), Some(t0 + ttl(&m1)));
    m1.instant = t0 + ttl(&m1) - Duration::from_millis(1);
    assert_ne!(proposal(&m1.step(all.clone(), false)), Some(WEB2()));
    m1.instant = t0 + ttl(&m1);
    assert_eq!(proposal(&m1.step(all, false)), Some(WEB2()));
}

#[test]
fn a_refused_writer_may_be_used_until_every_member_served_its_withdrawal_and_the_ttl() {
    // What a promotion waits for before its candidate takes writes: a refused connection
    // proves the writer unusable now, not for the TTL ahead (a crashed server may be
    // restarted writable), so answers naming it count until they expire everywhere.
    let mut m1 = Member::new("servfail");
    let no_web2 = |mut s: State| {
        for views in s.views.values_mut() {
            views.get_mut("web/web2").unwrap().health = Health::Down;
        }
        refused(s)
    };
    let web1 = NodeId::new(0, 0);
    let usable = |m: &Member| m.source.writer_usable_until(&m.config, web1, m.instant);
    assert_eq!(usable(&m1), None, "not leading: not known");
    let (answer, written) = web1_lost(&mut m1, no_web2);
    assert_ne!(answer, Some(AgreedAnswer::Nodes(vec![agreed_node(1)])));
    assert_eq!(usable(&m1), None, "nobody served the withdrawal yet");
    let down = || no_web2(state(true, [DOWN, DOWN, UP], Some(written.clone())));
    m1.step(serving(down(), [Some(2), Some(2), Some(1)]), false);
    assert_eq!(
        usable(&m1),
        None,
        "m3 still serves decision 1, which names web1"
    );
    let t0 = m1.instant;
    m1.step(serving(down(), [Some(2), Some(2), Some(2)]), false);
    assert_eq!(usable(&m1), Some(t0 + ttl(&m1)));
}

#[test]
fn a_member_that_left_etcd_names_nothing_and_is_not_waited_for() {
    let mut m1 = Member::new("servfail");
    let (_, written) = web1_lost(&mut m1, |s| s);
    // m3 (cut off, say) left etcd: its lease ended, and its writers' deadline before.
    let gone = serving(
        state(true, [DOWN, DOWN, UP], Some(written)),
        [Some(2), Some(2), None],
    );
    let t0 = m1.instant;
    m1.step(gone.clone(), false);
    assert_eq!(m1.source.wake_at(), Some(t0 + ttl(&m1)));
    m1.instant = t0 + ttl(&m1);
    assert_eq!(proposal(&m1.step(gone, false)), Some(WEB2()));
}

#[test]
fn a_fenced_writer_is_replaced_at_once() {
    let mut m1 = Member::new("servfail");
    let (_, written) = web1_lost(&mut m1, |s| s);
    let down = serving(
        state(true, [DOWN, DOWN, UP], Some(written)),
        [Some(2), Some(2), Some(1)],
    );
    assert_ne!(proposal(&m1.step(down.clone(), false)), Some(WEB2()));
    let config = m1.config.clone();
    m1.source.fenced(&config, NodeId::new(0, 0));
    assert_eq!(proposal(&m1.step(down, true)), Some(WEB2()));
}

#[test]
fn a_new_leader_that_finds_the_writer_withdrawn_waits_the_ttl_too() {
    let mut m1 = Member::new("servfail");
    // Another leader withdrew web1 (decision 4) and lost its leadership before web2.
    let found = serving(
        state(true, [DOWN, DOWN, UP], Some(withdrawal(4))),
        [Some(4), Some(4), Some(4)],
    );
    let t0 = m1.instant;
    let out = m1.step(found.clone(), false);
    assert_ne!(
        proposal(&out),
        Some(WEB2()),
        "it cannot know whom clients hold"
    );
    m1.instant = t0 + ttl(&m1);
    assert_eq!(proposal(&m1.step(found, false)), Some(WEB2()));
}

#[test]
fn a_failback_withdraws_the_writer_that_is_still_up_first() {
    let mut m1 = Member::new("servfail");
    // web2 serves as the writer; web1 is back: `first` moves back to it, but clients
    // still hold web2, which takes writes.
    let out = m1.step(state(true, [UP, UP, UP], Some(decision(3, 2))), false);
    assert_eq!(proposal(&out), Some(AgreedAnswer::Servfail));
    // The same writer named again while withdrawn needs no wait: nobody named another.
    let mut m1 = Member::new("servfail");
    let (_, written) = web1_lost(&mut m1, |s| s);
    let back = serving(
        state(true, [UP, UP, UP], Some(written)),
        [Some(2), Some(1), Some(1)],
    );
    assert_eq!(
        proposal(&m1.step(back, false)),
        Some(AgreedAnswer::Nodes(vec![agreed_node(1)]))
    );
}
