//! distcc-rs: distcc, the distributed C/C++ compiler, wire-compatible with distcc 3.4.
//!
//! The `distcc` client classifies a compiler command line (`args`), preprocesses locally,
//! picks a host (`hosts`, `lock`, `backoff`), sends the job (`protocol`, `transport`) and writes the result
//! (`client`). The `distccd` daemon accepts connections (`daemon`, `access`), checks what it
//! is asked to run (`policy`), compiles it (`serve`) and counts it (`stats`).

pub mod access;
pub mod args;
pub mod backoff;
pub mod client;
pub mod compiler;
pub mod daemon;
pub mod exitcode;
pub mod hosts;
pub mod lock;
pub mod logging;
pub mod lzo;
pub mod masquerade;
pub mod policy;
pub mod protocol;
pub mod serve;
pub mod state;
pub mod stats;
pub mod transport;
