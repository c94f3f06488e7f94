//! Real PostgreSQL and MariaDB servers, started by the tests in temporary directories on
//! loopback addresses and ephemeral ports, and removed afterwards.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the server commands
//! run as the `postgres` user the Debian package creates.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;

mod maria;
mod pg;
mod writer;

pub use maria::Maria;
pub use pg::Pg;
pub use writer::Writer;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A free TCP port on `ip` (bound, then released).
pub fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn run(mut cmd: Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Writes `server.crt` and `server.key` (mode 0600) into `dir`.
pub fn self_signed_certificate(dir: &std::path::Path) {
    let mut openssl = Command::new("openssl");
    openssl
        .args([
            "req",
            "-new",
            "-x509",
            "-days",
            "2",
            "-nodes",
            "-subj",
            "/CN=hadns-test",
            "-newkey",
            "rsa:2048",
        ])
        .arg("-keyout")
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(dir.join("server.crt"));
    run(openssl);
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
}
/// A postgres pool `pg` (interval 1s, fall 2) with `db` (primary) and `db-ro` (replicas
/// within 256kB).
pub fn pg_pool(nodes: &str, extra: &str) -> String {
    const DB: &str = "db.example.internal.";
    const DB_RO: &str = "db-ro.example.internal.";
    format!(
        r#"
[[pool]]
name = "pg"
check = "postgres"
interval = "1s"
timeout = "1s"
rise = 1
fall = 2
{extra}
[pool.postgres]
user = "postgres"
sslmode = "disable"
{nodes}

[[record]]
name = "{DB}"
pool = "pg"
select = "primary"

[[record]]
name = "{DB_RO}"
pool = "pg"
select = "replicas"
max_lag = "256kB"
"#
    )
}
