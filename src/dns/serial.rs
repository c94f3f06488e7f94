//! SOA serial arithmetic (RFC 1982). Serials are compared only here: a plain `max` or `<`
//! stalls a zone (and in cluster mode every member) once its serial wraps past 2^32.

/// `a` comes after `b` in serial number arithmetic (RFC 1982): `a` is ahead of `b` by
/// less than 2^31.
pub fn serial_after(a: u32, b: u32) -> bool {
    a != b && (a.wrapping_sub(b) as i32) > 0
}

/// The later of `a` and `b` (RFC 1982 order); `a` when neither is after the other.
pub fn serial_max(a: u32, b: u32) -> u32 {
    if serial_after(b, a) { b } else { a }
}

/// The serial after `serial`: + 1, skipping 0 at the wrap (as hadns always has).
pub fn serial_next(serial: u32) -> u32 {
    serial.wrapping_add(1).max(1)
}

/// `candidate` if it comes after every one of `serials`, else the serial after the latest
/// of them: a serial every zone can move to without going back.
pub fn serial_beyond(candidate: u32, serials: impl IntoIterator<Item = u32>) -> u32 {
    match serials.into_iter().reduce(serial_max) {
        Some(latest) if !serial_after(candidate, latest) => serial_next(latest),
        _ => candidate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEAR_WRAP: u32 = u32::MAX - 2;

    #[test]
    fn serials_compare_across_the_wrap() {
        assert!(serial_after(5, NEAR_WRAP));
        assert!(!serial_after(NEAR_WRAP, 5));
        assert_eq!(serial_max(NEAR_WRAP, 5), 5);
        assert_eq!(serial_max(5, NEAR_WRAP), 5);
        assert_eq!(serial_max(7, 7), 7);
        assert_eq!(serial_next(u32::MAX), 1);
        assert_eq!(serial_next(NEAR_WRAP), u32::MAX - 1);
    }

    #[test]
    fn a_serial_beyond_zones_on_both_sides_of_the_wrap() {
        // One zone wrapped to 3, another still at NEAR_WRAP: 3 is the latest.
        assert_eq!(serial_beyond(1_700_000_000, [NEAR_WRAP, 3]), 1_700_000_000);
        assert_eq!(serial_beyond(2, [NEAR_WRAP, 3]), 4);
        assert_eq!(serial_beyond(100, [NEAR_WRAP]), 100);
        assert_eq!(serial_beyond(NEAR_WRAP, [NEAR_WRAP]), u32::MAX - 1);
        assert_eq!(serial_beyond(9, []), 9);
    }
}
