//! Reloading the configuration in place (SIGHUP, `POST /reload`).
//!
//! The new file and its zones are read and validated completely first; any problem, or a
//! change that needs new sockets (`dns.listen`, `dns.udp_workers`, `dns.udp_coalesce`, `admin.listen`,
//! `[[vip]]`), rejects the whole reload and the running configuration stays. Otherwise:
//! a node whose check and address are unchanged keeps its checker (and so its database
//! session) and its health; other nodes get a new checker; removed ones are stopped; a
//! record with the same name and pool keeps its answer, then every ready pool's answers
//! are recomputed under the new rules; every zone's serial increases. The UDP and TCP
//! sockets are never touched, so no query is lost.

use tokio::task::JoinSet;
use tracing::{error, info, warn};

use super::events::{EventKind, EventRecord};
use super::plan::plan;
use super::supervisor::Supervisor;
use crate::api::command::CommandError;
use crate::config::{Config, ConfigError, Vip};
use crate::engine::{Engine, PoolId, RecordId};

impl Supervisor {
    /// Reloads, logs and records the outcome; tells systemd (RELOADING=1, then READY=1).
    pub(super) async fn reload(&mut self, tasks: &mut JoinSet<()>) -> Result<String, CommandError> {
        crate::notify::reloading();
        let result = self.try_reload(tasks).await;
        match &result {
            Ok(summary) => {
                info!(summary = %summary, "configuration reloaded");
                self.metrics.reloads.with_label_values(&["applied"]).inc();
                self.events
                    .push(EventRecord::new(EventKind::Reload, summary.as_str()));
            }
            Err(CommandError::Rejected(problems)) => {
                for problem in problems {
                    error!(problem = %problem, "reload rejected");
                }
                error!(
                    problems = problems.len(),
                    "reload rejected; the running configuration stays"
                );
                self.metrics.reloads.with_label_values(&["rejected"]).inc();
                self.events.push(EventRecord::new(
                    EventKind::ReloadRejected,
                    problems.join("; "),
                ));
            }
            Err(other) => error!(error = %other, "reload failed"),
        }
        if self.all_ready {
            crate::notify::ready("configuration reloaded; serving");
        }
        result
    }

    async fn try_reload(&mut self, tasks: &mut JoinSet<()>) -> Result<String, CommandError> {
        // A running promotion holds node positions of the running configuration.
        if let Some(pool) = self.promotions.pools.iter().find(|(_, p)| p.busy()) {
            return Err(CommandError::Rejected(vec![format!(
                "a promotion of pool {:?} is running; reload once it has ended (hadns status)",
                pool.0
            )]));
        }
        let path = self.config_file.clone().ok_or_else(|| {
            CommandError::Rejected(vec![
                "hadns was started without a config file; there is nothing to reload".into(),
            ])
        })?;
        let prepared = tokio::task::spawn_blocking(move || super::prepare(&path))
            .await
            .map_err(|e| CommandError::Rejected(vec![format!("reading the config: {e}")]))?
            .map_err(|e| {
                CommandError::Rejected(match e {
                    ConfigError::Invalid {
                        file: Some(file),
                        problems,
                    } => problems
                        .iter()
                        .map(|p| format!("{}: {p}", file.display()))
                        .collect(),
                    other => vec![other.to_string()],
                })
            })?;
        let problems = needs_restart(&self.config, &prepared.config);
        if !problems.is_empty() {
            return Err(CommandError::Rejected(problems));
        }
        Ok(self.apply_config(prepared, tasks).await)
    }

    /// Switches to a validated configuration; returns a summary of what changed.
    async fn apply_config(&mut self, prepared: super::Prepared, tasks: &mut JoinSet<()>) -> String {
        // Queued decisions name pools, nodes and records of the running configuration.
        self.flush().await;
        let changes = super::changes::describe(&self.config, &prepared.config);
        let plan = plan(&self.config, &prepared.config);
        self.metrics.declare(&prepared.config);
        self.config = prepared.config;
        let restarted = self.checkers.restart(&self.config, &plan, tasks);
        let now = self.clock.now();
        let (engine, mut events) = Engine::reloaded(
            &self.config,
            &self.engine,
            |p, n| plan.carried.get(&(p, n)).copied(),
            |r| plan.records[r],
            now,
        );
        self.engine = engine;
        self.config_loaded = now;
        // Drained nodes stay drained, even when their checker had to start afresh; drains
        // of removed nodes go. The file may have moved: write it either way.
        self.drains.set_file(
            self.config
                .admin
                .as_ref()
                .and_then(|a| a.drain_file.clone()),
        );
        let (drain_events, _) = self.apply_drain_list();
        events.extend(drain_events);
        if let Err(error) = self.drains.save().await {
            warn!(%error, "cannot write the drain file");
        }
        self.publication.reload(prepared.zones, &self.config);
        if let Some(admin) = &self.config.admin {
            self.events.set_capacity(admin.events);
            self.token.store(std::sync::Arc::new(admin.token.clone()));
        }
        if self.in_cluster() {
            self.cluster_reloaded();
        } else {
            self.publication
                .publish(&super::publication::published(&self.config, &self.engine));
        }
        let pools: Vec<PoolId> = (0..self.config.pools.len()).map(PoolId).collect();
        self.decide(events, &pools);
        self.check_ready();
        let changes = if changes.is_empty() {
            "no pool or record changed".to_string()
        } else {
            changes.join("; ")
        };
        format!(
            "{changes}; {} pools, {} records; {} node checkers kept, {} started, {} stopped; zone serials now {:?}",
            self.config.pools.len(),
            self.config.records.len(),
            restarted.kept,
            restarted.started,
            restarted.stopped,
            self.publication.load().serials()
        )
    }
}

/// Changes a reload cannot apply because they need new sockets or raw interfaces.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let restart = "changing it needs a restart";
    if old.cluster != new.cluster {
        problems.push(format!("cluster: {restart}"));
    }
    if old.dns.listen != new.dns.listen {
        problems.push(format!(
            "dns.listen: {restart} (running: {:?}, new: {:?})",
            old.dns.listen, new.dns.listen
        ));
    }
    if old.dns.udp_workers != new.dns.udp_workers {
        problems.push(format!(
            "dns.udp_workers: {restart} (running: {}, new: {})",
            old.dns.udp_workers, new.dns.udp_workers
        ));
    }
    if old.dns.udp_coalesce != new.dns.udp_coalesce {
        problems.push(format!(
            "dns.udp_coalesce: {restart} (running: {:?}, new: {:?})",
            old.dns.udp_coalesce, new.dns.udp_coalesce
        ));
    }
    // What the DNS server was started with.
    let serving = |c: &Config| {
        (
            c.dns.max_udp_size,
            c.dns.tcp_connections,
            c.dns.tcp_connections_per_client,
            c.dns.rate_limit,
        )
    };
    if serving(old) != serving(new) {
        problems.push(format!(
            "dns.max_udp_size, dns.tcp_connections*, dns.rate_limit*: {restart} \
             (running: {:?}, new: {:?})",
            serving(old),
            serving(new)
        ));
    }
    let admin_hosts = |c: &Config| c.admin.as_ref().map(|a| a.hosts.clone());
    if admin_hosts(old) != admin_hosts(new) {
        problems.push(format!(
            "admin.hosts: {restart} (running: {:?}, new: {:?})",
            admin_hosts(old),
            admin_hosts(new)
        ));
    }
    let admin_listen = |c: &Config| c.admin.as_ref().map(|a| a.listen);
    if admin_listen(old) != admin_listen(new) {
        problems.push(format!(
            "admin.listen: {restart} (running: {:?}, new: {:?})",
            admin_listen(old),
            admin_listen(new)
        ));
    }
    let vips = |c: &Config| -> Vec<(String, String, Vip)> {
        c.vips
            .iter()
            .map(|v| {
                let record = c.record(v.record);
                let node = &c.pools[record.pool.0].nodes[v.node].name;
                let mut plain = v.clone();
                (plain.record, plain.node) = (RecordId(0), 0);
                (record.name.clone(), node.clone(), plain)
            })
            .collect()
    };
    if vips(old) != vips(new) {
        problems.push(format!(
            "vip: {restart} (a [[vip]] table was added, removed or changed)"
        ));
    }
    problems
}
