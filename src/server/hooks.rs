//! `on_change` hooks: a command run when a record's answer changes, off the answer path.
//!
//! Each record with a hook has one runner task and a queue: its hooks run one at a time,
//! in the order the changes were published, each killed (with its process group) at
//! `on_change_timeout`. The supervisor only enqueues, so a slow hook never delays a
//! snapshot or a DNS answer. On shutdown the queues are closed and what is queued still
//! runs, each hook bounded by its timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{error, info};

/// Runs waiting per record. A record that flaps faster than its hook runs would otherwise
/// queue without end; beyond this, new runs are dropped and that is logged.
const QUEUE: usize = 100;

use super::events::{EventKind, EventRecord, describe_answer, rfc3339};
use crate::config::{Config, Node};
use crate::engine::{Answer, RecordId};
use crate::metrics::Metrics;

/// A published change of a record's answer.
pub struct Change<'a> {
    pub record: RecordId,
    pub from: &'a Answer,
    pub to: &'a Answer,
    pub reason: &'a str,
    /// The zone's SOA serial with the new answer.
    pub serial: u32,
}

/// The run of the record's `on_change` hook for `change`, if it has one, with the change
/// in its environment (documented in docs/configuration.md).
pub fn job(config: &Config, change: &Change<'_>) -> Option<Job> {
    let record = config.record(change.record);
    let command = record.on_change.as_ref()?;
    let pool = config.record_pool(change.record);
    let list = |answer: &Answer, f: &dyn Fn(&Node) -> String| match answer {
        Answer::Nodes(nodes) => nodes
            .iter()
            .map(|&n| f(&pool.nodes[n]))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    let (from, to) = (change.from, change.to);
    let env = vec![
        ("HADNS_RECORD", record.name.clone()),
        ("HADNS_POOL", pool.name.clone()),
        ("HADNS_OLD", describe_answer(config, change.record, from)),
        ("HADNS_NEW", describe_answer(config, change.record, to)),
        ("HADNS_OLD_NODES", list(from, &|n| n.name.clone())),
        ("HADNS_NEW_NODES", list(to, &|n| n.name.clone())),
        (
            "HADNS_OLD_ADDRESSES",
            list(from, &|n| n.address.to_string()),
        ),
        ("HADNS_NEW_ADDRESSES", list(to, &|n| n.address.to_string())),
        ("HADNS_REASON", change.reason.to_string()),
        ("HADNS_SERIAL", change.serial.to_string()),
        ("HADNS_TIME", rfc3339(SystemTime::now())),
    ];
    Some(Job {
        record: record.name.clone(),
        command: command.clone(),
        timeout: record.on_change_timeout,
        env,
    })
}

/// One run of a record's hook.
pub struct Job {
    pub record: String,
    pub command: Vec<String>,
    pub timeout: Duration,
    pub env: Vec<(&'static str, String)>,
}

pub struct Hooks {
    queues: HashMap<String, mpsc::Sender<Job>>,
    tasks: JoinSet<()>,
    /// Failures go to the event log through the supervisor.
    failures: mpsc::UnboundedSender<EventRecord>,
    metrics: Arc<Metrics>,
}

impl Hooks {
    pub fn new(failures: mpsc::UnboundedSender<EventRecord>, metrics: Arc<Metrics>) -> Hooks {
        Hooks {
            queues: HashMap::new(),
            tasks: JoinSet::new(),
            failures,
            metrics,
        }
    }

    /// Queues a run behind the record's earlier ones; returns at once.
    pub fn enqueue(&mut self, job: Job) {
        let queue = self.queues.entry(job.record.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            self.tasks
                .spawn(run_queue(rx, self.failures.clone(), self.metrics.clone()));
            tx
        });
        // The runner only ends when its sender is dropped: a send fails only when full.
        if let Err(mpsc::error::TrySendError::Full(job)) = queue.try_send(job) {
            error!(record = %job.record, queued = QUEUE, "on_change hook not run: its queue is full (the record changes faster than its hook runs)");
            self.metrics
                .hooks
                .with_label_values(&[job.record.as_str(), "dropped"])
                .inc();
            let mut event = EventRecord::new(
                EventKind::HookFailed,
                format!("{QUEUE} runs already queued; this change's run was dropped"),
            );
            event.record = Some(job.record);
            let _ = self.failures.send(event);
        }
    }

    /// Closes every queue and waits until what was queued has run.
    pub async fn finish(mut self) {
        self.queues.clear();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn run_queue(
    mut jobs: mpsc::Receiver<Job>,
    failures: mpsc::UnboundedSender<EventRecord>,
    metrics: Arc<Metrics>,
) {
    while let Some(job) = jobs.recv().await {
        let command = job.command.join(" ");
        match crate::checks::run_command(&job.command, &job.env, job.timeout).await {
            Ok(_) => {
                info!(record = %job.record, command = %command, "on_change hook done");
                metrics
                    .hooks
                    .with_label_values(&[job.record.as_str(), "ok"])
                    .inc();
            }
            Err(reason) => {
                error!(record = %job.record, command = %command, error = %reason, "on_change hook failed");
                metrics
                    .hooks
                    .with_label_values(&[job.record.as_str(), "failed"])
                    .inc();
                let mut event =
                    EventRecord::new(EventKind::HookFailed, format!("{command}: {reason}"));
                event.record = Some(job.record.clone());
                let _ = failures.send(event);
            }
        }
    }
}
