//! Fixture cgroup trees in temp dirs (pure v2, hybrid, v1), read end to end through the
//! public API, plus one read-only look at this machine's real layout.

use std::path::Path;

use autoscaler_cgroup::locate::parse_proc_cgroup;
use autoscaler_cgroup::{
    CgroupFiles, CgroupPaths, Counters, Depth, Descriptors, Limits, Mounts, QUIET_FULL_MS,
    read_cgroup_limits, read_counters, read_host,
};
use autoscaler_core::Millis;
use autoscaler_core::sample::Psi;

const AT: Millis = Millis(1_700_000_000_000);
const UNIT: &str = "/probe1/app.slice/probe-yes.service";

/// A fixture file: path under the temp root, content; `{root}` stands for the temp root.
type Files = &'static [(&'static str, &'static str)];

const HYBRID_MOUNTS: (&str, &str) = (
    "proc/self/mountinfo",
    "31 23 0:28 / {root}/sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
     32 31 0:29 / {root}/sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
     33 31 0:30 / {root}/sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n\
     35 31 0:32 / {root}/sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
     39 31 0:36 / {root}/sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n\
     40 31 0:37 / {root}/sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
     41 31 0:38 / {root}/sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
);

/// The layout observed on this host for a unit of a sandboxed user manager "probe1".
const HYBRID: Files = &[
    HYBRID_MOUNTS,
    (
        "proc/4242/cgroup",
        "9:name=systemd:/probe1/app.slice/probe-yes.service\n8:pids:/probe1/app.slice/probe-yes.service\n\
         4:memory:/probe1/app.slice/probe-yes.service\n2:cpuacct:/probe1\n1:cpu:/probe1/app.slice/probe-yes.service\n\
         0::/probe1/app.slice/probe-yes.service\n",
    ),
    (
        "sys/fs/cgroup/unified/probe1/app.slice/probe-yes.service/cpu.stat",
        "usage_usec 2406924\nuser_usec 2000000\nsystem_usec 406924\nnice_usec 0\n",
    ),
    (
        "sys/fs/cgroup/unified/probe1/app.slice/probe-yes.service/cgroup.procs",
        "4242\n4243\n",
    ),
    // A leaf service: no cgroup below, so its directory is not walked.
    (
        "sys/fs/cgroup/unified/probe1/app.slice/probe-yes.service/cgroup.stat",
        "nr_descendants 0\nnr_dying_descendants 0\n",
    ),
    (
        "sys/fs/cgroup/unified/probe1/app.slice/probe-yes.service/cpu.pressure",
        "some avg10=24.23 avg60=4.73 avg300=1.00 total=3477211\nfull avg10=1.50 avg60=0.50 avg300=0.10 total=1000\n",
    ),
    (
        "sys/fs/cgroup/unified/probe1/app.slice/probe-yes.service/memory.pressure",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    ),
    (
        "sys/fs/cgroup/cpu/probe1/app.slice/probe-yes.service/cpu.stat",
        "nr_periods 47\nnr_throttled 47\nthrottled_time 6902962436\nnr_bursts 0\nburst_time 0\n",
    ),
    (
        "sys/fs/cgroup/cpu/probe1/app.slice/probe-yes.service/cpu.cfs_quota_us",
        "50000\n",
    ),
    (
        "sys/fs/cgroup/cpu/probe1/app.slice/probe-yes.service/cpu.cfs_period_us",
        "100000\n",
    ),
    // The shared parent: its CPU time is other units' too and must never be read as ours.
    (
        "sys/fs/cgroup/cpuacct/probe1/cpuacct.usage",
        "999999999999\n",
    ),
    (
        "sys/fs/cgroup/memory/probe1/app.slice/probe-yes.service/memory.usage_in_bytes",
        "3358720\n",
    ),
    // Page cache: 1 MiB of inactive file pages are not the service's working set.
    (
        "sys/fs/cgroup/memory/probe1/app.slice/probe-yes.service/memory.stat",
        "cache 2097152\nrss 1261568\ninactive_file 4096\ntotal_cache 2097152\ntotal_inactive_file 1048576\n",
    ),
    (
        "sys/fs/cgroup/memory/probe1/app.slice/probe-yes.service/memory.limit_in_bytes",
        "9223372036854771712\n",
    ),
    (
        "sys/fs/cgroup/memory/probe1/app.slice/probe-yes.service/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    ),
    (
        "sys/fs/cgroup/pids/probe1/app.slice/probe-yes.service/pids.current",
        "3\n",
    ),
    (
        "sys/fs/cgroup/pids/probe1/app.slice/probe-yes.service/pids.max",
        "max\n",
    ),
];

const PURE_V2: Files = &[
    (
        "proc/self/mountinfo",
        "25 21 0:22 / {root}/sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
    ),
    (
        "sys/fs/cgroup/probe1/app.slice/probe-yes.service/cpu.stat",
        "usage_usec 5000000\nuser_usec 4000000\nsystem_usec 1000000\nnr_periods 100\nnr_throttled 25\nthrottled_usec 750000\n",
    ),
    (
        "sys/fs/cgroup/probe1/app.slice/probe-yes.service/cgroup.procs",
        "10\n11\n",
    ),
    (
        "sys/fs/cgroup/probe1/app.slice/probe-yes.service/cgroup.stat",
        "nr_descendants 1\nnr_dying_descendants 0\n",
    ),
    // A delegated child cgroup: its processes are the unit's too.
    (
        "sys/fs/cgroup/probe1/app.slice/probe-yes.service/payload/cgroup.procs",
        "12\n",
    ),
    (
        "sys/fs/cgroup/probe1/app.slice/probe-yes.service/memory.current",
        "1073741824\n",
    ),
    (
        "sys/fs/cgroup/probe1/app.slice/probe-yes.service/memory.stat",
        "anon 805306368\nfile 268435456\nactive_file 134217728\ninactive_file 134217728\n",
    ),
    (
        "sys/fs/cgroup/probe1/app.slice/probe-yes.service/memory.events",
        "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n",
    ),
    (
        "sys/fs/cgroup/probe1/app.slice/probe-yes.service/pids.current",
        "17\n",
    ),
    (
        "sys/fs/cgroup/probe1/app.slice/probe-yes.service/cpu.max",
        "150000 100000\n",
    ),
    (
        "sys/fs/cgroup/probe1/app.slice/probe-yes.service/memory.max",
        "max\n",
    ),
    (
        "sys/fs/cgroup/probe1/app.slice/probe-yes.service/pids.max",
        "500\n",
    ),
    (
        "sys/fs/cgroup/probe1/app.slice/probe-yes.service/memory.pressure",
        "some avg10=2.00 avg60=1.00 avg300=0.50 total=42\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=7\n",
    ),
];

/// v1 only, cpu and cpuacct mounted together; no pids controller, no PSI.
const V1_COMBINED: Files = &[
    (
        "proc/self/mountinfo",
        "30 25 0:26 / {root}/cg/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
         31 25 0:27 / {root}/cg/memory rw - cgroup cgroup rw,memory\n",
    ),
    ("cg/cpu,cpuacct/x.service/cpuacct.usage", "2500000000\n"),
    (
        "cg/cpu,cpuacct/x.service/cpu.stat",
        "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
    ),
    ("cg/cpu,cpuacct/x.service/cpu.cfs_quota_us", "-1\n"),
    ("cg/cpu,cpuacct/x.service/cpu.cfs_period_us", "100000\n"),
    ("cg/cpu,cpuacct/x.service/cgroup.procs", "7\n"),
    ("cg/cpu,cpuacct/x.service/tasks", "7\n8\n9\n"),
    ("cg/memory/x.service/memory.usage_in_bytes", "2048\n"),
    ("cg/memory/x.service/memory.limit_in_bytes", "8589934592\n"),
    ("cg/memory/x.service/cgroup.procs", "7\n"),
    ("cg/memory/x.service/tasks", "7\n8\n9\n"),
];

/// v1 only, cpuacct not per unit (the process sits in a parent): no CPU time source.
const V1_SHARED_CPUACCT: Files = &[
    (
        "proc/self/mountinfo",
        "32 31 0:29 / {root}/cg/cpu rw - cgroup cgroup rw,cpu\n33 31 0:30 / {root}/cg/cpuacct rw - cgroup cgroup rw,cpuacct\n\
         35 31 0:32 / {root}/cg/memory rw - cgroup cgroup rw,memory\n",
    ),
    (
        "proc/77/cgroup",
        "3:memory:/x.service\n2:cpuacct:/\n1:cpu:/x.service\n",
    ),
    ("cg/cpuacct/cpuacct.usage", "123456789\n"),
    ("cg/cpuacct/x.service/cpuacct.usage", "5\n"),
    ("cg/cpu/x.service/cgroup.procs", "77\n"),
    ("cg/memory/x.service/memory.usage_in_bytes", "2048\n"),
];

/// Pure v2 with the memory controller not enabled for the unit.
const V2_NO_MEMORY: Files = &[
    (
        "proc/self/mountinfo",
        "25 21 0:22 / {root}/cg rw - cgroup2 cgroup2 rw\n",
    ),
    ("cg/x.service/cpu.stat", "usage_usec 1\n"),
    ("cg/x.service/cgroup.procs", "1\n"),
];

/// What a case should end in: relative paths (unified, cpu, cpuacct, memory, pids), the
/// counters, limits and pids read; or the text an error must contain.
#[expect(
    clippy::large_enum_variant,
    reason = "a dozen test cases; boxing only adds noise"
)]
enum Want {
    Read {
        paths: [Option<&'static str>; 5],
        counters: Counters,
        limits: Limits,
        pids: &'static [u32],
    },
    LocateError(&'static str),
    ReadError(&'static str),
}

fn fixture(files: Files) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let root = dir.path().display().to_string();
    for (path, content) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("fixture files live in a directory"))
            .expect("creating fixture dirs");
        std::fs::write(&path, content.replace("{root}", &root)).expect("writing a fixture file");
    }
    dir
}

fn check(name: &str, files: Files, control_group: &str, pid: Option<u32>, want: Want) {
    let dir = fixture(files);
    let root = dir.path();
    let proc_root = root.join("proc");
    let mounts = Mounts::read(&proc_root).expect("fixture mountinfo parses");
    let located = CgroupPaths::locate(&mounts, &proc_root, control_group, pid);
    let paths = match (located, &want) {
        (Err(e), Want::LocateError(text)) => {
            assert!(
                format!("{e:#}").contains(text),
                "{name}: locate error {e:#} lacks {text:?}"
            );
            return;
        }
        (Err(e), _) => panic!("{name}: locate failed: {e:#}"),
        (Ok(p), Want::LocateError(_)) => panic!("{name}: locate should fail, found {p:?}"),
        (Ok(p), _) => p,
    };
    let once = read_counters(&paths, AT);
    // The same reading through files kept open, twice (the second from the open files and
    // the files remembered absent): it must not differ from a reading opened afresh. Nor when
    // the descriptor budget keeps only some of the files open, or none.
    for budget in [
        Descriptors::unlimited(),
        Descriptors::new(6),
        Descriptors::new(0),
    ] {
        let mut kept = CgroupFiles::new(paths.clone(), budget.clone());
        for round in ["first", "second"] {
            let got = kept.read(AT);
            match (&got, &once) {
                (Ok(r), Ok(c)) => {
                    assert_eq!(&r.counters, c, "{name}: kept files, {round} reading");
                    let listed = paths.pids_of_unit().expect("listing pids");
                    assert_eq!(r.pids, listed, "{name}: kept files' pids, {round} reading");
                }
                (Err(a), Err(b)) => {
                    assert_eq!(format!("{a:#}"), format!("{b:#}"), "{name}: {round}")
                }
                _ => panic!("{name}: kept files read {got:?}, a fresh reading {once:?}"),
            }
            assert!(budget.used() <= budget.total(), "{name}: over the budget");
        }
        drop(kept);
        assert_eq!(budget.used(), 0, "{name}: descriptors not given back");
    }
    match (once, want) {
        (
            Ok(c),
            Want::Read {
                paths: want_paths,
                counters,
                limits,
                pids,
            },
        ) => {
            let abs = |p: Option<&str>| p.map(|p| root.join(p));
            let got_paths = [
                &paths.unified,
                &paths.cpu,
                &paths.cpuacct,
                &paths.memory,
                &paths.pids,
            ]
            .map(Clone::clone);
            assert_eq!(got_paths, want_paths.map(abs), "{name}: paths");
            assert_eq!(c, counters, "{name}: counters");
            assert_eq!(read_cgroup_limits(&paths), limits, "{name}: limits");
            assert_eq!(
                paths.pids_of_unit().expect("listing pids"),
                pids,
                "{name}: pids"
            );
        }
        (Err(e), Want::ReadError(text)) => {
            assert!(
                format!("{e:#}").contains(text),
                "{name}: read error {e:#} lacks {text:?}"
            );
        }
        (got, _) => panic!("{name}: unexpected result {got:?}"),
    }
}

#[test]
fn fixture_trees() {
    let hybrid_paths = [
        Some("sys/fs/cgroup/unified/probe1/app.slice/probe-yes.service"),
        Some("sys/fs/cgroup/cpu/probe1/app.slice/probe-yes.service"),
        None,
        Some("sys/fs/cgroup/memory/probe1/app.slice/probe-yes.service"),
        Some("sys/fs/cgroup/pids/probe1/app.slice/probe-yes.service"),
    ];
    let hybrid_counters = Counters {
        at: AT,
        cpu_usage_usec: 2_406_924,
        nr_periods: 47,
        nr_throttled: 47,
        throttled_usec: 6_902_962,
        oom_kills: 1,
        // usage_in_bytes 3,358,720 minus total_inactive_file 1,048,576
        memory_bytes: 2_310_144,
        tasks: 3,
        processes: 2,
        cpu_pressure: Some(Psi { some_avg10: 24.23 }),
        memory_pressure: Some(Psi::default()),
    };
    let hybrid_limits = Limits {
        cpu_quota: Some(50),
        memory_max: None,
        tasks_max: None,
    };
    let hybrid = || Want::Read {
        paths: hybrid_paths,
        counters: hybrid_counters,
        limits: hybrid_limits,
        pids: &[4242, 4243],
    };

    check(
        "hybrid, with the main pid",
        HYBRID,
        UNIT,
        Some(4242),
        hybrid(),
    );
    check("hybrid, ControlGroup only", HYBRID, UNIT, None, hybrid());
    check(
        "hybrid, the pid has exited",
        HYBRID,
        UNIT,
        Some(999),
        hybrid(),
    );
    check(
        "hybrid, trailing slash",
        HYBRID,
        "/probe1/app.slice/probe-yes.service/",
        Some(4242),
        hybrid(),
    );
    check(
        "pure v2",
        PURE_V2,
        UNIT,
        None,
        Want::Read {
            paths: [
                Some("sys/fs/cgroup/probe1/app.slice/probe-yes.service"),
                None,
                None,
                None,
                None,
            ],
            counters: Counters {
                at: AT,
                cpu_usage_usec: 5_000_000,
                nr_periods: 100,
                nr_throttled: 25,
                throttled_usec: 750_000,
                oom_kills: 2,
                // memory.current 1 GiB minus inactive_file 128 MiB
                memory_bytes: (1 << 30) - (128 << 20),
                tasks: 17,
                processes: 3,
                cpu_pressure: None,
                memory_pressure: Some(Psi { some_avg10: 2.0 }),
            },
            limits: Limits {
                cpu_quota: Some(150),
                memory_max: None,
                tasks_max: Some(500),
            },
            pids: &[10, 11, 12],
        },
    );
    check(
        "v1, cpu,cpuacct combined, no pids controller",
        V1_COMBINED,
        "/x.service",
        None,
        Want::Read {
            paths: [
                None,
                Some("cg/cpu,cpuacct/x.service"),
                Some("cg/cpu,cpuacct/x.service"),
                Some("cg/memory/x.service"),
                None,
            ],
            counters: Counters {
                at: AT,
                cpu_usage_usec: 2_500_000,
                memory_bytes: 2048,
                tasks: 3,
                processes: 1,
                ..Counters::default()
            },
            limits: Limits {
                cpu_quota: None,
                memory_max: Some(8 << 30),
                tasks_max: None,
            },
            pids: &[7],
        },
    );
    check(
        "v1, cpuacct shared with a parent",
        V1_SHARED_CPUACCT,
        "/x.service",
        Some(77),
        Want::ReadError("no cpuacct directory of its own"),
    );
    check(
        "v2 without memory",
        V2_NO_MEMORY,
        "/x.service",
        None,
        Want::ReadError("memory.current"),
    );
    check(
        "unit not running",
        PURE_V2,
        "/probe1/app.slice/gone.service",
        None,
        Want::LocateError("is the unit running?"),
    );
    check(
        "relative cgroup path",
        PURE_V2,
        "probe1/app.slice/probe-yes.service",
        None,
        Want::LocateError("not absolute"),
    );
}

#[test]
fn host_from_fixture_proc() {
    let dir = fixture(&[
        (
            "proc/cpuinfo",
            "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\n\nprocessor\t: 2\n",
        ),
        (
            "proc/meminfo",
            "MemTotal:       16318412 kB\nMemFree:         1000 kB\n",
        ),
        ("proc/sys/kernel/pid_max", "4194304\n"),
    ]);
    let host = read_host(&dir.path().join("proc")).expect("fixture host reads");
    assert_eq!(
        (host.cores, host.memory_bytes, host.max_tasks),
        (3, 16_318_412 * 1024, 4_194_304)
    );
    let err = read_host(&dir.path().join("nowhere")).expect_err("no meminfo");
    assert!(format!("{err:#}").contains("meminfo"), "{err:#}");
}

/// This machine, read-only: its real mount table and the root cgroup the tests run in.
#[test]
fn real_host_layout_reads() {
    let proc_root = Path::new("/proc");
    let mounts = Mounts::read(proc_root).expect("this host's mountinfo lists cgroup mounts");
    let own = parse_proc_cgroup(
        &std::fs::read_to_string("/proc/self/cgroup").expect("reading /proc/self/cgroup"),
    );
    let unified = mounts
        .unified
        .as_ref()
        .expect("a unified (v2) hierarchy is mounted");
    let v2_path = own.get("").expect("/proc/self/cgroup has a v2 line");

    let paths = CgroupPaths::locate(&mounts, proc_root, v2_path, Some(std::process::id()))
        .expect("locating our own cgroup");
    assert_eq!(paths.unified, unified.dir_of(v2_path), "{paths:?}");

    let hybrid = mounts.v1.contains_key("memory");
    match read_counters(&paths, AT) {
        Ok(c) => {
            assert!(c.cpu_usage_usec > 0, "{c:?}");
            assert!(c.memory_bytes > 0, "{c:?}");
            assert!(c.processes > 0 && c.tasks >= c.processes, "{c:?}");
        }
        // A v2 root cgroup has no memory.current; without v1 memory that is the right answer.
        Err(e) if !hybrid && v2_path == "/" => {
            assert!(format!("{e:#}").contains("memory.current"), "{e:#}")
        }
        Err(e) => panic!("reading our own cgroup: {e:#}"),
    }
    assert!(
        paths
            .pids_of_unit()
            .expect("listing our cgroup's pids")
            .contains(&std::process::id())
    );

    // The unified tree's root always accounts CPU time, on hybrid hosts too.
    let stat = std::fs::read_to_string(unified.point.join("cpu.stat"))
        .expect("reading the unified root's cpu.stat");
    assert!(
        autoscaler_cgroup::read::keyed(&stat, "usage_usec").is_some_and(|u| u > 0),
        "{stat}"
    );

    let host = read_host(proc_root).expect("reading this host's capacity");
    assert!(
        host.cores > 0 && host.memory_bytes > 0 && host.max_tasks > 0,
        "{host:?}"
    );
}

/// The `HYBRID` fixture, and its unit's cgroup located in it.
fn hybrid_unit() -> (tempfile::TempDir, CgroupPaths) {
    let dir = fixture(HYBRID);
    let proc_root = dir.path().join("proc");
    let mounts = Mounts::read(&proc_root).expect("fixture mountinfo parses");
    let paths = CgroupPaths::locate(&mounts, &proc_root, UNIT, Some(4242)).expect("locate");
    (dir, paths)
}

/// Files kept open are read again from the start: a later reading sees what the kernel (here,
/// a rewritten fixture file) says now, not what was read when the file was opened.
#[test]
fn kept_files_read_the_current_values() {
    let (dir, paths) = hybrid_unit();
    let root = dir.path();
    let mut kept = CgroupFiles::new(paths, Descriptors::unlimited());
    let first = kept.read(AT).expect("first reading");
    assert_eq!(first.counters.cpu_usage_usec, 2_406_924);
    let unified = root.join("sys/fs/cgroup/unified/probe1/app.slice/probe-yes.service");
    // Longer than before, and then shorter: both must read whole.
    for (text, want) in [
        (
            "usage_usec 12406924000\nuser_usec 1\nsystem_usec 1\n",
            12_406_924_000,
        ),
        ("usage_usec 7\n", 7),
    ] {
        std::fs::write(unified.join("cpu.stat"), text).expect("rewriting cpu.stat");
        let again = kept.read(AT).expect("a later reading");
        assert_eq!(again.counters.cpu_usage_usec, want, "{text:?}");
    }
}

/// A unit in which nothing ran (the same CPU time, and no pressure and no cgroup below its own
/// at the last full reading) reads as at its last reading, for less than `quiet_for_ms` (at
/// most `QUIET_FULL_MS`); CPU time that moved brings a full reading at once. After that long,
/// what moves without the unit running is read again: its memory use (and `memory.stat` only
/// when that moved) and its processes, and a process moved in or out by hand brings a full
/// reading.
#[test]
fn a_quiet_unit_is_read_in_full_when_anything_moves() {
    let (dir, paths) = hybrid_unit();
    let root = dir.path();
    let at = |secs: i64| Millis(AT.0 + secs * 1000);
    let mut kept = CgroupFiles::new(paths, Descriptors::unlimited());
    let refresh = kept.quiet_for_ms() / 1000;
    assert!((QUIET_FULL_MS / 2..=QUIET_FULL_MS).contains(&kept.quiet_for_ms()));
    assert_eq!(kept.quiet_for_ms() % 1000, 0);
    let cg = |h: &str| root.join(format!("sys/fs/cgroup/{h}{UNIT}"));
    let write = |h: &str, file: &str, text: &str| {
        std::fs::write(cg(h).join(file), text).expect("rewriting a fixture file")
    };
    let calm = "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n";
    write("unified", "cpu.pressure", calm);
    // Working set = usage 3358720 - total_inactive_file.
    let inactive = |bytes: u64| format!("total_inactive_file {bytes}\n");
    let first = kept.read(at(0)).expect("first reading");
    assert_eq!(first.counters.memory_bytes, 3_358_720 - 1_048_576);
    assert_eq!(first.depth, Depth::Full);

    // Files a quiet unit is not read again for: page cache, tasks, OOM kills.
    write("memory", "memory.stat", &inactive(2_097_152));
    write("pids", "pids.current", "9\n");
    write("memory", "memory.oom_control", "oom_kill 2\n");
    let quiet = kept.read(at(1)).expect("a quiet reading");
    let want = Counters {
        at: at(1),
        ..first.counters
    };
    assert_eq!(
        quiet.counters, want,
        "quiet: the last full reading at the new time"
    );
    assert_eq!(quiet.pids, first.pids);
    assert_eq!(quiet.depth, Depth::Quiet);
    assert!(quiet.quiet() && !first.quiet());
    let quiet = kept.read(at(refresh - 1)).expect("a quiet reading");
    assert_eq!(quiet.counters.memory_bytes, first.counters.memory_bytes);

    // After quiet_for_ms, memory use and processes are read again. Neither moved: no task ran,
    // so the page cache, tasks and OOM kills cannot have either.
    let r = kept
        .read(at(refresh))
        .expect("a refresh after quiet_for_ms");
    assert_eq!(r.depth, Depth::Refresh);
    assert!(r.quiet());
    let want = Counters {
        at: at(refresh),
        ..first.counters
    };
    assert_eq!(
        r.counters, want,
        "memory use did not move: memory.stat not read"
    );
    // The refresh is the new last reading: quiet after it for quiet_for_ms again.
    let mut t = refresh;
    write("memory", "memory.usage_in_bytes", "3362816\n");
    let r = kept.read(at(t + refresh - 1)).expect("a quiet reading");
    assert_eq!(r.depth, Depth::Quiet);
    assert_eq!(r.counters.memory_bytes, first.counters.memory_bytes);
    // Memory use that moved is read at the next refresh, the page cache with it.
    t += refresh;
    let r = kept.read(at(t)).expect("a refresh");
    assert_eq!(r.depth, Depth::Refresh);
    assert_eq!(r.counters.memory_bytes, 3_362_816 - 2_097_152);
    let (tasks, oom_kills) = (first.counters.tasks, first.counters.oom_kills);
    assert_eq!((r.counters.tasks, r.counters.oom_kills), (tasks, oom_kills));
    // A process moved in or out by hand (here, all but one out) brings a full reading.
    write("unified", "cgroup.procs", "4242\n");
    let r = kept.read(at(t + 1)).expect("a quiet reading");
    assert_eq!(r.pids, first.pids, "processes are read at a refresh");
    t += refresh;
    let full = kept
        .read(at(t))
        .expect("a full reading: the processes moved");
    assert_eq!(full.depth, Depth::Full);
    assert_eq!(full.pids, vec![4242], "one process left");
    assert_eq!((full.counters.tasks, full.counters.oom_kills), (9, 2));
    // CPU time that moved brings a full reading at once, at 1 s after the last full one.
    write("memory", "memory.stat", &inactive(1_000_000));
    write("unified", "cpu.stat", "usage_usec 2406925\n");
    t += 1;
    let r = kept.read(at(t)).expect("a reading after CPU time moved");
    assert_eq!(r.depth, Depth::Full, "after cpu.stat moved");
    assert_eq!(r.counters.memory_bytes, 3_362_816 - 1_000_000);
    assert_eq!(r.pids, vec![4242], "one process left");
    // Pressure is read at a full reading; seen there, the next reading is full too.
    write(
        "unified",
        "cpu.pressure",
        "some avg10=0.50 avg60=0.00 avg300=0.00 total=6\n",
    );
    write("unified", "cpu.stat", "usage_usec 2406926\n");
    let r = kept.read(at(t + 10)).expect("a full reading");
    assert_eq!(r.counters.cpu_pressure.map(|p| p.some_avg10), Some(0.5));
    write("memory", "memory.stat", &inactive(1_000_100));
    let r = kept.read(at(t + 11)).expect("a reading after pressure");
    assert_eq!(r.counters.memory_bytes, 3_362_816 - 1_000_100);

    // A unit with cgroups below its own is never quiet: a process moved into one of them
    // changes none of the three values.
    write("unified", "cpu.pressure", calm);
    write("unified", "cgroup.stat", "nr_descendants 1\n");
    let r = kept.read(at(t + 12)).expect("a full reading");
    assert_eq!(r.depth, Depth::Full);
    write("memory", "memory.stat", &inactive(1_000_200));
    let r = kept
        .read(at(t + 13))
        .expect("a reading of a unit with children");
    assert_eq!(r.depth, Depth::Full);
    assert_eq!(r.counters.memory_bytes, 3_362_816 - 1_000_200);
    write("unified", "cgroup.stat", "nr_descendants 0\n");
    kept.read(at(t + 14)).expect("a full reading");
    let r = kept.read(at(t + 15)).expect("quiet again");
    assert_eq!(r.depth, Depth::Quiet);
}

/// Units read in full in one round (all of them at start) drift apart: each unit's quiet
/// span is its own, from half of `QUIET_FULL_MS` to all of it.
#[test]
fn units_are_read_in_full_at_their_own_pace() {
    let spans: std::collections::BTreeSet<i64> = (0..50)
        .map(|i| {
            let dir = format!("/sys/fs/cgroup/unified/app.slice/bench-idle-{i:04}.service");
            let paths = CgroupPaths {
                unified: Some(dir.into()),
                cpu: None,
                cpuacct: None,
                memory: None,
                pids: None,
            };
            CgroupFiles::new(paths, Descriptors::unlimited()).quiet_for_ms()
        })
        .collect();
    assert!(spans.len() >= 8, "{spans:?}");
    assert!(
        spans
            .iter()
            .all(|s| (QUIET_FULL_MS / 2..=QUIET_FULL_MS).contains(s))
    );
}
