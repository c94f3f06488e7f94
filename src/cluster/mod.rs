//! Cluster mode: several hadns members agree on one answer through etcd. The only module
//! that knows etcd.
//!
//! ```text
//! Supervisor --Request{View, Propose, Drains, Promotion, Digest}--> member task (member.rs)
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

use crate::api::deadline::{Deadline, Leadership};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use state::{Request, State, keepalive_interval};
pub use wire::{
    Agreed, AgreedAnswer, AgreedNode, AgreedPromotion, AgreedRecord, Drain, MemberInfo, NodeView,
    RunningPromotion, Stage,
};

/// The supervisor's side of the member task.
pub struct Cluster {
    pub requests: mpsc::UnboundedSender<Request>,
    pub state: watch::Receiver<Arc<State>>,
    /// The revision of the last state whose decisions are all published (the
    /// supervisor's word): the member task moves the writers' deadline on only for what
    /// is served.
    pub published: watch::Sender<i64>,
    /// The leadership this member holds now, as the member task knows it.
    pub leadership: Arc<Leadership>,
}

/// Starts this member's task into `tasks`; it runs until `shutdown`, then revokes its
/// lease so that another member can lead at once. It moves `writers` on at each keepalive
/// etcd answers while its view is caught up and published (`config::Cluster::writers_until`).
pub fn start(
    settings: crate::config::Cluster,
    digest: String,
    writers: Arc<Deadline>,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Cluster {
    let (requests, inbox) = mpsc::unbounded_channel();
    let (publish, state) = watch::channel(Arc::new(State::default()));
    let (published, served) = watch::channel(0);
    let writers = member::Writers::new(writers, served);
    let leadership = Arc::new(Leadership::default());
    tasks.spawn(member::run(
        settings,
        digest,
        writers,
        leadership.clone(),
        inbox,
        publish,
        shutdown,
    ));
    Cluster {
        requests,
        state,
        published,
        leadership,
    }
}
