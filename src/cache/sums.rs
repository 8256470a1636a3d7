//! The sums of files, remembered by path and identity (device, inode, size, mtime,
//! ctime), so that checking a manifest costs a `stat` per header instead of reading and
//! hashing it: ccache's "inode cache", in our own form.
//!
//! One file, `sums-1`, in the cache directory, mapped shared by every `distcc` process: a
//! fixed table of 64-byte slots, each a 24-byte key (a hash of the path and identity),
//! the file's 32-byte BLAKE3 sum, and 8 bytes that check the other 56. No lock: a slot
//! written by two processes at once, or only partly, fails its check and is a miss, and a
//! full table overwrites old slots. A file whose identity changed within the last moments
//! is never remembered (see [`super::manifest::Ident::recent`]): a change made in the same
//! clock tick could leave its identity as it was.
//!
//! What is not here: which files a manifest needs, and what their sums mean
//! ([`super::manifest`]).

use std::fs::File;
use std::path::Path;

use super::manifest::Ident;
use super::mapped::Mapped;

/// Slots in the table: 4 MiB in all, for 65,536 files (a kernel tree reads about 3,000).
const SLOTS: usize = 1 << 16;
const SLOT_WORDS: usize = 8;
/// How many slots from its first a file's sum may be in.
const PROBES: usize = 4;
/// The layout's version is in the name: another layout is another file.
pub const NAME: &str = "sums-1";

/// The table, mapped; `None` where it cannot be (then every sum is computed).
pub struct Sums {
    map: Option<Mapped>,
}

impl Sums {
    /// The table of the cache at `dir`, made there when missing.
    pub fn open(dir: &Path) -> Sums {
        let path = dir.join(NAME);
        let map = Mapped::open(&path, SLOTS * SLOT_WORDS);
        if map.is_none() {
            log::debug!("no table of sums at {}", path.display());
        }
        Sums { map }
    }

    /// The sum of the file at `path` now; `None` when it cannot be read.
    pub fn sum(&self, path: &str) -> Option<[u8; 32]> {
        let ident = std::fs::metadata(path).ok().map(|m| Ident::of(&m))?;
        if let Some(sum) = self.remembered(path, &ident) {
            return Some(sum);
        }
        let mut file = File::open(path).ok()?;
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut content).ok()?;
        let now = Ident::of(&file.metadata().ok()?);
        let sum = *blake3::hash(&content).as_bytes();
        // Changed since it was looked at, the content may be either version's (the change
        // need not be recent by the time it is seen, after a stall).
        if now == ident {
            self.remember(path, &now, &sum);
        }
        Some(sum)
    }

    /// The sum remembered for `path` in the version `ident`, if any.
    pub fn remembered(&self, path: &str, ident: &Ident) -> Option<[u8; 32]> {
        self.find(&file_key(path, ident))
    }

    /// Keeps `sum` as the sum of `path` in the version `ident`, unless that version is
    /// too recent to be told from the next.
    pub fn remember(&self, path: &str, ident: &Ident, sum: &[u8; 32]) {
        self.keep(path, ident, sum, super::manifest::now_ns());
    }

    /// [`Sums::remember`] at the time `now_ns`.
    fn keep(&self, path: &str, ident: &Ident, sum: &[u8; 32], now_ns: i128) {
        let Some(map) = self.map.as_ref().filter(|m| m.writable) else {
            return;
        };
        if ident.recent(now_ns) {
            return;
        }
        let key = file_key(path, ident);
        let mut words = [0u64; SLOT_WORDS];
        for (w, chunk) in words.iter_mut().zip(key.chunks(8).chain(sum.chunks(8))) {
            *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        words[7] = check(&words);
        // Where it already is, else an empty or broken slot, else the first.
        let first = first_slot(&key);
        let target = (0..PROBES)
            .map(|i| (first + i) % SLOTS)
            .find(|&s| {
                let w = read(map, s);
                w[..3] == words[..3] || w[7] != check(&w)
            })
            .unwrap_or(first);
        map.write(target * SLOT_WORDS, &words);
    }

    /// The sum remembered under `key` ([`file_key`]), if any.
    pub fn find(&self, key: &[u8; 24]) -> Option<[u8; 32]> {
        let map = self.map.as_ref()?;
        let first = first_slot(key);
        (0..PROBES).find_map(|i| {
            let w = read(map, (first + i) % SLOTS);
            let same_key = w[..3]
                .iter()
                .zip(key.chunks(8))
                .all(|(w, k)| w.to_le_bytes() == k);
            if !same_key || w[7] != check(&w) {
                return None;
            }
            let mut sum = [0u8; 32];
            for (out, w) in sum.chunks_mut(8).zip(&w[3..7]) {
                out.copy_from_slice(&w.to_le_bytes());
            }
            Some(sum)
        })
    }
}

fn read(map: &Mapped, slot: usize) -> [u64; SLOT_WORDS] {
    let mut w = [0u64; SLOT_WORDS];
    map.read(slot * SLOT_WORDS, &mut w);
    w
}

/// The key of `path` in the version `ident`, in this table and in [`super::scans`].
pub fn file_key(path: &str, ident: &Ident) -> [u8; 24] {
    let mut h = blake3::Hasher::new();
    h.update(b"distcc-rs sums 1\0");
    h.update(&ident.bytes());
    h.update(path.as_bytes());
    let mut key = [0u8; 24];
    key.copy_from_slice(&h.finalize().as_bytes()[..24]);
    key
}

fn first_slot(key: &[u8; 24]) -> usize {
    u64::from_le_bytes(key[..8].try_into().expect("8 bytes")) as usize % SLOTS
}

/// The check word of a slot's first seven words. Never 0, so an empty slot fails it.
fn check(words: &[u64; SLOT_WORDS]) -> u64 {
    let mut h = blake3::Hasher::new();
    for w in &words[..7] {
        h.update(&w.to_le_bytes());
    }
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes")) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sum_is_remembered_and_a_changed_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.h");
        std::fs::write(&f, "one").unwrap();
        let path = f.to_str().unwrap();
        let sums = Sums::open(dir.path());
        let ident = Ident::of(&std::fs::metadata(&f).unwrap());
        // Too recent to be remembered.
        sums.remember(path, &ident, &[9; 32]);
        assert_eq!(sums.sum(path), Some(*blake3::hash(b"one").as_bytes()));
        // Seen from a minute later: what is remembered is what is answered (here, on
        // purpose, not its real sum).
        let later = crate::cache::manifest::now_ns() + 60_000_000_000;
        sums.keep(path, &ident, &[9; 32], later);
        assert_eq!(Sums::open(dir.path()).sum(path), Some([9; 32]));
        // Another version (its ctime moved): read again.
        std::fs::write(&f, "two").unwrap();
        assert_eq!(sums.sum(path), Some(*blake3::hash(b"two").as_bytes()));
        // A slot written in part fails its check.
        let map = sums.map.as_ref().unwrap();
        let key = file_key(path, &ident);
        let slot = (0..PROBES)
            .map(|i| (first_slot(&key) + i) % SLOTS)
            .find(|&s| read(map, s)[0].to_le_bytes() == key[..8])
            .unwrap();
        let mut w = read(map, slot);
        w[5] ^= 1;
        map.write(slot * SLOT_WORDS, &w);
        assert_eq!(sums.find(&key), None);
        assert_eq!(
            Sums { map: None }.sum(path),
            Some(*blake3::hash(b"two").as_bytes())
        );
    }
}
