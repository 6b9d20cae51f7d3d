//! Fills a store with a day of 1 s samples (and a scale action every hour) for
//! `scripts/bench-metrics-range`: `fill-metrics DB UNIT [SAMPLES]`. The samples end now, so
//! `GET /metrics/history?since=24h` on a daemon opened on this store reads all of them.
//!
//! It writes through `autoscaler-store` exactly as the daemon does; it must not be used on a
//! store that matters (it appends 86,400 rows).

use std::path::PathBuf;

use anyhow::{Context, bail};
use autoscaler_core::{GIB, Limits, Millis, UnitName};
use autoscaler_store::{MetricRow, NewHistory, Store};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (db, unit, samples) = match args.as_slice() {
        [db, unit] => (db, unit, 86_400),
        [db, unit, n] => (
            db,
            unit,
            n.parse().context("SAMPLES must be a whole number")?,
        ),
        _ => bail!("usage: fill-metrics DB UNIT [SAMPLES]"),
    };
    let unit = UnitName::parse(unit).map_err(|e| anyhow::anyhow!("UNIT: {e}"))?;
    let store = Store::open(&PathBuf::from(db), &unit)?;
    let now = autoscaler::engine::now();
    let limits = Limits {
        cpu_quota: Some(200),
        memory_max: Some(8 * GIB),
        tasks_max: Some(500),
    };
    let started = std::time::Instant::now();
    let rows: Vec<MetricRow> = (0..samples)
        .map(|i| {
            let at = Millis(now.0 - (samples - i) * 1000);
            // A slow daily wave plus a fast wobble: realistic enough for the buckets' avg/max.
            let x = i as f64;
            let cores = 1.0 + 0.6 * (x / 7200.0).sin() + 0.2 * (x / 17.0).sin();
            MetricRow {
                unit: unit.clone(),
                at,
                cpu_percent: cores * 50.0,
                cpu_cores: cores,
                memory_bytes: (3.0 * GIB as f64 * (1.2 + (x / 5000.0).cos()) / 2.2) as u64,
                tasks: 120 + (i % 40) as u64,
                process_count: 12,
                agent_count: 2,
                testing_agent_count: 1,
                api_quota_remaining: None,
                features_pending: Some(5),
                cpu_quota: limits.cpu_quota,
                memory_max: limits.memory_max,
                tasks_max: limits.tasks_max,
                throttled_ratio: Some(((x / 900.0).sin() * 0.3).max(0.0)),
                cpu_pressure: Some(4.0),
                memory_pressure: Some(0.5),
                oom_kills: 0,
            }
        })
        .collect();
    for chunk in rows.chunks(10_000) {
        store.insert_metrics(chunk)?;
    }
    for h in 0..samples / 3600 {
        store.insert_history(&NewHistory {
            unit: unit.clone(),
            at: Millis(now.0 - (samples - h * 3600) * 1000 + 1_800_000),
            action: autoscaler_core::Action::ScaleUp,
            trigger_type: autoscaler_core::TriggerType::Threshold,
            reason: format!("benchmark action {h}"),
            old: limits,
            new: limits,
            status: autoscaler_core::Status::Success,
            error_message: None,
        })?;
    }
    eprintln!(
        "fill-metrics: {samples} samples of {unit} written to {db} in {:.1?}",
        started.elapsed()
    );
    Ok(())
}
