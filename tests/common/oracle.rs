//! GCC as the oracle for the include analysis: for one compiler command, the files
//! `gcc <same flags> -M` lists outside the compiler's system directories, against the
//! files our include server would ship for the same command. A file gcc reads that we do
//! not ship is "missing" (a remote failure); a file we ship that gcc does not read is
//! "surplus" (bytes wasted). A [`Tally`] sums the units of one tree.
//!
//! The units of a real tree are its build's own commands: [`make_units`] reads them from
//! `make -n`, [`compile_commands`] from CMake's `compile_commands.json`, and
//! [`shell_commands`] splits a command line as the shell that ran it did. [`compare_units`]
//! runs a whole tree through one server on a few threads, as a build's server sees it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use distcc_rs::include::server::IncludeServer;
use distcc_rs::include::sysdirs::under;

/// Options that ask for dependency output or name the output: dropped before `-M`.
const DROPPED_WITH_VALUE: &[&str] = &["-o", "-MF", "-MT", "-MQ"];
const DROPPED: &[&str] = &["-c", "-S", "-E", "-MD", "-MMD", "-MP", "-MG", "-M", "-MM"];

/// `argv` (a whole compile command) made into `gcc -M` writing to `deps`.
fn m_command(argv: &[String], deps: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i].as_str();
        if DROPPED_WITH_VALUE.contains(&a) {
            i += 2;
            continue;
        }
        let joined_output = DROPPED_WITH_VALUE
            .iter()
            .any(|o| a.starts_with(o) && a.len() > o.len());
        if !(DROPPED.contains(&a)
            || joined_output
            || a.starts_with("-Wp,-MD,")
            || a.starts_with("-Wp,-MMD,"))
        {
            out.push(argv[i].clone());
        }
        i += 1;
    }
    out.extend(["-M".to_string(), "-MF".to_string()]);
    out.push(deps.to_str().unwrap().to_string());
    out
}

/// The realpaths `gcc -M` lists for `argv` run in `cwd`, without those under `system`.
/// Panics when gcc fails: the command must be one that compiles.
pub fn gcc_deps(cwd: &Path, argv: &[String], system: &[String]) -> BTreeSet<String> {
    try_deps(cwd, argv, system).unwrap_or_else(|e| panic!("{e}"))
}

/// [`gcc_deps`], or the compiler's complaint when it cannot preprocess the command.
pub fn try_deps(
    cwd: &Path,
    argv: &[String],
    system: &[String],
) -> Result<BTreeSet<String>, String> {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let m = m_command(argv, tmp.path());
    let out = Command::new(&m[0])
        .args(&m[1..])
        .current_dir(cwd)
        .output()
        .expect("run gcc -M");
    if !out.status.success() {
        return Err(format!(
            "{m:?} in {}: {}",
            cwd.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = fs::read_to_string(tmp.path()).unwrap().replace("\\\n", " ");
    let deps = text.split_once(": ").map_or("", |(_, d)| d);
    Ok(deps
        .split_whitespace()
        .map(|p| fs::canonicalize(cwd.join(p.replace("\\ ", " "))).unwrap())
        .map(|p| p.to_str().unwrap().to_string())
        .filter(|p| !system.iter().any(|s| under(p, s)))
        .collect())
}

/// One unit's comparison.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Files gcc reads that the closure lacks.
    pub missing: Vec<String>,
    /// Files the closure ships that gcc does not read.
    pub surplus: Vec<String>,
    pub surplus_bytes: u64,
    /// What gcc lists, in files and bytes.
    pub gcc_files: usize,
    pub gcc_bytes: u64,
    /// How long our analysis took, and gcc -M.
    pub analysis: Duration,
    pub gcc: Duration,
}

fn size(p: &str) -> u64 {
    fs::metadata(p).map_or(0, |m| m.len())
}

/// Compares what `server` would ship for `argv` in `cwd` with what gcc reads. Panics when
/// the include server does not cover the command.
pub fn compare(server: &IncludeServer, cwd: &Path, argv: &[String]) -> Comparison {
    try_compare(server, cwd, argv)
        .unwrap_or_else(|why| panic!("{argv:?} in {}: not covered: {why}", cwd.display()))
}

/// Like [`compare`], with `Err(why)` when the include server does not cover the command
/// (gcc is then not run).
pub fn try_compare(
    server: &IncludeServer,
    cwd: &Path,
    argv: &[String],
) -> Result<Comparison, String> {
    let start = Instant::now();
    let closure = server.closure(cwd.to_str().unwrap(), argv)?;
    let analysis = start.elapsed();
    let ours: BTreeSet<String> = closure.files.iter().map(|f| f.realpath.clone()).collect();
    let start = Instant::now();
    let gcc = gcc_deps(cwd, argv, &closure.system_dirs);
    let gcc_time = start.elapsed();
    let surplus: Vec<String> = ours.difference(&gcc).cloned().collect();
    Ok(Comparison {
        missing: gcc.difference(&ours).cloned().collect(),
        surplus_bytes: surplus.iter().map(|p| size(p)).sum(),
        surplus,
        gcc_files: gcc.len(),
        gcc_bytes: gcc.iter().map(|p| size(p)).sum(),
        analysis,
        gcc: gcc_time,
    })
}

/// The sum over the units of one tree.
#[derive(Debug, Default)]
pub struct Tally {
    pub units: usize,
    /// (unit, missing files) for every unit with one missing.
    pub missing: Vec<(String, Vec<String>)>,
    pub surplus_files: usize,
    pub surplus_bytes: u64,
    pub gcc_files: usize,
    pub gcc_bytes: u64,
    /// For every surplus file: on how many units it was surplus, and its size.
    pub surplus_by_file: BTreeMap<String, (usize, u64)>,
}

impl Tally {
    pub fn add(&mut self, unit: &str, c: Comparison) {
        self.units += 1;
        if !c.missing.is_empty() {
            self.missing.push((unit.to_string(), c.missing));
        }
        for f in &c.surplus {
            self.surplus_by_file
                .entry(f.clone())
                .or_insert((0, size(f)))
                .0 += 1;
        }
        self.surplus_files += c.surplus.len();
        self.surplus_bytes += c.surplus_bytes;
        self.gcc_files += c.gcc_files;
        self.gcc_bytes += c.gcc_bytes;
    }

    /// The surplus as a fraction of the bytes gcc lists.
    pub fn surplus_ratio(&self) -> f64 {
        self.surplus_bytes as f64 / self.gcc_bytes.max(1) as f64
    }

    /// The `n` files whose surplus weighs most over the tree: (path, units, bytes each).
    pub fn heaviest_surplus(&self, n: usize) -> Vec<(String, usize, u64)> {
        let mut all: Vec<(String, usize, u64)> = self
            .surplus_by_file
            .iter()
            .map(|(f, &(units, bytes))| (f.clone(), units, bytes))
            .collect();
        all.sort_by_key(|(f, units, bytes)| (std::cmp::Reverse(*units as u64 * bytes), f.clone()));
        all.truncate(n);
        all
    }

    /// One line for the test's output.
    pub fn summary(&self, tree: &str) -> String {
        format!(
            "{tree}: {} units, missing on {} units; gcc lists {} files ({} bytes); \
             surplus {} files ({} bytes, {:.1}%)",
            self.units,
            self.missing.len(),
            self.gcc_files,
            self.gcc_bytes,
            self.surplus_files,
            self.surplus_bytes,
            100.0 * self.surplus_ratio()
        )
    }

    /// Missing 0 on every unit, and a surplus of at most `max_ratio` of gcc's bytes.
    pub fn assert_exact(&self, tree: &str, max_ratio: f64) {
        println!("{}", self.summary(tree));
        self.check(tree, max_ratio);
    }

    /// [`Tally::assert_exact`] without printing.
    pub fn check(&self, tree: &str, max_ratio: f64) {
        assert!(self.units > 0, "{tree}: no units compared");
        assert!(
            self.missing.is_empty(),
            "{tree}: missing files: {:#?}",
            &self.missing[..self.missing.len().min(10)]
        );
        assert!(self.surplus_ratio() <= max_ratio, "{}", self.summary(tree));
    }
}

/// One compile command of a tree, as its build ran it.
#[derive(Debug, Clone)]
pub struct Unit {
    /// What reports call it: the object it makes (or its last argument).
    pub name: String,
    pub cwd: PathBuf,
    pub argv: Vec<String>,
}

impl Unit {
    /// The unit of `argv` run in `cwd`, named by its `-o` value.
    pub fn new(cwd: &Path, argv: Vec<String>) -> Unit {
        let name = argv
            .iter()
            .position(|a| a == "-o")
            .and_then(|i| argv.get(i + 1))
            .or(argv.last())
            .cloned()
            .unwrap_or_default();
        Unit {
            name,
            cwd: cwd.to_path_buf(),
            argv,
        }
    }
}

/// A whole tree compared: the tally of the units the include server covers, the others
/// with the reason, and the time taken.
#[derive(Debug, Default)]
pub struct Report {
    pub tally: Tally,
    /// (unit, why) for every unit the include server does not cover: not compared.
    pub not_covered: Vec<(String, String)>,
    /// Summed over the units compared: our analyses, and gcc -M.
    pub analysis: Duration,
    pub gcc: Duration,
    /// The slowest analysis, and its unit.
    pub slowest: (Duration, String),
    /// The whole comparison, and on how many threads.
    pub wall: Duration,
    pub threads: usize,
}

impl Report {
    /// A few lines for the test's output: the tally, what was not covered, the times.
    pub fn summary(&self, tree: &str) -> String {
        let mut s = self.tally.summary(tree);
        for (unit, files) in self.tally.missing.iter().take(10) {
            let some = &files[..files.len().min(5)];
            s.push_str(&format!(
                "\n{tree}: {unit} misses {} files: {some:?}",
                files.len()
            ));
        }
        for (f, units, bytes) in self.tally.heaviest_surplus(5) {
            s.push_str(&format!(
                "\n{tree}:   surplus on {units} units: {f} ({bytes} bytes)"
            ));
        }
        s.push_str(&format!(
            "\n{tree}: {} units not covered by the include server (not compared)",
            self.not_covered.len()
        ));
        for (unit, why) in self.not_covered.iter().take(5) {
            s.push_str(&format!("\n{tree}:   {unit}: {why}"));
        }
        s.push_str(&format!(
            "\n{tree}: our analyses {:.2}s summed (slowest {:.3}s, {}), gcc -M {:.2}s summed; \
             {:.2}s wall on {} threads",
            self.analysis.as_secs_f64(),
            self.slowest.0.as_secs_f64(),
            self.slowest.1,
            self.gcc.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.threads
        ));
        s
    }
}

/// Removes a server's client roots however the comparison ends.
struct CleanUp<'a>(&'a IncludeServer);

impl Drop for CleanUp<'_> {
    fn drop(&mut self) {
        self.0.clean_up();
    }
}

/// Compares every unit through one include server (whose caches the units share, as the
/// requests of one build do), on `threads` threads. Panics when gcc -M fails on a unit
/// the server covers: every unit is a command the tree's build ran.
pub fn compare_units(units: &[Unit], threads: usize) -> Report {
    let server = IncludeServer::new().unwrap();
    let _clean_up = CleanUp(&server);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Comparison, String>>>> =
        Mutex::new(units.iter().map(|_| None).collect());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                // A panic on one thread (gcc failed) stops the others at their next unit,
                // rather than after the rest of the tree.
                struct Stop<'a>(&'a AtomicUsize);
                impl Drop for Stop<'_> {
                    fn drop(&mut self) {
                        if std::thread::panicking() {
                            self.0.store(usize::MAX / 2, Ordering::Relaxed);
                        }
                    }
                }
                let _stop = Stop(&next);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(u) = units.get(i) else { break };
                    let r = try_compare(&server, &u.cwd, &u.argv);
                    results.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    let mut report = Report {
        wall: start.elapsed(),
        threads: threads.max(1),
        ..Report::default()
    };
    let results = results.into_inner().unwrap();
    for (u, r) in units.iter().zip(results) {
        match r.expect("every unit compared") {
            Ok(c) => {
                report.analysis += c.analysis;
                report.gcc += c.gcc;
                if c.analysis > report.slowest.0 {
                    report.slowest = (c.analysis, u.name.clone());
                }
                report.tally.add(&u.name, c);
            }
            Err(why) => report.not_covered.push((u.name.clone(), why)),
        }
    }
    report
}

/// Whether `argv` compiles without linking (`-c`, or `-S` as the kernel's asm-offsets
/// files): the commands a distcc client sends.
pub fn is_compile(argv: &[String]) -> bool {
    argv.iter().any(|a| a == "-c" || a == "-S")
}

/// The compile commands `make -n -B ARGS` prints in `dir`: every unit a build from scratch
/// runs there (`-B`, so that a tree built before lists them all too), in order.
pub fn make_units(dir: &Path, args: &[&str]) -> Vec<Unit> {
    let out = Command::new("make")
        .args(["-n", "-B"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run make -n");
    assert!(
        out.status.success(),
        "make -n {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut units = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // make's own messages (recursive makes) are not commands.
        if line.starts_with("make:") || line.starts_with("make[") {
            continue;
        }
        let commands = shell_commands(line).unwrap_or_else(|e| panic!("{e}"));
        for argv in commands.into_iter().filter(|a| is_compile(a)) {
            units.push(Unit::new(dir, argv));
        }
    }
    units
}

fn take<T: Default>(x: &mut T) -> T {
    std::mem::take(x)
}

/// The simple commands of one POSIX shell line, each as its words after quote removal:
/// separated by unquoted `;`, `&`, `|` (so `&&` and `||` too) and newlines. Quoting is the
/// shell's: `'...'` literal; `"..."` where `\` escapes only `"`, `\`, `$`, backquote and
/// newline; `\` outside quotes escaping any character (before a newline: a continuation);
/// `#` at a word's start a comment. `Err` for what only a shell could expand or redirect
/// (`$`, backquotes, globs, `~`, `<`, `>`, parentheses): guessing there would compare a
/// command other than the one the build ran.
pub fn shell_commands(line: &str) -> Result<Vec<Vec<String>>, String> {
    let needs_shell = |c: char| Err(format!("'{c}' needs a shell to expand: {line}"));
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    // A word has begun (`''` is a word, empty).
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | ';' | '&' | '|' => {
                if in_word {
                    words.push(take(&mut word));
                    in_word = false;
                }
                if c != ' ' && c != '\t' && !words.is_empty() {
                    commands.push(take(&mut words));
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated ': {line}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated \": {line}")),
                        },
                        Some(c @ ('$' | '`')) => return needs_shell(c),
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated \": {line}")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err(format!("\\ at the end: {line}")),
            },
            '#' if !in_word => break,
            '~' if !in_word => return needs_shell(c),
            '$' | '`' | '*' | '?' | '[' | '<' | '>' | '(' | ')' => return needs_shell(c),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if !words.is_empty() {
        commands.push(words);
    }
    Ok(commands)
}

/// A JSON value: enough of JSON for `compile_commands.json` (numbers are kept as written).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(p.err("text after the value"));
        }
        Ok(v)
    }

    /// An object's field.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn err(&self, what: &str) -> String {
        format!("JSON: {what} at byte {}", self.i)
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Skips white space and `b` when it comes next.
    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        let found = self.s.get(self.i) == Some(&b);
        self.i += usize::from(found);
        found
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                if self.eat(b'}') {
                    return Ok(Json::Object(fields));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    if !self.eat(b':') {
                        return Err(self.err("':' expected"));
                    }
                    fields.push((key, self.value()?));
                    if self.eat(b'}') {
                        return Ok(Json::Object(fields));
                    }
                    if !self.eat(b',') {
                        return Err(self.err("',' or '}' expected"));
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    if self.eat(b']') {
                        return Ok(Json::Array(items));
                    }
                    if !self.eat(b',') {
                        return Err(self.err("',' or ']' expected"));
                    }
                }
            }
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(_) => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
                {
                    self.i += 1;
                }
                let word = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                match word {
                    "null" => Ok(Json::Null),
                    "true" => Ok(Json::Bool(true)),
                    "false" => Ok(Json::Bool(false)),
                    n if n.parse::<f64>().is_ok() => Ok(Json::Number(n.to_string())),
                    _ => Err(self.err("value expected")),
                }
            }
            None => Err(self.err("value expected")),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.s.get(self.i..self.i + 4).ok_or(self.err("\\u"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.err("\\u"))?;
        let v = u32::from_str_radix(text, 16).map_err(|_| self.err("\\u"))?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err(self.err("string expected"));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let b = *self.s.get(self.i).ok_or(self.err("unterminated string"))?;
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or(self.err("unterminated string"))?;
                    self.i += 1;
                    let c = match e {
                        b'"' | b'\\' | b'/' => char::from(e),
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut c = self.hex4()?;
                            if (0xD800..0xDC00).contains(&c) && self.s[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let low = self.hex4()?;
                                c = 0x10000 + ((c - 0xD800) << 10) + (low.wrapping_sub(0xDC00));
                            }
                            char::from_u32(c).ok_or(self.err("bad \\u escape"))?
                        }
                        _ => return Err(self.err("bad escape")),
                    };
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("string not UTF-8"))
    }
}

/// The units of a `compile_commands.json` (CMake's `-DCMAKE_EXPORT_COMPILE_COMMANDS=ON`):
/// each entry's `directory` with its `arguments`, or its `command` split as the shell
/// that runs it would.
pub fn compile_commands(path: &Path) -> Vec<Unit> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json = Json::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let Json::Array(entries) = json else {
        panic!("{}: not an array", path.display())
    };
    entries
        .iter()
        .map(|e| {
            let dir = e
                .get("directory")
                .and_then(Json::as_str)
                .expect("directory");
            let argv: Vec<String> = match (e.get("arguments"), e.get("command")) {
                (Some(Json::Array(args)), _) => args
                    .iter()
                    .map(|a| a.as_str().expect("arguments are strings").to_string())
                    .collect(),
                (_, Some(Json::String(command))) => {
                    let mut commands = shell_commands(command).unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(commands.len(), 1, "one command: {command}");
                    commands.remove(0)
                }
                _ => panic!("{e:?}: neither arguments nor command"),
            };
            Unit::new(Path::new(dir), argv)
        })
        .collect()
}
