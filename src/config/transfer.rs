//! `[transfer]` and `[[tsig]]`: zone transfers to secondaries, NOTIFY, TSIG keys
//! (docs/secondaries.md).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Problem;
use super::fields::{choice, private, read_secret, required};
use super::network::Network;

#[derive(Deserialize, Default)]
pub(super) struct RawTransfer {
    allow: Option<Vec<String>>,
    notify: Option<Vec<String>>,
    key: Option<String>,
    #[serde(default)]
    zone: Vec<RawTransferZone>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawTransferZone {
    name: Option<String>,
    notify: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawTsig {
    name: Option<String>,
    algorithm: Option<String>,
    secret_file: Option<String>,
}

/// `[transfer]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// Who may AXFR/IXFR; everyone else is REFUSED.
    pub allow: Vec<Network>,
    /// Secondaries sent a NOTIFY on every serial change (port 53 unless given).
    pub notify: Vec<SocketAddr>,
    /// Transfers (and the queries of a secondary that signs them) and NOTIFY must be
    /// signed with this key.
    pub key: Option<TsigKey>,
    /// `[[transfer.zone]]`: zones whose NOTIFY targets are their own list instead of
    /// `notify` (as BIND's per-zone `also-notify` and Knot's per-zone `notify`).
    pub zones: Vec<ZoneNotify>,
}

/// One `[[transfer.zone]]`: the NOTIFY targets of one zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneNotify {
    /// The zone's origin, lower case with the final dot (`example.internal.`).
    pub name: String,
    /// Where its NOTIFYs go; empty: nowhere.
    pub notify: Vec<SocketAddr>,
    /// Its place in the file, for messages (`transfer.zone[0]`).
    pub path: String,
}

/// One `[[tsig]]` key.
#[derive(Clone, PartialEq)]
pub struct TsigKey {
    /// The key's name, as the secondaries call it (`xfr`).
    pub name: String,
    pub algorithm: TsigAlgorithm,
    pub secret_file: PathBuf,
    /// The decoded secret.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret_file", &self.secret_file)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TsigAlgorithm {
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

pub(super) fn validate_tsig(
    raw: Vec<RawTsig>,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<TsigKey> {
    let mut keys: Vec<TsigKey> = Vec::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let path = format!("tsig[{i}]");
        let name = required(raw.name, &format!("{path}.name"), problems).unwrap_or_default();
        let valid_name = name.trim_end_matches('.').split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !name.is_empty() && !valid_name {
            problems.push(Problem::new(
                format!("{path}.name"),
                format!("{name:?} is not a key name such as \"xfr\" or \"xfr.example.internal\""),
            ));
        }
        if keys.iter().any(|k| k.name == name) {
            problems.push(Problem::new(
                format!("{path}.name"),
                format!("key {name:?} is defined twice"),
            ));
        }
        let algorithm = choice(
            raw.algorithm.as_deref(),
            TsigAlgorithm::HmacSha256,
            ("algorithm", "hmac-sha256, hmac-sha512"),
            &format!("{path}.algorithm"),
            problems,
        );
        let file_path = format!("{path}.secret_file");
        let secret_file = required(raw.secret_file, &file_path, problems).map(|f| base.join(f));
        let secret = secret_file
            .as_ref()
            .and_then(|file| match read_key(file) {
                Ok(secret) => Some(secret),
                Err(message) => {
                    problems.push(Problem::new(&file_path, message));
                    None
                }
            })
            .unwrap_or_default();
        keys.push(TsigKey {
            name,
            algorithm,
            secret_file: secret_file.unwrap_or_default(),
            secret,
        });
    }
    keys
}

/// The secret of a key file: the base64 text alone, or a BIND/`tsig-keygen` key clause
/// (`secret "...";`). It must be private, and at least 16 bytes once decoded.
fn read_key(file: &Path) -> Result<Vec<u8>, String> {
    private(file)?;
    let text = read_secret(file)?;
    let encoded = match text.split_once("secret") {
        Some((_, rest)) => rest.split('"').nth(1).unwrap_or_default(),
        None => text.trim(),
    };
    let secret = data_encoding::BASE64
        .decode(encoded.trim().as_bytes())
        .map_err(|e| format!("{}: the secret is not base64 ({e})", file.display()))?;
    if secret.len() < 16 {
        return Err(format!(
            "{}: the secret is {} bytes; use at least 16 (tsig-keygen writes 32)",
            file.display(),
            secret.len()
        ));
    }
    Ok(secret)
}

pub(super) fn validate_transfer(
    raw: RawTransfer,
    keys: &[TsigKey],
    problems: &mut Vec<Problem>,
) -> Transfer {
    let mut allow = Vec::new();
    for (i, entry) in raw.allow.unwrap_or_default().iter().enumerate() {
        match entry.parse::<Network>() {
            Ok(network) => allow.push(network),
            Err(message) => problems.push(Problem::new(format!("transfer.allow[{i}]"), message)),
        }
    }
    let notify = targets(raw.notify.unwrap_or_default(), "transfer.notify", problems);
    let mut zones: Vec<ZoneNotify> = Vec::new();
    for (i, zone) in raw.zone.into_iter().enumerate() {
        let path = format!("transfer.zone[{i}]");
        let Some(name) = required(zone.name, &format!("{path}.name"), problems) else {
            continue;
        };
        let name = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
        if zones.iter().any(|z| z.name == name) {
            problems.push(Problem::new(
                format!("{path}.name"),
                format!("zone {name:?} is listed twice"),
            ));
        }
        let Some(notify) = zone.notify else {
            problems.push(Problem::new(
                format!("{path}.notify"),
                "missing (an empty list sends this zone no NOTIFY)",
            ));
            continue;
        };
        let notify = targets(notify, &format!("{path}.notify"), problems);
        zones.push(ZoneNotify { name, notify, path });
    }
    let key = raw.key.and_then(|name| {
        let key = keys.iter().find(|k| k.name == name).cloned();
        if key.is_none() {
            problems.push(Problem::new(
                "transfer.key",
                format!("no [[tsig]] key is named {name:?}"),
            ));
        }
        key
    });
    Transfer {
        allow,
        notify,
        key,
        zones,
    }
}

/// NOTIFY targets: addresses, port 53 unless given, each once.
pub(super) fn targets(
    entries: Vec<String>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Vec<SocketAddr> {
    let mut notify = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let parsed = entry
            .parse::<SocketAddr>()
            .or_else(|_| entry.parse::<IpAddr>().map(|a| SocketAddr::new(a, 53)));
        match parsed {
            Ok(target) if notify.contains(&target) => problems.push(Problem::new(
                format!("{path}[{i}]"),
                format!("{target} is listed twice"),
            )),
            Ok(target) => notify.push(target),
            Err(_) => problems.push(Problem::new(
                format!("{path}[{i}]"),
                format!("{entry:?} is not an address such as \"10.0.1.53\" or \"10.0.1.53:53\""),
            )),
        }
    }
    notify
}
