//! What a reload changes, in words: the summary `hadns reload` prints and the log records.

use crate::config::{Config, Pool};

/// Every difference between `old` and `new` that a reload applies, one phrase each
/// (`pool web: node web3 added`), pools first, then records; empty when nothing changed.
pub fn describe(old: &Config, new: &Config) -> Vec<String> {
    let mut changes = Vec::new();
    for pool in &old.pools {
        if !new.pools.iter().any(|p| p.name == pool.name) {
            changes.push(format!("pool {} removed", pool.name));
        }
    }
    for pool in &new.pools {
        match old.pools.iter().find(|p| p.name == pool.name) {
            None => changes.push(format!(
                "pool {} added ({} nodes, check {})",
                pool.name,
                pool.nodes.len(),
                pool.check.kind()
            )),
            Some(before) => changes.extend(pool_changes(before, pool)),
        }
    }
    for record in &old.records {
        if !new.records.iter().any(|r| r.name == record.name) {
            changes.push(format!("record {} removed", record.name));
        }
    }
    for record in &new.records {
        let pool_of =
            |config: &Config, r: &crate::config::Record| config.pools[r.pool.0].name.clone();
        let Some(before) = old.records.iter().find(|r| r.name == record.name) else {
            changes.push(format!(
                "record {} added (pool {}, select {})",
                record.name,
                pool_of(new, record),
                lower(record.select)
            ));
            continue;
        };
        let mut fields = Vec::new();
        let (pool_before, pool_now) = (pool_of(old, before), pool_of(new, record));
        if pool_before != pool_now {
            fields.push(format!("pool {pool_before} -> {pool_now}"));
        }
        let pairs = [
            ("select", lower(before.select), lower(record.select)),
            ("ttl", before.ttl.to_string(), record.ttl.to_string()),
            (
                "failback",
                before.failback.to_string(),
                record.failback.to_string(),
            ),
            ("on_empty", lower(before.on_empty), lower(record.on_empty)),
            (
                "max_lag",
                format!("{:?}", before.max_lag),
                format!("{:?}", record.max_lag),
            ),
            (
                "max_stale",
                format!("{:?}", before.max_stale),
                format!("{:?}", record.max_stale),
            ),
            (
                "on_change",
                format!("{:?}", before.on_change),
                format!("{:?}", record.on_change),
            ),
        ];
        for (key, was, now) in pairs {
            if was != now {
                fields.push(format!("{key} {was} -> {now}"));
            }
        }
        if !fields.is_empty() {
            changes.push(format!("record {}: {}", record.name, fields.join(", ")));
        }
    }
    changes
}

/// `Select::First` -> `first`, as the config writes it.
fn lower(value: impl std::fmt::Debug) -> String {
    format!("{value:?}").to_lowercase()
}

fn pool_changes(old: &Pool, new: &Pool) -> Vec<String> {
    let mut changes = Vec::new();
    let name = &new.name;
    if old.check != new.check {
        changes.push(format!(
            "pool {name}: check settings changed (check {})",
            new.check.kind()
        ));
    }
    let pairs = [
        ("interval", old.interval, new.interval),
        ("fast_interval", old.fast_interval, new.fast_interval),
        ("timeout", old.timeout, new.timeout),
    ];
    for (key, was, now) in pairs {
        if was != now {
            changes.push(format!("pool {name}: {key} {was:?} -> {now:?}"));
        }
    }
    if (old.rise, old.fall) != (new.rise, new.fall) {
        changes.push(format!(
            "pool {name}: rise/fall {}/{} -> {}/{}",
            old.rise, old.fall, new.rise, new.fall
        ));
    }
    if old.fence != new.fence {
        changes.push(format!("pool {name}: fencing changed"));
    }
    for node in &old.nodes {
        if !new.nodes.iter().any(|n| n.name == node.name) {
            changes.push(format!("pool {name}: node {} removed", node.name));
        }
    }
    for node in &new.nodes {
        match old.nodes.iter().find(|n| n.name == node.name) {
            None => changes.push(format!("pool {name}: node {} added", node.name)),
            Some(before) if before != node => {
                changes.push(format!("pool {name}: node {} changed", node.name))
            }
            Some(_) => {}
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra_node: &str, select: &str) -> Config {
        let text = format!(
            "[[pool]]\nname = \"web\"\ncheck = \"tcp\"\n\
             [[pool.node]]\nname = \"web1\"\naddress = \"10.0.0.1\"\nport = 80\n{extra_node}\n\
             [[record]]\nname = \"www.example.internal.\"\npool = \"web\"\nselect = \"{select}\"\n"
        );
        let (config, problems) = Config::parse(&text, std::path::Path::new("/"));
        assert!(problems.is_empty(), "{problems:?}");
        config.unwrap()
    }

    #[test]
    fn a_reload_says_what_it_changed() {
        let old = config("", "first");
        let new = config(
            "[[pool.node]]\nname = \"web2\"\naddress = \"10.0.0.2\"\nport = 80\n",
            "healthy",
        );
        assert_eq!(
            describe(&old, &new),
            [
                "pool web: node web2 added",
                "record www.example.internal.: select first -> healthy"
            ]
        );
        assert!(describe(&new, &new).is_empty());
        assert_eq!(describe(&new, &old)[0], "pool web: node web2 removed");
    }
}
