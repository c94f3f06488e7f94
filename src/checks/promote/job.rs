//! What a promotion is made of, shared by the steps of each database: the job, its steps
//! as they end, its outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::deadline::{Deadline, Leadership};

use crate::config::{Node, Pool};

/// One promotion to carry out.
#[derive(Debug, Clone)]
pub struct Job {
    pub pool: Pool,
    pub old: Node,
    pub candidate: Node,
    /// The other replicas, to repoint at the candidate.
    pub others: Vec<Node>,
    /// The old primary is alive: demote it first and lose nothing (else a failover).
    pub switchover: bool,
    /// Cluster mode: the leadership the promotion was decided under.
    pub mandate: Option<Mandate>,
    /// Whether a client can still write to the old primary through an answer hadns gave:
    /// the fence and the supervisor say, the candidate is made writable only once it
    /// cannot (`Job::wait_old_primary_out`).
    pub old_primary: tokio::sync::watch::Sender<OldPrimary>,
}

/// What can still reach the old primary of a failover. A host that refuses connections
/// now may be restarted writable a moment later (a crashed `mysqld` or `postgres` comes
/// back as it was configured), and a client holding an answer that names it would write
/// there beside the new primary: refused connections prove nothing about the TTL ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldPrimary {
    /// Some answer naming it may still be in use; until when is not known yet.
    Named,
    /// The last answer naming it may be used until then (served before its withdrawal,
    /// plus the record's TTL; in cluster mode by every member).
    NamedUntil(Instant),
    /// It takes no writes: its fence succeeded (read-only, or `fence_command` exit 0).
    Fenced,
}

/// A cluster leader acts only while it still leads under the epoch it decided in and its
/// lease is proven current (the writers' deadline): a leader that stalled (SIGSTOP, a
/// frozen VM) or lost etcd stops before its next step, since another may lead by then.
#[derive(Debug, Clone)]
pub struct Mandate {
    pub epoch: i64,
    pub leadership: Arc<Leadership>,
    pub writers: Arc<Deadline>,
}

impl Job {
    /// The promotion of node `candidate` of `pool` in place of node `old` (positions in the
    /// pool), repointing `others`; without a mandate (cluster mode sets one).
    pub fn new(
        pool: &Pool,
        old: usize,
        candidate: usize,
        others: impl IntoIterator<Item = usize>,
        switchover: bool,
    ) -> Job {
        Job {
            pool: pool.clone(),
            old: pool.nodes[old].clone(),
            candidate: pool.nodes[candidate].clone(),
            others: others.into_iter().map(|i| pool.nodes[i].clone()).collect(),
            switchover,
            mandate: None,
            old_primary: tokio::sync::watch::Sender::new(OldPrimary::Named),
        }
    }

    /// Until when answers naming the old primary may be used (`None`: still named); a
    /// fence that succeeded is not undone by it.
    pub fn old_primary_named(&self, until: Option<Instant>) {
        let next = until.map_or(OldPrimary::Named, OldPrimary::NamedUntil);
        self.old_primary.send_if_modified(|now| {
            let changed = *now != OldPrimary::Fenced && *now != next;
            if changed {
                *now = next;
            }
            changed
        });
    }

    /// Waits until no client can write to the old primary through an
    /// answer hadns gave: its fence succeeded, or every answer naming it expired; an
    /// expiry not known within `limit` fails. What ended the wait, or why it did not end.
    pub async fn wait_old_primary_out(&self, limit: Duration) -> Result<String, String> {
        let mut state = self.old_primary.subscribe();
        let deadline = Instant::now() + limit;
        loop {
            let now = Instant::now();
            let wake = match *state.borrow_and_update() {
                OldPrimary::Fenced => return Ok(format!("{} is fenced", self.old.name)),
                OldPrimary::NamedUntil(until) if until <= now => {
                    return Ok(format!(
                        "no answer naming {} is usable any more",
                        self.old.name
                    ));
                }
                // Bounded by the TTL of the records, which the configuration bounds.
                OldPrimary::NamedUntil(until) => until,
                OldPrimary::Named if now < deadline => deadline,
                OldPrimary::Named => {
                    return Err(format!(
                        "answers naming {} may still be in use after {limit:?} (neither fenced nor \
                     withdrawn everywhere for the TTL); not promoted, so that no client \
                     writes to both",
                        self.old.name
                    ));
                }
            };
            // The sender lives in the job itself: `changed` cannot fail while it runs.
            let _ = tokio::time::timeout_at(wake.into(), state.changed()).await;
        }
    }

    /// Whether this member may still take the next step.
    pub fn may_act(&self) -> Result<(), String> {
        self.mandate.as_ref().map_or(Ok(()), Mandate::check)
    }
}

impl Mandate {
    /// Whether the leader still leads under its epoch with a proven lease.
    pub fn check(&self) -> Result<(), String> {
        if !self.leadership.holds(self.epoch) {
            return Err(format!(
                "this member no longer leads the cluster (it decided as leader {}): the next \
                 leader decides",
                self.epoch
            ));
        }
        if self.writers.is_past() {
            return Err(
                "this member's lease is not proven current (etcd has not confirmed \
                        it in time): the next leader decides"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The steps, in order, as `/status` and the events name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Fence,
    CatchUp,
    /// The wait until no client can write to the old primary (`OldPrimary`).
    Expire,
    Promote,
    Publish,
    /// The new primary's replication from the old one reset (MySQL/MariaDB).
    Detach,
    Repoint,
    Rejoin,
    /// A switchover that stopped after the demotion: the old primary made writable again.
    Undo,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        f.write_str(name.as_str().unwrap_or_default())
    }
}

/// Times a step that started at the given instant on a node, reports it, and hands its
/// result back.
pub(super) type Timed<'a> = dyn Fn(Step, &Node, std::time::Instant, Result<String, String>) -> Result<String, String>
    + Send
    + Sync
    + 'a;

/// One step that ended.
#[derive(Debug, Clone)]
pub struct StepDone {
    pub step: Step,
    /// The node it was done on.
    pub node: String,
    pub took: Duration,
    /// What was done, or why it failed.
    pub result: Result<String, String>,
}

/// How a promotion ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The candidate accepts writes.
    Promoted,
    /// Stopped before the candidate was made writable, and why; nothing was promoted.
    Aborted(String),
}

/// `step` bounded by `limit`, its timeout named.
pub(super) async fn within<T>(
    limit: Duration,
    what: &str,
    step: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(limit, step)
        .await
        .unwrap_or_else(|_| Err(format!("{what} timed out after {limit:?}")))
}

/// The `expire` step (on the old primary): the wait of `Job::wait_old_primary_out`, within
/// `step_timeout` for the expiry to be known; then the mandate is checked again.
pub(super) async fn expire(job: &Job, timed: &Timed<'_>) -> Result<(), String> {
    let started = Instant::now();
    let out = job
        .wait_old_primary_out(job.pool.promote.step_timeout)
        .await;
    timed(Step::Expire, &job.old, started, out)?;
    job.may_act()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        let text = "[dns]\nlisten = [\"127.0.0.1:5353\"]\nzones_dir = \"zones\"\n\
                    [[pool]]\nname = \"db\"\ncheck = \"tcp\"\n\
                    [[pool.node]]\nname = \"m1\"\naddress = \"10.0.0.1\"\nport = 3306\n\
                    [[pool.node]]\nname = \"m2\"\naddress = \"10.0.0.2\"\nport = 3306\n";
        let config = crate::config::Config::from_toml(text, std::path::Path::new("/etc/hadns"))
            .expect("a valid config");
        Job::new(&config.pools[0], 0, 1, [], false)
    }

    #[tokio::test]
    async fn the_candidate_waits_until_the_answers_naming_the_old_primary_expire() {
        let job = job();
        let started = Instant::now();
        let until = started + Duration::from_millis(150);
        let told = job.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            told.old_primary_named(Some(until));
        });
        let out = job.wait_old_primary_out(Duration::from_secs(5)).await;
        assert!(
            Instant::now() >= until,
            "ended {:?} early",
            until - Instant::now()
        );
        assert_eq!(out, Ok("no answer naming m1 is usable any more".into()));
    }

    #[tokio::test]
    async fn a_fenced_old_primary_ends_the_wait_and_stays_fenced() {
        let job = job();
        job.old_primary_named(Some(Instant::now() + Duration::from_secs(600)));
        let fencer = job.clone();
        tokio::spawn(async move { fencer.old_primary.send_replace(OldPrimary::Fenced) });
        let out = job.wait_old_primary_out(Duration::from_secs(600)).await;
        assert_eq!(out, Ok("m1 is fenced".into()));
        job.old_primary_named(None);
        assert_eq!(*job.old_primary.borrow(), OldPrimary::Fenced);
    }

    #[tokio::test]
    async fn an_expiry_never_known_fails_the_step() {
        let job = job();
        let out = job.wait_old_primary_out(Duration::from_millis(50)).await;
        assert!(
            out.unwrap_err()
                .starts_with("answers naming m1 may still be in use")
        );
    }
}
