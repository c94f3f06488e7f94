//! The member task: one session with etcd at a time. A session grants (or keeps) this
//! member's lease and renews it three times per lease, writes the member key and this
//! member's views under it, reads the prefix and watches it from the revision it read,
//! campaigns when there is no leader, and writes the leader's decisions in a transaction
//! guarded by its leadership and by the decision they follow. A session talks to one etcd
//! endpoint, the next one after each loss. Any failure ends the session: the state says
//! the member is cut off (and keeps what it knew), and a new session starts after a short
//! wait, its watch resuming from the last revision seen. A watch whose revision etcd
//! compacted away reads the prefix again and watches from there.

mod connect;
mod content;
mod served;
mod writers;
mod writes;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, EventType, PutOptions, WatchResponse, WatchStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub(crate) use writers::Writers;

use super::state::{Request, State, keepalive_interval};
use super::wire::{Keys, NodeView};
use crate::api::deadline::Leadership;
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
    mut writers: Writers,
    leadership: Arc<Leadership>,
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
        unanswered: VecDeque::new(),
        decision_revision: 0,
        decision_key: 0,
        wrote: None,
        served: 0,
        acked: 0,
        leadership,
    };
    // One endpoint per session, the next one after each loss: a session's streams (the
    // keepalive, the watch) stay on one connection, so a member whose etcd member went
    // silent (cut off from the others, or a dead host that sends no reset) must leave it
    // for another, not keep a balanced client whose requests still land there.
    for endpoint in (0..member.settings.etcd.len()).cycle() {
        let endpoint = member.settings.etcd[endpoint].clone();
        member.state.endpoint = Some(endpoint.clone());
        match member
            .session(&endpoint, &mut inbox, &mut writers, &shutdown)
            .await
        {
            Ok(()) => return,
            Err(error) => member.lost(&format!("{endpoint}: {error}")),
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
    /// When each keepalive of this session not yet answered was sent (etcd answers them
    /// in order).
    unanswered: VecDeque<Instant>,
    /// The revision at which the current decision was written.
    decision_revision: i64,
    /// The decision key's last revision, readable or not (0: absent).
    decision_key: i64,
    /// The sequence number and revision of the last decision this member wrote.
    wrote: Option<(u64, i64)>,
    /// The newest decision the supervisor has published, and the one etcd was told of
    /// under the current lease (`served.rs`).
    served: u64,
    acked: u64,
    /// The leadership held, for promotion steps (`Leadership`).
    leadership: Arc<Leadership>,
}

impl Member {
    async fn session(
        &mut self,
        endpoint: &str,
        inbox: &mut mpsc::UnboundedReceiver<Request>,
        writers: &mut Writers,
        shutdown: &CancellationToken,
    ) -> Result<(), Error> {
        let mut client = self
            .timed(Client::connect([endpoint], Some(self.options()?)))
            .await??;
        let lease = self.lease(&mut client).await?;
        let (mut keeper, mut keepalive) = self.timed(client.lease_keep_alive(lease)).await??;
        self.unanswered.clear();
        // Back after a cut, the watch resumes where it stopped and etcd replays what was
        // missed, unless it compacted that revision away: then the member reads again.
        let resumed = self.state.revision != 0;
        let mut watch = match self.state.revision {
            0 => self.load(&mut client).await?,
            seen => self.watch_from(&mut client, seen + 1).await?,
        };
        self.register(&mut client, lease, resumed).await?;
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
                    self.unanswered.push_back(Instant::now());
                    self.timed(keeper.keep_alive()).await??;
                    self.write_views(&mut client, false).await?;
                }
                answer = keepalive.message() => match answer? {
                    Some(answer) if answer.ttl() > 0 => {
                        let sent = self.unanswered.pop_front();
                        self.contact();
                        // Caught up only: a resumed watch may still bring a newer decision.
                        if let Some(sent) = sent.filter(|_| self.catching_up.is_none()) {
                            writers.confirmed(sent, self.state.revision, &self.settings);
                        }
                    }
                    Some(_) => {
                        self.lease = None;
                        return Err(Error::Lost("etcd expired this member's lease".into()));
                    }
                    None => return Err(Error::Lost("the keepalive stream ended".into())),
                },
                message = watch.message() => match message? {
                    Some(m) => self.on_watch(&mut client, &mut watch, m).await?,
                    None => return Err(Error::Lost("the watch ended".into())),
                },
                Some(request) = inbox.recv() => self.request(&mut client, request).await?,
                Ok(()) = writers.served.changed() => {
                    writers.advance(&self.settings);
                    let published = *writers.served.borrow();
                    self.acknowledge(&mut client, published).await?;
                }
            }
        }
    }

    /// Reads what the watch brings into the state (or reads everything again after a
    /// compaction), then campaigns.
    async fn on_watch(
        &mut self,
        client: &mut Client,
        watch: &mut WatchStream,
        m: WatchResponse,
    ) -> Result<(), Error> {
        if m.canceled() || m.compact_revision() != 0 {
            warn!(
                revision = self.state.revision,
                compacted = m.compact_revision(),
                "etcd compacted past the watch: reading again"
            );
            self.state.resyncs += 1;
            *watch = self.load(client).await?;
            self.caught_up();
            self.campaign(client).await?;
            return Ok(());
        }
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
        self.campaign(client).await?;
        Ok(())
    }

    /// This member's key (refused while another live member has its name), its views,
    /// the first campaign.
    async fn register(
        &mut self,
        client: &mut Client,
        lease: i64,
        resumed: bool,
    ) -> Result<(), Error> {
        let info = self.info();
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
        self.acked = info.served;
        // Until the replay reaches this write, what the member knows is old: it is not
        // connected yet (it would serve, or hold vips for, an old decision). etcd delivers
        // a watch's events in revision order, so seeing this write means the rest came.
        if resumed {
            self.catching_up = put.header().map(|h| h.revision());
        }
        self.write_views(client, true).await?;
        self.contact();
        info!(member = %self.settings.name, lease, "connected to etcd");
        self.campaign(client).await?;
        Ok(())
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
        self.leadership.set(None);
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
    a.health == b.health && a.refused == b.refused && strip(a) == strip(b)
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
