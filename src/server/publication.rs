//! Publication: answers become a snapshot, stored with one atomic swap that the DNS
//! workers load per query.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::dns::{Published, Snapshot, SnapshotBuilder, ZoneSet};
use crate::engine::{Answer, Engine, RecordId};

pub struct Publication {
    builder: SnapshotBuilder,
    zone_names: Vec<String>,
    store: Arc<ArcSwap<Snapshot>>,
}

impl Publication {
    /// The first snapshot, with the engine's answers (all pending at start).
    pub fn new(zones: ZoneSet, config: &Config, engine: &Engine) -> Publication {
        let mut builder = SnapshotBuilder::new(zones, &config.records, unix_now());
        let store = Arc::new(ArcSwap::from_pointee(
            builder.build(&published(config, engine)),
        ));
        Publication {
            zone_names: builder.zone_names(),
            builder,
            store,
        }
    }

    /// What the DNS workers read.
    pub fn store(&self) -> Arc<ArcSwap<Snapshot>> {
        self.store.clone()
    }

    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.store.load()
    }

    pub fn zone_names(&self) -> &[String] {
        &self.zone_names
    }

    /// Builds a snapshot of `answers` (one per record) and stores it.
    pub fn publish(&mut self, answers: &[Published]) {
        self.store.store(Arc::new(self.builder.build(answers)));
    }

    /// Builds a snapshot of agreed `answers` whose zones all carry `serial` (cluster mode)
    /// and stores it.
    pub fn publish_at(&mut self, answers: &[Published], serial: u32) {
        self.store
            .store(Arc::new(self.builder.build_at(answers, serial)));
    }

    /// Takes the zones of a reloaded configuration. Every zone's serial goes up, whatever
    /// the files say, so secondaries and caches see that something was reloaded. Nothing
    /// is published until the next `publish`.
    pub fn reload(&mut self, zones: ZoneSet, config: &Config) {
        let highest = self.load().serials().iter().copied().max().unwrap_or(0);
        self.builder = SnapshotBuilder::new(
            zones,
            &config.records,
            unix_now().max(highest.wrapping_add(1)),
        );
        self.zone_names = self.builder.zone_names();
    }
}

/// The engine's answers as addresses, one per configured record.
pub fn published(config: &Config, engine: &Engine) -> Vec<Published> {
    config
        .records
        .iter()
        .enumerate()
        .map(|(i, record)| match engine.answer(RecordId(i)) {
            Answer::Pending => Published::Pending,
            Answer::Nodata => Published::Nodata,
            Answer::Servfail => Published::Servfail,
            Answer::Nodes(nodes) => {
                let pool = &config.pools[record.pool.0];
                Published::Addresses(nodes.iter().map(|&n| pool.nodes[n].address).collect())
            }
        })
        .collect()
}

pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1)
}
