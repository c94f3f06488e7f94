//! Raw serde types and their validation into the typed config, every problem collected.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::*;

// === raw serde types ===

#[derive(Deserialize, Default)]
pub(super) struct RawConfig {
    dns: Option<RawDns>,
    #[serde(default)]
    pool: Vec<super::pool::RawPool>,
    #[serde(default)]
    record: Vec<RawRecord>,
    #[serde(default)]
    vip: Vec<super::vip::RawVip>,
    admin: Option<RawAdmin>,
}

#[derive(Deserialize, Default)]
struct RawAdmin {
    listen: Option<String>,
    token_file: Option<String>,
    events: Option<i64>,
    drain_file: Option<String>,
    hosts: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct RawDns {
    listen: Option<Vec<String>>,
    zones_dir: Option<String>,
    udp_workers: Option<i64>,
    udp_coalesce: Option<toml::Value>,
    max_udp_size: Option<i64>,
    tcp_connections: Option<i64>,
    tcp_connections_per_client: Option<i64>,
    rate_limit: Option<i64>,
    rate_limit_slip: Option<i64>,
    rate_limit_ipv4_prefix: Option<i64>,
    rate_limit_ipv6_prefix: Option<i64>,
}

#[derive(Deserialize)]
struct RawRecord {
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
}

// === defaults ===

fn default_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 5353))]
}
const DEFAULT_ZONES_DIR: &str = "zones";
const DEFAULT_TTL: u32 = 1;
const DEFAULT_UDP_COALESCE: Duration = Duration::from_micros(100);
const MAX_UDP_COALESCE: Duration = Duration::from_millis(1);
/// DNS Flag Day 2020: no fragmentation on the common paths.
const DEFAULT_MAX_UDP_SIZE: i64 = 1232;
const DEFAULT_TCP_CONNECTIONS: i64 = 256;
const DEFAULT_TCP_CONNECTIONS_PER_CLIENT: i64 = 16;
/// Nodes checked in all (each has a task, a socket or a session, and its state).
const MAX_NODES: usize = 20_000;
const MAX_RECORDS: usize = 20_000;
const DEFAULT_MAX_STALE: Duration = Duration::from_secs(30);
const DEFAULT_ON_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9153";
const DEFAULT_ADMIN_EVENTS: usize = 1000;

// === validation ===

pub(super) fn validate(raw: RawConfig, base: &Path, problems: &mut Vec<Problem>) -> Config {
    let dns = validate_dns(raw.dns.unwrap_or_default(), base, problems);
    if raw.pool.is_empty() && !raw.record.is_empty() {
        problems.push(Problem::new("pool", "records need at least one [[pool]]"));
    }
    let total_nodes: usize = raw.pool.iter().map(|p| p.node_count()).sum();
    if total_nodes > MAX_NODES {
        problems.push(Problem::new(
            "pool",
            format!("{total_nodes} nodes in all; hadns checks at most {MAX_NODES}"),
        ));
    }
    if raw.record.len() > MAX_RECORDS {
        problems.push(Problem::new(
            "record",
            format!("{} records; at most {MAX_RECORDS}", raw.record.len()),
        ));
    }
    let mut pools = Vec::new();
    let mut pool_names = HashSet::new();
    for (i, raw_pool) in raw.pool.into_iter().enumerate() {
        let pool = super::pool::validate_pool(raw_pool, &format!("pool[{i}]"), base, problems);
        if !pool.name.is_empty() && !pool_names.insert(pool.name.clone()) {
            problems.push(Problem::new(
                format!("pool[{i}].name"),
                format!("pool name {:?} is used twice", pool.name),
            ));
        }
        pools.push(pool);
    }
    let mut records = Vec::new();
    let mut record_names = HashSet::new();
    for (i, raw_record) in raw.record.into_iter().enumerate() {
        let path = format!("record[{i}]");
        if let Some(record) = validate_record(raw_record, &path, &pools, problems) {
            if !record_names.insert(record.name.clone()) {
                problems.push(Problem::new(
                    format!("{path}.name"),
                    format!("record {:?} is defined twice", record.name),
                ));
            }
            records.push(record);
        }
    }
    let vips = super::vip::validate_vips(raw.vip, &pools, &records, problems);
    let admin = raw.admin.map(|a| validate_admin(a, base, problems));
    let mut config = Config {
        dns,
        pools,
        records,
        vips,
        admin,
    };
    resolve_programs(&mut config, base);
    config
}

/// A program given as a relative path (`./hook.sh`, `bin/check`) is relative to the
/// config file's directory, like every other path in it; a bare name is looked up in PATH.
fn resolve_programs(config: &mut Config, base: &Path) {
    let resolve = |command: &mut Vec<String>| {
        if let Some(program) = command.first_mut()
            && program.contains('/')
            && Path::new(program.as_str()).is_relative()
        {
            *program = base
                .join(program.trim_start_matches("./"))
                .display()
                .to_string();
        }
    };
    for pool in &mut config.pools {
        if let Check::Exec(exec) = &mut pool.check {
            resolve(&mut exec.command);
        }
        if let Some(command) = &mut pool.fence.command {
            resolve(command);
        }
    }
    for record in &mut config.records {
        if let Some(command) = &mut record.on_change {
            resolve(command);
        }
    }
    for vip in &mut config.vips {
        if let Some(command) = &mut vip.fence_command {
            resolve(command);
        }
    }
}

fn validate_admin(raw: RawAdmin, base: &Path, problems: &mut Vec<Problem>) -> Admin {
    let text = raw.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    let listen = text.parse::<SocketAddr>().unwrap_or_else(|_| {
        problems.push(Problem::new(
            "admin.listen",
            format!("{text:?} is not an address with a port (\"127.0.0.1:9153\")"),
        ));
        DEFAULT_ADMIN_LISTEN
            .parse()
            .expect("the default is an address")
    });
    let token_file = raw.token_file.map(|f| base.join(f));
    let token = token_file.as_ref().and_then(|file| {
        match read_secret(file).map(|t| t.trim().to_string()) {
            Ok(token) if token.is_empty() => {
                problems.push(Problem::new(
                    "admin.token_file",
                    format!("{} is empty", file.display()),
                ));
                None
            }
            Ok(token) => match private(file) {
                Ok(()) => Some(token),
                Err(message) => {
                    problems.push(Problem::new("admin.token_file", message));
                    None
                }
            },
            Err(message) => {
                problems.push(Problem::new("admin.token_file", message));
                None
            }
        }
    });
    let events = match raw.events {
        None => DEFAULT_ADMIN_EVENTS,
        Some(n) if (1..=100_000).contains(&n) => n as usize,
        Some(n) => {
            problems.push(Problem::new(
                "admin.events",
                format!("{n} is out of range (1-100000)"),
            ));
            DEFAULT_ADMIN_EVENTS
        }
    };
    Admin {
        listen,
        token_file,
        token,
        events,
        drain_file: raw.drain_file.map(|f| base.join(f)),
        hosts: raw
            .hosts
            .unwrap_or_default()
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
    }
}

/// Refuses a secret that other users can read or change (group access is allowed, for a
/// `hadns` group).
fn private(file: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(format!(
            "{} is open to other users (mode {:o}): chmod o-rwx it (600 or 640)",
            file.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// A password or token file's content, without the line end after it.
pub(super) fn read_secret(file: &Path) -> Result<String, String> {
    std::fs::read_to_string(file)
        .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| format!("cannot read {}: {e}", file.display()))
}

/// A program and its arguments (`["/path/to/cmd", "arg"]`); never run through a shell.
pub(super) fn command(
    value: Option<Vec<String>>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<Vec<String>> {
    let command = value?;
    if command.is_empty() || command[0].is_empty() {
        problems.push(Problem::new(
            path,
            "must name a program: [\"/path/to/cmd\", \"arg\"]",
        ));
        return None;
    }
    Some(command)
}

fn validate_dns(raw: RawDns, base: &Path, problems: &mut Vec<Problem>) -> Dns {
    let listen = match raw.listen {
        None => default_listen(),
        Some(list) if list.is_empty() => {
            problems.push(Problem::new("dns.listen", "needs at least one address"));
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    problems.push(Problem::new(
                        format!("dns.listen[{i}]"),
                        format!(
                            "{s:?} is not an address with a port (\"127.0.0.1:53\", \"[::1]:53\")"
                        ),
                    ));
                    None
                }
            })
            .collect(),
    };
    let zones_dir = base.join(raw.zones_dir.as_deref().unwrap_or(DEFAULT_ZONES_DIR));
    let udp_workers = match raw.udp_workers {
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(n) if (1..=256).contains(&n) => n as usize,
        Some(n) => {
            problems.push(Problem::new(
                "dns.udp_workers",
                format!("{n} is out of range (1-256)"),
            ));
            1
        }
    };
    let mut udp_coalesce = duration_or_zero(
        raw.udp_coalesce,
        DEFAULT_UDP_COALESCE,
        "dns.udp_coalesce",
        problems,
    );
    if udp_coalesce > MAX_UDP_COALESCE {
        problems.push(Problem::new(
            "dns.udp_coalesce",
            format!("{udp_coalesce:?} is over the limit of 1ms; it delays answers under load"),
        ));
        udp_coalesce = DEFAULT_UDP_COALESCE;
    }
    let max_udp_size = int_in_range(
        raw.max_udp_size,
        DEFAULT_MAX_UDP_SIZE,
        512..=4096,
        "dns.max_udp_size",
        problems,
    ) as u16;
    let tcp_connections = int_in_range(
        raw.tcp_connections,
        DEFAULT_TCP_CONNECTIONS,
        1..=65536,
        "dns.tcp_connections",
        problems,
    ) as usize;
    let tcp_connections_per_client = int_in_range(
        raw.tcp_connections_per_client,
        DEFAULT_TCP_CONNECTIONS_PER_CLIENT.min(tcp_connections as i64),
        1..=tcp_connections as i64,
        "dns.tcp_connections_per_client",
        problems,
    ) as usize;
    let rate_limit = RateLimit {
        rate: int_in_range(raw.rate_limit, 0, 0..=1_000_000, "dns.rate_limit", problems) as u32,
        slip: int_in_range(
            raw.rate_limit_slip,
            2,
            0..=100,
            "dns.rate_limit_slip",
            problems,
        ) as u32,
        ipv4_prefix: int_in_range(
            raw.rate_limit_ipv4_prefix,
            24,
            8..=32,
            "dns.rate_limit_ipv4_prefix",
            problems,
        ) as u8,
        ipv6_prefix: int_in_range(
            raw.rate_limit_ipv6_prefix,
            56,
            16..=128,
            "dns.rate_limit_ipv6_prefix",
            problems,
        ) as u8,
    };
    Dns {
        listen,
        zones_dir,
        udp_workers,
        udp_coalesce,
        max_udp_size,
        tcp_connections,
        tcp_connections_per_client,
        rate_limit,
    }
}

/// An integer setting within `range`, or `default` when absent; out of range is a problem
/// that names the range.
pub(super) fn int_in_range(
    raw: Option<i64>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> i64 {
    match raw {
        None => default,
        Some(n) if range.contains(&n) => n,
        Some(n) => {
            problems.push(Problem::new(
                path,
                format!("{n} is out of range ({}-{})", range.start(), range.end()),
            ));
            default.clamp(*range.start(), *range.end())
        }
    }
}

fn validate_record(
    raw: RawRecord,
    path: &str,
    pools: &[Pool],
    problems: &mut Vec<Problem>,
) -> Option<Record> {
    let name = required(raw.name, &format!("{path}.name"), problems);
    let pool_name = required(raw.pool, &format!("{path}.pool"), problems);
    let pool = pool_name.as_ref().and_then(|wanted| {
        let found = pools.iter().position(|p| &p.name == wanted);
        if found.is_none() {
            problems.push(Problem::new(
                format!("{path}.pool"),
                format!("no pool named {wanted:?}"),
            ));
        }
        found
    });
    let select = match raw.select.as_deref() {
        None | Some("first") => Select::First,
        Some("healthy") => Select::Healthy,
        Some("primary") => Select::Primary,
        Some("replicas") => Select::Replicas,
        Some(other) => {
            problems.push(Problem::new(
                format!("{path}.select"),
                format!("unknown selector {other:?} (first | healthy | primary | replicas)"),
            ));
            Select::First
        }
    };
    let pool_check = pool.map(|p| &pools[p].check);
    if let Some(check) = pool_check
        && matches!(select, Select::Primary | Select::Replicas)
        && !check.knows_roles()
    {
        problems.push(Problem::new(
            format!("{path}.select"),
            format!(
                "{:?} needs a pool whose check knows roles (postgres | mysql); pool {:?} uses {:?}",
                raw.select.as_deref().unwrap_or_default(),
                pool_name.as_deref().unwrap_or_default(),
                check.kind()
            ),
        ));
    }
    let max_lag = raw.max_lag.as_deref().and_then(|text| {
        let lag_path = format!("{path}.max_lag");
        if select != Select::Replicas {
            problems.push(Problem::new(
                &lag_path,
                "only means something with select = \"replicas\"",
            ));
            return None;
        }
        let lag = parse_max_lag(text)
            .map_err(|m| problems.push(Problem::new(&lag_path, m)))
            .ok()?;
        match (lag, pool_check) {
            (MaxLag::Bytes(_), Some(Check::Mysql(_))) => problems.push(Problem::new(
                &lag_path,
                "a size is a PostgreSQL WAL distance; for mysql use a number of transactions \
                 (\"100 transactions\") or a time (\"5s\")",
            )),
            (MaxLag::Transactions(_), Some(Check::Postgres(_))) => problems.push(Problem::new(
                &lag_path,
                "transactions are counted on mysql pools only; for postgres use a size \
                 (\"16MB\") or a time (\"5s\")",
            )),
            // hadns measures a time lag from its own probes of the primary, which errs
            // long by up to one interval: a healthy replica must fit under half the limit.
            (MaxLag::Time(max), _) if pool.is_some_and(|p| max < pools[p].interval * 2) => {
                let interval = pool.map(|p| pools[p].interval).unwrap_or_default();
                problems.push(Problem::new(
                    &lag_path,
                    format!(
                        "{text:?} is shorter than two check intervals of the pool ({:?}); \
                         lag is measured with the interval's resolution",
                        interval * 2
                    ),
                ))
            }
            _ => {}
        }
        Some(lag)
    });
    let max_stale = duration_or_zero(
        raw.max_stale,
        DEFAULT_MAX_STALE,
        &format!("{path}.max_stale"),
        problems,
    );
    let on_empty = match raw.on_empty.as_deref() {
        None | Some("nodata") => OnEmpty::Nodata,
        Some("servfail") => OnEmpty::Servfail,
        Some("all") => OnEmpty::All,
        Some(other) => {
            problems.push(Problem::new(
                format!("{path}.on_empty"),
                format!("unknown value {other:?} (nodata | servfail | all)"),
            ));
            OnEmpty::Nodata
        }
    };
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
        pool: pool?,
        select,
        ttl,
        failback: raw.failback.unwrap_or(true),
        on_empty,
        max_lag,
        max_stale,
        on_change,
        on_change_timeout,
    })
}

/// `"16MB"`, `"512kB"`, `"1GB"` (powers of 1024, as PostgreSQL writes sizes), a number of
/// transactions (`"100 transactions"`), or a duration.
pub(super) fn parse_max_lag(text: &str) -> Result<MaxLag, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim() {
        "transactions" | "transaction" => {
            return number
                .parse()
                .map(MaxLag::Transactions)
                .map_err(|_| format!("{text:?} is not a count such as \"100 transactions\""));
        }
        "B" => 1,
        "kB" | "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => {
            return parse_duration(t).map(MaxLag::Time).map_err(|_| {
                format!(
                    "{text:?} is neither a size (\"16MB\", \"512kB\"), a number of transactions \
                     (\"100 transactions\") nor a duration (\"5s\")"
                )
            });
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as \"16MB\""))?;
    Ok(MaxLag::Bytes(n.saturating_mul(scale)))
}

/// Lower case with a trailing dot: names in the config are always absolute.
pub fn normalize_name(name: &str) -> String {
    let mut n = name.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

pub(super) fn required(
    value: Option<String>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match value {
        Some(v) if !v.trim().is_empty() => Some(v),
        Some(_) => {
            problems.push(Problem::new(path, "must not be empty"));
            None
        }
        None => {
            problems.push(Problem::new(path, "missing"));
            None
        }
    }
}

pub(super) fn count(
    value: Option<i64>,
    default: u32,
    path: &str,
    problems: &mut Vec<Problem>,
) -> u32 {
    match value {
        None => default,
        Some(n) if (1..=1000).contains(&n) => n as u32,
        Some(n) => {
            problems.push(Problem::new(path, format!("{n} is out of range (1-1000)")));
            default
        }
    }
}

/// A duration greater than zero; `default` when absent.
pub(super) fn duration(
    value: Option<toml::Value>,
    default: Duration,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Duration {
    let d = duration_or_zero(value, default, path, problems);
    if d.is_zero() {
        problems.push(Problem::new(path, "must be greater than zero"));
        return default;
    }
    d
}

/// A duration of at least `min`; `default` when absent. Below it is a problem naming the
/// floor.
pub(super) fn duration_at_least(
    value: Option<toml::Value>,
    default: Duration,
    min: Duration,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Duration {
    let d = duration_or_zero(value, default, path, problems);
    if d < min {
        problems.push(Problem::new(
            path,
            format!("{d:?} is below the floor of {min:?}"),
        ));
        return default;
    }
    d
}

/// A duration, zero allowed (`"0s"`: off); `default` when absent.
pub(super) fn duration_or_zero(
    value: Option<toml::Value>,
    default: Duration,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Duration {
    let parsed = match value {
        None => return default,
        Some(toml::Value::String(s)) => parse_duration(&s),
        Some(other) => Err(format!(
            "{other} has no unit; write it as a string such as \"200ms\" or \"2s\""
        )),
    };
    parsed.unwrap_or_else(|message| {
        problems.push(Problem::new(path, message));
        default
    })
}

/// `"200ms"`, `"2s"`, `"1.5s"`, `"1m"`, `"1h"`. A number without a unit is an error.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as \"200ms\" or \"2s\""))?;
    let scale = match unit.trim() {
        "" => return Err(format!("{s:?} has no unit (ms, s, m or h)")),
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "{s:?} has an unknown unit {other:?} (ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("{s:?} is out of range"))
}
