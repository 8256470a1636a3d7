//! GCC as the oracle for the include analysis: for one compiler command, the files
//! `gcc <same flags> -M` lists outside the compiler's system directories, against the
//! files our include server would ship for the same command. A file gcc reads that we do
//! not ship is "missing" (a remote failure); a file we ship that gcc does not read is
//! "surplus" (bytes wasted). A [`Tally`] sums the units of one tree.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

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
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let m = m_command(argv, tmp.path());
    let out = Command::new(&m[0])
        .args(&m[1..])
        .current_dir(cwd)
        .output()
        .expect("run gcc -M");
    assert!(
        out.status.success(),
        "{m:?} in {}: {}",
        cwd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(tmp.path()).unwrap().replace("\\\n", " ");
    let deps = text.split_once(": ").map_or("", |(_, d)| d);
    deps.split_whitespace()
        .map(|p| fs::canonicalize(cwd.join(p.replace("\\ ", " "))).unwrap())
        .map(|p| p.to_str().unwrap().to_string())
        .filter(|p| !system.iter().any(|s| under(p, s)))
        .collect()
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
}

fn size(p: &str) -> u64 {
    fs::metadata(p).map_or(0, |m| m.len())
}

/// Compares what `server` would ship for `argv` in `cwd` with what gcc reads. Panics when
/// the include server does not cover the command.
pub fn compare(server: &IncludeServer, cwd: &Path, argv: &[String]) -> Comparison {
    let closure = server
        .closure(cwd.to_str().unwrap(), argv)
        .unwrap_or_else(|why| panic!("{argv:?} in {}: not covered: {why}", cwd.display()));
    let ours: BTreeSet<String> = closure.files.iter().map(|f| f.realpath.clone()).collect();
    let gcc = gcc_deps(cwd, argv, &closure.system_dirs);
    let surplus: Vec<String> = ours.difference(&gcc).cloned().collect();
    Comparison {
        missing: gcc.difference(&ours).cloned().collect(),
        surplus_bytes: surplus.iter().map(|p| size(p)).sum(),
        surplus,
        gcc_files: gcc.len(),
        gcc_bytes: gcc.iter().map(|p| size(p)).sum(),
    }
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
}

impl Tally {
    pub fn add(&mut self, unit: &str, c: Comparison) {
        self.units += 1;
        if !c.missing.is_empty() {
            self.missing.push((unit.to_string(), c.missing));
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
        assert!(self.units > 0, "{tree}: no units compared");
        assert!(
            self.missing.is_empty(),
            "{tree}: missing files: {:#?}",
            &self.missing[..self.missing.len().min(10)]
        );
        assert!(self.surplus_ratio() <= max_ratio, "{}", self.summary(tree));
    }
}
