//! Table-driven tests of moving averages, slopes and trend labels: each case is a series at
//! whole minutes, a window and a floor, and the summary it must give.

use super::*;

/// A sample at minute `m`.
fn at(m: f64) -> Millis {
    Millis((m * 60_000.0) as i64)
}

/// `f(m)` at each minute of `minutes`.
fn series(minutes: std::ops::RangeInclusive<i64>, f: impl Fn(f64) -> f64) -> Vec<(Millis, f64)> {
    minutes.map(|m| (at(m as f64), f(m as f64))).collect()
}

/// What a summary must be: current, MA5, MA15, slope per minute, label, samples.
type Want = (f64, Option<f64>, Option<f64>, f64, Trend, usize);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

fn check(
    name: &str,
    points: &[(Millis, f64)],
    now_min: f64,
    window_min: f64,
    floor: f64,
    want: Option<Want>,
) {
    let got = summarize(points, at(now_min), window_min * 60.0, floor);
    match (got, want) {
        (None, None) => {}
        (Some(g), Some((current, ma5, ma15, slope, trend, samples))) => {
            let opt = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => close(a, b),
                (a, b) => a == b,
            };
            assert!(close(g.current, current), "{name}: current {g:?}");
            assert!(opt(g.ma5, ma5), "{name}: ma5 {g:?}, want {ma5:?}");
            assert!(opt(g.ma15, ma15), "{name}: ma15 {g:?}, want {ma15:?}");
            assert!(
                close(g.slope_per_min, slope),
                "{name}: slope {g:?}, want {slope}"
            );
            assert_eq!(g.trend, trend, "{name}: {g:?}");
            assert_eq!(g.samples, samples, "{name}: {g:?}");
        }
        (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn summaries_table() {
    use Trend::*;
    let ramp = series(0..=20, |m| m);
    // MA5 is minutes 16..=20 (mean 18), MA15 minutes 6..=20 (mean 13); a 10-minute window holds
    // minutes 11..=20 (the oldest edge is excluded).
    check(
        "ramp",
        &ramp,
        20.0,
        10.0,
        0.0,
        Some((20.0, Some(18.0), Some(13.0), 1.0, Increasing, 10)),
    );
    check(
        "falling",
        &series(0..=20, |m| 40.0 - m),
        20.0,
        10.0,
        0.0,
        Some((20.0, Some(22.0), Some(27.0), -1.0, Decreasing, 10)),
    );
    check(
        "flat",
        &series(0..=20, |_| 7.0),
        20.0,
        15.0,
        0.0,
        Some((7.0, Some(7.0), Some(7.0), 0.0, Stable, 15)),
    );
    // Samples after `now` do not exist yet; NaN and infinities are skipped.
    check(
        "future ignored",
        &ramp,
        10.0,
        10.0,
        0.0,
        Some((10.0, Some(8.0), Some(5.0), 1.0, Increasing, 10)),
    );
    let mut holes = ramp.clone();
    holes.push((at(19.5), f64::NAN));
    holes.push((at(19.7), f64::INFINITY));
    check(
        "non-finite skipped",
        &holes,
        20.0,
        10.0,
        0.0,
        Some((20.0, Some(18.0), Some(13.0), 1.0, Increasing, 10)),
    );
    // Order of the input does not matter.
    let mut shuffled = ramp.clone();
    shuffled.reverse();
    check(
        "reversed input",
        &shuffled,
        20.0,
        10.0,
        0.0,
        Some((20.0, Some(18.0), Some(13.0), 1.0, Increasing, 10)),
    );
    // Nothing in the last 5 minutes: no MA5 rather than a stale one.
    check(
        "gap",
        &series(0..=10, |_| 3.0),
        16.0,
        30.0,
        0.0,
        Some((3.0, None, Some(3.0), 0.0, Stable, 11)),
    );
    // Too little data: no trend.
    check("empty", &[], 20.0, 10.0, 0.0, None);
    check("one sample", &series(5..=5, |_| 1.0), 5.0, 10.0, 0.0, None);
    check(
        "one instant",
        &[(at(5.0), 1.0), (at(5.0), 3.0)],
        5.0,
        10.0,
        0.0,
        None,
    );
    check(
        "all NaN",
        &series(0..=20, |_| f64::NAN),
        20.0,
        10.0,
        0.0,
        None,
    );
    check("zero window", &ramp, 20.0, 0.0, 0.0, None);
    check("NaN window", &ramp, 20.0, f64::NAN, 0.0, None);
}

#[test]
fn labels_at_the_tolerance_edges() {
    use Trend::*;
    // Minutes 0..=10 around a mean of 100: the tolerance is 2% of 100 = 2.0 over the 10-minute
    // span, so a slope of 0.19/min (change 1.9) is stable and 0.21/min (2.1) is not.
    let around_100 = |slope: f64| series(0..=10, move |m| 100.0 + slope * (m - 5.0));
    let cases: &[(&str, f64, f64, Trend)] = &[
        ("just inside, up", 0.19, 0.0, Stable),
        ("just outside, up", 0.21, 0.0, Increasing),
        ("just inside, down", -0.19, 0.0, Stable),
        ("just outside, down", -0.21, 0.0, Decreasing),
        // The caller's floor wins when it is above 2% of the mean.
        ("under the floor", 0.29, 3.0, Stable),
        ("over the floor", 0.31, 3.0, Increasing),
        // A negative or NaN floor counts as 0.
        ("negative floor", 0.21, -5.0, Increasing),
        ("NaN floor", 0.21, f64::NAN, Increasing),
    ];
    for &(name, slope, floor, trend) in cases {
        let mid = 100.0 + slope * 5.0;
        let ma5 = 100.0 + slope * 3.0; // minutes 6..=10
        let ma15 = 100.0; // every minute 0..=10
        check(
            name,
            &around_100(slope),
            10.0,
            15.0,
            floor,
            Some((mid, Some(ma5), Some(ma15), slope, trend, 11)),
        );
    }
    // Near zero the 2% is nothing: the floor keeps noise from reading as a trend.
    let tiny = series(0..=10, |m| 0.01 + 0.001 * m);
    check(
        "tiny without floor",
        &tiny,
        10.0,
        15.0,
        0.0,
        Some((0.02, Some(0.018), Some(0.015), 0.001, Increasing, 11)),
    );
    check(
        "tiny with floor",
        &tiny,
        10.0,
        15.0,
        0.05,
        Some((0.02, Some(0.018), Some(0.015), 0.001, Stable, 11)),
    );
}

#[test]
fn moving_averages_alone() {
    let ramp = series(0..=20, |m| m);
    let cases: &[(f64, f64, Option<f64>)] = &[
        // now (min), window (min), mean
        (20.0, 5.0, Some(18.0)),
        (20.0, 1.0, Some(20.0)),
        (20.0, 0.5, Some(20.0)),
        (20.25, 0.2, None),
        (100.0, 1000.0, Some(10.0)),
        (-1.0, 5.0, None),
    ];
    for &(now, win, mean) in cases {
        let got = moving_average(&ramp, at(now), win * 60.0);
        let same = match (got, mean) {
            (Some(a), Some(b)) => close(a, b),
            (a, b) => a == b,
        };
        assert!(same, "now {now} window {win}: got {got:?}, want {mean:?}");
    }
    assert_eq!(Trend::Increasing.to_string(), "increasing");
}
