//! hadns: an authoritative DNS server whose answers follow the current healthy primary.
//!
//! # Layout
//! - [`config`]: the TOML file -> a validated [`config::Config`]; every problem keyed by path.
//! - [`engine`]: pure decisions (rise/fall, selection); no IO, no clock.
//! - [`checks`]: one checker task per node (tcp, http, exec, postgres, mysql) sending
//!   observations.
//! - [`cluster`]: cluster mode, members agreeing through etcd. Only it knows etcd.
//! - [`dns`]: zone files, immutable answer snapshots, the hickory server. Only it knows hickory.
//! - [`server`]: the supervisor that owns the config and the engine: checkers -> engine ->
//!   fencing -> snapshots -> DNS, VIPs, events, metrics and hooks; answers admin commands
//!   and reloads; shuts everything down.
//! - [`vip`]: L2 mode, a virtual IP held while a record answers the local node. Only it
//!   knows netlink and raw sockets.
//! - [`admin`]: the HTTP endpoint (status, metrics, events, drain, reload) and the CLI
//!   client for it. Only it knows HTTP serving.
//! - [`metrics`]: Prometheus counters and gauges.
//! - [`notify`]: systemd readiness.
//! - [`logging`]: the log filter and a writer that never blocks hadns.
//! - [`demo`]: `hadns demo`, a self-contained walkthrough.

pub mod admin;
pub mod api;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod dns;
pub mod engine;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod server;
pub mod vip;

pub use server::{Prepared, prepare, prepare_str};
