//! What hadns checks and writes itself in DNS messages, byte by byte, around hickory: the
//! shape of a query before hickory sees it, error responses, the DO bit, and truncation.
//!
//! Every function here takes untrusted bytes and must never panic: the fuzz targets and the
//! property tests call them with anything.

/// Response codes (the header's four bits).
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;
/// BADVERS (16): an extended response code, carried in the OPT record's upper 8 bits.
const EXTENDED_BADVERS: u8 = 1;

pub const TYPE_OPT: u16 = 41;
const TYPE_TSIG: u16 = 250;
pub const CLASS_IN: u16 = 1;
/// Longest name on the wire.
pub const MAX_NAME: usize = 255;
const HEADER: usize = 12;

mod ecs;

pub use ecs::{OPTION_ECS, echo_ecs, parse_ecs};

/// A query's EDNS OPT record, as far as the response needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// What a query is, once its shape has been checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Shape {
    /// Offset just past the question (name, type, class).
    pub question_end: usize,
    pub opt: Option<Opt>,
}

/// Why hadns answers a query itself, with an error, instead of passing it to hickory.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not even a readable question: FORMERR, header only.
    Malformed,
    /// A readable question, but the message is wrong around it: FORMERR with the question.
    FormErr(Shape),
    /// An opcode hadns does not implement: NOTIMP.
    NotImp(Shape),
    /// A class other than IN: REFUSED (hadns serves IN data only).
    Class(Shape),
    /// An EDNS version above 0: BADVERS (RFC 6891).
    BadVers(Shape),
}

/// The offset just past the name starting at `at`, with plain labels only (no
/// compression: a question's name cannot point anywhere but into the header), at most 255
/// bytes on the wire.
pub(super) fn plain_name_end(msg: &[u8], at: usize) -> Option<usize> {
    let mut i = at;
    loop {
        let len = usize::from(*msg.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        i += len;
    }
    (i - at <= MAX_NAME).then_some(i)
}

/// The offset just past a (possibly compressed) name starting at `at`.
fn name_end(msg: &[u8], at: usize) -> Option<usize> {
    let mut i = at;
    loop {
        let len = *msg.get(i)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Some(i + 1),
            0x00 => i += 1 + usize::from(len),
            // A pointer ends the name.
            0xC0 => return msg.get(i + 1).map(|_| i + 2),
            _ => return None,
        }
    }
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// Checks a query's shape (the caller has seen a 12-byte header with QR clear): one
/// question of class IN with a plain name, opcode QUERY, an EDNS version hadns speaks.
/// `Ok` leaves it to hickory.
pub fn inspect(query: &[u8]) -> Result<Shape, Refusal> {
    let count = |i: usize| u16_at(query, i).unwrap_or(0);
    let question_end = match count(4) {
        1 => plain_name_end(query, HEADER).filter(|&end| end + 4 <= query.len()),
        _ => None,
    };
    let Some(name_end) = question_end else {
        return Err(Refusal::Malformed);
    };
    let question_end = name_end + 4;
    let opt = find_opt(query, question_end, count(6), count(8), count(10));
    let shape = |opt| Shape { question_end, opt };
    let opt = match opt {
        Ok(opt) => opt,
        Err(()) => return Err(Refusal::FormErr(shape(None))),
    };
    let opcode = (query[2] >> 3) & 0x0f;
    if opcode != 0 {
        return Err(Refusal::NotImp(shape(opt)));
    }
    if opt.is_some_and(|o| o.version > 0) {
        return Err(Refusal::BadVers(shape(opt)));
    }
    if u16_at(query, name_end + 2) != Some(CLASS_IN) {
        return Err(Refusal::Class(shape(opt)));
    }
    Ok(shape(opt))
}

/// The OPT record of a message whose question ends at `from`: `Err` when the records do
/// not parse, there is more than one OPT, an OPT that is not in the additional section or
/// not at the root, options that overrun its data, or bytes after the last record.
fn find_opt(msg: &[u8], from: usize, an: u16, ns: u16, ar: u16) -> Result<Option<Opt>, ()> {
    let mut i = from;
    let mut opt = None;
    let total = usize::from(an) + usize::from(ns) + usize::from(ar);
    for k in 0..total {
        let owner = i;
        i = name_end(msg, i).ok_or(())?;
        let rtype = u16_at(msg, i).ok_or(())?;
        let rdlen = usize::from(u16_at(msg, i + 8).ok_or(())?);
        let rdata = i + 10;
        let end = rdata + rdlen;
        if end > msg.len() {
            return Err(());
        }
        if rtype == TYPE_OPT {
            let additional = k >= usize::from(an) + usize::from(ns);
            if opt.is_some() || !additional || msg[owner] != 0 {
                return Err(());
            }
            let mut o = rdata;
            while o < end {
                o += 4 + usize::from(u16_at(msg, o + 2).ok_or(())?);
            }
            if o != end {
                return Err(());
            }
            opt = Some(Opt {
                payload: u16_at(msg, i + 2).ok_or(())?,
                version: msg[i + 5],
                dnssec_ok: msg[i + 6] & 0x80 != 0,
            });
        }
        i = end;
    }
    if i != msg.len() {
        return Err(());
    }
    Ok(opt)
}

/// A response to `query` that carries only a header, the question (when `shape` says where
/// it ends) and an OPT (when the query had one): errors and truncated answers.
fn bare_response(
    query: &[u8],
    shape: Option<&Shape>,
    rcode: u8,
    extended: u8,
    tc: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&query[..2]);
    // QR, the query's opcode and RD; TC as asked; AA, RA, AD clear; CD copied.
    out.push(0x80 | (query[2] & 0x79) | if tc { 0x02 } else { 0 });
    out.push((query[3] & 0x10) | rcode);
    let question = shape.map(|s| &query[HEADER..s.question_end]);
    let opt = shape.and_then(|s| s.opt);
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&u16::from(opt.is_some()).to_be_bytes());
    if let Some(question) = question {
        out.extend_from_slice(question);
    }
    if let Some(opt) = opt {
        push_opt(&mut out, opt, extended);
    }
    out
}

/// An OPT record answering the query's: its payload (at least 512), version 0, the DO bit
/// copied (RFC 3225), no options.
fn push_opt(out: &mut Vec<u8>, opt: Opt, extended: u8) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&opt.payload.max(512).to_be_bytes());
    out.extend_from_slice(&[extended, 0, u8::from(opt.dnssec_ok) << 7, 0, 0, 0]);
}

/// Where the message's last record starts, when it is a TSIG in the additional section
/// (where RFC 8945 puts it) and the message parses to its end.
pub fn tsig_start(msg: &[u8]) -> Option<usize> {
    let count = |i: usize| usize::from(u16_at(msg, i).unwrap_or(0));
    if msg.len() < HEADER || count(10) == 0 {
        return None;
    }
    let mut i = HEADER;
    for _ in 0..count(4) {
        i = name_end(msg, i)? + 4;
    }
    let mut last = None;
    for _ in 0..count(6) + count(8) + count(10) {
        let start = i;
        i = name_end(msg, i)?;
        let rtype = u16_at(msg, i)?;
        i += 10 + usize::from(u16_at(msg, i + 8)?);
        last = Some((start, rtype));
    }
    match last {
        Some((start, TYPE_TSIG)) if i == msg.len() => Some(start),
        _ => None,
    }
}

/// `msg` without its last record, which starts at `at` (a TSIG found by [`tsig_start`]).
pub fn without_last_record(msg: &[u8], at: usize) -> Vec<u8> {
    let mut out = msg[..at].to_vec();
    let additional = u16_at(msg, 10).unwrap_or(1).saturating_sub(1);
    out[10..12].copy_from_slice(&additional.to_be_bytes());
    out
}

/// A response with `rcode`, the query's question when it has one readable question, and no
/// records: transfer refusals and TSIG failures.
pub fn error_response(query: &[u8], rcode: u8) -> Vec<u8> {
    let question_end = match u16_at(query, 4) {
        Some(1) => plain_name_end(query, HEADER).filter(|&end| end + 4 <= query.len()),
        _ => None,
    };
    let shape = question_end.map(|end| Shape {
        question_end: end + 4,
        opt: None,
    });
    bare_response(query, shape.as_ref(), rcode, 0, false)
}

/// The response hadns sends for a refused query.
pub fn refusal_response(query: &[u8], refusal: &Refusal) -> Vec<u8> {
    match refusal {
        Refusal::Malformed => bare_response(query, None, RCODE_FORMERR, 0, false),
        Refusal::FormErr(shape) => bare_response(query, Some(shape), RCODE_FORMERR, 0, false),
        Refusal::NotImp(shape) => bare_response(query, Some(shape), RCODE_NOTIMP, 0, false),
        Refusal::Class(shape) => bare_response(query, Some(shape), RCODE_REFUSED, 0, false),
        Refusal::BadVers(shape) => bare_response(query, Some(shape), 0, EXTENDED_BADVERS, false),
    }
}

/// `response` fitted into `limit` bytes: unchanged when it fits, otherwise the header with
/// TC set, the question and the OPT, and no records (the client retries over TCP).
pub fn fit(query: &[u8], shape: &Shape, response: Vec<u8>, limit: usize) -> Vec<u8> {
    if response.len() <= limit {
        return response;
    }
    let rcode = response.get(3).map_or(0, |b| b & 0x0f);
    let mut out = bare_response(query, Some(shape), rcode, 0, true);
    // AA as the full response had it.
    out[2] |= response.get(2).map_or(0, |b| b & 0x04);
    out
}

/// What rate limiting sends instead of an answer ("slip"): the header with TC set, the
/// question and the OPT; `None` for a query whose shape hadns would not answer anyway.
pub fn slipped(query: &[u8]) -> Option<Vec<u8>> {
    let shape = inspect(query).ok()?;
    Some(bare_response(query, Some(&shape), 0, 0, true))
}

/// The largest UDP response for a query: the client's EDNS size (512 without EDNS, and never
/// less than 512) capped at `max_udp`.
pub fn udp_limit(opt: Option<Opt>, max_udp: u16) -> usize {
    usize::from(
        opt.map_or(512, |o| o.payload.max(512))
            .min(max_udp.max(512)),
    )
}

/// Sets the DO bit in the response's OPT record when the query had it (RFC 3225; hickory
/// built without DNSSEC leaves it clear).
pub fn copy_dnssec_ok(response: &mut [u8], opt: Option<Opt>) {
    if !opt.is_some_and(|o| o.dnssec_ok) || response.len() < HEADER {
        return;
    }
    let count = |i: usize| u16_at(response, i).unwrap_or(0);
    let mut i = HEADER;
    for _ in 0..count(4) {
        match name_end(response, i) {
            Some(end) => i = end + 4,
            None => return,
        }
    }
    let total = usize::from(count(6)) + usize::from(count(8)) + usize::from(count(10));
    for _ in 0..total {
        let Some(end) = name_end(response, i) else {
            return;
        };
        let (Some(rtype), Some(rdlen)) = (u16_at(response, end), u16_at(response, end + 8)) else {
            return;
        };
        if rtype == TYPE_OPT {
            if let Some(flags) = response.get_mut(end + 6) {
                *flags |= 0x80;
            }
            return;
        }
        i = end + 10 + usize::from(rdlen);
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
