//! What the integration tests stand on: the real `hadns` binary and the real servers
//! around it. The tests are the files beside this folder; nothing here is a test.
//!
//! - [`process`]: start hadns ([`Hadns::with`], a builder), follow its log, signal it.
//! - [`client`]: a DNS client over UDP and TCP, and a query loop.
//! - [`raw`]: bytes a normal client would not send.
//! - [`backends`]: TCP and HTTP services, on loopback addresses handed out by
//!   [`backends::loopback`], and the pool configuration that names them.
//! - [`admin`]: the admin endpoint's client (/status, /metrics, /events, the CLI, a browser).
//! - [`wait`]: waiting for a condition with a deadline.
//! - [`dbs`]: PostgreSQL and MariaDB servers of the test's own.
//! - [`secondaries`]: NSD, Knot and BIND transferring from hadns.
//! - [`unbound`]: Unbound, the resolver the dns check asks.
//! - [`netns`]: hosts in network namespaces on one L2 segment (the vip tests).
//! - [`cluster`]: a three-member etcd and hadns cluster in namespaces.

pub mod admin;
pub mod backends;
pub mod client;
pub mod cluster;
pub mod contrib;
pub mod dbs;
pub mod netns;
pub mod nft;
pub mod process;
pub mod raw;
pub mod secondaries;
pub mod unbound;
pub mod wait;

pub use admin::{get, get_json};
pub use backends::*;
pub use client::*;
pub use process::*;
pub use raw::*;
pub use wait::*;
