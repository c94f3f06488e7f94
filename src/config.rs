//! The TOML configuration: raw serde types, then `validate()` into a typed [`Config`].
//!
//! Every problem is collected and reported with its TOML path (`pool[0].interval: "200"
//! has no unit`), unknown keys included, so an operator fixes a file in one pass. Reading
//! is split from parsing: [`Config::from_toml`] needs no file.
//!
//! Unknown keys are found with `serde_ignored` rather than `deny_unknown_fields`, because
//! the latter stops at the first one and we want to report them all.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

// === typed configuration ===

/// A validated configuration. There is no `Default`: a `Config` only comes from `validate`.
#[derive(Debug, Clone)]
pub struct Config {
    pub dns: Dns,
    pub pools: Vec<Pool>,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone)]
pub struct Dns {
    /// UDP and TCP are served on every address.
    pub listen: Vec<SocketAddr>,
    /// Absolute, or relative to the working directory when the config came from a string.
    pub zones_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Tcp,
    Http(HttpCheck),
    Exec(ExecCheck),
}

impl Check {
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Tcp => "tcp",
            Check::Http(_) => "http",
            Check::Exec(_) => "exec",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    pub path: String,
    /// Accepted status codes.
    pub status: Vec<RangeInclusive<u16>>,
    /// The body must contain this substring, when set.
    pub body: Option<String>,
    /// Host header; the node's address when unset.
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExecCheck {
    /// Program and arguments; never run through a shell.
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub address: IpAddr,
    /// Required by tcp and http checks; optional for exec.
    pub port: Option<u16>,
    /// Higher wins for `select = "first"`.
    pub priority: u32,
}

#[derive(Debug, Clone)]
pub struct Record {
    /// Lower case, fully qualified, with the trailing dot.
    pub name: String,
    /// Index into `Config::pools`.
    pub pool: usize,
    pub select: Select,
    pub ttl: u32,
    pub failback: bool,
    pub on_empty: OnEmpty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The highest-priority healthy node.
    First,
    /// Every healthy node.
    Healthy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnEmpty {
    Nodata,
    Servfail,
    All,
}

// === errors ===

/// One problem, located by its TOML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", format_problems(.file, .problems))]
    Invalid {
        file: Option<PathBuf>,
        problems: Vec<Problem>,
    },
}

fn format_problems(file: &Option<PathBuf>, problems: &[Problem]) -> String {
    let origin = file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "config".to_string());
    let mut out = format!("{origin}: {} problem(s)", problems.len());
    for p in problems {
        out.push_str(&format!("\n  {p}"));
    }
    out
}

// === raw serde types ===

#[derive(Deserialize, Default)]
struct RawConfig {
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
const DEFAULT_PRIORITY: u32 = 100;
const DEFAULT_TTL: u32 = 1;
const DEFAULT_HTTP_PATH: &str = "/";
const DEFAULT_HTTP_STATUS: RangeInclusive<u16> = 200..=399;

// === loading ===

impl Config {
    /// Parses and validates TOML text; relative paths are resolved against `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, Vec<Problem>> {
        match Config::parse(text, base) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(problems),
        }
    }

    /// Like [`Config::from_toml`], but also returns what could be validated when there are
    /// problems (invalid records and pools left out), so later checks can still run and
    /// report theirs. `None` only when the text is not TOML of the right shape.
    pub fn parse(text: &str, base: &Path) -> (Option<Config>, Vec<Problem>) {
        let mut problems = Vec::new();
        let deserializer = match toml::Deserializer::parse(text) {
            Ok(d) => d,
            Err(e) => return (None, vec![toml_problem(&e)]),
        };
        let raw: RawConfig = match serde_ignored::deserialize(deserializer, |path| {
            problems.push(Problem::new(toml_path(&path), "unknown key"));
        }) {
            Ok(raw) => raw,
            Err(e) => return (None, vec![toml_problem(&e)]),
        };
        let config = validate(raw, base, &mut problems);
        (Some(config), problems)
    }

    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// The directory relative paths in a config file are resolved against.
pub fn base_dir(config_file: &Path) -> &Path {
    match config_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn toml_problem(e: &toml::de::Error) -> Problem {
    Problem::new("", e.to_string().trim_end().replace('\n', "\n    "))
}

/// `pool.0.node.1.name` -> `pool[0].node[1].name`
fn toml_path(path: &serde_ignored::Path<'_>) -> String {
    let mut out = String::new();
    for part in path.to_string().split('.') {
        if part.chars().all(|c| c.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

// === validation ===

fn validate(raw: RawConfig, base: &Path, problems: &mut Vec<Problem>) -> Config {
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
fn parse_status(value: &toml::Value) -> Result<Vec<RangeInclusive<u16>>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[dns]
listen = ["127.0.0.1:5353", "[::1]:5353"]
zones_dir = "zones"

[[pool]]
name = "web"
check = "tcp"
interval = "200ms"
timeout = "500ms"
rise = 2
fall = 2
[[pool.node]]
name = "web1"
address = "127.0.0.10"
port = 8080
priority = 100
[[pool.node]]
name = "web2"
address = "::1"
port = 8080

[[record]]
name = "www.example.internal."
pool = "web"
select = "first"
ttl = 1
failback = true
on_empty = "nodata"
"#;

    fn problems(text: &str) -> Vec<String> {
        match Config::from_toml(text, Path::new("/etc/hadns")) {
            Ok(_) => Vec::new(),
            Err(p) => p.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_documented_keys_parse() {
        let c = Config::from_toml(GOOD, Path::new("/etc/hadns")).unwrap();
        assert_eq!(c.dns.listen.len(), 2);
        assert_eq!(c.dns.zones_dir, Path::new("/etc/hadns/zones"));
        assert_eq!(c.pools[0].interval, Duration::from_millis(200));
        assert_eq!(
            c.pools[0].nodes[1].address,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(c.pools[0].nodes[1].priority, DEFAULT_PRIORITY);
        assert_eq!(c.records[0].name, "www.example.internal.");
        assert_eq!(c.records[0].pool, 0);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = GOOD
            .replace("interval = \"200ms\"", "interval = \"200\"")
            .replace("pool = \"web\"", "pool = \"db\"")
            .replace("port = 8080\npriority", "port = 70000\npriority")
            .replace("fall = 2", "fall = 2\nfalls = 3");
        let got = problems(&text);
        assert!(
            got.contains(&"pool[0].interval: \"200\" has no unit (ms, s, m or h)".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(&"record[0].pool: no pool named \"db\"".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(&"pool[0].node[0].port: 70000 is not a port (1-65535)".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(&"pool[0].falls: unknown key".to_string()),
            "{got:?}"
        );
        assert_eq!(got.len(), 4, "{got:?}");
    }

    #[test]
    fn unknown_keys_in_every_table_are_errors() {
        // Inject an unknown key at the end of every table of the example.
        let tables = ["[dns]", "[[pool]]", "[[pool.node]]", "[[record]]"];
        for table in tables {
            let text = GOOD.replacen(table, &format!("{table}\nbogus = 1"), 1);
            let got = problems(&text);
            assert_eq!(got.len(), 1, "{table}: {got:?}");
            assert!(got[0].ends_with("bogus: unknown key"), "{table}: {got:?}");
        }
        let got = problems(&format!("bogus = true\n{GOOD}"));
        assert_eq!(got, vec!["bogus: unknown key"]);
    }

    #[test]
    fn check_sections_must_match_the_check() {
        let text = GOOD.replace(
            "check = \"tcp\"",
            "check = \"tcp\"\n[pool.exec]\ncommand = [\"true\"]",
        );
        // [pool.exec] opens a table, so the following keys move into it: only assert the key error.
        assert!(
            problems(&text)
                .iter()
                .any(|p| p.starts_with("pool[0].exec"))
        );
        let text = GOOD.replace("check = \"tcp\"", "check = \"exec\"");
        assert!(problems(&text).contains(&"pool[0].exec.command: check = \"exec\" needs a command: [pool.exec] command = [\"/path/to/check\", \"arg\"]".to_string()));
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("200").unwrap_err().contains("has no unit"));
        assert!(parse_duration("2x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("ms").is_err());
        let text = GOOD.replace("interval = \"200ms\"", "interval = 200");
        assert_eq!(
            problems(&text),
            vec![
                "pool[0].interval: 200 has no unit; write it as a string such as \"200ms\" or \"2s\""
            ]
        );
    }

    #[test]
    fn http_status_forms() {
        let v = |s: &str| toml::from_str::<toml::Table>(&format!("v = {s}")).unwrap()["v"].clone();
        assert_eq!(parse_status(&v("200")), Ok(vec![200..=200]));
        assert_eq!(
            parse_status(&v("\"200-299,404\"")),
            Ok(vec![200..=299, 404..=404])
        );
        assert_eq!(
            parse_status(&v("[200, \"301-302\"]")),
            Ok(vec![200..=200, 301..=302])
        );
        assert!(parse_status(&v("\"abc\"")).is_err());
        assert!(parse_status(&v("\"399-200\"")).is_err());
    }

    #[test]
    fn duplicate_names_and_selectors() {
        let text = GOOD.replace("name = \"web2\"", "name = \"web1\"");
        assert_eq!(
            problems(&text),
            vec!["pool[0].node[1].name: node name \"web1\" is used twice in pool \"web\""]
        );
        let text = GOOD.replace("select = \"first\"", "select = \"primary\"");
        assert!(
            problems(&text)[0].starts_with("record[0].select: \"primary\" needs a database check")
        );
    }
}
