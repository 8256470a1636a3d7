//! Computed includes (`#include MACRO`, `#include F(x)`), evaluated as distcc 3.4's
//! `macro_eval.py` does: under "multi-valued" semantics, where each macro may stay
//! unexpanded or take any of the definitions seen (every `#define` of every file of the
//! translation unit, in every branch, and the command line's `-D`; `#undef` is ignored).
//! Function-like macros substitute their arguments (pre-expanded, or raw next to `#` and
//! `##`), `#` stringifies and `##` pastes, and a macro is not expanded inside itself. The
//! result is every string of the form `"name"` or `<name>` the directive can become: a
//! superset of what the preprocessor includes. The other results (an identifier no macro
//! defines, as `LUA_USER_H` in Lua's `lua.h` when it is not defined) include nothing.

use std::collections::HashMap;

use super::lexer::Include;

/// How many alternatives one expansion may have before the command is not covered.
const MAX_ALTERNATIVES: usize = 2000;
/// How deep macros may nest.
const MAX_DEPTH: usize = 64;

/// One macro definition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Define {
    pub name: String,
    /// The parameters of a function-like macro (`__VA_ARGS__` for `...`, the name for GNU
    /// `x...`), with whether the last one is variadic.
    pub params: Option<(Vec<String>, bool)>,
    pub body: String,
}

impl Define {
    /// The definition in the text of a `#define` after the word `define`.
    pub fn parse(text: &str) -> Option<Define> {
        let t = text.trim_start_matches([' ', '\t']);
        let end = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii()))
            .unwrap_or(t.len());
        let name = &t[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let rest = &t[end..];
        let (params, body) = match rest.strip_prefix('(') {
            Some(r) => {
                let close = r.find(')')?;
                let mut variadic = false;
                let mut ps = Vec::new();
                for p in r[..close].split(',').map(str::trim) {
                    if p.is_empty() {
                        continue;
                    }
                    if p == "..." {
                        variadic = true;
                        ps.push("__VA_ARGS__".to_string());
                    } else if let Some(n) = p.strip_suffix("...") {
                        variadic = true;
                        ps.push(n.trim().to_string());
                    } else {
                        ps.push(p.to_string());
                    }
                }
                (Some((ps, variadic)), &r[close + 1..])
            }
            None => (None, rest),
        };
        Some(Define {
            name: name.to_string(),
            params,
            body: strip_comments(body).trim().to_string(),
        })
    }

    /// A `-D` option's value: `NAME`, `NAME=BODY` or `F(x)=BODY`.
    pub fn from_option(value: &str) -> Option<Define> {
        let (head, body) = value.split_once('=').unwrap_or((value, "1"));
        Define::parse(&format!("{head} {body}"))
    }
}

/// `text` with its comments replaced by a space.
fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"/*") {
            i = text[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
            out.push(' ');
        } else if b[i..].starts_with(b"//") {
            break;
        } else if b[i] == b'"' || b[i] == b'\'' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b[start] {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
            out.push_str(&text[start..i]);
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The definitions seen, by name.
#[derive(Debug, Default, Clone)]
pub struct Table {
    map: HashMap<String, Vec<Define>>,
    count: usize,
}

impl Table {
    /// Adds `d` unless the same definition is known. Whether it was new.
    pub fn add(&mut self, d: &Define) -> bool {
        let v = self.map.entry(d.name.clone()).or_default();
        if v.contains(d) {
            return false;
        }
        v.push(d.clone());
        self.count += 1;
        true
    }

    /// How many distinct definitions it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Tok {
    text: String,
    /// Whitespace before it.
    space: bool,
    /// A `##` of a macro body (not one that came from an argument).
    paste: bool,
}

impl Tok {
    fn is_ident(&self) -> bool {
        self.text
            .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || !c.is_ascii())
    }
}

fn tokenize(text: &str) -> Vec<Tok> {
    let text = strip_comments(text);
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut space = false;
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            space = true;
            i += 1;
            continue;
        }
        if word(c) {
            while i < b.len() && word(b[i]) {
                i += 1;
            }
        } else if c == b'"' || c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != c {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
        } else if b[i..].starts_with(b"##") {
            i += 2;
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
        let t = &text[start..i];
        out.push(Tok {
            text: t.to_string(),
            space,
            paste: false,
        });
        space = false;
    }
    out
}

/// The tokens of a macro's body, its `##` marked as pasting.
fn body_tokens(d: &Define) -> Vec<Tok> {
    let mut body = tokenize(&d.body);
    for t in &mut body {
        t.paste = t.text == "##";
    }
    body
}

/// Tokens as the preprocessor spells them: a space where whitespace was.
fn render(toks: &[Tok]) -> String {
    let mut s = String::new();
    for (i, t) in toks.iter().enumerate() {
        if i > 0 && t.space {
            s.push(' ');
        }
        s.push_str(&t.text);
    }
    s
}

fn stringify(toks: &[Tok]) -> String {
    let mut s = String::from("\"");
    for (i, t) in toks.iter().enumerate() {
        if i > 0 && t.space {
            s.push(' ');
        }
        if t.text.starts_with(['"', '\'']) {
            for c in t.text.chars() {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
        } else {
            s.push_str(&t.text);
        }
    }
    s.push('"');
    s
}

/// The includes the computed include `text` can stand for, given `table`. An error when
/// its expansion grows too large.
pub fn evaluate(text: &str, table: &Table, next: bool) -> Result<Vec<Include>, String> {
    let toks = tokenize(text);
    let mut out = Vec::new();
    for alt in expand(&toks, table, &[], 0)? {
        let s = render(&alt);
        let s = s.trim();
        let name = if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
            (true, &s[1..s.len() - 1])
        } else if s.len() >= 2 && s.starts_with('<') && s.ends_with('>') {
            (false, &s[1..s.len() - 1])
        } else {
            continue;
        };
        let inc = match name {
            (_, n) if next => Include::Next(n.to_string()),
            (true, n) => Include::Quote(n.to_string()),
            (false, n) => Include::Angle(n.to_string()),
        };
        if !out.contains(&inc) {
            out.push(inc);
        }
    }
    Ok(out)
}

fn too_many() -> String {
    format!("more than {MAX_ALTERNATIVES} expansions")
}

/// Every sequence `toks` can become.
fn expand(
    toks: &[Tok],
    table: &Table,
    disabled: &[String],
    depth: usize,
) -> Result<Vec<Vec<Tok>>, String> {
    if depth > MAX_DEPTH {
        return Err("macros nest too deep".into());
    }
    let mut results: Vec<Vec<Tok>> = vec![Vec::new()];
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let mut alts: Vec<Vec<Tok>> = vec![vec![t.clone()]];
        let mut consumed = 1;
        let defs = match t.is_ident() && !disabled.contains(&t.text) {
            true => table.map.get(&t.text),
            false => None,
        };
        if let Some(defs) = defs {
            let mut inner: Vec<String> = disabled.to_vec();
            inner.push(t.text.clone());
            for d in defs.iter().filter(|d| d.params.is_none()) {
                for mut e in expand(&paste(body_tokens(d)), table, &inner, depth + 1)? {
                    if let Some(f) = e.first_mut() {
                        f.space = t.space;
                    }
                    alts.push(e);
                }
            }
            let call = match toks.get(i + 1) {
                Some(p) if p.text == "(" => arguments(toks, i + 1),
                _ => None,
            };
            if let Some((args, end)) = call.filter(|_| defs.iter().any(|d| d.params.is_some())) {
                consumed = end - i;
                alts[0] = toks[i..end].to_vec();
                for d in defs.iter().filter(|d| d.params.is_some()) {
                    for body in substitute(d, &args, table, disabled, depth)? {
                        for mut e in expand(&body, table, &inner, depth + 1)? {
                            if let Some(f) = e.first_mut() {
                                f.space = t.space;
                            }
                            alts.push(e);
                        }
                    }
                }
            }
        }
        let mut next = Vec::with_capacity(results.len() * alts.len());
        for r in &results {
            for a in &alts {
                let mut v = r.clone();
                v.extend(a.iter().cloned());
                if !next.contains(&v) {
                    next.push(v);
                }
            }
        }
        if next.len() > MAX_ALTERNATIVES {
            return Err(too_many());
        }
        results = next;
        i += consumed;
    }
    Ok(results)
}

/// The arguments of the call whose `(` is at `open`, and the position after its `)`.
fn arguments(toks: &[Tok], open: usize) -> Option<(Vec<Vec<Tok>>, usize)> {
    let mut args = vec![Vec::new()];
    let mut level = 0;
    for (k, t) in toks.iter().enumerate().skip(open + 1) {
        match t.text.as_str() {
            ")" if level == 0 => return Some((args, k + 1)),
            "," if level == 0 => args.push(Vec::new()),
            s => {
                if s == "(" {
                    level += 1;
                } else if s == ")" {
                    level -= 1;
                }
                args.last_mut().unwrap().push(t.clone());
            }
        }
    }
    None
}

/// The bodies of function-like `d` called with `args`, before rescanning.
fn substitute(
    d: &Define,
    args: &[Vec<Tok>],
    table: &Table,
    disabled: &[String],
    depth: usize,
) -> Result<Vec<Vec<Tok>>, String> {
    let (params, variadic) = d.params.as_ref().unwrap();
    // The argument of each parameter; the variadic one takes the rest, commas included.
    let mut bound: Vec<Vec<Tok>> = Vec::new();
    for (k, _) in params.iter().enumerate() {
        if *variadic && k + 1 == params.len() {
            let mut rest = Vec::new();
            for (n, a) in args.iter().enumerate().skip(k) {
                if n > k {
                    rest.push(Tok {
                        text: ",".into(),
                        space: false,
                        paste: false,
                    });
                }
                rest.extend(a.iter().cloned());
            }
            bound.push(rest);
        } else {
            bound.push(args.get(k).cloned().unwrap_or_default());
        }
    }
    let body = body_tokens(d);
    let param = |t: &Tok| params.iter().position(|p| *p == t.text);
    // One list of alternatives for each piece of the body.
    let mut pieces: Vec<Vec<Vec<Tok>>> = Vec::new();
    let mut k = 0;
    while k < body.len() {
        let t = &body[k];
        if t.text == "#" {
            if let Some(p) = body.get(k + 1).and_then(param) {
                pieces.push(vec![vec![Tok {
                    text: stringify(&bound[p]),
                    space: t.space,
                    paste: false,
                }]]);
                k += 2;
                continue;
            }
        }
        match param(t) {
            Some(p) => {
                let raw = (k > 0 && body[k - 1].paste) || body.get(k + 1).is_some_and(|n| n.paste);
                let mut alts = if raw {
                    vec![bound[p].clone()]
                } else {
                    expand(&bound[p], table, disabled, depth + 1)?
                };
                for a in &mut alts {
                    if let Some(f) = a.first_mut() {
                        f.space = t.space;
                    }
                }
                pieces.push(alts);
            }
            None => pieces.push(vec![vec![t.clone()]]),
        }
        k += 1;
    }
    let mut results: Vec<Vec<Tok>> = vec![Vec::new()];
    for alts in pieces {
        let mut next = Vec::new();
        for r in &results {
            for a in &alts {
                let mut v = r.clone();
                v.extend(a.iter().cloned());
                next.push(v);
            }
        }
        if next.len() > MAX_ALTERNATIVES {
            return Err(too_many());
        }
        results = next;
    }
    Ok(results.into_iter().map(paste).collect())
}

/// `toks` with each body `##` pasting its neighbours into one token.
fn paste(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::with_capacity(toks.len());
    let mut glue = false;
    for t in toks {
        if t.paste {
            glue = true;
            continue;
        }
        match out.last_mut() {
            Some(last) if glue => last.text.push_str(&t.text),
            _ => out.push(t),
        }
        glue = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Include::{Angle, Next, Quote};

    fn table(defs: &[&str]) -> Table {
        let mut t = Table::default();
        for d in defs {
            t.add(&Define::parse(d).unwrap());
        }
        t
    }

    fn eval(text: &str, defs: &[&str]) -> Vec<Include> {
        evaluate(text, &table(defs), false).unwrap()
    }

    #[test]
    fn undefined_macro_includes_nothing() {
        assert_eq!(eval("LUA_USER_H", &[]), vec![]);
        assert_eq!(
            eval("LUA_USER_H", &[" LUA_USER_H \"luauser.h\""]),
            vec![Quote("luauser.h".into())]
        );
    }

    #[test]
    fn every_definition_counts() {
        assert_eq!(
            eval(
                "H",
                &[" H <a.h>", " H \"b.h\" /* c */", " H OTHER", " OTHER <o.h>"]
            ),
            vec![
                Angle("a.h".into()),
                Quote("b.h".into()),
                Angle("o.h".into())
            ]
        );
    }

    #[test]
    fn linux_define_trace() {
        // include/trace/define_trace.h and a trace event header.
        let defs = [
            " TRACE_SYSTEM sched",
            " TRACE_SYSTEM irq",
            " TRACE_INCLUDE_FILE TRACE_SYSTEM",
            " __TRACE_INCLUDE(system) <trace/events/system.h>",
            " __TRACE_INCLUDE(system) __stringify(TRACE_INCLUDE_PATH/system.h)",
            " TRACE_INCLUDE_PATH ../../drivers/x",
            " TRACE_INCLUDE(system) __TRACE_INCLUDE(system)",
            " __stringify_1(x...) #x",
            " __stringify(x...) __stringify_1(x)",
        ];
        let got = eval("TRACE_INCLUDE(TRACE_INCLUDE_FILE)", &defs);
        for want in [
            Angle("trace/events/sched.h".into()),
            Angle("trace/events/irq.h".into()),
            Quote("../../drivers/x/sched.h".into()),
            Quote("../../drivers/x/irq.h".into()),
        ] {
            assert!(got.contains(&want), "{want:?} not in {got:?}");
        }
    }

    #[test]
    fn pasting_and_stringifying() {
        let defs = [
            " CAT(a, b) a##b",
            " STR(x) #x",
            " XSTR(x) STR(x)",
            " N name",
        ];
        // Arguments next to `##` are not expanded first.
        assert_eq!(
            eval("XSTR(CAT(N, .h))", &defs),
            vec![Quote("CAT(N, .h)".into()), Quote("N.h".into())]
        );
        assert_eq!(
            eval("XSTR(N.h)", &defs),
            vec![Quote("N.h".into()), Quote("name.h".into())]
        );
        assert_eq!(
            eval("<CAT(x, y).h>", &defs),
            vec![Angle("CAT(x, y).h".into()), Angle("xy.h".into())]
        );
    }

    #[test]
    fn recursion_and_command_line_definitions() {
        assert_eq!(eval("A", &[" A A"]), vec![]);
        assert_eq!(eval("A", &[" A B", " B A"]), vec![]);
        let d = Define::from_option("CONF=\"conf.h\"").unwrap();
        assert_eq!(
            evaluate(
                "CONF",
                &{
                    let mut t = Table::default();
                    t.add(&d);
                    t
                },
                true
            )
            .unwrap(),
            vec![Next("conf.h".into())]
        );
        assert_eq!(Define::from_option("X").unwrap().body, "1");
        assert_eq!(
            Define::from_option("F(a,...)=a").unwrap().params,
            Some((vec!["a".into(), "__VA_ARGS__".into()], true))
        );
    }
}
