//! The cache's counters: hits of each kind, misses, what is stored and what was evicted.
//!
//! They are kept in a small `stats` file in each of the 256 top directories of the cache
//! (the one of the entry concerned), changed under an exclusive `flock`, so that the many
//! `distcc` processes of a build seldom wait for one another and never lose a count.
//! [`Stats::total`] adds them up for `distcc --cache-stats`. The size counted is kept
//! exact by each trim of a directory, which measures what is there.

use std::fmt;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Answered from the local cache through a manifest, without the preprocessor or the
    /// include server.
    HitDirect,
    /// Answered from the local cache by the preprocessed text's key.
    HitPreprocessed,
    /// Answered from the local cache by the key of what pump mode would send.
    HitPump,
    /// Answered from a daemon's cache: on a daemon, its hits; in a client's cache, those
    /// of its misses that our daemon answered from its own (the note after its reply).
    HitDaemon,
    Miss,
    /// Results stored.
    Stored,
    /// Entries found damaged (and removed).
    Damaged,
    Evicted,
}

const NAMES: [(Counter, &str); 8] = [
    (Counter::HitDirect, "hits_direct"),
    (Counter::HitPreprocessed, "hits_preprocessed"),
    (Counter::HitPump, "hits_pump"),
    (Counter::HitDaemon, "hits_daemon"),
    (Counter::Miss, "misses"),
    (Counter::Stored, "stored"),
    (Counter::Damaged, "damaged"),
    (Counter::Evicted, "evicted"),
];

/// The counters of one directory, or of the whole cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    counts: [u64; 8],
    /// Bytes and files of the entries.
    pub size: u64,
    pub files: u64,
}

impl Stats {
    pub fn get(&self, c: Counter) -> u64 {
        self.counts[c as usize]
    }

    pub fn add(&mut self, c: Counter, n: u64) {
        self.counts[c as usize] += n;
    }

    fn parse(text: &str) -> Stats {
        let mut s = Stats::default();
        for line in text.lines() {
            let Some((name, value)) = line.split_once(' ') else {
                continue;
            };
            let Ok(n) = value.trim().parse::<u64>() else {
                continue;
            };
            match name {
                "size" => s.size = n,
                "files" => s.files = n,
                _ => {
                    if let Some((c, _)) = NAMES.iter().find(|(_, k)| *k == name) {
                        s.counts[*c as usize] = n;
                    }
                }
            }
        }
        s
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (c, name) in NAMES {
            out.push_str(&format!("{name} {}\n", self.get(c)));
        }
        out.push_str(&format!("size {}\nfiles {}\n", self.size, self.files));
        out
    }

    /// Changes the counters kept in `file` (a `stats` file, created if need be) with
    /// `change`, under an exclusive lock; returns what `change` returns.
    pub fn update<T>(file: &Path, change: impl FnOnce(&mut Stats) -> T) -> io::Result<T> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .open(file)?;
        // Held until `f` is closed, on return.
        crate::lock_exclusive(&f)?;
        // Read as bytes: a damaged file is counters lost, not a cache that stops storing.
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        let mut s = Stats::parse(&String::from_utf8_lossy(&bytes));
        let out = change(&mut s);
        let new = s.render();
        f.rewind()?;
        f.write_all(new.as_bytes())?;
        f.set_len(new.len() as u64)?;
        Ok(out)
    }

    /// The counters in `file`; zero when it does not exist.
    pub fn read(file: &Path) -> Stats {
        std::fs::read(file)
            .map(|t| Stats::parse(&String::from_utf8_lossy(&t)))
            .unwrap_or_default()
    }

    /// The sum of the counters of the whole cache under `dir`.
    pub fn total(dir: &Path) -> Stats {
        let mut sum = Stats::default();
        for top in super::store::tops(dir) {
            let s = Stats::read(&top.join("stats"));
            for i in 0..sum.counts.len() {
                sum.counts[i] += s.counts[i];
            }
            sum.size += s.size;
            sum.files += s.files;
        }
        sum
    }
}

/// Sizes as people read them: `1.2 MiB`.
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
        let mut v = self.0 as f64;
        let mut u = 0;
        while v >= 1024.0 && u + 1 < units.len() {
            v /= 1024.0;
            u += 1;
        }
        if u == 0 {
            write!(f, "{} bytes", self.0)
        } else {
            write!(f, "{v:.1} {}", units[u])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_survive_a_round_trip_and_ignore_garbage() {
        let mut s = Stats::default();
        s.add(Counter::Miss, 3);
        s.add(Counter::HitDaemon, 1);
        s.size = 42;
        assert_eq!(Stats::parse(&s.render()), s);
        let junk = format!("{}\nnonsense\nmisses x\n\u{0}", s.render());
        assert_eq!(Stats::parse(&junk), s);
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(10).to_string(), "10 bytes");
    }
}
