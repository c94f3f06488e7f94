//! Real PostgreSQL and MariaDB servers, started by the tests in temporary directories on
//! loopback addresses and ephemeral ports, and removed afterwards.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the server commands
//! run as the `postgres` user the Debian package creates.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::harness::wait_for;

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

// === PostgreSQL ===

fn pg_bin(tool: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run scripts/test.sh, which installs it")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    versions.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
    });
    versions
        .last()
        .expect("no PostgreSQL version installed")
        .join("bin")
        .join(tool)
}

/// A command running as the `postgres` user when we are root.
fn pg_command(tool: &str) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(pg_bin(tool));
        cmd
    } else {
        Command::new(pg_bin(tool))
    }
}

/// One PostgreSQL server: a data directory, an address and a port.
pub struct Pg {
    pub ip: IpAddr,
    pub port: u16,
    pub data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pg {
    fn new_dir(ip: &str, port: Option<u16>) -> (tempfile::TempDir, PathBuf, IpAddr, u16) {
        let dir = tempfile::Builder::new()
            .prefix("hadns-pg")
            .tempdir()
            .unwrap();
        if is_root() {
            run({
                let mut c = Command::new("chown");
                c.arg("postgres:").arg(dir.path());
                c
            });
        }
        let data = dir.path().join("data");
        let ip: IpAddr = ip.parse().unwrap();
        (dir, data, ip, port.unwrap_or_else(|| free_port(ip)))
    }

    /// A new cluster (its own system identifier), started as a primary.
    pub fn init_primary(ip: &str) -> Pg {
        Pg::init_primary_at(ip, None)
    }

    /// A new cluster on a given port (None: a free one).
    pub fn init_primary_at(ip: &str, port: Option<u16>) -> Pg {
        let (dir, data, ip, port) = Pg::new_dir(ip, port);
        let mut init = pg_command("initdb");
        init.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync"]);
        run(init);
        let hba = data.join("pg_hba.conf");
        let mut text = std::fs::read_to_string(&hba).unwrap();
        // Loopback for most tests; 198.51.100.0/24 for the downtime benchmark's namespace;
        // 198.18.0.0/15 for the cluster tests' members (cluster_site.rs).
        text.push_str(
            "host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n\
             host all all 198.51.100.0/24 trust\nhost replication all 198.51.100.0/24 trust\n\
             host all all 198.18.0.0/15 trust\nhost replication all 198.18.0.0/15 trust\n",
        );
        std::fs::write(&hba, text).unwrap();
        Pg::started(ip, port, data, dir)
    }

    /// A new cluster that accepts TLS (a self-signed certificate), started as a primary.
    pub fn init_primary_with_tls(ip: &str) -> Pg {
        let pg = Pg::init_primary(ip);
        pg.stop_immediate();
        self_signed_certificate(&pg.data);
        if is_root() {
            run({
                let mut c = Command::new("chown");
                c.arg("postgres:")
                    .arg(pg.data.join("server.crt"))
                    .arg(pg.data.join("server.key"));
                c
            });
        }
        let conf = pg.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).unwrap();
        pg.start();
        pg
    }

    /// A streaming standby of `primary` (pg_basebackup -R), started.
    pub fn init_standby(ip: &str, primary: &Pg) -> Pg {
        Pg::init_standby_at(ip, primary, None)
    }

    /// A streaming standby on a given port (None: a free one).
    pub fn init_standby_at(ip: &str, primary: &Pg, port: Option<u16>) -> Pg {
        let (dir, data, ip, port) = Pg::new_dir(ip, port);
        let mut backup = pg_command("pg_basebackup");
        backup
            .args([
                "-h",
                &primary.ip.to_string(),
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(&data)
            .args(["-R", "-X", "stream", "--no-sync"]);
        run(backup);
        Pg::started(ip, port, data, dir)
    }

    /// A server on the data directory `data`, started.
    fn started(ip: IpAddr, port: u16, data: PathBuf, dir: tempfile::TempDir) -> Pg {
        let pg = Pg {
            ip,
            port,
            data,
            _dir: dir,
        };
        pg.start();
        pg
    }

    pub fn start(&self) {
        let options = format!(
            "-c port={} -c listen_addresses={} -c unix_socket_directories={} -c fsync=off \
             -c wal_receiver_status_interval=1s -c checkpoint_timeout=1h",
            self.port,
            self.ip,
            self.data.parent().unwrap().display()
        );
        let mut start = pg_command("pg_ctl");
        start
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.data.parent().unwrap().join("log"))
            .args(["-o", &options, "-w", "-t", "60", "start"]);
        run(start);
    }

    pub fn stop_immediate(&self) {
        let mut stop = pg_command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        run(stop);
    }

    /// SIGKILL to the postmaster.
    pub fn kill_postmaster(&self) {
        let pid: i32 = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }

    /// `pg_ctl promote -w`: returns once the promotion has completed.
    pub fn promote(&self) {
        let mut promote = pg_command("pg_ctl");
        promote
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "promote"]);
        run(promote);
    }

    /// `pg_ctl promote` without waiting for it to complete.
    pub fn promote_nowait(&self) {
        let mut promote = pg_command("pg_ctl");
        promote.arg("-D").arg(&self.data).args(["-W", "promote"]);
        run(promote);
    }

    /// Waits, polling every millisecond over `watcher` (a session opened before the
    /// promotion), until this server has left recovery; panics after `limit`.
    pub async fn wait_promoted(&self, watcher: &tokio_postgres::Client, limit: Duration) {
        let started = tokio::time::Instant::now();
        loop {
            let row = watcher
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .unwrap();
            if !row.get::<_, bool>(0) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "{} was not promoted within {limit:?}",
                self.ip
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub fn config(&self, user: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(self.ip.to_string())
            .port(self.port)
            .user(user)
            .dbname("postgres");
        c
    }

    pub async fn client_as(&self, user: &str) -> tokio_postgres::Client {
        let (client, connection) = self
            .config(user)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        self.client_as("postgres").await
    }

    pub async fn execute(&self, sql: &str) {
        self.client().await.batch_execute(sql).await.unwrap();
    }

    /// Waits until this standby replays what its primary has written.
    pub async fn wait_replaying(&self) {
        let client = self.client().await;
        wait_for(Duration::from_secs(30), "the standby to stream", || async {
            client
                .query_one(
                    "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'",
                    &[],
                )
                .await
                .map(|r| r.get::<_, i64>(0) == 1)
                .unwrap_or(false)
        })
        .await;
    }

    /// The pool node entry for hadns.
    pub fn node(&self, name: &str, priority: u32) -> String {
        format!(
            "[[pool.node]]\nname = \"{name}\"\naddress = \"{}\"\nport = {}\npriority = {priority}\n",
            self.ip, self.port
        )
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let mut stop = pg_command("pg_ctl");
            stop.arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"]);
            let _ = stop.output();
        }
    }
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

// === MariaDB ===

/// One MariaDB server, run as the current user, with its grant tables: `root` (no password,
/// every privilege) may connect from anywhere on loopback; tests create other accounts
/// with exactly the grants they are about.
pub struct Maria {
    pub ip: IpAddr,
    pub port: u16,
    pub child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Maria {
    pub async fn start(ip: &str, server_id: u32, read_only: bool) -> Maria {
        Maria::start_with(ip, server_id, read_only, false).await
    }

    /// `tls`: serve TLS with a self-signed certificate.
    pub async fn start_with(ip: &str, server_id: u32, read_only: bool, tls: bool) -> Maria {
        let dir = tempfile::Builder::new()
            .prefix("hadns-maria")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        // A private tmpdir: bootstraps running side by side in a shared /tmp have failed
        // deleting their temporary tables ("Error on delete of '/tmp/#sql-temptable-…'").
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if is_root() {
            install.arg("--user=root");
        }
        run(install);
        let ip: IpAddr = ip.parse().unwrap();
        let mut maria = Maria {
            ip,
            port: 0,
            child: Command::new("true").spawn().unwrap(),
            dir,
        };
        if tls {
            self_signed_certificate(maria.dir.path());
        }
        maria.launch(server_id, read_only, tls).await;
        maria
    }

    async fn launch(&mut self, server_id: u32, read_only: bool, tls: bool) {
        self.port = if self.port == 0 {
            free_port(self.ip)
        } else {
            self.port
        };
        let data = self.dir.path().join("data");
        let mut cmd = Command::new("mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("pid").display()
            ))
            .arg(format!(
                "--tmpdir={}",
                self.dir.path().join("tmp").display()
            ))
            .arg(format!("--bind-address={}", self.ip))
            .arg(format!("--port={}", self.port))
            .arg(format!("--server-id={server_id}"))
            .arg(format!("--read-only={}", if read_only { 1 } else { 0 }))
            .args([
                "--skip-name-resolve",
                "--log-bin=binlog",
                "--innodb-buffer-pool-size=16M",
            ])
            .arg(format!(
                "--log-error={}",
                self.dir.path().join("log").display()
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if is_root() {
            cmd.arg("--user=root");
        }
        if tls {
            cmd.arg(format!(
                "--ssl-cert={}",
                self.dir.path().join("server.crt").display()
            ))
            .arg(format!(
                "--ssl-key={}",
                self.dir.path().join("server.key").display()
            ));
        }
        self.child = cmd
            .spawn()
            .expect("cannot start mariadbd: run scripts/test.sh, which installs it");
        // root@localhost over the socket (the account mariadb-install-db made) gives
        // root on loopback the same rights.
        let socket: mysql_async::Opts = mysql_async::OptsBuilder::default()
            .socket(Some(self.dir.path().join("sock").display().to_string()))
            .user(Some("root"))
            .into();
        wait_for(
            Duration::from_secs(60),
            "mariadbd to accept connections",
            || {
                let socket = socket.clone();
                async move { mysql_async::Conn::new(socket).await.is_ok() }
            },
        )
        .await;
        use mysql_async::prelude::Queryable;
        let mut conn = mysql_async::Conn::new(socket).await.unwrap();
        // Not in the binary log: each server has its own accounts, and a GTID written here
        // would make a replica look diverged.
        conn.query_drop(
            "SET SESSION sql_log_bin = 0; CREATE USER IF NOT EXISTS 'root'@'127.%'; \
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.%' WITH GRANT OPTION",
        )
        .await
        .unwrap();
        conn.disconnect().await.unwrap();
    }

    /// Creates `user` (password `user`) with the global privileges `grants` (`""`: none),
    /// on this server only (not in the binary log).
    pub async fn create_user(&self, user: &str, grants: &str) {
        let grant = if grants.is_empty() {
            String::new()
        } else {
            format!("; GRANT {grants} ON *.* TO '{user}'@'127.%'")
        };
        self.execute(&format!(
            "SET SESSION sql_log_bin = 0; DROP USER IF EXISTS '{user}'@'127.%'; \
             CREATE USER '{user}'@'127.%' IDENTIFIED BY '{user}'{grant}"
        ))
        .await;
    }

    /// Connection settings for `user` created by `create_user`.
    pub fn opts_as(&self, user: &str) -> mysql_async::Opts {
        mysql_async::OptsBuilder::from_opts(self.opts())
            .user(Some(user))
            .pass(Some(user))
            .into()
    }

    pub fn opts(&self) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.ip.to_string())
            .tcp_port(self.port)
            .user(Some("root"))
            .prefer_socket(false)
            .into()
    }

    pub async fn execute(&self, sql: &str) {
        use mysql_async::prelude::Queryable;
        let mut conn = mysql_async::Conn::new(self.opts()).await.unwrap();
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.disconnect().await.unwrap();
    }

    /// Makes this server replicate from `primary`, from its own GTID position (an old
    /// master rejoining as a replica starts where its own writes end).
    pub async fn replicate_from(&self, primary: &Maria) {
        self.execute(&format!(
            "CHANGE MASTER TO MASTER_HOST='{}', MASTER_PORT={}, MASTER_USER='root', MASTER_USE_GTID=current_pos",
            primary.ip, primary.port
        ))
        .await;
        self.execute("START SLAVE").await;
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn node(&self, name: &str, priority: u32) -> String {
        format!(
            "[[pool.node]]\nname = \"{name}\"\naddress = \"{}\"\nport = {}\npriority = {priority}\n",
            self.ip, self.port
        )
    }
}

impl Drop for Maria {
    fn drop(&mut self) {
        self.kill();
    }
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
