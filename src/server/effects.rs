//! The effects of one engine event, in one place: the log line, the event record, the
//! metrics and the `on_change` hook; and those of a fence, started and finished (the
//! outbox runs fences before it publishes, see `decisions.rs`).

use super::decisions::Fenced;
use super::events::{EventKind, fence_event, log_event};
use super::hooks;
use super::supervisor::{Source, Supervisor};
use crate::api::status::FenceStatus;
use crate::dns::Snapshot;
use crate::engine::{Event, NodeId};

impl Supervisor {
    /// Logs, records, counts and queues the hook of one event, after `snapshot` (the one
    /// holding its answer) was published, at `published` when this decision published it.
    pub(super) fn effects(
        &mut self,
        event: &Event,
        snapshot: &Snapshot,
        published: Option<std::time::SystemTime>,
    ) {
        if let Some(mut record) = log_event(&self.config, snapshot, event) {
            // Stamped with the publication: NOTIFY and transfers of its serial, which can
            // come before these lines are logged, fall after it on the timeline.
            if let Some(at) = published {
                record.time = crate::api::event::rfc3339(at);
            }
            self.events.push(record);
        }
        let metrics = &self.metrics;
        match event {
            Event::NodeChanged { node, to, .. } => {
                let (pool, node) = self.config.names(*node);
                metrics
                    .transitions
                    .with_label_values(&[pool, node, &to.to_string()])
                    .inc();
            }
            Event::AnswerChanged {
                record,
                from,
                to,
                reason,
            } => {
                let name = &self.config.record(*record).name;
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
                let name = &self.config.record(*record).name;
                metrics.split_brain.with_label_values(&[name]).inc();
            }
            Event::ClusterMismatch { .. }
            | Event::ClusterRejoined { .. }
            | Event::Stale { .. }
            | Event::Drained { .. }
            | Event::Fence { .. } => {}
        }
    }

    /// Records that a fence starts.
    pub(super) fn fencing(&mut self, node: NodeId, reason: &str) {
        let (pool, node) = self.config.names(node);
        self.events
            .push(fence_event(pool, node, EventKind::Fencing, reason));
    }

    /// Records a finished fence (event, metric, `/status`) and carries out the decisions
    /// that waited for it.
    pub(super) fn on_fenced(&mut self, fenced: Fenced) {
        self.outbox.fenced();
        let (pool, node) = self.config.names(fenced.node);
        // In cluster mode a fenced writer may be replaced at once (`cluster/guard.rs`).
        let proof = fenced.result.is_ok()
            && match &mut self.source {
                Source::Cluster { side, .. } => {
                    side.fenced(&self.config, fenced.node);
                    true
                }
                Source::Local => false,
            };
        let (kind, detail, result) = match fenced.result {
            Ok(done) => (EventKind::Fenced, done, "fenced"),
            Err(why) => (EventKind::FenceFailed, why, "failed"),
        };
        self.metrics
            .fences
            .with_label_values(&[pool, node, result])
            .inc();
        self.outbox.last.insert(
            (pool.to_string(), node.to_string()),
            FenceStatus {
                result: kind.to_string(),
                detail: detail.clone(),
                at: self.clock.wall(self.clock.now()),
            },
        );
        self.events.push(fence_event(pool, node, kind, &detail));
        self.advance();
        if proof {
            self.on_cluster(true);
        }
    }
}
