//! `[pool.promote]`: hadns promotes a replica itself when the primary is down.

use std::time::Duration;

use serde::Deserialize;

use super::fields::{choice, duration, duration_or_zero};
use super::{Check, Fencing, MaxLag, Problem};

const DEFAULT_BLOCK: Duration = Duration::from_secs(3600);
const DEFAULT_APPLY_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
pub(super) struct RawPromote {
    mode: Option<String>,
    max_lag: Option<String>,
    block: Option<toml::Value>,
    apply_timeout: Option<toml::Value>,
    step_timeout: Option<toml::Value>,
    rejoin: Option<String>,
    replication_user: Option<String>,
    replication_password: Option<String>,
}

/// `promote.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PromoteMode {
    /// Follow only: an HA manager or a person promotes (the default).
    Off,
    /// Only on `hadns promote`.
    Manual,
    /// When the primary is down, and on `hadns promote`.
    Auto,
}

/// `promote.rejoin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rejoin {
    /// The old primary stays fenced until a person deals with it (the default).
    Off,
    /// MySQL/MariaDB: the old primary replicates from the new one when its GTID set is
    /// contained in the new primary's.
    Auto,
}

/// `[pool.promote]`, validated.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Promote {
    pub mode: PromoteMode,
    /// A candidate further behind the primary's last seen position is never promoted.
    pub max_lag: Option<MaxLag>,
    /// No second automatic promotion in the pool within this time.
    pub block: Duration,
    /// How long the candidate may take to apply what it received before it is promoted.
    pub apply_timeout: Duration,
    /// Every other step's bound (promote, repoint, check).
    pub step_timeout: Duration,
    pub rejoin: Rejoin,
    /// The account replicas use (rejoin: the old primary's replication is configured
    /// from nothing, so it needs one).
    pub replication_user: Option<String>,
    #[serde(skip)]
    pub replication_password: Option<String>,
}

impl Promote {
    pub fn is_off(&self) -> bool {
        *self == Promote::off()
    }

    pub fn off() -> Promote {
        Promote {
            mode: PromoteMode::Off,
            max_lag: None,
            block: DEFAULT_BLOCK,
            apply_timeout: DEFAULT_APPLY_TIMEOUT,
            step_timeout: DEFAULT_STEP_TIMEOUT,
            rejoin: Rejoin::Off,
            replication_user: None,
            replication_password: None,
        }
    }
}

pub(super) fn validate_promote(
    raw: Option<RawPromote>,
    check: &Check,
    fence: &Fencing,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Promote {
    let Some(raw) = raw else {
        return Promote::off();
    };
    let path = format!("{path}.promote");
    let mode = choice(
        raw.mode.as_deref(),
        PromoteMode::Off,
        ("mode", "off | manual | auto"),
        &format!("{path}.mode"),
        problems,
    );
    if mode != PromoteMode::Off && !check.knows_roles() {
        problems.push(Problem::new(
            format!("{path}.mode"),
            format!(
                "promotion needs a postgres or mysql check (check is {:?})",
                check.kind()
            ),
        ));
    }
    if mode != PromoteMode::Off && !fence.is_enabled() {
        problems.push(Problem::new(
            format!("{path}.mode"),
            "promotion needs fencing: set fence = \"read-only\" (or fence_command) on the \
             pool, so that the old primary is fenced before and after it is replaced",
        ));
    }
    let max_lag = raw.max_lag.as_deref().and_then(|text| {
        super::record::parse_lag_for(text, Some(check), &format!("{path}.max_lag"), problems)
    });
    let rejoin = validate_rejoin(
        raw.rejoin.as_deref(),
        check,
        raw.replication_user.is_some(),
        &path,
        problems,
    );
    Promote {
        mode,
        max_lag,
        block: duration_or_zero(raw.block, DEFAULT_BLOCK, &format!("{path}.block"), problems),
        apply_timeout: duration(
            raw.apply_timeout,
            DEFAULT_APPLY_TIMEOUT,
            &format!("{path}.apply_timeout"),
            problems,
        ),
        step_timeout: duration(
            raw.step_timeout,
            DEFAULT_STEP_TIMEOUT,
            &format!("{path}.step_timeout"),
            problems,
        ),
        rejoin,
        replication_user: raw.replication_user,
        replication_password: raw.replication_password,
    }
}

/// `promote.rejoin`: `auto` only on mysql pools, and with the replicas' account.
fn validate_rejoin(
    rejoin: Option<&str>,
    check: &Check,
    has_user: bool,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Rejoin {
    let rejoin = choice(
        rejoin,
        Rejoin::Off,
        ("rejoin", "off | auto"),
        &format!("{path}.rejoin"),
        problems,
    );
    if rejoin == Rejoin::Auto {
        if !matches!(check, Check::Mysql(_)) {
            problems.push(Problem::new(
                format!("{path}.rejoin"),
                "\"auto\" is for mysql pools: a PostgreSQL primary needs pg_rewind, which \
                 hadns does not run (it says which command to run)",
            ));
        }
        if !has_user {
            problems.push(Problem::new(
                format!("{path}.replication_user"),
                "missing: rejoin = \"auto\" configures the old primary's replication, \
                 which needs the replicas' account",
            ));
        }
    }
    rejoin
}
