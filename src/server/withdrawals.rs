//! Until when a client may still use an answer this hadns published that names a node in
//! a writer record (`select = "primary"` or `"first"`): the moment the answer stopped
//! naming it, plus the record's TTL. A promotion makes its candidate writable only after
//! that for the old primary (`checks::promote::OldPrimary`). Without `[cluster]`; in
//! cluster mode the leader's guard knows it for every member.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::dns::Published;

pub(super) struct Withdrawals {
    /// Per configured record, in order.
    records: Vec<Tracked>,
    /// Per (record name, address): until when the last answer naming it may be used (its
    /// replacement, plus the record's TTL then).
    withdrawn: HashMap<(String, IpAddr), Instant>,
    /// Before this (the start), another process may have named any node.
    since: Instant,
}

struct Tracked {
    name: String,
    ttl: Duration,
    writer: bool,
    /// What its newest published answer names, on any site.
    named: HashSet<IpAddr>,
}

impl Withdrawals {
    pub fn new(config: &Config, now: Instant) -> Withdrawals {
        let mut withdrawals = Withdrawals {
            records: Vec::new(),
            withdrawn: HashMap::new(),
            since: now,
        };
        withdrawals.reload(config, now);
        withdrawals
    }

    /// Follows a new configuration's records (by name): what a removed record named is
    /// withdrawn now.
    pub fn reload(&mut self, config: &Config, now: Instant) {
        let mut before: HashMap<String, Tracked> = (self.records.drain(..))
            .map(|t| (t.name.clone(), t))
            .collect();
        for record in &config.records {
            let named = (before.remove(&record.name)).map_or_else(HashSet::new, |t| t.named);
            self.records.push(Tracked {
                name: record.name.clone(),
                ttl: Duration::from_secs(record.ttl.into()),
                writer: record.select.names_a_writer(),
                named,
            });
        }
        for (name, gone) in before {
            for address in gone.named {
                self.withdrawn
                    .insert((name.clone(), address), now + gone.ttl);
            }
        }
    }

    /// A snapshot of `answers` (one per record) was stored at `now`.
    pub fn published(&mut self, answers: &[Published], now: Instant) {
        for (tracked, answer) in self.records.iter_mut().zip(answers) {
            if !tracked.writer {
                continue;
            }
            let named: HashSet<IpAddr> = std::iter::once(&answer.all)
                .chain(answer.sites.iter().flatten())
                .flat_map(|a| a.nodes().iter().copied())
                .collect();
            for gone in tracked.named.difference(&named) {
                (self.withdrawn).insert((tracked.name.clone(), *gone), now + tracked.ttl);
            }
            for address in &named {
                self.withdrawn.remove(&(tracked.name.clone(), *address));
            }
            tracked.named = named;
        }
    }

    /// Until when an answer naming `address` as a writer may still be used: `None` while
    /// one is served.
    pub fn usable_until(&self, address: IpAddr) -> Option<Instant> {
        let mut until = self.since;
        for tracked in self.records.iter().filter(|t| t.writer) {
            if tracked.named.contains(&address) {
                return None;
            }
            until = until.max(self.since + tracked.ttl);
        }
        let withdrawn = (self.withdrawn.iter()).filter(|((_, a), _)| *a == address);
        Some(withdrawn.fold(until, |until, (_, at)| until.max(*at)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Answer, Sited};

    const CONFIG: &str = r#"
[dns]
listen = ["127.0.0.1:5353"]
zones_dir = "zones"
[[pool]]
name = "db"
check = "tcp"
[[pool.node]]
name = "a"
address = "10.0.0.1"
port = 5432
[[pool.node]]
name = "b"
address = "10.0.0.2"
port = 5432
[[record]]
name = "db.example.internal."
pool = "db"
select = "first"
ttl = 2
[[record]]
name = "healthy.example.internal."
pool = "db"
select = "healthy"
ttl = 30
"#;

    fn config() -> Config {
        Config::from_toml(CONFIG, std::path::Path::new("/etc/hadns")).expect("a valid config")
    }

    fn answer(addresses: &[&str]) -> Published {
        Sited {
            all: Answer::Nodes(addresses.iter().map(|a| a.parse().unwrap()).collect()),
            sites: None,
        }
    }

    #[test]
    fn a_writer_is_usable_until_its_withdrawal_plus_the_ttl() {
        let start = Instant::now();
        let mut w = Withdrawals::new(&config(), start);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        // Before anything is published, another process may have named it.
        assert_eq!(w.usable_until(a), Some(start + Duration::from_secs(2)));
        let t1 = start + Duration::from_secs(10);
        w.published(&[answer(&["10.0.0.1"]), answer(&["10.0.0.1"])], t1);
        assert_eq!(w.usable_until(a), None);
        let t2 = t1 + Duration::from_millis(300);
        w.published(&[answer(&[]), answer(&["10.0.0.1", "10.0.0.2"])], t2);
        // Only the writer record counts (a reader of `healthy` does not write).
        assert_eq!(w.usable_until(a), Some(t2 + Duration::from_secs(2)));
        assert_eq!(w.usable_until(b), Some(start + Duration::from_secs(2)));
    }

    #[test]
    fn a_removed_record_withdraws_what_it_named() {
        let start = Instant::now();
        let mut w = Withdrawals::new(&config(), start);
        let t1 = start + Duration::from_secs(10);
        w.published(&[answer(&["10.0.0.1"]), answer(&[])], t1);
        let mut smaller = config();
        smaller.records.remove(0);
        let t2 = t1 + Duration::from_secs(1);
        w.reload(&smaller, t2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        // Clients may hold the removed record's answer for its TTL.
        assert_eq!(w.usable_until(a), Some(t2 + Duration::from_secs(2)));
    }
}
