//! `hadns events --timeline`: each answer change as a chain of events on a time axis drawn
//! in text, one row per event, its offset from the publication in milliseconds and a mark
//! where it falls on the axis.
//!
//! ```text
//! db.example.internal.: m1(10.0.0.1) -> m2(10.0.0.2), published 2026-12-04T10:00:00.250Z, serial 7
//!        -250 ms  *···················|·····  probe           db/m1  probe failed (1 of fall 2): ...
//!         -49 ms  ················*···|·····  node_changed    db/m1  up -> down: ...
//!           0 ms  ····················*·····  answer_changed  db.example.internal.  m1 -> m2: ...
//!         +12 ms  ····················|·*···  notify          example.internal. 127.0.0.1:5300  ...
//! ```

use std::fmt::Write as _;

use crate::api::timeline::Timeline;

/// Columns of the axis.
const WIDTH: usize = 40;
/// Longest message shown; the rest is cut (the full text is in `hadns events`).
const MESSAGE: usize = 120;

/// Every timeline, newest first, a blank line between them.
pub fn text(timelines: &[Timeline]) -> String {
    if timelines.is_empty() {
        return "no answer change in the event log\n".into();
    }
    let blocks: Vec<String> = timelines.iter().map(one).collect();
    blocks.join("\n")
}

fn one(t: &Timeline) -> String {
    let mut out = String::new();
    let serial = t
        .serial
        .map(|s| format!(", serial {s}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{}: {} -> {}, published {}{serial}",
        t.record, t.from, t.to, t.time
    );
    // The axis spans every entry and the publication (0).
    let offsets = t.entries.iter().map(|e| e.offset_ms);
    let first = offsets.clone().fold(0, i64::min);
    let last = offsets.fold(0, i64::max);
    let column = |offset: i64| -> usize {
        let span = (last - first).max(1) as f64;
        (((offset - first) as f64 / span) * (WIDTH - 1) as f64).round() as usize
    };
    let zero = column(0);
    let kind_width = t
        .entries
        .iter()
        .map(|e| e.kind.to_string().len())
        .max()
        .unwrap_or(0);
    for e in &t.entries {
        let mut axis: Vec<char> = vec!['·'; WIDTH];
        axis[zero] = '|';
        axis[column(e.offset_ms)] = '*';
        let axis: String = axis.into_iter().collect();
        let offset = if e.offset_ms > 0 {
            format!("+{}", e.offset_ms)
        } else {
            e.offset_ms.to_string()
        };
        let change = e
            .change
            .as_ref()
            .map(|c| format!("{c}: "))
            .unwrap_or_default();
        let message: String = e.message.chars().take(MESSAGE).collect();
        let _ = writeln!(
            out,
            "  {offset:>8} ms  {axis}  {:<kind_width$}  {}  {change}{message}",
            e.kind.to_string(),
            e.subject
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::event::EventKind;
    use crate::api::timeline::Entry;

    #[test]
    fn marks_fall_in_time_order_on_the_axis_with_the_publication_at_the_bar() {
        let entry = |offset_ms, kind| Entry {
            offset_ms,
            kind,
            subject: "db/m1".into(),
            change: None,
            message: "m".into(),
        };
        let t = Timeline {
            record: "db.example.internal.".into(),
            from: "m1".into(),
            to: "m2".into(),
            time: "2026-12-04T10:00:00.250Z".into(),
            serial: Some(7),
            entries: vec![
                entry(-300, EventKind::Probe),
                entry(0, EventKind::AnswerChanged),
                entry(100, EventKind::Notify),
            ],
        };
        let shown = text(&[t]);
        let lines: Vec<&str> = shown.lines().collect();
        assert!(lines[0].contains("m1 -> m2") && lines[0].contains("serial 7"));
        let mark = |line: &str| line.chars().position(|c| c == '*').unwrap();
        let (a, b, c) = (mark(lines[1]), mark(lines[2]), mark(lines[3]));
        assert!(a < b && b < c, "{shown}");
        // 300 ms before and 100 after: the bar three quarters along.
        assert_eq!(b - a, 29, "{shown}");
        assert!(lines[1].contains("    -300 ms") && lines[3].contains("    +100 ms"));
        assert_eq!(text(&[]), "no answer change in the event log\n");
    }
}
