//! Linear forecasts with 95% prediction intervals, and the predictive scale-up trigger.
//!
//! [`forecast`] fits an ordinary least-squares line to the samples of a window ending at `now`
//! and extrapolates it to each horizon, with the textbook prediction interval
//! `ŷ ± t(0.975, n−2) · s · sqrt(1 + 1/n + (x0 − x̄)² / Sxx)` (`s` the residual standard error,
//! the last two terms the leverage of the horizon). The interval is exact when the series is
//! a straight line plus independent Gaussian noise; real usage is neither, so how well it
//! covers is measured on traces (docs/DECISIONS.md, "Forecast calibration") rather than
//! assumed. [`predicted_breach`] turns a forecast into the predictive policy's trigger.
//!
//! This module does no I/O and reads no clock. It cannot panic on input and never guesses:
//! with fewer than [`MIN_SAMPLES`] usable samples it returns [`NotEnoughData`] ("n samples,
//! need m"). Non-finite values are skipped (not counted), samples after `now` are ignored, and
//! every value, lower and upper bound is clamped at 0 because the series forecast here (cores,
//! bytes, tasks, agents) cannot be negative.

use std::fmt;

use crate::time::Millis;
use crate::trend::{least_squares, window};

pub mod online;

pub use online::{Model, SeriesForecaster};

/// The fewest samples a forecast is made from. Below ten the t quantile and the residual
/// error are so uncertain (t(0.975, 8) = 2.31 against 1.96) that the interval says little.
pub const MIN_SAMPLES: usize = 10;

/// The value forecast at one horizon, with its 95% prediction interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastPoint {
    /// Seconds after `now`.
    pub horizon_secs: f64,
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
    /// The model behind `value`: [`Model::Regression`] for the textbook line and interval of
    /// [`forecast`], an online model once [`online`] forecasts are merged in.
    pub model: Model,
    /// Whether the interval is calibrated on at least [`online::MIN_ERRORS`] of the series'
    /// own past errors at this horizon. False for the textbook interval, whose coverage on
    /// real usage is not known.
    pub enough_data: bool,
    /// Past forecasts scored at this horizon.
    pub errors: u32,
    /// Share of the last (up to 128) calibrated intervals that held the actual value.
    pub recent_coverage: Option<f64>,
}

/// A fitted line and its forecasts, one per requested horizon, in the order requested.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Samples the line was fitted to.
    pub n: usize,
    /// In the series' unit per minute.
    pub slope_per_min: f64,
    /// `s = sqrt(Σ residual² / (n − 2))`, in the series' unit.
    pub residual_se: f64,
    pub points: Vec<ForecastPoint>,
}

/// Why no forecast was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NotEnoughData {
    /// Fewer usable samples in the window than needed.
    TooFew { samples: usize, needed: usize },
    /// Enough samples, but all at one instant: no slope can be fitted.
    NoTimeSpread { samples: usize },
    /// The samples span less time than the shortest horizon: extrapolating further ahead
    /// than the data reaches back is a guess (15 s of a warming-up service do not tell the
    /// next half hour).
    ShortSpan { span_secs: f64, needed_secs: f64 },
}

impl fmt::Display for NotEnoughData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotEnoughData::TooFew { samples, needed } => write!(
                f,
                "{samples} samples, need {needed}: wait for more history or widen the window"
            ),
            NotEnoughData::ShortSpan {
                span_secs,
                needed_secs,
            } => write!(
                f,
                "the samples span {span_secs:.0} s, need {needed_secs:.0} s (the shortest horizon): wait for more history"
            ),
            NotEnoughData::NoTimeSpread { samples } => write!(
                f,
                "{samples} samples, all at the same instant: need samples spread over time"
            ),
        }
    }
}

impl std::error::Error for NotEnoughData {}

impl Default for ForecastPoint {
    /// Nothing forecast yet: zeros, uncalibrated.
    fn default() -> Self {
        ForecastPoint {
            horizon_secs: 0.0,
            value: 0.0,
            lower: 0.0,
            upper: 0.0,
            model: Model::Persistence,
            enough_data: false,
            errors: 0,
            recent_coverage: None,
        }
    }
}

/// Forecasts the series at each of `horizons_secs` after `now` from the samples of the last
/// `window_secs` (`now - window_secs < t <= now`). Non-finite horizons are skipped.
pub fn forecast(
    points: &[(Millis, f64)],
    now: Millis,
    window_secs: f64,
    horizons_secs: &[f64],
) -> Result<Forecast, NotEnoughData> {
    let xy = window(points, now, window_secs);
    let n = xy.len();
    if n < MIN_SAMPLES {
        return Err(NotEnoughData::TooFew {
            samples: n,
            needed: MIN_SAMPLES,
        });
    }
    let line = least_squares(&xy).ok_or(NotEnoughData::NoTimeSpread { samples: n })?;
    // Residuals from the fitted line itself, not `Syy - slope·Sxy`, which can come out
    // slightly negative on a perfect line.
    let ssr: f64 = xy.iter().map(|&(x, y)| (y - line.at(x)).powi(2)).sum();
    let df = n - 2;
    let s = (ssr / df as f64).sqrt();
    let t = t_975(df);
    let points = horizons_secs
        .iter()
        .filter(|h| h.is_finite())
        .map(|&h| {
            let value = line.at(h);
            let leverage = 1.0 / n as f64 + (h - line.x_mean).powi(2) / line.sxx;
            let half = t * s * (1.0 + leverage).sqrt();
            ForecastPoint {
                horizon_secs: h,
                value: value.max(0.0),
                lower: (value - half).max(0.0),
                upper: (value + half).max(0.0),
                model: Model::Regression,
                enough_data: false,
                errors: 0,
                recent_coverage: None,
            }
        })
        .collect();
    Ok(Forecast {
        n,
        slope_per_min: line.slope * 60.0,
        residual_se: s,
        points,
    })
}

/// The nearest horizon whose calibrated upper bound is over `threshold_percent` of `limit`
/// (strictly, like the controller's thresholds), or `None`. Scaling up on the upper bound acts
/// while a breach is still only plausible, which is the point of predicting. Only calibrated
/// points count ([`ForecastPoint::enough_data`]): an uncalibrated interval is wide on purpose
/// and would fire on every young unit. A limit that is not positive and finite, or a
/// non-finite threshold, never triggers.
pub fn predicted_breach(f: &Forecast, limit: f64, threshold_percent: f64) -> Option<ForecastPoint> {
    if !(limit.is_finite() && limit > 0.0 && threshold_percent.is_finite()) {
        return None;
    }
    let level = limit * threshold_percent / 100.0;
    f.points
        .iter()
        .filter(|p| p.enough_data && p.upper > level)
        .min_by(|a, b| a.horizon_secs.total_cmp(&b.horizon_secs))
        .copied()
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (infinite for 0).
///
/// Degrees of freedom 1 to 30 come from a table rounded to six decimals (error ≤ 5e-7).
/// Above 30 the Cornish-Fisher expansion around the normal quantile (Abramowitz & Stegun
/// 26.7.5, four terms) is used; its error is under 3e-8 at 31 and falls as df grows. Both were
/// checked against numerical integration of the t density.
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
        2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
        2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
        2.048407, 2.045230, 2.042272,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            let z = 1.959_963_984_540_054_f64;
            let v = df as f64;
            let (z3, z5, z7, z9) = (z.powi(3), z.powi(5), z.powi(7), z.powi(9));
            z + (z3 + z) / (4.0 * v)
                + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
                + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * v.powi(3))
                + (79.0 * z9 + 776.0 * z7 + 1482.0 * z5 - 1920.0 * z3 - 945.0 * z)
                    / (92_160.0 * v.powi(4))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
