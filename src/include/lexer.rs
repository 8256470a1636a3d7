//! The include directives of one file: every `#include`, `#include_next` and `#import`,
//! in every branch (no `#if` evaluation: the caller over-approximates), as the
//! preprocessor would see them after line splicing and comment removal.
//!
//! It understands backslash-newline splices (also with spaces before the newline, which
//! GCC accepts), `/* */` comments across lines, `//` comments, string and character
//! literals (which end at the end of their line, as in a skipped `#if 0` block), C++ raw
//! strings `R"d(...)d"` across lines, and the digraph `%:` for `#`. It does not tokenize
//! anything else; trigraphs are not replaced (GCC's default in its GNU modes).

/// One include directive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Include {
    /// `#include "name"` or `#import "name"`.
    Quote(String),
    /// `#include <name>` or `#import <name>`.
    Angle(String),
    /// `#include_next "name"` or `#include_next <name>`.
    Next(String),
    /// `#include TOKENS` (or `#import`): a computed include, its text.
    Computed(String),
    /// `#include_next TOKENS`: a computed include_next, its text.
    ComputedNext(String),
    /// `#define NAME BODY` or `#define NAME(PARAMS) BODY`, for computed includes.
    Define(super::macros::Define),
}

/// The include directives of `src`, in order.
pub fn includes(src: &[u8]) -> Vec<Include> {
    let mut v = directives(src);
    v.retain(|d| !matches!(d, Include::Define(_)));
    v
}

/// The include and define directives of `src`, in order.
pub fn directives(src: &[u8]) -> Vec<Include> {
    let spliced = splice(src);
    let s: &[u8] = &spliced;
    let mut out = Vec::new();
    let mut i = 0;
    let mut at_line_start = true;
    while i < s.len() {
        if at_line_start {
            at_line_start = false;
            let j = skip_blank(s, i);
            let hash = if s.get(j) == Some(&b'#') {
                Some(j + 1)
            } else if s[j..].starts_with(b"%:") {
                Some(j + 2)
            } else {
                None
            };
            if let Some(after) = hash {
                let (inc, next) = directive(s, after);
                if let Some(inc) = inc {
                    out.push(inc);
                }
                i = next;
                continue;
            }
            i = j;
            continue;
        }
        match s[i] {
            b'\n' => {
                at_line_start = true;
                i += 1;
            }
            b'/' if s.get(i + 1) == Some(&b'*') => i = block_comment_end(s, i + 2),
            b'/' if s.get(i + 1) == Some(&b'/') => i = line_end(s, i),
            b'"' => {
                i = if is_raw_prefix(s, i) {
                    raw_string_end(s, i).unwrap_or_else(|| literal_end(s, i))
                } else {
                    literal_end(s, i)
                }
            }
            b'\'' if !is_digit_separator(s, i) => i = literal_end(s, i),
            _ => i += 1,
        }
    }
    out
}

/// `src` with every backslash-newline splice removed (a backslash followed by spaces or
/// tabs and then `\n` or `\r\n`). The file itself when it has none.
fn splice(src: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !src.contains(&b'\\') {
        return std::borrow::Cow::Borrowed(src);
    }
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        if src[i] == b'\\' {
            let mut j = i + 1;
            while j < src.len() && (src[j] == b' ' || src[j] == b'\t') {
                j += 1;
            }
            if src[j..].starts_with(b"\r\n") {
                i = j + 2;
                continue;
            }
            if src.get(j) == Some(&b'\n') {
                i = j + 1;
                continue;
            }
        }
        out.push(src[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// The position after horizontal whitespace and comments from `i` (a block comment may
/// span lines: a directive may follow it on its last line, as GCC reads it).
fn skip_blank(s: &[u8], mut i: usize) -> usize {
    loop {
        match s.get(i) {
            Some(b' ' | b'\t' | b'\x0b' | b'\x0c' | b'\r') => i += 1,
            Some(b'/') if s.get(i + 1) == Some(&b'*') => i = block_comment_end(s, i + 2),
            _ => return i,
        }
    }
}

/// The position after the `*/` closing the comment whose body starts at `i`.
fn block_comment_end(s: &[u8], i: usize) -> usize {
    match s[i.min(s.len())..].windows(2).position(|w| w == b"*/") {
        Some(p) => i + p + 2,
        None => s.len(),
    }
}

/// The position of the newline ending the line at `i` (or the end).
fn line_end(s: &[u8], i: usize) -> usize {
    s[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(s.len(), |p| i + p)
}

/// The position after the string or character literal opening at `i`; an unterminated
/// literal ends at its line's end.
fn literal_end(s: &[u8], i: usize) -> usize {
    let quote = s[i];
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'\\' => j += 2,
            b'\n' => return j,
            c if c == quote => return j + 1,
            _ => j += 1,
        }
    }
    s.len()
}

/// Whether the `"` at `i` opens a raw string: it follows `R`, `u8R`, `uR`, `UR` or `LR`,
/// and those letters start an identifier.
fn is_raw_prefix(s: &[u8], i: usize) -> bool {
    if i == 0 || s[i - 1] != b'R' {
        return false;
    }
    let mut start = i - 1;
    for prefix in [&b"u8"[..], b"u", b"U", b"L"] {
        if s[..start].ends_with(prefix) {
            start -= prefix.len();
            break;
        }
    }
    start == 0 || !is_ident(s[start - 1])
}

/// The position after the raw string whose `"` is at `i`, or `None` when it is malformed
/// or unterminated (then it is read as an ordinary literal).
fn raw_string_end(s: &[u8], i: usize) -> Option<usize> {
    let open = s[i + 1..].iter().take(17).position(|&c| c == b'(')? + i + 1;
    let delim = &s[i + 1..open];
    if delim
        .iter()
        .any(|&c| matches!(c, b' ' | b'\\' | b')' | b'\t' | b'\n' | b'"'))
    {
        return None;
    }
    let mut close = Vec::with_capacity(delim.len() + 2);
    close.push(b')');
    close.extend_from_slice(delim);
    close.push(b'"');
    let p = s[open + 1..]
        .windows(close.len())
        .position(|w| w == close)?;
    Some(open + 1 + p + close.len())
}

/// Whether the `'` at `i` is a C++14 digit separator (`1'000`).
fn is_digit_separator(s: &[u8], i: usize) -> bool {
    i > 0
        && s[i - 1].is_ascii_alphanumeric()
        && s.get(i + 1).is_some_and(|c| c.is_ascii_hexdigit())
        && {
            // Walk back over the pp-number: it must start with a digit.
            let mut j = i;
            while j > 0 && (is_ident(s[j - 1]) || s[j - 1] == b'\'' || s[j - 1] == b'.') {
                j -= 1;
            }
            s[j].is_ascii_digit()
        }
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Reads the directive whose name starts after the `#` at `i`: the include it is, if
/// any, and the position of the newline ending it.
fn directive(s: &[u8], i: usize) -> (Option<Include>, usize) {
    let j = skip_blank(s, i);
    let mut k = j;
    while k < s.len() && is_ident(s[k]) {
        k += 1;
    }
    let name = &s[j..k];
    let next = name == b"include_next";
    if name == b"define" {
        let end = rest_of_directive(s, k);
        let text = String::from_utf8_lossy(&s[k..end]);
        return (
            super::macros::Define::parse(&text).map(Include::Define),
            end,
        );
    }
    if !(next || name == b"include" || name == b"import") {
        return (None, rest_of_directive(s, k));
    }
    let a = skip_blank(s, k);
    let end = rest_of_directive(s, a);
    let text = |from: usize, to: usize| String::from_utf8_lossy(&s[from..to]).into_owned();
    let close = match s.get(a) {
        Some(b'"') => Some(b'"'),
        Some(b'<') => Some(b'>'),
        _ => None,
    };
    let inc = match close {
        Some(c) => match s[a + 1..end].iter().position(|&x| x == c) {
            Some(p) => {
                let name = text(a + 1, a + 1 + p);
                Some(if next {
                    Include::Next(name)
                } else if c == b'"' {
                    Include::Quote(name)
                } else {
                    Include::Angle(name)
                })
            }
            // An unterminated name: GCC reports an error; nothing to read.
            None => None,
        },
        None => {
            let body = text(a, end);
            let body = body.trim();
            (!body.is_empty()).then(|| {
                if next {
                    Include::ComputedNext(body.to_string())
                } else {
                    Include::Computed(body.to_string())
                }
            })
        }
    };
    (inc, end)
}

/// The end of a directive's line from `i`: the newline not inside a comment (a block
/// comment opened on the line may run over several lines) or the end of the file.
fn rest_of_directive(s: &[u8], mut i: usize) -> usize {
    while i < s.len() {
        match s[i] {
            b'\n' => return i,
            b'/' if s.get(i + 1) == Some(&b'*') => i = block_comment_end(s, i + 2),
            b'/' if s.get(i + 1) == Some(&b'/') => return line_end(s, i),
            b'"' | b'\'' => i = literal_end(s, i),
            _ => i += 1,
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::Include::*;
    use super::*;

    fn inc(src: &str) -> Vec<Include> {
        includes(src.as_bytes())
    }

    #[test]
    fn plain_forms() {
        assert_eq!(
            inc("#include \"a.h\"\n  #  include <b/c.h> // x\n#import \"d.h\"\n%:include <e.h>\n"),
            vec![
                Quote("a.h".into()),
                Angle("b/c.h".into()),
                Quote("d.h".into()),
                Angle("e.h".into())
            ]
        );
        assert_eq!(
            inc("#include_next <stdlib.h>\n#include FOO(x)\n#include\n"),
            vec![Next("stdlib.h".into()), Computed("FOO(x)".into())]
        );
        assert_eq!(
            directives(b"#define A(x) <x.h>\n#include_next A(b)\n"),
            vec![
                Define(crate::include::macros::Define::parse(" A(x) <x.h>").unwrap()),
                ComputedNext("A(b)".into())
            ]
        );
    }

    #[test]
    fn every_branch_counts() {
        assert_eq!(
            inc("#if 0\n#include \"x.h\"\n#else\n#include \"y.h\"\n#endif\n"),
            vec![Quote("x.h".into()), Quote("y.h".into())]
        );
    }

    #[test]
    fn splices() {
        assert_eq!(
            inc("#inc\\\nlude \"a.h\"\n#\\\ninclude \\  \n<b.h>\n# define X \\\n#include \"no.h\"\n"),
            vec![Quote("a.h".into()), Angle("b.h".into())]
        );
        assert_eq!(inc("#include \"a\\\r\n.h\"\r\n"), vec![Quote("a.h".into())]);
    }

    #[test]
    fn comments_and_strings() {
        let src = "/* #include \"c1.h\"\n#include \"c2.h\" */ #include \"yes1.h\"\n\
                   // #include \"c3.h\"\nchar *s = \"/*\";\n#include \"yes2.h\"\n\
                   char c = '\"';\n#include \"yes3.h\"\n/* a */ # /* b */ include /* c */ <yes4.h>\n\
                   #error don't\n#include \"yes5.h\"\n";
        assert_eq!(
            inc(src),
            vec![
                Quote("yes1.h".into()),
                Quote("yes2.h".into()),
                Quote("yes3.h".into()),
                Angle("yes4.h".into()),
                Quote("yes5.h".into())
            ]
        );
    }

    #[test]
    fn raw_strings_and_separators() {
        let src = "auto s = R\"d(\n#include \"no.h\"\n/* )d\";\n#include \"yes.h\"\n\
                   int n = 1'000; /* x */\n#include \"yes2.h\"\nint m = u8R\"(a)\";\n#include <y3.h>\n";
        assert_eq!(
            inc(src),
            vec![
                Quote("yes.h".into()),
                Quote("yes2.h".into()),
                Angle("y3.h".into())
            ]
        );
    }

    #[test]
    fn directive_comment_spanning_lines() {
        assert_eq!(
            inc("#include \"a.h\" /* multi\n#include \"no.h\" */\n#include \"b.h\"\n"),
            vec![Quote("a.h".into()), Quote("b.h".into())]
        );
    }
}
