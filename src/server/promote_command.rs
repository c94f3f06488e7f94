//! `hadns promote` and `hadns ack`: an operator's promotion (a switchover when the
//! primary is up) and lifting a pool's block.

use super::promotion::State;
use super::supervisor::Supervisor;
use crate::api::command::CommandError;
use crate::config::PromoteMode;
use crate::engine::{Ask, PoolId, Verdict};

impl Supervisor {
    /// `hadns promote POOL [NODE] [--allow-data-loss]`; the reply waits for the end.
    pub(super) fn promote_command(
        &mut self,
        pool: &str,
        node: Option<&str>,
        allow_data_loss: bool,
        reply: tokio::sync::oneshot::Sender<Result<String, CommandError>>,
    ) {
        let refuse = |reply: tokio::sync::oneshot::Sender<_>, why: CommandError| {
            let _ = reply.send(Err(why));
        };
        let Some(p) = self.config.pools.iter().position(|x| x.name == pool) else {
            return refuse(
                reply,
                CommandError::NotFound(format!("no pool named {pool:?}")),
            );
        };
        let config = &self.config.pools[p];
        if config.promote.mode == PromoteMode::Off {
            return refuse(
                reply,
                CommandError::Refused(format!(
                    "pool {pool:?} has promotion off: set [pool.promote] mode = \"manual\" or \"auto\""
                )),
            );
        }
        let node = match node.map(|n| config.nodes.iter().position(|x| x.name == n)) {
            Some(None) => {
                return refuse(
                    reply,
                    CommandError::NotFound(format!(
                        "pool {pool:?} has no node named {:?}",
                        node.unwrap_or_default()
                    )),
                );
            }
            Some(found) => found,
            None => None,
        };
        if self.promotions.pool(pool).busy() {
            return refuse(
                reply,
                CommandError::Refused(format!("a promotion of pool {pool:?} is running")),
            );
        }
        let ask = Ask {
            node,
            allow_data_loss,
        };
        let Some(verdict) = (self.promoter()).map(|e| e.promotion(PoolId(p), config, Some(ask)))
        else {
            return refuse(reply, CommandError::Refused(self.not_leading()));
        };
        match verdict {
            Verdict::Promote(plan) => {
                self.start_promotion(PoolId(p), plan, true);
                self.promotions.pool(pool).reply = Some(reply);
            }
            Verdict::Idle(why) | Verdict::Refused(why) => {
                refuse(reply, CommandError::Refused(format!("not promoted: {why}")))
            }
        }
    }

    /// Why a member that does not lead refuses: the leader promotes, and lifts blocks.
    fn not_leading(&self) -> String {
        let leader = match &self.source {
            super::supervisor::Source::Cluster { side, .. } => side.state().leader.clone(),
            super::supervisor::Source::Local => None,
        };
        match leader {
            Some((name, _)) => format!(
                "only the cluster's leader promotes: ask {name} (this member does not lead)"
            ),
            None => "only the cluster's leader promotes, and none leads now".into(),
        }
    }

    /// `hadns ack POOL`: lifts the pool's block.
    pub(super) fn ack(&mut self, pool: &str) -> Result<String, CommandError> {
        let Some(p) = self.config.pools.iter().position(|x| x.name == pool) else {
            return Err(CommandError::NotFound(format!("no pool named {pool:?}")));
        };
        if self.promoter().is_none() {
            return Err(CommandError::Refused(self.not_leading()));
        }
        self.write_promotion(PoolId(p), None, |record| record.blocked_until_ms = None);
        let entry = self.promotions.pool(pool);
        let was = entry.blocked_until.take();
        entry.retry_at = None;
        if matches!(entry.state, State::Blocked(_) | State::Refused(_)) {
            entry.state = State::Idle;
        }
        self.consider_promotion(PoolId(p));
        Ok(match was {
            Some(_) => format!("pool {pool}: automatic promotion unblocked"),
            None => format!("pool {pool}: automatic promotion was not blocked"),
        })
    }
}
