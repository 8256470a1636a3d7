//! What the compiler says about itself: its built-in include directories ("system dirs")
//! and its predefined macros, learned by running `CC [flags] -x LANG -v -dM -E /dev/null`
//! with only `PATH` in its environment (so that `CPATH` and friends do not leak in). The
//! directories are the lines between `#include <...> search starts here:` and `End of
//! search list.` on its standard error, as distcc 3.4's `compiler_defaults.py` reads them,
//! each made a realpath; the macros are the `#define` lines on its standard output. The
//! answers are kept for the server's life, per (compiler, flags that may change them,
//! language), and on disk between builds when the server has a [`Store`], until one of
//! the directories it said it would search but found missing exists (a sysroot filled
//! during the build: the compilers run after it search it); every directory ever learned
//! is also remembered, in order, for the mirror's system links.

use super::token::{FxMap, FxSet};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use super::facts::{Saved, Store};
use super::macros::Macro;
use super::token::tokenize;

/// One compiler's answers for one set of flags and language.
#[derive(Debug)]
pub struct Compiler {
    /// The built-in search directories, realpaths.
    pub dirs: Vec<String>,
    /// Those it would search but found missing when asked.
    pub missing: Vec<String>,
    /// The predefined macros.
    pub predefined: Vec<Arc<Macro>>,
    /// Whether it is clang (it predefines `__clang__`), whose preprocessor differs from
    /// GCC's in a few rules the walk follows.
    pub clang: bool,
    /// Whether it predefines `_MSC_VER` or `_MSC_EXTENSIONS` (a Windows target, or
    /// `-fms-extensions`): clang then follows Microsoft's include rules.
    pub msvc: bool,
    /// How to run it again, for [`Compiler::feature`].
    program: String,
    flags: Vec<String>,
    language: String,
    cwd: String,
    /// `__has_builtin(x)` and the like, asked so far: their values.
    features: Mutex<FxMap<String, Option<i64>>>,
    /// The feature tests asked of any compiler of the build: each is asked of this one
    /// too at its first run.
    tests: Arc<Mutex<Vec<String>>>,
    /// Tests of other compilers' that made this one's run fail: not asked again.
    declined: Mutex<FxSet<String>>,
    asking: Mutex<()>,
    /// The `#define` lines, and where the facts are kept between builds.
    defines: Vec<String>,
    kept: Option<(Arc<Store>, String)>,
}

impl Compiler {
    /// The value of a feature test such as `__has_attribute(packed)`, which only the
    /// compiler knows: asked by preprocessing it, together with the tests `also` names
    /// that were not asked yet (one compiler run for a file's tests) and those asked of
    /// other compilers of the build (a kernel's units come with several sets of flags,
    /// and each set would otherwise run its compiler again for each file with tests), and
    /// remembered. `None` when the compiler does not give a number.
    pub fn feature(&self, test: &str, also: impl FnOnce() -> Vec<String>) -> Option<i64> {
        if let Some(v) = lock(&self.features).get(test) {
            return *v;
        }
        // One run at a time: requests arriving together wait for the answers of the
        // run under way instead of asking again.
        let _asking = lock(&self.asking);
        if let Some(v) = lock(&self.features).get(test) {
            return *v;
        }
        let mut batch = vec![test.to_string()];
        let own = {
            let known = lock(&self.features);
            let add = |batch: &mut Vec<String>, t: &String| {
                if !known.contains_key(t) && !batch.contains(t) {
                    batch.push(t.clone());
                }
            };
            for t in &also() {
                add(&mut batch, t);
            }
            let own = batch.len();
            let declined = lock(&self.declined);
            for t in lock(&self.tests).iter() {
                if !declined.contains(t) {
                    add(&mut batch, t);
                }
            }
            own
        };
        let mut values = self.ask(&batch);
        if batch.len() > own && values.iter().all(Option::is_none) {
            // A test of another file that this compiler cannot take would cost this
            // file's tests their answers: asked again without the others', which are
            // not asked of it again (which of them failed, the run does not say).
            lock(&self.declined).extend(batch.drain(own..));
            values = self.ask(&batch);
        }
        {
            let mut tests = lock(&self.tests);
            for t in &batch[..own] {
                if !tests.contains(t) {
                    tests.push(t.clone());
                }
            }
        }
        let mut known = lock(&self.features);
        for (t, v) in batch.into_iter().zip(values) {
            known.insert(t, v);
        }
        if let Some((store, key)) = &self.kept {
            let mut features: Vec<_> = known.iter().map(|(t, v)| (t.clone(), *v)).collect();
            features.sort();
            store.save(
                key,
                &Saved {
                    dirs: self.dirs.clone(),
                    defines: self.defines.clone(),
                    features,
                    missing: self.missing.clone(),
                },
            );
        }
        known[test]
    }

    /// The values of `tests`, in order, from one run of the compiler.
    fn ask(&self, tests: &[String]) -> Vec<Option<i64>> {
        // Each on one line, with nothing that could end it or start a directive.
        let safe = |t: &String| !t.contains(['\n', '\r', '#', '\\', '"', '\'']);
        let mut input = String::new();
        for (i, t) in tests.iter().enumerate() {
            if safe(t) {
                input.push_str(&format!("distcc_feature_{i} {t}\n"));
            }
        }
        let mut values = vec![None; tests.len()];
        let Some(text) = self.preprocess(&input) else {
            return values;
        };
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("distcc_feature_") else {
                continue;
            };
            let Some((i, v)) = rest.split_once(' ') else {
                continue;
            };
            let v = v.trim().trim_end_matches(['L', 'l', 'U', 'u']);
            if let (Ok(i), Ok(v)) = (i.parse::<usize>(), v.parse::<i64>()) {
                if i < values.len() {
                    values[i] = Some(v);
                }
            }
        }
        values
    }

    /// The output of the compiler's preprocessor on `input`, with this probe's flags.
    fn preprocess(&self, input: &str) -> Option<String> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.flags)
            .args(["-x", &self.language, "-E", "-P", "-"])
            .env_clear()
            .current_dir(&self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        let mut child = cmd.spawn().ok()?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take()?;
            stdin.write_all(input.as_bytes()).ok()?;
        }
        let out = child.wait_with_output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The probes made so far.
#[derive(Default)]
pub struct SystemDirs {
    inner: Mutex<Inner>,
    probing: Mutex<()>,
    /// The feature tests asked so far, of any compiler ([`Compiler::feature`]).
    tests: Arc<Mutex<Vec<String>>>,
}

#[derive(Default)]
struct Inner {
    store: Option<Arc<Store>>,
    by_key: FxMap<(String, Vec<String>, String, String), Arc<Compiler>>,
    all: Vec<String>,
}

impl SystemDirs {
    /// What `compiler` (as the client named it; a relative name with a `/` is taken from
    /// `cwd`) says for `language` with `flags`; an error text when the compiler cannot be
    /// run or its output not read (the request is then not covered). `is_dir` says whether
    /// a directory the compiler found missing exists now (asked by every request; the
    /// change notices answer it without a `stat`).
    pub fn get(
        &self,
        compiler: &str,
        flags: &[String],
        language: &str,
        cwd: &str,
        is_dir: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Arc<Compiler>, String> {
        // A relative compiler or path in the flags means another compiler elsewhere.
        let place = if depends_on_cwd(compiler, flags) {
            cwd.to_string()
        } else {
            String::new()
        };
        let key = (
            compiler.to_string(),
            flags.to_vec(),
            language.to_string(),
            place.clone(),
        );
        let kept = lock(&self.inner).by_key.get(&key).cloned();
        if let Some(c) = kept.filter(|c| !c.missing.iter().any(|d| is_dir(d))) {
            return Ok(c);
        }
        // One probe at a time: requests arriving together wait for the one under way.
        let _probing = lock(&self.probing);
        let store = {
            let inner = lock(&self.inner);
            let kept = inner.by_key.get(&key).cloned();
            let store = inner.store.clone();
            drop(inner);
            if let Some(c) = kept.filter(|c| !appeared(&c.missing)) {
                return Ok(c);
            }
            store
        };
        // The compiler that runs: past masquerade links (a directory of links to distcc
        // or ccache on the PATH), which would otherwise run instead and be asked.
        let program = if compiler.contains('/') {
            super::closure::join(cwd, compiler)
        } else {
            let path = std::env::var_os("PATH").unwrap_or_default();
            crate::toolchain::lookup::find_compiler(compiler, &path)
                .map(|p| super::closure::join(cwd, &p.to_string_lossy()))
                .unwrap_or_else(|_| compiler.to_string())
        };
        let kept =
            store.and_then(|s| Store::key(&program, flags, language, &place).map(|k| (s, k)));
        let stored = kept.as_ref().and_then(|(s, k)| s.load(k));
        let saved = match stored.filter(|s| !appeared(&s.missing)) {
            Some(saved) => saved,
            None => {
                let saved = probe(&program, compiler, flags, language, cwd)?;
                if let Some((s, k)) = &kept {
                    s.save(k, &saved);
                }
                saved
            }
        };
        let defines = |name: &str| saved.defines.iter().any(|d| d.starts_with(name));
        let clang = defines("__clang__ ");
        let msvc = defines("_MSC_VER ") || defines("_MSC_EXTENSIONS ");
        let c = Arc::new(Compiler {
            clang,
            msvc,
            predefined: saved
                .defines
                .iter()
                .filter_map(|d| Macro::parse(&tokenize(d.as_bytes(), false)))
                .map(Arc::new)
                .collect(),
            dirs: saved.dirs,
            missing: saved.missing,
            program,
            flags: flags.to_vec(),
            language: language.to_string(),
            cwd: cwd.to_string(),
            features: Mutex::new(saved.features.into_iter().collect()),
            tests: self.tests.clone(),
            declined: Mutex::default(),
            asking: Mutex::new(()),
            defines: saved.defines,
            kept,
        });
        let mut inner = lock(&self.inner);
        for d in &c.dirs {
            if !inner.all.contains(d) {
                inner.all.push(d.clone());
            }
        }
        inner.by_key.insert(key, c.clone());
        Ok(c)
    }

    /// Keeps what compilers say in `store`, and reads it back from there.
    pub fn with_store(store: Option<Store>) -> SystemDirs {
        let dirs = SystemDirs::default();
        lock(&dirs.inner).store = store.map(Arc::new);
        dirs
    }

    /// Every system directory learned so far, in the order learned.
    pub fn all(&self) -> Vec<String> {
        lock(&self.inner).all.clone()
    }

    /// Whether `realpath` is a system directory or under one (of any compiler seen).
    pub fn contains(&self, realpath: &str) -> bool {
        lock(&self.inner).all.iter().any(|d| under(realpath, d))
    }
}

/// Whether what `compiler` with `flags` says depends on the working directory: a relative
/// compiler path, or a relative path among the flags (`-B dir`, `--sysroot=dir`, ...; a
/// `--sysroot=` is a path even without a `/`).
fn depends_on_cwd(compiler: &str, flags: &[String]) -> bool {
    let relative = |p: &str| !p.is_empty() && !p.starts_with('/');
    (compiler.contains('/') && relative(compiler))
        || flags.iter().any(|f| {
            !f.starts_with('-')
                || f.split_once('=')
                    .is_some_and(|(_, v)| relative(v) && v.contains('/'))
                || f.strip_prefix("-B").is_some_and(relative)
                || f.strip_prefix("--sysroot=").is_some_and(relative)
        })
}

/// Whether one of the directories a compiler found `missing` exists now.
fn appeared(missing: &[String]) -> bool {
    missing.iter().any(|d| is_dir(d))
}

/// Whether `path` is a directory now (by `stat`).
fn is_dir(path: &str) -> bool {
    std::path::Path::new(path).is_dir()
}

/// Whether `path` is `dir` or inside it.
pub fn under(path: &str, dir: &str) -> bool {
    dir == "/"
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `program` (the compiler the client named `compiler`) to learn its directories and
/// macros.
fn probe(
    program: &str,
    compiler: &str,
    flags: &[String],
    language: &str,
    cwd: &str,
) -> Result<Saved, String> {
    let mut cmd = compiler_command(program, cwd);
    cmd.args(flags)
        .args(["-x", language, "-v", "-dM", "-E", "/dev/null"]);
    let cant = |why: String| {
        format!(
            "Couldn't determine default system include directories for compiler '{compiler}', \
             language '{language}': {why}"
        )
    };
    let out = cmd
        .output()
        .map_err(|e| cant(format!("cannot run it: {e}")))?;
    if !out.status.success() {
        return Err(cant(format!("it exited with {}", out.status)));
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let dirs: Vec<String> = parse_search_list(&text)
        .ok_or_else(|| cant("no search list in its output".into()))?
        .iter()
        .map(|d| {
            std::fs::canonicalize(d)
                .ok()
                .and_then(|p| p.to_str().map(str::to_string))
                .unwrap_or_else(|| d.to_string())
        })
        .collect();
    let defines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("#define "))
        .map(str::to_string)
        .collect();
    let mut missing: Vec<String> = (text.lines())
        .filter_map(|l| {
            l.strip_prefix("ignoring nonexistent directory \"")?
                .strip_suffix('"')
        })
        .map(|d| super::closure::join(cwd, d))
        .collect();
    // clang adds a sysroot's multiarch directory (`usr/include/<triple>`) only when it
    // exists, and does not report it missing (GCC does): once made, the compilers run
    // after search it.
    if defines.iter().any(|d| d.starts_with("__clang__ ")) {
        let out = compiler_command(program, cwd)
            .args(flags)
            .arg("-print-multiarch")
            .output();
        let triple = (out.ok().filter(|o| o.status.success()))
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|t| !t.is_empty() && !t.contains(['/', ' ']));
        if let Some(t) = triple {
            let multiarch: Vec<String> = (dirs.iter().chain(&missing))
                .filter(|d| d.ends_with("/usr/include"))
                .map(|d| format!("{d}/{t}"))
                .filter(|m| !dirs.contains(m) && !is_dir(m))
                .collect();
            missing.extend(multiarch);
        }
    }
    Ok(Saved {
        dirs,
        defines,
        features: Vec::new(),
        missing,
    })
}

/// `program` to be run in `cwd` with only `PATH` in its environment (so that `CPATH` and
/// friends do not leak in), its output read.
fn compiler_command(program: &str, cwd: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// The directories of GCC's (or clang's) `-v` search list. clang leaves out the angle
/// list's heading when the list is empty (`-nostdinc`): no directories then.
pub fn parse_search_list(text: &str) -> Option<Vec<&str>> {
    let Some(start) = text.find("#include <...> search starts here:\n") else {
        let quote = text.find("#include \"...\" search starts here:\n")?;
        return text[quote..].contains("End of search list").then(Vec::new);
    };
    let body = &text[start..];
    let body = &body[body.find('\n')? + 1..];
    let end = body.find("End of search list")?;
    Some(
        body[..end]
            .lines()
            .filter(|l| !l.ends_with(" (framework directory)"))
            .flat_map(str::split_whitespace)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gcc_output() {
        let text =
            "blah\n#include \"...\" search starts here:\n#include <...> search starts here:\n \
                    /usr/lib/gcc/x86_64-linux-gnu/12/include\n /usr/local/include\n /usr/include\n\
                    End of search list.\n";
        assert_eq!(
            parse_search_list(text).unwrap(),
            [
                "/usr/lib/gcc/x86_64-linux-gnu/12/include",
                "/usr/local/include",
                "/usr/include"
            ]
        );
        let clang_nostdinc = "#include \"...\" search starts here:\nEnd of search list.\n";
        assert_eq!(
            parse_search_list(clang_nostdinc).unwrap(),
            Vec::<&str>::new()
        );
        assert_eq!(parse_search_list("clang: error: no such file\n"), None);
        assert!(under("/usr/include/stdio.h", "/usr/include"));
        assert!(!under("/usr/include2/x.h", "/usr/include"));
    }

    /// A compiler's first feature run answers the tests asked of the build's other
    /// compilers too, each with its own flags; and a test it cannot take costs the file's
    /// own tests nothing.
    #[test]
    fn feature_tests_are_asked_of_every_compiler_at_once() {
        let dirs = SystemDirs::default();
        let cwd = "/";
        let c89 = dirs
            .get("gcc", &["-std=c89".into()], "c", cwd, &mut is_dir)
            .unwrap();
        let c17 = dirs
            .get("gcc", &["-std=gnu17".into()], "c", cwd, &mut is_dir)
            .unwrap();
        let builtin = "__has_builtin(__builtin_expect)";
        let attribute = "__has_attribute(packed)";
        assert_eq!(c89.feature(builtin, || vec![attribute.into()]), Some(1));
        let unknown = "__has_builtin(__builtin_distcc_none)";
        assert_eq!(c17.feature(unknown, Vec::new), Some(0));
        let known = lock(&c17.features);
        assert_eq!(known.get(builtin), Some(&Some(1)));
        assert_eq!(
            known.get(attribute).map(|v| v.is_some_and(|n| n > 0)),
            Some(true)
        );
        drop(known);
        // Asked of the first compiler at its next run, with a test gcc rejects.
        lock(&dirs.tests).push("__has_builtin(".into());
        let third = "__has_attribute(aligned)";
        assert!(c89.feature(third, Vec::new).is_some_and(|n| n > 0));
        assert_eq!(lock(&c89.features).get(unknown), None);
        // Those others are not asked of it again: the next run is one, with its own test.
        assert!(lock(&c89.declined).contains("__has_builtin("));
        let fourth = "__has_attribute(unused)";
        assert!(c89.feature(fourth, Vec::new).is_some_and(|n| n > 0));
    }
}
