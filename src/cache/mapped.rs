//! A file of the cache directory mapped shared by every `distcc` process, read and written
//! only as atomic 64-bit words: the tables of [`super::sums`] and [`super::scans`].
//!
//! The file has a fixed size, all of it allocated: a missing one, or one of another size,
//! is made whole beside it and renamed into place, so a mapped file never changes size
//! under the processes that map it, and a store into it never meets a hole on a full disk
//! (which would kill the process with `SIGBUS`). What the words mean, and how a reader
//! tells a torn or overwritten record from a whole one, is each table's own.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Mapped {
    words: *const AtomicU64,
    len: usize,
    pub writable: bool,
}

// SAFETY: the mapping is only read and written through atomics, and unmapped on drop.
unsafe impl Send for Mapped {}
unsafe impl Sync for Mapped {}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the pointer and length are those mmap returned.
        unsafe { libc::munmap(self.words as *mut libc::c_void, self.len * 8) };
    }
}

impl Mapped {
    /// The file at `path`, of `words` words, mapped (writable when it can be); made
    /// there when missing or of another size. `None` when it cannot be had.
    pub fn open(path: &Path, words: usize) -> Option<Mapped> {
        let (file, writable) = open_file(path, (words * 8) as u64)?;
        let prot = match writable {
            true => libc::PROT_READ | libc::PROT_WRITE,
            false => libc::PROT_READ,
        };
        // SAFETY: a fresh shared mapping of the whole file, which has exactly this size.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                words * 8,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        (p != libc::MAP_FAILED).then_some(Mapped {
            words: p as *const AtomicU64,
            len: words,
            writable,
        })
    }

    /// Word `i`, shared with the other processes.
    pub fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.len, "word {i} of {}", self.len);
        // SAFETY: i < len, so the word is inside the mapping, which lives as long as self.
        unsafe { &*self.words.add(i) }
    }

    /// `out.len()` words from word `at`.
    pub fn read(&self, at: usize, out: &mut [u64]) {
        for (i, w) in out.iter_mut().enumerate() {
            *w = self.word(at + i).load(Ordering::Relaxed);
        }
    }

    /// `words` from word `at`; the mapping must be writable.
    pub fn write(&self, at: usize, words: &[u64]) {
        debug_assert!(self.writable);
        for (i, w) in words.iter().enumerate() {
            self.word(at + i).store(*w, Ordering::Relaxed);
        }
    }
}

/// The table's file, and whether it can be written.
fn open_file(path: &Path, size: u64) -> Option<(File, bool)> {
    let right_size = |f: &File| f.metadata().is_ok_and(|m| m.len() == size);
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) if right_size(&f) => {
            let writable = allocated(&f, size);
            return Some((f, writable));
        }
        Ok(_) => {}
        Err(_) => {
            if let Ok(f) = File::open(path) {
                return right_size(&f).then_some((f, false));
            }
        }
    }
    let dir = path.parent()?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .ok()?;
    tmp.as_file().set_len(size).ok()?;
    if !allocated(tmp.as_file(), size) {
        return None;
    }
    let f = tmp.persist(path).ok()?;
    Some((f, true))
}

/// Whether the file's blocks are all allocated (made so now if need be).
fn allocated(f: &File, size: u64) -> bool {
    // SAFETY: a plain system call on an open descriptor.
    unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, size as libc::off_t) == 0 }
}
