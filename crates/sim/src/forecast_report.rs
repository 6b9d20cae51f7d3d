//! How well the daemon's online forecasts hold on recorded traces: coverage of the calibrated
//! 95% intervals, overall and trace by trace, and the point forecast's error against
//! persistence's (`autoscaler simulate --forecast-report`).
//!
//! Every trace's CPU series (cores) and memory series (GiB, where it has one) is fed sample by
//! sample to the core's [`SeriesForecaster`], exactly as the engine feeds a unit's samples.
//! After each sample the forecasts it would show are taken and, here, outside the forecaster,
//! compared with the trace's value at each horizon. Nothing is tuned on the traces: the
//! forecaster has no parameter this module sets. No I/O: traces come in, a [`ForecastReport`]
//! comes out, and front ends print its [`ForecastReport::table`].

use std::fmt::Write;

use autoscaler_core::forecast::online::HORIZONS_SECS;
use autoscaler_core::forecast::{Model, SeriesForecaster};
use autoscaler_core::{GIB, Millis};

use crate::trace::Trace;

/// The range a trace's own coverage must lie in to count as holding (issue 13).
pub const TRACE_GOAL: (f64, f64) = (0.90, 0.98);

const MODELS: [Model; 4] = [
    Model::Persistence,
    Model::Ewma,
    Model::DampedTrend,
    Model::SeasonalNaive,
];

/// Sums for one (family, resource, horizon).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Forecasts with an actual value at their target time.
    pub forecasts: usize,
    /// Of those, made before the interval was calibrated (`enough_data: false`).
    pub warm: usize,
    /// Calibrated forecasts whose interval held the actual value.
    pub inside: usize,
    /// Calibrated forecasts whose actual value was at or under the upper bound.
    pub under_upper: usize,
    /// Warm forecasts whose (wide) interval held the actual value.
    pub warm_inside: usize,
    pub abs_err: f64,
    pub persistence_abs_err: f64,
    /// Sum of calibrated half-widths.
    pub half_width: f64,
    /// Forecasts issued by each model, in the order persistence, EWMA, damped trend, seasonal.
    pub chosen: [usize; 4],
    /// Per trace: (calibrated forecasts, inside).
    pub per_trace: Vec<(usize, usize)>,
}

impl Tally {
    fn calibrated(&self) -> usize {
        self.forecasts - self.warm
    }

    /// Coverage of the calibrated intervals.
    pub fn coverage(&self) -> f64 {
        self.inside as f64 / self.calibrated().max(1) as f64
    }

    /// Share of traces, among those with calibrated forecasts, whose own coverage is in
    /// [`TRACE_GOAL`].
    pub fn traces_in_goal(&self) -> f64 {
        let judged: Vec<_> = self.per_trace.iter().filter(|p| p.0 > 0).collect();
        let ok = judged
            .iter()
            .filter(|p| (TRACE_GOAL.0..=TRACE_GOAL.1).contains(&(p.1 as f64 / p.0 as f64)))
            .count();
        ok as f64 / judged.len().max(1) as f64
    }

    pub fn mae(&self) -> f64 {
        self.abs_err / self.forecasts.max(1) as f64
    }

    pub fn persistence_mae(&self) -> f64 {
        self.persistence_abs_err / self.forecasts.max(1) as f64
    }
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Row {
    pub family: String,
    pub resource: &'static str,
    pub horizon_min: f64,
    pub traces: usize,
    pub tally: Tally,
}

#[derive(Debug, Clone, Default)]
pub struct ForecastReport {
    pub rows: Vec<Row>,
}

/// Runs the forecaster over every trace of every family (a family is a name and its traces).
pub fn forecast_report(families: &[(String, Vec<Trace>)]) -> ForecastReport {
    let mut rows = Vec::new();
    for (family, traces) in families {
        for resource in ["cpu", "memory"] {
            let mut tallies: [Tally; 3] = Default::default();
            let mut judged = 0;
            for trace in traces {
                let Some(series) = series_of(trace, resource) else {
                    continue;
                };
                judged += 1;
                let per = evaluate(&series, trace.step_secs);
                for (t, one) in tallies.iter_mut().zip(per) {
                    add(t, &one);
                }
            }
            if judged == 0 {
                continue;
            }
            for (k, tally) in tallies.into_iter().enumerate() {
                rows.push(Row {
                    family: family.clone(),
                    resource,
                    horizon_min: HORIZONS_SECS[k] / 60.0,
                    traces: judged,
                    tally,
                });
            }
        }
    }
    ForecastReport { rows }
}

fn add(t: &mut Tally, one: &Tally) {
    t.forecasts += one.forecasts;
    t.warm += one.warm;
    t.inside += one.inside;
    t.under_upper += one.under_upper;
    t.warm_inside += one.warm_inside;
    t.abs_err += one.abs_err;
    t.persistence_abs_err += one.persistence_abs_err;
    t.half_width += one.half_width;
    for (a, b) in t.chosen.iter_mut().zip(one.chosen) {
        *a += b;
    }
    t.per_trace.push((one.calibrated(), one.inside));
}

/// The CPU series in cores, or the memory series in GiB (`None` when the trace has none).
fn series_of(trace: &Trace, resource: &str) -> Option<Vec<(Millis, f64)>> {
    let ms = |t: f64| Millis((t * 1000.0).round() as i64);
    match resource {
        "cpu" => Some(
            trace
                .points
                .iter()
                .map(|p| (ms(p.t_secs), p.cpu_cores))
                .collect(),
        ),
        _ if trace.has_memory() => Some(
            trace
                .points
                .iter()
                .filter_map(|p| p.memory_bytes.map(|b| (ms(p.t_secs), b / GIB as f64)))
                .collect(),
        ),
        _ => None,
    }
}

/// Feeds one series to a fresh forecaster and scores what it shows after every sample.
fn evaluate(series: &[(Millis, f64)], step_secs: f64) -> [Tally; 3] {
    let mut out: [Tally; 3] = Default::default();
    let tolerance_ms = (step_secs * 500.0) as i64;
    let mut f = SeriesForecaster::default();
    for &(now, current) in series {
        f.observe(now, current);
        let Some(shown) = f.forecasts() else { continue };
        for (t, c) in out.iter_mut().zip(shown) {
            let Some(actual) = value_at(series, now.plus_secs(c.horizon_secs), tolerance_ms) else {
                continue;
            };
            t.forecasts += 1;
            t.abs_err += (c.value - actual).abs();
            t.persistence_abs_err += (current - actual).abs();
            if let Some(i) = MODELS.iter().position(|m| *m == c.model) {
                t.chosen[i] += 1;
            }
            let inside = c.lower <= actual && actual <= c.upper;
            if c.enough_data {
                t.inside += usize::from(inside);
                t.under_upper += usize::from(actual <= c.upper);
                t.half_width += (c.upper - c.lower) / 2.0;
            } else {
                t.warm += 1;
                t.warm_inside += usize::from(inside);
            }
        }
    }
    out
}

/// The value at `at`, give or take `tolerance_ms` (traces have gaps; a missing row is
/// skipped).
pub fn value_at(series: &[(Millis, f64)], at: Millis, tolerance_ms: i64) -> Option<f64> {
    let i = series.partition_point(|p| p.0 < at);
    [i.checked_sub(1), Some(i)]
        .into_iter()
        .flatten()
        .filter_map(|j| series.get(j))
        .filter(|p| (p.0.0 - at.0).abs() <= tolerance_ms)
        .min_by_key(|p| (p.0.0 - at.0).abs())
        .map(|p| p.1)
}

impl ForecastReport {
    /// A text table, one row per family, resource and horizon, and a legend.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<8} {:<6} {:>3} {:>6} {:>7} {:>6} {:>8} {:>7} {:>7} {:>9} {:>8} {:>8} {:>6}  chosen p/e/t/s %",
            "family",
            "res",
            "h",
            "traces",
            "n",
            "warm",
            "coverage",
            "<=upper",
            "in-goal",
            "halfwidth",
            "MAE",
            "pers.MAE",
            "ratio",
        );
        for r in &self.rows {
            let t = &r.tally;
            let n = t.forecasts.max(1) as f64;
            let cal = t.calibrated().max(1) as f64;
            let chosen: Vec<String> = t
                .chosen
                .iter()
                .map(|c| format!("{:.0}", 100.0 * *c as f64 / n))
                .collect();
            let _ = writeln!(
                s,
                "{:<8} {:<6} {:>3} {:>6} {:>7} {:>5.1}% {:>7.1}% {:>6.1}% {:>6.0}% {:>9.3} {:>8.4} {:>8.4} {:>6.3}  {}",
                r.family,
                r.resource,
                r.horizon_min,
                r.traces,
                t.forecasts,
                100.0 * t.warm as f64 / n,
                100.0 * t.coverage(),
                100.0 * t.under_upper as f64 / cal,
                100.0 * t.traces_in_goal(),
                t.half_width / cal,
                t.mae(),
                t.persistence_mae(),
                t.mae() / t.persistence_mae().max(f64::MIN_POSITIVE),
                chosen.join("/"),
            );
        }
        let _ = writeln!(
            s,
            "warm: forecasts made before the interval was calibrated (wide, enough_data false; not in \
             coverage). coverage: calibrated 95% intervals holding the actual value (goal 93-97%); \
             <=upper: at or under the upper bound (97.5% if calibrated); in-goal: traces whose own \
             coverage is in {:.0}-{:.0}% (goal >= 80%); MAE and halfwidth in cores or GiB; \
             ratio: MAE / persistence's (goal <= 1); chosen: share of forecasts issued by \
             persistence / EWMA / damped trend / seasonal naive.",
            100.0 * TRACE_GOAL.0,
            100.0 * TRACE_GOAL.1
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Point;

    fn trace(name: &str, step_secs: f64, cpu: &[f64], memory: bool) -> Trace {
        Trace {
            name: name.into(),
            step_secs,
            points: cpu
                .iter()
                .enumerate()
                .map(|(i, &c)| Point {
                    t_secs: i as f64 * step_secs,
                    cpu_cores: c,
                    memory_bytes: memory.then_some(GIB as f64),
                })
                .collect(),
        }
    }

    /// Rows as (family, resource, horizon, forecasts, warm, coverage, MAE ratio).
    type Row<'a> = (&'a str, &'a str, f64, usize, usize, f64, f64);

    fn check(families: &[(String, Vec<Trace>)], want: &[Row<'_>]) {
        let report = forecast_report(families);
        let got: Vec<_> = report
            .rows
            .iter()
            .map(|r| {
                let t = &r.tally;
                let ratio = t.mae() / t.persistence_mae().max(f64::MIN_POSITIVE);
                (
                    r.family.as_str(),
                    r.resource,
                    r.horizon_min,
                    t.forecasts,
                    t.warm,
                    t.coverage(),
                    ratio,
                )
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn report_table() {
        // A flat hour at one-minute steps: every forecast exact, persistence's error 0 too (the
        // ratio is then 0 over the smallest positive number). 60 samples, horizons 5/15/30:
        // 55, 45 and 30 forecasts have an actual. A horizon's 19th error is scored at sample
        // h + 18, so the forecasts shown before are warm (not in the coverage): 23 at 5 min,
        // 33 at 15 min, and all 30 at 30 min (coverage then 0 of 0). No memory column: no
        // memory rows.
        let flat = trace("flat", 60.0, &[2.0; 60], false);
        check(
            &[("f".into(), vec![flat])],
            &[
                ("f", "cpu", 5.0, 55, 23, 1.0, 0.0),
                ("f", "cpu", 15.0, 45, 33, 1.0, 0.0),
                ("f", "cpu", 30.0, 30, 30, 0.0, 0.0),
            ],
        );
        // With memory, both resources are reported; a family without traces is left out.
        let both = trace("both", 300.0, &[1.0; 12], true);
        let rows = forecast_report(&[("g".into(), vec![both]), ("empty".into(), vec![])]).rows;
        let names: Vec<_> = rows.iter().map(|r| (r.resource, r.horizon_min)).collect();
        assert_eq!(
            names,
            [
                ("cpu", 5.0),
                ("cpu", 15.0),
                ("cpu", 30.0),
                ("memory", 5.0),
                ("memory", 15.0),
                ("memory", 30.0)
            ]
        );
    }
}
