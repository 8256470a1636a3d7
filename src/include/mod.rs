//! Pump mode's include analysis and include server: for one compiler command line, the
//! files the preprocessor may read outside the compiler's system directories, written as
//! a mirror tree (the "client root") that distcc's client sends to a `,cpp` host.
//!
//! The parts, one concern a file:
//! - [`cmdline`]: what a compiler command line says about preprocessing (the search lists,
//!   the source, `-D`/`-U`, `-include`/`-imacros`, the language and its lexing mode), or
//!   why it is not covered;
//! - [`sysdirs`]: what the compiler says about itself (built-in directories, predefined
//!   macros, answers to `__has_builtin`-style tests), asked once per (compiler, flags,
//!   language), and [`facts`], which keeps that on disk between builds;
//! - [`token`] and [`lexer`]: the directives of one file, with splices, comments,
//!   strings, raw strings and trigraphs understood, and conditionals linked;
//! - [`macros`]: the macro table and GCC's expansion algorithm; [`expr`]: `#if`;
//! - [`search`]: GCC's search chains and the file-system lookups, cached and revalidated;
//!   [`watch`]: change notices, so that an analysis asked again is checked without `stat`;
//! - [`closure`]: the walk, as the preprocessor goes, with its caches;
//! - [`mirror`]: the client root, exactly as distcc 3.4's include server writes it;
//! - [`server`]: the Unix-socket server and its protocol; [`pump`]: the `pump` program.
//!
//! The analysis is exact where the preprocessor's behaviour can be known: it evaluates
//! `#if` with the compiler's own macros and follows the includes it takes. Where a value
//! cannot be known (`__LINE__`, a feature test the compiler will not answer, a macro
//! defined only on one side of such a branch), it follows every branch, so the closure is
//! then a superset, never short. An absolute `#include "/x.h"` outside the system dirs, a
//! computed include that cannot be expanded, or an analysis longer than the CPU limit make
//! the command "not covered", and the client then preprocesses locally (plain mode).
//!
//! # The socket protocol (distcc 3.4's, unchanged)
//!
//! The client connects to the Unix stream socket named by `INCLUDE_SERVER_PORT` and sends,
//! in distcc's 12-byte header framing (four letters, eight hex digits):
//!
//! ```text
//! CDIR<len> <cwd, len bytes, no NUL>
//! ARGC<n>
//! ARGV<len> <arg>        (n times: the whole compiler command line, argv[0] included)
//! ```
//!
//! The server answers `ARGC<k>` and `ARGV<len> <path>` k times, then closes. Each path is
//! absolute and inside the client root, which has exactly three components: the original
//! name is the path without those three components and without a final `.abs`, then a
//! final `.lzo` ([`client_root_name_to_real`]). An entry is one of:
//! - `ROOT/real/path.lzo`: the file's content, LZO1X-compressed (sent as `FILE` as it is);
//! - `ROOT/real/path.lzo.abs`: the same with `#line 1 "<searchdir>/<name>"` in front, for a
//!   file found through an absolute search directory;
//! - a symbolic link (sent as `LINK`): a system directory `ROOT/D -> ../`×(20+depth(D)) `D`,
//!   or a symlinked path component pointing at its absolute realpath;
//! - `ROOT/dir/forcing_technique_271828`, an empty file making `dir` exist on the host.
//!
//! In that order: files, system links, other links, forcing files. `k = 0` means "not
//! covered": the client logs "include server gave up analyzing" and compiles in plain mode.
//!
//! After a reply with files, our server adds a trailer that distcc 3.4's client, which
//! closes the socket once it has read the reply, never reads: `ENTD<m>` and `m` `ARGV`s,
//! each `PARENT PATH`, every file the walk entered as the preprocessor spells it, with
//! the index of its includer in the same list (`-` for the source or the command line).
//! Our client's compile cache makes its manifests of it ([`server::read_entered`]).

pub mod closure;
pub mod cmdline;
pub mod expr;
pub mod facts;
pub mod lexer;
pub mod macros;
pub mod mirror;
pub mod pump;
pub mod search;
pub mod server;
pub mod sysdirs;
pub mod token;
pub mod watch;

/// The number of leading path components of the client root in every name the server
/// returns (distcc 3.4's `INCLUDE_SERVER_DIR_DEPTH`).
pub const CLIENT_ROOT_DEPTH: usize = 3;

/// The name in the mirror of an empty file that makes its directory exist on the host.
pub const FORCING_FILE: &str = "forcing_technique_271828";

/// The original name of `path`, an entry of the include server's reply: drops the first
/// three components, then a `.abs` suffix, then a `.lzo` suffix (as distcc 3.4's
/// `dcc_get_original_fname`). `None` when `path` has fewer than four components.
pub fn client_root_name_to_real(path: &str) -> Option<String> {
    let mut rest = path;
    for _ in 0..CLIENT_ROOT_DEPTH {
        let slash = rest.get(1..)?.find('/')? + 1;
        rest = &rest[slash..];
    }
    let rest = strip_extension(rest, ".abs");
    Some(strip_extension(rest, ".lzo").to_string())
}

/// `name` without `ext` when `ext` is its extension: the text from its last `.`, as
/// distcc's `dcc_find_extension` (which looks at the whole string).
fn strip_extension<'a>(name: &'a str, ext: &str) -> &'a str {
    match name.rfind('.') {
        Some(dot) if &name[dot..] == ext => &name[..dot],
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_names() {
        let r = |p| client_root_name_to_real(p);
        assert_eq!(
            r("/dev/shm/tmpX.include_server-1-1/home/a/x.h.lzo").as_deref(),
            Some("/home/a/x.h")
        );
        assert_eq!(
            r("/tmp/tmpX.include_server-1-1/padding/usr/x.h.lzo.abs").as_deref(),
            Some("/usr/x.h")
        );
        assert_eq!(r("/a/b/c/d.abs.lzo").as_deref(), Some("/d.abs"));
        assert_eq!(r("/a/b/c/usr/include").as_deref(), Some("/usr/include"));
        assert_eq!(r("/a/b/c"), None);
        assert_eq!(r("/a/b/c/.lzo").as_deref(), Some("/"));
    }
}
