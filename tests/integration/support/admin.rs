//! A client of the admin endpoint: its section in a config, the token, GET and POST,
//! reading /status, /events and /metrics, the CLI, and the status page in a browser.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{Hadns, hadns_command};

pub const TOKEN: &str = "s3cret-token";

/// `[admin]` on an ephemeral port, with a token file when `token` is set.
pub fn admin_section(token: bool) -> String {
    let token = if token {
        "token_file = \"admin.token\"\n"
    } else {
        ""
    };
    format!("\n[admin]\nlisten = \"127.0.0.1:0\"\n{token}")
}

pub fn write_token(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let file = dir.join("admin.token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub async fn post(admin: SocketAddr, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(format!("http://{admin}{path}"));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("POST {path}: {body}")),
    )
}

/// The kinds of the recent events, newest first.
pub async fn event_kinds(admin: SocketAddr) -> Vec<String> {
    get_json(admin, "/events")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The node `name` of pool `pool` in a /status document.
pub fn node<'a>(status: &'a Value, pool: &str, name: &str) -> &'a Value {
    status["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == pool)
        .and_then(|p| {
            p["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["name"] == name)
        })
        .unwrap_or_else(|| panic!("no node {pool}/{name} in {status}"))
}

pub fn record<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no record {name} in {status}"))
}

/// The value of the sample `name{labels}` in a Prometheus text exposition.
pub fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap();
            series.split('{').next() == Some(name)
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
}

/// Runs `hadns ARGS --admin URL --config FILE`: the config names port 0, so the test
/// passes the bound address.
pub async fn cli(hadns: &mut Hadns, args: &[&str]) -> (bool, String, String) {
    let admin = format!("http://{}", hadns.admin().await);
    let mut args = args.to_vec();
    args.extend(["--admin", &admin]);
    let output = hadns_command(&args, &hadns.config_path())
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// GET `path` from an admin endpoint: the status code and the body.
pub async fn get(admin: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{admin}{path}")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// GET a JSON document (status 200 asserted).
pub async fn get_json(admin: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = get(admin, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Runs headless Chromium on `url` and returns the DOM after its scripts ran.
pub async fn browser_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut chromium = tokio::process::Command::new("chromium");
    chromium
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), chromium.output())
        .await
        .expect("chromium finished within 120 s")
        .expect("chromium runs (scripts/test.sh installs it)");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
