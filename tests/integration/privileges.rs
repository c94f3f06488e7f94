//! The systemd unit's claim (docs/operations.md): hadns serves port 53 as an unprivileged
//! user with CAP_NET_BIND_SERVICE alone, and without it says why it cannot. Run inside a
//! network namespace of its own, where port 53 is certainly free.

use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::support::netns::{Topology, in_namespace};
use crate::support::*;

/// `nobody` everywhere Debian has it.
const NOBODY: &str = "65534";

#[tokio::test(flavor = "multi_thread")]
async fn port_53_as_an_unprivileged_user_with_cap_net_bind_service() {
    let Some(t) = Topology::build() else {
        return;
    };
    let ns = t.ns("node1");
    let (dir, config) = write_config("", ZONE, &["127.0.0.1:53"]);
    // nobody must reach the binary and read the config: both in a world-readable directory.
    let binary = dir.path().join("hadns");
    std::fs::copy(env!("CARGO_BIN_EXE_hadns"), &binary).unwrap();
    let chmod = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(chmod.success());
    let command = |capability: bool| {
        let mut command = tokio::process::Command::new("ip");
        command.args(["netns", "exec", &ns, "setpriv"]);
        command.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ]);
        if capability {
            command.args([
                "--inh-caps=+net_bind_service",
                "--ambient-caps=+net_bind_service",
            ]);
        }
        command.arg(&binary);
        hadns_through(command, &["serve"], &config)
    };

    let refused = tokio::time::timeout(Duration::from_secs(10), command(false).output())
        .await
        .expect("hadns did not exit without the capability")
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot bind udp 127.0.0.1:53: Permission denied"),
        "{stderr}"
    );

    let hadns = Hadns::attach(command(true).spawn().unwrap(), dir, 1).await;
    assert_eq!(hadns.addr, "127.0.0.1:53".parse().unwrap());
    let answer = in_namespace(&ns, || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let query = query_message("mail.example.internal.", RecordType::A, None);
        socket
            .send_to(&query.to_vec().unwrap(), "127.0.0.1:53")
            .unwrap();
        let mut buf = [0u8; 512];
        let len = socket.recv(&mut buf).expect("no answer on port 53");
        Message::from_vec(&buf[..len]).unwrap()
    });
    assert_eq!(addresses(&answer), vec![ip("127.0.0.25")]);
    hadns.stop().await;
}
