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
pub(crate) mod state;
pub mod wire;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use state::{Request, State, keepalive_interval};
pub use wire::{Agreed, AgreedAnswer, AgreedNode, AgreedRecord, Drain, MemberInfo, NodeView};

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
