//! The `#pragma`s that gcc loses when it preprocesses with `-fdirectives-only`.
//!
//! In that mode gcc (12 at least) obeys some pragmas itself and writes nothing in their
//! place, so the compile of the text on the server goes wrong without a word:
//! `message` (its note is never shown), `redefine_extname` (the object calls the old
//! name), `push_macro`/`pop_macro` (the restored macro is missing from the text) and
//! `GCC poison` (a later use is no longer an error). With `-fopenmp` or `-fopenacc` every
//! `omp`/`acc` pragma is lost the same way; `args` never uses the mode with those options.
//!
//! The pragmas can stand in any header, so once such a preprocessor has finished, the
//! client reads every file it entered (the text's line markers name them all, `-include`d
//! ones too) and looks for them: [`loses_pragma`]. A text that needed one is preprocessed
//! again in full, as distcc 3.4 does. The look is cautious: a pragma in a comment or in a
//! skipped `#if` block counts too, which costs a full preprocessing, never a wrong object.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

/// Pragmas that the mode obeys and drops (after `#pragma`, and after `#pragma GCC`).
const LOST: &[&[u8]] = &[b"message", b"redefine_extname", b"push_macro", b"pop_macro"];
const LOST_GCC: &[&[u8]] = &[b"poison"];

/// Whether directives-only text still holds `__DATE__`, `__TIME__` or `__TIMESTAMP__`:
/// the host expands them when it compiles, with its own clock and without the client's
/// `SOURCE_DATE_EPOCH` (the protocol carries no environment), so the object would not be
/// the one a local compile gives. (Full preprocessing expands them here, but would change
/// a `-g` object, which is why such text is directives-only.)
pub fn uses_time_macros(text: &[u8]) -> bool {
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    // Made once: a search of every header a compile reads asks this of each.
    static MACROS: LazyLock<[Finder<'static>; 2]> =
        LazyLock::new(|| [Finder::new("__DATE__"), Finder::new("__TIME")]);
    MACROS.iter().any(|f| {
        f.find_iter(text).any(|at| {
            let rest = &text[at + f.needle().len()..];
            f.needle() == b"__DATE__" || rest.starts_with(b"__") || rest.starts_with(b"STAMP__")
        })
    })
}

/// Whether a file that the preprocessor of `text` entered has a pragma that the text lost.
/// A name that is no file (`#line 12 "parse.y"` in generated sources names files that need
/// not exist) was not read by the preprocessor; a file that cannot be read counts as
/// having one.
pub fn loses_pragma(text: &[u8]) -> bool {
    let mut data = Vec::new();
    entered_files(text).into_iter().any(|path| {
        data.clear();
        // Through `take`: `File`'s own read_to_end asks for the size first (two more
        // system calls per file, for hundreds of headers); the buffer is reused anyway.
        let lost = match File::open(&path).and_then(|f| f.take(u64::MAX).read_to_end(&mut data)) {
            Ok(_) => has_lost_pragma(&data),
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
            ),
        };
        if lost {
            log::debug!(
                "{} has a #pragma that -fdirectives-only would lose",
                path.display()
            );
        }
        lost
    })
}

/// The files named by the line markers (`# 12 "name" flags`) of preprocessed text, each
/// once, without gcc's `<built-in>` and `<command-line>`, nor the working directory that
/// it names with two slashes after `-g` (`# 1 "/src//"`).
fn entered_files(text: &[u8]) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    // A `#` after a line break (memchr skips to each `#`; `#define`s are the others).
    let next_marker = |mut from| loop {
        let hash = find_byte(text, b'#', from)?;
        if hash > 0 && text[hash - 1] == b'\n' && text.get(hash + 1) == Some(&b' ') {
            return Some(hash);
        }
        from = hash + 1;
    };
    let mut at = if text.starts_with(b"# ") {
        Some(0)
    } else {
        next_marker(0)
    };
    while let Some(start) = at {
        let line = &text[start..];
        let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
        if let Some(name) = marker_name(line) {
            if !name.starts_with(b"<") && !name.ends_with(b"//") && seen.insert(name) {
                files.push(unquote(name));
            }
        }
        at = next_marker(start + line.len());
    }
    files
}

/// The quoted name of a line marker (`# 12 "name" 1 3`), still escaped.
fn marker_name(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"# ")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = rest[digits..].strip_prefix(b" \"").filter(|_| digits > 0)?;
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'\\' => i += 2,
            b'"' => return Some(&rest[..i]),
            _ => i += 1,
        }
    }
    None
}

/// A name as gcc quotes it in a line marker: `\\` and `\"` escaped.
fn unquote(name: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let mut out = Vec::with_capacity(name.len());
    let mut bytes = name.iter();
    while let Some(&b) = bytes.next() {
        out.push(if b == b'\\' {
            *bytes.next().unwrap_or(&b)
        } else {
            b
        });
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Whether source text has a `#pragma` directive that directives-only mode loses.
fn has_lost_pragma(src: &[u8]) -> bool {
    let mut from = 0;
    // From each `#` (memchr skips to them fast), as most `#`s start other directives.
    while let Some(hash) = find_byte(src, b'#', from) {
        from = hash + 1;
        let (name, rest) = word(&src[from..]);
        if name != b"pragma" || !blank_line_start(&src[..hash]) {
            continue;
        }
        let (name, rest) = word(rest);
        let lost = match name {
            b"GCC" => LOST_GCC.contains(&word(rest).0),
            _ => LOST.contains(&name),
        };
        if lost {
            return true;
        }
    }
    false
}

/// Whether only blanks stand between the last line break of `before` and its end.
fn blank_line_start(before: &[u8]) -> bool {
    before
        .iter()
        .rev()
        .take_while(|&&b| b != b'\n')
        .all(|&b| b == b' ' || b == b'\t')
}

/// The identifier after blanks at the start of `s`, and what follows it.
fn word(s: &[u8]) -> (&[u8], &[u8]) {
    let start = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    let s = &s[start..];
    let len = s
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    s.split_at(len)
}

/// Where `byte` first occurs in `hay` at or after `from` (glibc's memchr).
fn find_byte(hay: &[u8], byte: u8, from: usize) -> Option<usize> {
    let hay = hay.get(from..)?;
    // SAFETY: the pointer is valid for the length given; memchr only reads it.
    let p = unsafe { libc::memchr(hay.as_ptr().cast(), byte.into(), hay.len()) };
    (!p.is_null()).then(|| from + (p as usize - hay.as_ptr() as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_macros_and_nothing_like_them() {
        for yes in ["__DATE__", "x = __TIME__;", "__TIMESTAMP__"] {
            assert!(uses_time_macros(yes.as_bytes()), "{yes}");
        }
        for no in [
            "_TIME_H",
            "__TIME_BITS64",
            "__USE_TIME_BITS64",
            "__DATE",
            "",
        ] {
            assert!(!uses_time_macros(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn finds_the_pragmas_that_are_lost() {
        for src in [
            "#pragma message \"m\"\n",
            "int a;\n  #  pragma redefine_extname a b\n",
            "#pragma push_macro(\"X\")\n",
            "#\tpragma\tpop_macro(\"X\")\n",
            "#pragma GCC poison bad\n",
            "x\n#pragma GCC  poison bad\n",
        ] {
            assert!(has_lost_pragma(src.as_bytes()), "{src:?}");
        }
        for src in [
            "#pragma once\n",
            "#pragma GCC diagnostic push\n",
            "#pragma pack(1)\n",
            "#pragma messages\n",
            "int pragma message;\n",
            "x # pragma message\n",
            "#pragma GCC system_header\n",
            "#define P _Pragma(\"message(\\\"m\\\")\")\n",
            "",
        ] {
            assert!(!has_lost_pragma(src.as_bytes()), "{src:?}");
        }
    }

    #[test]
    fn line_markers_name_each_file_once() {
        let text = b"# 0 \"a.c\"\n# 1 \"/src//\"\n# 0 \"<built-in>\"\n# 1 \"/usr/include/x.h\" 1 3 4\nint # 2 \"no\";\n\
# 5 \"a.c\" 2\n# 1 \"dir/q\\\"uote\\\\d.h\" 1\n#define X 1\n# 3 \"/usr/include/x.h\" 1\n";
        let files: Vec<String> = entered_files(text)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(files, ["a.c", "/usr/include/x.h", "dir/q\"uote\\d.h"]);
        assert!(entered_files(b"int x;\n").is_empty());
    }

    #[test]
    fn reads_the_files_it_entered() {
        let dir = tempfile::tempdir().unwrap();
        let clean = dir.path().join("clean.h");
        let lost = dir.path().join("lost.h");
        std::fs::write(&clean, "#pragma once\nint a;\n").unwrap();
        std::fs::write(&lost, "// x\n#pragma push_macro(\"A\")\n").unwrap();
        let marker = |p: &std::path::Path| format!("# 1 \"{}\" 1\n", p.display());
        assert!(!loses_pragma(marker(&clean).as_bytes()));
        assert!(loses_pragma(
            format!("{}{}", marker(&clean), marker(&lost)).as_bytes()
        ));
        // #line names that are no file, and directories, were not read.
        assert!(!loses_pragma(
            marker(&dir.path().join("parse.y")).as_bytes()
        ));
        assert!(!loses_pragma(marker(dir.path()).as_bytes()));
        let locked = dir.path().join("locked.h");
        std::fs::write(&locked, "int a;\n").unwrap();
        std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .unwrap();
        // Root reads it anyway; anyone else cannot, and then it counts.
        let readable = File::open(&locked).is_ok();
        assert_eq!(loses_pragma(marker(&locked).as_bytes()), !readable);
    }
}
