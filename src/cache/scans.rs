//! What each header names ([`super::manifest::names`]), remembered by path and identity
//! as [`super::sums`] remembers sums, so that a miss learns the headers an earlier job
//! read in the same version without reading them again: a kernel unit reads about 800
//! headers, and its neighbours in the build read most of the same.
//!
//! One file, `scans-1`, in the cache directory, mapped shared by every `distcc` process
//! ([`super::mapped`]): word 0 says where the next record goes; then a table of 4-word
//! slots (16 bytes of the key, the record's place and length, and a check of those and
//! of the record's bytes); then the records, written one after another, and from the
//! start again when the space is used up. No lock: a slot or record written by two
//! processes at once, only in part, or overwritten since fails its check, and the header
//! is read again. Only a version that is not recent is kept (as for sums), and only a
//! file the manifest can use (no time macros, no name made by a macro in a probe).
//!
//! What is not here: what the names mean and where they are looked for
//! ([`super::manifest`]).

use std::path::Path;
use std::sync::atomic::Ordering;

use super::manifest::Named;
use super::mapped::Mapped;

const SLOTS: usize = 1 << 16;
const SLOT_WORDS: usize = 4;
/// How many slots from its first a file's record may be in.
const PROBES: usize = 4;
/// The records' space: 12 MiB, a few times what a kernel tree's headers need.
const SPACE_WORDS: usize = 12 << 17;
const TABLE_AT: usize = 1;
const SPACE_AT: usize = TABLE_AT + SLOTS * SLOT_WORDS;
/// A header naming more than this much is read each time.
const MAX_RECORD: usize = 64 << 10;
/// The layout's version is in the name: another layout is another file.
pub const NAME: &str = "scans-1";

/// What one version of a header says that a manifest needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The names it may look for, as [`super::manifest::names`] gives them.
    pub names: Vec<(String, Named)>,
    /// Whether an `#include` of it has a name made by a macro.
    pub computed: bool,
    /// Whether it may be once-only (`#pragma once`, `#import`).
    pub once: bool,
}

/// The table, mapped; `None` where it cannot be (then every header is read).
pub struct Scans {
    map: Option<Mapped>,
}

impl Scans {
    /// The table of the cache at `dir`, made there when missing.
    pub fn open(dir: &Path) -> Scans {
        let path = dir.join(NAME);
        let map = Mapped::open(&path, SPACE_AT + SPACE_WORDS);
        if map.is_none() {
            log::debug!("no table of scans at {}", path.display());
        }
        Scans { map }
    }

    /// The scan remembered under `key` (a file's path and identity, [`super::sums::key`]).
    pub fn get(&self, key: &[u8; 24]) -> Option<Scan> {
        let map = self.map.as_ref()?;
        let first = first_slot(key);
        (0..PROBES).find_map(|i| {
            let mut w = [0u64; SLOT_WORDS];
            map.read(TABLE_AT + (first + i) % SLOTS * SLOT_WORDS, &mut w);
            if w[..2] != key_words(key) {
                return None;
            }
            let (at, len) = ((w[2] >> 32) as usize, (w[2] & 0xffff_ffff) as usize);
            if len > MAX_RECORD || at + len.div_ceil(8) > SPACE_WORDS {
                return None;
            }
            let mut words = vec![0u64; len.div_ceil(8)];
            map.read(SPACE_AT + at, &mut words);
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let record = &bytes[..len];
            (check(&w[..3], record) == w[3]).then(|| decode(record))?
        })
    }

    /// Keeps `scan` under `key`.
    pub fn put(&self, key: &[u8; 24], scan: &Scan) {
        let Some(map) = self.map.as_ref().filter(|m| m.writable) else {
            return;
        };
        let record = encode(scan);
        if record.len() > MAX_RECORD {
            return;
        }
        let n = record.len().div_ceil(8);
        let next = map.word(0).fetch_add(n as u64, Ordering::Relaxed) as usize % SPACE_WORDS;
        let at = if next + n > SPACE_WORDS { 0 } else { next };
        let words: Vec<u64> = record
            .chunks(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..c.len()].copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect();
        map.write(SPACE_AT + at, &words);
        let [k0, k1] = key_words(key);
        let head = [k0, k1, (at as u64) << 32 | record.len() as u64];
        let slot = [k0, k1, head[2], check(&head, &record)];
        // Where it already is, else the first probe: a slot's check covers its record, so
        // an older one there is simply replaced.
        let first = first_slot(key);
        let target = (0..PROBES)
            .map(|i| (first + i) % SLOTS)
            .find(|&s| {
                let mut w = [0u64; SLOT_WORDS];
                map.read(TABLE_AT + s * SLOT_WORDS, &mut w);
                w[..2] == [k0, k1] || w == [0; SLOT_WORDS]
            })
            .unwrap_or(first);
        map.write(TABLE_AT + target * SLOT_WORDS, &slot);
    }
}

fn key_words(key: &[u8; 24]) -> [u64; 2] {
    let word = |i: usize| u64::from_le_bytes(key[i..i + 8].try_into().expect("8 bytes"));
    [word(0), word(8)]
}

fn first_slot(key: &[u8; 24]) -> usize {
    u64::from_le_bytes(key[16..24].try_into().expect("8 bytes")) as usize % SLOTS
}

/// The check word of a slot's first three words and its record. Never 0, so an empty
/// slot fails it.
fn check(head: &[u64], record: &[u8]) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"distcc-rs scans 1\0");
    for w in head {
        h.update(&w.to_le_bytes());
    }
    h.update(record);
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes")) | 1
}

/// A flags byte (1: computed, 2: once), then each name: its kind, its length (2 bytes),
/// its bytes.
fn encode(scan: &Scan) -> Vec<u8> {
    let mut out = vec![u8::from(scan.computed) | u8::from(scan.once) << 1];
    for (name, named) in &scan.names {
        let Ok(len) = u16::try_from(name.len()) else {
            // Longer than any path: no record (the header is read each time).
            return vec![0; MAX_RECORD + 1];
        };
        out.push(match named {
            Named::Quoted => 0,
            Named::Angled => 1,
            Named::Next => 2,
        });
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    out
}

fn decode(record: &[u8]) -> Option<Scan> {
    let (&flags, mut rest) = record.split_first()?;
    let mut names = Vec::new();
    while let Some((&kind, r)) = rest.split_first() {
        let named = match kind {
            0 => Named::Quoted,
            1 => Named::Angled,
            2 => Named::Next,
            _ => return None,
        };
        let len = u16::from_le_bytes(r.get(..2)?.try_into().ok()?) as usize;
        let name = std::str::from_utf8(r.get(2..2 + len)?).ok()?;
        names.push((name.to_string(), named));
        rest = &r[2 + len..];
    }
    Some(Scan {
        names,
        computed: flags & 1 != 0,
        once: flags & 2 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_is_remembered_and_a_damaged_one_is_not_answered() {
        let dir = tempfile::tempdir().unwrap();
        let scans = Scans::open(dir.path());
        let scan = Scan {
            names: vec![
                ("a.h".into(), Named::Quoted),
                ("sys/b.h".into(), Named::Angled),
                ("c.h".into(), Named::Next),
            ],
            computed: true,
            once: false,
        };
        let key = [7u8; 24];
        assert_eq!(scans.get(&key), None);
        scans.put(&key, &scan);
        assert_eq!(Scans::open(dir.path()).get(&key), Some(scan.clone()));
        assert_eq!(scans.get(&[8u8; 24]), None);
        // Its record overwritten by another's (the space used up since): not answered.
        let map = scans.map.as_ref().unwrap();
        let slot = TABLE_AT + first_slot(&key) * SLOT_WORDS;
        let at = (map.word(slot + 2).load(Ordering::Relaxed) >> 32) as usize;
        map.write(SPACE_AT + at, &[0x0101_0000_0161_0000]);
        assert_eq!(scans.get(&key), None);
        // Written again, and an empty scan too.
        scans.put(&key, &scan);
        assert_eq!(scans.get(&key), Some(scan));
        let empty = Scan {
            names: Vec::new(),
            computed: false,
            once: true,
        };
        scans.put(&[9u8; 24], &empty);
        assert_eq!(scans.get(&[9u8; 24]), Some(empty));
    }
}
