//! What one NOTIFY target is sent, and when: a pure schedule (no IO, time passed in) that
//! keeps each zone's NOTIFYs to that target apart from every other zone's.
//!
//! Per zone: at most one NOTIFY outstanding; the latest serial is the one sent; an
//! unanswered or failed NOTIFY is tried again after its wait (1 s, doubling per attempt up
//! to 30 s; a newer serial goes without waiting that out, at most once per [`HOLD`]); after
//! an acknowledgement the next NOTIFY of that zone waits [`HOLD`]. A target that answers
//! NOTAUTH, REFUSED, NOTIMP or NXDOMAIN does not take NOTIFYs for that zone: it is sent no other one
//! for that serial, only one per later serial (a reload raises every serial). Nothing a zone
//! does, and nothing the target answers for it, changes when another zone is sent.

use std::collections::BTreeMap;
use std::time::Duration;

use hickory_proto::rr::LowerName;
use tokio::time::Instant;

use crate::api::status::NotifyState;

/// The first attempt's wait for an answer; each later one waits twice as long.
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
pub const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// After an answered NOTIFY, the next one for the same zone waits at least this long.
pub const HOLD: Duration = Duration::from_millis(250);

/// A NOTIFY to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub zone: LowerName,
    pub serial: u32,
    /// Its message id (unique among the ones outstanding).
    pub id: u16,
}

/// What the target answered to one NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Acknowledged,
    /// NOTAUTH, REFUSED, NOTIMP or NXDOMAIN: the target does not take NOTIFYs for this zone.
    NotServed(String),
    /// Anything else that is not an acknowledgement (an error answer, a bad signature, a
    /// send that failed, no answer in time).
    Failed(String),
}

/// What happened to a zone, for the log; `NotServed` only when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Acknowledged {
        zone: LowerName,
        serial: u32,
        attempts: u32,
    },
    NotServed {
        zone: LowerName,
        serial: u32,
        answer: String,
    },
    Failed {
        zone: LowerName,
        serial: u32,
        attempt: u32,
        problem: String,
    },
}

#[derive(Debug, Clone)]
struct Outstanding {
    id: u16,
    serial: u32,
    sent: Instant,
    deadline: Instant,
}

#[derive(Debug, Clone, Default)]
struct Zone {
    /// The serial to announce (the current snapshot's).
    serial: u32,
    acknowledged: Option<u32>,
    /// The target answered "not served" for this serial.
    not_served: Option<u32>,
    /// The last answer was "not served" (reported once until something else comes).
    refusing: bool,
    held_until: Option<Instant>,
    retry_at: Option<Instant>,
    last_sent: Option<Instant>,
    /// Attempts since the last answer that ended the exchange (backoff).
    attempts: u32,
    outstanding: Option<Outstanding>,
    problem: Option<String>,
}

impl Zone {
    fn wants(&self) -> bool {
        self.acknowledged != Some(self.serial) && self.not_served != Some(self.serial)
    }

    /// When it may go (`now` at the earliest), if it wants to and nothing is outstanding.
    fn ready_at(&self, now: Instant) -> Option<Instant> {
        if self.outstanding.is_some() || !self.wants() {
            return None;
        }
        let at = [self.held_until, self.retry_at].into_iter().flatten().max();
        Some(at.map_or(now, |at| at.max(now)))
    }
}

/// One target's schedule: its zones by origin.
#[derive(Debug, Default)]
pub struct Schedule {
    zones: BTreeMap<LowerName, Zone>,
}

/// How long attempt `attempt` (0 for the first) waits for its answer.
fn wait(attempt: u32) -> Duration {
    FIRST_WAIT
        .saturating_mul(1 << attempt.min(5))
        .min(LONGEST_WAIT)
}

impl Schedule {
    /// The zones this target is announced and their current serials; a zone not listed is
    /// forgotten (no longer announced to this target).
    pub fn set_serials(&mut self, serials: impl IntoIterator<Item = (LowerName, u32)>) {
        let serials: BTreeMap<LowerName, u32> = serials.into_iter().collect();
        self.zones.retain(|zone, _| serials.contains_key(zone));
        for (origin, serial) in serials {
            let zone = self.zones.entry(origin).or_default();
            if zone.serial == serial {
                continue;
            }
            zone.serial = serial;
            // A newer serial after a failure: no need to wait the backoff out.
            if let (Some(retry), Some(sent)) = (zone.retry_at, zone.last_sent) {
                zone.retry_at = Some(retry.min(sent + HOLD));
            }
        }
    }

    /// The NOTIFYs due at `now`, marked outstanding; `id` draws message ids.
    pub fn due(&mut self, now: Instant, mut id: impl FnMut() -> u16) -> Vec<Send> {
        let mut taken: Vec<u16> = self.outstanding_ids().collect();
        let mut sends = Vec::new();
        for (origin, zone) in &mut self.zones {
            if zone.ready_at(now).is_none_or(|at| at > now) {
                continue;
            }
            let id = loop {
                let id = id();
                if !taken.contains(&id) {
                    break id;
                }
            };
            taken.push(id);
            zone.outstanding = Some(Outstanding {
                id,
                serial: zone.serial,
                sent: now,
                deadline: now + wait(zone.attempts),
            });
            zone.attempts += 1;
            zone.last_sent = Some(now);
            sends.push(Send {
                zone: origin.clone(),
                serial: zone.serial,
                id,
            });
        }
        sends
    }

    /// The target's answer to the NOTIFY with message id `id` (none outstanding: ignored).
    pub fn answered(&mut self, id: u16, answer: Answer, now: Instant) -> Option<Report> {
        let (origin, zone) = self
            .zones
            .iter_mut()
            .find(|(_, z)| z.outstanding.as_ref().is_some_and(|o| o.id == id))?;
        let out = zone.outstanding.take()?;
        let zone_name = origin.clone();
        match answer {
            Answer::Acknowledged => {
                let attempts = std::mem::take(&mut zone.attempts);
                zone.acknowledged = Some(out.serial);
                zone.refusing = false;
                zone.not_served = None;
                zone.problem = None;
                zone.retry_at = None;
                zone.held_until = Some(now + HOLD);
                Some(Report::Acknowledged {
                    zone: zone_name,
                    serial: out.serial,
                    attempts,
                })
            }
            Answer::NotServed(answer) => {
                zone.attempts = 0;
                zone.not_served = Some(out.serial);
                zone.retry_at = None;
                zone.held_until = Some(now + HOLD);
                zone.problem = Some(format!("answered {answer}"));
                let first = !std::mem::replace(&mut zone.refusing, true);
                first.then_some(Report::NotServed {
                    zone: zone_name,
                    serial: out.serial,
                    answer,
                })
            }
            Answer::Failed(problem) => {
                let mut retry = out.sent + wait(zone.attempts.saturating_sub(1));
                if zone.serial != out.serial {
                    retry = retry.min(out.sent + HOLD);
                }
                zone.retry_at = Some(retry);
                zone.problem = Some(problem.clone());
                Some(Report::Failed {
                    zone: zone_name,
                    serial: out.serial,
                    attempt: zone.attempts,
                    problem,
                })
            }
        }
    }

    /// The target cannot be reached at all (an ICMP error on its socket): every
    /// outstanding NOTIFY failed.
    pub fn unreachable(&mut self, problem: &str, now: Instant) -> Vec<Report> {
        let ids: Vec<u16> = self.outstanding_ids().collect();
        ids.into_iter()
            .filter_map(|id| self.answered(id, Answer::Failed(problem.to_string()), now))
            .collect()
    }

    /// Fails every outstanding NOTIFY whose wait is over at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Report> {
        let expired: Vec<(u16, Duration)> = self
            .zones
            .values()
            .filter_map(|z| z.outstanding.as_ref())
            .filter(|o| o.deadline <= now)
            .map(|o| (o.id, o.deadline - o.sent))
            .collect();
        expired
            .into_iter()
            .filter_map(|(id, wait)| {
                self.answered(id, Answer::Failed(format!("no answer in {wait:?}")), now)
            })
            .collect()
    }

    /// When something is next due after `now`: a wait that ends, or a zone that may go.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.zones
            .values()
            .filter_map(|z| match &z.outstanding {
                Some(out) => Some(out.deadline),
                None => z.ready_at(now),
            })
            .min()
    }

    /// Whether `id` is a NOTIFY still waiting for its answer.
    pub fn is_outstanding(&self, id: u16) -> bool {
        self.outstanding_ids().any(|o| o == id)
    }

    fn outstanding_ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.zones
            .values()
            .filter_map(|z| z.outstanding.as_ref().map(|o| o.id))
    }

    /// Each zone: its serial, the last serial acknowledged, where it stands, the last
    /// problem.
    pub fn states(
        &self,
    ) -> impl Iterator<Item = (&LowerName, u32, Option<u32>, NotifyState, Option<&str>)> {
        self.zones.iter().map(|(origin, z)| {
            let state = if z.acknowledged == Some(z.serial) {
                NotifyState::Acknowledged
            } else if z.refusing {
                NotifyState::NotServed
            } else if z.problem.is_some() {
                NotifyState::Failing
            } else {
                NotifyState::Pending
            };
            (
                origin,
                z.serial,
                z.acknowledged,
                state,
                z.problem.as_deref(),
            )
        })
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
