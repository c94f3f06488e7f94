//! Reloading (SIGHUP and POST /reload) against the running binary: applied in place,
//! rejected whole, and no query lost or answered wrongly across several reloads.

use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::support::admin::{
    TOKEN, admin_section, cli, event_kinds, get_json, node, post, record, write_token,
};
use crate::support::*;

const WWW: &str = "www.example.internal.";
const API: &str = "api.example.internal.";
const LIMIT: Duration = Duration::from_secs(10);

fn api_pool(backend: &TcpBackend) -> String {
    format!(
        "\n[[pool]]\nname = \"api\"\ncheck = \"tcp\"\ninterval = \"100ms\"\n\
         [[pool.node]]\nname = \"api1\"\naddress = \"{}\"\nport = {}\n\
         [[record]]\nname = \"{API}\"\npool = \"api\"\n",
        backend.ip(),
        backend.addr.port()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_a_new_config_in_place() {
    let web1 = TcpBackend::start().await;
    let web2 = TcpBackend::start().await;
    let api1 = TcpBackend::start().await;
    // Slow checks: a node that lost its state would need a whole interval to answer again.
    let pool = "interval = \"2s\"\ntimeout = \"1s\"";
    let config = tcp_pool_config(&[&web1, &web2], pool, "") + &admin_section(false);
    let mut hadns = Hadns::start(&config).await;
    let admin = hadns.admin().await;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    let before = get_json(admin, "/status").await;
    let serial = hadns.soa_serial().await;
    let queries = QueryLoop::start(hadns.addr, WWW);

    // New: a pool and record, a static record; web2 removed.
    let zone = format!("{ZONE}added  IN A 127.0.0.99\n");
    hadns.rewrite(
        &(tcp_pool_config(&[&web1], pool, "") + &api_pool(&api1) + &admin_section(false)),
        Some(&zone),
    );
    assert_eq!(hadns.sighup().await, "applied");
    let line = hadns.wait_for_log("configuration reloaded", LIMIT).await;
    assert!(
        line.contains("1 node checkers kept, 1 started, 1 stopped"),
        "{line}"
    );

    // Answered at once, without a new first round for the kept node.
    assert_eq!(hadns.addresses(WWW).await.unwrap(), vec![web1.ip()]);
    let added = hadns.query("added.example.internal.", RecordType::A).await;
    assert_eq!(addresses(&added), vec![ip("127.0.0.99")]);
    hadns.wait_for_answer(API, &[api1.ip()], LIMIT).await;
    assert!(hadns.soa_serial().await > serial);

    let after = get_json(admin, "/status").await;
    let (was, now) = (node(&before, "web", "web1"), node(&after, "web", "web1"));
    assert_eq!(now["since"], was["since"], "web1 kept its health and since");
    assert_eq!(record(&after, WWW)["since"], record(&before, WWW)["since"]);
    let web_nodes = after["pools"][0]["nodes"].as_array().unwrap();
    assert_eq!(web_nodes.len(), 1, "web2 is gone: {after}");
    assert_ne!(after["config_loaded"], before["config_loaded"]);

    let seen = queries.finish().await;
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        vec![&Some(web1.ip())],
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_reload_is_rejected_whole_and_the_running_config_stays() {
    let web1 = TcpBackend::start().await;
    let config = tcp_pool_config(&[&web1], "interval = \"100ms\"", "") + &admin_section(true);
    let mut hadns = Hadns::with(&config).prepare(write_token).start().await;
    let admin = hadns.admin().await;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;
    let serial = hadns.soa_serial().await;

    // Two problems at once, and a zone that would have changed: nothing is applied.
    let broken = config.replace("interval = \"100ms\"", "interval = \"100\"\nspeed = 3");
    hadns.rewrite(&broken, Some(&format!("{ZONE}added IN A 127.0.0.99\n")));
    assert_eq!(hadns.sighup().await, "rejected");
    hadns.wait_for_log("problem=", LIMIT).await;
    assert!(hadns.log_count("pool[0].interval") >= 1);
    assert!(hadns.log_count("pool[0].speed: unknown key") >= 1);
    assert_eq!(hadns.addresses(WWW).await.unwrap(), vec![web1.ip()]);
    assert_eq!(hadns.soa_serial().await, serial);
    let added = hadns.query("added.example.internal.", RecordType::A).await;
    assert_eq!(
        added.metadata.response_code,
        hickory_proto::op::ResponseCode::NXDomain
    );

    // `hadns reload` too, and exits 1.
    let (ok, _, err) = cli(&mut hadns, &["reload"]).await;
    assert!(!ok);
    assert!(err.contains("pool[0].speed: unknown key"), "{err}");

    // POST /reload says the same, with every problem.
    let (code, body) = post(admin, "/reload", Some(TOKEN)).await;
    assert_eq!(code, 400, "{body}");
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{body}");

    // Changes that need new sockets are refused by name.
    let moved = config.replace("127.0.0.1:0\"\ntoken_file", "127.0.0.1:1\"\ntoken_file");
    hadns.rewrite(&moved, None);
    let (code, body) = post(admin, "/reload", Some(TOKEN)).await;
    assert_eq!(code, 400);
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("admin.listen: changing it needs a restart"),
        "{body}"
    );

    // A valid one through POST /reload is applied; the zone change shows.
    hadns.rewrite(&config, Some(&format!("{ZONE}added IN A 127.0.0.99\n")));
    let (code, body) = post(admin, "/reload", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    let added = hadns.query("added.example.internal.", RecordType::A).await;
    assert_eq!(addresses(&added), vec![ip("127.0.0.99")]);
    assert!(hadns.soa_serial().await > serial);
    let kinds = event_kinds(admin).await;
    assert_eq!(kinds[0], "reload", "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "reload_rejected"), "{kinds:?}");
}

/// dnsperf's summary line `label value ...`: the first number after the label.
fn dnsperf_number(output: &str, label: &str) -> u64 {
    let line = output
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} in dnsperf output:\n{output}"));
    line[line.find(label).unwrap() + label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn dnsperf_across_reloads_loses_nothing() {
    let web1 = TcpBackend::start().await;
    let api1 = TcpBackend::start().await;
    let base = tcp_pool_config(&[&web1], "interval = \"100ms\"", "");
    let mut hadns = Hadns::start(&base).await;
    hadns.wait_for_answer(WWW, &[web1.ip()], LIMIT).await;

    let queries = hadns.dir().join("queries.txt");
    std::fs::write(
        &queries,
        "www.example.internal. A\nmail.example.internal. A\nmail.example.internal. MX\nns1.example.internal. A\n",
    )
    .unwrap();
    // A rate well under what one core answers: losses could only come from hadns.
    let mut dnsperf = tokio::process::Command::new("dnsperf");
    dnsperf
        .args(["-s", "127.0.0.1", "-p", &hadns.addr.port().to_string()])
        .args(["-l", "8", "-Q", "4000", "-c", "4", "-t", "2", "-d"])
        .arg(&queries)
        .kill_on_drop(true);
    let dnsperf = dnsperf.output();
    // Beside dnsperf (which counts response codes), a loop that checks every answer.
    let answers = QueryLoop::start(hadns.addr, WWW);
    let reloads = async {
        // Five reloads while dnsperf runs: add a pool and change web's check (new checkers),
        // remove it and change the check back; a new zone each time. The pause only spreads
        // them over dnsperf's 8 s; each reload itself is awaited (its log line).
        for round in 0..5 {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let config = if round % 2 == 0 {
                base.replace("\"100ms\"", "\"120ms\"") + &api_pool(&api1)
            } else {
                base.clone()
            };
            let zone = format!("{ZONE}round IN TXT \"{round}\"\n");
            hadns.rewrite(&config, Some(&zone));
            assert_eq!(hadns.sighup().await, "applied");
        }
    };
    let (output, ()) = tokio::join!(dnsperf, reloads);
    let output = output.expect("dnsperf runs (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    eprintln!("{text}");
    assert!(output.status.success(), "{text}");
    let sent = dnsperf_number(&text, "Queries sent:");
    assert!(sent > 10_000, "{text}");
    assert_eq!(dnsperf_number(&text, "Queries lost:"), 0, "{text}");
    let codes = text
        .lines()
        .find(|l| l.contains("Response codes:"))
        .unwrap();
    assert_eq!(codes.split(',').count(), 1, "only NOERROR: {codes}");
    assert!(codes.contains("NOERROR"), "{codes}");
    assert_eq!(hadns.log_count("configuration reloaded"), 5);
    let seen = answers.finish().await;
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        vec![&Some(web1.ip())],
        "{seen:?}"
    );
}
