//! Static zones from RFC 1035 master files, and the checks that tie failover records to them.
//!
//! Every `*.zone` file in `zones_dir` is one zone; its origin is the file name without
//! `.zone` (`example.internal.zone` -> `example.internal.`) unless the file sets `$ORIGIN`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use hickory_proto::serialize::txt::Parser;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, ZoneType};

use crate::config::{Config, Problem};

/// One zone as loaded from its file.
#[derive(Debug, Clone)]
pub struct StaticZone {
    pub origin: Name,
    pub file: PathBuf,
    pub records: BTreeMap<RrKey, RecordSet>,
    /// The serial written in the file's SOA.
    pub file_serial: u32,
}

impl StaticZone {
    /// The zone's first record key at `name` (of any type), if it has one there: a range
    /// of the ordered keys (by name, then type), not a scan of the zone.
    pub fn key_at(&self, name: &LowerName) -> Option<&RrKey> {
        let types = RrKey::new(name.clone(), RecordType::Unknown(u16::MIN))
            ..=RrKey::new(name.clone(), RecordType::Unknown(u16::MAX));
        self.records.range(types).next().map(|(key, _)| key)
    }
}

/// Every zone hadns serves.
#[derive(Debug, Clone, Default)]
pub struct ZoneSet {
    pub zones: Vec<StaticZone>,
}

impl ZoneSet {
    /// Loads every `*.zone` file of `dir`; problems name the file.
    pub fn load(dir: &Path) -> Result<ZoneSet, Vec<Problem>> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            vec![Problem::new(
                "dns.zones_dir",
                format!("cannot read zone directory {}: {e}", dir.display()),
            )]
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "zone"))
            .collect();
        files.sort();
        let mut problems = Vec::new();
        let mut zones: Vec<StaticZone> = Vec::new();
        for file in files {
            match load_zone(&file) {
                Ok(zone) => {
                    if let Some(other) = zones.iter().find(|z| z.origin == zone.origin) {
                        problems.push(Problem::new(
                            file.display().to_string(),
                            format!(
                                "zone {} is also loaded from {}",
                                zone.origin,
                                other.file.display()
                            ),
                        ));
                    }
                    zones.push(zone)
                }
                Err(message) => problems.push(Problem::new(file.display().to_string(), message)),
            }
        }
        if problems.is_empty() {
            Ok(ZoneSet { zones })
        } else {
            Err(problems)
        }
    }

    /// The zone a name belongs to: the one with the longest origin that contains it.
    pub fn zone_of(&self, name: &LowerName) -> Option<usize> {
        self.zones
            .iter()
            .enumerate()
            .filter(|(_, z)| LowerName::new(&z.origin).zone_of(name))
            .max_by_key(|(_, z)| z.origin.num_labels())
            .map(|(i, _)| i)
    }

    /// Checks every failover record of `config` against the zones: a valid name, inside a
    /// zone, not colliding with a static record.
    pub fn check_records(&self, config: &Config) -> Vec<Problem> {
        let mut problems = Vec::new();
        for record in &config.records {
            let path = format!("{}.name", record.path);
            let name = match Name::from_str(&record.name) {
                Ok(n) => LowerName::new(&n),
                Err(e) => {
                    problems.push(Problem::new(
                        path,
                        format!("{:?} is not a DNS name: {e}", record.name),
                    ));
                    continue;
                }
            };
            let Some(zone) = self.zone_of(&name) else {
                problems.push(Problem::new(
                    path,
                    format!(
                        "{} is not inside any zone loaded from {} (loaded: {})",
                        record.name,
                        config.dns.zones_dir.display(),
                        self.loaded()
                    ),
                ));
                continue;
            };
            let zone = &self.zones[zone];
            if let Some(key) = zone.key_at(&name) {
                problems.push(Problem::new(
                    path,
                    format!(
                        "{} collides with the static {} record of that name in {}",
                        record.name,
                        key.record_type,
                        zone.file.display()
                    ),
                ));
            }
        }
        problems
    }

    /// Checks that every `[[transfer.zone]]` names a zone hadns serves.
    pub fn check_transfer(&self, config: &Config) -> Vec<Problem> {
        let Some(transfer) = &config.transfer else {
            return Vec::new();
        };
        transfer
            .zones
            .iter()
            .filter(|z| {
                !self
                    .zones
                    .iter()
                    .any(|l| l.origin.to_string().eq_ignore_ascii_case(&z.name))
            })
            .map(|z| {
                Problem::new(
                    format!("{}.name", z.path),
                    format!(
                        "{} is not a zone loaded from {} (loaded: {})",
                        z.name,
                        config.dns.zones_dir.display(),
                        self.loaded()
                    ),
                )
            })
            .collect()
    }

    /// The zones loaded, for messages: `a.internal., b.internal.` or `none`.
    fn loaded(&self) -> String {
        let loaded: Vec<String> = self.zones.iter().map(|z| z.origin.to_string()).collect();
        if loaded.is_empty() {
            "none".to_string()
        } else {
            loaded.join(", ")
        }
    }
}

/// The largest zone file read: far above the 50,000 records (about 2.5 MB) a zone of
/// hadns's kind holds.
const MAX_ZONE_FILE: u64 = 128 << 20;

fn load_zone(file: &Path) -> Result<StaticZone, String> {
    let size = std::fs::metadata(file)
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if size > MAX_ZONE_FILE {
        return Err(format!(
            "{size} bytes; a zone file has at most {MAX_ZONE_FILE}"
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let origin =
        Name::from_str(&stem).map_err(|e| format!("file name {stem:?} is not a zone name: {e}"))?;
    parse_zone(text, Some(file), origin)
}

/// A zone from master-file text; `file` for `$INCLUDE` and for messages (none: `$INCLUDE`
/// fails).
pub(crate) fn parse_zone(
    text: String,
    file: Option<&Path>,
    origin: Name,
) -> Result<StaticZone, String> {
    let (origin, records) = Parser::new(text, file.map(Path::to_path_buf), Some(origin))
        .parse()
        .map_err(|e| format!("cannot parse: {e}"))?;
    let soa_key = RrKey::new(LowerName::new(&origin), RecordType::SOA);
    let file_serial = records
        .get(&soa_key)
        .and_then(|set| set.records_without_rrsigs().next())
        .and_then(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .ok_or_else(|| format!("zone {origin} has no SOA record at its apex"))?;
    // Every record must be one a client can read: the master-file parser accepts some that
    // the wire format does not (a TXT record with no string at all, found by fuzzing).
    for set in records.values() {
        for record in set.records_without_rrsigs() {
            let readable = record
                .to_bytes()
                .map_err(|e| e.to_string())
                .and_then(|bytes| Record::from_bytes(&bytes).map_err(|e| e.to_string()))
                .and_then(|read| {
                    (read.data == record.data)
                        .then_some(())
                        .ok_or_else(|| "it reads back as something else".to_string())
                });
            if let Err(e) = readable {
                return Err(format!(
                    "{} {}: not a valid record on the wire ({e})",
                    record.name,
                    record.record_type()
                ));
            }
        }
    }
    // Build it once here, so that building it again for a snapshot cannot fail.
    InMemoryZoneHandler::<TokioRuntimeProvider>::new(
        origin.clone(),
        records.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    )
    .map_err(|e| format!("invalid zone {origin}: {e}"))?;
    Ok(StaticZone {
        origin,
        file: file.map(Path::to_path_buf).unwrap_or_default(),
        records,
        file_serial,
    })
}
