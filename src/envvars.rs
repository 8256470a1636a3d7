//! How distcc reads its environment variables, for both programs' configurations
//! (`client::config`, `daemon::config`): booleans are exactly `1` or `0` (anything else is
//! the default, as in distcc 3.4), numbers must be numbers, and a bad value is an error
//! that names the variable. Each program reads its variables once, through [`Vars`].

use std::ffi::OsString;
use std::fmt;

/// A variable whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue {
    pub name: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Bad {} value {:?}: expected {}",
            self.name, self.value, self.expected
        )
    }
}

impl std::error::Error for BadValue {}

/// Variables as a lookup function gives them: the process environment, or a test's own.
pub struct Vars<F: Fn(&str) -> Option<OsString>>(pub F);

impl<F: Fn(&str) -> Option<OsString>> Vars<F> {
    pub fn os(&self, name: &str) -> Option<OsString> {
        (self.0)(name)
    }

    pub fn text(&self, name: &str) -> Option<String> {
        self.os(name).map(|v| v.to_string_lossy().into_owned())
    }

    /// A boolean: exactly `1` or `0`, else `default`.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        match self.text(name).as_deref() {
            Some("1") => true,
            Some("0") => false,
            _ => default,
        }
    }

    /// A whole number of at least `min`, `default` when unset.
    pub fn number(&self, name: &'static str, default: u64, min: u64) -> Result<u64, BadValue> {
        let Some(value) = self.text(name) else {
            return Ok(default);
        };
        match value.trim().parse::<u64>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(BadValue {
                name,
                value,
                expected: if min > 0 {
                    "a whole number of at least 1"
                } else {
                    "a whole number"
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_distcc_reads_them() {
        let vars = Vars(|name: &str| match name {
            "ONE" => Some("1".into()),
            "YES" => Some("yes".into()),
            "N" => Some(" 5 ".into()),
            "ZERO" => Some("0".into()),
            _ => None,
        });
        assert!(vars.flag("ONE", false) && vars.flag("YES", true) && !vars.flag("YES", false));
        assert!(!vars.flag("ZERO", true) && vars.flag("UNSET", true));
        assert_eq!(vars.number("N", 1, 1), Ok(5));
        assert_eq!(vars.number("UNSET", 7, 1), Ok(7));
        let bad = vars.number("ZERO", 7, 1).unwrap_err();
        assert_eq!(bad.name, "ZERO");
        assert!(bad.to_string().contains("at least 1"), "{bad}");
        assert_eq!(vars.number("YES", 7, 0).unwrap_err().value, "yes");
    }
}
