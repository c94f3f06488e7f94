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
use crate::engine::RecordId;

pub(super) struct Withdrawals {
    /// Per configured record, in order.
    records: Vec<Tracked>,
    /// Per (pool, record name, address): until when the last answer naming it may be used
    /// (its replacement, plus the record's TTL then).
    withdrawn: HashMap<(String, String, IpAddr), Instant>,
    /// Before this (the start), another process may have named any node.
    since: Instant,
}

struct Tracked {
    name: String,
    /// Its pool: a node of another pool may have the same address (another port).
    pool: String,
    ttl: Duration,
    writer: bool,
    /// What its newest published answer names, on any site.
    named: HashSet<IpAddr>,
}

impl Tracked {
    fn key(&self, address: IpAddr) -> (String, String, IpAddr) {
        (self.pool.clone(), self.name.clone(), address)
    }
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

    /// Follows a new configuration's records (by name and pool): what a removed record
    /// named is withdrawn now.
    pub fn reload(&mut self, config: &Config, now: Instant) {
        let mut before: HashMap<String, Tracked> = (self.records.drain(..))
            .map(|t| (t.name.clone(), t))
            .collect();
        for (r, record) in config.records.iter().enumerate() {
            let pool = config.record_pool(RecordId(r)).name.clone();
            let kept = before.remove(&record.name);
            let (named, gone) = match kept {
                Some(t) if t.pool == pool => (t.named, None),
                other => (HashSet::new(), other),
            };
            before.extend(gone.map(|t| (t.name.clone(), t)));
            self.records.push(Tracked {
                name: record.name.clone(),
                pool,
                ttl: Duration::from_secs(record.ttl.into()),
                writer: record.select.names_a_writer(),
                named,
            });
        }
        for gone in before.into_values() {
            for address in &gone.named {
                self.withdrawn.insert(gone.key(*address), now + gone.ttl);
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
                self.withdrawn.insert(tracked.key(*gone), now + tracked.ttl);
            }
            for address in &named {
                self.withdrawn.remove(&tracked.key(*address));
            }
            tracked.named = named;
        }
    }

    /// Until when an answer of `pool` naming `address` as a writer may still be used:
    /// `None` while one is served.
    pub fn usable_until(&self, pool: &str, address: IpAddr) -> Option<Instant> {
        let mut until = self.since;
        for tracked in (self.records.iter()).filter(|t| t.writer && t.pool == pool) {
            if tracked.named.contains(&address) {
                return None;
            }
            until = until.max(self.since + tracked.ttl);
        }
        let withdrawn = (self.withdrawn.iter()).filter(|((p, _, a), _)| p == pool && *a == address);
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
        assert_eq!(
            w.usable_until("db", a),
            Some(start + Duration::from_secs(2))
        );
        let t1 = start + Duration::from_secs(10);
        w.published(&[answer(&["10.0.0.1"]), answer(&["10.0.0.1"])], t1);
        assert_eq!(w.usable_until("db", a), None);
        let t2 = t1 + Duration::from_millis(300);
        w.published(&[answer(&[]), answer(&["10.0.0.1", "10.0.0.2"])], t2);
        // Only the writer record counts (a reader of `healthy` does not write).
        assert_eq!(w.usable_until("db", a), Some(t2 + Duration::from_secs(2)));
        assert_eq!(
            w.usable_until("db", b),
            Some(start + Duration::from_secs(2))
        );
    }

    #[test]
    fn another_pool_on_the_same_address_does_not_count() {
        let text = format!(
            "{CONFIG}[[pool]]\nname = \"other\"\ncheck = \"tcp\"\n[[pool.node]]\n\
             name = \"o\"\naddress = \"10.0.0.1\"\nport = 3307\n[[record]]\n\
             name = \"other.example.internal.\"\npool = \"other\"\nselect = \"first\"\n"
        );
        let config = Config::from_toml(&text, std::path::Path::new("/etc/hadns")).unwrap();
        let start = Instant::now();
        let mut w = Withdrawals::new(&config, start);
        let t1 = start + Duration::from_secs(10);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        w.published(&[answer(&[]), answer(&[]), answer(&["10.0.0.1"])], t1);
        assert_eq!(
            w.usable_until("db", a),
            Some(start + Duration::from_secs(2))
        );
        assert_eq!(w.usable_until("other", a), None);
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
        assert_eq!(w.usable_until("db", a), Some(t2 + Duration::from_secs(2)));
    }
}
