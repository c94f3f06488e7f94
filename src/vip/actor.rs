//! The vip actor's decisions as a state machine, and the loop that drives it.
//!
//! [`Machine::step`] is pure: given what happened (an input) and the time, it changes
//! state and says what to do next (actions). [`drive`] owns the timers and carries the
//! actions out on a [`Wire`] (netlink and raw sockets in `mod.rs`; a scripted one in the
//! tests, which run in tokio's paused time), feeding each result back as the next input.
//!
//! Released --wanted--> Taking --no other holder--> (add) --> Held --unwanted--> Released
//! Taking: probe again while another host answers, until `takeover_timeout`; then run the
//! fence command once and probe on; give up if the holder stays (retried every second).
//! Held: announce `announce_count` times, `announce_interval` apart, then every `refresh`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::event::EventKind;
use crate::config::Vip;

/// How often the interface is compared with what should be held, and a failed take retried.
pub const RECONCILE: Duration = Duration::from_secs(1);

/// What the actor needs of the outside world: one vip's address on one interface.
pub trait Wire {
    /// The hardware addresses of other hosts that answer for the address (as text).
    async fn probe(&self) -> Result<Vec<String>, String>;
    /// Adds the address to the interface.
    async fn add(&self) -> Result<(), String>;
    /// Removes the address if present; logs and reports a removal with `why`.
    async fn remove(&self, why: &str);
    /// Whether the interface has the address.
    async fn has(&self) -> Result<bool, String>;
    /// One gratuitous ARP / unsolicited neighbour advertisement.
    async fn announce(&self);
    /// Runs the fence command against `holder`; its outcome is only logged: the probe
    /// that follows decides.
    async fn fence(&self, holder: &str);
    /// An event for the event log.
    fn report(&self, kind: EventKind, message: String);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The server's wish: hold the address or not.
    Wanted(bool),
    /// The reconcile timer.
    Tick,
    Probed(Result<Vec<String>, String>),
    Fenced,
    Added(Result<(), String>),
    /// What the interface has, read at a tick.
    Present(Result<bool, String>),
    /// The next announcement is due.
    AnnounceDue,
    /// hadns is stopping.
    Stop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Probe,
    Fence {
        holder: String,
    },
    Add,
    Remove {
        why: &'static str,
    },
    /// Read whether the interface has the address.
    Inspect,
    Announce,
    Report(EventKind, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Released,
    Taking {
        deadline: Instant,
        fenced: bool,
        reported: bool,
    },
    Held {
        pending: u32,
        next_announce: Instant,
    },
}

pub struct Machine {
    label: String,
    takeover_timeout: Duration,
    fences: bool,
    announce_count: u32,
    announce_interval: Duration,
    refresh: Duration,
    want: bool,
    phase: Phase,
    /// The address was taken off the interface while held (another host fenced this
    /// one, e.g. while hadns was paused): until the local node is named again, it is taken
    /// back only if nobody else answers for it, never by fencing the host that has it.
    yielding: bool,
    /// The yield was reported (once per yield).
    yield_reported: bool,
}

impl Machine {
    pub fn new(vip: &Vip, label: String) -> Machine {
        Machine {
            label,
            takeover_timeout: vip.takeover_timeout,
            fences: vip.fence_command.is_some(),
            announce_count: vip.announce_count,
            announce_interval: vip.announce_interval,
            refresh: vip.refresh,
            want: false,
            phase: Phase::Released,
            yielding: false,
            yield_reported: false,
        }
    }

    fn taking(&self) -> bool {
        matches!(self.phase, Phase::Taking { .. })
    }

    /// When the next announcement is due, if one is.
    pub fn next_announce(&self) -> Option<Instant> {
        match self.phase {
            Phase::Held {
                pending,
                next_announce,
            } if pending > 0 || !self.refresh.is_zero() => Some(next_announce),
            _ => None,
        }
    }

    /// Takes in what happened at `now`; returns what to do, in order.
    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let vip = self.label.as_str();
        match (input, self.phase) {
            (Input::Wanted(want), phase) => {
                if want && !self.want {
                    // Named anew: a fresh decision, not the one this host held it for.
                    self.yielding = false;
                    self.yield_reported = false;
                }
                self.want = want;
                match phase {
                    Phase::Released if want => self.take(now),
                    Phase::Taking { .. } if !want => {
                        info!(vip, "vip take abandoned: no longer wanted");
                        self.phase = Phase::Released;
                        Vec::new()
                    }
                    Phase::Held { .. } if !want => {
                        self.phase = Phase::Released;
                        vec![Action::Remove {
                            why: "the answer moved away from the local node",
                        }]
                    }
                    _ => Vec::new(),
                }
            }
            (Input::Tick, Phase::Released) if self.want => self.take(now),
            (Input::Tick, Phase::Taking { .. }) => Vec::new(),
            (Input::Tick, _) => vec![Action::Inspect],
            (Input::Present(Err(e)), _) => {
                error!(vip, error = %e, "cannot read the interface's addresses");
                Vec::new()
            }
            (Input::Present(Ok(false)), Phase::Held { .. }) if self.want => {
                warn!(
                    vip,
                    "vip address disappeared while held; taking it again only if no other host answers for it"
                );
                self.yielding = true;
                self.phase = Phase::Released;
                self.take(now)
            }
            (Input::Present(Ok(true)), Phase::Released) if !self.want => {
                warn!(
                    vip,
                    "vip address present while it should not be; removing it"
                );
                vec![Action::Remove {
                    why: "it should not be held",
                }]
            }
            (Input::Probed(Err(e)), Phase::Taking { .. }) => {
                error!(vip, error = %e, "vip probe failed; not taking the address");
                self.phase = Phase::Released;
                Vec::new()
            }
            (Input::Probed(Ok(holders)), Phase::Taking { .. }) if holders.is_empty() => {
                vec![Action::Add]
            }
            (
                Input::Probed(Ok(holders)),
                Phase::Taking {
                    deadline,
                    fenced,
                    reported,
                },
            ) => self.conflict(holders.join(","), deadline, fenced, reported, now),
            (Input::Fenced, Phase::Taking { .. }) => vec![Action::Probe],
            (Input::Added(Err(e)), Phase::Taking { .. }) => {
                error!(vip, error = %e, "cannot add the vip address");
                self.phase = Phase::Released;
                Vec::new()
            }
            (Input::Added(Ok(())), Phase::Taking { .. }) => {
                self.yielding = false;
                self.yield_reported = false;
                info!(vip, announcements = self.announce_count, "vip taken");
                self.phase = Phase::Held {
                    pending: self.announce_count,
                    next_announce: now,
                };
                vec![Action::Report(
                    EventKind::VipTaken,
                    format!("{vip} added and announced"),
                )]
            }
            (Input::AnnounceDue, Phase::Held { pending, .. }) => {
                let pending = pending.saturating_sub(1);
                let wait = if pending > 0 {
                    self.announce_interval
                } else {
                    self.refresh
                };
                self.phase = Phase::Held {
                    pending,
                    next_announce: now + wait,
                };
                vec![Action::Announce]
            }
            (Input::Stop, _) => {
                self.phase = Phase::Released;
                vec![Action::Remove {
                    why: "hadns is stopping",
                }]
            }
            // Late results of a take that was abandoned, and the like.
            _ => Vec::new(),
        }
    }

    fn take(&mut self, now: Instant) -> Vec<Action> {
        self.phase = Phase::Taking {
            deadline: now + self.takeover_timeout,
            fenced: false,
            reported: false,
        };
        vec![Action::Probe]
    }

    /// Another host answers for the address while taking.
    fn conflict(
        &mut self,
        holder: String,
        deadline: Instant,
        fenced: bool,
        reported: bool,
        now: Instant,
    ) -> Vec<Action> {
        let vip = self.label.as_str();
        let mut actions = Vec::new();
        if self.yielding {
            // Taken from this host while held: the other holder is not fenced back.
            self.phase = Phase::Released;
            if !std::mem::replace(&mut self.yield_reported, true) {
                warn!(vip, holder = %holder, "vip yielded: another host holds the address that was taken from this one; not fencing it back");
                actions.push(Action::Report(
                    EventKind::VipConflict,
                    format!("another host ({holder}) holds the address taken from this one; yielding to it"),
                ));
            }
            return actions;
        }
        if !reported {
            error!(vip, holder = %holder, "vip conflict: another host answers for the address; waiting");
            actions.push(Action::Report(
                EventKind::VipConflict,
                format!("another host ({holder}) answers for the address; waiting"),
            ));
        }
        if now < deadline {
            actions.push(Action::Probe);
        } else if self.fences && !fenced {
            actions.push(Action::Fence { holder });
        } else {
            error!(vip, holder = %holder, timeout = ?self.takeover_timeout,
                "vip not taken: another host still answers for the address");
            self.phase = Phase::Released;
            return actions;
        }
        self.phase = Phase::Taking {
            deadline,
            fenced: fenced || matches!(actions.last(), Some(Action::Fence { .. })),
            reported: true,
        };
        actions
    }
}

/// Runs `machine` on `wire`: holds the address while `desired` says so, until `shutdown`;
/// then releases it. Announcements run in this loop, so a release never waits for them.
pub async fn drive<W: Wire>(
    mut machine: Machine,
    wire: &W,
    mut desired: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    // The first tick is at once: an address left behind by a killed hadns goes now.
    let mut reconcile = tokio::time::interval(RECONCILE);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut input = Input::Wanted(*desired.borrow_and_update());
    loop {
        execute(&mut machine, wire, input, &mut desired, &shutdown).await;
        let announce = machine.next_announce();
        input = tokio::select! {
            changed = desired.changed() => match changed {
                Ok(()) => Input::Wanted(*desired.borrow_and_update()),
                Err(_) => break,
            },
            _ = reconcile.tick() => Input::Tick,
            _ = tokio::time::sleep_until(announce.unwrap_or_else(Instant::now)), if announce.is_some() => {
                Input::AnnounceDue
            }
            _ = shutdown.cancelled() => break,
        };
    }
    execute(&mut machine, wire, Input::Stop, &mut desired, &shutdown).await;
}

/// Steps the machine with `input` and carries out its actions, feeding their results
/// back; a changed wish is heard between two actions (a take can be long).
async fn execute<W: Wire>(
    machine: &mut Machine,
    wire: &W,
    input: Input,
    desired: &mut watch::Receiver<bool>,
    shutdown: &CancellationToken,
) {
    let stopping = input == Input::Stop;
    let mut actions: VecDeque<Action> = machine.step(input, Instant::now()).into();
    while let Some(action) = actions.pop_front() {
        let result = match action {
            Action::Probe => Some(Input::Probed(wire.probe().await)),
            Action::Fence { holder } => {
                wire.fence(&holder).await;
                Some(Input::Fenced)
            }
            Action::Add => Some(Input::Added(wire.add().await)),
            Action::Remove { why } => {
                wire.remove(why).await;
                None
            }
            Action::Inspect => Some(Input::Present(wire.has().await)),
            Action::Announce => {
                wire.announce().await;
                None
            }
            Action::Report(kind, message) => {
                wire.report(kind, message);
                None
            }
        };
        if shutdown.is_cancelled() && !stopping {
            return;
        }
        if let Some(input) = result {
            actions.extend(machine.step(input, Instant::now()));
        }
        if desired.has_changed().unwrap_or(false) {
            let want = *desired.borrow_and_update();
            let next = machine.step(Input::Wanted(want), Instant::now());
            if !machine.taking() {
                // An abandoned take goes no further.
                actions
                    .retain(|a| !matches!(a, Action::Probe | Action::Add | Action::Fence { .. }));
            }
            actions.extend(next);
        }
    }
}

#[cfg(test)]
#[path = "actor_tests.rs"]
mod tests;
