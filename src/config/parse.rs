//! TOML text to a validated [`Config`], every problem with its path.

use std::path::Path;

use super::validate;
use super::{Config, Problem};

impl Config {
    /// Parses and validates TOML text; relative paths are resolved against `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, Vec<Problem>> {
        match Config::parse(text, base) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(problems),
        }
    }

    /// Like [`Config::from_toml`], but also returns what could be validated when there are
    /// problems (invalid records and pools left out), so later checks can still run and
    /// report theirs. `None` only when the text is not TOML of the right shape.
    pub fn parse(text: &str, base: &Path) -> (Option<Config>, Vec<Problem>) {
        let mut problems = Vec::new();
        let deserializer = match toml::Deserializer::parse(text) {
            Ok(d) => d,
            Err(e) => return (None, vec![toml_problem(&e)]),
        };
        let raw: validate::RawConfig = match serde_ignored::deserialize(deserializer, |path| {
            problems.push(Problem::new(toml_path(&path), "unknown key"));
        }) {
            Ok(raw) => raw,
            Err(e) => return (None, vec![toml_problem(&e)]),
        };
        let config = validate::validate(raw, base, &mut problems);
        (Some(config), problems)
    }
}

fn toml_problem(e: &toml::de::Error) -> Problem {
    Problem::new("", e.to_string().trim_end().replace('\n', "\n    "))
}

/// `pool.0.node.1.name` -> `pool[0].node[1].name`
fn toml_path(path: &serde_ignored::Path<'_>) -> String {
    let mut out = String::new();
    // `?` marks an optional table (`dns`, `admin`); it is not part of the TOML path.
    for part in path.to_string().split('.').filter(|p| *p != "?") {
        if part.chars().all(|c| c.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}
