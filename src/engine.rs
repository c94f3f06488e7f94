//! Pure health and selection decisions: no IO, no clock.
//!
//! The engine is fed [`Observation`]s, each at a virtual time `now` (time since start),
//! and returns the [`Event`]s they cause. It keeps rise/fall hysteresis per node and the
//! current [`Answer`] per record. Same inputs, same decisions: it is tested with
//! transcripts of observations at virtual times (see the tests at the bottom).

use std::fmt;
use std::time::Duration;

use crate::config::{Config, OnEmpty, Select};

/// The result of one probe. A failed probe is data, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub ok: bool,
    /// Why the probe failed (`connection refused`), or a short note on success.
    pub detail: String,
    pub latency: Duration,
}

impl Observation {
    pub fn up(detail: impl Into<String>, latency: Duration) -> Self {
        Observation {
            ok: true,
            detail: detail.into(),
            latency,
        }
    }

    pub fn down(detail: impl Into<String>, latency: Duration) -> Self {
        Observation {
            ok: false,
            detail: detail.into(),
            latency,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No probe has completed yet.
    Unknown,
    Up,
    Down,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        })
    }
}

#[derive(Debug, Clone)]
pub struct NodeState {
    pub health: Health,
    /// Consecutive successful probes.
    pub successes: u32,
    /// Consecutive failed probes.
    pub failures: u32,
    pub last: Option<Observation>,
    /// When `health` last changed.
    pub since: Duration,
}

/// What a record answers. Node indices point into the record's pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The pool's first round of checks has not completed.
    Pending,
    Nodes(Vec<usize>),
    /// No node qualifies and `on_empty = "nodata"`.
    Nodata,
    /// No node qualifies and `on_empty = "servfail"`.
    Servfail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    NodeChanged {
        pool: usize,
        node: usize,
        from: Health,
        to: Health,
        reason: String,
    },
    AnswerChanged {
        record: usize,
        from: Answer,
        to: Answer,
        reason: String,
    },
}

struct PoolSpec {
    rise: u32,
    fall: u32,
    node_names: Vec<String>,
    /// Node indices, highest priority first; ties keep config order.
    by_priority: Vec<usize>,
}

struct RecordSpec {
    pool: usize,
    select: Select,
    failback: bool,
    on_empty: OnEmpty,
}

pub struct Engine {
    pools: Vec<PoolSpec>,
    records: Vec<RecordSpec>,
    nodes: Vec<Vec<NodeState>>,
    answers: Vec<Answer>,
}

impl Engine {
    pub fn new(config: &Config) -> Engine {
        let pools = config
            .pools
            .iter()
            .map(|p| {
                let mut by_priority: Vec<usize> = (0..p.nodes.len()).collect();
                by_priority.sort_by_key(|&i| std::cmp::Reverse(p.nodes[i].priority));
                PoolSpec {
                    rise: p.rise,
                    fall: p.fall,
                    node_names: p.nodes.iter().map(|n| n.name.clone()).collect(),
                    by_priority,
                }
            })
            .collect();
        let records = config
            .records
            .iter()
            .map(|r| RecordSpec {
                pool: r.pool,
                select: r.select,
                failback: r.failback,
                on_empty: r.on_empty,
            })
            .collect();
        let nodes = config
            .pools
            .iter()
            .map(|p| {
                p.nodes
                    .iter()
                    .map(|_| NodeState {
                        health: Health::Unknown,
                        successes: 0,
                        failures: 0,
                        last: None,
                        since: Duration::ZERO,
                    })
                    .collect()
            })
            .collect();
        Engine {
            pools,
            answers: vec![Answer::Pending; config.records.len()],
            records,
            nodes,
        }
    }

    pub fn answer(&self, record: usize) -> &Answer {
        &self.answers[record]
    }

    pub fn node(&self, pool: usize, node: usize) -> &NodeState {
        &self.nodes[pool][node]
    }

    /// A pool is ready once every node has completed one probe.
    pub fn pool_ready(&self, pool: usize) -> bool {
        self.nodes[pool].iter().all(|n| n.health != Health::Unknown)
    }

    /// Feeds one probe result of node `node` of pool `pool`, observed at `now`.
    pub fn observe(
        &mut self,
        pool: usize,
        node: usize,
        obs: Observation,
        now: Duration,
    ) -> Vec<Event> {
        let spec = &self.pools[pool];
        let state = &mut self.nodes[pool][node];
        let from = state.health;
        if obs.ok {
            state.successes += 1;
            state.failures = 0;
        } else {
            state.failures += 1;
            state.successes = 0;
        }
        // The first probe decides at once: a node is neither assumed up nor down at start.
        let to = match (from, obs.ok) {
            (Health::Unknown, true) => Health::Up,
            (Health::Unknown, false) => Health::Down,
            (Health::Down, true) if state.successes >= spec.rise => Health::Up,
            (Health::Up, false) if state.failures >= spec.fall => Health::Down,
            (h, _) => h,
        };
        let reason = obs.detail.clone();
        state.last = Some(obs);
        let mut events = Vec::new();
        if to != from {
            state.health = to;
            state.since = now;
            events.push(Event::NodeChanged {
                pool,
                node,
                from,
                to,
                reason: reason.clone(),
            });
            let why = format!("{} {to}: {reason}", spec.node_names[node]);
            events.extend(self.reselect(pool, &why));
        }
        events
    }

    /// Recomputes the answer of every record on `pool`.
    fn reselect(&mut self, pool: usize, why: &str) -> Vec<Event> {
        let mut events = Vec::new();
        if !self.pool_ready(pool) {
            return events;
        }
        for record in 0..self.records.len() {
            if self.records[record].pool != pool {
                continue;
            }
            let to = self.select(record);
            if to != self.answers[record] {
                let from = std::mem::replace(&mut self.answers[record], to.clone());
                let reason = if from == Answer::Pending {
                    format!("first round of checks complete ({why})")
                } else {
                    why.to_string()
                };
                events.push(Event::AnswerChanged {
                    record,
                    from,
                    to,
                    reason,
                });
            }
        }
        events
    }

    fn select(&self, record: usize) -> Answer {
        let spec = &self.records[record];
        let pool = &self.pools[spec.pool];
        let nodes = &self.nodes[spec.pool];
        let healthy = |i: &usize| nodes[*i].health == Health::Up;
        let chosen: Vec<usize> = match spec.select {
            Select::Healthy => (0..nodes.len()).filter(healthy).collect(),
            Select::First => {
                let sticky = match &self.answers[record] {
                    Answer::Nodes(current) if !spec.failback && current.len() == 1 => {
                        Some(current[0]).filter(healthy)
                    }
                    _ => None,
                };
                sticky
                    .or_else(|| pool.by_priority.iter().copied().find(healthy))
                    .into_iter()
                    .collect()
            }
        };
        if !chosen.is_empty() {
            return Answer::Nodes(chosen);
        }
        match spec.on_empty {
            OnEmpty::Nodata => Answer::Nodata,
            OnEmpty::Servfail => Answer::Servfail,
            OnEmpty::All => Answer::Nodes((0..nodes.len()).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Transcripts: each line is `at TIME NODE ok|fail [detail]`, `expect RECORD = ANSWER`
    //! or `expect event NODE FROM->TO`. Answers are node names joined by `,`, or
    //! `pending`, `nodata`, `servfail`.
    use super::*;
    use crate::config::parse_duration;
    use std::path::Path;

    fn config(pool_extra: &str, record_extra: &str) -> Config {
        let text = format!(
            r#"
[[pool]]
name = "web"
check = "tcp"
{pool_extra}
[[pool.node]]
name = "web1"
address = "127.0.0.10"
port = 1
priority = 100
[[pool.node]]
name = "web2"
address = "127.0.0.11"
port = 1
priority = 50
[[pool.node]]
name = "web3"
address = "::1"
port = 1
priority = 10

[[record]]
name = "www.example.internal."
pool = "web"
{record_extra}
"#
        );
        Config::from_toml(&text, Path::new(".")).unwrap()
    }

    fn show(engine: &Engine, config: &Config, record: usize) -> String {
        let pool = &config.pools[config.records[record].pool];
        match engine.answer(record) {
            Answer::Pending => "pending".into(),
            Answer::Nodata => "nodata".into(),
            Answer::Servfail => "servfail".into(),
            Answer::Nodes(n) => n
                .iter()
                .map(|&i| pool.nodes[i].name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    fn run(config: &Config, transcript: &str) {
        let mut engine = Engine::new(config);
        let pool = &config.pools[0];
        let mut events = Vec::new();
        for (n, line) in transcript.lines().map(str::trim).enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["at", time, node, result, detail @ ..] => {
                    let now = parse_duration(time).unwrap();
                    let i = pool.nodes.iter().position(|x| x.name == *node).unwrap();
                    let obs = Observation {
                        ok: *result == "ok",
                        detail: detail.join(" "),
                        latency: Duration::from_millis(1),
                    };
                    events = engine.observe(0, i, obs, now);
                }
                ["expect", "event", node, change] => {
                    let (from, to) = change.split_once("->").unwrap();
                    let found = events.iter().any(|e| match e {
                        Event::NodeChanged {
                            node: i,
                            from: f,
                            to: t,
                            ..
                        } => {
                            pool.nodes[*i].name == *node
                                && f.to_string() == from
                                && t.to_string() == to
                        }
                        _ => false,
                    });
                    assert!(found, "line {n} `{line}`: events were {events:?}");
                }
                ["expect", "no", "events"] => {
                    assert!(
                        events.is_empty(),
                        "line {n} `{line}`: events were {events:?}"
                    )
                }
                ["expect", _record, "=", answer] => {
                    assert_eq!(&show(&engine, config, 0), answer, "line {n} `{line}`");
                }
                _ => panic!("bad transcript line {n}: {line}"),
            }
        }
    }

    #[test]
    fn startup_waits_for_the_whole_first_round() {
        let c = config("", "");
        run(
            &c,
            "at 0ms web2 ok
             expect www = pending
             at 1ms web1 fail connection refused
             expect www = pending
             at 2ms web3 ok
             expect www = web2",
        );
    }

    #[test]
    fn fall_and_rise_hysteresis() {
        let c = config("rise = 2\nfall = 2", "");
        run(
            &c,
            "at 0ms web1 ok
             at 0ms web2 ok
             at 0ms web3 ok
             expect www = web1
             at 100ms web1 fail connection refused
             expect www = web1
             expect no events
             at 200ms web1 ok
             at 300ms web1 fail connection refused
             expect www = web1
             at 400ms web1 fail connection refused
             expect event web1 up->down
             expect www = web2
             at 500ms web1 ok
             expect www = web2
             at 600ms web1 ok
             expect event web1 down->up
             expect www = web1",
        );
    }

    #[test]
    fn failback_false_keeps_the_current_node() {
        let c = config("rise = 1\nfall = 1", "failback = false");
        run(
            &c,
            "at 0ms web1 fail timeout
             at 0ms web2 ok
             at 0ms web3 ok
             expect www = web2
             at 100ms web1 ok
             expect www = web2
             at 200ms web2 fail connection refused
             expect www = web1
             at 300ms web2 ok
             expect www = web1",
        );
    }

    #[test]
    fn on_empty_policies() {
        for (policy, expected) in [
            ("nodata", "nodata"),
            ("servfail", "servfail"),
            ("all", "web1,web2,web3"),
        ] {
            let c = config("fall = 1", &format!("on_empty = \"{policy}\""));
            run(
                &c,
                &format!(
                    "at 0ms web1 ok
                     at 0ms web2 fail refused
                     at 0ms web3 fail refused
                     expect www = web1
                     at 1s web1 fail refused
                     expect www = {expected}"
                ),
            );
        }
    }

    #[test]
    fn healthy_selects_every_healthy_node() {
        let c = config("fall = 1\nrise = 1", "select = \"healthy\"");
        run(
            &c,
            "at 0ms web1 ok
             at 0ms web2 fail refused
             at 0ms web3 ok
             expect www = web1,web3
             at 1s web2 ok
             expect www = web1,web2,web3
             at 2s web1 fail refused
             expect www = web2,web3",
        );
    }

    #[test]
    fn answer_events_say_why() {
        let c = config("fall = 1", "");
        let mut e = Engine::new(&c);
        for node in 0..3 {
            e.observe(
                0,
                node,
                Observation::up("ok", Duration::ZERO),
                Duration::ZERO,
            );
        }
        let events = e.observe(
            0,
            0,
            Observation::down("connection refused", Duration::ZERO),
            Duration::from_secs(1),
        );
        assert_eq!(
            events[1],
            Event::AnswerChanged {
                record: 0,
                from: Answer::Nodes(vec![0]),
                to: Answer::Nodes(vec![1]),
                reason: "web1 down: connection refused".into()
            }
        );
        assert_eq!(e.node(0, 0).since, Duration::from_secs(1));
    }
}
