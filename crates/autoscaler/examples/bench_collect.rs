//! The collection benchmark (`scripts/bench-collect` runs it; not a test): the release daemon
//! and `systemd-cgtop` side by side on the same N idle units of a sandboxed systemd user
//! manager, for D seconds, each sampling every second. It reports each one's CPU time per unit
//! sample (utime + stime from `/proc/PID/stat`, before and after), their ratio, and their RSS.
//!
//! Usage: `bench_collect DAEMON_BINARY [UNITS] [SECONDS] [LABEL]` (defaults 50 and 60). Prints
//! one Markdown table row on stdout (the script files it in docs/BENCHMARKS.md) and a
//! sentence per figure on stderr. It starts and stops everything it uses: the sandbox removes
//! itself on drop, also on panic; `systemd-cgtop` and the daemon are its own children.
//!
//! The daemon runs as an operator would run it for this comparison: mode `disabled` (it
//! samples, stores and shows every unit, and changes nothing), strategy `dry-run`, a 1 s check
//! interval, logging at `info`. A "unit sample" is one check of one unit for the daemon
//! (`autoscaler_checks_total`), and one unit's row in one of cgtop's iterations.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use autoscaler_testkit::{Sandbox, wait_until};

#[path = "bench_common/mod.rs"]
mod common;
use common::{available, clock_ticks, cpu_ticks, metrics, rss_anon_kib, rss_kib, today, value};

fn main() -> anyhow::Result<()> {
    let args = common::Args::parse("bench_collect", 50, 60, 5)?;
    let (units, seconds, label, load1) = (args.units, args.seconds, &args.label, &args.load1);
    let ticks = clock_ticks()?;

    let sandbox = Sandbox::start()?;
    // The units here are idle, and the two measured processes run outside the sandbox anyway.
    common::default_cpu_weight(&sandbox)?;

    let names = common::start_idle_units(&sandbox, units, &[])?;

    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (daemon, _config) = common::start_daemon(&args.bin, &sandbox, "dry-run", &names)?;
    let daemon_pid = daemon.pid().context("the daemon is not running")?;

    // cgtop on the sandbox's app.slice, where the units are: the same cgroups. It runs for a
    // bounded number of iterations even if this program dies without killing it.
    let root = format!("/{}/app.slice", sandbox.name());
    let mut cgtop = Cgtop::start(&root, seconds + 120)?;

    wait_until(
        Duration::from_secs(60),
        "every unit checked twice by the daemon, and two cgtop iterations",
        || {
            let m = metrics(&daemon)?;
            let checks = value(&m, "autoscaler_checks_total").unwrap_or(0.0);
            let ok =
                available(&m) == units && checks >= 2.0 * units as f64 && cgtop.iterations() >= 2;
            Ok(ok.then_some(()))
        },
    )?;

    // Between the two snapshots of each process's CPU time lie only its own sampling and
    // the bench's reads of /proc; the HTTP reads of the counters come before and after.
    let checks0 = value(&metrics(&daemon)?, "autoscaler_checks_total").context("no checks")?;
    let (d0, c0, it0, t0) = (
        cpu_ticks(daemon_pid)?,
        cpu_ticks(cgtop.pid())?,
        cgtop.iterations(),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(seconds));
    let (d1, c1, it1, elapsed) = (
        cpu_ticks(daemon_pid)?,
        cpu_ticks(cgtop.pid())?,
        cgtop.iterations(),
        t0.elapsed(),
    );
    let (drss, crss) = (rss_kib(daemon_pid)?, rss_kib(cgtop.pid())?);
    let (danon, canon) = (rss_anon_kib(daemon_pid)?, rss_anon_kib(cgtop.pid())?);
    let m = metrics(&daemon)?;
    let checks1 = value(&m, "autoscaler_checks_total").context("no checks")?;
    let lag_max = value(&m, "autoscaler_loop_lag_max_seconds").unwrap_or(f64::NAN);
    let still_available = available(&m);
    let rows = cgtop.rows_per_iteration();
    cgtop.stop();

    let usec = |t: u64| t as f64 * 1e6 / ticks as f64;
    let daemon_samples = (checks1 - checks0).max(1.0);
    let cgtop_samples = ((it1 - it0) * units as u64).max(1) as f64;
    let daemon_per = usec(d1 - d0) / daemon_samples;
    let cgtop_per = usec(c1 - c0) / cgtop_samples;
    let mib = |kib: u64| kib as f64 / 1024.0;

    eprintln!(
        "bench-collect: {units} units, {:.1} s measured, load average {load1} at the start",
        elapsed.as_secs_f64()
    );
    eprintln!(
        "daemon: {:.0} unit samples ({} units available at the end), {:.0} ms CPU, {daemon_per:.1} \
         µs per unit sample, RSS {:.1} MiB ({:.1} MiB anonymous), loop lag max {:.1} ms",
        daemon_samples,
        still_available,
        usec(d1 - d0) / 1000.0,
        mib(drss),
        mib(danon),
        lag_max * 1000.0
    );
    eprintln!(
        "systemd-cgtop: {} iterations of {rows} rows ({} unit samples), {:.0} ms CPU, \
         {cgtop_per:.1} µs per unit sample, RSS {:.1} MiB ({:.1} MiB anonymous)",
        it1 - it0,
        cgtop_samples,
        usec(c1 - c0) / 1000.0,
        mib(crss),
        mib(canon)
    );
    eprintln!("ratio daemon/cgtop: {:.2}x", daemon_per / cgtop_per);
    if still_available != units {
        bail!("only {still_available} of {units} units were available at the end");
    }
    println!(
        "| {} | {label} | {units} | {seconds} | {load1} | {daemon_per:.0} | {cgtop_per:.0} | \
         {:.2}x | {:.1} MiB ({:.1} anon) | {:.1} MiB ({:.1} anon) | {:.0} ms |",
        today(),
        daemon_per / cgtop_per,
        mib(drss),
        mib(danon),
        mib(crss),
        mib(canon),
        lag_max * 1000.0
    );
    Ok(())
}

/// `systemd-cgtop -b -r -d 1` on one cgroup, its iterations counted from its output (batch
/// mode ends each with an empty line). Killed on drop.
struct Cgtop {
    child: Child,
    iterations: Arc<AtomicU64>,
    rows: Arc<AtomicU64>,
}

impl Cgtop {
    fn start(root: &str, max_iterations: u64) -> anyhow::Result<Cgtop> {
        let mut child = Command::new("systemd-cgtop")
            .args(["-b", "-r", "-d", "1", "-n"])
            .arg(max_iterations.to_string())
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting systemd-cgtop (package systemd)")?;
        let out = child.stdout.take().context("cgtop's stdout")?;
        let iterations = Arc::new(AtomicU64::new(0));
        let rows = Arc::new(AtomicU64::new(0));
        let (it, rw) = (iterations.clone(), rows.clone());
        std::thread::spawn(move || {
            let mut in_this = 0;
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.trim().is_empty() {
                    rw.store(in_this, Ordering::Relaxed);
                    it.fetch_add(1, Ordering::Relaxed);
                    in_this = 0;
                } else {
                    in_this += 1;
                }
            }
        });
        Ok(Cgtop {
            child,
            iterations,
            rows,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn iterations(&self) -> u64 {
        self.iterations.load(Ordering::Relaxed)
    }

    fn rows_per_iteration(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Cgtop {
    fn drop(&mut self) {
        self.stop();
    }
}
