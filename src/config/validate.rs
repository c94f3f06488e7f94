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
    http: Option<RawHttp>,
    exec: Option<RawExec>,
    #[serde(default)]
    node: Vec<RawNode>,
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

// === validation ===

pub(super) fn validate(raw: RawConfig, base: &Path, problems: &mut Vec<Problem>) -> Config {
    let dns = validate_dns(raw.dns.unwrap_or_default(), base, problems);
    if raw.pool.is_empty() && !raw.record.is_empty() {
        problems.push(Problem::new("pool", "records need at least one [[pool]]"));
    }
    let mut pools = Vec::new();
    let mut pool_names = HashSet::new();
    for (i, raw_pool) in raw.pool.into_iter().enumerate() {
        let pool = validate_pool(raw_pool, &format!("pool[{i}]"), problems);
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

fn validate_pool(raw: RawPool, path: &str, problems: &mut Vec<Problem>) -> Pool {
    let name = required(raw.name, &format!("{path}.name"), problems).unwrap_or_default();
    let check = match raw.check.as_deref() {
        None => {
            problems.push(Problem::new(
                format!("{path}.check"),
                "missing (tcp | http | exec)",
            ));
            Check::Tcp
        }
        Some("tcp") => Check::Tcp,
        Some("http") => Check::Http(validate_http(raw.http.as_ref(), path, problems)),
        Some("exec") => Check::Exec(validate_exec(raw.exec.as_ref(), path, problems)),
        Some(other) => {
            problems.push(Problem::new(
                format!("{path}.check"),
                format!("unknown check {other:?} (tcp | http | exec)"),
            ));
            Check::Tcp
        }
    };
    if raw.http.is_some() && !matches!(check, Check::Http(_)) {
        problems.push(Problem::new(
            format!("{path}.http"),
            format!(
                "only allowed with check = \"http\" (check is {:?})",
                check.kind()
            ),
        ));
    }
    if raw.exec.is_some() && !matches!(check, Check::Exec(_)) {
        problems.push(Problem::new(
            format!("{path}.exec"),
            format!(
                "only allowed with check = \"exec\" (check is {:?})",
                check.kind()
            ),
        ));
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
    let rise = count(raw.rise, DEFAULT_RISE, &format!("{path}.rise"), problems);
    let fall = count(raw.fall, DEFAULT_FALL, &format!("{path}.fall"), problems);

    if raw.node.is_empty() {
        problems.push(Problem::new(
            format!("{path}.node"),
            "a pool needs at least one [[pool.node]]",
        ));
    }
    let needs_port = !matches!(check, Check::Exec(_));
    let mut nodes = Vec::new();
    let mut node_names = HashSet::new();
    for (i, raw_node) in raw.node.into_iter().enumerate() {
        let node_path = format!("{path}.node[{i}]");
        let node = validate_node(raw_node, &node_path, needs_port, problems);
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
        timeout,
        rise,
        fall,
        nodes,
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
        Some(other @ ("primary" | "replicas")) => {
            problems.push(Problem::new(
                format!("{path}.select"),
                format!("{other:?} needs a database check, which this version does not have (first | healthy)"),
            ));
            Select::First
        }
        Some(other) => {
            problems.push(Problem::new(
                format!("{path}.select"),
                format!("unknown selector {other:?} (first | healthy)"),
            ));
            Select::First
        }
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
    })
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
