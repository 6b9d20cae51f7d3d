//! Time as a plain number of milliseconds since the Unix epoch.
//!
//! The core never reads a clock: every function that needs "now" takes a [`Millis`]. That is
//! what lets the simulator replay a day in milliseconds and tests state times exactly.

use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub i64);

impl Millis {
    pub const fn from_secs(secs: i64) -> Millis {
        Millis(secs.saturating_mul(1000))
    }

    /// The time `secs` seconds later (saturating, never panics).
    pub fn plus_secs(self, secs: f64) -> Millis {
        if !secs.is_finite() {
            return self;
        }
        Millis(self.0.saturating_add((secs * 1000.0) as i64))
    }

    /// Seconds from `earlier` to `self`; negative when `earlier` is later.
    pub fn secs_since(self, earlier: Millis) -> f64 {
        self.0.saturating_sub(earlier.0) as f64 / 1000.0
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}
