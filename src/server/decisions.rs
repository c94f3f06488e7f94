//! The boundary between deciding and carrying out.
//!
//! A [`Decision`] is what a source of answers decided in one step: the nodes to fence, the
//! answers to publish, the events to log and count, and which vips to hold. Today the local
//! engine is one source (`Decision::local`); in cluster mode (`server/cluster/`) the
//! leader's engine on the merged views is another (`Route::Propose`: fenced here, then
//! written to etcd), and the agreed answers that etcd's watch brings every member are a
//! third (`Route::Agreed`). Everything after the decision is the same for all of them.
//!
//! The [`Outbox`] carries decisions out strictly in order, each as: fence its losers, then
//! publish its answers, then its effects. A fence runs in its own task, so the supervisor
//! goes on observing and serving admin requests meanwhile; decisions made during a fence
//! wait behind it, so no answer is published before an earlier fence has finished.

use std::collections::{HashMap, VecDeque};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::api::status::FenceStatus;
use crate::config::Config;
use crate::dns::Published;
use crate::engine::{Answer, Engine, Event, Health, NodeId, RecordId};

/// One step of decisions, carried out as a whole.
pub struct Decision {
    /// Nodes to fence before anything of this decision is published, and why.
    pub fences: Vec<(NodeId, String)>,
    /// The answers to publish (one per record), when one changed.
    pub answers: Option<Vec<Published>>,
    /// What happened, for the log, the event log, the metrics and the hooks.
    pub events: Vec<Event>,
    /// Per `[[vip]]`: whether it should be held once this decision is published; `None`
    /// leaves the vips as they are.
    pub holds: Option<Vec<bool>>,
    /// Where its answers go.
    pub route: Route,
}

/// Where a decision's answers go once its fences are done.
pub enum Route {
    /// Served here: the engine decided alone (no `[cluster]`).
    Local,
    /// Served here: the cluster agreed on them; every zone carries this serial.
    Agreed { serial: u32 },
    /// This member leads: written to etcd (if it still leads), served once the watch
    /// brings them back as agreed.
    Propose(Vec<crate::cluster::AgreedRecord>),
}

impl Decision {
    /// The local engine's decision after it produced `events` (no `[cluster]`).
    pub fn local(config: &Config, engine: &Engine, events: Vec<Event>) -> Decision {
        // A by_site answer can change with any node (another site's first node, say)
        // while the record's own answer stays.
        let by_site = config.records.iter().any(|r| r.by_site);
        let answers = events
            .iter()
            .any(|e| match e {
                Event::AnswerChanged { .. } => true,
                Event::NodeChanged { .. } | Event::Drained { .. } => by_site,
                _ => false,
            })
            .then(|| super::publication::published(config, engine));
        let holds = vip_holds(
            config,
            |record| Some(engine.answer(record).clone()),
            |node| engine.node(node).health == Health::Up,
        );
        Decision {
            fences: fences(&events),
            answers,
            events,
            holds: Some(holds),
            route: Route::Local,
        }
    }

    /// Events with effects and nothing else: no answer, no vip, no fence.
    pub fn effects_only(events: Vec<Event>) -> Decision {
        Decision {
            fences: Vec::new(),
            answers: None,
            events,
            holds: None,
            route: Route::Local,
        }
    }
}

/// The nodes `events` say to fence, and why.
pub fn fences(events: &[Event]) -> Vec<(NodeId, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Fence { node, reason } => Some((*node, reason.clone())),
            _ => None,
        })
        .collect()
}

/// The vip rule, for every source: a `[[vip]]` is held while its record answers exactly
/// the local node and that node is up. `answer` is the record's answer as the source
/// decided it (`None`: it has none); `up` whether the source counts the node up: the local
/// engine's health alone, or in cluster mode the majority's word, which the agreed answer
/// already is.
pub fn vip_holds(
    config: &Config,
    answer: impl Fn(RecordId) -> Option<Answer>,
    up: impl Fn(NodeId) -> bool,
) -> Vec<bool> {
    config
        .vips
        .iter()
        .map(|vip| {
            let node = NodeId {
                pool: config.record(vip.record).pool,
                index: vip.node,
            };
            answer(vip.record) == Some(Answer::Nodes(vec![vip.node])) && up(node)
        })
        .collect()
}

/// What the supervisor does next with the outbox's head.
pub enum Step {
    /// Start these fences (the decision then waits for them).
    Fence(Vec<(NodeId, String)>),
    /// Publish this decision and carry out its effects.
    Publish(Decision),
}

/// A finished fence.
pub struct Fenced {
    pub node: NodeId,
    /// What was done, or why it failed.
    pub result: Result<String, String>,
}

pub struct Outbox {
    queue: VecDeque<Decision>,
    /// Fences of the head decision still running.
    running: usize,
    tasks: JoinSet<()>,
    done: mpsc::UnboundedSender<Fenced>,
    /// Finished fences, for the supervisor's loop.
    pub finished: mpsc::UnboundedReceiver<Fenced>,
    /// The last fence per (pool, node) name, for `/status`.
    pub last: HashMap<(String, String), FenceStatus>,
}

impl Outbox {
    pub fn new() -> Outbox {
        let (done, finished) = mpsc::unbounded_channel();
        Outbox {
            queue: VecDeque::new(),
            running: 0,
            tasks: JoinSet::new(),
            done,
            finished,
            last: HashMap::new(),
        }
    }

    pub fn submit(&mut self, decision: Decision) {
        self.queue.push_back(decision);
    }

    /// The next thing to do; `None` while a fence runs or nothing is queued.
    pub fn next(&mut self) -> Option<Step> {
        let head = self.queue.front_mut()?;
        if !head.fences.is_empty() {
            let fences = std::mem::take(&mut head.fences);
            self.running += fences.len();
            return Some(Step::Fence(fences));
        }
        if self.running > 0 {
            return None;
        }
        self.queue.pop_front().map(Step::Publish)
    }

    /// Runs one fence that `next` handed out in its own task; `finished` hears the outcome.
    pub fn fence(&mut self, config: &Config, node: NodeId) {
        let pool = &config.pools[node.pool.0];
        let (p, n) = (pool.clone(), pool.nodes[node.index].clone());
        let done = self.done.clone();
        self.tasks.spawn(async move {
            let result = crate::checks::fence(&p, &n)
                .await
                .map_err(|e| e.to_string());
            // The receiver lives as long as the outbox, which owns this task.
            let _ = done.send(Fenced { node, result });
        });
    }

    /// Counts a fence as finished (the supervisor recorded it).
    pub fn fenced(&mut self) {
        self.running -= 1;
        while self.tasks.try_join_next().is_some() {}
    }

    /// Whether every decision was carried out.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.running == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(fences: usize, tag: usize) -> Decision {
        Decision {
            fences: (0..fences)
                .map(|n| (NodeId::new(0, n), "primary moved".into()))
                .collect(),
            answers: None,
            events: Vec::new(),
            holds: Some(vec![tag == 1]),
            route: Route::Local,
        }
    }

    fn published(step: Option<Step>) -> Option<Vec<bool>> {
        match step {
            Some(Step::Publish(d)) => d.holds,
            _ => None,
        }
    }

    #[test]
    fn decisions_wait_in_order_behind_a_running_fence() {
        let mut outbox = Outbox::new();
        outbox.submit(decision(2, 0));
        let Some(Step::Fence(fences)) = outbox.next() else {
            panic!("the head's fences come first");
        };
        assert_eq!(fences.len(), 2);
        assert!(
            outbox.next().is_none(),
            "nothing is published while they run"
        );
        outbox.submit(decision(0, 1));
        assert!(
            outbox.next().is_none(),
            "a later decision waits behind the fence"
        );
        outbox.fenced();
        assert!(outbox.next().is_none(), "one fence of two is still running");
        assert!(!outbox.is_idle());
        outbox.fenced();
        assert_eq!(published(outbox.next()), Some(vec![false]));
        assert_eq!(published(outbox.next()), Some(vec![true]));
        assert!(outbox.next().is_none());
        assert!(outbox.is_idle());
    }

    #[test]
    fn without_fences_a_decision_is_carried_out_at_once() {
        let mut outbox = Outbox::new();
        outbox.submit(decision(0, 1));
        assert_eq!(published(outbox.next()), Some(vec![true]));
        assert!(outbox.is_idle());
    }
}
