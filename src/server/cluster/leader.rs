//! The leader's engine: fed the merged views of the live members, it decides what the
//! cluster answers and proposes it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::context::{Context, is_deposed, is_drained};
use super::guard::Guard;
use crate::cluster::merge::{live_views, merge};
use crate::cluster::{Agreed, AgreedNode, AgreedRecord, State};
use crate::config::Config;
use crate::engine::{Answer, Engine, Event, NodeId, Observation, PoolId, RecordId};
use crate::server::decisions::{Decision, Route, fences};

/// The leader's engine, fed with the merged views.
pub(super) struct Leader {
    pub epoch: i64,
    engine: Engine,
    /// What the engine was last fed, per node.
    fed: HashMap<NodeId, Observation>,
    /// The last decision proposed, and when: the next continues its numbers while it is
    /// not yet seen agreed, for one lease at most (then etcd did not take it: the member
    /// writes a decision only after the one it follows, so the next is numbered after the
    /// agreed one again).
    proposed: Option<(Agreed, Instant)>,
    /// The rule that holds back a new writer (`guard.rs`).
    pub guard: Guard,
    /// When a held-back writer may be named: the leader decides again then.
    pub wake: Option<Instant>,
}

impl Leader {
    /// A new leadership: an engine that starts from the agreed answers, so that a new
    /// leader does not move an answer its merged views do not move.
    /// `local`: this member's own engine, whose last primary per pool the new engine
    /// knows from the start (`Engine::adopt_references`).
    pub fn new(epoch: i64, config: &Config, agreed: Option<&Agreed>, local: &Engine) -> Leader {
        let mut engine = Engine::new(&leader_config(config));
        engine.adopt_references(local);
        if let Some(agreed) = agreed {
            let by_name = agreed.by_name();
            for (r, record) in config.records.iter().enumerate() {
                if let Some(a) = by_name.get(record.name.as_str()) {
                    engine.assume(RecordId(r), local_answer(config, RecordId(r), &a.answer));
                }
            }
        }
        Leader {
            epoch,
            engine,
            fed: HashMap::new(),
            proposed: None,
            guard: Guard::new(config, agreed),
            wake: None,
        }
    }

    /// Feeds the engine the merged views (all again on `refresh`) and the drains; the
    /// decision to carry out, if any: fences, the events only the leader sees, and the
    /// answers to propose when they differ from the newest decision.
    pub fn decide(&mut self, state: &State, refresh: bool, cx: &Context) -> Option<Decision> {
        let config = cx.config;
        let events = self.feed(state, refresh, config, cx.now);
        let ready = (0..config.pools.len()).all(|p| self.engine.pool_ready(PoolId(p)));
        let mut records = agreed_records(config, &self.engine, state.decision.as_ref());
        self.guard.observe(state, config, cx.instant);
        let latest = self
            .latest(state.decision.as_ref(), cx)
            .map_or(0, |d| d.seq);
        self.wake = (self.guard).apply(&mut records, state, config, latest, cx.instant);
        let differs = self
            .latest(state.decision.as_ref(), cx)
            .is_none_or(|d| !same_answers(&d.records, &records));
        let changed = (events.iter()).any(|e| matches!(e, Event::AnswerChanged { .. }));
        let fences = fences(&events);
        // Only what the leader alone sees has effects here; answer changes have theirs on
        // every member when they are served.
        let events: Vec<Event> = (events.into_iter())
            .filter(|e| matches!(e, Event::SplitBrain { .. } | Event::Stale { .. }))
            .collect();
        let propose = (changed || differs) && (ready || state.decision.is_some());
        if !propose && events.is_empty() && fences.is_empty() {
            return None;
        }
        Some(Decision {
            fences,
            answers: None,
            events,
            holds: None,
            route: if propose {
                Route::Propose(records)
            } else {
                Route::Local
            },
        })
    }

    fn feed(&mut self, state: &State, refresh: bool, config: &Config, now: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        let members = config.cluster.as_ref().map_or(&[][..], |c| &c.members);
        for (p, pool) in config.pools.iter().enumerate() {
            for (n, node) in pool.nodes.iter().enumerate() {
                let id = NodeId::new(p, n);
                let key = format!("{}/{}", pool.name, node.name);
                let Some(observation) = merge(live_views(state, members, &key), members.len())
                else {
                    continue;
                };
                if refresh || self.fed.get(&id) != Some(&observation) {
                    events.extend(self.engine.observe(id, observation.clone(), now));
                    self.fed.insert(id, observation);
                }
                let drained = is_drained(&state.drains, &pool.name, &node.name);
                if self.engine.node(id).drained != drained {
                    events.extend(self.engine.set_drained(id, drained, now));
                }
                let (deposed, demoting) = is_deposed(state, &pool.name, &node.name);
                if self.engine.node(id).deposed != deposed {
                    events.extend(self.engine.set_deposed(id, deposed, demoting, now));
                }
            }
        }
        events
    }

    /// The engine that decides for the cluster (promotion asks it whom to promote).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The newest decision: agreed, or proposed by this leader and not yet seen agreed.
    fn latest<'a>(&'a self, agreed: Option<&'a Agreed>, cx: &Context) -> Option<&'a Agreed> {
        let lease = cx
            .config
            .cluster
            .as_ref()
            .map_or(Duration::ZERO, |c| c.lease);
        let proposed = (self.proposed.as_ref())
            .filter(|(_, at)| cx.instant < *at + lease)
            .map(|(p, _)| p);
        match (agreed, proposed) {
            (Some(a), Some(p)) if p.seq > a.seq => Some(p),
            (None, Some(p)) => Some(p),
            (a, _) => a,
        }
    }

    /// `records` as the next decision, numbered after the newest one; `None` when it
    /// answers the same. The first decision's serial comes after every zone's current one
    /// (RFC 1982: a date-style file serial is above the Unix time, a wrapped one below it),
    /// so that each decision moves every serial.
    pub fn number(
        &mut self,
        records: Vec<AgreedRecord>,
        agreed: Option<&Agreed>,
        name: &str,
        digest: &str,
        cx: &Context,
    ) -> Option<Agreed> {
        let latest = self.latest(agreed, cx);
        if latest.is_some_and(|d| same_answers(&d.records, &records)) {
            return None;
        }
        let (seq, serial) = match latest {
            Some(d) => (d.seq + 1, crate::dns::serial_next(d.serial)),
            None => {
                let now = (cx.unix_ms / 1000) as u32;
                (
                    1,
                    crate::dns::serial_beyond(now, cx.serials.iter().copied()),
                )
            }
        };
        let decision = Agreed {
            leader: name.into(),
            epoch: self.epoch,
            seq,
            serial,
            decided_ms: cx.unix_ms,
            digest: digest.into(),
            records,
        };
        self.proposed = Some((decision.clone(), cx.instant));
        Some(decision)
    }
}

/// The leader's engine works on views to which each member applied its own rise and fall
/// already: it takes a majority's word at once.
fn leader_config(config: &Config) -> Config {
    let mut config = config.clone();
    for pool in &mut config.pools {
        pool.rise = 1;
        pool.fall = 1;
    }
    config
}

/// The same answers for the same records (the reasons may differ: a new leader words
/// them after its own merge).
fn same_answers(a: &[AgreedRecord], b: &[AgreedRecord]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a.name == b.name && a.answer == b.answer && a.sites == b.sites)
}

/// The leader engine's answers, by record name (a `by_site` record's per site too); a
/// record whose pool has not completed its first merged round keeps its agreed answer.
fn agreed_records(config: &Config, engine: &Engine, agreed: Option<&Agreed>) -> Vec<AgreedRecord> {
    let before = agreed.map(|a| a.by_name());
    (config.records.iter().enumerate())
        .map(|(r, record)| {
            let id = RecordId(r);
            if *engine.answer(id) == Answer::Pending
                && let Some(kept) = before.as_ref().and_then(|b| b.get(record.name.as_str()))
            {
                return (*kept).clone();
            }
            let pool = config.record_pool(id);
            let answers = engine.sited(config, id).map(|&n| AgreedNode {
                node: pool.nodes[n].name.clone(),
                address: pool.nodes[n].address,
            });
            let (_, reason) = engine.answer_changed(id);
            AgreedRecord::new(&record.name, answers, &config.sites, reason)
        })
        .collect()
}

/// An agreed answer as the running configuration's node positions (nodes it does not
/// have are left out: a configuration that differs is reported, not guessed at).
pub(super) fn local_answer(
    config: &Config,
    record: RecordId,
    answer: &Answer<AgreedNode>,
) -> Answer {
    let pool = config.record_pool(record);
    answer.filter_map(|a| pool.nodes.iter().position(|n| n.name == a.node))
}
