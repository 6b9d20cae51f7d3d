//! Where the engine gets the time: a [`Clock`] it is given, never the system's directly.
//!
//! The monotonic clock (tokio's [`Instant`]) schedules checks, measures lag, and drives the
//! [`Timeline`] every rule counts in: cooldowns, streaks, the rate limit and CPU rates. The
//! wall clock ([`Millis`]) stamps what is stored (samples, history rows), so a wall clock that
//! jumps moves the stored times, never a rule. Tests give the engine a fake wall clock (which
//! can jump) and run tokio with paused time, so hours of checks pass in milliseconds. Only
//! [`SystemClock`] (and the edge code that calls [`now`]) reads the system's time.

use std::time::{SystemTime, UNIX_EPOCH};

use autoscaler_core::Millis;
use tokio::time::Instant;

/// The engine's source of time.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time, for timestamps.
    fn wall(&self) -> Millis;
    /// Monotonic time, for scheduling. Tokio's, so paused time in tests applies to it.
    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// The engine's time for its rules: the wall-clock time at which the engine started, moved on
/// by the monotonic clock since. It reads like a wall clock (stored times and rule times
/// compare at startup) but never jumps.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    anchor: Millis,
    start: Instant,
}

impl Timeline {
    /// A timeline that reads `clock`'s wall time now.
    pub fn starting_now(clock: &dyn Clock) -> Timeline {
        Timeline {
            anchor: clock.wall(),
            start: clock.instant(),
        }
    }

    /// The timeline's time at the monotonic `instant`.
    pub fn at(&self, instant: Instant) -> Millis {
        let since = instant.saturating_duration_since(self.start).as_millis();
        Millis(self.anchor.0 + i64::try_from(since).unwrap_or(i64::MAX / 2))
    }
}

/// How far the wall clock may drift from the timeline between two rounds of the loop before
/// the engine calls it a jump and says so. NTP slews by far less than this per second.
pub const CLOCK_JUMP_MS: i64 = 2_000;

/// The system's clock: what the daemon runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> Millis {
        now()
    }
}

/// The system's wall clock, for the edge (exports, examples); the engine asks its [`Clock`].
pub fn now() -> Millis {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
