//! The writers' deadline as the member task moves it on.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::api::deadline::Deadline;
use crate::config;

/// Until when this member may name a writer: from when a keepalive etcd answered was sent
/// (`config::Cluster::writers_until`), once everything this member knew when the answer
/// came is served (the supervisor says which revision it has published).
pub(crate) struct Writers {
    deadline: Arc<Deadline>,
    pub(super) served: watch::Receiver<i64>,
    /// The last answered keepalive's send time and the revision known then, waiting to be
    /// served.
    pending: Option<(Instant, i64)>,
}

impl Writers {
    pub(crate) fn new(deadline: Arc<Deadline>, served: watch::Receiver<i64>) -> Writers {
        Writers {
            deadline,
            served,
            pending: None,
        }
    }

    /// etcd answered a keepalive sent at `sent`, when this member knew `revision`.
    pub(super) fn confirmed(&mut self, sent: Instant, revision: i64, settings: &config::Cluster) {
        self.pending = Some((sent, revision));
        self.advance(settings);
    }

    /// Moves the deadline on for the pending confirmation once its revision is served.
    pub(super) fn advance(&mut self, settings: &config::Cluster) {
        if let Some((sent, revision)) = self.pending
            && *self.served.borrow_and_update() >= revision
        {
            self.deadline.set(settings.writers_until(sent));
            self.pending = None;
        }
    }
}
