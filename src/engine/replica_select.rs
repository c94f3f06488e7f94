//! The `replicas` selector: the healthy read-only nodes that replicate from the pool's
//! primary within `max_lag` (`replicas.rs` says how a lag is measured).

use std::time::Duration;

use super::replicas::{Lag, Reference};
use super::select::Choice;
use super::{Answer, Engine};
use crate::config::{MaxLag, Select};

impl Engine {
    /// The pool's primary now: what its `primary` record answers (or, without one, its
    /// only writable node).
    pub fn primary(&self, pool: super::PoolId) -> Option<usize> {
        self.reference_node(pool.0)
    }

    /// The node replicas are compared with: the node the pool's `primary` record answers,
    /// or, in a pool without one, its only writable node.
    fn reference_node(&self, pool: usize) -> Option<usize> {
        let primary = self.pool_records[pool]
            .iter()
            .find(|&&r| self.records[r].select == Select::Primary);
        match primary {
            Some(&r) => match &self.state[r].answer {
                Answer::Nodes(n) if n.len() == 1 => Some(n[0]),
                _ => None,
            },
            None => {
                let nodes = &self.nodes[pool];
                let mut writable = (0..nodes.len()).filter(|&i| nodes[i].writable());
                match (writable.next(), writable.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }

    /// Takes `from`'s last primary (its positions, its last database status) for each
    /// pool that has none here: a new cluster leader's engine starts from what this member
    /// saw itself, so that a primary that failed before this member led (its data centre
    /// cut off with the old leader, say) is still known, and its replicas can be compared
    /// with it and promoted. The two engines must run the same configuration.
    pub fn adopt_references(&mut self, from: &Engine) {
        for (p, theirs) in from.references.iter().enumerate() {
            let Some(reference) = theirs.as_ref().filter(|_| self.references[p].is_none()) else {
                continue;
            };
            let node = &mut self.nodes[p][reference.node];
            if node.db.is_none() {
                node.db.clone_from(&from.nodes[p][reference.node].db);
            }
            self.references[p] = Some(reference.clone());
        }
    }

    /// Records the reference primary's latest observation, or that there is none now.
    pub(super) fn update_reference(&mut self, pool: usize) {
        let Some(node) = self.reference_node(pool) else {
            if let Some(reference) = &mut self.references[pool] {
                reference.current = false;
            }
            return;
        };
        let state = &self.nodes[pool][node];
        // A failed probe (not yet enough to take the node down) tells nothing new.
        let fresh = state.last.as_ref().is_some_and(|o| o.ok);
        let (position, gtid) = state
            .db
            .as_ref()
            .map(|d| (d.position, d.gtid.clone()))
            .unwrap_or_default();
        let server = state.db.as_ref().and_then(|d| d.server.clone());
        match &mut self.references[pool] {
            Some(reference) if reference.node == node => {
                if fresh {
                    reference.observe(state.last_at, position, gtid)
                } else {
                    reference.current = true;
                }
            }
            slot => *slot = Some(Reference::new(node, state.last_at, position, gtid)),
        }
        if let Some(reference) = &mut self.references[pool]
            && server.is_some()
        {
            reference.server = server;
        }
    }

    /// Why node `i` of `pool` is not a replica of the reference primary (it does not
    /// replicate, or from elsewhere, or cannot be compared); else its lag.
    fn compare_replica(&self, pool: usize, i: usize, now: Duration) -> Result<Lag, String> {
        let spec = &self.pools[pool];
        let node = &self.nodes[pool][i];
        let db = node.db.as_ref().ok_or("no database status")?;
        let reference = self.references[pool]
            .as_ref()
            .ok_or("no primary has been seen since hadns started: nothing to compare with")?;
        let primary = &spec.node_names[reference.node];
        // With the primary gone, no replica can stream from it: positions alone decide.
        if reference.current && reference.node != i {
            let replication = db
                .replication
                .as_ref()
                .ok_or_else(|| format!("does not replicate (the primary is {primary})"))?;
            if !replication.running {
                return Err(format!(
                    "replication is not running ({})",
                    replication.state
                ));
            }
            let (address, port) = spec.addresses[reference.node];
            if !(replication.source_addresses.contains(&address)
                && replication.source_port == Some(port))
            {
                return Err(format!(
                    "replicates from {}, not from the primary {primary} ({})",
                    replication.source(),
                    std::net::SocketAddr::new(address, port)
                ));
            }
        }
        let position = db.position.ok_or("reports no position to compare")?;
        reference.lag(position, db.gtid.as_ref(), node.last_at, now)
    }

    pub(super) fn select_replicas(&mut self, record: usize, now: Duration) -> Choice {
        let spec = &self.records[record];
        let pool = spec.pool;
        let max_lag = spec.max_lag;
        let mut chosen = Vec::new();
        let mut reason = None;
        for i in 0..self.nodes[pool].len() {
            let node = &self.nodes[pool][i];
            if !(node.eligible() && node.db.as_ref().is_some_and(|d| !d.writable)) {
                // Down, drained or writable: not a replica at all, and no reason to show.
                self.state[record].unfit[i] = None;
                continue;
            }
            let name = self.pools[pool].node_names[i].clone();
            let unit = self.pools[pool].unit;
            let compared = self.compare_replica(pool, i, now);
            let state = &mut self.state[record];
            let verdict = match (compared, max_lag) {
                (Err(why), _) => Err(why),
                (Ok(_), None) => Ok(()),
                (Ok(lag), Some(max)) => {
                    let (over, under_half, shown) = match max {
                        MaxLag::Bytes(max) | MaxLag::Transactions(max) => (
                            lag.behind > max,
                            lag.behind <= max / 2,
                            format!("{} {unit}", lag.behind),
                        ),
                        MaxLag::Time(max) => (
                            lag.time > max,
                            lag.time <= max / 2,
                            format!("{:.1}s", lag.time.as_secs_f64()),
                        ),
                    };
                    let was = state.lagging[i];
                    state.lagging[i] = if was { !under_half } else { over };
                    if state.lagging[i] {
                        Err(format!("lags {shown}, over max_lag"))
                    } else {
                        if was {
                            reason = Some(format!("{name} caught up (lag {shown})"));
                        }
                        Ok(())
                    }
                }
            };
            let unfit = verdict.err();
            if unfit != state.unfit[i] {
                if let Some(why) = &unfit {
                    reason = Some(format!("{name} {why}"));
                } else if reason.is_none() {
                    reason = Some(format!("{name} is a fresh replica again"));
                }
                state.unfit[i] = unfit.clone();
            }
            if unfit.is_none() {
                chosen.push(i);
            }
        }
        Choice {
            nodes: chosen,
            split_brain: None,
            reason,
        }
    }
}
