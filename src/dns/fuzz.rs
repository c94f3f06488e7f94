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

use super::answers::{Answer, Published};
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

/// The `fuzz` TSIG key's secret (hmac-sha256): the seeds signed with it
/// (`fuzz/corpus/request_path/seed-tsig-fuzz-*`) take the whole verify-and-sign path.
const TSIG_SECRET: &str = "aGFkbnMtZnV6ei10c2lnLWtleS0zMi1ieXRlcy1sb25nIQ==";

/// `{key}` becomes `key = "fuzz"` in `[transfer]` for signed packets, nothing otherwise.
const CONFIG: &str = r#"
[dns]
zones_dir = "zones"
[transfer]
allow = ["127.0.0.1"]
{key}
[[tsig]]
name = "fuzz"
algorithm = "hmac-sha256"
secret_file = "fuzz.key"
[[site]]
name = "dc1"
networks = ["127.0.0.0/24", "10.1.0.0/16"]
[[site]]
name = "dc2"
networks = ["10.2.0.0/16", "2001:db8:2::/48"]
[[pool]]
name = "web"
check = "tcp"
[[pool.node]]
name = "web1"
address = "192.0.2.1"
port = 1
site = "dc1"
[[pool.node]]
name = "web2"
address = "2001:db8::2"
port = 1
site = "dc2"
[[record]]
name = "www.example.internal."
pool = "web"
select = "healthy"
[[record]]
name = "near.example.internal."
pool = "web"
select = "healthy"
by_site = true
"#;

/// The whole request path over one snapshot: the fast path, and hadns's checks and
/// hickory behind it, over UDP and TCP. A packet with a TSIG record goes to a server
/// whose transfers require the `fuzz` key; every other to one whose transfers do not.
pub struct RequestPath {
    runtime: tokio::runtime::Runtime,
    plain: Server,
    keyed: Option<Server>,
}

/// One snapshot and the responder over it.
struct Server {
    snapshot: Arc<ArcSwap<Snapshot>>,
    responder: Responder,
}

impl Server {
    fn over(snapshot: Snapshot) -> Server {
        let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
        let counters = crate::metrics::Metrics::new().queries.clone();
        let responder = Responder::new(
            Handler::new(snapshot.clone(), counters.clone()),
            counters,
            MAX_UDP,
        );
        Server {
            snapshot,
            responder,
        }
    }

    /// The example zone with a failover record answering two addresses and one answering
    /// by site (the fuzzed packets' source is in dc1), transfers allowed to that source (so
    /// AXFR and IXFR take their whole path), with `key` if given.
    fn example(key: Option<&str>) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "hadns-fuzz-{}-{}",
            std::process::id(),
            key.is_some()
        ));
        let zones = dir.join("zones");
        std::fs::create_dir_all(&zones).expect("a temporary directory");
        std::fs::write(zones.join("example.internal.zone"), ZONE).expect("a temporary file");
        let secret = dir.join("fuzz.key");
        std::fs::write(&secret, TSIG_SECRET).expect("a temporary file");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
            .expect("a temporary file");
        let config = CONFIG.replace(
            "{key}",
            &key.map(|k| format!("key = \"{k}\"")).unwrap_or_default(),
        );
        let config = crate::config::Config::from_toml(&config, &dir)
            .unwrap_or_else(|p| panic!("the fuzz config is valid: {p:?}"));
        let zones = ZoneSet::load(&config.dns.zones_dir).expect("the fuzz zone is valid");
        let _ = std::fs::remove_dir_all(&dir);
        let mut builder = SnapshotBuilder::new(zones, &config.records, 1, config.transfer.as_ref());
        builder.set_sites(config.sites.clone());
        let web1 = "192.0.2.1".parse().expect("an address");
        let web2 = "2001:db8::2".parse().expect("an address");
        let both = Published::from(Answer::Nodes(vec![web1, web2]));
        // near: each site its own node, a client of no site both.
        let near = Published {
            all: both.all.clone(),
            sites: Some(vec![Answer::Nodes(vec![web1]), Answer::Nodes(vec![web2])]),
        };
        Server::over(builder.build(&[both, near]))
    }
}

impl RequestPath {
    /// The example zone (see `Server::example`), without and with the `fuzz` key.
    pub fn new() -> RequestPath {
        RequestPath::with(Server::example(None), Some(Server::example(Some("fuzz"))))
    }

    fn over(snapshot: Snapshot) -> RequestPath {
        RequestPath::with(Server::over(snapshot), None)
    }

    fn with(plain: Server, keyed: Option<Server>) -> RequestPath {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        RequestPath {
            runtime,
            plain,
            keyed,
        }
    }

    /// Answers `packet` every way hadns can and checks each response.
    pub fn run(&self, packet: &[u8]) {
        let server = match &self.keyed {
            Some(keyed) if super::wire::tsig_start(packet).is_some() => keyed,
            _ => &self.plain,
        };
        let src: SocketAddr = "127.0.0.1:5000".parse().expect("an address");
        let mut fast = Vec::new();
        let verdict = server
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
                .block_on(server.responder.respond_all(packet, src, tcp));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The `fuzz` key the signed seeds are signed with.
    fn fuzz_key() -> super::super::tsig::Key {
        super::super::tsig::Key::new(&crate::config::TsigKey {
            name: "fuzz".into(),
            algorithm: crate::config::TsigAlgorithm::HmacSha256,
            secret_file: Default::default(),
            secret: data_encoding::BASE64
                .decode(TSIG_SECRET.as_bytes())
                .unwrap(),
        })
        .unwrap()
    }

    /// The signed seeds are within their fudge at the fuzzer's clock (so their mutations
    /// reach verify and sign) and long out of it at the real one.
    #[test]
    fn the_signed_seeds_verify_at_the_fuzzers_clock() {
        use super::super::tsig::{FUZZ_SEEDS_SIGNED, Failure, verify_at};
        let key = fuzz_key();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/request_path");
        let mut seeds = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.starts_with("seed-tsig-fuzz-") {
                continue;
            }
            let packet = std::fs::read(&path).unwrap();
            assert!(
                verify_at(&packet, Some(&key), FUZZ_SEEDS_SIGNED + 60).is_ok(),
                "{name}"
            );
            assert!(matches!(
                verify_at(&packet, Some(&key), FUZZ_SEEDS_SIGNED + 3600),
                Err(Failure::BadTime(_))
            ));
            seeds += 1;
        }
        assert!(seeds >= 5, "{seeds} signed seeds");
    }

    /// The fuzzed path reaches TSIG's verify and sign with the `fuzz` key (a packet signed
    /// now; the seeds' own signatures are as old as the seeds) and the answers by site.
    #[test]
    fn signed_packets_take_the_keyed_path_and_near_answers_by_site() {
        let path = RequestPath::new();
        let key = fuzz_key();
        let respond = |packet: &[u8]| {
            let server = path.keyed.as_ref().unwrap();
            let src = "127.0.0.1:5000".parse().unwrap();
            let messages = path
                .runtime
                .block_on(server.responder.respond_all(packet, src, true))
                .unwrap();
            messages
                .iter()
                .map(|m| Message::from_vec(m).unwrap())
                .collect::<Vec<_>>()
        };
        for qtype in [
            hickory_proto::rr::RecordType::SOA,
            hickory_proto::rr::RecordType::AXFR,
        ] {
            let mut query = Message::query();
            query.add_query(hickory_proto::op::Query::query(
                Name::from_str("example.internal.").unwrap(),
                qtype,
            ));
            let mut bytes = query.to_vec().unwrap();
            key.sign_request(&mut bytes).unwrap();
            path.run(&bytes);
            let responses = respond(&bytes);
            let first = &responses[0];
            assert_eq!(
                first.metadata.response_code,
                hickory_proto::op::ResponseCode::NoError,
                "{qtype}"
            );
            assert!(first.signature().is_some(), "{qtype}: signed");
            // Unsigned, the keyed server refuses the transfer.
            let unsigned = query.to_vec().unwrap();
            if qtype == hickory_proto::rr::RecordType::AXFR {
                assert_eq!(
                    respond(&unsigned)[0].metadata.response_code,
                    hickory_proto::op::ResponseCode::Refused
                );
            }
        }

        // near from dc2's subnet (by ECS): web2 only, scoped to dc2's /16.
        let seed = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/corpus/request_path/seed-ecs-near-v6"),
        )
        .unwrap();
        path.run(&seed);
        let response = respond(&seed).remove(0);
        let answers: Vec<String> = response
            .answers
            .iter()
            .map(|r| r.data.to_string())
            .collect();
        assert_eq!(answers, vec!["2001:db8::2".to_string()]);
    }
}
