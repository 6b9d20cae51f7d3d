//! Table-driven tests of the forecasts: exact answers on hand-made series, the refusals, the
//! trigger, and the coverage of the 95% intervals on a line with known Gaussian noise.

use super::*;

/// A small deterministic PRNG (xorshift64*) with Box-Muller normals, so the noisy tests need
/// no crate and give the same numbers on every run. Profile tests borrow it.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Uniform in (0, 1].
    pub(crate) fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((r >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub(crate) fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// A sample at minute `m`.
fn at(m: f64) -> Millis {
    Millis((m * 60_000.0) as i64)
}

fn series(minutes: std::ops::Range<i64>, f: impl Fn(f64) -> f64) -> Vec<(Millis, f64)> {
    minutes.map(|m| (at(m as f64), f(m as f64))).collect()
}

const HORIZONS: [f64; 3] = [300.0, 900.0, 1800.0];

/// What a forecast must give: n, slope per minute, residual SE and (horizon, value, lower,
/// upper) per point; or the refusal and its message.
type Want<'a> = Result<(usize, f64, f64, &'a [(f64, f64, f64, f64)]), (NotEnoughData, &'a str)>;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

fn check(
    name: &str,
    points: &[(Millis, f64)],
    now_min: f64,
    window_min: f64,
    horizons: &[f64],
    want: Want<'_>,
) {
    let got = forecast(points, at(now_min), window_min * 60.0, horizons);
    match (got, want) {
        (Ok(f), Ok((n, slope, se, pts))) => {
            assert_eq!(f.n, n, "{name}: {f:?}");
            assert!(close(f.slope_per_min, slope), "{name}: slope {f:?}");
            assert!(close(f.residual_se, se), "{name}: residual SE {f:?}");
            assert_eq!(f.points.len(), pts.len(), "{name}: {f:?}");
            for (p, &(h, v, lo, hi)) in f.points.iter().zip(pts) {
                let ok = p.horizon_secs == h
                    && close(p.value, v)
                    && close(p.lower, lo)
                    && close(p.upper, hi);
                assert!(ok, "{name}: got {p:?}, want {:?}", (h, v, lo, hi));
            }
        }
        (Err(e), Err((want, text))) => {
            assert_eq!(e, want, "{name}");
            assert_eq!(e.to_string().split(':').next(), Some(text), "{name}: {e}");
        }
        (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn forecasts_table() {
    // A perfect line: the right slope and zero-width intervals.
    let line = series(0..20, |m| 2.0 + 0.5 * m);
    check(
        "perfect line",
        &line,
        19.0,
        60.0,
        &HORIZONS,
        Ok((
            20,
            0.5,
            0.0,
            &[
                (300.0, 14.0, 14.0, 14.0),
                (900.0, 19.0, 19.0, 19.0),
                (1800.0, 26.5, 26.5, 26.5),
            ],
        )),
    );
    // Horizons count from `now`, not from the newest sample.
    check(
        "now after the data",
        &line,
        21.0,
        60.0,
        &[0.0],
        Ok((20, 0.5, 0.0, &[(0.0, 12.5, 12.5, 12.5)])),
    );
    // Worked by hand (and in Python): minutes 0..=9, y = 1,3,2,4,3,5,4,6,5,7; t(0.975, 8) = 2.306004.
    let zigzag: Vec<_> = [1.0, 3.0, 2.0, 4.0, 3.0, 5.0, 4.0, 6.0, 5.0, 7.0]
        .iter()
        .enumerate()
        .map(|(m, &y)| (at(m as f64), y))
        .collect();
    check(
        "textbook interval",
        &zigzag,
        9.0,
        60.0,
        &HORIZONS,
        Ok((
            10,
            6.0 / 11.0,
            0.825_722_823_844_770_6,
            &[
                (
                    300.0,
                    9.181_818_181_818_182,
                    6.361_444_466_631_983,
                    12.002_191_897_004_38,
                ),
                (
                    900.0,
                    14.636_363_636_363_637,
                    10.086_715_348_244_768,
                    19.186_011_924_482_507,
                ),
                (
                    1800.0,
                    22.818_181_818_181_817,
                    15.315_061_063_649_406,
                    30.321_302_572_714_227,
                ),
            ],
        )),
    );
    // A falling series is clamped at 0: usage cannot go negative.
    check(
        "clamped at zero",
        &series(0..20, |m| 20.0 - m),
        19.0,
        60.0,
        &[1800.0],
        Ok((20, -1.0, 0.0, &[(1800.0, 0.0, 0.0, 0.0)])),
    );
    // Non-finite horizons are skipped, the others kept in order.
    check(
        "odd horizons",
        &line,
        19.0,
        60.0,
        &[f64::NAN, 900.0, f64::INFINITY, 0.0],
        Ok((
            20,
            0.5,
            0.0,
            &[(900.0, 19.0, 19.0, 19.0), (0.0, 11.5, 11.5, 11.5)],
        )),
    );
    check(
        "no horizons",
        &line,
        19.0,
        60.0,
        &[],
        Ok((20, 0.5, 0.0, &[])),
    );
    // The window keeps the last 10 minutes only: minutes 10..=19.
    let bent = series(0..20, |m| if m < 10.0 { 100.0 } else { m });
    check(
        "window",
        &bent,
        19.0,
        10.0,
        &[300.0],
        Ok((10, 1.0, 0.0, &[(300.0, 24.0, 24.0, 24.0)])),
    );
    // Refusals say how many samples there were and how many are needed.
    let nine = series(0..9, |m| m);
    check(
        "nine samples",
        &nine,
        8.0,
        60.0,
        &HORIZONS,
        Err((
            NotEnoughData::TooFew {
                samples: 9,
                needed: 10,
            },
            "9 samples, need 10",
        )),
    );
    check(
        "none",
        &[],
        8.0,
        60.0,
        &HORIZONS,
        Err((
            NotEnoughData::TooFew {
                samples: 0,
                needed: 10,
            },
            "0 samples, need 10",
        )),
    );
    let mut with_nan = series(0..9, |m| m);
    with_nan.extend(series(9..12, |_| f64::NAN));
    with_nan.push((at(12.0), f64::NEG_INFINITY));
    check(
        "NaN not counted",
        &with_nan,
        12.0,
        60.0,
        &HORIZONS,
        Err((
            NotEnoughData::TooFew {
                samples: 9,
                needed: 10,
            },
            "9 samples, need 10",
        )),
    );
    check(
        "future not counted",
        &line,
        8.0,
        60.0,
        &HORIZONS,
        Err((
            NotEnoughData::TooFew {
                samples: 9,
                needed: 10,
            },
            "9 samples, need 10",
        )),
    );
    check(
        "bad window",
        &line,
        19.0,
        f64::NAN,
        &HORIZONS,
        Err((
            NotEnoughData::TooFew {
                samples: 0,
                needed: 10,
            },
            "0 samples, need 10",
        )),
    );
    let instant: Vec<_> = (0..12).map(|i| (at(3.0), f64::from(i))).collect();
    check(
        "one instant",
        &instant,
        3.0,
        60.0,
        &HORIZONS,
        Err((
            NotEnoughData::NoTimeSpread { samples: 12 },
            "12 samples, all at the same instant",
        )),
    );
}

#[test]
fn absurd_values_do_not_panic() {
    for v in [1e300, -1e300, f64::MAX, f64::MIN_POSITIVE, 0.0] {
        let pts = series(0..12, |m| if m as i64 % 2 == 0 { v } else { -v });
        let f = forecast(&pts, at(11.0), 3600.0, &HORIZONS).expect("12 finite samples");
        assert_eq!(f.points.len(), 3, "{v}");
    }
    let far = [(Millis(i64::MIN), 1.0), (Millis(i64::MAX), 2.0)];
    assert!(forecast(&far, Millis(i64::MAX), f64::MAX, &HORIZONS).is_err());
}

#[test]
fn t_quantiles() {
    let cases = [
        (0, f64::INFINITY),
        (1, 12.706_205),
        (8, 2.306_004),
        (30, 2.042_272),
        (31, 2.039_513),
        (60, 2.000_298),
        (1000, 1.962_339),
        (usize::MAX, 1.959_964),
    ];
    for (df, want) in cases {
        let got = t_975(df);
        assert!(
            got == want || (got - want).abs() < 1e-6,
            "t(0.975, {df}) = {got}, want {want}"
        );
    }
}

#[test]
fn breach_is_the_nearest_horizon_over_the_threshold() {
    let f = Forecast {
        n: 20,
        slope_per_min: 1.0,
        residual_se: 1.0,
        // Out of order on purpose: the nearest horizon wins, not the first listed. The
        // uncalibrated 60-second point would breach everything, and must be ignored.
        points: [
            (1800.0, 95.0, true),
            (300.0, 50.0, true),
            (900.0, 80.0, true),
            (60.0, 1e9, false),
        ]
        .iter()
        .map(|&(h, upper, enough_data)| ForecastPoint {
            horizon_secs: h,
            value: upper - 5.0,
            lower: upper - 10.0,
            upper,
            model: Model::Persistence,
            enough_data,
            errors: 100,
            recent_coverage: None,
        })
        .collect(),
    };
    let cases: &[(f64, f64, Option<f64>)] = &[
        (100.0, 80.0, Some(1800.0)), // 80 is not over 80
        (100.0, 79.9, Some(900.0)),
        (100.0, 10.0, Some(300.0)),
        (100.0, 95.0, None),
        (200.0, 45.0, Some(1800.0)),
        (0.0, 80.0, None),
        (-100.0, 80.0, None),
        (f64::NAN, 80.0, None),
        (f64::INFINITY, 80.0, None),
        (100.0, f64::NAN, None),
    ];
    for &(limit, pct, want) in cases {
        let got = predicted_breach(&f, limit, pct).map(|p| p.horizon_secs);
        assert_eq!(got, want, "limit {limit}, threshold {pct}%");
    }
}

/// Share of future values inside the 95% intervals: a line with N(0, σ²) noise, `trials`
/// independent series of `n` one-minute samples, each forecast at 5, 15 and 30 minutes and
/// compared with a fresh draw there.
fn coverage(seed: u64, n: i64, trials: usize) -> [f64; 3] {
    let mut rng = Rng::new(seed);
    let mut inside = [0usize; 3];
    for _ in 0..trials {
        let (a, b, sigma) = (
            50.0 + 10.0 * rng.normal(),
            rng.normal(),
            0.5 + 4.0 * rng.uniform(),
        );
        let truth = |m: f64| a + b * m;
        let pts: Vec<_> = (0..n)
            .map(|m| (at(m as f64), truth(m as f64) + sigma * rng.normal()))
            .collect();
        let now = (n - 1) as f64;
        // No clamping at 0 should happen: keep the series well above it.
        let pts: Vec<_> = pts.into_iter().map(|(t, v)| (t, v + 1000.0)).collect();
        let f = forecast(&pts, at(now), n as f64 * 60.0, &HORIZONS).expect("enough samples");
        for (k, p) in f.points.iter().enumerate() {
            let actual = 1000.0 + truth(now + p.horizon_secs / 60.0) + sigma * rng.normal();
            inside[k] += usize::from(p.lower <= actual && actual <= p.upper);
        }
    }
    inside.map(|c| c as f64 / trials as f64)
}

#[test]
fn intervals_cover_95_percent_of_a_noisy_line() {
    // With 4000 trials the share's standard deviation is 0.34 points: 93-97% is ±6 of them.
    for (seed, n) in [(1, 10), (7, 30), (42, 120)] {
        let shares = coverage(seed, n, 4000);
        for (h, share) in HORIZONS.iter().zip(shares) {
            assert!(
                (0.93..=0.97).contains(&share),
                "n={n}, horizon {h}s: coverage {share:.3}"
            );
        }
    }
}
