//! Never two writers (docs/cluster.md): a writer that went silent, or a data centre cut
//! off with it, is replaced only once no client can still use it. A client samples every
//! member every 10 ms, one query each (a lost query is a sample); the checker counts the
//! time two different writers were usable at once, each answer for its TTL (1 s).

use std::time::{Duration, Instant};

use super::*;
use crate::support::cluster::checker::{Sampler, first_named, last_named, two_writers};
use crate::support::cluster::web_cluster;

const TTL: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_writer_is_replaced_only_once_no_member_or_cache_names_it() {
    let Some((site, _members, node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    let sampler = Sampler::start(&site, WWW, Duration::from_millis(10));
    sampler.wait_named(node1.ip()).await;
    // node1 goes silent for every member (a timeout is no proof that it takes no writes).
    let cut = Instant::now();
    for i in ALL {
        site.cut(i, &site.node_ip(0));
    }
    site.wait_answer(&ALL, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    sampler.wait_named(node2.ip()).await;
    let samples = sampler.stop();
    let overlap = two_writers(&samples, TTL);
    let last = last_named(&samples, node1.ip())
        .into_iter()
        .flatten()
        .max()
        .unwrap();
    let first = first_named(&samples, node2.ip()).unwrap();
    eprintln!(
        "node2 {:?} after the cut; {:?} after the last node1 answer; two writers usable {overlap:?}",
        first - cut,
        first - last
    );
    assert_eq!(overlap, Duration::ZERO, "two writers usable at once");
    assert!(first - last >= TTL);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_off_leader_and_the_majority_never_name_two_writers() {
    cut_off_member_and_majority(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_off_follower_and_the_majority_never_name_two_writers() {
    cut_off_member_and_majority(false).await;
}

/// One member (the leader, or one that does not lead) loses etcd, with node1 on its side;
/// the other two lose node1: the cut-off member's clients could still write to node1
/// while it names it. The majority moves to node2 only once no client can use node1.
async fn cut_off_member_and_majority(leader: bool) {
    let Some((site, _members, node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    let sampler = Sampler::start(&site, WWW, Duration::from_millis(10));
    sampler.wait_named(node1.ip()).await;
    let leads = leader_index(&site, 0).await.expect("a leader");
    let alone = match leader {
        true => leads,
        false => (leads + 1) % ALL.len(),
    };
    let majority: Vec<usize> = ALL.into_iter().filter(|&i| i != alone).collect();
    let cut = Instant::now();
    site.cut_from_etcd(alone);
    for &i in &majority {
        site.cut(i, &site.node_ip(0));
    }
    site.wait_answer(&majority, WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    let moved = cut.elapsed();
    // The cut-off member refuses from its deadline on and names node2 only once back.
    site.wait_answer(&[alone], WWW, Err(ResponseCode::ServFail), LIMIT)
        .await;
    site.heal_etcd(alone);
    site.wait_answer(&[alone], WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    sampler.wait_named(node2.ip()).await;
    let samples = sampler.stop();
    let overlap = two_writers(&samples, TTL);
    let last = last_named(&samples, node1.ip());
    let first = first_named(&samples, node2.ip()).unwrap();
    eprintln!(
        "{} cut off (leader: {leader}); majority on node2 {moved:?} after the cut (lease 2 s, \
         TTL 1 s); it named node1 until {:?}; two writers usable {overlap:?}",
        MEMBERS[alone],
        last[alone].map(|l| l - cut)
    );
    assert_eq!(overlap, Duration::ZERO, "two writers usable at once");
    assert!(last.iter().flatten().all(|l| first - *l >= TTL));
    // lease + TTL + detection, with slack for a loaded machine.
    assert!(moved < Duration::from_secs(15), "{moved:?}");
}
