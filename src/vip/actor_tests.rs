//! The vip actor with a scripted interface, in paused time: each test says what other hosts
//! and the server do when, and checks what the actor did when.

use std::cell::RefCell;

use super::*;

const PROBE: Duration = Duration::from_millis(40);

/// The interface and the hosts around it, and everything the actor did to them.
struct World {
    start: Instant,
    /// Other hosts answering for the address.
    holders: RefCell<Vec<String>>,
    present: RefCell<bool>,
    /// A fence command that works (the holder goes) or not.
    fence_works: bool,
    done: RefCell<Vec<(u64, String)>>,
}

impl World {
    fn new(holders: &[&str], fence_works: bool) -> World {
        World {
            start: Instant::now(),
            holders: RefCell::new(holders.iter().map(|h| h.to_string()).collect()),
            present: RefCell::new(false),
            fence_works,
            done: RefCell::new(Vec::new()),
        }
    }

    fn note(&self, what: impl Into<String>) {
        let ms = (Instant::now() - self.start).as_millis() as u64;
        self.done.borrow_mut().push((ms, what.into()));
    }

    /// What was done, with the milliseconds since the start, `probe`s left out.
    fn done(&self) -> Vec<(u64, String)> {
        let done = self.done.borrow();
        done.iter().filter(|(_, w)| w != "probe").cloned().collect()
    }

    fn count(&self, what: &str) -> usize {
        self.done.borrow().iter().filter(|(_, w)| w == what).count()
    }
}

impl Wire for World {
    async fn probe(&self) -> Result<Vec<String>, String> {
        self.note("probe");
        // Two probes when nobody answers, as the real one.
        let holders = self.holders.borrow().clone();
        tokio::time::sleep(if holders.is_empty() { 2 * PROBE } else { PROBE }).await;
        Ok(holders)
    }

    async fn add(&self) -> Result<(), String> {
        assert!(
            self.holders.borrow().is_empty(),
            "added an address another host answers for"
        );
        *self.present.borrow_mut() = true;
        self.note("add");
        Ok(())
    }

    async fn remove(&self, why: &str) {
        if std::mem::replace(&mut *self.present.borrow_mut(), false) {
            self.note(format!("remove: {why}"));
        }
    }

    async fn has(&self) -> Result<bool, String> {
        Ok(*self.present.borrow())
    }

    async fn announce(&self) {
        self.note("announce");
    }

    async fn fence(&self, holder: &str) {
        self.note(format!("fence {holder}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        if self.fence_works {
            self.holders.borrow_mut().clear();
        }
    }

    fn report(&self, kind: EventKind, _: String) {
        self.note(format!("report {kind}"));
    }
}

fn machine(fence: bool) -> Machine {
    let vip = Vip {
        record: crate::api::id::RecordId(0),
        node: 0,
        address: "192.0.2.100".parse().unwrap(),
        prefix_len: 24,
        interface: "eth0".into(),
        announce_count: 3,
        announce_interval: Duration::from_millis(200),
        refresh: Duration::from_secs(1),
        fence_command: fence.then(|| vec!["true".to_string()]),
        takeover_timeout: Duration::from_millis(500),
    };
    Machine::new(&vip, "vip[0]".into())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs the actor on `world` while `script` runs, then stops it.
async fn run(world: &World, fence: bool, script: impl AsyncFnOnce(&watch::Sender<bool>)) {
    let (wish, desired) = watch::channel(false);
    let shutdown = CancellationToken::new();
    let actor = drive(machine(fence), world, desired, shutdown.clone());
    let script = async {
        script(&wish).await;
        shutdown.cancel();
    };
    tokio::join!(actor, script);
}

fn pairs(done: &[(u64, &str)]) -> Vec<(u64, String)> {
    done.iter().map(|(t, w)| (*t, w.to_string())).collect()
}

#[tokio::test(start_paused = true)]
async fn a_free_address_is_taken_announced_refreshed_and_released() {
    let world = World::new(&[], false);
    run(&world, false, async |wish| {
        wish.send(true).unwrap();
        tokio::time::sleep(ms(3000)).await;
        wish.send(false).unwrap();
        tokio::time::sleep(ms(100)).await;
    })
    .await;
    assert_eq!(
        world.done(),
        pairs(&[
            (80, "add"),
            (80, "report vip_taken"),
            (80, "announce"),
            (280, "announce"),
            (480, "announce"),
            (1480, "announce"),
            (2480, "announce"),
            (3000, "remove: the answer moved away from the local node"),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn a_holder_is_waited_for_then_fenced_once_then_the_address_taken() {
    let world = World::new(&["aa:bb:cc:dd:ee:ff"], true);
    run(&world, true, async |wish| {
        wish.send(true).unwrap();
        tokio::time::sleep(ms(1000)).await;
    })
    .await;
    let done = world.done();
    assert_eq!(done[0], (40, "report vip_conflict".to_string()), "{done:?}");
    // Probing goes on until the takeover timeout, then the fence, then a free probe.
    assert_eq!(
        done[1],
        (520, "fence aa:bb:cc:dd:ee:ff".to_string()),
        "{done:?}"
    );
    assert_eq!(done[2], (700, "add".to_string()), "{done:?}");
    assert_eq!(world.count("report vip_conflict"), 1);
    assert_eq!(world.count("fence aa:bb:cc:dd:ee:ff"), 1);
    assert!(
        world.count("probe") >= 500 / 40,
        "{:?}",
        world.count("probe")
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_fence_the_take_gives_up_and_is_retried_every_second() {
    let world = World::new(&["aa:bb:cc:dd:ee:ff"], false);
    run(&world, false, async |wish| {
        wish.send(true).unwrap();
        tokio::time::sleep(ms(2200)).await;
        world.holders.borrow_mut().clear();
        tokio::time::sleep(ms(800)).await;
    })
    .await;
    // Takes at 0, 1 s and 2 s each report the conflict; the third sees the holder go.
    let done = world.done();
    assert_eq!(world.count("report vip_conflict"), 3, "{done:?}");
    let added: Vec<u64> = done
        .iter()
        .filter(|(_, w)| w == "add")
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(added.len(), 1, "{done:?}");
    // The holder goes at 2.2 s: one more conflicting probe, then a free one (2 x 40 ms).
    assert!((2200..=2320).contains(&added[0]), "{done:?}");
    // Nothing between two takes: no probe after a take gave up before the next tick.
    let probes: Vec<u64> = world
        .done
        .borrow()
        .iter()
        .filter(|(_, w)| w == "probe")
        .map(|(t, _)| *t)
        .collect();
    assert!(probes.iter().all(|t| t % 1000 <= 560), "{probes:?}");
}

#[tokio::test(start_paused = true)]
async fn a_take_is_abandoned_when_no_longer_wanted() {
    let world = World::new(&["aa:bb:cc:dd:ee:ff"], true);
    run(&world, true, async |wish| {
        wish.send(true).unwrap();
        tokio::time::sleep(ms(200)).await;
        wish.send(false).unwrap();
        tokio::time::sleep(ms(2000)).await;
    })
    .await;
    assert_eq!(world.done(), pairs(&[(40, "report vip_conflict")]));
    let last_probe = world
        .done
        .borrow()
        .iter()
        .filter(|(_, w)| w == "probe")
        .map(|(t, _)| *t)
        .max();
    assert!(last_probe.is_some_and(|t| t <= 200), "{last_probe:?}");
}

#[tokio::test(start_paused = true)]
async fn the_interface_is_put_right_at_each_tick() {
    let world = World::new(&[], false);
    // Left behind by a killed hadns: removed at the first tick.
    *world.present.borrow_mut() = true;
    run(&world, false, async |wish| {
        tokio::time::sleep(ms(100)).await;
        wish.send(true).unwrap();
        tokio::time::sleep(ms(1400)).await;
        // Removed behind hadns's back: taken again at the next tick.
        *world.present.borrow_mut() = false;
        tokio::time::sleep(ms(1000)).await;
    })
    .await;
    let done = world.done();
    assert_eq!(
        done[0],
        (0, "remove: it should not be held".into()),
        "{done:?}"
    );
    assert_eq!(done[1], (180, "add".into()), "{done:?}");
    let adds: Vec<u64> = done
        .iter()
        .filter(|(_, w)| w == "add")
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(adds, vec![180, 2080], "{done:?}");
    // The stop released the address.
    assert_eq!(done.last().unwrap().1, "remove: hadns is stopping");
}

#[tokio::test(start_paused = true)]
async fn a_fence_that_does_not_help_runs_once_per_take() {
    let world = World::new(&["aa:bb:cc:dd:ee:ff"], false);
    run(&world, true, async |wish| {
        wish.send(true).unwrap();
        tokio::time::sleep(ms(1900)).await;
    })
    .await;
    // Takes at 0 and 1 s: each waits, fences once, finds the holder still there, gives up.
    assert_eq!(
        world.count("fence aa:bb:cc:dd:ee:ff"),
        2,
        "{:?}",
        world.done()
    );
    assert_eq!(world.count("add"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_wish_withdrawn_during_a_probe_adds_nothing() {
    let world = World::new(&[], false);
    run(&world, false, async |wish| {
        wish.send(true).unwrap();
        // The probe of a free address takes 80 ms; the answer moves away meanwhile.
        tokio::time::sleep(ms(40)).await;
        wish.send(false).unwrap();
        tokio::time::sleep(ms(2000)).await;
    })
    .await;
    assert_eq!(world.done(), Vec::new());
}

/// Fenced while held (as a paused hadns is by its peer): the address is not fenced back
/// from the host that has it now, whatever the stale wish says; it is taken again once
/// nobody answers for it, and a fresh wish may fence again.
#[tokio::test(start_paused = true)]
async fn an_address_taken_away_while_held_is_not_fenced_back() {
    let world = World::new(&[], true);
    run(&world, true, async |wish| {
        wish.send(true).unwrap();
        tokio::time::sleep(ms(1500)).await;
        // The peer fenced this host and holds the address now.
        *world.present.borrow_mut() = false;
        world.holders.borrow_mut().push("peer".into());
        tokio::time::sleep(ms(3000)).await;
        // The peer lets it go: taken again at a tick.
        world.holders.borrow_mut().clear();
        tokio::time::sleep(ms(1500)).await;
        // Named anew after the answer moved away and back: a holder is fenced again.
        wish.send(false).unwrap();
        tokio::time::sleep(ms(100)).await;
        world.holders.borrow_mut().push("peer".into());
        wish.send(true).unwrap();
        tokio::time::sleep(ms(1500)).await;
    })
    .await;
    let done = world.done();
    let fences: Vec<&(u64, String)> = done
        .iter()
        .filter(|(_, w)| w.starts_with("fence"))
        .collect();
    assert_eq!(fences.len(), 1, "{done:?}");
    assert!(
        fences[0].0 > 6000,
        "fenced only after the fresh wish: {done:?}"
    );
    assert_eq!(world.count("report vip_conflict"), 2, "{done:?}");
    let adds: Vec<u64> = done
        .iter()
        .filter(|(_, w)| w == "add")
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(adds.len(), 3, "{done:?}");
    assert!(adds[1] > 4500 && adds[1] < 6100, "{done:?}");
}
