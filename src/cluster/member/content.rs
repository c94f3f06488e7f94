//! What etcd holds under the prefix, read into the member's [`State`]: everything at
//! once (at the first session and after a compaction), then each change the watch brings.

use etcd_client::{Client, GetOptions, KeyValue, WatchOptions, WatchStream};
use tracing::error;

use super::{Error, Member};
use crate::cluster::state::State;
use crate::cluster::wire::{Key, MemberInfo, NodeView};

impl Member {
    /// Reads everything under the prefix into the state, and watches from there.
    pub(super) async fn load(&mut self, client: &mut Client) -> Result<WatchStream, Error> {
        let prefix = self.keys.prefix.clone();
        let read = self
            .timed(client.get(prefix.as_str(), Some(GetOptions::new().with_prefix())))
            .await??;
        let revision = read.header().map_or(0, |h| h.revision());
        let mut state = State {
            resyncs: self.state.resyncs,
            unreadable: self.state.unreadable,
            ..State::default()
        };
        std::mem::swap(&mut self.state, &mut state);
        self.state.connected = state.connected;
        self.state.last_contact = state.last_contact;
        // An unreadable decision, drain list or promotion keeps the one known before the read (see
        // `apply`); a key that is gone is gone.
        self.state.decision = state.decision;
        self.state.drains = state.drains;
        self.state.promotions = state.promotions;
        let (mut decision, mut drains) = (false, false);
        let mut promotions = std::collections::BTreeSet::new();
        for kv in read.kvs() {
            match kv.key_str().ok().and_then(|k| self.keys.parse(k)) {
                Some(Key::Decision) => decision = true,
                Some(Key::Drains) => drains = true,
                Some(Key::Promotion(pool)) => {
                    promotions.insert(pool.to_string());
                }
                _ => {}
            }
            self.apply(kv, true);
        }
        self.state
            .promotions
            .retain(|pool, _| promotions.contains(pool));
        if !decision {
            self.state.decision = None;
        }
        if !drains {
            self.state.drains = Vec::new();
        }
        self.state.revision = revision;
        self.send();
        self.watch_from(client, revision + 1).await
    }

    pub(super) async fn watch_from(
        &self,
        client: &mut Client,
        revision: i64,
    ) -> Result<WatchStream, Error> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision);
        let prefix = self.keys.prefix.as_str();
        Ok(self.timed(client.watch(prefix, Some(options))).await??)
    }

    /// Takes one key's new value (or its deletion) into the state.
    pub(super) fn apply(&mut self, kv: &KeyValue, put: bool) {
        let Ok(key) = kv.key_str() else { return };
        let Some(parsed) = self.keys.parse(key) else {
            return;
        };
        let value = kv.value();
        match parsed {
            Key::Member(name) => match put.then(|| self.read::<MemberInfo>(key, value)).flatten() {
                Some(info) => {
                    self.state.members.insert(name.into(), info);
                }
                None => {
                    self.state.members.remove(name);
                }
            },
            Key::View(member, node) => {
                let view = put.then(|| self.read::<NodeView>(key, value)).flatten();
                let views = self.state.views.entry(member.into()).or_default();
                match view {
                    Some(view) => views.insert(node.into(), view),
                    None => views.remove(node),
                };
                if views.is_empty() {
                    self.state.views.remove(member);
                }
            }
            Key::Leader => {
                let name = String::from_utf8_lossy(value).to_string();
                self.state.leader = put.then_some((name, kv.create_revision()));
                self.leader_lease = put.then_some(kv.lease());
                self.leads();
            }
            // A decision or drain list that cannot be read keeps the last one read: never
            // forgetting the agreed answers (or every drain) because of one bad write.
            Key::Decision if put => {
                self.decision_key = kv.mod_revision();
                if let Some(decision) = self.read(key, value) {
                    self.state.decision = Some(decision);
                    self.decision_revision = kv.mod_revision();
                }
            }
            Key::Decision => {
                self.decision_key = 0;
                self.state.decision = None;
            }
            Key::Drains if put => {
                if let Some(drains) = self.read(key, value) {
                    self.state.drains = drains;
                }
            }
            Key::Drains => self.state.drains = Vec::new(),
            Key::Promotion(pool) => match put.then(|| self.read(key, value)).flatten() {
                Some(record) => {
                    self.state.promotions.insert(pool.into(), record);
                }
                None if put => {}
                None => {
                    self.state.promotions.remove(pool);
                }
            },
        }
    }

    /// A value's JSON, or `None`, logged and counted (`unreadable` in `/status`).
    pub(super) fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        key: &str,
        value: &[u8],
    ) -> Option<T> {
        match serde_json::from_slice(value) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                self.state.unreadable += 1;
                error!(member = %self.settings.name, key, %error,
                       "a value in etcd cannot be read; ignored");
                None
            }
        }
    }

    /// This member leads while the leader key is its own, under its current lease.
    pub(super) fn leads(&mut self) {
        self.state.leading = self.state.connected
            && self.leader_lease.is_some()
            && self.leader_lease == self.lease
            && self
                .state
                .leader
                .as_ref()
                .is_some_and(|(n, _)| *n == self.settings.name);
        let epoch = self.state.leader.as_ref().map(|(_, epoch)| *epoch);
        self.leadership.set(epoch.filter(|_| self.state.leading));
    }
}
