//! Table-driven tests of the online forecasts: which model wins on series whose best model is
//! known, that young series get wide uncalibrated intervals, and that the calibrated intervals
//! cover about 95% of what follows on noisy series they were not designed for.

use super::*;
use crate::forecast::tests::Rng;

/// A sample every `step` seconds, `n` of them, valued `f(i)`.
fn every(step: i64, n: i64, mut f: impl FnMut(i64) -> f64) -> Vec<(Millis, f64)> {
    (0..n)
        .map(|i| (Millis::from_secs(i * step), f(i)))
        .collect()
}

/// What one horizon must show after the whole series: the model, whether it is calibrated,
/// and the range the share of calibrated intervals holding the actual value must lie in
/// (measured here, outside the forecaster, by comparing each issued interval with the value
/// at its target time).
struct Want {
    model: Model,
    enough_data: bool,
    coverage: (f64, f64),
}

fn check(name: &str, series: &[(Millis, f64)], want: [Want; 3]) {
    let mut f = SeriesForecaster::default();
    let mut issued: Vec<(Millis, ForecastPoint)> = Vec::new();
    for &(t, v) in series {
        f.observe(t, v);
        if let Some(cs) = f.forecasts() {
            issued.extend(cs.iter().map(|c| (t, *c)));
        }
    }
    let last = f.forecasts().expect("a forecast after samples");
    for (k, w) in want.iter().enumerate() {
        let c = &last[k];
        let h = HORIZONS_SECS[k];
        assert_eq!(c.model, w.model, "{name}: model at {h} s");
        assert_eq!(c.enough_data, w.enough_data, "{name}: enough_data at {h} s");
        assert!(
            c.lower <= c.value && c.value <= c.upper,
            "{name}: {c:?} at {h} s"
        );
        if !c.enough_data {
            // Never a narrow interval before calibration: at least the value on each side
            // (lower clamped at 0).
            assert!(c.upper >= 2.0 * c.value && c.lower == 0.0, "{name}: {c:?}");
            continue;
        }
        let (mut n, mut inside) = (0usize, 0usize);
        for (t, c) in issued
            .iter()
            .filter(|(_, c)| c.horizon_secs == h && c.enough_data)
        {
            let target = t.plus_secs(h);
            if let Ok(i) = series.binary_search_by_key(&target, |p| p.0) {
                n += 1;
                inside += usize::from(c.lower <= series[i].1 && series[i].1 <= c.upper);
            }
        }
        let cov = inside as f64 / n.max(1) as f64;
        assert!(
            (w.coverage.0..=w.coverage.1).contains(&cov),
            "{name}: coverage {cov:.3} of {n} at {h} s, want {:?}",
            w.coverage
        );
    }
}

fn all(model: Model, enough_data: bool, coverage: (f64, f64)) -> [Want; 3] {
    [0, 1, 2].map(|_| Want {
        model,
        enough_data,
        coverage,
    })
}

#[test]
fn online_forecast_table() {
    // A constant: nothing beats persistence, every error is 0, the interval is the point.
    check(
        "constant",
        &every(60, 200, |_| 2.0),
        all(Model::Persistence, true, (1.0, 1.0)),
    );
    // Ten minutes of history: fewer than 19 scored errors at every horizon.
    check(
        "young",
        &every(60, 10, |i| 1.0 + 0.1 * i as f64),
        all(Model::Persistence, false, (0.0, 1.0)),
    );
    // A steady ramp: the damped trend wins over persistence at every horizon, once it has
    // beaten it on 19 independent errors (at 30 min, 19 x 30 scored forecasts).
    check(
        "ramp",
        &every(60, 1000, |i| 1.0 + 0.01 * i as f64),
        all(Model::DampedTrend, true, (0.9, 1.0)),
    );
    // White noise around a level: the weighted mean beats persistence (which carries each
    // sample's whole noise), and the intervals cover about 95% (a little more while the
    // prior width of the first interval, made for heavier tails, wears off).
    let mut rng = Rng::new(7);
    check(
        "noise",
        &every(60, 5000, |_| 10.0 + rng.normal()),
        all(Model::Ewma, true, (0.93, 0.98)),
    );
    // Four days of a daily wave sampled every 5 minutes: from the second day the value a
    // day earlier is exact, and it wins where the wave moves most between now and then.
    let wave = |i: i64| 5.0 + 3.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin();
    check(
        "daily",
        &every(300, 4 * 288, wave),
        all(Model::SeasonalNaive, true, (0.95, 1.0)),
    );
    // A random walk with noise, one sample a minute for two weeks: no model is right, the
    // intervals must still cover about 95% (the guarantee does not need a right model).
    let mut rng = Rng::new(11);
    let mut level = 50.0;
    let walk = every(60, 14 * 1440, |_| {
        level += 0.3 * rng.normal();
        level + 0.5 * rng.normal()
    });
    let mut f = SeriesForecaster::default();
    for &(t, v) in &walk {
        f.observe(t, v);
    }
    let model = f.forecasts().expect("forecasts")[0].model;
    check(
        "random walk",
        &walk,
        [0, 1, 2].map(|k| Want {
            model: f.forecasts().expect("forecasts")[k].model,
            enough_data: true,
            coverage: (0.93, 0.98),
        }),
    );
    assert_ne!(model, Model::SeasonalNaive, "no daily pattern in a walk");
}

#[test]
fn gaps_out_of_order_and_non_finite_samples() {
    // (name, samples, errors scored at 5 min)
    type Case = (&'static str, Vec<(Millis, f64)>, u32);
    let cases: &[Case] = &[
        // 40 one-minute samples: 35 scored at 5 min.
        ("regular", every(60, 40, |_| 1.0), 35),
        // The same with NaN, infinity and a repeated time thrown in: nothing changes.
        (
            "junk",
            {
                let mut v = every(60, 40, |_| 1.0);
                v.insert(10, (Millis::from_secs(600), f64::NAN));
                v.insert(20, (Millis::from_secs(1140), f64::INFINITY));
                v.insert(30, (Millis::from_secs(1680), 1.0));
                v
            },
            35,
        ),
        // A two-hour gap: the forecasts waiting across it are dropped, not scored against a
        // value two hours late.
        (
            "gap",
            {
                let mut v = every(60, 20, |_| 1.0);
                v.extend(
                    every(60, 20, |_| 1.0)
                        .iter()
                        .map(|&(t, x)| (t.plus_secs(8400.0), x)),
                );
                v
            },
            30,
        ),
    ];
    for (name, series, want) in cases {
        let mut f = SeriesForecaster::default();
        for &(t, v) in series {
            f.observe(t, v);
        }
        let got = f.forecasts().expect("forecasts")[0].errors;
        assert_eq!(got, *want, "{name}");
    }
}

/// A day's bucket is the mean of its values, a day-old bucket is not read as today's, a
/// gap's buckets are empty, a series never seen holds no buckets, and a bucket is 4 bytes.
#[test]
fn day_buckets_are_small_means_allocated_at_the_first_value() {
    let mut d = Day::default();
    assert!(d.means.is_empty());
    assert!(d.mean_at(Millis(0)).is_nan());
    let t0 = Millis::from_secs(1_000 * DAY_SECS + 600);
    for (k, v) in [1.0e9, 2.0e9, 3.0e9].into_iter().enumerate() {
        d.add(Millis(t0.0 + k as i64 * 1000), v);
    }
    assert_eq!(d.means.len(), BUCKETS);
    assert_eq!(std::mem::size_of_val(d.means.as_slice()), 2 * BUCKETS);
    let mean = d.mean_at(t0);
    assert!((mean - 2.0e9).abs() < 2.0e9 * 1e-6, "{mean}");
    // The same slot a day later is another bucket: not read, and restarted by a value.
    let next_day = t0.plus_secs(DAY_SECS as f64);
    assert!(d.mean_at(next_day).is_nan());
    d.add(next_day, 5.0);
    assert_eq!(d.mean_at(next_day), 5.0);
    assert!(d.mean_at(t0).is_nan(), "yesterday's bucket was replaced");
    // An hour without values: its buckets hold nothing, though yesterday's were written.
    let mut d = Day::default();
    for k in 0..(DAY_SECS / BUCKET_SECS + 2) {
        d.add(t0.plus_secs((k * BUCKET_SECS) as f64), 1.0);
    }
    let last = t0.plus_secs(((DAY_SECS / BUCKET_SECS + 1) * BUCKET_SECS) as f64);
    d.add(last.plus_secs(3600.0), 2.0);
    assert_eq!(d.mean_at(last), 1.0);
    assert!(d.mean_at(last.plus_secs(1800.0)).is_nan(), "the gap");
    assert_eq!(d.mean_at(last.plus_secs(3600.0)), 2.0);
    assert!(d.mean_at(last.plus_secs(3900.0)).is_nan(), "not yet");
    // The newest bucket's mean is kept whole; a closed one to 0.07%.
    let mut d = Day::default();
    for k in 0..70_000 {
        d.add(Millis(t0.0 + k % 300), 7.0 + (k % 3) as f64);
    }
    let open = d.mean_at(t0);
    assert!((open - 559_999.0 / 70_000.0).abs() < 1e-12, "{open}");
    d.add(t0.plus_secs(300.0), 1.0);
    let closed = d.mean_at(t0);
    assert!((closed / 8.0 - 1.0).abs() < 7e-4, "{closed}");
}

/// A closed bucket's 16-bit mean: empty, zero and anything from 2^-64 to 2^64 within 0.07%.
#[test]
fn day_bucket_codes_keep_a_mean_within_seven_ten_thousandths() {
    assert!(Day::decode(Day::code(f64::NAN)).is_nan());
    for v in [0.0, -3.0, 1e-30] {
        assert_eq!(Day::decode(Day::code(v)), 0.0, "{v}");
    }
    assert_eq!(Day::decode(Day::code(1.0)), 1.0);
    let mut v = 1e-19;
    while v < 1e19 {
        let back = Day::decode(Day::code(v));
        assert!((back / v - 1.0).abs() < 6.8e-4, "{v} came back as {back}");
        v *= 1.37;
    }
    assert_eq!(Day::code(f64::INFINITY), u16::MAX);
}

/// A remembered forecast is 32 bytes, gives back a steady value exactly, keeps the others to
/// 24 bits relative to it, and its due time across any span.
#[test]
fn pending_forecasts_are_small_and_exact_on_a_steady_value() {
    assert_eq!(std::mem::size_of::<Pending>(), 32);
    let steady = Pending::new(7, &[3.0e9; 4], 0, None);
    assert!((0..4).all(|i| steady.pred(i) == 3.0e9));
    assert_eq!(steady.issued(), 3.0e9);
    assert_eq!(steady.due_ms(), 7);
    assert_eq!(steady.band(), None);
    let p = Pending::new(
        DUE_MASK,
        &[3.0e9, 3.1e9, f64::NAN, 2.9e9],
        1,
        Some((1.0e8, 2.0e8)),
    );
    assert_eq!(p.due_ms(), DUE_MASK);
    assert!((p.pred(1) - 3.1e9).abs() < 3.1e9 * 1e-7);
    assert!(p.pred(2).is_nan());
    assert!((p.issued() - 3.1e9).abs() < 3.1e9 * 1e-7);
    let (lo, up) = p.band().expect("calibrated");
    assert!((lo - 1.0e8).abs() < 10.0 && (up - 2.0e8).abs() < 20.0);
    // A trend forecast under zero is issued as zero, as shown.
    assert_eq!(
        Pending::new(0, &[1.0, 1.0, -0.5, 1.0], 2, None).issued(),
        0.0
    );
    // Due times 40 days on from the first, two in flight at a time: counted from the oldest.
    let mut h = Horizon::new(300.0);
    let day = 86_400_000;
    for d in 0..40 {
        let due = Millis(d * day + 123);
        h.remember(due, &[1.0; 4], 0, None);
        let back: Vec<Millis> = h.pending.iter().map(|p| h.due(p)).collect();
        assert_eq!(back.last(), Some(&due));
        assert!(back.windows(2).all(|w| w[1].0 - w[0].0 == day));
        if h.pending.len() == 2 {
            h.pending.pop_front();
        }
    }
    assert!(h.base.0 > 12 * day, "moved on");
}

/// A series sampled every second: one forecast a minute waits per horizon until the horizon
/// is calibrated, no more than calibration needs, then one per tenth of it, and the queues
/// give back the warm-up's room.
#[test]
fn calibrated_horizons_keep_a_forecast_per_tenth_of_the_horizon_in_flight() {
    let mut rng = Rng::new(7);
    let mut f = SeriesForecaster::default();
    let in_flight = |f: &SeriesForecaster| f.horizons.each_ref().map(|h| h.pending.len());
    let mut warm_most = [0; 3];
    let mut warm_room = [0; 3];
    for s in 0..4 * 3600 {
        f.observe(Millis::from_secs(s), 2.0 + 0.1 * rng.normal());
        for (i, h) in f.horizons.iter().enumerate() {
            if h.band.is_none() {
                warm_most[i] = warm_most[i].max(in_flight(&f)[i]);
                warm_room[i] = warm_room[i].max(h.pending.capacity());
            }
        }
    }
    // 30 a minute apart fit in a 30-minute horizon; the first 19 calibrate it.
    assert_eq!(
        warm_most,
        [5, 15, 19],
        "one a minute, as many as calibration needs"
    );
    assert_eq!(
        warm_room,
        [6, 16, 19],
        "room for those, not the next power of two"
    );
    assert!(f.horizons.iter().all(|h| h.band.is_some()), "calibrated");
    assert_eq!(
        in_flight(&f),
        [5, 10, 10],
        "at most a tenth of the horizon apart"
    );
    let room = f.horizons.each_ref().map(|h| h.pending.capacity());
    assert!(room[2] <= 11 && room[1] <= 11, "room given back: {room:?}");
    // The first interval came as soon as before: 19 forecasts a minute apart after the first
    // one's 30 minutes.
    let mut g = SeriesForecaster::default();
    for s in 0..=(30 + 18) * 60 {
        g.observe(Millis::from_secs(s), 2.0 + 0.1 * rng.normal());
    }
    assert!(g.forecasts().expect("observed")[2].enough_data);
}
