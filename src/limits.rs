//! Bounds shared by the listeners: open connections per listener and per client address,
//! and log lines that say a thing once in a while rather than once per packet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Open connections of one listener: at most `total`, and `per_client` per address.
pub struct Connections {
    total: usize,
    per_client: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One open connection's place; dropping it frees the place.
pub struct Permit {
    owner: Arc<Connections>,
    ip: IpAddr,
}

impl Connections {
    pub fn new(total: usize, per_client: usize) -> Arc<Connections> {
        Arc::new(Connections {
            total,
            per_client,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A place for a new connection from `ip`, or `None` when either limit is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (all, by_client) = &mut *open;
        let mine = by_client.entry(ip).or_insert(0);
        if *all >= self.total || *mine >= self.per_client {
            if *mine == 0 {
                by_client.remove(&ip);
            }
            return None;
        }
        *mine += 1;
        *all += 1;
        Some(Permit {
            owner: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        let (all, by_client) = &mut *open;
        *all -= 1;
        if let Some(mine) = by_client.get_mut(&self.ip) {
            *mine -= 1;
            if *mine == 0 {
                by_client.remove(&self.ip);
            }
        }
    }
}

/// Lets a log line through at most once per `every`; counts the ones held back.
pub struct Occasional {
    every: Duration,
    last: Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl Occasional {
    pub const fn new(every: Duration) -> Occasional {
        Occasional {
            every,
            last: Mutex::new(None),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` the lines held back since the last.
    pub fn allow(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < self.every) {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.held_back.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_bounded_in_all_and_per_client() {
        let limits = Connections::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert!(limits.admit(a).is_none(), "per client");
        let _b1 = limits.admit(b).unwrap();
        assert!(limits.admit(b).is_none(), "in all");
        drop(a1);
        assert_eq!(limits.open(), 2);
        assert!(limits.admit(b).is_some(), "a freed place is used again");
    }

    #[test]
    fn occasional_lines_count_what_they_hold_back() {
        let gate = Occasional::new(Duration::from_secs(3600));
        assert_eq!(gate.allow(), Some(0));
        assert_eq!(gate.allow(), None);
        assert_eq!(gate.allow(), None);
        let gate = Occasional::new(Duration::ZERO);
        assert_eq!(gate.allow(), Some(0));
        assert_eq!(gate.allow(), Some(0));
    }
}
