//! Calibration of the core's textbook least-squares intervals on recorded traces (the method
//! before issue 13; `autoscaler simulate --forecast-report` measures the forecasts the daemon
//! now shows): how often the actual value falls inside the 95% prediction interval, and how
//! far off the forecast is.
//!
//! `cargo run -p autoscaler-sim --example calibrate -- [DIR] [--windows 30,60,120,240]
//! [--cores 8] [--memory-gib 32]`
//!
//! Every immediate subdirectory of DIR (default `../shared/traces`) is one family of traces
//! (gcd-vms, vasim). For every sample of every trace, the CPU series (cores) and the memory
//! series (GiB, where the trace has it) are forecast from the window of history ending at that
//! sample, at 5, 15 and 30 minutes, exactly as the daemon would with
//! [`autoscaler_core::forecast::forecast`]; points with too little history are skipped. Each
//! forecast is compared with the trace's value at that horizon. Per family, resource, window
//! and horizon the table gives: forecasts made, coverage (share of actual values within the
//! interval; the goal is 90-97%), the share at or under the upper bound (the side the
//! predictive trigger uses; 97.5% when calibrated), the share of traces whose own coverage lies in the goal, the
//! mean interval half-width, MAE, MAPE (over actual values above 0) and, for scale, the MAE of
//! the naive forecast "it stays where it is now".

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use autoscaler_core::GIB;
use autoscaler_core::Millis;
use autoscaler_core::forecast::forecast;
use autoscaler_sim::forecast_report::value_at;
use autoscaler_sim::trace::{Scale, Trace, read_dir};

const HORIZONS_MIN: [f64; 3] = [5.0, 15.0, 30.0];

/// Running sums for one (family, resource, window, horizon).
#[derive(Default)]
struct Tally {
    forecasts: usize,
    inside: usize,
    under_upper: usize,
    abs_err: f64,
    naive_abs_err: f64,
    half_width: f64,
    pct_err: f64,
    pct_n: usize,
    /// Per trace: (forecasts, inside), for the share of traces in the goal.
    per_trace: Vec<(usize, usize)>,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut windows_min = vec![30.0, 60.0, 120.0, 240.0];
    let mut scale = Scale {
        cores: 8.0,
        memory_gib: 32.0,
    };
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--windows" => {
                windows_min = value("--windows")?
                    .split(',')
                    .map(|w| w.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .context("--windows: minutes separated by commas, e.g. 30,60,120")?
            }
            "--cores" => scale.cores = value("--cores")?.parse().context("--cores: a number")?,
            "--memory-gib" => {
                scale.memory_gib = value("--memory-gib")?
                    .parse()
                    .context("--memory-gib: a number")?
            }
            _ if dir.is_none() && !a.starts_with("--") => dir = Some(PathBuf::from(a)),
            other => bail!(
                "unexpected argument {other:?}; usage: calibrate [DIR] [--windows 30,60] [--cores N] [--memory-gib M]"
            ),
        }
    }
    if let Some(w) = windows_min.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
        bail!("--windows: {w} is not a positive number of minutes");
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from("../shared/traces"));
    let mut families: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading the trace directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    families.sort();
    if families.is_empty() {
        bail!(
            "{} has no subdirectories: expected one per trace family (gcd-vms, vasim)",
            dir.display()
        );
    }

    println!(
        "traces: {} (gcd-vms scaled to {} cores / {} GiB); windows {:?} min; horizons {:?} min",
        dir.display(),
        scale.cores,
        scale.memory_gib,
        windows_min,
        HORIZONS_MIN
    );
    println!(
        "{:<8} {:<6} {:>4} {:>3} {:>8} {:>8} {:>7} {:>7} {:>9} {:>9} {:>7} {:>9}",
        "family",
        "res",
        "win",
        "h",
        "n",
        "coverage",
        "<=upper",
        "traces",
        "halfwidth",
        "MAE",
        "MAPE",
        "naive MAE"
    );
    for family in &families {
        let name = family
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let (traces, errors) = read_dir(family, scale)?;
        for e in &errors {
            eprintln!("skipped: {e}");
        }
        let steps: Vec<f64> = traces.iter().map(|t| t.step_secs).collect();
        eprintln!(
            "{name}: {} traces, steps {:?} s",
            traces.len(),
            steps.first()
        );
        // (resource, window index, horizon index) -> tally
        let mut tallies: BTreeMap<(&str, usize, usize), Tally> = BTreeMap::new();
        for trace in &traces {
            for (res, series) in series_of(trace) {
                for (wi, &w) in windows_min.iter().enumerate() {
                    let per = evaluate(&series, w * 60.0, trace.step_secs);
                    for (hi, (one, trace_tally)) in per.into_iter().enumerate() {
                        let t = tallies.entry((res, wi, hi)).or_default();
                        t.forecasts += one.forecasts;
                        t.inside += one.inside;
                        t.under_upper += one.under_upper;
                        t.abs_err += one.abs_err;
                        t.naive_abs_err += one.naive_abs_err;
                        t.half_width += one.half_width;
                        t.pct_err += one.pct_err;
                        t.pct_n += one.pct_n;
                        t.per_trace.push(trace_tally);
                    }
                }
            }
        }
        for ((res, wi, hi), t) in &tallies {
            if t.forecasts == 0 {
                println!(
                    "{name:<8} {res:<6} {:>4} {:>3} {:>8} (too little history in this window)",
                    windows_min[*wi], HORIZONS_MIN[*hi], 0
                );
                continue;
            }
            let n = t.forecasts as f64;
            let judged: Vec<_> = t.per_trace.iter().filter(|p| p.0 > 0).collect();
            let in_goal = judged
                .iter()
                .filter(|p| (0.90..=0.97).contains(&(p.1 as f64 / p.0 as f64)))
                .count();
            println!(
                "{name:<8} {res:<6} {:>4} {:>3} {:>8} {:>7.1}% {:>6.1}% {:>6.0}% {:>9.3} {:>9.3} {:>6.1}% {:>9.3}",
                windows_min[*wi],
                HORIZONS_MIN[*hi],
                t.forecasts,
                100.0 * t.inside as f64 / n,
                100.0 * t.under_upper as f64 / n,
                100.0 * in_goal as f64 / judged.len().max(1) as f64,
                t.half_width / n,
                t.abs_err / n,
                100.0 * t.pct_err / t.pct_n.max(1) as f64,
                t.naive_abs_err / n,
            );
        }
    }
    println!(
        "coverage: share of actual values inside the 95% interval (goal 90-97%); <=upper: share at or \
         under the upper bound (the predictive trigger's side; 97.5% if calibrated); traces: share of \
         traces whose own coverage is in the goal; halfwidth, MAE: cores or GiB"
    );
    Ok(())
}

/// The trace's CPU series in cores and, when it has memory, its memory series in GiB.
fn series_of(trace: &Trace) -> Vec<(&'static str, Vec<(Millis, f64)>)> {
    let ms = |t: f64| Millis((t * 1000.0).round() as i64);
    let mut out = vec![(
        "cpu",
        trace
            .points
            .iter()
            .map(|p| (ms(p.t_secs), p.cpu_cores))
            .collect(),
    )];
    if trace.has_memory() {
        out.push((
            "memory",
            trace
                .points
                .iter()
                .filter_map(|p| p.memory_bytes.map(|b| (ms(p.t_secs), b / GIB as f64)))
                .collect(),
        ));
    }
    out
}

/// Forecasts from every sample of one series with `window_secs` of history and scores each
/// horizon: the tally and the per-trace (forecasts, inside) pair, one per horizon.
fn evaluate(
    series: &[(Millis, f64)],
    window_secs: f64,
    step_secs: f64,
) -> Vec<(Tally, (usize, usize))> {
    let horizons: Vec<f64> = HORIZONS_MIN.iter().map(|m| m * 60.0).collect();
    let mut out: Vec<Tally> = horizons.iter().map(|_| Tally::default()).collect();
    let tolerance_ms = (step_secs * 500.0) as i64;
    let mut lo = 0;
    for (i, &(now, current)) in series.iter().enumerate() {
        // The series is sorted: keep `lo` at the first sample inside the window, and hand the
        // forecast only the window so a long trace stays linear in time.
        while series[lo].0.0 <= now.0 - (window_secs * 1000.0) as i64 {
            lo += 1;
        }
        let Ok(f) = forecast(&series[lo..=i], now, window_secs, &horizons) else {
            continue;
        };
        for (k, p) in f.points.iter().enumerate() {
            let Some(actual) = value_at(series, now.plus_secs(p.horizon_secs), tolerance_ms) else {
                continue;
            };
            let t = &mut out[k];
            t.forecasts += 1;
            t.inside += usize::from(p.lower <= actual && actual <= p.upper);
            t.under_upper += usize::from(actual <= p.upper);
            t.abs_err += (p.value - actual).abs();
            t.naive_abs_err += (current - actual).abs();
            t.half_width += (p.upper - p.lower) / 2.0;
            if actual > 0.0 {
                t.pct_err += (p.value - actual).abs() / actual;
                t.pct_n += 1;
            }
        }
    }
    out.into_iter()
        .map(|t| {
            let pair = (t.forecasts, t.inside);
            (t, pair)
        })
        .collect()
}
