//! Objects built with `-g` that are byte for byte those of a local build.
//!
//! Text from `gcc -E` has its macros expanded, so gcc compiling it records other DWARF
//! column numbers than a local compile of the source does (distcc 3.4's `-g` objects
//! differ for that reason). For `-g` compiles with gcc, the client preprocesses with
//! `-fdirectives-only` instead: includes and conditionals are resolved, but macros stay
//! unexpanded and every token keeps its column. The server compiles that text as a `.i`
//! with `-fdirectives-only` added. Any gcc, distcc 3.4's daemon included, then gives an
//! object that differs from a local one only in `DW_AT_producer`, which names
//! `-fdirectives-only`.
//!
//! Our daemon removes that difference too. Editing the words out of the string is not
//! enough: gcc writes `.debug_str` in the slot order of its string hash table, where the
//! producer's hash decides its own place and that of its neighbours. So the daemon adds one
//! more recorded option, [`MARKER`] (which does nothing without `-finstrument-functions`),
//! with a value chosen so that the whole producer string hashes exactly as the local one
//! will. gcc runs `cc1` through a `-wrapper`, the daemon's own executable called with
//! [`HOOK_ARG`], which edits both options out of the producer in the assembler text before
//! `as` reads it. The part of the producer that the hash must match is learnt once per
//! compiler and command line by compiling a probe file ([`ProducerFix`]); `producer` checks
//! on that probe that the fix gives a direct compile's object, and keeps the verdict.
//!
//! Because gcc obeys every directive in such text, `#include` included, the daemon also
//! checks it ([`check_directives`], in `directives`): only what `gcc -E -fdirectives-only`
//! itself writes may stand where a directive would be obeyed.
//!
//! Running the compiler belongs to the daemon (`daemon::job`), choosing and checking a job's
//! fix to `producer`, and deciding what the client sends to `cmdline`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::process::Command;

/// What the client adds to its preprocessor and server command lines.
pub const DIRECTIVES_ONLY: &str = "-fdirectives-only";

/// The option whose value steers the producer's hash: gcc records it in `DW_AT_producer`,
/// and it has no effect unless `-finstrument-functions` is given too.
const MARKER: &str = "-finstrument-functions-exclude-file-list=";

/// The first argument of the daemon's executable when gcc runs it as its `-wrapper`.
pub const HOOK_ARG: &str = "--edit-dwarf-producer";

/// Tells the hook what to remove from the producer string.
const EDIT_ENV: &str = "DISTCCD_PRODUCER_EDIT";

/// Whether a request sent by a client is directives-only text.
pub fn requested(argv: &[String]) -> bool {
    argv.iter().any(|a| a == DIRECTIVES_ONLY)
}

pub use super::directives::check_directives;

/// gcc's string hash (libiberty's `htab_hash_string`), continued from `r`.
fn gcc_hash(s: &[u8], r: u32) -> u32 {
    s.iter().fold(r, |r, &c| {
        r.wrapping_mul(67).wrapping_add(c as u32).wrapping_sub(113)
    })
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.";

fn word3(n: u32) -> [u8; 3] {
    [
        ALPHABET[(n >> 12) as usize & 63],
        ALPHABET[(n >> 6) as usize & 63],
        ALPHABET[n as usize & 63],
    ]
}

/// A value for [`MARKER`] such that `prefix + " -fdirectives-only " + MARKER + value`
/// hashes as `prefix` does: the options recorded after them then leave both producer
/// strings with the same hash. Six characters are found by meeting in the middle.
fn marker_value(prefix: &str) -> Option<String> {
    let target = gcc_hash(prefix.as_bytes(), 0);
    let inserted = format!("{prefix} {DIRECTIVES_ONLY} {MARKER}");
    let base = gcc_hash(inserted.as_bytes(), 0);
    let pow3 = 67u32.pow(3);
    let mut tails: Vec<(u32, u32)> = (0..1 << 18).map(|n| (gcc_hash(&word3(n), 0), n)).collect();
    tails.sort_unstable();
    let start = base.wrapping_mul(pow3).wrapping_mul(pow3);
    (0..1u32 << 18).find_map(|n| {
        let head = word3(n);
        let need = target.wrapping_sub(start.wrapping_add(gcc_hash(&head, 0).wrapping_mul(pow3)));
        let found = tails.partition_point(|&(h, _)| h < need);
        let &(h, tail) = tails.get(found)?;
        (h == need).then(|| {
            let mut value = String::from_utf8(head.to_vec()).unwrap_or_default();
            value.push_str(std::str::from_utf8(&word3(tail)).unwrap_or_default());
            value
        })
    })
}

/// Decodes the bytes of a `.ascii`/`.string` directive's quoted operand.
fn unquote(s: &str) -> Option<Vec<u8>> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?.as_bytes();
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *inner.get(i)?;
        i += 1;
        out.push(match e {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'f' => 0x0c,
            b'b' => 0x08,
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                for _ in 0..2 {
                    match inner.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                v as u8
            }
            other => other,
        });
    }
    Some(out)
}

fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &c in bytes {
        match c {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(c as char);
            }
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\{c:03o}");
            }
        }
    }
    s.push('"');
    s
}

/// A string that gcc wrote as a run of `.ascii` lines ended by `.string`, as it writes
/// `.debug_str` entries: its line range and its bytes.
struct AsmString {
    lines: std::ops::Range<usize>,
    bytes: Vec<u8>,
}

/// Finds the producer string, the one that starts with "GNU " and names
/// `-fdirectives-only`.
fn find_producer(lines: &[&str]) -> Option<AsmString> {
    let operand = |line: &str, op: &str| {
        line.trim_start()
            .strip_prefix(op)
            .map(|rest| rest.trim_start().to_string())
    };
    let mut n = 0;
    while n < lines.len() {
        let begins = [".ascii", ".string"]
            .iter()
            .any(|op| operand(lines[n], op).is_some_and(|o| o.starts_with("\"GNU ")));
        if !begins {
            n += 1;
            continue;
        }
        let mut bytes = Vec::new();
        let start = n;
        while n < lines.len() {
            if let Some(o) = operand(lines[n], ".ascii") {
                bytes.extend(unquote(&o)?);
                n += 1;
            } else if let Some(o) = operand(lines[n], ".string") {
                bytes.extend(unquote(&o)?);
                n += 1;
                break;
            } else {
                return None;
            }
        }
        let needle = format!(" {DIRECTIVES_ONLY}");
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            return Some(AsmString {
                lines: start..n,
                bytes,
            });
        }
    }
    None
}

/// The producer recorded in assembler text, up to the ` -fdirectives-only` in it.
pub fn producer_prefix(asm: &str) -> Option<String> {
    let lines: Vec<&str> = asm.lines().collect();
    let producer = String::from_utf8(find_producer(&lines)?.bytes).ok()?;
    let at = producer.find(&format!(" {DIRECTIVES_ONLY}"))?;
    Some(producer[..at].to_string())
}

/// Removes `remove` from the producer string of assembler text; `None` if it is not there.
fn edit_producer(asm: &str, remove: &str) -> Option<String> {
    let lines: Vec<&str> = asm.lines().collect();
    let producer = find_producer(&lines)?;
    let text = String::from_utf8(producer.bytes).ok()?;
    if !text.contains(remove) {
        return None;
    }
    let edited = text.replacen(remove, "", 1);
    let mut out = String::with_capacity(asm.len());
    for line in &lines[..producer.lines.start] {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\t.string\t");
    out.push_str(&quote(edited.as_bytes()));
    out.push('\n');
    for line in &lines[producer.lines.end..] {
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
}

/// How a job's command line is changed so that its producer comes out as a local
/// compile's: learnt and checked by a probe once per compiler and command line (see
/// `producer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProducerFix {
    /// The producer does not name `-fdirectives-only` (no `-g`, or switches not recorded).
    NotNeeded,
    /// Add `MARKER` with this value after `-fdirectives-only`, and edit both out.
    Marker(String),
    /// No fix is possible (`-finstrument-functions`, or no value found); the object keeps
    /// `-fdirectives-only` in its producer.
    Impossible,
    /// The fix was tried on a probe and did not give the object a direct compile gives (or
    /// could not be checked): it is off for this compiler and command line, and objects
    /// keep `-fdirectives-only` in their producer.
    Off,
}

impl ProducerFix {
    /// The fix for the command line `key`, from the assembler text gcc wrote for a probe
    /// with it (`None` when that compile failed). Not yet checked.
    pub fn learn(key: &[String], probe_asm: Option<&str>) -> ProducerFix {
        let instrumented = key.iter().any(|a| a.starts_with("-finstrument-functions"));
        match probe_asm.map(producer_prefix) {
            Some(None) => ProducerFix::NotNeeded,
            Some(Some(_)) if instrumented => ProducerFix::Impossible,
            Some(Some(prefix)) => {
                marker_value(&prefix).map_or(ProducerFix::Impossible, ProducerFix::Marker)
            }
            None => ProducerFix::Impossible,
        }
    }

    /// Changes a compile command accordingly: the marker after `-fdirectives-only`, and
    /// `hook` as gcc's wrapper. Returns the variable that tells the hook what to remove,
    /// for the compiler's environment.
    pub fn apply(&self, argv: &mut Vec<String>, hook: &str) -> Option<(&'static str, String)> {
        let ProducerFix::Marker(value) = self else {
            return None;
        };
        if hook.contains(',') {
            // gcc splits the wrapper's value at commas.
            return None;
        }
        let at = argv.iter().position(|a| a == DIRECTIVES_ONLY)?;
        argv.insert(at + 1, format!("{MARKER}{value}"));
        // cc1 must write a file for the hook to edit, not a pipe to `as`.
        argv.retain(|a| a != "-pipe");
        argv.insert(1, "-wrapper".into());
        argv.insert(2, format!("{hook},{HOOK_ARG}"));
        Some((EDIT_ENV, format!(" {DIRECTIVES_ONLY} {MARKER}{value}")))
    }
}

/// The `-wrapper` hook: runs the program gcc asked for and, when it is `cc1` or `cc1plus`
/// and succeeds, edits the producer in the assembler file it wrote. Returns the exit code.
pub fn hook(args: &[OsString]) -> i32 {
    let Some((program, rest)) = args.split_first() else {
        return 1;
    };
    let status = match Command::new(program).args(rest).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("distccd: cannot run {}: {e}", program.to_string_lossy());
            return 1;
        }
    };
    let Some(code) = status.code() else {
        use std::os::unix::process::ExitStatusExt;
        return 128 + status.signal().unwrap_or(0);
    };
    let is_cc1 = std::path::Path::new(program)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("cc1"));
    if code == 0 && is_cc1 {
        let output = rest
            .windows(2)
            .find(|w| w[0] == "-o")
            .map(|w| std::path::PathBuf::from(&w[1]));
        if let (Some(path), Some(remove)) = (output, std::env::var_os(EDIT_ENV)) {
            let edited = std::fs::read_to_string(&path)
                .ok()
                .and_then(|asm| edit_producer(&asm, &remove.to_string_lossy()));
            if let Some(asm) = edited {
                if let Err(e) = std::fs::write(&path, asm) {
                    eprintln!("distccd: cannot rewrite {}: {e}", path.display());
                    return 1;
                }
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_value_matches_the_hash() {
        let prefix = "GNU C17 12.2.0 -mtune=generic -march=x86-64 -g -O2";
        let value = marker_value(prefix).unwrap();
        let full = format!("{prefix} {DIRECTIVES_ONLY} {MARKER}{value}");
        assert_eq!(gcc_hash(full.as_bytes(), 0), gcc_hash(prefix.as_bytes(), 0));
    }

    #[test]
    fn producer_is_found_and_edited_across_ascii_lines() {
        let asm = ".LASF3:\n\t.ascii\t\"GNU C17 12.2.0 -g -fdirectives-only -finstrument-fu\"\n\
                   \t.string\t\"nctions-exclude-file-list=ABCDEF -O2\"\n.LASF4:\n\t.string\t\"int\"\n";
        assert_eq!(producer_prefix(asm).as_deref(), Some("GNU C17 12.2.0 -g"));
        let remove = format!(" {DIRECTIVES_ONLY} {MARKER}ABCDEF");
        let edited = edit_producer(asm, &remove).unwrap();
        assert_eq!(
            edited,
            ".LASF3:\n\t.string\t\"GNU C17 12.2.0 -g -O2\"\n.LASF4:\n\t.string\t\"int\"\n"
        );
        assert_eq!(edit_producer(asm, " -nothing"), None);
        assert_eq!(unquote("\"a\\\"b\\\\c\\011\"").unwrap(), b"a\"b\\c\t");
        assert_eq!(quote(b"a\"b\\c\t"), "\"a\\\"b\\\\c\\011\"");
    }
}
