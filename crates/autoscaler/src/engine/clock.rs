//! Where the engine gets the time: a [`Clock`] it is given, never the system's directly.
//!
//! The wall clock ([`Millis`]) stamps samples and history rows; the monotonic one (tokio's
//! [`Instant`]) schedules checks and measures lag. Tests give the engine a fake wall clock and
//! run tokio with paused time, so hours of checks pass in milliseconds. Only
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
