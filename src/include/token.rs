//! Preprocessing tokens of directive lines: interned spellings ([`Sym`]) and the tokenizer
//! of one logical line (splices and comments already gone). It knows the C and C++ token
//! shapes that matter to `#if` and `#include`: identifiers, pp-numbers, character and
//! string literals with their prefixes, header names where one may stand, and the
//! punctuators; a stray character is a token of its own, as in GCC.
//!
//! Spellings are interned once for the life of the process and compared by address: the
//! include server lives for one build, and the distinct spellings of a build's directive
//! lines are a few megabytes at most.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Mutex, OnceLock};

/// A small fast hasher for interned addresses and short strings (FxHash's mixing).
#[derive(Default, Clone, Copy)]
pub struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.write_u64(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        // The tail byte by byte: a copy into a buffer is a call to `memcpy` for a name
        // of a few letters, and most names are hashed in the lexing of every header.
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let n = tail.iter().rev().fold(0u64, |n, &b| n << 8 | u64::from(b));
            self.write_u64(n);
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

pub type FxBuild = BuildHasherDefault<Fx>;
pub type FxMap<K, V> = std::collections::HashMap<K, V, FxBuild>;
pub type FxSet<K> = HashSet<K, FxBuild>;

/// An interned spelling; equal spellings are the same address. One pointer wide (to
/// the spelling's own pointer), so that tokens, directives and macro tables are small.
#[derive(Clone, Copy)]
pub struct Sym(&'static &'static str);

impl Sym {
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl PartialEq for Sym {
    fn eq(&self, other: &Sym) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}
impl Eq for Sym {}
impl Hash for Sym {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_usize(self.0 as *const &str as usize);
    }
}
impl std::fmt::Debug for Sym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

fn table() -> &'static Mutex<FxMap<&'static str, Sym>> {
    static TABLE: OnceLock<Mutex<FxMap<&'static str, Sym>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

thread_local! {
    /// The names this thread has interned: most of a header's names were met before, and
    /// looking them up here takes no lock that the other request threads also take.
    static SEEN: std::cell::RefCell<FxMap<&'static str, Sym>> = Default::default();
}

/// The interned `s`.
pub fn sym(s: &str) -> Sym {
    if let Some(found) = SEEN.with_borrow(|seen| seen.get(s).copied()) {
        return found;
    }
    let mut t = table().lock().unwrap_or_else(|e| e.into_inner());
    let interned = match t.get(s) {
        Some(&found) => found,
        None => {
            let text: &'static str = Box::leak(s.to_string().into_boxed_str());
            let found = Sym(Box::leak(Box::new(text)));
            t.insert(text, found);
            found
        }
    };
    drop(t);
    SEEN.with_borrow_mut(|seen| seen.insert(interned.as_str(), interned));
    interned
}

/// The interned spelling of `bytes` (an invalid UTF-8 sequence spelled U+FFFD).
pub fn sym_bytes(bytes: &[u8]) -> Sym {
    // Nearly every spelling of a directive line is ASCII, which is checked for much faster
    // than UTF-8 is validated.
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        return sym(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    sym(&String::from_utf8_lossy(bytes))
}

/// The interned punctuators, in the order of [`PUNCTS`] (a digraph as the punctuator it
/// stands for), and each ASCII byte as a token of its own: a directive line's tokens are
/// half punctuators, and these are found without hashing their spelling.
struct Puncts {
    multi: Vec<Sym>,
    single: Vec<Sym>,
}

fn puncts() -> &'static Puncts {
    static PUNCT_SYMS: OnceLock<Puncts> = OnceLock::new();
    PUNCT_SYMS.get_or_init(|| Puncts {
        multi: PUNCTS
            .iter()
            .map(|p| match *p {
                "%:" => sym("#"),
                "%:%:" => sym("##"),
                "<:" => sym("["),
                ":>" => sym("]"),
                "<%" => sym("{"),
                "%>" => sym("}"),
                p => sym(p),
            })
            .collect(),
        single: (0..128u8).map(|c| sym_bytes(&[c])).collect(),
    })
}

/// The spellings the analysis looks for, interned once.
pub struct Known {
    pub defined: Sym,
    pub has_include: Sym,
    pub has_include_next: Sym,
    pub va_args: Sym,
    pub va_opt: Sym,
    pub lparen: Sym,
    pub rparen: Sym,
    pub comma: Sym,
    pub hash: Sym,
    pub hashhash: Sym,
    pub lt: Sym,
    pub gt: Sym,
    pub true_: Sym,
    pub false_: Sym,
    pub once: Sym,
    pub clang: Sym,
    pub cplusplus: Sym,
    pub has_cpp_attribute: Sym,
    pub has_c_attribute: Sym,
    /// The feature tests GCC has too.
    pub gcc_feature_tests: Vec<Sym>,
    pub char_unsigned: Sym,
    pub file: Sym,
    pub push_macro: Sym,
    pub pop_macro: Sym,
    /// `__has_builtin` and the other feature tests whose answer only the compiler knows.
    pub feature_tests: Vec<Sym>,
    /// `__LINE__`, `__FILE__` and the other macros the preprocessor computes.
    pub dynamic: Vec<Sym>,
}

impl Known {
    /// Whether `name` counts as defined without a `#define`: the operators and macros
    /// the preprocessor provides itself (`#ifdef __has_include` is true). GCC has only
    /// some of clang's feature tests (`defined __has_feature` is false in GCC 12), and
    /// clang has `__has_cpp_attribute` in C++ only, `__has_c_attribute` in C only.
    pub fn built_in(&self, name: Sym, clang: bool, cplusplus: bool) -> bool {
        let other_language = clang
            && ((name == self.has_cpp_attribute && !cplusplus)
                || (name == self.has_c_attribute && cplusplus));
        name == self.has_include
            || name == self.has_include_next
            || self.dynamic.contains(&name)
            || (self.feature_tests.contains(&name)
                && (clang || self.gcc_feature_tests.contains(&name))
                && !other_language)
    }
}

pub fn known() -> &'static Known {
    static KNOWN: OnceLock<Known> = OnceLock::new();
    KNOWN.get_or_init(|| Known {
        defined: sym("defined"),
        has_include: sym("__has_include"),
        has_include_next: sym("__has_include_next"),
        va_args: sym("__VA_ARGS__"),
        va_opt: sym("__VA_OPT__"),
        lparen: sym("("),
        rparen: sym(")"),
        comma: sym(","),
        hash: sym("#"),
        hashhash: sym("##"),
        lt: sym("<"),
        gt: sym(">"),
        true_: sym("true"),
        false_: sym("false"),
        once: sym("once"),
        clang: sym("__clang__"),
        cplusplus: sym("__cplusplus"),
        has_cpp_attribute: sym("__has_cpp_attribute"),
        has_c_attribute: sym("__has_c_attribute"),
        gcc_feature_tests: [
            "__has_builtin",
            "__has_attribute",
            "__has_cpp_attribute",
            "__has_c_attribute",
        ]
        .iter()
        .map(|s| sym(s))
        .collect(),
        char_unsigned: sym("__CHAR_UNSIGNED__"),
        file: sym("__FILE__"),
        push_macro: sym("push_macro"),
        pop_macro: sym("pop_macro"),
        feature_tests: [
            "__has_builtin",
            "__has_attribute",
            "__has_cpp_attribute",
            "__has_c_attribute",
            "__has_feature",
            "__has_extension",
            "__has_warning",
            "__has_declspec_attribute",
            "__is_identifier",
            "__is_target_arch",
            "__is_target_os",
            "__is_target_vendor",
            "__is_target_environment",
            "__building_module",
        ]
        .iter()
        .map(|s| sym(s))
        .collect(),
        dynamic: [
            "__LINE__",
            "__FILE__",
            "__FILE_NAME__",
            "__BASE_FILE__",
            "__COUNTER__",
            "__INCLUDE_LEVEL__",
            "__DATE__",
            "__TIME__",
            "__TIMESTAMP__",
            "_Pragma",
        ]
        .iter()
        .map(|s| sym(s))
        .collect(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ident,
    Number,
    /// A character literal, prefix included.
    Char,
    /// A string literal, prefix included.
    Str,
    /// `<name>` where a header name may stand (after `#include` and `__has_include(`).
    Header,
    Punct,
    /// A `##` of a macro body: the paste operator (one coming from an argument is not).
    Paste,
    /// An empty argument next to `##` (removed after pasting).
    Placemarker,
}

/// One token: its spelling, its kind, whether whitespace came before it in its source
/// (`space`), whether whitespace stood before the macro name or parameter it replaces
/// (`pad`: GCC's padding, which counts when stringifying but not in a header name), and
/// whether it names a macro that must not be expanded any more (it was met inside its own
/// expansion: "painted blue").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tok {
    pub sym: Sym,
    pub kind: Kind,
    pub space: bool,
    pub pad: bool,
    pub no_expand: bool,
}

impl Tok {
    pub fn new(sym: Sym, kind: Kind, space: bool) -> Tok {
        Tok {
            sym,
            kind,
            space,
            pad: false,
            no_expand: false,
        }
    }

    pub fn is(&self, s: Sym) -> bool {
        self.sym == s && self.kind != Kind::Str
    }

    pub fn text(&self) -> &'static str {
        self.sym.as_str()
    }
}

pub fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80
}

pub fn is_ident_char(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

/// Punctuators, longest first within each first character.
const PUNCTS: &[&str] = &[
    "%:%:", "...", "<<=", ">>=", "<=>", "->*", "##", "<<", ">>", "<=", ">=", "==", "!=", "&&",
    "||", "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "->", "::", ".*", "<:", ":>",
    "<%", "%>", "%:",
];

/// The tokens of `line`, a logical line without comments. `header_after` says where a
/// `<...>` is one header-name token: after `#include` (the whole operand) or after
/// `__has_include(`.
pub fn tokenize(line: &[u8], include_operand: bool) -> Vec<Tok> {
    thread_local! {
        /// Where a line is tokenized before its tokens are copied out in one allocation
        /// of the right size, not grown token by token.
        static SCRATCH: std::cell::RefCell<Vec<Tok>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|out| {
        out.clear();
        tokenize_into(line, include_operand, out);
        out.to_vec()
    })
}

fn tokenize_into(line: &[u8], include_operand: bool, out: &mut Vec<Tok>) {
    let k = known();
    let puncts = puncts();
    let mut i = 0;
    let mut space = false;
    while i < line.len() {
        let c = line[i];
        if matches!(c, b' ' | b'\t' | b'\x0b' | b'\x0c' | b'\r' | b'\n') {
            space = true;
            i += 1;
            continue;
        }
        let start = i;
        // A punctuator's spelling, interned once for all lines.
        let mut interned = None;
        let wants_header = c == b'<'
            && ((include_operand && out.is_empty())
                || (out.len() >= 2
                    && out[out.len() - 1].is(k.lparen)
                    && (out[out.len() - 2].is(k.has_include)
                        || out[out.len() - 2].is(k.has_include_next))));
        let kind = if wants_header && line[i + 1..].contains(&b'>') {
            i += 1 + line[i + 1..].iter().position(|&x| x == b'>').unwrap() + 1;
            Kind::Header
        } else if is_ident_start(c) {
            while i < line.len() && is_ident_char(line[i]) {
                i += 1;
            }
            // A literal's prefix: u8"..", L'..', R"(..)" and friends.
            match line.get(i) {
                Some(b'"') | Some(b'\'') if is_literal_prefix(&line[start..i]) => {
                    let quote = line[i];
                    i = literal_end(line, i, line[start..i].ends_with(b"R"));
                    if quote == b'"' {
                        Kind::Str
                    } else {
                        Kind::Char
                    }
                }
                _ => Kind::Ident,
            }
        } else if c.is_ascii_digit()
            || (c == b'.' && line.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            i += 1;
            while i < line.len() {
                let d = line[i];
                if matches!(d, b'e' | b'E' | b'p' | b'P')
                    && matches!(line.get(i + 1), Some(b'+' | b'-'))
                {
                    i += 2;
                } else if is_ident_char(d) || d == b'.' {
                    i += 1;
                } else if d == b'\'' && line.get(i + 1).is_some_and(|&n| is_ident_char(n)) {
                    i += 2;
                } else {
                    break;
                }
            }
            Kind::Number
        } else if c == b'"' || c == b'\'' {
            i = literal_end(line, i, false);
            if c == b'"' {
                Kind::Str
            } else {
                Kind::Char
            }
        } else {
            let rest = &line[i..];
            let p = (PUNCTS.iter())
                .position(|p| p.as_bytes()[0] == c && rest.starts_with(p.as_bytes()));
            match p {
                Some(p) => {
                    i += PUNCTS[p].len();
                    interned = Some(puncts.multi[p]);
                }
                None if c.is_ascii() => {
                    i += 1;
                    interned = Some(puncts.single[usize::from(c)]);
                }
                None => i += utf8_len(c),
            }
            Kind::Punct
        };
        let sym = interned.unwrap_or_else(|| sym_bytes(&line[start..i]));
        out.push(Tok::new(sym, kind, space));
        space = false;
    }
}

/// The first token of `line` when it is an identifier, as [`tokenize`] finds it, without
/// tokenizing the rest: all that `#ifdef`, `#ifndef` and `#undef` read of their line.
pub fn first_ident(line: &[u8]) -> Option<Sym> {
    let start = (line.iter())
        .position(|c| !matches!(c, b' ' | b'\t' | b'\x0b' | b'\x0c' | b'\r' | b'\n'))?;
    if !is_ident_start(line[start]) {
        return None;
    }
    let end = (line[start..].iter())
        .position(|&c| !is_ident_char(c))
        .map_or(line.len(), |p| start + p);
    // A literal's prefix (`L"x"`) begins a literal, not a name.
    if matches!(line.get(end), Some(b'"' | b'\'')) && is_literal_prefix(&line[start..end]) {
        return None;
    }
    Some(sym_bytes(&line[start..end]))
}

fn utf8_len(c: u8) -> usize {
    match c {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

fn is_literal_prefix(p: &[u8]) -> bool {
    matches!(
        p,
        b"L" | b"u" | b"U" | b"u8" | b"R" | b"LR" | b"uR" | b"UR" | b"u8R"
    )
}

/// The end of the literal whose quote is at `i` (raw when `raw`); an unterminated one
/// ends with the line.
fn literal_end(s: &[u8], i: usize, raw: bool) -> usize {
    let quote = s[i];
    if raw && quote == b'"' {
        if let Some(open) = s[i + 1..].iter().take(17).position(|&c| c == b'(') {
            let delim = &s[i + 1..i + 1 + open];
            let mut close = vec![b')'];
            close.extend_from_slice(delim);
            close.push(b'"');
            let body = i + 2 + open;
            if let Some(p) = s[body..].windows(close.len()).position(|w| w == close) {
                return body + p + close.len();
            }
        }
        return s.len();
    }
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'\\' => j += 2,
            c if c == quote => return j + 1,
            _ => j += 1,
        }
    }
    s.len()
}

/// The spelling of `toks` as the preprocessor writes them: one space where whitespace
/// was, none at the start.
pub fn spell(toks: &[Tok]) -> String {
    let mut s = String::new();
    for t in toks {
        if t.kind == Kind::Placemarker {
            continue;
        }
        if (t.space || t.pad) && !s.is_empty() {
            s.push(' ');
        }
        s.push_str(t.text());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str, inc: bool) -> Vec<(&'static str, Kind)> {
        tokenize(line.as_bytes(), inc)
            .iter()
            .map(|t| (t.text(), t.kind))
            .collect()
    }

    #[test]
    fn shapes() {
        use Kind::*;
        assert_eq!(
            texts("a1 >= 0x1fUL && L'x' || u8\"s\\\"\" %: ## ...", false),
            vec![
                ("a1", Ident),
                (">=", Punct),
                ("0x1fUL", Number),
                ("&&", Punct),
                ("L'x'", Char),
                ("||", Punct),
                ("u8\"s\\\"\"", Str),
                ("#", Punct),
                ("##", Punct),
                ("...", Punct),
            ]
        );
        assert_eq!(texts("<a/b.h> x", true)[0], ("<a/b.h>", Header));
        assert_eq!(texts("<a/b.h>", false)[0], ("<", Punct));
        assert_eq!(
            texts("__has_include(<x y.h>) && 1.5e+3", false),
            vec![
                ("__has_include", Ident),
                ("(", Punct),
                ("<x y.h>", Header),
                (")", Punct),
                ("&&", Punct),
                ("1.5e+3", Number)
            ]
        );
        // The first name as `#ifdef` reads it is the first token when it is a name.
        for line in [
            "",
            "  x y",
            "\tx(",
            "L\"s\"",
            "u8'c'",
            "Lx",
            "$a",
            "1a",
            "(a)",
            "caf\u{e9} z",
            "\u{e9}t\u{e9}",
            "R\"(x)\"",
            "x\"",
            "ab\x0bc",
        ] {
            let by_tokens = (tokenize(line.as_bytes(), false).first())
                .filter(|t| t.kind == Ident)
                .map(|t| t.sym);
            assert_eq!(first_ident(line.as_bytes()), by_tokens, "{line:?}");
        }
        assert!(sym("abc") == sym(&String::from("abc")));
        let t = tokenize(b"a  b", false);
        assert!(!t[0].space && t[1].space);
        assert_eq!(spell(&t), "a b");
    }
}
