//! Monitor state: what each running `distcc` process is doing, in
//! `$DISTCC_DIR/state/binstate_<pid>`, and `distccmon-text`, which shows it.
//!
//! A state file is distcc 3.4's record byte for byte (a native C struct of 296 bytes on
//! LP64), so 3.4's monitors read ours and ours reads theirs. Unlike 3.4 we write it through
//! a temporary file and a rename, so a reader never sees a half-written or empty file. The
//! client owns its file and removes it when it ends; the monitor skips and cleans up the
//! files of processes that are gone.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const MAGIC: u64 = 0x4449_4800;
const RECORD_SIZE: usize = 296;
const NAME_LEN: usize = 128;
/// State files older than this belong to processes that died without cleaning up.
const STALE: Duration = Duration::from_secs(60);

/// What a job is doing, with distcc's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Startup = 0,
    Blocked = 1,
    Connect = 2,
    Preprocess = 3,
    Send = 4,
    Compile = 5,
    Receive = 6,
    Done = 7,
}

impl Phase {
    fn from_number(n: i32) -> Phase {
        match n {
            0 => Phase::Startup,
            1 => Phase::Blocked,
            2 => Phase::Connect,
            3 => Phase::Preprocess,
            4 => Phase::Send,
            6 => Phase::Receive,
            7 => Phase::Done,
            // distcc 3.4's monitor shows anything unknown as a compile.
            _ => Phase::Compile,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Startup => "Startup",
            Phase::Blocked => "Blocked",
            Phase::Connect => "Connect",
            Phase::Preprocess => "Preprocess",
            Phase::Send => "Send",
            Phase::Compile => "Compile",
            Phase::Receive => "Receive",
            Phase::Done => "Done",
        }
    }
}

/// One process's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub pid: u32,
    pub file: String,
    pub host: String,
    pub slot: i32,
    pub phase: Phase,
}

fn put_name(record: &mut [u8], at: usize, text: &str) {
    let bytes = text.as_bytes();
    let n = bytes.len().min(NAME_LEN - 1);
    record[at..at + n].copy_from_slice(&bytes[..n]);
}

fn get_name(record: &[u8], at: usize) -> String {
    let field = &record[at..at + NAME_LEN];
    let end = field.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

impl JobState {
    /// distcc 3.4's record: size, magic, pid, file, host, slot, phase, and a pointer that
    /// means nothing on disk.
    pub fn encode(&self) -> [u8; RECORD_SIZE] {
        let mut r = [0u8; RECORD_SIZE];
        r[0..8].copy_from_slice(&(RECORD_SIZE as u64).to_ne_bytes());
        r[8..16].copy_from_slice(&MAGIC.to_ne_bytes());
        r[16..24].copy_from_slice(&u64::from(self.pid).to_ne_bytes());
        put_name(&mut r, 24, &self.file);
        put_name(&mut r, 152, &self.host);
        r[280..284].copy_from_slice(&self.slot.to_ne_bytes());
        r[284..288].copy_from_slice(&(self.phase as i32).to_ne_bytes());
        r
    }

    /// Reads a record; `None` when it is not one (short, wrong size or magic).
    pub fn decode(r: &[u8]) -> Option<JobState> {
        let word = |at: usize| u64::from_ne_bytes(r[at..at + 8].try_into().unwrap_or([0; 8]));
        let int = |at: usize| i32::from_ne_bytes(r[at..at + 4].try_into().unwrap_or([0; 4]));
        if r.len() < RECORD_SIZE || word(0) != RECORD_SIZE as u64 || word(8) != MAGIC {
            return None;
        }
        Some(JobState {
            pid: u32::try_from(word(16)).ok()?,
            file: get_name(r, 24),
            host: get_name(r, 152),
            slot: int(280),
            phase: Phase::from_number(int(284)),
        })
    }
}

/// `$DISTCC_DIR/state`.
pub fn state_dir(top: &Path) -> PathBuf {
    top.join("state")
}

/// This process's state file, kept up to date by `set` and removed when dropped.
pub struct StateFile {
    path: PathBuf,
    state: JobState,
    /// The file once it exists: later updates rewrite its one record in place.
    file: Option<fs::File>,
}

impl StateFile {
    /// Starts reporting for `file` (the input's base name); `None` when there is nowhere to
    /// write (the monitor is a convenience: no job fails for it).
    pub fn new(top: &Path, file: &str) -> Option<StateFile> {
        let dir = state_dir(top);
        crate::ensure_dir(&dir).ok()?;
        let pid = std::process::id();
        let base = file.rsplit('/').next().unwrap_or(file);
        Some(StateFile {
            path: dir.join(format!("binstate_{pid}")),
            state: JobState {
                pid,
                file: base.to_string(),
                host: String::new(),
                slot: 0,
                phase: Phase::Startup,
            },
            file: None,
        })
    }

    /// Records the host (its name, `localhost` for this machine) and slot of the job.
    pub fn set_host(&mut self, host: &str, slot: u32) {
        self.state.host = host.to_string();
        self.state.slot = i32::try_from(slot).unwrap_or(i32::MAX);
    }

    /// Records a new phase. The file first appears whole (a temporary file renamed);
    /// after that one write of the fixed-size record replaces it in place, so a reader
    /// never sees an empty or short file.
    pub fn set(&mut self, phase: Phase) {
        use std::os::unix::fs::FileExt;
        self.state.phase = phase;
        let record = self.state.encode();
        let written = match &self.file {
            Some(f) => f.write_all_at(&record, 0),
            None => {
                let tmp = self.path.with_extension("tmp");
                let made = fs::File::create(&tmp)
                    .and_then(|mut f| f.write_all(&record))
                    .and_then(|_| fs::rename(&tmp, &self.path))
                    .and_then(|_| fs::OpenOptions::new().write(true).open(&self.path));
                if made.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                made.map(|f| self.file = Some(f))
            }
        };
        if let Err(e) = written {
            log::debug!("failed to write state file {}: {e}", self.path.display());
        }
    }
}

impl Drop for StateFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        // Someone else's process: alive all the same.
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

/// The jobs running now, as distcc 3.4's monitor lists them: stale files removed, dead
/// processes and finished jobs skipped, sorted by host then slot.
pub fn running_jobs(top: &Path) -> std::io::Result<Vec<JobState>> {
    let mut jobs = Vec::new();
    for entry in fs::read_dir(state_dir(top))? {
        let Ok(entry) = entry else { continue };
        if !entry.file_name().to_string_lossy().starts_with("binstate_") {
            continue;
        }
        let path = entry.path();
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > STALE);
        if stale {
            let _ = fs::remove_file(&path);
            continue;
        }
        let Some(job) = fs::read(&path).ok().and_then(|r| JobState::decode(&r)) else {
            continue;
        };
        if job.phase != Phase::Done && process_alive(job.pid) {
            jobs.push(job);
        }
    }
    jobs.sort_by(|a, b| a.host.cmp(&b.host).then(a.slot.cmp(&b.slot)));
    Ok(jobs)
}

/// One line of the monitor, in distcc 3.4's layout.
pub fn format_line(job: &JobState) -> String {
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let host = cut(&job.host, 24);
    format!(
        "{:6}  {:<10}  {:<30} {:>24}[{}]",
        job.pid,
        cut(job.phase.name(), 10),
        cut(&job.file, 30),
        host,
        job.slot
    )
}

const MONITOR_USAGE: &str = "Usage: distccmon-text [DELAY]
       distccmon-text --hosts [DELAY]

Displays current compilation jobs in text form.

If delay is specified, repeatedly updates after that many (fractional)
seconds.  Otherwise, runs just once.

With --hosts, shows instead every host of the host list: its slots, queue,
the jobs it is compiling for anyone, and its recent failures.
";

/// The `distccmon-text [--hosts] [DELAY]` program.
pub fn monitor_main(args: &[String]) -> i32 {
    let (hosts, args) = match args.split_first() {
        Some((first, rest)) if first == "--hosts" => (true, rest),
        _ => (false, args),
    };
    let delay = match args {
        [] => None,
        // A delay of 0 prints once, as no delay does: distcc 3.4 loops only while its delay
        // is non-zero (`distccmon-text 0` prints one listing and exits), and a loop without
        // a pause would print tens of thousands of empty listings a second. Small positive
        // delays are kept as given, as 3.4 keeps them.
        [d] => match d.parse::<f64>() {
            Ok(0.0) => None,
            Ok(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
            _ => {
                eprint!("{MONITOR_USAGE}");
                return 1;
            }
        },
        _ => {
            eprint!("{MONITOR_USAGE}");
            return 1;
        }
    };
    if hosts {
        return crate::farm::view::main(delay);
    }
    let Some(top) = crate::farm::hosts::distcc_dir() else {
        eprintln!("distccmon-text: ERROR: neither DISTCC_DIR nor HOME is set");
        return crate::exitcode::IO_ERROR;
    };
    repeat(delay, || {
        // As distcc 3.4's monitor: a state directory not made yet is made, and lists no
        // jobs. (3.4 fails when DISTCC_DIR itself is missing; our client creates it, and so
        // does the monitor.)
        let jobs = match fs::create_dir_all(state_dir(&top)).and_then(|()| running_jobs(&top)) {
            Ok(jobs) => jobs,
            Err(e) => {
                eprintln!(
                    "distccmon-text: ERROR: failed to read {}: {e}",
                    state_dir(&top).display()
                );
                return Err(crate::exitcode::IO_ERROR);
            }
        };
        let mut out = String::new();
        for job in &jobs {
            out.push_str(&format_line(job));
            out.push('\n');
        }
        out.push('\n');
        Ok(out)
    })
}

/// Prints what `screen` makes, once, or every `delay` (a monitor's loop); returns the exit
/// code: 0 when standard output is closed, or `screen`'s error.
pub(crate) fn repeat(
    delay: Option<Duration>,
    mut screen: impl FnMut() -> Result<String, i32>,
) -> i32 {
    loop {
        let text = match screen() {
            Ok(text) => text,
            Err(code) => return code,
        };
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(text.as_bytes())
            .and_then(|_| stdout.flush())
            .is_err()
        {
            return 0;
        }
        drop(stdout);
        match delay {
            Some(d) => std::thread::sleep(d),
            None => return 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_matches_distcc_layout() {
        let job = JobState {
            pid: 20779,
            file: "pm.c".into(),
            host: "127.0.0.1".into(),
            slot: 0,
            phase: Phase::Compile,
        };
        let r = job.encode();
        assert_eq!(r.len(), 296);
        assert_eq!(&r[8..12], &[0x00, 0x48, 0x49, 0x44]);
        assert_eq!(JobState::decode(&r), Some(job.clone()));
        assert_eq!(
            format_line(&job),
            " 20779  Compile     pm.c                                          127.0.0.1[0]"
        );
        assert_eq!(JobState::decode(&r[..100]), None);
        let mut bad = r;
        bad[8] = 1;
        assert_eq!(JobState::decode(&bad), None);
    }

    #[test]
    fn monitor_lists_live_jobs_sorted() {
        let top = tempfile::tempdir().unwrap();
        let mut mine = StateFile::new(top.path(), "src/b.c").unwrap();
        mine.set_host("hostb", 1);
        mine.set(Phase::Send);
        // A dead process's file is skipped.
        let dead = JobState {
            pid: u32::MAX - 1,
            file: "x.c".into(),
            host: "hosta".into(),
            slot: 0,
            phase: Phase::Compile,
        };
        fs::write(state_dir(top.path()).join("binstate_dead"), dead.encode()).unwrap();
        let jobs = running_jobs(top.path()).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!((jobs[0].file.as_str(), jobs[0].phase), ("b.c", Phase::Send));
        drop(mine);
        assert!(running_jobs(top.path()).unwrap().is_empty());
    }
}
