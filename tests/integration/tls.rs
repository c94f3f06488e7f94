//! `sslmode` for database checks: `require` gets an encrypted session or a clear failure,
//! `prefer` falls back to a plain session when the server offers no TLS.

use std::net::IpAddr;
use std::time::Duration;

use crate::support::dbs::{Maria, Pg};
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(20);

/// One pool per node, each with its own record `<node>.example.internal.`: the nodes are
/// separate servers (separate clusters), so they must not share a pool.
fn config(check: &str, sslmode: &str, nodes: &[(&str, String)]) -> String {
    let user = if check == "postgres" {
        "postgres"
    } else {
        "root"
    };
    let mut text = String::new();
    for (name, node) in nodes {
        text.push_str(&format!(
            r#"
[[pool]]
name = "{name}"
check = "{check}"
interval = "100ms"
fall = 1
rise = 1
[pool.{check}]
user = "{user}"
sslmode = "{sslmode}"
{node}
[[record]]
name = "{name}.example.internal."
pool = "{name}"
"#
        ));
    }
    text
}

/// With `sslmode = "require"`: the TLS server is up, the plain one down and answered with no
/// address. Returns the running hadns for more checks.
async fn require(check: &str, nodes: &[(&str, String)], tls: IpAddr) -> Hadns {
    let mut hadns = Hadns::start(&config(check, "require", nodes)).await;
    hadns
        .wait_for_answer("tls.example.internal.", &[tls], LIMIT)
        .await;
    hadns
        .wait_for_log("node=plain from=unknown to=down reason=", LIMIT)
        .await;
    assert_eq!(hadns.addresses("plain.example.internal.").await, Ok(vec![]));
    hadns
}

/// With `sslmode = "prefer"`: both servers are up.
async fn prefer(check: &str, nodes: &[(&str, String)], tls: IpAddr, plain: IpAddr) {
    let hadns = Hadns::start(&config(check, "prefer", nodes)).await;
    hadns
        .wait_for_answer("tls.example.internal.", &[tls], LIMIT)
        .await;
    hadns
        .wait_for_answer("plain.example.internal.", &[plain], LIMIT)
        .await;
    hadns.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_sslmode() {
    let with_tls = Pg::init_primary_with_tls();
    let plain = Pg::init_primary();
    let nodes = [
        ("tls", with_tls.node("tls", 1)),
        ("plain", plain.node("plain", 1)),
    ];

    let hadns = require("postgres", &nodes, with_tls.ip).await;
    // And hadns's session on the TLS server really is encrypted.
    let encrypted: bool = with_tls
        .client()
        .await
        .query_one(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'hadns'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "hadns's session is not encrypted");
    hadns.stop().await;

    prefer("postgres", &nodes, with_tls.ip, plain.ip).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_sslmode() {
    let with_tls = Maria::start_with(1, false, true).await;
    let plain = Maria::start(2, false).await;
    let nodes = [
        ("tls", with_tls.node("tls", 1)),
        ("plain", plain.node("plain", 1)),
    ];

    require("mysql", &nodes, with_tls.ip).await.stop().await;
    prefer("mysql", &nodes, with_tls.ip, plain.ip).await;
}
