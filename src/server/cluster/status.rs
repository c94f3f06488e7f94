//! Cluster mode in `/status`: this member, the leader, the members' views; record answers
//! as served (agreed), not as the local engine would answer alone.

use std::time::Instant;

use super::ClusterSource;
use crate::api::status::{ClusterMember, ClusterNode, ClusterStatus, Status};
use crate::cluster::State;
use crate::cluster::merge::{live_views, merge};
use crate::config::{Config, OnLost};

impl ClusterSource {
    /// Fills in the cluster part of `status`, and the records and nodes as served.
    pub fn status(&self, config: &Config, instant: Instant, unix_ms: u64, status: &mut Status) {
        let state = &self.state;
        let served = self.served();
        let since = |t: Instant| instant.saturating_duration_since(t);
        let leader_digest = (state.leader.as_ref())
            .and_then(|(l, _)| state.members.get(l))
            .map(|m| m.digest.clone());
        status.cluster = Some(ClusterStatus {
            name: self.settings.name.clone(),
            connected: state.connected,
            lost_reason: state.lost_reason.clone(),
            endpoint: state.endpoint.clone(),
            last_contact_seconds: state.last_contact.map(|t| since(t).as_secs_f64()),
            expired: !state.connected
                && (state.last_contact).is_none_or(|t| since(t) >= self.settings.lease),
            serving: if self.follower.refusing() {
                "servfail (cut off from etcd)"
            } else if served.is_some() {
                "agreed"
            } else {
                "nothing agreed yet"
            }
            .into(),
            on_lost: name(self.settings.on_lost).into(),
            writers_on_lost: name(self.settings.writers_on_lost).into(),
            writers_current_seconds: self.writers.left(instant).as_secs_f64(),
            leader: state.leader.as_ref().map(|(l, _)| l.clone()),
            leading: state.leading,
            epoch: served.map(|d| d.epoch),
            decision: served.map(|d| d.seq),
            decision_age_seconds: served
                .map(|d| unix_ms.saturating_sub(d.decided_ms) as f64 / 1000.0),
            config_differs_from_leader: leader_digest.is_some_and(|d| d != self.digest),
            config_digest: self.digest.clone(),
            members: (state.members.iter())
                .map(|(name, m)| ClusterMember {
                    name: name.clone(),
                    version: m.version.clone(),
                    config_digest: m.digest.clone(),
                    leader: state.leader.as_ref().is_some_and(|(l, _)| l == name),
                })
                .collect(),
            nodes: nodes(config, state),
            resyncs: state.resyncs,
            unreadable: state.unreadable,
        });
        if let Some(decision) = served {
            as_served(decision, status);
        }
        if self.writers.passed_at(instant) {
            refused_writers(config, status);
        }
    }
}

fn name(on_lost: OnLost) -> &'static str {
    match on_lost {
        OnLost::Keep => "keep",
        OnLost::Servfail => "servfail",
    }
}

/// The guarded records as the answer paths give them past the deadline: SERVFAIL.
fn refused_writers(config: &Config, status: &mut Status) {
    let guarded = config.guarded_records();
    for (record, guarded) in status.records.iter_mut().zip(guarded) {
        if guarded {
            record.answer = "servfail".into();
            record.nodes.clear();
            record.addresses.clear();
            record.describe = "servfail".into();
            record.reason = "this member cannot vouch that its view is current (etcd has not \
                             confirmed its lease in time): writers are refused"
                .into();
        }
    }
}

/// Per node: each live member's view and the majority's.
fn nodes(config: &Config, state: &State) -> Vec<ClusterNode> {
    let members = config.cluster.as_ref().map_or(&[][..], |c| &c.members);
    let mut nodes = Vec::new();
    for pool in &config.pools {
        for node in &pool.nodes {
            let key = format!("{}/{}", pool.name, node.name);
            let live = live_views(state, members, &key);
            let views = live
                .clone()
                .map(|(m, v)| (m.to_string(), v.health))
                .collect();
            let merged = match merge(live, members.len()) {
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
    nodes
}

/// The records as `decision` answers them, and which records answer each node.
fn as_served(decision: &crate::cluster::Agreed, status: &mut Status) {
    let by_name = decision.by_name();
    for record in &mut status.records {
        let Some(agreed) = by_name.get(record.name.as_str()) else {
            continue;
        };
        let nodes = agreed.answer.nodes();
        record.answer = agreed.answer.kind().into();
        record.nodes = nodes.iter().map(|n| n.node.clone()).collect();
        record.addresses = nodes.iter().map(|n| n.address.to_string()).collect();
        record.describe = match &agreed.answer {
            crate::engine::Answer::Nodes(nodes) => nodes
                .iter()
                .map(|n| format!("{}({})", n.node, n.address))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.kind().into(),
        };
        record.reason = format!("agreed (decision {}): {}", decision.seq, agreed.reason);
    }
    for pool in &mut status.pools {
        for node in &mut pool.nodes {
            node.answered_by = (status.records.iter())
                .filter(|r| r.pool == pool.name && r.nodes.contains(&node.name))
                .map(|r| r.name.clone())
                .collect();
        }
    }
}
