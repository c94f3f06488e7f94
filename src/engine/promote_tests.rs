//! The promotion rules as transcripts (`tests.rs` explains the language; `expect promote
//! TEXT`: the automatic verdict contains TEXT, `expect ask TEXT`: an operator's).

use super::tests::{config, run};

/// `db` (primary) on a mysql pool of n1 (server 1), n2, n3, promoting automatically.
fn maria(promote: &str) -> crate::config::Config {
    config(
        "mysql",
        &format!(
            "fall = 1\nrise = 1\nfence = \"read-only\"\n[pool.promote]\nmode = \"auto\"\n{promote}"
        ),
        "[[record]]\nname = \"db.example.internal.\"\npool = \"p\"\nselect = \"primary\"",
    )
}

#[test]
fn the_replica_that_received_the_most_replaces_a_dead_primary() {
    run(
        &maria(""),
        "at 0ms n1 primary gtid=0-1-10 server=1
         at 0ms n2 standby gtid=0-1-8 recv=0-1-9 from=n1
         at 0ms n3 standby gtid=0-1-9 recv=0-1-10 from=n1
         expect db = n1
         expect promote idle: n1 is writable
         at 1s n1 refused
         expect db = nodata
         expect promote idle: n2 still receives from the primary n1
         at 1s n2 standby gtid=0-1-9 recv=0-1-9 lost=n1
         at 1s n3 standby gtid=0-1-10 recv=0-1-10 lost=n1
         expect promote n3 replaces n1, others [n2]",
    );
}

#[test]
fn received_counts_not_applied_and_priority_breaks_ties() {
    // n2 applied less but received more than n3: n2.
    run(
        &maria(""),
        "at 0ms n1 primary gtid=0-1-10 server=1
         at 0ms n2 standby gtid=0-1-5 recv=0-1-10 lost=n1
         at 0ms n3 standby gtid=0-1-9 recv=0-1-9 lost=n1
         at 1s n1 refused
         expect promote n2 replaces n1",
    );
    // A tie: n2's priority (50) beats n3's (10).
    run(
        &maria(""),
        "at 0ms n1 primary gtid=0-1-10 server=1
         at 0ms n3 standby gtid=0-1-10 recv=0-1-10 lost=n1
         at 0ms n2 standby gtid=0-1-10 recv=0-1-10 lost=n1
         at 1s n1 refused
         expect promote n2 replaces n1, others [n3]",
    );
}

#[test]
fn an_errant_or_lagging_or_forbidden_replica_is_never_chosen() {
    // n2 has a transaction of its own (server 2): n3, although behind, is chosen.
    run(
        &maria(""),
        "at 0ms n1 primary gtid=0-1-10 server=1
         at 0ms n2 standby gtid=0-2-11 recv=0-2-11 lost=n1
         at 0ms n3 standby gtid=0-1-9 recv=0-1-9 lost=n1
         at 1s n1 refused
         expect promote n3 replaces n1",
    );
    // What the primary wrote after hadns last saw it is received, not errant.
    run(
        &maria(""),
        "at 0ms n1 primary gtid=0-1-10 server=1
         at 0ms n2 standby gtid=0-1-12 recv=0-1-12 lost=n1
         at 0ms n3 standby gtid=0-1-9 recv=0-1-9 lost=n1
         at 1s n1 refused
         expect promote n2 replaces n1",
    );
    run(
        &maria("max_lag = \"2 transactions\""),
        "at 0ms n1 primary gtid=0-1-10 server=1
         at 0ms n2 standby gtid=0-1-7 recv=0-1-7 lost=n1
         at 0ms n3 standby gtid=0-1-2 recv=0-1-2 lost=n1
         at 1s n1 refused
         expect promote refused: no replica of n1 can be promoted
         expect promote n2: 3 transactions
         expect promote over max_lag",
    );
    let mut forbidden = maria("");
    forbidden.pools[0].nodes[1].promote = false;
    run(
        &forbidden,
        "at 0ms n1 primary gtid=0-1-10 server=1
         at 0ms n2 standby gtid=0-1-10 recv=0-1-10 lost=n1
         at 0ms n3 standby gtid=0-1-3 recv=0-1-3 lost=n1
         at 1s n1 refused
         expect promote n3 replaces n1, others [n2]",
    );
}

#[test]
fn a_primary_only_read_only_or_a_database_promoted_elsewhere_is_left_alone() {
    run(
        &maria(""),
        "at 0ms n1 primary gtid=0-1-10 server=1
         at 0ms n2 standby gtid=0-1-10 from=n1
         at 0ms n3 standby gtid=0-1-10 from=n1
         at 1s n1 standby gtid=0-1-10
         expect db = nodata
         expect promote idle: the primary n1 is up
         at 2s n1 refused
         at 2s n2 primary gtid=0-1-10 server=2
         expect promote idle: n2 is writable",
    );
}

#[test]
fn a_deposed_primary_is_fenced_when_writable_and_never_answered() {
    run(
        &maria(""),
        "at 0ms n1 primary gtid=0-1-10 server=1
         at 0ms n2 standby gtid=0-1-10 lost=n1
         at 0ms n3 standby gtid=0-1-10 lost=n1
         at 1s n1 refused
         at 1s depose n1
         at 2s n2 primary gtid=0-1-10 server=2
         expect db = n2
         at 3s n1 primary gtid=0-1-10 server=1
         expect event fence n1
         expect db = n2
         at 4s n1 standby gtid=0-1-10 from=n2
         expect db = n2
         at 5s undepose n1
         expect db = n2",
    );
    // No new primary yet: the deposed one is fenced all the same, and not answered.
    run(
        &maria(""),
        "at 0ms n1 primary gtid=0-1-10 server=1
         at 0ms n2 standby gtid=0-1-10 lost=n1
         at 0ms n3 standby gtid=0-1-10 lost=n1
         at 1s n1 refused
         at 1s depose n1
         at 2s n1 primary gtid=0-1-10 server=1
         expect event fence n1
         expect db = nodata",
    );
}

#[test]
fn an_operator_switches_over_from_a_live_primary() {
    run(
        &maria(""),
        "at 0ms n1 primary gtid=0-1-10 server=1
         at 0ms n2 standby gtid=0-1-10 recv=0-1-10 from=n1
         at 0ms n3 standby gtid=0-1-10 recv=0-1-10 from=n1
         expect ask switchover: n2 replaces n1, others [n3]",
    );
}

#[test]
fn postgres_candidates_stay_on_the_primary_timeline() {
    let config = config(
        "postgres",
        "fall = 1\nrise = 1\nfence = \"read-only\"\n[pool.promote]\nmode = \"auto\"",
        "[[record]]\nname = \"db.example.internal.\"\npool = \"p\"\nselect = \"primary\"",
    );
    run(
        &config,
        "at 0ms n1 primary tl=2 lsn=1000
         at 0ms n2 standby tl=1 lsn=900 rlsn=1000 lost=n1
         at 0ms n3 standby tl=2 lsn=800 rlsn=900 lost=n1
         at 1s n1 refused
         expect promote n3 replaces n1
         at 2s n3 refused
         expect promote refused: no replica of n1 can be promoted: n2: on timeline 1, the primary on 2",
    );
}
