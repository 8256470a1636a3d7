//! The entries on disk: `DIR/ab/<key in hex>`, one file per result, in 256 directories.
//! One level, not ccache's two: a cache's first thousands of entries would otherwise each
//! make a directory of their own, and a `mkdir` costs a miss more than storing its entry
//! (a 5 GiB cache of 50 kB objects still has only 400 entries a directory).
//!
//! An entry is written to a temporary file in its directory and renamed into place, so
//! that a reader sees a whole entry or none, and any number of `distcc` processes can
//! store at once without a lock. It holds a magic word, the format version, the result
//! compressed with zstd, and a BLAKE3 sum of all that: an entry cut short, changed on
//! disk or written by something else is found out when read, counted as damaged, removed,
//! and treated as a miss; never returned. A hit sets the entry's mtime, and when a top
//! directory holds more than its share of the size limit, its oldest entries go first
//! (approximately least recently used, as ccache does).

use std::fs::{self, File, FileTimes};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::key::Key;
use super::manifest::Manifest;
use super::stats::{Counter, Stats};

const MAGIC: &[u8; 4] = b"DCCE";
const FORMAT: u8 = 2;
const SUM: usize = 32;
/// zstd's fastest level: objects compress about 3× with it, at several hundred MB/s.
const LEVEL: i32 = 1;
/// What a trim leaves in a directory, of its share of the limit.
const TRIM_TO: f64 = 0.9;
/// A temporary file older than this was left by a process that died.
const STALE_TEMP: Duration = Duration::from_secs(3600);
/// The largest result a cache entry may decompress to.
const MAX_RESULT: usize = 1 << 30;

/// What a compile left, as the cache keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub object: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout: Vec<u8>,
    /// The dependency file, when the result of a pump-mode job carried it (in plain
    /// mode the local preprocessor writes it).
    pub deps: Option<Vec<u8>>,
}

impl Entry {
    const KIND: &'static [u8] = b"result";
    const WITH_DEPS: &'static [u8] = b"result+deps";

    fn parts(&self) -> Vec<&[u8]> {
        match &self.deps {
            None => vec![Self::KIND, &self.object, &self.stderr, &self.stdout],
            Some(deps) => vec![
                Self::WITH_DEPS,
                &self.object,
                &self.stderr,
                &self.stdout,
                deps,
            ],
        }
    }

    fn from_parts(parts: Vec<Vec<u8>>) -> Option<Entry> {
        let mut parts = parts.into_iter();
        let kind = parts.next()?;
        let [object, stderr, stdout] = [parts.next()?, parts.next()?, parts.next()?];
        let deps = match &kind[..] {
            Self::KIND => None,
            Self::WITH_DEPS => Some(parts.next()?),
            _ => return None,
        };
        parts.next().is_none().then_some(Entry {
            object,
            stderr,
            stdout,
            deps,
        })
    }
}

const MANIFEST: &[u8] = b"manifest";

/// A file of the cache: its parts, compressed, with the magic word, the format version
/// and a sum over everything.
fn encode(parts: &[&[u8]]) -> io::Result<Vec<u8>> {
    let size = parts.iter().map(|p| p.len() + 8).sum::<usize>() + 8;
    let mut payload = Vec::with_capacity(size);
    payload.extend_from_slice(&(parts.len() as u64).to_le_bytes());
    for part in parts {
        payload.extend_from_slice(&(part.len() as u64).to_le_bytes());
        payload.extend_from_slice(part);
    }
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&zstd::bulk::compress(&payload, LEVEL)?);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    Ok(out)
}

/// The parts in `data`; `None` when it is not a whole, intact file of this format.
fn decode(data: &[u8]) -> Option<Vec<Vec<u8>>> {
    let body_len = data.len().checked_sub(SUM)?;
    let (body, sum) = data.split_at(body_len);
    if body.len() < MAGIC.len() + 1
        || &body[..4] != MAGIC
        || body[4] != FORMAT
        || blake3::hash(body).as_bytes() != sum
    {
        return None;
    }
    let mut payload = Vec::new();
    zstd::stream::read::Decoder::new(&body[5..])
        .ok()?
        .take(MAX_RESULT as u64 + 1)
        .read_to_end(&mut payload)
        .ok()?;
    fn take<'a>(rest: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
        let (head, tail) = (rest.get(..len)?, rest.get(len..)?);
        *rest = tail;
        Some(head)
    }
    fn number(rest: &mut &[u8]) -> Option<usize> {
        usize::try_from(u64::from_le_bytes(take(rest, 8)?.try_into().ok()?)).ok()
    }
    let mut rest = payload.as_slice();
    let count = number(&mut rest)?;
    let mut parts = Vec::with_capacity(count.min(16));
    for _ in 0..count {
        let len = number(&mut rest)?;
        parts.push(take(&mut rest, len)?.to_vec());
    }
    rest.is_empty().then_some(parts)
}

/// A cache directory and its size limit.
#[derive(Debug, Clone)]
pub struct Cache {
    pub dir: PathBuf,
    pub limit: u64,
}

impl Cache {
    pub fn new(dir: PathBuf, limit: u64) -> Cache {
        Cache { dir, limit }
    }

    fn top(&self, key: &Key) -> PathBuf {
        self.dir.join(format!("{:02x}", key.0[0]))
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.top(key).join(key.hex())
    }

    /// Adds one to counter `c` in the statistics of `key`'s directory. A cache that
    /// cannot be written (read-only, full) only loses the count.
    pub fn count(&self, key: &Key, c: Counter) {
        let top = self.top(key);
        let counted = crate::ensure_dir(&top)
            .and_then(|()| Stats::update(&top.join("stats"), |s| s.add(c, 1)));
        if let Err(e) = counted {
            log::debug!("cannot count in the cache at {}: {e}", top.display());
        }
    }

    /// The entry under `key`, when there is an intact one; it is then the most recently
    /// used. A damaged entry is removed.
    pub fn get(&self, key: &Key) -> Option<Entry> {
        Entry::from_parts(self.get_parts(key)?)
    }

    /// The manifest under `key` (direct mode), when there is an intact one.
    pub fn get_manifest(&self, key: &Key) -> Option<Manifest> {
        let [kind, text]: [Vec<u8>; 2] = self.get_parts(key)?.try_into().ok()?;
        (kind == MANIFEST)
            .then(|| Manifest::decode(&text))
            .flatten()
    }

    pub fn put_manifest(&self, key: &Key, m: &Manifest) -> io::Result<()> {
        self.put_parts(key, &[MANIFEST, &m.encode()], false)
    }

    fn get_parts(&self, key: &Key) -> Option<Vec<Vec<u8>>> {
        let path = self.path(key);
        let mut file = File::open(&path).ok()?;
        let mut data = Vec::new();
        if let Err(e) = file.read_to_end(&mut data) {
            log::warn!("cannot read the cache entry {}: {e}", path.display());
            return None;
        }
        match decode(&data) {
            Some(parts) => {
                // For eviction: a hit makes the entry young again.
                let _ = file.set_times(FileTimes::new().set_modified(SystemTime::now()));
                Some(parts)
            }
            None => {
                log::warn!("the cache entry {} is damaged; removed it", path.display());
                let removed = fs::remove_file(&path).is_ok();
                let top = self.top(key);
                let _ = Stats::update(&top.join("stats"), |s| {
                    s.add(Counter::Damaged, 1);
                    if removed {
                        s.size = s.size.saturating_sub(data.len() as u64);
                        s.files = s.files.saturating_sub(1);
                    }
                });
                None
            }
        }
    }

    /// Stores `entry` under `key`, then trims its directory if the cache is over its
    /// size.
    pub fn put(&self, key: &Key, entry: &Entry) -> io::Result<()> {
        self.put_parts(key, &entry.parts(), true)
    }

    /// Stores `parts` under `key`; a `result` (not a manifest) is counted as stored.
    fn put_parts(&self, key: &Key, parts: &[&[u8]], result: bool) -> io::Result<()> {
        let data = encode(parts)?;
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.dir);
        crate::ensure_dir(dir)?;
        // Readable as the umask allows, as a compiler's output: a cache shared by users.
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(dir)?;
        tmp.write_all(&data)?;
        let top = self.top(key);
        let share = self.limit / 256;
        // Renamed into place under the lock, so that an entry stored twice at once (two
        // builds of one tree) is counted once.
        Stats::update(&top.join("stats"), |s| {
            let replaced = fs::metadata(&path).ok().map(|m| m.len());
            tmp.persist(&path).map_err(|e| e.error)?;
            s.add(Counter::Stored, u64::from(result));
            s.size = s.size.saturating_sub(replaced.unwrap_or(0)) + data.len() as u64;
            s.files += u64::from(replaced.is_none());
            if s.size > share {
                trim(&top, s, share);
            }
            Ok(())
        })?
    }

    /// Removes every entry and counter, and the compilers' identities. Goes on past what
    /// cannot be removed (another process writing there), and says what it was.
    pub fn clear(&self) -> io::Result<Stats> {
        let before = Stats::total(&self.dir);
        let mut failed = None;
        let compilers = self.dir.join("compilers");
        // Remembered sums and scans: a process that has a table mapped keeps its copy.
        for table in [super::sums::NAME, super::scans::NAME] {
            if let Err(e) = fs::remove_file(self.dir.join(table)) {
                if e.kind() != io::ErrorKind::NotFound {
                    failed = Some(e);
                }
            }
        }
        for dir in tops(&self.dir).into_iter().chain([compilers]) {
            match fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => failed = Some(e),
                _ => {}
            }
        }
        failed.map_or(Ok(before), Err)
    }
}

/// The top directories (`00` to `ff`) that exist under `dir`.
pub fn tops(dir: &Path) -> Vec<PathBuf> {
    let Ok(list) = fs::read_dir(dir) else {
        return Vec::new();
    };
    list.filter_map(|e| e.ok())
        .filter(|e| is_hex(&e.file_name().to_string_lossy(), 2))
        .map(|e| e.path())
        .collect()
}

fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Brings the entries under `top` down to `TRIM_TO` of `share` bytes, oldest first, and
/// sets `stats` to what is left; temporary files left by dead processes go too. Called
/// under the lock of `top`'s statistics.
fn trim(top: &Path, stats: &mut Stats, share: u64) {
    let mut entries = Vec::new();
    let now = SystemTime::now();
    for e in fs::read_dir(top).into_iter().flatten().flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(m) = e.metadata() else { continue };
        let mtime = m.modified().unwrap_or(now);
        if is_hex(&name, 64) && m.is_file() {
            entries.push((mtime, m.len(), e.path()));
        } else if name.starts_with(".tmp")
            && now.duration_since(mtime).unwrap_or_default() > STALE_TEMP
        {
            let _ = fs::remove_file(e.path());
        } else if is_hex(&name, 2) && m.is_dir() {
            // The entries of the earlier layout (`DIR/ab/cd/<key>`), which nothing reads.
            let _ = fs::remove_dir_all(e.path());
        }
    }
    entries.sort();
    let mut size: u64 = entries.iter().map(|e| e.1).sum();
    let mut files = entries.len() as u64;
    let target = (share as f64 * TRIM_TO) as u64;
    for (_, len, path) in entries {
        if size <= target {
            break;
        }
        if fs::remove_file(&path).is_ok() {
            size -= len;
            files -= 1;
            stats.add(Counter::Evicted, 1);
        }
    }
    stats.size = size;
    stats.files = files;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            object: b"\x7fELF object".repeat(100),
            stderr: b"x.c:1: warning: w\n".to_vec(),
            stdout: Vec::new(),
            deps: None,
        }
    }

    #[test]
    fn an_entry_reads_back_and_any_damage_is_found() {
        let data = encode(&entry().parts()).unwrap();
        let back = decode(&data).and_then(Entry::from_parts);
        assert_eq!(back, Some(entry()));
        let with_deps = Entry {
            deps: Some(b"x.o: x.c x.h\n".to_vec()),
            ..entry()
        };
        let back = decode(&encode(&with_deps.parts()).unwrap()).and_then(Entry::from_parts);
        assert_eq!(back, Some(with_deps));
        for cut in [0, 3, 5, data.len() / 2, data.len() - 1] {
            assert_eq!(decode(&data[..cut]), None, "cut at {cut}");
        }
        for at in [0, 4, 10, data.len() - 1] {
            let mut bad = data.clone();
            bad[at] ^= 1;
            assert_eq!(decode(&bad), None, "byte {at} flipped");
        }
    }

    #[test]
    fn the_oldest_entries_go_when_a_directory_is_over_its_share() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode(&entry().parts()).unwrap().len() as u64;
        // Room for three entries per top directory.
        let cache = Cache::new(dir.path().to_path_buf(), one * 3 * 256 + 255);
        let keys: Vec<Key> = (0..5u8)
            .map(|i| {
                let mut k = [0u8; 32];
                k[1] = i;
                Key(k)
            })
            .collect();
        for (i, k) in keys.iter().enumerate() {
            cache.put(k, &entry()).unwrap();
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i as u64);
            File::options()
                .write(true)
                .open(cache.path(k))
                .unwrap()
                .set_times(FileTimes::new().set_modified(t))
                .unwrap();
        }
        let left: Vec<bool> = keys.iter().map(|k| cache.path(k).exists()).collect();
        assert_eq!(left, [false, false, true, true, true]);
        let s = Stats::total(dir.path());
        assert_eq!((s.files, s.size, s.get(Counter::Evicted)), (3, one * 3, 2));
        assert_eq!(cache.get(&keys[4]), Some(entry()));
    }
}
