//! `[resolver]`: the forwarder every snapshot carries, kept across publications and across
//! reloads that leave `[resolver]` as it was (its cache and the upstreams' health with
//! it), and one check task per upstream: the `dns` check's question every
//! `check_interval`, marking it up (with its round trip) or down.

use std::sync::{Arc, Weak};
use std::time::Instant;

use tracing::{info, warn};

use crate::checks::dns::DnsProber;
use crate::config;
use crate::dns::forward::Forwarder;

#[derive(Default)]
pub struct Resolver {
    forwarder: Option<Arc<Forwarder>>,
    checks: Vec<tokio::task::AbortHandle>,
}

impl Resolver {
    pub fn new(config: Option<&config::Resolver>) -> Resolver {
        let mut resolver = Resolver::default();
        resolver.reload(config);
        resolver
    }

    /// Takes a reloaded `[resolver]`: the same one changes nothing.
    pub fn reload(&mut self, config: Option<&config::Resolver>) {
        if self.forwarder.as_ref().map(|f| &f.config) == config {
            return;
        }
        self.stop();
        self.forwarder = config.map(|config| Arc::new(Forwarder::new(config)));
        if let Some(forwarder) = &self.forwarder {
            for i in 0..forwarder.upstreams.len() {
                let task = tokio::spawn(check(Arc::downgrade(forwarder), i));
                self.checks.push(task.abort_handle());
            }
        }
    }

    pub fn forwarder(&self) -> Option<Arc<Forwarder>> {
        self.forwarder.clone()
    }

    fn stop(&mut self) {
        for task in self.checks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Checks upstream `i` until its forwarder is gone.
async fn check(forwarder: Weak<Forwarder>, i: usize) {
    let Some(f) = forwarder.upgrade() else {
        return;
    };
    let address = f.upstreams[i].address;
    let prober = DnsProber::to(address, &f.config.check);
    let (interval, timeout) = (f.config.check_interval, f.config.timeout);
    drop(f);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        let result = prober.probe(timeout).await;
        let Some(f) = forwarder.upgrade() else {
            return;
        };
        let upstream = &f.upstreams[i];
        match result {
            Ok(detail) => {
                if upstream.answered(started.elapsed()) {
                    info!(upstream = %address, %detail, "resolver upstream up");
                }
            }
            Err(why) => {
                if upstream.failed(why.clone(), true) {
                    warn!(upstream = %address, %why, "resolver upstream down");
                }
            }
        }
    }
}
