//! Virtual IPs in cluster mode (docs/cluster.md, "Virtual IPs in cluster mode"): a member
//! holds a vip while the agreed answer names its local node. One cut off, or paused past
//! its lease, lets go before another takes it: a sampler reads both hosts' addresses all
//! along and must never see the vip on both.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::*;
use crate::support::cluster::{ServiceProcess, Site, holds};

/// m1 and m2 each run a service (web1, web2) on their own address and hold the vip while
/// the agreed answer names their node; m3 holds none. m1 holds it when this returns.
struct VipSite {
    site: Site,
    services: Vec<ServiceProcess>,
    members: Vec<Hadns>,
    vip: String,
    ip2: IpAddr,
}

async fn vip_site() -> Option<VipSite> {
    let mut site = Site::build()?;
    site.start_etcd().await;
    let services = vec![site.start_service(0).await, site.start_service(1).await];
    let (ip1, ip2): (IpAddr, IpAddr) = (
        site.member_ip(0).parse().unwrap(),
        site.member_ip(1).parse().unwrap(),
    );
    let vip = site.ip(100);
    let pool = format!(
        "[[pool]]\nname = \"web\"\ncheck = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"300ms\"\n\
         rise = 1\nfall = 1\n\
         [[pool.node]]\nname = \"web1\"\naddress = \"{ip1}\"\nport = 7000\npriority = 100\n\
         [[pool.node]]\nname = \"web2\"\naddress = \"{ip2}\"\nport = 7000\npriority = 50\n\n\
         [[record]]\nname = \"{WWW}\"\npool = \"web\"\nfailback = false\n"
    );
    let vip_of = |node: &str| {
        format!(
            "\n[[vip]]\nrecord = \"{WWW}\"\nnode = \"{node}\"\naddress = \"{vip}\"\n\
             interface = \"eth0\"\nannounce_count = 3\nannounce_interval = \"100ms\"\n\
             takeover_timeout = \"1s\"\n"
        )
    };
    let configs = [
        pool.clone() + &vip_of("web1"),
        pool.clone() + &vip_of("web2"),
        pool.clone(),
    ];
    let members = site
        .start_members(|i| site.member_config(i, "", &configs[i]))
        .await;
    site.wait_answer(&ALL, WWW, Ok(vec![ip1]), LIMIT).await;
    wait_for(LIMIT, "m1 to hold the vip", || async {
        site.holds(0, &vip)
    })
    .await;
    Some(VipSite {
        site,
        services,
        members,
        vip,
        ip2,
    })
}

/// Who holds the vip on m1 and on m2, sampled from a thread as fast as `ip` answers.
struct Holders {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Instant, bool, bool)>>,
}

impl Holders {
    fn start(site: &Site, vip: &str) -> Holders {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns1, ns2, vip, done) = (site.ns("m1"), site.ns("m2"), vip.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            // Each sample is timed after m1's state was read: a release seen in it happened
            // before that time (an upper bound, which is what the assertions need: "released
            // after the wake-up" fails only when it surely happened before).
            while !done.load(Ordering::Relaxed) {
                let m1 = holds(&ns1, &vip);
                let at = Instant::now();
                samples.push((at, m1, holds(&ns2, &vip)));
            }
            samples
        });
        Holders { stop, thread }
    }

    /// The samples; fails the test if any saw the vip on both. Returns when m1 first was
    /// seen without it and when m2 first was seen with it.
    fn finish(self) -> (Instant, Instant, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().unwrap();
        let both = samples.iter().filter(|(_, m1, m2)| *m1 && *m2).count();
        assert_eq!(both, 0, "both held the vip ({} samples)", samples.len());
        assert!(samples[0].1, "m1 held the vip when sampling began");
        let released = (samples.iter().find(|(_, m1, _)| !*m1))
            .expect("m1 released the vip")
            .0;
        let taken = (samples.iter().find(|(_, _, m2)| *m2))
            .expect("m2 took the vip")
            .0;
        assert!(released <= taken);
        (released, taken, samples.len())
    }
}

/// Back in touch, m1 serves (and holds for) what it caught up with, not the decision it
/// knew when it was cut off: it took the vip once, at the start.
async fn never_took_it_back(site: &Site, vip: &str, ip2: IpAddr) {
    site.wait_answer(&[0], WWW, Ok(vec![ip2]), LIMIT).await;
    wait_connected(site, 0, true).await;
    let end = Instant::now() + STILL;
    while Instant::now() < end {
        assert!(!site.holds(0, vip), "m1 took the vip back");
    }
    let events = site.events(0).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "vip_taken").count(),
        1,
        "{kinds:?}"
    );
    assert!(site.holds(1, vip));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vip_holder_cut_off_from_etcd_and_its_peer_releases_within_its_lease() {
    let Some(v) = vip_site().await else {
        return;
    };
    let site = &v.site;
    let holders = Holders::start(site, &v.vip);
    let cut = Instant::now();
    site.plug(0, false);
    wait_for(LIMIT, "m1 to release the vip", || async {
        !site.holds(0, &v.vip)
    })
    .await;
    site.wait_answer(&[1, 2], WWW, Ok(vec![v.ip2]), LIMIT).await;
    wait_for(LIMIT, "m2 to take the vip", || async {
        site.holds(1, &v.vip)
    })
    .await;
    site.plug(0, true);
    never_took_it_back(site, &v.vip, v.ip2).await;
    let (released, taken, samples) = holders.finish();
    // Timed from its last acknowledged keepalive (before the cut), one keepalive early.
    eprintln!(
        "m1 released the vip {:?} after the cut (lease 2 s); m2 took it {:?} after that \
         ({samples} samples)",
        released.saturating_duration_since(cut),
        taken.saturating_duration_since(released),
    );
    assert!(
        released < cut + Duration::from_secs(2),
        "{:?}",
        released - cut
    );
    assert!(
        !site
            .events(0)
            .await
            .iter()
            .any(|e| e["kind"] == "vip_conflict")
    );
    drop(v.members);
}

/// The zombie holder: m1's hadns paused past its lease while web1 fails (its kernel still
/// has the vip and answers ARP for it). The majority moves the answer to web2; m2's probe
/// finds m1's host answering and waits. Woken, m1 lets the vip go before anything else
/// (its lease is gone), and only then does m2 take it.
#[tokio::test(flavor = "multi_thread")]
async fn a_vip_holder_paused_past_its_lease_lets_go_on_waking_before_the_other_takes_it() {
    let Some(mut v) = vip_site().await else {
        return;
    };
    let site = &v.site;
    let holders = Holders::start(site, &v.vip);
    v.members[0].signal(Signal::SIGSTOP);
    v.services.remove(0);
    site.wait_answer(&[1, 2], WWW, Ok(vec![v.ip2]), LIMIT).await;
    wait_for(
        LIMIT,
        "m2 to find m1's host answering for the vip",
        || async { (site.events(1).await.iter()).any(|e| e["kind"] == "vip_conflict") },
    )
    .await;
    wait_for(LIMIT, "m1's lease to end", || async {
        site.status(1).await["cluster"]["members"]
            .as_array()
            .is_some_and(|m| m.len() == 2)
    })
    .await;
    assert!(!site.holds(1, &v.vip), "m2 took the vip while m1 held it");
    let woken = Instant::now();
    v.members[0].signal(Signal::SIGCONT);
    wait_for(LIMIT, "m2 to take the vip", || async {
        site.holds(1, &v.vip)
    })
    .await;
    never_took_it_back(site, &v.vip, v.ip2).await;
    let (released, taken, samples) = holders.finish();
    eprintln!(
        "woken m1 released the vip {:?} after SIGCONT; m2 took it {:?} after that \
         ({samples} samples)",
        released.saturating_duration_since(woken),
        taken.saturating_duration_since(released),
    );
    assert!(released >= woken, "m1 let go while paused");
    assert!(
        released < woken + Duration::from_secs(1),
        "{:?}",
        released - woken
    );
    drop(v.members);
}
