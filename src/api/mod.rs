//! The vocabulary the server, the admin endpoint, the metrics and the vip actors share:
//! the `/status` document, event records, the admin's commands, and the deadline of a
//! cluster member's writers. The bottom layer of the crate's own modules: it imports none
//! of them.

pub mod command;
pub mod deadline;
pub mod event;
pub mod id;
pub mod status;
pub mod timeline;

/// The commit hadns was built from (build.rs; `unknown` outside a git checkout).
pub const COMMIT: &str = env!("HADNS_COMMIT");

/// The version and the commit: `0.1.0 (commit 1a2b3c4d5e6f)`, as `hadns --version` says.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HADNS_COMMIT"),
    ")"
);
