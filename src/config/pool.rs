//! Validation of `[[pool]]` tables: checks, database settings, fencing and nodes.

use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::fields::{choice, count, duration, duration_at_least, required};
use super::*;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
const DEFAULT_FAST_INTERVAL: Duration = Duration::from_millis(50);
/// Below this, probes cost more than they tell: 100 per second per node.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// Nodes per pool: a pool is one service's replicas, not a fleet.
pub(super) const MAX_NODES_PER_POOL: usize = 1000;
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 2;
pub(super) const DEFAULT_PRIORITY: u32 = 100;
const DEFAULT_HTTP_PATH: &str = "/";
const DEFAULT_HTTP_STATUS: RangeInclusive<u16> = 200..=399;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_FENCE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
pub(super) struct RawPool {
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

impl RawPool {
    pub(super) fn node_count(&self) -> usize {
        self.node.len()
    }
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

const CHECKS: &str = "tcp | http | exec | postgres | mysql";

/// `check = "..."`: which section of the pool configures it.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum CheckKind {
    Tcp,
    Http,
    Exec,
    Postgres,
    Mysql,
}

/// `fence = "..."`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum FenceMode {
    ReadOnly,
    None,
}

pub(super) fn validate_pool(
    raw: RawPool,
    path: &str,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Pool {
    let name = required(raw.name, &format!("{path}.name"), problems).unwrap_or_default();
    if raw.check.is_none() {
        problems.push(Problem::new(
            format!("{path}.check"),
            format!("missing ({CHECKS})"),
        ));
    }
    let kind = choice(
        raw.check.as_deref(),
        CheckKind::Tcp,
        ("check", CHECKS),
        &format!("{path}.check"),
        problems,
    );
    let check = match kind {
        CheckKind::Tcp => Check::Tcp,
        CheckKind::Http => Check::Http(validate_http(raw.http.as_ref(), path, problems)),
        CheckKind::Exec => Check::Exec(validate_exec(raw.exec.as_ref(), path, problems)),
        CheckKind::Postgres => Check::Postgres(validate_db(
            raw.postgres.as_ref(),
            "postgres",
            path,
            base,
            problems,
        )),
        CheckKind::Mysql => Check::Mysql(validate_db(
            raw.mysql.as_ref(),
            "mysql",
            path,
            base,
            problems,
        )),
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
    let interval = duration_at_least(
        raw.interval,
        DEFAULT_INTERVAL,
        MIN_INTERVAL,
        &format!("{path}.interval"),
        problems,
    );
    let timeout = duration_at_least(
        raw.timeout,
        DEFAULT_TIMEOUT,
        MIN_TIMEOUT,
        &format!("{path}.timeout"),
        problems,
    );
    let fast_interval = duration_at_least(
        raw.fast_interval,
        DEFAULT_FAST_INTERVAL,
        MIN_INTERVAL,
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
    if raw.node.len() > MAX_NODES_PER_POOL {
        problems.push(Problem::new(
            format!("{path}.node"),
            format!(
                "{} nodes; a pool has at most {MAX_NODES_PER_POOL} (split it into several pools)",
                raw.node.len()
            ),
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
            super::fields::read_secret(&file)
                .map_err(|m| problems.push(Problem::new(format!("{section}.password_file"), m)))
                .ok()
        }
    };
    let sslmode = choice(
        raw.sslmode.as_deref(),
        SslMode::Prefer,
        ("value", "disable | prefer | require"),
        &format!("{section}.sslmode"),
        problems,
    );
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
    let mode = choice(
        fence.as_deref(),
        FenceMode::None,
        ("value", "read-only | none"),
        &format!("{path}.fence"),
        problems,
    );
    let read_only = match mode {
        FenceMode::None => false,
        FenceMode::ReadOnly if check.knows_roles() => true,
        FenceMode::ReadOnly => {
            problems.push(Problem::new(
                format!("{path}.fence"),
                format!(
                    "\"read-only\" needs a postgres or mysql check (check is {:?})",
                    check.kind()
                ),
            ));
            false
        }
    };
    let command = super::fields::command(command, &format!("{path}.fence_command"), problems);
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
        command,
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
