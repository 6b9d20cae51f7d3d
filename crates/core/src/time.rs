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

/// Where in a span of time a unit's own period falls, in `[0, 1)`, from a key of the unit's
/// (its name, its cgroup's path): stable across runs and builds (FNV-1a). Units that start
/// together then renew, refresh or re-read at their own moments, not all in one round.
pub fn spread(key: &[u8]) -> f64 {
    let hash = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_is_stable_in_range_and_spread_out() {
        let keys: Vec<String> = (0..200)
            .map(|i| format!("bench-idle-{i:04}.service"))
            .collect();
        let at: Vec<f64> = keys.iter().map(|k| spread(k.as_bytes())).collect();
        assert!(at.iter().all(|f| (0.0..1.0).contains(f)), "{at:?}");
        // The same key, the same place; and 200 keys fall in every tenth of the span.
        assert_eq!(spread(b"a.service"), spread(b"a.service"));
        for tenth in 0..10 {
            let lo = f64::from(tenth) / 10.0;
            assert!(
                at.iter().any(|f| (lo..lo + 0.1).contains(f)),
                "{tenth}: {at:?}"
            );
        }
    }
}
