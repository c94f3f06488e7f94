//! contrib/: the Prometheus alert rules pass `promtool test rules`, the Grafana dashboard's
//! queries are PromQL, and both select only series a running hadns exports (names and the
//! label values of hadns's vocabulary), so a renamed metric or label breaks the build.

use std::process::Command;
use std::time::Duration;

use crate::support::admin::admin_section;
use crate::support::contrib::{self, dashboard_queries, referenced, unmet};
use crate::support::*;

const LIMIT: Duration = Duration::from_secs(20);

fn promtool(args: &[&str], dir: &std::path::Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs (scripts/test.sh installs the prometheus package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_and_every_alert_is_tested() {
    let dir = contrib::dir().join("prometheus");
    promtool(&["check", "rules", "hadns.rules.yml"], &dir);
    let tested = promtool(&["test", "rules", "hadns.rules.test.yml"], &dir);
    assert!(tested.contains("SUCCESS"), "{tested}");
    let rules = std::fs::read_to_string(dir.join("hadns.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("hadns.rules.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    for alert in alerts {
        // Both a firing case and a quiet one: the alert name appears with expected alerts
        // and with none.
        let cases = tests
            .lines()
            .filter(|l| l.trim() == format!("alertname: {alert}"))
            .count();
        assert!(cases >= 1, "{alert} has no promtool test case");
    }
}

#[test]
fn the_dashboard_is_provisioned_from_the_packages_path_and_its_queries_are_promql() {
    let dir = contrib::dir().join("grafana");
    let text = std::fs::read_to_string(dir.join("hadns.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dashboard["uid"], "hadns");
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids: Vec<i64> = panels.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert!(
            !panel["targets"].as_array().unwrap().is_empty(),
            "{} has a query",
            panel["title"]
        );
    }
    let provisioning =
        std::fs::read_to_string(dir.join("provisioning/dashboards/hadns.yml")).unwrap();
    let cargo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(provisioning.contains("path: /usr/share/hadns/grafana"));
    assert!(
        cargo.contains("\"usr/share/hadns/grafana/\""),
        "the package puts it there"
    );

    // Every query (Grafana's variables given values) parses as PromQL: promtool checks
    // them as recording rules.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let queries: Vec<String> = dashboard_queries()
        .into_iter()
        .filter(|q| !q.starts_with("label_values("))
        .collect();
    assert!(queries.len() >= 20, "{queries:?}");
    for (i, query) in queries.iter().enumerate() {
        let query = query
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&query).unwrap()
        ));
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("dashboard.yml"), rules).unwrap();
    promtool(&["check", "rules", "dashboard.yml"], tmp.path());
}

/// A hadns with every kind of series the rules and the dashboard select (a database pool
/// that fences and promotes, a hook, NOTIFY, the resolver): each selector but the
/// cluster's (cluster/members.rs) is met by its `/metrics`.
#[tokio::test(flavor = "multi_thread")]
async fn the_rules_and_the_dashboard_select_only_series_hadns_exports() {
    // A port nothing listens on: the nodes are down, their series are there all the same.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secondary = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let upstream = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (secondary, upstream) = (
        secondary.local_addr().unwrap(),
        upstream.local_addr().unwrap(),
    );
    let config = format!(
        "[[pool]]\nname = \"db\"\ncheck = \"mysql\"\nfence = \"read-only\"\ninterval = \"200ms\"\n\
         [pool.mysql]\nuser = \"hadns\"\n[pool.promote]\nmode = \"auto\"\n\
         [[pool.node]]\nname = \"m1\"\naddress = \"127.0.0.1\"\nport = {closed_port}\n\
         [[pool.node]]\nname = \"m2\"\naddress = \"127.0.0.2\"\nport = {closed_port}\n\
         [[record]]\nname = \"db.example.internal.\"\npool = \"db\"\nselect = \"primary\"\n\
         on_change = [\"/bin/true\"]\n\
         [[record]]\nname = \"db-ro.example.internal.\"\npool = \"db\"\nselect = \"replicas\"\n\
         [transfer]\nallow = [\"127.0.0.1\"]\nnotify = [\"{secondary}\"]\n\
         [resolver]\nforward = [\"{upstream}\"]\nallow = [\"127.0.0.1\"]\n{}",
        admin_section(false)
    );
    let mut hadns = Hadns::start(&config).await;
    let admin = hadns.admin().await;
    let wanted = referenced()
        .into_iter()
        .filter(|s| !s.name.starts_with("hadns_cluster"))
        .collect();
    let deadline = tokio::time::Instant::now() + LIMIT;
    let met = loop {
        let (_, metrics) = get(admin, "/metrics").await;
        let problems = unmet(&metrics, &wanted);
        if problems.is_empty() {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "selectors /metrics does not meet: {problems:#?}\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(met.contains("hadns_build_info{"), "{met}");
    hadns.stop().await;
}
