//! The fast path's query parser: the question and the EDNS parts it answers from.

use std::net::IpAddr;

use crate::dns::wire::{CLASS_IN, OPTION_ECS, TYPE_OPT};

pub(super) struct Question {
    pub(super) name_len: usize,
    pub(super) qtype: u16,
    pub(super) edns: Option<EdnsRequest>,
}

#[derive(Clone, Copy)]
pub(super) struct EdnsRequest {
    pub(super) payload: u16,
    pub(super) dnssec_ok: bool,
    pub(super) ecs: Option<Ecs>,
}

/// A query's client subnet option (RFC 7871).
#[derive(Clone, Copy)]
pub(super) struct Ecs {
    /// Where its data (family, source, scope, address) starts in the query, and its length.
    pub(super) offset: usize,
    pub(super) len: usize,
    pub(super) source: u8,
    pub(super) address: IpAddr,
}

/// A plain query the fast path covers, or None.
pub(super) fn parse(query: &[u8]) -> Option<Question> {
    let opcode = (query[2] >> 3) & 0x0f;
    let count = |i: usize| u16::from_be_bytes([query[i], query[i + 1]]);
    if opcode != 0
        || query[2] & 0x02 != 0
        || count(4) != 1
        || count(6) != 0
        || count(8) != 0
        || count(10) > 1
    {
        return None;
    }
    // The question name: plain labels only (no compression), at most 255 bytes.
    let mut i = crate::dns::wire::plain_name_end(query, 12)?;
    let name_len = i - 12;
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*query.get(i + 2)?, *query.get(i + 3)?]);
    if qclass != CLASS_IN {
        return None;
    }
    i += 4;
    let mut edns = None;
    if count(10) == 1 {
        // An OPT record: root name, type 41, class = payload, ttl = rcode/version/flags.
        let opt = query.get(i..i + 11)?;
        if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != TYPE_OPT || opt[6] != 0 {
            return None;
        }
        let rdlen = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
        i += 11;
        // Options (code, length, data) must fill the OPT data exactly; a client subnet
        // must be well formed and come once (else hickory's path decides).
        let options = query.get(i..i + rdlen)?;
        let mut o = 0;
        let mut ecs = None;
        while o < options.len() {
            let code = u16::from_be_bytes([*options.get(o)?, *options.get(o + 1)?]);
            let len = usize::from(u16::from_be_bytes([
                *options.get(o + 2)?,
                *options.get(o + 3)?,
            ]));
            if code == OPTION_ECS {
                if ecs.is_some() {
                    return None;
                }
                let data = options.get(o + 4..o + 4 + len)?;
                let (source, address) = crate::dns::wire::parse_ecs(data)?;
                ecs = Some(Ecs {
                    offset: i + o + 4,
                    len,
                    source,
                    address,
                });
            }
            o += 4 + len;
        }
        if o != options.len() {
            return None;
        }
        edns = Some(EdnsRequest {
            payload: u16::from_be_bytes([opt[3], opt[4]]),
            dnssec_ok: opt[7] & 0x80 != 0,
            ecs,
        });
        i += rdlen;
    }
    (i == query.len()).then_some(Question {
        name_len,
        qtype,
        edns,
    })
}
