//! What the benchmarks in `examples/` share: the figures of a process from `/proc`, the
//! daemon's metrics, and the sandbox's idle units. Not an example of its own (Cargo builds
//! only `examples/*.rs` and `examples/*/main.rs`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use autoscaler_testkit::{Daemon, Sandbox};

/// A benchmark's command line, `NAME DAEMON_BINARY [UNITS] [SECONDS] [LABEL]`, and the load
/// average when it starts.
pub struct Args {
    pub bin: PathBuf,
    pub units: usize,
    pub seconds: u64,
    pub label: String,
    pub load1: String,
}

impl Args {
    /// Reads the arguments with these defaults; `min_seconds` is the shortest run that
    /// measures anything.
    pub fn parse(name: &str, units: usize, seconds: u64, min_seconds: u64) -> anyhow::Result<Args> {
        let mut args = std::env::args().skip(1);
        let bin =
            PathBuf::from(args.next().with_context(|| {
                format!("usage: {name} DAEMON_BINARY [UNITS] [SECONDS] [LABEL]")
            })?);
        let units: usize = args.next().map_or(Ok(units), |s| s.parse())?;
        let seconds: u64 = args.next().map_or(Ok(seconds), |s| s.parse())?;
        anyhow::ensure!(
            (1..=2000).contains(&units) && (min_seconds..=600).contains(&seconds),
            "UNITS must be 1-2000 and SECONDS {min_seconds}-600 (the load stays bounded)"
        );
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Ok(Args {
            bin,
            units,
            seconds,
            label: args.next().unwrap_or_default(),
            load1: load.split_whitespace().next().unwrap_or("?").to_string(),
        })
    }
}

/// The daemon as an operator would run it to compare: mode `disabled` (it reads, stores and
/// shows every unit every second, and changes nothing) unless a unit's config says otherwise,
/// a 1 s check interval, logging at `info`, managing `units` (the first is the default unit).
pub fn start_daemon(
    bin: &std::path::Path,
    sandbox: &Sandbox,
    strategy: &str,
    units: &[&str],
) -> anyhow::Result<(Daemon, tempfile::NamedTempFile)> {
    let config = tempfile::NamedTempFile::new().context("creating the daemon's config file")?;
    std::fs::write(
        config.path(),
        "[config]\nmode = \"disabled\"\ncheck_interval_seconds = 1\n",
    )
    .context("writing the daemon's config file")?;
    let config_path = config.path().display().to_string();
    let mut dargs = vec!["--config", &config_path, "--strategy", strategy];
    for n in units {
        dargs.extend(["--unit", n]);
    }
    let daemon = Daemon::start_with_env(bin, sandbox, &dargs, &[("AUTOSCALER_LOG", "info")])?;
    Ok((daemon, config))
}

/// Gives the sandbox the default CPU weight. The testkit favours the sandbox's CPU (large
/// `cpu.shares`, for tests with busy units); the daemon runs outside it, so a loaded unit in
/// a favoured sandbox would take the daemon's CPU as well (at 64 times its weight).
pub fn default_cpu_weight(sandbox: &Sandbox) -> anyhow::Result<()> {
    let shares = std::path::Path::new("/sys/fs/cgroup/cpu")
        .join(sandbox.name())
        .join("cpu.shares");
    std::fs::write(&shares, "1024").with_context(|| format!("writing {}", shares.display()))
}

/// `UNITS` idle services with the three limits the daemon manages, so each has a directory of
/// its own in the cpu, memory and pids hierarchies (as managed units do). Written at once,
/// loaded with one reload; started (with `extra`, already written) with one call.
///
/// With `BENCH_BUSY=1` each runs `sleep 0.5` in a loop instead of sleeping for ever: a new
/// process and some CPU time every half second, so no reading of it is a quiet one (the
/// daemon's cost for units that do something, against idle ones).
pub fn start_idle_units(
    sandbox: &Sandbox,
    units: usize,
    extra: &[&str],
) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = (1..=units)
        .map(|i| format!("bench-idle-{i:04}.service"))
        .collect();
    let exec = match std::env::var("BENCH_BUSY").as_deref() {
        Ok("1") => "/bin/sh -c 'while :; do sleep 0.5; done'",
        _ => "/bin/sleep infinity",
    };
    for n in &names {
        let path = sandbox.unit_dir().join(n);
        std::fs::write(
            &path,
            format!(
                "[Unit]\nDescription=bench: an idle managed unit\n\n[Service]\n\
                 CPUQuota=50%\nMemoryMax=256M\nTasksMax=64\nExecStart={exec}\n"
            ),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    sandbox.systemctl(&["daemon-reload"])?;
    let mut start = vec!["start"];
    start.extend(extra);
    start.extend(names.iter().map(String::as_str));
    sandbox.systemctl(&start)?;
    Ok(names)
}

/// utime + stime of a process (all its threads, the exited ones included), in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("{path} has no ')'"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line; `rest` starts at field 3.
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("field {} of {path}", i + 3))
    };
    Ok(field(11)? + field(12)?)
}

pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS")
}

/// The anonymous part of a process's RSS (heap, stacks), without the pages of its binary
/// and libraries mapped from files (`RssFile`), which the kernel can drop and read again.
pub fn rss_anon_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "RssAnon")
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}

pub fn clock_ticks() -> anyhow::Result<u64> {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("getconf CLK_TCK")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("getconf CLK_TCK printed no number")
}

pub fn today() -> String {
    Command::new("date")
        .arg("+%F")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn metrics(daemon: &Daemon) -> anyhow::Result<String> {
    let r = daemon.http().get("/metrics")?;
    anyhow::ensure!(r.status == 200, "GET /metrics: HTTP {}", r.status);
    Ok(r.text)
}

/// The value of an unlabelled metric in the text format.
pub fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// How many units the daemon reads and manages now (`autoscaler_unit_available` is 1).
pub fn available(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("autoscaler_unit_available{"))
        .filter(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(1.0))
        .count()
}
