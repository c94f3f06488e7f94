//! GTID positions of MySQL and MariaDB, to tell how many transactions a replica misses and
//! whether it has some that its primary has not (it diverged).

use std::collections::BTreeMap;
use std::fmt;

/// A server's GTID position.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Gtid {
    /// MariaDB `gtid_current_pos`: per replication domain, the server id and sequence
    /// number of the last transaction (`0-1-9,1-3-4`).
    Mariadb(BTreeMap<u32, (u32, u64)>),
    /// MySQL `gtid_executed`: per source UUID (and tag), the transaction numbers as
    /// inclusive intervals (`3e11fa47-...:1-5:11-18`).
    Mysql(BTreeMap<String, Vec<(u64, u64)>>),
}

impl Gtid {
    /// Parses MariaDB's `domain-server-sequence[,...]`; an empty text is an empty position.
    pub fn parse_mariadb(text: &str) -> Result<Gtid, String> {
        let mut domains = BTreeMap::new();
        for (domain, server, sequence) in mariadb_gtids(text)? {
            domains.insert(domain, (server, sequence));
        }
        Ok(Gtid::Mariadb(domains))
    }

    /// Parses MySQL's `uuid[:tag]:interval[:interval...][,...]` (newlines allowed).
    pub fn parse_mysql(text: &str) -> Result<Gtid, String> {
        let mut sets: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || format!("{part:?} is not a MySQL GTID set");
            let mut fields = part.split(':');
            let uuid = fields.next().filter(|u| !u.is_empty()).ok_or_else(bad)?;
            let mut key = uuid.to_ascii_lowercase();
            for field in fields {
                if field.starts_with(|c: char| c.is_ascii_digit()) {
                    let (start, end) = field.split_once('-').unwrap_or((field, field));
                    let (start, end) = (
                        start.parse::<u64>().map_err(|_| bad())?,
                        end.parse::<u64>().map_err(|_| bad())?,
                    );
                    if end < start {
                        return Err(bad());
                    }
                    sets.entry(key.clone()).or_default().push((start, end));
                } else {
                    // MySQL 8.3 tags: the intervals that follow belong to `uuid:tag`.
                    key = format!("{}:{}", uuid.to_ascii_lowercase(), field);
                }
            }
        }
        for intervals in sets.values_mut() {
            intervals.sort_unstable();
        }
        Ok(Gtid::Mysql(sets))
    }

    /// How many transactions the position holds (MariaDB: the sum of the sequence numbers,
    /// which count a domain's transactions).
    pub fn transactions(&self) -> u64 {
        match self {
            Gtid::Mariadb(domains) => domains.values().map(|(_, seq)| seq).sum(),
            Gtid::Mysql(sets) => sets
                .values()
                .flatten()
                .map(|(start, end)| end - start + 1)
                .sum(),
        }
    }

    /// Whether every transaction of `self` is also in `primary`, as far as positions tell:
    /// MariaDB compares each domain's sequence (and, at the same sequence, the server that
    /// wrote it); MySQL checks that each interval is covered.
    pub fn within(&self, primary: &Gtid) -> bool {
        match (self, primary) {
            (Gtid::Mariadb(mine), Gtid::Mariadb(theirs)) => {
                mine.iter().all(|(domain, &(server, seq))| {
                    theirs
                        .get(domain)
                        .is_some_and(|&(their_server, their_seq)| {
                            seq < their_seq || (seq == their_seq && server == their_server)
                        })
                })
            }
            (Gtid::Mysql(mine), Gtid::Mysql(theirs)) => mine.iter().all(|(key, intervals)| {
                let covering = theirs.get(key).map(Vec::as_slice).unwrap_or_default();
                intervals
                    .iter()
                    .all(|&(start, end)| covered(start, end, covering))
            }),
            _ => false,
        }
    }
}

/// Each `domain-server-sequence` of a MariaDB GTID list (a position, or a binlog state
/// with one per domain and server), in order.
pub fn mariadb_gtids(text: &str) -> Result<Vec<(u32, u32, u64)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let numbers: Vec<&str> = part.split('-').collect();
            let parsed = match numbers.as_slice() {
                [d, s, n] => (|| Some((d.parse().ok()?, s.parse().ok()?, n.parse().ok()?)))(),
                _ => None,
            };
            parsed.ok_or_else(|| format!("{part:?} is not a MariaDB GTID"))
        })
        .collect()
}

impl Gtid {
    /// Every transaction of either position: MariaDB keeps each domain's later sequence,
    /// MySQL joins the intervals. Positions of different kinds give `self`.
    pub fn union(&self, other: &Gtid) -> Gtid {
        match (self, other) {
            (Gtid::Mariadb(mine), Gtid::Mariadb(theirs)) => {
                let mut domains = mine.clone();
                for (&domain, &(server, seq)) in theirs {
                    let entry = domains.entry(domain).or_insert((server, seq));
                    if seq > entry.1 {
                        *entry = (server, seq);
                    }
                }
                Gtid::Mariadb(domains)
            }
            (Gtid::Mysql(mine), Gtid::Mysql(theirs)) => {
                let mut sets = mine.clone();
                for (key, intervals) in theirs {
                    let set = sets.entry(key.clone()).or_default();
                    set.extend(intervals);
                    set.sort_unstable();
                    let mut joined: Vec<(u64, u64)> = Vec::with_capacity(set.len());
                    for &(s, e) in set.iter() {
                        match joined.last_mut() {
                            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                            _ => joined.push((s, e)),
                        }
                    }
                    *set = joined;
                }
                Gtid::Mysql(sets)
            }
            _ => self.clone(),
        }
    }

    /// What `self` (a replica) has that `primary` (its primary as last seen, whose own
    /// server id or UUID is `server`) never had, as far as positions tell; `None` when
    /// nothing. Transactions the primary wrote after it was last seen are not errant: a
    /// MariaDB domain's later sequence written by the primary's server, a MySQL set's
    /// transactions of the primary's UUID above its last one.
    pub fn errant(&self, primary: &Gtid, server: Option<&str>) -> Option<String> {
        let bad: Vec<String> = match (self, primary) {
            (Gtid::Mariadb(mine), Gtid::Mariadb(theirs)) => mine
                .iter()
                .filter(|&(domain, &(s, seq))| {
                    let own = server == Some(s.to_string().as_str());
                    match theirs.get(domain) {
                        None => !own,
                        Some(&(their_server, their_seq)) => {
                            (seq == their_seq && s != their_server) || (seq > their_seq && !own)
                        }
                    }
                })
                .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
                .collect(),
            (Gtid::Mysql(mine), Gtid::Mysql(theirs)) => {
                let mut bad = Vec::new();
                for (key, intervals) in mine {
                    let covering = theirs.get(key).map(Vec::as_slice).unwrap_or_default();
                    let own = server.is_some_and(|u| key.split(':').next() == Some(u));
                    let last = covering.last().map_or(0, |&(_, e)| e);
                    for &(start, end) in intervals {
                        let known_end = if own { end.min(last) } else { end };
                        if start <= known_end && !covered(start, known_end, covering) {
                            bad.push(format!("{key}:{start}-{end}"));
                        }
                    }
                }
                bad
            }
            _ => vec!["positions of another kind".into()],
        };
        (!bad.is_empty()).then(|| bad.join(","))
    }
}

/// Whether `start..=end` lies within the sorted intervals `set` (adjacent ones joined).
fn covered(start: u64, end: u64, set: &[(u64, u64)]) -> bool {
    let mut next = start;
    for &(s, e) in set {
        if s > next {
            break;
        }
        if e >= next {
            if e >= end {
                return true;
            }
            next = e + 1;
        }
    }
    false
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::Mariadb(domains) => {
                let parts: Vec<String> = domains
                    .iter()
                    .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
                    .collect();
                f.write_str(&parts.join(","))
            }
            Gtid::Mysql(sets) => {
                let parts: Vec<String> = sets
                    .iter()
                    .map(|(key, intervals)| {
                        let ranges: Vec<String> = intervals
                            .iter()
                            .map(|(s, e)| {
                                if s == e {
                                    s.to_string()
                                } else {
                                    format!("{s}-{e}")
                                }
                            })
                            .collect();
                        format!("{key}:{}", ranges.join(":"))
                    })
                    .collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_positions_compare_by_domain() {
        let primary = Gtid::parse_mariadb("0-2-10,1-5-3").unwrap();
        let behind = Gtid::parse_mariadb("0-1-9").unwrap();
        assert!(behind.within(&primary));
        assert_eq!(primary.transactions() - behind.transactions(), 4);
        // The same sequence written by another server: the histories differ.
        assert!(!Gtid::parse_mariadb("0-1-10").unwrap().within(&primary));
        assert!(!Gtid::parse_mariadb("0-2-11").unwrap().within(&primary));
        assert!(!Gtid::parse_mariadb("7-1-1").unwrap().within(&primary));
        assert!(Gtid::parse_mariadb("").unwrap().within(&primary));
        assert_eq!(
            Gtid::parse_mariadb("0-2-10, 1-5-3").unwrap().to_string(),
            "0-2-10,1-5-3"
        );
        assert!(Gtid::parse_mariadb("0-2").is_err());
        assert!(Gtid::parse_mariadb("a-b-c").is_err());
    }

    #[test]
    fn a_replica_is_errant_only_with_what_its_primary_never_wrote() {
        let primary = Gtid::parse_mariadb("0-3-10").unwrap();
        let m = |t: &str| Gtid::parse_mariadb(t).unwrap();
        let errant = |t: &str| m(t).errant(&primary, Some("1"));
        assert_eq!(errant("0-3-8"), None);
        assert_eq!(errant("0-3-10"), None);
        // Written by the primary (server 1) after hadns last saw it: received, not errant.
        assert_eq!(errant("0-1-12"), None);
        assert_eq!(errant("0-2-11"), Some("0-2-11".into()));
        assert_eq!(errant("0-2-10"), Some("0-2-10".into()));
        assert_eq!(errant("0-3-10,5-2-1"), Some("5-2-1".into()));
        assert_eq!(errant("0-3-10,5-1-1"), None);
        assert_eq!(
            m("0-1-12").union(&m("0-1-9,1-3-2")).to_string(),
            "0-1-12,1-3-2"
        );
        let mysql = Gtid::parse_mysql("p:1-10,old:1-3").unwrap();
        let y = |t: &str| Gtid::parse_mysql(t).unwrap();
        let errant = |t: &str| y(t).errant(&mysql, Some("p"));
        assert_eq!(errant("p:1-8,old:1-3"), None);
        assert_eq!(errant("p:1-14"), None);
        assert_eq!(errant("p:1-10,r:1"), Some("r:1-1".into()));
        assert_eq!(errant("old:1-4"), Some("old:1-4".into()));
        assert_eq!(errant("q:1"), Some("q:1-1".into()));
        assert_eq!(y("p:1-3").union(&y("p:4-6:9")).to_string(), "p:1-6:9");
    }

    #[test]
    fn mysql_sets_compare_by_interval() {
        let uuid = "3E11FA47-71CA-11E1-9E33-C80AA9429562";
        let primary = Gtid::parse_mysql(&format!("{uuid}:1-5:7-10,\nabc:1-3")).unwrap();
        assert_eq!(primary.transactions(), 12);
        assert!(
            Gtid::parse_mysql(&format!("{uuid}:1-4"))
                .unwrap()
                .within(&primary)
        );
        assert!(
            Gtid::parse_mysql(&format!("{uuid}:8-10,abc:2"))
                .unwrap()
                .within(&primary)
        );
        // Transaction 6 never ran on the primary: an errant transaction.
        assert!(
            !Gtid::parse_mysql(&format!("{uuid}:1-6"))
                .unwrap()
                .within(&primary)
        );
        assert!(!Gtid::parse_mysql("other:1").unwrap().within(&primary));
        // Adjacent intervals cover a range that spans them.
        let split = Gtid::parse_mysql("u:1-3:4-6").unwrap();
        assert!(Gtid::parse_mysql("u:2-5").unwrap().within(&split));
        // Tags (MySQL 8.3) are their own sets.
        let tagged = Gtid::parse_mysql("u:1-3:web:1-2").unwrap();
        assert_eq!(tagged.transactions(), 5);
        assert!(Gtid::parse_mysql("u:web:2").unwrap().within(&tagged));
        assert!(!Gtid::parse_mysql("u:web:3").unwrap().within(&tagged));
        assert!(Gtid::parse_mysql("u:5-1").is_err());
        assert!(Gtid::parse_mysql(":1").is_err());
        // A MariaDB position is never within a MySQL set.
        assert!(!Gtid::parse_mariadb("0-1-1").unwrap().within(&primary));
    }
}
