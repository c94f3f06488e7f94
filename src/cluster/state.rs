//! What the member task publishes and what it is asked: the vocabulary between it and
//! the supervisor.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::wire::{Agreed, AgreedPromotion, Drain, MemberInfo, NodeView};

/// What this member knows of the cluster: etcd's content under the prefix, and its own
/// connection to etcd.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// This member has a live session with etcd (its lease is kept alive).
    pub connected: bool,
    /// The last time etcd confirmed this member's lease; `None` before the first time.
    pub last_contact: Option<Instant>,
    /// Why the connection was lost, while it is.
    pub lost_reason: Option<String>,
    /// The etcd endpoint of the current session (or the one being tried).
    pub endpoint: Option<String>,
    /// This member holds the leader key (under its current lease).
    pub leading: bool,
    /// The leader's name and the create revision of its key (the decision epoch).
    pub leader: Option<(String, i64)>,
    pub members: BTreeMap<String, MemberInfo>,
    /// Per live member, its views by `pool/node`.
    pub views: BTreeMap<String, BTreeMap<String, NodeView>>,
    pub decision: Option<Agreed>,
    pub drains: Vec<Drain>,
    /// Each pool's promotion, by pool name.
    pub promotions: BTreeMap<String, AgreedPromotion>,
    /// etcd's revision of this content.
    pub revision: i64,
    /// Times this member resynchronised its watch after a compaction.
    pub resyncs: u64,
    /// Values under the prefix that could not be read (logged; a decision or drain list
    /// that cannot be read keeps the last one read).
    pub unreadable: u64,
}

/// What the supervisor asks of the member task.
pub enum Request {
    /// This member's view of a node (written when it differs from the last one written).
    View(Box<NodeView>),
    /// The leader's decision, to be written if this member still leads.
    Propose(Agreed),
    /// The cluster-wide drain list, replaced; the reply says whether etcd took it.
    Drains(Vec<Drain>, oneshot::Sender<Result<(), String>>),
    /// A pool's promotion, to be written if this member still leads under `epoch`; the
    /// reply says whether etcd took it.
    Promotion {
        pool: String,
        epoch: i64,
        record: AgreedPromotion,
        reply: Option<oneshot::Sender<Result<(), String>>>,
    },
    /// The configuration was reloaded: its new digest.
    Digest(String),
}

/// How often the lease is renewed: three times per lease.
pub fn keepalive_interval(lease: Duration) -> Duration {
    lease / 3
}
