//! The daemon's side of the `-g` producer fix (see `debuginfo`): which fix a job gets, and
//! the program gcc runs as its `-wrapper`.
//!
//! The fix depends on gcc's internals (its string hash, the order of `.debug_str`, where it
//! records switches), so it is not trusted blindly: once per compiler and command line, a
//! probe source is compiled the way a local build does it and the way a `-g` job goes (the
//! client's `-E -fdirectives-only`, then our compile with the fix), and the fix is turned
//! off, with a warning naming the compiler, where the two objects differ. The verdict is
//! kept in memory and in a small cache file per key, under `$TMPDIR/distccd-probe-<uid>/`,
//! keyed by the compiler's resolved path, size and modification time, the daemon's own
//! executable, and the command line; so `--inetd` and SSH daemons, a process per job, probe
//! once, not per job.
//!
//! Running compilers belongs to the daemon (it passes a function that does), editing the
//! producer string to `debuginfo`, and the command line's meaning to `cmdline`.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::debuginfo::{ProducerFix, DIRECTIVES_ONLY};
use crate::cmdline::{Compile, Lang};

/// Runs a compiler command with an extra environment variable, in the daemon's temporary
/// directory; returns its wait status.
pub type RunCompiler<'a> =
    dyn Fn(&[String], Option<(&'static str, String)>) -> std::io::Result<u32> + 'a;

/// What [`fix_for`] needs to know of a job.
pub struct Job<'a> {
    pub compile: &'a Compile,
    /// The compiler as the job runs it: a path, or a name looked up in `search_path`.
    pub compiler: &'a str,
    /// What gcc runs as its `-wrapper` ([`wrapper`]).
    pub hook: &'a str,
    /// The daemon's temporary directory, where the probe and the cache directory go.
    pub tmp_root: &'a Path,
    /// Where compilers named without a `/` are found (`DISTCCD_PATH`, else `PATH`).
    pub search_path: &'a OsStr,
    pub run: &'a RunCompiler<'a>,
}

/// The first line of a cache file: a new format gets a new number.
const CACHE_FORMAT: &str = "distccd producer fix 1";

/// The probe: a macro, a string, a struct and a function, in C that C++ and Objective-C
/// accept too, declared first for `-Wmissing-prototypes -Werror`.
const PROBE_SOURCE: &str = "#define DISTCCD_TWICE(x) ((x) + (x))\n\
    struct distccd_probe { int count; const char *name; };\n\
    static const char distccd_text[] = \"distccd probe\";\n\
    int distccd_probe_use(struct distccd_probe *p);\n\
    int distccd_probe_use(struct distccd_probe *p) {\n\
    \x20 return DISTCCD_TWICE(p->count) + (int)sizeof distccd_text + (p->name != 0);\n}\n";

/// The fix for `job`'s compiler and command line: remembered, read from the cache file,
/// or probed (and then stored).
pub fn fix_for(job: &Job) -> ProducerFix {
    let key = Key::new(job);
    if let Some(fix) = remembered(&key.text) {
        return fix;
    }
    let file = key
        .cacheable
        .then(|| cache_dir(job.tmp_root))
        .flatten()
        .map(|dir| dir.join(key.file_name()));
    if let Some(fix) = file.as_deref().and_then(|f| read_cache(f, &key.text)) {
        log::debug!(
            "producer fix for directives-only compiles with {}: {fix:?}, read from {}",
            job.compiler,
            file.as_deref().unwrap_or(Path::new("")).display()
        );
        remember(&key.text, &fix);
        return fix;
    }
    let (fix, lasting) = probe(job, &key.args);
    log::debug!(
        "producer fix for directives-only compiles with {}: {fix:?}, probed",
        job.compiler
    );
    if let (Some(file), true) = (&file, lasting) {
        if let Err(e) = write_cache(file, &key.text, &fix) {
            log::debug!("cannot write {}: {e}", file.display());
        }
    }
    remember(&key.text, &fix);
    fix
}

/// What a fix depends on, as text: the cache file's contents up to the verdict.
struct Key {
    /// The command line with fixed file names, as the probe runs it.
    args: Vec<String>,
    text: String,
    /// Whether the compiler could be identified, so that a file may keep the verdict.
    cacheable: bool,
}

impl Key {
    fn new(job: &Job) -> Key {
        let ext = job.compile.lang.preprocessed_ext();
        let mut args = job
            .compile
            .with_files_to_assembler(&format!("probe.{ext}"), "probe.s");
        args[0] = job.compiler.to_string();
        let compiler = resolve(job.compiler, job.search_path, job.tmp_root)
            .and_then(|p| identity(&p).map(|id| format!("{} {id}", p.display())));
        let mut text = format!(
            "{CACHE_FORMAT}\ndistccd {}\ncompiler {}\n",
            own_identity().unwrap_or("unknown"),
            compiler.as_deref().unwrap_or("unknown")
        );
        for a in &args {
            // Debug quoting: an argument may hold a newline.
            text.push_str(&format!("arg {a:?}\n"));
        }
        Key {
            args,
            text,
            cacheable: compiler.is_some() && own_identity().is_some(),
        }
    }

    /// FNV-1a of the key: stable across builds, unlike std's hasher. The file repeats the
    /// whole key, so a collision is only a miss.
    fn file_name(&self) -> String {
        let hash = self.text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x}.fix")
    }
}

/// Size and modification time of a file, which change when a compiler is upgraded.
fn identity(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    Some(format!("{} {}.{:09}", m.size(), m.mtime(), m.mtime_nsec()))
}

/// The daemon's own executable's identity: another distccd may edit otherwise.
fn own_identity() -> Option<&'static str> {
    static OWN: OnceLock<Option<String>> = OnceLock::new();
    OWN.get_or_init(|| identity(Path::new("/proc/self/exe")))
        .as_deref()
}

/// The file `compiler` names, as the job's `Command` finds it, with links resolved.
fn resolve(compiler: &str, search_path: &OsStr, cwd: &Path) -> Option<PathBuf> {
    if compiler.contains('/') {
        return cwd.join(compiler).canonicalize().ok();
    }
    let found = super::lookup::find_compiler(compiler, search_path).ok()?;
    found.canonicalize().ok()
}

static FIXES: Mutex<Option<HashMap<String, ProducerFix>>> = Mutex::new(None);

fn remembered(key: &str) -> Option<ProducerFix> {
    let fixes = FIXES.lock().unwrap_or_else(|e| e.into_inner());
    fixes.as_ref()?.get(key).cloned()
}

fn remember(key: &str, fix: &ProducerFix) {
    let mut fixes = FIXES.lock().unwrap_or_else(|e| e.into_inner());
    let map = fixes.get_or_insert_with(HashMap::new);
    if map.len() >= 1024 {
        map.clear();
    }
    map.insert(key.to_string(), fix.clone());
}

/// Logs `message` at warning level, once in this process.
fn warn_once(message: String) {
    static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if said
        .get_or_insert_with(HashSet::new)
        .insert(message.clone())
    {
        log::warn!("{message}");
    }
}

/// `$TMPDIR/distccd-probe-<uid>`, created 0700; `None` (and a warning) when it cannot be
/// made, or is not a directory of ours that only we can write to.
pub fn cache_dir(tmp_root: &Path) -> Option<PathBuf> {
    let uid = nix::unistd::geteuid().as_raw();
    let dir = tmp_root.join(format!("distccd-probe-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            warn_once(format!(
                "cannot create {}: {e}; the -g producer fix and the compilers' identities are probed by each process",
                dir.display()
            ));
            return None;
        }
    }
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        warn_once(format!(
            "not trusting {}: it is not a directory of uid {uid} that only it can use; \
             the -g producer fix and the compilers' identities are probed by each process",
            dir.display()
        ));
        return None;
    }
    Some(dir)
}

fn encode(fix: &ProducerFix) -> String {
    match fix {
        ProducerFix::NotNeeded => "not-needed".into(),
        ProducerFix::Marker(v) => format!("marker {v}"),
        ProducerFix::Impossible => "impossible".into(),
        ProducerFix::Off => "off".into(),
    }
}

fn decode(s: &str) -> Option<ProducerFix> {
    Some(match s {
        "not-needed" => ProducerFix::NotNeeded,
        "impossible" => ProducerFix::Impossible,
        "off" => ProducerFix::Off,
        _ => {
            let v = s.strip_prefix("marker ")?;
            let ok = !v.is_empty()
                && v.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.');
            ProducerFix::Marker(ok.then(|| v.to_string())?)
        }
    })
}

/// The verdict a cache file keeps for `key`; `None` if it is missing, unreadable, corrupt
/// or for another key: then the fix is probed again.
fn read_cache(file: &Path, key: &str) -> Option<ProducerFix> {
    let text = std::fs::read_to_string(file).ok()?;
    let verdict = text.strip_prefix(key)?.strip_prefix("fix ")?;
    decode(verdict.strip_suffix('\n')?)
}

/// Writes the cache file whole or not at all: a temporary file renamed over it.
fn write_cache(file: &Path, key: &str, fix: &ProducerFix) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".fix").tempfile_in(dir)?;
    tmp.write_all(format!("{key}fix {}\n", encode(fix)).as_bytes())?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

/// The extension of a source in `lang`.
fn source_ext(lang: Lang) -> &'static str {
    match lang {
        Lang::C => "c",
        Lang::Cxx => "cc",
        Lang::ObjC => "m",
        Lang::ObjCxx => "mm",
    }
}

/// A job's command line made to read a source: every `-x` names the source language again
/// (the daemon's names the preprocessed one).
fn reading_source(mut argv: Vec<String>) -> Vec<String> {
    const LANGS: [(&str, &str); 4] = [
        ("cpp-output", "c"),
        ("c++-cpp-output", "c++"),
        ("objective-c-cpp-output", "objective-c"),
        ("objective-c++-cpp-output", "objective-c++"),
    ];
    let source = |x: &str| LANGS.iter().find(|(p, _)| *p == x).map(|(_, s)| *s);
    for i in 0..argv.len() {
        if argv[i] == "-x" {
            if let Some(s) = argv.get(i + 1).and_then(|x| source(x)) {
                argv[i + 1] = s.to_string();
            }
        } else if let Some(s) = argv[i].strip_prefix("-x").and_then(source) {
            argv[i] = format!("-x{s}");
        }
    }
    argv
}

/// Learns the fix for `key` on the probe source and, where it edits the producer, checks
/// that it gives the object of a direct compile: off where it does not. Also says whether
/// the verdict may be kept in a file (not when the probe's own files could not be made).
fn probe(job: &Job, key: &[String]) -> (ProducerFix, bool) {
    let dir = match tempfile::Builder::new()
        .prefix("distccd_probe")
        .tempdir_in(job.tmp_root)
    {
        Ok(d) => d,
        Err(e) => {
            log::warn!("cannot make the -g producer probe's directory: {e}");
            return (ProducerFix::Impossible, false);
        }
    };
    let lang = job.compile.lang;
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let source = path(&format!("probe.{}", source_ext(lang)));
    let text = path(&format!("probe.{}", lang.preprocessed_ext()));
    let (asm, fixed, direct) = (path("probe.s"), path("fixed.o"), path("direct.o"));
    if let Err(e) = std::fs::write(&source, PROBE_SOURCE) {
        log::warn!("cannot write the -g producer probe: {e}");
        return (ProducerFix::Impossible, false);
    }
    let compiler = |mut argv: Vec<String>| {
        argv[0] = job.compiler.to_string();
        argv
    };
    let runs = |argv: &[String], env| (job.run)(argv, env).is_ok_and(|status| status == 0);

    // The client's step: directives-only text.
    let cpp: Vec<String> = reading_source(compiler(job.compile.with_files(&source, &text)))
        .into_iter()
        .map(|a| {
            if a == "-c" || a == "-S" {
                "-E".into()
            } else {
                a
            }
        })
        .collect();
    if !runs(&cpp, None) {
        return (ProducerFix::Impossible, true);
    }
    let learn = compiler(job.compile.with_files_to_assembler(&text, &asm));
    let asm_text = runs(&learn, None)
        .then(|| std::fs::read_to_string(&asm).ok())
        .flatten();
    let fix = ProducerFix::learn(key, asm_text.as_deref());
    if !matches!(fix, ProducerFix::Marker(_)) {
        return (fix, true);
    }
    // Our step with the fix, against a local build's.
    let mut with_fix = compiler(job.compile.with_files(&text, &fixed));
    let Some(env) = fix.apply(&mut with_fix, job.hook) else {
        return (ProducerFix::Impossible, true);
    };
    let mut local = reading_source(compiler(job.compile.with_files(&source, &direct)));
    local.retain(|a| a != DIRECTIVES_ONLY);
    let verdict = if !(runs(&with_fix, Some(env)) && runs(&local, None)) {
        "cannot be checked on a probe with"
    } else if matches!(
        (std::fs::read(&fixed), std::fs::read(&direct)),
        (Ok(a), Ok(b)) if a == b
    ) {
        return (fix, true);
    } else {
        "does not give the objects of a direct compile on a probe with"
    };
    warn_once(format!(
        "the -g producer fix {verdict} {}: it is off for this compiler, whose -g objects \
         will name -fdirectives-only in DW_AT_producer",
        job.compiler
    ));
    (ProducerFix::Off, true)
}

/// The program gcc runs as its `-wrapper`: this daemon's own executable, named through a
/// descriptor of it, `/proc/self/fd/N`, inherited by every compiler the daemon runs.
///
/// Why not the executable's path: the file there may be replaced (an upgrade) or removed
/// while the daemon runs, and gcc would then fail to run its wrapper, failing the job; a
/// check of the path before each job would still leave a window, and would turn the fix off
/// after every upgrade until a restart. An open descriptor names the very file this process
/// runs, whatever becomes of its path, and `/proc/self/fd/N` is resolved in gcc's own
/// process, so it needs no access to ours (`/proc/<daemon>/exe` would, and a daemon that
/// gave up root may not grant it). `None`, so no fix, when `/proc` is missing or the
/// descriptor no longer is our executable.
pub fn wrapper() -> Option<&'static str> {
    struct Exe {
        fd: OwnedFd,
        path: String,
        id: (u64, u64),
    }
    static EXE: OnceLock<Option<Exe>> = OnceLock::new();
    let exe = EXE
        .get_or_init(|| {
            let file = std::fs::File::open("/proc/self/exe").ok()?;
            let meta = file.metadata().ok()?;
            let fd = OwnedFd::from(file);
            // Inherited: std opens files close-on-exec.
            // SAFETY: F_SETFD on a descriptor we own changes only its flags.
            if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
                return None;
            }
            Some(Exe {
                path: format!("/proc/self/fd/{}", fd.as_raw_fd()),
                fd,
                id: (meta.dev(), meta.ino()),
            })
        })
        .as_ref();
    let Some(exe) = exe else {
        warn_once("cannot open /proc/self/exe: -g objects will name -fdirectives-only".into());
        return None;
    };
    let now = nix::sys::stat::fstat(&exe.fd).ok()?;
    if (now.st_dev, now.st_ino) != exe.id {
        warn_once(format!(
            "{} is no longer this executable: -g objects will name -fdirectives-only",
            exe.path
        ));
        return None;
    }
    Some(&exe.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_round_trip_and_junk_is_refused() {
        for fix in [
            ProducerFix::NotNeeded,
            ProducerFix::Impossible,
            ProducerFix::Off,
            ProducerFix::Marker("AbC_.9".into()),
        ] {
            assert_eq!(decode(&encode(&fix)), Some(fix));
        }
        for junk in ["", "marker ", "marker a,b", "marker a b", "on", "off\n"] {
            assert_eq!(decode(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn cache_files_are_whole_and_for_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.fix");
        let key = format!("{CACHE_FORMAT}\narg \"gcc\"\n");
        assert_eq!(read_cache(&file, &key), None);
        write_cache(&file, &key, &ProducerFix::Marker("ABCDEF".into())).unwrap();
        assert_eq!(
            read_cache(&file, &key),
            Some(ProducerFix::Marker("ABCDEF".into()))
        );
        assert_eq!(read_cache(&file, "another key\n"), None);
        // Cut short, or garbage: probed again.
        let whole = std::fs::read(&file).unwrap();
        std::fs::write(&file, &whole[..whole.len() - 1]).unwrap();
        assert_eq!(read_cache(&file, &key), None);
        std::fs::write(&file, b"\xff\xfe").unwrap();
        assert_eq!(read_cache(&file, &key), None);
        // Only the file remains: the temporary one was renamed.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_cache_directory_must_be_ours_alone() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = cache_dir(root.path()).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(cache_dir(root.path()), None);
        std::fs::remove_dir(&dir).unwrap();
        // A link planted in its place is not followed.
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), &dir).unwrap();
        assert_eq!(cache_dir(root.path()), None);
    }

    #[test]
    fn source_languages_come_back() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            reading_source(v("gcc -x c++-cpp-output -c a.ii -xcpp-output")),
            v("gcc -x c++ -c a.ii -xc")
        );
    }

    #[test]
    fn the_wrapper_is_this_executable() {
        let path = wrapper().unwrap();
        let a = std::fs::metadata(path).unwrap();
        let b = std::fs::metadata("/proc/self/exe").unwrap();
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
        assert_eq!(wrapper(), Some(path));
    }
}
