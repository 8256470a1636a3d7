//! Command-line knowledge: which gcc/clang options a job may carry to a host (`table`), how
//! the client splits a command line into the local preprocessing and the remote compile
//! (`classify`), and what the daemon agrees to run (`policy`). One table serves both sides,
//! so our client never sends what our daemon refuses. Nothing here runs a program; only the
//! daemon's compiler whitelist lookup in `policy` touches the file system.

mod classify;
pub mod policy;
pub mod table;

pub use classify::*;
pub use table::{LocalReason, PATH_OPTIONS};
