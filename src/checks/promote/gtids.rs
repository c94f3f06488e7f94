//! MariaDB GTID positions compared for a promotion's steps (pure).

use crate::engine::mariadb_gtids;

/// The part of MariaDB GTID position `target` not executed by a server whose
/// `gtid_binlog_pos` is `binlog` and `gtid_slave_pos` is `slave`, per domain: empty when
/// nothing is left. `MASTER_GTID_WAIT` follows `gtid_slave_pos` alone, which never reaches
/// what a server wrote itself (an old primary that rejoined received its own transactions
/// back: found by the nemesis); its binary log says it has them.
pub(super) fn not_executed(target: &str, binlog: &str, slave: &str) -> Result<String, String> {
    let mut done: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    for text in [binlog, slave] {
        for (domain, _, seq) in mariadb_gtids(text)? {
            let best = done.entry(domain).or_default();
            *best = (*best).max(seq);
        }
    }
    Ok((mariadb_gtids(target)?.into_iter())
        .filter(|(domain, _, seq)| done.get(domain).is_none_or(|d| d < seq))
        .map(|(domain, server, seq)| format!("{domain}-{server}-{seq}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// Whether every (domain, server) sequence of MariaDB binlog state `mine` is at most the
/// same (domain, server)'s in `theirs`.
pub(super) fn states_contained(mine: &str, theirs: &str) -> Result<bool, String> {
    let parse = |text: &str| -> Result<std::collections::HashMap<(u32, u32), u64>, String> {
        Ok(mariadb_gtids(text)?
            .into_iter()
            .map(|(domain, server, seq)| ((domain, server), seq))
            .collect())
    };
    let (mine, theirs) = (parse(mine)?, parse(theirs)?);
    Ok(mine
        .iter()
        .all(|(key, seq)| theirs.get(key).is_some_and(|their| their >= seq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_binary_log_or_the_slave_position_has_is_not_waited_for() {
        // A rejoined old primary: its own 0-1-2 in its binlog, nothing replicated yet.
        assert_eq!(not_executed("0-1-2", "0-1-2", ""), Ok(String::new()));
        assert_eq!(not_executed("0-2-9", "0-1-2", "0-2-7"), Ok("0-2-9".into()));
        assert_eq!(not_executed("0-2-9,1-3-4", "", "0-2-9"), Ok("1-3-4".into()));
        assert!(not_executed("x", "", "").is_err());
    }

    #[test]
    fn a_write_no_replica_received_keeps_the_old_primary_out() {
        // The old primary (server 1) wrote 0-1-501, which the new primary (server 2,
        // continuing the domain from 0-1-500) never received.
        assert_eq!(states_contained("0-1-501", "0-1-500,0-2-600"), Ok(false));
        assert_eq!(states_contained("0-1-500", "0-1-500,0-2-600"), Ok(true));
        assert_eq!(
            states_contained("0-1-5,1-1-3", "0-1-500,0-2-600"),
            Ok(false)
        );
        assert_eq!(states_contained("", "0-1-1"), Ok(true));
        assert!(states_contained("x", "").is_err());
    }
}
