//! The effects of one engine event, in one place: the log line, the event record, the
//! metrics and the `on_change` hook. Fencing requests are carried out (and logged) before
//! the snapshot is published, in `Supervisor::fence`.

use tracing::{error, info, warn};

use super::events::{EventKind, EventRecord, describe_answer};
use super::{Supervisor, hooks};
use crate::config::Config;
use crate::dns::Snapshot;
use crate::engine::{Answer, Event};

impl Supervisor {
    /// Logs, records, counts and queues the hook of one event, after `snapshot` (the one
    /// holding its answer) was published.
    pub(super) fn effects(&mut self, event: &Event, snapshot: &Snapshot) {
        if let Some(record) = log_event(&self.config, snapshot, event) {
            self.events.push(record);
        }
        let metrics = &self.metrics;
        match event {
            Event::NodeChanged { pool, node, to, .. } => {
                let pool = &self.config.pools[*pool];
                metrics
                    .transitions
                    .with_label_values(&[&pool.name, &pool.nodes[*node].name, &to.to_string()])
                    .inc();
            }
            Event::AnswerChanged {
                record,
                from,
                to,
                reason,
            } => {
                let name = &self.config.records[*record].name;
                metrics.answer_changes.with_label_values(&[name]).inc();
                let change = hooks::Change {
                    record: *record,
                    from,
                    to,
                    reason,
                    serial: snapshot.serial_of(name).unwrap_or_default(),
                };
                if let Some(job) = hooks::job(&self.config, &change) {
                    self.hooks.enqueue(job);
                }
            }
            Event::SplitBrain { record, .. } => {
                let name = &self.config.records[*record].name;
                metrics.split_brain.with_label_values(&[name]).inc();
            }
            Event::ClusterMismatch { .. }
            | Event::ClusterRejoined { .. }
            | Event::Stale { .. }
            | Event::Drained { .. }
            | Event::Fence { .. } => {}
        }
    }
}

/// Logs one engine event and returns it as a record for the event log (`None` for
/// fencing requests, which are logged and recorded where they are carried out).
fn log_event(config: &Config, snapshot: &Snapshot, event: &Event) -> Option<EventRecord> {
    let names = |pool: usize, node: usize| {
        let pool = &config.pools[pool];
        (pool.name.as_str(), pool.nodes[node].name.as_str())
    };
    Some(match event {
        Event::NodeChanged {
            pool,
            node,
            from,
            to,
            reason,
        } => {
            let (pool, node) = names(*pool, *node);
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
            let name = &config.records[*record].name;
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
            e.pool = Some(config.pools[config.records[*record].pool].name.clone());
            e
        }
        Event::SplitBrain {
            record,
            writable,
            outcome,
        } => {
            let pool = &config.pools[config.records[*record].pool];
            let writable: Vec<&str> = writable
                .iter()
                .map(|&n| pool.nodes[n].name.as_str())
                .collect();
            let name = &config.records[*record].name;
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
            pool,
            node,
            cluster,
            expected,
        } => {
            let (pool, node) = names(*pool, *node);
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
        Event::ClusterRejoined { pool, node } => {
            let (pool, node) = names(*pool, *node);
            info!(pool = %pool, node = %node, "node included again: cluster identity agrees");
            EventRecord::new(EventKind::ClusterRejoined, "cluster identity agrees again")
                .at(pool, node)
        }
        Event::Stale { record, max_stale } => {
            let name = &config.records[*record].name;
            warn!(record = %name, max_stale = ?max_stale, "no node reachable; keeping the last answer (stale)");
            let mut e = EventRecord::new(
                EventKind::Stale,
                format!("no node reachable; keeping the last answer for up to {max_stale:?}"),
            );
            e.record = Some(name.clone());
            e
        }
        Event::Drained {
            pool,
            node,
            drained,
        } => {
            let (pool, node) = names(*pool, *node);
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
