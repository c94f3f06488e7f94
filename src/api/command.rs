//! What the admin endpoint asks of the server, and how a request can fail.

use tokio::sync::oneshot;

use super::event::EventRecord;
use super::status::Status;

/// A request to the supervisor, from the admin endpoint.
pub enum Command {
    Status(oneshot::Sender<Status>),
    /// The most recent events, newest first.
    Events {
        limit: usize,
        reply: oneshot::Sender<Vec<EventRecord>>,
    },
    Drain {
        pool: String,
        node: String,
        drained: bool,
        reply: oneshot::Sender<Result<String, CommandError>>,
    },
    Reload(oneshot::Sender<Result<String, CommandError>>),
    /// `hadns promote POOL [NODE]`: answered when the promotion ended.
    Promote {
        pool: String,
        node: Option<String>,
        allow_data_loss: bool,
        reply: oneshot::Sender<Result<String, CommandError>>,
    },
    /// `hadns ack POOL`: lifts the pool's `block`.
    Ack {
        pool: String,
        reply: oneshot::Sender<Result<String, CommandError>>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    NotFound(String),
    /// A reload was refused; the running configuration stays. Every problem is listed.
    #[error("configuration rejected; the running one stays: {}", .0.join("; "))]
    Rejected(Vec<String>),
    /// A drain or undrain could not be written to the drain file, so it was not applied.
    #[error("{0}; nothing changed")]
    Unsaved(String),
    /// Not done now, and why (a promotion refused or already running).
    #[error("{0}")]
    Refused(String),
}
