//! A point on the monotonic clock shared without a lock: in cluster mode, until when this
//! member may name a writer. The member task moves it on at each keepalive etcd answers;
//! every answer path compares it with the time of the query (one atomic load).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The origin of the stored times: the first use in this process.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

#[derive(Debug)]
pub struct Deadline {
    /// Nanoseconds since [`EPOCH`]; 0 has passed from the start.
    at: AtomicU64,
}

impl Deadline {
    /// A deadline that has passed: nothing is current until [`Deadline::set`].
    pub fn passed() -> Deadline {
        LazyLock::force(&EPOCH);
        Deadline {
            at: AtomicU64::new(0),
        }
    }

    /// Moves the deadline to `at` (back as well as on: the caller knows best).
    pub fn set(&self, at: Instant) {
        let nanos = at.saturating_duration_since(*EPOCH).as_nanos();
        self.at
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Release);
    }

    /// The deadline has passed at `now`.
    pub fn passed_at(&self, now: Instant) -> bool {
        self.left(now).is_zero()
    }

    /// The deadline has passed now.
    pub fn is_past(&self) -> bool {
        self.passed_at(Instant::now())
    }

    /// How long until the deadline, from `now` (zero once it has passed).
    pub fn left(&self, now: Instant) -> Duration {
        let at = Duration::from_nanos(self.at.load(Ordering::Acquire));
        at.saturating_sub(now.saturating_duration_since(*EPOCH))
    }
}

/// In cluster mode, the leadership this member holds now (the leader key's create
/// revision; 0: none), set by the member task as it learns it. With the writers'
/// [`Deadline`] it tells a promotion step whether its leader still leads: a leader that
/// stalled past its lease and reconnected holds another lease and no leader key.
#[derive(Debug, Default)]
pub struct Leadership(std::sync::atomic::AtomicI64);

impl Leadership {
    pub fn set(&self, epoch: Option<i64>) {
        self.0.store(epoch.unwrap_or(0), Ordering::Release);
    }

    /// Whether this member leads under `epoch`.
    pub fn holds(&self, epoch: i64) -> bool {
        epoch != 0 && self.0.load(Ordering::Acquire) == epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_passes_at_its_instant_and_moves_both_ways() {
        let deadline = Deadline::passed();
        let now = Instant::now();
        assert!(deadline.passed_at(now), "passed until set");
        deadline.set(now + Duration::from_secs(2));
        assert!(!deadline.passed_at(now));
        assert!(!deadline.passed_at(now + Duration::from_millis(1999)));
        assert!(deadline.passed_at(now + Duration::from_secs(2)));
        assert_eq!(deadline.left(now), Duration::from_secs(2));
        deadline.set(now);
        assert!(deadline.passed_at(now), "moved back");
        deadline.set(Instant::now() + Duration::from_secs(60));
        assert!(!deadline.is_past());
    }
}
