//! Waiting for a condition with a deadline: the tests' only way to wait.

use std::time::Duration;

use tokio::time::Instant;

/// Waits for `condition` to hold, checking again every few milliseconds, until `limit`.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for_value(limit, what, &true, condition).await;
}

/// Waits until `value()` is `expected`, asking again every few milliseconds, until
/// `limit`; a timeout names the last value seen.
pub async fn wait_for_value<T, F, Fut>(limit: Duration, what: &str, expected: &T, mut value: F)
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last = value().await;
        if &last == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what} (last: {last:?})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `value()` is `Some`, asking again every few milliseconds, until `limit`;
/// returns what it held.
pub async fn wait_for_some<T, F, Fut>(limit: Duration, what: &str, mut value: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = value().await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
