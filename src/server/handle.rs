//! What the caller of `server::start` holds: a `Handle` to talk to the running server (the
//! admin endpoint is wired to it by `main.rs` and `demo.rs`), and the `Server` to wait for.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use super::Command;
use crate::metrics::Metrics;

/// What the admin endpoint (or any other front end) needs to talk to a running server.
#[derive(Clone)]
pub struct Handle {
    pub commands: mpsc::Sender<Command>,
    /// The admin token, replaced by a reload; `None`: the changing endpoints are disabled.
    pub token: Arc<ArcSwap<Option<String>>>,
    pub metrics: Arc<Metrics>,
}

impl Handle {
    /// The admin endpoint's state: it talks to this server and answers for `hosts`
    /// (`[admin] hosts`) beside addresses and localhost.
    pub fn admin_state(&self, hosts: Vec<String>) -> crate::admin::State {
        crate::admin::State {
            commands: self.commands.clone(),
            token: self.token.clone(),
            metrics: self.metrics.clone(),
            hosts: Arc::new(hosts),
        }
    }
}

/// A started server: its handle, and the task that serves until the shutdown token.
pub struct Server {
    pub(super) handle: Handle,
    pub(super) task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Waits until the server stopped (its shutdown token was cancelled and every task it
    /// started finished). Commands sent after that get no reply.
    pub async fn wait(self) -> std::io::Result<()> {
        drop(self.handle);
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(format!("server task: {e}"))),
        }
    }
}
