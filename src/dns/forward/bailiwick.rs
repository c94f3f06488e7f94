//! What of an upstream's answer is kept: only records about the asked name. The answer
//! section is the chain from the question's name (CNAMEs followed in order, a DNAME above
//! a name of the chain); of the authority section, the SOA of the zone above the chain's
//! last name and the NSEC/NSEC3 and signatures under that zone, which prove a negative
//! answer; NS records and the additional section are dropped (a stub needs no delegation
//! nor glue). Anything else an upstream, or a forger that got through,
//! adds is never cached nor answered.

use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The names the answer section may hold records for: `qname`, then each CNAME target in
/// order (a DNAME's synthesized CNAME included), at most 16 links.
pub fn chain(qname: &Name, answers: &[Record]) -> Vec<Name> {
    let mut names = vec![qname.clone()];
    for _ in 0..16 {
        let last = names.last().unwrap_or(qname);
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if &r.name == last => Some(target.0.clone()),
            _ => None,
        });
        match next {
            Some(target) if !names.contains(&target) => names.push(target),
            _ => break,
        }
    }
    names
}

/// Keeps the answer records about the chain's names (and the DNAMEs above them).
pub fn answers(qname: &Name, answers: Vec<Record>) -> Vec<Record> {
    let names = chain(qname, &answers);
    answers
        .into_iter()
        .filter(|r| {
            names.contains(&r.name)
                || (r.record_type() == RecordType::DNAME && names.iter().any(|n| r.name.zone_of(n)))
                || (r.record_type() == RecordType::RRSIG && names.iter().any(|n| r.name.zone_of(n)))
        })
        .collect()
}

/// Keeps, of the authority records, the SOA of the zone above `last` (the
/// chain's last name; the deepest such SOA) and the records under that zone (NSEC, NSEC3,
/// RRSIG proving the answer). NS records are dropped: a stub needs no delegation, and a
/// forged one must not travel.
pub fn authorities(last: &Name, authorities: Vec<Record>) -> Vec<Record> {
    let zone = authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::SOA && r.name.zone_of(last))
        .map(|r| r.name.clone())
        .max_by_key(|n| n.num_labels());
    let Some(zone) = zone else {
        return Vec::new();
    };
    authorities
        .into_iter()
        .filter(|r| match r.record_type() {
            RecordType::SOA => r.name == zone,
            RecordType::NS => false,
            _ => zone.zone_of(&r.name),
        })
        .collect()
}

/// A DNSSEC record left out of the answer to a client that did not set the DO bit, unless
/// its type is the one asked for (RFC 4035 3.2.1).
pub fn is_dnssec(record: &Record, asked: RecordType) -> bool {
    let kind = record.record_type();
    kind != asked
        && matches!(
            kind,
            RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
        )
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::str::FromStr;

    use hickory_proto::rr::rdata::{A, CNAME, NS, SOA};

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    fn a(owner: &str, ip: [u8; 4]) -> Record {
        Record::from_rdata(name(owner), 60, RData::A(A(Ipv4Addr::from(ip))))
    }

    #[test]
    fn a_cname_chain_is_kept_and_a_stranger_dropped() {
        let q = name("www.corp.example.");
        let records = vec![
            Record::from_rdata(
                q.clone(),
                60,
                RData::CNAME(CNAME(name("web.corp.example."))),
            ),
            a("web.corp.example.", [10, 0, 0, 5]),
            // Poison: an address for a name nobody asked for.
            a("bank.example.", [6, 6, 6, 6]),
            // An unrelated CNAME does not extend the chain.
            Record::from_rdata(
                name("x.example."),
                60,
                RData::CNAME(CNAME(name("bank.example."))),
            ),
        ];
        let kept = answers(&q, records);
        let owners: Vec<String> = kept.iter().map(|r| r.name.to_string()).collect();
        assert_eq!(owners, vec!["www.corp.example.", "web.corp.example."]);
    }

    #[test]
    fn a_cname_loop_ends() {
        let q = name("a.example.");
        let records = vec![
            Record::from_rdata(q.clone(), 60, RData::CNAME(CNAME(name("b.example.")))),
            Record::from_rdata(name("b.example."), 60, RData::CNAME(CNAME(q.clone()))),
        ];
        assert_eq!(chain(&q, &records).len(), 2);
        assert_eq!(answers(&q, records).len(), 2);
    }

    #[test]
    fn authority_keeps_the_zone_above_the_name_only() {
        let q = name("nope.corp.example.");
        let soa = SOA::new(
            name("ns.corp.example."),
            name("h.corp.example."),
            1,
            60,
            60,
            60,
            60,
        );
        let records = vec![
            Record::from_rdata(name("corp.example."), 60, RData::SOA(soa)),
            // Poison: a delegation of a zone the name is not in.
            Record::from_rdata(
                name("bank.example."),
                60,
                RData::NS(NS(name("evil.example."))),
            ),
            Record::from_rdata(name("example."), 60, RData::NS(NS(name("evil.example.")))),
        ];
        let kept = authorities(&q, records);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].record_type(), RecordType::SOA);
        // Nothing above the name: nothing kept.
        let stranger = vec![Record::from_rdata(
            name("bank.example."),
            60,
            RData::NS(NS(name("evil.example."))),
        )];
        assert!(authorities(&q, stranger).is_empty());
    }
}
