//! SOA serial arithmetic (RFC 1982).

/// `a` comes after `b` in serial number arithmetic (RFC 1982): `a` is ahead of `b` by
/// less than 2^31.
pub fn serial_after(a: u32, b: u32) -> bool {
    a != b && (a.wrapping_sub(b) as i32) > 0
}
