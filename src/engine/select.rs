//! Selectors, cluster identity, split-brain rules, staleness and fencing decisions.
//!
//! Never two primaries: a `primary` record answers at most one node. Nodes whose cluster
//! identity differs from the pool's are left out; of several writable nodes the newest
//! timeline wins; a tie keeps the published node if it is still writable, else nothing.

use std::collections::HashMap;
use std::time::Duration;

use super::{Answer, Engine, Event, NodeId, RecordId};
use crate::config::{OnEmpty, Select};

/// What a record answers next.
enum Next {
    /// This answer (it may be the one it has), and why.
    Answer(Answer, String),
    /// The last answer is kept as stale; the event when it starts being kept.
    Keep(Option<Event>),
}

/// A selector's choice, and the split brain it resolved if there was one.
pub(super) struct Choice {
    pub(super) nodes: Vec<usize>,
    pub(super) split_brain: Option<(Vec<usize>, String)>,
    /// Overrides the observation's reason when the selector knows better (lag).
    pub(super) reason: Option<String>,
}

impl Choice {
    fn plain(nodes: Vec<usize>) -> Choice {
        Choice {
            nodes,
            split_brain: None,
            reason: None,
        }
    }
}

impl Engine {
    /// Marks nodes whose cluster identity differs from the pool's majority as excluded.
    /// A tie is broken by the identity of a node a record currently answers; without one,
    /// every node involved in the disagreement is left out.
    pub(super) fn update_clusters(&mut self, pool: usize) -> Vec<Event> {
        let nodes = &self.nodes[pool];
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for n in nodes.iter().filter(|n| n.health == super::Health::Up) {
            if let Some(c) = n.db.as_ref().and_then(|d| d.cluster.as_deref()) {
                *counts.entry(c).or_default() += 1;
            }
        }
        let best = counts.values().copied().max().unwrap_or(0);
        let leaders: Vec<&str> = counts
            .iter()
            .filter(|(_, n)| **n == best)
            .map(|(c, _)| *c)
            .collect();
        let expected: Option<String> = match leaders.as_slice() {
            [] => None,
            [one] => Some(one.to_string()),
            _ => self
                .published_nodes(pool)
                .into_iter()
                .filter_map(|i| nodes[i].db.as_ref().and_then(|d| d.cluster.clone()))
                .find(|c| leaders.contains(&c.as_str())),
        };
        let disagreement = counts.len() > 1;
        let mut events = Vec::new();
        for (i, node) in self.nodes[pool].iter_mut().enumerate() {
            let cluster = node.db.as_ref().and_then(|d| d.cluster.clone());
            let excluded = match (&cluster, &expected) {
                (Some(c), Some(e)) if c != e => cluster.clone(),
                (Some(_), None) if disagreement => cluster.clone(),
                _ => None,
            };
            if excluded != node.excluded {
                match &excluded {
                    Some(c) => events.push(Event::ClusterMismatch {
                        node: NodeId::new(pool, i),
                        cluster: c.clone(),
                        expected: expected.clone(),
                    }),
                    None => events.push(Event::ClusterRejoined {
                        node: NodeId::new(pool, i),
                    }),
                }
                node.excluded = excluded;
            }
        }
        events
    }

    /// Nodes that some record of `pool` answers right now.
    fn published_nodes(&self, pool: usize) -> Vec<usize> {
        self.records
            .iter()
            .zip(&self.state)
            .filter(|(spec, _)| spec.pool == pool)
            .flat_map(|(_, state)| match &state.answer {
                Answer::Nodes(n) => n.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// Recomputes one record's answer at `now`; `why` is the observation that prompted it.
    pub(super) fn update_record(&mut self, record: usize, now: Duration, why: &str) -> Vec<Event> {
        let choice = match self.records[record].select {
            Select::First => self.select_first(record),
            Select::Healthy => self.select_healthy(record),
            Select::Primary => self.select_primary(record),
            Select::Replicas => self.select_replicas(record, now),
        };
        let mut events: Vec<Event> = self.note_split_brain(record, &choice).into_iter().collect();
        let (to, mut reason) = match self.next_answer(record, &choice, now, why) {
            Next::Answer(to, reason) => (to, reason),
            Next::Keep(stale) => {
                events.extend(stale);
                return events;
            }
        };
        let spec = &self.records[record];
        if self.pools[spec.pool].fencing && spec.select == Select::Primary {
            events.extend(self.fence_losers(record, &to));
        }
        let state = &mut self.state[record];
        if to != state.answer {
            let from = std::mem::replace(&mut state.answer, to.clone());
            if from == Answer::Pending {
                reason = format!("first round of checks complete ({reason})");
            }
            state.changed_at = now;
            state.reason = reason.clone();
            events.push(Event::AnswerChanged {
                record: RecordId(record),
                from,
                to,
                reason,
            });
        }
        events
    }

    /// Remembers the writable nodes of a split brain; an event when they changed to some.
    fn note_split_brain(&mut self, record: usize, choice: &Choice) -> Option<Event> {
        let state = &mut self.state[record];
        let writable = choice
            .split_brain
            .as_ref()
            .map(|(w, _)| w.clone())
            .unwrap_or_default();
        if writable == state.split_brain {
            return None;
        }
        state.split_brain = writable;
        let (writable, outcome) = choice.split_brain.as_ref()?;
        Some(Event::SplitBrain {
            record: RecordId(record),
            writable: writable.clone(),
            outcome: outcome.clone(),
        })
    }

    /// The answer after `choice`, and why: its nodes; or, with none, the last answer kept
    /// as stale while no node is reachable (up to `max_stale`), then `on_empty`.
    fn next_answer(&mut self, record: usize, choice: &Choice, now: Duration, why: &str) -> Next {
        let spec = &self.records[record];
        let pool = spec.pool;
        let state = &mut self.state[record];
        let reason = choice.reason.clone().unwrap_or_else(|| why.to_string());
        if !choice.nodes.is_empty() {
            state.stale_since = None;
            state.from_on_empty = false;
            return Next::Answer(Answer::Nodes(choice.nodes.clone()), reason);
        }
        // A node whose host refused the connection was reached (nothing listens there):
        // only a pool none of whose nodes could be reached suggests that hadns itself is
        // cut off. Keeping a refusing writer named would keep clients' caches of it fresh,
        // and it may come back while its replacement is named.
        let unreachable = self.nodes[pool].iter().all(|n| {
            n.health == super::Health::Down && !n.last.as_ref().is_some_and(|o| o.refused)
        });
        let empty = empty_answer(spec.on_empty, self.nodes[pool].len());
        let keep_stale = unreachable
            && !spec.max_stale.is_zero()
            && matches!(state.answer, Answer::Nodes(_))
            && !state.from_on_empty;
        if !keep_stale {
            state.stale_since = None;
            state.from_on_empty = true;
            return Next::Answer(empty, reason);
        }
        // hadns is more likely cut off than every node dead at once: keep the answer.
        match state.stale_since {
            None => {
                state.stale_since = Some(now);
                Next::Keep(Some(Event::Stale {
                    record: RecordId(record),
                    max_stale: spec.max_stale,
                }))
            }
            Some(since) if now.saturating_sub(since) < spec.max_stale => Next::Keep(None),
            Some(_) => {
                state.stale_since = None;
                state.from_on_empty = true;
                let reason = format!(
                    "no node reachable for max_stale ({:?}): {why}",
                    spec.max_stale
                );
                Next::Answer(empty, reason)
            }
        }
    }

    /// With a single winner, every other writable node of the same cluster is a loser to
    /// fence, once per writable episode; a deposed node that is writable is fenced even
    /// while there is no winner.
    fn fence_losers(&mut self, record: usize, to: &Answer) -> Vec<Event> {
        let winner = match to {
            Answer::Nodes(winner) => winner.as_slice(),
            _ => &[],
        };
        let pool = self.records[record].pool;
        let names = &self.pools[pool].node_names;
        let mut events = Vec::new();
        for (i, node) in self.nodes[pool].iter_mut().enumerate() {
            let loser = !winner.is_empty() || node.deposed;
            if loser && !winner.contains(&i) && node.writable() && !node.fenced {
                node.fenced = true;
                let reason = match winner.first() {
                    Some(&w) if !node.deposed => format!("{} is the primary", names[w]),
                    _ => format!("{} was replaced by a promotion", names[i]),
                };
                events.push(Event::Fence {
                    node: NodeId::new(pool, i),
                    reason,
                });
            }
        }
        events
    }

    fn select_first(&self, record: usize) -> Choice {
        let spec = &self.records[record];
        let nodes = &self.nodes[spec.pool];
        let healthy = |i: &usize| nodes[*i].eligible();
        let sticky = match &self.state[record].answer {
            Answer::Nodes(current) if !spec.failback && current.len() == 1 => {
                Some(current[0]).filter(healthy)
            }
            _ => None,
        };
        let first = sticky.or_else(|| {
            self.pools[spec.pool]
                .by_priority
                .iter()
                .copied()
                .find(healthy)
        });
        Choice::plain(first.into_iter().collect())
    }

    fn select_healthy(&self, record: usize) -> Choice {
        let nodes = &self.nodes[self.records[record].pool];
        Choice::plain((0..nodes.len()).filter(|&i| nodes[i].eligible()).collect())
    }

    fn select_primary(&self, record: usize) -> Choice {
        let pool = self.records[record].pool;
        let nodes = &self.nodes[pool];
        let names = &self.pools[pool].node_names;
        // A drained node that is still writable counts in the split-brain rules (it is
        // a writable primary all the same) but is never the answer.
        // A deposed node (replaced by a promotion) is no contender: it is only fenced.
        let writable: Vec<usize> = (0..nodes.len())
            .filter(|&i| nodes[i].writable() && !nodes[i].deposed)
            .collect();
        if writable.len() < 2 {
            return Choice::plain(
                writable
                    .into_iter()
                    .filter(|&i| !nodes[i].drained)
                    .collect(),
            );
        }
        let timeline = |i: usize| nodes[i].db.as_ref().and_then(|d| d.timeline);
        let newest = writable.iter().map(|&i| timeline(i)).max().flatten();
        let top: Vec<usize> = writable
            .iter()
            .copied()
            .filter(|&i| timeline(i) == newest)
            .collect();
        let list = |v: &[usize]| {
            v.iter()
                .map(|&i| names[i].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let current = match &self.state[record].answer {
            Answer::Nodes(n) if n.len() == 1 => Some(n[0]),
            _ => None,
        };
        let (chosen, outcome) = if top.len() == 1 {
            let tl = newest
                .map(|t| t.to_string())
                .unwrap_or_else(|| "unknown".into());
            (
                top.clone(),
                format!(
                    "{} has the newest timeline ({tl}) and is the answer",
                    names[top[0]]
                ),
            )
        } else if let Some(c) = current.filter(|c| top.contains(c)) {
            (
                vec![c],
                format!(
                    "{} tie on timeline; keeping the published node {}",
                    list(&top),
                    names[c]
                ),
            )
        } else {
            (
                Vec::new(),
                format!(
                    "{} tie on timeline and none is published; no answer",
                    list(&top)
                ),
            )
        };
        let (chosen, outcome) = match chosen.first() {
            Some(&c) if nodes[c].drained => (
                Vec::new(),
                format!("{outcome}; but {} is drained: no answer", names[c]),
            ),
            _ => (chosen, outcome),
        };
        Choice {
            nodes: chosen,
            split_brain: Some((writable, outcome)),
            reason: None,
        }
    }
}

fn empty_answer(on_empty: OnEmpty, node_count: usize) -> Answer {
    match on_empty {
        OnEmpty::Nodata => Answer::Nodata,
        OnEmpty::Servfail => Answer::Servfail,
        OnEmpty::All => Answer::Nodes((0..node_count).collect()),
    }
}
