//! Cluster mode on the supervisor's side (docs/cluster.md). The local engine still probes
//! and decides this member's view of each node, which goes to etcd; its answers are not
//! served. While this member leads, a second engine decides on the merged views of the live
//! members (a node is down when a majority of those that observe it say so) and proposes
//! its answers (`Route::Propose`: fenced first, then written in a transaction guarded by
//! the leadership). Every member serves what etcd's watch says was agreed
//! (`Route::Agreed`), or, cut off from etcd, keeps it or refuses per `on_lost`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use super::Supervisor;
use super::decisions::{Decision, Route};
use crate::api::status::{ClusterMember, ClusterNode, ClusterStatus, Health, Status};
use crate::cluster::{
    Agreed, AgreedAnswer, AgreedNode, AgreedRecord, Cluster, Drain, NodeView, Request, State,
    merge::merge,
};
use crate::config::{Config, OnLost};
use crate::dns::Published;
use crate::engine::{Answer, Engine, Event, NodeId, Observation, PoolId, RecordId};

/// The supervisor's part of cluster mode.
pub struct ClusterSide {
    pub cluster: Cluster,
    settings: crate::config::Cluster,
    digest: String,
    /// The state last handled.
    state: Arc<State>,
    /// While this member leads.
    leader: Option<Leader>,
    /// The agreed decision served here last.
    served: Option<Agreed>,
    /// Failover names answer SERVFAIL: cut off, with `on_lost = "servfail"`.
    refusing: bool,
    /// Serve the agreed decision again even if it did not change (after a reload).
    republish: bool,
    /// Cut off from etcd for longer than the lease: every vip released.
    released: bool,
    /// Connected (and caught up) when last handled.
    connected: bool,
}

/// What the vips do with the agreed answers.
enum Vips {
    /// Held where the agreed answer names the local node.
    Follow,
    /// Left as they are (cut off, within the lease; or catching up).
    Keep,
    /// Released: cut off for longer than the lease.
    Release,
}

/// The leader's engine, fed with the merged views.
struct Leader {
    epoch: i64,
    engine: Engine,
    /// What the engine was last fed, per node.
    fed: HashMap<NodeId, Observation>,
    /// The last decision proposed: the next continues its numbers.
    proposed: Option<Agreed>,
}

impl Leader {
    /// The newest decision: agreed, or proposed by this leader and not yet seen agreed.
    fn latest<'a>(&'a self, agreed: Option<&'a Agreed>) -> Option<&'a Agreed> {
        match (agreed, &self.proposed) {
            (Some(a), Some(p)) if p.seq > a.seq => Some(p),
            (None, Some(p)) => Some(p),
            (a, _) => a,
        }
    }
}

impl ClusterSide {
    pub fn new(cluster: Cluster, settings: crate::config::Cluster, digest: String) -> ClusterSide {
        ClusterSide {
            cluster,
            settings,
            digest,
            state: Arc::new(State::default()),
            leader: None,
            served: None,
            refusing: false,
            republish: false,
            released: true,
            connected: false,
        }
    }

    /// When this member releases its vips if etcd stays silent (cut off, vips still
    /// held): see `release_after`.
    pub fn release_at(&self) -> Option<tokio::time::Instant> {
        let contact = self.state.last_contact?;
        (!self.state.connected && !self.released)
            .then(|| tokio::time::Instant::from_std(contact + release_after(&self.settings)))
    }
}

/// How long after its last answered keepalive a cut-off member releases its vips: the
/// lease less one keepalive interval. etcd counts the lease from when it received the
/// keepalive, a little before its answer arrived here; releasing one interval early keeps
/// the release inside the lease as etcd counts it.
fn release_after(settings: &crate::config::Cluster) -> Duration {
    settings.lease - crate::cluster::keepalive_interval(settings.lease)
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

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Supervisor {
    /// This member's view of a node, for etcd (skipped before its first probe).
    pub(super) fn share_view(&self, id: NodeId) {
        let Some(side) = &self.cluster else { return };
        let state = self.engine.node(id);
        if state.health == Health::Unknown {
            return;
        }
        let (pool, node) = self.config.names(id);
        let view = NodeView {
            pool: pool.into(),
            node: node.into(),
            health: state.health,
            reason: state
                .last
                .as_ref()
                .map(|o| o.detail.clone())
                .unwrap_or_default(),
            db: state.db.clone().filter(|_| state.health == Health::Up),
        };
        let _ = side.cluster.requests.send(Request::View(view));
    }

    /// Every node's view again (after a reload).
    pub(super) fn share_all_views(&self) {
        for (p, pool) in self.config.pools.iter().enumerate() {
            for n in 0..pool.nodes.len() {
                self.share_view(NodeId::new(p, n));
            }
        }
    }

    /// Cluster mode: the local engine's events are this member's view, and only that part
    /// of them has effects here (node changes, cluster identity, drains).
    pub(super) fn observed(&mut self, events: Vec<Event>) {
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
        if events.is_empty() {
            return;
        }
        self.outbox.submit(Decision {
            fences: Vec::new(),
            answers: None,
            events,
            holds: None,
            route: Route::Local,
        });
        self.advance();
    }

    /// The member task's state changed (or the periodic tick: `refresh`): lead, follow.
    pub(super) fn on_cluster(&mut self, refresh: bool) {
        let Some(side) = &mut self.cluster else {
            return;
        };
        let state = side.cluster.state.borrow_and_update().clone();
        let was_connected = side.state.connected;
        side.state = state.clone();
        if state.connected && !was_connected {
            // A new session: etcd may have lost what was written under an expired lease.
            self.share_all_views();
        }
        self.sync_drains(&state);
        self.lead(&state, refresh);
        self.follow(&state);
    }

    /// The local engine's drained flags follow the cluster's list (for the status and
    /// the log; the leader's engine decides with the same list).
    fn sync_drains(&mut self, state: &State) {
        let now = self.clock.now();
        let mut events = Vec::new();
        for (p, pool) in self.config.pools.iter().enumerate() {
            for (n, node) in pool.nodes.iter().enumerate() {
                let id = NodeId::new(p, n);
                let drained = is_drained(&state.drains, &pool.name, &node.name);
                if self.engine.node(id).drained != drained {
                    events.extend(self.engine.set_drained(id, drained, now));
                }
            }
        }
        self.observed(events);
    }

    /// While this member leads: feeds the leader's engine the merged views and proposes
    /// what it decides.
    fn lead(&mut self, state: &State, refresh: bool) {
        let now = self.clock.now();
        let config = &self.config;
        let Some(side) = &mut self.cluster else {
            return;
        };
        let epoch = match (&state.leader, state.leading) {
            (Some((_, epoch)), true) => *epoch,
            _ => {
                if side.leader.take().is_some() {
                    info!(member = %side.settings.name, "no longer leading the cluster");
                }
                return;
            }
        };
        if side.leader.as_ref().is_none_or(|l| l.epoch != epoch) {
            info!(member = %side.settings.name, epoch, "leading the cluster");
            let mut engine = Engine::new(&leader_config(config));
            if let Some(agreed) = &state.decision {
                let by_name = agreed.by_name();
                for (r, record) in config.records.iter().enumerate() {
                    if let Some(a) = by_name.get(record.name.as_str()) {
                        engine.assume(RecordId(r), local_answer(config, RecordId(r), &a.answer));
                    }
                }
            }
            side.leader = Some(Leader {
                epoch,
                engine,
                fed: HashMap::new(),
                proposed: None,
            });
        }
        let Some(leader) = &mut side.leader else {
            return;
        };
        let mut events = Vec::new();
        for (p, pool) in config.pools.iter().enumerate() {
            for (n, node) in pool.nodes.iter().enumerate() {
                let id = NodeId::new(p, n);
                let key = format!("{}/{}", pool.name, node.name);
                let views = state
                    .views
                    .iter()
                    .filter(|(member, _)| state.members.contains_key(*member))
                    .filter_map(|(member, views)| Some((member.as_str(), views.get(&key)?)));
                let Some(observation) = merge(views) else {
                    continue;
                };
                if refresh || leader.fed.get(&id) != Some(&observation) {
                    events.extend(leader.engine.observe(id, observation.clone(), now));
                    leader.fed.insert(id, observation);
                }
                let drained = is_drained(&state.drains, &pool.name, &node.name);
                if leader.engine.node(id).drained != drained {
                    events.extend(leader.engine.set_drained(id, drained, now));
                }
            }
        }
        let ready = (0..config.pools.len()).all(|p| leader.engine.pool_ready(PoolId(p)));
        let records = agreed_records(config, &leader.engine, state.decision.as_ref());
        let differs = leader
            .latest(state.decision.as_ref())
            .is_none_or(|d| !same_answers(&d.records, &records));
        let changed = events
            .iter()
            .any(|e| matches!(e, Event::AnswerChanged { .. }));
        let fences: Vec<(NodeId, String)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Fence { node, reason } => Some((*node, reason.clone())),
                _ => None,
            })
            .collect();
        // Only what the leader alone sees has effects here; answer changes have theirs on
        // every member when they are served.
        let events: Vec<Event> = events
            .into_iter()
            .filter(|e| matches!(e, Event::SplitBrain { .. } | Event::Stale { .. }))
            .collect();
        let propose = (changed || differs) && (ready || state.decision.is_some());
        if !propose && events.is_empty() && fences.is_empty() {
            return;
        }
        self.outbox.submit(Decision {
            fences,
            answers: None,
            events,
            holds: None,
            route: if propose {
                Route::Propose(records)
            } else {
                Route::Local
            },
        });
        self.advance();
    }

    /// Writes a decision (after its fences): numbered after the agreed one and after the
    /// last one this leader proposed, so that one serial never names two answers.
    pub(super) fn propose(&mut self, records: Vec<AgreedRecord>) {
        // The first decision's serial comes after every zone's current one (RFC 1982: a
        // date-style file serial is above the Unix time, a wrapped one below it), so that
        // each decision moves every serial.
        let current: Vec<u32> = self.publication.load().serials().to_vec();
        let Some(side) = &mut self.cluster else {
            return;
        };
        let state = side.state.clone();
        let Some(leader) = &mut side.leader else {
            return;
        };
        let latest = leader.latest(state.decision.as_ref());
        if latest.is_some_and(|d| same_answers(&d.records, &records)) {
            return;
        }
        let (seq, serial) = match latest {
            Some(d) => (d.seq + 1, crate::dns::serial_next(d.serial)),
            None => (
                1,
                crate::dns::serial_beyond(super::publication::unix_now(), current),
            ),
        };
        let decision = Agreed {
            leader: side.settings.name.clone(),
            epoch: leader.epoch,
            seq,
            serial,
            decided_ms: unix_ms(),
            digest: side.digest.clone(),
            records,
        };
        leader.proposed = Some(decision.clone());
        let _ = side.cluster.requests.send(Request::Propose(decision));
    }

    /// Serves the agreed decision when it changed; refuses or keeps while cut off.
    fn follow(&mut self, state: &State) {
        let Some(side) = &mut self.cluster else {
            return;
        };
        let refuse = !state.connected && side.settings.on_lost == OnLost::Servfail;
        let mut force = std::mem::take(&mut side.republish);
        if refuse != side.refusing {
            side.refusing = refuse;
            force = true;
            if refuse {
                warn!(member = %side.settings.name, "cut off from etcd: failover names answer SERVFAIL (on_lost)");
            } else {
                info!(member = %side.settings.name, "back in touch with etcd: serving the agreed answers");
            }
        }
        // The lease is over (etcd has dropped this member's keys): the majority may have
        // moved the answer, and an L2 partition would hide the other holder from the ARP
        // probe. Timed from the last keepalive answer, not from noticing the cut.
        let released = !state.connected
            && state
                .last_contact
                .is_none_or(|t| t.elapsed() >= release_after(&side.settings));
        if released != side.released {
            side.released = released;
            force = true;
            if released && state.last_contact.is_some() {
                warn!(member = %side.settings.name, "cut off from etcd for longer than the lease: releasing every vip");
            }
        }
        // Vips follow the agreed answers only while connected (a member catching up after
        // a cut knows an old decision); cut off within the lease, they stay as they are.
        if state.connected != side.connected {
            side.connected = state.connected;
            force = true;
        }
        let vips = if released {
            Vips::Release
        } else if state.connected {
            Vips::Follow
        } else {
            Vips::Keep
        };
        if refuse {
            if force {
                // The serial stays (nothing was decided); before any decision, the
                // zones' current one.
                let current = (self.publication.load().serials().iter().copied())
                    .reduce(crate::dns::serial_max);
                let serial = side
                    .served
                    .as_ref()
                    .map(|d| d.serial)
                    .or(current)
                    .unwrap_or(0);
                let answers = vec![Published::Servfail; self.config.records.len()];
                self.outbox.submit(Decision {
                    fences: Vec::new(),
                    answers: Some(answers),
                    events: Vec::new(),
                    holds: Some(vec![false; self.config.vips.len()]),
                    route: Route::Agreed { serial },
                });
                self.advance();
            }
            return;
        }
        let Some(decision) = &state.decision else {
            return;
        };
        let new = side.served.as_ref() != Some(decision);
        if !new && !force {
            return;
        }
        let config = &self.config;
        let before = side.served.as_ref().map(|d| d.by_name());
        let mut answers = Vec::with_capacity(config.records.len());
        let mut events = Vec::new();
        let by_name = decision.by_name();
        for (r, record) in config.records.iter().enumerate() {
            let id = RecordId(r);
            let agreed = by_name.get(record.name.as_str());
            answers.push(agreed.map_or(Published::Pending, |a| served(config, a)));
            let to = agreed.map_or(Answer::Pending, |a| local_answer(config, id, &a.answer));
            let from = before
                .as_ref()
                .and_then(|b| b.get(record.name.as_str()))
                .map_or(Answer::Pending, |a| local_answer(config, id, &a.answer));
            if new && from != to {
                events.push(Event::AnswerChanged {
                    record: id,
                    from,
                    to,
                    reason: agreed.map_or_else(
                        || "the agreed decision does not name this record".into(),
                        |a| format!("agreed (decision {}): {}", decision.seq, a.reason),
                    ),
                });
            }
        }
        let holds = match vips {
            Vips::Release => Some(vec![false; config.vips.len()]),
            Vips::Keep => None,
            Vips::Follow => Some(
                config
                    .vips
                    .iter()
                    .map(|vip| {
                        by_name
                            .get(config.record(vip.record).name.as_str())
                            .is_some_and(|a| {
                                local_answer(config, vip.record, &a.answer)
                                    == Answer::Nodes(vec![vip.node])
                            })
                    })
                    .collect(),
            ),
        };
        if new {
            let age = unix_ms().saturating_sub(decision.decided_ms);
            self.metrics
                .decision_served
                .observe(Duration::from_millis(age).as_secs_f64());
            if decision.digest != side.digest {
                warn!(member = %side.settings.name, leader = %decision.leader,
                      "the leader decided with a different configuration (pools, records)");
            }
        }
        side.served = Some(decision.clone());
        self.outbox.submit(Decision {
            fences: Vec::new(),
            answers: Some(answers),
            events,
            holds,
            route: Route::Agreed {
                serial: decision.serial,
            },
        });
        self.advance();
    }

    /// After a reload: the new digest goes to etcd, the views again, the leader's engine is
    /// rebuilt for the new configuration, and the agreed answers are served again (a
    /// reload bumped every serial).
    pub(super) fn cluster_reloaded(&mut self) {
        let Some(side) = &mut self.cluster else {
            return;
        };
        side.digest = crate::config::digest(&self.config);
        let _ = side
            .cluster
            .requests
            .send(Request::Digest(side.digest.clone()));
        side.leader = None;
        side.republish = true;
        self.share_all_views();
        self.on_cluster(true);
    }

    /// A drain or undrain in cluster mode: the cluster-wide list in etcd changes; the
    /// leader moves the answers and every member serves them.
    pub(super) async fn cluster_drain(
        &mut self,
        pool: &str,
        node: &str,
        drained: bool,
    ) -> Result<String, String> {
        let Some(side) = &self.cluster else {
            return Err("not in cluster mode".into());
        };
        let mut list: Vec<Drain> = side
            .state
            .drains
            .iter()
            .filter(|d| !(d.pool == pool && d.node == node))
            .cloned()
            .collect();
        if drained {
            list.push(Drain {
                pool: pool.into(),
                node: node.into(),
                since: crate::api::event::rfc3339(SystemTime::now()),
            });
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        side.cluster
            .requests
            .send(Request::Drains(list, reply))
            .map_err(|_| "the cluster task has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the cluster task has stopped".to_string())??;
        let verb = if drained { "drained" } else { "undrained" };
        Ok(format!(
            "{node} of pool {pool} {verb} cluster-wide; the leader moves the answers"
        ))
    }

    /// Cluster mode in `/status`: this member, the leader, the members' views; record
    /// answers as served (agreed), not as the local engine would answer alone.
    pub(super) fn cluster_status(&self, status: &mut Status) {
        let Some(side) = &self.cluster else { return };
        let state = &side.state;
        let leader_digest = state
            .leader
            .as_ref()
            .and_then(|(l, _)| state.members.get(l))
            .map(|m| m.digest.clone());
        let mut nodes = Vec::new();
        for pool in &self.config.pools {
            for node in &pool.nodes {
                let key = format!("{}/{}", pool.name, node.name);
                let live = state
                    .views
                    .iter()
                    .filter(|(m, _)| state.members.contains_key(*m))
                    .filter_map(|(m, v)| Some((m.as_str(), v.get(&key)?)));
                let views = live
                    .clone()
                    .map(|(m, v)| (m.to_string(), v.health))
                    .collect();
                let merged = match merge(live) {
                    Some(o) if o.ok => "up",
                    Some(_) => "down",
                    None => "tie",
                };
                nodes.push(ClusterNode {
                    pool: pool.name.clone(),
                    node: node.name.clone(),
                    views,
                    merged: merged.into(),
                });
            }
        }
        let served = side.served.as_ref();
        status.cluster = Some(ClusterStatus {
            name: side.settings.name.clone(),
            connected: state.connected,
            lost_reason: state.lost_reason.clone(),
            last_contact_seconds: state.last_contact.map(|t| t.elapsed().as_secs_f64()),
            expired: !state.connected
                && state
                    .last_contact
                    .is_none_or(|t| t.elapsed() >= side.settings.lease),
            serving: if side.refusing {
                "servfail (cut off from etcd)"
            } else if served.is_some() {
                "agreed"
            } else {
                "nothing agreed yet"
            }
            .into(),
            on_lost: match side.settings.on_lost {
                OnLost::Keep => "keep",
                OnLost::Servfail => "servfail",
            }
            .into(),
            leader: state.leader.as_ref().map(|(l, _)| l.clone()),
            leading: state.leading,
            epoch: served.map(|d| d.epoch),
            decision: served.map(|d| d.seq),
            decision_age_seconds: served
                .map(|d| unix_ms().saturating_sub(d.decided_ms) as f64 / 1000.0),
            config_differs_from_leader: leader_digest.is_some_and(|d| d != side.digest),
            config_digest: side.digest.clone(),
            members: state
                .members
                .iter()
                .map(|(name, m)| ClusterMember {
                    name: name.clone(),
                    version: m.version.clone(),
                    config_digest: m.digest.clone(),
                    leader: state.leader.as_ref().is_some_and(|(l, _)| l == name),
                })
                .collect(),
            nodes,
            resyncs: state.resyncs,
            unreadable: state.unreadable,
        });
        let Some(decision) = served else { return };
        let by_name = decision.by_name();
        for record in &mut status.records {
            let Some(agreed) = by_name.get(record.name.as_str()) else {
                continue;
            };
            let (answer, nodes) = match &agreed.answer {
                AgreedAnswer::Nodes { nodes } => ("nodes", nodes.clone()),
                AgreedAnswer::Nodata => ("nodata", Vec::new()),
                AgreedAnswer::Servfail => ("servfail", Vec::new()),
                AgreedAnswer::Pending => ("pending", Vec::new()),
            };
            record.answer = answer.into();
            record.nodes = nodes.iter().map(|n| n.node.clone()).collect();
            record.addresses = nodes.iter().map(|n| n.address.to_string()).collect();
            record.describe = match answer {
                "nodes" => nodes
                    .iter()
                    .map(|n| format!("{}({})", n.node, n.address))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.into(),
            };
            record.reason = format!("agreed (decision {}): {}", decision.seq, agreed.reason);
        }
        for pool in &mut status.pools {
            for node in &mut pool.nodes {
                node.answered_by = status
                    .records
                    .iter()
                    .filter(|r| r.pool == pool.name && r.nodes.contains(&node.name))
                    .map(|r| r.name.clone())
                    .collect();
            }
        }
    }
}

/// The same answers for the same records (the reasons may differ: a new leader words
/// them after its own merge).
fn same_answers(a: &[AgreedRecord], b: &[AgreedRecord]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a.name == b.name && a.answer == b.answer && a.sites == b.sites)
}

fn is_drained(drains: &[Drain], pool: &str, node: &str) -> bool {
    drains.iter().any(|d| d.pool == pool && d.node == node)
}

/// The leader engine's answers, by record name (a `by_site` record's per site too); a
/// record whose pool has not completed its first merged round keeps its agreed answer.
fn agreed_records(config: &Config, engine: &Engine, agreed: Option<&Agreed>) -> Vec<AgreedRecord> {
    let before = agreed.map(|a| a.by_name());
    config
        .records
        .iter()
        .enumerate()
        .map(|(r, record)| {
            let id = RecordId(r);
            let pool = config.record_pool(id);
            let (_, reason) = engine.answer_changed(id);
            if *engine.answer(id) == Answer::Pending
                && let Some(kept) = before.as_ref().and_then(|b| b.get(record.name.as_str()))
            {
                return (*kept).clone();
            }
            let sites = engine
                .site_answers(config, id)
                .map(|answers| {
                    config
                        .sites
                        .iter()
                        .zip(&answers)
                        .map(|(site, answer)| (site.name.clone(), agreed_answer(pool, answer)))
                        .collect()
                })
                .unwrap_or_default();
            AgreedRecord {
                name: record.name.clone(),
                answer: agreed_answer(pool, engine.answer(id)),
                sites,
                reason: reason.to_string(),
            }
        })
        .collect()
}

/// An engine answer in the agreed form: nodes by name, with their addresses.
fn agreed_answer(pool: &crate::config::Pool, answer: &Answer) -> AgreedAnswer {
    match answer {
        Answer::Pending => AgreedAnswer::Pending,
        Answer::Nodata => AgreedAnswer::Nodata,
        Answer::Servfail => AgreedAnswer::Servfail,
        Answer::Nodes(nodes) => AgreedAnswer::Nodes {
            nodes: nodes
                .iter()
                .map(|&n| AgreedNode {
                    node: pool.nodes[n].name.clone(),
                    address: pool.nodes[n].address,
                })
                .collect(),
        },
    }
}

/// An agreed answer as the running configuration's node positions (nodes it does not
/// have are left out: a configuration that differs is reported, not guessed at).
fn local_answer(config: &Config, record: RecordId, answer: &AgreedAnswer) -> Answer {
    match answer {
        AgreedAnswer::Pending => Answer::Pending,
        AgreedAnswer::Nodata => Answer::Nodata,
        AgreedAnswer::Servfail => Answer::Servfail,
        AgreedAnswer::Nodes { nodes } => {
            let pool = config.record_pool(record);
            Answer::Nodes(
                nodes
                    .iter()
                    .filter_map(|a| pool.nodes.iter().position(|n| n.name == a.node))
                    .collect(),
            )
        }
    }
}

/// What the DNS answers for an agreed record: its addresses, as the leader wrote them;
/// per site (in this member's `[[site]]` order) when the leader answered it by site. A
/// site the decision does not name gets the answer for clients of no site.
fn served(config: &Config, record: &AgreedRecord) -> Published {
    let all = published(&record.answer);
    if record.sites.is_empty() {
        return all;
    }
    let sites = config
        .sites
        .iter()
        .map(|site| {
            record
                .sites
                .get(&site.name)
                .map_or_else(|| all.clone(), published)
        })
        .collect();
    Published::BySite {
        all: Box::new(all),
        sites,
    }
}

/// What the DNS answers for an agreed answer: its addresses, as the leader wrote them.
fn published(answer: &AgreedAnswer) -> Published {
    match answer {
        AgreedAnswer::Pending => Published::Pending,
        AgreedAnswer::Nodata => Published::Nodata,
        AgreedAnswer::Servfail => Published::Servfail,
        AgreedAnswer::Nodes { nodes } => {
            Published::Addresses(nodes.iter().map(|n| n.address).collect())
        }
    }
}
