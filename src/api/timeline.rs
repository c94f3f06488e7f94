//! The failover timeline: each answer change with the events that led to it and followed
//! it, on one time axis in milliseconds from the publication (0). Built from the event log
//! alone (`/timeline`, `hadns events --timeline`, the status page's drawing), so it shows
//! what hadns recorded, in the order it recorded it.
//!
//! Which events belong to a change of record R (of pool P) at time t:
//! - before, back to the previous change of R or [`LOOKBACK`]: P's probes that moved a node,
//!   node changes, split brains, fences, promotion steps and refusals, drains, cluster
//!   identity changes, stale answers, and reloads;
//! - the answer changes of P's other records in the same span;
//! - after, up to the next change of R or [`FOLLOW`]: P's fences and promotion steps (not
//!   its probes and node changes: those are the next change's story), and the NOTIFYs and
//!   transfers of a serial at least R's new one (the secondaries taking the change).

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::event::{EventKind, EventRecord};

/// How far before an answer change its causes are looked for.
pub const LOOKBACK: Duration = Duration::from_secs(30);
/// How far after an answer change its consequences are looked for.
pub const FOLLOW: Duration = Duration::from_secs(10);

/// One answer change and its chain of events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Timeline {
    pub record: String,
    pub from: String,
    pub to: String,
    /// When the change was published (RFC 3339, milliseconds): offset 0.
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u32>,
    /// Oldest first; the answer change itself is among them at offset 0.
    pub entries: Vec<Entry>,
}

/// One event on the axis.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Milliseconds from the publication; negative before it.
    pub offset_ms: i64,
    pub kind: EventKind,
    /// The record, `pool/node`, or zone and secondary the event is about.
    pub subject: String,
    /// `from -> to`, for the events that change something (a node, an answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    pub message: String,
}

/// The pool-level kinds that can cause or follow an answer change.
fn pool_kind(kind: EventKind) -> bool {
    use EventKind::*;
    matches!(
        kind,
        Probe
            | NodeChanged
            | AnswerChanged
            | SplitBrain
            | ClusterMismatch
            | ClusterRejoined
            | Stale
            | Drained
            | Undrained
            | Fencing
            | Fenced
            | FenceFailed
            | VipFence
            | Promotion
            | Promoted
            | PromotionFailed
            | PromotionRefused
    )
}

/// The timelines of the answer changes in `events` (any order), newest first, at most
/// `limit`.
pub fn build(events: &[EventRecord], limit: usize) -> Vec<Timeline> {
    let mut timed: Vec<(SystemTime, &EventRecord)> = events
        .iter()
        .filter_map(|e| Some((humantime::parse_rfc3339(&e.time).ok()?, e)))
        .collect();
    // Stable: events of one millisecond keep the log's order (oldest first).
    if events.len() > 1 && timed.first().map(|f| f.0) > timed.last().map(|l| l.0) {
        timed.reverse();
    }
    timed.sort_by_key(|(at, _)| *at);
    let changes: Vec<usize> = (0..timed.len())
        .filter(|&i| timed[i].1.kind == EventKind::AnswerChanged && timed[i].1.record.is_some())
        .collect();
    changes
        .iter()
        .rev()
        .take(limit)
        .map(|&i| chain(&timed, i))
        .collect()
}

/// The timeline of the answer change `timed[k]`.
fn chain(timed: &[(SystemTime, &EventRecord)], k: usize) -> Timeline {
    let (at, change) = timed[k];
    let record = change.record.as_deref().unwrap_or_default();
    let same_record =
        |e: &EventRecord| e.kind == EventKind::AnswerChanged && e.record.as_deref() == Some(record);
    let previous = timed[..k].iter().rev().find(|(_, e)| same_record(e));
    let next = timed[k + 1..].iter().find(|(_, e)| same_record(e));
    let start = at.checked_sub(LOOKBACK).unwrap_or(SystemTime::UNIX_EPOCH);
    let end = at + FOLLOW;
    let belongs = |i: usize, when: SystemTime, e: &EventRecord| {
        if i == k {
            return true;
        }
        // NOTIFYs and transfers belong by serial: from this change's to the next one's (a
        // secondary's transfer can be logged in the millisecond of the publication, before
        // the change itself is).
        if matches!(e.kind, EventKind::Notify | EventKind::Transfer) {
            let ours = e.serial.is_some_and(|s| {
                change.serial.is_some_and(|c| serial_at_least(s, c))
                    && next
                        .and_then(|n| n.1.serial)
                        .is_none_or(|n| !serial_at_least(s, n))
            });
            return ours && when >= at && when <= end;
        }
        let before = i < k;
        let in_span = if before {
            when >= start && previous.is_none_or(|p| when > p.0)
        } else {
            when <= end && next.is_none_or(|n| when < n.0)
        };
        if !in_span || same_record(e) {
            return false;
        }
        match e.kind {
            EventKind::Reload => before,
            // After the publication only what follows from it: fences, the promotion's
            // later steps, the pool's other records; probes and node changes then are the
            // next change's story.
            EventKind::Probe | EventKind::NodeChanged if !before => false,
            kind => pool_kind(kind) && e.pool.is_some() && e.pool == change.pool,
        }
    };
    let entries = timed
        .iter()
        .enumerate()
        .filter(|(i, (when, e))| belongs(*i, *when, e))
        .map(|(_, (when, e))| Entry {
            offset_ms: offset_ms(at, *when),
            kind: e.kind,
            subject: subject(e),
            change: e
                .from
                .as_ref()
                .zip(e.to.as_ref())
                .map(|(f, t)| format!("{f} -> {t}")),
            message: e.message.clone(),
        })
        .collect();
    Timeline {
        record: record.to_string(),
        from: change.from.clone().unwrap_or_default(),
        to: change.to.clone().unwrap_or_default(),
        time: change.time.clone(),
        serial: change.serial,
        entries,
    }
}

/// Whether serial `s` is `than` or after it (RFC 1982 arithmetic: serials wrap).
fn serial_at_least(s: u32, than: u32) -> bool {
    s.wrapping_sub(than) < 1 << 31
}

/// Milliseconds from `zero` to `when`, negative before it.
fn offset_ms(zero: SystemTime, when: SystemTime) -> i64 {
    match when.duration_since(zero) {
        Ok(after) => after.as_millis() as i64,
        Err(before) => -(before.duration().as_millis() as i64),
    }
}

/// What an event is about, as one short text.
pub fn subject(e: &EventRecord) -> String {
    match (e.kind, &e.record, &e.pool, &e.node) {
        (EventKind::Notify | EventKind::Transfer, Some(zone), _, Some(peer)) => {
            format!("{zone} {peer}")
        }
        (_, Some(record), _, _) => record.clone(),
        (_, None, Some(pool), Some(node)) => format!("{pool}/{node}"),
        (_, None, Some(pool), None) => pool.clone(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
