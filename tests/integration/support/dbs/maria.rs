//! One MariaDB server of the test's own.

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use super::{free_port, is_root, run, self_signed_certificate};
use crate::support::{loopback, wait_for};

/// One MariaDB server, run as the current user, with its grant tables: `root` (no password,
/// every privilege) may connect from anywhere on loopback; tests create other accounts
/// with exactly the grants they are about.
pub struct Maria {
    pub ip: IpAddr,
    pub port: u16,
    pub child: std::process::Child,
    pub server_id: u32,
    dir: tempfile::TempDir,
}

impl Maria {
    /// A server on a fresh loopback address ([`loopback`]).
    pub async fn start(server_id: u32, read_only: bool) -> Maria {
        Maria::start_with(server_id, read_only, false).await
    }

    /// `tls`: serve TLS with a self-signed certificate.
    pub async fn start_with(server_id: u32, read_only: bool, tls: bool) -> Maria {
        Maria::start_on(&loopback(), server_id, read_only, tls).await
    }

    /// A server on `ip` (a cluster site's node address, say).
    pub async fn start_on(ip: &str, server_id: u32, read_only: bool, tls: bool) -> Maria {
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
            server_id,
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
                // A replica's binary log has what it replicated, so that it can be
                // promoted and the others can follow it (GTID replication).
                "--log-slave-updates",
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
        let hosts = self.hosts();
        conn.query_drop(format!(
            "SET SESSION sql_log_bin = 0; CREATE USER IF NOT EXISTS 'root'@'{hosts}'; \
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'{hosts}' WITH GRANT OPTION"
        ))
        .await
        .unwrap();
        conn.disconnect().await.unwrap();
    }

    /// Creates `user` (password `user`) with the global privileges `grants` (`""`: none),
    /// on this server only (not in the binary log).
    pub async fn create_user(&self, user: &str, grants: &str) {
        let hosts = self.hosts();
        let grant = if grants.is_empty() {
            String::new()
        } else {
            format!("; GRANT {grants} ON *.* TO '{user}'@'{hosts}'")
        };
        self.execute(&format!(
            "SET SESSION sql_log_bin = 0; DROP USER IF EXISTS '{user}'@'{hosts}'; \
             CREATE USER '{user}'@'{hosts}' IDENTIFIED BY '{user}'{grant}"
        ))
        .await;
    }

    /// Where accounts may connect from: loopback, or anywhere for a server on a cluster
    /// site's address (the site's hosts are the test's own namespaces).
    fn hosts(&self) -> &'static str {
        if self.ip.is_loopback() { "127.%" } else { "%" }
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

    /// Starts the server again on its data directory (after `kill`), writable unless
    /// `read_only`, as a crashed primary comes back.
    pub async fn restart(&mut self, read_only: bool) {
        self.launch(self.server_id, read_only, false).await;
    }

    /// Semi-synchronous replication, lossless (AFTER_SYNC), waiting up to a minute for an
    /// acknowledgement: as the primary (`primary`) or as a replica (its IO thread is
    /// restarted to take it up).
    pub async fn semisync(&self, primary: bool) {
        if primary {
            self.execute(
                "SET GLOBAL rpl_semi_sync_master_enabled = ON; \
                 SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC; \
                 SET GLOBAL rpl_semi_sync_master_timeout = 60000",
            )
            .await;
        } else {
            self.execute(
                "SET GLOBAL rpl_semi_sync_slave_enabled = ON; \
                 STOP SLAVE IO_THREAD; START SLAVE IO_THREAD",
            )
            .await;
        }
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
