//! End-to-end tests of the loop (issue 2): the real `autoscaler` binary against a real,
//! sandboxed systemd user manager, on this hybrid-cgroup host.
//!
//! Each test starts its own [`Sandbox`] and daemon (the harness runs one sandbox at a time),
//! configures the daemon through `PUT /api/autoscaler/config` for a 2-core host with a 1 s
//! interval, loads a unit in a known way, and checks outcomes where they really happen:
//! systemd's properties, the v1 cgroup files, the daemon's history and status. Every wait polls
//! with a deadline. These tests must not make the daemon pass: a test that fails names what it
//! waited for and shows the daemon's log.

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use autoscaler_testkit::{Sandbox, World, busy_unit, memory_hog_unit};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_autoscaler");
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Starts a sandbox, writes `unit` (when given a text, without starting it), starts the daemon
/// managing `unit` with `extra` flags, and puts `config` in force.
fn rig(unit: &str, text: Option<&str>, extra: &[&str], config: Value) -> anyhow::Result<World> {
    let sb = Sandbox::start()?;
    if let Some(text) = text {
        sb.write_unit(unit, text)?;
    }
    let rig = World::start(BIN, sb, &[unit], extra)?;
    rig.put_config(&config)?;
    Ok(rig)
}

/// The config every test starts from: a 1 s loop, reserves and minimums a 2-core, 24 GiB host
/// and 1 GiB units can satisfy, and only the plain percentage triggers (throttling and
/// pressure would make the trigger type and the reason depend on the kernel's timing).
fn base_config(changes: Value) -> Value {
    let mut c = json!({
        "check_interval_seconds": 1,
        "consecutive_scale_up_checks": 2,
        "consecutive_scale_down_checks": 2,
        "scale_cooldown_seconds": 4,
        "max_cpu_quota": 200,
        "min_step_cpu_quota": 50,
        "min_step_tasks": 50,
        "scale_up_throttled_percent": 0,
        "scale_up_cpu_pressure_percent": 0,
        "scale_up_memory_pressure_percent": 0,
    });
    let bounds: Value = serde_json::from_str(autoscaler_testkit::SMALL_HOST_BOUNDS)
        .expect("the testkit's bounds are JSON");
    for more in [bounds, changes] {
        if let (Some(base), Value::Object(more)) = (c.as_object_mut(), more) {
            base.extend(more);
        }
    }
    c
}

fn read(path: &Path) -> anyhow::Result<String> {
    Ok(fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string())
}

/// What a history row must say; limits are checked field by field (JSON as the API shows
/// them: CPU in percent, memory in GiB).
struct RowWant<'a> {
    action: &'a str,
    trigger: &'a str,
    status: &'a str,
    reason_has: &'a [&'a str],
    old: &'a [(&'a str, Value)],
    new: &'a [(&'a str, Value)],
}

fn check_row(row: &Value, want: &RowWant<'_>) {
    let s = |k: &str| row[k].as_str().unwrap_or_default().to_string();
    assert_eq!(s("action"), want.action, "action of {row}");
    assert_eq!(s("trigger_type"), want.trigger, "trigger_type of {row}");
    assert_eq!(s("status"), want.status, "status of {row}");
    for part in want.reason_has {
        assert!(s("reason").contains(part), "reason lacks {part:?}: {row}");
    }
    for (k, v) in want.old {
        assert_eq!(&row["old_limits"][k], v, "old_limits.{k} of {row}");
    }
    for (k, v) in want.new {
        assert_eq!(&row["new_limits"][k], v, "new_limits.{k} of {row}");
    }
    if want.status == "success" {
        assert_eq!(row["error_message"], Value::Null, "error_message of {row}");
    } else {
        assert!(
            !s("error_message").is_empty(),
            "a failed row needs an error_message: {row}"
        );
    }
}

/// Issue 2, scenarios 1 and 2: CPUQuota=50% with two busy loops is raised live (same main
/// process), then, with the loops stopped, lowered step by step to the configured minimum.
#[test]
fn cpu_quota_is_raised_live_under_load_and_lowered_to_the_minimum_when_idle() -> anyhow::Result<()>
{
    let unit = "busy.service";
    let text = format!("{}CPUQuota=50%\nMemoryMax=1G\nTasksMax=200\n", busy_unit(2));
    let r = rig(unit, Some(&text), &[], base_config(json!({})))?;
    let min_cpu = r.config()?["min_cpu_quota"]
        .as_u64()
        .context("min_cpu_quota in the config")?;
    assert_eq!(min_cpu, 20);
    assert_eq!(r.status()?["strategy"], "live");

    // The load starts with the unit; the daemon is already configured and waiting for it.
    let load_start = Instant::now();
    r.sandbox.start_unit(unit)?;
    let pid = r.sandbox.main_pid(unit)?;
    assert_eq!(r.sandbox.cpu_quota(unit)?, Some(50));
    let raised = r.wait(30, "CPUQuota to be raised above 50%", || {
        Ok(r.sandbox.cpu_quota(unit)?.filter(|q| *q > 50))
    })?;
    let secs = load_start.elapsed().as_secs_f64();
    eprintln!(
        "e2e: CPU scale-up: load start to raised CPUQuota ({raised}%) in systemd: {secs:.2} s"
    );

    // 50% grows by max(x1.5, +50 points) = 100%, inside the bounds 20..=200.
    assert_eq!(raised, 100);
    assert_eq!(
        r.sandbox.main_pid(unit)?,
        pid,
        "the live apply restarted the unit"
    );
    assert_eq!(r.sandbox.cfs_quota(unit)?, Some(100), "cpu.cfs_quota_us");
    let rows = r.history()?;
    check_row(
        &rows[0],
        &RowWant {
            action: "scale_up",
            trigger: "threshold",
            status: "success",
            reason_has: &["Thresholds breached", "CPU=", "CPU 50%->100%"],
            old: &[
                ("cpu_quota", json!(50)),
                ("memory_max", json!(1)),
                ("tasks_max", json!(200)),
            ],
            new: &[
                ("cpu_quota", json!(100)),
                ("memory_max", json!(1)),
                ("tasks_max", json!(200)),
            ],
        },
    );
    let status = r.status()?;
    assert!(status["scale_up_count"].as_u64() >= Some(1), "{status}");

    // The load stops (the processes stay, so no restart): the quota must come down, step by
    // step, and stop at the minimum, where a plain shrink (50% - 50 points) would go to 0.
    r.sandbox.systemctl(&["kill", "--signal=SIGSTOP", unit])?;
    let mut lowest = u32::MAX;
    r.wait(40, "CPUQuota to come down to min_cpu_quota (20%)", || {
        let q = r
            .sandbox
            .cpu_quota(unit)?
            .context("CPUQuota became infinity")?;
        lowest = lowest.min(q);
        Ok((q <= 20).then_some(()))
    })?;
    assert_eq!(lowest, 20, "CPUQuota went below min_cpu_quota");
    assert_eq!(r.sandbox.cfs_quota(unit)?, Some(20), "cpu.cfs_quota_us");
    assert_eq!(
        r.sandbox.main_pid(unit)?,
        pid,
        "the live apply restarted the unit"
    );

    let rows = r.history()?;
    let downs: Vec<&Value> = rows
        .iter()
        .filter(|h| h["action"] == "scale_down")
        .collect();
    assert!(downs.len() >= 2, "want at least 100->50->20: {rows:#?}");
    for row in &downs {
        check_row(
            row,
            &RowWant {
                action: "scale_down",
                trigger: "threshold",
                status: "success",
                reason_has: &["Idle and under thresholds", "CPU"],
                old: &[("memory_max", json!(1))],
                new: &[("memory_max", json!(1))],
            },
        );
        let (old, new) = (
            row["old_limits"]["cpu_quota"].as_u64(),
            row["new_limits"]["cpu_quota"].as_u64(),
        );
        assert!(new < old, "a scale-down that did not lower CPU: {row}");
        assert!(new >= Some(min_cpu), "below min_cpu_quota: {row}");
    }
    check_row(
        downs[0],
        &RowWant {
            action: "scale_down",
            trigger: "threshold",
            status: "success",
            reason_has: &["CPU 50%->20%"],
            old: &[("cpu_quota", json!(50))],
            new: &[("cpu_quota", json!(20))],
        },
    );
    let status = r.status()?;
    assert!(status["scale_down_count"].as_u64() >= Some(2), "{status}");
    r.sandbox.systemctl(&["kill", "--signal=SIGCONT", unit])?;
    Ok(())
}

/// Issue 2, scenario 3: a unit allocating past its MemoryMax=1G gets more memory before the
/// kernel kills it. Without the daemon this hog is OOM-killed at 1 GiB.
#[test]
fn memory_max_is_raised_before_an_oom_kill() -> anyhow::Result<()> {
    let unit = "hog.service";
    // 32 MiB every 400 ms up to 1280 MiB: over 50% (the threshold below) after ~6.5 s, at
    // the old limit after ~13 s; the daemon needs two 1 s checks.
    let text = format!("{}MemoryMax=1G\n", memory_hog_unit(32, 400, 1280));
    let config = base_config(json!({
        "scale_up_memory_percent": 50,
        "scale_down_memory_percent": 30,
        // Scale-down is not under test here: an early idle streak would shrink TasksMax and
        // its cooldown would delay the memory action.
        "consecutive_scale_down_checks": 1000,
    }));
    let r = rig(unit, Some(&text), &[], config)?;
    r.sandbox.start_unit(unit)?;
    let pid = r.sandbox.main_pid(unit)?;
    assert_eq!(r.sandbox.memory_max(unit)?, Some(GIB));

    let raised = r.wait(30, "MemoryMax to be raised above 1G", || {
        Ok(r.sandbox.memory_max(unit)?.filter(|m| *m > GIB))
    })?;
    assert_eq!(
        raised,
        2 * GIB,
        "1 GiB grows by max(x1.5, +1 GiB), in whole GiB"
    );
    let usage = r
        .sandbox
        .cgroup_dir("memory", unit)
        .join("memory.usage_in_bytes");
    r.wait(30, "the hog to hold 1280 MiB, past the old limit", || {
        let bytes: u64 = read(&usage)?.parse()?;
        Ok((bytes >= 1280 * MIB).then_some(()))
    })?;
    let limit: u64 = read(
        &r.sandbox
            .cgroup_dir("memory", unit)
            .join("memory.limit_in_bytes"),
    )?
    .parse()?;
    assert!(limit >= 2 * GIB, "memory.limit_in_bytes is {limit}");
    assert_eq!(r.sandbox.oom_kills(unit)?, 0, "memory.oom_control oom_kill");
    assert_eq!(r.sandbox.main_pid(unit)?, pid, "the hog was replaced");

    let rows = r.history()?;
    let first = rows.last().context("no history row")?;
    check_row(
        first,
        &RowWant {
            action: "scale_up",
            trigger: "threshold",
            status: "success",
            reason_has: &["Thresholds breached", "Memory=", "Memory 1GB->2GB"],
            old: &[("memory_max", json!(1)), ("cpu_quota", Value::Null)],
            new: &[("memory_max", json!(2)), ("cpu_quota", Value::Null)],
        },
    );
    assert_eq!(
        first["old_limits"]["tasks_max"],
        first["new_limits"]["tasks_max"]
    );
    Ok(())
}

/// Issue 2, scenario 4: with `--strategy restart`, a restart that fails (its ExecStartPre
/// fails once) is rolled back: the unit file byte for byte, systemd reloaded, the unit running
/// again; the history says "failed", the mode is disabled and the status shows the failure
/// until the mode is set again.
#[test]
fn a_failed_restart_is_rolled_back_and_disables_the_autoscaler() -> anyhow::Result<()> {
    let unit = "flaky.service";
    // The daemon starts in manual mode so only the request below acts.
    let config = base_config(json!({ "mode": "manual" }));
    let r = rig(unit, None, &["--strategy", "restart"], config)?;
    let token = r.sandbox.home().join("fail-next-start");
    // Unusual spacing and a comment: a rewrite that normalises the file would show.
    let text = format!(
        "[Unit]\nDescription=autoscaler test: fails its next start when {token} exists\n\
         StartLimitIntervalSec=0\n\n[Service]\n\
         ExecStartPre=/bin/sh -c 'if [ -e {token} ]; then rm -f {token}; exit 1; fi'\n\
         ExecStart=/bin/sleep infinity\n# limits under test\nCPUQuota=50%\nMemoryMax=1G\n\
         TasksMax = 100\n",
        token = token.display()
    );
    let path = r.sandbox.write_unit(unit, &text)?;
    r.sandbox.start_unit(unit)?;
    let original = fs::read(&path)?;
    fs::write(&token, b"")?;

    let resp = r.http().post(
        "/api/autoscaler/scale",
        r#"{"cpu_quota": 80, "reason": "e2e: a restart that fails"}"#,
    )?;
    assert_eq!(resp.status, 502, "{}", resp.text);
    assert_eq!(resp.json["mode"], "disabled", "{}", resp.text);
    assert!(!token.exists(), "the restart never ran ExecStartPre");

    assert_eq!(
        fs::read(&path)?,
        original,
        "the unit file was not restored byte for byte"
    );
    assert_eq!(
        r.sandbox.show(unit, "NeedDaemonReload")?,
        "no",
        "not reloaded"
    );
    assert_eq!(r.sandbox.cpu_quota(unit)?, Some(50));
    assert_eq!(
        r.sandbox.show(unit, "ActiveState")?,
        "active",
        "not running again"
    );

    let rows = r.history()?;
    check_row(
        &rows[0],
        &RowWant {
            action: "manual_scale",
            trigger: "manual",
            status: "failed",
            reason_has: &["e2e: a restart that fails"],
            old: &[("cpu_quota", json!(50)), ("memory_max", json!(1))],
            new: &[("cpu_quota", json!(80)), ("memory_max", json!(1))],
        },
    );
    assert_eq!(rows[0]["id"], resp.json["history_id"]);
    let message = rows[0]["error_message"].as_str().unwrap_or_default();
    assert!(message.contains("rolled back"), "{message}");
    assert!(!message.contains("ROLLBACK FAILED"), "{message}");

    assert_eq!(r.config()?["mode"], "disabled");
    let status = r.status()?;
    assert_eq!(status["mode"], "disabled");
    assert_eq!(
        status["last_failure"]["history_id"], rows[0]["id"],
        "{status}"
    );
    assert_eq!(status["last_failure"]["error_message"], message);
    // It stays until someone sets the mode, also across checks.
    let s = r.wait(10, "a check in disabled mode", || {
        let s = r.status()?;
        let decided = s["last_decision"].as_str().unwrap_or_default();
        Ok(decided.contains("mode is disabled").then_some(s))
    })?;
    assert_ne!(s["last_failure"], Value::Null, "{s}");

    let resp = r
        .http()
        .post("/api/autoscaler/mode", r#"{"mode": "manual"}"#)?;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json["last_failure"], Value::Null, "{}", resp.text);
    let status = r.status()?;
    assert_eq!(status["last_failure"], Value::Null, "{status}");
    assert_eq!(status["mode"], "manual");
    Ok(())
}

/// Issue 2, scenario 5: counters, config and history survive a SIGTERM and a new start on
/// the same database; SIGTERM is a clean exit (status 0).
#[test]
fn a_restarted_daemon_keeps_counters_config_and_history() -> anyhow::Result<()> {
    let unit = "busy.service";
    let text = format!("{}CPUQuota=20%\nMemoryMax=1G\nTasksMax=100\n", busy_unit(1));
    // One breaching check is enough; the long cooldown keeps it to one automatic action.
    let config = base_config(json!({
        "consecutive_scale_up_checks": 1,
        "scale_cooldown_seconds": 3600,
    }));
    let mut r = rig(unit, Some(&text), &[], config)?;
    r.sandbox.start_unit(unit)?;
    r.wait(20, "one automatic scale-up", || {
        let s = r.status()?;
        Ok((s["scale_up_count"] == 1).then_some(()))
    })?;
    let resp = r.http().post(
        "/api/autoscaler/scale",
        r#"{"tasks_max": 150, "reason": "e2e: before the restart"}"#,
    )?;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let changed = r.put_config(json!({ "scale_down_factor": 0.7 }))?;
    assert_eq!(changed["scale_down_factor"], 0.7);
    assert_eq!(changed["mode"], "manual");

    let before = (r.status()?, r.config()?, r.history()?);
    assert_eq!(before.2.len(), 2, "{:#?}", before.2);
    let pid = r.sandbox.main_pid(unit)?;

    r.daemon
        .restart()
        .context("SIGTERM must stop the daemon with status 0")?;

    let (status, config, history) = (r.status()?, r.config()?, r.history()?);
    for key in [
        "scale_up_count",
        "scale_down_count",
        "last_scale_time",
        "mode",
        "policy",
    ] {
        assert_eq!(status[key], before.0[key], "status.{key} after the restart");
    }
    assert_eq!(status["scale_up_count"], 1);
    assert_eq!(config, before.1, "config after the restart");
    assert_eq!(history, before.2, "history after the restart");
    assert_eq!(
        r.sandbox.main_pid(unit)?,
        pid,
        "the unit was restarted with the daemon"
    );
    r.daemon
        .stop()
        .context("SIGTERM must stop the daemon with status 0")?;
    Ok(())
}

/// Issue 2, "a unit that is not running: keep serving, say why, retry": the daemon serves
/// while its unit does not exist, and picks the unit up once it starts, without a restart.
#[test]
fn a_missing_unit_is_reported_and_picked_up_when_it_starts() -> anyhow::Result<()> {
    let unit = "late.service";
    let r = rig(unit, None, &[], base_config(json!({})))?;
    let status = r.wait(10, "the status to say the unit is unavailable", || {
        let s = r.status()?;
        Ok((s["unit_available"] == false).then_some(s))
    })?;
    let reason = status["unit_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains(unit) && (reason.contains("not-found") || reason.contains("not found")),
        "the reason does not say the unit is not found: {status}"
    );
    let m = r.http().get("/api/autoscaler/metrics")?;
    assert_eq!(m.status, 503, "{}", m.text);
    assert_eq!(m.json["unit"], unit, "{}", m.text);
    assert_eq!(m.json["reason"], status["unit_error"], "{}", m.text);
    assert_eq!(r.http().get("/healthz")?.status, 200);

    r.sandbox
        .write_unit(unit, &format!("{}CPUQuota=20%\n", busy_unit(1)))?;
    r.sandbox.start_unit(unit)?;
    let metrics = r.wait(15, "/metrics to answer 200 once the unit runs", || {
        let m = r.http().get("/api/autoscaler/metrics")?;
        Ok((m.status == 200).then_some(m.json))
    })?;
    assert!(metrics["process_count"].as_u64() >= Some(2), "{metrics}");
    assert!(metrics["cpu_cores_used"].as_f64() > Some(0.0), "{metrics}");
    let status = r.status()?;
    assert_eq!(status["unit_available"], true, "{status}");
    assert_eq!(status["unit_error"], Value::Null, "{status}");
    Ok(())
}
