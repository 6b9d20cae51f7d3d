//! Kill the daemon at each step of a change, on the real sandboxed systemd (issue 11).
//!
//! For each strategy and each of its steps, the daemon is started to die at that step
//! (`AUTOSCALER_CRASH_AT`, compiled into debug builds only: an abort, as abrupt as kill -9),
//! asked for a manual scale, and started again on the same store. The test then asserts what
//! was kept: the history has the change under one row, and what it says agrees with what
//! systemd has in force (success: the new CPU quota; failure: the old one); the journal is
//! empty; the unit file is the original byte for byte when the change did not take; no temp
//! or backup file is left beside it; and the unit runs.

use std::fs;

use anyhow::{Context, ensure};
use autoscaler_testkit::{Http, SMALL_HOST_BOUNDS, Sandbox, World, wait_until};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_autoscaler");
const UNIT: &str = "crash.service";

/// What the history must say once a change cut short at a step has been settled.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// systemd had the new limit: recorded as the success it was.
    Took,
    /// systemd never got it: recorded as not applied.
    NotApplied,
    /// The restart strategy was cut short: its backup is put back and the change rolled back.
    RolledBack,
}

const LIVE: &[(&str, Outcome)] = &[
    ("journalled", Outcome::NotApplied),
    ("live-set", Outcome::Took),
    ("applied", Outcome::Took),
];

const RESTART: &[(&str, Outcome)] = &[
    ("journalled", Outcome::NotApplied),
    ("restart-backup", Outcome::RolledBack),
    ("restart-file", Outcome::RolledBack),
    ("restart-reload", Outcome::RolledBack),
    ("restart-restarted", Outcome::RolledBack),
    ("applied", Outcome::Took),
];

#[test]
fn a_kill_at_each_step_of_a_live_change_leaves_systemd_and_the_history_agreeing()
-> anyhow::Result<()> {
    kill_at_each_step("live", LIVE)
}

#[test]
fn a_kill_at_each_step_of_a_restart_change_leaves_systemd_the_file_and_the_history_agreeing()
-> anyhow::Result<()> {
    kill_at_each_step("restart", RESTART)
}

fn kill_at_each_step(strategy: &str, steps: &[(&str, Outcome)]) -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    let file = sb.write_unit(
        UNIT,
        "[Unit]\nDescription=autoscaler crash test\nStartLimitIntervalSec=0\n\n\
         [Service]\nExecStart=/bin/sleep infinity\nCPUQuota=50%\nMemoryMax=1G\nTasksMax=100\n",
    )?;
    sb.start_unit(UNIT)?;
    let mut w = World::start(BIN, sb, &[UNIT], &["--strategy", strategy])?;
    w.put_config(SMALL_HOST_BOUNDS)?;

    for (k, &(step, outcome)) in steps.iter().enumerate() {
        let old = w
            .sandbox
            .cpu_quota(UNIT)?
            .context("the unit has a CPU quota")?;
        let new = 60 + 10 * k as u32;
        let file_before = fs::read(&file)?;
        w.daemon.restart_to_crash_at(step)?;
        let http = w.http();
        // The daemon dies while answering: no answer is expected.
        let _ = http.post(
            "/api/autoscaler/scale",
            &format!(r#"{{"cpu_quota": {new}, "reason": "crash test at {step}"}}"#),
        );
        w.daemon.wait_for_crash(step)?;
        w.daemon.start_again()?;
        let http = w.http();
        let row = settled_row(&http, step)?;
        let status = row["status"].as_str().unwrap_or_default();
        let error = row["error_message"].as_str().unwrap_or_default();
        let in_force = w.sandbox.cpu_quota(UNIT)?;
        println!("{strategy} {step}: {status} ({error}); CPUQuota now {in_force:?}");
        ensure!(
            row["new_limits"]["cpu_quota"] == new,
            "{step}: the newest row is not this change: {row}"
        );
        match outcome {
            Outcome::Took => {
                ensure!(status == "success", "{step}: {row}");
                ensure!(
                    in_force == Some(new),
                    "{step}: {in_force:?} in force, {row}"
                );
            }
            Outcome::NotApplied | Outcome::RolledBack => {
                ensure!(status == "failed", "{step}: {row}");
                ensure!(
                    in_force == Some(old),
                    "{step}: {in_force:?} in force, {row}"
                );
                let said = match outcome {
                    Outcome::NotApplied => "not applied",
                    _ => "rolled back",
                };
                ensure!(error.contains(said), "{step}: wanted {said:?}: {row}");
                ensure!(
                    fs::read(&file)? == file_before,
                    "{step}: the unit file is not the original byte for byte"
                );
            }
        }
        let strays: Vec<String> = fs::read_dir(w.sandbox.unit_dir())?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".autoscaler-"))
            .collect();
        ensure!(strays.is_empty(), "{step}: stray files left: {strays:?}");
        ensure!(
            w.sandbox.show(UNIT, "ActiveState")? == "active",
            "{step}: the unit is {}",
            w.sandbox.show(UNIT, "ActiveState")?
        );
        let st = http.get_ok("/api/autoscaler/status")?;
        if outcome == Outcome::Took {
            ensure!(
                st["last_scale_time"].is_string(),
                "{step}: a recovered change starts the cooldown: {st}"
            );
        }
    }
    w.daemon.stop()?;
    Ok(())
}

/// The newest history row, once the restarted daemon has settled its journal (the log says
/// so for each unfinished change it finds).
fn settled_row(http: &Http, step: &str) -> anyhow::Result<Value> {
    wait_until(
        std::time::Duration::from_secs(60),
        "the restarted daemon to record the change cut short",
        || {
            let rows = http.get_ok("/api/autoscaler/history?limit=1")?;
            let row = rows[0].clone();
            let reason = row["reason"].as_str().unwrap_or_default();
            Ok(reason
                .contains(&format!("crash test at {step}"))
                .then_some(row))
        },
    )
}
