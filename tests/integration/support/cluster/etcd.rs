//! The site's etcd: three members, each in a namespace of its own on the bridge, plain or
//! with TLS and users, stopped, restarted and asked with etcdctl.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;

/// A CA and a server certificate for the etcd members' addresses, PEM files.
pub struct Tls {
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Site {
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// `"http://a:2379", ...` for a `[cluster] etcd` line.
    /// The etcd endpoints as member `first`'s configuration lists them: its own data
    /// centre's first (a member tries them in order, one at a time).
    pub fn endpoints(&self, first: usize) -> String {
        (0..ETCD.len())
            .map(|k| ETCD[(first + k) % ETCD.len()])
            .map(|e| format!("\"{}://{}:2379\"", self.scheme(), self.ip(e)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Makes etcd (started after this) serve clients over TLS only: a CA, and a server
    /// certificate for the three members' addresses signed by it. Returns the CA file.
    pub fn secure_etcd(&mut self) -> PathBuf {
        let dir = self.dir.path();
        let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
        let (cert, key, csr) = (
            dir.join("etcd.pem"),
            dir.join("etcd-key.pem"),
            dir.join("etcd.csr"),
        );
        let san: Vec<String> = ETCD.iter().map(|e| format!("IP:{}", self.ip(*e))).collect();
        let openssl = |args: &[&str]| {
            let mut cmd = Command::new("openssl");
            cmd.args(args);
            run(cmd)
        };
        let path = |p: &PathBuf| p.display().to_string();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=hadns test CA",
            "-keyout",
            &path(&ca_key),
            "-out",
            &path(&ca),
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=etcd",
            "-keyout",
            &path(&key),
            "-out",
            &path(&csr),
        ]);
        let ext = dir.join("san.ext");
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\n",
                san.join(",")
            ),
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &path(&csr),
            "-CA",
            &path(&ca),
            "-CAkey",
            &path(&ca_key),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &path(&ext),
            "-out",
            &path(&cert),
        ]);
        self.tls = Some(Tls {
            ca: ca.clone(),
            cert,
            key,
        });
        ca
    }

    /// Enables etcd authentication with a root user; returns its password.
    pub fn enable_auth(&mut self) -> String {
        let password = "etcd-test-password".to_string();
        self.etcdctl_run(&[
            "user",
            "add",
            "root",
            &format!("--new-user-password={password}"),
        ]);
        self.etcdctl_run(&["auth", "enable"]);
        self.password = Some(password.clone());
        password
    }

    fn etcdctl(&self) -> Command {
        self.etcdctl_to(&[0, 1, 2])
    }

    /// etcdctl asking etcd members `members` only.
    fn etcdctl_to(&self, members: &[usize]) -> Command {
        let endpoints: Vec<String> = (members.iter())
            .map(|&e| format!("{}://{}:2379", self.scheme(), self.etcd_ip(e)))
            .collect();
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg("--command-timeout=2s");
        if let Some(tls) = &self.tls {
            cmd.arg("--cacert").arg(&tls.ca);
        }
        if let Some(password) = &self.password {
            cmd.arg(format!("--user=root:{password}"));
        }
        cmd
    }

    /// The etcd leader's index, through `etcdctl endpoint status` (None: no leader, or
    /// etcd did not answer).
    pub fn etcd_leader(&self) -> Option<usize> {
        let out = self
            .etcdctl()
            .args(["endpoint", "status", "-w", "json"])
            .output();
        let status: serde_json::Value = serde_json::from_slice(&out.ok()?.stdout).ok()?;
        let endpoints = status.as_array()?;
        let leader = (endpoints.iter()).find_map(|e| e["Status"]["leader"].as_u64())?;
        let found = (endpoints.iter())
            .find(|e| e["Status"]["header"]["member_id"].as_u64() == Some(leader))?;
        let endpoint = found["Endpoint"].as_str()?;
        (0..ETCD.len()).find(|&e| endpoint.contains(&format!("//{}:", self.etcd_ip(e))))
    }

    /// Makes etcd member `e` the etcd leader (`etcdctl move-leader`, asked of the current
    /// one), and waits until it is.
    pub async fn move_etcd_leader(&self, e: usize) {
        let current = self.etcd_leader().expect("an etcd leader");
        if current != e {
            let list = self.etcdctl_run(&["member", "list", "-w", "json"]);
            let list: serde_json::Value = serde_json::from_str(&list).unwrap();
            let name = format!("e{e}");
            let id = (list["members"].as_array().unwrap().iter())
                .find(|m| m["name"] == name.as_str())
                .and_then(|m| m["ID"].as_u64())
                .unwrap_or_else(|| panic!("no etcd member {name}: {list}"));
            let mut cmd = self.etcdctl_to(&[current]);
            cmd.args(["move-leader", &format!("{id:x}")]);
            run(cmd);
        }
        wait_for(
            Duration::from_secs(10),
            &format!("e{e} to lead etcd"),
            || async { self.etcd_leader() == Some(e) },
        )
        .await;
    }

    /// Runs etcdctl with `args`; its stdout.
    pub fn etcdctl_run(&self, args: &[&str]) -> String {
        let mut cmd = self.etcdctl();
        cmd.args(args);
        run(cmd)
    }

    /// Starts the three etcd members and waits until the cluster has a leader.
    pub async fn start_etcd(&mut self) {
        let installed = Command::new("etcd").arg("--version").output();
        assert!(
            installed.is_ok_and(|o| o.status.success()),
            "cannot run etcd (the etcd-server package; scripts/test.sh installs it)"
        );
        for i in 0..ETCD.len() {
            let child = self.etcd_member(i, "new");
            self.etcd.push(Some(child));
        }
        wait_for(Duration::from_secs(30), "etcd to have a leader", || async {
            self.etcdctl()
                .args(["endpoint", "status"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .await;
    }

    fn etcd_member(&self, i: usize, state: &str) -> Child {
        let ip = self.ip(ETCD[i]);
        let cluster: Vec<String> = ETCD
            .iter()
            .enumerate()
            .map(|(j, e)| format!("e{j}=http://{}:2380", self.ip(*e)))
            .collect();
        let data: PathBuf = self.dir.path().join(format!("e{i}"));
        let log = std::fs::File::create(self.dir.path().join(format!("e{i}.log"))).unwrap();
        let scheme = self.scheme();
        let mut etcd = Command::new("ip");
        etcd.args(["netns", "exec", &self.ns(&format!("e{i}")), "etcd"]);
        if let Some(tls) = &self.tls {
            etcd.arg("--cert-file")
                .arg(&tls.cert)
                .arg("--key-file")
                .arg(&tls.key);
        }
        etcd.args(["--name", &format!("e{i}")])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &format!("{scheme}://{ip}:2379")])
            .args(["--advertise-client-urls", &format!("{scheme}://{ip}:2379")])
            .args(["--listen-peer-urls", &format!("http://{ip}:2380")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://{ip}:2380"),
            ])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.prefix])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot run ip netns exec")
    }

    /// Stops etcd member `i` (SIGKILL).
    pub fn stop_etcd_member(&mut self, i: usize) {
        if let Some(mut child) = self.etcd[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd member `i` again on its data.
    pub fn restart_etcd_member(&mut self, i: usize) {
        self.etcd[i] = Some(self.etcd_member(i, "existing"));
    }
}

impl Site {
    /// Every decision the leaders wrote (`<prefix>decision`), oldest first, from etcd's
    /// history of the key (these tests never compact it). Plain etcd only.
    pub async fn decisions(&self, prefix: &str) -> Vec<serde_json::Value> {
        use etcd_client::{Client, GetOptions};
        let endpoints: Vec<String> = ETCD
            .iter()
            .map(|e| format!("http://{}:2379", self.ip(*e)))
            .collect();
        let mut client = Client::connect(endpoints, None).await.unwrap();
        let key = format!("{prefix}decision");
        let mut decisions = Vec::new();
        let mut revision = 0;
        // Right after a heal etcd may still be electing ("leader changed"): asked again
        // until it answers, within a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let options = GetOptions::new().with_revision(revision);
            let response = loop {
                match client.get(key.as_str(), Some(options.clone())).await {
                    Ok(response) => break response,
                    Err(error) if std::time::Instant::now() < deadline => {
                        eprintln!("etcd history: {error}; asking again");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(error) => panic!("etcd history unreadable: {error}"),
                }
            };
            let Some(kv) = response.kvs().first() else {
                break;
            };
            decisions.push(serde_json::from_slice(kv.value()).unwrap());
            if kv.version() == 1 {
                break;
            }
            revision = kv.mod_revision() - 1;
        }
        decisions.reverse();
        decisions
    }
}
