//! Unit tests of `tsig.rs`.

use super::*;

fn key(secret: &[u8]) -> Key {
    Key::new(&config::TsigKey {
        name: "xfr".into(),
        algorithm: config::TsigAlgorithm::HmacSha256,
        secret_file: Default::default(),
        secret: secret.to_vec(),
    })
    .unwrap()
}

#[test]
fn a_signed_request_verifies_and_its_signed_response_too() {
    let key = key(&[7; 32]);
    let mut query = hickory_proto::op::Message::query();
    query.add_query(hickory_proto::op::Query::query(
        Name::from_str("example.internal.").unwrap(),
        hickory_proto::rr::RecordType::SOA,
    ));
    let mut bytes = query.to_vec().unwrap();
    let mac = key.sign_request(&mut bytes).unwrap();
    // hickory's own verifier agrees, and so does ours.
    let (verified_mac, _, _) = key.signer.verify_message_byte(&bytes, None, true).unwrap();
    assert_eq!(verified_mac, mac);
    let signed = verify(&bytes, Some(&key)).unwrap();
    // A response of three messages, checked in the chain.
    let mut messages = Vec::new();
    let mut response = query.clone();
    response.metadata.message_type = hickory_proto::op::MessageType::Response;
    for _ in 0..3 {
        messages.push(response.to_vec().unwrap());
    }
    signed.sign(&mut messages).unwrap();
    let mut previous = mac;
    for (i, message) in messages.iter().enumerate() {
        let (next, _, _) = key
            .signer
            .verify_message_byte(message, Some(&previous), i == 0)
            .unwrap();
        previous = next;
    }
    assert!(
        key.verify_response(&messages[0], &signed.request_mac)
            .is_ok()
    );
}

#[test]
fn another_secret_or_no_key_is_refused() {
    let mut bytes = hickory_proto::op::Message::query().to_vec().unwrap();
    key(&[1; 32]).sign_request(&mut bytes).unwrap();
    assert_eq!(
        verify(&bytes, Some(&key(&[2; 32]))).err(),
        Some(Failure::BadSignature)
    );
    assert!(matches!(verify(&bytes, None), Err(Failure::UnknownKey(_))));
    let mut tampered = bytes.clone();
    tampered[2] ^= 1;
    assert_eq!(
        verify(&tampered, Some(&key(&[1; 32]))).err(),
        Some(Failure::BadSignature)
    );
}

/// A query signed at `time` by a signer whose fudge is `fudge`.
fn signed_at(secret: &[u8], fudge: u16, time: u64) -> Vec<u8> {
    let signer = hickory_proto::rr::TSigner::new(
        secret.to_vec(),
        hickory_proto::rr::rdata::tsig::TsigAlgorithm::HmacSha256,
        hickory_proto::rr::Name::from_ascii("xfr").unwrap(),
        fudge,
    )
    .unwrap();
    let mut message = hickory_proto::op::Message::query();
    let (signature, _) = signer.sign_message(&message, time).unwrap();
    message.set_signature(signature);
    message.to_vec().unwrap()
}

/// A truncated MAC (RFC 8945 allows 16 bytes of hmac-sha256; hadns, as hickory, does
/// not): BADSIG, also when the 16 bytes are the right ones.
#[test]
fn a_truncated_mac_is_a_bad_signature() {
    let key = key(&[4; 32]);
    let message = hickory_proto::op::Message::query().to_vec().unwrap();
    let tsig = TSIG::new(
        key.signer.algorithm().clone(),
        now(),
        FUDGE,
        Vec::new(),
        u16::from_be_bytes([message[0], message[1]]),
        None,
        Vec::new(),
    );
    let mut variables = Vec::new();
    tsig.emit_tsig_for_mac(
        &mut BinEncoder::new(&mut variables),
        key.signer.signer_name(),
    )
    .unwrap();
    let mut tbs = message.clone();
    tbs.extend_from_slice(&variables);
    let mac = key.signer.sign(&tbs).unwrap();
    assert_eq!(mac.len(), 32);
    let with_mac = |mac: &[u8]| {
        let mut signed = message.clone();
        let record = make_tsig_record(
            key.signer.signer_name().clone(),
            tsig.clone().set_mac(mac.to_vec()),
        );
        append(&mut signed, &record).unwrap();
        signed
    };
    // The whole MAC, built the same way, verifies: only the truncation is refused.
    assert!(verify(&with_mac(&mac), Some(&key)).is_ok());
    assert_eq!(
        verify(&with_mac(&mac[..16]), Some(&key)).err(),
        Some(Failure::BadSignature)
    );
}

#[test]
fn the_time_window_is_the_fudge_at_most_300_seconds() {
    let key = key(&[3; 32]);
    let now = now();
    assert!(verify(&signed_at(&[3; 32], 300, now - 200), Some(&key)).is_ok());
    assert_eq!(
        verify(&signed_at(&[3; 32], 300, now - 400), Some(&key)).err(),
        Some(Failure::BadTime(now - 400))
    );
    assert_eq!(
        verify(&signed_at(&[3; 32], 300, now + 400), Some(&key)).err(),
        Some(Failure::BadTime(now + 400))
    );
    // Fudge 65535 (18 h) in the request: still 300 s.
    assert_eq!(
        verify(&signed_at(&[3; 32], u16::MAX, now - 3600), Some(&key)).err(),
        Some(Failure::BadTime(now - 3600))
    );
    // A smaller fudge narrows it.
    assert_eq!(
        verify(&signed_at(&[3; 32], 10, now - 60), Some(&key)).err(),
        Some(Failure::BadTime(now - 60))
    );
}
