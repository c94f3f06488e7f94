//! What the database user needs, checked when a checker first connects: a missing grant is
//! a warning naming it, long before a fence would fail on it.
//!
//! The grants are the ones docs/configuration.md lists per server version; the tests run
//! with exactly those grants, and with each one taken away.

use mysql_async::prelude::Queryable;
use tokio_postgres::Client;
use tracing::warn;

/// The grants `client`'s role lacks for probing (and, with `fencing`, for fencing), each as
/// the statement that would give it.
pub async fn postgres_missing(
    client: &Client,
    fencing: bool,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await?
        .get(0);
    // ALTER SYSTEM for one parameter can be granted from PostgreSQL 15 on; before, only a
    // superuser may run it.
    let alter_system = if version >= 150_000 {
        "has_parameter_privilege('default_transaction_read_only', 'ALTER SYSTEM')"
    } else {
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
    };
    let sql = format!(
        "SELECT pg_has_role('pg_read_all_stats', 'USAGE'), \
         has_function_privilege('pg_control_system()', 'EXECUTE'), \
         has_function_privilege('pg_control_checkpoint()', 'EXECUTE'), \
         {alter_system}, \
         has_function_privilege('pg_reload_conf()', 'EXECUTE'), \
         pg_has_role('pg_signal_backend', 'USAGE')"
    );
    let row = client.query_one(&sql, &[]).await?;
    let has = |i: usize| row.get::<_, Option<bool>>(i).unwrap_or(false);
    let mut needs = vec![
        (
            has(0),
            "GRANT pg_monitor (or pg_read_all_stats), to see a standby's WAL receiver",
        ),
        (has(1), "GRANT EXECUTE ON FUNCTION pg_control_system()"),
        (has(2), "GRANT EXECUTE ON FUNCTION pg_control_checkpoint()"),
    ];
    if fencing {
        needs.extend([
            (
                has(3),
                if version >= 150_000 {
                    "GRANT ALTER SYSTEM ON PARAMETER default_transaction_read_only"
                } else {
                    "SUPERUSER (ALTER SYSTEM before PostgreSQL 15)"
                },
            ),
            (has(4), "GRANT EXECUTE ON FUNCTION pg_reload_conf()"),
            (has(5), "GRANT pg_signal_backend"),
        ]);
    }
    Ok(needs
        .into_iter()
        .filter(|(has, _)| !has)
        .map(|(_, grant)| grant.to_string())
        .collect())
}

/// Logs what the user lacks, if anything, or why the privileges could not be read.
pub fn warn_missing(pool: &str, node: &str, user: &str, missing: Result<Vec<String>, String>) {
    match missing {
        Ok(missing) if missing.is_empty() => {}
        Ok(missing) => warn!(
            pool = %pool,
            node = %node,
            user = %user,
            missing = %missing.join("; "),
            "the database user lacks privileges hadns needs"
        ),
        Err(e) => warn!(
            pool = %pool,
            node = %node,
            user = %user,
            error = %e,
            "cannot read the database user's privileges"
        ),
    }
}

/// A MySQL or MariaDB version as `(major, minor, patch)` and whether it is MariaDB.
pub fn mysql_version(text: &str) -> ((u32, u32, u32), bool) {
    let mut numbers = text
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse().unwrap_or(0));
    let mut next = || numbers.next().unwrap_or(0);
    ((next(), next(), next()), text.contains("MariaDB"))
}

/// What hadns does on a node beside checking it; each needs privileges of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Duties {
    /// `fence = "read-only"`.
    pub fencing: bool,
    /// `[pool.promote]`: replication stopped, reset and repointed, read_only lifted.
    pub promoting: bool,
}

/// The privileges each thing hadns does needs, any one of each group sufficing, for a
/// server `version`.
pub fn mysql_needs(
    version: (u32, u32, u32),
    mariadb: bool,
    duties: Duties,
) -> Vec<Vec<&'static str>> {
    let Duties { fencing, promoting } = duties;
    let mut needs = Vec::new();
    // Lifting read_only after a promotion needs what setting it needs.
    let fencing = fencing || promoting;
    if mariadb {
        // MariaDB 10.5.9 split SLAVE MONITOR (alias REPLICA MONITOR) off; 10.11 took
        // READ_ONLY ADMIN out of SUPER.
        needs.push(if version >= (10, 5, 9) {
            vec!["SLAVE MONITOR", "REPLICA MONITOR", "SUPER"]
        } else {
            vec!["REPLICATION CLIENT", "SUPER"]
        });
        if fencing {
            needs.push(if version >= (10, 11, 0) {
                vec!["READ_ONLY ADMIN"]
            } else if version >= (10, 5, 2) {
                vec!["READ_ONLY ADMIN", "SUPER"]
            } else {
                vec!["SUPER"]
            });
            needs.push(vec!["PROCESS"]);
            needs.push(if version >= (10, 5, 2) {
                vec!["CONNECTION ADMIN", "SUPER"]
            } else {
                vec!["SUPER"]
            });
        }
        if promoting {
            needs.push(if version >= (10, 5, 2) {
                vec!["REPLICATION SLAVE ADMIN", "SUPER"]
            } else {
                vec!["SUPER"]
            });
            // RESET SLAVE ALL.
            needs.push(vec!["RELOAD"]);
        }
    } else {
        needs.push(vec!["REPLICATION CLIENT", "SUPER"]);
        if fencing {
            needs.push(vec!["SYSTEM_VARIABLES_ADMIN", "SUPER"]);
            needs.push(vec!["PROCESS"]);
            needs.push(vec!["CONNECTION_ADMIN", "SUPER"]);
        }
        if promoting {
            needs.push(vec!["REPLICATION_SLAVE_ADMIN", "SUPER"]);
            needs.push(vec!["RELOAD"]);
        }
    }
    needs
}

/// The global privileges in `SHOW GRANTS` lines (`GRANT PROCESS, SUPER ON *.* TO ...`).
pub fn global_privileges(grants: &[String]) -> Vec<String> {
    let mut privileges = Vec::new();
    for line in grants {
        let Some(rest) = line.strip_prefix("GRANT ") else {
            continue;
        };
        let Some((list, _)) = rest.split_once(" ON *.* TO ") else {
            continue;
        };
        for privilege in list.split(',').map(str::trim) {
            if privilege == "ALL PRIVILEGES" || privilege == "ALL" {
                privileges.push("ALL".to_string());
            } else {
                privileges.push(privilege.to_ascii_uppercase());
            }
        }
    }
    privileges
}

/// The privilege groups of `needs` that `privileges` satisfies none of, in words.
pub fn mysql_missing(needs: &[Vec<&str>], privileges: &[String]) -> Vec<String> {
    if privileges.iter().any(|p| p == "ALL") {
        return Vec::new();
    }
    needs
        .iter()
        .filter(|group| !group.iter().any(|g| privileges.iter().any(|p| p == g)))
        .map(|group| group.join(" or "))
        .collect()
}

/// The privileges `conn`'s account lacks, named as MySQL/MariaDB name them.
pub async fn mysql_missing_on(
    conn: &mut mysql_async::Conn,
    duties: Duties,
) -> Result<Vec<String>, mysql_async::Error> {
    let version: Option<String> = conn.query_first("SELECT @@version").await?;
    let (version, mariadb) = mysql_version(&version.unwrap_or_default());
    let grants: Vec<String> = conn.query("SHOW GRANTS").await?;
    Ok(mysql_missing(
        &mysql_needs(version, mariadb, duties),
        &global_privileges(&grants),
    ))
}

/// Fails, naming what is missing, when the account on `node` lacks a grant a promotion
/// needs (checked before anything is done).
pub async fn mysql_may_promote(conn: &mut mysql_async::Conn, node: &str) -> Result<(), String> {
    let duties = Duties {
        fencing: false,
        promoting: true,
    };
    let missing = (mysql_missing_on(conn, duties).await)
        .map_err(|e| format!("reading the account's grants: {e}"))?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the account lacks {} on {node} (a promotion stops, resets and repoints \
         replication): nothing done",
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(version: &str, fencing: bool, grants: &[&str]) -> Vec<String> {
        let duties = Duties {
            fencing,
            promoting: false,
        };
        missing_for(version, duties, grants)
    }

    fn missing_for(version: &str, duties: Duties, grants: &[&str]) -> Vec<String> {
        let (v, mariadb) = mysql_version(version);
        let grants: Vec<String> = grants.iter().map(|g| g.to_string()).collect();
        mysql_missing(
            &mysql_needs(v, mariadb, duties),
            &global_privileges(&grants),
        )
    }

    #[test]
    fn promoting_needs_replication_admin_and_reload() {
        let promoting = Duties {
            fencing: true,
            promoting: true,
        };
        // docs/configuration.md's list for MariaDB 10.11.
        let documented = "GRANT SLAVE MONITOR, PROCESS, CONNECTION ADMIN, READ_ONLY ADMIN, \
                          REPLICATION SLAVE ADMIN, RELOAD ON *.* TO `hadns`@`%`";
        assert!(missing_for("10.11.2-MariaDB", promoting, &[documented]).is_empty());
        let without = documented.replace(", RELOAD", "");
        assert_eq!(
            missing_for("10.11.2-MariaDB", promoting, &[&without]),
            vec!["RELOAD"]
        );
        // Without fencing configured, lifting read_only still needs READ_ONLY ADMIN.
        let only_promoting = Duties {
            fencing: false,
            promoting: true,
        };
        let no_read_only = documented.replace("READ_ONLY ADMIN, ", "");
        assert_eq!(
            missing_for("10.11.2-MariaDB", only_promoting, &[&no_read_only]),
            vec!["READ_ONLY ADMIN"]
        );
        assert_eq!(
            missing_for(
                "8.0.36",
                promoting,
                &["GRANT PROCESS, REPLICATION CLIENT, RELOAD ON *.* TO `h`@`%`"]
            ),
            vec![
                "SYSTEM_VARIABLES_ADMIN or SUPER",
                "CONNECTION_ADMIN or SUPER",
                "REPLICATION_SLAVE_ADMIN or SUPER"
            ]
        );
    }

    #[test]
    fn mariadb_10_11_needs_read_only_admin_beside_super() {
        let line = "GRANT SUPER, PROCESS ON *.* TO `hadns`@`%` IDENTIFIED BY PASSWORD '*D8'";
        assert_eq!(
            missing("10.11.19-MariaDB-0+deb12u1-log", true, &[line]),
            vec!["READ_ONLY ADMIN"]
        );
        // Before 10.11 SUPER covered it.
        assert!(missing("10.6.18-MariaDB", true, &[line]).is_empty());
        let exact =
            "GRANT PROCESS, CONNECTION ADMIN, READ_ONLY ADMIN, SLAVE MONITOR ON *.* TO `hadns`@`%`";
        assert!(missing("10.11.19-MariaDB", true, &[exact]).is_empty());
        assert!(missing("10.6.18-MariaDB", true, &[exact]).is_empty());
        let without_process =
            "GRANT CONNECTION ADMIN, READ_ONLY ADMIN, SLAVE MONITOR ON *.* TO `h`@`%`";
        assert_eq!(
            missing("10.11.2-MariaDB", true, &[without_process]),
            vec!["PROCESS"]
        );
        // Without fencing only the replica status is needed.
        assert!(
            missing(
                "10.11.2-MariaDB",
                false,
                &["GRANT SLAVE MONITOR ON *.* TO `h`@`%`"]
            )
            .is_empty()
        );
        assert_eq!(
            missing("10.11.2-MariaDB", false, &["GRANT USAGE ON *.* TO `h`@`%`"]),
            vec!["SLAVE MONITOR or REPLICA MONITOR or SUPER"]
        );
        assert!(
            missing(
                "10.11.2-MariaDB",
                true,
                &["GRANT ALL PRIVILEGES ON *.* TO `root`@`%`"]
            )
            .is_empty()
        );
    }

    #[test]
    fn mysql_8_dynamic_privileges_come_on_their_own_line() {
        let grants = [
            "GRANT PROCESS, REPLICATION CLIENT ON *.* TO `hadns`@`%`",
            "GRANT CONNECTION_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO `hadns`@`%`",
        ];
        assert!(missing("8.0.36", true, &grants).is_empty());
        assert_eq!(
            missing("8.0.36", true, &grants[..1]),
            vec![
                "SYSTEM_VARIABLES_ADMIN or SUPER",
                "CONNECTION_ADMIN or SUPER"
            ]
        );
        // Grants on one schema are not global.
        assert_eq!(
            missing("8.0.36", false, &["GRANT SELECT ON `app`.* TO `hadns`@`%`"]),
            vec!["REPLICATION CLIENT or SUPER"]
        );
    }
}
