//! The scale benchmark (`scripts/bench-scale` runs it; not a test): the release daemon
//! managing UNITS idle units and one that gets loaded, all checked every second, in a
//! sandboxed systemd user manager (issue 14: 1000 units at a 1 s interval).
//!
//! Usage: `bench_scale DAEMON_BINARY [UNITS] [SECONDS] [LABEL]` (defaults 1000 and 60).
//! Prints one Markdown table row on stdout (the script files it in docs/BENCHMARKS.md) and a
//! sentence per figure on stderr. It starts and stops everything it uses.
//!
//! What it measures, once every unit has been read twice:
//! - for SECONDS, `GET /api/autoscaler/status` every 100 ms over a fresh loopback connection
//!   (as a dashboard or `curl` would): its p50, p99 and max, and its p99 and the checks a
//!   second before the load starts (on this 2-core host the loaded unit, once scaled up,
//!   takes most of the CPU, the daemon's included);
//! - the loop's lag: `autoscaler_loop_lag_max_seconds`, the worst since the daemon started
//!   (start-up, with every unit's first two readings, included);
//! - halfway, the loaded unit (`CPUQuota=30%`, mode `enabled` with the e2e tests' fast-path
//!   config, strategy `live`) starts two busy loops without being restarted: the time from
//!   then until the kernel's quota for its cgroup is raised;
//! - the daemon's CPU per unit sample and its RSS, as `bench_collect` counts them.
//!
//! The sandbox has the default CPU weight, as the daemon (outside it) has.
//!
//! The idle units run in mode `disabled` (set in the daemon's config file): they are read,
//! stored and shown every second, and never changed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use autoscaler_testkit::{Sandbox, fast_path_config, unit_path, wait_until};

#[path = "bench_common/mod.rs"]
mod common;
use common::{available, clock_ticks, cpu_ticks, metrics, rss_anon_kib, rss_kib, today, value};

const LOADED: &str = "bench-loaded.service";

fn main() -> anyhow::Result<()> {
    let args = common::Args::parse("bench_scale", 1000, 60, 20)?;
    let (units, seconds, label, load1) = (args.units, args.seconds, &args.label, &args.load1);
    let ticks = clock_ticks()?;

    let sandbox = Sandbox::start()?;
    // Until the third round the sandbox kept the testkit's 64-fold CPU weight: once scaled up,
    // the loaded unit's busy loops then took nearly all the CPU from the daemon, whose loop,
    // checks and status answers crawled for the second half of every run.
    common::default_cpu_weight(&sandbox)?;
    // The loaded unit waits for a marker file, then runs two busy loops in its own process
    // tree (as the e2e fast-path test does): the load starts at a known instant.
    let marker = sandbox.home().join("load-now");
    let script = sandbox.home().join("loaded.sh");
    std::fs::write(
        &script,
        format!(
            "while [ ! -e {} ]; do sleep 0.05; done\nyes >/dev/null &\nyes >/dev/null &\nwait\n",
            marker.display()
        ),
    )
    .context("writing the loaded unit's script")?;
    sandbox.write_unit(
        LOADED,
        &format!(
            "[Unit]\nDescription=bench: the unit that gets loaded\n\n[Service]\n\
             ExecStart=/bin/sh {}\nCPUQuota=30%\nMemoryMax=1G\nTasksMax=200\n",
            script.display()
        ),
    )?;
    let names = common::start_idle_units(&sandbox, units, &[LOADED])?;

    // The loaded unit first: it is the default unit, the one `/api/autoscaler/status` shows.
    let mut managed = vec![LOADED];
    managed.extend(names.iter().map(String::as_str));
    let (daemon, _config) = common::start_daemon(&args.bin, &sandbox, "live", &managed)?;
    let daemon_pid = daemon.pid().context("the daemon is not running")?;
    let all = units + 1;

    let started = Instant::now();
    wait_until(
        Duration::from_secs(120),
        "every unit checked twice by the daemon",
        || {
            let m = metrics(&daemon)?;
            let checks = value(&m, "autoscaler_checks_total").unwrap_or(0.0);
            Ok((available(&m) == all && checks >= 2.0 * all as f64).then_some(()))
        },
    )?;
    let settled = started.elapsed();
    let fast_path = fast_path_config(serde_json::json!({ "mode": "enabled" }));
    let r = daemon
        .http()
        .put(&unit_path(LOADED, "/config"), &fast_path.to_string())?;
    anyhow::ensure!(r.status == 200, "PUT the loaded unit's config: {}", r.text);

    let addr: SocketAddr = daemon
        .http()
        .base
        .trim_start_matches("http://")
        .parse()
        .context("the daemon's URL is not host:port")?;
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || status_latencies(addr, &stop))
    };

    let checks0 = value(&metrics(&daemon)?, "autoscaler_checks_total").context("no checks")?;
    let (cpu0, t0) = (cpu_ticks(daemon_pid)?, Instant::now());
    std::thread::sleep(Duration::from_secs(seconds / 2));
    let checks_half = value(&metrics(&daemon)?, "autoscaler_checks_total").context("no checks")?;
    let half = t0.elapsed();
    let quota0 = sandbox.cfs_quota(LOADED)?;
    std::fs::write(&marker, b"").context("creating the load marker")?;
    let load_started = Instant::now();
    let scale_up = wait_until(
        Duration::from_secs(seconds / 2),
        "the loaded unit's quota to be raised",
        || Ok((sandbox.cfs_quota(LOADED)? > quota0).then(|| load_started.elapsed())),
    );
    let rest = Duration::from_secs(seconds).saturating_sub(t0.elapsed());
    std::thread::sleep(rest);
    let (cpu1, elapsed) = (cpu_ticks(daemon_pid)?, t0.elapsed());
    let (rss, anon) = (rss_kib(daemon_pid)?, rss_anon_kib(daemon_pid)?);
    stop.store(true, Ordering::Relaxed);
    let timed = prober
        .join()
        .map_err(|_| anyhow::anyhow!("the status prober panicked"))??;
    let p99_of = |mut lat: Vec<Duration>| -> f64 {
        lat.sort_unstable();
        let i = ((lat.len() as f64 * 0.99).ceil() as usize).clamp(1, lat.len().max(1)) - 1;
        lat.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    let before_load = p99_of(
        timed
            .iter()
            .filter(|t| t.at < load_started)
            .map(|t| t.total)
            .collect(),
    );
    let connect_p99 = p99_of(timed.iter().map(|t| t.connect).collect());
    let first_byte_p99 = p99_of(timed.iter().map(|t| t.first_byte).collect());
    let mut lat: Vec<Duration> = timed.iter().map(|t| t.total).collect();
    let m = metrics(&daemon)?;
    let checks1 = value(&m, "autoscaler_checks_total").context("no checks")?;
    let lag_max = value(&m, "autoscaler_loop_lag_max_seconds").unwrap_or(f64::NAN);
    let still = available(&m);

    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    anyhow::ensure!(!lat.is_empty(), "no status request was answered");
    let samples = (checks1 - checks0).max(1.0);
    let per = (cpu1 - cpu0) as f64 * 1e6 / ticks as f64 / samples;
    let scale_up_s = match &scale_up {
        Ok(d) => format!("{:.1} s", d.as_secs_f64()),
        Err(_) => format!("none in {} s", seconds / 2),
    };
    eprintln!(
        "bench-scale: {all} units ({units} idle, 1 loaded), {:.1} s measured, load average \
         {load1} at the start; all read twice {:.1} s after the daemon started",
        elapsed.as_secs_f64(),
        settled.as_secs_f64()
    );
    eprintln!(
        "daemon: {samples:.0} unit samples ({:.0}/s), {per:.1} µs CPU per unit sample, RSS {:.1} \
         MiB ({:.1} MiB anonymous), loop lag max {:.1} ms (since start)",
        samples / elapsed.as_secs_f64(),
        rss as f64 / 1024.0,
        anon as f64 / 1024.0,
        lag_max * 1000.0
    );
    eprintln!(
        "GET /api/autoscaler/status: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
         (p99 {connect_p99:.1} ms to connect, {first_byte_p99:.1} ms to the first byte)",
        lat.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    eprintln!(
        "before the load started: {:.0} checks/s, GET /api/autoscaler/status p99 {before_load:.1} ms",
        (checks_half - checks0) / half.as_secs_f64()
    );
    eprintln!("scale-up of the loaded unit after its load started: {scale_up_s}");
    if still != all {
        bail!("only {still} of {all} units were available at the end");
    }
    println!(
        "| {} | {label} | {all} | {seconds} | {load1} | {per:.0} | {:.1} MiB ({:.1} anon) | {:.0} ms \
         | {:.1} ms | {:.1} ms ({before_load:.1} ms before the load) | {scale_up_s} |",
        today(),
        rss as f64 / 1024.0,
        anon as f64 / 1024.0,
        lag_max * 1000.0,
        pct(0.5),
        pct(0.99),
    );
    Ok(())
}

/// One status request: when it was sent, and how long until the connection was up, the
/// answer's first byte came, and the whole answer was in.
#[derive(Debug, Clone, Copy)]
struct Timed {
    at: Instant,
    connect: Duration,
    first_byte: Duration,
    total: Duration,
}

/// `GET /api/autoscaler/status` every 100 ms until `stop`, each over a new connection.
fn status_latencies(addr: SocketAddr, stop: &AtomicBool) -> anyhow::Result<Vec<Timed>> {
    let mut took = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let at = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        let connect = at.elapsed();
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(
            b"GET /api/autoscaler/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )?;
        let mut text = vec![0; 1];
        s.read_exact(&mut text)?;
        let first_byte = at.elapsed();
        s.read_to_end(&mut text)?;
        let total = at.elapsed();
        anyhow::ensure!(
            text.starts_with(b"HTTP/1.1 200"),
            "GET /api/autoscaler/status: {}",
            String::from_utf8_lossy(&text[..text.len().min(200)])
        );
        took.push(Timed {
            at,
            connect,
            first_byte,
            total,
        });
        std::thread::sleep(Duration::from_millis(100).saturating_sub(total));
    }
    Ok(took)
}
