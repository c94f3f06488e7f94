//! What contrib/ (the Prometheus alert rules, their promtool tests, the Grafana dashboard)
//! asks of hadns's metrics: every series it selects, with the label values it matches, so a
//! test can hold them against a running hadns's `/metrics`.

use std::collections::BTreeSet;
use std::path::PathBuf;

/// The repository's contrib/ directory.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib")
}

/// Labels whose values are hadns's own vocabulary (a fixed set per metric): a selector's
/// value for one of them must be one hadns exports. Other labels (record, pool, node,
/// target, zone, instance, job) are the operator's data.
const VOCABULARY: [&str; 7] = ["what", "state", "result", "outcome", "kind", "to", "role"];
/// Labels Prometheus adds when it scrapes, never on `/metrics`.
const SCRAPE: [&str; 2] = ["job", "instance"];

/// One `hadns_*` selector: the metric name and its fixed label matchers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Selector {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

/// Every `hadns_*` selector in `text` (PromQL, or a promtool series line).
pub fn selectors(text: &str) -> BTreeSet<Selector> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("hadns_") {
        let from = &rest[at..];
        let end = from
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(from.len());
        let name = from[..end].to_string();
        let mut labels = Vec::new();
        if from[end..].starts_with('{') {
            let close = from[end..].find('}').map_or(from.len(), |c| end + c);
            for matcher in from[end + 1..close].split(',') {
                // Only equality with a literal: `=~`, `!=` and Grafana's `$variables` vary.
                if let Some((label, value)) = matcher.split_once('=') {
                    let value = value.trim().trim_matches('"').trim_matches('\'');
                    let literal = !value.starts_with('~') && !value.contains('$');
                    if literal && !label.ends_with('!') {
                        labels.push((label.trim().to_string(), value.to_string()));
                    }
                }
            }
        }
        found.insert(Selector { name, labels });
        rest = &from[end..];
    }
    found
}

/// Every selector of the alert rules, their tests and the dashboard.
pub fn referenced() -> BTreeSet<Selector> {
    let read = |path: &str| std::fs::read_to_string(dir().join(path)).unwrap();
    let mut all = selectors(&read("prometheus/hadns.rules.yml"));
    all.extend(selectors(&read("prometheus/hadns.rules.test.yml")));
    for expr in dashboard_queries() {
        all.extend(selectors(&expr));
    }
    all
}

/// Every query of the dashboard: the panels' targets, the annotations, the variables.
pub fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(dir().join("grafana/hadns.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for annotation in dashboard["annotations"]["list"].as_array().unwrap() {
        queries.push(annotation["expr"].as_str().unwrap().to_string());
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["definition"].as_str() {
            queries.push(query.to_string());
        }
    }
    queries
}

/// The selectors among `wanted` that `/metrics` text `exported` does not satisfy: no
/// series of that name, or none with each fixed label value; with the label names each
/// exported series of that name has, for the message.
pub fn unmet(exported: &str, wanted: &BTreeSet<Selector>) -> Vec<String> {
    let series: Vec<&str> = exported
        .lines()
        .filter(|l| l.starts_with("hadns_"))
        .collect();
    let mut problems = Vec::new();
    for selector in wanted {
        let of_name: Vec<&str> = series
            .iter()
            .copied()
            .filter(|s| {
                s.strip_prefix(selector.name.as_str())
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })
            .collect();
        if of_name.is_empty() {
            problems.push(format!("{}: no such series", selector.name));
            continue;
        }
        for (label, value) in &selector.labels {
            if SCRAPE.contains(&label.as_str()) {
                continue;
            }
            let present = of_name.iter().any(|s| s.contains(&format!("{label}=\"")));
            let fixed = VOCABULARY.contains(&label.as_str());
            let matched = of_name
                .iter()
                .any(|s| s.contains(&format!("{label}=\"{value}\"")));
            if !present {
                problems.push(format!("{}: no label {label}", selector.name));
            } else if fixed && !matched {
                problems.push(format!(
                    "{}: no series with {label}=\"{value}\"",
                    selector.name
                ));
            }
        }
    }
    problems
}

#[test]
fn selectors_read_names_and_literal_matchers() {
    let found = selectors(
        "increase(hadns_fences_total{instance=~\"$i\",result=\"failed\"}[5m]) + hadns_node_up",
    );
    let found: Vec<Selector> = found.into_iter().collect();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].name, "hadns_fences_total");
    assert_eq!(
        found[0].labels,
        [("result".to_string(), "failed".to_string())]
    );
    assert_eq!(found[1].name, "hadns_node_up");
}
