use super::*;

fn query(name: &[u8], class: u16, opt: Option<[u8; 11]>) -> Vec<u8> {
    let mut q = vec![
        0x12,
        0x34,
        0x01,
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        u8::from(opt.is_some()),
    ];
    q.extend_from_slice(name);
    q.extend_from_slice(&[0, 1]);
    q.extend_from_slice(&class.to_be_bytes());
    if let Some(opt) = opt {
        q.extend_from_slice(&opt);
    }
    q
}

const WWW: &[u8] = b"\x03www\x07example\x00";
const OPT: [u8; 11] = [0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0];

#[test]
fn a_plain_query_goes_to_hickory() {
    let q = query(WWW, 1, Some(OPT));
    let shape = inspect(&q).unwrap();
    assert_eq!(shape.question_end, 12 + WWW.len() + 4);
    assert_eq!(
        shape.opt,
        Some(Opt {
            payload: 4096,
            version: 0,
            dnssec_ok: true
        })
    );
}

#[test]
fn classes_other_than_in_are_refused_with_the_question() {
    for class in [3, 254, 255] {
        let q = query(WWW, class, None);
        let refusal = inspect(&q).unwrap_err();
        assert!(matches!(refusal, Refusal::Class(_)), "class {class}");
        let r = refusal_response(&q, &refusal);
        assert_eq!(r[3] & 0x0f, RCODE_REFUSED);
        assert_eq!(&r[12..], &q[12..], "question copied");
        assert_eq!(r[2] & 0x04, 0, "not authoritative");
    }
}

#[test]
fn a_compressed_or_overlong_question_is_malformed() {
    let pointer = query(b"\xc0\x0c", 1, None);
    assert_eq!(inspect(&pointer), Err(Refusal::Malformed));
    let r = refusal_response(&pointer, &Refusal::Malformed);
    assert_eq!(r.len(), 12, "header only: nothing of the pointer is copied");
    assert_eq!(r[3] & 0x0f, RCODE_FORMERR);
    assert_eq!(r[2] & 0x01, 1, "RD copied");
    // 256 bytes on the wire: labels of 63, 63, 63, 62 and the root.
    let mut long = Vec::new();
    for len in [63u8, 63, 63, 62] {
        long.push(len);
        long.extend(std::iter::repeat_n(b'a', usize::from(len)));
    }
    long.push(0);
    assert_eq!(long.len(), 256);
    assert_eq!(inspect(&query(&long, 1, None)), Err(Refusal::Malformed));
    long.remove(1);
    long[0] = 62;
    assert!(
        inspect(&query(&long, 1, None)).is_ok(),
        "255 bytes is a name"
    );
}

#[test]
fn an_option_running_past_the_opt_data_is_formerr() {
    // OPT with 4 bytes of data holding an option that claims 8.
    let mut q = query(WWW, 1, None);
    q[11] = 1;
    q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 4, 0, 10, 0, 8]);
    assert!(matches!(inspect(&q), Err(Refusal::FormErr(_))));
}

#[test]
fn edns_version_1_is_badvers() {
    let mut opt = OPT;
    opt[6] = 1;
    let q = query(WWW, 1, Some(opt));
    let refusal = inspect(&q).unwrap_err();
    assert!(matches!(refusal, Refusal::BadVers(_)));
    let r = refusal_response(&q, &refusal);
    let opt_at = r.len() - 11;
    assert_eq!(
        r[opt_at + 5],
        EXTENDED_BADVERS,
        "extended rcode 16 = BADVERS"
    );
    assert_eq!(r[opt_at + 6], 0, "version 0");
    assert_eq!(r[3] & 0x0f, 0);
}

#[test]
fn a_response_over_the_limit_keeps_only_its_question() {
    let q = query(WWW, 1, Some(OPT));
    let shape = inspect(&q).unwrap();
    let mut big = q.clone();
    big[2] |= 0x84;
    big[7] = 2;
    big.extend_from_slice(&[0u8; 600]);
    let fitted = fit(&q, &shape, big, 512);
    assert_eq!(fitted.len(), q.len());
    assert_eq!(fitted[2] & 0x02, 0x02, "TC");
    assert_eq!(fitted[2] & 0x04, 0x04, "AA kept");
    assert_eq!(&fitted[6..10], &[0, 0, 0, 0], "no records counted");
}

#[test]
fn the_do_bit_is_copied_into_the_response_opt() {
    let q = query(WWW, 1, Some(OPT));
    let shape = inspect(&q).unwrap();
    let mut r = bare_response(&q, Some(&shape), 0, 0, false);
    let opt_at = r.len() - 11;
    r[opt_at + 7] = 0;
    copy_dnssec_ok(&mut r, shape.opt);
    assert_eq!(r[opt_at + 7], 0x80);
}
