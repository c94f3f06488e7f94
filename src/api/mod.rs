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
