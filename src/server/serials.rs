//! Serials that never go backwards (`dns.serial_file`): a secondary ignores every change
//! until the serial passes its copy, so a zone's SOA serial must increase across restarts
//! and reloads. hadns reserves serials ahead: the file holds, per zone, a serial above any
//! it has published (the last one written + `RESERVE`); at start each zone begins at least
//! there, and the file is written again (before anything is served) and whenever a zone
//! reaches its reservation, so the disk sees one write per `RESERVE` changes, not one per
//! change, and a crash can lose no serial hadns has served.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dns::serial_after;

/// How far ahead serials are reserved.
pub const RESERVE: u32 = 1000;

const HEADER: &str = "# SOA serials reserved by hadns per zone, so that serials never go back across \
                      restarts.\n# Written by hadns; do not edit while it runs.\n\n";

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    reserved: BTreeMap<String, u32>,
}

/// The reservations, and where they are kept (`None`: nowhere, serials start from the
/// zone file's serial or the Unix time).
pub struct Serials {
    file: Option<PathBuf>,
    reserved: BTreeMap<String, u32>,
}

impl Serials {
    /// Reads the file; a missing one reserves nothing yet.
    pub fn load(file: Option<PathBuf>) -> Result<Serials, String> {
        let reserved = match &file {
            Some(path) => read(path)?,
            None => BTreeMap::new(),
        };
        Ok(Serials { file, reserved })
    }

    /// The floor of a zone's serial at start: what was reserved for it.
    pub fn floor(&self, origin: &str) -> Option<u32> {
        self.reserved.get(origin).copied()
    }

    /// Reserves ahead of `serials` (origin, current serial) where a zone reached its
    /// reservation (or has none); writes the file when something changed. The error names
    /// the file.
    pub fn reserve<'a>(
        &mut self,
        serials: impl IntoIterator<Item = (&'a str, u32)>,
    ) -> Result<(), String> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let mut changed = false;
        for (origin, serial) in serials {
            let reserved = self.reserved.get(origin).copied();
            if reserved.is_none_or(|r| !serial_after(r, serial)) {
                self.reserved
                    .insert(origin.to_string(), serial.wrapping_add(RESERVE).max(1));
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
        let text = toml::to_string(&File {
            reserved: self.reserved.clone(),
        })
        .map_err(|e| e.to_string())?;
        super::drains::replace_file(path, &format!("{HEADER}{text}"))
    }
}

fn read(path: &Path) -> Result<BTreeMap<String, u32>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    toml::from_str::<File>(&text)
        .map(|f| f.reserved)
        .map_err(|e| format!("{}: {}", path.display(), e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_written_ahead_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serials.toml");
        let mut serials = Serials::load(Some(path.clone())).unwrap();
        assert_eq!(serials.floor("example.internal."), None);
        serials
            .reserve([("example.internal.", 2026112401)])
            .unwrap();
        let reread = Serials::load(Some(path.clone())).unwrap();
        assert_eq!(
            reread.floor("example.internal."),
            Some(2026112401 + RESERVE)
        );
        // Below the reservation: nothing to write (the file is left alone).
        std::fs::remove_file(&path).unwrap();
        serials
            .reserve([("example.internal.", 2026112402)])
            .unwrap();
        assert!(!path.exists());
        // At the reservation: the next block.
        serials
            .reserve([("example.internal.", 2026112401 + RESERVE)])
            .unwrap();
        let reread = Serials::load(Some(path)).unwrap();
        assert_eq!(
            reread.floor("example.internal."),
            Some(2026112401 + 2 * RESERVE)
        );
    }

    #[test]
    fn serial_order_wraps() {
        assert!(serial_after(5, 4_294_967_290));
        assert!(!serial_after(4_294_967_290, 5));
        assert!(serial_after(2026112402, 2026112401));
        assert!(!serial_after(7, 7));
    }
}
