//! End-to-end checks of the harness itself: a real sandboxed user manager runs a loaded unit
//! under a CPU quota, a memory hog holds what it allocated, and nothing is left behind (no
//! sandbox cgroup, PID 1 untouched), also when the test that owned the sandbox panicked.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use autoscaler_testkit::{
    HIERARCHIES, Sandbox, busy_unit, memory_hog_unit, wait_for_eq, wait_until,
};

const T: Duration = Duration::from_secs(10);

fn read(path: &Path) -> anyhow::Result<String> {
    Ok(fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string())
}

/// Nothing of sandbox `name` is left in any hierarchy, and PID 1 is still in every root.
fn check_gone(name: &str) {
    for h in HIERARCHIES {
        let d = Path::new("/sys/fs/cgroup").join(h).join(name);
        assert!(!d.exists(), "{} is left behind", d.display());
    }
    let mine = format!("autoscaler-test-{}-", std::process::id());
    for h in HIERARCHIES {
        for e in fs::read_dir(Path::new("/sys/fs/cgroup").join(h))
            .expect("cgroup root")
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(
                !n.starts_with(&mine),
                "a sandbox of this process is left: {h}/{n}"
            );
        }
    }
    for e in fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(
            !n.starts_with(&format!("{name}-")),
            "the sandbox's temp dir {n} is left"
        );
    }
    let pid1 = fs::read_to_string("/proc/1/cgroup").expect("/proc/1/cgroup");
    for line in pid1.lines() {
        assert!(line.ends_with(":/"), "PID 1 was moved: {line}");
    }
}

#[test]
fn busy_unit_runs_under_its_quota_and_everything_is_removed() -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    let name = sb.name().to_string();
    assert!(name.starts_with(&format!("autoscaler-test-{}-", std::process::id())));
    assert!(sb.home().join(".config/systemd/user").is_dir());
    let mode = fs::metadata(sb.runtime_dir())?.permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o700
    );
    // The manager's HOME is the sandbox's, never /root.
    assert!(
        sb.systemctl(&["show-environment"])?
            .contains(&format!("HOME={}", sb.home().display()))
    );

    let unit = "busy.service";
    let path = sb.write_unit(unit, &format!("{}CPUQuota=50%\n", busy_unit(2)))?;
    assert_eq!(path, sb.unit_dir().join(unit));
    sb.start_unit(unit)?;
    let pid = sb.main_pid(unit)?;
    assert_eq!(sb.show(unit, "ActiveState")?, "active");
    assert_eq!(sb.show(unit, "CPUQuotaPerSecUSec")?, "500ms");

    let cpu = sb.cgroup_dir("cpu", unit);
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us"))?, "50000");
    let procs = read(&sb.cgroup_dir("pids", unit).join("cgroup.procs"))?;
    assert!(
        procs.split_whitespace().any(|p| p == pid.to_string()),
        "MainPID {pid} not in {procs}"
    );
    // Two busy loops plus the shell.
    wait_until(T, "3 tasks in the unit's pids cgroup", || {
        Ok((read(&sb.cgroup_dir("pids", unit).join("pids.current"))? == "3").then_some(()))
    })?;
    // The quota throttles the loops.
    wait_until(T, "the unit to be throttled", || {
        let stat = read(&cpu.join("cpu.stat"))?;
        let throttled = stat
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .unwrap_or("0");
        Ok((throttled.parse::<u64>()? > 0).then_some(()))
    })?;

    sb.stop_unit(unit)?;
    assert_eq!(sb.show(unit, "ActiveState")?, "inactive");
    assert!(!cpu.exists());
    drop(sb);
    check_gone(&name);
    Ok(())
}

#[test]
fn memory_hog_holds_what_it_allocated() -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    let unit = "hog.service";
    sb.write_unit(unit, &memory_hog_unit(16, 50, 64))?;
    sb.start_unit(unit)?;
    let usage = sb.cgroup_dir("memory", unit).join("memory.usage_in_bytes");
    let mib = || -> anyhow::Result<u64> { Ok(read(&usage)?.parse::<u64>()? >> 20) };
    wait_until(T, "the hog to reach 64 MiB", || {
        Ok((mib()? >= 64).then_some(()))
    })?;
    // It holds the memory and stops growing: still there on later reads, and bounded.
    let pid = sb.main_pid(unit)?;
    wait_for_eq(
        T,
        "the hog to sleep holding its memory",
        "S".to_string(),
        || {
            let stat = read(&Path::new("/proc").join(pid.to_string()).join("stat"))?;
            Ok(stat
                .rsplit(") ")
                .next()
                .unwrap_or("")
                .chars()
                .take(1)
                .collect())
        },
    )?;
    let held = mib()?;
    assert!((64..64 + 48).contains(&held), "hog holds {held} MiB");
    Ok(())
}

#[test]
fn a_panicking_test_still_removes_its_sandbox() -> anyhow::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let sb = Sandbox::start().expect("sandbox");
        tx.send(sb.name().to_string()).expect("send");
        sb.write_unit("busy.service", &busy_unit(1)).expect("write");
        sb.start_unit("busy.service").expect("start");
        panic!("a test failing with a sandbox and a running unit");
    })
    .join();
    assert!(joined.is_err());
    check_gone(&rx.recv()?);
    Ok(())
}

#[test]
fn wait_until_reports_what_it_waited_for() {
    fn check(result: anyhow::Result<u32>, want: Result<u32, &[&str]>) {
        match (result, want) {
            (Ok(v), Ok(w)) => assert_eq!(v, w),
            (Err(e), Err(parts)) => {
                let msg = format!("{e:#}");
                for p in parts {
                    assert!(msg.contains(p), "{msg:?} lacks {p:?}");
                }
            }
            (r, w) => panic!("got {r:?}, wanted {w:?}"),
        }
    }
    let short = Duration::from_millis(250);
    let mut n = 0;
    check(
        wait_until(short, "n to reach 2", || {
            n += 1;
            Ok((n >= 2).then_some(n))
        }),
        Ok(2),
    );
    check(
        wait_until(short, "never", || Ok(None::<u32>)),
        Err(&["waiting for never", "not yet"]),
    );
    check(
        wait_until(short, "a file", || anyhow::bail!("no such file")),
        Err(&["waiting for a file", "no such file"]),
    );
}

#[test]
fn timespans_parse_as_systemctl_prints_them() {
    fn check(input: &str, want: Option<Option<u64>>) {
        assert_eq!(
            autoscaler_testkit::parse_timespan(input).ok(),
            want,
            "{input:?}"
        );
    }
    check("500ms", Some(Some(500_000)));
    check("1s", Some(Some(1_000_000)));
    check("1.500s", Some(Some(1_500_000)));
    check("1s 500ms", Some(Some(1_500_000)));
    check("750us", Some(Some(750)));
    check("infinity", Some(None));
    check("", None);
    check("5 parsecs", None);
}
