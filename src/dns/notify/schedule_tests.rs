//! The NOTIFY schedule against a scripted target in virtual time: each zone is
//! acknowledged, refused or ignored by the target, and answered after its own round trip.

use std::str::FromStr;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};
use proptest::prelude::*;
use tokio::time::Instant;

use super::*;

fn zone(name: &str) -> LowerName {
    LowerName::new(&Name::from_str(name).unwrap())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How the scripted target answers one zone's NOTIFYs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// NOERROR after this round trip.
    Ack(u64),
    /// NOTAUTH after this round trip.
    Refuse(u64),
    /// Never answers.
    Ignore,
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (1u64..300).prop_map(Target::Ack),
        (1u64..300).prop_map(Target::Refuse),
        Just(Target::Ignore),
    ]
}

/// One NOTIFY sent: when (ms from the start), which zone, which serial.
type Sent = (u64, usize, u32);

/// Runs the schedule against the target: `changes` are (ms, zone) serial increments;
/// returns every NOTIFY sent and, per zone, the acknowledgements (ms, serial).
fn simulate(
    targets: &[Target],
    changes: &[(u64, usize)],
    until: u64,
) -> (Vec<Sent>, Vec<Vec<(u64, u32)>>) {
    let start = Instant::now();
    let at = |t: u64| start + ms(t);
    let names: Vec<LowerName> = (0..targets.len())
        .map(|i| zone(&format!("z{i}.internal.")))
        .collect();
    let mut serials: Vec<u32> = vec![100; targets.len()];
    let mut schedule = Schedule::default();
    let mut sent = Vec::new();
    let mut acks = vec![Vec::new(); targets.len()];
    // Answers in flight: (ms, id, zone, serial, answer).
    let mut flight: Vec<(u64, u16, usize, u32, Answer)> = Vec::new();
    let mut changes: Vec<(u64, usize)> = changes.to_vec();
    changes.sort();
    let mut next_change = 0;
    let mut next_id = 0u16;
    let mut now = 0u64;
    loop {
        while next_change < changes.len() && changes[next_change].0 <= now {
            serials[changes[next_change].1] += 1;
            next_change += 1;
        }
        flight.sort_by_key(|f| f.0);
        while flight.first().is_some_and(|f| f.0 <= now) {
            let (_, id, zone, serial, answer) = flight.remove(0);
            if schedule.answered(id, answer.clone(), at(now)).is_some()
                && answer == Answer::Acknowledged
            {
                acks[zone].push((now, serial));
            }
        }
        schedule.expire(at(now));
        schedule.set_serials(names.iter().cloned().zip(serials.iter().copied()));
        for send in schedule.due(at(now), || {
            next_id = next_id.wrapping_add(1);
            next_id
        }) {
            let z = names.iter().position(|n| *n == send.zone).unwrap();
            assert_eq!(send.serial, serials[z], "the latest serial is sent");
            sent.push((now, z, send.serial));
            match targets[z] {
                Target::Ack(rtt) => {
                    flight.push((now + rtt, send.id, z, send.serial, Answer::Acknowledged))
                }
                Target::Refuse(rtt) => flight.push((
                    now + rtt,
                    send.id,
                    z,
                    send.serial,
                    Answer::NotServed("NOTAUTH".into()),
                )),
                Target::Ignore => {}
            }
        }
        let wake = schedule
            .next_wake(at(now))
            .map(|w| (w - start).as_millis() as u64);
        let next = [
            wake,
            flight.iter().map(|f| f.0).min(),
            changes.get(next_change).map(|c| c.0),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(next) if next <= until => now = next.max(now + 1),
            _ => break,
        }
    }
    (sent, acks)
}

#[test]
fn a_refused_zone_first_in_order_does_not_hold_up_the_next() {
    // z0 (first) is refused, z1 acknowledged: both go at once, and z1 follows a change
    // at once while z0 is not sent again for the serial it refused.
    let (sent, acks) = simulate(
        &[Target::Refuse(5), Target::Ack(5)],
        &[(1000, 1), (2000, 1)],
        10_000,
    );
    assert_eq!(
        sent,
        vec![(0, 0, 100), (0, 1, 100), (1000, 1, 101), (2000, 1, 102)]
    );
    assert_eq!(acks[1], vec![(5, 100), (1005, 101), (2005, 102)]);
}

#[test]
fn an_ignored_zone_is_retried_with_backoff_and_holds_up_nothing() {
    let (sent, acks) = simulate(&[Target::Ignore, Target::Ack(10)], &[(3500, 1)], 40_000);
    let z0: Vec<u64> = sent.iter().filter(|s| s.1 == 0).map(|s| s.0).collect();
    // 1, 2, 4, 8, 16 s, then 30 s.
    assert_eq!(z0, vec![0, 1000, 3000, 7000, 15000, 31000]);
    assert_eq!(acks[1], vec![(10, 100), (3510, 101)]);
}

#[test]
fn a_refusal_is_reported_once_and_a_later_serial_is_sent_once() {
    let now = Instant::now();
    let a = zone("a.internal.");
    let mut schedule = Schedule::default();
    let mut reports = Vec::new();
    for (step, serial) in [(0u64, 1u32), (1, 2), (2, 3)] {
        let t = now + Duration::from_secs(step);
        schedule.set_serials([(a.clone(), serial)]);
        let sends = schedule.due(t, || 7);
        assert_eq!(sends.len(), 1, "one NOTIFY for serial {serial}");
        reports.extend(schedule.answered(7, Answer::NotServed("REFUSED".into()), t));
        assert!(
            schedule.due(t + ms(500), || 8).is_empty(),
            "not again for {serial}"
        );
        let states: Vec<_> = schedule.states().map(|s| s.3).collect();
        assert_eq!(states, vec![NotifyState::NotServed]);
    }
    assert_eq!(reports.len(), 1, "{reports:?}");
    // An acknowledgement ends it; a later refusal is reported again.
    let t = now + Duration::from_secs(10);
    schedule.set_serials([(a.clone(), 4)]);
    assert_eq!(schedule.due(t, || 9).len(), 1);
    assert!(matches!(
        schedule.answered(9, Answer::Acknowledged, t),
        Some(Report::Acknowledged { serial: 4, .. })
    ));
    let t = t + Duration::from_secs(1);
    schedule.set_serials([(a.clone(), 5)]);
    assert_eq!(schedule.due(t, || 10).len(), 1);
    assert!(matches!(
        schedule.answered(10, Answer::NotServed("REFUSED".into()), t),
        Some(Report::NotServed { serial: 5, .. })
    ));
}

#[test]
fn a_newer_serial_after_a_failure_goes_after_the_hold_not_the_backoff() {
    let now = Instant::now();
    let a = zone("a.internal.");
    let mut schedule = Schedule::default();
    schedule.set_serials([(a.clone(), 1)]);
    assert_eq!(schedule.due(now, || 1).len(), 1);
    schedule.answered(1, Answer::Failed("port unreachable".into()), now + ms(1));
    assert_eq!(schedule.next_wake(now + ms(1)), Some(now + FIRST_WAIT));
    schedule.set_serials([(a.clone(), 2)]);
    assert_eq!(schedule.next_wake(now + ms(1)), Some(now + HOLD));
    assert!(schedule.due(now + HOLD - ms(1), || 2).is_empty());
    assert_eq!(schedule.due(now + HOLD, || 2)[0].serial, 2);
}

#[test]
fn answers_to_unknown_ids_and_forgotten_zones_are_ignored() {
    let now = Instant::now();
    let mut schedule = Schedule::default();
    schedule.set_serials([(zone("a.internal."), 1), (zone("b.internal."), 1)]);
    let sends = schedule.due(now, {
        let mut n = 0;
        move || {
            n += 1;
            // The same id twice first: the schedule draws again.
            [5, 5, 6][n - 1]
        }
    });
    assert_eq!(sends.iter().map(|s| s.id).collect::<Vec<_>>(), vec![5, 6]);
    assert_eq!(schedule.answered(99, Answer::Acknowledged, now), None);
    schedule.set_serials([(zone("b.internal."), 1)]);
    assert_eq!(schedule.answered(5, Answer::Acknowledged, now), None);
    assert!(schedule.is_outstanding(6));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// For any mix of acknowledging, refusing and silent zones: a zone the target
    /// acknowledges is sent exactly as it would be alone, a NOTIFY with its latest serial
    /// goes within one round trip (+ HOLD) of each change and is acknowledged; a refused
    /// zone gets one NOTIFY per serial; a silent one backs off.
    #[test]
    fn every_acknowledged_zone_is_announced_within_a_round_trip_whatever_the_others_do(
        targets in proptest::collection::vec(target(), 1..6),
        changes in proptest::collection::vec((0u64..20_000, 0usize..6), 0..30),
    ) {
        let changes: Vec<(u64, usize)> =
            changes.into_iter().map(|(t, z)| (t, z % targets.len())).collect();
        let until = 120_000;
        let (sent, acks) = simulate(&targets, &changes, until);
        for (z, target) in targets.iter().enumerate() {
            let mine: Vec<(u64, u32)> =
                sent.iter().filter(|s| s.1 == z).map(|s| (s.0, s.2)).collect();
            let own_changes: Vec<(u64, usize)> =
                changes.iter().filter(|c| c.1 == z).map(|c| (c.0, 0)).collect();
            let changes_at: Vec<u64> = own_changes.iter().map(|c| c.0).collect();
            let last_serial = 100 + own_changes.len() as u32;
            match *target {
                Target::Ack(rtt) => {
                    // Independence: the same NOTIFYs as with no other zone at all.
                    let (alone, _) = simulate(&[*target], &own_changes, until);
                    let alone: Vec<(u64, u32)> = alone.iter().map(|s| (s.0, s.2)).collect();
                    prop_assert_eq!(&mine, &alone);
                    // Within one round trip and the hold of each change.
                    for &t in &changes_at {
                        let bound = t + rtt + HOLD.as_millis() as u64;
                        prop_assert!(
                            mine.iter().any(|&(at, _)| at >= t && at <= bound),
                            "change at {} not sent by {}: {:?}", t, bound, mine
                        );
                    }
                    prop_assert_eq!(acks[z].last().map(|a| a.1), Some(last_serial));
                }
                Target::Refuse(_) => {
                    let mut serials: Vec<u32> = mine.iter().map(|s| s.1).collect();
                    let before = serials.len();
                    serials.dedup();
                    prop_assert_eq!(before, serials.len(), "one NOTIFY per serial: {:?}", mine);
                }
                Target::Ignore => {
                    // Backoff: at least 1 s apart unless a newer serial came (then HOLD).
                    for pair in mine.windows(2) {
                        let gap = pair[1].0 - pair[0].0;
                        let newer = pair[1].1 != pair[0].1;
                        let floor = if newer { HOLD.as_millis() as u64 } else { 1000 };
                        prop_assert!(gap >= floor, "{:?}", mine);
                    }
                }
            }
        }
    }
}
