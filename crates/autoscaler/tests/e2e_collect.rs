//! Issue 14: what the daemon stores for a unit under a known load is what the unit's cgroup
//! counts, now that systemd's view comes from a cache and cgroup files stay open.
//!
//! A real daemon on a sandboxed user manager, one busy loop under `CPUQuota=50%` (so it uses
//! half a core and is throttled in most periods), read every second in mode `disabled`. The
//! test reads the cgroup's own files before and after a window and compares the samples stored
//! meanwhile. Processes in a child cgroup are counted, and a limit set by hand is seen, on a
//! unit that runs and on one that does not.

use std::fs;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use autoscaler_cgroup::QUIET_FULL_MS;
use autoscaler_core::{Millis, UnitName};
use autoscaler_testkit::{Sandbox, World, busy_unit, unit_path};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_autoscaler");
const UNIT: &str = "known-load.service";

/// The cgroup's own counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Counted {
    at_ms: i64,
    cpu_usec: u64,
    periods: u64,
    throttled: u64,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn read(sb: &Sandbox, hierarchy: &str, file: &str) -> anyhow::Result<String> {
    let path = sb.cgroup_dir(hierarchy, UNIT).join(file);
    Ok(fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string())
}

fn counted(sb: &Sandbox) -> anyhow::Result<Counted> {
    let at_ms = wall_ms();
    // On this hybrid host a unit has no cpuacct directory of its own; the unified hierarchy
    // counts its CPU time.
    Ok(Counted {
        at_ms,
        cpu_usec: sb.cgroup_counter("unified", UNIT, "cpu.stat", "usage_usec")?,
        periods: sb.cgroup_counter("cpu", UNIT, "cpu.stat", "nr_periods")?,
        throttled: sb.cgroup_counter("cpu", UNIT, "cpu.stat", "nr_throttled")?,
    })
}

fn close(what: &str, stored: f64, counted: f64, tolerance: f64) {
    assert!(
        (stored - counted).abs() <= tolerance,
        "{what}: stored {stored:.4}, the cgroup counts {counted:.4} (tolerance {tolerance})"
    );
}

#[test]
fn the_samples_stored_under_a_known_load_match_the_cgroups_counters() -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    sb.write_unit(
        UNIT,
        &format!(
            "{}CPUQuota=50%\nMemoryMax=256M\nTasksMax=64\n",
            busy_unit(1)
        ),
    )?;
    sb.start_unit(UNIT)?;
    let w = World::start(BIN, sb, &[UNIT], &["--strategy", "dry-run"])?;
    w.put_config(json!({ "mode": "disabled", "check_interval_seconds": 1 }))?;
    w.wait_checks(UNIT, 3)?;

    let store = w.store()?;
    let unit = UnitName::parse(UNIT)?;
    let before = counted(&w.sandbox)?;
    // Ten samples inside the window, the first of them a whole interval after it opened (its
    // rate is then all inside the window too).
    let rows = w.wait(30, "ten samples after the first reading", || {
        let rows = store.metrics_since(&unit, Millis(before.at_ms + 1000), Millis(wall_ms()))?;
        Ok((rows.len() >= 10).then_some(rows))
    })?;
    let after = counted(&w.sandbox)?;
    let last = rows.last().context("no sample")?;

    // CPU: the mean of the stored rates against the cgroup's CPU time over the window; the
    // load is steady (a busy loop held at its quota), so the two agree closely.
    let secs = (after.at_ms - before.at_ms) as f64 / 1000.0;
    let cores = (after.cpu_usec - before.cpu_usec) as f64 / 1e6 / secs;
    let stored_cores = rows.iter().map(|r| r.cpu_cores).sum::<f64>() / rows.len() as f64;
    close("cores used", stored_cores, cores, 0.05);
    close("cores used (the quota)", cores, 0.5, 0.08);
    let ratio = (after.throttled - before.throttled) as f64
        / (after.periods - before.periods).max(1) as f64;
    let stored_ratio =
        rows.iter().filter_map(|r| r.throttled_ratio).sum::<f64>() / rows.len() as f64;
    close("throttled share of periods", stored_ratio, ratio, 0.1);

    // Limits, tasks and processes: what the kernel has now.
    let sb = &w.sandbox;
    assert_eq!(last.cpu_quota, sb.cfs_quota(UNIT)?, "{last:?}");
    let memory_max: u64 = read(sb, "memory", "memory.limit_in_bytes")?.parse()?;
    assert_eq!(last.memory_max, Some(memory_max), "{last:?}");
    let tasks_max: u64 = read(sb, "pids", "pids.max")?.parse()?;
    assert_eq!(last.tasks_max, Some(tasks_max), "{last:?}");
    let tasks: u64 = read(sb, "pids", "pids.current")?.parse()?;
    assert_eq!(last.tasks, tasks, "{last:?}");
    let procs = read(sb, "unified", "cgroup.procs")?.lines().count() as u64;
    assert_eq!(last.process_count, procs, "{last:?}");

    // Memory: the working set (usage less inactive file pages), as the daemon counts it; a
    // busy loop's hardly moves.
    let usage: u64 = read(sb, "memory", "memory.usage_in_bytes")?.parse()?;
    let inactive = sb.cgroup_counter("memory", UNIT, "memory.stat", "total_inactive_file")?;
    close(
        "memory working set (MiB)",
        last.memory_bytes as f64 / 1048576.0,
        usage.saturating_sub(inactive) as f64 / 1048576.0,
        1.0,
    );
    Ok(())
}

/// Processes in a cgroup below the unit's (a delegated payload, a container) are the unit's
/// too. The daemon walks the unit's directory only when the kernel's `cgroup.stat` counts a
/// cgroup below it, so this checks both answers on the real kernel: none at first, then one
/// that this test makes and moves a process into.
#[test]
fn processes_in_a_child_cgroup_are_counted() -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    sb.write_unit(UNIT, &busy_unit(1))?;
    sb.start_unit(UNIT)?;
    let w = World::start(BIN, sb, &[UNIT], &["--strategy", "dry-run"])?;
    w.put_config(json!({ "mode": "disabled", "check_interval_seconds": 1 }))?;
    w.wait_checks(UNIT, 2)?;
    let store = w.store()?;
    let unit = UnitName::parse(UNIT)?;
    let own = read(&w.sandbox, "unified", "cgroup.procs")?.lines().count() as u64;
    let stored_since = |from: i64, want: u64| {
        w.wait(30, "a sample with the processes counted", || {
            let rows = store.metrics_since(&unit, Millis(from), Millis(wall_ms()))?;
            Ok(rows.iter().any(|r| r.process_count == want).then_some(()))
        })
    };
    stored_since(wall_ms(), own)?;

    let child = w.sandbox.cgroup_dir("unified", UNIT).join("payload");
    fs::create_dir(&child).with_context(|| format!("creating {}", child.display()))?;
    let mut sleeper = std::process::Command::new("sleep").arg("60").spawn()?;
    let moved = fs::write(child.join("cgroup.procs"), sleeper.id().to_string());
    let counted = moved
        .context("moving a process into the child cgroup")
        .and_then(|()| stored_since(wall_ms(), own + 1));
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    // The child is empty once the sleeper is reaped; systemd removes the unit's cgroup at stop
    // only if nothing is left below it.
    let removed = fs::remove_dir(&child);
    counted?;
    removed.with_context(|| format!("removing {}", child.display()))?;
    Ok(())
}

/// A limit set by hand (`systemctl set-property`, which systemd announces to no one) is seen
/// by the daemon: within a few seconds on a unit that runs, whose readings are full, and by
/// its next full reading (at most `QUIET_FULL_MS`) on a unit in which nothing runs, whose
/// readings skip the limit files.
#[test]
fn a_limit_set_by_hand_is_seen_on_a_running_and_on_a_quiet_unit() -> anyhow::Result<()> {
    const QUIET: &str = "quiet-hand.service";
    let sb = Sandbox::start()?;
    sb.write_unit(UNIT, &format!("{}CPUQuota=50%\n", busy_unit(1)))?;
    sb.write_unit(
        QUIET,
        "[Service]\nExecStart=/bin/sleep infinity\nCPUQuota=50%\n",
    )?;
    sb.start_unit(UNIT)?;
    sb.start_unit(QUIET)?;
    let w = World::start(BIN, sb, &[UNIT, QUIET], &["--strategy", "dry-run"])?;
    let config = json!({ "mode": "disabled", "check_interval_seconds": 1 });
    w.put_config(&config)?;
    w.put_unit_config(QUIET, &config)?;
    w.wait_for_cpu_quota(UNIT, 50)?;
    w.wait_for_cpu_quota(QUIET, 50)?;
    // Past the first full readings: the quiet unit's now stand in for the next ones.
    w.wait_checks(QUIET, 3)?;

    let http = w.http();
    let quota = |unit: &str| -> anyhow::Result<Value> {
        Ok(http.get_ok(&unit_path(unit, "/status"))?["current_limits"]["cpu_quota"].clone())
    };
    let set = Instant::now();
    for unit in [UNIT, QUIET] {
        w.sandbox
            .systemctl(&["set-property", "--runtime", unit, "CPUQuota=30%"])?;
    }
    w.wait(15, "the running unit's new quota", || {
        Ok((quota(UNIT)? == 30).then_some(()))
    })?;
    let running = set.elapsed();
    let limit = QUIET_FULL_MS as u64 / 1000 + 15;
    w.wait(limit, "the quiet unit's new quota", || {
        Ok((quota(QUIET)? == 30).then_some(()))
    })?;
    let quiet = set.elapsed();
    println!(
        "a hand-set quota seen after {:.1} s on the running unit, {:.1} s on the quiet one",
        running.as_secs_f64(),
        quiet.as_secs_f64()
    );
    Ok(())
}
