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
async fn a_cut_off_member_and_the_majority_never_name_two_writers() {
    let Some((site, _members, node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    let sampler = Sampler::start(&site, WWW, Duration::from_millis(10));
    sampler.wait_named(node1.ip()).await;
    // m1 (with node1 on its side) loses etcd; m2 and m3 lose node1: m1's clients could
    // still write to node1 while m1 names it.
    let cut = Instant::now();
    site.cut_from_etcd(0);
    for i in [1, 2] {
        site.cut(i, &site.node_ip(0));
    }
    site.wait_answer(&[1, 2], WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    let moved = cut.elapsed();
    // m1 refuses from its deadline on and names node2 only once back.
    site.wait_answer(&[0], WWW, Err(ResponseCode::ServFail), LIMIT)
        .await;
    site.heal_etcd(0);
    site.wait_answer(&[0], WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    sampler.wait_named(node2.ip()).await;
    let samples = sampler.stop();
    let overlap = two_writers(&samples, TTL);
    let last = last_named(&samples, node1.ip());
    let first = first_named(&samples, node2.ip()).unwrap();
    eprintln!(
        "majority on node2 {moved:?} after the cut (lease 2 s, TTL 1 s); m1 named node1 until \
         {:?}; two writers usable {overlap:?}",
        last[0].map(|l| l - cut)
    );
    assert_eq!(overlap, Duration::ZERO, "two writers usable at once");
    assert!(last.iter().flatten().all(|l| first - *l >= TTL));
    // lease + TTL + detection, with slack for a loaded machine.
    assert!(moved < Duration::from_secs(15), "{moved:?}");
}
