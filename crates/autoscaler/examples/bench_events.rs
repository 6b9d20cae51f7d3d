//! How fast the kernel's notifications make the daemon act (issue 16; docs/BENCHMARKS.md,
//! "Reactions woken by the kernel"). Run by `scripts/bench-events`:
//!
//! ```text
//! bench_events DAEMON [RUNS] [LABEL]
//! ```
//!
//! On a systemd user manager in a sandbox, with the daemon at the spec's default 30 s interval
//! and `balanced`, RUNS times each (a fresh unit and daemon per run):
//!
//! - **CPU** (as this machine's root, and as a daemon with `CAP_SYS_RESOURCE`, see [`PRIVILEGED`]):
//!   a unit under `CPUQuota=20%` starts a busy loop; the time until its quota in the
//!   kernel (`cpu.cfs_quota_us` or `cpu.max`) is raised.
//! - **Memory ramp**: a unit under `MemoryMax=1G` grows to 1.25 GiB over 3.75 s (so it would
//!   pass the limit at 3 s); raised before any OOM kill or not, with the daemon's
//!   notifications on, and again with them off (`AUTOSCALER_EVENTS=off`, the control). The
//!   load is a child of the unit's shell, so a kill leaves the unit (and its cgroup) up.
//! - **OOM bump**: a unit under `MemoryMax=1G` allocates 1.5 GiB at once and is OOM-killed
//!   (`OOMPolicy=continue`, so the unit lives on); the time from the kill (the cgroup's
//!   `oom_kill` counter moving) to the raised limit in the kernel.
//!
//! Times are taken by polling the cgroup's own files every 2 ms. It prints one markdown row
//! per measure: median, the spread, and how many runs passed. With `BENCH_ONLY_CPU` set it
//! runs the two CPU measures only and prints their figures (a quicker look while working).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use autoscaler_testkit::{Daemon, SMALL_HOST_BOUNDS, Sandbox, python_after, wait_until};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let bin = PathBuf::from(
        args.get(1)
            .context("usage: bench_events DAEMON [RUNS] [LABEL]")?,
    );
    let runs: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let label = args.get(3).cloned().unwrap_or_default();
    let dir = tempfile::tempdir()?;
    let sb = Sandbox::start()?;
    let go = dir.path().join("go");
    fs::write(dir.path().join("ramp.py"), RAMP)?;
    fs::write(dir.path().join("oom.py"), OOM)?;

    // As this machine's root (no CAP_SYS_RESOURCE here), and as a daemon that has it.
    let mut cpu = [
        (Vec::new(), 0, String::new()),
        (Vec::new(), 0, String::new()),
    ];
    for (slot, wrapper) in [(0, &[][..]), (1, &PRIVILEGED[..])] {
        for k in 0..runs {
            let run = cpu_run(&bin, &sb, &go, &format!("cpu-{slot}-{k}"), wrapper)?;
            eprintln!(
                "cpu run {k} ({}): raised after {:.2} s (by an event: {})",
                run.trigger, run.took, run.by_event
            );
            cpu[slot].0.push(run.took);
            cpu[slot].1 += usize::from(run.by_event);
            cpu[slot].2 = run.trigger;
        }
    }
    if std::env::var("BENCH_ONLY_CPU").is_ok() {
        for (times, by_event, trigger) in &mut cpu {
            println!(
                "{} | {by_event} of {runs} by an event | {trigger}",
                spread(times, 1.0, "s", 2)
            );
        }
        return Ok(());
    }
    let mut ramp = [(0, Vec::new()), (0, Vec::new())];
    for (slot, events) in [(0, true), (1, false)] {
        for k in 0..runs {
            let (caught, raised_at) = ramp_run(&bin, &sb, dir.path(), k, events)?;
            eprintln!("ramp run {k} (events {events}): caught {caught}, raised at {raised_at:?}");
            ramp[slot].0 += usize::from(caught);
            ramp[slot].1.extend(raised_at);
        }
    }
    let mut bump = Vec::new();
    for k in 0..runs {
        match oom_run(&bin, &sb, dir.path(), k)? {
            Some(took) => {
                eprintln!("oom run {k}: bumped {:.0} ms after the kill", took * 1000.0);
                bump.push(took);
            }
            None => eprintln!("oom run {k}: no OOM kill (raised before it)"),
        }
    }

    let date = date();
    for (who, (times, by_event, trigger)) in ["root without", "a daemon with"].iter().zip(&mut cpu)
    {
        println!(
            "| {date} | {label} | CPU, {who} CAP_SYS_RESOURCE: load start to raised quota | {runs} | {} | {by_event} of {runs} by an event; {trigger} |",
            spread(times, 1.0, "s", 2)
        );
    }
    println!(
        "| {date} | {label} | memory ramp to 1.25x MemoryMax in 3.75 s: raised before any OOM kill | {runs} | events on: raised at {} | {} of {runs}; control (events off): {} of {runs} |",
        spread(&mut ramp[0].1, 1.0, "s", 2),
        ramp[0].0,
        ramp[1].0
    );
    println!(
        "| {date} | {label} | OOM kill to the bumped MemoryMax | {} | {} | |",
        bump.len(),
        spread(&mut bump, 1000.0, "ms", 0)
    );
    Ok(())
}

/// Grows to 1.25 GiB in 75 steps 50 ms apart, touching every page, then holds.
const RAMP: &str = "import time\nb = []\nstep = int(1.25 * 2**30 / 75)\nfor _ in range(75):\n    b.append(b'\\x01' * step)\n    time.sleep(0.05)\ntime.sleep(60)\n";
/// 1.5 GiB at once.
const OOM: &str = "b = b'\\x01' * (3 << 29)\n";

/// The unit's cgroup file `v1` in the `controller` hierarchy on a v1 or hybrid host, or `v2`
/// in the unified one.
fn cgroup_file(
    sb: &Sandbox,
    unit: &str,
    controller: &str,
    v1: &str,
    v2: &str,
) -> anyhow::Result<PathBuf> {
    let cg = sb.show(unit, "ControlGroup")?;
    let v1_dir = Path::new("/sys/fs/cgroup").join(controller);
    Ok(if v1_dir.is_dir() {
        PathBuf::from(format!("{}{cg}/{v1}", v1_dir.display()))
    } else {
        PathBuf::from(format!("/sys/fs/cgroup{cg}/{v2}"))
    })
}

/// A number from a cgroup file: the first field, or the value of `key` in `key value` lines.
fn read_num(path: &Path, key: Option<&str>) -> anyhow::Result<u64> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let field = match key {
        None => text.split_whitespace().next(),
        Some(k) => text
            .lines()
            .find_map(|l| l.strip_prefix(k)?.split_whitespace().next()),
    };
    match field {
        Some("max") => Ok(u64::MAX),
        Some(v) => Ok(v.parse()?),
        None => bail!("no value in {}", path.display()),
    }
}

/// How the daemon runs to have `CAP_SYS_RESOURCE` where this machine's root lacks it: in a
/// user namespace, as its root (mapped to the real root), whose effective set holds every
/// capability. That set is what the kernel looks at when a PSI trigger is written (the
/// opener's `f_cred`, kernel/sched/psi.c), so the daemon takes the path a root system service
/// on an ordinary host takes: 500 ms windows, on the kernel's fast poller.
const PRIVILEGED: [&str; 4] = ["unshare", "--user", "--map-root-user", "--"];

fn daemon(
    bin: &Path,
    sb: &Sandbox,
    unit: &str,
    events: bool,
    wrapper: &[&str],
) -> anyhow::Result<Daemon> {
    let mut env = vec![("AUTOSCALER_LOG", "info")];
    if !events {
        env.push(("AUTOSCALER_EVENTS", "off"));
    }
    let d = Daemon::start_wrapped(wrapper, bin, sb, &["--unit", unit], &env)?;
    let r = d.http().put("/api/autoscaler/config", SMALL_HOST_BOUNDS)?;
    if r.status != 200 {
        bail!("PUT bounds: {} {}", r.status, r.text);
    }
    // The first check has read the unit (and, with events, armed it).
    wait_until(Duration::from_secs(30), "the first check", || {
        let s = d.http().get_ok("/api/autoscaler/status")?;
        let armed = s["events"]["sources"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        let checked = s["last_decision"] != "waiting for the first check";
        Ok((checked && (armed || !events)).then_some(()))
    })?;
    Ok(d)
}

/// Polls `f` every 2 ms for `limit`; the time from `start` at which it first held.
fn first_time(
    start: Instant,
    limit: Duration,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Option<f64>> {
    while start.elapsed() < limit {
        if f()? {
            return Ok(Some(start.elapsed().as_secs_f64()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(None)
}

/// One CPU run: how long the raise took, whether an event woke it, and the PSI trigger the
/// daemon armed on the unit's `cpu.pressure`.
struct CpuRun {
    took: f64,
    by_event: bool,
    trigger: String,
}

fn cpu_run(
    bin: &Path,
    sb: &Sandbox,
    go: &Path,
    name: &str,
    wrapper: &[&str],
) -> anyhow::Result<CpuRun> {
    let unit = format!("{name}.service");
    let _ = fs::remove_file(go);
    sb.write_unit(
        &unit,
        &format!(
            "[Service]\nExecStart=/bin/sh -c 'while [ ! -e {} ]; do sleep 0.01; done; exec yes >/dev/null'\n\
             CPUQuota=20%\nMemoryMax=1G\nTasksMax=100\n",
            go.display()
        ),
    )?;
    sb.start_unit(&unit)?;
    let d = daemon(bin, sb, &unit, true, wrapper)?;
    let status = d.http().get_ok("/api/autoscaler/status")?;
    let trigger = status["events"]["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["source"] == "cpu_pressure")
        .map_or("no CPU trigger".to_string(), |s| {
            let detail = s["detail"].as_str().unwrap_or("");
            // `PSI trigger "some 50000 500000" on PATH`: the line is what tells the window.
            detail.split('"').nth(1).unwrap_or(detail).to_string()
        });
    let quota = cgroup_file(sb, &unit, "cpu", "cpu.cfs_quota_us", "cpu.max")?;
    let before = read_num(&quota, None)?;
    let start = Instant::now();
    fs::write(go, "")?;
    let took = first_time(start, Duration::from_secs(120), || {
        Ok(read_num(&quota, None)? > before)
    })?
    .context("the quota was not raised within 120 s")?;
    let by_event = wait_until(Duration::from_secs(10), "the history row", || {
        let h = d.http().get_ok("/api/autoscaler/history?limit=1")?;
        Ok(h[0]["reason"].as_str().map(|r| r.contains("event:")))
    })?;
    drop(d);
    sb.stop_unit(&unit)?;
    Ok(CpuRun {
        took,
        by_event,
        trigger,
    })
}

fn ramp_run(
    bin: &Path,
    sb: &Sandbox,
    dir: &Path,
    k: usize,
    events: bool,
) -> anyhow::Result<(bool, Option<f64>)> {
    let unit = format!(
        "ramp-{k}-{}.service",
        if events { "events" } else { "control" }
    );
    let MemoryRun {
        daemon: d,
        go,
        limit,
        ooms,
        key,
        before,
    } = memory_run(bin, sb, dir, &unit, "ramp.py", events)?;
    let start = Instant::now();
    fs::write(&go, "")?;
    let raised = first_time(start, Duration::from_secs(6), || {
        Ok(read_num(&limit, None)? > before)
    })?;
    // The ramp ends at 3.75 s: give it time to end, then count the kills.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(start.elapsed()));
    let killed = read_num(&ooms, Some(key))? > 0;
    if std::env::var("BENCH_VERBOSE").is_ok() {
        let s = d.http().get_ok("/api/autoscaler/status")?;
        let h = d.http().get_ok("/api/autoscaler/history?limit=3")?;
        eprintln!("events {}\nhistory {h}", s["events"]);
    }
    drop(d);
    sb.stop_unit(&unit)?;
    Ok((raised.is_some() && !killed, raised))
}

/// A memory run's unit under way: its daemon, its start file, and the cgroup files watched.
struct MemoryRun {
    daemon: Daemon,
    go: PathBuf,
    limit: PathBuf,
    ooms: PathBuf,
    key: &'static str,
    /// The memory limit in the kernel before the load.
    before: u64,
}

/// Starts `unit` (the testkit's `python_after` with `dir/script`) and a daemon managing it.
fn memory_run(
    bin: &Path,
    sb: &Sandbox,
    dir: &Path,
    unit: &str,
    script: &str,
    events: bool,
) -> anyhow::Result<MemoryRun> {
    let go = dir.join(format!("go-{unit}"));
    sb.write_unit(unit, &python_after(&go, &dir.join(script)))?;
    sb.start_unit(unit)?;
    let daemon = daemon(bin, sb, unit, events, &[])?;
    let limit = cgroup_file(sb, unit, "memory", "memory.limit_in_bytes", "memory.max")?;
    let (ooms, key) = oom_counter(sb, unit)?;
    let before = read_num(&limit, None)?;
    Ok(MemoryRun {
        daemon,
        go,
        limit,
        ooms,
        key,
        before,
    })
}

/// The unit's OOM kill counter: the file and the key of its line.
fn oom_counter(sb: &Sandbox, unit: &str) -> anyhow::Result<(PathBuf, &'static str)> {
    let f = cgroup_file(sb, unit, "memory", "memory.oom_control", "memory.events")?;
    Ok((f, "oom_kill "))
}

fn oom_run(bin: &Path, sb: &Sandbox, dir: &Path, k: usize) -> anyhow::Result<Option<f64>> {
    let unit = format!("oom-{k}.service");
    let MemoryRun {
        daemon: d,
        go,
        limit,
        ooms,
        key,
        before,
    } = memory_run(bin, sb, dir, &unit, "oom.py", true)?;
    let start = Instant::now();
    fs::write(&go, "")?;
    let mut killed_at = None;
    let mut raised_at = None;
    first_time(start, Duration::from_secs(10), || {
        let now = start.elapsed().as_secs_f64();
        if killed_at.is_none() && read_num(&ooms, Some(key))? > 0 {
            killed_at = Some(now);
        }
        if raised_at.is_none() && read_num(&limit, None)? > before {
            raised_at = Some(now);
        }
        Ok(killed_at.is_some() && raised_at.is_some())
    })?;
    drop(d);
    sb.stop_unit(&unit)?;
    Ok(match (killed_at, raised_at) {
        (Some(kill), Some(raise)) if raise >= kill => Some(raise - kill),
        _ => None,
    })
}

/// "median X (min-max)" of `v` times `scale`, in `unit`.
fn spread(v: &mut [f64], scale: f64, unit: &str, digits: usize) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    format!(
        "median {:.digits$} {unit} ({:.digits$}-{:.digits$})",
        median * scale,
        v[0] * scale,
        v[v.len() - 1] * scale
    )
}

fn date() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
