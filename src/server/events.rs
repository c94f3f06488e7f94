//! What happened, for people: every engine event is logged (constant messages, values as
//! fields) and kept, newest first, in a bounded [`EventLog`] that `/events` serves.

use std::collections::VecDeque;

use tracing::{error, info, warn};

pub use crate::api::event::{EventKind, EventRecord, rfc3339};
use crate::config::Config;
use crate::dns::Snapshot;
use crate::engine::{Answer, Event, NodeId, RecordId};

/// The most recent events, bounded: the oldest is dropped when it is full.
pub struct EventLog {
    entries: VecDeque<EventRecord>,
    capacity: usize,
}

impl EventLog {
    pub fn new(capacity: usize) -> EventLog {
        EventLog {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&mut self, event: EventRecord) {
        if self.entries.len() == self.capacity {
            self.entries.pop_back();
        }
        self.entries.push_front(event);
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.entries.truncate(self.capacity);
    }

    /// Newest first.
    pub fn recent(&self, limit: usize) -> Vec<EventRecord> {
        self.entries.iter().take(limit).cloned().collect()
    }
}

/// `web1(127.0.0.10),web2(127.0.0.11)`, `nodata`, `servfail` or `pending`.
pub fn describe_answer(config: &Config, record: RecordId, answer: &Answer) -> String {
    match answer {
        Answer::Pending => "pending".into(),
        Answer::Nodata => "nodata".into(),
        Answer::Servfail => "servfail".into(),
        Answer::Nodes(nodes) => {
            let pool = config.record_pool(record);
            nodes
                .iter()
                .map(|&n| format!("{}({})", pool.nodes[n].name, pool.nodes[n].address))
                .collect::<Vec<_>>()
                .join(",")
        }
    }
}

/// Logs one engine event (under this module's log target, which RUST_LOG filters name)
/// and returns it as a record for the event log (`None` for fencing requests, which are
/// logged and recorded where they are carried out).
pub(super) fn log_event(
    config: &Config,
    snapshot: &Snapshot,
    event: &Event,
) -> Option<EventRecord> {
    let names = |node: NodeId| config.names(node);
    Some(match event {
        Event::NodeChanged {
            node,
            from,
            to,
            reason,
        } => {
            let (pool, node) = names(*node);
            info!(pool = %pool, node = %node, from = %from, to = %to, reason = %reason, "node state changed");
            EventRecord::new(EventKind::NodeChanged, reason.as_str())
                .at(pool, node)
                .change(from.to_string(), to.to_string())
        }
        Event::AnswerChanged {
            record,
            from,
            to,
            reason,
        } => {
            let name = &config.record(*record).name;
            let serial = snapshot.serial_of(name).unwrap_or_default();
            let (from_text, to_text) = (
                describe_answer(config, *record, from),
                describe_answer(config, *record, to),
            );
            if matches!(to, Answer::Nodata | Answer::Servfail) {
                error!(record = %name, from = %from_text, to = %to_text, reason = %reason, serial, "answer changed: no node qualifies");
            } else {
                info!(record = %name, from = %from_text, to = %to_text, reason = %reason, serial, "answer changed");
            }
            let mut e = EventRecord::new(
                EventKind::AnswerChanged,
                format!("{reason} (serial {serial})"),
            )
            .change(from_text, to_text);
            e.record = Some(name.clone());
            e.pool = Some(config.record_pool(*record).name.clone());
            e.serial = Some(serial);
            e
        }
        Event::SplitBrain {
            record,
            writable,
            outcome,
        } => {
            let pool = config.record_pool(*record);
            let writable: Vec<&str> = writable
                .iter()
                .map(|&n| pool.nodes[n].name.as_str())
                .collect();
            let name = &config.record(*record).name;
            error!(record = %name, pool = %pool.name, writable = %writable.join(","), outcome = %outcome, "split_brain");
            let mut e = EventRecord::new(
                EventKind::SplitBrain,
                format!("writable: {}; {outcome}", writable.join(", ")),
            );
            e.record = Some(name.clone());
            e.pool = Some(pool.name.clone());
            e
        }
        Event::ClusterMismatch {
            node,
            cluster,
            expected,
        } => {
            let (pool, node) = names(*node);
            error!(pool = %pool, node = %node, cluster = %cluster, expected = ?expected, "node excluded: cluster identity differs");
            EventRecord::new(
                EventKind::ClusterMismatch,
                format!(
                    "cluster {cluster} differs from {}; left out of every answer",
                    expected.as_deref().unwrap_or("no majority")
                ),
            )
            .at(pool, node)
        }
        Event::ClusterRejoined { node } => {
            let (pool, node) = names(*node);
            info!(pool = %pool, node = %node, "node included again: cluster identity agrees");
            EventRecord::new(EventKind::ClusterRejoined, "cluster identity agrees again")
                .at(pool, node)
        }
        Event::Stale { record, max_stale } => {
            let name = &config.record(*record).name;
            warn!(record = %name, max_stale = ?max_stale, "no node reachable; keeping the last answer (stale)");
            let mut e = EventRecord::new(
                EventKind::Stale,
                format!("no node reachable; keeping the last answer for up to {max_stale:?}"),
            );
            e.record = Some(name.clone());
            e
        }
        Event::Drained { node, drained } => {
            let (pool, node) = names(*node);
            let kind = if *drained {
                EventKind::Drained
            } else {
                EventKind::Undrained
            };
            info!(pool = %pool, node = %node, "node {kind} by an operator");
            EventRecord::new(kind, format!("{node} {kind} by an operator")).at(pool, node)
        }
        Event::Fence { .. } => return None,
    })
}

/// A fencing step, logged and recorded: `Fencing` (started), `Fenced` or `FenceFailed`.
pub fn fence_event(pool: &str, node: &str, kind: EventKind, message: &str) -> EventRecord {
    match kind {
        EventKind::Fencing => info!(pool = %pool, node = %node, reason = %message, "fencing"),
        EventKind::Fenced => info!(pool = %pool, node = %node, done = %message, "fenced"),
        _ => {
            error!(pool = %pool, node = %node, error = %message, "fencing failed; moving the answer anyway")
        }
    }
    EventRecord::new(kind, message).at(pool, node)
}

/// A failing probe is logged once per change of its reason (authentication failures, a
/// missing database, ...), not at every probe; state changes are logged as events.
pub fn log_failure_change(
    pool: &str,
    node: &str,
    last: &mut Option<String>,
    failure: Option<String>,
    state_changed: bool,
) {
    if failure == *last {
        return;
    }
    match (&failure, state_changed) {
        (Some(reason), false) => {
            warn!(pool = %pool, node = %node, reason = %reason, "probe failing")
        }
        (None, false) if last.is_some() => {
            info!(pool = %pool, node = %node, "probe succeeding again")
        }
        _ => {}
    }
    *last = failure;
}

/// The event of a probe that moves `node` of `pool` towards a change (a failure while it
/// was up, a success while it was down), after the engine took it: `before` is the
/// node's health before, `counted` its consecutive failures or successes after. Other
/// probes (the steady state) are not events: the event log stays the story of changes.
pub(super) fn probe_event(
    pool: &crate::config::Pool,
    node: &str,
    before: crate::api::status::Health,
    counted: (u32, u32),
    observation: &crate::engine::Observation,
) -> Option<EventRecord> {
    use crate::api::status::Health;
    let (failures, successes) = counted;
    let ms = observation.latency.as_secs_f64() * 1000.0;
    let message = match (before, observation.ok) {
        (Health::Up, false) if observation.conclusive => {
            format!(
                "probe failed ({ms:.0} ms), conclusive: {}",
                observation.detail
            )
        }
        (Health::Up, false) => format!(
            "probe failed ({} of fall {}, {ms:.0} ms): {}",
            failures.min(pool.fall),
            pool.fall,
            observation.detail
        ),
        (Health::Down, true) => format!(
            "probe succeeded ({} of rise {}, {ms:.0} ms): {}",
            successes.min(pool.rise),
            pool.rise,
            observation.detail
        ),
        _ => return None,
    };
    Some(EventRecord::new(EventKind::Probe, message).at(&pool.name, node))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_log_keeps_the_newest_first_and_stays_bounded() {
        let mut log = EventLog::new(3);
        for i in 0..5 {
            log.push(EventRecord::new(EventKind::Reload, format!("{i}")));
        }
        let messages: Vec<String> = log.recent(10).into_iter().map(|e| e.message).collect();
        assert_eq!(messages, ["4", "3", "2"]);
        assert_eq!(log.recent(1).len(), 1);
        log.set_capacity(1);
        assert_eq!(log.recent(10).len(), 1);
    }
}
