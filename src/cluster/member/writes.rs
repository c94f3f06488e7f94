//! What this member writes: the leader key, its views, the leader's decisions, the drain
//! list, the promotions; and what it does with requests while cut off.

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use tracing::{error, info, warn};

use super::{Error, Member, json, moved, same_state};
use crate::cluster::state::Request;
use tokio::sync::oneshot;

use crate::cluster::wire::{Agreed, AgreedPromotion, NodeView};

impl Member {
    /// Takes the leader key when nobody holds it.
    pub(super) async fn campaign(&mut self, client: &mut Client) -> Result<(), Error> {
        let Some(lease) = self.lease else {
            return Ok(());
        };
        if self.state.leader.is_some() {
            return Ok(());
        }
        let key = self.keys.leader();
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.as_str(),
                self.settings.name.as_str(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let won = self.timed(client.txn(txn)).await??.succeeded();
        if won {
            info!(member = %self.settings.name, "took the leader key");
        }
        Ok(())
    }

    pub(super) async fn request(
        &mut self,
        client: &mut Client,
        request: Request,
    ) -> Result<(), Error> {
        match request {
            Request::View(view) => {
                let key = format!("{}/{}", view.pool, view.node);
                let urgent = self.written.get(&key).is_none_or(|w| !same_state(w, &view));
                self.views.insert(key, *view);
                if urgent {
                    self.write_views(client, false).await?;
                }
            }
            Request::Propose(decision) => self.propose(client, decision).await?,
            Request::Drains(drains, reply) => {
                let put = self
                    .timed(client.put(self.keys.drains(), json(&drains), None))
                    .await;
                let result = match put {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("etcd: {e}")),
                    Err(e) => Err(e.to_string()),
                };
                let failed = result.is_err();
                let _ = reply.send(result);
                if failed {
                    return Err(Error::Lost("the drain list could not be written".into()));
                }
            }
            Request::Promotion {
                pool,
                epoch,
                record,
                reply,
            } => {
                self.write_promotion(client, &pool, epoch, &record, reply)
                    .await?
            }
            Request::Digest(digest) => {
                self.digest = digest;
                self.write_info(client).await?;
            }
        }
        Ok(())
    }

    /// Writes a pool's promotion if this member still holds the leader key of `epoch`
    /// under its lease: a deposed leader's record never lands.
    async fn write_promotion(
        &mut self,
        client: &mut Client,
        pool: &str,
        epoch: i64,
        record: &AgreedPromotion,
        reply: Option<oneshot::Sender<Result<(), String>>>,
    ) -> Result<(), Error> {
        let Some(lease) = self.lease else {
            if let Some(reply) = reply {
                let _ = reply.send(Err("this member has no session with etcd".into()));
            }
            return Ok(());
        };
        let key = self.keys.leader();
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.as_str(), CompareOp::Equal, epoch),
                Compare::lease(key.as_str(), CompareOp::Equal, lease),
            ])
            .and_then([TxnOp::put(self.keys.promotion(pool), json(record), None)]);
        let result = match self.timed(client.txn(txn)).await {
            Ok(Ok(written)) if written.succeeded() => Ok(()),
            Ok(Ok(_)) => Err("this member no longer leads the cluster".to_string()),
            Ok(Err(e)) => Err(format!("etcd: {e}")),
            Err(e) => Err(e.to_string()),
        };
        if let Err(why) = &result {
            warn!(member = %self.settings.name, pool, %why, "promotion record not written");
        }
        let lost = matches!(&result, Err(why) if !why.contains("no longer leads"));
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
        if lost {
            return Err(Error::Lost(
                "the promotion record could not be written".into(),
            ));
        }
        Ok(())
    }

    /// Writes the decision if this member still holds the leader key it decided under, and
    /// the decision key still holds the decision it follows (the agreed one, or the last
    /// one this member wrote): decisions are numbered one after another, none written
    /// twice, none skipped, even when a write that timed out here was applied by etcd.
    pub(super) async fn propose(
        &mut self,
        client: &mut Client,
        decision: Agreed,
    ) -> Result<(), Error> {
        let Some(lease) = self.lease else {
            return Ok(());
        };
        let agreed = self.state.decision.as_ref().map_or(0, |d| d.seq);
        let follows = match self.wrote {
            Some((seq, revision)) if seq + 1 == decision.seq && seq > agreed => Some(revision),
            _ if agreed + 1 == decision.seq => Some(self.decision_key),
            _ => None,
        };
        let Some(follows) = follows else {
            warn!(
                member = %self.settings.name,
                seq = decision.seq,
                agreed,
                "decision not written: it does not follow the newest one"
            );
            return Ok(());
        };
        let key = self.keys.leader();
        let decision_key = self.keys.decision();
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.as_str(), CompareOp::Equal, decision.epoch),
                Compare::lease(key.as_str(), CompareOp::Equal, lease),
                Compare::mod_revision(decision_key.as_str(), CompareOp::Equal, follows),
            ])
            .and_then([TxnOp::put(decision_key.as_str(), json(&decision), None)]);
        // A refused write (too large for etcd's request limit, say) is this decision's
        // problem, not the connection's: the session goes on, and the leader proposes
        // again at its next tick. A lost connection shows in the keepalive.
        match self.timed(client.txn(txn)).await {
            Ok(Ok(written)) if written.succeeded() => {
                self.wrote = written.header().map(|h| (decision.seq, h.revision()));
            }
            Ok(Ok(_)) => warn!(
                member = %self.settings.name,
                epoch = decision.epoch,
                seq = decision.seq,
                "decision not written: this member no longer leads, or a newer decision is in \
                 etcd"
            ),
            Ok(Err(error)) => error!(
                member = %self.settings.name,
                %error,
                "decision not written: etcd refused it"
            ),
            Err(error) => warn!(member = %self.settings.name, %error, "decision not written"),
        }
        Ok(())
    }

    /// Writes the views that changed since they were last written (all of them when `all`:
    /// a new lease). Called at once when a node's state changed, and once per keepalive,
    /// which writes views whose positions alone moved. A changed reason alone is not
    /// written: it goes with the next change.
    pub(super) async fn write_views(
        &mut self,
        client: &mut Client,
        all: bool,
    ) -> Result<(), Error> {
        let Some(lease) = self.lease else {
            return Ok(());
        };
        if all {
            self.written.clear();
        }
        let changed: Vec<(String, NodeView)> = self
            .views
            .iter()
            .filter(|(k, v)| {
                self.written
                    .get(*k)
                    .is_none_or(|w| !same_state(w, v) || moved(w, v))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, view) in changed {
            let path = self.keys.view(&self.settings.name, &view.pool, &view.node);
            let options = Some(PutOptions::new().with_lease(lease));
            self.timed(client.put(path, json(&view), options)).await??;
            self.written.insert(key, view);
        }
        Ok(())
    }

    /// Cut off: requests are kept for the next session (views) or refused (drains).
    pub(super) fn offline(&mut self, request: Request) {
        match request {
            Request::View(view) => {
                self.views
                    .insert(format!("{}/{}", view.pool, view.node), *view);
            }
            Request::Drains(_, reply) => {
                let _ = reply.send(Err("this member cannot reach etcd".into()));
            }
            Request::Propose(_) => {}
            Request::Promotion { reply, .. } => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err("this member cannot reach etcd".into()));
                }
            }
            Request::Digest(digest) => self.digest = digest,
        }
    }
}
