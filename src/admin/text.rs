//! What the CLI prints: `hadns status` and `hadns events` as text (tables with aligned
//! columns), from the documents `/status` and `/events` serve.

use std::fmt::Write as _;

use crate::api::event::EventRecord;
use crate::api::status::Status;

/// `hadns status` as tables: records, nodes, NOTIFY, cluster.
pub fn status(status: &Status) -> String {
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
    let promoting: Vec<_> = status
        .pools
        .iter()
        .filter_map(|p| p.promotion.as_ref().map(|promotion| (&p.name, promotion)))
        .collect();
    if !promoting.is_empty() {
        let mut rows = vec![vec![
            "POOL".into(),
            "PROMOTION".into(),
            "STATE".into(),
            "DETAIL".into(),
            "LAST".into(),
        ]];
        for (pool, p) in promoting {
            rows.push(promotion_row(pool, p));
        }
        out.push('\n');
        out.push_str(&table(&rows));
    }
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

/// One pool's promotion: mode, state (and step), why, and the last one's steps.
fn promotion_row(pool: &str, p: &crate::api::status::PromotionStatus) -> Vec<String> {
    let state = match &p.step {
        Some(step) => format!("{} ({step})", p.state),
        None => p.state.clone(),
    };
    let mut detail = p.detail.clone();
    if let Some(until) = &p.blocked_until {
        detail = format!("{detail} (blocked until {until})");
    }
    let last = p.last.as_ref().map_or("-".to_string(), |last| {
        let steps: Vec<String> = last
            .steps
            .iter()
            .map(|s| {
                let failed = if s.ok { "" } else { " FAILED" };
                format!("{} {} {:.0} ms{failed}", s.step, s.node, s.ms)
            })
            .collect();
        format!(
            "{} {} in place of {}: {} [{}]",
            last.started,
            last.candidate,
            last.old,
            last.outcome.as_deref().unwrap_or("running"),
            steps.join(", ")
        )
    });
    vec![pool.to_string(), p.mode.clone(), state, detail, last]
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
pub fn events(events: &[EventRecord]) -> String {
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
    out
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
