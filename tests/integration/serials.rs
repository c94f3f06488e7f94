//! SOA serials never go backwards: across restarts (a date-style zone serial, above the
//! Unix time, used to restart at the file's value) and reloads.

use std::time::Duration;

use crate::support::*;

const WWW: &str = "www.example.internal.";
const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn serials_never_go_back_across_restarts_and_reloads() {
    let zone = ZONE.replace(" 7 3600 ", " 2026112401 3600 ");
    let state = tempfile::tempdir().unwrap();
    let mut web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    let config = format!(
        "serial_file = \"{}\"\n\n{}",
        state.path().join("serials.toml").display(),
        tcp_pool_config(&[&web1, &web2], "interval = \"100ms\"\nfall = 1", "")
    );
    // `serial_file` belongs to [dns], which the harness writes first.
    let hadns = Hadns::with(&config).zone(&zone).start().await;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    let first = hadns.soa_serial().await;
    assert!(first >= 2026112401, "{first}");
    web1.stop().await;
    hadns.wait_for_answer(WWW, &[web2.ip()], LIMIT).await;
    let moved = hadns.soa_serial().await;
    assert!(moved > first, "{moved} after {first}");
    hadns.stop().await;

    // A restart: the zone file still says 2026112401, the serial goes on from above.
    let mut hadns = Hadns::with(&config).zone(&zone).start().await;
    hadns.wait_for_answer(WWW, &[web2.ip()], LIMIT).await;
    let restarted = hadns.soa_serial().await;
    assert!(restarted > moved, "{restarted} after {moved}: went back");

    // A reload: up again, from this zone's own serial.
    assert_eq!(hadns.sighup().await, "applied");
    let reloaded = hadns.soa_serial().await;
    assert!(reloaded > restarted, "{reloaded} after {restarted}");

    // Without a serial file the same restart went back to the file's serial (the defect).
    drop(hadns);
    let plain = tcp_pool_config(&[&web2], "interval = \"100ms\"", "");
    let hadns = Hadns::with(&plain).zone(&zone).start().await;
    hadns.wait_for_answer(WWW, &[web2.ip()], LIMIT).await;
    assert_eq!(hadns.soa_serial().await, 2026112402);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_moves_each_zone_from_its_own_serial() {
    let zone = ZONE.replace(" 7 3600 ", " 2026112401 3600 ");
    let other = ZONE.replace("example.internal.", "other.internal.");
    let web = TcpBackend::start().await;
    let config = tcp_pool_config(&[&web], "interval = \"100ms\"", "");
    let mut hadns = Hadns::with(&config)
        .zone(&zone)
        .prepare(|dir| {
            std::fs::write(dir.join("zones/other.internal.zone"), &other).unwrap();
        })
        .start()
        .await;
    hadns.wait_for_answer(WWW, &[web.ip()], LIMIT).await;
    let serial = async |hadns: &Hadns, zone: &str| match &hadns
        .query(zone, hickory_proto::rr::RecordType::SOA)
        .await
        .answers[0]
        .data
    {
        hickory_proto::rr::RData::SOA(soa) => soa.serial,
        other => panic!("not an SOA: {other:?}"),
    };
    let (example, other) = (
        serial(&hadns, "example.internal.").await,
        serial(&hadns, "other.internal.").await,
    );
    assert_eq!(hadns.sighup().await, "applied");
    let example_after = serial(&hadns, "example.internal.").await;
    let other_after = serial(&hadns, "other.internal.").await;
    assert!(example_after > example, "{example_after} after {example}");
    assert!(other_after > other, "{other_after} after {other}");
    // Each from its own: other.internal. (the Unix time) is not pulled up to 2026112402.
    assert!(other_after < 2026112401, "{other_after}: one shared serial");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_serial_file_that_cannot_be_written_costs_no_answer() {
    // A full disk, a read-only or missing directory: the reservation fails, hadns says so
    // and serves anyway.
    let web = TcpBackend::start().await;
    let config = format!(
        "serial_file = \"/nonexistent-hadns-dir/serials.toml\"\n\n{}",
        tcp_pool_config(&[&web], "interval = \"100ms\"", "")
    );
    let mut hadns = Hadns::start(&config).await;
    hadns.wait_for_answer(WWW, &[web.ip()], LIMIT).await;
    let line = hadns
        .wait_for_log("cannot reserve SOA serials", LIMIT)
        .await;
    assert!(
        line.contains("/nonexistent-hadns-dir/serials.toml"),
        "{line}"
    );
}

/// A zone's serial crosses 2^32 (a serial an operator set high, reserved in the serial
/// file): NSD, Knot and BIND follow every failover across the wrap by IXFR; then more
/// changes than the file's reservation and a SIGKILL: after the restart the serial goes on
/// after the last one served, and the secondaries follow the next failover.
#[tokio::test(flavor = "multi_thread")]
async fn serials_cross_the_wrap_with_secondaries_following_and_survive_a_sigkill() {
    use crate::support::secondaries::{self, Kind, Primary, all_answer};
    let mut web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    // A file serial after the Unix time (RFC 1982) and before the reservation below: the
    // zone starts at the file's serial, then a restart raises it to the reservation.
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let file_serial = unix.wrapping_add((1 << 31) - 1000);
    let zone = ZONE.replace(" 7 3600 ", &format!(" {file_serial} 3600 "));
    let primary = Primary::start(&[&web1, &web2], Kind::ALL.len(), None, "fall = 1", &zone).await;
    primary
        .hadns
        .wait_for_answer(WWW, &[web1.ip()], LIMIT)
        .await;
    // The first answer is a change of the zone: the serial after the file's.
    assert_eq!(primary.hadns.soa_serial().await, file_serial + 1);
    let near = u32::MAX - 3;
    let file = primary.serial_file();
    let (mut primary, ()) = primary
        .restart_with(async {
            let text = format!("[reserved]\n\"example.internal.\" = {near}\n");
            std::fs::write(&file, text).unwrap();
        })
        .await;
    primary
        .hadns
        .wait_for_answer(WWW, &[web1.ip()], LIMIT)
        .await;
    assert_eq!(primary.hadns.soa_serial().await, near + 1);
    let secondaries = primary.start_secondaries(&Kind::ALL);
    all_answer(&secondaries, WWW, &[web1.ip()]).await;

    // Four failovers: u32::MAX - 1, u32::MAX, then 1 (0 is skipped) and 2.
    let mut serials = Vec::new();
    for step in 0..4 {
        let expected = if step % 2 == 0 {
            web1.stop().await;
            web2.ip()
        } else {
            web1.restart().await;
            web1.ip()
        };
        primary
            .everyone_answers(&secondaries, WWW, &[expected])
            .await;
        let serial = primary.hadns.soa_serial().await;
        secondaries::all_at_serial(&secondaries, serial).await;
        serials.push(serial);
    }
    assert_eq!(serials, vec![u32::MAX - 1, u32::MAX, 1, 2]);
    // By IXFR: four incremental transfers to each of the three.
    wait_for(LIMIT, "12 incremental transfers", || async {
        primary.hadns.log_count("served=\"incremental\"") >= 12
    })
    .await;
    // NSD's four among them; Knot's and BIND's logs say so too.
    primary.wait_nsd_incremental(4).await;
    secondaries::wait_incremental(&secondaries[1], &secondaries[2], 4).await;

    // More changes than the reservation (1,000), then SIGKILL: nothing is written on the
    // way out, and the restarted zone still goes on after the last serial served.
    let admin = primary.hadns.admin().await;
    let burst = secondaries::burst(
        &primary.hadns,
        admin,
        &secondaries,
        1100,
        Duration::from_secs(6),
    )
    .await;
    assert_eq!(burst.serial, 2 + 1100);
    primary = primary.kill_and_restart().await;
    primary
        .hadns
        .wait_for_answer(WWW, &[web1.ip()], LIMIT)
        .await;
    let restarted = primary.hadns.soa_serial().await;
    assert!(
        (restarted.wrapping_sub(burst.serial) as i32) > 0,
        "{restarted} after {}",
        burst.serial
    );
    web1.stop().await;
    primary
        .everyone_answers(&secondaries, WWW, &[web2.ip()])
        .await;
}
