//! Entry points for the fuzz targets (`fuzz/`, run by `bench/fuzz.sh`) and for the test that
//! replays their corpus and every crash they found (`tests/fuzz_regressions.rs`): untrusted
//! bytes in, every property checked, a panic on any violation.
//!
//! Not part of hadns's interface; public only so that the fuzz crate can reach it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::Message;
use hickory_proto::rr::Name;

use super::answers::Published;
use super::fast::Verdict;
use super::handler::Handler;
use super::respond::Responder;
use super::snapshot::{Snapshot, SnapshotBuilder};
use super::zones::{ZoneSet, parse_zone};

const MAX_UDP: u16 = 1232;

const ZONE: &str = "$TTL 300
@        IN SOA ns1 hostmaster 42 3600 600 604800 5
@        IN NS  ns1
ns1      IN A   127.0.0.1
mail     IN A   127.0.0.25
mail     IN AAAA ::25
mail     IN MX  10 mail
multi    IN A   10.0.0.1
multi    IN A   10.0.0.2
text     IN TXT \"hello\" \"world\"
a.deep.ent IN A 10.9.9.9
alias    IN CNAME mail
*.wild   IN A   10.2.2.2
";

const CONFIG: &str = r#"
[dns]
zones_dir = "zones"
[transfer]
allow = ["127.0.0.1"]
[[pool]]
name = "web"
check = "tcp"
[[pool.node]]
name = "web1"
address = "192.0.2.1"
port = 1
[[pool.node]]
name = "web2"
address = "2001:db8::2"
port = 1
[[record]]
name = "www.example.internal."
pool = "web"
select = "healthy"
"#;

/// The whole request path over one snapshot: the fast path, and hadns's checks and
/// hickory behind it, over UDP and TCP.
pub struct RequestPath {
    runtime: tokio::runtime::Runtime,
    snapshot: Arc<ArcSwap<Snapshot>>,
    responder: Responder,
}

impl RequestPath {
    /// The example zone with a failover record answering two addresses, transfers allowed
    /// to the fuzzed packets' source (so AXFR and IXFR take their whole path).
    pub fn new() -> RequestPath {
        let dir = std::env::temp_dir().join(format!("hadns-fuzz-{}", std::process::id()));
        let zones = dir.join("zones");
        std::fs::create_dir_all(&zones).expect("a temporary directory");
        std::fs::write(zones.join("example.internal.zone"), ZONE).expect("a temporary file");
        let prepared = crate::prepare_str(CONFIG, &dir).expect("the fuzz config is valid");
        let _ = std::fs::remove_dir_all(&dir);
        let mut builder = SnapshotBuilder::new(
            prepared.zones,
            &prepared.config.records,
            1,
            prepared.config.transfer.as_ref(),
        );
        let answer = Published::Addresses(vec![
            "192.0.2.1".parse().expect("an address"),
            "2001:db8::2".parse().expect("an address"),
        ]);
        RequestPath::over(builder.build(&[answer]))
    }

    fn over(snapshot: Snapshot) -> RequestPath {
        let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
        let counters = crate::metrics::Metrics::new().queries.clone();
        let responder = Responder::new(
            Handler::new(snapshot.clone(), counters.clone()),
            counters,
            MAX_UDP,
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        RequestPath {
            runtime,
            snapshot,
            responder,
        }
    }

    /// Answers `packet` every way hadns can and checks each response.
    pub fn run(&self, packet: &[u8]) {
        let src: SocketAddr = "127.0.0.1:5000".parse().expect("an address");
        let mut fast = Vec::new();
        let verdict = self
            .snapshot
            .load()
            .fast
            .answer(packet, &mut fast, MAX_UDP, src.ip());
        if verdict == Verdict::Answered {
            check(packet, &fast, false);
        }
        for tcp in [false, true] {
            let response = self
                .runtime
                .block_on(self.responder.respond_all(packet, src, tcp));
            match (verdict, response) {
                (Verdict::Drop, Some(_)) => panic!("hickory answers what the fast path drops"),
                (Verdict::Answered, None) => panic!("hickory drops what the fast path answers"),
                (_, Some(messages)) => {
                    assert!(tcp || messages.len() == 1, "several messages over UDP");
                    for response in &messages {
                        check(packet, response, tcp);
                    }
                }
                (_, None) => {}
            }
        }
    }
}

impl Default for RequestPath {
    fn default() -> Self {
        RequestPath::new()
    }
}

/// Every response: at least a header, the query's ID, QR set, within the UDP limit, and
/// a message hickory reads back.
fn check(query: &[u8], response: &[u8], tcp: bool) {
    assert!(
        response.len() >= 12,
        "a response of {} bytes",
        response.len()
    );
    assert_eq!(&response[..2], &query[..2], "the ID is echoed");
    assert!(response[2] & 0x80 != 0, "QR is set");
    if !tcp {
        let limit = match super::wire::inspect(query) {
            Ok(shape) => super::wire::udp_limit(shape.opt, MAX_UDP),
            Err(_) => usize::from(MAX_UDP),
        };
        assert!(response.len() <= limit, "{} bytes over UDP", response.len());
    }
    if let Err(e) = Message::from_vec(response) {
        panic!("unparsable response ({e}): {response:02x?}");
    }
}

/// A zone file's text: loaded as `example.internal.`, built into a snapshot (fast path
/// tables included), and asked for the names it holds.
pub fn zone(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let origin = Name::from_str("example.internal.").expect("a name");
    let Ok(zone) = parse_zone(text, None, origin) else {
        return;
    };
    let names: Vec<Name> = zone.records.keys().map(|k| Name::from(k.name())).collect();
    let zones = ZoneSet { zones: vec![zone] };
    let snapshot = SnapshotBuilder::new(zones, &[], 1, None).build(&[]);
    let path = RequestPath::over(snapshot);
    for (i, name) in names.iter().take(64).enumerate() {
        for qtype in [1u16, 28, 16, 15, 255] {
            let mut query = Message::query();
            query.metadata.id = i as u16;
            query.add_query(hickory_proto::op::Query::query(name.clone(), qtype.into()));
            if let Ok(bytes) = query.to_vec() {
                path.run(&bytes);
            }
        }
    }
}

/// A config file's text: validated against the example zone.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let base = PathBuf::from("/nonexistent-hadns-fuzz");
    let _ = crate::config::Config::parse(&text, &base);
}
