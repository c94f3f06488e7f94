//! Zone files for the unit tests of this module (`fast_tests`, `xfr_tests`).

/// A temporary directory holding `zones/example.internal.zone`: its SOA (serial 42), NS
/// and `ns1`, then `hosts` A records (`host0`, `host1`, ... at 10.x.y.z), then `extra`.
pub(super) fn zone_dir(hosts: u32, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    let mut zone = String::from(
        "$TTL 300\n@ IN SOA ns1 hostmaster 42 3600 600 604800 5\n@ IN NS ns1\nns1 IN A 127.0.0.1\n",
    );
    for i in 0..hosts {
        zone += &format!(
            "host{i} IN A 10.{}.{}.{}\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        );
    }
    zone += extra;
    std::fs::write(dir.path().join("zones/example.internal.zone"), zone).unwrap();
    dir
}
