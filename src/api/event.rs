//! One event as `/events` serves it and `hadns events` prints it.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// What happened; `/events` shows it in snake case (`node_changed`, `fence_failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    NodeChanged,
    AnswerChanged,
    SplitBrain,
    ClusterMismatch,
    ClusterRejoined,
    Stale,
    Drained,
    Undrained,
    Fencing,
    Fenced,
    FenceFailed,
    VipTaken,
    VipReleased,
    VipConflict,
    VipFence,
    Reload,
    ReloadRejected,
    HookFailed,
    /// A promotion started, or one of its steps ended (the message has its duration).
    Promotion,
    /// A replica was promoted and accepts writes.
    Promoted,
    /// A promotion stopped before its candidate was promoted.
    PromotionFailed,
    /// The primary is down but no replica may be promoted, or promotion is blocked.
    PromotionRefused,
    /// A probe result that moves a node towards a change: a failure while it is up (one of
    /// `fall`), a success while it is down (one of `rise`). Others are not recorded.
    Probe,
    /// A secondary acknowledged the NOTIFY for a zone's serial, or did not (retried).
    Notify,
    /// A secondary transferred a zone (AXFR or IXFR).
    Transfer,
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde name: one spelling in /events, the CLI and the logs.
        let name = serde_json::to_value(self).map_err(|_| fmt::Error)?;
        f.write_str(name.as_str().unwrap_or_default())
    }
}

/// One event as `/events` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventRecord {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub message: String,
    /// The zone serial the event is about: an answer's publication, a NOTIFY, a transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u32>,
}

impl EventRecord {
    pub fn new(kind: EventKind, message: impl Into<String>) -> EventRecord {
        EventRecord {
            time: rfc3339(SystemTime::now()),
            kind,
            record: None,
            pool: None,
            node: None,
            from: None,
            to: None,
            message: message.into(),
            serial: None,
        }
    }

    pub fn at(mut self, pool: &str, node: &str) -> EventRecord {
        self.pool = Some(pool.into());
        self.node = Some(node.into());
        self
    }

    pub fn change(mut self, from: impl Into<String>, to: impl Into<String>) -> EventRecord {
        self.from = Some(from.into());
        self.to = Some(to.into());
        self
    }
}

/// `2026-11-23T17:01:02.345Z`
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Where parts that run outside the supervisor (NOTIFY, zone transfers) send events for
/// the event log. Bounded and never waiting: when the queue is full the event is dropped
/// (it is in the log too); answering a query never waits for the event log.
#[derive(Clone, Default, Debug)]
pub struct EventSink(Option<tokio::sync::mpsc::Sender<EventRecord>>);

impl EventSink {
    /// A sink into `sender`.
    pub fn new(sender: tokio::sync::mpsc::Sender<EventRecord>) -> EventSink {
        EventSink(Some(sender))
    }

    pub fn send(&self, event: EventRecord) {
        if let Some(sender) = &self.0 {
            let _ = sender.try_send(event);
        }
    }

    /// Sends `event` when there is one.
    pub fn send_some(&self, event: Option<EventRecord>) {
        if let Some(event) = event {
            self.send(event);
        }
    }
}
