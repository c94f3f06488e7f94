//! The CLI side of the admin endpoint: `hadns status`, `events`, `drain`, `undrain`,
//! `reload`, talking to the `[admin]` endpoint named in the config.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Outcome;
use crate::api::event::EventRecord;
use crate::api::status::Status;
use crate::config::Config;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the admin endpoint is, and the token for the changing requests.
pub struct Endpoint {
    /// `http://127.0.0.1:9153`
    base: String,
    token: Option<String>,
}

impl Endpoint {
    /// From `--admin URL` when given, else the config's `[admin] listen`; the token from
    /// `--token-file`, else the config's `[admin] token_file`.
    pub fn locate(
        config_file: &Path,
        admin: Option<&str>,
        token_file: Option<&Path>,
    ) -> Result<Endpoint, String> {
        let from_config = || -> Result<crate::config::Admin, String> {
            let text = std::fs::read_to_string(config_file)
                .map_err(|e| format!("cannot read config file {}: {e}", config_file.display()))?;
            // Only [admin] matters here; problems elsewhere are for check-config.
            let (config, problems) = Config::parse(&text, crate::config::base_dir(config_file));
            let config = config.ok_or_else(|| {
                format!(
                    "{}: {}",
                    config_file.display(),
                    problems
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            config.admin.ok_or_else(|| {
                format!(
                    "{} has no [admin] section; add one (listen = \"127.0.0.1:9153\") or pass --admin URL",
                    config_file.display()
                )
            })
        };
        let (base, config_token_file) = match admin {
            // The config may still name the token file.
            Some(url) => (
                url.trim_end_matches('/').to_string(),
                from_config().ok().and_then(|a| a.token_file),
            ),
            None => {
                let admin = from_config()?;
                (format!("http://{}", admin.listen), admin.token_file)
            }
        };
        let token = match token_file.map(Path::to_path_buf).or(config_token_file) {
            Some(file) => Some(read_token(&file)?),
            None => None,
        };
        Ok(Endpoint { base, token })
    }

    async fn get(&self, path: &str) -> Result<String, String> {
        let url = format!("{}{path}", self.base);
        let response = client()?
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("cannot reach hadns at {url}: {e}"))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{url}: {status}: {}", body.trim()));
        }
        Ok(body)
    }

    async fn post(&self, path: &str) -> Result<String, String> {
        self.post_within(path, REQUEST_TIMEOUT).await
    }

    async fn post_within(&self, path: &str, timeout: Duration) -> Result<String, String> {
        let url = format!("{}{path}", self.base);
        let mut request = client()?.post(&url).timeout(timeout);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("cannot reach hadns at {url}: {e}"))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| format!("{url}: {e}"))?;
        let outcome: Outcome =
            serde_json::from_str(&body).map_err(|_| format!("{url}: {status}: {}", body.trim()))?;
        if outcome.ok {
            Ok(outcome.message)
        } else {
            let mut message = format!("{status}: {}", outcome.message);
            for problem in outcome.problems {
                let _ = write!(message, "\n  {problem}");
            }
            Err(message)
        }
    }
}

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

fn read_token(file: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(file)
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("cannot read token file {}: {e}", file.display()))
}

/// `hadns status`: tables, or the JSON as served with `json`.
pub async fn status(endpoint: &Endpoint, json: bool) -> Result<String, String> {
    let body = endpoint.get("/status").await?;
    if json {
        return Ok(body);
    }
    let status: Status =
        serde_json::from_str(&body).map_err(|e| format!("unexpected /status answer: {e}"))?;
    Ok(super::text::status(&status))
}

/// `hadns events`: one line per event, newest first, or the JSON as served with `json`.
pub async fn events(endpoint: &Endpoint, limit: usize, json: bool) -> Result<String, String> {
    let body = endpoint.get(&format!("/events?limit={limit}")).await?;
    if json {
        return Ok(body);
    }
    let events: Vec<EventRecord> =
        serde_json::from_str(&body).map_err(|e| format!("unexpected /events answer: {e}"))?;
    Ok(super::text::events(&events))
}

/// `hadns events --timeline`: the last `limit` answer changes drawn on a time axis.
pub async fn timeline(endpoint: &Endpoint, limit: usize) -> Result<String, String> {
    let body = endpoint.get(&format!("/timeline?limit={limit}")).await?;
    let doc: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("unexpected /timeline answer: {e}"))?;
    let timelines: Vec<crate::api::timeline::Timeline> =
        serde_json::from_value(doc["timelines"].clone())
            .map_err(|e| format!("unexpected /timeline answer: {e}"))?;
    Ok(super::timeline::text(&timelines))
}

pub async fn drain(
    endpoint: &Endpoint,
    pool: &str,
    node: &str,
    drained: bool,
) -> Result<String, String> {
    let verb = if drained { "drain" } else { "undrain" };
    endpoint
        .post(&format!("/pools/{pool}/nodes/{node}/{verb}"))
        .await
}

pub async fn reload(endpoint: &Endpoint) -> Result<String, String> {
    endpoint.post("/reload").await
}

/// How long `hadns promote` waits for the promotion to end.
const PROMOTE_TIMEOUT: Duration = Duration::from_secs(600);

pub async fn promote(
    endpoint: &Endpoint,
    pool: &str,
    node: Option<&str>,
    allow_data_loss: bool,
) -> Result<String, String> {
    let mut query = Vec::new();
    if let Some(node) = node {
        query.push(format!("node={node}"));
    }
    if allow_data_loss {
        query.push("allow_data_loss=true".into());
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    endpoint
        .post_within(&format!("/pools/{pool}/promote{query}"), PROMOTE_TIMEOUT)
        .await
}

pub async fn ack(endpoint: &Endpoint, pool: &str) -> Result<String, String> {
    endpoint.post(&format!("/pools/{pool}/ack")).await
}
