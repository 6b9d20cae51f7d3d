//! The soak benchmark (`scripts/bench-soak` runs it; not a test): the release daemon reading
//! UNITS idle units every second for MINUTES of wall-clock time in a sandboxed systemd user
//! manager, and its RSS as it goes (issue 14: at most 40 MiB at 1000 units, held for hours).
//!
//! Usage: `bench_soak DAEMON_BINARY [UNITS] [MINUTES] [LABEL]` (defaults 1000 and 120).
//! Prints a sentence on stderr every ten minutes (and after the first) and one Markdown table
//! row on stdout: the RSS after 1, 30, 60, 90 and 120 minutes (those the run reaches), at its
//! end and just after a `GET /metrics` for every unit, the highest seen at a minute's mark,
//! the loop's worst lag, and the daemon's CPU in µs a unit sample over the run. It starts
//! and stops everything it uses.
//!
//! `bench_memory` measures the same growth in minutes on a paused clock, over the fake
//! systemd; this one is the daemon itself, on real cgroups and real time. It costs little
//! CPU (idle units, about 40 µs a sample), but it holds the sandbox for the whole run.

use std::time::{Duration, Instant};

use anyhow::Context;
use autoscaler_testkit::wait_until;

#[path = "bench_common/mod.rs"]
#[allow(dead_code)]
mod common;
use common::{available, clock_ticks, cpu_ticks, metrics, rss_anon_kib, rss_kib, today, value};

fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let usage = "usage: bench_soak DAEMON_BINARY [UNITS] [MINUTES] [LABEL]";
    let bin = std::path::PathBuf::from(argv.next().context(usage)?);
    let units: usize = argv.next().map_or(Ok(1000), |s| s.parse()).context(usage)?;
    let minutes: u64 = argv.next().map_or(Ok(120), |s| s.parse()).context(usage)?;
    let label = argv.next().unwrap_or_default();
    anyhow::ensure!(
        (1..=2000).contains(&units) && (1..=240).contains(&minutes),
        "UNITS must be 1-2000 and MINUTES 1-240 (the load stays bounded)"
    );
    let sandbox = autoscaler_testkit::Sandbox::start()?;
    common::default_cpu_weight(&sandbox)?;
    let names = common::start_idle_units(&sandbox, units, &[])?;
    let managed: Vec<&str> = names.iter().map(String::as_str).collect();
    let (daemon, _config) = common::start_daemon(&bin, &sandbox, "dry-run", &managed)?;
    let pid = daemon.pid().context("the daemon is not running")?;
    wait_until(
        Duration::from_secs(120),
        "every unit read by the daemon",
        || Ok((available(&metrics(&daemon)?) == units).then_some(())),
    )?;

    let checks0 = value(&metrics(&daemon)?, "autoscaler_checks_total").context("no checks")?;
    let (cpu0, started) = (cpu_ticks(pid)?, Instant::now());
    let marks = [1, 30, 60, 90, 120];
    let mut at_marks = Vec::new();
    let mut peak = (0, 0);
    let mut last = (0, 0);
    for minute in 1..=minutes {
        let due = started + Duration::from_secs(minute * 60);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let (rss, anon) = (rss_kib(pid)?, rss_anon_kib(pid)?);
        peak = peak.max((rss, anon));
        last = (rss, anon);
        if marks.contains(&minute) {
            at_marks.push(format!("{:.1}", rss as f64 / 1024.0));
        }
        if minute == 1 || minute % 10 == 0 || minute == minutes {
            let m = metrics(&daemon)?;
            eprintln!(
                "bench-soak: {minute} min: RSS {:.1} MiB ({:.1} anonymous), {} of {units} units \
                 available, {:.0} checks, loop lag max {:.0} ms",
                rss as f64 / 1024.0,
                anon as f64 / 1024.0,
                available(&m),
                value(&m, "autoscaler_checks_total").unwrap_or(f64::NAN),
                value(&m, "autoscaler_loop_lag_max_seconds").unwrap_or(f64::NAN) * 1000.0
            );
        }
    }
    // The end's reading is the last minute's, taken before that minute's scrape, and one
    // comes just after the last scrape: a `GET /metrics` for every unit is the daemon's
    // largest answer, so what it adds is worth its own column.
    let (rss, anon) = last;
    let m = metrics(&daemon)?;
    let scraped = (rss_kib(pid)?, rss_anon_kib(pid)?);
    let still = available(&m);
    anyhow::ensure!(
        still == units,
        "only {still} of {units} units were available at the end"
    );
    let samples = (value(&m, "autoscaler_checks_total").context("no checks")? - checks0).max(1.0);
    let per = (cpu_ticks(pid)? - cpu0) as f64 * 1e6 / clock_ticks()? as f64 / samples;
    println!(
        "| {} | {label} | {units} | {minutes} min | {} | {:.1} MiB ({:.1} anon) \
         | {:.1} MiB ({:.1} anon) | {:.1} MiB | {:.0} ms | {per:.0} |",
        today(),
        at_marks.join(" / "),
        rss as f64 / 1024.0,
        anon as f64 / 1024.0,
        scraped.0 as f64 / 1024.0,
        scraped.1 as f64 / 1024.0,
        peak.0 as f64 / 1024.0,
        value(&m, "autoscaler_loop_lag_max_seconds").unwrap_or(f64::NAN) * 1000.0
    );
    Ok(())
}
