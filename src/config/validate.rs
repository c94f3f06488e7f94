//! Raw serde types and their validation into the typed config, every problem collected.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::fields::{duration_or_zero, int_in_range};
use super::pool::RawPool;
use super::record::RawRecord;
use super::*;

// === raw serde types ===

#[derive(Deserialize, Default)]
pub(super) struct RawConfig {
    dns: Option<RawDns>,
    #[serde(default)]
    pool: Vec<super::pool::RawPool>,
    #[serde(default)]
    record: Vec<super::record::RawRecord>,
    #[serde(default)]
    vip: Vec<super::vip::RawVip>,
    admin: Option<super::admin::RawAdmin>,
    cluster: Option<super::cluster::RawCluster>,
    transfer: Option<super::transfer::RawTransfer>,
    #[serde(default)]
    tsig: Vec<super::transfer::RawTsig>,
    #[serde(default)]
    site: Vec<super::site::RawSite>,
    resolver: Option<super::resolver::RawResolver>,
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
    serial_file: Option<String>,
}

// === defaults ===

fn default_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 5353))]
}
const DEFAULT_ZONES_DIR: &str = "zones";
const DEFAULT_UDP_COALESCE: Duration = Duration::from_micros(100);
const MAX_UDP_COALESCE: Duration = Duration::from_millis(1);
/// DNS Flag Day 2020: no fragmentation on the common paths.
const DEFAULT_MAX_UDP_SIZE: i64 = 1232;
const DEFAULT_TCP_CONNECTIONS: i64 = 256;
const DEFAULT_TCP_CONNECTIONS_PER_CLIENT: i64 = 16;
/// Nodes checked in all (each has a task, a socket or a session, and its state).
const MAX_NODES: usize = 20_000;
const MAX_RECORDS: usize = 20_000;

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
    let sites = super::site::validate_sites(raw.site, problems);
    let pools = validate_pools(raw.pool, &sites, base, problems);
    let records = validate_records(raw.record, &pools, problems);
    let vips = super::vip::validate_vips(raw.vip, &pools, &records, problems);
    let mut dns = dns;
    let admin = raw
        .admin
        .map(|a| super::admin::validate_admin(a, base, problems));
    // Beside the drain file unless named: both are hadns's state across restarts.
    if dns.serial_file.is_none()
        && let Some(drains) = admin.as_ref().and_then(|a| a.drain_file.as_ref())
    {
        dns.serial_file = Some(drains.with_file_name("serials.toml"));
    }
    let cluster = raw
        .cluster
        .map(|c| super::cluster::validate_cluster(c, base, problems));
    let keys = super::transfer::validate_tsig(raw.tsig, base, problems);
    let transfer = raw
        .transfer
        .map(|t| super::transfer::validate_transfer(t, &keys, problems));
    let resolver = raw
        .resolver
        .map(|r| super::resolver::validate_resolver(r, problems));
    let mut config = Config {
        dns,
        pools,
        records,
        vips,
        admin,
        cluster,
        transfer,
        sites,
        resolver,
    };
    resolve_programs(&mut config, base);
    config
}

/// The pools, each node's site resolved among `sites`, their names unique.
fn validate_pools(
    raw: Vec<RawPool>,
    sites: &[Site],
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<Pool> {
    let mut pools = Vec::new();
    let mut pool_names = HashSet::new();
    for (i, raw_pool) in raw.into_iter().enumerate() {
        let node_sites = super::pool::node_sites(&raw_pool);
        let mut pool = super::pool::validate_pool(raw_pool, &format!("pool[{i}]"), base, problems);
        for (j, (node, site)) in pool.nodes.iter_mut().zip(node_sites).enumerate() {
            let Some(site) = site else { continue };
            node.site = sites.iter().position(|s| s.name == site);
            if node.site.is_none() {
                let known: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
                problems.push(Problem::new(
                    format!("pool[{i}].node[{j}].site"),
                    format!("unknown site {site:?} ({})", known.join(", ")),
                ));
            }
        }
        if !pool.name.is_empty() && !pool_names.insert(pool.name.clone()) {
            problems.push(Problem::new(
                format!("pool[{i}].name"),
                format!("pool name {:?} is used twice", pool.name),
            ));
        }
        pools.push(pool);
    }
    pools
}

/// The records, each on a pool of `pools`, their names unique; a `by_site` record's nodes
/// each with a site.
fn validate_records(
    raw: Vec<RawRecord>,
    pools: &[Pool],
    problems: &mut Vec<Problem>,
) -> Vec<Record> {
    let mut records = Vec::new();
    let mut record_names = HashSet::new();
    for (i, raw_record) in raw.into_iter().enumerate() {
        let path = format!("record[{i}]");
        if let Some(record) = super::record::validate_record(raw_record, &path, pools, problems) {
            if !record_names.insert(record.name.clone()) {
                problems.push(Problem::new(
                    format!("{path}.name"),
                    format!("record {:?} is defined twice", record.name),
                ));
            }
            if record.by_site {
                let pool = &pools[record.pool.0];
                for node in pool.nodes.iter().filter(|n| n.site.is_none()) {
                    problems.push(Problem::new(
                        format!("{path}.by_site"),
                        format!(
                            "node {:?} of pool {:?} has no site: by_site needs a site on every node",
                            node.name, pool.name
                        ),
                    ));
                }
            }
            records.push(record);
        }
    }
    records
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

/// `dns.listen`: addresses with ports; the default when absent.
fn validate_listen(raw: Option<Vec<String>>, problems: &mut Vec<Problem>) -> Vec<SocketAddr> {
    match raw {
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
    }
}

/// `dns.rate_limit*`: response rate limiting, off (0) by default.
fn validate_rate_limit(raw: &RawDns, problems: &mut Vec<Problem>) -> RateLimit {
    RateLimit {
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
    }
}

fn validate_dns(raw: RawDns, base: &Path, problems: &mut Vec<Problem>) -> Dns {
    let listen = validate_listen(raw.listen.clone(), problems);
    let rate_limit = validate_rate_limit(&raw, problems);
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
    Dns {
        serial_file: raw.serial_file.map(|f| base.join(f)),
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
