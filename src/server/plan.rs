//! Reload planning, pure: what a new configuration keeps, starts, stops and carries over
//! from the running one. `reload.rs` carries the plan out.
//!
//! Nodes and records are matched by name, never by position: a reload that reorders pools
//! or nodes changes nothing that runs.

use std::collections::HashMap;

use crate::checks::same_checker;
use crate::config::Config;

/// What happens to one node's checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checker {
    /// The running checker goes on (and with it its database session).
    Keep,
    /// A new checker starts; a running one for the node, if any, is stopped.
    Start,
}

#[derive(Debug, PartialEq)]
pub struct Plan {
    /// Per new pool, per node.
    pub checkers: Vec<Vec<Checker>>,
    /// New (pool, node) -> the old (pool, node) whose health it continues: same pool and
    /// node name, address and port (its check may have changed).
    pub carried: HashMap<(usize, usize), (usize, usize)>,
    /// Per new record: the old record it continues (same name, same pool name).
    pub records: Vec<Option<usize>>,
    /// Old (pool, node) that the new configuration no longer has.
    pub removed: Vec<(usize, usize)>,
}

pub fn plan(old: &Config, new: &Config) -> Plan {
    let old_nodes: HashMap<(&str, &str), (usize, usize)> = old
        .pools
        .iter()
        .enumerate()
        .flat_map(|(p, pool)| {
            pool.nodes
                .iter()
                .enumerate()
                .map(move |(n, node)| ((pool.name.as_str(), node.name.as_str()), (p, n)))
        })
        .collect();
    let mut carried = HashMap::new();
    let mut present = Vec::new();
    let checkers = new
        .pools
        .iter()
        .enumerate()
        .map(|(p, pool)| {
            pool.nodes
                .iter()
                .enumerate()
                .map(|(n, node)| {
                    let Some(&(op, on)) = old_nodes.get(&(pool.name.as_str(), node.name.as_str()))
                    else {
                        return Checker::Start;
                    };
                    present.push((op, on));
                    let (old_pool, old_node) = (&old.pools[op], &old.pools[op].nodes[on]);
                    if (old_node.address, old_node.port) == (node.address, node.port) {
                        carried.insert((p, n), (op, on));
                    }
                    if same_checker((old_pool, old_node), (pool, node)) {
                        Checker::Keep
                    } else {
                        Checker::Start
                    }
                })
                .collect()
        })
        .collect();
    let mut removed: Vec<(usize, usize)> = old_nodes
        .values()
        .copied()
        .filter(|old| !present.contains(old))
        .collect();
    removed.sort_unstable();
    let old_records: HashMap<(&str, &str), usize> = old
        .records
        .iter()
        .enumerate()
        .map(|(i, o)| ((o.name.as_str(), old.pools[o.pool.0].name.as_str()), i))
        .collect();
    let records = new
        .records
        .iter()
        .map(|record| {
            let pool = new.pools[record.pool.0].name.as_str();
            old_records.get(&(record.name.as_str(), pool)).copied()
        })
        .collect();
    Plan {
        checkers,
        carried,
        records,
        removed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(pools: &str, records: &str) -> Config {
        Config::from_toml(&format!("{pools}\n{records}"), Path::new("."))
            .unwrap_or_else(|p| panic!("{p:?}"))
    }

    fn pool(name: &str, interval: &str, nodes: &[(&str, &str)]) -> String {
        let mut text =
            format!("[[pool]]\nname = \"{name}\"\ncheck = \"tcp\"\ninterval = \"{interval}\"\n");
        for (node, address) in nodes {
            text.push_str(&format!(
                "[[pool.node]]\nname = \"{node}\"\naddress = \"{address}\"\nport = 80\n"
            ));
        }
        text
    }

    fn record(name: &str, pool: &str) -> String {
        format!("[[record]]\nname = \"{name}.example.internal.\"\npool = \"{pool}\"\n")
    }

    #[test]
    fn an_unchanged_config_keeps_everything() {
        let c = config(
            &pool("web", "1s", &[("w1", "10.0.0.1"), ("w2", "10.0.0.2")]),
            &record("www", "web"),
        );
        let p = plan(&c, &c);
        assert_eq!(p.checkers, vec![vec![Checker::Keep, Checker::Keep]]);
        assert_eq!(p.carried.len(), 2);
        assert_eq!(p.carried[&(0, 1)], (0, 1));
        assert_eq!(p.records, vec![Some(0)]);
        assert!(p.removed.is_empty());
    }

    #[test]
    fn a_changed_check_restarts_the_checker_but_carries_the_health() {
        let old = config(&pool("web", "1s", &[("w1", "10.0.0.1")]), "");
        let new = config(&pool("web", "2s", &[("w1", "10.0.0.1")]), "");
        let p = plan(&old, &new);
        assert_eq!(p.checkers, vec![vec![Checker::Start]]);
        assert_eq!(p.carried.get(&(0, 0)), Some(&(0, 0)));
    }

    #[test]
    fn a_moved_node_starts_afresh() {
        let old = config(&pool("web", "1s", &[("w1", "10.0.0.1")]), "");
        let new = config(&pool("web", "1s", &[("w1", "10.0.0.9")]), "");
        let p = plan(&old, &new);
        assert_eq!(p.checkers, vec![vec![Checker::Start]]);
        assert!(p.carried.is_empty(), "a new address is another machine");
        assert!(p.removed.is_empty());
    }

    #[test]
    fn nodes_and_records_are_matched_by_name_not_position() {
        let old = config(
            &(pool("a", "1s", &[("a1", "10.0.0.1")])
                + &pool("b", "1s", &[("b1", "10.0.1.1"), ("b2", "10.0.1.2")])),
            &(record("one", "a") + &record("two", "b")),
        );
        // Pools swapped, b2 removed, b3 added, record two moved to pool a, three added.
        let new = config(
            &(pool("b", "1s", &[("b3", "10.0.1.3"), ("b1", "10.0.1.1")])
                + &pool("a", "1s", &[("a1", "10.0.0.1")])),
            &(record("two", "a") + &record("one", "a") + &record("three", "b")),
        );
        let p = plan(&old, &new);
        assert_eq!(
            p.checkers,
            vec![vec![Checker::Start, Checker::Keep], vec![Checker::Keep]]
        );
        assert_eq!(p.carried.get(&(0, 1)), Some(&(1, 0)), "b1");
        assert_eq!(p.carried.get(&(1, 0)), Some(&(0, 0)), "a1");
        assert_eq!(p.carried.get(&(0, 0)), None, "b3 is new");
        assert_eq!(p.removed, vec![(1, 1)], "b2");
        // two moved to another pool: a new record; one continues; three is new.
        assert_eq!(p.records, vec![None, Some(0), None]);
    }
}
