//! Pure health and selection decisions: no IO, no clock.
//!
//! The engine is fed [`Observation`]s, each at a virtual time `now` (time since start),
//! and returns the [`Event`]s they cause. It keeps rise/fall hysteresis per node and the
//! current [`Answer`] per record; `select.rs` holds the selectors and the rules that keep
//! a `primary` record from ever naming two nodes. Same inputs, same decisions: it is
//! tested with transcripts of observations at virtual times (`tests.rs`).

mod answer;
mod event;
mod gtid;
mod inputs;
mod node;
mod promote;
#[cfg(test)]
mod promote_tests;
mod replica_select;
mod replicas;
mod select;
mod sites;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::Duration;

pub use crate::api::id::{NodeId, PoolId, RecordId};
pub use crate::api::status::Health;
pub use answer::{Answer, Sited};
pub use event::Event;
pub use gtid::{Gtid, mariadb_gtids};
pub use inputs::{DbStatus, Observation};
pub use node::NodeState;
pub use promote::{Ask, Plan, Verdict};
pub use replicas::{Lag, Replication};

use crate::config::{Check, Config, MaxLag, OnEmpty, Select};

struct PoolSpec {
    rise: u32,
    fall: u32,
    node_names: Vec<String>,
    /// Node indices, highest priority first; ties keep config order.
    by_priority: Vec<usize>,
    fencing: bool,
    /// Each node's address and port, to match a replica's source with the primary.
    addresses: Vec<(IpAddr, u16)>,
    /// What a position counts: `bytes` (PostgreSQL) or `transactions` (MySQL).
    unit: &'static str,
}

struct RecordSpec {
    pool: usize,
    select: Select,
    failback: bool,
    on_empty: OnEmpty,
    max_lag: Option<MaxLag>,
    max_stale: Duration,
}

struct RecordState {
    answer: Answer,
    /// When the answer last changed, and why.
    changed_at: Duration,
    reason: String,
    /// Since when no node of the pool could be reached while the answer was kept.
    stale_since: Option<Duration>,
    /// The answer is `on_empty`'s (`all` gives nodes too): nothing of it is kept as stale.
    from_on_empty: bool,
    /// Per node of the pool: over `max_lag` (hysteresis: back under half of it to return).
    lagging: Vec<bool>,
    /// Per node of the pool, for `replicas`: why it is not a fresh replica.
    unfit: Vec<Option<String>>,
    /// The writable nodes of the split brain last reported; empty when there is none.
    split_brain: Vec<usize>,
}

pub struct Engine {
    pools: Vec<PoolSpec>,
    records: Vec<RecordSpec>,
    /// Per pool, the records answered from it.
    pool_records: Vec<Vec<usize>>,
    nodes: Vec<Vec<NodeState>>,
    /// Per pool: every node has completed a probe once (stays set across reloads).
    ready: Vec<bool>,
    state: Vec<RecordState>,
    /// Per pool: the primary its replicas are compared with.
    references: Vec<Option<replicas::Reference>>,
}

impl Engine {
    pub fn new(config: &Config) -> Engine {
        let pools = config
            .pools
            .iter()
            .map(|p| {
                let mut by_priority: Vec<usize> = (0..p.nodes.len()).collect();
                by_priority.sort_by_key(|&i| std::cmp::Reverse(p.nodes[i].priority));
                PoolSpec {
                    rise: p.rise,
                    fall: p.fall,
                    node_names: p.nodes.iter().map(|n| n.name.clone()).collect(),
                    by_priority,
                    fencing: p.fence.is_enabled(),
                    addresses: p
                        .nodes
                        .iter()
                        .map(|n| (n.address, n.port.or(p.check.default_port()).unwrap_or(0)))
                        .collect(),
                    unit: match p.check {
                        Check::Mysql(_) => "transactions",
                        _ => "bytes",
                    },
                }
            })
            .collect();
        let records = config
            .records
            .iter()
            .map(|r| RecordSpec {
                pool: r.pool.0,
                select: r.select,
                failback: r.failback,
                on_empty: r.on_empty,
                max_lag: r.max_lag,
                max_stale: r.max_stale,
            })
            .collect();
        let nodes = config
            .pools
            .iter()
            .map(|p| p.nodes.iter().map(|_| NodeState::new()).collect())
            .collect();
        let state = config
            .records
            .iter()
            .map(|r| RecordState {
                answer: Answer::Pending,
                changed_at: Duration::ZERO,
                reason: "first round of checks not complete".into(),
                stale_since: None,
                from_on_empty: false,
                lagging: vec![false; config.pools[r.pool.0].nodes.len()],
                unfit: vec![None; config.pools[r.pool.0].nodes.len()],
                split_brain: Vec::new(),
            })
            .collect();
        let mut pool_records = vec![Vec::new(); config.pools.len()];
        for (i, r) in config.records.iter().enumerate() {
            pool_records[r.pool.0].push(i);
        }
        Engine {
            pools,
            records,
            pool_records,
            ready: vec![false; config.pools.len()],
            nodes,
            state,
            references: vec![None; config.pools.len()],
        }
    }

    /// The engine for a reloaded `config`, carrying over what the old one knew: `kept(p, n)`
    /// names the old `(pool, node)` that node `n` of pool `p` continues (same checker, so
    /// the same health), `record_was(r)` the old record that record `r` continues (same
    /// name and pool). Answers of ready pools are recomputed at once: the events say what
    /// changed.
    pub fn reloaded(
        config: &Config,
        old: &Engine,
        kept: impl Fn(usize, usize) -> Option<(usize, usize)>,
        record_was: impl Fn(usize) -> Option<usize>,
        now: Duration,
    ) -> (Engine, Vec<Event>) {
        let mut engine = Engine::new(config);
        // old (pool, node) -> new node index, per new pool.
        let mut continues: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); config.pools.len()];
        for (p, pool) in config.pools.iter().enumerate() {
            let mut old_pool = None;
            for n in 0..pool.nodes.len() {
                if let Some((op, on)) = kept(p, n) {
                    engine.nodes[p][n] = old.nodes[op][on].clone();
                    continues[p].push((op, on, n));
                    old_pool = Some(op);
                }
            }
            engine.ready[p] = old_pool.is_some_and(|op| old.ready[op]);
            // The primary's history goes on while the reference node continues.
            engine.references[p] = old_pool.and_then(|op| {
                let mut reference = old.references[op].clone()?;
                let (_, _, n) = continues[p]
                    .iter()
                    .find(|(_, on, _)| *on == reference.node)?;
                reference.node = *n;
                Some(reference)
            });
        }
        for r in 0..config.records.len() {
            let Some(or) = record_was(r) else { continue };
            let p = engine.records[r].pool;
            let map = |old_node: usize| {
                continues[p]
                    .iter()
                    .find(|(_, on, _)| *on == old_node)
                    .map(|(_, _, n)| *n)
            };
            let old_state = &old.state[or];
            let state = &mut engine.state[r];
            state.answer = match &old_state.answer {
                // None of the answered nodes is left: a pool whose nodes were all replaced
                // is not ready, and answers SERVFAIL until its first round, as at start.
                Answer::Nodes(nodes) => match nodes.iter().filter_map(|&n| map(n)).collect() {
                    nodes if Vec::is_empty(&nodes) => Answer::Pending,
                    nodes => Answer::Nodes(nodes),
                },
                other => other.clone(),
            };
            state.changed_at = old_state.changed_at;
            state.reason = old_state.reason.clone();
            state.stale_since = old_state.stale_since;
            state.from_on_empty = old_state.from_on_empty;
            state.split_brain = old_state
                .split_brain
                .iter()
                .filter_map(|&n| map(n))
                .collect();
            for (on, lagging) in old_state.lagging.iter().enumerate() {
                if let Some(n) = map(on) {
                    state.lagging[n] = *lagging;
                    state.unfit[n] = old_state.unfit[on].clone();
                }
            }
        }
        let mut events = Vec::new();
        for p in 0..config.pools.len() {
            if engine.ready[p] {
                events.extend(engine.update_pool(p, now, "configuration reloaded"));
            }
        }
        (engine, events)
    }

    /// Takes `answer` as the record's current answer (a new cluster leader continues the
    /// agreed answers), so that `failback = false` and the split-brain tie rule keep it. The
    /// next change of the record's pool recomputes it; nothing else changes.
    pub fn assume(&mut self, record: RecordId, answer: Answer) {
        self.state[record.0].answer = answer;
    }

    pub fn answer(&self, record: RecordId) -> &Answer {
        &self.state[record.0].answer
    }

    /// Since when the record's answer has been kept without any reachable node.
    pub fn stale_since(&self, record: RecordId) -> Option<Duration> {
        self.state[record.0].stale_since
    }

    pub fn node(&self, node: NodeId) -> &NodeState {
        &self.nodes[node.pool.0][node.index]
    }

    /// When the record's answer last changed, and why.
    pub fn answer_changed(&self, record: RecordId) -> (Duration, &str) {
        let state = &self.state[record.0];
        (state.changed_at, &state.reason)
    }

    /// The writable nodes of the record's current split brain; empty when there is none.
    pub fn split_brain(&self, record: RecordId) -> &[usize] {
        &self.state[record.0].split_brain
    }

    /// A pool is ready once every node has completed one probe. It stays ready across a
    /// reload that adds nodes: they are simply not answered until their first probe.
    pub fn pool_ready(&self, pool: PoolId) -> bool {
        self.ready[pool.0]
    }

    /// Drains (`true`) or undrains a node: a drained node leaves every answer at once but
    /// is still checked, so undraining it restores what its health allows.
    pub fn set_drained(&mut self, id: NodeId, drained: bool, now: Duration) -> Vec<Event> {
        let (pool, node) = (id.pool.0, id.index);
        let state = &mut self.nodes[pool][node];
        if state.drained == drained {
            return Vec::new();
        }
        state.drained = drained;
        let name = &self.pools[pool].node_names[node];
        let why = format!(
            "{name} {} by an operator",
            if drained { "drained" } else { "undrained" }
        );
        let mut events = vec![Event::Drained { node: id, drained }];
        if self.ready[pool] {
            events.extend(self.update_pool(pool, now, &why));
        }
        events
    }

    /// Why node `node` is not answered by the `replicas` record `record`, if it is not.
    pub fn unfit(&self, record: RecordId, node: usize) -> Option<&str> {
        self.state[record.0].unfit[node].as_deref()
    }

    /// How far node `node` of `pool` is behind the primary its replicas are compared with.
    pub fn replica_lag(&self, node: NodeId, now: Duration) -> Option<Lag> {
        let (pool, node) = (node.pool.0, node.index);
        let state = &self.nodes[pool][node];
        let db = state.db.as_ref()?;
        self.references[pool]
            .as_ref()?
            .lag(db.position?, db.gtid.as_ref(), state.last_at, now)
            .ok()
    }

    /// Recomputes cluster identities and every answer of a ready pool: `primary` records
    /// first, so that replicas are compared with the primary just decided.
    fn update_pool(&mut self, pool: usize, now: Duration, why: &str) -> Vec<Event> {
        let mut events = self.update_clusters(pool);
        let records = self.pool_records[pool].clone();
        let (primary, others): (Vec<usize>, Vec<usize>) = records
            .into_iter()
            .partition(|&r| self.records[r].select == Select::Primary);
        for record in primary {
            events.extend(self.update_record(record, now, why));
        }
        self.update_reference(pool);
        for record in others {
            events.extend(self.update_record(record, now, why));
        }
        events
    }

    /// Whether some record of the pool has no answer, or a stale one: its nodes are then
    /// probed at the pool's fast interval until it has one again.
    pub fn pool_degraded(&self, pool: PoolId) -> bool {
        self.pool_records[pool.0].iter().any(|&r| {
            let state = &self.state[r];
            !matches!(state.answer, Answer::Nodes(_)) || state.stale_since.is_some()
        })
    }

    /// Feeds one probe result of node `node` of pool `pool`, observed at `now`.
    pub fn observe(&mut self, id: NodeId, obs: Observation, now: Duration) -> Vec<Event> {
        let (pool, node) = (id.pool.0, id.index);
        let spec = &self.pools[pool];
        let state = &mut self.nodes[pool][node];
        let from = state.health;
        if obs.ok {
            state.successes += 1;
            state.failures = 0;
        } else {
            state.failures += 1;
            state.successes = 0;
        }
        // The first probe decides at once: a node is neither assumed up nor down at start.
        let to = match (from, obs.ok) {
            (Health::Unknown, true) => Health::Up,
            (Health::Unknown, false) => Health::Down,
            (Health::Down, true) if state.successes >= spec.rise => Health::Up,
            (Health::Up, false) if obs.conclusive || state.failures >= spec.fall => Health::Down,
            (h, _) => h,
        };
        if obs.ok {
            state.db = obs.db.clone();
            if !obs.db.as_ref().is_some_and(|d| d.writable) {
                state.fenced = false;
            }
        }
        let name = &spec.node_names[node];
        let why = if to != from {
            format!("{name} {to}: {}", obs.detail)
        } else {
            format!("{name}: {}", obs.detail)
        };
        let mut events = Vec::new();
        if to != from {
            state.health = to;
            state.since = now;
            events.push(Event::NodeChanged {
                node: id,
                from,
                to,
                reason: obs.detail.clone(),
            });
        }
        state.last = Some(obs);
        state.last_at = now;
        if !self.ready[pool] {
            self.ready[pool] = self.nodes[pool].iter().all(|n| n.health != Health::Unknown);
        }
        if self.ready[pool] {
            events.extend(self.update_pool(pool, now, &why));
        }
        events
    }
}
