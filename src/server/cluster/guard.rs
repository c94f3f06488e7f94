//! The leader's rule for writer records (`select = "primary"` or `"first"`;
//! docs/cluster.md, "Never two writers"): a decision names a different writer only when
//! no client can still use the one it replaces. One of:
//! - the old writer is proven unusable: a majority of the members' views say its host
//!   refused the connection or its database is read-only (`merge::unusable`), or a fence
//!   of it succeeded;
//! - it was withdrawn first (the record answers SERVFAIL), then every configured member
//!   acknowledged serving that withdrawal (`MemberInfo::served`) or left etcd (its lease
//!   ended, and its writers' deadline before it), and the record's TTL passed since, so
//!   that no client's cache still holds it.
//!
//! A timeout proves nothing: a partition gives the same, while the old writer may still
//! take writes from the clients on its side. Pure: the state, the configuration and the
//! time in; the records to propose, and when to look again, out.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::cluster::merge::{live_views, unusable};
use crate::cluster::{Agreed, AgreedRecord, State};
use crate::config::Config;
use crate::engine::{Answer, RecordId};

#[derive(Default)]
pub(super) struct Guard {
    /// Per writer record, by name.
    records: HashMap<String, Named>,
    /// Nodes (pool, node) whose fence succeeded, until a decision names them again.
    fenced: HashSet<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Named {
    /// The newest decision names these writers (none yet: empty).
    Writers(BTreeSet<String>),
    /// The newest decision names no writer; clients may still hold `from` (`None`: not
    /// known, as for a new leader that found the record withdrawn).
    Withdrawn {
        from: Option<BTreeSet<String>>,
        /// The withdrawal is the first agreed decision after this one.
        after: u64,
        /// The agreed decision that withdrew them, once seen.
        seq: Option<u64>,
        /// When every member had acknowledged it or left.
        done: Option<Instant>,
    },
}

impl Guard {
    /// A new leadership's guard: what the agreed decision names, or, where it names no
    /// writer after naming some (SERVFAIL, NODATA), a withdrawal of writers it cannot know.
    pub fn new(config: &Config, agreed: Option<&Agreed>) -> Guard {
        let mut guard = Guard::default();
        let Some(agreed) = agreed else {
            return guard;
        };
        let by_name = agreed.by_name();
        for record in config.records.iter().filter(|r| r.select.names_a_writer()) {
            let named = match by_name.get(record.name.as_str()) {
                // Never named by any decision: nothing to withdraw.
                None => Named::Writers(BTreeSet::new()),
                Some(r) if r.answer == Answer::Pending => Named::Writers(BTreeSet::new()),
                Some(r) if !writers(r).is_empty() => Named::Writers(writers(r)),
                Some(_) => Named::Withdrawn {
                    from: None,
                    after: agreed.seq.saturating_sub(1),
                    seq: None,
                    done: None,
                },
            };
            guard.records.insert(record.name.clone(), named);
        }
        guard
    }

    /// A fence of `pool`/`node` succeeded: it takes no writes from anyone.
    pub fn fenced(&mut self, pool: &str, node: &str) {
        self.fenced.insert((pool.into(), node.into()));
    }

    /// Until when a client may still use an answer that names `node` of `pool` as a
    /// writer: every member served a decision that withdrew it (or left), then the TTL
    /// (`None`: still named, or not every member is known to have stopped naming it).
    /// Proofs do not count here: a refused connection says nothing of a restart.
    pub fn usable_until(
        &self,
        config: &Config,
        pool: &str,
        node: &str,
        now: Instant,
    ) -> Option<Instant> {
        let mut until = now;
        for (r, spec) in config.records.iter().enumerate() {
            if !spec.select.names_a_writer() || config.record_pool(RecordId(r)).name != pool {
                continue;
            }
            match self.records.get(&spec.name) {
                Some(Named::Writers(named)) if named.contains(node) => return None,
                Some(Named::Withdrawn { from, done, .. })
                    if from.as_ref().is_none_or(|f| f.contains(node)) =>
                {
                    until = until.max((*done)? + Duration::from_secs(spec.ttl.into()));
                }
                _ => {}
            }
        }
        Some(until)
    }

    /// Follows the withdrawals through etcd: the agreed decision that carries each, then
    /// the members' acknowledgements of it.
    pub fn observe(&mut self, state: &State, config: &Config, now: Instant) {
        let members = config.cluster.as_ref().map_or(&[][..], |c| &c.members);
        for (name, named) in &mut self.records {
            let Named::Withdrawn {
                after, seq, done, ..
            } = named
            else {
                continue;
            };
            if seq.is_none()
                && let Some(agreed) = state.decision.as_ref().filter(|d| d.seq > *after)
            {
                let still_named =
                    (agreed.by_name().get(name.as_str())).is_some_and(|r| !writers(r).is_empty());
                // A decision after the withdrawal that names a writer again was not this
                // leader's (it names one only after the rule): look again from there.
                if still_named {
                    *after = agreed.seq;
                } else {
                    *seq = Some(agreed.seq);
                }
            }
            if let Some(seq) = *seq
                && done.is_none()
                && (members.iter()).all(|m| state.members.get(m).is_none_or(|i| i.served >= seq))
            {
                *done = Some(now);
            }
        }
    }

    /// Holds back every new writer the rule does not allow yet: such a record answers
    /// SERVFAIL (the withdrawal) instead. Returns when to look again (a TTL to wait out).
    pub fn apply(
        &mut self,
        records: &mut [AgreedRecord],
        state: &State,
        config: &Config,
        latest: u64,
        now: Instant,
    ) -> Option<Instant> {
        let members = config.cluster.as_ref().map_or(&[][..], |c| &c.members);
        let mut wake: Option<Instant> = None;
        for (r, record) in records.iter_mut().enumerate() {
            let spec = &config.records[r];
            if !spec.select.names_a_writer() {
                continue;
            }
            let pool = &config.record_pool(RecordId(r)).name;
            let fenced = &self.fenced;
            let proven = |node: &String| {
                fenced.contains(&(pool.clone(), node.clone()))
                    || unusable(
                        live_views(state, members, &format!("{pool}/{node}")),
                        members.len(),
                    )
            };
            let ttl = Duration::from_secs(spec.ttl.into());
            let named = (self.records)
                .entry(spec.name.clone())
                .or_insert_with(|| Named::Writers(BTreeSet::new()));
            let want = writers(record);
            let next = step(named, &want, latest, now, ttl, proven);
            if next.hold {
                withdraw(record, named);
                if let Some(at) = next.wake {
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                }
            } else {
                for node in &want {
                    self.fenced.remove(&(pool.clone(), node.clone()));
                }
            }
        }
        wake
    }
}

struct Next {
    /// The record must answer the withdrawal.
    hold: bool,
    wake: Option<Instant>,
}

/// One record's rule: `named` moves on to what may be proposed now, given the writers
/// the leader's engine wants (`want`).
fn step(
    named: &mut Named,
    want: &BTreeSet<String>,
    latest: u64,
    now: Instant,
    ttl: Duration,
    proven: impl Fn(&String) -> bool,
) -> Next {
    let go = Next {
        hold: false,
        wake: None,
    };
    let withdrawn = |from: BTreeSet<String>| Named::Withdrawn {
        from: Some(from),
        after: latest,
        seq: None,
        done: None,
    };
    match named {
        Named::Writers(old) if want.is_subset(old) => {
            // Nothing new is named; naming nothing starts a withdrawal of what was.
            if want.is_empty() && !old.is_empty() {
                *named = withdrawn(old.clone());
            } else if !want.is_empty() {
                *named = Named::Writers(want.clone());
            }
            go
        }
        Named::Writers(old) if old.iter().filter(|n| !want.contains(*n)).all(&proven) => {
            *named = Named::Writers(want.clone());
            go
        }
        Named::Writers(old) => {
            *named = withdrawn(old.clone());
            Next {
                hold: true,
                wake: None,
            }
        }
        Named::Withdrawn { from, done, .. } => {
            // Every writer withdrawn and not named again proven unusable (none: the same
            // writer is back, and nobody named another meanwhile).
            let proof = (from.as_ref())
                .is_some_and(|f| f.iter().filter(|n| !want.contains(*n)).all(&proven));
            let cleared = done.map(|d| d + ttl);
            if want.is_empty() {
                go
            } else if proof || cleared.is_some_and(|c| c <= now) {
                *named = Named::Writers(want.clone());
                go
            } else {
                Next {
                    hold: true,
                    wake: cleared,
                }
            }
        }
    }
}

/// The record answers SERVFAIL everywhere: it names no writer until the rule allows one.
fn withdraw(record: &mut AgreedRecord, named: &Named) {
    let from = match named {
        Named::Withdrawn {
            from: Some(from), ..
        } => (from.iter().cloned()).collect::<Vec<_>>().join(", "),
        _ => "the last writer".into(),
    };
    let wanted = writers(record).into_iter().collect::<Vec<_>>().join(", ");
    record.answer = Answer::Servfail;
    for answer in record.sites.values_mut() {
        *answer = Answer::Servfail;
    }
    record.reason = format!(
        "{wanted} is named once no member and no client cache can still name {from} \
         (each member served this or left, then the TTL)"
    );
}

/// The writers a record's answers name, on any site.
fn writers(record: &AgreedRecord) -> BTreeSet<String> {
    std::iter::once(&record.answer)
        .chain(record.sites.values())
        .flat_map(|answer| match answer {
            Answer::Nodes(nodes) => nodes.iter().map(|n| n.node.clone()).collect(),
            _ => Vec::new(),
        })
        .collect()
}
