//! Replay throughput over the whole gcd-vms set, on one core (not a test).
//!
//! Run: `cargo bench -p autoscaler-sim` (release). Traces are read once, outside the timing;
//! then every trace is replayed through every built-in policy, several rounds, and the
//! best round is reported as samples per second, both per policy and for all policies.
//! Then the online forecasts alone (the core's `SeriesForecaster` fed each trace's CPU and
//! memory series, reading the issued forecasts after every sample, as the engine does), and
//! the `headroom` replay with those forecasts.
//! `AUTOSCALER_TRACES` overrides the trace directory.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use autoscaler_core::Millis;
use autoscaler_core::forecast::SeriesForecaster;
use autoscaler_sim::{Machine, PolicySpec, Setup, Trace, read_dir, replay, shared_traces_dir};

/// Feeds the trace's CPU and memory series to fresh forecasters, reading the forecasts after
/// every sample.
fn forecast_trace(t: &Trace) {
    let (mut cpu, mut mem) = (SeriesForecaster::default(), SeriesForecaster::default());
    for p in &t.points {
        let at = Millis((p.t_secs * 1000.0) as i64);
        cpu.observe(at, p.cpu_cores);
        black_box(cpu.forecasts());
        if let Some(m) = p.memory_bytes {
            mem.observe(at, m);
            black_box(mem.forecasts());
        }
    }
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::var_os("AUTOSCALER_TRACES")
        .map_or_else(|| shared_traces_dir().join("gcd-vms"), PathBuf::from);
    let setup = Setup::new(Machine::default());
    let (traces, errors) = read_dir(&dir, setup.machine.scale())?;
    for e in &errors {
        eprintln!("skipped: {e}");
    }
    let samples: usize = traces.iter().map(|t| t.points.len()).sum();
    anyhow::ensure!(samples > 0, "no samples under {}", dir.display());
    let start = setup.start_limits()?;
    println!(
        "{} traces, {samples} samples, machine {}",
        traces.len(),
        setup.machine
    );

    let policies = PolicySpec::all();
    let mut total_best = 0.0f64;
    for p in &policies {
        let mut best = f64::INFINITY;
        for _round in 0..5 {
            let t0 = Instant::now();
            for t in &traces {
                let mut s = p.build(&setup, t.step_secs, start)?;
                black_box(replay(black_box(t), s.as_mut(), start));
            }
            best = best.min(t0.elapsed().as_secs_f64());
        }
        total_best += best;
        println!(
            "{:<14} {:>8.2} ms  {:>12.0} samples/s",
            p.name(),
            best * 1e3,
            samples as f64 / best
        );
    }
    let best_of = |f: &dyn Fn()| {
        (0..5)
            .map(|_| {
                let t0 = Instant::now();
                f();
                t0.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let forecasts = best_of(&|| traces.iter().for_each(forecast_trace));
    println!(
        "{:<14} {:>8.2} ms  {:>12.0} samples/s",
        "forecasts",
        forecasts * 1e3,
        samples as f64 / forecasts
    );
    let headroom = PolicySpec::parse("headroom").map_err(anyhow::Error::msg)?;
    let with = best_of(&|| {
        for t in &traces {
            if let Ok(mut s) = headroom.build(&setup, t.step_secs, start) {
                black_box(replay(black_box(t), s.as_mut(), start));
            }
            forecast_trace(t);
        }
    });
    println!(
        "{:<14} {:>8.2} ms  {:>12.0} samples/s",
        "headroom+fcst",
        with * 1e3,
        samples as f64 / with
    );
    println!(
        "all {} policies: {:.2} ms for {} policy-samples: {:.0} policy-samples/s ({:.0} trace samples/s through every policy)",
        policies.len(),
        total_best * 1e3,
        samples * policies.len(),
        (samples * policies.len()) as f64 / total_best,
        samples as f64 / total_best
    );
    Ok(())
}
