//! What a failed probe says, shared by the probers: the failure, a database session
//! reopened within the timeout, an IO error in a few words.

use std::io;
use std::time::Duration;

/// A failed probe: why, and whether it needs no confirmation (a broken session whose
/// reconnect was refused).
#[derive(Debug)]
pub struct Failure {
    pub reason: String,
    pub conclusive: bool,
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure {
            reason,
            conclusive: false,
        }
    }
}

impl From<&str> for Failure {
    fn from(reason: &str) -> Self {
        Failure::from(reason.to_string())
    }
}

/// Opens a database session within `timeout`. `lost`: the previous session broke by
/// itself, so a refused reconnect is conclusive (the server is gone, not slow).
pub async fn reconnect<T>(
    timeout: Duration,
    lost: bool,
    connect: impl Future<Output = Result<T, String>>,
) -> Result<T, Failure> {
    let result = tokio::time::timeout(timeout, connect)
        .await
        .unwrap_or_else(|_| Err(format!("connect timed out after {timeout:?}")));
    result.map_err(|reason| Failure {
        reason: if lost {
            format!("session lost; reconnect failed: {reason}")
        } else {
            reason
        },
        conclusive: lost,
    })
}

/// Whether a failure's reason (as `describe` words it) says the node's host refused or
/// reset the connection: a process is not listening there, unlike a timeout or an
/// unreachable host, which a partition also gives.
pub fn refused(reason: &str) -> bool {
    const REFUSALS: [&str; 2] = ["connection refused", "connection reset by peer"];
    let last = reason.rsplit(": ").next().unwrap_or(reason);
    REFUSALS.contains(&last)
}

/// A short, lowercase reason for an IO error: `connection refused`, `host unreachable`.
pub fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", e.kind()),
    }
}
