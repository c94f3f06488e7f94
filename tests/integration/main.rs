//! Integration tests: the real binary, real sockets, real backends.

mod admin;
mod cluster;
mod cluster_site;
mod concurrency;
mod config_errors;
mod dbs;
mod demo;
mod dns_behaviour;
mod edns;
mod exhaustion;
mod failover;
mod fencing;
mod harness;
mod hooks;
mod hostile;
mod mysql;
mod netns;
mod postgres;
mod privileges;
mod raw;
mod reload;
mod replicas;
mod serials;
mod soak;
mod tls;
mod vip;
