//! Field helpers shared by every section's validation: required strings, counts,
//! durations, programs and secret files, each problem named by its TOML path.

use std::path::Path;
use std::time::Duration;

use serde::de::{DeserializeOwned, IntoDeserializer, value::Error as ValueError};

use super::Problem;

/// Refuses a secret that other users can read or change (group access is allowed, for a
/// `hadns` group).
pub(super) fn private(file: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(format!(
            "{} is open to other users (mode {:o}): chmod o-rwx it (600 or 640)",
            file.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// A password or token file's content, without the line end after it.
pub(super) fn read_secret(file: &Path) -> Result<String, String> {
    std::fs::read_to_string(file)
        .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| format!("cannot read {}: {e}", file.display()))
}

/// A program and its arguments (`["/path/to/cmd", "arg"]`); never run through a shell.
pub(super) fn command(
    value: Option<Vec<String>>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<Vec<String>> {
    let command = value?;
    if command.is_empty() || command[0].is_empty() {
        problems.push(Problem::new(
            path,
            "must name a program: [\"/path/to/cmd\", \"arg\"]",
        ));
        return None;
    }
    Some(command)
}

/// An integer setting within `range`, or `default` when absent; out of range is a problem
/// that names the range.
pub(super) fn int_in_range(
    raw: Option<i64>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> i64 {
    match raw {
        None => default,
        Some(n) if range.contains(&n) => n,
        Some(n) => {
            problems.push(Problem::new(
                path,
                format!("{n} is out of range ({}-{})", range.start(), range.end()),
            ));
            default.clamp(*range.start(), *range.end())
        }
    }
}

/// Lower case with a trailing dot: names in the config are always absolute.
pub fn normalize_name(name: &str) -> String {
    let mut n = name.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

pub(super) fn required(
    value: Option<String>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match value {
        Some(v) if !v.trim().is_empty() => Some(v),
        Some(_) => {
            problems.push(Problem::new(path, "must not be empty"));
            None
        }
        None => {
            problems.push(Problem::new(path, "missing"));
            None
        }
    }
}

pub(super) fn count(
    value: Option<i64>,
    default: u32,
    path: &str,
    problems: &mut Vec<Problem>,
) -> u32 {
    match value {
        None => default,
        Some(n) if (1..=1000).contains(&n) => n as u32,
        Some(n) => {
            problems.push(Problem::new(path, format!("{n} is out of range (1-1000)")));
            default
        }
    }
}

/// A duration greater than zero; `default` when absent.
pub(super) fn duration(
    value: Option<toml::Value>,
    default: Duration,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Duration {
    let d = duration_or_zero(value, default, path, problems);
    if d.is_zero() {
        problems.push(Problem::new(path, "must be greater than zero"));
        return default;
    }
    d
}

/// A duration of at least `min`; `default` when absent. Below it is a problem naming the
/// floor.
pub(super) fn duration_at_least(
    value: Option<toml::Value>,
    default: Duration,
    min: Duration,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Duration {
    let d = duration_or_zero(value, default, path, problems);
    if d < min {
        problems.push(Problem::new(
            path,
            format!("{d:?} is below the floor of {min:?}"),
        ));
        return default;
    }
    d
}

/// A duration, zero allowed (`"0s"`: off); `default` when absent.
pub(super) fn duration_or_zero(
    value: Option<toml::Value>,
    default: Duration,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Duration {
    let parsed = match value {
        None => return default,
        Some(toml::Value::String(s)) => parse_duration(&s),
        Some(other) => Err(format!(
            "{other} has no unit; write it as a string such as \"200ms\" or \"2s\""
        )),
    };
    parsed.unwrap_or_else(|message| {
        problems.push(Problem::new(path, message));
        default
    })
}

/// `"200ms"`, `"2s"`, `"1.5s"`, `"1m"`, `"1h"` (and whatever else humantime reads, such as
/// `"1m 30s"`). A number without a unit is an error.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    use humantime::DurationError;
    humantime::parse_duration(s.trim()).map_err(|e| match e {
        DurationError::UnknownUnit { unit, .. } if unit.is_empty() => {
            format!("{s:?} has no unit (ms, s, m or h)")
        }
        DurationError::UnknownUnit { unit, .. } => {
            format!("{s:?} has an unknown unit {unit:?} (ms, s, m or h)")
        }
        DurationError::NumberOverflow => format!("{s:?} is out of range"),
        _ => format!("{s:?} is not a duration such as \"200ms\" or \"2s\""),
    })
}

/// A size: `"64MB"`, `"512kB"`, `"1GB"` (powers of 1024, as PostgreSQL writes sizes) or
/// `"100B"`.
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim() {
        "B" => 1,
        "kB" | "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?} is not a size such as \"64MB\" or \"512kB\""
            ));
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as \"64MB\""))?;
    Ok(n.saturating_mul(scale))
}

/// One of an enum's values, read through serde (its `rename`s are the names); `default`
/// when absent. Anything else is a problem: `unknown {what} "x" ({known})`.
pub(super) fn choice<T: DeserializeOwned>(
    value: Option<&str>,
    default: T,
    (what, known): (&str, &str),
    path: &str,
    problems: &mut Vec<Problem>,
) -> T {
    let Some(value) = value else {
        return default;
    };
    let parsed: Result<T, ValueError> = T::deserialize(value.into_deserializer());
    parsed.unwrap_or_else(|_| {
        problems.push(Problem::new(
            path,
            format!("unknown {what} {value:?} ({known})"),
        ));
        default
    })
}
