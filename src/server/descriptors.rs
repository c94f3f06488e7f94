//! The open-file budget: raised to the hard limit at start, and a warning when the
//! connection limits and the checks could still use it up.

use tracing::{info, warn};

use crate::config::Config;

/// Raises the soft limit on open descriptors to the hard one (the default soft limit of
/// 1,024 is meant for interactive programs), and warns when the connection limits could
/// still use up what the health checks need.
pub fn descriptor_budget(config: &Config) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let nodes: usize = config.pools.iter().map(|p| p.nodes.len()).sum();
    let connections = config.dns.listen.len() * config.dns.tcp_connections
        + config
            .admin
            .as_ref()
            .map_or(0, |_| crate::admin::MAX_CONNECTIONS);
    // Per node a probe's socket or a session (two for MySQL), and a margin for the rest.
    let needed = (connections + 3 * nodes + 128) as u64;
    if limit < needed {
        warn!(
            limit,
            needed,
            tcp_connections = config.dns.tcp_connections,
            nodes,
            "the open-file limit is below what the connection limits and checks may use; \
             raise LimitNOFILE or lower dns.tcp_connections (a probe that finds no descriptor \
             is inconclusive, never a node failure)"
        );
    } else {
        info!(limit, needed, "open-file limit");
    }
}
