//! `on_change` hooks and systemd readiness, against the running binary.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::ResponseCode;

use crate::support::*;

const WWW: &str = "www.example.internal.";
const LIMIT: Duration = Duration::from_secs(10);

fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_run_in_order_one_at_a_time_and_never_delay_answers() {
    let mut web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    let record = "on_change = [\"./hook.sh\", \"www\"]\non_change_timeout = \"20s\"";
    let config = tcp_pool_config(
        &[&web1, &web2],
        "interval = \"100ms\"\nfall = 1\nrise = 1",
        record,
    );
    // Each run logs its start and end, and waits for the test's go-ahead in between.
    let mut hadns = Hadns::with(&config).prepare(|dir| {
        script(
            dir,
            "hook.sh",
            r#"dir=$(dirname "$0")
echo "start $1 $HADNS_RECORD $HADNS_OLD_NODES>$HADNS_NEW_NODES $HADNS_NEW_ADDRESSES serial=$HADNS_SERIAL" >> "$dir/hook.log"
while [ ! -e "$dir/go" ]; do sleep 0.02; done
echo "end" >> "$dir/hook.log""#,
        )
    }).start()
    .await;
    let dir = hadns.dir().to_path_buf();
    let log = dir.join("hook.log");
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;

    // While the first hook waits, the answers still follow the checks.
    web1.stop().await;
    hadns.wait_for_answer(WWW, &[web2.ip()], LIMIT).await;
    web1.restart().await;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    assert_eq!(
        lines(&log).len(),
        1,
        "one hook at a time: {:?}",
        lines(&log)
    );

    std::fs::write(dir.join("go"), "").unwrap();
    wait_for(LIMIT, "three hook runs", || async {
        lines(&log).len() == 6
    })
    .await;
    let runs = lines(&log);
    for (i, line) in runs.iter().enumerate() {
        assert_eq!(
            line.starts_with("start"),
            i % 2 == 0,
            "no overlap: {runs:?}"
        );
    }
    assert!(
        runs[0].starts_with(&format!(
            "start www www.example.internal. >web1 {} serial=",
            web1.ip()
        )),
        "{runs:?}"
    );
    assert!(
        runs[2].starts_with(&format!(
            "start www www.example.internal. web1>web2 {}",
            web2.ip()
        )),
        "{runs:?}"
    );
    assert!(
        runs[4].starts_with(&format!(
            "start www www.example.internal. web2>web1 {}",
            web1.ip()
        )),
        "{runs:?}"
    );
    hadns
        .wait_until("three hooks done", LIMIT, |l| {
            l.iter()
                .filter(|l| l.contains("on_change hook done"))
                .count()
                == 3
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_is_killed_at_its_timeout_and_the_failure_logged() {
    let web1 = TcpBackend::start().await;
    let record = "on_change = [\"./slow.sh\"]\non_change_timeout = \"300ms\"";
    let config = tcp_pool_config(&[&web1], "interval = \"100ms\"", record);
    let mut hadns = Hadns::with(&config)
        .prepare(|dir| {
            script(
                dir,
                "slow.sh",
                "echo $$ > \"$(dirname \"$0\")/pid\"\nexec sleep 30",
            )
        })
        .start()
        .await;
    let line = hadns.wait_for_log("on_change hook failed", LIMIT).await;
    assert!(line.contains("timed out after 300ms, killed"), "{line}");
    let pid = std::fs::read_to_string(hadns.dir().join("pid")).unwrap();
    let proc = format!("/proc/{}", pid.trim());
    wait_for(LIMIT, "the hook process to be gone", || async {
        // A killed child of hadns is reaped by hadns; until then it is a zombie.
        std::fs::read_to_string(format!("{proc}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
    })
    .await;
    assert_eq!(hadns.addresses(WWW).await.unwrap(), vec![web1.ip()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_readiness_waits_for_the_first_round_of_checks() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    notify.set_nonblocking(true).unwrap();
    let gate = dir.path().join("gate");
    let config = format!(
        r#"
[[pool]]
name = "web"
check = "exec"
interval = "100ms"
timeout = "20s"
[pool.exec]
command = ["/bin/sh", "-c", "while [ ! -e {} ]; do sleep 0.02; done"]
[[pool.node]]
name = "web1"
address = "127.0.0.83"

[[record]]
name = "{WWW}"
pool = "web"
"#,
        gate.display()
    );
    let socket = socket_path.to_str().unwrap();
    let mut hadns = Hadns::with(&config)
        .env("NOTIFY_SOCKET", socket)
        .start()
        .await;
    // Listening, but the first probe has not finished: not ready, and SERVFAIL.
    assert_eq!(hadns.addresses(WWW).await, Err(ResponseCode::ServFail));
    let mut buf = [0u8; 512];
    assert_eq!(
        notify.recv(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "READY before the first round"
    );

    std::fs::write(&gate, "").unwrap();
    let mut message = String::new();
    wait_for(LIMIT, "READY=1", || {
        if let Ok(n) = notify.recv(&mut buf) {
            message = String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        let ready = message.contains("READY=1");
        async move { ready }
    })
    .await;
    assert_eq!(hadns.addresses(WWW).await.unwrap(), vec![ip("127.0.0.83")]);

    // A reload says RELOADING=1, then READY=1 again.
    assert_eq!(hadns.sighup().await, "applied");
    let mut messages = Vec::new();
    wait_for(LIMIT, "RELOADING=1 and READY=1", || {
        while let Ok(n) = notify.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let done = messages.len() >= 2;
        async move { done }
    })
    .await;
    assert!(
        messages[0].contains("RELOADING=1") && messages[0].contains("MONOTONIC_USEC="),
        "{messages:?}"
    );
    assert!(messages[1].contains("READY=1"), "{messages:?}");
}
