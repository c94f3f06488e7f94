//! One event as `/events` serves it and `hadns events` prints it.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One event as `/events` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventRecord {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// `node_changed`, `answer_changed`, `split_brain`, `cluster_mismatch`,
    /// `cluster_rejoined`, `stale`, `drained`, `undrained`, `fencing`, `fenced`,
    /// `fence_failed`, `vip_taken`, `vip_released`, `vip_conflict`, `vip_fence`,
    /// `reload`, `reload_rejected`, `hook_failed`.
    pub kind: String,
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
}

impl EventRecord {
    pub fn new(kind: &str, message: impl Into<String>) -> EventRecord {
        EventRecord {
            time: rfc3339(SystemTime::now()),
            kind: kind.into(),
            record: None,
            pool: None,
            node: None,
            from: None,
            to: None,
            message: message.into(),
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
