//! Raw serde types and their validation into the typed config, every problem collected.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::*;

// === raw serde types ===

#[derive(Deserialize, Default)]
pub(super) struct RawConfig {
    dns: Option<RawDns>,
    #[serde(default)]
    pool: Vec<RawPool>,
    #[serde(default)]
    record: Vec<RawRecord>,
}

#[derive(Deserialize, Default)]
struct RawDns {
    listen: Option<Vec<String>>,
    zones_dir: Option<String>,
}

#[derive(Deserialize)]
struct RawPool {
    name: Option<String>,
    check: Option<String>,
    interval: Option<toml::Value>,
    timeout: Option<toml::Value>,
    rise: Option<i64>,
    fall: Option<i64>,
    fast_interval: Option<toml::Value>,
    fence: Option<String>,
    fence_command: Option<Vec<String>>,
    fence_timeout: Option<toml::Value>,
    http: Option<RawHttp>,
    exec: Option<RawExec>,
    postgres: Option<RawDb>,
    mysql: Option<RawDb>,
    #[serde(default)]
    node: Vec<RawNode>,
}

#[derive(Deserialize, Default)]
struct RawDb {
    user: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
    dbname: Option<String>,
    sslmode: Option<String>,
    connect_timeout: Option<toml::Value>,
}

#[derive(Deserialize)]
struct RawHttp {
    path: Option<String>,
    status: Option<toml::Value>,
    body: Option<String>,
    host: Option<String>,
}

#[derive(Deserialize)]
struct RawExec {
    command: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawNode {
    name: Option<String>,
    address: Option<String>,
    port: Option<i64>,
    priority: Option<i64>,
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
}

// === defaults ===

fn default_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 5353))]
}
const DEFAULT_ZONES_DIR: &str = "zones";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 2;
pub(super) const DEFAULT_PRIORITY: u32 = 100;
const DEFAULT_TTL: u32 = 1;
const DEFAULT_HTTP_PATH: &str = "/";
const DEFAULT_HTTP_STATUS: RangeInclusive<u16> = 200..=399;
const DEFAULT_FAST_INTERVAL: Duration = Duration::from_millis(50);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_FENCE_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_MAX_STALE: Duration = Duration::from_secs(30);

// === validation ===

pub(super) fn validate(raw: RawConfig, base: &Path, problems: &mut Vec<Problem>) -> Config {
    let dns = validate_dns(raw.dns.unwrap_or_default(), base, problems);
    if raw.pool.is_empty() && !raw.record.is_empty() {
        problems.push(Problem::new("pool", "records need at least one [[pool]]"));
    }
    let mut pools = Vec::new();
    let mut pool_names = HashSet::new();
    for (i, raw_pool) in raw.pool.into_iter().enumerate() {
        let pool = validate_pool(raw_pool, &format!("pool[{i}]"), base, problems);
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
    Config {
        dns,
        pools,
        records,
    }
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
    Dns { listen, zones_dir }
}

const CHECKS: &str = "tcp | http | exec | postgres | mysql";

fn validate_pool(raw: RawPool, path: &str, base: &Path, problems: &mut Vec<Problem>) -> Pool {
    let name = required(raw.name, &format!("{path}.name"), problems).unwrap_or_default();
    let check = match raw.check.as_deref() {
        None => {
            problems.push(Problem::new(
                format!("{path}.check"),
                format!("missing ({CHECKS})"),
            ));
            Check::Tcp
        }
        Some("tcp") => Check::Tcp,
        Some("http") => Check::Http(validate_http(raw.http.as_ref(), path, problems)),
        Some("exec") => Check::Exec(validate_exec(raw.exec.as_ref(), path, problems)),
        Some("postgres") => Check::Postgres(validate_db(
            raw.postgres.as_ref(),
            "postgres",
            path,
            base,
            problems,
        )),
        Some("mysql") => Check::Mysql(validate_db(
            raw.mysql.as_ref(),
            "mysql",
            path,
            base,
            problems,
        )),
        Some(other) => {
            problems.push(Problem::new(
                format!("{path}.check"),
                format!("unknown check {other:?} ({CHECKS})"),
            ));
            Check::Tcp
        }
    };
    let sections = [
        ("http", raw.http.is_some()),
        ("exec", raw.exec.is_some()),
        ("postgres", raw.postgres.is_some()),
        ("mysql", raw.mysql.is_some()),
    ];
    for (section, present) in sections {
        if present && check.kind() != section {
            problems.push(Problem::new(
                format!("{path}.{section}"),
                format!(
                    "only allowed with check = \"{section}\" (check is {:?})",
                    check.kind()
                ),
            ));
        }
    }
    let interval = duration(
        raw.interval,
        DEFAULT_INTERVAL,
        &format!("{path}.interval"),
        problems,
    );
    let timeout = duration(
        raw.timeout,
        DEFAULT_TIMEOUT,
        &format!("{path}.timeout"),
        problems,
    );
    let fast_interval = duration(
        raw.fast_interval,
        DEFAULT_FAST_INTERVAL,
        &format!("{path}.fast_interval"),
        problems,
    )
    .min(interval);
    let rise = count(raw.rise, DEFAULT_RISE, &format!("{path}.rise"), problems);
    let fall = count(raw.fall, DEFAULT_FALL, &format!("{path}.fall"), problems);
    let fence = validate_fencing(
        &raw.fence,
        raw.fence_command,
        raw.fence_timeout,
        &check,
        path,
        problems,
    );

    if raw.node.is_empty() {
        problems.push(Problem::new(
            format!("{path}.node"),
            "a pool needs at least one [[pool.node]]",
        ));
    }
    let needs_port = matches!(check, Check::Tcp | Check::Http(_));
    let mut nodes = Vec::new();
    let mut node_names = HashSet::new();
    for (i, raw_node) in raw.node.into_iter().enumerate() {
        let node_path = format!("{path}.node[{i}]");
        let mut node = validate_node(raw_node, &node_path, needs_port, problems);
        node.port = node.port.or(check.default_port());
        if !node.name.is_empty() && !node_names.insert(node.name.clone()) {
            problems.push(Problem::new(
                format!("{node_path}.name"),
                format!("node name {:?} is used twice in pool {name:?}", node.name),
            ));
        }
        nodes.push(node);
    }
    Pool {
        name,
        check,
        interval,
        fast_interval,
        timeout,
        rise,
        fall,
        fence,
        nodes,
    }
}

fn validate_db(
    raw: Option<&RawDb>,
    kind: &str,
    path: &str,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> DbCheck {
    let section = format!("{path}.{kind}");
    let default_user = if kind == "postgres" {
        "postgres"
    } else {
        "root"
    };
    let empty = RawDb::default();
    let raw = raw.unwrap_or(&empty);
    if raw.password.is_some() && raw.password_file.is_some() {
        problems.push(Problem::new(
            format!("{section}.password_file"),
            "set password or password_file, not both",
        ));
    }
    let password = match &raw.password_file {
        None => raw.password.clone(),
        Some(file) => {
            let file = base.join(file);
            match std::fs::read_to_string(&file) {
                Ok(text) => Some(text.trim_end_matches(['\n', '\r']).to_string()),
                Err(e) => {
                    problems.push(Problem::new(
                        format!("{section}.password_file"),
                        format!("cannot read {}: {e}", file.display()),
                    ));
                    None
                }
            }
        }
    };
    let sslmode = match raw.sslmode.as_deref() {
        None | Some("prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require") => SslMode::Require,
        Some(other) => {
            problems.push(Problem::new(
                format!("{section}.sslmode"),
                format!("unknown value {other:?} (disable | prefer | require)"),
            ));
            SslMode::Prefer
        }
    };
    DbCheck {
        user: raw.user.clone().unwrap_or_else(|| default_user.to_string()),
        password,
        dbname: raw.dbname.clone(),
        sslmode,
        connect_timeout: duration(
            raw.connect_timeout.clone(),
            DEFAULT_CONNECT_TIMEOUT,
            &format!("{section}.connect_timeout"),
            problems,
        ),
    }
}

fn validate_fencing(
    fence: &Option<String>,
    command: Option<Vec<String>>,
    timeout: Option<toml::Value>,
    check: &Check,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Fencing {
    let read_only = match fence.as_deref() {
        None | Some("none") => false,
        Some("read-only") if check.knows_roles() => true,
        Some("read-only") => {
            problems.push(Problem::new(
                format!("{path}.fence"),
                format!(
                    "\"read-only\" needs a postgres or mysql check (check is {:?})",
                    check.kind()
                ),
            ));
            false
        }
        Some(other) => {
            problems.push(Problem::new(
                format!("{path}.fence"),
                format!("unknown value {other:?} (read-only | none)"),
            ));
            false
        }
    };
    if command
        .as_ref()
        .is_some_and(|c| c.is_empty() || c[0].is_empty())
    {
        problems.push(Problem::new(
            format!("{path}.fence_command"),
            "must name a program: [\"/path/to/fence\", \"arg\"]",
        ));
    }
    if command.is_some() && !check.knows_roles() {
        problems.push(Problem::new(
            format!("{path}.fence_command"),
            format!(
                "fencing needs a postgres or mysql check (check is {:?})",
                check.kind()
            ),
        ));
    }
    Fencing {
        read_only,
        command: command.filter(|c| !c.is_empty()),
        timeout: duration(
            timeout,
            DEFAULT_FENCE_TIMEOUT,
            &format!("{path}.fence_timeout"),
            problems,
        ),
    }
}

fn validate_http(raw: Option<&RawHttp>, path: &str, problems: &mut Vec<Problem>) -> HttpCheck {
    let Some(raw) = raw else {
        return HttpCheck {
            path: DEFAULT_HTTP_PATH.to_string(),
            status: vec![DEFAULT_HTTP_STATUS],
            body: None,
            host: None,
        };
    };
    let http_path = raw
        .path
        .clone()
        .unwrap_or_else(|| DEFAULT_HTTP_PATH.to_string());
    if !http_path.starts_with('/') {
        problems.push(Problem::new(
            format!("{path}.http.path"),
            format!("{http_path:?} must start with \"/\""),
        ));
    }
    let status = match &raw.status {
        None => vec![DEFAULT_HTTP_STATUS],
        Some(value) => parse_status(value).unwrap_or_else(|message| {
            problems.push(Problem::new(format!("{path}.http.status"), message));
            Vec::new()
        }),
    };
    HttpCheck {
        path: http_path,
        status,
        body: raw.body.clone(),
        host: raw.host.clone(),
    }
}

/// `200`, `"200-299"`, `"200,204"` or a list of those.
pub(super) fn parse_status(value: &toml::Value) -> Result<Vec<RangeInclusive<u16>>, String> {
    let bad = || format!("{value} is not a status code, a range (\"200-399\") or a list of them",);
    let items: Vec<&toml::Value> = match value {
        toml::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            toml::Value::Integer(n) => {
                let code = u16::try_from(*n).map_err(|_| bad())?;
                out.push(code..=code);
            }
            toml::Value::String(s) => {
                for part in s.split(',').map(str::trim) {
                    let (lo, hi) = part.split_once('-').unwrap_or((part, part));
                    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
                    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
                    if !(100..=599).contains(&lo) || !(lo..=599).contains(&hi) {
                        return Err(bad());
                    }
                    out.push(lo..=hi);
                }
            }
            _ => return Err(bad()),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

fn validate_exec(raw: Option<&RawExec>, path: &str, problems: &mut Vec<Problem>) -> ExecCheck {
    let command = raw.and_then(|r| r.command.clone()).unwrap_or_default();
    if command.is_empty() || command[0].is_empty() {
        problems.push(Problem::new(
            format!("{path}.exec.command"),
            "check = \"exec\" needs a command: [pool.exec] command = [\"/path/to/check\", \"arg\"]",
        ));
    }
    ExecCheck { command }
}

fn validate_node(raw: RawNode, path: &str, needs_port: bool, problems: &mut Vec<Problem>) -> Node {
    let name = required(raw.name, &format!("{path}.name"), problems).unwrap_or_default();
    let address = match raw.address {
        None => {
            problems.push(Problem::new(format!("{path}.address"), "missing"));
            IpAddr::from([0, 0, 0, 0])
        }
        Some(s) => s.parse().unwrap_or_else(|_| {
            problems.push(Problem::new(
                format!("{path}.address"),
                format!("{s:?} is not an IPv4 or IPv6 address"),
            ));
            IpAddr::from([0, 0, 0, 0])
        }),
    };
    let port = match raw.port {
        None if needs_port => {
            problems.push(Problem::new(
                format!("{path}.port"),
                "missing (tcp and http checks need a port)",
            ));
            None
        }
        None => None,
        Some(p) => match u16::try_from(p) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                problems.push(Problem::new(
                    format!("{path}.port"),
                    format!("{p} is not a port (1-65535)"),
                ));
                None
            }
        },
    };
    let priority = match raw.priority {
        None => DEFAULT_PRIORITY,
        Some(p) => u32::try_from(p).unwrap_or_else(|_| {
            problems.push(Problem::new(
                format!("{path}.priority"),
                format!("{p} is negative or too large"),
            ));
            0
        }),
    };
    Node {
        name,
        address,
        port,
        priority,
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
        if matches!(lag, MaxLag::Bytes(_)) && matches!(pool_check, Some(Check::Mysql(_))) {
            problems.push(Problem::new(
                &lag_path,
                "mysql replicas report lag in seconds only; use a time such as \"5s\"",
            ));
        }
        Some(lag)
    });
    let max_stale = match raw.max_stale {
        None => DEFAULT_MAX_STALE,
        Some(toml::Value::String(s))
            if s.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" =>
        {
            Duration::ZERO
        }
        value => duration(
            value,
            DEFAULT_MAX_STALE,
            &format!("{path}.max_stale"),
            problems,
        ),
    };
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
    Some(Record {
        name: normalize_name(&name?),
        pool: pool?,
        select,
        ttl,
        failback: raw.failback.unwrap_or(true),
        on_empty,
        max_lag,
        max_stale,
    })
}

/// `"16MB"`, `"512kB"`, `"1GB"` (powers of 1024, as PostgreSQL writes sizes) or a duration.
pub(super) fn parse_max_lag(text: &str) -> Result<MaxLag, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim() {
        "B" => 1,
        "kB" | "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => {
            return parse_duration(t).map(MaxLag::Time).map_err(|_| {
                format!("{text:?} is neither a size (\"16MB\", \"512kB\") nor a duration (\"5s\")")
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

fn required(value: Option<String>, path: &str, problems: &mut Vec<Problem>) -> Option<String> {
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

fn count(value: Option<i64>, default: u32, path: &str, problems: &mut Vec<Problem>) -> u32 {
    match value {
        None => default,
        Some(n) if (1..=1000).contains(&n) => n as u32,
        Some(n) => {
            problems.push(Problem::new(path, format!("{n} is out of range (1-1000)")));
            default
        }
    }
}

fn duration(
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
    match parsed {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            problems.push(Problem::new(path, "must be greater than zero"));
            default
        }
        Err(message) => {
            problems.push(Problem::new(path, message));
            default
        }
    }
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
