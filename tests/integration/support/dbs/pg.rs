//! One PostgreSQL server of the test's own (run as `postgres` when the tests run as root).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{free_port, is_root, run, self_signed_certificate};
use crate::support::{loopback, wait_for};

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

    /// A new cluster (its own system identifier), started as a primary on a fresh
    /// loopback address ([`loopback`]).
    pub fn init_primary() -> Pg {
        Pg::init_primary_at(&loopback(), None)
    }

    /// A new cluster on `ip` and a given port (None: a free one).
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
        // 198.18.0.0/15 for the cluster tests' members (support/cluster/).
        text.push_str(
            "host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n\
             host all all 198.51.100.0/24 trust\nhost replication all 198.51.100.0/24 trust\n\
             host all all 198.18.0.0/15 trust\nhost replication all 198.18.0.0/15 trust\n",
        );
        std::fs::write(&hba, text).unwrap();
        Pg::started(ip, port, data, dir)
    }

    /// A new cluster that accepts TLS (a self-signed certificate), started as a primary.
    pub fn init_primary_with_tls() -> Pg {
        let pg = Pg::init_primary();
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

    /// A streaming standby of `primary` (pg_basebackup -R), started on a fresh loopback
    /// address.
    pub fn init_standby(primary: &Pg) -> Pg {
        Pg::init_standby_at(&loopback(), primary, None)
    }

    /// A streaming standby on `ip` and a given port (None: a free one).
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
