//! `[admin]`: where the endpoint listens, its token, the event log's length, the drain
//! file, and the host names it answers to.

use std::path::Path;

use serde::Deserialize;

use super::fields::{private, read_secret};
use super::*;

const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9153";
const DEFAULT_ADMIN_EVENTS: usize = 1000;

#[derive(Deserialize, Default)]
pub(super) struct RawAdmin {
    listen: Option<String>,
    token_file: Option<String>,
    events: Option<i64>,
    drain_file: Option<String>,
    hosts: Option<Vec<String>>,
}

pub(super) fn validate_admin(raw: RawAdmin, base: &Path, problems: &mut Vec<Problem>) -> Admin {
    let text = raw.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    let listen = text.parse::<SocketAddr>().unwrap_or_else(|_| {
        problems.push(Problem::new(
            "admin.listen",
            format!("{text:?} is not an address with a port (\"127.0.0.1:9153\")"),
        ));
        DEFAULT_ADMIN_LISTEN
            .parse()
            .expect("the default is an address")
    });
    let token_file = raw.token_file.map(|f| base.join(f));
    let token = token_file.as_ref().and_then(|file| {
        match read_secret(file).map(|t| t.trim().to_string()) {
            Ok(token) if token.is_empty() => {
                problems.push(Problem::new(
                    "admin.token_file",
                    format!("{} is empty", file.display()),
                ));
                None
            }
            Ok(token) => match private(file) {
                Ok(()) => Some(token),
                Err(message) => {
                    problems.push(Problem::new("admin.token_file", message));
                    None
                }
            },
            Err(message) => {
                problems.push(Problem::new("admin.token_file", message));
                None
            }
        }
    });
    let events = match raw.events {
        None => DEFAULT_ADMIN_EVENTS,
        Some(n) if (1..=100_000).contains(&n) => n as usize,
        Some(n) => {
            problems.push(Problem::new(
                "admin.events",
                format!("{n} is out of range (1-100000)"),
            ));
            DEFAULT_ADMIN_EVENTS
        }
    };
    Admin {
        listen,
        token_file,
        token,
        events,
        drain_file: raw.drain_file.map(|f| base.join(f)),
        hosts: raw
            .hosts
            .unwrap_or_default()
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
    }
}
