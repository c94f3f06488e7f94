//! The member task: one session with etcd at a time. A session grants (or keeps) this
//! member's lease and renews it three times per lease, writes the member key and this
//! member's views under it, reads the prefix and watches it from the revision it read,
//! campaigns when there is no leader, and writes the leader's decisions in a transaction
//! guarded by its leadership. Any failure ends the session: the state says the member is
//! cut off (and keeps what it knew), and a new session starts after a short wait, its
//! watch resuming from the last revision seen. A watch whose revision etcd compacted away
//! reads the prefix again and watches from there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    KeyValue, PutOptions, TlsOptions, Txn, TxnOp, WatchOptions, WatchStream,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::state::{Request, State, keepalive_interval};
use super::wire::{Key, Keys, MemberInfo, NodeView};
use crate::config;

/// The wait between two sessions.
const RETRY: Duration = Duration::from_millis(250);
/// The least time between two sends of the state in a burst of watch events (plus 1 µs
/// per view held).
const SEND_GAP: Duration = Duration::from_millis(2);

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Lost(String),
}

pub(super) async fn run(
    settings: config::Cluster,
    digest: String,
    mut inbox: mpsc::UnboundedReceiver<Request>,
    publish: watch::Sender<Arc<State>>,
    shutdown: CancellationToken,
) {
    let mut member = Member {
        keys: Keys {
            prefix: settings.prefix.clone(),
        },
        budget: keepalive_interval(settings.lease),
        settings,
        digest,
        publish,
        state: State::default(),
        lease: None,
        views: BTreeMap::new(),
        written: BTreeMap::new(),
        leader_lease: None,
        catching_up: None,
        unsent: false,
        send_at: tokio::time::Instant::now(),
    };
    loop {
        match member.session(&mut inbox, &shutdown).await {
            Ok(()) => return,
            Err(error) => member.lost(&error.to_string()),
        }
        let retry = tokio::time::sleep(RETRY);
        tokio::pin!(retry);
        loop {
            tokio::select! {
                _ = &mut retry => break,
                _ = shutdown.cancelled() => return,
                Some(request) = inbox.recv() => member.offline(request),
            }
        }
    }
}

struct Member {
    settings: config::Cluster,
    keys: Keys,
    /// The time one request to etcd may take.
    budget: Duration,
    digest: String,
    publish: watch::Sender<Arc<State>>,
    state: State,
    lease: Option<i64>,
    /// This member's latest view of each node, by `pool/node`.
    views: BTreeMap<String, NodeView>,
    /// What etcd holds of them under the current lease.
    written: BTreeMap<String, NodeView>,
    /// The lease the leader key is held under.
    leader_lease: Option<i64>,
    /// The state changed since it was last sent; it is sent at `send_at`.
    unsent: bool,
    send_at: tokio::time::Instant,
    /// A resumed watch has not yet delivered everything missed while cut off: the
    /// revision of this session's first write, which it will deliver last.
    catching_up: Option<i64>,
}

impl Member {
    async fn session(
        &mut self,
        inbox: &mut mpsc::UnboundedReceiver<Request>,
        shutdown: &CancellationToken,
    ) -> Result<(), Error> {
        let mut client = self
            .timed(Client::connect(&self.settings.etcd, Some(self.options()?)))
            .await??;
        let lease = self.lease(&mut client).await?;
        let (mut keeper, mut keepalive) = self.timed(client.lease_keep_alive(lease)).await??;
        let info = MemberInfo {
            digest: self.digest.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        // Back after a cut, the watch resumes where it stopped and etcd replays what was
        // missed, unless it compacted that revision away: then the member reads again.
        let resumed = self.state.revision != 0;
        let mut watch = match self.state.revision {
            0 => self.load(&mut client).await?,
            seen => self.watch_from(&mut client, seen + 1).await?,
        };
        let with_lease = Some(PutOptions::new().with_lease(lease));
        let key = self.keys.member(&self.settings.name);
        // Another live member with this name (or this member's previous run, until its
        // lease ends): two members under one name would overwrite each other's views.
        let holder = self.timed(client.get(key.as_str(), None)).await??;
        if let Some(kv) = holder.kvs().first()
            && kv.lease() != lease
        {
            return Err(Error::Lost(format!(
                "another member named {:?} is live (lease {:x}); a restarted member waits for \
                 its previous lease to end",
                self.settings.name,
                kv.lease()
            )));
        }
        let put = self
            .timed(client.put(key, json(&info), with_lease.clone()))
            .await??;
        // Until the replay reaches this write, what the member knows is old: it is not
        // connected yet (it would serve, or hold vips for, an old decision). etcd delivers
        // a watch's events in revision order, so seeing this write means the rest came.
        if resumed {
            self.catching_up = put.header().map(|h| h.revision());
        }
        self.write_views(&mut client, true).await?;
        self.contact();
        info!(member = %self.settings.name, lease, "connected to etcd");
        self.campaign(&mut client).await?;
        let mut tick = tokio::time::interval(keepalive_interval(self.settings.lease));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(self.send_at), if self.unsent => self.send(),
                _ = shutdown.cancelled() => {
                    // Lets another member lead at once instead of after the lease.
                    let _ = self.timed(client.lease_revoke(lease)).await;
                    return Ok(());
                }
                _ = tick.tick() => {
                    let silent = self.state.last_contact.map_or(Duration::ZERO, |t| t.elapsed());
                    if silent > 2 * self.budget {
                        return Err(Error::Lost(format!("no keepalive answer for {silent:?}")));
                    }
                    self.timed(keeper.keep_alive()).await??;
                    self.write_views(&mut client, false).await?;
                }
                answer = keepalive.message() => match answer? {
                    Some(answer) if answer.ttl() > 0 => self.contact(),
                    Some(_) => {
                        self.lease = None;
                        return Err(Error::Lost("etcd expired this member's lease".into()));
                    }
                    None => return Err(Error::Lost("the keepalive stream ended".into())),
                },
                message = watch.message() => match message? {
                    Some(m) if m.canceled() || m.compact_revision() != 0 => {
                        warn!(revision = self.state.revision, compacted = m.compact_revision(),
                              "etcd compacted past the watch: reading again");
                        self.state.resyncs += 1;
                        watch = self.load(&mut client).await?;
                        self.caught_up();
                        self.campaign(&mut client).await?;
                    }
                    Some(m) => {
                        // Resumed after a cut from the last event applied (a response's
                        // header may run ahead of a replay still under way).
                        for event in m.events() {
                            if let Some(kv) = event.kv() {
                                self.apply(kv, event.event_type() == EventType::Put);
                                self.state.revision = self.state.revision.max(kv.mod_revision());
                                if self.catching_up.is_some_and(|r| kv.mod_revision() >= r) {
                                    self.caught_up();
                                }
                            }
                        }
                        self.send_soon();
                        self.campaign(&mut client).await?;
                    }
                    None => return Err(Error::Lost("the watch ended".into())),
                },
                Some(request) = inbox.recv() => self.request(&mut client, request).await?,
            }
        }
    }

    fn options(&self) -> Result<ConnectOptions, Error> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.budget)
            .with_timeout(self.budget)
            // No HTTP/2 pings: etcd answers pings more often than every 5 s
            // (--grpc-keepalive-min-time) by closing the connection. A dead connection is
            // noticed by the lease keepalive going unanswered instead.
            .with_require_leader(true);
        if let Some((user, password)) = &self.settings.auth {
            options = options.with_user(user.clone(), password.clone());
        }
        if let Some(tls) = &self.settings.tls {
            let read = |path: &std::path::Path| {
                std::fs::read(path).map_err(|e| Error::Lost(format!("{}: {e}", path.display())))
            };
            let mut options_tls = TlsOptions::new();
            if let Some(ca) = &tls.ca_file {
                options_tls = options_tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            if let Some((cert, key)) = &tls.identity {
                options_tls = options_tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            options = options.with_tls(options_tls);
        }
        Ok(options)
    }

    /// The lease of the last session when etcd still has it (its keys are still there),
    /// else a new one.
    async fn lease(&mut self, client: &mut Client) -> Result<i64, Error> {
        if let Some(id) = self.lease {
            let alive = self.timed(client.lease_time_to_live(id, None)).await??;
            if alive.ttl() > 0 {
                return Ok(id);
            }
        }
        let seconds = self.settings.lease.as_secs() as i64;
        let id = self.timed(client.lease_grant(seconds, None)).await??.id();
        self.lease = Some(id);
        self.written.clear();
        Ok(id)
    }

    /// Reads everything under the prefix into the state, and watches from there.
    async fn load(&mut self, client: &mut Client) -> Result<WatchStream, Error> {
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
        // An unreadable decision or drain list keeps the one known before the read (see
        // `apply`); a key that is gone is gone.
        self.state.decision = state.decision;
        self.state.drains = state.drains;
        let (mut decision, mut drains) = (false, false);
        for kv in read.kvs() {
            match kv.key_str().ok().and_then(|k| self.keys.parse(k)) {
                Some(Key::Decision) => decision = true,
                Some(Key::Drains) => drains = true,
                _ => {}
            }
            self.apply(kv, true);
        }
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

    async fn watch_from(&self, client: &mut Client, revision: i64) -> Result<WatchStream, Error> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision);
        let prefix = self.keys.prefix.as_str();
        Ok(self.timed(client.watch(prefix, Some(options))).await??)
    }

    /// Takes one key's new value (or its deletion) into the state.
    fn apply(&mut self, kv: &KeyValue, put: bool) {
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
                if let Some(decision) = self.read(key, value) {
                    self.state.decision = Some(decision);
                }
            }
            Key::Decision => self.state.decision = None,
            Key::Drains if put => {
                if let Some(drains) = self.read(key, value) {
                    self.state.drains = drains;
                }
            }
            Key::Drains => self.state.drains = Vec::new(),
        }
    }

    /// A value's JSON, or `None`, logged and counted (`unreadable` in `/status`).
    fn read<T: serde::de::DeserializeOwned>(&mut self, key: &str, value: &[u8]) -> Option<T> {
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
    fn leads(&mut self) {
        self.state.leading = self.state.connected
            && self.leader_lease.is_some()
            && self.leader_lease == self.lease
            && self
                .state
                .leader
                .as_ref()
                .is_some_and(|(n, _)| *n == self.settings.name);
    }

    /// Takes the leader key when nobody holds it.
    async fn campaign(&mut self, client: &mut Client) -> Result<(), Error> {
        let Some(lease) = self.lease else {
            return Ok(());
        };
        if self.state.leader.is_some() {
            return Ok(());
        }
        let key = self.keys.leader();
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.as_str(),
                self.settings.name.as_str(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let won = self.timed(client.txn(txn)).await??.succeeded();
        if won {
            info!(member = %self.settings.name, "took the leader key");
        }
        Ok(())
    }

    async fn request(&mut self, client: &mut Client, request: Request) -> Result<(), Error> {
        match request {
            Request::View(view) => {
                let key = format!("{}/{}", view.pool, view.node);
                let urgent = self.written.get(&key).is_none_or(|w| !same_state(w, &view));
                self.views.insert(key, view);
                if urgent {
                    self.write_views(client, false).await?;
                }
            }
            Request::Propose(decision) => self.propose(client, decision).await?,
            Request::Drains(drains, reply) => {
                let put = self
                    .timed(client.put(self.keys.drains(), json(&drains), None))
                    .await;
                let result = match put {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("etcd: {e}")),
                    Err(e) => Err(e.to_string()),
                };
                let failed = result.is_err();
                let _ = reply.send(result);
                if failed {
                    return Err(Error::Lost("the drain list could not be written".into()));
                }
            }
            Request::Digest(digest) => {
                self.digest = digest;
                let info = MemberInfo {
                    digest: self.digest.clone(),
                    version: env!("CARGO_PKG_VERSION").into(),
                };
                let options = self.lease.map(|l| PutOptions::new().with_lease(l));
                self.timed(client.put(self.keys.member(&self.settings.name), json(&info), options))
                    .await??;
            }
        }
        Ok(())
    }

    /// Writes the decision if this member still holds the leader key it decided under.
    async fn propose(
        &mut self,
        client: &mut Client,
        decision: super::wire::Agreed,
    ) -> Result<(), Error> {
        let Some(lease) = self.lease else {
            return Ok(());
        };
        let key = self.keys.leader();
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.as_str(), CompareOp::Equal, decision.epoch),
                Compare::lease(key.as_str(), CompareOp::Equal, lease),
            ])
            .and_then([TxnOp::put(self.keys.decision(), json(&decision), None)]);
        // A refused write (too large for etcd's request limit, say) is this decision's
        // problem, not the connection's: the session goes on, and the leader proposes
        // again at its next tick. A lost connection shows in the keepalive.
        match self.timed(client.txn(txn)).await {
            Ok(Ok(written)) if written.succeeded() => {}
            Ok(Ok(_)) => warn!(
                member = %self.settings.name,
                epoch = decision.epoch,
                "decision not written: this member no longer leads"
            ),
            Ok(Err(error)) => error!(
                member = %self.settings.name,
                %error,
                "decision not written: etcd refused it"
            ),
            Err(error) => warn!(member = %self.settings.name, %error, "decision not written"),
        }
        Ok(())
    }

    /// Writes the views that changed since they were last written (all of them when `all`:
    /// a new lease). Called at once when a node's state changed, and once per keepalive,
    /// which writes views whose positions alone moved. A changed reason alone is not
    /// written: it goes with the next change.
    async fn write_views(&mut self, client: &mut Client, all: bool) -> Result<(), Error> {
        let Some(lease) = self.lease else {
            return Ok(());
        };
        if all {
            self.written.clear();
        }
        let changed: Vec<(String, NodeView)> = self
            .views
            .iter()
            .filter(|(k, v)| {
                self.written
                    .get(*k)
                    .is_none_or(|w| !same_state(w, v) || moved(w, v))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, view) in changed {
            let path = self.keys.view(&self.settings.name, &view.pool, &view.node);
            let options = Some(PutOptions::new().with_lease(lease));
            self.timed(client.put(path, json(&view), options)).await??;
            self.written.insert(key, view);
        }
        Ok(())
    }

    /// Cut off: requests are kept for the next session (views) or refused (drains).
    fn offline(&mut self, request: Request) {
        match request {
            Request::View(view) => {
                self.views
                    .insert(format!("{}/{}", view.pool, view.node), view);
            }
            Request::Drains(_, reply) => {
                let _ = reply.send(Err("this member cannot reach etcd".into()));
            }
            Request::Propose(_) => {}
            Request::Digest(digest) => self.digest = digest,
        }
    }

    /// The resumed watch delivered everything missed: connected from now on.
    fn caught_up(&mut self) {
        if self.catching_up.take().is_some() {
            self.contact();
        }
    }

    fn contact(&mut self) {
        self.state.last_contact = Some(Instant::now());
        if self.catching_up.is_some() {
            return;
        }
        let changed = !self.state.connected;
        self.state.connected = true;
        // Back with the lease it had: the leader key may still be its own.
        self.leads();
        self.state.lost_reason = None;
        if changed {
            self.send();
        }
    }

    fn lost(&mut self, reason: &str) {
        if self.state.connected || self.state.lost_reason.is_none() {
            warn!(member = %self.settings.name, reason, "cut off from etcd");
        }
        self.state.connected = false;
        self.state.leading = false;
        self.catching_up = None;
        self.state.lost_reason = Some(reason.to_string());
        self.send();
    }

    fn send(&mut self) {
        self.publish.send_replace(Arc::new(self.state.clone()));
        self.unsent = false;
        // Each send copies the state (O(views)); a burst of watch events (members starting
        // with thousands of nodes) is sent at most once per gap, which grows with it.
        let views: usize = self.state.views.values().map(|v| v.len()).sum();
        let gap = SEND_GAP + Duration::from_micros(views as u64);
        self.send_at = tokio::time::Instant::now() + gap;
    }

    /// Sends now, or at the end of the gap after the last send (a burst).
    fn send_soon(&mut self) {
        if tokio::time::Instant::now() >= self.send_at {
            self.send();
        } else {
            self.unsent = true;
        }
    }

    async fn timed<F: Future>(&self, f: F) -> Result<F::Output, Error> {
        tokio::time::timeout(self.budget, f)
            .await
            .map_err(|_| Error::Timeout(self.budget))
    }
}

/// Two views that differ at most in positions and reason: not worth an immediate write.
fn same_state(a: &NodeView, b: &NodeView) -> bool {
    let strip = |v: &NodeView| {
        v.db.clone().map(|mut db| {
            db.position = None;
            db.gtid = None;
            db
        })
    };
    a.health == b.health && strip(a) == strip(b)
}

/// The replication positions differ.
fn moved(a: &NodeView, b: &NodeView) -> bool {
    let positions = |v: &NodeView| v.db.as_ref().map(|db| (db.position, db.gtid.clone()));
    positions(a) != positions(b)
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Plain data (strings, numbers, maps with string keys): serialising cannot fail.
    serde_json::to_vec(value).expect("cluster values serialise")
}
