//! Compiler names: which program names are C and C++ compiler drivers (`gcc`,
//! `x86_64-linux-gnu-g++-12`, `clang`, `cc`, ...), and whether one is gcc or clang. The one
//! place that reads a name apart, for the daemon's whitelist, the masquerade links, the
//! renaming for a host and the choice of preprocessing mode.
//!
//! It looks at names only: what a name really runs (`cc` may be either) is `rename`'s and
//! `lookup`'s business.

/// Compiler driver names, before an optional `-VERSION` suffix and after an optional
/// `TARGET-` prefix.
const DRIVERS: &[&str] = &["cc", "c++", "c89", "c99", "gcc", "g++", "clang", "clang++"];

/// A compiler's name read apart: `x86_64-linux-gnu-gcc-12` is target `x86_64-linux-gnu`,
/// driver `gcc`, version `12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Driver<'a> {
    /// The target prefix without its `-`, or empty.
    pub target: &'a str,
    /// One of the driver names (`gcc`, `clang++`, `cc`, ...).
    pub driver: &'static str,
    /// The version suffix without its `-`, or empty.
    pub version: &'a str,
}

impl Driver<'_> {
    pub fn is_gcc(&self) -> bool {
        matches!(self.driver, "gcc" | "g++")
    }

    pub fn is_clang(&self) -> bool {
        matches!(self.driver, "clang" | "clang++")
    }
}

/// Reads `name` (a file name, no directory) as a compiler driver's; `None` when it is none.
pub fn driver(name: &str) -> Option<Driver<'_>> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._+-".contains(c);
    if name.is_empty() || !name.chars().all(ok_char) {
        return None;
    }
    // A version suffix such as `-12` or `-14.0`.
    let (unversioned, version) = match name.rsplit_once('-') {
        Some((head, ver))
            if !ver.is_empty() && ver.chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            (head, ver)
        }
        _ => (name, ""),
    };
    DRIVERS.iter().find_map(|&d| {
        if unversioned == d {
            return Some(Driver {
                target: "",
                driver: d,
                version,
            });
        }
        let target = unversioned.strip_suffix(d)?.strip_suffix('-')?;
        (!target.is_empty()).then_some(Driver {
            target,
            driver: d,
            version,
        })
    })
}

/// True for the names of C and C++ compiler drivers.
pub fn is_compiler_name(name: &str) -> bool {
    driver(name).is_some()
}

/// True when the file name of `program` (a path or a name) is clang's.
pub fn is_clang(program: &str) -> bool {
    let name = program.rsplit('/').next().unwrap_or(program);
    driver(name).is_some_and(|d| d.is_clang())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_apart() {
        let d = driver("x86_64-linux-gnu-g++-12").unwrap();
        assert_eq!(
            (d.target, d.driver, d.version),
            ("x86_64-linux-gnu", "g++", "12")
        );
        let d = driver("clang++-14.0").unwrap();
        assert_eq!((d.target, d.driver, d.version), ("", "clang++", "14.0"));
        assert!(d.is_clang() && !d.is_gcc());
        assert!(driver("gcc-12").unwrap().is_gcc());
        for not in [
            "gccx", "gcc-x", "-gcc", "x-gcc;rm", "clangd", "sh", "", "gcc-",
        ] {
            assert!(driver(not).is_none(), "{not}");
        }
        assert!(is_clang("/usr/bin/aarch64-linux-gnu-clang-15"));
        assert!(!is_clang("gcc") && !is_clang("cc"));
    }
}
