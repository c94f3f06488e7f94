//! Reading a configuration and its zones before anything is bound: at start (`main.rs`,
//! the demo) and for every reload.

use std::path::Path;

use crate::config::{self, Config, ConfigError};
use crate::dns::ZoneSet;

/// A configuration and its zones, checked against each other. Nothing is bound yet.
pub struct Prepared {
    pub config: Config,
    pub zones: ZoneSet,
    /// The nodes `[admin] drain_file` says are drained (applied at start).
    pub drained: Vec<super::Drained>,
}

/// The largest config file read (far above any real one: 20,000 nodes fit in 2 MiB).
const MAX_CONFIG_SIZE: u64 = 8 << 20;

/// Reads and validates the config file and its zone files, reporting every problem.
pub fn prepare(path: &Path) -> Result<Prepared, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_CONFIG_SIZE {
        return Err(read_error(std::io::Error::other(format!(
            "{size} bytes; a config file has at most {MAX_CONFIG_SIZE}"
        ))));
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    prepare_str(&text, config::base_dir(path)).map_err(|problems| ConfigError::Invalid {
        file: Some(path.to_path_buf()),
        problems,
    })
}

/// [`prepare`] for config text; relative paths are resolved against `base`.
pub fn prepare_str(text: &str, base: &Path) -> Result<Prepared, Vec<config::Problem>> {
    let (config, mut problems) = Config::parse(text, base);
    let Some(config) = config else {
        return Err(problems);
    };
    let drained = match config.admin.as_ref().and_then(|a| a.drain_file.as_deref()) {
        Some(file) => super::drains::load(file).unwrap_or_else(|message| {
            problems.push(config::Problem::new("admin.drain_file", message));
            Vec::new()
        }),
        None => Vec::new(),
    };
    match ZoneSet::load(&config.dns.zones_dir) {
        Ok(zones) => {
            problems.extend(zones.check_records(&config));
            problems.extend(zones.check_transfer(&config));
            if problems.is_empty() {
                return Ok(Prepared {
                    config,
                    zones,
                    drained,
                });
            }
        }
        Err(zone_problems) => problems.extend(zone_problems),
    }
    Err(problems)
}
