//! Command-line knowledge: which gcc/clang options a job may carry to a host, how the client
//! splits a command line into the local preprocessing and the remote compile, and what the
//! daemon agrees to run. One table serves both sides, so our client never sends what our
//! daemon refuses. Nothing here runs a program or touches a file, except the daemon's
//! compiler whitelist lookup in `policy`.

mod classify;
pub mod policy;

pub use classify::*;
