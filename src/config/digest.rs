//! The digest of what cluster members must share: pools, records and sites as parsed.
//!
//! The encoding is the JSON serde derives for those types (fields in declaration order),
//! hashed with SHA-256: the same configuration gives the same digest in every build of the
//! same version. Database passwords and where a record sits in the file are left out.

use sha2::{Digest, Sha256};

use super::Config;

/// The first 16 hex digits of the SHA-256 of the shared configuration.
pub fn digest(config: &Config) -> String {
    let mut hasher = Sha256::new();
    // Written into the hasher as encoded: a failure would be a type serde cannot encode,
    // which the tests below would have found.
    serde_json::to_writer(
        &mut HashWriter(&mut hasher),
        &(&config.pools, &config.records),
    )
    .expect("the config's shared part encodes as JSON");
    // Sites only when there are any: a configuration without them keeps its digest.
    if !config.sites.is_empty() {
        serde_json::to_writer(&mut HashWriter(&mut hasher), &config.sites)
            .expect("sites encode as JSON");
    }
    let hash = hasher.finalize();
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `io::Write` into a hasher, so that the JSON is never held whole.
struct HashWriter<'h>(&'h mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Check;

    fn config(text: &str) -> Config {
        let base = r#"
[dns]
listen = ["127.0.0.1:5300"]
zones_dir = "zones"

[[pool]]
name = "db"
check = "postgres"
[pool.postgres]
user = "hadns"
password = "secret"
[[pool.node]]
name = "pg1"
address = "10.0.0.1"
[[pool.node]]
name = "pg2"
address = "10.0.0.2"

[[record]]
name = "db.example.internal"
pool = "db"
select = "primary"
"#;
        let full = format!("{base}{text}");
        Config::from_toml(&full, std::path::Path::new("/etc/hadns"))
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn equal_configurations_agree_and_a_shared_change_does_not() {
        let a = config("");
        assert_eq!(digest(&a), digest(&config("")));
        assert_eq!(digest(&a).len(), 16);
        // Per member: not in the digest.
        assert_eq!(
            digest(&a),
            digest(&config("[admin]\nlisten = \"127.0.0.1:9153\"\n"))
        );
        let mut other = a.clone();
        other.pools[0].nodes[1].address = "10.0.0.3".parse().unwrap();
        assert_ne!(digest(&a), digest(&other));
        let mut other = a.clone();
        other.records[0].ttl += 1;
        assert_ne!(digest(&a), digest(&other));
    }

    #[test]
    fn passwords_stay_out_of_the_digest() {
        let a = config("");
        let mut other = a.clone();
        let Check::Postgres(db) = &mut other.pools[0].check else {
            panic!("a postgres pool");
        };
        db.password = Some("another".into());
        assert_eq!(digest(&a), digest(&other));
    }

    /// The encoding is part of what members compare: this value changes only when the
    /// shared configuration's types change (members of two versions then report a
    /// difference until all run the new one), never between two builds of one version.
    #[test]
    fn the_encoding_is_pinned() {
        assert_eq!(digest(&config("")), "47ac97ba6d828f44");
    }
}
