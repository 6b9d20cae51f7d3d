//! The real daemon on the sandboxed systemd with its database on a disk that fills up, and on
//! a read-only one (issue 11).
//!
//! The daemon runs in a mount namespace of its own (`unshare -m`), with a small tmpfs mounted
//! over its database's directory, so the test can fill that disk from inside the namespace
//! (`nsenter`) without touching the host's. What is asserted is what was kept: the history
//! row of a change made before the disk filled, systemd's limit, every config, and the health
//! the daemon reports before, during and after.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use autoscaler_testkit::{Daemon, Http, SMALL_HOST_BOUNDS, Sandbox, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_autoscaler");
const UNIT: &str = "store.service";

/// A wrapper that starts the daemon in its own mount namespace with a `size` tmpfs over the
/// directory of its `--db` (and `ro` when asked), then execs it with the same arguments.
fn wrapper(dir: &Path, size: &str, options: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("in-namespace-{size}{options}.sh"));
    fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             db=''; prev=''\n\
             for a in \"$@\"; do [ \"$prev\" = --db ] && db=\"$a\"; prev=\"$a\"; done\n\
             exec unshare --mount --propagation private /bin/sh -c \
             'mount -t tmpfs -o size={size}{options} tmpfs \"$(dirname \"$0\")\" && exec \"$@\"' \
             \"$db\" {BIN} \"$@\"\n"
        ),
    )?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// Runs `script` in the daemon's mount namespace.
fn in_namespace(pid: u32, script: &str) -> anyhow::Result<std::process::Output> {
    Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "/bin/sh", "-c", script])
        .output()
        .context("running nsenter")
}

fn healthz(http: &Http) -> anyhow::Result<(u16, String)> {
    let r = http.get("/healthz")?;
    Ok((r.status, r.text))
}

#[test]
fn a_full_disk_degrades_health_loses_no_history_and_recovers() -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    sb.write_unit(
        UNIT,
        "[Service]\nExecStart=/bin/sleep infinity\nCPUQuota=50%\nMemoryMax=1G\nTasksMax=100\n",
    )?;
    sb.start_unit(UNIT)?;
    let scratch = tempfile::tempdir()?;
    let bin = wrapper(scratch.path(), "2m", "")?;
    let daemon = Daemon::start(&bin, &sb, &["--unit", UNIT])?;
    let http = daemon.http();
    let pid = daemon.pid().context("the daemon runs")?;
    let r = http.put("/api/autoscaler/config", SMALL_HOST_BOUNDS)?;
    ensure!(r.status == 200, "PUT bounds: {} {}", r.status, r.text);
    let r = http.put("/api/autoscaler/config", r#"{"check_interval_seconds": 1}"#)?;
    ensure!(r.status == 200, "PUT interval: {} {}", r.status, r.text);
    // A change before the disk fills: its history row must survive what follows.
    let r = http.post(
        "/api/autoscaler/scale",
        r#"{"cpu_quota": 70, "reason": "before the disk fills"}"#,
    )?;
    ensure!(r.status == 200, "scale: {} {}", r.status, r.text);
    ensure!(healthz(&http)?.0 == 200, "healthy at first");
    let config_before = http.get_ok("/api/autoscaler/config")?;

    // Fill the tmpfs to the last byte, from inside the daemon's namespace.
    let db = daemon.db.display().to_string();
    let dir = Path::new(&db)
        .parent()
        .context("db dir")?
        .display()
        .to_string();
    let fill = in_namespace(
        pid,
        &format!("cat /dev/zero > {dir}/filler 2>/dev/null; df -k {dir}"),
    )?;
    println!("filled: {}", String::from_utf8_lossy(&fill.stdout));

    let degraded = wait_until(Duration::from_secs(60), "health to say degraded", || {
        let (code, text) = healthz(&http)?;
        Ok((code == 503 && text.contains("degraded")).then_some(text))
    })?;
    println!("while full: {degraded}");
    let status = http.get_ok("/api/autoscaler/status")?;
    ensure!(status["store"]["state"] == "degraded", "{status}");
    ensure!(
        status["unit_available"] == true,
        "the loop goes on: {status}"
    );
    let metrics = http.get("/metrics")?.text;
    ensure!(metrics.contains("autoscaler_store_degraded 1"), "{metrics}");
    // A change now cannot be journalled: refused, and systemd keeps its limit.
    let r = http.post(
        "/api/autoscaler/scale",
        r#"{"cpu_quota": 90, "reason": "while the disk is full"}"#,
    )?;
    ensure!(r.status == 503, "scale while full: {} {}", r.status, r.text);
    ensure!(sb.cpu_quota(UNIT)? == Some(70), "systemd's limit moved");

    let freed = in_namespace(pid, &format!("rm -f {dir}/filler"))?;
    ensure!(freed.status.success(), "freeing the disk: {freed:?}");
    wait_until(Duration::from_secs(60), "health to recover", || {
        let (code, _) = healthz(&http)?;
        let queued = http.get_ok("/api/autoscaler/status")?["store"]["queued_writes"].clone();
        Ok((code == 200 && queued == 0).then_some(()))
    })?;
    let status = http.get_ok("/api/autoscaler/status")?;
    println!("after: {}", status["store"]);
    ensure!(status["store"]["lost_writes"] == 0, "{status}");
    let history = http.get_ok("/api/autoscaler/history?limit=10")?;
    let rows = history.as_array().context("history is a list")?;
    ensure!(
        rows.len() == 1 && rows[0]["reason"] == "before the disk fills",
        "the history lost or gained rows: {history}"
    );
    ensure!(
        http.get_ok("/api/autoscaler/config")? == config_before,
        "config changed"
    );
    // Works again: a change is journalled, applied and recorded.
    let r = http.post(
        "/api/autoscaler/scale",
        r#"{"cpu_quota": 90, "reason": "after the disk is freed"}"#,
    )?;
    ensure!(r.status == 200, "scale after: {} {}", r.status, r.text);
    ensure!(sb.cpu_quota(UNIT)? == Some(90));
    Ok(())
}

/// A database on a read-only disk is refused at start with a message that says so, and the
/// daemon exits instead of running without a history.
#[test]
fn a_read_only_database_is_refused_at_start_with_a_clear_message() -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    sb.write_unit(UNIT, "[Service]\nExecStart=/bin/sleep infinity\n")?;
    sb.start_unit(UNIT)?;
    let scratch = tempfile::tempdir()?;
    let bin = wrapper(scratch.path(), "1m", ",ro")?;
    fs::create_dir(scratch.path().join("db"))?;
    let out = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--unit", UNIT, "--db"])
        .arg(scratch.path().join("db/autoscaler.db"))
        .envs(sb.env())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    println!("{err}");
    ensure!(
        !out.status.success(),
        "the daemon started on a read-only disk"
    );
    ensure!(
        err.contains("autoscaler.db") && err.contains("writable"),
        "the message does not say why: {err}"
    );
    Ok(())
}
