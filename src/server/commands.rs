//! The supervisor's side of admin commands: status, events, drain and undrain, reload;
//! and the drain list applied to the engine.

use tokio::task::JoinSet;

use super::events::describe_answer;
use super::status::{self, Status};
use super::supervisor::{Source, Supervisor, unix_ms};
use crate::api::command::{Command, CommandError};
use crate::config::Config;
use crate::engine::{Event, NodeId, RecordId};

impl Supervisor {
    pub(super) async fn on_command(&mut self, command: Command, tasks: &mut JoinSet<()>) {
        // A requester that went away is no reason to stop: replies may go nowhere.
        match command {
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Events { limit, reply } => {
                let _ = reply.send(self.events.recent(limit));
            }
            Command::Drain {
                pool,
                node,
                drained,
                reply,
            } => {
                let _ = reply.send(self.drain(&pool, &node, drained).await);
            }
            Command::Reload(reply) => {
                let _ = reply.send(self.reload(tasks).await);
            }
            Command::Promote {
                pool,
                node,
                allow_data_loss,
                reply,
            } => {
                self.promote_command(&pool, node.as_deref(), allow_data_loss, reply);
                self.save_promotions();
            }
            Command::Ack { pool, reply } => {
                let _ = reply.send(self.ack(&pool));
                self.save_promotions();
            }
        }
    }

    fn status(&self) -> Status {
        let snapshot = self.publication.load();
        let mut status = status::build(&status::Context {
            config: &self.config,
            engine: &self.engine,
            snapshot: &snapshot,
            zone_names: self.publication.zone_names(),
            clock: self.clock,
            config_file: self.config_file.as_ref().map(|p| p.display().to_string()),
            config_loaded: self.config_loaded,
            fences: &self.outbox.last,
            notify: self.notify.statuses(),
        });
        let now = std::time::Instant::now();
        for (pool, config) in status.pools.iter_mut().zip(&self.config.pools) {
            if config.promote.mode != crate::config::PromoteMode::Off {
                let idle = super::promotion::PoolPromotion::default();
                let entry = self.promotions.pools.get(&config.name).unwrap_or(&idle);
                pool.promotion = Some(entry.status(config.promote.mode, now));
            }
        }
        if let Source::Cluster { side, .. } = &self.source {
            side.status(
                &self.config,
                std::time::Instant::now(),
                unix_ms(),
                &mut status,
            );
        }
        status
    }

    /// The (pool, node) indices of a node named by an operator.
    fn node_index(&self, pool: &str, node: &str) -> Result<NodeId, CommandError> {
        node_index(&self.config, pool, node)
    }

    /// Sets the engine's drained flags from the drain list, by name: at start (the drain
    /// file's list) and on the engine a reload built. Returns the engine's events and
    /// whether an entry was dropped (it names a node the configuration does not have).
    pub(super) fn apply_drain_list(&mut self) -> (Vec<Event>, bool) {
        if self.in_cluster() {
            // Cluster mode: the drains live in etcd (`cluster::sync_drains`).
            return (Vec::new(), false);
        }
        let now = self.clock.now();
        let config = &self.config;
        let (nodes, dropped) = self
            .drains
            .resolve(|pool, node| node_index(config, pool, node).map_err(|e| e.to_string()));
        let events = nodes
            .into_iter()
            .flat_map(|node| self.engine.set_drained(node, true, now))
            .collect();
        (events, dropped)
    }

    /// Drains or undrains a node. With a drain file, the file is written first: if that
    /// fails, nothing changes and the caller hears why.
    async fn drain(
        &mut self,
        pool: &str,
        node: &str,
        drained: bool,
    ) -> Result<String, CommandError> {
        let id = self.node_index(pool, node)?;
        if let Source::Cluster { member, side } = &self.source {
            let since = crate::api::event::rfc3339(std::time::SystemTime::now());
            let list = side.drains_with(pool, node, drained, since);
            return cluster_drain(member, list)
                .await
                .map(|()| {
                    let verb = if drained { "drained" } else { "undrained" };
                    format!(
                        "{node} of pool {pool} {verb} cluster-wide; the leader moves the answers"
                    )
                })
                .map_err(CommandError::Unsaved);
        }
        if self.engine.node(id).drained != drained {
            self.drains
                .set(pool, node, drained)
                .await
                .map_err(CommandError::Unsaved)?;
        }
        let events = self.engine.set_drained(id, drained, self.clock.now());
        self.decide(events, &[id.pool]);
        let answers: Vec<String> = self
            .config
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.pool == id.pool)
            .map(|(i, r)| {
                format!(
                    "{} answers {}",
                    r.name,
                    describe_answer(&self.config, RecordId(i), self.engine.answer(RecordId(i)))
                )
            })
            .collect();
        let verb = if drained { "drained" } else { "undrained" };
        Ok(if answers.is_empty() {
            format!("{node} of pool {pool} {verb}")
        } else {
            format!("{node} of pool {pool} {verb}; {}", answers.join("; "))
        })
    }
}

/// The (pool, node) indices of a node named by an operator.
fn node_index(config: &Config, pool: &str, node: &str) -> Result<NodeId, CommandError> {
    let p = config
        .pools
        .iter()
        .position(|x| x.name == pool)
        .ok_or_else(|| CommandError::NotFound(format!("no pool named {pool:?}")))?;
    let n = config.pools[p]
        .nodes
        .iter()
        .position(|x| x.name == node)
        .ok_or_else(|| {
            CommandError::NotFound(format!("pool {pool:?} has no node named {node:?}"))
        })?;
    Ok(NodeId::new(p, n))
}

/// Writes the cluster-wide drain list through the member task; its answer says whether
/// etcd took it.
async fn cluster_drain(
    member: &crate::cluster::Cluster,
    list: Vec<crate::cluster::Drain>,
) -> Result<(), String> {
    let stopped = || "the cluster task has stopped".to_string();
    let (reply, answer) = tokio::sync::oneshot::channel();
    (member.requests)
        .send(crate::cluster::Request::Drains(list, reply))
        .map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}
