//! Online point forecasts chosen by their recent error, with intervals calibrated on the
//! series' own past errors (online conformal prediction).
//!
//! A [`SeriesForecaster`] sees one series sample by sample ([`SeriesForecaster::observe`]) and
//! keeps, per horizon, four cheap models: persistence, an exponentially weighted mean, a damped
//! trend (Holt's linear method, the discounted least-squares line) and the daily seasonal
//! naive (the value a day before the target, once a day of history exists). Every forecast it
//! would issue is remembered until its target time, then scored against what happened. Per
//! horizon it issues the model whose recent absolute error beats persistence's by more than
//! noise ([`Model`]), and an interval from quantile tracking on the issued forecast's own
//! errors in units of their recent mean absolute error (Angelopoulos, Candès & Tibshirani
//! 2023, "Conformal PID control for time series prediction", the P term): each bound moves up
//! by `η (1 − α)` after a miss and down by `η α` after a hit, so over any sequence of errors
//! the share of misses on each side tends to `α` = 2.5% (|misses/T − α| ≤ (B + η) / (η T),
//! `B` the largest normalised error). The step is divided by the number of forecasts in flight,
//! whose target windows overlap: one jump seen by all of them moves a bound by one step.
//! Until a horizon has [`MIN_ERRORS`] scored errors there is no calibration:
//! [`ForecastPoint::enough_data`] is false and the interval is deliberately wide.
//!
//! Cost: per sample and horizon a constant amount of work (each remembered forecast is pushed
//! and popped once; at most one is remembered per [`SCORE_EVERY_SECS`], and once the horizon is
//! calibrated per tenth of the horizon, so 10 wait at a time then), and memory bounded
//! by a day of 5-minute buckets for the seasonal model. No I/O, no clock: time comes with each
//! sample.

use std::collections::VecDeque;

use super::ForecastPoint;
use crate::time::Millis;

/// The horizons forecast: 5, 15 and 30 minutes.
pub const HORIZONS_SECS: [f64; 3] = [300.0, 900.0, 1800.0];

/// Errors a horizon needs before its interval is calibrated. 19 is the smallest
/// number of exchangeable errors whose split-conformal 95% quantile is finite: the rank
/// `⌈(n + 1) · 0.95⌉` is at most `n` only from `n = 19` on, and it is then their largest.
/// Forecasts whose target windows overlap share their errors, so 19 of them may tell less:
/// the first interval is therefore never narrower than [`PRIOR_Q`] mean errors.
pub const MIN_ERRORS: u32 = 19;

/// The first calibrated interval is at least this many mean absolute errors wide on each side:
/// `ln 20` ≈ 3.0 is the 95% two-sided quantile of a Laplace error in units of its mean absolute
/// error (1.96 · 1.25 ≈ 2.46 for a normal one); usage errors are heavier-tailed than normal.
/// Nineteen overlapping errors can all come from one calm spell; this keeps their largest
/// from starting the interval too narrow. The tracking then moves it either way.
const PRIOR_Q: f64 = 2.995_732_273_553_991;

/// Forecasts are remembered for scoring at most once a minute. Daemons sample every few
/// seconds; errors of forecasts made seconds apart are nearly the same error, so scoring them
/// all adds cost, not information, and would let a minute's burst of samples dominate.
pub const SCORE_EVERY_SECS: f64 = 60.0;

/// Once a horizon is calibrated, its forecasts are remembered at most once per this share of
/// it: two forecasts made a tenth of the horizon apart share nine tenths of their target
/// window, so their errors are nearly one error. Scoring fewer changes neither the weight a
/// stretch of time has (the step is divided by the forecasts in flight) nor the coverage bound,
/// which goes with the horizon over the time scored, not with the count; it keeps 10
/// forecasts in flight at 30 minutes where one a minute kept 30 (a daemon checking every
/// second held 53 a series, 2 KB; docs/BENCHMARKS.md, "Memory", session 15). Before
/// calibration one a minute is kept, so the first interval comes as soon as before.
const SCORE_SHARE: f64 = 0.1;

/// Miss rate allowed on each side of the 95% interval.
const ALPHA_SIDE: f64 = 0.025;

/// The tracking step, in units of the recent mean absolute error, per independent error
/// (`STEP / k` per scored error with `k` forecasts in flight).
/// The coverage bound above is `(B + η)/(η T)`, `B` the largest normalised error; with
/// errors whose largest is about five mean errors, `η = 0.5` keeps it near
/// `(5 + 0.5) / (0.5 T)` = 11/T: 4% over one day of 5-minute samples (T ≈ 280), under 1% over
/// a week. A larger step follows drift faster but makes the width jumpier; a smaller one would
/// need more than a day to settle.
const STEP: f64 = 0.5;

/// Recent means weigh the last [`MIN_ERRORS`] errors most: an exponentially weighted mean
/// with weight `1 / MIN_ERRORS`, the running mean before that. The interval's scale follows
/// the last 19 scored errors, so it widens and narrows with the series' volatility; the
/// models' advantages follow the last 19 independent ones (see `Recent`).
const RECENT_WEIGHT: f64 = 1.0 / MIN_ERRORS as f64;

/// A challenger replaces persistence only when its advantage in recent absolute error is more
/// than two standard errors of that advantage (the usual 5% test); smaller gains are noise.
const NOISE_Z: f64 = 2.0;

/// Holt's smoothing time constants, in seconds, set by the horizons rather than fitted: the
/// level averages over the shortest horizon (5 min), the trend over the longest (30 min), and
/// the trend is extrapolated at most `DAMP_SECS` ahead (damped like `φ^k`, in continuous
/// time), because usage trends rarely last as long as the longest horizon.
const LEVEL_SECS: f64 = 300.0;
const TREND_SECS: f64 = 1800.0;
const DAMP_SECS: f64 = 900.0;

/// The seasonal model keeps one day in buckets of the shortest horizon.
const DAY_SECS: i64 = 86_400;
const BUCKET_SECS: i64 = 300;
const BUCKETS: usize = (DAY_SECS / BUCKET_SECS) as usize;

/// A point forecast model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// The least-squares line over the forecast window (`forecast::forecast`), with its
    /// textbook interval: shown only where no online forecaster has seen the series.
    Regression,
    /// The last value.
    Persistence,
    /// An exponentially weighted mean whose time constant is the horizon.
    Ewma,
    /// Holt's damped linear trend.
    DampedTrend,
    /// The value (5-minute mean) one day before the target time.
    SeasonalNaive,
}

/// The online models, in the order their forecasts are kept.
const MODELS: [Model; 4] = [
    Model::Persistence,
    Model::Ewma,
    Model::DampedTrend,
    Model::SeasonalNaive,
];

impl Model {
    /// Every model a forecast point can name: the regression, then the online ones.
    pub const ALL: [Model; 5] = [
        Model::Regression,
        Model::Persistence,
        Model::Ewma,
        Model::DampedTrend,
        Model::SeasonalNaive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Model::Regression => "regression",
            Model::Persistence => "persistence",
            Model::Ewma => "ewma",
            Model::DampedTrend => "damped_trend",
            Model::SeasonalNaive => "seasonal_naive",
        }
    }
}

/// A forecast waiting for its target time: 32 bytes, where the same in `f64`s took 72 (a
/// unit keeps about 25 a series once calibrated, three series a unit). The value it was made
/// from is kept whole; the other forecasts, relative to it, and the bounds are kept to 24 bits,
/// a relative error of 6e-8 on a difference that usage's noise makes far larger. A steady
/// series' forecasts are its value exactly. The issued forecast is the issued model's, at
/// least zero, so the model's index stands for it; the due time is counted from its horizon's
/// [`Horizon::base`] (it took an `i64` and an `f32` beside it: 40 bytes).
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Persistence's forecast: the last value when the forecast was made.
    last: f64,
    /// Milliseconds after [`Horizon::base`] in the low [`DUE_BITS`] bits, the issued model's
    /// index in [`MODELS`] in the two above.
    due: u32,
    /// The other models' forecasts less `last`, in [`MODELS`] order after persistence (NaN
    /// where a model had none).
    others: [f32; 3],
    /// The bounds' distances from the issued value, when calibrated (NaN otherwise).
    band: [f32; 2],
}

/// Bits of [`Pending::due`] that count milliseconds: 12 days, where the forecasts in flight
/// span a horizon (half an hour).
const DUE_BITS: u32 = 30;
const DUE_MASK: u32 = (1 << DUE_BITS) - 1;

impl Pending {
    fn new(due_ms: u32, preds: &[f64; 4], model: usize, band: Option<(f64, f64)>) -> Pending {
        let last = preds[0];
        let (lo, up) = band.unwrap_or((f64::NAN, f64::NAN));
        debug_assert!(model < MODELS.len());
        Pending {
            last,
            due: due_ms.min(DUE_MASK) | ((model as u32) << DUE_BITS),
            others: [1, 2, 3].map(|i| (preds[i] - last) as f32),
            band: [lo as f32, up as f32],
        }
    }

    fn due_ms(&self) -> u32 {
        self.due & DUE_MASK
    }

    /// Model `i`'s forecast ([`MODELS`] order), NaN where it had none.
    fn pred(&self, i: usize) -> f64 {
        match i {
            0 => self.last,
            _ => self.last + f64::from(self.others[i - 1]),
        }
    }

    /// The forecast issued: its model's, and never under zero, as shown.
    fn issued(&self) -> f64 {
        self.pred((self.due >> DUE_BITS) as usize).max(0.0)
    }

    fn band(&self) -> Option<(f64, f64)> {
        let [lo, up] = self.band.map(f64::from);
        (!lo.is_nan()).then_some((lo, up))
    }
}

/// An exponentially weighted mean and spread of a stream of numbers that may come in
/// overlapping runs: with `k` forecasts in flight, `k` consecutive errors share most of their
/// target window and tell about as much as one. So the mean weighs the last
/// [`MIN_ERRORS`]` · k` values (the running mean before that), and its standard error counts
/// `k` of them as one.
#[derive(Debug, Clone, Copy, Default)]
struct Recent {
    n: u32,
    mean: f64,
    mean_sq: f64,
    k: u32,
}

impl Recent {
    fn push(&mut self, x: f64, k: u32) {
        self.n = self.n.saturating_add(1);
        self.k = k.max(1);
        let w = (1.0 / f64::from(self.n)).max(self.floor_weight());
        self.mean += w * (x - self.mean);
        self.mean_sq += w * (x * x - self.mean_sq);
    }

    fn floor_weight(&self) -> f64 {
        RECENT_WEIGHT / f64::from(self.k.max(1))
    }

    /// Whether the mean rests on at least [`MIN_ERRORS`] independent values.
    fn settled(&self) -> bool {
        self.n >= MIN_ERRORS.saturating_mul(self.k.max(1))
    }

    /// The standard error of the mean, with the effective sample size of the weights.
    fn std_error(&self) -> f64 {
        let var = (self.mean_sq - self.mean * self.mean).max(0.0);
        let w = self.floor_weight();
        let n_eff = f64::from(self.n).min((2.0 - w) / w) / f64::from(self.k.max(1));
        (var / n_eff.max(1.0)).sqrt()
    }
}

#[derive(Debug, Clone)]
struct Horizon {
    secs: f64,
    /// How far ahead the damped trend is extrapolated: `DAMP_SECS · (1 − e^(−h/DAMP_SECS))`.
    damped_secs: f64,
    pending: VecDeque<Pending>,
    /// What the pending forecasts' due times count from.
    base: Millis,
    last_issue: Option<Millis>,
    /// The EWMA model's level for this horizon.
    ewma: Option<f64>,
    /// Per challenger (EWMA, trend, seasonal): persistence's absolute error minus its own.
    advantage: [Recent; 3],
    /// The issued forecast's recent mean absolute error: the interval's scale.
    scale: Recent,
    errors: u32,
    /// The largest absolute error before calibration.
    warm_max: f64,
    /// The lower and upper bounds' distances from the value, in units of `scale`, once
    /// calibrated (the tracked quantiles of the normalised errors).
    band: Option<(f64, f64)>,
    /// Outcomes of the last calibrated intervals, newest in bit 0.
    recent_hits: u128,
    recent_n: u32,
}

impl Horizon {
    fn new(secs: f64) -> Horizon {
        Horizon {
            secs,
            damped_secs: DAMP_SECS * -(-secs / DAMP_SECS).exp_m1(),
            pending: VecDeque::new(),
            base: Millis(0),
            last_issue: None,
            ewma: None,
            advantage: [Recent::default(); 3],
            scale: Recent::default(),
            errors: 0,
            warm_max: 0.0,
            band: None,
            recent_hits: 0,
            recent_n: 0,
        }
    }

    /// Remembers a forecast due at `due`, after those remembered before it, and gives back
    /// the room the warm-up's one a minute took once fewer wait.
    fn remember(&mut self, due: Millis, preds: &[f64; 4], model: usize, band: Option<(f64, f64)>) {
        if self.pending.is_empty() {
            self.base = due;
        } else if due.0 - self.base.0 > i64::from(DUE_MASK) {
            // The forecasts in flight span a horizon: counted from the oldest, they fit again.
            let shift = self.pending.front().map_or(0, Pending::due_ms);
            for p in &mut self.pending {
                p.due -= shift;
            }
            self.base = Millis(self.base.0 + i64::from(shift));
        }
        let ms = u32::try_from(due.0 - self.base.0).unwrap_or(DUE_MASK);
        let most = self.most_in_flight();
        if self.pending.len() == self.pending.capacity() {
            // Room for as many as can wait at once, not the next power of two.
            self.pending
                .reserve_exact(most.max(self.pending.len() + 1) - self.pending.len());
        }
        self.pending.push_back(Pending::new(ms, preds, model, band));
        if self.pending.len() <= most && self.pending.capacity() > most {
            self.pending.shrink_to(most);
        }
    }

    /// Whether a forecast may be remembered now, `at`: a horizon's spacing has passed since
    /// the last, and, before calibration, fewer wait than calibration needs. The first
    /// [`MIN_ERRORS`] calibrate the interval whenever the rest are made, so a 30-minute
    /// horizon at one a minute kept 31 in flight where 19 calibrate it at the same time.
    fn may_remember(&self, at: Millis) -> bool {
        let spaced = self
            .last_issue
            .is_none_or(|t| at.secs_since(t) >= self.score_every());
        spaced && (self.band.is_some() || self.pending.len() < MIN_ERRORS as usize)
    }

    /// The most forecasts that wait at once in the steady state of this phase: a horizon over
    /// the spacing, and before calibration no more than [`MIN_ERRORS`].
    fn most_in_flight(&self) -> usize {
        let spaced = (self.secs / self.score_every()).ceil() as usize + 1;
        if self.band.is_some() {
            spaced
        } else {
            spaced.min(MIN_ERRORS as usize)
        }
    }

    fn due(&self, p: &Pending) -> Millis {
        Millis(self.base.0 + i64::from(p.due_ms()))
    }

    /// The least time between two forecasts remembered for scoring.
    fn score_every(&self) -> f64 {
        if self.band.is_some() {
            SCORE_EVERY_SECS.max(self.secs * SCORE_SHARE)
        } else {
            SCORE_EVERY_SECS
        }
    }

    /// The model to issue: the challenger with the largest advantage over persistence, when
    /// that advantage is more than noise and the challenger can forecast now.
    fn choose(&self, preds: &[f64; 4]) -> usize {
        let mut best = 0;
        let mut best_gain = 0.0;
        for (i, a) in self.advantage.iter().enumerate() {
            let beats = a.settled() && a.mean > NOISE_Z * a.std_error();
            if beats && preds[i + 1].is_finite() && a.mean > best_gain {
                best = i + 1;
                best_gain = a.mean;
            }
        }
        best
    }

    /// The bounds' distances from the value now.
    fn band_now(&self) -> Option<(f64, f64)> {
        self.band
            .map(|(lo, up)| (lo * self.scale.mean, up * self.scale.mean))
    }

    /// Scores a remembered forecast against the actual value; `k` forecasts were in flight.
    fn score(&mut self, p: &Pending, actual: f64, k: u32) {
        let persistence_err = (p.pred(0) - actual).abs();
        for (i, a) in self.advantage.iter_mut().enumerate() {
            let pred = p.pred(i + 1);
            if pred.is_finite() {
                a.push(persistence_err - (pred - actual).abs(), k);
            }
        }
        let e = actual - p.issued();
        match p.band() {
            Some((lo, up)) => {
                // One event is seen by every forecast in flight: step 1/k per error, so that
                // a jump moves the bounds by about one step, not k.
                let eta = STEP / f64::from(k.max(1));
                let miss_up = e > up;
                let miss_lo = -e > lo;
                if let Some((blo, bup)) = &mut self.band {
                    *bup = (*bup + eta * (f64::from(u8::from(miss_up)) - ALPHA_SIDE)).max(0.0);
                    *blo = (*blo + eta * (f64::from(u8::from(miss_lo)) - ALPHA_SIDE)).max(0.0);
                }
                self.recent_hits = (self.recent_hits << 1) | u128::from(!(miss_up || miss_lo));
                self.recent_n = (self.recent_n + 1).min(128);
            }
            None => self.warm_max = self.warm_max.max(e.abs()),
        }
        self.scale.push(e.abs(), 1);
        self.errors = self.errors.saturating_add(1);
        if self.band.is_none() && self.errors >= MIN_ERRORS {
            // Split conformal on the first errors: their largest, in units of their scale,
            // and no less than the prior.
            let q = if self.scale.mean > 0.0 {
                (self.warm_max / self.scale.mean).max(PRIOR_Q)
            } else {
                0.0
            };
            self.band = Some((q, q));
        }
    }
}

/// Holt's linear trend on irregular time.
#[derive(Debug, Clone, Copy, Default)]
struct Holt {
    level: f64,
    /// Per second.
    trend: f64,
}

/// One day of 5-minute means: the bucket being filled, and the 287 before it. The buckets are
/// allocated at the first value: a series a unit never has (AutoCoder's pending features, on
/// most units) costs nothing.
///
/// Values come in time order (a [`SeriesForecaster`] ignores those not after the last), so
/// only the newest bucket is still filling: its mean and count are kept whole beside the
/// others, and slot `k mod 288` can only hold bucket `k` of the day that ends with the newest.
/// Buckets a gap skipped are emptied as the next value passes them. A closed bucket is its
/// mean alone on a logarithmic scale in 16 bits ([`Day::code`]): within 0.07% of the mean,
/// far under the noise of a usage's 5-minute means a day apart, which is what the seasonal
/// model forecasts from. It was an `f32` (4 bytes), with a day stamp and a count beside it
/// before that (8), and `(i64, f64, u32)` before that (24); docs/BENCHMARKS.md, "Memory".
#[derive(Debug, Clone, Default)]
struct Day {
    means: Vec<u16>,
    /// The newest bucket, counted from the epoch, the values in it and their mean.
    newest: i64,
    n: u32,
    mean: f64,
}

/// A bucket that holds nothing.
const EMPTY: u16 = 0;
/// A bucket whose mean is zero (or under 2^-64, or negative: usage never is).
const ZERO: u16 = 1;
/// Codes per doubling of the mean: a code is `log2(mean)` to 1/512, so a mean is kept within
/// `2^(1/1024) - 1` ≈ 0.07%, and the 65,534 codes span `2^-64` to `2^64`.
const CODES_PER_OCTAVE: f64 = 512.0;

impl Day {
    fn bucket(at: Millis) -> i64 {
        at.0.div_euclid(BUCKET_SECS * 1000)
    }

    fn slot(k: i64) -> usize {
        k.rem_euclid(BUCKETS as i64) as usize
    }

    /// A closed bucket's mean in 16 bits.
    fn code(mean: f64) -> u16 {
        if mean.is_nan() {
            return EMPTY;
        }
        if mean <= 0.0 {
            return ZERO;
        }
        let scaled = (mean.log2() + 64.0) * CODES_PER_OCTAVE;
        if scaled < 0.0 {
            return ZERO;
        }
        (f64::from(ZERO + 1) + scaled.round()).min(f64::from(u16::MAX)) as u16
    }

    fn decode(code: u16) -> f64 {
        match code {
            EMPTY => f64::NAN,
            ZERO => 0.0,
            _ => (f64::from(code - ZERO - 1) / CODES_PER_OCTAVE - 64.0).exp2(),
        }
    }

    fn add(&mut self, at: Millis, v: f64) {
        let k = Day::bucket(at);
        if self.means.is_empty() {
            self.means = vec![EMPTY; BUCKETS];
            self.newest = k;
        }
        if k < self.newest {
            return;
        }
        if k > self.newest {
            if self.n > 0 {
                self.means[Day::slot(self.newest)] = Day::code(self.mean);
            }
            // The buckets after the newest, up to this one, start empty: a gap left nothing.
            for j in (self.newest + 1..=k).take(BUCKETS) {
                self.means[Day::slot(j)] = EMPTY;
            }
            self.newest = k;
            self.n = 0;
        }
        self.n = self.n.saturating_add(1);
        let mean = if self.n == 1 { 0.0 } else { self.mean };
        self.mean = mean + (v - mean) / f64::from(self.n);
    }

    fn mean_at(&self, at: Millis) -> f64 {
        let k = Day::bucket(at);
        if self.means.is_empty() || k > self.newest || k <= self.newest - BUCKETS as i64 {
            return f64::NAN;
        }
        if k == self.newest {
            return if self.n > 0 { self.mean } else { f64::NAN };
        }
        Day::decode(self.means[Day::slot(k)])
    }
}

/// Forecasts of one series at [`HORIZONS_SECS`], learnt online.
#[derive(Debug, Clone)]
pub struct SeriesForecaster {
    last: Option<(Millis, f64)>,
    holt: Holt,
    day: Day,
    min_seen: f64,
    max_seen: f64,
    horizons: [Horizon; 3],
    /// The smoothing weights for the last gap between samples (level, trend, the three
    /// EWMAs): traces and daemons sample at a steady rate, so they are rarely recomputed.
    weights: (f64, [f64; 5]),
}

impl Default for SeriesForecaster {
    fn default() -> Self {
        SeriesForecaster {
            last: None,
            holt: Holt::default(),
            day: Day::default(),
            min_seen: f64::INFINITY,
            max_seen: f64::NEG_INFINITY,
            horizons: HORIZONS_SECS.map(Horizon::new),
            weights: (f64::NAN, [0.0; 5]),
        }
    }
}

/// `1 − e^(−dt/τ)`: the weight of a new sample `dt` after the last in a smoother of time
/// constant `τ`, so that irregular sampling weighs time, not sample counts.
fn weight(dt: f64, tau: f64) -> f64 {
    -(-dt / tau).exp_m1()
}

impl SeriesForecaster {
    /// Takes one sample. Samples not after the last one, and non-finite values, are ignored.
    pub fn observe(&mut self, at: Millis, v: f64) {
        if !v.is_finite() {
            return;
        }
        // Score what was due, before the models learn from the value that scores them.
        for h in &mut self.horizons {
            while let Some(p) = h.pending.front().copied() {
                let due = h.due(&p);
                if due > at {
                    break;
                }
                h.pending.pop_front();
                // An actual measured more than a fifth of the horizon late answers another
                // question (after a gap in sampling): drop that forecast unscored.
                if at.secs_since(due) <= h.secs / 5.0 {
                    let in_flight = u32::try_from(h.pending.len() + 1).unwrap_or(u32::MAX);
                    h.score(&p, v, in_flight);
                }
            }
        }
        match self.last {
            Some((t, _)) if at <= t => return,
            Some((t, _)) => {
                let dt = at.secs_since(t);
                if self.weights.0 != dt {
                    let taus = [
                        LEVEL_SECS,
                        TREND_SECS,
                        HORIZONS_SECS[0],
                        HORIZONS_SECS[1],
                        HORIZONS_SECS[2],
                    ];
                    self.weights = (dt, taus.map(|tau| weight(dt, tau)));
                }
                let w = self.weights.1;
                let ahead = self.holt.level + self.holt.trend * dt;
                let level = ahead + w[0] * (v - ahead);
                self.holt.trend += w[1] * ((level - self.holt.level) / dt - self.holt.trend);
                self.holt.level = level;
                for (h, w) in self.horizons.iter_mut().zip(&w[2..]) {
                    let e = h.ewma.get_or_insert(v);
                    *e += w * (v - *e);
                }
            }
            None => {
                self.holt = Holt {
                    level: v,
                    trend: 0.0,
                };
                for h in &mut self.horizons {
                    h.ewma = Some(v);
                }
            }
        }
        self.last = Some((at, v));
        self.day.add(at, v);
        self.min_seen = self.min_seen.min(v);
        self.max_seen = self.max_seen.max(v);
        // A forecast to be scored is issued at most every SCORE_EVERY_SECS per horizon, no
        // more than MIN_ERRORS at once until calibrated, and once calibrated every SCORE_SHARE
        // of it; the ones shown are made when asked for (`forecasts`), not at every sample.
        for i in 0..self.horizons.len() {
            if !self.horizons[i].may_remember(at) {
                continue;
            }
            let preds = self.predictions(i);
            let h = &mut self.horizons[i];
            let model = h.choose(&preds);
            h.last_issue = Some(at);
            let band = h.band_now();
            h.remember(at.plus_secs(h.secs), &preds, model, band);
        }
    }

    /// Each model's forecast at horizon `i` from the last sample (NaN where it has none).
    fn predictions(&self, i: usize) -> [f64; 4] {
        let Some((at, last)) = self.last else {
            return [f64::NAN; 4];
        };
        let h = &self.horizons[i];
        [
            last,
            h.ewma.unwrap_or(last),
            self.holt.level + self.holt.trend * h.damped_secs,
            self.day.mean_at(at.plus_secs(h.secs - DAY_SECS as f64)),
        ]
    }

    fn issue(&self, i: usize, preds: &[f64; 4]) -> ForecastPoint {
        let h = &self.horizons[i];
        let m = h.choose(preds);
        let value = preds[m];
        let (lo, up) = h.band_now().unwrap_or_else(|| {
            // Not calibrated yet: as wide as the series has ranged, and at least the value
            // itself, so a young unit never shows a confident interval.
            let wide = value.abs().max(self.max_seen - self.min_seen);
            (wide, wide)
        });
        let recent_coverage = (h.recent_n > 0).then(|| {
            let mask = if h.recent_n >= 128 {
                u128::MAX
            } else {
                (1u128 << h.recent_n) - 1
            };
            f64::from((h.recent_hits & mask).count_ones()) / f64::from(h.recent_n)
        });
        ForecastPoint {
            horizon_secs: h.secs,
            value: value.max(0.0),
            lower: (value - lo).max(0.0),
            upper: (value + up).max(0.0),
            model: MODELS[m],
            enough_data: h.band.is_some(),
            errors: h.errors,
            recent_coverage,
        }
    }

    /// The forecasts from the last sample, one per [`HORIZONS_SECS`], or `None` before the
    /// first sample. Made when asked for: a daemon checking every second asks at each new
    /// point of its prediction (every 15 s or so), and building them at every sample was the
    /// largest share of the engine's own work per sample.
    pub fn forecasts(&self) -> Option<[ForecastPoint; 3]> {
        self.last?;
        Some(std::array::from_fn(|i| self.issue(i, &self.predictions(i))))
    }

    /// The time of the last sample taken.
    pub fn last_at(&self) -> Option<Millis> {
        self.last.map(|(t, _)| t)
    }
}

#[cfg(test)]
mod tests;
