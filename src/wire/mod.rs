//! distcc's wire protocol, versions 1 (plain), 2 (LZO-compressed bodies) and 3 (pump mode,
//! see `pump`).
//!
//! Every packet starts with a 12-byte header: four ASCII letters naming it and eight hex digits
//! carrying a 32-bit value (a version, a count, a status, or the length of the body that
//! follows). A request is `DIST ARGC ARGV... DOTI`; a reply is `DONE STAT SERR SOUT DOTO`.
//!
//! This module owns the encoding and decoding of those packets over any `Read`/`Write`, and
//! the limits that keep a reader safe from a hostile peer: every count and length is checked
//! against [`Limits`] before anything is allocated, and bodies are read as their bytes arrive,
//! so a header that announces 4 GiB and then stops costs nothing. It does not open sockets,
//! touch files or decide what a request means.

mod load;
pub mod lzo;
mod packet;
mod pump;
mod reply;
mod request;

pub use load::*;
pub use packet::*;
pub use pump::*;
pub use reply::*;
pub use request::*;

#[cfg(test)]
mod tests;
