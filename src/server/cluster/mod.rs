//! Cluster mode as a source of decisions (docs/cluster.md), pure: the member task's
//! [`State`] (what etcd holds, the connection), the configuration, the local engine and
//! the time go in; [`Decision`]s and requests for the member task come out. The
//! supervisor (`server/mod.rs`) is the IO shell: it feeds [`ClusterSource::step`] and
//! carries out what it returns, as it does the local engine's decisions.
//!
//! - The local engine still probes and decides this member's view of each node, which goes
//!   to etcd (`Request::View`); its answers are not served, only its node changes, cluster
//!   identity and drains have effects here (`observed`).
//! - `leader.rs`: while this member leads, a second engine on the merged views of the live
//!   members (a node is down when a majority of those that observe it say so) proposes
//!   (`Route::Propose`: fenced first, then written in a transaction guarded by the
//!   leadership and by the decision it follows).
//! - `follow.rs`: every member serves what etcd's watch says was agreed (`Route::Agreed`),
//!   or, cut off, keeps it or refuses (`on_lost`), and releases its vips at the lease's end.
//! - `status.rs`: the cluster part of `/status`.
//!
//! Promotion reads the leader's engine (`leading`) and the promotion records in etcd
//! (`State::promotions`), whose deposed nodes both engines follow.

mod context;
mod follow;
mod guard;
mod leader;
mod status;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use context::Context;
use context::{is_deposed, is_drained, release_after};
use follow::Follower;
use leader::Leader;

use super::decisions::Decision;
use crate::api::deadline::{Deadline, Leadership};
use crate::checks::promote::Mandate;
use crate::cluster::{Agreed, AgreedRecord, Drain, NodeView, Request, State};
use crate::config::Config;
use crate::engine::{Engine, Event, Health, NodeId};

/// What a step decided.
#[derive(Default)]
pub struct Output {
    /// For the outbox, in order.
    pub decisions: Vec<Decision>,
    /// For the member task.
    pub requests: Vec<Request>,
    /// How long ago the leader decided the decision served for the first time now.
    pub served_age: Option<Duration>,
}

/// The cluster side of one member.
pub struct ClusterSource {
    settings: crate::config::Cluster,
    /// The digest of this member's configuration (`config::digest`).
    digest: String,
    /// The state last handled.
    state: Arc<State>,
    /// While this member leads.
    leader: Option<Leader>,
    follower: Follower,
    /// Until when this member may name writers (the member task moves it on).
    writers: Arc<Deadline>,
}

impl ClusterSource {
    pub fn new(
        settings: crate::config::Cluster,
        digest: String,
        writers: Arc<Deadline>,
    ) -> ClusterSource {
        ClusterSource {
            settings,
            digest,
            state: Arc::new(State::default()),
            leader: None,
            follower: Follower::default(),
            writers,
        }
    }

    /// The member task's state changed (`refresh`: the periodic tick, which feeds the
    /// leader's engine every merged view again): views out after a new session, drains
    /// into the local engine, the leader's proposal, the agreed answers served.
    pub fn step(&mut self, state: Arc<State>, refresh: bool, cx: &mut Context) -> Output {
        let mut out = Output::default();
        if state.connected && !self.state.connected {
            // A new session: etcd may have lost what was written under an expired lease.
            out.requests.extend(all_views(cx.config, cx.engine));
        }
        self.state = state.clone();
        out.decisions.extend(sync_drains(&state, cx));
        self.lead(&state, refresh, cx, &mut out);
        let (decision, served_age) = self
            .follower
            .follow(&state, &self.settings, &self.digest, cx);
        out.decisions.extend(decision);
        out.served_age = served_age;
        out
    }

    fn lead(&mut self, state: &State, refresh: bool, cx: &Context, out: &mut Output) {
        let epoch = match (&state.leader, state.leading) {
            (Some((_, epoch)), true) => *epoch,
            _ => {
                if self.leader.take().is_some() {
                    tracing::info!(member = %self.settings.name, "no longer leading the cluster");
                }
                return;
            }
        };
        if self.leader.as_ref().is_none_or(|l| l.epoch != epoch) {
            tracing::info!(member = %self.settings.name, epoch, "leading the cluster");
            let decision = state.decision.as_ref();
            self.leader = Some(Leader::new(epoch, cx.config, decision, cx.engine));
        }
        if let Some(leader) = &mut self.leader {
            out.decisions.extend(leader.decide(state, refresh, cx));
        }
    }

    /// The decision to write for a `Route::Propose` whose fences are done: numbered after
    /// the agreed one and after this leader's last, so that one serial never names two
    /// answers; `None` when this member no longer leads or nothing changed.
    pub fn propose(&mut self, records: Vec<AgreedRecord>, cx: &Context) -> Option<Request> {
        let leader = self.leader.as_mut()?;
        let decision = leader.number(
            records,
            self.state.decision.as_ref(),
            &self.settings.name,
            &self.digest,
            cx,
        )?;
        Some(Request::Propose(decision))
    }

    /// After a reload: the new digest and every view again; the leader's engine is rebuilt
    /// for the new configuration and the agreed answers are served again (a reload moved
    /// every serial). Then a step as after a tick.
    pub fn reloaded(&mut self, cx: &mut Context) -> Output {
        self.digest = crate::config::digest(cx.config);
        self.leader = None;
        self.follower.republish();
        let mut requests = vec![Request::Digest(self.digest.clone())];
        requests.extend(all_views(cx.config, cx.engine));
        let mut out = self.step(self.state.clone(), true, cx);
        requests.append(&mut out.requests);
        out.requests = requests;
        out
    }

    /// The cluster-wide drain list with `pool`/`node` drained (or not), to write to etcd.
    pub fn drains_with(&self, pool: &str, node: &str, drained: bool, since: String) -> Vec<Drain> {
        let mut list: Vec<Drain> = (self.state.drains.iter())
            .filter(|d| !(d.pool == pool && d.node == node))
            .cloned()
            .collect();
        if drained {
            list.push(Drain {
                pool: pool.into(),
                node: node.into(),
                since,
            });
        }
        list
    }

    /// When this member releases its vips if etcd stays silent (cut off, vips still
    /// held): see `release_after`.
    pub fn release_at(&self) -> Option<Instant> {
        let contact = self.state.last_contact?;
        (!self.state.connected && !self.follower.released())
            .then(|| contact + release_after(&self.settings))
    }

    /// When the leader decides again by itself: a writer it held back may be named then.
    pub fn wake_at(&self) -> Option<Instant> {
        self.leader.as_ref().and_then(|l| l.wake)
    }

    /// A fence of `node` succeeded: as leader, that proves it takes no writes.
    pub fn fenced(&mut self, config: &Config, node: NodeId) {
        if let Some(leader) = &mut self.leader {
            let (pool, node) = config.names(node);
            leader.guard.fenced(pool, node);
        }
    }

    /// As leader: until when a client may still use an answer any member served that
    /// names `node` as a writer (`None`: still named, or not known yet; not leading).
    pub fn writer_usable_until(
        &self,
        config: &Config,
        node: NodeId,
        now: Instant,
    ) -> Option<Instant> {
        let (pool, name) = config.names(node);
        (self.leader.as_ref())?
            .guard
            .usable_until(config, pool, name, now)
    }

    /// While this member leads: the engine that decides for the cluster, and its
    /// leadership (the epoch its writes are guarded by).
    pub fn leading(&self) -> Option<(&Engine, i64)> {
        self.leader.as_ref().map(|l| (l.engine(), l.epoch))
    }

    /// What a promotion this leader starts is bounded by (`checks::promote::Mandate`).
    pub fn mandate(&self, leadership: &Arc<Leadership>) -> Option<Mandate> {
        let leader = self.leader.as_ref()?;
        Some(Mandate {
            epoch: leader.epoch,
            leadership: leadership.clone(),
            writers: self.writers.clone(),
        })
    }

    /// This member's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The cluster's state last stepped.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The etcd revision of the state last stepped.
    pub fn revision(&self) -> i64 {
        self.state.revision
    }

    /// The agreed decision served here, if any.
    pub fn served(&self) -> Option<&Agreed> {
        self.follower.served()
    }
}

/// Cluster mode: the local engine's events are this member's view, and only that part of
/// them has effects here (node changes, cluster identity, drains); `None` when nothing is
/// left.
pub fn observed(events: Vec<Event>) -> Option<Decision> {
    let events: Vec<Event> = events
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                Event::NodeChanged { .. }
                    | Event::ClusterMismatch { .. }
                    | Event::ClusterRejoined { .. }
                    | Event::Drained { .. }
            )
        })
        .collect();
    (!events.is_empty()).then(|| Decision::effects_only(events))
}

/// This member's view of a node, for etcd (none before its first probe).
pub fn view(config: &Config, engine: &Engine, id: NodeId) -> Option<Request> {
    let state = engine.node(id);
    if state.health == Health::Unknown {
        return None;
    }
    let (pool, node) = config.names(id);
    Some(Request::View(Box::new(NodeView {
        pool: pool.into(),
        node: node.into(),
        health: state.health,
        reason: (state.last.as_ref())
            .map(|o| o.detail.clone())
            .unwrap_or_default(),
        refused: state.health == Health::Down && state.last.as_ref().is_some_and(|o| o.refused),
        db: state.db.clone().filter(|_| state.health == Health::Up),
    })))
}

fn all_views(config: &Config, engine: &Engine) -> Vec<Request> {
    (config.pools.iter().enumerate())
        .flat_map(|(p, pool)| (0..pool.nodes.len()).map(move |n| NodeId::new(p, n)))
        .filter_map(|id| view(config, engine, id))
        .collect()
}

/// The local engine's drained and deposed flags follow the cluster's lists (for the
/// status and the log; the leader's engine decides with the same lists).
fn sync_drains(state: &State, cx: &mut Context) -> Option<Decision> {
    let mut events = Vec::new();
    for (p, pool) in cx.config.pools.iter().enumerate() {
        for (n, node) in pool.nodes.iter().enumerate() {
            let id = NodeId::new(p, n);
            let drained = is_drained(&state.drains, &pool.name, &node.name);
            if cx.engine.node(id).drained != drained {
                events.extend(cx.engine.set_drained(id, drained, cx.now));
            }
            let (deposed, demoting) = is_deposed(state, &pool.name, &node.name);
            if cx.engine.node(id).deposed != deposed {
                events.extend(cx.engine.set_deposed(id, deposed, demoting, cx.now));
            }
        }
    }
    observed(events)
}
