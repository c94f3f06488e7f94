//! What every member serves: the agreed decision; cut off from etcd, the same (`keep`) or
//! SERVFAIL (`servfail`); and its vips, released once the lease has ended.

use std::time::Duration;

use tracing::{info, warn};

use super::context::{Context, release_after};
use super::leader::local_answer;
use crate::cluster::{Agreed, State};
use crate::config::OnLost;
use crate::engine::{Answer, Event, RecordId};
use crate::server::decisions::{Decision, Route, vip_holds};

/// What the vips do with the agreed answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vips {
    /// Held where the agreed answer names the local node.
    Follow,
    /// Left as they are (cut off, within the lease; or catching up).
    Keep,
    /// Released: cut off for longer than the lease.
    Release,
}

/// What this member serves, and what it served last.
pub(super) struct Follower {
    /// The agreed decision served here last.
    served: Option<Agreed>,
    /// Failover names answer SERVFAIL: cut off, with `on_lost = "servfail"`.
    refusing: bool,
    /// Serve the agreed decision again even if it did not change (after a reload).
    republish: bool,
    /// Cut off from etcd for longer than the lease: every vip released.
    released: bool,
    /// Connected (and caught up) when last handled.
    connected: bool,
}

impl Default for Follower {
    fn default() -> Follower {
        Follower {
            served: None,
            refusing: false,
            republish: false,
            // Nothing is held before the first session.
            released: true,
            connected: false,
        }
    }
}

impl Follower {
    pub fn served(&self) -> Option<&Agreed> {
        self.served.as_ref()
    }

    pub fn released(&self) -> bool {
        self.released
    }

    pub fn refusing(&self) -> bool {
        self.refusing
    }

    /// The next step serves the agreed decision again, changed or not.
    pub fn republish(&mut self) {
        self.republish = true;
    }

    /// The decision to carry out for `state`, if anything changed, and the age of a
    /// decision served for the first time.
    pub fn follow(
        &mut self,
        state: &State,
        settings: &crate::config::Cluster,
        digest: &str,
        cx: &Context,
    ) -> (Option<Decision>, Option<Duration>) {
        let refuse = !state.connected && settings.on_lost == OnLost::Servfail;
        let mut force = std::mem::take(&mut self.republish);
        if refuse != self.refusing {
            self.refusing = refuse;
            force = true;
            if refuse {
                warn!(member = %settings.name, "cut off from etcd: failover names answer SERVFAIL (on_lost)");
            } else {
                info!(member = %settings.name, "back in touch with etcd: serving the agreed answers");
            }
        }
        // The lease is over (etcd has dropped this member's keys): the majority may have
        // moved the answer, and an L2 partition would hide the other holder from the ARP
        // probe. Timed from the last keepalive answer, not from noticing the cut.
        let released = !state.connected
            && (state.last_contact)
                .is_none_or(|t| cx.instant.saturating_duration_since(t) >= release_after(settings));
        if released != self.released {
            self.released = released;
            force = true;
            if released && state.last_contact.is_some() {
                warn!(member = %settings.name, "cut off from etcd for longer than the lease: releasing every vip");
            }
        }
        // Vips follow the agreed answers only while connected (a member catching up after
        // a cut knows an old decision); cut off within the lease, they stay as they are.
        if state.connected != self.connected {
            self.connected = state.connected;
            force = true;
        }
        let vips = if released {
            Vips::Release
        } else if state.connected {
            Vips::Follow
        } else {
            Vips::Keep
        };
        if refuse {
            return (force.then(|| self.refusal(cx)), None);
        }
        let Some(decision) = &state.decision else {
            return (None, None);
        };
        let new = self.served.as_ref() != Some(decision);
        if !new && !force {
            return (None, None);
        }
        let served = self.serve(decision, new, vips, cx);
        let age =
            new.then(|| Duration::from_millis(cx.unix_ms.saturating_sub(decision.decided_ms)));
        if new && decision.digest != digest {
            warn!(member = %settings.name, leader = %decision.leader,
                  "the leader decided with a different configuration (pools, records)");
        }
        self.served = Some(decision.clone());
        (Some(served), age)
    }

    /// Every failover name SERVFAIL and every vip released. The serial stays (nothing was
    /// decided); before any decision, the zones' current one.
    fn refusal(&self, cx: &Context) -> Decision {
        let current = cx.serials.iter().copied().reduce(crate::dns::serial_max);
        let serial = (self.served.as_ref().map(|d| d.serial))
            .or(current)
            .unwrap_or(0);
        Decision {
            fences: Vec::new(),
            answers: Some(vec![Answer::Servfail.into(); cx.config.records.len()]),
            events: Vec::new(),
            holds: Some(vec![false; cx.config.vips.len()]),
            route: Route::Agreed { serial },
        }
    }

    /// `decision` served: its addresses, its serial, an answer change event per record
    /// that moved (when it is `new`), the vips as `vips` says.
    fn serve(&self, decision: &Agreed, new: bool, vips: Vips, cx: &Context) -> Decision {
        let config = cx.config;
        let before = self.served.as_ref().map(|d| d.by_name());
        let by_name = decision.by_name();
        let agreed = |r: RecordId| by_name.get(config.record(r).name.as_str()).copied();
        let answers = (0..config.records.len())
            .map(|r| match agreed(RecordId(r)) {
                Some(a) => a.sited(&config.sites).map(|n| n.address),
                None => Answer::Pending.into(),
            })
            .collect();
        let mut events = Vec::new();
        for r in (0..config.records.len()).map(RecordId) {
            let name = config.record(r).name.as_str();
            let to = agreed(r).map_or(Answer::Pending, |a| local_answer(config, r, &a.answer));
            let from = (before.as_ref())
                .and_then(|b| b.get(name))
                .map_or(Answer::Pending, |a| local_answer(config, r, &a.answer));
            if new && from != to {
                events.push(Event::AnswerChanged {
                    record: r,
                    from,
                    to,
                    reason: agreed(r).map_or_else(
                        || "the agreed decision does not name this record".into(),
                        |a| format!("agreed (decision {}): {}", decision.seq, a.reason),
                    ),
                });
            }
        }
        let holds = match vips {
            Vips::Release => Some(vec![false; config.vips.len()]),
            Vips::Keep => None,
            // The agreed answer is the majority's word on the node's health.
            Vips::Follow => Some(vip_holds(
                config,
                |r| agreed(r).map(|a| local_answer(config, r, &a.answer)),
                |_| true,
            )),
        };
        Decision {
            fences: Vec::new(),
            answers: Some(answers),
            events,
            holds,
            route: Route::Agreed {
                serial: decision.serial,
            },
        }
    }
}
