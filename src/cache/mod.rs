//! The compile cache: the results of compiles (object, messages) kept under a key made of
//! everything that decides them, so that a rebuild takes its objects from here instead of
//! from a host.
//!
//! - [`key`]: the keys, and the compiler's identity that goes into every one;
//! - [`store`]: the entries on disk, one file each, written whole or not at all, checked
//!   when read, and evicted oldest first when the cache is over its size;
//! - [`stats`]: the counters `distcc --cache-stats` shows, kept beside the entries;
//! - [`manifest`]: direct mode's record of what a compile read, and [`sums`], the sums
//!   of the files it names, remembered by identity.
//!
//! What may be cached (no side files, a result that does not depend on when it is made)
//! is decided by the client and `cmdline`, not here: this module stores what it is given
//! under the key it is given.

pub mod key;
pub mod manifest;
mod mapped;
pub mod scans;
pub mod stats;
pub mod store;
pub mod sums;
pub mod tree;

pub use key::{Key, KeyHasher};
pub use stats::{Counter, Stats};
pub use store::{Cache, Entry};

/// The default size limit: 5 GiB, as ccache's.
pub const DEFAULT_SIZE: u64 = 5 << 30;

/// A size as `DISTCC_CACHE_SIZE` and `--cache-size` take it: bytes, or a number with `K`,
/// `M`, `G` or `T` after it (powers of 1024; `KiB`, `MB` and the like mean the same).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit
        .trim()
        .trim_end_matches(['B', 'b'])
        .trim_end_matches('i')
    {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return None,
    };
    let n: f64 = number.parse().ok()?;
    let bytes = n * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_write_them() {
        use super::parse_size;
        assert_eq!(parse_size("5G"), Some(5 << 30));
        assert_eq!(parse_size("1.5 MiB"), Some(3 << 19));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("2kB"), Some(2048));
        for bad in ["", "G", "5X", "-1", "0", "1..2M"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
