//! The engine's memory after hours, not after the first minute (docs/BENCHMARKS.md, "Memory
//! after hours"): the real engine and its store over the testkit's fake systemd, on tokio's
//! paused clock, N units checked every second for H hours of their time (minutes of ours),
//! with a load that moves so that every window, forecast and pending score fills. It prints
//! the process's anonymous resident memory after 1 minute, then every half hour, and its growth
//! per unit. SQLite's page caches are in it too, bounded by `cache_size` per connection.
//!
//! The daemon's RSS benches (`bench_collect`, `bench_scale`) run for a minute; the state a unit
//! keeps (recent points, forecasts in flight) fills over the forecast window (two hours by
//! default), so this is where its bound shows.
//!
//!   cargo run --release -p autoscaler --example bench_memory [UNITS] [HOURS]   (50, 3)

use std::time::Duration;

use autoscaler_core::{GIB, Limits, UnitName};
use autoscaler_testkit::fakes::{FakeClock, FakeDaemon, FakeSystemd, HOST, T0};

/// The daemon's allocator, as it is built (`.cargo/config.toml`): what it keeps resident, not
/// glibc's, is what the daemon's RSS shows.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "bench_common/mod.rs"]
#[allow(dead_code)]
mod common;

/// This process's anonymous resident memory (heap, stacks, SQLite's caches), in KiB.
fn live_kib() -> f64 {
    common::rss_anon_kib(std::process::id()).map_or(f64::NAN, |k| k as f64)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let units: usize = args.next().map_or(Ok(50), |a| a.parse())?;
    let hours: u64 = args.next().map_or(Ok(3), |a| a.parse())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    rt.block_on(run(units, hours))
}

async fn run(units: usize, hours: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let sys = FakeSystemd::new();
    let names: Vec<UnitName> = (0..units)
        .map(|i| UnitName::parse(&format!("bench-{i}.service")))
        .collect::<Result<_, _>>()?;
    for u in &names {
        sys.add(u, Limits::new(400, 16, 1000));
    }
    let d = FakeDaemon::start(
        &sys,
        &names,
        HOST,
        &dir.path().join("a.db"),
        FakeClock::starting_at(T0),
    )?;
    // Every unit at a 1 s interval, as in the collection benches; `disabled`, so the limits
    // stay and only the state a check keeps is measured.
    for u in &names {
        let path = format!("/api/autoscaler/units/{u}/config");
        d.ok("PUT", &path, Some(r#"{"check_interval_seconds": 1}"#))
            .await?;
        let path = format!("/api/autoscaler/units/{u}/mode");
        d.ok("POST", &path, Some(r#"{"mode": "disabled"}"#)).await?;
    }
    println!("units {units}, 1 s interval, {hours} h of engine time; anonymous RSS, KiB:");
    let mut first_minute = None;
    for s in 1..=hours * 3600 {
        // A load that moves: each unit on its own phase, a slow wave and a step every 7 min.
        for (i, u) in names.iter().enumerate() {
            let t = (s + 97 * i as u64) as f64;
            let cores = 1.0
                + 0.8 * (t / 600.0).sin()
                + if (t as u64 / 420).is_multiple_of(2) {
                    0.5
                } else {
                    0.0
                };
            let memory = (4.0 + (t / 1800.0).cos()) * GIB as f64;
            sys.set_usage(u, cores, memory as u64, 100 + (t as u64 % 50));
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        // The readers run on tokio's blocking pool in real time: let them finish the round
        // (every unit checked once a second, give or take the round under way).
        let due = (s as usize).saturating_sub(1) * units;
        for _ in 0..1000 {
            tokio::task::yield_now().await;
            if d.engine.snapshot().loop_stats.checks as usize >= due {
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        // The store's writer, in real time, keeps up with the daemon's 1 s rounds: here
        // the rounds come far faster, and its queue would hold thousands of samples the
        // daemon never holds at once. So it catches up every 5 rounds (`LATER_WITHIN`).
        if s.is_multiple_of(5) {
            d.wait_for_store();
        }
        if s == 60 {
            first_minute = Some(live_kib());
            println!("  after  1 min: {:>9.0}", live_kib());
        }
        if s.is_multiple_of(1800) {
            println!("  after {:>2} min: {:>9.0}", s / 60, live_kib());
        }
    }
    let checks = d.engine.snapshot().loop_stats.checks;
    let end = live_kib();
    let first = first_minute.unwrap_or(end);
    println!(
        "checks {checks}; growth after the first minute {:.0} KiB, {:.1} KiB per unit",
        end - first,
        (end - first) / units as f64
    );
    d.stop().await?;
    Ok(())
}
