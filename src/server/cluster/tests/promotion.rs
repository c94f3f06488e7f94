//! Promotion's part of the cluster side: the deposed nodes of etcd's record.

use super::*;
use crate::cluster::AgreedPromotion;

fn deposed(mut state: State, nodes: &[&str]) -> State {
    let record = AgreedPromotion {
        deposed: nodes.iter().map(|n| n.to_string()).collect(),
        ..AgreedPromotion::default()
    };
    state.promotions.insert("web".into(), record);
    state
}

#[test]
fn a_node_deposed_in_etcd_is_never_named_by_the_leader_and_named_again_once_released() {
    let mut m1 = Member::new("keep");
    let agreed = decision(1, 1);
    m1.step(state(true, [UP, UP, UP], Some(agreed.clone())), false);
    // Every member sees web1 up, but a promotion replaced it: the leader withdraws it
    // (the guard: it is not proven unusable, so no other writer is named yet).
    let out = m1.step(
        deposed(state(true, [UP, UP, UP], Some(agreed.clone())), &["web1"]),
        false,
    );
    let records = proposed(&out).expect("the deposed writer is withdrawn");
    assert_eq!(records[0].answer, AgreedAnswer::Servfail);
    // The local engine shows it deposed too.
    assert!(m1.engine.node(crate::engine::NodeId::new(0, 0)).deposed);
    // Released (it follows the primary again): named again, the same writer at once.
    let withdrawn = Agreed {
        seq: 2,
        records: records.clone(),
        ..agreed
    };
    let out = m1.step(state(true, [UP, UP, UP], Some(withdrawn)), false);
    let records = proposed(&out).expect("released");
    assert_eq!(records[0].answer, AgreedAnswer::Nodes(vec![agreed_node(1)]));
    assert!(!m1.engine.node(crate::engine::NodeId::new(0, 0)).deposed);
}

#[test]
fn a_member_that_does_not_lead_follows_the_deposed_list_but_proposes_nothing() {
    let mut m1 = Member::new("keep");
    let agreed = decision(1, 1);
    let out = m1.step(
        deposed(state(false, [UP, UP, UP], Some(agreed)), &["web1"]),
        false,
    );
    assert!(proposed(&out).is_none());
    assert!(m1.source.leading().is_none());
    assert!(m1.engine.node(crate::engine::NodeId::new(0, 0)).deposed);
}
