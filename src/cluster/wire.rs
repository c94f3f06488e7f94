//! What members store in etcd, and under which keys (docs/cluster.md, "Keys"). Values are
//! JSON; names of pools and nodes travel in the values, so that only the member's name
//! (which has no `/`) is read back from a key.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::api::status::Health;
use crate::config::Site;
use crate::engine::{Answer, DbStatus, Sited};

/// The keys under `[cluster] prefix`.
#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
}

impl Keys {
    /// `{prefix}members/{name}`: a live member (under its lease) and its config digest.
    pub fn member(&self, name: &str) -> String {
        format!("{}members/{name}", self.prefix)
    }

    /// `{prefix}views/{member}/{pool}/{node}`: one member's view of one node (its lease).
    pub fn view(&self, member: &str, pool: &str, node: &str) -> String {
        format!("{}views/{member}/{pool}/{node}", self.prefix)
    }

    /// `{prefix}leader`: the leader's name, under its lease.
    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }

    /// `{prefix}decision`: the agreed answers (no lease: they outlive every member).
    pub fn decision(&self) -> String {
        format!("{}decision", self.prefix)
    }

    /// `{prefix}drains`: the drained nodes, cluster-wide.
    pub fn drains(&self) -> String {
        format!("{}drains", self.prefix)
    }

    /// `{prefix}promotions/{pool}`: a pool's promotion, written by the leader (no lease).
    pub fn promotion(&self, pool: &str) -> String {
        format!("{}promotions/{pool}", self.prefix)
    }

    /// What a key is, relative to the prefix.
    pub fn parse<'k>(&self, key: &'k str) -> Option<Key<'k>> {
        let rest = key.strip_prefix(self.prefix.as_str())?;
        if let Some(member) = rest.strip_prefix("members/") {
            return Some(Key::Member(member));
        }
        if let Some(pool) = rest.strip_prefix("promotions/") {
            return Some(Key::Promotion(pool));
        }
        if let Some(view) = rest.strip_prefix("views/") {
            let (member, node) = view.split_once('/')?;
            return Some(Key::View(member, node));
        }
        match rest {
            "leader" => Some(Key::Leader),
            "decision" => Some(Key::Decision),
            "drains" => Some(Key::Drains),
            _ => None,
        }
    }
}

/// A key, parsed. A view carries the rest of its key (`pool/node`) to tell it apart.
#[derive(Debug, PartialEq, Eq)]
pub enum Key<'k> {
    Member(&'k str),
    View(&'k str, &'k str),
    Leader,
    Decision,
    Drains,
    Promotion(&'k str),
}

/// A live member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Digest of the pools and records of its configuration (`config_digest`).
    pub digest: String,
    pub version: String,
    /// The sequence number of the newest decision its supervisor has published: it names
    /// nothing an older decision named and this one does not (the leader waits for it
    /// before it names a different writer).
    #[serde(default)]
    pub served: u64,
}

/// One member's view of one node: its own checks, rise/fall applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub pool: String,
    pub node: String,
    pub health: Health,
    /// The last probe's detail.
    pub reason: String,
    /// Down, and the node's host refused or reset the last probe's connection: nothing
    /// accepts writes there (`Observation::refused`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
    #[serde(default)]
    pub db: Option<DbStatus>,
}

/// The agreed answers, written by the leader in a transaction guarded by its leadership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreed {
    pub leader: String,
    /// The leadership that wrote it: the create revision of the leader key.
    pub epoch: i64,
    /// Decisions written so far in this cluster (continues across leaders).
    pub seq: u64,
    /// The SOA serial every member gives its zones for these answers.
    pub serial: u32,
    /// When the leader decided (Unix milliseconds), for the time to serve it.
    pub decided_ms: u64,
    /// The digest of the configuration the leader decided with.
    pub digest: String,
    pub records: Vec<AgreedRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgreedRecord {
    pub name: String,
    pub answer: AgreedAnswer,
    /// A `by_site` record: the answer for each site's clients, by site name (its fallback
    /// followed). Empty for every other record (and left out of the JSON).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sites: BTreeMap<String, AgreedAnswer>,
    /// Why it answers this (the engine's reason for its last change).
    pub reason: String,
}

/// An agreed answer: nodes by name, with their addresses (`{"kind": "nodes", ...}`).
pub type AgreedAnswer = Answer<AgreedNode>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreedNode {
    pub node: String,
    pub address: IpAddr,
}

/// A pool's promotion, cluster-wide (docs/failover-semantics.md, "Promotion"): written
/// by the leader before each stage, so that the next leader can finish it or say that it
/// stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgreedPromotion {
    /// Nodes replaced by a promotion, until they replicate from the primary: never
    /// answered, fenced whenever writable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deposed: Vec<String>,
    /// No automatic promotion before this (Unix milliseconds; `block`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_until_ms: Option<u64>,
    /// The promotion under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<RunningPromotion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningPromotion {
    /// The leader carrying it out, and its leadership (the leader key's create revision).
    pub leader: String,
    pub epoch: i64,
    pub old: String,
    pub candidate: String,
    pub switchover: bool,
    pub stage: Stage,
    pub started_ms: u64,
}

/// How far a recorded promotion got (`"started"`, `"promoted"` in etcd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The steps may be under way; the candidate may not take writes yet.
    Started,
    /// The candidate takes writes; publication and repointing follow.
    Promoted,
}

/// A drained node, cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    pub pool: String,
    pub node: String,
    #[serde(default)]
    pub since: String,
}

impl AgreedRecord {
    /// A record's answers as agreed: a `by_site` record's per site by site name.
    pub fn new(name: &str, answers: Sited<AgreedNode>, sites: &[Site], reason: &str) -> Self {
        AgreedRecord {
            name: name.into(),
            answer: answers.all,
            sites: (answers.sites.into_iter().flatten())
                .zip(sites)
                .map(|(answer, site)| (site.name.clone(), answer))
                .collect(),
            reason: reason.into(),
        }
    }

    /// The answers in `sites`' order (this member's `[[site]]`s); a site the decision does
    /// not name gets the answer for clients of no site.
    pub fn sited(&self, sites: &[Site]) -> Sited<AgreedNode> {
        Sited {
            all: self.answer.clone(),
            sites: (!self.sites.is_empty()).then(|| {
                (sites.iter())
                    .map(|site| self.sites.get(&site.name).unwrap_or(&self.answer).clone())
                    .collect()
            }),
        }
    }
}

impl Agreed {
    /// The records' answers by name.
    pub fn by_name(&self) -> BTreeMap<&str, &AgreedRecord> {
        self.records.iter().map(|r| (r.name.as_str(), r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_parsed_back() {
        let keys = Keys {
            prefix: "/hadns/prod/".into(),
        };
        let view = keys.view("dc1", "pg", "pg/1");
        assert_eq!(keys.parse(&view), Some(Key::View("dc1", "pg/pg/1")));
        assert_eq!(keys.parse(&keys.member("dc2")), Some(Key::Member("dc2")));
        assert_eq!(keys.parse(&keys.leader()), Some(Key::Leader));
        assert_eq!(keys.parse(&keys.decision()), Some(Key::Decision));
        assert_eq!(keys.parse(&keys.drains()), Some(Key::Drains));
        assert_eq!(
            keys.parse(&keys.promotion("db")),
            Some(Key::Promotion("db"))
        );
        assert_eq!(keys.parse("/hadns/other/leader"), None);
        assert_eq!(keys.parse("/hadns/prod/unknown"), None);
    }

    #[test]
    fn per_site_answers_travel_only_for_by_site_records() {
        let node = |name: &str, address: &str| AgreedNode {
            node: name.into(),
            address: address.parse().unwrap(),
        };
        let plain = AgreedRecord {
            name: "db.example.internal.".into(),
            answer: AgreedAnswer::Nodes(vec![node("pg1", "10.1.0.21")]),
            sites: BTreeMap::new(),
            reason: "up".into(),
        };
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("sites"), "{json}");
        assert!(
            json.contains(
                r#""answer":{"kind":"nodes","nodes":[{"node":"pg1","address":"10.1.0.21"}]}"#
            ),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<AgreedRecord>(&json).unwrap(), plain);

        let mut by_site = plain.clone();
        by_site.sites.insert(
            "dc2".into(),
            AgreedAnswer::Nodes(vec![node("pg2", "10.2.0.21")]),
        );
        by_site.sites.insert("dc3".into(), AgreedAnswer::Servfail);
        let json = serde_json::to_string(&by_site).unwrap();
        let back: AgreedRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, by_site);
        assert_eq!(back.sites["dc3"], AgreedAnswer::Servfail);
    }
}
