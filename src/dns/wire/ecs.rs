//! EDNS Client Subnet (RFC 7871) on the wire: reading a query's option, echoing it.

use super::*;

/// EDNS Client Subnet (RFC 7871).
pub const OPTION_ECS: u16 = 8;

/// A client subnet option's data (family, source, scope, address), if well formed: a known
/// family, a source prefix within it, exactly the address bytes the prefix needs, scope 0.
/// The source prefix and the address.
pub fn parse_ecs(data: &[u8]) -> Option<(u8, std::net::IpAddr)> {
    let family = u16_at(data, 0)?;
    let (source, scope) = (*data.get(2)?, *data.get(3)?);
    let bytes = &data[4..];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if source > max || scope != 0 || bytes.len() != usize::from(source).div_ceil(8) {
        return None;
    }
    let address = if family == 1 {
        let mut a = [0u8; 4];
        a[..bytes.len()].copy_from_slice(bytes);
        std::net::IpAddr::from(a)
    } else {
        let mut a = [0u8; 16];
        a[..bytes.len()].copy_from_slice(bytes);
        std::net::IpAddr::from(a)
    };
    Some((source, address))
}

/// The OPT record of a message whose question ends at `from`: where its data starts and
/// ends, and whether it is the message's last record.
fn opt_data(msg: &[u8], from: usize) -> Option<(usize, usize, bool)> {
    let count = |i: usize| usize::from(u16_at(msg, i).unwrap_or(0));
    let total = count(6) + count(8) + count(10);
    let mut i = from;
    let mut found = None;
    for _ in 0..total {
        i = name_end(msg, i)?;
        let rtype = u16_at(msg, i)?;
        let start = i + 10;
        i = start + usize::from(u16_at(msg, i + 8)?);
        if rtype == TYPE_OPT {
            found = Some((start, i));
        }
    }
    let (start, end) = found?;
    (end <= msg.len()).then_some((start, end, end == msg.len()))
}

/// The options of an OPT record's data, as (code, data) pairs.
fn options(data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut o = 0;
    std::iter::from_fn(move || {
        let code = u16_at(data, o)?;
        let len = usize::from(u16_at(data, o + 2)?);
        let value = data.get(o + 4..o + 4 + len)?;
        o += 4 + len;
        Some((code, value))
    })
}

/// Gives `response` the query's client subnet option back with scope 0 (the answer is the
/// same for every client), unless the response already carries one (a `by_site` answer,
/// with its own scope) or has no OPT. hickory's path does not echo the option itself.
pub fn echo_ecs(query: &[u8], shape: &Shape, response: &mut Vec<u8>) {
    let Some((q_start, q_end, _)) = opt_data(query, shape.question_end) else {
        return;
    };
    let Some((_, ecs)) = options(&query[q_start..q_end]).find(|(code, _)| *code == OPTION_ECS)
    else {
        return;
    };
    if parse_ecs(ecs).is_none() {
        return;
    }
    let Some((r_start, r_end, last)) = opt_data(response, shape.question_end) else {
        return;
    };
    if !last || options(&response[r_start..r_end]).any(|(code, _)| code == OPTION_ECS) {
        return;
    }
    response.extend_from_slice(&OPTION_ECS.to_be_bytes());
    response.extend_from_slice(&(ecs.len() as u16).to_be_bytes());
    response.extend_from_slice(&ecs[..3]);
    response.push(0);
    response.extend_from_slice(&ecs[4..]);
    let rdlen = (response.len() - r_start) as u16;
    response[r_start - 2..r_start].copy_from_slice(&rdlen.to_be_bytes());
}
