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
        let url = format!("{}{path}", self.base);
        let mut request = client()?.post(&url);
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
    Ok(format_status(&status))
}

pub fn format_status(status: &Status) -> String {
    let mut out = format!(
        "hadns {} · started {} · {}\n",
        status.version,
        status.started,
        if status.ready {
            "ready"
        } else {
            "first round of checks in progress"
        }
    );
    let zones: Vec<String> = status
        .zones
        .iter()
        .map(|z| format!("{} serial {}", z.name, z.serial))
        .collect();
    let _ = writeln!(out, "zones: {}\n", zones.join(", "));
    let mut records = vec![vec![
        "RECORD".into(),
        "ANSWER".into(),
        "SINCE".into(),
        "REASON".into(),
    ]];
    for r in &status.records {
        let mut answer = r.describe.clone();
        if r.stale {
            answer.push_str(" (stale)");
        }
        if !r.split_brain.is_empty() {
            answer.push_str(&format!(" (split brain: {})", r.split_brain.join(",")));
        }
        records.push(vec![
            r.name.clone(),
            answer,
            r.since.clone().unwrap_or_else(|| "-".into()),
            r.reason.clone(),
        ]);
    }
    out.push_str(&table(&records));
    for r in &status.records {
        for (node, why) in &r.left_out {
            let _ = writeln!(out, "{} leaves out {node}: {why}", r.name);
        }
        for site in &r.sites {
            let _ = writeln!(out, "{} for site {}: {}", r.name, site.site, site.describe);
        }
    }
    out.push('\n');
    let mut nodes = vec![vec![
        "POOL".into(),
        "NODE".into(),
        "ADDRESS".into(),
        "HEALTH".into(),
        "ROLE".into(),
        "LAST PROBE".into(),
        "OK/FAIL".into(),
        "FLAGS".into(),
    ]];
    for pool in &status.pools {
        nodes.extend(pool.nodes.iter().map(|n| node_row(&pool.name, n)));
    }
    out.push_str(&table(&nodes));
    if !status.notify.is_empty() {
        let mut notify = vec![vec![
            "NOTIFY TARGET".into(),
            "ZONE".into(),
            "STATE".into(),
            "SERIAL".into(),
            "ACKNOWLEDGED".into(),
            "PROBLEM".into(),
        ]];
        for n in &status.notify {
            notify.push(vec![
                n.target.clone(),
                n.zone.clone(),
                n.state.to_string(),
                n.serial.to_string(),
                n.acknowledged.map_or("-".into(), |a| a.to_string()),
                n.problem.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push('\n');
        out.push_str(&table(&notify));
    }
    if let Some(cluster) = &status.cluster {
        out.push('\n');
        out.push_str(&format_cluster(cluster));
    }
    out
}

/// Cluster mode: this member, the leader, the served decision, each member's view.
fn format_cluster(c: &crate::api::status::ClusterStatus) -> String {
    let connection = if c.connected {
        "connected to etcd".to_string()
    } else {
        format!(
            "CUT OFF from etcd ({}){}",
            c.lost_reason.as_deref().unwrap_or("not connected yet"),
            if c.expired {
                ", longer than the lease"
            } else {
                ""
            }
        )
    };
    let mut out = format!(
        "cluster: member {} · {connection} · leader {}{} · serving {}",
        c.name,
        c.leader.as_deref().unwrap_or("none"),
        if c.leading { " (this member)" } else { "" },
        c.serving,
    );
    if let (Some(decision), Some(epoch), Some(age)) = (c.decision, c.epoch, c.decision_age_seconds)
    {
        let _ = write!(out, " · decision {decision} (epoch {epoch}, {age:.1}s old)");
    }
    out.push('\n');
    if c.config_differs_from_leader {
        let _ = writeln!(
            out,
            "WARNING: this member's pools and records differ from the leader's (digest {})",
            c.config_digest
        );
    }
    let names: Vec<String> = c.members.iter().map(|m| m.name.clone()).collect();
    let mut rows = vec![
        ["POOL", "NODE"]
            .iter()
            .map(|s| s.to_string())
            .chain(names.iter().map(|n| n.to_uppercase()))
            .chain(["MERGED".to_string()])
            .collect::<Vec<_>>(),
    ];
    for node in &c.nodes {
        let mut row = vec![node.pool.clone(), node.node.clone()];
        row.extend(names.iter().map(|m| {
            node.views
                .get(m)
                .map_or_else(|| "-".to_string(), |h| h.to_string())
        }));
        row.push(node.merged.clone());
        rows.push(row);
    }
    out.push_str(&table(&rows));
    out
}

/// One row of the node table.
fn node_row(pool: &str, n: &crate::api::status::NodeStatus) -> Vec<String> {
    let role = match (&n.role, n.lag_seconds) {
        (None, _) => "-".to_string(),
        (Some(role), Some(s)) => match (n.lag_bytes, n.lag_transactions) {
            (Some(b), _) => format!("{role} lag {s:.1}s {b}B"),
            (_, Some(t)) => format!("{role} lag {s:.1}s {t}tx"),
            _ => format!("{role} lag {s:.1}s"),
        },
        (Some(role), None) => role.to_string(),
    };
    let probe = n
        .last_probe
        .as_ref()
        .map(|p| {
            format!(
                "{} {:.1}ms {}",
                if p.ok { "ok" } else { "failed" },
                p.latency_ms,
                p.detail
            )
        })
        .unwrap_or_else(|| "-".into());
    let mut flags = Vec::new();
    if n.drained {
        flags.push("drained".to_string());
    }
    if n.stale {
        flags.push("stale".to_string());
    }
    if let Some(cluster) = &n.excluded_cluster {
        flags.push(format!("other-cluster:{cluster}"));
    }
    if n.fence.as_ref().is_some_and(|f| f.result == "fence_failed") {
        flags.push("fence-failed".to_string());
    }
    flags.extend(n.answered_by.iter().map(|r| format!("answers:{r}")));
    let address = match n.port {
        Some(port) if n.address.contains(':') => format!("[{}]:{port}", n.address),
        Some(port) => format!("{}:{port}", n.address),
        None => n.address.clone(),
    };
    vec![
        pool.to_string(),
        n.name.clone(),
        address,
        n.health.to_string(),
        role,
        probe,
        format!("{}/{}", n.successes, n.failures),
        flags.join(" "),
    ]
}

/// `hadns events`: one line per event, newest first.
pub async fn events(endpoint: &Endpoint, limit: usize, json: bool) -> Result<String, String> {
    let body = endpoint.get(&format!("/events?limit={limit}")).await?;
    if json {
        return Ok(body);
    }
    let events: Vec<EventRecord> =
        serde_json::from_str(&body).map_err(|e| format!("unexpected /events answer: {e}"))?;
    let mut out = String::new();
    for e in events {
        let subject = e
            .record
            .clone()
            .or_else(|| match (&e.pool, &e.node) {
                (Some(p), Some(n)) => Some(format!("{p}/{n}")),
                (Some(p), None) => Some(p.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let change = match (&e.from, &e.to) {
            (Some(from), Some(to)) => format!(" {from} -> {to}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{} {} {}{}: {}",
            e.time, e.kind, subject, change, e.message
        );
    }
    Ok(out)
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

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, text) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(text);
            } else {
                let _ = write!(line, "{text:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
