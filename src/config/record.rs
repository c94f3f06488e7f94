//! `[[record]]`: a failover name answered from a pool, every problem collected.

use std::time::Duration;

use serde::Deserialize;

use super::fields::{
    choice, command, duration, duration_or_zero, normalize_name, parse_duration, required,
};
use super::*;

const DEFAULT_TTL: u32 = 1;
const DEFAULT_MAX_STALE: Duration = Duration::from_secs(30);
const DEFAULT_ON_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
pub(super) struct RawRecord {
    name: Option<String>,
    pool: Option<String>,
    select: Option<String>,
    ttl: Option<i64>,
    failback: Option<bool>,
    on_empty: Option<String>,
    max_lag: Option<String>,
    max_stale: Option<toml::Value>,
    on_change: Option<Vec<String>>,
    on_change_timeout: Option<toml::Value>,
    by_site: Option<bool>,
}

pub(super) fn validate_record(
    raw: RawRecord,
    path: &str,
    pools: &[Pool],
    problems: &mut Vec<Problem>,
) -> Option<Record> {
    let name = required(raw.name, &format!("{path}.name"), problems);
    let pool_name = required(raw.pool, &format!("{path}.pool"), problems);
    let pool_id = pool_name
        .as_deref()
        .and_then(|wanted| find_pool(pools, wanted, path, problems));
    let pool = pool_id.map(|p| &pools[p.0]);
    let select = validate_select(raw.select.as_deref(), pool, path, problems);
    let max_lag = raw.max_lag.as_deref().and_then(|text| {
        validate_max_lag(text, select, pool, &format!("{path}.max_lag"), problems)
    });
    let max_stale = duration_or_zero(
        raw.max_stale,
        DEFAULT_MAX_STALE,
        &format!("{path}.max_stale"),
        problems,
    );
    let on_empty = choice(
        raw.on_empty.as_deref(),
        OnEmpty::Nodata,
        ("value", "nodata | servfail | all"),
        &format!("{path}.on_empty"),
        problems,
    );
    let ttl = match raw.ttl {
        None => DEFAULT_TTL,
        Some(t) => match u32::try_from(t) {
            Ok(t) if t <= i32::MAX as u32 => t,
            _ => {
                problems.push(Problem::new(
                    format!("{path}.ttl"),
                    format!("{t} is not a TTL in seconds (0 to 2147483647)"),
                ));
                DEFAULT_TTL
            }
        },
    };
    if raw.failback.is_some() && select != Select::First {
        problems.push(Problem::new(
            format!("{path}.failback"),
            "only means something with select = \"first\"",
        ));
    }
    let by_site = raw.by_site.unwrap_or(false);
    if by_site && select == Select::Primary {
        problems.push(Problem::new(
            format!("{path}.by_site"),
            "never with select = \"primary\": every client must get the same writer",
        ));
    }
    let on_change = command(raw.on_change, &format!("{path}.on_change"), problems);
    let on_change_timeout = duration(
        raw.on_change_timeout,
        DEFAULT_ON_CHANGE_TIMEOUT,
        &format!("{path}.on_change_timeout"),
        problems,
    );
    Some(Record {
        path: path.to_string(),
        name: normalize_name(&name?),
        pool: pool_id?,
        select,
        ttl,
        failback: raw.failback.unwrap_or(true),
        on_empty,
        max_lag,
        max_stale,
        on_change,
        on_change_timeout,
        by_site,
    })
}

/// The pool a record names.
fn find_pool(
    pools: &[Pool],
    wanted: &str,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<PoolId> {
    let found = pools.iter().position(|p| p.name == wanted).map(PoolId);
    if found.is_none() {
        problems.push(Problem::new(
            format!("{path}.pool"),
            format!("no pool named {wanted:?}"),
        ));
    }
    found
}

/// `select`: `primary` and `replicas` need a pool whose check knows roles.
fn validate_select(
    raw: Option<&str>,
    pool: Option<&Pool>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Select {
    let select = choice(
        raw,
        Select::First,
        ("selector", "first | healthy | primary | replicas"),
        &format!("{path}.select"),
        problems,
    );
    if let Some(pool) = pool
        && matches!(select, Select::Primary | Select::Replicas)
        && !pool.check.knows_roles()
    {
        problems.push(Problem::new(
            format!("{path}.select"),
            format!(
                "{:?} needs a pool whose check knows roles (postgres | mysql); pool {:?} uses {:?}",
                raw.unwrap_or_default(),
                pool.name,
                pool.check.kind()
            ),
        ));
    }
    select
}

/// `max_lag`: only with `replicas`, in a unit the pool's database counts, and (a time) not
/// under two check intervals.
fn validate_max_lag(
    text: &str,
    select: Select,
    pool: Option<&Pool>,
    lag_path: &str,
    problems: &mut Vec<Problem>,
) -> Option<MaxLag> {
    if select != Select::Replicas {
        problems.push(Problem::new(
            lag_path,
            "only means something with select = \"replicas\"",
        ));
        return None;
    }
    let lag = parse_lag_for(text, pool.map(|p| &p.check), lag_path, problems)?;
    match (lag, pool) {
        // hadns measures a time lag from its own probes of the primary, which errs
        // long by up to one interval: a healthy replica must fit under half the limit.
        (MaxLag::Time(max), Some(p)) if max < p.interval * 2 => problems.push(Problem::new(
            lag_path,
            format!(
                "{text:?} is shorter than two check intervals of the pool ({:?}); \
                     lag is measured with the interval's resolution",
                p.interval * 2
            ),
        )),
        _ => {}
    }
    Some(lag)
}

/// A lag (`parse_max_lag`) in a unit the pool's database counts: sizes for PostgreSQL,
/// transactions for MySQL/MariaDB, times for both. `max_lag` of records and of
/// `[pool.promote]`.
pub(super) fn parse_lag_for(
    text: &str,
    check: Option<&Check>,
    lag_path: &str,
    problems: &mut Vec<Problem>,
) -> Option<MaxLag> {
    let lag = parse_max_lag(text)
        .map_err(|m| problems.push(Problem::new(lag_path, m)))
        .ok()?;
    match (lag, check) {
        (MaxLag::Bytes(_), Some(Check::Mysql(_))) => problems.push(Problem::new(
            lag_path,
            "a size is a PostgreSQL WAL distance; for mysql use a number of transactions \
             (\"100 transactions\") or a time (\"5s\")",
        )),
        (MaxLag::Transactions(_), Some(Check::Postgres(_))) => problems.push(Problem::new(
            lag_path,
            "transactions are counted on mysql pools only; for postgres use a size \
             (\"16MB\") or a time (\"5s\")",
        )),
        _ => {}
    }
    Some(lag)
}

/// `"16MB"`, `"512kB"`, `"1GB"` (powers of 1024, as PostgreSQL writes sizes), a number of
/// transactions (`"100 transactions"`), or a duration.
pub(super) fn parse_max_lag(text: &str) -> Result<MaxLag, String> {
    let t = text.trim();
    if let Some(number) = (t.strip_suffix("transactions")).or_else(|| t.strip_suffix("transaction"))
    {
        return number
            .trim()
            .parse()
            .map(MaxLag::Transactions)
            .map_err(|_| format!("{text:?} is not a count such as \"100 transactions\""));
    }
    if let Ok(bytes) = super::fields::parse_size(t) {
        return Ok(MaxLag::Bytes(bytes));
    }
    parse_duration(t).map(MaxLag::Time).map_err(|_| {
        format!(
            "{text:?} is neither a size (\"16MB\", \"512kB\"), a number of transactions \
             (\"100 transactions\") nor a duration (\"5s\")"
        )
    })
}
