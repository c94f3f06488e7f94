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

/// The first measurement: data centre A (m1, its etcd member and node1) cut off
/// whole, a real partition (silent drops both ways), with the etcd leader outside A or
/// inside it (then etcd elects another first, and renews every lease as it does). A client
/// in each data centre asks every member; B and C name node2 once A's lease has ended and
/// the TTL passed, A refuses from its deadline on; healed, all fail back to node1.
#[tokio::test(flavor = "multi_thread")]
async fn a_data_centre_cut_off_whole_never_gives_two_writers() {
    isolate_data_centre(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_centre_cut_off_with_the_etcd_leader_never_gives_two_writers() {
    isolate_data_centre(0).await;
}

async fn isolate_data_centre(etcd_leader: usize) {
    let Some((site, _members, node1, node2)) = web_cluster(["", "", ""]).await else {
        return;
    };
    site.move_etcd_leader(etcd_leader).await;
    let clients: Vec<_> = ALL.iter().map(|&d| site.dc_client_ip(d)).collect();
    let sampler = Sampler::clients(&site, &clients, WWW, Duration::from_millis(10));
    sampler.wait_named(node1.ip()).await;
    let cut = Instant::now();
    site.isolate_dc(0, true);
    site.wait_answer(&[1, 2], WWW, Ok(vec![node2.ip()]), LIMIT)
        .await;
    let moved = cut.elapsed();
    site.wait_answer(&[0], WWW, Err(ResponseCode::ServFail), LIMIT)
        .await;
    // A stays refused for as long as the partition lasts.
    holds_for(&site, &[0], &Err(ResponseCode::ServFail), STILL).await;
    site.isolate_dc(0, false);
    site.wait_answer(&ALL, WWW, Ok(vec![node1.ip()]), LIMIT)
        .await;
    let samples = sampler.stop();
    let overlap = two_writers(&samples, TTL);
    let first = first_named(&samples, node2.ip()).unwrap();
    let before: Vec<_> = samples.into_iter().filter(|s| s.at < first).collect();
    let last = last_named(&before, node1.ip());
    eprintln!(
        "data centre A cut off (etcd leader e{etcd_leader}): B and C on node2 {moved:?} after \
         the cut (lease 2 s, TTL 1 s, checks every 100 ms); node1 last named {:?} after the \
         cut (by m1 at {:?}); two writers usable {overlap:?}",
        last.iter().flatten().max().map(|l| *l - cut),
        last[0].map(|l| l - cut)
    );
    assert_eq!(overlap, Duration::ZERO, "two writers usable at once");
    assert!(moved < Duration::from_secs(15), "{moved:?}");
}
