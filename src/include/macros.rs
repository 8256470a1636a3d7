//! Macros: definitions, the table of what is defined at a point of the walk, and the
//! expander, which follows GCC's algorithm (cpplib's context stack): an object-like macro's
//! body is pushed as a context in which the macro is disabled; a function-like macro's
//! arguments are collected raw (across the end of enclosing contexts, which re-enables
//! their macros), each is fully expanded on its own before substitution except next to
//! `#` and `##`, and the result is rescanned with the rest of the input. A macro name met
//! while disabled is "painted" and never expands again. `__VA_ARGS__`, `__VA_OPT__`, GNU
//! named variadics and the GNU `, ## __VA_ARGS__` comma are supported.
//!
//! The table is exact until the walk goes down a branch whose condition it cannot decide;
//! there a definition or `#undef` adds an alternative instead of replacing ("may be
//! defined as ..."), and any use of a name with alternatives makes the expansion
//! [`Expanded::ambiguous`], which the caller answers by following every possibility.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use super::token::{self, known, spell, sym, FxMap, FxSet, Kind, Sym, Tok};

/// Expansions one evaluation may make before it gives up (GCC has no such bound; a
/// directive that needs more is treated as undecidable).
const MAX_STEPS: usize = 200_000;
/// How deep contexts may nest.
const MAX_DEPTH: usize = 1_000;

/// One macro definition.
#[derive(Debug, Clone)]
pub struct Macro {
    pub name: Sym,
    /// The parameters of a function-like macro (`__VA_ARGS__` for `...`).
    pub params: Option<Vec<Sym>>,
    /// Whether the last parameter takes the remaining arguments.
    pub variadic: bool,
    /// The replacement list ([`Macro::body`]), made from `text` when first needed: most
    /// of the definitions a walk goes past (the C library's) are never expanded.
    body: OnceLock<Vec<Tok>>,
    /// The replacement list's text, for a definition read from a `#define` line.
    text: Option<Box<[u8]>>,
}

impl PartialEq for Macro {
    fn eq(&self, other: &Macro) -> bool {
        self.name == other.name
            && self.params == other.params
            && self.variadic == other.variadic
            && (matches!((&self.text, &other.text), (Some(a), Some(b)) if a == b)
                || self.body() == other.body())
    }
}

impl Eq for Macro {}

impl Macro {
    /// The replacement list; its `##` operators are [`Kind::Paste`].
    pub fn body(&self) -> &[Tok] {
        self.body.get_or_init(|| {
            let text = self.text.as_deref().unwrap_or_default();
            replacement(token::tokenize(text, false))
        })
    }

    /// The definition on a `#define` line (the text after the word `define`), with its
    /// replacement list left as text until it is needed. `None` for a line that defines
    /// nothing (GCC's error).
    pub fn parse_line(line: &[u8]) -> Option<Macro> {
        let start = line.iter().position(|c| !c.is_ascii_whitespace())?;
        if !token::is_ident_start(line[start]) {
            return None;
        }
        let mut end = start + 1;
        while end < line.len() && token::is_ident_char(line[end]) {
            end += 1;
        }
        // The head: the name, and a function-like macro's parameters up to the first
        // `)`, which is a token of its own. A name followed by a quote may be a
        // literal's prefix (`L"x"`): such lines are tokenized whole.
        let head_end = match line.get(end) {
            Some(b'"' | b'\'') => return Macro::parse(&token::tokenize(line, false)),
            Some(b'(') => end + line[end..].iter().position(|&c| c == b')')? + 1,
            _ => end,
        };
        let text = Some(line[head_end..].into());
        if head_end == end {
            // An object-like macro, the most common line of a header: its head is its
            // name, and needs no tokenizing.
            return Some(Macro {
                name: token::sym_bytes(&line[start..end]),
                params: None,
                variadic: false,
                body: OnceLock::new(),
                text,
            });
        }
        let mut m = Macro::parse(&token::tokenize(&line[..head_end], false))?;
        m.body = OnceLock::new();
        m.text = text;
        Some(m)
    }

    /// The definition in a `#define` line's tokens (after the word `define`).
    pub fn parse(toks: &[Tok]) -> Option<Macro> {
        let k = known();
        let name = toks.first().filter(|t| t.kind == Kind::Ident)?.sym;
        let mut rest = &toks[1..];
        let mut params = None;
        let mut variadic = false;
        if rest.first().is_some_and(|t| t.is(k.lparen) && !t.space) {
            let mut ps = Vec::new();
            let mut i = 1;
            loop {
                let t = rest.get(i)?;
                if t.is(k.rparen) && (ps.is_empty() || variadic) {
                    break;
                }
                if t.text() == "..." {
                    ps.push(k.va_args);
                    variadic = true;
                } else if t.kind == Kind::Ident && !variadic {
                    ps.push(t.sym);
                    if rest.get(i + 1).is_some_and(|n| n.text() == "...") {
                        variadic = true;
                        i += 1;
                    }
                } else {
                    return None;
                }
                let sep = rest.get(i + 1)?;
                if sep.is(k.rparen) {
                    i += 1;
                    break;
                }
                if !sep.is(k.comma) || variadic {
                    return None;
                }
                i += 2;
            }
            rest = &rest[i + 1..];
            params = Some(ps);
        }
        Some(Macro {
            name,
            params,
            variadic,
            body: OnceLock::from(replacement(rest.to_vec())),
            text: None,
        })
    }

    /// A `-D` option's value: `NAME` (defined as 1), `NAME=BODY` or `F(x)=BODY`.
    pub fn from_option(value: &str) -> Option<Macro> {
        let line = match value.split_once('=') {
            Some((head, body)) => format!("{head} {body}"),
            None => format!("{value} 1"),
        };
        Macro::parse(&token::tokenize(line.as_bytes(), false))
    }

    fn param(&self, t: &Tok) -> Option<usize> {
        if t.kind != Kind::Ident {
            return None;
        }
        self.params.as_ref()?.iter().position(|p| *p == t.sym)
    }
}

/// A replacement list from its tokens: no space before the first, `##` a paste.
fn replacement(mut body: Vec<Tok>) -> Vec<Tok> {
    let k = known();
    if let Some(first) = body.first_mut() {
        first.space = false;
    }
    for t in &mut body {
        if t.is(k.hashhash) {
            t.kind = Kind::Paste;
        }
    }
    body
}

/// What a name is bound to.
#[derive(Debug, Clone)]
enum Entry<'m> {
    /// One definition that whoever gave it keeps alive (the walk its files, the compiler
    /// its predefined list). Not counted here: a walk defines a C library's macros by the
    /// thousand and reads few, and counting each touched its memory.
    Ref(&'m Arc<Macro>),
    /// One definition the table keeps alive itself.
    Own(Arc<Macro>),
    /// Possibly undefined (`None`) or any of the definitions. Boxed: the table's slots
    /// are the size of its common case, and a walk finds fewer of them out of cache.
    #[allow(clippy::box_collection)]
    May(Box<Vec<Option<Arc<Macro>>>>),
}

impl Entry<'_> {
    /// The one definition, unless there are alternatives.
    fn one(&self) -> Option<&Arc<Macro>> {
        match self {
            Entry::Ref(m) => Some(m),
            Entry::Own(m) => Some(m),
            Entry::May(_) => None,
        }
    }

    /// Every possibility: `None` for "not defined".
    fn into_alternatives(self) -> Vec<Option<Arc<Macro>>> {
        match self {
            Entry::Ref(m) => vec![Some(m.clone())],
            Entry::Own(m) => vec![Some(m)],
            Entry::May(v) => *v,
        }
    }
}

/// The answer to "what is NAME".
pub enum Lookup<'a> {
    Undefined,
    Defined(&'a Arc<Macro>),
    /// Defined or not, or defined in more than one way.
    Ambiguous,
}

/// The macros defined at a point of the walk; `'m` is how long the definitions it is
/// given by reference live.
#[derive(Debug, Clone, Default)]
pub struct Table<'m> {
    map: FxMap<Sym, Entry<'m>>,
    /// Saved by `#pragma push_macro`.
    pushed: FxMap<Sym, Vec<Option<Entry<'m>>>>,
    /// Names pushed where the walk may not really be.
    unsure: FxSet<Sym>,
    /// When on, every name looked up, in order (for the remembered `#if` values).
    reads: Option<RefCell<Vec<Sym>>>,
}

impl<'m> Table<'m> {
    /// An empty table with room for `n` macros.
    pub fn with_capacity(n: usize) -> Table<'m> {
        Table {
            map: FxMap::with_capacity_and_hasher(n, Default::default()),
            ..Table::default()
        }
    }

    /// `#define` of `m`, named `name`, which lives as long as the table; `uncertain`
    /// when the walk may not really be here.
    pub fn define(&mut self, name: Sym, m: &'m Arc<Macro>, uncertain: bool) {
        if uncertain {
            self.add(name, Some(m.clone()));
        } else {
            self.map.insert(name, Entry::Ref(m));
        }
    }

    /// `#define` of `m`, kept by the table.
    pub fn define_owned(&mut self, m: Arc<Macro>, uncertain: bool) {
        if uncertain {
            self.add(m.name, Some(m));
        } else {
            self.map.insert(m.name, Entry::Own(m));
        }
    }

    /// `a` becomes one more possibility for `name`.
    fn add(&mut self, name: Sym, a: Option<Arc<Macro>>) {
        let alts = match self.map.remove(&name) {
            None => vec![None],
            Some(e) => e.into_alternatives(),
        };
        self.map.insert(name, Entry::May(Box::new(add(alts, a))));
    }

    /// `#undef`; `uncertain` as for [`Table::define`].
    pub fn undef(&mut self, name: Sym, uncertain: bool) {
        if uncertain {
            if self.map.contains_key(&name) {
                self.add(name, None);
            }
        } else {
            self.map.remove(&name);
        }
    }

    pub fn get(&self, name: Sym) -> Lookup<'_> {
        self.note(name);
        match self.map.get(&name).map(Entry::one) {
            None => Lookup::Undefined,
            Some(Some(m)) => Lookup::Defined(m),
            Some(None) => Lookup::Ambiguous,
        }
    }

    /// Every possibility for `name`: `None` for "not defined".
    pub fn alternatives(&self, name: Sym) -> Vec<Option<Arc<Macro>>> {
        self.note(name);
        match self.map.get(&name) {
            None => vec![None],
            Some(e) => e.clone().into_alternatives(),
        }
    }

    fn note(&self, name: Sym) {
        if let Some(r) = &self.reads {
            r.borrow_mut().push(name);
        }
    }

    /// Starts (or stops) noting the names looked up.
    pub fn note_reads(&mut self, on: bool) {
        self.reads = on.then(RefCell::default);
    }

    /// The names looked up since the last call.
    pub fn take_reads(&self) -> Vec<Sym> {
        self.reads
            .as_ref()
            .map(|r| std::mem::take(&mut *r.borrow_mut()))
            .unwrap_or_default()
    }

    /// The exact value of `name` without noting it; `None` when it has alternatives.
    pub fn exact(&self, name: Sym) -> Option<Option<Arc<Macro>>> {
        match self.map.get(&name) {
            None => Some(None),
            Some(e) => e.one().map(|m| Some(m.clone())),
        }
    }

    /// Whether `name` is defined, or is one of the preprocessor's own names for this
    /// compiler and language (clang when `__clang__` is defined, else GCC; C++ when
    /// `__cplusplus` is); `None` when it has alternatives.
    pub fn is_defined(&self, name: Sym) -> Option<bool> {
        match self.get(name) {
            Lookup::Defined(_) => Some(true),
            Lookup::Ambiguous => None,
            Lookup::Undefined => {
                let k = known();
                let defined = |m| matches!(self.get(m), Lookup::Defined(_));
                Some(k.built_in(name, defined(k.clang), defined(k.cplusplus)))
            }
        }
    }

    /// Whether `name` is exactly `value` (`None`: undefined), without noting it.
    pub fn is(&self, name: Sym, value: &Option<Arc<Macro>>) -> bool {
        match (self.map.get(&name), value) {
            (None, None) => true,
            (Some(e), Some(v)) => e.one().is_some_and(|m| Arc::ptr_eq(m, v) || **m == **v),
            _ => false,
        }
    }

    /// Makes `name` exactly `m` (or undefined): one choice among its alternatives.
    pub fn choose(&mut self, name: Sym, m: Option<Arc<Macro>>) {
        match m {
            Some(m) => self.map.insert(name, Entry::Own(m)),
            None => self.map.remove(&name),
        };
    }

    /// `#pragma push_macro("name")`; `uncertain` as for [`Table::define`]: then which
    /// definition each later pop of the name restores is not known.
    pub fn push(&mut self, name: Sym, uncertain: bool) {
        let saved = self.map.get(&name).cloned();
        self.pushed.entry(name).or_default().push(saved);
        if uncertain {
            self.unsure.insert(name);
        }
    }

    /// `#pragma pop_macro("name")`; `uncertain` as for [`Table::define`].
    pub fn pop(&mut self, name: Sym, uncertain: bool) {
        if self.unsure.contains(&name) {
            // Any definition saved, or the current one (no push to pop).
            let mut alts = self.alternatives(name);
            let stack = self.pushed.entry(name).or_default();
            for e in stack.iter() {
                for a in e.clone().map_or(vec![None], Entry::into_alternatives) {
                    alts = add(alts, a);
                }
            }
            stack.pop();
            self.map.insert(name, Entry::May(Box::new(alts)));
            return;
        }
        let Some(saved) = self.pushed.get_mut(&name).and_then(Vec::pop) else {
            return;
        };
        match (saved, uncertain) {
            (Some(e), false) => {
                self.map.insert(name, e);
            }
            (None, false) => {
                self.map.remove(&name);
            }
            (saved, true) => {
                let restored = saved.map_or(vec![None], Entry::into_alternatives);
                let mut alts = self.alternatives(name);
                for a in restored {
                    alts = add(alts, a);
                }
                self.map.insert(name, Entry::May(Box::new(alts)));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// `alts` with `a` among them.
fn add(mut alts: Vec<Option<Arc<Macro>>>, a: Option<Arc<Macro>>) -> Vec<Option<Arc<Macro>>> {
    let same = |x: &Option<Arc<Macro>>| match (x, &a) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y) || **x == **y,
        _ => false,
    };
    if !alts.iter().any(same) {
        alts.push(a);
    }
    alts
}

/// The result of expanding a token list.
#[derive(Debug, Default)]
pub struct Expanded {
    pub toks: Vec<Tok>,
    /// A name with alternatives took part: the result is one possibility of several.
    pub ambiguous: bool,
    /// The expansion went wrong (unterminated call, wrong argument count, too long).
    pub failed: bool,
}

struct Context {
    toks: Vec<Tok>,
    pos: usize,
    /// The macro whose expansion this is (disabled while it is on the stack).
    mac: Option<Sym>,
}

/// An expansion in progress over one token list.
pub struct Expander<'t> {
    table: &'t Table<'t>,
    stack: Vec<Context>,
    /// Macros disabled by the expansion this one serves (an argument's pre-expansion).
    outer: Vec<Sym>,
    /// When false, names come back unexpanded (the operand of `defined`).
    pub expanding: bool,
    /// What `__FILE__` stands for, when known (a string literal token).
    pub file: Option<Tok>,
    pub ambiguous: bool,
    pub failed: bool,
    steps: usize,
}

impl<'t> Expander<'t> {
    pub fn new(table: &'t Table<'t>, toks: Vec<Tok>) -> Expander<'t> {
        Expander {
            table,
            stack: vec![Context {
                toks,
                pos: 0,
                mac: None,
            }],
            outer: Vec::new(),
            expanding: true,
            file: None,
            ambiguous: false,
            failed: false,
            steps: 0,
        }
    }

    fn disabled(&self, name: Sym) -> bool {
        self.outer.contains(&name) || self.stack.iter().any(|c| c.mac == Some(name))
    }

    /// The next token without expanding it, across the end of contexts (which are
    /// popped); `None` at the end of the input. A name of a disabled macro is painted.
    pub fn next_raw(&mut self) -> Option<Tok> {
        loop {
            let top = self.stack.last_mut()?;
            if top.pos < top.toks.len() {
                let mut t = top.toks[top.pos];
                top.pos += 1;
                if t.kind == Kind::Ident && !t.no_expand && self.disabled(t.sym) {
                    t.no_expand = true;
                }
                return Some(t);
            }
            if self.stack.len() == 1 {
                return None;
            }
            self.stack.pop();
        }
    }

    /// The next token, left in place.
    fn peek_raw(&self) -> Option<Tok> {
        self.stack
            .iter()
            .rev()
            .find_map(|c| c.toks.get(c.pos).copied())
    }

    /// The arguments of a call of `m` whose `(` was read; `None` when the call is not
    /// closed or has the wrong number of arguments.
    fn collect_args(&mut self, m: &Macro) -> Option<Vec<Vec<Tok>>> {
        let k = known();
        let nparams = m.params.as_ref().map_or(0, Vec::len);
        let mut args: Vec<Vec<Tok>> = vec![Vec::new()];
        let mut depth = 0usize;
        loop {
            let t = self.next_raw()?;
            if t.is(k.lparen) {
                depth += 1;
            } else if t.is(k.rparen) {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            } else if t.is(k.comma) && depth == 0 && !(m.variadic && args.len() == nparams) {
                args.push(Vec::new());
                continue;
            }
            args.last_mut().unwrap().push(t);
        }
        let given = args.len();
        let ok = given == nparams
            || (nparams == 0 && given == 1 && args[0].is_empty())
            || (m.variadic && given + 1 == nparams);
        if !ok {
            return None;
        }
        args.resize(nparams, Vec::new());
        Some(args)
    }

    /// The fully expanded `arg`, in the context of this expansion.
    fn expand_arg(&mut self, arg: &[Tok]) -> Vec<Tok> {
        let mut outer = self.outer.clone();
        outer.extend(self.stack.iter().filter_map(|c| c.mac));
        let mut sub = Expander::new(self.table, arg.to_vec());
        sub.outer = outer;
        sub.file = self.file;
        sub.steps = self.steps;
        let out: Vec<Tok> = sub.by_ref().collect();
        self.steps = sub.steps;
        self.ambiguous |= sub.ambiguous;
        self.failed |= sub.failed;
        out
    }

    /// The body of function-like `m` with `args` substituted, before pasting.
    fn substitute(&mut self, m: &Macro, args: &[Vec<Tok>]) -> Vec<Tok> {
        let mut expanded: Vec<Option<Vec<Tok>>> = vec![None; args.len()];
        self.substitute_in(m, m.body(), args, &mut expanded)
    }

    fn substitute_in(
        &mut self,
        m: &Macro,
        body: &[Tok],
        args: &[Vec<Tok>],
        expanded: &mut Vec<Option<Vec<Tok>>>,
    ) -> Vec<Tok> {
        let k = known();
        let va = m.variadic.then(|| args.len() - 1);
        let mut out: Vec<Tok> = Vec::with_capacity(body.len());
        let mut i = 0;
        while i < body.len() {
            let t = body[i];
            // `#param`: the argument's spelling as a string.
            if t.is(k.hash) {
                if let Some(p) = body.get(i + 1).and_then(|n| m.param(n)) {
                    let s = stringify(&args[p]);
                    out.push(Tok::new(sym(&s), Kind::Str, t.space));
                    i += 2;
                    continue;
                }
            }
            // `__VA_OPT__(tokens)`: the tokens when the variable argument has any.
            let va_opt = va.filter(|_| t.kind == Kind::Ident && t.sym == k.va_opt);
            if let Some(v) = va_opt {
                if let Some(close) = matching_paren(body, i + 1) {
                    let inner = &body[i + 2..close];
                    // Whether the variable argument has tokens once expanded (GCC 12).
                    if expanded[v].is_none() {
                        expanded[v] = Some(self.expand_arg(&args[v]));
                    }
                    if expanded[v].as_ref().is_some_and(Vec::is_empty) {
                        out.push(Tok::new(t.sym, Kind::Placemarker, t.space));
                    } else {
                        let mut sub = self.substitute_in(m, inner, args, expanded);
                        if let Some(first) = sub.first_mut() {
                            first.pad = t.space || t.pad;
                        }
                        out.extend(sub);
                    }
                    i = close + 1;
                    continue;
                }
            }
            // GNU `, ## __VA_ARGS__`: the comma goes when the variable argument is empty.
            let gnu_comma = va.filter(|&v| {
                t.is(k.comma)
                    && body.get(i + 1).is_some_and(|n| n.kind == Kind::Paste)
                    && body.get(i + 2).and_then(|n| m.param(n)) == Some(v)
            });
            if let Some(v) = gnu_comma {
                let a = &args[v];
                if !a.is_empty() {
                    out.push(t);
                    out.extend(a.iter().copied());
                }
                i += 3;
                continue;
            }
            match m.param(&t) {
                Some(p) => {
                    let by_paste = (i > 0 && body[i - 1].kind == Kind::Paste)
                        || body.get(i + 1).is_some_and(|n| n.kind == Kind::Paste);
                    let mut toks = if by_paste {
                        args[p].clone()
                    } else {
                        if expanded[p].is_none() {
                            expanded[p] = Some(self.expand_arg(&args[p]));
                        }
                        expanded[p].clone().unwrap()
                    };
                    if toks.is_empty() {
                        toks.push(Tok::new(t.sym, Kind::Placemarker, t.space));
                    } else {
                        toks[0].pad = t.space || t.pad;
                    }
                    out.extend(toks);
                }
                None => out.push(t),
            }
            i += 1;
        }
        out
    }

    /// Everything left, expanded.
    pub fn finish(mut self) -> Expanded {
        let toks: Vec<Tok> = self.by_ref().collect();
        Expanded {
            toks,
            ambiguous: self.ambiguous,
            failed: self.failed,
        }
    }
}

impl Iterator for Expander<'_> {
    type Item = Tok;

    /// The next token of the expansion; `None` at the end of the input.
    fn next(&mut self) -> Option<Tok> {
        loop {
            let t = self.next_raw()?;
            if t.kind != Kind::Ident || t.no_expand || !self.expanding {
                return Some(t);
            }
            let m = match self.table.get(t.sym) {
                Lookup::Undefined if t.sym == known().file => {
                    return Some(self.file.map_or(t, |f| Tok {
                        space: t.space,
                        ..f
                    }));
                }
                Lookup::Undefined => return Some(t),
                Lookup::Ambiguous => {
                    self.ambiguous = true;
                    return Some(t);
                }
                Lookup::Defined(m) => m.clone(),
            };
            self.steps += 1;
            if self.steps > MAX_STEPS || self.stack.len() > MAX_DEPTH {
                self.failed = true;
                return None;
            }
            let body = if m.params.is_some() {
                if !self.peek_raw().is_some_and(|p| p.is(known().lparen)) {
                    return Some(t);
                }
                self.next_raw();
                let Some(args) = self.collect_args(&m) else {
                    self.failed = true;
                    return Some(t);
                };
                self.substitute(&m, &args)
            } else {
                m.body().to_vec()
            };
            let mut body = paste(body);
            if let Some(first) = body.first_mut() {
                first.pad = t.space || t.pad;
            }
            self.stack.push(Context {
                toks: body,
                pos: 0,
                mac: Some(m.name),
            });
        }
    }
}

/// The index of the `)` closing the `(` at `open` in `toks`.
fn matching_paren(toks: &[Tok], open: usize) -> Option<usize> {
    let k = known();
    if !toks.get(open)?.is(k.lparen) {
        return None;
    }
    let mut depth = 0;
    for (i, t) in toks.iter().enumerate().skip(open) {
        if t.is(k.lparen) {
            depth += 1;
        } else if t.is(k.rparen) {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// `toks` with every paste operator applied and the placemarkers removed.
fn paste(toks: Vec<Tok>) -> Vec<Tok> {
    if !toks
        .iter()
        .any(|t| matches!(t.kind, Kind::Paste | Kind::Placemarker))
    {
        return toks;
    }
    let mut out: Vec<Tok> = Vec::with_capacity(toks.len());
    let mut it = toks.into_iter();
    while let Some(t) = it.next() {
        if t.kind != Kind::Paste {
            out.push(t);
            continue;
        }
        let Some(right) = it.next() else { break };
        let Some(left) = out.pop() else {
            out.push(right);
            continue;
        };
        let glued = match (left.kind, right.kind) {
            (Kind::Placemarker, _) => vec![Tok {
                space: left.space,
                pad: left.pad,
                ..right
            }],
            (_, Kind::Placemarker) => vec![left],
            _ => {
                let text = format!("{}{}", left.text(), right.text());
                let mut r = token::tokenize(text.as_bytes(), false);
                if let Some(f) = r.first_mut() {
                    f.space = left.space;
                    f.pad = left.pad;
                }
                if r.len() == 1 {
                    r
                } else {
                    // Not one token: GCC reports an error and keeps both.
                    vec![left, right]
                }
            }
        };
        out.extend(glued);
    }
    out.retain(|t| t.kind != Kind::Placemarker);
    out
}

/// `#arg`: the argument's spelling in quotes, `"` and `\` escaped inside literals.
fn stringify(arg: &[Tok]) -> String {
    let mut s = String::from("\"");
    for (i, t) in arg.iter().enumerate() {
        if i > 0 && (t.space || t.pad) {
            s.push(' ');
        }
        if matches!(t.kind, Kind::Str | Kind::Char) {
            for c in t.text().chars() {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
        } else {
            s.push_str(t.text());
        }
    }
    s.push('"');
    s
}

/// The fully expanded `toks` under `table`.
pub fn expand(table: &Table, toks: &[Tok]) -> Expanded {
    Expander::new(table, toks.to_vec()).finish()
}

/// The fully expanded `toks` under `table` in the file spelled `file` (for `__FILE__`).
pub fn expand_in(table: &Table, toks: &[Tok], file: &str) -> Expanded {
    let mut ex = Expander::new(table, toks.to_vec());
    let quoted = format!("\"{}\"", file.replace('\\', "\\\\").replace('"', "\\\""));
    ex.file = Some(Tok::new(sym(&quoted), Kind::Str, false));
    ex.finish()
}

/// The header an expanded `#include` operand names: `(angle, name)`. In `<...>` formed of
/// tokens, a space stands where the source had whitespace (not where a macro name or
/// parameter was replaced), as GCC glues them.
pub fn header_name(toks: &[Tok]) -> Option<(bool, String)> {
    let first = toks.first()?;
    match first.kind {
        // Tokens after the name: GCC warns and includes the file.
        Kind::Str if first.text().starts_with('"') => {
            let t = first.text();
            Some((false, t[1..t.len().max(2) - 1].to_string()))
        }
        Kind::Header => {
            let t = first.text();
            Some((true, t[1..t.len() - 1].to_string()))
        }
        _ if first.is(known().lt) => {
            let close = toks.iter().position(|t| t.is(known().gt))?;
            let mut name = String::new();
            for t in &toks[1..close] {
                if t.space {
                    name.push(' ');
                }
                name.push_str(t.text());
            }
            Some((true, name))
        }
        _ => None,
    }
}

/// For tests and logs: the spelling of `toks` expanded under `table`.
pub fn expand_text(table: &Table, text: &str) -> String {
    spell(&expand(table, &token::tokenize(text.as_bytes(), false)).toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of `#define` lines, read as the lexer reads them (bodies left as text).
    fn table(defs: &[&str]) -> Table<'static> {
        let mut t = Table::default();
        for d in defs {
            let m = Macro::parse_line(d.as_bytes()).unwrap();
            t.define_owned(Arc::new(m), false);
        }
        t
    }

    #[test]
    fn a_definition_read_lazily_is_the_one_read_whole() {
        let whole = |line: &str| Macro::parse(&token::tokenize(line.as_bytes(), false));
        for line in [
            " X",
            "X 1",
            "X+1",
            " F(a, b)  a ## b  # c",
            "F() (x)",
            "F(...) f(0, ## __VA_ARGS__)",
            "F(a, rest...) g(a, rest)",
            "G (a) a",
            "H(a)(a)",
            "P __has_include(<x.h>)",
            "A'x'",
            "L\"s\"",
            "u8'c' 1",
            "F(a b) a",
            "F(a",
            "1X 2",
            "",
            "Ü 1",
        ] {
            let lazy = Macro::parse_line(line.as_bytes());
            let eager = whole(line);
            assert_eq!(lazy, eager, "{line:?}");
            if let (Some(l), Some(e)) = (&lazy, &eager) {
                assert_eq!(l.body(), e.body(), "{line:?}");
                assert_eq!(
                    format!("{:?}", l.body()),
                    format!("{:?}", e.body()),
                    "{line:?}"
                );
            }
        }
        // Equal text is equal without tokenizing; another text is compared by tokens.
        let a = Macro::parse_line(b"X (1)").unwrap();
        let b = Macro::parse_line(b"X (1)").unwrap();
        assert_eq!(a, b);
        assert!(a.body.get().is_none() && b.body.get().is_none());
        assert_ne!(a, Macro::parse_line(b"X (2)").unwrap());
        assert_eq!(a, Macro::parse_line(b"X  (1)  ").unwrap());
    }

    fn x(defs: &[&str], text: &str) -> String {
        expand_text(&table(defs), text)
    }

    #[test]
    fn object_and_function_like() {
        assert_eq!(x(&["A 1 + B", "B 2"], "A * A"), "1 + 2 * 1 + 2");
        assert_eq!(x(&["F(a, b) a - b"], "F(1, (2, 3))"), "1 - (2, 3)");
        assert_eq!(x(&["F(a) [a]"], "F"), "F");
        assert_eq!(x(&["F() x"], "F()"), "x");
        assert_eq!(x(&["F (a) a"], "F(1)"), "(a) a(1)");
        assert!(expand(&table(&["F(a) a"]), &token::tokenize(b"F(1", false)).failed);
        assert!(expand(&table(&["F(a,b) a"]), &token::tokenize(b"F(1)", false)).failed);
    }

    #[test]
    fn recursion_is_blocked() {
        assert_eq!(x(&["A A"], "A"), "A");
        assert_eq!(x(&["A B", "B A"], "A"), "A");
        // As GCC: the exhausted body of `f` is still in force when `g` expands.
        assert_eq!(x(&["f(a) a*g", "g f"], "f(2)(9)"), "2*f(9)");
        assert_eq!(x(&["h(a) a*k", "k(a) h(a)"], "h(2)(9)"), "2*9*k");
        // The C standard's example: f(f(z)) expands the inner call first.
        assert_eq!(x(&["f(a) a + 1"], "f(f(z))"), "z + 1 + 1");
    }

    #[test]
    fn stringify_and_paste() {
        let defs = ["CAT(a, b) a##b", "STR(x) #x", "XSTR(x) STR(x)", "N name"];
        assert_eq!(x(&defs, "XSTR(CAT(N, 1))"), "\"N1\"");
        assert_eq!(x(&defs, "STR(N.h)"), "\"N.h\"");
        assert_eq!(x(&defs, "XSTR(N.h)"), "\"name.h\"");
        assert_eq!(x(&defs, "CAT(N, 1)"), "N1");
        assert_eq!(x(&defs, "CAT(, N)"), "name");
        assert_eq!(x(&defs, "STR(\"a\\n\")"), "\"\\\"a\\\\n\\\"\"");
    }

    #[test]
    fn variadics() {
        let defs = [
            "E(fmt, ...) f(fmt, ## __VA_ARGS__)",
            "V(...) [__VA_ARGS__]",
            "G(x, args...) g(x, args)",
            "O(a, ...) a __VA_OPT__(+ __VA_ARGS__)",
        ];
        assert_eq!(x(&defs, "E(1)"), "f(1)");
        assert_eq!(x(&defs, "E(1, 2, 3)"), "f(1, 2, 3)");
        assert_eq!(x(&defs, "V(1, 2)"), "[1, 2]");
        assert_eq!(x(&defs, "G(1, 2, 3)"), "g(1, 2, 3)");
        assert_eq!(x(&defs, "O(1)"), "1");
        assert_eq!(x(&defs, "O(1, 2)"), "1 + 2");
        assert_eq!(x(&["E", defs[3]], "O(1, E)"), "1");
    }

    #[test]
    fn kernel_is_enabled() {
        // include/linux/kconfig.h
        let defs = [
            "__ARG_PLACEHOLDER_1 0,",
            "__take_second_arg(__ignored, val, ...) val",
            "__is_defined(x) ___is_defined(x)",
            "___is_defined(val) ____is_defined(__ARG_PLACEHOLDER_##val)",
            "____is_defined(arg1_or_junk) __take_second_arg(arg1_or_junk 1, 0)",
            "__or(x, y) ___or(x, y)",
            "___or(x, y) ____or(__ARG_PLACEHOLDER_##x, y)",
            "____or(arg1_or_junk, y) __take_second_arg(arg1_or_junk 1, y)",
            "IS_BUILTIN(option) __is_defined(option)",
            "IS_MODULE(option) __is_defined(option##_MODULE)",
            "IS_ENABLED(option) __or(IS_BUILTIN(option), IS_MODULE(option))",
            "CONFIG_A 1",
            "CONFIG_B_MODULE 1",
        ];
        assert_eq!(x(&defs, "IS_ENABLED(CONFIG_A)"), "1");
        assert_eq!(x(&defs, "IS_ENABLED(CONFIG_B)"), "1");
        assert_eq!(x(&defs, "IS_ENABLED(CONFIG_C)"), "0");
        assert_eq!(x(&defs, "IS_BUILTIN(CONFIG_B)"), "0");
    }

    #[test]
    fn computed_includes() {
        // include/trace/define_trace.h
        let defs = [
            "TRACE_SYSTEM sched",
            "TRACE_INCLUDE_FILE TRACE_SYSTEM",
            "__stringify_1(x...) #x",
            "__stringify(x...) __stringify_1(x)",
            "TRACE_INCLUDE_PATH ../../drivers/x",
            "__TRACE_INCLUDE(system) __stringify(TRACE_INCLUDE_PATH/system.h)",
            "TRACE_INCLUDE(system) __TRACE_INCLUDE(system)",
            "H(x) <trace/events/x.h>",
        ];
        let t = table(&defs);
        let name =
            |text: &str| header_name(&expand(&t, &token::tokenize(text.as_bytes(), true)).toks);
        assert_eq!(
            name("TRACE_INCLUDE(TRACE_INCLUDE_FILE)"),
            Some((false, "../../drivers/x/sched.h".into()))
        );
        assert_eq!(
            name("H(TRACE_SYSTEM)"),
            Some((true, "trace/events/sched.h".into()))
        );
        assert_eq!(name("\"a.h\""), Some((false, "a.h".into())));
        assert_eq!(name("\"a.h\" extra"), Some((false, "a.h".into())));
        let t = table(&["N x", "H < N.h>"]);
        let h = header_name(&expand(&t, &token::tokenize(b"H", true)).toks);
        assert_eq!(h, Some((true, "x.h".into())));
        assert_eq!(name("NOPE"), None);
    }

    #[test]
    fn uncertain_definitions() {
        let mut t = table(&["A 1"]);
        let b = Arc::new(Macro::from_option("B=2").unwrap());
        t.define_owned(b.clone(), true);
        assert!(matches!(t.get(sym("B")), Lookup::Ambiguous));
        assert_eq!(t.alternatives(sym("B")).len(), 2);
        t.undef(sym("A"), true);
        assert!(matches!(t.get(sym("A")), Lookup::Ambiguous));
        t.define_owned(b, false);
        assert!(matches!(t.get(sym("B")), Lookup::Defined(_)));
        t.push(sym("B"), false);
        t.undef(sym("B"), false);
        assert!(matches!(t.get(sym("B")), Lookup::Undefined));
        t.pop(sym("B"), false);
        assert!(matches!(t.get(sym("B")), Lookup::Defined(_)));
        assert!(expand(&t, &token::tokenize(b"A + B", false)).ambiguous);
        assert_eq!(Macro::from_option("X").unwrap().body()[0].text(), "1");
        assert_eq!(
            Macro::from_option("F(a,...)=a")
                .unwrap()
                .params
                .unwrap()
                .len(),
            2
        );
    }
}
