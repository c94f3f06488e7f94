//! What the routes and the screen in front of them share.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::api::command::Command;
use crate::limits::Occasional;
use crate::metrics::Metrics;

/// The largest request body accepted (no endpoint reads one).
pub(super) const MAX_BODY: u64 = 4096;
/// Refused requests are logged at most this often.
pub(super) static REFUSED_LOG: Occasional = Occasional::new(Duration::from_secs(10));

/// What the handlers share.
#[derive(Clone)]
pub struct State {
    pub commands: mpsc::Sender<Command>,
    /// `None`: no `token_file`, the changing endpoints are disabled.
    pub token: Arc<ArcSwap<Option<String>>>,
    pub metrics: Arc<Metrics>,
    /// `[admin] hosts`: names the endpoint answers for beside addresses and localhost.
    pub hosts: Arc<Vec<String>>,
}

/// The body of every POST answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Outcome {
    pub ok: bool,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}
