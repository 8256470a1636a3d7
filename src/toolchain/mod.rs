//! Knowledge of the compilers themselves: what one says it is (`identity`), the names they
//! go by and how a client names one for a host (`rename`), the masquerade links that stand
//! in for them (`masquerade`), and what it takes for a `-g` object built elsewhere to equal
//! a local one (`debuginfo`, `directives`, `pragmas`, and on the daemon `producer`).
//! Which host compiles, and what the command line means, are other modules' business.

pub mod debuginfo;
pub mod directives;
pub mod identity;
pub mod lookup;
pub mod masquerade;
pub mod names;
pub mod pragmas;
pub mod producer;
pub mod rename;

/// The environment variables with which gcc searches directories that no command line
/// names.
pub const INCLUDE_PATH_VARIABLES: [&str; 4] = [
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
];
