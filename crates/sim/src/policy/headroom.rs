//! The headroom policy: raise a limit at the first sign of pressure, lower it slowly and only
//! when a long window proves the room is unused.
//!
//! Why this shape (docs/DECISIONS.md has the longer argument): the cost of a limit that is
//! too low (throttling, an OOM kill) lands at once, while the cost of one that is too high is
//! slack, paid slowly. So the way up reacts to one observation, with no streak and no
//! cooldown, and the way down waits for evidence over a window and a hold time.
//!
//! - Up: when usage passes [`UP_UTIL`] of the limit, the limit becomes usage / [`TARGET_UTIL`];
//!   when the limit was hit (throttled, OOM) the true demand is unknown, so the limit at least
//!   doubles (CPU) or grows by half (memory), whichever is more.
//! - Down: when the peak over the last window, divided by [`TARGET_UTIL`], is under
//!   [`DOWN_TRIGGER`] of the limit, and the limit has not moved for the hold time, the limit
//!   falls to that value, by at most half in one move.
//! - The band between the two rules (usage between about 40% and 85% of the limit) holds, so a
//!   noisy workload does not make the limit flap. Limits are rounded up (CPU to 5%, memory to
//!   256 MiB) and kept within the bounds.
//!
//! All constants are ratios or durations, not sizes, and none was fitted to a trace.
//! This module does no I/O.

use std::collections::VecDeque;

use autoscaler_core::{Bounds, Limits, MIB, Resource};

use super::{Observation, Scaler, bytes, cores};

/// After a move, the recent peak sits at this share of the new limit.
pub const TARGET_UTIL: f64 = 0.6;
/// Usage above this share of the limit is pressure: raise now.
pub const UP_UTIL: f64 = 0.85;
/// Lower only when the window's peak / TARGET_UTIL is below this share of the limit.
pub const DOWN_TRIGGER: f64 = 0.7;
/// The largest cut in one move.
pub const MAX_CUT: f64 = 0.5;
/// CPU at its limit: grow at least this much (demand above a limit is invisible).
pub const CPU_LIMITED_GROWTH: f64 = 2.0;
/// Memory after an OOM kill: grow at least this much.
pub const OOM_GROWTH: f64 = 1.5;
/// How far back the way down looks, and how long a limit holds before it may fall.
pub const CPU_WINDOW_SECS: f64 = 2.0 * 3600.0;
pub const CPU_HOLD_SECS: f64 = 30.0 * 60.0;
/// Memory is slower to free and an OOM kill costs more than throttling: longer on both.
pub const MEMORY_WINDOW_SECS: f64 = 6.0 * 3600.0;
pub const MEMORY_HOLD_SECS: f64 = 60.0 * 60.0;
const CPU_GRAIN_PERCENT: f64 = 5.0;
const MEMORY_GRAIN_BYTES: f64 = 256.0 * MIB as f64;

/// The maximum over a sliding time window, in amortised O(1) (a monotonic deque).
#[derive(Debug, Clone, Default)]
struct WindowMax {
    q: VecDeque<(f64, f64)>,
}

impl WindowMax {
    fn push(&mut self, t: f64, v: f64, window: f64) -> f64 {
        while self.q.back().is_some_and(|&(_, b)| b <= v) {
            self.q.pop_back();
        }
        self.q.push_back((t, v));
        while self.q.front().is_some_and(|&(ft, _)| ft < t - window) {
            self.q.pop_front();
        }
        self.q.front().map_or(v, |&(_, m)| m)
    }
}

/// One resource's state: its window and when its limit last moved.
#[derive(Debug, Clone, Default)]
struct Track {
    peak: WindowMax,
    last_move: Option<f64>,
}

impl Track {
    /// The new limit for this resource, in the same unit as `used` and `limit`.
    #[allow(clippy::too_many_arguments)]
    fn next(
        &mut self,
        t: f64,
        used: f64,
        limit: f64,
        hit: bool,
        growth: f64,
        window: f64,
        hold: f64,
    ) -> f64 {
        let peak = self.peak.push(t, used, window);
        let since = self.last_move.map_or(f64::INFINITY, |m| t - m);
        if hit || used > UP_UTIL * limit {
            let floor = if hit { limit * growth } else { 0.0 };
            return (used / TARGET_UTIL).max(floor);
        }
        let wanted = peak / TARGET_UTIL;
        if since >= hold && wanted < DOWN_TRIGGER * limit {
            return wanted.max(limit * (1.0 - MAX_CUT));
        }
        limit
    }
}

/// Our policy (module docs).
#[derive(Debug, Clone)]
pub struct Headroom {
    bounds: Bounds,
    cpu: Track,
    memory: Track,
    started: Option<f64>,
}

impl Headroom {
    pub fn new(bounds: Bounds) -> Headroom {
        Headroom {
            bounds,
            cpu: Track::default(),
            memory: Track::default(),
            started: None,
        }
    }

    fn fit(&self, r: Resource, v: f64, grain: f64) -> u64 {
        let (lo, hi) = self.bounds.range(r);
        ((v / grain).ceil() * grain).clamp(lo as f64, hi as f64) as u64
    }
}

impl Scaler for Headroom {
    fn observe(&mut self, o: &Observation) -> Limits {
        let t = o.now.0 as f64 / 1000.0;
        // The start counts as a move: the first cut waits a hold time for evidence.
        let start = *self.started.get_or_insert(t);
        self.cpu.last_move.get_or_insert(start);
        self.memory.last_move.get_or_insert(start);
        let mut new = o.current;

        let cur = cores(&o.current) * 100.0;
        if cur.is_finite() {
            let want = self.cpu.next(
                t,
                o.cpu_used * 100.0,
                cur,
                o.cpu_limited,
                CPU_LIMITED_GROWTH,
                CPU_WINDOW_SECS,
                CPU_HOLD_SECS,
            );
            let q = self.fit(Resource::Cpu, want, CPU_GRAIN_PERCENT);
            if q as f64 != cur {
                new = new.with(Resource::Cpu, q);
                self.cpu.last_move = Some(t);
            }
        }
        let cur = bytes(&o.current);
        if let (Some(used), true) = (o.memory_used, cur.is_finite()) {
            let want = self.memory.next(
                t,
                used,
                cur,
                o.oom,
                OOM_GROWTH,
                MEMORY_WINDOW_SECS,
                MEMORY_HOLD_SECS,
            );
            let m = self.fit(Resource::Memory, want, MEMORY_GRAIN_BYTES);
            if m as f64 != cur {
                new = new.with(Resource::Memory, m);
                self.memory.last_move = Some(t);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window fed (t, v) pairs returns these maxima.
    fn check(window: f64, pushes: &[(f64, f64)], expect: &[f64]) {
        let mut w = WindowMax::default();
        let got: Vec<f64> = pushes.iter().map(|&(t, v)| w.push(t, v, window)).collect();
        assert_eq!(got, expect, "{pushes:?}");
    }

    #[test]
    fn window_max_table() {
        check(
            10.0,
            &[(0.0, 1.0), (5.0, 3.0), (8.0, 2.0), (16.0, 1.0), (19.0, 0.5)],
            &[1.0, 3.0, 3.0, 2.0, 1.0],
        );
        check(0.0, &[(0.0, 5.0), (1.0, 1.0)], &[5.0, 1.0]);
    }
}
