//! What makes a read-only node a fresh replica: it replicates from the pool's published
//! primary, and its position is close to the primary's.
//!
//! The primary's positions are kept as hadns observed them, with the (virtual) time of each
//! observation. A replica's byte or transaction lag is the primary's latest position minus
//! its own; its time lag is the time from the last observation of the primary at or before
//! the replica's position to the replica's own probe: everything the primary wrote after
//! that moment may be missing. That errs long by at most one check interval (so a replica
//! that stopped leaves within `max_lag` plus one interval), and uses hadns's clock only:
//! neither the replica's idea of time nor its view of itself (a standby that receives
//! nothing looks perfectly up to date to itself).
//!
//! When no primary is published (it went down, or is being replaced), replicas are compared
//! with what the last one reported, and their time lag counts from when it was last seen:
//! hadns cannot tell what a primary it cannot see has written since.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use super::gtid::Gtid;

/// The most positions kept per pool; older ones are merged pairwise when there are more.
const HISTORY: usize = 4096;

/// How a node replicates, as its server reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Replication {
    /// Receiving and applying now: PostgreSQL's WAL receiver is streaming; MySQL's IO and
    /// SQL threads are both running.
    pub running: bool,
    /// Connected to its source and receiving (MySQL's IO thread `Yes`, PostgreSQL's WAL
    /// receiver streaming), whether or not it applies: proof that the source is alive.
    #[serde(default)]
    pub receiving: bool,
    /// The server's words for the state (`streaming`, `IO thread Connecting, SQL thread Yes`).
    pub state: String,
    /// The source's host as the server names it (an address, a name, or a socket
    /// directory), and its port.
    pub source_host: String,
    pub source_port: Option<u16>,
    /// The addresses `source_host` resolved to (the checker resolves it after the probe).
    pub source_addresses: Vec<IpAddr>,
}

impl Replication {
    /// `host:port`, for messages.
    pub fn source(&self) -> String {
        format!(
            "{}:{}",
            self.source_host,
            self.source_port.unwrap_or_default()
        )
    }
}

/// The primary that a pool's replicas are compared with, and what it reported.
#[derive(Debug, Clone)]
pub(super) struct Reference {
    pub node: usize,
    /// It is the pool's published primary now; when not, replicas are compared with what
    /// it last reported.
    pub current: bool,
    /// When it was last observed.
    pub last_seen: Duration,
    /// `(when, position)` each time the position was seen to advance, oldest first.
    history: VecDeque<(Duration, u64)>,
    gtid: Option<Gtid>,
    /// Its own server id or UUID (MySQL/MariaDB): transactions it wrote after it was last
    /// seen carry it, and are not a replica's divergence.
    pub server: Option<String>,
}

/// How far a replica is behind the reference primary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Bytes of WAL (PostgreSQL) or transactions (MySQL/MariaDB).
    pub behind: u64,
    pub time: Duration,
}

impl Reference {
    pub fn new(node: usize, at: Duration, position: Option<u64>, gtid: Option<Gtid>) -> Reference {
        let mut reference = Reference {
            node,
            current: true,
            last_seen: at,
            history: VecDeque::new(),
            gtid: None,
            server: None,
        };
        reference.observe(at, position, gtid);
        reference
    }

    /// The primary was observed at `at` with `position`.
    pub fn observe(&mut self, at: Duration, position: Option<u64>, gtid: Option<Gtid>) {
        self.current = true;
        self.last_seen = at;
        self.gtid = gtid;
        let Some(position) = position else {
            return;
        };
        match self.history.back() {
            Some(&(_, last)) if position == last => {}
            // Positions never go back on one primary: it was restored or rebuilt, and what
            // it reported before says nothing about it now.
            Some(&(_, last)) if position < last => {
                self.history.clear();
                self.history.push_back((at, position));
            }
            _ => self.history.push_back((at, position)),
        }
        if self.history.len() > HISTORY {
            self.thin();
        }
    }

    /// Drops every second entry of the older half: the entry found for a position can only
    /// be an earlier one, so a time lag read from them comes out longer, never shorter.
    fn thin(&mut self) {
        let half = self.history.len() / 2;
        let older: Vec<(Duration, u64)> = self.history.drain(..half).collect();
        for &entry in older.iter().step_by(2).rev() {
            self.history.push_front(entry);
        }
    }

    /// The replica with `position` (and `gtid`), observed at `seen`, compared at `now`.
    /// How far `received` (a replica's received position) was behind this primary when it
    /// was last seen: what a promotion of that replica loses at most, as far as hadns saw.
    pub fn lost_at_promotion(&self, received: u64) -> Option<Lag> {
        let &(_, latest) = self.history.back()?;
        let at_or_before = self.history.iter().rposition(|&(_, p)| p <= received);
        let time = match at_or_before {
            Some(i) if i + 1 == self.history.len() => Duration::ZERO,
            Some(i) => self.last_seen.saturating_sub(self.history[i].0),
            None => self.last_seen.saturating_sub(self.history[0].0),
        };
        Some(Lag {
            behind: latest.saturating_sub(received),
            time,
        })
    }

    pub fn lag(
        &self,
        position: u64,
        gtid: Option<&Gtid>,
        seen: Duration,
        now: Duration,
    ) -> Result<Lag, String> {
        let &(_, latest) = self
            .history
            .back()
            .ok_or("the primary reports no position to compare with")?;
        if let (Some(mine), Some(primary)) = (gtid, &self.gtid)
            && let Some(errant) = mine.errant(primary, self.server.as_deref())
        {
            return Err(format!(
                "has transactions the primary has not (GTID {errant}; the primary at \
                 {primary}): it diverged"
            ));
        }
        // The last time the primary was seen at or before the replica's position.
        let at_or_before = self.history.iter().rposition(|&(_, p)| p <= position);
        let time = match at_or_before {
            // Caught up with the latest position: current, or as old as that position.
            Some(i) if i + 1 == self.history.len() => {
                if self.current {
                    Duration::ZERO
                } else {
                    now.saturating_sub(self.last_seen)
                }
            }
            Some(i) => seen.saturating_sub(self.history[i].0),
            // Behind everything hadns has seen: at least since the first of it.
            None => seen.saturating_sub(self.history[0].0),
        };
        Ok(Lag {
            behind: latest.saturating_sub(position),
            time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn time_lag_counts_from_when_the_primary_passed_the_replica() {
        let mut r = Reference::new(0, ms(0), Some(100), None);
        r.observe(ms(1000), Some(200), None);
        r.observe(ms(2000), Some(300), None);
        // Caught up with the latest position.
        assert_eq!(r.lag(300, None, ms(2100), ms(2100)).unwrap().time, ms(0));
        // Stuck at 150: the primary was last seen at or before it at 0 s.
        let lag = r.lag(150, None, ms(2500), ms(2600)).unwrap();
        assert_eq!((lag.behind, lag.time), (150, ms(2500)));
        assert_eq!(r.lag(200, None, ms(2500), ms(2600)).unwrap().time, ms(1500));
        // Before anything the primary has been seen at: at least since the first entry.
        assert_eq!(r.lag(50, None, ms(2000), ms(2000)).unwrap().time, ms(2000));
        // The primary is gone: a caught-up replica ages from when it was last seen.
        r.current = false;
        assert_eq!(r.lag(300, None, ms(2500), ms(5000)).unwrap().time, ms(3000));
    }

    #[test]
    fn a_position_that_goes_back_restarts_the_history() {
        let mut r = Reference::new(0, ms(0), Some(500), None);
        r.observe(ms(1000), Some(100), None);
        assert_eq!(r.lag(100, None, ms(1000), ms(1000)).unwrap().time, ms(0));
        assert_eq!(r.history.len(), 1);
    }

    #[test]
    fn thinning_never_shortens_a_time_lag() {
        let mut r = Reference::new(0, ms(0), Some(0), None);
        for i in 1..=(HISTORY as u64 * 3) {
            r.observe(ms(i * 10), Some(i * 10), None);
        }
        assert!(r.history.len() <= HISTORY);
        let seen = ms(HISTORY as u64 * 30);
        for position in [5, 1_000, 20_000, 30_000] {
            let exact = seen - ms(position / 10 * 10);
            let lag = r.lag(position, None, seen, seen).unwrap().time;
            assert!(
                lag >= exact,
                "{position}: {lag:?} is shorter than {exact:?}"
            );
        }
    }

    #[test]
    fn a_diverged_gtid_cannot_be_compared() {
        let primary = Gtid::parse_mariadb("0-2-10").unwrap();
        let r = Reference::new(0, ms(0), Some(10), Some(primary));
        let errant = Gtid::parse_mariadb("0-1-10").unwrap();
        let why = r.lag(10, Some(&errant), ms(0), ms(0)).unwrap_err();
        assert!(why.contains("diverged"), "{why}");
        let behind = Gtid::parse_mariadb("0-1-9").unwrap();
        assert_eq!(r.lag(9, Some(&behind), ms(0), ms(0)).unwrap().behind, 1);
    }
}
