//! The adapter and the actuators against a real systemd user manager in a sandbox
//! (`autoscaler-testkit`): inspect, live apply, restart apply with and without rollback, the
//! drop-ins a live apply leaves, transient and missing units, and the checks' [`Watch`]: cached
//! until systemd signals a change, also across a re-exec of the manager.
//!
//! These run everywhere, CI included: the sandbox needs root and a cgroup hierarchy, not a
//! systemd PID 1.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use autoscaler_core::{GIB, Limits, MIB, UnitName};
use autoscaler_systemd::{Bus, Error, Rollback, Strategy, Systemd, UnitInfo, Watch, apply};
use autoscaler_testkit::{Sandbox, busy_unit, listing};

/// A service that just sleeps, with start rate limiting off so tests may restart it.
const SLEEPER: &str = "[Unit]\nDescription=autoscaler test sleeper\nStartLimitIntervalSec=0\n\n\
                       [Service]\nExecStart=/bin/sleep infinity\n";

async fn setup() -> anyhow::Result<(Sandbox, Systemd)> {
    let sb = Sandbox::start()?;
    let sd = Systemd::connect_to(Bus::User, &sb.bus_address()).await?;
    Ok((sb, sd))
}

fn unit(name: &str) -> UnitName {
    UnitName::parse(name).expect("test unit names are valid")
}

fn read(path: &Path) -> anyhow::Result<String> {
    Ok(fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string())
}

/// The v1 cgroup files of a unit: (cpu.cfs_quota_us, memory.limit_in_bytes, pids.max).
fn cgroup_limits(sb: &Sandbox, u: &str) -> anyhow::Result<(String, String, String)> {
    Ok((
        read(&sb.cgroup_dir("cpu", u).join("cpu.cfs_quota_us"))?,
        read(&sb.cgroup_dir("memory", u).join("memory.limit_in_bytes"))?,
        read(&sb.cgroup_dir("pids", u).join("pids.max"))?,
    ))
}

fn limits(cpu: u32, mem_mib: u64, tasks: u64) -> Limits {
    Limits {
        cpu_quota: Some(cpu),
        memory_max: Some(mem_mib * MIB),
        tasks_max: Some(tasks),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reads_a_running_unit() -> anyhow::Result<()> {
    let (sb, sd) = setup().await?;
    let u = "busy.service";
    sb.write_unit(
        u,
        &format!(
            "{}CPUQuota=50%\nMemoryMax=256M\nTasksMax=50\n",
            busy_unit(1)
        ),
    )?;
    sb.start_unit(u)?;
    let info = sd.inspect(&unit(u)).await?;
    assert_eq!(
        (
            info.load_state.as_str(),
            info.active_state.as_str(),
            info.sub_state.as_str()
        ),
        ("loaded", "active", "running")
    );
    assert_eq!(info.main_pid, Some(sb.main_pid(u)?));
    assert_eq!(info.limits, limits(50, 256, 50));
    assert_eq!(
        info.control_group.as_deref(),
        Some(format!("/{}/app.slice/{u}", sb.name()).as_str())
    );
    assert_eq!(info.fragment_path, Some(sb.unit_dir().join(u)));
    assert!(info.drop_in_paths.is_empty(), "{:?}", info.drop_in_paths);

    // Unset limits are None (systemd's infinity), except TasksMax, which the user manager
    // defaults to 15% of the kernel's limit; a stopped unit has no process or cgroup.
    sb.write_unit("idle.service", SLEEPER)?;
    let idle = sd.inspect(&unit("idle.service")).await?;
    let default_tasks: u64 = sb.show("idle.service", "TasksMax")?.parse()?;
    assert_eq!(
        idle.limits,
        Limits {
            cpu_quota: None,
            memory_max: None,
            tasks_max: Some(default_tasks)
        }
    );
    assert_eq!(
        (
            idle.active_state.as_str(),
            idle.main_pid,
            idle.control_group
        ),
        ("inactive", None, None)
    );

    // A slice is read through its own interface, which has no main process.
    let slice = sd.inspect(&unit("app.slice")).await?;
    assert_eq!(
        (
            slice.active_state.as_str(),
            slice.main_pid,
            slice.control_group.as_deref()
        ),
        (
            "active",
            None,
            Some(format!("/{}/app.slice", sb.name()).as_str())
        )
    );
    Ok(())
}

/// Polls the watch until `ok` holds of what it says, for at most 10 s.
async fn watch_until(
    w: &Watch,
    u: &UnitName,
    what: &str,
    ok: impl Fn(&UnitInfo) -> bool,
) -> anyhow::Result<UnitInfo> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = w.inspect(u).await;
        match info {
            Ok(i) if ok(&i) => return Ok(i),
            other if std::time::Instant::now() >= deadline => {
                anyhow::bail!("the watch never said {what}; last: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Issue 14: in the steady state a check asks systemd nothing; every change systemd signals
/// (a restart, a stop, a start, a reload, a re-exec of the manager) is seen, and a change it
/// does not signal (limits) is seen once the caller invalidates the unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_answers_from_its_cache_until_systemd_signals_a_change() -> anyhow::Result<()> {
    let (sb, sd) = setup().await?;
    let name = "watched.service";
    sb.write_unit(name, &format!("{SLEEPER}CPUQuota=50%\n"))?;
    sb.start_unit(name)?;
    let u = unit(name);
    let w = Watch::start(sd.clone()).await;
    let pid = sb.main_pid(name)?;
    watch_until(&w, &u, "the running unit", |i| i.main_pid == Some(pid)).await?;

    // Steady state: after the first two reads (the first learns the unit's object path),
    // systemd is not asked again.
    w.inspect(&u).await?;
    let before = w.stats();
    for _ in 0..20 {
        assert_eq!(w.inspect(&u).await?.main_pid, Some(pid));
    }
    let after = w.stats();
    assert_eq!(after.reads, before.reads, "{before:?} -> {after:?}");
    assert_eq!(after.hits, before.hits + 20, "{before:?} -> {after:?}");

    sb.systemctl(&["restart", name])?;
    let pid2 = sb.main_pid(name)?;
    assert_ne!(pid, pid2);
    watch_until(&w, &u, "the restarted unit's new process", |i| {
        i.main_pid == Some(pid2)
    })
    .await?;
    sb.stop_unit(name)?;
    watch_until(&w, &u, "the unit stopped", |i| i.active_state == "inactive").await?;
    sb.start_unit(name)?;
    watch_until(&w, &u, "the unit running again", |i| {
        i.active_state == "active"
    })
    .await?;

    // Limits send no signal: the caller says when to read them again.
    sb.systemctl(&["set-property", "--runtime", name, "CPUQuota=30%"])?;
    w.invalidate(&u);
    watch_until(&w, &u, "the new quota", |i| i.limits.cpu_quota == Some(30)).await?;

    // A re-exec replaces the manager's process: what the watch says afterwards is still
    // kept true by signals (it subscribed again when the manager came back).
    sb.systemctl(&["daemon-reexec"])?;
    watch_until(&w, &u, "the unit after a re-exec", |i| {
        i.active_state == "active"
    })
    .await?;
    sb.stop_unit(name)?;
    watch_until(&w, &u, "the unit stopped after a re-exec", |i| {
        i.active_state == "inactive"
    })
    .await?;
    assert!(!w.ended(), "the connection outlives a re-exec");
    assert!(w.stats().signals > 0, "{:?}", w.stats());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_units_and_bad_addresses_are_typed_errors() -> anyhow::Result<()> {
    let (sb, sd) = setup().await?;
    let missing = unit("no-such-unit.service");
    match sd.inspect(&missing).await {
        Err(Error::UnitNotFound {
            load_state, reason, ..
        }) => {
            assert_eq!(load_state, "not-found");
            assert!(!reason.is_empty());
        }
        other => panic!("wanted UnitNotFound, got {other:?}"),
    }
    for strategy in [Strategy::Live, Strategy::Restart] {
        let err = apply(&sd, strategy, &missing, &limits(100, 512, 100))
            .await
            .expect_err("missing unit");
        assert!(err.is_unit_not_found(), "{err}");
        assert_eq!(err.rollback, Rollback::NothingChanged);
        assert!(err.to_string().contains("no-such-unit.service"), "{err}");
    }
    // A dry run touches nothing, so it does not even look.
    let dry = apply(&sd, Strategy::DryRun, &missing, &limits(100, 512, 100)).await?;
    assert!(dry.dry_run && !dry.restarted);

    // Names that are not unit names cannot be built, so they never reach D-Bus.
    for bad in [
        "../etc/passwd.service",
        "a b.service",
        "x",
        "busy.service/../x.service",
    ] {
        assert!(UnitName::parse(bad).is_err(), "{bad}");
    }

    let nowhere = sb.runtime_dir().join("no-bus-here");
    let err = Systemd::connect_to(Bus::User, &format!("unix:path={}", nowhere.display()))
        .await
        .expect_err("no bus");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains("no-bus-here") && err.to_string().contains("running"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_apply_changes_the_cgroup_without_restarting() -> anyhow::Result<()> {
    let (sb, sd) = setup().await?;
    let u = "busy.service";
    let path = sb.write_unit(
        u,
        &format!(
            "{}CPUQuota=50%\nMemoryMax=256M\nTasksMax=50\n",
            busy_unit(1)
        ),
    )?;
    let file_before = fs::read(&path)?;
    sb.start_unit(u)?;
    let pid = sb.main_pid(u)?;
    assert_eq!(
        cgroup_limits(&sb, u)?,
        ("50000".into(), (256 * MIB).to_string(), "50".into())
    );

    let cases: [(Limits, Limits, (&str, u64, &str)); 3] = [
        (
            limits(150, 512, 80),
            limits(150, 512, 80),
            ("150000", 512 * MIB, "80"),
        ),
        // Only the fields that are set change.
        (
            Limits {
                cpu_quota: Some(75),
                ..Limits::default()
            },
            limits(75, 512, 80),
            ("75000", 512 * MIB, "80"),
        ),
        (
            Limits {
                cpu_quota: None,
                memory_max: Some(GIB),
                tasks_max: Some(30),
            },
            limits(75, 1024, 30),
            ("75000", GIB, "30"),
        ),
    ];
    for (new, want, (quota, mem, tasks)) in cases {
        let applied = apply(&sd, Strategy::Live, &unit(u), &new).await?;
        assert_eq!(applied.limits_after, want, "{new:?}");
        assert!(!applied.restarted && !applied.dry_run);
        assert_eq!(
            sb.main_pid(u)?,
            pid,
            "a live apply must not restart the service"
        );
        assert_eq!(
            cgroup_limits(&sb, u)?,
            (quota.to_string(), mem.to_string(), tasks.to_string())
        );
    }
    // Persisted as drop-ins in the sandbox's HOME; the unit file is untouched.
    let control = sb
        .home()
        .join(".config/systemd/user.control")
        .join(format!("{u}.d"));
    for f in ["50-CPUQuota.conf", "50-MemoryMax.conf", "50-TasksMax.conf"] {
        assert!(
            control.join(f).is_file(),
            "{} missing",
            control.join(f).display()
        );
    }
    assert_eq!(fs::read(&path)?, file_before);

    // systemd refuses a quota of 0: nothing changes and the error says so.
    let err = apply(
        &sd,
        Strategy::Live,
        &unit(u),
        &Limits {
            cpu_quota: Some(0),
            ..Limits::default()
        },
    )
    .await
    .expect_err("CPUQuota=0 is refused");
    assert!(err.to_string().contains("SetUnitProperties"), "{err}");
    assert_eq!(sd.inspect(&unit(u)).await?.limits, limits(75, 1024, 30));

    let dry = apply(&sd, Strategy::DryRun, &unit(u), &limits(200, 2048, 500)).await?;
    assert!(dry.dry_run);
    assert_eq!(sd.inspect(&unit(u)).await?.limits, limits(75, 1024, 30));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_apply_rewrites_the_file_and_overrides_earlier_live_values() -> anyhow::Result<()> {
    let (sb, sd) = setup().await?;
    let u = "app.service";
    let path = sb.write_unit(
        u,
        &format!(
            "# keep this comment\n{SLEEPER}CPUQuota=50%\nMemoryMax=256M\n\n[Install]\nWantedBy=default.target\n"
        ),
    )?;
    sb.start_unit(u)?;

    // A live apply first leaves drop-ins that override the unit file...
    apply(&sd, Strategy::Live, &unit(u), &limits(120, 300, 60)).await?;
    let pid = sb.main_pid(u)?;

    // ...which the restart removes for the limits it writes, so the file is what counts.
    let applied = apply(&sd, Strategy::Restart, &unit(u), &limits(80, 512, 40)).await?;
    assert!(applied.restarted && !applied.dry_run);
    assert_eq!(applied.limits_after, limits(80, 512, 40));
    assert_ne!(sb.main_pid(u)?, pid, "a restart apply replaces the process");
    assert_eq!(
        fs::read_to_string(&path)?,
        format!(
            "# keep this comment\n{SLEEPER}CPUQuota=80%\nMemoryMax=512M\nTasksMax=40\n\n[Install]\nWantedBy=default.target\n"
        )
    );
    // The backup lives only while the change does.
    assert!(!backup(&path).exists(), "a finished change left its backup");
    let info = sd.inspect(&unit(u)).await?;
    assert!(
        info.drop_in_paths.is_empty(),
        "live drop-ins left: {:?}",
        info.drop_in_paths
    );
    assert_eq!(
        cgroup_limits(&sb, u)?,
        ("80000".into(), (512 * MIB).to_string(), "40".into())
    );
    Ok(())
}

fn backup(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.autoscaler-backup", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_restart_is_rolled_back_byte_for_byte() -> anyhow::Result<()> {
    let (sb, sd) = setup().await?;
    // Refuses to start with TasksMax=77: the new limits break it, the old ones do not.
    let check = sb.home().join("refuse-77.sh");
    fs::write(
        &check,
        "p=$(sed -n 's/^[0-9]*:pids://p' /proc/self/cgroup)\ntest \"$(cat /sys/fs/cgroup/pids$p/pids.max)\" != 77\n",
    )?;
    let u = "picky.service";
    // CRLF, comments and odd spacing must all come back exactly.
    let original = format!(
        "[Unit]\r\nStartLimitIntervalSec=0\r\n\r\n[Service]\r\n# limits:\r\nTasksMax = 100\r\nExecStartPre=/bin/sh {}\r\nExecStart=/bin/sleep infinity\r\n",
        check.display()
    );
    let path = sb.write_unit(u, &original)?;
    sb.start_unit(u)?;
    let pid = sb.main_pid(u)?;
    // A live value to be restored too.
    apply(
        &sd,
        Strategy::Live,
        &unit(u),
        &Limits {
            cpu_quota: Some(60),
            ..Limits::default()
        },
    )
    .await?;
    let control = sb.home().join(format!(
        ".config/systemd/user.control/{u}.d/50-CPUQuota.conf"
    ));
    let live_drop_in = fs::read(&control)?;

    let err = apply(
        &sd,
        Strategy::Restart,
        &unit(u),
        &Limits {
            cpu_quota: Some(90),
            memory_max: None,
            tasks_max: Some(77),
        },
    )
    .await
    .expect_err("the unit refuses TasksMax=77");
    let msg = err.to_string();
    assert!(err.rolled_back(), "{msg}");
    assert!(
        msg.contains("rolled back")
            && msg.contains("did not start")
            && msg.contains("result: exit-code")
            && msg.contains("running again"),
        "{msg}"
    );
    assert_eq!(
        fs::read(&path)?,
        original.as_bytes(),
        "unit file not restored byte for byte"
    );
    assert_eq!(
        fs::read(&control)?,
        live_drop_in,
        "live drop-in not restored"
    );
    assert_ne!(sb.main_pid(u)?, pid);
    assert_eq!(sb.show(u, "ActiveState")?, "active");
    let info = sd.inspect(&unit(u)).await?;
    assert_eq!(
        (info.limits.cpu_quota, info.limits.tasks_max),
        (Some(60), Some(100))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_cannot_recover_says_so() -> anyhow::Result<()> {
    let (sb, sd) = setup().await?;
    // Starts only while the marker exists; the test removes it once the unit runs, so both
    // the restart and the rollback's start fail.
    let marker = sb.home().join("marker");
    fs::write(&marker, "")?;
    let u = "once.service";
    let original = format!(
        "{SLEEPER}ExecStartPre=/usr/bin/test -f {}\n",
        marker.display()
    );
    let path = sb.write_unit(u, &original)?;
    sb.start_unit(u)?;
    fs::remove_file(&marker)?;

    let err = apply(&sd, Strategy::Restart, &unit(u), &limits(100, 512, 50))
        .await
        .expect_err("restart fails");
    let msg = err.to_string();
    assert!(matches!(err.rollback, Rollback::Failed(_)), "{msg}");
    assert!(
        msg.contains("restored") && msg.contains("starting it again failed"),
        "{msg}"
    );
    assert_eq!(
        fs::read(&path)?,
        original.as_bytes(),
        "unit file not restored byte for byte"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_refuses_what_it_cannot_rewrite_and_reports_overrides() -> anyhow::Result<()> {
    let (sb, sd) = setup().await?;
    // A transient unit has no unit file to rewrite; live works on it.
    let out = Command::new("systemd-run")
        .args([
            "--user",
            "--unit=transient.service",
            "/bin/sleep",
            "infinity",
        ])
        .envs(sb.env())
        .output()?;
    assert!(
        out.status.success(),
        "systemd-run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = unit("transient.service");
    let err = apply(&sd, Strategy::Restart, &t, &limits(100, 512, 50))
        .await
        .expect_err("transient");
    assert!(
        err.to_string().contains("transient") && err.rollback == Rollback::NothingChanged,
        "{err}"
    );
    assert_eq!(
        apply(&sd, Strategy::Live, &t, &limits(100, 512, 50))
            .await?
            .limits_after,
        limits(100, 512, 50)
    );

    // An admin's drop-in that sets CPUQuota wins over the unit file: the read-back sees it,
    // names it, and the file is put back.
    let u = "overridden.service";
    let path = sb.write_unit(u, SLEEPER)?;
    let dir = sb.unit_dir().join(format!("{u}.d"));
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("override.conf"), "[Service]\nCPUQuota=30%\n")?;
    sb.systemctl(&["daemon-reload"])?;
    sb.start_unit(u)?;
    let err = apply(
        &sd,
        Strategy::Restart,
        &unit(u),
        &Limits {
            cpu_quota: Some(80),
            ..Limits::default()
        },
    )
    .await
    .expect_err("the drop-in wins");
    let msg = err.to_string();
    assert!(
        msg.contains("systemd reports CPUQuota% 30 after setting 80")
            && msg.contains("override.conf"),
        "{msg}"
    );
    assert!(err.rolled_back(), "{msg}");
    assert_eq!(fs::read_to_string(&path)?, SLEEPER);
    assert_eq!(sd.inspect(&unit(u)).await?.active_state, "active");
    Ok(())
}

/// Keeps the restart tests honest about time: a restart apply is a restart plus the settle
/// window, not more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_report_their_duration() -> anyhow::Result<()> {
    let (sb, sd) = setup().await?;
    let u = "timed.service";
    sb.write_unit(u, SLEEPER)?;
    sb.start_unit(u)?;
    let live = apply(&sd, Strategy::Live, &unit(u), &limits(100, 512, 50)).await?;
    assert!(live.elapsed < Duration::from_secs(2), "{:?}", live.elapsed);
    let restart = apply(&sd, Strategy::Restart, &unit(u), &limits(110, 512, 50)).await?;
    assert!(
        restart.elapsed >= autoscaler_systemd::manager::SETTLE,
        "{:?}",
        restart.elapsed
    );
    assert!(
        restart.elapsed < Duration::from_secs(5),
        "{:?}",
        restart.elapsed
    );
    Ok(())
}

/// A unit file that is a symlink is refused, not rewritten through the link: the link, its
/// target and the unit's limits stay as they were, and no backup or temp file appears on
/// either side of the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_refuses_a_symlinked_unit_file() -> anyhow::Result<()> {
    let (sb, sd) = setup().await?;
    let u = "linked.service";
    let elsewhere = sb.home().join("elsewhere");
    fs::create_dir_all(&elsewhere)?;
    let target = elsewhere.join(u);
    let original = format!("{SLEEPER}CPUQuota=50%\n");
    fs::write(&target, &original)?;
    let link = sb.unit_dir().join(u);
    std::os::unix::fs::symlink(&target, &link)?;
    sb.systemctl(&["daemon-reload"])?;
    sb.start_unit(u)?;
    let (units_before, elsewhere_before) = (listing(&sb.unit_dir())?, listing(&elsewhere)?);
    let limits_before = sd.inspect(&unit(u)).await?.limits;

    let err = apply(&sd, Strategy::Restart, &unit(u), &limits(80, 512, 40))
        .await
        .expect_err("a symlinked unit file is refused");
    let msg = err.to_string();
    assert_eq!(err.rollback, Rollback::NothingChanged, "{msg}");
    assert!(
        msg.contains("is a symlink") && msg.contains(&target.display().to_string()),
        "{msg}"
    );
    assert_eq!(fs::read_to_string(&target)?, original, "the target changed");
    assert_eq!(fs::read_link(&link)?, target, "the link changed");
    assert_eq!(listing(&sb.unit_dir())?, units_before);
    assert_eq!(listing(&elsewhere)?, elsewhere_before);
    assert_eq!(sd.inspect(&unit(u)).await?.limits, limits_before);
    Ok(())
}

/// Links planted where the restart strategy writes (the backup's name, temp names) are
/// neither followed nor replaced: a planted backup link refuses the apply and names it; a
/// planted temp name is skipped. The files they point at never change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_neither_follows_nor_replaces_planted_links() -> anyhow::Result<()> {
    let (sb, sd) = setup().await?;
    let victim = sb.home().join("victim");
    fs::write(&victim, "precious\n")?;

    let u = "planted.service";
    let path = sb.write_unit(u, SLEEPER)?;
    sb.start_unit(u)?;
    let planted = backup(&path);
    std::os::unix::fs::symlink(&victim, &planted)?;
    let before = listing(&sb.unit_dir())?;
    let err = apply(&sd, Strategy::Restart, &unit(u), &limits(80, 512, 40))
        .await
        .expect_err("a planted backup link is refused");
    let msg = err.to_string();
    assert_eq!(err.rollback, Rollback::NothingChanged, "{msg}");
    assert!(
        msg.contains(&planted.display().to_string()) && msg.contains("not a regular file"),
        "{msg}"
    );
    assert_eq!(fs::read_to_string(&path)?, SLEEPER);
    assert_eq!(fs::read_link(&planted)?, victim);
    assert_eq!(listing(&sb.unit_dir())?, before, "stray files");

    // The temp names this process would try first, planted as links: skipped, not opened.
    let u = "skips.service";
    let path = sb.write_unit(u, SLEEPER)?;
    sb.start_unit(u)?;
    let pid = std::process::id();
    let plants: Vec<PathBuf> = (0..4)
        .map(|n| sb.unit_dir().join(format!(".{u}.autoscaler-tmp-{pid}-{n}")))
        .collect();
    for p in &plants {
        std::os::unix::fs::symlink(&victim, p)?;
    }
    let before = listing(&sb.unit_dir())?;
    apply(&sd, Strategy::Restart, &unit(u), &limits(80, 512, 40)).await?;
    assert_eq!(fs::read_to_string(&victim)?, "precious\n");
    for p in &plants {
        assert_eq!(&fs::read_link(p)?, &victim);
    }
    // The backup lives only while the change does: nothing new is left.
    assert_eq!(listing(&sb.unit_dir())?, before, "files were left behind");
    assert_eq!(
        fs::read_to_string(&path)?,
        format!("{SLEEPER}CPUQuota=80%\nMemoryMax=512M\nTasksMax=40\n")
    );
    Ok(())
}

/// The rewritten unit file and its backup keep the original's mode; a CPU-only apply writes
/// `CPUQuota=` and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_mode_and_writes_only_what_was_asked() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let (sb, sd) = setup().await?;
    let u = "mode.service";
    let path = sb.write_unit(u, SLEEPER)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640))?;
    sb.start_unit(u)?;
    let tasks_before = sd.inspect(&unit(u)).await?.limits.tasks_max;
    let cpu_only = Limits {
        cpu_quota: Some(70),
        ..Limits::default()
    };
    let applied = apply(&sd, Strategy::Restart, &unit(u), &cpu_only).await?;
    assert_eq!(applied.limits_after.cpu_quota, Some(70));
    assert_eq!(applied.limits_after.tasks_max, tasks_before);
    assert_eq!(
        fs::read_to_string(&path)?,
        format!("{SLEEPER}CPUQuota=70%\n")
    );
    assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o7777, 0o640);
    assert!(!backup(&path).exists(), "a finished change left its backup");
    Ok(())
}
