//! Cluster mode: several hadns members agree on one answer through etcd. The only module
//! that knows etcd.
//!
//! ```text
//! Supervisor --Request{View, Propose, Drains, Digest}--> member task (member.rs)
//!     ^                                                    | lease + keepalive, member key,
//!     |                                                    | views on change, campaign,
//!     +------------- watch<State> <------------------------+ one watch on the prefix
//! ```
//!
//! - `wire.rs`: keys and the JSON stored under them.
//! - `merge.rs`: the leader's merge of the members' views of a node (pure).
//! - `member.rs`: the task that talks to etcd and keeps [`State`] current.
//!
//! Deciding stays in `server`: the leader's supervisor runs the engine on the merged views
//! and proposes; every member's supervisor publishes what the watch says was agreed.

mod member;
pub mod merge;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use wire::{Agreed, AgreedAnswer, AgreedNode, AgreedRecord, Drain, MemberInfo, NodeView};

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
    /// This member holds the leader key (under its current lease).
    pub leading: bool,
    /// The leader's name and the create revision of its key (the decision epoch).
    pub leader: Option<(String, i64)>,
    pub members: BTreeMap<String, MemberInfo>,
    /// Per live member, its views by `pool/node`.
    pub views: BTreeMap<String, BTreeMap<String, NodeView>>,
    pub decision: Option<Agreed>,
    pub drains: Vec<Drain>,
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
    View(NodeView),
    /// The leader's decision, to be written if this member still leads.
    Propose(Agreed),
    /// The cluster-wide drain list, replaced; the reply says whether etcd took it.
    Drains(Vec<Drain>, oneshot::Sender<Result<(), String>>),
    /// The configuration was reloaded: its new digest.
    Digest(String),
}

/// The supervisor's side of the member task.
pub struct Cluster {
    pub requests: mpsc::UnboundedSender<Request>,
    pub state: watch::Receiver<Arc<State>>,
}

/// Starts this member's task into `tasks`; it runs until `shutdown`, then revokes its
/// lease so that another member can lead at once.
pub fn start(
    settings: crate::config::Cluster,
    digest: String,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Cluster {
    let (requests, inbox) = mpsc::unbounded_channel();
    let (publish, state) = watch::channel(Arc::new(State::default()));
    tasks.spawn(member::run(settings, digest, inbox, publish, shutdown));
    Cluster { requests, state }
}

/// How often the lease is renewed: three times per lease.
pub fn keepalive_interval(lease: Duration) -> Duration {
    lease / 3
}
