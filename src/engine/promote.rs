//! Whether to promote a replica of a pool, and which (pure; `server::promotion` carries
//! it out).
//!
//! **When**: the primary replicas were last compared with is down (by rise/fall, after a
//! refusal at once), no other node is writable, and no replica still receives from it
//! (orchestrator's "holistic" rule: a replica connected to the primary proves it alive,
//! whatever hadns's own probes say). **Whom**: among healthy read-only replicas of that
//! primary that may be promoted, on its timeline (PostgreSQL) and with no transaction it
//! never had (MySQL/MariaDB errant GTIDs), the one that *received* the most, within
//! `max_lag` of the primary's last seen position; ties by priority, then config order.

use std::time::Duration;

use super::{Engine, Event, Health, NodeId, PoolId};
use crate::config::{MaxLag, Pool};

/// What the engine says about promoting in a pool.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing to do, and why (there is a primary; it is only read-only; a replica still
    /// receives from it; ...).
    Idle(String),
    /// Promote `candidate` in place of `old`.
    Promote(Plan),
    /// The primary is down but no replica may be promoted, and why.
    Refused(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The old primary (down for a failover; up and writable for a switchover).
    pub old: usize,
    pub candidate: usize,
    /// The old primary is up and writable: demote it first, lose nothing.
    pub switchover: bool,
    /// How far the candidate's received position was behind the old primary when it was
    /// last seen (failover): what may be lost, as far as hadns saw.
    pub behind: Option<String>,
    /// The other replicas to repoint at the candidate.
    pub others: Vec<usize>,
}

/// What an operator asked for (`hadns promote POOL [NODE] [--allow-data-loss]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask {
    pub node: Option<usize>,
    /// Promote past `max_lag` and past a replica that still receives from the primary.
    pub allow_data_loss: bool,
}

impl Engine {
    /// Marks a node replaced by a promotion (or no longer): a deposed node is never
    /// answered and is fenced whenever it is writable. `fencing`: the caller fences it
    /// now (a switchover's demotion), so this writable episode asks for no other fence.
    pub fn set_deposed(
        &mut self,
        id: NodeId,
        deposed: bool,
        fencing: bool,
        now: Duration,
    ) -> Vec<Event> {
        let (pool, node) = (id.pool.0, id.index);
        let state = &mut self.nodes[pool][node];
        if state.deposed == deposed {
            return Vec::new();
        }
        state.deposed = deposed;
        state.fenced = fencing;
        let name = &self.pools[pool].node_names[node];
        let why = if deposed {
            format!("{name} was replaced by a promotion")
        } else {
            format!("{name} is no longer set aside after a promotion")
        };
        if self.ready[pool] {
            return self.update_pool(pool, now, &why);
        }
        Vec::new()
    }

    /// Whether node `node` replicates, running, from the node its pool's `primary`
    /// record answers.
    pub fn follows_primary(&self, node: NodeId) -> bool {
        let p = node.pool.0;
        let Some(primary) = self.references[p].as_ref().filter(|r| r.current) else {
            return false;
        };
        self.nodes[p][node.index].health == Health::Up
            && self.replicates_from(p, node.index, primary.node, |r| r.running)
    }

    /// Whether to promote in `pool` now (`config` is the pool's configuration); `ask`:
    /// an operator's command instead of the automatic rule.
    pub fn promotion(&self, pool: PoolId, config: &Pool, ask: Option<Ask>) -> Verdict {
        let p = pool.0;
        let names = &self.pools[p].node_names;
        if !self.ready[p] {
            return Verdict::Idle("first round of checks not complete".into());
        }
        let nodes = &self.nodes[p];
        let writable: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].writable()).collect();
        let old = self.references[p].as_ref().map(|r| r.node);
        match (ask, writable.as_slice()) {
            (None, [w, ..]) => {
                return Verdict::Idle(format!("{} is writable", names[*w]));
            }
            (Some(_), [w]) if Some(*w) == old || old.is_none() => {
                return self.choose(p, config, *w, ask, true);
            }
            (Some(_), [_, ..]) => {
                let list: Vec<&str> = writable.iter().map(|&i| names[i].as_str()).collect();
                return Verdict::Refused(format!(
                    "{} writable: no switchover until one primary is answered",
                    list.join(", ")
                ));
            }
            _ => {}
        }
        let Some(old) = old else {
            return Verdict::Idle("no primary has been seen since hadns started".into());
        };
        let state = &nodes[old];
        if state.health != Health::Down {
            return Verdict::Idle(format!(
                "the primary {} is {} (read-only or not yet down): not replaced",
                names[old], state.health
            ));
        }
        let allow = ask.is_some_and(|a| a.allow_data_loss);
        if !allow && let Some(witness) = self.receiving_from(p, old) {
            return Verdict::Idle(format!(
                "{} still receives from the primary {}: it is alive for its replicas",
                names[witness], names[old]
            ));
        }
        self.choose(p, config, old, ask, false)
    }

    /// A replica whose replication is connected to node `old`, if any.
    fn receiving_from(&self, p: usize, old: usize) -> Option<usize> {
        (0..self.nodes[p].len()).find(|&i| {
            i != old
                && self.nodes[p][i].health == Health::Up
                && self.replicates_from(p, i, old, |r| r.receiving)
        })
    }

    /// Whether node `i` is configured to replicate from node `source`, and `test` holds
    /// for its replication.
    pub(super) fn replicates_from(
        &self,
        p: usize,
        i: usize,
        source: usize,
        test: impl Fn(&super::Replication) -> bool,
    ) -> bool {
        let (address, port) = self.pools[p].addresses[source];
        self.nodes[p][i]
            .db
            .as_ref()
            .and_then(|d| d.replication.as_ref())
            .is_some_and(|r| {
                r.source_addresses.contains(&address) && r.source_port == Some(port) && test(r)
            })
    }

    /// The candidate among the replicas of `old`, or why there is none.
    fn choose(
        &self,
        p: usize,
        config: &Pool,
        old: usize,
        ask: Option<Ask>,
        switchover: bool,
    ) -> Verdict {
        let names = &self.pools[p].node_names;
        let mut fit = Vec::new();
        let mut unfit = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if i == old || ask.and_then(|a| a.node).is_some_and(|n| n != i) {
                continue;
            }
            match self.candidate(p, config, old, i, ask, switchover) {
                Ok((received, behind)) => fit.push((i, received, behind)),
                Err(why) => unfit.push(format!("{name}: {why}")),
            }
        }
        // The most received first; then priority, then config order.
        fit.sort_by_key(|&(i, received, _)| {
            (
                std::cmp::Reverse(received),
                std::cmp::Reverse(config.nodes[i].priority),
                i,
            )
        });
        let Some((candidate, _, behind)) = fit.first().cloned() else {
            let why = if unfit.is_empty() {
                "no other node".to_string()
            } else {
                unfit.join("; ")
            };
            return Verdict::Refused(format!(
                "no replica of {} can be promoted: {why}",
                names[old]
            ));
        };
        let others = (0..self.nodes[p].len())
            .filter(|&i| i != old && i != candidate && self.nodes[p][i].health == Health::Up)
            .filter(|&i| self.nodes[p][i].db.as_ref().is_some_and(|d| !d.writable))
            .collect();
        Verdict::Promote(Plan {
            old,
            candidate,
            switchover,
            behind,
            others,
        })
    }

    /// Node `i` as a candidate in place of `old`: its received position and what it
    /// misses, or why it may not be promoted.
    fn candidate(
        &self,
        p: usize,
        config: &Pool,
        old: usize,
        i: usize,
        ask: Option<Ask>,
        switchover: bool,
    ) -> Result<(u64, Option<String>), String> {
        let node = &self.nodes[p][i];
        let old_state = &self.nodes[p][old];
        if !config.nodes[i].promote {
            return Err("promote = false".into());
        }
        if node.health != Health::Up {
            return Err(format!("{}", node.health));
        }
        if let Some(cluster) = &node.excluded {
            return Err(format!("of another cluster ({cluster})"));
        }
        if node.drained {
            return Err("drained".into());
        }
        let db = node.db.as_ref().ok_or("no database status")?;
        if db.writable {
            return Err("writable".into());
        }
        if !self.replicates_from(p, i, old, |_| true) {
            return Err(format!(
                "does not replicate from {}",
                self.pools[p].node_names[old]
            ));
        }
        let primary = old_state
            .db
            .as_ref()
            .ok_or("the primary's last status is unknown")?;
        if let (Some(mine), Some(theirs)) = (db.timeline, primary.timeline)
            && mine != theirs
        {
            return Err(format!("on timeline {mine}, the primary on {theirs}"));
        }
        if let (Some(mine), Some(theirs)) = (&db.received_gtid, &primary.gtid)
            && let Some(errant) = mine.errant(theirs, primary.server.as_deref())
        {
            return Err(format!(
                "has transactions the primary never had (errant GTID {errant})"
            ));
        }
        let received = db.received.or(db.position).ok_or("reports no position")?;
        if switchover {
            return Ok((received, None));
        }
        let unit = self.pools[p].unit;
        let lag = self.references[p]
            .as_ref()
            .and_then(|r| r.lost_at_promotion(received));
        let behind = lag.map(|l| {
            format!(
                "{} {unit} ({:.1}s) behind the primary's last seen position",
                l.behind,
                l.time.as_secs_f64()
            )
        });
        let over = match (config.promote.max_lag, lag) {
            (Some(MaxLag::Bytes(max) | MaxLag::Transactions(max)), Some(l)) => l.behind > max,
            (Some(MaxLag::Time(max)), Some(l)) => l.time > max,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if over && !ask.is_some_and(|a| a.allow_data_loss) {
            return Err(format!(
                "{} over max_lag",
                behind.unwrap_or_else(|| "lag unknown".into())
            ));
        }
        Ok((received, behind))
    }
}
