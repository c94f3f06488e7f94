//! The admin endpoint against the running binary: /status, /metrics, /events, drain and
//! undrain with a bearer token, the CLI commands, and the status page in a real browser.

use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::admin::*;
use crate::support::*;

const WWW: &str = "www.example.internal.";
const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn status_metrics_and_events_follow_the_checks() {
    let mut web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    let config = tcp_pool_config(&[&web1, &web2], "interval = \"100ms\"\nfall = 1", "")
        + &admin_section(false);
    let mut hadns = Hadns::start(&config).await;
    let admin = hadns.admin().await;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;

    let status = get_json(admin, "/status").await;
    assert_eq!(status["ready"], true);
    let www = record(&status, WWW);
    assert_eq!(www["answer"], "nodes");
    assert_eq!(www["nodes"], serde_json::json!(["web1"]));
    assert_eq!(www["addresses"], serde_json::json!([web1.ip().to_string()]));
    assert!(www["reason"].as_str().unwrap().contains("first round"));
    // The serial /status reports is the one the zone's SOA carries.
    assert_eq!(
        www["serial"].as_u64().unwrap(),
        u64::from(hadns.soa_serial().await)
    );
    let n1 = node(&status, "web", "web1");
    assert_eq!(n1["health"], "up");
    assert_eq!(n1["drained"], false);
    assert_eq!(n1["stale"], false);
    assert_eq!(n1["last_probe"]["ok"], true);
    assert!(n1["successes"].as_u64().unwrap() >= 1);
    assert_eq!(n1["answered_by"], serde_json::json!([WWW]));

    // Queries of each kind, over UDP and TCP, show up by protocol and response code.
    for _ in 0..3 {
        hadns.addresses(WWW).await.unwrap();
    }
    let nx = hadns.query("nope.example.internal.", RecordType::A).await;
    assert_eq!(
        nx.metadata.response_code,
        hickory_proto::op::ResponseCode::NXDomain
    );
    let mut stream = tokio::net::TcpStream::connect(hadns.addr).await.unwrap();
    tcp_exchange(&mut stream, &query_message(WWW, RecordType::A, None)).await;
    let (code, metrics) = get(admin, "/metrics").await;
    assert_eq!(code, 200);
    let udp_ok = sample(
        &metrics,
        "hadns_dns_queries_total",
        &[("protocol", "udp"), ("rcode", "NOERROR")],
    );
    assert!(udp_ok.unwrap() >= 3.0, "{metrics}");
    let nxdomain = sample(
        &metrics,
        "hadns_dns_queries_total",
        &[("protocol", "udp"), ("rcode", "NXDOMAIN")],
    );
    assert!(nxdomain.unwrap() >= 1.0, "{metrics}");
    let tcp_ok = sample(
        &metrics,
        "hadns_dns_queries_total",
        &[("protocol", "tcp"), ("rcode", "NOERROR")],
    );
    assert!(tcp_ok.unwrap() >= 1.0, "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "hadns_node_up",
            &[("pool", "web"), ("node", "web1")]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "hadns_build_info", &[]), Some(1.0));
    assert!(
        sample(
            &metrics,
            "hadns_probe_duration_seconds_count",
            &[("pool", "web")]
        )
        .unwrap()
            >= 2.0
    );

    web1.stop().await;
    hadns.wait_for_answer(WWW, &[web2.ip()], LIMIT).await;
    let status = get_json(admin, "/status").await;
    assert_eq!(node(&status, "web", "web1")["health"], "down");
    assert_eq!(node(&status, "web", "web1")["last_probe"]["ok"], false);
    assert_eq!(record(&status, WWW)["nodes"], serde_json::json!(["web2"]));

    // Newest first: the answer change, then the node change that caused it, then the
    // first answer.
    let events = get_json(admin, "/events").await;
    let kinds: Vec<(&str, &str)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["to"].as_str().unwrap_or("")))
        .collect();
    let position = |kind: &str, to: &str| {
        kinds
            .iter()
            .position(|k| *k == (kind, to))
            .unwrap_or_else(|| panic!("no {kind} to {to} in {events}"))
    };
    let (to_web1, to_web2) = (
        format!("web1({})", web1.ip()),
        format!("web2({})", web2.ip()),
    );
    assert!(position("answer_changed", &to_web2) < position("node_changed", "down"));
    assert!(position("node_changed", "down") < position("answer_changed", &to_web1));
    assert_eq!(
        get_json(admin, "/events?limit=1")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let metrics = get(admin, "/metrics").await.1;
    assert_eq!(
        sample(
            &metrics,
            "hadns_node_up",
            &[("pool", "web"), ("node", "web1")]
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "hadns_node_transitions_total",
            &[("node", "web1"), ("to", "down")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "hadns_answer_changes_total", &[("record", WWW)]),
        Some(2.0)
    );

    // The CLI reads the same endpoint from the config.
    let (ok, out, err) = cli(&mut hadns, &["status"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(WWW) && out.contains(&to_web2), "{out}");
    let web1_line = out.lines().find(|l| l.contains("web1 ")).unwrap();
    assert!(web1_line.contains("down"), "{out}");
    let (ok, out, err) = cli(&mut hadns, &["events", "--limit", "5"]).await;
    assert!(ok, "{err}");
    assert!(
        out.lines().next().unwrap().contains("answer_changed"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_moves_the_answer_and_needs_the_token() {
    let web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    let config =
        tcp_pool_config(&[&web1, &web2], "interval = \"100ms\"", "") + &admin_section(true);
    let mut hadns = Hadns::with(&config).prepare(write_token).start().await;
    let admin = hadns.admin().await;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;

    let drain = "/pools/web/nodes/web1/drain";
    let (code, body) = post(admin, drain, None).await;
    assert_eq!(code, 401, "{body}");
    let (code, _) = post(admin, drain, Some("wrong")).await;
    assert_eq!(code, 401);
    hadns.wait_for_log("admin request refused", LIMIT).await;
    assert_eq!(hadns.addresses(WWW).await.unwrap(), vec![web1.ip()]);

    let (code, body) = post(admin, drain, Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["message"].as_str().unwrap().contains("web2"), "{body}");
    // The snapshot is stored before the reply: the next query already sees it.
    assert_eq!(hadns.addresses(WWW).await.unwrap(), vec![web2.ip()]);
    let status = get_json(admin, "/status").await;
    assert_eq!(node(&status, "web", "web1")["drained"], true);
    assert_eq!(
        node(&status, "web", "web1")["health"],
        "up",
        "still checked"
    );

    // A reload that restarts the checkers (another interval) keeps the drain.
    hadns.rewrite(&config.replace("\"100ms\"", "\"150ms\""), None);
    let (code, body) = post(admin, "/reload", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("2 started"),
        "{body}"
    );
    let status = get_json(admin, "/status").await;
    assert_eq!(node(&status, "web", "web1")["drained"], true);
    assert_eq!(
        node(&status, "web", "web2")["health"],
        "up",
        "health carried over"
    );
    assert_eq!(hadns.addresses(WWW).await.unwrap(), vec![web2.ip()]);

    let (code, body) = post(admin, "/pools/web/nodes/nosuch/drain", Some(TOKEN)).await;
    assert_eq!(code, 404);
    assert!(body["message"].as_str().unwrap().contains("nosuch"));

    // The CLI takes the token from the config's token_file.
    let (ok, out, _) = cli(&mut hadns, &["status"]).await;
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.contains("web1 ") && l.contains("drained")),
        "{out}"
    );
    let (ok, _, err) = cli(&mut hadns, &["drain", "web", "nosuch"]).await;
    assert!(!ok);
    assert!(err.contains("no node named \"nosuch\""), "{err}");
    let (ok, out, err) = cli(&mut hadns, &["undrain", "web", "web1"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("undrained"), "{out}");
    assert_eq!(hadns.addresses(WWW).await.unwrap(), vec![web1.ip()]);
    let (ok, out, _) = cli(&mut hadns, &["events"]).await;
    assert!(ok);
    assert!(
        out.contains("undrained") && out.contains("drained web/web1"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_file_changing_endpoints_are_disabled() {
    let web1 = TcpBackend::start().await;
    let config = tcp_pool_config(&[&web1], "interval = \"100ms\"", "") + &admin_section(false);
    let mut hadns = Hadns::start(&config).await;
    let admin = hadns.admin().await;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    for path in ["/pools/web/nodes/web1/drain", "/reload"] {
        let (code, body) = post(admin, path, Some(TOKEN)).await;
        assert_eq!(code, 403, "{path}: {body}");
        assert!(body["message"].as_str().unwrap().contains("token_file"));
    }
    assert_eq!(hadns.addresses(WWW).await.unwrap(), vec![web1.ip()]);
}

/// The `<tr ...>...</tr>` element that starts with `start`.
fn row<'a>(dom: &'a str, start: &str) -> &'a str {
    let at = dom
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {dom}"));
    let end = dom[at..].find("</tr>").unwrap();
    &dom[at..at + end]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_renders_nodes_and_events_in_a_browser() {
    let mut web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    let config = tcp_pool_config(&[&web1, &web2], "interval = \"100ms\"\nfall = 1", "")
        + &admin_section(false);
    let mut hadns = Hadns::start(&config).await;
    let admin = hadns.admin().await;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    web1.stop().await;
    hadns.wait_for_answer(WWW, &[web2.ip()], LIMIT).await;

    let dom = browser_dom(&format!("http://{admin}/")).await;
    let web1_row = row(&dom, "<tr data-node=\"web/web1\"");
    assert!(web1_row.contains("class=\"health down\""), "{web1_row}");
    let web2_row = row(&dom, "<tr data-node=\"web/web2\"");
    assert!(web2_row.contains("class=\"health up\""), "{web2_row}");
    assert!(
        web2_row.contains("answers www.example.internal."),
        "{web2_row}"
    );
    let record_row = row(&dom, "<tr data-record=\"www.example.internal.\"");
    assert!(
        record_row.contains(&format!("web2({})", web2.ip())),
        "{record_row}"
    );
    assert!(dom.contains("answer_changed"), "the events table is filled");

    // The failover timeline: the change drawn as an SVG, the failed probe and web1 going
    // down before the publication (the dashed bar at 0), in time order.
    let at = dom
        .find("<svg viewBox=")
        .unwrap_or_else(|| panic!("no timeline drawn: {dom}"));
    let svg = &dom[at..at + dom[at..].find("</svg>").unwrap()];
    assert!(
        svg.contains("data-record=\"www.example.internal.\""),
        "{svg}"
    );
    let dots: Vec<(String, i64)> = svg
        .split("<circle ")
        .skip(1)
        .map(|c| {
            let attr = |name: &str| {
                let from = c.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                c[from..from + c[from..].find('"').unwrap()].to_string()
            };
            (attr("data-kind"), attr("data-offset").parse().unwrap())
        })
        .collect();
    let kinds: Vec<&str> = dots.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        kinds.ends_with(&["probe", "node_changed", "answer_changed"]),
        "{svg}"
    );
    let last = &dots[dots.len() - 3..];
    assert!(
        last[0].1 <= last[1].1 && last[1].1 <= 0 && last[2].1 == 0,
        "{dots:?}"
    );
    assert!(svg.contains("probe failed (1 of fall 1"), "{svg}");

    // The same chain in the terminal.
    let (ok, out, err) = cli(&mut hadns, &["events", "--timeline"]).await;
    assert!(ok, "{err}");
    let head = format!(
        "www.example.internal.: web1({}) -> web2({})",
        web1.ip(),
        web2.ip()
    );
    assert!(out.starts_with(&head), "{out}");
    let line = |kind: &str| {
        out.lines()
            .position(|l| l.contains(&format!("  {kind} ")))
            .unwrap()
    };
    assert!(
        line("probe") < line("node_changed") && line("node_changed") < line("answer_changed"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_fields() {
    use tokio::io::AsyncBufReadExt;
    let web1 = TcpBackend::start().await;
    let config = tcp_pool_config(&[&web1], "interval = \"100ms\"", "");
    let (_dir, path) = write_config(&config, ZONE, &["127.0.0.1:0"]);
    let mut child = hadns_command(&["serve", "--log-format", "json"], &path)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let answer = tokio::time::timeout(LIMIT, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("hadns exited");
            let value: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if value["fields"]["message"] == "answer changed" {
                return value;
            }
        }
    })
    .await
    .expect("an answer change within the limit");
    assert_eq!(answer["level"], "INFO");
    assert_eq!(answer["fields"]["record"], WWW);
    assert_eq!(answer["fields"]["to"], format!("web1({})", web1.ip()));
    assert!(answer["timestamp"].is_string());
}

/// `--log-level` sets the level (here debug: each probe is logged); RUST_LOG, when set,
/// wins over it; a value that is neither a level nor a filter is an error naming its source.
#[tokio::test(flavor = "multi_thread")]
async fn log_level_and_rust_log() {
    let web1 = TcpBackend::start().await;
    let config = tcp_pool_config(&[&web1], "interval = \"100ms\"", "");
    let (_dir, path) = write_config(&config, ZONE, &["127.0.0.1:0"]);
    // The lines up to the first answer change.
    let until_answer = |rust_log: Option<&str>| {
        let mut command = hadns_command(&["serve", "--log-level", "debug"], &path);
        command.env_remove("RUST_LOG");
        if let Some(spec) = rust_log {
            command.env("RUST_LOG", spec);
        }
        async move {
            let mut child = command.spawn().unwrap();
            let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
            let mut seen = Vec::new();
            tokio::time::timeout(LIMIT, async {
                loop {
                    let line = lines.next_line().await.unwrap().expect("hadns exited");
                    let done = line.contains("answer changed");
                    seen.push(line);
                    if done {
                        return;
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("no answer change: {seen:#?}"));
            seen
        }
    };
    let debug = until_answer(None).await;
    assert!(
        debug
            .iter()
            .any(|l| l.contains("DEBUG") && l.contains("probe") && l.contains("node=web1")),
        "{debug:#?}"
    );
    // The probe comes before the answer changes: had --log-level applied, it would be here.
    let quiet = until_answer(Some("warn,hadns::server::events=info")).await;
    assert!(
        !quiet.iter().any(|l| l.contains("DEBUG")),
        "RUST_LOG did not win: {quiet:#?}"
    );

    for (flag, rust_log, message) in [
        ("loud", None, "--log-level \"loud\": not a level"),
        ("debug", Some("hadns=loud"), "RUST_LOG=\"hadns=loud\""),
    ] {
        let mut command = hadns_command(&["check-config", "--log-level", flag], &path);
        command.env_remove("RUST_LOG");
        if let Some(spec) = rust_log {
            command.env("RUST_LOG", spec);
        }
        let output = command.output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_is_not_held_up_by_an_open_admin_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let web1 = TcpBackend::start().await;
    let config = tcp_pool_config(&[&web1], "interval = \"100ms\"", "") + &admin_section(false);
    let mut hadns = Hadns::start(&config).await;
    let admin = hadns.admin().await;
    // A keep-alive connection that stays open after its answer, as a browser's does.
    let mut stream = tokio::net::TcpStream::connect(admin).await.unwrap();
    stream
        .write_all(b"GET /status HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let status = hadns.stop().await;
    assert!(status.success(), "{status}");
    drop(stream);
}

/// With `drain_file`, a drain survives a restart: the restarted hadns never answers the
/// drained node, not even with its first answer. Entries for nodes the config no longer has
/// are dropped; a file that cannot be written refuses the drain and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn drains_are_kept_across_a_restart_in_the_drain_file() {
    let web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    let config = tcp_pool_config(&[&web1, &web2], "interval = \"100ms\"", "")
        + &admin_section(true)
        + "drain_file = \"state/drained.toml\"\n";
    let with_state = |dir: &Path| {
        write_token(dir);
        std::fs::create_dir(dir.join("state")).unwrap();
    };
    let mut hadns = Hadns::with(&config).prepare(with_state).start().await;
    let admin = hadns.admin().await;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    let (code, body) = post(admin, "/pools/web/nodes/web1/drain", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    let file = hadns.dir().join("state/drained.toml");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        saved.contains("pool = \"web\"") && saved.contains("node = \"web1\""),
        "{saved}"
    );
    hadns.stop().await;

    // A restart from the same state, plus an entry for a node that has gone since.
    let state = saved + "\n[[drained]]\npool = \"web\"\nnode = \"web9\"\n";
    let restored = |dir: &Path| {
        with_state(dir);
        std::fs::write(dir.join("state/drained.toml"), &state).unwrap();
    };
    let mut hadns = Hadns::with(&config).prepare(restored).start().await;
    let queries = QueryLoop::start(hadns.addr, WWW);
    hadns
        .wait_for_log("node drained by an operator pool=web node=web1", LIMIT)
        .await;
    hadns.wait_for_answer(WWW, &[web2.ip()], LIMIT).await;
    let first = hadns.wait_for_log("from=pending", LIMIT).await;
    assert!(first.contains("to=web2"), "{first}");
    hadns
        .wait_for_log("a drained node is not in the configuration", LIMIT)
        .await;
    let file = hadns.dir().join("state/drained.toml");
    let rewritten = std::fs::read_to_string(&file).unwrap();
    assert!(
        rewritten.contains("web1") && !rewritten.contains("web9"),
        "{rewritten}"
    );
    let admin = hadns.admin().await;
    assert_eq!(
        node(&get_json(admin, "/status").await, "web", "web1")["drained"],
        true
    );
    let seen = queries.finish().await;
    assert!(
        !seen.contains_key(&Some(web1.ip())),
        "the drained node was answered after the restart: {seen:?}"
    );
    let (ok, _, err) = cli(&mut hadns, &["undrain", "web", "web1"]).await;
    assert!(ok, "{err}");
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    assert!(!std::fs::read_to_string(&file).unwrap().contains("web1"));

    // The state directory disappears: a drain cannot be saved, so it is not applied.
    std::fs::remove_dir_all(hadns.dir().join("state")).unwrap();
    let (code, body) = post(admin, "/pools/web/nodes/web1/drain", Some(TOKEN)).await;
    assert_eq!(code, 500, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("cannot write") && message.contains("nothing changed"),
        "{message}"
    );
    assert_eq!(hadns.addresses(WWW).await.unwrap(), vec![web1.ip()]);
    assert_eq!(
        node(&get_json(admin, "/status").await, "web", "web1")["drained"],
        false
    );
    hadns.stop().await;
}
