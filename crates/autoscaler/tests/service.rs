//! The daemon as a systemd service (issue 15): the shipped user unit
//! (`contrib/systemd/user/autoscaler.service`) on a sandboxed user manager, with only the
//! binary's path rewritten to this build's.
//!
//! What systemd itself sees is checked: `ActiveState`, `StatusText`, `NRestarts`,
//! `WatchdogTimestampMonotonic`, `MainPID`. Every wait polls with a deadline.

use std::time::Duration;

use anyhow::{Context, ensure};
use autoscaler_testkit::service::UNIT;
use autoscaler_testkit::{Sandbox, UserService, busy_unit, repo, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_autoscaler");

fn shipped_unit() -> anyhow::Result<String> {
    let p = repo().join("contrib/systemd/user/autoscaler.service");
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

/// The shipped unit with this build's binary, a drop-in and a config managing `busy.service`.
fn install(sb: &Sandbox, drop_in: &str, more_config: &str) -> anyhow::Result<UserService> {
    sb.write_unit("busy.service", &busy_unit(1))?;
    sb.start_unit("busy.service")?;
    UserService::install(
        sb,
        &shipped_unit()?,
        &[("/usr/bin/autoscaler", BIN)],
        drop_in,
        &format!("units = [\"busy.service\"]\n{more_config}"),
    )
}

fn show(sb: &Sandbox, prop: &str) -> anyhow::Result<String> {
    sb.show(UNIT, prop)
}

/// `Type=notify`: systemd calls the unit active only once the daemon said READY, and the
/// daemon says it only when its API answers. A daemon that cannot listen never becomes active.
#[test]
fn systemd_sees_ready_only_once_the_api_answers() -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    let svc = install(&sb, "", "")?;
    sb.systemctl(&["start", "--no-block", UNIT])?;
    let mut seen = Vec::new();
    wait_until(Duration::from_secs(30), "the unit to become active", || {
        let state = show(&sb, "ActiveState")?;
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        ensure!(state != "failed", "the unit failed: {}", sb.log_tail());
        Ok((state == "active").then_some(()))
    })?;
    // The first moment systemd says active, the API already answers.
    let r = svc.http.get("/healthz")?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        seen.iter()
            .all(|s| s == "inactive" || s == "activating" || s == "active"),
        "{seen:?}"
    );
    // READY carries the status line; systemd shows it.
    let status = show(&sb, "StatusText")?;
    assert!(
        status.starts_with(&format!("serving on http://127.0.0.1:{}", svc.port)),
        "{status:?}"
    );
    assert_eq!(show(&sb, "Type")?, "notify");
    sb.stop_unit(UNIT)?;

    // Its port taken: the daemon exits before READY, and the unit is never active.
    let _taken = std::net::TcpListener::bind(("127.0.0.1", svc.port))?;
    sb.systemctl(&["reset-failed", UNIT]).ok();
    let started = sb.systemctl(&["start", UNIT]);
    assert!(started.is_err(), "start succeeded with the port taken");
    let state = show(&sb, "ActiveState")?;
    assert_ne!(state, "active");
    Ok(())
}

/// `WatchdogSec=`: the control loop's pings keep the unit alive; a stopped daemon (SIGSTOP:
/// nothing in it runs, the loop included) is restarted by systemd.
#[test]
fn the_watchdog_restarts_a_stopped_daemon() -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    // A short period for the test; no core file from the watchdog's SIGABRT (a debug build's
    // core is hundreds of MiB).
    let svc = install(&sb, "WatchdogSec=3s\nRestartSec=2s\nLimitCORE=0", "")?;
    sb.start_unit(UNIT)?;
    let pid: u32 = show(&sb, "MainPID")?.parse()?;
    // Pings arrive: systemd's watchdog timestamp moves, twice, past one period.
    let mut stamps = vec![show(&sb, "WatchdogTimestampMonotonic")?];
    wait_until(Duration::from_secs(15), "two watchdog pings", || {
        let now = show(&sb, "WatchdogTimestampMonotonic")?;
        if stamps.last() != Some(&now) {
            stamps.push(now);
        }
        Ok((stamps.len() >= 3).then_some(()))
    })?;
    assert_eq!(show(&sb, "NRestarts")?, "0", "restarted while pinging");
    assert_eq!(show(&sb, "MainPID")?, pid.to_string());

    std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()?;
    // Between the kill and the restart (RestartSec=2s), systemd says why it acts.
    wait_until(
        Duration::from_secs(20),
        "systemd to time the watchdog out",
        || {
            let result = show(&sb, "Result")?;
            let sub = show(&sb, "SubState")?;
            Ok((result == "watchdog" && sub == "auto-restart").then_some(()))
        },
    )?;
    let new_pid = wait_until(
        Duration::from_secs(30),
        "systemd to restart the stopped daemon",
        || {
            let restarts: u32 = show(&sb, "NRestarts")?.parse()?;
            let now: u32 = show(&sb, "MainPID")?.parse()?;
            let active = show(&sb, "ActiveState")? == "active";
            Ok((restarts >= 1 && active && now != 0 && now != pid).then_some(now))
        },
    )
    .with_context(|| sb.log_tail())?;
    // The new daemon serves on the same store.
    let r = svc.http.get("/api/autoscaler/status")?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(new_pid, pid);
    Ok(())
}

/// `systemctl reload` (SIGHUP) re-reads the config file: `[config]` goes through the same
/// validation as `PUT /api/autoscaler/config`; a file that does not pass changes nothing and
/// the daemon runs on.
#[test]
fn reload_rereads_the_config_file_with_the_api_validation() -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    let svc = install(&sb, "", "[config]\ncheck_interval_seconds = 7\n")?;
    sb.start_unit(UNIT)?;
    let interval = |svc: &UserService| -> anyhow::Result<serde_json::Value> {
        Ok(svc.http.get_ok("/api/autoscaler/config")?["check_interval_seconds"].clone())
    };
    assert_eq!(
        interval(&svc)?,
        7,
        "the file's [config] was not applied at start"
    );

    let cases: &[(&str, u64, &str)] = &[
        // (the file's [config], the interval afterwards, StatusText has)
        (
            "check_interval_seconds = 9\nmode = \"manual\"\n",
            9,
            "config reloaded",
        ),
        ("check_interval_seconds = 0\n", 9, "reload refused"),
        ("check_interval_seconds = \"soon\"\n", 9, "reload refused"),
        ("bogus_field = 1\n", 9, "reload refused"),
        ("check_interval_seconds = 11\n", 11, "config reloaded"),
    ];
    for (config, want, status_has) in cases {
        svc.write_config(&format!("units = [\"busy.service\"]\n[config]\n{config}"))?;
        let before = show(&sb, "StatusText")?;
        sb.systemctl(&["reload", UNIT])?;
        let status = wait_until(Duration::from_secs(10), "the reload to finish", || {
            let s = show(&sb, "StatusText")?;
            // Each case's status line differs from the one before it.
            Ok((s != before).then_some(s))
        })?;
        assert!(status.contains(status_has), "{config:?}: {status:?}");
        assert_eq!(interval(&svc)?, *want, "{config:?}");
        assert_eq!(show(&sb, "ActiveState")?, "active", "{config:?}");
    }
    // A file that is not TOML is refused whole, too.
    std::fs::write(&svc.config, "listen = \n")?;
    sb.systemctl(&["reload", UNIT])?;
    wait_until(Duration::from_secs(10), "the refusal", || {
        Ok(show(&sb, "StatusText")?
            .contains("is not valid")
            .then_some(()))
    })?;
    assert_eq!(interval(&svc)?, 11);
    Ok(())
}

/// The system unit's sandboxing leaves the daemon able to arm the kernel's notifications
/// (issue 16): a PSI trigger and a v1 event registration are writes to cgroup files, which a
/// read-only `/sys/fs/cgroup` (`ProtectControlGroups=yes`) refuses, and then every reaction
/// waits for the next check. No system manager runs here, so the system unit's hardening lines
/// are applied as a drop-in to the user unit, in the sandbox's manager (root's, so it can set
/// up the mount namespace they need), with changes for the sandbox: no `PrivateTmp=`, since
/// the sandbox's bus and home are under /tmp, and that home writable for the store; no
/// `ProtectKernelTunables=` or `ProtectKernelLogs=`, which this container refuses even for
/// `/bin/true` (status 226/NAMESPACE: /proc's kernel files cannot be remounted here).
#[test]
fn the_system_units_hardening_leaves_the_notifications_armed() -> anyhow::Result<()> {
    const SANDBOX_REFUSES: [&str; 3] = [
        "PrivateTmp=",
        "ProtectKernelTunables=",
        "ProtectKernelLogs=",
    ];
    let p = repo().join("contrib/systemd/system/autoscaler.service");
    let system = std::fs::read_to_string(&p)?;
    let hardening = system
        .split_once("# Hardening.")
        .and_then(|(_, rest)| rest.split_once("# Left out"))
        .context("no hardening block in the system unit")?
        .0;
    let lines: Vec<&str> = hardening
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .filter(|l| !SANDBOX_REFUSES.iter().any(|d| l.starts_with(d)))
        .collect();
    ensure!(lines.len() > 10, "hardening lines: {lines:?}");
    let sb = Sandbox::start()?;
    let drop_in = format!(
        "{}\nReadWritePaths={}",
        lines.join("\n"),
        sb.home().display()
    );
    let svc = install(&sb, &drop_in, "")?;
    sb.start_unit(UNIT).with_context(|| {
        let status = sb.systemctl(&["status", "--no-pager", "-l", UNIT]);
        format!("starting {UNIT}: {status:?}")
    })?;
    let sources = wait_until(Duration::from_secs(30), "the unit's notifications", || {
        let s = svc.http.get_ok("/api/autoscaler/status")?;
        let sources = s["events"]["sources"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok((!sources.is_empty()).then_some(sources))
    })?;
    let armed = |name: &str| {
        sources
            .iter()
            .any(|s| s["source"] == name && s["armed"] == true)
    };
    // This host is hybrid: PSI in the unified tree, the OOM eventfd in the v1 memory one.
    for name in ["cpu_pressure", "memory_pressure", "oom"] {
        assert!(
            armed(name),
            "{name} not armed under the system unit's hardening: {sources:#?}"
        );
    }
    sb.stop_unit(UNIT)?;
    Ok(())
}

/// Both shipped units pass `systemd-analyze verify` (every directive known, every value
/// valid, the binary executable): the system unit cannot be started here (no system manager
/// runs as PID 1), so this is what checks its hardening lines are real settings.
#[test]
fn the_shipped_units_verify() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for kind in ["system", "user"] {
        let p = repo().join(format!("contrib/systemd/{kind}/autoscaler.service"));
        let text = std::fs::read_to_string(&p)?.replace("/usr/bin/autoscaler", BIN);
        let unit = dir.path().join("autoscaler.service");
        std::fs::write(&unit, text)?;
        let mut cmd = std::process::Command::new("systemd-analyze");
        // A user unit is verified against a user manager's paths: the sandbox's.
        let _sandbox = if kind == "user" {
            let sb = Sandbox::start()?;
            cmd.envs(sb.env()).arg("--user");
            Some(sb)
        } else {
            None
        };
        let out = cmd.args(["verify", "--man=no"]).arg(&unit).output()?;
        ensure!(
            out.status.success() && out.stderr.is_empty(),
            "{kind} unit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Under systemd with a journal, logs go to the journal as structured fields: a stand-in
/// journald (`tests/service/fake_journald.py`, a service of the sandbox's manager, so it
/// binds the journal's sockets in the sandbox's private /run/systemd) records what arrives on
/// the native protocol's socket.
#[test]
fn logs_reach_the_journal_as_structured_fields() -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    let records = sb.home().join("journal.records");
    let ready = sb.home().join("journal.ready");
    let script = repo().join("crates/autoscaler/tests/service/fake_journald.py");
    sb.write_unit(
        "fake-journald.service",
        &format!(
            "[Service]\nExecStart=/usr/bin/python3 {} {} {}\nStandardOutput=null\nStandardError=null\n",
            script.display(),
            records.display(),
            ready.display()
        ),
    )?;
    sb.start_unit("fake-journald.service")?;
    wait_until(Duration::from_secs(10), "the stand-in journal", || {
        Ok(ready.exists().then_some(()))
    })?;
    let svc = install(&sb, "", "")?;
    sb.start_unit(UNIT)?;
    let text = wait_until(
        Duration::from_secs(20),
        "the daemon's start record in the journal",
        || {
            let t = std::fs::read_to_string(&records).unwrap_or_default();
            Ok(t.contains("autoscaler serving on").then_some(t))
        },
    )?;
    let record = text
        .split("\n--\n")
        .find(|r| r.contains("autoscaler serving on"))
        .context("no start record")?;
    let fields: Vec<&str> = record.lines().collect();
    for want in [
        "SYSLOG_IDENTIFIER=autoscaler".to_string(),
        format!("AUTOSCALER_LISTEN=127.0.0.1:{}", svc.port),
        "AUTOSCALER_STRATEGY=Live".to_string(),
        "PRIORITY=5".to_string(),
    ] {
        assert!(fields.contains(&want.as_str()), "no {want} in {record:?}");
    }
    Ok(())
}
