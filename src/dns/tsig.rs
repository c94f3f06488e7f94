//! TSIG (RFC 8945): requests checked against the `[transfer]` key, responses signed, with
//! hickory's HMACs. A transfer's later messages are signed in a chain (each MAC covers the
//! previous one), every message signed.

use std::str::FromStr;

use hickory_proto::rr::rdata::tsig::{TSIG, TsigAlgorithm, TsigError, make_tsig_record};
use hickory_proto::rr::{Name, Record, TSigResponseContext, TSigner};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use crate::config;

/// How far a signature's time may be from ours (BIND's and RFC 8945's 300 s).
const FUDGE: u16 = 300;
/// The response code of a failed TSIG check (RFC 8945 5.2).
pub const RCODE_NOTAUTH: u8 = 9;

/// A configured key, ready to check and sign.
#[derive(Clone)]
pub struct Key {
    signer: TSigner,
    /// The key's name as configured, for log lines.
    pub name: String,
}

impl Key {
    pub fn new(key: &config::TsigKey) -> Result<Key, String> {
        let name =
            Name::from_str(&key.name).map_err(|e| format!("tsig key name {:?}: {e}", key.name))?;
        let algorithm = match key.algorithm {
            config::TsigAlgorithm::HmacSha256 => TsigAlgorithm::HmacSha256,
            config::TsigAlgorithm::HmacSha512 => TsigAlgorithm::HmacSha512,
        };
        let signer = TSigner::new(key.secret.clone(), algorithm, name, FUDGE)
            .map_err(|e| format!("tsig key {:?}: {e}", key.name))?;
        Ok(Key {
            signer,
            name: key.name.clone(),
        })
    }

    /// Signs `message` (a request: NOTIFY), appending its TSIG record; the MAC is what the
    /// response's signature covers.
    pub fn sign_request(&self, message: &mut Vec<u8>) -> Result<Vec<u8>, String> {
        let id = u16::from_be_bytes([message[0], message[1]]);
        let tsig = TSIG::new(
            self.signer.algorithm().clone(),
            now(),
            FUDGE,
            Vec::new(),
            id,
            None,
            Vec::new(),
        );
        // The message, then the TSIG variables (encoded on their own: an encoder writes
        // from the start of its buffer).
        let mut variables = Vec::with_capacity(64);
        {
            let mut encoder = BinEncoder::new(&mut variables);
            tsig.emit_tsig_for_mac(&mut encoder, self.signer.signer_name())
                .map_err(|e| e.to_string())?;
        }
        let mut tbs = message.clone();
        tbs.extend_from_slice(&variables);
        let mac = self.signer.sign(&tbs).map_err(|e| e.to_string())?;
        append(
            message,
            &make_tsig_record(self.signer.signer_name().clone(), tsig.set_mac(mac.clone())),
        )?;
        Ok(mac)
    }

    /// Checks the signature of a response to a request this key signed with `request_mac`.
    pub fn verify_response(&self, response: &[u8], request_mac: &[u8]) -> Result<(), String> {
        let (_, time, range) = self
            .signer
            .verify_message_byte(response, Some(request_mac), true)
            .map_err(|e| e.to_string())?;
        if !range.contains(&now()) {
            return Err(format!("signed at {time}, outside the fudge of {FUDGE} s"));
        }
        Ok(())
    }
}

/// A request whose signature checked out: what its responses are signed with.
pub struct Signed {
    key: Key,
    request_mac: Vec<u8>,
    id: u16,
}

/// Why a signed request is refused; the response says so (NOTAUTH with the TSIG error).
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The key is not ours (or hadns has none): BADKEY.
    UnknownKey(String),
    /// The MAC does not check out: BADSIG.
    BadSignature,
    /// Signed too long ago or ahead: BADTIME.
    BadTime(u64),
    /// Not readable as a TSIG record.
    Malformed,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::UnknownKey(name) => write!(f, "unknown key {name:?}"),
            Failure::BadSignature => f.write_str("bad signature"),
            Failure::BadTime(time) => write!(
                f,
                "signed at {time}, {} s from our time",
                now().abs_diff(*time)
            ),
            Failure::Malformed => f.write_str("malformed tsig record"),
        }
    }
}

/// Checks `query`, whose last record is a TSIG, against `key`.
pub fn verify(query: &[u8], key: Option<&Key>) -> Result<Signed, Failure> {
    verify_at(query, key, now())
}

/// [`verify`] with the clock at `now` (Unix seconds).
pub(crate) fn verify_at(query: &[u8], key: Option<&Key>, now: u64) -> Result<Signed, Failure> {
    let (_, record) = hickory_proto::rr::rdata::tsig::signed_bitmessage_to_buf(query, None, true)
        .map_err(|_| Failure::Malformed)?;
    let named = key.filter(|k| {
        record.name == *k.signer.signer_name() && record.data.algorithm == *k.signer.algorithm()
    });
    let Some(key) = named else {
        return Err(Failure::UnknownKey(record.name.to_string()));
    };
    let (request_mac, time, range) = key
        .signer
        .verify_message_byte(query, None, true)
        .map_err(|_| Failure::BadSignature)?;
    // The window is the request's own fudge, at most FUDGE (300 s, what BIND, Knot and NSD
    // send): a request may not widen it to 18 h (fudge 65535) and be replayed all that time.
    let fudge = range.end.saturating_sub(time).min(u64::from(FUDGE));
    if now.abs_diff(time) > fudge {
        return Err(Failure::BadTime(time));
    }
    Ok(Signed {
        key: key.clone(),
        request_mac,
        id: u16::from_be_bytes([query[0], query[1]]),
    })
}

/// The response to a request whose signature failed: `bare` (header and question, rcode
/// NOTAUTH) with a TSIG record carrying the error, unsigned except for BADTIME.
pub fn failure_response(
    mut bare: Vec<u8>,
    query: &[u8],
    failure: &Failure,
    key: Option<&Key>,
) -> Vec<u8> {
    let id = u16::from_be_bytes([query[0], query[1]]);
    let time = now();
    let record = hickory_proto::rr::rdata::tsig::signed_bitmessage_to_buf(query, None, true)
        .map(|(_, r)| r.name.clone())
        .unwrap_or_else(|_| Name::root());
    let context = match (failure, key) {
        (Failure::BadSignature, Some(key)) => {
            TSigResponseContext::bad_signature(id, time, key.signer.clone())
        }
        (Failure::BadTime(_), Some(key)) => {
            // Signed, with our time, so the client can tell its clock is off.
            let request_mac = key
                .signer
                .verify_message_byte(query, None, true)
                .map(|(mac, _, _)| mac)
                .unwrap_or_default();
            TSigResponseContext::new(
                id,
                time,
                key.signer.clone(),
                request_mac,
                Some(TsigError::BadTime),
            )
        }
        _ => TSigResponseContext::unknown_key(id, time, record),
    };
    if let Ok(record) = context.sign(&bare) {
        // An encoding failure leaves the plain NOTAUTH.
        let _ = append(&mut bare, &record);
    }
    bare
}

impl Signed {
    /// Signs the messages of one response in order: the first covers the request's MAC,
    /// each later one the MAC before it (RFC 8945 5.3.1).
    pub fn sign(&self, messages: &mut [Vec<u8>]) -> Result<(), String> {
        let time = now();
        let mut previous = self.request_mac.clone();
        for (i, message) in messages.iter_mut().enumerate() {
            let tsig = TSIG::new(
                self.key.signer.algorithm().clone(),
                time,
                FUDGE,
                Vec::new(),
                self.id,
                None,
                Vec::new(),
            );
            let tbs = if i == 0 {
                self.key
                    .signer
                    .encode_response_tbs(&previous, message, &tsig)
                    .map_err(|e| e.to_string())?
            } else {
                // Later messages: the previous MAC, the message, then the timers only.
                let mut tbs = Vec::with_capacity(previous.len() + message.len() + 10);
                tbs.extend_from_slice(&(previous.len() as u16).to_be_bytes());
                tbs.extend_from_slice(&previous);
                tbs.extend_from_slice(message);
                tbs.extend_from_slice(&((time >> 32) as u16).to_be_bytes());
                tbs.extend_from_slice(&(time as u32).to_be_bytes());
                tbs.extend_from_slice(&FUDGE.to_be_bytes());
                tbs
            };
            let mac = self.key.signer.sign(&tbs).map_err(|e| e.to_string())?;
            let record = make_tsig_record(
                self.key.signer.signer_name().clone(),
                tsig.set_mac(mac.clone()),
            );
            append(message, &record)?;
            previous = mac;
        }
        Ok(())
    }

    pub fn key_name(&self) -> &str {
        &self.key.name
    }
}

/// Appends a TSIG record to an encoded message and counts it in the additional section.
fn append(message: &mut Vec<u8>, record: &Record<TSIG>) -> Result<(), String> {
    let mut bytes = Vec::with_capacity(128);
    {
        let mut encoder = BinEncoder::new(&mut bytes);
        record.emit(&mut encoder).map_err(|e| e.to_string())?;
    }
    let count = u16::from_be_bytes([message[10], message[11]]).wrapping_add(1);
    message[10..12].copy_from_slice(&count.to_be_bytes());
    message.extend_from_slice(&bytes);
    Ok(())
}

/// When the fuzz corpus's signed seeds were signed with the `fuzz` key
/// (`fuzz/corpus/request_path/seed-tsig-fuzz-*`, `dig -y`).
#[cfg(any(fuzzing, test))]
pub(crate) const FUZZ_SEEDS_SIGNED: u64 = 1_795_614_981;

/// The clock TSIG checks against. Under the fuzzer (`cfg(fuzzing)`), a minute after the
/// seeds were signed: otherwise every mutation of a signed seed would stop at BADTIME and
/// verification and signing would never be fuzzed.
#[cfg(fuzzing)]
fn now() -> u64 {
    FUZZ_SEEDS_SIGNED + 60
}

#[cfg(not(fuzzing))]
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "tsig_tests.rs"]
mod tests;
