//! `[cluster]`: several hadns members agreeing through etcd (docs/cluster.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::Problem;
use super::fields::{choice, duration_at_least, private, read_secret, required};

#[derive(Deserialize, Default)]
pub(super) struct RawCluster {
    name: Option<String>,
    members: Option<Vec<String>>,
    etcd: Option<Vec<String>>,
    prefix: Option<String>,
    lease: Option<toml::Value>,
    on_lost: Option<String>,
    writers_on_lost: Option<String>,
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    user: Option<String>,
    password_file: Option<String>,
}

/// `[cluster]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// This member's name, unique in the cluster.
    pub name: String,
    /// Every member's name, this one's included: a node moves only when a majority of
    /// them say so, and only their views count.
    pub members: Vec<String>,
    /// etcd endpoints (`http://host:port` or `https://host:port`).
    pub etcd: Vec<String>,
    /// Every key hadns writes starts with it; it ends with `/`.
    pub prefix: String,
    /// This member's lease: its observations, and its leadership, die with it.
    pub lease: Duration,
    /// What `healthy` and `replicas` records answer once cut off from etcd.
    pub on_lost: OnLost,
    /// What records that name one writer (`primary`, `first`) answer once this member
    /// cannot know that its view is current (`writers_until`): SERVFAIL unless `keep` is
    /// chosen, which risks two writers named at once across a partition.
    pub writers_on_lost: OnLost,
    pub tls: Option<Tls>,
    /// etcd user and password (read from `password_file`).
    pub auth: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, both or neither.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// What a member cut off from etcd answers for failover names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLost {
    /// The last agreed answers.
    Keep,
    /// SERVFAIL (clients try another server).
    Servfail,
}

impl Cluster {
    /// Until when a member may name a writer after etcd last confirmed its lease: from
    /// when that keepalive was sent, the lease less a tenth (at least 100 ms) for the
    /// clocks' rates and the answers in flight. etcd counts the lease from when it
    /// received the keepalive, later than it was sent, so the member stops before etcd
    /// drops its keys and the others may move on.
    pub fn writers_until(&self, keepalive_sent: std::time::Instant) -> std::time::Instant {
        let margin = (self.lease / 10).max(Duration::from_millis(100));
        keepalive_sent + self.lease.saturating_sub(margin)
    }
}

const DEFAULT_PREFIX: &str = "/hadns/";
const DEFAULT_LEASE: Duration = Duration::from_secs(3);
/// etcd leases are whole seconds, at least its own minimum.
const MIN_LEASE: Duration = Duration::from_secs(2);

pub(super) fn validate_cluster(
    raw: RawCluster,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Cluster {
    let name = required(raw.name, "cluster.name", problems).unwrap_or_default();
    if name.contains('/') {
        problems.push(Problem::new(
            "cluster.name",
            format!("{name:?} must not contain '/'"),
        ));
    }
    let members = members(raw.members, &name, problems);
    let (etcd, https) = endpoints(raw.etcd.unwrap_or_default(), problems);
    let mut prefix = raw.prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_string());
    if !prefix.starts_with('/') {
        problems.push(Problem::new(
            "cluster.prefix",
            format!("{prefix:?} must start with '/'"),
        ));
    }
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    let lease = duration_at_least(
        raw.lease,
        DEFAULT_LEASE,
        MIN_LEASE,
        "cluster.lease",
        problems,
    );
    if lease.subsec_nanos() != 0 {
        problems.push(Problem::new(
            "cluster.lease",
            format!("{lease:?}: etcd leases are whole seconds"),
        ));
    }
    let on_lost = choice(
        raw.on_lost.as_deref(),
        OnLost::Keep,
        ("on_lost", "keep, servfail"),
        "cluster.on_lost",
        problems,
    );
    let writers_on_lost = choice(
        raw.writers_on_lost.as_deref(),
        OnLost::Servfail,
        ("writers_on_lost", "servfail, keep"),
        "cluster.writers_on_lost",
        problems,
    );
    let tls = tls(
        [raw.ca_file, raw.cert_file, raw.key_file],
        base,
        https,
        problems,
    );
    let auth = auth(raw.user, raw.password_file, base, problems);
    Cluster {
        name,
        members,
        etcd,
        prefix,
        lease,
        on_lost,
        writers_on_lost,
        tls,
        auth,
    }
}

/// Every member's name: required, each once, this member's among them.
fn members(raw: Option<Vec<String>>, name: &str, problems: &mut Vec<Problem>) -> Vec<String> {
    let Some(members) = raw.filter(|m| !m.is_empty()) else {
        problems.push(Problem::new(
            "cluster.members",
            "list every member's name ([\"dc1\", \"dc2\", \"dc3\"]): an answer moves only when a \
             majority of them say so",
        ));
        return Vec::new();
    };
    for (i, member) in members.iter().enumerate() {
        if members[..i].contains(member) {
            problems.push(Problem::new(
                format!("cluster.members[{i}]"),
                format!("{member:?} is listed twice"),
            ));
        }
    }
    if !name.is_empty() && !members.iter().any(|m| m == name) {
        problems.push(Problem::new(
            "cluster.members",
            format!("does not list this member's own name {name:?}"),
        ));
    }
    members
}

/// The etcd endpoints, each checked, and whether they are https (they may not mix).
fn endpoints(etcd: Vec<String>, problems: &mut Vec<Problem>) -> (Vec<String>, bool) {
    if etcd.is_empty() {
        problems.push(Problem::new(
            "cluster.etcd",
            "needs at least one endpoint (\"http://10.0.0.5:2379\")",
        ));
    }
    let https = etcd.iter().any(|e| e.starts_with("https://"));
    for (i, endpoint) in etcd.iter().enumerate() {
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"));
        if !rest.is_some_and(|r| !r.is_empty() && r.contains(':')) {
            problems.push(Problem::new(
                format!("cluster.etcd[{i}]"),
                format!("{endpoint:?} is not an endpoint such as \"http://10.0.0.5:2379\""),
            ));
        } else if https != endpoint.starts_with("https://") {
            problems.push(Problem::new(
                format!("cluster.etcd[{i}]"),
                format!("{endpoint:?}: the endpoints mix http and https"),
            ));
        }
    }
    (etcd, https)
}

/// `ca_file`, `cert_file` and `key_file` (relative to `base`), each readable: TLS to etcd
/// when any is given, which needs https endpoints.
fn tls(
    files: [Option<String>; 3],
    base: &Path,
    https: bool,
    problems: &mut Vec<Problem>,
) -> Option<Tls> {
    let file = |f: Option<String>| f.map(|f| base.join(f));
    let [ca_file, cert_file, key_file] = files.map(file);
    for (key, f) in [
        ("cluster.ca_file", &ca_file),
        ("cluster.cert_file", &cert_file),
        ("cluster.key_file", &key_file),
    ] {
        if let Some(f) = f
            && let Err(e) = std::fs::metadata(f)
        {
            problems.push(Problem::new(key, format!("{}: {e}", f.display())));
        }
    }
    let identity = match (cert_file, key_file) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            problems.push(Problem::new(
                "cluster.cert_file",
                "cert_file and key_file go together",
            ));
            None
        }
    };
    let tls = (ca_file.is_some() || identity.is_some()).then_some(Tls { ca_file, identity });
    if tls.is_some() && !https {
        problems.push(Problem::new(
            "cluster.ca_file",
            "TLS files need https:// endpoints",
        ));
    }
    tls
}

/// `user` and the password in `password_file` (relative to `base`, private): etcd's
/// authentication, when both are given.
fn auth(
    user: Option<String>,
    password_file: Option<String>,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Option<(String, String)> {
    match (user, password_file) {
        (Some(user), Some(file)) => {
            let file = base.join(file);
            match read_secret(&file).map(|p| p.trim().to_string()) {
                Ok(password) => match private(&file) {
                    Ok(()) => Some((user, password)),
                    Err(message) => {
                        problems.push(Problem::new("cluster.password_file", message));
                        None
                    }
                },
                Err(message) => {
                    problems.push(Problem::new("cluster.password_file", message));
                    None
                }
            }
        }
        (None, None) => None,
        _ => {
            problems.push(Problem::new(
                "cluster.user",
                "user and password_file go together",
            ));
            None
        }
    }
}
