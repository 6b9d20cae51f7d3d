//! The cost of a unit's prediction per check, at a 1 s interval after two hours (not a test).
//!
//! Run: `cargo bench -p autoscaler-core --bench predict`. Two ways side by side, over the
//! same 7,200 samples of a noisy, slowly rising load and the default config (a 120-minute
//! window): every sample kept and the prediction computed at every check (the engine until
//! issue 14's third round), and the engine's way now, [`Recent`] and the prediction computed
//! again only when a point was added or dropped. Each way is timed over the last 600 checks,
//! after the history is full, best of 5 rounds. It prints µs per check, the ratio, and the
//! bytes of samples each keeps.

use std::hint::black_box;
use std::time::Instant;

use autoscaler_core::predict::{Forecaster, Recent, Sample, predict, predict_recent};
use autoscaler_core::{Config, GIB, Limits, Millis};

const SAMPLES: usize = 7200;
const TIMED: usize = 600;
const ROUNDS: usize = 5;

fn sample(k: usize) -> Sample {
    // A deterministic wobble on a slow rise, and a whole agent now and then.
    let wobble = ((k * 7919) % 101) as f64 / 100.0 - 0.5;
    Sample {
        at: Millis(k as i64 * 1000),
        cpu_cores: 0.5 + k as f64 / SAMPLES as f64 + 0.2 * wobble,
        memory_bytes: 1e9 + 1e6 * (k % 13) as f64,
        tasks: 10.0 + (k % 3) as f64,
        agents: u32::from(k % 600 < 300),
        testing_agents: 0,
        features_pending: None,
    }
}

fn main() {
    let cfg = Config::default();
    let limits = Limits {
        cpu_quota: Some(200),
        memory_max: Some(4 * GIB),
        tasks_max: Some(512),
    };
    let window = f64::from(cfg.forecast_window_minutes() * 60);
    let samples: Vec<Sample> = (0..SAMPLES).map(sample).collect();
    let forecaster = Forecaster::from_samples(&samples[..SAMPLES - TIMED]);

    let mut every = f64::INFINITY;
    for _ in 0..ROUNDS {
        let mut kept: Vec<Sample> = samples[..SAMPLES - TIMED].to_vec();
        let t = Instant::now();
        for s in &samples[SAMPLES - TIMED..] {
            kept.remove(0);
            kept.push(*s);
            black_box(predict(&kept, &forecaster, &cfg, &limits, None, s.at));
        }
        every = every.min(t.elapsed().as_secs_f64() * 1e6 / TIMED as f64);
    }

    let mut per_point = f64::INFINITY;
    let mut points = 0;
    for _ in 0..ROUNDS {
        let mut recent = Recent::default();
        for s in &samples[..SAMPLES - TIMED] {
            recent.push(*s, window, window);
        }
        let mut version = None;
        let t = Instant::now();
        for s in &samples[SAMPLES - TIMED..] {
            recent.push(*s, window, window);
            if version != Some(recent.version()) {
                version = Some(recent.version());
                black_box(predict_recent(
                    &recent,
                    &forecaster,
                    &cfg,
                    &limits,
                    None,
                    s.at,
                ));
            }
        }
        per_point = per_point.min(t.elapsed().as_secs_f64() * 1e6 / TIMED as f64);
        points = recent.len();
    }
    let size = std::mem::size_of::<Sample>();
    println!(
        "prediction per check, 1 s interval, 2 h kept: every sample and every check {every:.1} µs \
         ({} KB of samples); merged points, per point {per_point:.1} µs ({points} points, {} KB); \
         {:.0}x less",
        SAMPLES * size / 1000,
        points * size / 1000,
        every / per_point
    );
}
