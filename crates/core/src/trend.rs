//! Moving averages, least-squares slopes and the increasing / decreasing / stable label of one
//! series of `(Millis, value)` samples.
//!
//! This module owns the window arithmetic (which samples count as "the last N seconds") and
//! the straight-line fit that [`crate::forecast`] builds on. It does no I/O, reads no clock
//! (the caller passes `now`) and cannot panic: non-finite values are skipped, samples after
//! `now` are ignored, and too little data gives `None`, never a made-up number.
//!
//! The label's tolerance: over the samples of the window, the fitted change
//! `|slope| x span` (span = time from the oldest to the newest sample in the window) is
//! compared with `max(2% of the window's mean, floor)`, the floor given by the caller in the
//! series' own unit (e.g. 0.05 cores, 16 MiB, 2 tasks). At or under it the series is
//! [`Trend::Stable`]. The relative part keeps a busy unit's noise from reading as a trend; the
//! floor does the same near zero, where 2% of the mean is nothing. The span, not the window
//! length, is used so that a few seconds of data just after start-up are not extrapolated
//! into a 15-minute "trend".

use std::fmt;

use crate::time::Millis;

/// The relative part of the stable tolerance: 2% of the window's mean.
pub const STABLE_RELATIVE: f64 = 0.02;

/// Which way a series moves over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    Increasing,
    Decreasing,
    Stable,
}

impl Trend {
    pub const ALL: [Trend; 3] = [Trend::Increasing, Trend::Decreasing, Trend::Stable];

    /// `increasing`, `decreasing` or `stable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::Increasing => "increasing",
            Trend::Decreasing => "decreasing",
            Trend::Stable => "stable",
        }
    }
}

impl fmt::Display for Trend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a series stands and where it is going.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendSummary {
    /// The newest sample in the window.
    pub current: f64,
    /// Mean of the samples in the last 5 minutes before `now` (`None`: no sample there).
    pub ma5: Option<f64>,
    /// Mean of the samples in the last 15 minutes before `now` (`None`: no sample there).
    pub ma15: Option<f64>,
    /// Least-squares slope over the window, in the series' unit per minute.
    pub slope_per_min: f64,
    pub trend: Trend,
    /// Samples in the window that were used (finite, not after `now`).
    pub samples: usize,
}

/// Mean of the finite samples with `now - secs < t <= now`; `None` when there are none.
pub fn moving_average(points: &[(Millis, f64)], now: Millis, secs: f64) -> Option<f64> {
    let w = window(points, now, secs);
    if w.is_empty() {
        return None;
    }
    Some(w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64)
}

/// Current value, MA5, MA15, slope and label over the last `window_secs` before `now`.
///
/// `floor` is the absolute part of the stable tolerance in the series' unit (see the module
/// doc); a negative or non-finite floor counts as 0. `None` when the window holds fewer than
/// two usable samples or all of them share one instant: there is no trend to report.
pub fn summarize(
    points: &[(Millis, f64)],
    now: Millis,
    window_secs: f64,
    floor: f64,
) -> Option<TrendSummary> {
    let w = window(points, now, window_secs);
    let line = least_squares(&w)?;
    // The newest sample; ties at one instant keep the last one given.
    let current = w
        .iter()
        .fold(None::<(f64, f64)>, |acc, &(x, y)| match acc {
            Some((ax, _)) if ax > x => acc,
            _ => Some((x, y)),
        })
        .map(|p| p.1)?;
    let (x_min, x_max) = w
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
    let change = line.slope * (x_max - x_min);
    let floor = if floor.is_finite() {
        floor.max(0.0)
    } else {
        0.0
    };
    let tolerance = (STABLE_RELATIVE * line.y_mean.abs()).max(floor);
    let trend = if change.abs() <= tolerance {
        Trend::Stable
    } else if change > 0.0 {
        Trend::Increasing
    } else {
        Trend::Decreasing
    };
    Some(TrendSummary {
        current,
        ma5: moving_average(points, now, 300.0),
        ma15: moving_average(points, now, 900.0),
        slope_per_min: line.slope * 60.0,
        trend,
        samples: w.len(),
    })
}

/// The finite samples with `now - window_secs < t <= now`, as (seconds relative to `now`,
/// value). Seconds relative to `now` keep the numbers small whatever the epoch, so the sums of
/// squares below lose nothing to rounding. A non-finite or non-positive window is empty.
pub(crate) fn window(points: &[(Millis, f64)], now: Millis, window_secs: f64) -> Vec<(f64, f64)> {
    if !(window_secs.is_finite() && window_secs > 0.0) {
        return Vec::new();
    }
    // `as` saturates, and `saturating_sub` keeps an enormous window from wrapping.
    let cutoff = now.0.saturating_sub((window_secs * 1000.0) as i64);
    points
        .iter()
        .filter(|(t, v)| t.0 > cutoff && t.0 <= now.0 && v.is_finite())
        .map(|(t, v)| (t.0.saturating_sub(now.0) as f64 / 1000.0, *v))
        .collect()
}

/// An ordinary least-squares line `y = y_mean + slope * (x - x_mean)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Line {
    pub n: usize,
    pub x_mean: f64,
    pub y_mean: f64,
    /// Sum of squared deviations of x from its mean (> 0).
    pub sxx: f64,
    /// Per unit of x (per second here).
    pub slope: f64,
}

impl Line {
    pub fn at(&self, x: f64) -> f64 {
        self.y_mean + self.slope * (x - self.x_mean)
    }
}

/// Fits a line through `xy` by least squares, in two passes (means first, then centred sums)
/// which is the numerically stable way. `None` with fewer than two points or when every x is
/// the same (no slope exists).
pub(crate) fn least_squares(xy: &[(f64, f64)]) -> Option<Line> {
    if xy.len() < 2 {
        return None;
    }
    let n = xy.len() as f64;
    let x_mean = xy.iter().map(|p| p.0).sum::<f64>() / n;
    let y_mean = xy.iter().map(|p| p.1).sum::<f64>() / n;
    let (sxx, sxy) = xy.iter().fold((0.0, 0.0), |(sxx, sxy), &(x, y)| {
        let dx = x - x_mean;
        (sxx + dx * dx, sxy + dx * (y - y_mean))
    });
    if !(sxx > 0.0 && sxx.is_finite()) {
        return None;
    }
    Some(Line {
        n: xy.len(),
        x_mean,
        y_mean,
        sxx,
        slope: sxy / sxx,
    })
}

#[cfg(test)]
mod tests;
