//! Every invalid config in tests/invalid/ fails with its documented messages (the
//! `# expect:` lines at its top) and binds nothing.

use std::path::Path;
use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn invalid_configs_report_every_problem_and_bind_nothing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{}: no # expect: lines",
            path.display()
        );

        // Hold the port the config would listen on: had hadns tried to bind it, it would
        // fail with a bind error, not with the config problems.
        let (_udp, _tcp, port) = hold_a_port();
        let work = tempfile::tempdir().unwrap();
        let config = work.path().join("hadns.toml");
        std::fs::write(&config, text.replace("PORT", &port.to_string())).unwrap();
        std::fs::create_dir(work.path().join("zones")).unwrap();
        std::fs::copy(
            dir.join("zones/example.internal.zone"),
            work.path().join("zones/example.internal.zone"),
        )
        .unwrap();

        for command in ["serve", "check-config"] {
            let output = tokio::time::timeout(
                Duration::from_secs(10),
                hadns_command(&[command], &config).output(),
            )
            .await
            .expect("hadns did not exit on an invalid config")
            .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{} {command}: {stderr}",
                path.display()
            );
            for line in &expected {
                assert!(
                    stderr.contains(line),
                    "{} {command}: expected {line:?} in:\n{stderr}",
                    path.display()
                );
            }
            assert!(
                !stderr.contains("listening"),
                "{}: bound a socket:\n{stderr}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} invalid configs found");
}

/// A UDP socket and a TCP listener on the same free port (retried: another test may hold
/// the TCP side of the port the kernel picked for UDP).
fn hold_a_port() -> (std::net::UdpSocket, std::net::TcpListener, u16) {
    for _ in 0..32 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return (udp, tcp, port);
        }
    }
    panic!("no port free for both UDP and TCP");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_config_is_valid() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hadns.toml");
    let output = hadns_command(&["check-config"], &config)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Another process's UDP socket on the port, with SO_REUSEPORT and the same user: the
/// kernel would let hadns join it and split the queries between them. hadns refuses to
/// start, naming the address, instead of losing the queries the other socket gets.
#[tokio::test(flavor = "multi_thread")]
async fn a_udp_port_another_process_serves_is_an_error() {
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    other.set_reuse_port(true).unwrap();
    other
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let addr = other.local_addr().unwrap().as_socket().unwrap();
    let (dir, config) = write_config("", ZONE, &[&addr.to_string()]);
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        hadns_command(&["serve"], &config).output(),
    )
    .await
    .expect("hadns did not exit")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "hadns started:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot bind udp {addr}: the port is in use by another process"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
    drop(dir);
}
