//! The client-observed downtime benchmark (bench/downtime.sh runs it). A client network
//! namespace resolves through hadns on port 53 (/etc/netns/<ns>/resolv.conf); a psql loop
//! writes through db.example.internal, reconnecting for every write as a pool does after
//! an error; the primary's postmaster is killed (SIGKILL) and the standby promoted at
//! once. Reported: the write gap, and its parts.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::Hadns;
use crate::support::dbs::Pg;

const HOST: &str = "198.51.100.1";
const CLIENT: &str = "198.51.100.2";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client namespace on a veth pair: the host side holds the DNS and database addresses.
struct ClientNs {
    ns: String,
    host_veth: String,
}

impl ClientNs {
    fn build() -> ClientNs {
        let id = std::process::id();
        let (ns, host_veth) = (format!("hd{id}-dt"), format!("dt{id}"));
        run(&["ip", "netns", "add", &ns]);
        run(&[
            "ip", "link", "add", &host_veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        for addr in [HOST, "198.51.100.10", "198.51.100.11"] {
            run(&[
                "ip",
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &host_veth,
            ]);
        }
        run(&["ip", "link", "set", &host_veth, "up"]);
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{CLIENT}/24"),
            "dev",
            "eth0",
        ]);
        run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        std::fs::create_dir_all(format!("/etc/netns/{ns}")).unwrap();
        std::fs::write(
            format!("/etc/netns/{ns}/resolv.conf"),
            format!("nameserver {HOST}\noptions timeout:1 attempts:3\n"),
        )
        .unwrap();
        ClientNs { ns, host_veth }
    }
}

impl Drop for ClientNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.ns));
    }
}

/// A child leading its own process group; the whole group is killed on drop, even when the
/// benchmark fails half-way.
struct ProcessGroup(std::process::Child);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// The epoch time of the first log line containing `needle`.
fn logged_at(hadns: &Hadns, needle: &str) -> Option<f64> {
    let lines = hadns.log.lock().unwrap();
    let line = lines.iter().find(|l| l.contains(needle))?;
    let stamp = line.split_whitespace().next()?;
    let t = chrono_free_parse(stamp)?;
    Some(t)
}

/// `2026-11-23T15:50:00.393685Z` -> seconds since the epoch, without a date library.
fn chrono_free_parse(stamp: &str) -> Option<f64> {
    let (date, time) = stamp.trim_end_matches('Z').split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (y, m, day) = (d[0], d[1], d[2]);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let t: Vec<f64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    Some(days as f64 * 86400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2])
}

pub async fn downtime_benchmark() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the downtime benchmark needs root (network namespaces, port 53)"
    );
    let client_ns = ClientNs::build();
    // Both on port 5432: a DNS answer names an address, not a port.
    let pg1 = Pg::init_primary_at("198.51.100.10", Some(5432));
    let pg2 = Pg::init_standby_at("198.51.100.11", &pg1, Some(5432));
    pg2.wait_replaying().await;
    pg1.execute("CREATE TABLE writes (at timestamptz, server inet)")
        .await;
    // The same pool and records as the PostgreSQL tests: interval 1s, fall 2, TTL 1.
    let config = crate::support::dbs::pg_pool(&(pg1.node("pg1", 100) + &pg2.node("pg2", 50)), "");
    let listen = format!("{HOST}:53");
    let hadns = Hadns::with(&config)
        .zone(crate::support::ZONE)
        .listen(&[listen.as_str()])
        .start()
        .await;
    hadns
        .wait_for_answer("db.example.internal.", &[pg1.ip], Duration::from_secs(20))
        .await;

    // The client: one psql per write, each resolving the name through hadns.
    let script = "while :; do psql 'host=db.example.internal user=postgres dbname=postgres connect_timeout=2' -XAtq \
                  -c \"INSERT INTO writes VALUES (clock_timestamp(), inet_server_addr()) \
                  RETURNING extract(epoch FROM clock_timestamp()), host(inet_server_addr())\" 2>/dev/null; done";
    // Its own process group, so that the whole loop (bash and its psql) can be stopped.
    let mut client = ProcessGroup(
        Command::new("ip")
            .args(["netns", "exec", &client_ns.ns, "bash", "-c", script])
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let commits: Arc<Mutex<Vec<(f64, String)>>> = Arc::default();
    let (out, commits2) = (client.0.stdout.take().unwrap(), commits.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some((t, server)) = line.split_once('|')
                && let Ok(t) = t.parse::<f64>()
            {
                commits2.lock().unwrap().push((t, server.to_string()));
            }
        }
    });
    let wait_commit_on = |server: &str, limit: Duration| {
        let deadline = std::time::Instant::now() + limit;
        while !commits.lock().unwrap().iter().any(|(_, s)| s == server) {
            assert!(
                std::time::Instant::now() < deadline,
                "no commit on {server} within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_commit_on("198.51.100.10", Duration::from_secs(30));
    // A steady stream of writes first.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while commits.lock().unwrap().len() < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the client does not write steadily"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // Kill the primary; promote the standby at once; see the promotion complete by polling.
    let watcher = pg2.client().await;
    let killed = now();
    pg1.kill_postmaster();
    pg2.promote_nowait();
    pg2.wait_promoted(&watcher, Duration::from_secs(30)).await;
    let promoted = now();
    wait_commit_on("198.51.100.11", Duration::from_secs(30));
    drop(client);

    let commits = commits.lock().unwrap().clone();
    let last_old = commits
        .iter()
        .filter(|(_, s)| s == "198.51.100.10")
        .map(|c| c.0)
        .fold(0.0, f64::max);
    let first_new = commits
        .iter()
        .filter(|(_, s)| s == "198.51.100.11")
        .map(|c| c.0)
        .fold(f64::MAX, f64::min);
    let left = logged_at(&hadns, "from=pg1(198.51.100.10) to=nodata").unwrap_or(f64::NAN);
    let moved = logged_at(&hadns, "from=nodata to=pg2(").unwrap_or(f64::NAN);
    let ms = |s: f64| format!("{:.0} ms", s * 1000.0);
    println!("| part | time |");
    println!("| --- | --- |");
    println!(
        "| write gap: last commit on the old primary -> first on the new | {} |",
        ms(first_new - last_old)
    );
    println!(
        "| primary killed -> hadns stops answering it (detection) | {} |",
        ms(left - killed)
    );
    println!(
        "| kill -> promotion complete (pg_ctl promote right after the kill: the HA manager's part) | {} |",
        ms(promoted - killed)
    );
    println!(
        "| promotion complete -> hadns answers the new primary | {} |",
        ms(moved - promoted)
    );
    println!(
        "| hadns answers the new primary -> first commit there (DNS lookup, connect, write) | {} |",
        ms(first_new - moved)
    );
    println!(
        "\nThe client resolves for every connection (glibc, no cache), so the 1 s TTL adds nothing here;"
    );
    println!(
        "a client that caches the answer adds up to the TTL. {} commits in all.",
        commits.len()
    );
    drop(hadns);
}
