//! Soak: hadns under steady query load (dnsperf) with a flapping backend, reloads, TCP
//! clients that come and go, and a mix of malformed packets, for a while. Memory, open
//! descriptors and answers must stay steady. The short run is part of the test command;
//! bench/soak.sh runs the long one (HADNS_SOAK_SECONDS, HADNS_SOAK_QPS).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::rr::RecordType;
use tokio::net::{TcpStream, UdpSocket};

use crate::support::*;

const WWW: &str = "www.example.internal.";

/// What a soak saw.
#[derive(Debug)]
pub struct Report {
    seconds: u64,
    /// Resident memory (kB) and open descriptors of hadns, once a second.
    rss_kb: Vec<u64>,
    fds: Vec<usize>,
    fds_after: usize,
    dnsperf: String,
    sent: u64,
    lost: u64,
    malformed_sent: u64,
    tcp_queries: u64,
    reloads: usize,
}

fn vm_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn dnsperf_number(output: &str, label: &str) -> u64 {
    output
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in dnsperf output:\n{output}"))
}

/// Malformed packets of several shapes, and noise, about 500 a second until `stop`.
async fn malformed_mix(server: SocketAddr, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut i: u32 = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(2));
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        i = i.wrapping_add(1);
        let id = (i as u16).to_be_bytes();
        let mut packet = vec![id[0], id[1], 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        match i % 6 {
            0 => packet.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]),
            1 => packet.extend_from_slice(b"\x03www\x07example\x08internal\x00\x00\x01\x00\x03"),
            2 => {
                packet[11] = 1;
                packet.extend_from_slice(b"\x03www\x07example\x08internal\x00\x00\x01\x00\x01");
                packet.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 4, 0, 10, 0, 8]);
            }
            3 => {
                for len in [63u8, 63, 63, 62] {
                    packet.push(len);
                    packet.extend(std::iter::repeat_n(b'a', usize::from(len)));
                }
                packet.extend_from_slice(&[0, 0, 1, 0, 1]);
            }
            4 => packet.truncate(7),
            _ => packet.extend((0..40u32).map(|k| (k.wrapping_mul(2_654_435_761) ^ i) as u8)),
        }
        if socket.send_to(&packet, server).await.is_ok() {
            sent.fetch_add(1, Ordering::Relaxed);
        }
        // Responses are not read: the socket's buffer fills and drops them.
    }
}

/// TCP clients that connect, ask three questions and leave, until `stop`.
async fn tcp_clients(server: SocketAddr, stop: Arc<AtomicBool>, answered: Arc<AtomicU64>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let Ok(mut stream) = TcpStream::connect(server).await else {
            continue;
        };
        for name in [WWW, "mail.example.internal.", "big.example.internal."] {
            let m = tcp_exchange(&mut stream, &query_message(name, RecordType::A, None)).await;
            assert!(!m.metadata.truncation);
            answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub async fn soak(seconds: u64, qps: u64, reload_every: Duration) -> Report {
    let mut web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    let pool = "interval = \"100ms\"";
    let base = tcp_pool_config(&[&web1, &web2], pool, "");
    let mut zone = ZONE.to_string();
    for i in 0..20 {
        zone.push_str(&format!("big IN TXT \"{i:02} {}\"\n", "x".repeat(100)));
    }
    let mut hadns = Hadns::with(&base).zone(&zone).start().await;
    hadns
        .wait_for_answer(WWW, &[web1.ip()], Duration::from_secs(10))
        .await;
    let pid = hadns.pid();
    let fds_before = open_fds(pid);

    let queries = hadns.dir().join("queries.txt");
    std::fs::write(
        &queries,
        "www.example.internal. A\nmail.example.internal. A\nmail.example.internal. MX\n\
         big.example.internal. TXT\nnope.example.internal. A\nns1.example.internal. A\n\
         www.example.internal. AAAA\n",
    )
    .unwrap();
    let mut dnsperf = tokio::process::Command::new("dnsperf");
    dnsperf
        .args(["-s", "127.0.0.1", "-p", &hadns.addr.port().to_string()])
        .args([
            "-l",
            &seconds.to_string(),
            "-Q",
            &qps.to_string(),
            "-c",
            "8",
            "-t",
            "2",
        ])
        .arg("-d")
        .arg(&queries)
        .kill_on_drop(true);
    let dnsperf = dnsperf.output();

    let stop = Arc::new(AtomicBool::new(false));
    let malformed_sent = Arc::new(AtomicU64::new(0));
    let tcp_answered = Arc::new(AtomicU64::new(0));
    let malformed = tokio::spawn(malformed_mix(
        hadns.addr,
        stop.clone(),
        malformed_sent.clone(),
    ));
    let tcp = tokio::spawn(tcp_clients(hadns.addr, stop.clone(), tcp_answered.clone()));
    let answers = QueryLoop::start(hadns.addr, WWW);

    let mut rss_kb = Vec::new();
    let mut fds = Vec::new();
    let mut reloads = 0;
    let workload = async {
        // The pacing of the workload: a flap every second, a reload every `reload_every`,
        // a sample of memory and descriptors every second.
        let started = tokio::time::Instant::now();
        let mut next_reload = started + reload_every;
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        let mut second = 0u64;
        while started.elapsed() < Duration::from_secs(seconds) {
            ticker.tick().await;
            second += 1;
            if second.is_multiple_of(2) {
                web1.stop().await;
            } else {
                web1.restart().await;
            }
            rss_kb.push(vm_rss_kb(pid));
            fds.push(open_fds(pid));
            if tokio::time::Instant::now() >= next_reload {
                next_reload += reload_every;
                let interval = if reloads % 2 == 0 {
                    "\"120ms\""
                } else {
                    "\"100ms\""
                };
                let config = base.replace("\"100ms\"", interval);
                let zone = format!("{zone}round IN TXT \"{reloads}\"\n");
                hadns.rewrite(&config, Some(&zone));
                assert_eq!(hadns.sighup().await, "applied");
                reloads += 1;
            }
        }
    };
    let (output, ()) = tokio::join!(dnsperf, workload);
    stop.store(true, Ordering::Relaxed);
    malformed.await.unwrap();
    tcp.await.unwrap();
    let seen = answers.finish().await;
    assert_eq!(seen.get(&None), None, "an empty answer for www: {seen:?}");
    let output = output.expect("dnsperf runs (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{text}");
    // The load is gone: descriptors back to where they were (TCP clients closed).
    wait_for(Duration::from_secs(10), "descriptors to settle", || async {
        open_fds(pid) <= fds_before + 4
    })
    .await;
    let fds_after = open_fds(pid);
    assert!(hadns.stop().await.success());
    Report {
        seconds,
        rss_kb,
        fds,
        fds_after,
        sent: dnsperf_number(&text, "Queries sent:"),
        lost: dnsperf_number(&text, "Queries lost:"),
        dnsperf: text,
        malformed_sent: malformed_sent.load(Ordering::Relaxed),
        tcp_queries: tcp_answered.load(Ordering::Relaxed),
        reloads,
    }
}

/// Steady: memory in the last quarter within 25 % (+4 MB) of the first quarter's peak; no
/// more than 0.5 % of queries lost; only NOERROR and NXDOMAIN.
pub fn assert_steady(report: &Report) {
    eprintln!("{}", report.dnsperf);
    eprintln!(
        "soak {} s: rss kB {:?}\nfds {:?} (after {}), malformed sent {}, tcp queries {}, reloads {}",
        report.seconds,
        report.rss_kb,
        report.fds,
        report.fds_after,
        report.malformed_sent,
        report.tcp_queries,
        report.reloads
    );
    let quarter = (report.rss_kb.len() / 4).max(1);
    let early = report.rss_kb[..quarter].iter().max().copied().unwrap();
    let late = report.rss_kb[report.rss_kb.len() - quarter..]
        .iter()
        .max()
        .copied()
        .unwrap();
    assert!(
        late <= early + early / 4 + 4096,
        "memory grew: {early} kB -> {late} kB"
    );
    assert!(
        report.lost * 200 <= report.sent,
        "{} of {} lost",
        report.lost,
        report.sent
    );
    let codes = report
        .dnsperf
        .lines()
        .find(|l| l.contains("Response codes:"))
        .unwrap();
    for code in codes.split(':').nth(1).unwrap().split(',') {
        let name = code.split_whitespace().next().unwrap_or("");
        assert!(["NOERROR", "NXDOMAIN"].contains(&name), "{codes}");
    }
    assert!(report.malformed_sent > 0 && report.tcp_queries > 0 && report.reloads > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_soak_holds_steady() {
    let report = soak(20, 3000, Duration::from_secs(4)).await;
    assert_steady(&report);
}
