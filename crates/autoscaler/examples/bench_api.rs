//! The HTTP API benchmark (`scripts/bench-api` runs it; not a test): a release daemon managing
//! a busy unit in a systemd sandbox with a 1 s loop, `wrk` on GET status and GET metrics, and
//! the loop's interval drift read back from `/metrics`.
//!
//! Usage: `bench_api DAEMON_BINARY [SECONDS]`. Prints a Markdown table. It starts and stops
//! everything it uses (the sandbox cleans itself up on drop, also on panic); it must not be
//! run while other heavy work shares the machine, or the numbers say little.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use autoscaler_testkit::{Daemon, Sandbox, wait_until};

const UNIT: &str = "bench-busy.service";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bin = PathBuf::from(
        args.next()
            .context("usage: bench_api DAEMON_BINARY [SECONDS]")?,
    );
    let seconds: u32 = args.next().map_or(Ok(30), |s| s.parse())?;

    let sandbox = Sandbox::start()?;
    // The testkit favours the sandbox's CPU (huge cpu.shares) so tests' units reach their
    // quota beside a build. Here that would let the busy unit run its 25 ms of quota per
    // period ahead of the daemon and wrk, and the p99 would measure that: back to the default.
    let shares = std::path::Path::new("/sys/fs/cgroup/cpu")
        .join(sandbox.name())
        .join("cpu.shares");
    std::fs::write(&shares, "1024").with_context(|| format!("writing {}", shares.display()))?;
    // BENCH_LOAD=busy: one busy loop held to a quarter of a core (the autoscaler sees it at
    // 100% of its quota every check); the default is an idle unit, so the cores belong to the
    // daemon and wrk and the figures speak for the API. The loop checks every second either way.
    let exec = match std::env::var("BENCH_LOAD").as_deref() {
        Ok("busy") => "/bin/sh -c 'yes >/dev/null'",
        _ => "/bin/sleep infinity",
    };
    sandbox.write_unit(
        UNIT,
        &format!("[Unit]\nDescription=bench: the managed unit\n\n[Service]\nCPUQuota=25%\nExecStart={exec}\n"),
    )?;
    sandbox.start_unit(UNIT)?;
    let daemon = Daemon::start(&bin, &sandbox, &["--unit", UNIT])?;
    let http = daemon.http();
    // A 1 s loop in enabled mode, with bounds that pin the quota (the loop decides at every
    // check but has nowhere to go), so the limits stay put for the whole run.
    let r = http.put(
        "/api/autoscaler/config",
        r#"{"check_interval_seconds":1,"system_cpu_cores":0,"min_cpu_quota":20,"max_cpu_quota":25,
            "min_memory_max":1,"min_tasks_max":50,"mode":"enabled"}"#,
    )?;
    if r.status != 200 {
        bail!("setting the config: HTTP {} {}", r.status, r.text);
    }
    wait_until(Duration::from_secs(20), "a few checks at 1 s", || {
        Ok((checks(&daemon.url)? >= 3.0).then_some(()))
    })?;

    // Connections kept open by wrk: 64 measures throughput; fewer (WRK_CONNECTIONS=16) keep
    // the queue short enough that the p99 speaks for the server rather than the queue.
    let connections = std::env::var("WRK_CONNECTIONS").unwrap_or_else(|_| "64".to_string());
    let c0 = checks(&daemon.url)?;
    let mut rows = Vec::new();
    for path in ["/api/autoscaler/status", "/api/autoscaler/metrics"] {
        let out = Command::new("wrk")
            .args([
                "-t2",
                &format!("-c{connections}"),
                &format!("-d{seconds}s"),
                "--latency",
            ])
            .arg(format!("{}{path}", daemon.url))
            .output()
            .context("running wrk (scripts/bench-api installs it)")?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
        }
        eprintln!("{text}");
        let rps = field(&text, "Requests/sec:").context("no Requests/sec in wrk's output")?;
        let p99 = field(&text, "99%").context("no 99% latency in wrk's output")?;
        let p50 = field(&text, "50%").unwrap_or_default();
        let errors = text
            .lines()
            .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
            .unwrap_or("none")
            .trim()
            .to_string();
        rows.push((path, rps, p50, p99, errors));
    }
    let m = metrics_text(&daemon.url)?;
    let lag_max = sample(&m, "autoscaler_loop_lag_max_seconds").context("no lag_max")?;
    let duration = sample(&m, "autoscaler_loop_duration_seconds").unwrap_or(f64::NAN);
    let c1 = checks(&daemon.url)?;

    println!("| endpoint | requests/s | p50 | p99 | errors |");
    println!("|---|---:|---:|---:|---|");
    for (path, rps, p50, p99, errors) in rows {
        println!("| GET {path} | {rps} | {p50} | {p99} | {errors} |");
    }
    println!();
    println!(
        "Loop during the run: {} checks at a 1 s interval over ~{}s of load; largest lag of any \
         check after it was due (`autoscaler_loop_lag_max_seconds`, since start): {:.1} ms; \
         last check took {:.1} ms.",
        c1 - c0,
        2 * seconds,
        lag_max * 1000.0,
        duration * 1000.0
    );
    Ok(())
}

/// The value after a label in wrk's output, e.g. "Requests/sec:  21034.12" or "99%  3.1ms".
fn field(text: &str, label: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with(label))
        .and_then(|l| l[label.len()..].split_whitespace().next())
        .map(str::to_string)
}

fn metrics_text(url: &str) -> anyhow::Result<String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("{url}/metrics"))
        .output()
        .context("curl /metrics")?;
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The value of an unlabelled sample in the text format.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn checks(url: &str) -> anyhow::Result<f64> {
    sample(&metrics_text(url)?, "autoscaler_checks_total").context("no autoscaler_checks_total")
}
