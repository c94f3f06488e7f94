//! Unit tests of `notify.rs`.

use super::*;

fn key() -> tsig::Key {
    tsig::Key::new(&crate::config::TsigKey {
        name: "xfr".into(),
        algorithm: crate::config::TsigAlgorithm::HmacSha256,
        secret_file: Default::default(),
        secret: vec![9; 32],
    })
    .unwrap()
}

fn soa() -> Record {
    let name = hickory_proto::rr::Name::from_ascii("example.internal.").unwrap();
    let soa = hickory_proto::rr::rdata::SOA::new(name.clone(), name.clone(), 7, 1, 1, 1, 1);
    Record::from_rdata(name, 300, hickory_proto::rr::RData::SOA(soa))
}

/// The target's answer to a NOTIFY with id `id` and response code `code`, unsigned.
fn answer(id: u16, code: ResponseCode) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Response, OpCode::Notify);
    message.metadata.response_code = code;
    message.to_vec().unwrap()
}

#[test]
fn answers_are_told_apart_and_a_signed_notify_needs_a_signed_answer() {
    let unsigned = HashMap::new();
    assert_eq!(
        read_answer(&answer(5, ResponseCode::NoError), &unsigned),
        Some((5, Answer::Acknowledged))
    );
    for code in [
        ResponseCode::NotAuth,
        ResponseCode::Refused,
        ResponseCode::NotImp,
        ResponseCode::NXDomain,
    ] {
        assert!(matches!(
            read_answer(&answer(5, code), &unsigned),
            Some((5, Answer::NotServed(_)))
        ));
    }
    assert!(matches!(
        read_answer(&answer(5, ResponseCode::ServFail), &unsigned),
        Some((5, Answer::Failed(_)))
    ));
    // A query, or another opcode: not an answer at all.
    let query = Message::new(5, MessageType::Query, OpCode::Notify)
        .to_vec()
        .unwrap();
    assert_eq!(read_answer(&query, &unsigned), None);
    assert_eq!(read_answer(b"\x00\x05", &unsigned), None);

    // Signed: an unsigned NOERROR is no acknowledgement.
    let key = key();
    let (_, mac) = message(&soa(), 6, Some(&key)).unwrap();
    let signed = HashMap::from([(6, (key, mac.unwrap()))]);
    assert!(matches!(
        read_answer(&answer(6, ResponseCode::NoError), &signed),
        Some((6, Answer::Failed(problem))) if problem.contains("signature")
    ));
    // A refusal of the signature itself cannot be signed: still "not served".
    assert!(matches!(
        read_answer(&answer(6, ResponseCode::NotAuth), &signed),
        Some((6, Answer::NotServed(_)))
    ));
}
