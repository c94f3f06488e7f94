//! EDNS conformance as RFC 8906 and the ISC EDNS compliance tester (ednscomp) check it,
//! over UDP (fast path and hickory's path) and TCP, for a failover name and static names.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::support::*;

/// The response's OPT: (payload, extended rcode, version, flags, option bytes).
#[derive(Debug)]
struct Opt {
    extended_rcode: u8,
    version: u8,
    flags: u16,
    options: Vec<u8>,
}

/// Walks a response: its header rcode, answer count and OPT.
fn parse(response: &[u8]) -> (u8, u16, Option<Opt>) {
    let count = |i: usize| u16::from_be_bytes([response[i], response[i + 1]]);
    let skip_name = |mut i: usize| loop {
        let len = response[i];
        if len == 0 {
            return i + 1;
        }
        if len & 0xC0 == 0xC0 {
            return i + 2;
        }
        i += 1 + usize::from(len);
    };
    let mut i = 12;
    for _ in 0..count(4) {
        i = skip_name(i) + 4;
    }
    let mut opt = None;
    let records = usize::from(count(6)) + usize::from(count(8)) + usize::from(count(10));
    for _ in 0..records {
        i = skip_name(i);
        let rtype = count(i);
        let rdlen = usize::from(count(i + 8));
        if rtype == 41 {
            opt = Some(Opt {
                extended_rcode: response[i + 4],
                version: response[i + 5],
                flags: count(i + 6),
                options: response[i + 10..i + 10 + rdlen].to_vec(),
            });
        }
        i += 10 + rdlen;
    }
    assert_eq!(i, response.len(), "the response ends after its last record");
    (response[3] & 0x0f, count(6), opt)
}

/// A query: `flags_lo` is the header's second flags byte (Z, AD, CD); `opt` the OPT's
/// version, flags and options.
fn query(id: u16, name: &str, flags_lo: u8, opt: Option<(u8, u16, &[u8])>) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x00, flags_lo, 0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    if let Some((version, flags, options)) = opt {
        q.extend_from_slice(&[0, 0, 41, 0x10, 0x00, 0, version]);
        q.extend_from_slice(&flags.to_be_bytes());
        q.extend_from_slice(&(options.len() as u16).to_be_bytes());
        q.extend_from_slice(options);
    }
    q
}

async fn exchange(server: SocketAddr, tcp: bool, packet: &[u8]) -> Vec<u8> {
    if tcp {
        let mut stream = TcpStream::connect(server).await.unwrap();
        raw_tcp(&mut stream, packet).await
    } else {
        raw_udp(server, packet).await.expect("no answer")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn edns_as_rfc_8906_asks() {
    let (hadns, _web) = start_with_web("", ZONE).await;
    // A failover name (fast path and handler), a static name (fast path and catalog), and
    // the apex (catalog only).
    for name in [
        "www.example.internal.",
        "mail.example.internal.",
        "example.internal.",
    ] {
        for tcp in [false, true] {
            let at = format!("{name} over {}", if tcp { "tcp" } else { "udp" });
            // dns: no EDNS in, none out.
            let (rcode, answers, opt) =
                parse(&exchange(hadns.addr, tcp, &query(1, name, 0, None)).await);
            assert_eq!((rcode, opt.is_none()), (0, true), "plain, {at}");
            assert!(answers > 0 || name == "example.internal.", "plain, {at}");
            // edns: version 0 in, version 0 out, no options.
            let (rcode, _, opt) =
                parse(&exchange(hadns.addr, tcp, &query(2, name, 0, Some((0, 0, &[])))).await);
            let opt = opt.unwrap_or_else(|| panic!("edns: no OPT, {at}"));
            assert_eq!(
                (rcode, opt.extended_rcode, opt.version),
                (0, 0, 0),
                "edns, {at}"
            );
            assert!(opt.options.is_empty(), "edns, {at}");
            // edns1: an unknown version is BADVERS (16: extended 1, header 0), version 0 back,
            // no answer; with an option too (edns1opt).
            for options in [&[][..], &[0, 100, 0, 0][..]] {
                let (rcode, answers, opt) = parse(
                    &exchange(hadns.addr, tcp, &query(3, name, 0, Some((1, 0, options)))).await,
                );
                let opt = opt.unwrap_or_else(|| panic!("edns1: no OPT, {at}"));
                assert_eq!(
                    (rcode, opt.extended_rcode, opt.version, answers),
                    (0, 1, 0, 0),
                    "edns1, {at}"
                );
            }
            // ednsopt / optlist: unknown options are ignored, never echoed.
            let options = [0, 100, 0, 2, 0xab, 0xcd, 0, 3, 0, 0, 0, 9, 0, 0];
            let (rcode, _, opt) =
                parse(&exchange(hadns.addr, tcp, &query(4, name, 0, Some((0, 0, &options)))).await);
            let opt = opt.unwrap_or_else(|| panic!("ednsopt: no OPT, {at}"));
            assert_eq!((rcode, opt.options.len()), (0, 0), "ednsopt, {at}");
            // ednsflags: unknown flags are cleared; do: the DO bit is copied (RFC 3225).
            let (_, _, opt) =
                parse(&exchange(hadns.addr, tcp, &query(5, name, 0, Some((0, 0x0080, &[])))).await);
            assert_eq!(opt.unwrap().flags, 0, "ednsflags, {at}");
            let (_, _, opt) =
                parse(&exchange(hadns.addr, tcp, &query(6, name, 0, Some((0, 0x8000, &[])))).await);
            assert_eq!(opt.unwrap().flags, 0x8000, "do, {at}");
            // zflag: the header's Z bit is cleared in the response.
            let response =
                exchange(hadns.addr, tcp, &query(7, name, 0x40, Some((0, 0, &[])))).await;
            assert_eq!(response[3] & 0x40, 0, "zflag, {at}");
        }
    }
    assert!(hadns.stop().await.success());
}
