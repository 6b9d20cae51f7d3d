//! The shared end-to-end test harness: a real `systemd --user` in a sandbox, units under load,
//! and polling with a deadline.
//!
//! # Layout
//!
//! - [`Sandbox`]: a user manager started the way `recipes/systemd-user-sandbox.sh` does it
//!   (private mount namespace, its own cgroup in every hierarchy), with its own `HOME` and
//!   `XDG_RUNTIME_DIR` in temp dirs, stopped and removed on drop, also when a test panics.
//! - [`wait_until`]: the only way tests here wait for something.
//! - [`busy_unit`] and [`memory_hog_unit`]: unit files that load a service in a known way.
//! - [`Daemon`] and [`Http`]: a real `autoscaler serve` on an ephemeral loopback port, and
//!   HTTP calls through `curl`.
//! - [`World`]: the rig every end-to-end test file uses: a sandbox, a daemon managing given
//!   units on it, its `Http`, and the put-config, read and wait helpers.
//! - [`fakes`]: a scriptable fake systemd ([`fakes::FakeSystemd`], the engine's `Probe` and
//!   `Actuator`) and a [`fakes::FakeClock`], for engine tests without root or systemd.
//! - [`UserService`]: the daemon as the shipped user unit of a sandbox's manager.
//!
//! Architecture invariant: the harness only ever touches processes and cgroups it created
//! itself (cgroups named `autoscaler-test-<pid>-<n>`), never PID 1's, never the host's other
//! managers; it never runs `systemd --user` from the host's root cgroup.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub mod daemon;
pub mod fakes;
pub mod service;
pub mod world;

use anyhow::{Context, bail};
use tempfile::TempDir;

pub use daemon::{Daemon, Http, Response};
pub use service::{UserService, free_port};
pub use world::{World, unit_path};

/// Every cgroup hierarchy the manager gets a cgroup of its own in. `cpuacct` is separate from
/// `cpu` on this kind of host, and without it systemd does not give services their own cpu
/// cgroup (CPUQuota would then not be applied).
pub const HIERARCHIES: [&str; 6] = ["cpu", "cpuacct", "memory", "pids", "systemd", "unified"];

/// Prefix of every sandbox cgroup this harness creates; stale-sandbox removal touches nothing
/// else.
const PREFIX: &str = "autoscaler-test-";

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Held across processes while a sandbox lives (nextest runs test binaries in parallel).
const LOCK_FILE: &str = "/tmp/autoscaler-testkit.lock";

/// How long to wait for the manager, the bus, and the cross-process lock.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const LOCK_TIMEOUT: Duration = Duration::from_secs(900);

/// One sandbox at a time in this process: two managers with busy loops on a 2-core machine
/// make every timing in the tests unreliable.
static IN_PROCESS: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The manager's script, as in the recipe. `$1` is the sandbox name, the rest are hierarchies.
/// It moves itself into a cgroup of its own in every hierarchy before `exec`, because
/// `systemd --user` treats the cgroup it starts in as its root and takes over all of it.
const MANAGER_SCRIPT: &str = r#"
set -e
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/systemd/system
name=$1; shift
for h in "$@"; do
  mkdir -p "/sys/fs/cgroup/$h/$name"
  echo $$ > "/sys/fs/cgroup/$h/$name/cgroup.procs"
done
exec /lib/systemd/systemd --user
"#;

/// A real systemd user manager in a sandbox. Dropping it stops the manager, kills what is left
/// in its cgroups and removes them.
pub struct Sandbox {
    name: String,
    manager: Child,
    log: PathBuf,
    home: TempDir,
    runtime: TempDir,
    // Released last (fields drop in order, after `Drop::drop` stopped everything).
    _cross_process: File,
    _in_process: MutexGuard<'static, ()>,
}

impl Sandbox {
    /// Starts a manager and waits until `systemctl --user` and the user bus both answer.
    pub fn start() -> anyhow::Result<Sandbox> {
        // A test that panicked with a sandbox poisons the mutex; its sandbox was still
        // dropped, so the guard is fine to reuse.
        let in_process = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
        let cross_process = lock_across_processes()?;
        remove_stale_sandboxes()?;

        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        // The temp dirs carry the sandbox's name, so a later run can remove them too when
        // this process dies without dropping the sandbox.
        let home = tempfile::Builder::new()
            .prefix(&format!("{name}-home-"))
            .tempdir()
            .context("creating the sandbox HOME temp dir")?;
        let runtime = tempfile::Builder::new()
            .prefix(&format!("{name}-xdg-"))
            .tempdir()
            .context("creating the sandbox XDG_RUNTIME_DIR temp dir")?;
        fs::set_permissions(runtime.path(), fs::Permissions::from_mode(0o700))
            .context("making the sandbox XDG_RUNTIME_DIR 0700")?;
        fs::create_dir_all(home.path().join(".config/systemd/user"))
            .context("creating the sandbox unit directory")?;
        let log = home.path().join("manager.log");
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .context("duplicating the manager log handle")?;

        // `setsid` does not fork here (a child of ours is no group leader), so the pid we
        // get is the one that becomes systemd after unshare and bash exec.
        let manager = Command::new("setsid")
            .args(["unshare", "--mount", "--propagation", "private", "bash", "-c", MANAGER_SCRIPT])
            .arg("autoscaler-sandbox")
            .arg(&name)
            .args(HIERARCHIES)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .context("spawning `setsid unshare ... systemd --user` (are setsid, unshare and bash installed, and are we root?)")?;

        // From here on, Drop cleans up whatever happens next.
        let mut sb = Sandbox {
            name,
            manager,
            log,
            home,
            runtime,
            _cross_process: cross_process,
            _in_process: in_process,
        };
        sb.wait_ready()?;
        // On this hybrid host everything else runs in the root v1 `cpu` cgroup, where each
        // task weighs as much as the whole sandbox: with a busy neighbour (a build, load 10 on
        // 2 cores) the sandbox's units got a fifth of a core and never reached their quota.
        // Large shares for the sandbox's own cgroup; the units' quotas still cap what they use.
        let shares = Path::new(CGROUP_ROOT)
            .join("cpu")
            .join(&sb.name)
            .join("cpu.shares");
        fs::write(&shares, "65536").with_context(|| format!("writing {}", shares.display()))?;
        Ok(sb)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let private = self.runtime_dir().join("systemd/private");
        let bus = self.runtime_dir().join("bus");
        let mut stage = |what: &str, f: &mut dyn FnMut(&Sandbox) -> anyhow::Result<bool>| {
            // A manager that exited will not come back: that ends the wait at once (an
            // `Err` from the closure would only mean "not yet").
            let r = wait_until(START_TIMEOUT, what, || {
                if let Some(status) = self.manager.try_wait().context("polling the manager")? {
                    return Ok(Some(Err(anyhow::anyhow!(
                        "the manager exited early with {status}"
                    ))));
                }
                Ok(f(self)?.then_some(Ok(())))
            })
            .and_then(|r| r);
            r.with_context(|| {
                format!(
                    "sandbox {} did not start; manager log:\n{}",
                    self.name,
                    self.log_tail()
                )
            })
        };
        stage(
            "the manager's private socket",
            &mut |_| Ok(private.exists()),
        )?;
        stage("`systemctl --user show-environment` to answer", &mut |sb| {
            Ok(sb.systemctl(&["show-environment"]).is_ok())
        })?;
        // The bus is socket-activated: this call starts dbus-daemon, and it answers once
        // systemd has also registered org.freedesktop.systemd1 on it.
        stage("the user bus with systemd on it", &mut |sb| {
            Ok(bus.exists()
                && sb
                    .run(Command::new("busctl").args([
                        "--user",
                        "call",
                        "org.freedesktop.systemd1",
                        "/org/freedesktop/systemd1",
                        "org.freedesktop.systemd1.Manager",
                        "GetUnit",
                        "s",
                        "dbus.socket",
                    ]))
                    .is_ok())
        })?;
        Ok(())
    }

    /// The sandbox's name, which is also its cgroup directory's name in every hierarchy.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The manager's `HOME`: unit files go to `.config/systemd/user` below it.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The manager's `XDG_RUNTIME_DIR` (0700), holding `systemd/private` and `bus`.
    pub fn runtime_dir(&self) -> &Path {
        self.runtime.path()
    }

    /// The directory `write_unit` writes to.
    pub fn unit_dir(&self) -> PathBuf {
        self.home().join(".config/systemd/user")
    }

    /// The environment a child process (the daemon, `systemctl`, `busctl`) needs to talk to
    /// this manager.
    pub fn env(&self) -> Vec<(String, String)> {
        let rt = self.runtime_dir().display().to_string();
        vec![
            ("XDG_RUNTIME_DIR".to_string(), rt.clone()),
            ("HOME".to_string(), self.home().display().to_string()),
            (
                "DBUS_SESSION_BUS_ADDRESS".to_string(),
                format!("unix:path={rt}/bus"),
            ),
        ]
    }

    /// The user bus address, for D-Bus clients in this process.
    pub fn bus_address(&self) -> String {
        format!("unix:path={}/bus", self.runtime_dir().display())
    }

    /// Runs `systemctl --user ARGS` against this manager and returns its stdout.
    pub fn systemctl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run(Command::new("systemctl").arg("--user").args(args))
    }

    fn run(&self, cmd: &mut Command) -> anyhow::Result<String> {
        let shown = format!("{cmd:?}");
        let out = cmd
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {shown}"))?;
        if !out.status.success() {
            bail!(
                "{shown} failed with {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        String::from_utf8(out.stdout).with_context(|| format!("{shown} printed non-UTF-8"))
    }

    /// Writes `$HOME/.config/systemd/user/NAME` and reloads the manager.
    pub fn write_unit(&self, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
        if name.contains('/') || name.starts_with('.') {
            bail!("{name:?} is not a unit file name");
        }
        let path = self.unit_dir().join(name);
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        self.systemctl(&["daemon-reload"])?;
        Ok(path)
    }

    /// `systemctl --user start UNIT`: returns once the start job is done.
    pub fn start_unit(&self, unit: &str) -> anyhow::Result<()> {
        self.systemctl(&["start", unit]).map(drop)
    }

    /// `systemctl --user stop UNIT`: returns once the stop job is done.
    pub fn stop_unit(&self, unit: &str) -> anyhow::Result<()> {
        self.systemctl(&["stop", unit]).map(drop)
    }

    /// One property of a unit, as `systemctl --user show -p P --value` prints it.
    pub fn show(&self, unit: &str, property: &str) -> anyhow::Result<String> {
        Ok(self
            .systemctl(&["show", "-p", property, "--value", unit])?
            .trim()
            .to_string())
    }

    /// `CPUQuotaPerSecUSec` as systemd shows it, in percent of one core; `None` is infinity.
    pub fn cpu_quota(&self, unit: &str) -> anyhow::Result<Option<u32>> {
        let shown = self.show(unit, "CPUQuotaPerSecUSec")?;
        let usec = parse_timespan(&shown)
            .with_context(|| format!("CPUQuotaPerSecUSec of {unit} is {shown:?}"))?;
        Ok(usec.map(|u| u32::try_from((u + 5_000) / 10_000).unwrap_or(u32::MAX)))
    }

    /// `MemoryMax` in bytes as systemd shows it; `None` is infinity.
    pub fn memory_max(&self, unit: &str) -> anyhow::Result<Option<u64>> {
        let shown = self.show(unit, "MemoryMax")?;
        if shown == "infinity" {
            return Ok(None);
        }
        Ok(Some(shown.parse().with_context(|| {
            format!("MemoryMax of {unit} is {shown:?}")
        })?))
    }

    /// The unit's main process; an error when it has none.
    pub fn main_pid(&self, unit: &str) -> anyhow::Result<u32> {
        let v = self.show(unit, "MainPID")?;
        let pid: u32 = v
            .parse()
            .with_context(|| format!("MainPID of {unit} is {v:?}"))?;
        if pid == 0 {
            bail!(
                "{unit} has no main process (MainPID=0, ActiveState={})",
                self.show(unit, "ActiveState")?
            );
        }
        Ok(pid)
    }

    /// Where a user service's cgroup lives in one hierarchy: `/sys/fs/cgroup/<h>/<sandbox>/app.slice/<unit>`.
    pub fn cgroup_dir(&self, hierarchy: &str, unit: &str) -> PathBuf {
        Path::new(CGROUP_ROOT)
            .join(hierarchy)
            .join(&self.name)
            .join("app.slice")
            .join(unit)
    }

    /// A counter of one of the unit's v1 cgroup files written as `key value` lines
    /// (`memory.oom_control`, `cpu.stat`); an error when the file or the key is missing.
    pub fn cgroup_counter(
        &self,
        hierarchy: &str,
        unit: &str,
        file: &str,
        key: &str,
    ) -> anyhow::Result<u64> {
        let path = self.cgroup_dir(hierarchy, unit).join(file);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let n = text
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .with_context(|| format!("{} has no {key} line: {text:?}", path.display()))?;
        n.trim()
            .parse()
            .with_context(|| format!("{key} in {} is {n:?}", path.display()))
    }

    /// The `oom_kill` count of the unit's v1 memory cgroup.
    pub fn oom_kills(&self, unit: &str) -> anyhow::Result<u64> {
        self.cgroup_counter("memory", unit, "memory.oom_control", "oom_kill")
    }

    /// The CFS quota the kernel enforces, from the v1 `cpu` hierarchy, in percent of one
    /// core; `None` is no quota.
    pub fn cfs_quota(&self, unit: &str) -> anyhow::Result<Option<u32>> {
        let dir = self.cgroup_dir("cpu", unit);
        let read = |file: &str| -> anyhow::Result<i64> {
            let path = dir.join(file);
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            text.trim()
                .parse()
                .with_context(|| format!("{} is {text:?}", path.display()))
        };
        let quota = read("cpu.cfs_quota_us")?;
        let period = read("cpu.cfs_period_us")?;
        anyhow::ensure!(period > 0, "cpu.cfs_period_us of {unit} is {period}");
        Ok((quota >= 0).then(|| u32::try_from(quota * 100 / period).unwrap_or(u32::MAX)))
    }

    /// The last 30 lines the manager logged (its units' stdout and stderr go there too: the
    /// sandbox has no journal).
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The recipe's `stop`: TERM, wait, KILL, then whatever is left in the cgroups.
    fn stop(&mut self) -> anyhow::Result<()> {
        let pid = self.manager.id();
        if self.manager.try_wait().ok().flatten().is_none() {
            // The user manager answers TERM by starting exit.target, which stops every unit.
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let exited = wait_until(
                Duration::from_secs(10),
                "the manager to exit after SIGTERM",
                || Ok(self.manager.try_wait()?.map(drop)),
            );
            if exited.is_err() {
                let _ = self.manager.kill();
                let _ = self.manager.wait();
            }
        }
        remove_cgroups(&self.name)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            // Drop cannot fail; the next `Sandbox::start` removes what is left.
            eprintln!("autoscaler-testkit: stopping sandbox {}: {e:#}", self.name);
        }
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("name", &self.name)
            .field("manager_pid", &self.manager.id())
            .field("home", &self.home.path())
            .field("runtime_dir", &self.runtime.path())
            .finish()
    }
}

/// Takes the cross-process lock, waiting for other test processes' sandboxes.
fn lock_across_processes() -> anyhow::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_FILE)
        .with_context(|| format!("opening the sandbox lock file {LOCK_FILE}"))?;
    wait_until(
        LOCK_TIMEOUT,
        &format!("the sandbox lock {LOCK_FILE} (another test process holds it)"),
        || match f.try_lock() {
            Ok(()) => Ok(Some(())),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e).context("flock"),
        },
    )?;
    Ok(f)
}

/// Removes sandboxes of this harness that nobody owns any more: the test process named in the
/// cgroup is gone, or it is this process (which holds the in-process lock, so none of its
/// own sandboxes is alive). Nothing that does not start with [`PREFIX`] is ever touched.
fn remove_stale_sandboxes() -> anyhow::Result<()> {
    let me = std::process::id();
    let mut stale = std::collections::BTreeSet::new();
    for h in HIERARCHIES {
        let Ok(entries) = fs::read_dir(Path::new(CGROUP_ROOT).join(h)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(owner) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()) else {
                continue;
            };
            let Ok(owner) = owner.parse::<u32>() else {
                continue;
            };
            if owner == me || !Path::new("/proc").join(owner.to_string()).exists() {
                stale.insert(name);
            }
        }
    }
    for name in stale {
        remove_cgroups(&name).with_context(|| format!("removing the stale sandbox {name}"))?;
    }
    // HOME and XDG_RUNTIME_DIR of sandboxes whose test process died (only then: a live
    // process's temp dirs are its own business).
    if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let owner = name
                .strip_prefix(PREFIX)
                .and_then(|r| r.split('-').next())
                .and_then(|o| o.parse::<u32>().ok());
            if owner.is_some_and(|o| !Path::new("/proc").join(o.to_string()).exists()) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// Kills every process in a sandbox's cgroups and removes them, deepest first, in every
/// hierarchy.
fn remove_cgroups(name: &str) -> anyhow::Result<()> {
    debug_assert!(name.starts_with(PREFIX));
    let roots: Vec<PathBuf> = HIERARCHIES
        .iter()
        .map(|h| Path::new(CGROUP_ROOT).join(h).join(name))
        .collect();
    // A removal can take tens of milliseconds (the cpu hierarchy's waits for RCU): a
    // benchmark's sandbox of 1000 units left behind took over 10 s, so the time allowed
    // grows with the directories to remove.
    let mut count = Vec::new();
    for root in &roots {
        collect_dirs(root, &mut count);
    }
    let allowed = Duration::from_secs(10) + Duration::from_millis(30) * count.len() as u32;
    wait_until(
        allowed,
        &format!("the cgroups of {name} to be removed"),
        || {
            let mut left = Vec::new();
            for root in &roots {
                let mut dirs = Vec::new();
                collect_dirs(root, &mut dirs);
                let pids: Vec<String> = dirs
                    .iter()
                    .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
                    .flat_map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                    .collect();
                if !pids.is_empty() {
                    let _ = Command::new("kill")
                        .arg("-KILL")
                        .args(&pids)
                        .stderr(Stdio::null())
                        .status();
                }
                // Children come after their parent in `dirs`, so reverse order is deepest first.
                for d in dirs.iter().rev() {
                    if fs::remove_dir(d).is_err() && d.exists() {
                        left.push(d.display().to_string());
                    }
                }
            }
            Ok(if left.is_empty() { Some(()) } else { None })
        },
    )
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    out.push(dir.to_path_buf());
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// A time span as `systemctl show` prints it ("500ms", "1.500s", "1s 500ms", "infinity") in
/// microseconds; `None` is infinity.
pub fn parse_timespan(s: &str) -> anyhow::Result<Option<u64>> {
    if s == "infinity" {
        return Ok(None);
    }
    anyhow::ensure!(!s.trim().is_empty(), "empty time span");
    let mut total = 0.0;
    for part in s.split_whitespace() {
        let split = part
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .with_context(|| format!("{part:?} has no unit"))?;
        let (num, unit) = part.split_at(split);
        let n: f64 = num.parse().with_context(|| format!("{num:?} in {s:?}"))?;
        let scale = match unit {
            "us" | "µs" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "min" => 60e6,
            other => bail!("unknown unit {other:?} in {s:?}"),
        };
        total += n * scale;
    }
    Ok(Some(total.round() as u64))
}

/// Config that fits limits of a few GiB and a fraction of a core on this kind of host (2 cores,
/// 24 GiB): no CPU reserve and low minimums. With the spec's defaults (1 core reserved, 100%
/// minimum) the only CPU quota left on 2 cores would be exactly 100%.
pub const SMALL_HOST_BOUNDS: &str = r#"{"system_cpu_cores":0,"min_cpu_quota":20,"min_memory_max":1,"min_step_memory_gb":1,"min_tasks_max":50}"#;

/// The fast path the end-to-end scale-up tests and `bench_scale` start from: a 1 s loop, two
/// consecutive checks to scale up, no scale-down (an idle unit shrinking before the load would
/// move the starting quota and start a cooldown), [`SMALL_HOST_BOUNDS`], and `changes` on top.
pub fn fast_path_config(changes: serde_json::Value) -> serde_json::Value {
    let mut c = serde_json::json!({
        "check_interval_seconds": 1,
        "consecutive_scale_up_checks": 2,
        "consecutive_scale_down_checks": 1000,
        "scale_cooldown_seconds": 3,
        "max_cpu_quota": 200,
        "min_step_cpu_quota": 50,
        "min_step_tasks": 50,
    });
    let bounds: serde_json::Value =
        serde_json::from_str(SMALL_HOST_BOUNDS).expect("SMALL_HOST_BOUNDS is JSON");
    for more in [bounds, changes] {
        if let (Some(base), serde_json::Value::Object(more)) = (c.as_object_mut(), more) {
            base.extend(more);
        }
    }
    c
}

/// The repository's root (tests run from their crate's directory).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A tool of the repository's test environment (`.venv/...`, `node_modules/...`), or an error
/// naming the script that installs it: tests fail, never skip, when a tool is missing.
pub fn repo_tool(rel: &str) -> anyhow::Result<PathBuf> {
    let p = repo().join(rel);
    if !p.exists() {
        bail!(
            "{} is missing: run scripts/setup-test-env, which installs every test tool",
            p.display()
        );
    }
    Ok(p)
}

/// A system tool on PATH (curl, jq), or an error saying what to install: tests fail, never
/// skip, when a tool is missing.
pub fn need_command(cmd: &str) -> anyhow::Result<()> {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!("`{cmd}` is not installed: run scripts/setup-test-env (or apt-get install {cmd})");
    }
    Ok(())
}

/// Waits at most `timeout` for `child` to exit and returns how it did; a child still running
/// then is killed (and reaped), and the error says what was awaited.
pub fn wait_exit(
    child: &mut Child,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<std::process::ExitStatus> {
    wait_until(timeout, what, || Ok(child.try_wait()?)).inspect_err(|_| {
        let _ = child.kill();
        let _ = child.wait();
    })
}

/// Every file name in `dir`, sorted: what a change may leave behind, compared before and after.
pub fn listing(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<anyhow::Result<_>>()?;
    names.sort();
    Ok(names)
}

/// Polls `f` every 100 ms until it returns `Ok(Some(_))`, or fails after `timeout` saying
/// what was awaited and the last value or error seen. `Err` from `f` is not fatal: the thing
/// awaited may not exist yet.
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "not yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Like [`wait_until`] for a value that must become equal to `want`.
pub fn wait_for_eq<T: PartialEq + Debug>(
    timeout: Duration,
    what: &str,
    want: T,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<()> {
    let mut last = None;
    wait_until(timeout, what, || {
        let v = f()?;
        let done = v == want;
        last = Some(v);
        Ok(done.then_some(()))
    })
    .with_context(|| format!("wanted {want:?}, last value {last:?}"))
}

/// An idle service (`sleep infinity`) with all three limits set, so it has a directory in the
/// cpu, memory and pids hierarchies.
pub const IDLE_LIMITED_UNIT: &str =
    "[Service]\nExecStart=/bin/sleep infinity\nCPUQuota=50%\nMemoryMax=1G\nTasksMax=100\n";

/// A service under `MemoryMax=1G` whose shell waits for the file `go`, then runs
/// `python3 script` as its child: an OOM kill of the script leaves the unit, and its cgroup, up
/// (`OOMPolicy=continue`).
pub fn python_after(go: &Path, script: &Path) -> String {
    format!(
        "[Service]\nExecStart=/bin/sh -c 'while [ ! -e {} ]; do sleep 0.01; done; python3 {}; sleep infinity'\n\
         MemoryMax=1G\nOOMPolicy=continue\nCPUQuota=200%\nTasksMax=100\n",
        go.display(),
        script.display()
    )
}

/// A service running `cpus` busy loops (`yes > /dev/null`), with start rate limiting off so
/// tests may restart it freely.
pub fn busy_unit(cpus: u32) -> String {
    let loops = "yes >/dev/null & ".repeat(cpus as usize);
    format!(
        "[Unit]\nDescription=autoscaler test: {cpus} busy loop(s)\nStartLimitIntervalSec=0\n\n\
         [Service]\nExecStart=/bin/sh -c '{loops}wait'\n"
    )
}

/// A service that allocates `step_mib` MiB every `every_ms` ms up to `max_mib`, touching
/// every byte, then holds it until stopped. Perl is in every Debian base system (perl-base);
/// `$` is doubled because systemd expands `$VAR` in ExecStart.
pub fn memory_hog_unit(step_mib: u32, every_ms: u32, max_mib: u32) -> String {
    let code = format!(
        "my @h; my $t = 0; while ($t < {max_mib}) {{ my $n = {step_mib}; $n = {max_mib} - $t if $t + $n > {max_mib}; \
         push @h, chr(120) x ($n * 1048576); $t += $n; select(undef, undef, undef, {every_ms} / 1000); }} \
         sleep 3600 while 1;"
    )
    .replace('$', "$$");
    format!(
        "[Unit]\nDescription=autoscaler test: memory hog to {max_mib} MiB\nStartLimitIntervalSec=0\n\n\
         [Service]\nExecStart=/usr/bin/perl -e \"{code}\"\n"
    )
}

/// What a rejected request must leave as it was, from the answers of `GET status`, `GET
/// config` and `GET history`: the config, the limits and counters of the status (not its
/// streaks, which move with every check), and the history. One definition for the tests that
/// drive the real daemon and those that drive the fakes.
pub fn kept_state(
    status: &serde_json::Value,
    config: serde_json::Value,
    history: serde_json::Value,
) -> serde_json::Value {
    let keep = [
        "mode",
        "policy",
        "current_limits",
        "last_scale_time",
        "scale_up_count",
        "scale_down_count",
        "last_failure",
        "bounds",
    ];
    let status: serde_json::Map<String, serde_json::Value> = keep
        .iter()
        .map(|k| (k.to_string(), status[*k].clone()))
        .collect();
    serde_json::json!({ "config": config, "status": status, "history": history })
}
