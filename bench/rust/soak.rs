//! The soak benchmark: `soak` of the integration tests, for an hour by default.

use std::time::Duration;

/// The long soak of bench/soak.sh.
pub async fn soak_benchmark() {
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let report = crate::soak::soak(
        number("HADNS_SOAK_SECONDS", 3600),
        number("HADNS_SOAK_QPS", 10_000),
        Duration::from_secs(60),
    )
    .await;
    crate::soak::assert_steady(&report);
}
