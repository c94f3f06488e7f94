//! Publication: answers become a snapshot, stored with one atomic swap that the DNS
//! workers load per query.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tracing::error;

use crate::api::deadline::Deadline;
use crate::config::Config;
use crate::dns::{Published, Snapshot, SnapshotBuilder, ZoneSet};
use crate::engine::{Engine, RecordId};

pub struct Publication {
    builder: SnapshotBuilder,
    zone_names: Vec<String>,
    store: Arc<ArcSwap<Snapshot>>,
    serials: super::serials::Serials,
    /// Ticks after every snapshot stored (for NOTIFY).
    published: tokio::sync::watch::Sender<()>,
    /// Cluster mode: until when the writer records may be answered (the member task
    /// moves it on); they answer SERVFAIL after it, whatever was published.
    writers: Arc<Deadline>,
    /// `[resolver]`: the forwarder the snapshots carry, and its upstreams' checks.
    resolver: super::resolver::Resolver,
    /// When the last snapshot was stored: the time of the events it carries out, so that
    /// the timeline's 0 is the publication, not the moment its events were logged after it.
    published_at: std::time::SystemTime,
    /// Until when clients may use what was published of each writer (promotion waits).
    withdrawals: super::withdrawals::Withdrawals,
}

impl Publication {
    /// The first snapshot, with the engine's answers (all pending at start). Each zone's
    /// serial starts at the highest of its file's, the Unix time and what `serials`
    /// reserved; the next reservation is written before the snapshot is served.
    pub fn new(
        zones: ZoneSet,
        config: &Config,
        engine: &Engine,
        serials: super::serials::Serials,
    ) -> Publication {
        let mut builder =
            SnapshotBuilder::new(zones, &config.records, unix_now(), config.transfer.as_ref());
        builder.set_sites(config.sites.clone());
        let resolver = super::resolver::Resolver::new(config.resolver.as_ref());
        builder.set_resolver(resolver.forwarder());
        let writers = Arc::new(Deadline::passed());
        builder.set_guard(writers.clone(), &config.guarded_records());
        builder.raise_serials(|origin| serials.floor(origin));
        let store = Arc::new(ArcSwap::from_pointee(
            builder.build(&published(config, engine)),
        ));
        let mut publication = Publication {
            zone_names: builder.zone_names(),
            builder,
            store,
            serials,
            published: tokio::sync::watch::Sender::new(()),
            writers,
            resolver,
            published_at: std::time::SystemTime::now(),
            withdrawals: super::withdrawals::Withdrawals::new(config, Instant::now()),
        };
        publication.reserve();
        if config.dns.serial_file.is_none() {
            let now = unix_now();
            let snapshot = publication.load();
            for (zone, serial) in publication.zone_names.iter().zip(snapshot.serials()) {
                if crate::dns::serial_after(*serial, now) {
                    tracing::warn!(%zone, serial, "the zone's serial is above the Unix time and no dns.serial_file keeps it: after a restart it starts again from the file's, and secondaries ignore changes until it passes their copy");
                }
            }
        }
        publication
    }

    /// Until when the writer records may be answered (cluster mode).
    pub fn writers(&self) -> Arc<Deadline> {
        self.writers.clone()
    }

    /// Reserves serials ahead when a zone reached its reservation. A file that cannot be
    /// written is logged, not fatal: answers matter more than a secondary's serial.
    fn reserve(&mut self) {
        let snapshot = self.store.load();
        let serials = self
            .zone_names
            .iter()
            .map(String::as_str)
            .zip(snapshot.serials().iter().copied());
        if let Err(problem) = self.serials.reserve(serials) {
            error!(%problem, "cannot reserve SOA serials: after a restart they may go back");
        }
    }

    /// Changes after every snapshot stored.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<()> {
        self.published.subscribe()
    }

    /// What the DNS workers read.
    pub fn store(&self) -> Arc<ArcSwap<Snapshot>> {
        self.store.clone()
    }

    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.store.load()
    }

    /// When the last snapshot was stored.
    pub fn published_at(&self) -> std::time::SystemTime {
        self.published_at
    }

    pub fn zone_names(&self) -> &[String] {
        &self.zone_names
    }

    /// Builds a snapshot of `answers` (one per record) and stores it.
    pub fn publish(&mut self, answers: &[Published]) {
        self.store.store(Arc::new(self.builder.build(answers)));
        self.stored(answers);
    }

    /// Builds a snapshot of agreed `answers` whose zones all carry `serial` (cluster mode)
    /// and stores it.
    pub fn publish_at(&mut self, answers: &[Published], serial: u32) {
        self.store
            .store(Arc::new(self.builder.build_at(answers, serial)));
        self.stored(answers);
    }

    fn stored(&mut self, answers: &[Published]) {
        self.published_at = std::time::SystemTime::now();
        self.withdrawals.published(answers, Instant::now());
        self.reserve();
        self.published.send_replace(());
    }

    /// Until when a client may still use an answer of `pool` published here that names
    /// `address` as a writer (`None`: one is served now).
    pub fn writer_usable_until(&self, pool: &str, address: std::net::IpAddr) -> Option<Instant> {
        self.withdrawals.usable_until(pool, address)
    }

    /// Takes the zones of a reloaded configuration. Every zone's serial goes up, whatever
    /// its file says (each zone from its own: a zone kept is at least its serial + 1; a
    /// new one starts as at start), so secondaries and caches see that something was
    /// reloaded. Nothing is published until the next `publish`.
    pub fn reload(&mut self, zones: ZoneSet, config: &Config) {
        let snapshot = self.load();
        let before: std::collections::HashMap<String, u32> = self
            .zone_names
            .iter()
            .cloned()
            .zip(
                snapshot
                    .serials()
                    .iter()
                    .map(|&s| crate::dns::serial_next(s)),
            )
            .collect();
        drop(snapshot);
        self.builder =
            SnapshotBuilder::new(zones, &config.records, unix_now(), config.transfer.as_ref());
        self.builder.set_sites(config.sites.clone());
        self.resolver.reload(config.resolver.as_ref());
        self.builder.set_resolver(self.resolver.forwarder());
        (self.builder).set_guard(self.writers.clone(), &config.guarded_records());
        let serials = &self.serials;
        self.builder
            .raise_serials(|origin| before.get(origin).copied().or(serials.floor(origin)));
        self.zone_names = self.builder.zone_names();
        self.withdrawals.reload(config, Instant::now());
    }
}

/// The engine's answers as addresses, one per configured record.
pub fn published(config: &Config, engine: &Engine) -> Vec<Published> {
    (0..config.records.len())
        .map(|r| {
            let pool = config.record_pool(RecordId(r));
            engine
                .sited(config, RecordId(r))
                .map(|&n| pool.nodes[n].address)
        })
        .collect()
}

pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
}
