//! Where each pool's promotion stands (the supervisor's `promoting.rs` drives it): idle,
//! running a step, refused and why, blocked until when; the last promotion's steps with
//! their durations; and the tasks that carry promotions out.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::api::command::CommandError;
use crate::api::event::rfc3339;
use crate::api::status::{PromotionRecord, PromotionStatus, StepStatus};
use crate::checks::promote::{Job, Outcome, Step, StepDone};
use crate::config::PromoteMode;

/// Whether etcd took a promotion's record (cluster mode).
pub type Recorded = oneshot::Receiver<Result<(), String>>;

/// What a promotion task tells the supervisor.
pub enum Progress {
    Step(String, StepDone),
    /// The candidate accepts writes, or the promotion stopped before.
    Finished(String, Outcome),
    /// The other replicas were repointed (each reported as a step).
    Repointed(String),
    /// A rejoin of the old primary ended.
    Rejoined(String, StepDone),
}

/// One pool's promotion.
#[derive(Default)]
pub struct PoolPromotion {
    pub state: State,
    /// No automatic promotion before this (`block` after the last one).
    pub blocked_until: Option<(Instant, SystemTime)>,
    /// No automatic attempt before this (after one that stopped).
    pub retry_at: Option<Instant>,
    /// The running or last promotion.
    pub last: Option<Record>,
    /// The operator's `hadns promote`, answered when the promotion ends.
    pub reply: Option<oneshot::Sender<Result<String, CommandError>>>,
    /// Deposed nodes a rejoin was started for (once per time back), and when one that
    /// failed is tried again (`step_timeout` later: it may have met a node still
    /// starting, or a fence; one that cannot rejoin says so again each time).
    pub rejoining: Vec<String>,
    pub rejoin_after: HashMap<String, Instant>,
}

/// Cluster mode: the record of each pool this leader last wrote, with its leadership (the
/// next change starts from it, not from a watch that may not have delivered it yet).
pub type Written = HashMap<String, (i64, crate::cluster::AgreedPromotion)>;

#[derive(Debug, Clone, Default, PartialEq)]
pub enum State {
    #[default]
    Idle,
    /// Why nothing is done (shown as the detail).
    Watching(String),
    Running(Step),
    Refused(String),
    Blocked(String),
}

pub struct Record {
    pub started: SystemTime,
    pub started_at: Instant,
    pub job: Job,
    /// Indices in the pool of the old primary and the candidate.
    pub old: usize,
    pub candidate: usize,
    pub behind: Option<String>,
    pub manual: bool,
    pub steps: Vec<StepDone>,
    /// When the candidate was promoted: publication is timed from here.
    pub promoted_at: Option<Instant>,
    pub outcome: Option<String>,
    /// The old primary was deposed already (by an earlier promotion) when this one began.
    pub was_deposed: bool,
}

/// Every pool's promotion, by pool name (kept across reloads), and the running tasks.
pub struct Promotions {
    pub pools: HashMap<String, PoolPromotion>,
    /// `promotions.toml` (beside the drain file), and what was last written to it.
    pub file: Option<std::path::PathBuf>,
    pub saved: super::promotion_file::Saved,
    pub written: Written,
    tasks: JoinSet<()>,
    progress: mpsc::UnboundedSender<Progress>,
    pub finished: mpsc::UnboundedReceiver<Progress>,
}

impl Promotions {
    /// `file`: where the state is kept across restarts (none: in memory only).
    pub fn new(file: Option<std::path::PathBuf>) -> Promotions {
        let (progress, finished) = mpsc::unbounded_channel();
        Promotions {
            pools: HashMap::new(),
            file,
            saved: Default::default(),
            written: HashMap::new(),
            tasks: JoinSet::new(),
            progress,
            finished,
        }
    }

    pub fn pool(&mut self, name: &str) -> &mut PoolPromotion {
        self.pools.entry(name.to_string()).or_default()
    }

    /// Runs the promotion of `job` in its own task; in cluster mode once etcd took its
    /// record (`recorded`: otherwise it stops before any step).
    pub fn start(&mut self, pool: String, job: Job, recorded: Option<Recorded>) {
        let progress = self.progress.clone();
        self.tasks.spawn(async move {
            let report = reporter(&progress, &pool);
            let finished = |outcome| {
                let _ = progress.send(Progress::Finished(pool.clone(), outcome));
            };
            if let Some(recorded) = recorded {
                let taken = recorded
                    .await
                    .unwrap_or_else(|_| Err("this member stopped".into()));
                if let Err(why) = taken {
                    let why = format!("its record could not be written to etcd: {why}");
                    return finished(Outcome::Aborted(why));
                }
            }
            crate::checks::promote::promote(&job, &report, &finished).await;
        });
        while self.tasks.try_join_next().is_some() {}
    }

    /// Repoints the job's other replicas in a task of its own.
    pub fn repoint(&mut self, pool: String, job: Job) {
        let progress = self.progress.clone();
        self.tasks.spawn(async move {
            let report = reporter(&progress, &pool);
            crate::checks::promote::repoint(&job, &report).await;
            let _ = progress.send(Progress::Repointed(pool));
        });
    }

    /// Attaches a deposed node as a replica of the new primary, in a task of its own.
    pub fn rejoin(
        &mut self,
        pool: &crate::config::Pool,
        old: &crate::config::Node,
        primary: &crate::config::Node,
    ) {
        let (pool, old, primary) = (pool.clone(), old.clone(), primary.clone());
        let progress = self.progress.clone();
        self.tasks.spawn(async move {
            let started = Instant::now();
            let result = crate::checks::promote::rejoin(&pool, &old, &primary).await;
            let done = StepDone {
                step: Step::Rejoin,
                node: old.name,
                took: started.elapsed(),
                result,
            };
            let _ = progress.send(Progress::Rejoined(pool.name, done));
        });
    }
}

/// Sends each step of `pool`'s promotion to the supervisor as it ends.
fn reporter(progress: &mpsc::UnboundedSender<Progress>, pool: &str) -> impl Fn(StepDone) + use<> {
    let (progress, pool) = (progress.clone(), pool.to_string());
    move |done: StepDone| {
        // The receiver lives as long as the promotions, which own the task.
        let _ = progress.send(Progress::Step(pool.clone(), done));
    }
}

impl PoolPromotion {
    /// A promotion runs (or waits for its publication or repointing).
    pub fn busy(&self) -> bool {
        matches!(self.state, State::Running(_))
    }

    pub fn blocked(&self, now: Instant) -> Option<SystemTime> {
        self.blocked_until
            .filter(|(until, _)| *until > now)
            .map(|(_, wall)| wall)
    }

    /// The `/status` part, for a pool promoting in `mode`.
    pub fn status(&self, mode: PromoteMode, now: Instant) -> PromotionStatus {
        let (state, step, detail) = match &self.state {
            State::Idle => ("idle", None, String::new()),
            State::Watching(why) => ("idle", None, why.clone()),
            State::Running(step) => ("running", Some(step.to_string()), String::new()),
            State::Refused(why) => ("refused", None, why.clone()),
            State::Blocked(why) => ("blocked", None, why.clone()),
        };
        PromotionStatus {
            mode: serde_json::to_value(mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            state: state.into(),
            step,
            detail,
            blocked_until: self.blocked(now).map(rfc3339),
            last: self.last.as_ref().map(Record::status),
        }
    }
}

impl Record {
    fn status(&self) -> PromotionRecord {
        PromotionRecord {
            started: rfc3339(self.started),
            old: self.job.old.name.clone(),
            candidate: self.job.candidate.name.clone(),
            switchover: self.job.switchover,
            manual: self.manual,
            behind: self.behind.clone(),
            outcome: self.outcome.clone(),
            steps: self
                .steps
                .iter()
                .map(|s| StepStatus {
                    step: s.step.to_string(),
                    node: s.node.clone(),
                    ms: s.took.as_secs_f64() * 1000.0,
                    ok: s.result.is_ok(),
                    detail: match &s.result {
                        Ok(done) => done.clone(),
                        Err(why) => why.clone(),
                    },
                })
                .collect(),
        }
    }

    /// Milliseconds from the start, for a summary line.
    pub fn took(&self) -> Duration {
        self.started_at.elapsed()
    }
}
