//! The effects of one engine event, in one place: the log line, the event record, the
//! metrics and the `on_change` hook. Fencing requests are carried out (and logged) before
//! the snapshot is published, in `Supervisor::fence`.

use super::events::log_event;
use super::{Supervisor, hooks};
use crate::dns::Snapshot;
use crate::engine::Event;

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
