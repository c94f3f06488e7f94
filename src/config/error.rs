//! A configuration's problems, each located by its TOML path, and the error that lists them.

use std::fmt;
use std::path::PathBuf;

/// One problem, located by its TOML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", format_problems(.file, .problems))]
    Invalid {
        file: Option<PathBuf>,
        problems: Vec<Problem>,
    },
}

fn format_problems(file: &Option<PathBuf>, problems: &[Problem]) -> String {
    let origin = file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "config".to_string());
    let mut out = format!("{origin}: {} problem(s)", problems.len());
    for p in problems {
        out.push_str(&format!("\n  {p}"));
    }
    out
}
