//! The directives of one file, as the preprocessor sees them after line splicing and
//! comment removal: includes, definitions, conditionals (with, for each, where its group
//! ends, so that a skipped group costs one jump) and the pragmas that matter to include
//! search. Everything that is not a directive is skipped without being tokenized; the
//! walk in [`super::closure`] evaluates the conditionals.
//!
//! It understands backslash-newline splices (also with blanks before the newline, which
//! GCC accepts), a carriage return without a newline as a line's end and a NUL byte as a
//! blank (as GCC has them), `/* */` comments across lines, `//` comments, string and
//! character literals (which end at the end of their line, as in a skipped `#if 0` block
//! or an assembler file), C++ raw strings `R"d(...)d"` across lines, digit separators, and
//! the digraph `%:` for `#`, a UTF-8 byte order mark, and the two things that depend on
//! the language mode ([`Mode`]): raw strings (C++11 and GNU C99 or later, not strict ISO
//! C) and trigraphs (strict ISO modes before C++17, or `-trigraphs`).

use std::borrow::Cow;
use std::sync::Arc;

use super::macros::Macro;
use super::token::{self, sym, Sym, Tok};

/// One directive. `skip` is the index of the next `#elif`/`#else`/`#endif` of the same
/// conditional (the directive count when the file ends first); `slot` is the index of
/// its tokens in the file's [`Directives::toks`], where a walk only looks when it must
/// (a `#if` whose value it does not remember, a computed include). Small, so that a
/// walk going through a header's directives reads few lines of memory.
#[derive(Debug, Clone)]
pub enum Directive {
    /// `#include`, `#include_next` (`next`) or `#import` (`import`) of `<name>` (`angle`)
    /// or `"name"`.
    Include {
        next: bool,
        import: bool,
        angle: bool,
        name: Sym,
    },
    /// The same with anything else after it: a computed include, to expand.
    Computed {
        next: bool,
        import: bool,
        slot: u32,
    },
    /// `#define` of `m`, named `name` (here, so that a walk defining it need not read it).
    Define {
        name: Sym,
        m: Arc<Macro>,
    },
    Undef(Sym),
    /// `#if EXPR`, or `#elif EXPR` when `elif`; its slot is also where the walk
    /// remembers its values.
    If {
        elif: bool,
        skip: u32,
        slot: u32,
    },
    /// `#ifdef NAME` (`#ifndef` when `negate`), or `#elifdef`/`#elifndef` when `elif`.
    /// `None` for a missing name (a GCC error: the group is then not entered).
    Ifdef {
        name: Option<Sym>,
        negate: bool,
        elif: bool,
        skip: u32,
    },
    Else {
        skip: u32,
    },
    Endif,
    /// `#pragma once`.
    Once,
    /// `#pragma push_macro("NAME")` and `#pragma pop_macro("NAME")`; `maybe` for a
    /// `_Pragma` operator in the text, which a macro call around it may drop (the walk
    /// then takes what they do as possibilities).
    PushMacro {
        name: Sym,
        maybe: bool,
    },
    PopMacro {
        name: Sym,
        maybe: bool,
    },
    /// `#pragma GCC dependency "name"` (or `<name>` when `angle`): the preprocessor
    /// looks the file up as it would include it, and compares its date with the
    /// current file's, without reading it.
    Dependency {
        angle: bool,
        name: Sym,
    },
}

const _: () = assert!(std::mem::size_of::<Directive>() <= 24);

/// A file's directives, and the tokens of its `#if`s and computed includes.
#[derive(Debug, Default)]
pub struct Directives {
    pub list: Vec<Directive>,
    pub toks: Vec<Vec<Tok>>,
}

/// What the language mode changes in the lexing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode {
    pub raw_strings: bool,
    pub trigraphs: bool,
    /// `1'000` is one number (C++14, C2X); elsewhere its `'` opens a character literal.
    pub digit_separators: bool,
    /// A NUL byte between a backslash and its newline still makes a splice (GCC, not
    /// clang).
    pub splice_nul: bool,
    /// `#elifdef` and `#elifndef` are directives (GNU modes, C2X, C++23); elsewhere GCC 12
    /// ignores them.
    pub elifdef: bool,
}

impl Default for Mode {
    /// GCC's default C mode (gnu17).
    fn default() -> Mode {
        Mode {
            raw_strings: true,
            trigraphs: false,
            digit_separators: false,
            splice_nul: true,
            elifdef: true,
        }
    }
}

/// The directives of `src`, in order, with their conditionals linked.
pub fn directives(src: &[u8], mode: Mode) -> Directives {
    let src = src.strip_prefix(b"\xef\xbb\xbf").unwrap_or(src);
    let replaced;
    let src = if mode.trigraphs && src.windows(2).any(|w| w == b"??") {
        replaced = trigraphs(src);
        &replaced[..]
    } else {
        src
    };
    let lines = lone_returns_as_newlines(src);
    let spliced = splice(&lines, mode);
    let s: &[u8] = &spliced;
    let mut out = Vec::new();
    let mut toks = Vec::new();
    let mut i = 0;
    // The end of the last block comment with only blanks (and such comments) before it
    // on its line: a `#` after it still begins a directive, as GCC reads a comment as a
    // space.
    let mut clean_comment_end = None;
    // Where the text after the last literal, comment or directive begins: a number that
    // a `'` may continue starts there or later.
    let mut text = 0;
    // The last comments read (start, end): a `_Pragma (` may have some before its string.
    let mut comments = Comments::default();
    while i < s.len() {
        match s[i] {
            b'#' | b'%' => {
                // `#`, or the digraph `%:`: where the directive's name would begin.
                let after = match s[i] {
                    b'#' => i + 1,
                    _ if s.get(i + 1) == Some(&b':') => i + 2,
                    _ => i,
                };
                if after > i && starts_line(s, i, clean_comment_end) {
                    let (d, next) = directive(s, after, mode, &mut toks);
                    out.extend(d);
                    i = next;
                    text = i;
                } else {
                    i += 1;
                }
            }
            b'/' if s.get(i + 1) == Some(&b'*') => {
                let end = block_comment_end(s, i + 2);
                if starts_line(s, i, clean_comment_end) {
                    clean_comment_end = Some(end);
                }
                comments.push(i, end);
                i = end;
                text = i;
            }
            b'/' if s.get(i + 1) == Some(&b'/') => {
                let end = line_end(s, i);
                comments.push(i, end);
                i = end;
            }
            b'"' => {
                let end = string_end(s, i, mode);
                out.extend(pragma_operator(s, i, end, &comments));
                i = end;
                text = i;
            }
            b'\'' if mode.digit_separators && is_digit_separator(s, text, i) => {
                i = number_end(s, i);
            }
            b'\'' => {
                i = literal_end(s, i);
                text = i;
            }
            // Most of a file is text between directives: skip to the next byte that can
            // begin a directive, a comment or a literal. Newlines are not stops: whether
            // a `#` begins its line is asked of the few `#`s there are.
            _ => i = plain_end(s, i + 1),
        }
    }
    link(&mut out);
    Directives { list: out, toks }
}

/// The position of the first byte from `i` that may begin a directive, a comment or a
/// literal (`#`, `%` of `%:`, `/`, `"`, `'`), or the end. Sixteen bytes at a time: lexing
/// the source file of each request is a large part of the request, and most of it is
/// this scan.
#[cfg(target_arch = "x86_64")]
fn plain_end(s: &[u8], mut i: usize) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of every x86_64 processor, and each load reads the 16 bytes
    // from `i`, which the loop's condition keeps within `s`.
    unsafe {
        let [hash, percent, slash, dq, sq] =
            [b'#', b'%', b'/', b'"', b'\''].map(|c| _mm_set1_epi8(c as i8));
        while i + 16 <= s.len() {
            let v = _mm_loadu_si128(s.as_ptr().add(i) as *const __m128i);
            let a = _mm_or_si128(_mm_cmpeq_epi8(v, hash), _mm_cmpeq_epi8(v, percent));
            let b = _mm_or_si128(_mm_cmpeq_epi8(v, dq), _mm_cmpeq_epi8(v, sq));
            let c = _mm_or_si128(_mm_cmpeq_epi8(v, slash), _mm_or_si128(a, b));
            let bits = _mm_movemask_epi8(c);
            if bits != 0 {
                return i + bits.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    plain_end_bytewise(s, i)
}

#[cfg(not(target_arch = "x86_64"))]
fn plain_end(s: &[u8], i: usize) -> usize {
    plain_end_bytewise(s, i)
}

/// [`plain_end`] a byte at a time.
fn plain_end_bytewise(s: &[u8], i: usize) -> usize {
    let special = |c: &u8| matches!(c, b'#' | b'%' | b'/' | b'"' | b'\'');
    s[i.min(s.len())..]
        .iter()
        .position(special)
        .map_or(s.len(), |p| i + p)
}

/// `src` with its trigraphs (`??=` and the eight others) replaced.
fn trigraphs(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        if src[i] == b'?' && src.get(i + 1) == Some(&b'?') {
            let r = match src.get(i + 2) {
                Some(b'=') => Some(b'#'),
                Some(b'/') => Some(b'\\'),
                Some(b'\'') => Some(b'^'),
                Some(b'(') => Some(b'['),
                Some(b')') => Some(b']'),
                Some(b'!') => Some(b'|'),
                Some(b'<') => Some(b'{'),
                Some(b'>') => Some(b'}'),
                Some(b'-') => Some(b'~'),
                _ => None,
            };
            if let Some(r) = r {
                out.push(r);
                i += 3;
                continue;
            }
        }
        out.push(src[i]);
        i += 1;
    }
    out
}

/// `src` with each carriage return that is not followed by a newline made one: GCC ends
/// a line there (old Mac files), so a `#` after it may begin a directive and a directive
/// ends before it. The file itself when it has none (a CRLF file's returns are followed by
/// their newlines).
fn lone_returns_as_newlines(src: &[u8]) -> Cow<'_, [u8]> {
    let lone = |&i: &usize| src.get(i + 1) != Some(&b'\n');
    if !memchr::memchr_iter(b'\r', src).any(|i| lone(&i)) {
        return Cow::Borrowed(src);
    }
    let mut out = src.to_vec();
    for i in memchr::memchr_iter(b'\r', src).filter(lone) {
        out[i] = b'\n';
    }
    Cow::Owned(out)
}

/// Sets every conditional's `skip`.
fn link(ds: &mut [Directive]) {
    let end = ds.len() as u32;
    let mut open: Vec<usize> = Vec::new();
    let set = |d: &mut Directive, to: u32| match d {
        Directive::If { skip, .. } | Directive::Ifdef { skip, .. } | Directive::Else { skip } => {
            *skip = to
        }
        _ => {}
    };
    for k in 0..ds.len() {
        let (opens, closes) = match &ds[k] {
            Directive::If { elif, .. } | Directive::Ifdef { elif, .. } => (true, *elif),
            Directive::Else { .. } => (true, true),
            Directive::Endif => (false, true),
            _ => (false, false),
        };
        if closes {
            if let Some(prev) = open.pop() {
                set(&mut ds[prev], k as u32);
            }
        }
        if opens {
            open.push(k);
        }
    }
    for k in open {
        set(&mut ds[k], end);
    }
}

/// `src` with every backslash-newline splice removed (a backslash followed by blanks and
/// then `\n` or `\r\n`). The file itself when it has none.
fn splice(src: &[u8], mode: Mode) -> Cow<'_, [u8]> {
    // A backslash in a string or character literal is common, a splice much less.
    let Some(first) = memchr::memchr_iter(b'\\', src).find(|&i| splice_end(src, i, mode).is_some())
    else {
        return Cow::Borrowed(src);
    };
    let mut out = Vec::with_capacity(src.len());
    out.extend_from_slice(&src[..first]);
    let mut i = first;
    while i < src.len() {
        // Copied in runs up to the next backslash.
        let run = memchr::memchr(b'\\', &src[i..]).unwrap_or(src.len() - i);
        out.extend_from_slice(&src[i..i + run]);
        i += run;
        if i == src.len() {
            break;
        }
        match splice_end(src, i, mode) {
            Some(end) => i = end,
            None => {
                out.push(src[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// Where the splice whose backslash is at `i` ends (after its newline), if it is one.
/// The blanks allowed between the two (with a warning) are spaces, tabs, form feeds and
/// vertical tabs, and for GCC NUL bytes.
fn splice_end(src: &[u8], i: usize, mode: Mode) -> Option<usize> {
    let blank =
        |c: u8| matches!(c, b' ' | b'\t' | b'\x0b' | b'\x0c') || (c == 0 && mode.splice_nul);
    let mut j = i + 1;
    while j < src.len() && blank(src[j]) {
        j += 1;
    }
    if src[j..].starts_with(b"\r\n") {
        return Some(j + 2);
    }
    (src.get(j) == Some(&b'\n')).then_some(j + 1)
}

/// The position after horizontal whitespace and comments from `i` (a block comment may
/// span lines: a directive may follow it on its last line, as GCC reads it).
fn skip_blank(s: &[u8], mut i: usize) -> usize {
    loop {
        match s.get(i) {
            Some(&c) if is_blank(c) => i += 1,
            Some(b'/') if s.get(i + 1) == Some(&b'*') => i = block_comment_end(s, i + 2),
            _ => return i,
        }
    }
}

/// Whether `c` is a blank within a line (a NUL byte is one to GCC, which warns; a carriage
/// return here is one before its newline).
fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\x0b' | b'\x0c' | b'\r' | b'\0')
}

/// Whether the byte at `i` is the first of its line but for blanks and block comments:
/// the blanks before it reach the line's start, or the end of `clean_comment_end`, a
/// comment that itself begins its line so (which may have begun lines above).
fn starts_line(s: &[u8], i: usize, clean_comment_end: Option<usize>) -> bool {
    let mut j = i;
    while j > 0 && is_blank(s[j - 1]) {
        j -= 1;
    }
    j == 0 || s[j - 1] == b'\n' || clean_comment_end == Some(j)
}

/// The position after the `*/` closing the comment whose body starts at `i`.
fn block_comment_end(s: &[u8], i: usize) -> usize {
    match memchr::memmem::find(&s[i.min(s.len())..], b"*/") {
        Some(p) => i + p + 2,
        None => s.len(),
    }
}

/// The position of the newline ending the line at `i` (or the end).
fn line_end(s: &[u8], i: usize) -> usize {
    memchr::memchr(b'\n', &s[i..]).map_or(s.len(), |p| i + p)
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

/// The position after the string literal whose `"` is at `i`: a raw string where the
/// mode has them (a malformed one is read as an ordinary literal).
fn string_end(s: &[u8], i: usize, mode: Mode) -> usize {
    if mode.raw_strings && is_raw_prefix(s, i) {
        raw_string_end(s, i).unwrap_or_else(|| literal_end(s, i))
    } else {
        literal_end(s, i)
    }
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

/// Whether the `'` at `i` is a digit separator (`1'000`, where the mode has them), as
/// GCC and clang read one: inside a preprocessing number (begun by a digit, or a `.` and
/// a digit), before an ASCII letter, digit or `_`. `from` is where the text after the last
/// literal or comment begins: no number starts before it. A number with a `$` in it
/// (GCC takes it in, clang does not) is left to the literal, which hides less.
fn is_digit_separator(s: &[u8], from: usize, i: usize) -> bool {
    // What is next to it first: most quotes open literals.
    let before = i > from && (is_ident(s[i - 1]) || s[i - 1] == b'.' || sign(s, i - 1));
    if !before || !s.get(i + 1).is_some_and(|&c| continues_number(c)) {
        return false;
    }
    // Back over what a number may hold (a sign after an exponent's letter too)...
    let mut j = i;
    while j > from
        && (is_ident(s[j - 1]) || matches!(s[j - 1], b'\'' | b'.' | b'$') || sign(s, j - 1))
    {
        j -= 1;
    }
    // ...then forward over names and punctuation: a number begun there runs to `i`.
    while j < i {
        if s[j].is_ascii_digit() || (s[j] == b'.' && s[j + 1].is_ascii_digit()) {
            return !s[j..i].contains(&b'$');
        }
        if is_ident(s[j]) || s[j] == b'$' {
            while j < i && (is_ident(s[j]) || s[j] == b'$') {
                j += 1;
            }
        } else {
            j += 1;
        }
    }
    false
}

/// Whether a digit separator may come before `c`.
fn continues_number(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Whether the `+` or `-` at `j` is an exponent's sign: after `e`, `E`, `p` or `P`, itself
/// not after a digit separator.
fn sign(s: &[u8], j: usize) -> bool {
    matches!(s[j], b'+' | b'-')
        && j >= 1
        && matches!(s[j - 1], b'e' | b'E' | b'p' | b'P')
        && !(j >= 2 && s[j - 2] == b'\'')
}

/// The end of the number whose digit separator is at `i`: the lexer goes on from there,
/// so that each of a long number's separators is not looked back from.
fn number_end(s: &[u8], mut k: usize) -> usize {
    while k < s.len() {
        let c = s[k];
        let quote = c == b'\'' && s.get(k + 1).is_some_and(|&n| continues_number(n));
        if continues_number(c) || c == b'.' || quote || sign(s, k) {
            k += 1;
        } else {
            break;
        }
    }
    k
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Reads the directive whose name starts after the `#` at `i`: the directive, if it is
/// one that matters (its tokens, when it keeps them, put in `slots`), and the position of
/// the newline ending it.
fn directive(
    s: &[u8],
    i: usize,
    mode: Mode,
    slots: &mut Vec<Vec<Tok>>,
) -> (Option<Directive>, usize) {
    let j = skip_blank(s, i);
    let mut k = j;
    while k < s.len() && is_ident(s[k]) {
        k += 1;
    }
    let name = &s[j..k];
    let name = match name {
        b"elifdef" | b"elifndef" if !mode.elifdef => b"",
        n => n,
    };
    let is_include = matches!(name, b"include" | b"include_next" | b"import");
    if is_include {
        if let Some((angle, spelled, end)) = plain_include_name(s, k, mode) {
            let d = Directive::Include {
                next: name == b"include_next",
                import: name == b"import",
                angle,
                name: token::sym_bytes(spelled),
            };
            return (Some(d), end);
        }
    }
    let (line, end) = if is_include {
        include_operand(s, k, mode)
    } else {
        rest_of_directive(s, k, mode)
    };
    let toks = |include: bool| token::tokenize(&line, include);
    let first_name = || token::first_ident(&line);
    let mut slot = |t: Vec<Tok>| {
        slots.push(t);
        (slots.len() - 1) as u32
    };
    let d = match name {
        b"include" | b"include_next" | b"import" => {
            let (next, import) = (name == b"include_next", name == b"import");
            let t = toks(true);
            let named = |angle: bool, n: &str| Directive::Include {
                next,
                import,
                angle,
                name: sym(n),
            };
            match t.as_slice() {
                [] => None,
                [one, ..] if one.kind == token::Kind::Header => {
                    let n = one.text();
                    Some(named(true, &n[1..n.len() - 1]))
                }
                [one, ..] if one.kind == token::Kind::Str && one.text().starts_with('"') => {
                    let n = one.text();
                    Some(named(false, &n[1..n.len().max(2) - 1]))
                }
                _ => Some(Directive::Computed {
                    next,
                    import,
                    slot: slot(t),
                }),
            }
        }
        b"define" => Macro::parse_line(&line).map(|m| Directive::Define {
            name: m.name,
            m: Arc::new(m),
        }),
        b"undef" => first_name().map(Directive::Undef),
        b"if" | b"elif" => Some(Directive::If {
            elif: name == b"elif",
            skip: 0,
            slot: slot(toks(false)),
        }),
        b"ifdef" | b"ifndef" | b"elifdef" | b"elifndef" => Some(Directive::Ifdef {
            name: first_name(),
            negate: name.ends_with(b"ndef"),
            elif: name.starts_with(b"elif"),
            skip: 0,
        }),
        b"else" => Some(Directive::Else { skip: 0 }),
        b"endif" => Some(Directive::Endif),
        b"pragma" => pragma(&toks(false)).or_else(|| dependency(&line)),
        _ => None,
    };
    (d, end)
}

/// The pragmas that matter: `once`, `push_macro("X")`, `pop_macro("X")`.
fn pragma(t: &[Tok]) -> Option<Directive> {
    let k = token::known();
    let first = t.first()?;
    // Text after `once` draws a warning, and is ignored.
    if first.is(k.once) {
        return Some(Directive::Once);
    }
    let push = first.is(k.push_macro);
    if !(push || first.is(k.pop_macro)) {
        return None;
    }
    match t {
        [_, open, name, close, ..]
            if open.is(k.lparen) && close.is(k.rparen) && name.kind == token::Kind::Str =>
        {
            let n = name.text();
            let n = sym(n.strip_prefix('"')?.strip_suffix('"')?);
            Some(if push {
                Directive::PushMacro {
                    name: n,
                    maybe: false,
                }
            } else {
                Directive::PopMacro {
                    name: n,
                    maybe: false,
                }
            })
        }
        _ => None,
    }
}

/// The last comments the lexer read, as (start, end): what [`pragma_operator`] looks back
/// over, besides blanks (a few more than anyone writes between `_Pragma` and its string).
#[derive(Default)]
struct Comments {
    last: [(usize, usize); 16],
    next: usize,
}

impl Comments {
    fn push(&mut self, start: usize, end: usize) {
        self.last[self.next % self.last.len()] = (start, end);
        self.next += 1;
    }

    /// Where the blanks and comments that end at `end` begin.
    fn skip_back(&self, s: &[u8], mut end: usize) -> usize {
        loop {
            while end > 0 && (is_blank(s[end - 1]) || s[end - 1] == b'\n') {
                end -= 1;
            }
            match self.last.iter().find(|&&(a, b)| b == end && a < b) {
                Some(&(start, _)) => end = start,
                None => return end,
            }
        }
    }
}

/// The pragma that matters of a `_Pragma("...")` in the text whose string is `s[i..end]`:
/// `push_macro`, `pop_macro` (as a possibility: the operator may be in a macro's
/// argument that the macro drops) and `GCC dependency` (its file shipped either way).
/// `once` is left out: walking a file again is a superset. Comments may stand between the
/// words, as blanks. One made by a macro's expansion is not seen.
fn pragma_operator(s: &[u8], i: usize, end: usize, comments: &Comments) -> Option<Directive> {
    // An encoding prefix (`L"..."`) may come before the string.
    let prefix = [&b"u8"[..], b"L", b"u", b"U"]
        .into_iter()
        .find(|p| s[..i].ends_with(p) && !(i > p.len() && is_ident(s[i - p.len() - 1])));
    let start = i - prefix.map_or(0, |p| p.len());
    let before = comments.skip_back(s, start).checked_sub(1)?;
    if s[before] != b'(' {
        return None;
    }
    let name_end = comments.skip_back(s, before);
    let named = s[..name_end].strip_suffix(b"_Pragma".as_slice())?;
    if named.last().is_some_and(|&c| is_ident(c)) || end < i + 2 || s[end - 1] != b'"' {
        return None;
    }
    // Destringized: `\"` and `\\` lose their backslash.
    let mut line = Vec::with_capacity(end - i);
    let mut body = s[i + 1..end - 1].iter();
    while let Some(&c) = body.next() {
        match (c, body.as_slice().first()) {
            (b'\\', Some(&n @ (b'"' | b'\\'))) => {
                line.push(n);
                body.next();
            }
            _ => line.push(c),
        }
    }
    match pragma(&token::tokenize(&line, false)) {
        Some(Directive::PopMacro { name, .. }) => Some(Directive::PopMacro { name, maybe: true }),
        Some(Directive::PushMacro { name, .. }) => Some(Directive::PushMacro { name, maybe: true }),
        Some(_) => None,
        None => dependency(&line),
    }
}

/// `#pragma GCC dependency` (or `clang dependency`) of a file named as an `#include`
/// names one, right after the word or after blanks (text may follow).
fn dependency(line: &[u8]) -> Option<Directive> {
    let mut words = line.trim_ascii_start().splitn(2, |c| is_blank(*c));
    if !matches!(words.next()?, b"GCC" | b"clang") {
        return None;
    }
    let rest = words.next()?.trim_ascii_start();
    let operand = rest.strip_prefix(b"dependency".as_slice())?;
    if operand.first().is_some_and(|&c| is_ident(c)) {
        return None;
    }
    let toks = token::tokenize(operand, true);
    let first = toks.first()?;
    let n = first.text();
    match first.kind {
        token::Kind::Header => Some((true, &n[1..n.len() - 1])),
        token::Kind::Str if n.starts_with('"') => Some((false, &n[1..n.len().max(2) - 1])),
        _ => None,
    }
    .map(|(angle, name)| Directive::Dependency {
        angle,
        name: sym(name),
    })
}

/// The name of the `#include` whose operand begins after `i` when it is `<name>`, or
/// `"name"` without a backslash: whether in angles, the name's bytes, and the end of the
/// directive, as [`include_operand`] and the tokenizing of its line find them, without
/// copying or tokenizing the line (most directives of a source file are such includes).
fn plain_include_name(s: &[u8], i: usize, mode: Mode) -> Option<(bool, &[u8], usize)> {
    let a = skip_blank(s, i);
    let close = match s.get(a)? {
        b'<' => b'>',
        b'"' => b'"',
        _ => return None,
    };
    let eol = line_end(s, a);
    let len = memchr::memchr(close, &s[a + 1..eol])?;
    let spelled = &s[a + 1..a + 1 + len];
    // In quotes a backslash escapes the next byte, as in a string literal.
    if close == b'"' && spelled.contains(&b'\\') {
        return None;
    }
    // What follows the name is not read, but a comment there may run over lines.
    let (_, end) = rest_of_directive(s, a + len + 2, mode);
    Some((close == b'>', spelled, end))
}

/// The operand of an include from `i`: as [`rest_of_directive`], except that a `<name>`
/// is taken as it is (`//` or `/*` inside it are part of the name, as in GCC).
fn include_operand(s: &[u8], i: usize, mode: Mode) -> (Cow<'_, [u8]>, usize) {
    let a = skip_blank(s, i);
    if s.get(a) == Some(&b'<') {
        let eol = line_end(s, a);
        if let Some(p) = s[a..eol].iter().position(|&c| c == b'>') {
            let close = a + p + 1;
            let (rest, end) = rest_of_directive(s, close, mode);
            let mut line = s[a..close].to_vec();
            line.extend_from_slice(&rest);
            return (Cow::Owned(line), end);
        }
    }
    rest_of_directive(s, i, mode)
}

/// The rest of a directive's line from `i`, comments replaced by a space, and the
/// position of the newline ending it (a block comment opened on the line may run over
/// several lines) or of the end of the file. Literals are read as in `mode`.
fn rest_of_directive(s: &[u8], mut i: usize, mode: Mode) -> (Cow<'_, [u8]>, usize) {
    let eol = line_end(s, i);
    // Most lines have no comment and no literal: they are the line as it is.
    if memchr::memchr3(b'/', b'"', b'\'', &s[i..eol]).is_none() {
        return (Cow::Borrowed(&s[i..eol]), eol);
    }
    let mut line = Vec::new();
    let mut text = i;
    while i < s.len() {
        // Copied in runs up to the next byte that may open a comment or a literal.
        let eol = line_end(s, i);
        let stop = memchr::memchr3(b'/', b'"', b'\'', &s[i..eol]).map_or(eol, |p| i + p);
        line.extend_from_slice(&s[i..stop]);
        i = stop;
        if i == s.len() {
            break;
        }
        match s[i] {
            b'\n' => break,
            b'/' if s.get(i + 1) == Some(&b'*') => {
                i = block_comment_end(s, i + 2);
                line.push(b' ');
                text = i;
            }
            b'/' if s.get(i + 1) == Some(&b'/') => {
                i = line_end(s, i);
                break;
            }
            b'\'' if mode.digit_separators && is_digit_separator(s, text, i) => {
                let end = number_end(s, i);
                line.extend_from_slice(&s[i..end]);
                i = end;
            }
            b'"' | b'\'' => {
                let end = match s[i] {
                    b'"' => string_end(s, i, mode),
                    _ => literal_end(s, i),
                };
                line.extend_from_slice(&s[i..end]);
                i = end;
                text = i;
            }
            c => {
                line.push(c);
                i += 1;
            }
        }
    }
    (Cow::Owned(line), i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact picture of the directives: one word each.
    fn shape(src: &str) -> Vec<String> {
        let ds = directives(src.as_bytes(), Mode::default());
        let kind = |next: bool, import: bool| match (next, import) {
            (true, _) => "next",
            (_, true) => "import",
            _ => "inc",
        };
        ds.list
            .iter()
            .map(|d| match d {
                Directive::Include {
                    next,
                    import,
                    angle,
                    name,
                } => {
                    let kind = kind(*next, *import);
                    match angle {
                        false => format!("{kind}\"{}\"", name.as_str()),
                        true => format!("{kind}<{}>", name.as_str()),
                    }
                }
                Directive::Computed { next, import, slot } => format!(
                    "{}({})",
                    kind(*next, *import),
                    token::spell(&ds.toks[*slot as usize])
                ),
                Directive::Define { name, .. } => format!("def {}", name.as_str()),
                Directive::Undef(n) => format!("undef {}", n.as_str()),
                Directive::If { elif, skip, slot } => {
                    format!(
                        "{}({})->{skip}",
                        if *elif { "elif" } else { "if" },
                        token::spell(&ds.toks[*slot as usize])
                    )
                }
                Directive::Ifdef {
                    name,
                    negate,
                    elif,
                    skip,
                } => format!(
                    "{}{}def {}->{skip}",
                    if *elif { "el" } else { "" },
                    if *negate { "n" } else { "" },
                    name.map_or("?", |n| n.as_str())
                ),
                Directive::Else { skip } => format!("else->{skip}"),
                Directive::Endif => "endif".into(),
                Directive::Once => "once".into(),
                Directive::PushMacro { name, maybe: false } => format!("push {}", name.as_str()),
                Directive::PushMacro { name, maybe: true } => {
                    format!("maybe push {}", name.as_str())
                }
                Directive::PopMacro { name, maybe: false } => format!("pop {}", name.as_str()),
                Directive::PopMacro { name, maybe: true } => format!("maybe pop {}", name.as_str()),
                Directive::Dependency { angle, name } => format!("dep {angle} {}", name.as_str()),
            })
            .collect()
    }

    /// An include's name read without tokenizing its line is the name its tokens give;
    /// an operand that is not a plain name is left to the tokens.
    #[test]
    fn a_plain_include_name_is_what_its_tokens_give() {
        let lines: &[&[u8]] = &[
            b" <a.h>",
            b"<a/b c.h>  // x",
            b" <a.h> junk",
            b"\t\"q.h\" /* multi\nline */",
            b" /* c */ \"q.h\"",
            b"\"a\\\"b.h\"",
            b" \"unterminated",
            b" <unterminated",
            b" \"\"",
            b" <>",
            b" \"caf\xc3\xa9.h\"",
            b" \"bad\xff.h\"",
            b" MACRO(x)",
        ];
        for &line in lines {
            let (ops, end) = include_operand(line, 0, Mode::default());
            let t = token::tokenize(&ops, true);
            let by_tokens = match t.first() {
                Some(one) if one.kind == token::Kind::Header => Some((true, one.text())),
                Some(one) if one.kind == token::Kind::Str && one.text().starts_with('"') => {
                    Some((false, one.text()))
                }
                _ => None,
            }
            .map(|(angle, n)| (angle, &n[1..n.len().max(2) - 1], end));
            if let Some((angle, name, end2)) = plain_include_name(line, 0, Mode::default()) {
                let name = token::sym_bytes(name).as_str();
                assert_eq!(Some((angle, name, end2)), by_tokens, "{line:?}");
            }
        }
        // The plain ones are read the short way.
        assert!(plain_include_name(b" <a.h>", 0, Mode::default()).is_some());
        assert!(plain_include_name(b" \"q.h\"", 0, Mode::default()).is_some());
        assert!(plain_include_name(b" \"a\\\"b.h\"", 0, Mode::default()).is_none());
    }

    #[test]
    fn forms() {
        assert_eq!(
            shape(
                "#include \"a.h\"\n  #  include <b/c.h> // x\n#import \"d.h\"\n%:include <e.h>\n\
                   #include_next <stdlib.h>\n#include FOO(x)\n#include\n"
            ),
            [
                "inc\"a.h\"",
                "inc<b/c.h>",
                "import\"d.h\"",
                "inc<e.h>",
                "next<stdlib.h>",
                "inc(FOO(x))"
            ]
        );
        assert_eq!(
            shape(
                "#pragma once\n#pragma push_macro(\"X\")\n#pragma pop_macro(\"X\")\n\
                   #pragma GCC system_header\n#define A(x) x\n#undef A\n#error no\n#line 3\n"
            ),
            ["once", "push X", "pop X", "def A", "undef A"]
        );
    }

    #[test]
    fn conditionals_are_linked() {
        assert_eq!(
            shape("#if A\n#ifdef B\n#endif\n#elif C > 1\n#elifndef D\n#else\n#include \"x.h\"\n#endif\n#ifndef G\n"),
            [
                "if(A)->3",
                "def B->2",
                "endif",
                "elif(C > 1)->4",
                "elndef D->5",
                "else->7",
                "inc\"x.h\"",
                "endif",
                "ndef G->9"
            ]
        );
    }

    #[test]
    fn splices() {
        assert_eq!(
            shape("#inc\\\nlude \"a.h\"\n#\\\ninclude \\  \n<b.h>\n# define X \\\n#include \"no.h\"\n\
                   #if A \\\n > 1\n#endif\n"),
            ["inc\"a.h\"", "inc<b.h>", "def X", "if(A > 1)->4", "endif"]
        );
        assert_eq!(shape("#include \"a\\\r\n.h\"\r\n"), ["inc\"a.h\""]);
        // Backslashes in literals before the first splice, and in a file with none.
        assert_eq!(
            shape("char *s = \"a\\n\";\n#define Y \\\n 1\n#inc\\\nlude \"b.h\"\n"),
            ["def Y", "inc\"b.h\""]
        );
        assert_eq!(
            shape("char c = '\\\\';\n#include \"c.h\"\n"),
            ["inc\"c.h\""]
        );
        assert_eq!(
            shape("#include <d//x.h> // c\n#include <d/*y.h> /* c */\n"),
            ["inc<d//x.h>", "inc<d/*y.h>"]
        );
    }

    #[test]
    fn a_directive_keeps_what_only_looks_like_a_comment() {
        // A lone `/`, a `//` inside a literal, a comment between tokens and one at the end.
        let src = "#if 4 / 2 == 2\n#endif\n#if 'a' /* x */ == '/' // y\n#endif\n\
                   #include MAKE(\"a//b.h\") // z\n";
        assert_eq!(
            shape(src),
            [
                "if(4 / 2 == 2)->1",
                "endif",
                "if('a' == '/')->3",
                "endif",
                "inc(MAKE(\"a//b.h\"))"
            ]
        );
    }

    #[test]
    fn comments_and_strings() {
        let src = "/* #include \"c1.h\"\n#include \"c2.h\" */ #include \"yes1.h\"\n\
                   // #include \"c3.h\"\nchar *s = \"/*\";\n#include \"yes2.h\"\n\
                   char c = '\"';\n#include \"yes3.h\"\n/* a */ # /* b */ include /* c */ <yes4.h>\n\
                   #error don't\n#include \"yes5.h\"\n#if 1 /* multi\n#include \"no.h\" */ + 1\n#endif\n";
        assert_eq!(
            shape(src),
            [
                "inc\"yes1.h\"",
                "inc\"yes2.h\"",
                "inc\"yes3.h\"",
                "inc<yes4.h>",
                "inc\"yes5.h\"",
                "if(1 + 1)->6",
                "endif"
            ]
        );
    }

    #[test]
    fn a_hash_begins_a_directive_only_first_on_its_line() {
        // After code, a string or a comment that follows code on its line, a `#` is no
        // directive; after blanks and comments that begin the line (even lines above), or
        // as the digraph `%:`, it is.
        let src = "#include \"a.h\"\nint x = 1; #include \"no1.h\"\n\
                   char *s = \"#\"; #include \"no2.h\"\ny = 2; /* c\n */ #include \"no3.h\"\n\
                   \t /* c */ /* d\n e */\t#include \"b.h\"\n%:include \"c.h\"\n\
                   x = a % b; %:include \"no4.h\"\n  \r #include \"d.h\"\n#";
        assert_eq!(
            shape(src),
            ["inc\"a.h\"", "inc\"b.h\"", "inc\"c.h\"", "inc\"d.h\""]
        );
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line() {
        // As `gcc -E -dM` has it: D0 and D2 are defined, D3 as 4 (a backslash and a lone
        // return splice), D1 is not (its `#` is alone on its line).
        let src = "x;\r#define D0 1\n#\rdefine D1\n#define D2 1\r\n#define D3 \\\r  4\n";
        assert_eq!(shape(src), ["def D0", "def D2", "def D3"]);
        // A NUL byte is a blank to GCC (which warns).
        assert_eq!(
            shape("\0#define D0 1\n#\0define D1 1\n"),
            ["def D0", "def D1"]
        );
    }

    #[test]
    fn the_plain_text_scan_stops_where_the_bytewise_one_does() {
        // Every length around the 16-byte steps, each special byte at each place.
        for len in 0..40 {
            for at in 0..=len {
                for special in [b'\n', b'#', b'%', b'/', b'"', b'\''] {
                    let mut s = vec![b'x'; len];
                    if at < len {
                        s[at] = special;
                    }
                    for from in 0..=len {
                        assert_eq!(
                            plain_end(&s, from),
                            plain_end_bytewise(&s, from),
                            "{len} {at} {from}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn modes() {
        let strict = Mode {
            raw_strings: false,
            trigraphs: true,
            elifdef: false,
            ..Mode::default()
        };
        let src = "\u{feff}#include \"bom.h\"\n#define R \"x\"\nconst char *s = R\"(\";\n#include \"a.h\"\n)\";\n\
                   ??=include \"tri.h\"\n";
        let names = |m: Mode| {
            directives(src.as_bytes(), m)
                .list
                .iter()
                .filter_map(|d| match d {
                    Directive::Include {
                        angle: false, name, ..
                    } => Some(name.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Mode::default()), ["bom.h"]);
        assert_eq!(names(strict), ["bom.h", "a.h", "tri.h"]);
    }

    #[test]
    fn pragma_operators() {
        let src = "_Pragma(\"push_macro(\\\"A\\\")\")\n_Pragma\n ( \"pop_macro(\\\"A\\\")\" )\n\
                   my_Pragma(\"pop_macro(\\\"B\\\")\")\n_Pragma(\"once\")\n\
                   #define P _Pragma(\"pop_macro(\\\"C\\\")\")\n\
                   _Pragma(\"GCC dependency <d.h>\")\n_Pragma(L\"pop_macro(\\\"E\\\")\")\n\
                   #pragma GCC dependency\"n.h\"\n#pragma clang dependency <c.h>\n\
                   #pragma GCC dependencies \"no.h\"\nx = \"_Pragma(\\\"pop_macro(\\\\\\\"D\\\\\\\")\\\")\";\n\
                   _Pragma/**/( /* a */ // b\n/**/\"push_macro(\\\"F\\\")\")\n\
                   _Pragma x (/**/\"pop_macro(\\\"G\\\")\")\n\
                   _Pragma/**//**//**/(/**//**//**/\"pop_macro(\\\"H\\\")\")\n";
        assert_eq!(
            shape(src),
            [
                "maybe push A",
                "maybe pop A",
                "def P",
                "dep true d.h",
                "maybe pop E",
                "dep false n.h",
                "dep true c.h",
                "maybe push F",
                "maybe pop H"
            ]
        );
    }

    #[test]
    fn raw_strings() {
        let src = "auto s = R\"d(\n#include \"no.h\"\n/* )d\";\n#include \"yes.h\"\n\
                   int m = u8R\"(a)\";\n#include <y3.h>\n";
        assert_eq!(shape(src), ["inc\"yes.h\"", "inc<y3.h>"]);
    }

    #[test]
    fn digit_separators() {
        let count = |src: &str, digit_separators| {
            let mode = Mode {
                digit_separators,
                ..Mode::default()
            };
            directives(src.as_bytes(), mode).list.len()
        };
        // With separators the `/*` opens a comment hiding the include; without, the `'`
        // opens a character literal that ends with the line. A `'` after a character
        // literal (`'a'1'0`) or a sign in an exponent (`1e+5'0`) still continues a number;
        // one after a name (`x1'0`) or before a blank (`1' `) does not.
        for (text, hidden) in [
            ("1'000", true),
            ("'a'1'0", true),
            ("1e+5'0", true),
            ("1e+'0", true),
            (".5'0", true),
            ("1.'0", true),
            ("1'z", true),
            ("1'_a", true),
            ("x1'0", false),
            ("a$1'0", false),
            ("1' 0", false),
            ("1'\u{e9}", false),
        ] {
            let src = format!("n = {text} /*\n#include \"x.h\"\n*/\n");
            assert_eq!(count(&src, true), usize::from(!hidden), "{text}");
            assert_eq!(count(&src, false), 1, "{text}");
            // The same in a directive's line.
            let src = format!("#define N {text} /*\n#include \"x.h\"\n*/\n");
            assert_eq!(count(&src, true), 1 + usize::from(!hidden), "{text}");
            assert_eq!(count(&src, false), 2, "{text}");
        }
        // `1'e` is a number and its `+` not a sign, so the next `'` opens a literal; without
        // separators, `'e+'` is one and the comment hides the include.
        let src = "n = 1'e+'0 /*\n#include \"x.h\"\n*/\n";
        assert_eq!((count(src, true), count(src, false)), (1, 0));
        // Each separator of a long number is not looked back from (that took minutes),
        // nor is a long run of quotes looked ahead over for each.
        let long = format!("x = 1{} /*\n#include \"x.h\"\n*/\n", "'1".repeat(500_000));
        assert_eq!(count(&long, true), 0);
        let quotes = format!("{}\n#include \"x.h\"\n", "'".repeat(1_000_000));
        assert_eq!(count(&quotes, true), 1);
    }
}
