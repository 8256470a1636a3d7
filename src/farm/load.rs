//! The load board: what this machine's clients last heard of how busy each of our daemons
//! is, shared by all of a user's `distcc` processes in `$DISTCC_DIR/load` (one line per
//! host), so that each job can go where it will start soonest (`pick`).
//!
//! A host is on the board once it has told its load (`wire::load`): it is then known to be
//! ours, and is asked before each job. What it said counts for [`FRESH`]; older, the host
//! is as unknown as distcc 3.4's hosts, which never tell. The board is written when a host
//! admits a job (its figures, with that job counted) and when a reply's notes end (the
//! figures as the job ends), under a lock, by read, change and rewrite: it holds one short
//! line per host.
//!
//! It lives beside the lock directory, not in it: the slot waiters wake on every file closed
//! there.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::wire::Load;

/// How long what a host said describes it.
pub const FRESH: Duration = Duration::from_secs(2);

/// How long a host that told its load is taken to be ours (and asked): a host replaced by
/// distcc 3.4's daemon fails its first ask, which takes it off the board.
const KNOWN_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// What was last heard of one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    pub load: Load,
    /// When, in milliseconds since the epoch.
    pub at_ms: u64,
}

/// Whether a host is our daemon, as far as the board knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// It told its load lately: it is asked before each job.
    Ours,
    /// It did not answer an ask lately: it is not asked.
    NotOurs,
    /// Not asked lately: asked once, on a connection of its own, before its next job.
    Unknown,
}

/// The board as read at one moment; keyed by the hosts' lock keys (`lock::host_key`).
#[derive(Debug, Default)]
pub struct Board {
    hosts: HashMap<String, Heard>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `$DISTCC_DIR/load`.
pub fn board_path(top: &Path) -> PathBuf {
    top.join("load")
}

impl Board {
    /// The board in `text`; lines that do not parse are dropped.
    fn parse(text: &str) -> Board {
        let mut hosts = HashMap::new();
        for line in text.lines() {
            let mut fields = line.split(' ');
            let Some(key) = fields.next() else { continue };
            let n: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
            if let [cpus, slots, running, queued, at_ms] = n[..] {
                let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
                let load = Load {
                    cpus: small(cpus),
                    slots: small(slots),
                    running: small(running),
                    queued: small(queued),
                };
                hosts.insert(key.to_string(), Heard { load, at_ms });
            }
        }
        Board { hosts }
    }

    fn text(&self) -> String {
        let mut lines: Vec<String> = self
            .hosts
            .iter()
            .map(|(key, h)| {
                let l = &h.load;
                format!(
                    "{key} {} {} {} {} {}\n",
                    l.cpus, l.slots, l.running, l.queued, h.at_ms
                )
            })
            .collect();
        lines.sort();
        lines.concat()
    }

    /// The board of the user's clients (empty when there is none yet).
    pub fn read(top: &Path) -> Board {
        fs::read(board_path(top)).map_or_else(|_| Board::default(), |t| Board::parse_bytes(&t))
    }

    /// The board in `bytes`: a line that is not text is dropped with the others that do
    /// not parse, and the next write repairs the file.
    fn parse_bytes(bytes: &[u8]) -> Board {
        Board::parse(&String::from_utf8_lossy(bytes))
    }

    /// What the board says the host of lock key `key` is, from what was heard within
    /// [`KNOWN_FOR`]: a host that is not ours is recorded with no processors.
    pub fn standing(&self, key: &str) -> Standing {
        let lately = self
            .hosts
            .get(key)
            .filter(|h| now_ms().saturating_sub(h.at_ms) < KNOWN_FOR.as_millis() as u64);
        match lately {
            Some(h) if h.load.cpus > 0 => Standing::Ours,
            Some(_) => Standing::NotOurs,
            None => Standing::Unknown,
        }
    }

    /// How soon a job sent to the host of lock key `key` would start, as far as what was
    /// heard in the last [`FRESH`] says (`None`: nothing fresh): whether all its slots are
    /// taken (the job would wait), and its jobs, running or waiting, once this one is
    /// counted, per job it can run on a processor of its own (the fewer of its processors
    /// and its slots).
    pub fn rank(&self, key: &str) -> Option<(bool, f64)> {
        let h = self.hosts.get(key).filter(|h| h.load.cpus > 0)?;
        if now_ms().saturating_sub(h.at_ms) >= FRESH.as_millis() as u64 {
            return None;
        }
        let l = &h.load;
        let full = u64::from(l.running) + u64::from(l.queued) >= u64::from(l.slots);
        let wanted = f64::from(l.running) + f64::from(l.queued) + 1.0;
        Some((full, wanted / f64::from(l.cpus.min(l.slots).max(1))))
    }

    /// Records `load` as what the host of lock key `key` says now (`None`: forgets the
    /// host; no processors: it is not ours), under the board's lock. Nothing is lost when it cannot be written: the board
    /// only speeds the choice of hosts.
    pub fn record(top: &Path, key: &str, load: Option<Load>) {
        let _ = Board::change(top, |board| match load {
            Some(load) => {
                let at_ms = now_ms();
                board.hosts.insert(key.to_string(), Heard { load, at_ms });
                let old = |h: &Heard| at_ms.saturating_sub(h.at_ms) >= KNOWN_FOR.as_millis() as u64;
                board.hosts.retain(|_, h| !old(h));
            }
            None => {
                board.hosts.remove(key);
            }
        });
    }

    fn change(top: &Path, f: impl FnOnce(&mut Board)) -> std::io::Result<()> {
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(board_path(top))?;
        crate::lock_exclusive(&file)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut board = Board::parse_bytes(&bytes);
        f(&mut board);
        let text = board.text();
        file.rewind()?;
        file.write_all(text.as_bytes())?;
        file.set_len(text.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_keeps_what_each_host_said_and_ranks_it() {
        let top = tempfile::tempdir().unwrap();
        let knows = |board: &Board, key| board.standing(key) == Standing::Ours;
        assert!(!knows(&Board::read(top.path()), "tcp_a_3632"));
        let load = |running, queued| Load {
            cpus: 4,
            slots: 6,
            running,
            queued,
        };
        Board::record(top.path(), "tcp_a_3632", Some(load(1, 0)));
        Board::record(top.path(), "tcp_b_3632", Some(load(4, 2)));
        let board = Board::read(top.path());
        assert!(knows(&board, "tcp_a_3632") && knows(&board, "tcp_b_3632"));
        assert_eq!(board.rank("tcp_a_3632"), Some((false, 0.5)));
        assert_eq!(board.rank("tcp_b_3632"), Some((true, 7.0 / 4.0)));
        assert_eq!(board.rank("tcp_c_3632"), None);
        Board::record(top.path(), "tcp_b_3632", None);
        let board = Board::read(top.path());
        assert_eq!(board.standing("tcp_b_3632"), Standing::Unknown);
        // Damaged lines are dropped, the rest kept.
        let text = fs::read_to_string(board_path(top.path())).unwrap();
        fs::write(
            board_path(top.path()),
            format!("junk line\n{text}tcp_x 1 2\n"),
        )
        .unwrap();
        let board = Board::read(top.path());
        assert!(knows(&board, "tcp_a_3632") && !knows(&board, "tcp_x"));
    }
}
