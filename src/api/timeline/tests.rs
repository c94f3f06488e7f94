use super::*;

/// An event `ms` milliseconds after 2026-12-04T10:00:00Z.
fn at(ms: u64, kind: EventKind, message: &str) -> EventRecord {
    let time =
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_378_400) + Duration::from_millis(ms);
    let mut e = EventRecord::new(kind, message);
    e.time = super::super::event::rfc3339(time);
    e
}

fn node(mut e: EventRecord, pool: &str, node: &str) -> EventRecord {
    e.pool = Some(pool.into());
    e.node = Some(node.into());
    e
}

fn answer(ms: u64, record: &str, pool: &str, to: &str, serial: u32) -> EventRecord {
    let mut e = at(ms, EventKind::AnswerChanged, "agreed").change("m1", to);
    e.record = Some(record.into());
    e.pool = Some(pool.into());
    e.serial = Some(serial);
    e
}

fn peer(ms: u64, kind: EventKind, serial: u32) -> EventRecord {
    let mut e = at(ms, kind, "secondary");
    e.record = Some("example.internal.".into());
    e.node = Some("127.0.0.1:5300".into());
    e.serial = Some(serial);
    e
}

fn offsets(t: &Timeline) -> Vec<(i64, EventKind)> {
    t.entries.iter().map(|e| (e.offset_ms, e.kind)).collect()
}

#[test]
fn a_change_gathers_its_causes_before_and_its_secondaries_after() {
    use EventKind::*;
    let log = vec![
        node(at(0, Probe, "probe failed (1 of fall 2)"), "db", "m1"),
        node(at(5, Probe, "web flaps"), "web", "w1"),
        node(at(200, Probe, "probe failed (2 of fall 2)"), "db", "m1"),
        node(at(201, NodeChanged, "down"), "db", "m1"),
        node(at(203, Promotion, "fence"), "db", "m1"),
        answer(250, "db.example.internal.", "db", "m2", 7),
        answer(251, "db-ro.example.internal.", "db", "m3", 7),
        peer(262, Notify, 7),
        peer(270, Transfer, 6),
        peer(290, Transfer, 7),
        node(at(300, Promotion, "repoint"), "db", "m3"),
        node(at(400, Probe, "probe succeeded (1 of rise 2)"), "db", "m1"),
    ];
    // /events serves newest first; the builder takes either order.
    let mut newest_first = log.clone();
    newest_first.reverse();
    for events in [log, newest_first] {
        let timelines = build(&events, 10);
        assert_eq!(timelines.len(), 2, "one per answer change");
        let db = timelines
            .iter()
            .find(|t| t.record == "db.example.internal.")
            .unwrap();
        assert_eq!(db.to, "m2");
        assert_eq!(db.serial, Some(7));
        assert_eq!(
            offsets(db),
            vec![
                (-250, Probe),
                (-50, Probe),
                (-49, NodeChanged),
                (-47, Promotion),
                (0, AnswerChanged),
                (1, AnswerChanged),
                (12, Notify),
                // The transfer of serial 6 is an older change's.
                (40, Transfer),
                (50, Promotion),
            ]
        );
        assert_eq!(db.entries[0].subject, "db/m1");
        assert_eq!(db.entries[6].subject, "example.internal. 127.0.0.1:5300");
    }
}

#[test]
fn a_chain_stops_at_the_records_previous_and_next_changes_and_its_windows() {
    use EventKind::*;
    let events = vec![
        node(at(0, NodeChanged, "long ago"), "db", "m1"),
        answer(40_000, "db.example.internal.", "db", "m2", 1),
        node(at(40_100, NodeChanged, "between"), "db", "m2"),
        answer(41_000, "db.example.internal.", "db", "m1", 2),
        peer(41_500, Notify, 2),
        peer(60_000, Notify, 3),
    ];
    let timelines = build(&events, 10);
    assert_eq!(timelines.len(), 2);
    // A transfer logged in the publication's millisecond before the change's own line is
    // the change's by its serial; serials wrap.
    let mut same_ms = vec![peer(41_000, Transfer, 2)];
    same_ms.extend(events.clone());
    let timelines_same_ms = build(&same_ms, 10);
    assert!(offsets(&timelines_same_ms[0]).contains(&(0, Transfer)));
    assert!(serial_at_least(5, u32::MAX - 3) && !serial_at_least(u32::MAX - 3, 5));
    // Newest first.
    assert_eq!(timelines[0].serial, Some(2));
    assert_eq!(
        offsets(&timelines[0]),
        vec![(-900, NodeChanged), (0, AnswerChanged), (500, Notify)]
    );
    // The first change: the node change 40 s before is past LOOKBACK; a node change after
    // it is the next change's cause, not this one's consequence.
    assert_eq!(offsets(&timelines[1]), vec![(0, AnswerChanged)]);
    assert_eq!(build(&events, 1).len(), 1);
}
