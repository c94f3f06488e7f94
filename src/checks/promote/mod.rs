//! Carrying out a promotion (the engine's `promote.rs` decides it): fence the old primary,
//! let the candidate apply what it received, promote it, repoint the other replicas and
//! check that each replicates from it. Each step is reported with its duration as it
//! ends; the supervisor publishes the new primary once its checker sees it writable.
//!
//! MySQL/MariaDB: `MASTER_GTID_WAIT` / `WAIT_FOR_EXECUTED_GTID_SET` on the received
//! position (the relay log is applied, never dropped: no `CHANGE MASTER` before, which
//! would purge it under GTID replication), then `STOP SLAVE`, `RESET SLAVE
//! ALL`, `read_only = OFF`; the others `CHANGE MASTER TO ... MASTER_USE_GTID = slave_pos`
//! (MySQL `SOURCE_AUTO_POSITION = 1`), keeping their credentials. PostgreSQL:
//! `pg_promote()`, the others' `primary_conninfo` with the new host and port, reloaded
//! (13+), the new timeline followed (`recovery_target_timeline = 'latest'`).

mod gtids;
mod job;
mod mysql;
mod postgres;

use std::time::Instant;

use crate::config::{Check, Node, Pool};
pub use job::{Job, Mandate, OldPrimary, Outcome, Step, StepDone};

/// Runs `job`, telling `report` about each step as it ends and `finished` the outcome as
/// soon as it is known. A switchover demotes (fences) the old primary first and stops if
/// that fails. A failover's old primary is down for hadns and for every replica: its fence
/// runs beside the other steps, is reported when it ends (this returns after it), and is
/// not waited for as such: a silent host would only delay the failover by `fence_timeout`,
/// and a deposed node is fenced again whenever it shows up writable. The candidate is made
/// writable only once no client can write to the old primary (step `expire`): its fence
/// succeeded, or every answer naming it expired, since a crashed server may be restarted
/// writable within a TTL of its withdrawal.
pub async fn promote(
    job: &Job,
    report: &(dyn Fn(StepDone) + Send + Sync),
    finished: &(dyn Fn(Outcome) + Send + Sync),
) {
    let timed = |step: Step, node: &Node, started: Instant, result: Result<String, String>| {
        report(StepDone {
            step,
            node: node.name.clone(),
            took: started.elapsed(),
            result: result.clone(),
        });
        result
    };
    let fence = async {
        let started = Instant::now();
        let fenced = super::fence(&job.pool, &job.old).await;
        if fenced.is_ok() {
            job.old_primary.send_replace(OldPrimary::Fenced);
        }
        timed(Step::Fence, &job.old, started, fenced)
    };
    if job.switchover {
        if let Err(why) = fence.await {
            return finished(Outcome::Aborted(format!(
                "the old primary could not be demoted: {why}"
            )));
        }
        return finished(steps(job, &timed).await);
    }
    let fence = std::pin::pin!(fence);
    let steps = std::pin::pin!(steps(job, &timed));
    match futures_util::future::select(fence, steps).await {
        futures_util::future::Either::Left((_, steps)) => finished(steps.await),
        futures_util::future::Either::Right((outcome, fence)) => {
            finished(outcome);
            let _ = fence.await;
        }
    }
}

/// Catch-up and promotion of the candidate; a switchover's demotion undone on failure.
async fn steps(job: &Job, timed: &job::Timed<'_>) -> Outcome {
    if let Err(why) = job.may_act() {
        return Outcome::Aborted(why);
    }
    let result = match &job.pool.check {
        Check::Mysql(check) => mysql::promote(job, check, timed).await,
        Check::Postgres(check) => postgres::promote(job, check, timed).await,
        _ => Err("promotion needs a mysql or postgres check".into()),
    };
    match result {
        Ok(()) => Outcome::Promoted,
        Err(why) => {
            // A switchover that demoted the old primary and then stopped would leave the
            // pool without a writer: the demotion is undone (the candidate is left a
            // replica, its replication started again).
            if job.switchover {
                let started = Instant::now();
                let undone = match &job.pool.check {
                    Check::Mysql(check) => mysql::undo(job, check).await,
                    Check::Postgres(check) => postgres::undo(job, check).await,
                    _ => Ok(String::new()),
                };
                let _ = timed(Step::Undo, &job.old, started, undone);
            }
            // A leader that lost its mandate while a step ran (paused, cut off) failed
            // because the next leader acted: that is the outcome, the step's error its
            // detail.
            match job.may_act() {
                Err(mandate) => Outcome::Aborted(format!("{mandate} (then: {why})")),
                Ok(()) => Outcome::Aborted(why),
            }
        }
    }
}

/// Resets the new primary's replication (MySQL/MariaDB, `mysql::detach`), repoints the
/// other replicas at it (after it was published), then, for a switchover, the old primary
/// when `rejoin` allows.
pub async fn repoint(job: &Job, report: &(dyn Fn(StepDone) + Send + Sync)) {
    if let Check::Mysql(check) = &job.pool.check {
        let started = Instant::now();
        let result = mysql::detach(job, check).await;
        report(StepDone {
            step: Step::Detach,
            node: job.candidate.name.clone(),
            took: started.elapsed(),
            result,
        });
    }
    for node in &job.others {
        let started = Instant::now();
        let result = match &job.pool.check {
            Check::Mysql(check) => mysql::repoint(job, check, node).await,
            Check::Postgres(check) => postgres::repoint(job, check, node).await,
            _ => Err("not a database pool".into()),
        };
        report(StepDone {
            step: Step::Repoint,
            node: node.name.clone(),
            took: started.elapsed(),
            result,
        });
    }
}

/// Attaches the old primary (fenced, back) as a replica of `primary` when its GTID set is
/// contained in the new primary's (MySQL/MariaDB, `rejoin = "auto"`).
pub async fn rejoin(pool: &Pool, old: &Node, primary: &Node) -> Result<String, String> {
    match &pool.check {
        Check::Mysql(check) => mysql::rejoin(pool, check, old, primary).await,
        _ => Err("rejoin is for mysql pools".into()),
    }
}
