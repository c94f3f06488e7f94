//! Validation of `[[pool]]` tables: checks, database settings, fencing and nodes.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::check::{RawDb, RawDns, RawExec, RawHttp, Sections, validate_check};
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
    dns: Option<RawDns>,
    promote: Option<super::promote::RawPromote>,
    #[serde(default)]
    node: Vec<RawNode>,
}

impl RawPool {
    pub(super) fn node_count(&self) -> usize {
        self.node.len()
    }
}

#[derive(Deserialize)]
struct RawNode {
    name: Option<String>,
    address: Option<String>,
    port: Option<i64>,
    priority: Option<i64>,
    site: Option<String>,
    promote: Option<bool>,
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
    let check = validate_check(
        raw.check.as_deref(),
        Sections {
            http: raw.http.as_ref(),
            exec: raw.exec.as_ref(),
            postgres: raw.postgres.as_ref(),
            mysql: raw.mysql.as_ref(),
            dns: raw.dns.as_ref(),
        },
        path,
        base,
        problems,
    );
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

    let promote = super::promote::validate_promote(raw.promote, &check, &fence, path, problems);
    let nodes = validate_nodes(raw.node, &name, &check, path, problems);
    Pool {
        name,
        check,
        interval,
        fast_interval,
        timeout,
        rise,
        fall,
        fence,
        promote,
        nodes,
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

/// The pool's nodes: at least one, at most `MAX_NODES_PER_POOL`, names unique.
fn validate_nodes(
    raw: Vec<RawNode>,
    name: &str,
    check: &Check,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Vec<Node> {
    if raw.is_empty() {
        problems.push(Problem::new(
            format!("{path}.node"),
            "a pool needs at least one [[pool.node]]",
        ));
    }
    if raw.len() > MAX_NODES_PER_POOL {
        problems.push(Problem::new(
            format!("{path}.node"),
            format!(
                "{} nodes; a pool has at most {MAX_NODES_PER_POOL} (split it into several pools)",
                raw.len()
            ),
        ));
    }
    let needs_port = matches!(check, Check::Tcp | Check::Http(_));
    let mut nodes = Vec::new();
    let mut node_names = HashSet::new();
    for (i, raw_node) in raw.into_iter().enumerate() {
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
    nodes
}

/// Each raw node's `site` name, by pool then node, for [`super::validate`] to resolve
/// once the sites are known.
pub(super) fn node_sites(raw: &RawPool) -> Vec<Option<String>> {
    raw.node.iter().map(|n| n.site.clone()).collect()
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
        site: None,
        promote: raw.promote.unwrap_or(true),
    }
}
