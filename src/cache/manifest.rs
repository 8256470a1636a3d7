//! Direct mode's manifests: what a compile read, so that the same command can later be
//! answered without running the preprocessor.
//!
//! A manifest is kept under a key of the command line, the working directory and the
//! source. It holds a few candidates, newest first, each the state of the files that
//! decided one preprocessed text, with the key of that text's result:
//!
//! - every header the preprocessor entered, with a hash of its content;
//! - for every name it could have found elsewhere first, whether a file is there: each
//!   directory of the search chain before the one the header was found in (all the
//!   readings the line markers allow), the includer's own directory, and every
//!   directory a `__has_include` may have probed. A header created earlier on the path
//!   (which ccache and sccache do not see) changes one of these, and the candidate no
//!   longer holds.
//!
//! The headers are those of the line markers of the preprocessed text (`# 1 "x.h" 1`
//! entering a file, `2` returning from it). A candidate is not made when a header cannot
//! be placed on the chain, changed while it was being read, uses the time macros, or
//! probes a name made by a macro (`__has_include(MACRO)`).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::key::Key;

/// The most candidates a manifest keeps (a header that flips between two versions, a
/// file generated anew each build).
const MAX_CANDIDATES: usize = 8;
const HEADER: &str = "distcc-rs manifest 1";

/// One state of the files that decided a preprocessed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// What must still be true of each path.
    pub facts: Vec<(String, Fact)>,
    /// The key of the result.
    pub result: Key,
    /// The dependency file the command wrote, if any.
    pub deps: Option<Vec<u8>>,
}

/// What a candidate needs of one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// A file read: the BLAKE3 sum of its content.
    Content([u8; 32]),
    /// A file read under one of the compiler's own directories: its identity. Such a file
    /// changes with a package, which gives it a new inode or times; reading and hashing
    /// hundreds of them for every hit would cost more than the rest of it.
    Stat(Ident),
    /// A path looked up, and whether a file was there.
    Exists(bool),
    /// A directory of the compiler's own whose names decided lookups: its identity, which
    /// changes when a name is created or removed in it.
    Dir(Ident),
}

/// A file's or directory's device, inode, size, mtime and ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ident([i128; 5]);

impl Ident {
    fn of(m: &fs::Metadata) -> Ident {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Ident([
            i128::from(m.dev()),
            i128::from(m.ino()),
            i128::from(m.size()),
            ns(m.mtime(), m.mtime_nsec()),
            ns(m.ctime(), m.ctime_nsec()),
        ])
    }

    /// The last change, and whether it is recent next to `started_ns`.
    fn recent(&self, started_ns: i128) -> bool {
        let [.., mtime, ctime] = self.0;
        mtime.max(ctime) >= started_ns - margin(mtime, ctime)
    }
}

/// The candidates of one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub candidates: Vec<Candidate>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Manifest {
    /// As text: one line per fact, paths last (they contain no newline: see
    /// [`Recorder::candidate`]).
    pub fn encode(&self) -> Vec<u8> {
        let ident = |i: &Ident| i.0.map(|n| n.to_string()).join(" ");
        let mut out = format!("{HEADER}\n");
        for c in &self.candidates {
            out.push_str(&format!("result {}\n", c.result.hex()));
            for (path, fact) in &c.facts {
                let line = match fact {
                    Fact::Content(sum) => format!("content {}", hex(sum)),
                    Fact::Stat(i) => format!("stat {}", ident(i)),
                    Fact::Exists(there) => format!("exists {}", u8::from(*there)),
                    Fact::Dir(i) => format!("dir {}", ident(i)),
                };
                out.push_str(&format!("{line} {path}\n"));
            }
            if let Some(deps) = &c.deps {
                out.push_str(&format!("deps {}\n", hex(deps)));
            }
        }
        out.into_bytes()
    }

    pub fn decode(data: &[u8]) -> Option<Manifest> {
        let text = std::str::from_utf8(data).ok()?;
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let mut m = Manifest::default();
        for line in lines {
            let (what, rest) = line.split_once(' ')?;
            if what == "result" {
                m.candidates.push(Candidate {
                    facts: Vec::new(),
                    result: Key(unhex::<32>(rest)?),
                    deps: None,
                });
                continue;
            }
            let c = m.candidates.last_mut()?;
            if what == "deps" {
                let bytes = (0..rest.len() / 2)
                    .map(|i| u8::from_str_radix(rest.get(2 * i..2 * i + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()?;
                c.deps = Some(bytes);
                continue;
            }
            let words = if matches!(what, "stat" | "dir") { 5 } else { 1 };
            let mut parts = rest.splitn(words + 1, ' ');
            let values: Vec<&str> = parts.by_ref().take(words).collect();
            let path = parts.next()?.to_string();
            let ident = || -> Option<Ident> {
                let mut n = [0i128; 5];
                for (o, v) in n.iter_mut().zip(&values) {
                    *o = v.parse().ok()?;
                }
                Some(Ident(n))
            };
            let fact = match what {
                "content" => Fact::Content(unhex::<32>(values.first()?)?),
                "stat" => Fact::Stat(ident()?),
                "exists" => Fact::Exists(*values.first()? == "1"),
                "dir" => Fact::Dir(ident()?),
                _ => return None,
            };
            c.facts.push((path, fact));
        }
        Some(m)
    }

    /// The first candidate that holds now.
    pub fn find(&self) -> Option<&Candidate> {
        let mut sums = HashMap::new();
        self.candidates.iter().find(|c| c.holds(&mut sums))
    }

    /// Puts `c` first, dropping an older candidate with the same result and the oldest
    /// beyond the limit.
    pub fn add(&mut self, c: Candidate) {
        self.candidates.retain(|old| old.result != c.result);
        self.candidates.insert(0, c);
        self.candidates.truncate(MAX_CANDIDATES);
    }
}

impl Candidate {
    /// Whether every fact is still true, the cheap ones checked first; `sums` keeps the
    /// files' sums across candidates.
    fn holds(&self, sums: &mut HashMap<String, Option<[u8; 32]>>) -> bool {
        let ident = |p: &str| fs::metadata(p).ok().map(|m| Ident::of(&m));
        self.facts.iter().all(|(p, fact)| match fact {
            Fact::Exists(there) => is_file(p) == *there,
            Fact::Stat(i) | Fact::Dir(i) => ident(p) == Some(*i),
            Fact::Content(_) => true,
        }) && self.facts.iter().all(|(p, fact)| match fact {
            Fact::Content(sum) => {
                let now = sums.entry(p.clone()).or_insert_with(|| file_sum(p));
                now.as_ref() == Some(sum)
            }
            _ => true,
        })
    }
}

/// Whether `path` is a file the preprocessor would open (through links).
pub fn is_file(path: &str) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file())
}

fn file_sum(path: &str) -> Option<[u8; 32]> {
    fs::read(path).ok().map(|d| *blake3::hash(&d).as_bytes())
}

/// The headers a preprocessed text entered, in order, each with the file it was
/// included from (`None`: from the command line, or the predefined header).
pub type Entered = Vec<(String, Option<String>)>;

/// The headers the preprocessed `text` entered (its line markers).
pub fn entered(text: &[u8]) -> Entered {
    let mut stack: Vec<String> = Vec::new();
    let mut out = Vec::new();
    // Where lines starting with `# ` start: the markers are among them.
    let starts = text
        .starts_with(b"# ")
        .then_some(0)
        .into_iter()
        .chain(memchr::memmem::find_iter(text, b"\n# ").map(|at| at + 1));
    for at in starts {
        let end = memchr::memchr(b'\n', &text[at..]).map_or(text.len(), |n| at + n);
        let Some((path, flags)) = marker(&text[at..end]) else {
            continue;
        };
        if flags.contains(&1) {
            let includer = stack.last().filter(|s| !s.starts_with('<')).cloned();
            out.push((path.clone(), includer));
            stack.push(path);
        } else if flags.contains(&2) {
            stack.pop();
            if let Some(top) = stack.last_mut() {
                *top = path;
            }
        } else if let Some(top) = stack.last_mut() {
            // `# 1 "main.c"`, `# 0 "<command-line>"`: where the text now comes from.
            *top = path;
        } else {
            stack.push(path);
        }
    }
    out
}

/// A line marker `# LINE "PATH" FLAGS...`: its path and flags.
fn marker(line: &[u8]) -> Option<(String, Vec<u8>)> {
    let rest = line.strip_prefix(b"# ")?;
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let rest = rest[digits..].strip_prefix(b" \"")?;
    // The path with the preprocessor's escapes (`\\`, `\"`) undone.
    let mut path = Vec::new();
    let mut i = 0;
    loop {
        match *rest.get(i)? {
            b'"' => break,
            b'\\' => {
                path.push(*rest.get(i + 1)?);
                i += 2;
            }
            c => {
                path.push(c);
                i += 1;
            }
        }
    }
    let flags = rest[i + 1..]
        .split(|c| *c == b' ')
        .filter_map(|f| std::str::from_utf8(f).ok()?.parse().ok())
        .collect();
    Some((String::from_utf8(path).ok()?, flags))
}

/// The names a file probes with `__has_include`/`__has_include_next`, each with whether
/// it is quoted (also looked for beside the file); `None` when one is made by a macro.
pub fn probes(content: &[u8]) -> Option<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for at in memchr::memmem::find_iter(content, b"__has_include") {
        let mut rest = &content[at + b"__has_include".len()..];
        rest = rest.strip_prefix(b"_next").unwrap_or(rest);
        let trim = |s: &[u8]| -> usize { s.iter().take_while(|c| c.is_ascii_whitespace()).count() };
        rest = &rest[trim(rest)..];
        // `#ifdef __has_include`, `defined(__has_include)`: no probe.
        let Some(r) = rest.strip_prefix(b"(") else {
            continue;
        };
        let r = &r[trim(r)..];
        let (close, quoted) = match r.first() {
            Some(b'<') => (b'>', false),
            Some(b'"') => (b'"', true),
            _ => return None,
        };
        let len = memchr::memchr(close, &r[1..])?;
        out.push((String::from_utf8(r[1..1 + len].to_vec()).ok()?, quoted));
    }
    Some(out)
}

/// `path` as GCC spells a search directory in its line markers, for comparing: no
/// leading `./`, no trailing `/`, `.` as "".
fn spelled(path: &str) -> &str {
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    let p = p.trim_end_matches('/');
    if p == "." {
        ""
    } else {
        p
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn dir_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// Makes a candidate out of what the preprocessor entered and the search chain (every
/// directory in order: `-iquote`, `-I`, `-isystem`, the compiler's, `-idirafter`, as
/// written, existing or not).
pub struct Recorder<'a> {
    pub chain: &'a [String],
    /// The compiler's own directories (also in `chain`): what is under them is known by
    /// its identity (see [`Fact`]).
    pub system: &'a [String],
    /// When the preprocessor started (ns since the epoch): a file changed since is not
    /// recorded, its content may not be what was read.
    pub started_ns: i128,
    /// The sum of the source as the key of the manifest has it.
    pub source_sum: [u8; 32],
}

/// The facts of a candidate being made, each path once.
#[derive(Default)]
struct Facts {
    list: Vec<(String, Fact)>,
    seen: std::collections::HashSet<String>,
    /// Directories found missing, walking up from a lookup.
    missing: std::collections::HashSet<String>,
    /// Set when a fact cannot be trusted: no candidate then.
    broken: bool,
}

impl Recorder<'_> {
    /// The candidate for the text whose entered headers are `entered` and whose source is
    /// `source`; `None` when a direct hit could not be trusted (see the module comment).
    pub fn candidate(
        &self,
        source: &str,
        entered: &[(String, Option<String>)],
        result: Key,
        deps: Option<Vec<u8>>,
    ) -> Option<Candidate> {
        let chain: Vec<&str> = self.chain.iter().map(|d| spelled(d)).collect();
        let mut facts = Facts::default();
        let source_content = fs::read(source).ok()?;
        // The source read now must be the one the manifest's key was made of, and the one
        // the preprocessor read.
        let source_ident = Ident::of(&fs::metadata(source).ok()?);
        if *blake3::hash(&source_content).as_bytes() != self.source_sum
            || source_ident.recent(self.started_ns)
        {
            return None;
        }
        for (name, quoted) in probes(&source_content)? {
            self.probed(&chain, dir_of(source), &name, quoted, &mut facts);
        }
        let mut entered_once = std::collections::HashSet::new();
        // One buffer for every header: hundreds of fresh ones cost page faults.
        let mut content = Vec::new();
        for (path, includer) in entered {
            if !entered_once.insert(path.as_str()) {
                continue;
            }
            let includer_dir = includer.as_deref().map_or("", dir_of);
            let mut placed = !includer_dir.is_empty()
                && path.starts_with(&format!("{includer_dir}/"))
                || includer_dir.is_empty() && !path.starts_with('/');
            for (k, dir) in chain.iter().enumerate() {
                let name = if dir.is_empty() {
                    (!path.starts_with('/')).then_some(path.as_str())
                } else {
                    path.strip_prefix(&format!("{dir}/"))
                };
                let Some(name) = name else { continue };
                placed = true;
                for before in &chain[..k] {
                    self.look(join(before, name), &mut facts);
                }
                self.look(join(includer_dir, name), &mut facts);
            }
            if !placed {
                log::debug!("cannot place {path} on the search chain: no direct mode");
                return None;
            }
            let mut file = fs::File::open(path).ok()?;
            content.clear();
            std::io::Read::read_to_end(&mut file, &mut content).ok()?;
            let ident = Ident::of(&file.metadata().ok()?);
            if ident.recent(self.started_ns)
                || crate::toolchain::pragmas::uses_time_macros(&content)
            {
                return None;
            }
            for (name, quoted) in probes(&content)? {
                self.probed(&chain, dir_of(path), &name, quoted, &mut facts);
            }
            let fact = if self.under_system(path) {
                Fact::Stat(ident)
            } else {
                Fact::Content(*blake3::hash(&content).as_bytes())
            };
            facts.add(path.clone(), fact);
        }
        if facts.broken || facts.list.iter().any(|(p, _)| p.contains('\n')) {
            return None;
        }
        Some(Candidate {
            facts: facts.list,
            result,
            deps,
        })
    }

    fn under_system(&self, path: &str) -> bool {
        self.system.iter().any(|d| {
            let d = spelled(d);
            !d.is_empty() && path.starts_with(d) && path[d.len()..].starts_with('/')
        })
    }

    /// A lookup of `path`: whether a file is there, or, under the compiler's own
    /// directories, the identity of the nearest directory that exists on its way (a name
    /// created below changes it).
    fn look(&self, path: String, facts: &mut Facts) {
        if !self.under_system(&path) {
            if !facts.seen.contains(&path) {
                let there = is_file(&path);
                facts.add(path, Fact::Exists(there));
            }
            return;
        }
        let mut dir = dir_of(&path).to_string();
        loop {
            if facts.seen.contains(&dir) {
                return;
            }
            if facts.missing.contains(&dir) {
                dir = dir_of(&dir).to_string();
                continue;
            }
            match fs::metadata(&dir) {
                Ok(m) if m.is_dir() => {
                    let ident = Ident::of(&m);
                    facts.broken |= ident.recent(self.started_ns);
                    facts.add(dir, Fact::Dir(ident));
                    return;
                }
                // A file where a directory would be: it stays a lookup that fails.
                Ok(_) => {
                    facts.add(path, Fact::Exists(false));
                    return;
                }
                Err(_) if dir.contains('/') => {
                    let up = dir_of(&dir).to_string();
                    facts.missing.insert(dir);
                    dir = up;
                }
                Err(_) => {
                    facts.broken = true;
                    return;
                }
            }
        }
    }

    /// A `__has_include` of `name` from a file in `dir`: every place it may look.
    fn probed(&self, chain: &[&str], dir: &str, name: &str, quoted: bool, facts: &mut Facts) {
        if quoted {
            self.look(join(dir, name), facts);
        }
        for d in chain {
            self.look(join(d, name), facts);
        }
    }
}

impl Facts {
    fn add(&mut self, path: String, fact: Fact) {
        if self.seen.insert(path.clone()) {
            self.list.push((path, fact));
        }
    }
}

/// How long before the preprocessor started a file must have last changed for its
/// content to be trusted: a timestamp tick, or a second where stamps are whole seconds.
fn margin(mtime_ns: i128, ctime_ns: i128) -> i128 {
    const NS: i128 = 1_000_000_000;
    if mtime_ns % NS == 0 && ctime_ns % NS == 0 {
        2 * NS
    } else {
        NS / 10
    }
}

/// Now, in ns since the epoch.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_markers_give_the_headers_and_their_includers() {
        let text = b"# 0 \"m.c\"\n# 0 \"<built-in>\"\n# 0 \"<command-line>\"\n\
# 1 \"/usr/include/stdc-predef.h\" 1 3 4\n# 0 \"<command-line>\" 2\n# 1 \"m.c\"\n\
# 1 \"./inc/a.h\" 1\n# 1 \"./inc/c.h\" 1\nint c;\n# 2 \"./inc/a.h\" 2\n# 2 \"m.c\" 2\n\
# 1 \"sub/b\\\\q.h\" 1\n# 3 \"m.c\" 2\n";
        let e = entered(text);
        let want: Vec<(String, Option<String>)> = vec![
            ("/usr/include/stdc-predef.h".into(), None),
            ("./inc/a.h".into(), Some("m.c".into())),
            ("./inc/c.h".into(), Some("./inc/a.h".into())),
            ("sub/b\\q.h".into(), Some("m.c".into())),
        ];
        assert_eq!(e, want);
    }

    #[test]
    fn probes_are_read_and_a_computed_one_refuses() {
        let text = b"#if defined __has_include\n#if __has_include (<sys/x.h>) && \
__has_include_next(\"y.h\")\n#endif\n#ifdef __has_include\n";
        assert_eq!(
            probes(text),
            Some(vec![("sys/x.h".into(), false), ("y.h".into(), true)])
        );
        assert_eq!(probes(b"#if __has_include(HEADER)\n"), None);
    }

    #[test]
    fn a_manifest_survives_a_round_trip() {
        let id = Ident([
            1,
            2,
            3,
            1_700_000_000_123_456_789,
            1_700_000_000_123_456_789,
        ]);
        let m = Manifest {
            candidates: vec![Candidate {
                facts: vec![
                    ("a b.h".into(), Fact::Content([7; 32])),
                    ("/usr/include/stdio.h".into(), Fact::Stat(id)),
                    ("inc/x.h".into(), Fact::Exists(false)),
                    ("y.h".into(), Fact::Exists(true)),
                    ("/usr/local/include".into(), Fact::Dir(id)),
                ],
                result: Key([3; 32]),
                deps: Some(b"m.o: m.c a\\ b.h\n".to_vec()),
            }],
        };
        assert_eq!(Manifest::decode(&m.encode()), Some(m));
        assert_eq!(Manifest::decode(b"garbage"), None);
    }
}
