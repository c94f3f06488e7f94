//! Cached answers prepared in wire form for the UDP fast path: the records after the
//! question as hickory encodes them (name pointers into the question stay valid: a query
//! for the same name and type has a question of the same length), with where each TTL
//! sits so a hit counts them down.

use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode, Query, ResponseCode};

use super::Resolution;

#[derive(Debug)]
pub struct WireAnswer {
    pub rcode: u8,
    pub answers: u16,
    pub authorities: u16,
    body: Vec<u8>,
    /// Each record's TTL: its offset in `body` and its value when stored.
    ttls: Vec<(usize, u32)>,
    stored: Instant,
    /// When the shortest TTL runs out.
    until: Instant,
}

impl WireAnswer {
    /// `resolution` of `query` in wire form; None for what is not kept (SERVFAIL, an
    /// answer without records or with a TTL of 0).
    pub fn encode(query: &Query, resolution: &Resolution, now: Instant) -> Option<WireAnswer> {
        if !matches!(
            resolution.rcode,
            ResponseCode::NoError | ResponseCode::NXDomain
        ) {
            return None;
        }
        let mut message = Message::response(0, OpCode::Query);
        message.add_query(query.clone());
        message.answers = resolution.answers.clone();
        message.authorities = resolution.authorities.clone();
        let bytes = message.to_vec().ok()?;
        let question_end = skip_name(&bytes, 12)? + 4;
        let body = bytes.get(question_end..)?.to_vec();
        let records = resolution.answers.len() + resolution.authorities.len();
        let ttls = ttl_offsets(&body, records)?;
        let shortest = ttls.iter().map(|t| t.1).min().filter(|&t| t > 0)?;
        Some(WireAnswer {
            rcode: u16::from(resolution.rcode) as u8,
            answers: u16::try_from(resolution.answers.len()).ok()?,
            authorities: u16::try_from(resolution.authorities.len()).ok()?,
            body,
            ttls,
            stored: now,
            until: now + Duration::from_secs(u64::from(shortest)),
        })
    }

    /// The records with their TTLs counted down to `now`; None once the shortest ran out.
    pub fn body_at(&self, now: Instant) -> Option<Vec<u8>> {
        if now >= self.until {
            return None;
        }
        let elapsed = u32::try_from(now.duration_since(self.stored).as_secs()).unwrap_or(u32::MAX);
        let mut body = self.body.clone();
        for &(at, ttl) in &self.ttls {
            body[at..at + 4].copy_from_slice(&ttl.saturating_sub(elapsed).to_be_bytes());
        }
        Some(body)
    }
}

/// The offset past the name at `at` (labels, ending in the root or a pointer).
fn skip_name(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *bytes.get(at)?;
        if len == 0 {
            return Some(at + 1);
        }
        if len & 0xC0 == 0xC0 {
            return Some(at + 2);
        }
        at += 1 + usize::from(len);
    }
}

/// Where each of `records` records' TTL is in `body`, and its value; None unless the
/// records fill `body` exactly.
fn ttl_offsets(body: &[u8], records: usize) -> Option<Vec<(usize, u32)>> {
    let mut at = 0;
    let mut ttls = Vec::with_capacity(records);
    for _ in 0..records {
        let ttl_at = skip_name(body, at)? + 4;
        let field = |from: usize, len: usize| body.get(from..from + len);
        let ttl = u32::from_be_bytes(field(ttl_at, 4)?.try_into().ok()?);
        let rdlength = u16::from_be_bytes(field(ttl_at + 4, 2)?.try_into().ok()?);
        ttls.push((ttl_at, ttl));
        at = ttl_at + 6 + usize::from(rdlength);
    }
    (at == body.len()).then_some(ttls)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::rdata::{A, CNAME};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    use super::*;

    #[test]
    fn ttls_count_down_and_the_answer_expires_with_the_shortest() {
        let q = Query::query(Name::from_str("www.corp.example.").unwrap(), RecordType::A);
        let target = Name::from_str("web.corp.example.").unwrap();
        let resolution = Resolution {
            rcode: ResponseCode::NoError,
            answers: vec![
                Record::from_rdata(q.name().clone(), 300, RData::CNAME(CNAME(target.clone()))),
                Record::from_rdata(target, 60, RData::A(A([10, 0, 0, 5].into()))),
            ],
            authorities: Vec::new(),
        };
        let now = Instant::now();
        let wire = WireAnswer::encode(&q, &resolution, now).unwrap();
        assert_eq!((wire.answers, wire.authorities, wire.ttls.len()), (2, 0, 2));
        let later = wire.body_at(now + Duration::from_secs(10)).unwrap();
        let ttls: Vec<u32> = (wire.ttls.iter())
            .map(|&(at, _)| u32::from_be_bytes(later[at..at + 4].try_into().unwrap()))
            .collect();
        assert_eq!(ttls, vec![290, 50]);
        assert!(wire.body_at(now + Duration::from_secs(60)).is_none());
        // A TTL of 0 is not kept.
        let mut zero = resolution;
        zero.answers[1].ttl = 0;
        assert!(WireAnswer::encode(&q, &zero, now).is_none());
    }
}
