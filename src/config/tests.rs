use super::check::parse_status;
use super::pool::DEFAULT_PRIORITY;
use super::*;

const GOOD: &str = r#"
[dns]
listen = ["127.0.0.1:5353", "[::1]:5353"]
zones_dir = "zones"

[[pool]]
name = "web"
check = "tcp"
interval = "200ms"
timeout = "500ms"
rise = 2
fall = 2
[[pool.node]]
name = "web1"
address = "127.0.0.10"
port = 8080
priority = 100
[[pool.node]]
name = "web2"
address = "::1"
port = 8080

[[record]]
name = "www.example.internal."
pool = "web"
select = "first"
ttl = 1
failback = true
on_empty = "nodata"
on_change = ["./notify.sh", "www"]
on_change_timeout = "5s"

[admin]
listen = "127.0.0.1:9153"
events = 50
"#;

fn problems(text: &str) -> Vec<String> {
    match Config::from_toml(text, Path::new("/etc/hadns")) {
        Ok(_) => Vec::new(),
        Err(p) => p.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_documented_keys_parse() {
    let c = Config::from_toml(GOOD, Path::new("/etc/hadns")).unwrap();
    assert_eq!(c.dns.listen.len(), 2);
    assert_eq!(c.dns.zones_dir, Path::new("/etc/hadns/zones"));
    assert_eq!(c.dns.udp_coalesce, Duration::from_micros(100));
    assert_eq!(c.pools[0].interval, Duration::from_millis(200));
    assert_eq!(
        c.pools[0].nodes[1].address,
        "::1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(c.pools[0].nodes[1].priority, DEFAULT_PRIORITY);
    assert_eq!(c.records[0].name, "www.example.internal.");
    assert_eq!(c.records[0].pool, crate::api::id::PoolId(0));
    // A relative program is relative to the config file's directory.
    assert_eq!(
        c.records[0].on_change,
        Some(vec!["/etc/hadns/notify.sh".to_string(), "www".to_string()])
    );
    assert_eq!(c.records[0].on_change_timeout, Duration::from_secs(5));
    let admin = c.admin.as_ref().unwrap();
    assert_eq!(admin.listen, "127.0.0.1:9153".parse().unwrap());
    assert_eq!((admin.token.as_deref(), admin.events), (None, 50));
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let text = GOOD
        .replace("interval = \"200ms\"", "interval = \"200\"")
        .replace("pool = \"web\"", "pool = \"db\"")
        .replace("port = 8080\npriority", "port = 70000\npriority")
        .replace("fall = 2", "fall = 2\nfalls = 3");
    let got = problems(&text);
    assert!(
        got.contains(&"pool[0].interval: \"200\" has no unit (ms, s, m or h)".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"record[0].pool: no pool named \"db\"".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"pool[0].node[0].port: 70000 is not a port (1-65535)".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"pool[0].falls: unknown key".to_string()),
        "{got:?}"
    );
    assert_eq!(got.len(), 4, "{got:?}");
}

#[test]
fn unknown_keys_in_every_table_are_errors() {
    // Inject an unknown key at the end of every table of the example.
    let tables = [
        ("[dns]", "dns"),
        ("[admin]", "admin"),
        ("[[pool]]", "pool[0]"),
        ("[[pool.node]]", "pool[0].node[0]"),
        ("[[record]]", "record[0]"),
    ];
    for (table, path) in tables {
        assert!(GOOD.contains(table), "the example has {table}");
        let text = GOOD.replacen(table, &format!("{table}\nbogus = 1"), 1);
        let got = problems(&text);
        assert_eq!(got, vec![format!("{path}.bogus: unknown key")], "{table}");
    }
    let got = problems(&format!("bogus = true\n{GOOD}"));
    assert_eq!(got, vec!["bogus: unknown key"]);
}

#[test]
fn check_sections_must_match_the_check() {
    // After the pool's own keys, so that none of them moves into the [pool.exec] table.
    let text = GOOD.replacen(
        "[[pool.node]]",
        "[pool.exec]\ncommand = [\"true\"]\n[[pool.node]]",
        1,
    );
    assert_eq!(
        problems(&text),
        vec!["pool[0].exec: only allowed with check = \"exec\" (check is \"tcp\")"]
    );
    let text = GOOD.replace("check = \"tcp\"", "check = \"exec\"");
    assert!(problems(&text).contains(&"pool[0].exec.command: check = \"exec\" needs a command: [pool.exec] command = [\"/path/to/check\", \"arg\"]".to_string()));
}

#[test]
fn durations_need_units() {
    assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("200").unwrap_err().contains("has no unit"));
    assert!(parse_duration("2x").unwrap_err().contains("unknown unit"));
    assert!(parse_duration("ms").is_err());
    let text = GOOD.replace("interval = \"200ms\"", "interval = 200");
    assert_eq!(
        problems(&text),
        vec!["pool[0].interval: 200 has no unit; write it as a string such as \"200ms\" or \"2s\""]
    );
}

#[test]
fn http_status_forms() {
    let v = |s: &str| toml::from_str::<toml::Table>(&format!("v = {s}")).unwrap()["v"].clone();
    assert_eq!(parse_status(&v("200")), Ok(vec![200..=200]));
    assert_eq!(
        parse_status(&v("\"200-299,404\"")),
        Ok(vec![200..=299, 404..=404])
    );
    assert_eq!(
        parse_status(&v("[200, \"301-302\"]")),
        Ok(vec![200..=200, 301..=302])
    );
    assert!(parse_status(&v("\"abc\"")).is_err());
    assert!(parse_status(&v("\"399-200\"")).is_err());
}

#[test]
fn duplicate_names_and_selectors() {
    let text = GOOD.replace("name = \"web2\"", "name = \"web1\"");
    assert_eq!(
        problems(&text),
        vec!["pool[0].node[1].name: node name \"web1\" is used twice in pool \"web\""]
    );
    let text = GOOD.replace("select = \"first\"", "select = \"primary\"");
    assert!(
        problems(&text)[0]
            .starts_with("record[0].select: \"primary\" needs a pool whose check knows roles")
    );
}

#[test]
fn a_cluster_section_has_defaults_and_keeps_its_names() {
    let text = format!(
        "{GOOD}\n[cluster]\nname = \"dc1\"\nmembers = [\"dc1\", \"dc2\", \"dc3\"]\n\
         etcd = [\"http://10.0.0.5:2379\"]\n"
    );
    let config = Config::from_toml(&text, Path::new(".")).unwrap();
    let cluster = config.cluster.unwrap();
    assert_eq!(cluster.name, "dc1");
    assert_eq!(cluster.prefix, "/hadns/");
    assert_eq!(cluster.lease, Duration::from_secs(3));
    assert_eq!(cluster.on_lost, OnLost::Keep);
    assert_eq!(cluster.writers_on_lost, OnLost::Servfail);
    assert_eq!(cluster.members, ["dc1", "dc2", "dc3"]);
    assert_eq!((cluster.tls, cluster.auth), (None, None));
    let text = text.replace(
        "name = \"dc1\"",
        "name = \"dc1\"\nprefix = \"/hadns/prod\"\nlease = \"5s\"\non_lost = \"servfail\"",
    );
    let cluster = Config::from_toml(&text, Path::new("."))
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(
        cluster.prefix, "/hadns/prod/",
        "a prefix always ends with /"
    );
    assert_eq!(cluster.lease, Duration::from_secs(5));
    assert_eq!(cluster.on_lost, OnLost::Servfail);
    assert!(
        problems(&text.replace("\"5s\"", "\"2500ms\""))
            .contains(&"cluster.lease: 2.5s: etcd leases are whole seconds".to_string())
    );
    // Every member listed, this one among them: the majority is counted from the list.
    let without = text.replace("members = [\"dc1\", \"dc2\", \"dc3\"]\n", "");
    assert!(
        problems(&without)
            .iter()
            .any(|p| p.starts_with("cluster.members: list every"))
    );
    let elsewhere = text.replace("[\"dc1\", \"dc2\", \"dc3\"]", "[\"dc2\", \"dc3\", \"dc4\"]");
    assert!(
        problems(&elsewhere)
            .contains(&"cluster.members: does not list this member's own name \"dc1\"".to_string())
    );
}

#[test]
fn promotion_settings_are_checked_against_the_pool() {
    let pool = |check: &str, extra: &str, promote: &str| {
        format!(
            "[[pool]]\nname = \"db\"\ncheck = \"{check}\"\n{extra}\n[pool.{check}]\nuser = \"h\"\n\
             [pool.promote]\n{promote}\n[[pool.node]]\nname = \"a\"\naddress = \"10.0.0.1\"\n\
             promote = false\n"
        )
    };
    let fenced = "fence = \"read-only\"";
    assert_eq!(
        problems(&pool(
            "mysql",
            fenced,
            "mode = \"auto\"\nmax_lag = \"1MB\"\nblock = \"0s\""
        )),
        vec![
            "pool[0].promote.max_lag: a size is a PostgreSQL WAL distance; for mysql use a \
             number of transactions (\"100 transactions\") or a time (\"5s\")"
        ]
    );
    let unfenced = problems(&pool("mysql", "", "mode = \"manual\""));
    assert!(
        unfenced[0].starts_with("pool[0].promote.mode: promotion needs fencing"),
        "{unfenced:?}"
    );
    let rejoin = problems(&pool(
        "postgres",
        fenced,
        "mode = \"auto\"\nrejoin = \"auto\"",
    ));
    assert!(
        rejoin
            .iter()
            .any(|p| p.starts_with("pool[0].promote.rejoin: \"auto\" is for mysql")),
        "{rejoin:?}"
    );
    assert!(
        rejoin
            .iter()
            .any(|p| p.starts_with("pool[0].promote.replication_user: missing")),
        "{rejoin:?}"
    );
    let typo = problems(&pool(
        "postgres",
        fenced,
        "mode = \"automatic\"\nblok = \"1h\"",
    ));
    assert!(
        typo.iter()
            .any(|p| p.contains("unknown mode \"automatic\"")),
        "{typo:?}"
    );
    assert!(
        typo.iter().any(|p| p.contains("pool[0].promote.blok")),
        "{typo:?}"
    );
    // In cluster mode the leader promotes: nothing to refuse.
    let cluster = format!(
        "{}\n[cluster]\nname = \"a\"\nendpoints = [\"http://10.0.0.9:2379\"]\nmembers = [\"a\", \"b\", \"c\"]\n",
        pool("postgres", fenced, "mode = \"auto\"")
    );
    let in_cluster = problems(&cluster);
    assert!(
        !in_cluster.iter().any(|p| p.contains("promote")),
        "{in_cluster:?}"
    );
}

#[test]
fn resolver_keys_parse_and_their_problems_name_the_key() {
    let text = format!(
        "{GOOD}\n[resolver]\nforward = [\"10.0.0.53\", \"10.0.1.53:5353\"]\n\
         allow = [\"10.0.0.0/8\"]\ncache = \"16MB\"\nmax_ttl = \"1h\"\n\
         [resolver.check]\nname = \"corp.example.\"\ntype = \"SOA\"\n"
    );
    let c = Config::from_toml(&text, Path::new("/etc/hadns")).unwrap();
    let r = c.resolver.unwrap();
    assert_eq!(r.forward[0], "10.0.0.53:53".parse().unwrap());
    assert_eq!(r.forward[1], "10.0.1.53:5353".parse().unwrap());
    assert_eq!(r.cache_bytes, 16 << 20);
    assert_eq!(
        (r.max_ttl, r.check.qtype.as_str()),
        (Duration::from_secs(3600), "SOA")
    );
    assert!(r.allows("10.9.9.9".parse().unwrap()) && !r.allows("192.0.2.1".parse().unwrap()));

    let bad = format!(
        "{GOOD}\n[resolver]\nforward = [\"nowhere\"]\ncache = \"lots\"\nmin_ttl = \"2h\"\n\
         max_ttl = \"1h\"\nbogus = 1\n"
    );
    let got = problems(&bad);
    for want in [
        "resolver.forward[0]: \"nowhere\" is not an address",
        "resolver.forward: needs at least one recursive resolver",
        "resolver.allow: needs the clients",
        "resolver.cache: \"lots\" is not a size",
        "resolver.min_ttl: 7200s is above max_ttl",
        "resolver.bogus: unknown key",
    ] {
        assert!(got.iter().any(|p| p.starts_with(want)), "{want}: {got:#?}");
    }
}
