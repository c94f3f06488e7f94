//! What happened, for people: every engine event is logged (constant messages, values as
//! fields) and kept, newest first, in a bounded [`EventLog`] that `/events` serves.

use std::collections::VecDeque;

use tracing::{error, info, warn};

pub use crate::api::event::{EventKind, EventRecord, rfc3339};
use crate::config::Config;
use crate::engine::Answer;

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
pub fn describe_answer(config: &Config, record: usize, answer: &Answer) -> String {
    match answer {
        Answer::Pending => "pending".into(),
        Answer::Nodata => "nodata".into(),
        Answer::Servfail => "servfail".into(),
        Answer::Nodes(nodes) => {
            let pool = &config.pools[config.records[record].pool];
            nodes
                .iter()
                .map(|&n| format!("{}({})", pool.nodes[n].name, pool.nodes[n].address))
                .collect::<Vec<_>>()
                .join(",")
        }
    }
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
