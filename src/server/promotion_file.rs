//! What a restart must not forget about promotions: each pool's deposed nodes (an old
//! primary that comes back writable after hadns restarted is still fenced, never
//! answered) and its block. Kept in `promotions.toml` beside `[admin] drain_file`; without
//! a drain file, in memory only.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const HEADER: &str = "# hadns: promotion state per pool (deposed old primaries, the block), \
                      kept across restarts.\n# Written by hadns; delete an entry only when \
                      that node is no longer a danger.\n";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    #[serde(default)]
    pub pool: Vec<SavedPool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedPool {
    pub name: String,
    #[serde(default)]
    pub deposed: Vec<String>,
    /// No automatic promotion before this (milliseconds since the Unix epoch).
    #[serde(default)]
    pub blocked_until_unix_ms: Option<u64>,
}

/// `promotions.toml` beside the drain file, if there is one.
pub fn path(drain_file: Option<&Path>) -> Option<PathBuf> {
    drain_file.map(|d| d.with_file_name("promotions.toml"))
}

/// The saved state; an absent file is an empty one.
pub fn load(path: &Path) -> Result<Saved, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Saved::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces the file with `saved` (a new file renamed over the old).
pub fn save(path: &Path, saved: &Saved) -> Result<(), String> {
    let text = toml::to_string(saved).map_err(|e| e.to_string())?;
    super::drains::replace_file(path, &format!("{HEADER}{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(Some(&dir.path().join("drained.toml"))).unwrap();
        assert_eq!(load(&file), Ok(Saved::default()));
        let saved = Saved {
            pool: vec![SavedPool {
                name: "db".into(),
                deposed: vec!["m1".into()],
                blocked_until_unix_ms: Some(1_800_000_000_000),
            }],
        };
        save(&file, &saved).unwrap();
        assert_eq!(load(&file), Ok(saved));
        std::fs::write(&file, "pool = 3").unwrap();
        assert!(load(&file).unwrap_err().contains("promotions.toml"));
        // A file that cannot be written (its directory gone, a full disk) is an error that
        // names it; the old file is left as it was.
        let gone = dir.path().join("gone/promotions.toml");
        let error = save(&gone, &Saved::default()).unwrap_err();
        assert!(error.contains("gone/promotions.toml"), "{error}");
    }
}
