//! The vocabulary the server, the admin endpoint, the metrics and the vip actors share:
//! the `/status` document, event records, and the admin's commands. The bottom layer of
//! the crate's own modules: it imports none of them.

pub mod command;
pub mod event;
pub mod id;
pub mod status;
