//! Response rate limiting for UDP (as NSD's and Knot's RRL): at most `rate` responses per
//! second to one client prefix (/24 for IPv4, /56 for IPv6 by default). Over the rate, every
//! `slip`th response goes out truncated (header and question, TC set: a real client retries
//! over TCP, which cannot be spoofed) and the others are dropped; `slip = 0` drops them all.
//! So a flood of queries with a spoofed source gets its victim at most `rate` full answers a
//! second. TCP is never limited.
//!
//! The table is a fixed array of buckets indexed by a hash of the prefix, shared by the UDP
//! workers without locks (one atomic word per bucket); prefixes that collide share a bucket,
//! as in NSD, which errs towards limiting.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Buckets in the table (a power of two).
const BUCKETS: usize = 1 << 16;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send,
    /// Send a truncated response instead.
    Slip,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrlSettings {
    /// Responses per second per prefix; 0 turns rate limiting off.
    pub rate: u32,
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

pub struct Limiter {
    settings: RrlSettings,
    /// Per bucket: the prefix's tag (16 bits), the second (16 bits), the count (32 bits).
    buckets: Vec<AtomicU64>,
    start: Instant,
    hasher: rustc_hash::FxBuildHasher,
}

impl Limiter {
    /// `None` when rate limiting is off.
    pub fn new(settings: RrlSettings) -> Option<Limiter> {
        (settings.rate > 0).then(|| Limiter {
            settings,
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            start: Instant::now(),
            hasher: rustc_hash::FxBuildHasher,
        })
    }

    /// Decides for one response to `client`, now.
    pub fn decide(&self, client: IpAddr) -> Decision {
        let second = self.start.elapsed().as_secs();
        self.decide_at(client, second)
    }

    /// Decides for one response to `client` in second `second` (since the limiter's start).
    fn decide_at(&self, client: IpAddr, second: u64) -> Decision {
        let prefix = self.prefix(client);
        let mut hasher = self.hasher.build_hasher();
        hasher.write_u128(prefix);
        let hash = hasher.finish();
        let bucket = &self.buckets[(hash as usize) & (BUCKETS - 1)];
        let tag = (hash >> 48) & 0xffff;
        let second = second & 0xffff;
        let mut count = 0u64;
        // One compare-and-swap loop: start a new second, or count one more in this one.
        let _ = bucket.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
            let (t, s, c) = (word >> 48, (word >> 32) & 0xffff, word & 0xffff_ffff);
            count = if t == tag && s == second {
                c.saturating_add(1).min(u32::MAX.into())
            } else {
                1
            };
            Some((tag << 48) | (second << 32) | count)
        });
        let rate = u64::from(self.settings.rate);
        if count <= rate {
            return Decision::Send;
        }
        let slip = u64::from(self.settings.slip);
        if slip > 0 && (count - rate).is_multiple_of(slip) {
            Decision::Slip
        } else {
            Decision::Drop
        }
    }

    /// The client's prefix as a number (IPv4 mapped into the IPv6 space).
    fn prefix(&self, client: IpAddr) -> u128 {
        match client {
            IpAddr::V4(v4) => {
                let bits = u32::from(self.settings.ipv4_prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u128::from(u32::from(v4) & mask) | (0xffff << 32)
            }
            IpAddr::V6(v6) => {
                let bits = u32::from(self.settings.ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(v6) & mask
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, slip: u32) -> Limiter {
        Limiter::new(RrlSettings {
            rate,
            slip,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
        })
        .unwrap()
    }

    #[test]
    fn over_the_rate_responses_slip_or_drop() {
        let l = limiter(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let decisions: Vec<Decision> = (0..8).map(|_| l.decide_at(a, 5)).collect();
        use Decision::*;
        assert_eq!(decisions, [Send, Send, Send, Drop, Slip, Drop, Slip, Drop]);
        // A new second starts afresh.
        assert_eq!(l.decide_at(a, 6), Send);
    }

    #[test]
    fn a_prefix_shares_its_budget_and_others_have_their_own() {
        let l = limiter(2, 0);
        let same: [IpAddr; 2] = ["192.0.2.1".parse().unwrap(), "192.0.2.200".parse().unwrap()];
        assert_eq!(l.decide_at(same[0], 1), Decision::Send);
        assert_eq!(l.decide_at(same[1], 1), Decision::Send);
        assert_eq!(l.decide_at(same[0], 1), Decision::Drop, "slip 0 drops");
        assert_eq!(
            l.decide_at("198.51.100.1".parse().unwrap(), 1),
            Decision::Send
        );
        let v6a: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:0:2::1".parse().unwrap();
        assert_eq!(l.prefix(v6a), l.prefix(v6b), "same /56");
    }

    #[test]
    fn rate_zero_is_off() {
        assert!(
            Limiter::new(RrlSettings {
                rate: 0,
                slip: 2,
                ipv4_prefix: 24,
                ipv6_prefix: 56
            })
            .is_none()
        );
    }
}
