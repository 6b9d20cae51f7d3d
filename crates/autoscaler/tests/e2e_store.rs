//! The real daemon on the sandboxed systemd with its database on a disk that fills up, and on
//! a read-only one, at start and while it runs (issue 11).
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
use autoscaler_testkit::{Daemon, Http, IDLE_LIMITED_UNIT, SMALL_HOST_BOUNDS, Sandbox, wait_until};

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

/// Bounds for a small host, a 1 s check, and one change recorded before the fault: its
/// history row must survive what follows. Returns the config as it then is.
fn before_the_fault(http: &Http, reason: &str) -> anyhow::Result<serde_json::Value> {
    let r = http.put("/api/autoscaler/config", SMALL_HOST_BOUNDS)?;
    ensure!(r.status == 200, "PUT bounds: {} {}", r.status, r.text);
    let r = http.put("/api/autoscaler/config", r#"{"check_interval_seconds": 1}"#)?;
    ensure!(r.status == 200, "PUT interval: {} {}", r.status, r.text);
    let r = http.post(
        "/api/autoscaler/scale",
        &format!(r#"{{"cpu_quota": 70, "reason": "{reason}"}}"#),
    )?;
    ensure!(r.status == 200, "scale: {} {}", r.status, r.text);
    ensure!(healthz(http)?.0 == 200, "healthy at first");
    http.get_ok("/api/autoscaler/config")
}

/// While the store refuses writes: health, status and metrics say degraded, the loop goes on,
/// and a change that cannot be journalled is refused with systemd's limit left as it was.
/// Returns the health's reason.
fn degraded_and_refusing(http: &Http, sb: &Sandbox) -> anyhow::Result<String> {
    let degraded = wait_until(Duration::from_secs(60), "health to say degraded", || {
        let (code, text) = healthz(http)?;
        Ok((code == 503 && text.contains("degraded")).then_some(text))
    })?;
    let status = http.get_ok("/api/autoscaler/status")?;
    ensure!(status["store"]["state"] == "degraded", "{status}");
    ensure!(
        status["unit_available"] == true,
        "the loop goes on: {status}"
    );
    let metrics = http.get("/metrics")?.text;
    ensure!(metrics.contains("autoscaler_store_degraded 1"), "{metrics}");
    let r = http.post(
        "/api/autoscaler/scale",
        r#"{"cpu_quota": 90, "reason": "while the store refuses writes"}"#,
    )?;
    ensure!(
        r.status == 503,
        "scale during the fault: {} {}",
        r.status,
        r.text
    );
    ensure!(sb.cpu_quota(UNIT)? == Some(70), "systemd's limit moved");
    Ok(degraded)
}

/// Once the fault is gone: health recovers with nothing queued or lost, the history holds
/// exactly the row from before, the config is unchanged, and a change works again.
fn recovered_with_nothing_lost(
    http: &Http,
    sb: &Sandbox,
    reason: &str,
    config_before: &serde_json::Value,
) -> anyhow::Result<()> {
    wait_until(Duration::from_secs(60), "health to recover", || {
        let (code, _) = healthz(http)?;
        let queued = http.get_ok("/api/autoscaler/status")?["store"]["queued_writes"].clone();
        Ok((code == 200 && queued == 0).then_some(()))
    })?;
    let status = http.get_ok("/api/autoscaler/status")?;
    println!("after: {}", status["store"]);
    ensure!(status["store"]["lost_writes"] == 0, "{status}");
    ensure!(status["store"]["dropped_samples"] == 0, "{status}");
    let history = http.get_ok("/api/autoscaler/history?limit=10")?;
    let rows = history.as_array().context("history is a list")?;
    ensure!(
        rows.len() == 1 && rows[0]["reason"] == reason,
        "the history lost or gained rows: {history}"
    );
    ensure!(
        http.get_ok("/api/autoscaler/config")? == *config_before,
        "config changed"
    );
    let r = http.post(
        "/api/autoscaler/scale",
        r#"{"cpu_quota": 90, "reason": "after the fault"}"#,
    )?;
    ensure!(r.status == 200, "scale after: {} {}", r.status, r.text);
    ensure!(sb.cpu_quota(UNIT)? == Some(90));
    Ok(())
}

#[test]
fn a_full_disk_degrades_health_loses_no_history_and_recovers() -> anyhow::Result<()> {
    const BEFORE: &str = "before the disk fills";
    let sb = Sandbox::start()?;
    sb.write_unit(UNIT, IDLE_LIMITED_UNIT)?;
    sb.start_unit(UNIT)?;
    let scratch = tempfile::tempdir()?;
    let bin = wrapper(scratch.path(), "2m", "")?;
    let daemon = Daemon::start(&bin, &sb, &["--unit", UNIT])?;
    let http = daemon.http();
    let pid = daemon.pid().context("the daemon runs")?;
    let config_before = before_the_fault(&http, BEFORE)?;

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
    let degraded = degraded_and_refusing(&http, &sb)?;
    println!("while full: {degraded}");

    let freed = in_namespace(pid, &format!("rm -f {dir}/filler"))?;
    ensure!(freed.status.success(), "freeing the disk: {freed:?}");
    recovered_with_nothing_lost(&http, &sb, BEFORE, &config_before)
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

/// Sets or clears the immutable attribute of `files`.
fn chattr(flag: &str, files: &[PathBuf]) -> anyhow::Result<()> {
    let out = Command::new("chattr").arg(flag).args(files).output()?;
    ensure!(
        out.status.success(),
        "chattr {flag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Clears the immutable attribute when the test ends, passed or failed, so the files can go.
struct Mutable(Vec<PathBuf>);

impl Drop for Mutable {
    fn drop(&mut self) {
        let _ = chattr("-i", &self.0);
    }
}

/// Stored samples of `unit` taken in `[from_ms, to_ms)`, read from the file itself.
fn samples_between(db: &Path, unit: &str, from_ms: i64, to_ms: i64) -> anyhow::Result<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn.query_row(
        "SELECT count(*) FROM autoscaler_metrics WHERE unit = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
        rusqlite::params![unit, from_ms, to_ms],
        |r| r.get(0),
    )?)
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The database turns read-only under the running daemon: its file and write-ahead log get
/// the immutable attribute, so every write through the open descriptors fails (EPERM), as on
/// a filesystem that went read-only. Health says degraded, a change that cannot be journalled
/// is refused and systemd keeps its limit, and once the files are writable again the samples
/// taken meanwhile are stored, the history kept its row, and nothing was lost.
#[test]
fn a_database_made_read_only_while_running_degrades_keeps_its_writes_and_recovers()
-> anyhow::Result<()> {
    const BEFORE: &str = "before the database turns read-only";
    let sb = Sandbox::start()?;
    sb.write_unit(UNIT, IDLE_LIMITED_UNIT)?;
    sb.start_unit(UNIT)?;
    let daemon = Daemon::start(Path::new(BIN), &sb, &["--unit", UNIT])?;
    let http = daemon.http();
    let config_before = before_the_fault(&http, BEFORE)?;

    let wal = PathBuf::from(format!("{}-wal", daemon.db.display()));
    ensure!(wal.exists(), "the database runs in WAL mode");
    // Not the `-shm` file: it is mapped into memory, and a write to an immutable mapping is
    // a SIGBUS, not an error SQLite can report.
    let files = vec![daemon.db.clone(), wal];
    chattr("+i", &files)?;
    let guard = Mutable(files);
    let read_only_from = now_ms();
    let degraded = degraded_and_refusing(&http, &sb)?;
    println!("while read-only: {degraded}");
    ensure!(
        degraded.contains("read-only or failing"),
        "the reason does not say why: {degraded}"
    );
    // A few more checks' samples wait in the queue.
    std::thread::sleep(Duration::from_secs(5));
    let read_only_to = now_ms();

    drop(guard);
    recovered_with_nothing_lost(&http, &sb, BEFORE, &config_before)?;
    // The samples taken while nothing could be written were kept and are stored now: about
    // one a second, counted loosely (the first second may fall either side).
    let kept = samples_between(&daemon.db, UNIT, read_only_from, read_only_to)?;
    let seconds = (read_only_to - read_only_from) / 1000;
    println!("samples taken while read-only and stored after: {kept} in {seconds} s");
    ensure!(
        kept >= seconds / 2,
        "only {kept} samples of {seconds} s while read-only were stored"
    );
    Ok(())
}
