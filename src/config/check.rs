//! Validation of a pool's check: `check = "..."` and its `[pool.http]`, `[pool.exec]`,
//! `[pool.postgres]` or `[pool.mysql]` section.

use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::fields::{choice, duration};
use super::*;

const DEFAULT_HTTP_PATH: &str = "/";
const DEFAULT_HTTP_STATUS: RangeInclusive<u16> = 200..=399;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Deserialize, Default)]
pub(super) struct RawDb {
    user: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
    dbname: Option<String>,
    sslmode: Option<String>,
    connect_timeout: Option<toml::Value>,
}

#[derive(Deserialize)]
pub(super) struct RawHttp {
    path: Option<String>,
    status: Option<toml::Value>,
    body: Option<String>,
    host: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RawExec {
    command: Option<Vec<String>>,
}

#[derive(Deserialize)]
pub(super) struct RawDns {
    name: Option<String>,
    #[serde(rename = "type")]
    qtype: Option<String>,
    expect: Option<String>,
}

const CHECKS: &str = "tcp | http | exec | postgres | mysql | dns";
/// The question types a `dns` check may ask.
const DNS_TYPES: &[&str] = &["A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT"];
/// The response codes a `dns` check may expect.
const RCODES: &[&str] = &[
    "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "NOTIMP", "FORMERR",
];

/// `check = "..."`: which section of the pool configures it.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum CheckKind {
    Tcp,
    Http,
    Exec,
    Postgres,
    Mysql,
    Dns,
}

/// A pool's check sections, as written.
pub(super) struct Sections<'a> {
    pub http: Option<&'a RawHttp>,
    pub exec: Option<&'a RawExec>,
    pub postgres: Option<&'a RawDb>,
    pub mysql: Option<&'a RawDb>,
    pub dns: Option<&'a RawDns>,
}

/// `check = "..."` and its section; a section of another check is a problem.
pub(super) fn validate_check(
    check: Option<&str>,
    raw: Sections<'_>,
    path: &str,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Check {
    if check.is_none() {
        problems.push(Problem::new(
            format!("{path}.check"),
            format!("missing ({CHECKS})"),
        ));
    }
    let kind = choice(
        check,
        CheckKind::Tcp,
        ("check", CHECKS),
        &format!("{path}.check"),
        problems,
    );
    let check = match kind {
        CheckKind::Tcp => Check::Tcp,
        CheckKind::Http => Check::Http(validate_http(raw.http, path, problems)),
        CheckKind::Exec => Check::Exec(validate_exec(raw.exec, path, problems)),
        CheckKind::Postgres => {
            Check::Postgres(validate_db(raw.postgres, "postgres", path, base, problems))
        }
        CheckKind::Mysql => Check::Mysql(validate_db(raw.mysql, "mysql", path, base, problems)),
        CheckKind::Dns => Check::Dns(validate_dns_check(
            raw.dns,
            &format!("{path}.dns"),
            problems,
        )),
    };
    let sections = [
        ("http", raw.http.is_some()),
        ("exec", raw.exec.is_some()),
        ("postgres", raw.postgres.is_some()),
        ("mysql", raw.mysql.is_some()),
        ("dns", raw.dns.is_some()),
    ];
    for (section, present) in sections {
        if present && check.kind() != section {
            problems.push(Problem::new(
                format!("{path}.{section}"),
                format!(
                    "only allowed with check = \"{section}\" (check is {:?})",
                    check.kind()
                ),
            ));
        }
    }
    check
}

/// A `dns` check's question, from the section at `section` (`pool[0].dns`).
pub(super) fn validate_dns_check(
    raw: Option<&RawDns>,
    section: &str,
    problems: &mut Vec<Problem>,
) -> DnsCheck {
    let Some(raw) = raw else {
        problems.push(Problem::new(
            section,
            "missing: check = \"dns\" needs [pool.dns] with the name to ask",
        ));
        return DnsCheck {
            name: String::new(),
            qtype: "A".into(),
            expect: DnsExpect::Answer,
        };
    };
    let name = super::fields::required(raw.name.clone(), &format!("{section}.name"), problems)
        .map(|n| normalize_name(&n))
        .unwrap_or_default();
    let qtype = raw.qtype.as_deref().unwrap_or("A").to_ascii_uppercase();
    if !DNS_TYPES.contains(&qtype.as_str()) {
        problems.push(Problem::new(
            format!("{section}.type"),
            format!("unknown type {qtype:?} ({})", DNS_TYPES.join(", ")),
        ));
    }
    let expect = match raw.expect.as_deref().map(str::trim) {
        None => DnsExpect::Answer,
        Some(text) => match text.parse::<IpAddr>() {
            Ok(address) => DnsExpect::Address(address),
            Err(_) if RCODES.contains(&text.to_ascii_uppercase().as_str()) => {
                DnsExpect::Rcode(text.to_ascii_uppercase())
            }
            Err(_) => {
                problems.push(Problem::new(
                    format!("{section}.expect"),
                    format!(
                        "{text:?} is neither an address nor a response code ({})",
                        RCODES.join(", ")
                    ),
                ));
                DnsExpect::Answer
            }
        },
    };
    DnsCheck {
        name,
        qtype,
        expect,
    }
}

fn validate_db(
    raw: Option<&RawDb>,
    kind: &str,
    path: &str,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> DbCheck {
    let section = format!("{path}.{kind}");
    let default_user = if kind == "postgres" {
        "postgres"
    } else {
        "root"
    };
    let empty = RawDb::default();
    let raw = raw.unwrap_or(&empty);
    if raw.password.is_some() && raw.password_file.is_some() {
        problems.push(Problem::new(
            format!("{section}.password_file"),
            "set password or password_file, not both",
        ));
    }
    let password = match &raw.password_file {
        None => raw.password.clone(),
        Some(file) => {
            let file = base.join(file);
            super::fields::read_secret(&file)
                .map_err(|m| problems.push(Problem::new(format!("{section}.password_file"), m)))
                .ok()
        }
    };
    let sslmode = choice(
        raw.sslmode.as_deref(),
        SslMode::Prefer,
        ("value", "disable | prefer | require"),
        &format!("{section}.sslmode"),
        problems,
    );
    DbCheck {
        user: raw.user.clone().unwrap_or_else(|| default_user.to_string()),
        password,
        dbname: raw.dbname.clone(),
        sslmode,
        connect_timeout: duration(
            raw.connect_timeout.clone(),
            DEFAULT_CONNECT_TIMEOUT,
            &format!("{section}.connect_timeout"),
            problems,
        ),
    }
}

fn validate_http(raw: Option<&RawHttp>, path: &str, problems: &mut Vec<Problem>) -> HttpCheck {
    let Some(raw) = raw else {
        return HttpCheck {
            path: DEFAULT_HTTP_PATH.to_string(),
            status: vec![DEFAULT_HTTP_STATUS],
            body: None,
            host: None,
        };
    };
    let http_path = raw
        .path
        .clone()
        .unwrap_or_else(|| DEFAULT_HTTP_PATH.to_string());
    if !http_path.starts_with('/') {
        problems.push(Problem::new(
            format!("{path}.http.path"),
            format!("{http_path:?} must start with \"/\""),
        ));
    }
    let status = match &raw.status {
        None => vec![DEFAULT_HTTP_STATUS],
        Some(value) => parse_status(value).unwrap_or_else(|message| {
            problems.push(Problem::new(format!("{path}.http.status"), message));
            Vec::new()
        }),
    };
    HttpCheck {
        path: http_path,
        status,
        body: raw.body.clone(),
        host: raw.host.clone(),
    }
}

/// `200`, `"200-299"`, `"200,204"` or a list of those.
pub(super) fn parse_status(value: &toml::Value) -> Result<Vec<RangeInclusive<u16>>, String> {
    let bad = || format!("{value} is not a status code, a range (\"200-399\") or a list of them",);
    let items: Vec<&toml::Value> = match value {
        toml::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            toml::Value::Integer(n) => {
                let code = u16::try_from(*n).map_err(|_| bad())?;
                out.push(code..=code);
            }
            toml::Value::String(s) => {
                for part in s.split(',').map(str::trim) {
                    let (lo, hi) = part.split_once('-').unwrap_or((part, part));
                    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
                    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
                    if !(100..=599).contains(&lo) || !(lo..=599).contains(&hi) {
                        return Err(bad());
                    }
                    out.push(lo..=hi);
                }
            }
            _ => return Err(bad()),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

fn validate_exec(raw: Option<&RawExec>, path: &str, problems: &mut Vec<Problem>) -> ExecCheck {
    let command = raw.and_then(|r| r.command.clone()).unwrap_or_default();
    if command.is_empty() || command[0].is_empty() {
        problems.push(Problem::new(
            format!("{path}.exec.command"),
            "check = \"exec\" needs a command: [pool.exec] command = [\"/path/to/check\", \"arg\"]",
        ));
    }
    ExecCheck { command }
}
