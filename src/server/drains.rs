//! The drain file (`[admin] drain_file`): the nodes an operator drained, kept across
//! restarts. hadns reads it at start and rewrites it (a new file renamed over the old) before
//! it applies each drain or undrain, so the file never says less than the running server.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One drained node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drained {
    pub pool: String,
    pub node: String,
    /// When it was drained (RFC 3339), for the operator reading the file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub since: String,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    drained: Vec<Drained>,
}

const HEADER: &str = "# Nodes drained with `hadns drain`, kept across restarts. Written by hadns \
                      before each drain or undrain;\n# read at start. Change it with `hadns drain` \
                      and `hadns undrain`, or by hand only while hadns is stopped.\n\n";

/// The drained nodes in `path`; a file that does not exist means none.
pub fn load(path: &Path) -> Result<Vec<Drained>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    toml::from_str::<File>(&text)
        .map(|f| f.drained)
        .map_err(|e| format!("{}: {}", path.display(), e.message()))
}

/// Replaces `path` with `drained`: written to a temporary file beside it, flushed to disk,
/// then renamed over it, so a crash leaves either the old file or the new one.
pub fn save(path: &Path, drained: &[Drained]) -> Result<(), String> {
    let text = toml::to_string(&File {
        drained: drained.to_vec(),
    })
    .map_err(|e| e.to_string())?;
    replace_file(path, &format!("{HEADER}{text}"))
}

/// Replaces `path` with `text`: written to a temporary file beside it, flushed to disk,
/// then renamed over it, so a crash leaves either the old file or the new one.
pub fn replace_file(path: &Path, text: &str) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let mut file = std::fs::File::create(&temporary).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&temporary, path).map_err(fail)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the directory is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)?;
    }
    Ok(())
}

/// The drained nodes by name, as the drain file has them (kept without a file too); the
/// engine's `drained` flags are set from it.
pub struct Drains {
    list: Vec<Drained>,
    file: Option<PathBuf>,
}

impl Drains {
    pub fn new(list: Vec<Drained>, file: Option<PathBuf>) -> Drains {
        Drains { list, file }
    }

    /// The file of a reloaded configuration (it may have moved or gone).
    pub fn set_file(&mut self, file: Option<PathBuf>) {
        self.file = file;
    }

    /// Keeps the entries `find` knows and returns their nodes; an entry naming a node the
    /// configuration does not have is dropped with a warning. The flag says whether
    /// anything was dropped.
    pub fn resolve<T>(&mut self, find: impl Fn(&str, &str) -> Result<T, String>) -> (Vec<T>, bool) {
        let listed = std::mem::take(&mut self.list);
        let count = listed.len();
        let mut found = Vec::new();
        for drain in listed {
            match find(&drain.pool, &drain.node) {
                Ok(node) => {
                    found.push(node);
                    self.list.push(drain);
                }
                Err(e) => {
                    tracing::warn!(pool = %drain.pool, node = %drain.node, since = %drain.since,
                    "a drained node is not in the configuration ({e}); its drain is dropped")
                }
            }
        }
        let dropped = self.list.len() != count;
        (found, dropped)
    }

    /// Drains or undrains one node: the new list is written to the file first (off the
    /// runtime's threads: a busy disk may take a while); if that fails nothing changes.
    pub async fn set(&mut self, pool: &str, node: &str, drained: bool) -> Result<(), String> {
        let mut next: Vec<Drained> = self
            .list
            .iter()
            .filter(|d| !(d.pool == pool && d.node == node))
            .cloned()
            .collect();
        if drained {
            next.push(Drained {
                pool: pool.to_string(),
                node: node.to_string(),
                since: crate::api::event::rfc3339(std::time::SystemTime::now()),
            });
        }
        self.save_list(next.clone()).await?;
        self.list = next;
        Ok(())
    }

    /// Writes the list to the file, if there is one.
    pub async fn save(&self) -> Result<(), String> {
        self.save_list(self.list.clone()).await
    }

    async fn save_list(&self, list: Vec<Drained>) -> Result<(), String> {
        let Some(file) = self.file.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || save(&file, &list))
            .await
            .map_err(|e| e.to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_drains_load_back_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drained.toml");
        assert_eq!(load(&path), Ok(Vec::new()));
        let drained = vec![
            Drained {
                pool: "web".into(),
                node: "web1".into(),
                since: "2026-11-23T19:00:00Z".into(),
            },
            Drained {
                pool: "db".into(),
                node: "pg \"2\"".into(),
                since: String::new(),
            },
        ];
        save(&path, &drained).unwrap();
        assert_eq!(load(&path), Ok(drained));
        save(&path, &[]).unwrap();
        assert_eq!(load(&path), Ok(Vec::new()));
        assert!(!dir.path().join("drained.toml.new").exists());
    }

    #[test]
    fn a_broken_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drained.toml");
        std::fs::write(&path, "[[drained]]\npool = \"web\"\nnod = \"web1\"\n").unwrap();
        let error = load(&path).unwrap_err();
        assert!(error.starts_with(&path.display().to_string()), "{error}");
        assert!(error.contains("nod"), "{error}");
    }
}
