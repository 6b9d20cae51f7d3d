//! [`UnitName`]: a systemd unit name that has passed systemd's naming rules.
//!
//! Unit names reach us from users (flags, URLs, MCP arguments) and end up in D-Bus calls and
//! file paths, so the type cannot hold a path separator, `..`, or anything systemd would not
//! accept itself.

use std::fmt;
use std::sync::Arc;

/// A valid systemd unit name such as `autocoder-ui.service` or `app@1.service`. Shared, so
/// that a clone is a count, not a copy: a check clones its unit's name about six times (its
/// reading, its rows for the store, its snapshot), six allocations a check before.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitName(Arc<str>);

/// Why a string is not a unit name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidUnitName {
    pub name: String,
    pub why: &'static str,
}

impl fmt::Display for InvalidUnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a valid systemd unit name: {}",
            self.name, self.why
        )
    }
}

impl std::error::Error for InvalidUnitName {}

const SUFFIXES: [&str; 11] = [
    ".service",
    ".socket",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".target",
    ".path",
    ".timer",
    ".slice",
    ".scope",
];

impl UnitName {
    /// Checks `name` against systemd's rules (`systemd.unit(5)`, `unit_name_is_valid`).
    pub fn parse(name: &str) -> Result<UnitName, InvalidUnitName> {
        let err = |why| {
            Err(InvalidUnitName {
                name: name.chars().take(300).collect(),
                why,
            })
        };
        if name.is_empty() || name.len() > 255 {
            return err("it must be 1 to 255 characters long");
        }
        let Some(suffix) = SUFFIXES.iter().find(|s| name.ends_with(**s)) else {
            return err("it must end in a unit type such as .service, .slice or .scope");
        };
        let prefix = &name[..name.len() - suffix.len()];
        if prefix.is_empty() || prefix.starts_with('@') {
            return err("the name before the type suffix is empty");
        }
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c))
        {
            return err("only ASCII letters, digits and \":-_.\\@\" are allowed");
        }
        if prefix.matches('@').count() > 1 {
            return err("at most one '@' (a template instance) is allowed");
        }
        Ok(UnitName(Arc::from(name)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        let cases: [(&str, bool); 14] = [
            ("autocoder-ui.service", true),
            ("app@1.service", true),
            ("user-1000.slice", true),
            ("a\\x2db.mount", true),
            ("run-r1.scope", true),
            ("", false),
            ("autocoder-ui", false),
            (".service", false),
            ("../etc/passwd.service", false),
            ("a/b.service", false),
            ("a b.service", false),
            ("a@b@c.service", false),
            ("é.service", false),
            ("x.servicex", false),
        ];
        for (name, ok) in cases {
            assert_eq!(UnitName::parse(name).is_ok(), ok, "{name:?}");
        }
        assert!(UnitName::parse(&format!("{}.service", "a".repeat(300))).is_err());
    }
}
