//! The include closure of one command: resolution with GCC's chains and a depth-first walk
//! over the files reached, as distcc 3.4's memoizing analyzer does it without `#if`.
//!
//! Chains: quoted names are looked up in the includer's directory (as spelled: the
//! directory part of the search directory joined with the name), then `-iquote`, then the
//! angle chain; angled names in `-I`, `-isystem`, the system dirs, `-idirafter`.
//! `#include_next` stands for every match in the includer's directory and the quote chain.
//! A file counts when it is a regular file (through symlinks), as GCC opens it.
//!
//! A file is identified by (realpath, realpath of its directory as spelled), which ends
//! cycles like `D/../D/x.h`. Files under a system dir are read (they can include user
//! headers through `-I` dirs) but not put in the closure. Each path opened is recorded, as
//! spelled, for the mirror's symlinks and forced directories.
//!
//! Parsed directive lists are cached across requests, keyed by the file's (dev, inode,
//! size, mtime, ctime), so a rewritten file is read again. Lookups, found or not, are not
//! cached: a header generated during the build is seen by the next request.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cmdline::Command;
use super::lexer::{self, Include};
use super::macros::{self, Table};
use super::sysdirs::SystemDirs;

/// What identifies one version of a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileKey {
    pub fn of(meta: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// The key of `path` now (following symlinks).
    pub fn stat(path: &str) -> std::io::Result<FileKey> {
        std::fs::metadata(path).map(|m| FileKey::of(&m))
    }
}

/// Parsed directive lists, shared by all requests.
#[derive(Default)]
pub struct LexCache {
    map: Mutex<HashMap<FileKey, Arc<Vec<Include>>>>,
}

impl LexCache {
    /// The includes of `path` (a realpath), read again when its key changed. An error when
    /// it cannot be read or keeps changing while it is read.
    pub fn includes(&self, path: &str) -> Result<Arc<Vec<Include>>, String> {
        for _ in 0..3 {
            let key = FileKey::stat(path).map_err(|e| format!("cannot stat {path}: {e}"))?;
            if let Some(found) = lock(&self.map).get(&key) {
                return Ok(found.clone());
            }
            let data = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            if FileKey::stat(path).ok() != Some(key) {
                continue;
            }
            let incs = Arc::new(lexer::directives(&data));
            lock(&self.map).insert(key, incs.clone());
            return Ok(incs);
        }
        Err(format!("{path} keeps changing while it is read"))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One file of the closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosureFile {
    /// Its realpath.
    pub realpath: String,
    /// When it was found through an absolute search directory: that directory joined with
    /// the name, for the `#line` of its `.lzo.abs`.
    pub abs_name: Option<String>,
}

/// The analysis of one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closure {
    /// The files outside system dirs that the preprocessor may read, source included.
    pub files: Vec<ClosureFile>,
    /// Every path found, absolute and as spelled (`/cwd/sub/../x.h`), in the order found.
    pub paths: Vec<String>,
    /// The system dirs of this command.
    pub system_dirs: Vec<String>,
}

/// Python's `os.path.join` for two parts.
pub fn join(a: &str, b: &str) -> String {
    if b.starts_with('/') || a.is_empty() {
        b.to_string()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// Python's `os.path.dirname`.
pub fn dirname(p: &str) -> String {
    match p.rfind('/') {
        None => String::new(),
        Some(i) => {
            let head = &p[..=i];
            let trimmed = head.trim_end_matches('/');
            if trimmed.is_empty() {
                head.to_string()
            } else {
                trimmed.to_string()
            }
        }
    }
}

/// The CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

fn realpath(p: &str) -> Option<String> {
    std::fs::canonicalize(p)
        .ok()
        .and_then(|r| r.into_os_string().into_string().ok())
}

/// One walk's state.
struct Walk<'a> {
    cwd: &'a str,
    quote: Vec<String>,
    angle: Vec<String>,
    lex: &'a LexCache,
    sys: &'a SystemDirs,
    closure: Closure,
    in_closure: HashMap<String, usize>,
    seen_paths: HashSet<String>,
    seen_nodes: HashSet<(String, String)>,
    dir_real: HashMap<String, Option<String>>,
    stack: Vec<(String, String)>,
    /// Every definition seen in the files walked, and the command line's.
    table: Table,
    /// The computed includes met: (includer's realpath, its directory as spelled, text,
    /// whether `#include_next`).
    computed: Vec<(String, String, String, bool)>,
    start_cpu: Duration,
    limit: Duration,
}

/// The closure of `cmd` run in `cwd` (absolute). `Err` is a "not covered" reason.
pub fn analyze(
    cmd: &Command,
    cwd: &str,
    lex: &LexCache,
    sys: &SystemDirs,
    limit: Duration,
) -> Result<Closure, String> {
    let start_cpu = thread_cpu();
    let system = sys.get(&cmd.compiler, &cmd.probe_flags, &cmd.language, cwd)?;
    let mut angle = cmd.before.clone();
    angle.extend(system.iter().cloned());
    angle.extend(cmd.after.iter().cloned());
    let mut quote = cmd.quote.clone();
    quote.extend(angle.iter().cloned());
    let mut w = Walk {
        cwd,
        quote,
        angle,
        lex,
        sys,
        closure: Closure {
            system_dirs: system,
            ..Closure::default()
        },
        in_closure: HashMap::new(),
        seen_paths: HashSet::new(),
        seen_nodes: HashSet::new(),
        dir_real: HashMap::new(),
        stack: Vec::new(),
        table: Table::default(),
        computed: Vec::new(),
        start_cpu: thread_cpu(),
        limit,
    };
    w.start_cpu = start_cpu;
    for d in &cmd.defines {
        w.table.add(d);
    }
    for f in &cmd.include_files {
        let quote = w.quote.clone();
        w.walk_command_line_file(f, &quote, "include file")?;
    }
    w.walk_command_line_file(&cmd.source, &[], "translation unit")?;
    // Computed includes: evaluated with every definition met, until the files they add
    // bring no new definition or computed include.
    loop {
        let before = (w.table.len(), w.computed.len(), w.seen_nodes.len());
        for (real, file_dir, text, next) in w.computed.clone() {
            let found = macros::evaluate(&text, &w.table, next)
                .map_err(|e| format!("File: '{real}': computed include '{text}': {e}"))?;
            for inc in &found {
                let children = w.resolve_include(inc, &file_dir)?;
                w.stack.extend(children.into_iter().rev());
            }
        }
        w.run()?;
        if (w.table.len(), w.computed.len(), w.seen_nodes.len()) == before {
            break;
        }
    }
    Ok(w.closure)
}

impl Walk<'_> {
    /// Walks from a file named on the command line: `-include` files are looked up in the
    /// working directory, then in `chain`.
    fn walk_command_line_file(
        &mut self,
        path: &str,
        chain: &[String],
        kind: &str,
    ) -> Result<(), String> {
        let (dir, name) = if path.starts_with('/') {
            let d = dirname(path);
            let n = path[path.rfind('/').map_or(0, |i| i + 1)..].to_string();
            (d, n)
        } else {
            (String::new(), path.to_string())
        };
        let first = [dir];
        let found = self.resolve(&name, first.iter().chain(chain))?;
        let pair = found.ok_or_else(|| format!("Could not find {kind} '{path}'."))?;
        self.stack.push(pair);
        self.run()
    }

    /// The first (search dir, name) of `dirs` where `name` is a regular file.
    fn resolve<'d>(
        &mut self,
        name: &str,
        dirs: impl Iterator<Item = &'d String>,
    ) -> Result<Option<(String, String)>, String> {
        Ok(self.resolve_all(name, dirs, true)?.into_iter().next())
    }

    fn resolve_all<'d>(
        &mut self,
        name: &str,
        dirs: impl Iterator<Item = &'d String>,
        first_only: bool,
    ) -> Result<Vec<(String, String)>, String> {
        if name.starts_with('/') {
            return Err(format!("Filepath must be relative but isn't: '{name}'."));
        }
        let mut out = Vec::new();
        for d in dirs {
            let full = join(self.cwd, &join(d, name));
            if std::fs::metadata(&full).is_ok_and(|m| m.is_file()) {
                out.push((d.clone(), name.to_string()));
                if first_only {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some((dir, name)) = self.stack.pop() {
            if thread_cpu().saturating_sub(self.start_cpu) > self.limit {
                return Err(format!(
                    "Bailing out because include server spent more than {:.1}s user time \
                     handling request",
                    self.limit.as_secs_f64()
                ));
            }
            let spelled = join(&dir, &name);
            let full = join(self.cwd, &spelled);
            if self.seen_paths.insert(full.clone()) {
                self.closure.paths.push(full.clone());
            }
            let Some(real) = realpath(&full) else {
                continue;
            };
            let file_dir = dirname(&spelled);
            let real_dir = self.real_dir(&file_dir);
            if !self.seen_nodes.insert((real.clone(), real_dir)) {
                continue;
            }
            let system = self.sys.contains(&real);
            if !system {
                let abs = dir.starts_with('/').then(|| join(&dir, &name));
                match self.in_closure.get(&real) {
                    Some(&i) => {
                        if self.closure.files[i].abs_name.is_none() {
                            self.closure.files[i].abs_name = abs;
                        }
                    }
                    None => {
                        self.in_closure
                            .insert(real.clone(), self.closure.files.len());
                        self.closure.files.push(ClosureFile {
                            realpath: real.clone(),
                            abs_name: abs,
                        });
                    }
                }
            }
            let includes = self.lex.includes(&real)?;
            let mut children = Vec::new();
            for inc in includes.iter() {
                match inc {
                    Include::Define(d) => {
                        self.table.add(d);
                    }
                    Include::Computed(text) | Include::ComputedNext(text) => {
                        let next = matches!(inc, Include::ComputedNext(_));
                        let c = (real.clone(), file_dir.clone(), text.clone(), next);
                        if !self.computed.contains(&c) {
                            self.computed.push(c);
                        }
                    }
                    _ => children.extend(self.resolve_include(inc, &file_dir)?),
                }
            }
            // Depth first, in the order the file names them.
            self.stack.extend(children.into_iter().rev());
        }
        Ok(())
    }

    /// Where `inc`, met in a file of directory `file_dir` (as spelled), is found.
    fn resolve_include(
        &mut self,
        inc: &Include,
        file_dir: &String,
    ) -> Result<Vec<(String, String)>, String> {
        Ok(match inc {
            Include::Quote(n) => {
                let quote = std::mem::take(&mut self.quote);
                let r = self.resolve(n, std::iter::once(file_dir).chain(&quote));
                self.quote = quote;
                r?.into_iter().collect()
            }
            Include::Angle(n) => {
                let angle = std::mem::take(&mut self.angle);
                let r = self.resolve(n, angle.iter());
                self.angle = angle;
                r?.into_iter().collect()
            }
            Include::Next(n) => {
                let quote = std::mem::take(&mut self.quote);
                let r = self.resolve_all(n, std::iter::once(file_dir).chain(&quote), false);
                self.quote = quote;
                r?
            }
            _ => Vec::new(),
        })
    }

    /// The realpath of directory `d` (as spelled, relative to the working directory).
    fn real_dir(&mut self, d: &str) -> String {
        let cwd = self.cwd;
        self.dir_real
            .entry(d.to_string())
            .or_insert_with(|| realpath(&join(cwd, d)))
            .clone()
            .unwrap_or_else(|| join(cwd, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_paths() {
        assert_eq!(join("", "a.h"), "a.h");
        assert_eq!(join("/x", "a.h"), "/x/a.h");
        assert_eq!(join("/x/", "a.h"), "/x/a.h");
        assert_eq!(join("/x", "/a.h"), "/a.h");
        assert_eq!(dirname("a.h"), "");
        assert_eq!(dirname("/a.h"), "/");
        assert_eq!(dirname("sub/../b.h"), "sub/..");
        assert_eq!(dirname("/x//y"), "/x");
    }
}
