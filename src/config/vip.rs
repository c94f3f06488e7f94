//! Validation of `[[vip]]` tables.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::fields::{duration, duration_or_zero, normalize_name, required};
use super::*;

const DEFAULT_ANNOUNCE_COUNT: u32 = 5;
const DEFAULT_ANNOUNCE_INTERVAL: Duration = Duration::from_millis(200);
const DEFAULT_TAKEOVER_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
pub(super) struct RawVip {
    record: Option<String>,
    node: Option<String>,
    address: Option<String>,
    interface: Option<String>,
    announce_count: Option<i64>,
    announce_interval: Option<toml::Value>,
    refresh: Option<toml::Value>,
    fence_command: Option<Vec<String>>,
    takeover_timeout: Option<toml::Value>,
}

pub(super) fn validate_vips(
    raw: Vec<RawVip>,
    pools: &[Pool],
    records: &[Record],
    problems: &mut Vec<Problem>,
) -> Vec<Vip> {
    let mut vips = Vec::new();
    let mut addresses = HashSet::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let path = format!("vip[{i}]");
        if let Some(vip) = validate_vip(raw, &path, pools, records, problems) {
            if !addresses.insert(vip.address) {
                problems.push(Problem::new(
                    format!("{path}.address"),
                    format!("{} is held by another [[vip]] already", vip.address),
                ));
            }
            vips.push(vip);
        }
    }
    vips
}

fn validate_vip(
    raw: RawVip,
    path: &str,
    pools: &[Pool],
    records: &[Record],
    problems: &mut Vec<Problem>,
) -> Option<Vip> {
    let record = required(raw.record, &format!("{path}.record"), problems)
        .and_then(|name| find_record(records, &name, path, problems));
    let node = required(raw.node, &format!("{path}.node"), problems);
    let node = match (record, node) {
        (Some(r), Some(name)) => find_node(&pools[records[r].pool.0], &name, path, problems),
        _ => None,
    };
    let address = required(raw.address, &format!("{path}.address"), problems).and_then(|text| {
        parse_cidr(&text)
            .map_err(|m| problems.push(Problem::new(format!("{path}.address"), m)))
            .ok()
    });
    let interface = required(raw.interface, &format!("{path}.interface"), problems);
    let announce_count = match raw.announce_count {
        None => DEFAULT_ANNOUNCE_COUNT,
        Some(n) if (0..=100).contains(&n) => n as u32,
        Some(n) => {
            problems.push(Problem::new(
                format!("{path}.announce_count"),
                format!("{n} is out of range (0-100)"),
            ));
            DEFAULT_ANNOUNCE_COUNT
        }
    };
    let fence_command = super::fields::command(
        raw.fence_command,
        &format!("{path}.fence_command"),
        problems,
    );
    // Every key is checked before any missing one ends the validation of this table.
    let announce_interval = duration(
        raw.announce_interval,
        DEFAULT_ANNOUNCE_INTERVAL,
        &format!("{path}.announce_interval"),
        problems,
    );
    let refresh = duration_or_zero(
        raw.refresh,
        Duration::ZERO,
        &format!("{path}.refresh"),
        problems,
    );
    let takeover_timeout = duration(
        raw.takeover_timeout,
        DEFAULT_TAKEOVER_TIMEOUT,
        &format!("{path}.takeover_timeout"),
        problems,
    );
    let (address, prefix_len) = address?;
    Some(Vip {
        record: RecordId(record?),
        node: node?,
        address,
        prefix_len,
        interface: interface?,
        announce_count,
        announce_interval,
        refresh,
        fence_command,
        takeover_timeout,
    })
}

/// The record a vip follows: one that answers a single node.
fn find_record(
    records: &[Record],
    name: &str,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<usize> {
    let wanted = normalize_name(name);
    let found = records.iter().position(|r| r.name == wanted);
    match found.map(|r| &records[r]) {
        None => problems.push(Problem::new(
            format!("{path}.record"),
            format!("no [[record]] named {wanted:?}"),
        )),
        Some(r) if !matches!(r.select, Select::First | Select::Primary) => problems.push(Problem::new(
            format!("{path}.record"),
            format!("{wanted} answers several nodes; a vip follows a record with select = \"first\" or \"primary\""),
        )),
        Some(_) => {}
    }
    found
}

/// The local node, in the record's pool.
fn find_node(pool: &Pool, name: &str, path: &str, problems: &mut Vec<Problem>) -> Option<usize> {
    let found = pool.nodes.iter().position(|n| n.name == name);
    if found.is_none() {
        problems.push(Problem::new(
            format!("{path}.node"),
            format!("pool {:?} has no node named {name:?}", pool.name),
        ));
    }
    found
}

/// `"10.0.0.100/24"` or `"2001:db8::100/64"`; without a prefix, a host address (/32, /128).
fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (ip, prefix) = text.split_once('/').unwrap_or((text, ""));
    let ip: IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an address with a prefix (\"10.0.0.100/24\")"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = if prefix.is_empty() {
        max
    } else {
        prefix
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{text:?} has an invalid prefix length (0-{max})"))?
    };
    Ok((ip, prefix))
}
