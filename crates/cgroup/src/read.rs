//! Reading a located unit's counters and limits from its cgroup files.
//!
//! This module owns the choice of source for each value (v2 file first, the v1 controller's
//! file otherwise) and the small pure parsers for the files' formats. It must not locate
//! cgroups, decide anything, or write to any cgroup file. Optional values (pressure,
//! throttling, OOM kills) read as `None`/0 when their file is absent; the essential ones (CPU
//! time, memory) are an error that names the file and directory that were tried, because a
//! made-up 0 would look like an idle unit.
//!
//! [`CgroupFiles`] keeps a located unit's files open between readings and reads them again
//! from offset 0 (`pread`), and remembers which files this hierarchy does not have, so a
//! reading costs no `open`, `stat` or failing lookup. An error on an open file (`ENODEV` once
//! the cgroup is removed) is returned: the caller locates the unit again. A unit in which
//! nothing ran since the last reading costs one read, not ten, and a refresh of what can move
//! without it running every 15 to 30 s (see [`QUIET_FULL_MS`]).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use autoscaler_core::sample::Psi;
use autoscaler_core::time::spread;
use autoscaler_core::{Counters, Limits, Millis};

use crate::fds::Descriptors;
use crate::locate::{CgroupPaths, ids_below, ids_in_tree};

/// v1 reports "no memory limit" as the largest page-aligned i64 (9223372036854771712);
/// anything this large is not a limit anyone set.
const V1_UNLIMITED_BYTES: u64 = 1 << 62;

/// One reading of the unit's cgroup at time `at` (the caller's clock), every file opened
/// afresh.
pub fn read_counters(paths: &CgroupPaths, at: Millis) -> anyhow::Result<Counters> {
    Ok(CgroupFiles::once(paths.clone()).read(at)?.counters)
}

/// How long a quiet unit's last reading stands in for a new one. A unit is quiet when its CPU
/// time reads the same as at its last full reading, and its pressure read zero and it had no
/// cgroup below its own then: no task of it ran, so it cannot have forked, exited, `exec`ed,
/// allocated, been throttled, stalled or been OOM-killed (a killed task runs its exit), and
/// the other files are not read again (most services on a host are idle most of the time; see
/// docs/BENCHMARKS.md). What can move without the unit running is read again at least this
/// often, in a [`Depth::Refresh`]: its memory use (the kernel reclaiming its pages, or freeing
/// a file's cache when another process deletes the file), its processes (a sleeping one moved
/// in or out of its cgroup by hand, or a cgroup made below it: then the reading is a full
/// one) and its limits. This is the spec's default check interval, so a quiet unit checked
/// every second is never known less well than at the default, where every reading is full.
/// (A full reading costs about ten times a quiet one, `memory.stat` the most: at 10 s it was
/// still 5% of the daemon's CPU at 50 idle units.)
pub const QUIET_FULL_MS: i64 = 30_000;

/// Which of the unit's directories a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Dir {
    Unified,
    Cpu,
    Cpuacct,
    Memory,
    Pids,
}

/// What [`CgroupFiles::read`] read: the counters, and the unit's process ids (sorted), which
/// the processes count came from.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitReading {
    pub counters: Counters,
    pub pids: Vec<u32>,
    /// How much of the cgroup was read again.
    pub depth: Depth,
}

/// How much of a unit's cgroup a reading read again (see [`QUIET_FULL_MS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Every file.
    Full,
    /// The unit was quiet for [`CgroupFiles::quiet_for_ms`]: its CPU time, memory use and
    /// processes were read again, and found the same processes (`memory.stat` only when its
    /// memory use moved); the rest is the last full reading's. The caller reads the limits
    /// again with it. No task of the unit ran since, so none of its processes can have become
    /// another program.
    Refresh,
    /// The unit was quiet: its CPU time alone was read, and this is the last reading again.
    /// No task of it ran since.
    Quiet,
}

impl UnitReading {
    /// No task of the unit ran since the last full reading: its processes are the same
    /// programs.
    pub fn quiet(&self) -> bool {
        self.depth != Depth::Full
    }
}

/// A located unit's cgroup files, kept open between readings (see the module's doc). One per
/// unit; a new [`CgroupPaths`] (the unit restarted) needs a new one.
#[derive(Debug)]
pub struct CgroupFiles {
    paths: CgroupPaths,
    /// Each file tried so far: open, or `None` when this directory does not have it.
    files: HashMap<(Dir, &'static str), Option<File>>,
    /// Whether to keep what was opened (false: a one-off reading, as before the cache).
    keep: bool,
    /// The budget kept files are counted against, and how many of `files` hold one.
    budget: Arc<Descriptors>,
    kept: usize,
    /// The last full reading, what it was taken from, and when (see [`QUIET_FULL_MS`]).
    last: Option<Full>,
    /// How long the last full reading stands in while the unit is quiet (see
    /// [`CgroupFiles::quiet_for_ms`]).
    quiet_for_ms: i64,
}

/// The last full reading (its time and memory use moved on by refreshes), and whether it can
/// stand in for the next ones while nothing runs.
#[derive(Debug)]
struct Full {
    /// The last reading, full or refreshed: its time is when the files were last read.
    reading: UnitReading,
    /// The unit's memory use as `memory.current` (or v1's usage) gave it, page cache included.
    usage: u64,
    /// The unit had cgroups below its own: a process moved into one of them from outside
    /// would go unseen until the next full reading, so such a unit is never taken as quiet.
    children: bool,
}

impl Full {
    /// Whether no task of the unit can have run since this reading.
    fn still(&self, cpu_usage_usec: u64) -> bool {
        let c = &self.reading.counters;
        let calm = |p: Option<Psi>| p.is_none_or(|p| p.some_avg10 == 0.0);
        !self.children
            && c.cpu_usage_usec == cpu_usage_usec
            && calm(c.cpu_pressure)
            && calm(c.memory_pressure)
    }
}

impl Drop for CgroupFiles {
    fn drop(&mut self) {
        self.budget.give_back(self.kept);
    }
}

impl CgroupFiles {
    /// The unit's files, kept open while `budget` allows (see [`crate::fds`]).
    pub fn new(paths: CgroupPaths, budget: Arc<Descriptors>) -> CgroupFiles {
        let key = [&paths.unified, &paths.pids, &paths.memory, &paths.cpu]
            .into_iter()
            .flatten()
            .next()
            .map_or(&[][..], |d| d.as_os_str().as_encoded_bytes());
        let half = QUIET_FULL_MS / 2;
        let seconds = (spread(key) * (half / 1000 + 1) as f64) as i64;
        let quiet_for_ms = half + seconds * 1000;
        CgroupFiles {
            paths,
            files: HashMap::new(),
            keep: true,
            budget,
            kept: 0,
            last: None,
            quiet_for_ms,
        }
    }

    /// How long a full reading stands in while the unit is quiet: whole seconds from half of
    /// [`QUIET_FULL_MS`] to all of it, by the unit's cgroup path. Units read in full in one
    /// round (all of them at start, or after systemd restarts) then drift apart, instead of
    /// all being read in full in one round every `QUIET_FULL_MS` (at 1000 units, ten
    /// thousand reads and the agents' command lines in one burst).
    pub fn quiet_for_ms(&self) -> i64 {
        self.quiet_for_ms
    }

    fn once(paths: CgroupPaths) -> CgroupFiles {
        let mut once = CgroupFiles::new(paths, Descriptors::unlimited());
        once.keep = false;
        once
    }

    pub fn paths(&self) -> &CgroupPaths {
        &self.paths
    }

    fn dir(&self, d: Dir) -> Option<&Path> {
        match d {
            Dir::Unified => self.paths.unified.as_deref(),
            Dir::Cpu => self.paths.cpu.as_deref(),
            Dir::Cpuacct => self.paths.cpuacct.as_deref(),
            Dir::Memory => self.paths.memory.as_deref(),
            Dir::Pids => self.paths.pids.as_deref(),
        }
    }

    /// `dir/file`, `Ok(None)` when there is no dir or no such file.
    fn read_in(&mut self, d: Dir, file: &'static str) -> anyhow::Result<Option<String>> {
        let Some(dir) = self.dir(d) else {
            return Ok(None);
        };
        if let Some(slot) = self.files.get(&(d, file)) {
            let Some(f) = slot else { return Ok(None) };
            return match read_from_start(f) {
                Ok(text) => Ok(Some(text)),
                Err(e) => {
                    let path = dir.join(file);
                    self.files.remove(&(d, file));
                    self.kept -= 1;
                    self.budget.give_back(1);
                    Err(e).with_context(|| format!("reading {} again", path.display()))
                }
            };
        }
        let path = dir.join(file);
        let opened = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.keep {
                    self.files.insert((d, file), None);
                }
                return Ok(None);
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let text =
            read_from_start(&opened).with_context(|| format!("reading {}", path.display()))?;
        // Over the budget the file is closed again, and opened again at the next reading.
        if self.keep && self.budget.take_for_file() {
            self.files.insert((d, file), Some(opened));
            self.kept += 1;
        }
        Ok(Some(text))
    }

    /// An optional file: any problem reading it means "not available" (logged at debug).
    fn optional(&mut self, d: Dir, file: &'static str) -> Option<String> {
        self.read_in(d, file).unwrap_or_else(|e| {
            tracing::debug!("{e:#}");
            None
        })
    }

    fn show(&self, d: Dir, file: &str) -> String {
        show(self.dir(d), file)
    }

    /// The limits the unit's cgroup enforces right now, as the kernel sees them. `None` is
    /// unlimited, or unknown when the file is missing or unreadable (logged). systemd sends no
    /// signal when it changes them; a caller that caches systemd's view compares these.
    pub fn limits(&mut self) -> Limits {
        let cpu_quota = match self.optional(Dir::Unified, "cpu.max") {
            Some(text) => self.parsed(Dir::Unified, "cpu.max", parse_cpu_max(&text)),
            None => match (
                self.optional(Dir::Cpu, "cpu.cfs_quota_us"),
                self.optional(Dir::Cpu, "cpu.cfs_period_us"),
            ) {
                (Some(q), Some(p)) => {
                    self.parsed(Dir::Cpu, "cpu.cfs_quota_us", parse_v1_cpu_quota(&q, &p))
                }
                _ => None,
            },
        };
        let memory_max = match self.optional(Dir::Unified, "memory.max") {
            Some(text) => self.parsed(Dir::Unified, "memory.max", parse_limit(&text)),
            None => self
                .optional(Dir::Memory, "memory.limit_in_bytes")
                .and_then(|t| {
                    self.parsed(
                        Dir::Memory,
                        "memory.limit_in_bytes",
                        parse_v1_memory_limit(&t),
                    )
                }),
        };
        let tasks_max = [(Dir::Unified, "pids.max"), (Dir::Pids, "pids.max")]
            .into_iter()
            .find_map(|(d, file)| {
                self.optional(d, file)
                    .map(|t| self.parsed(d, file, parse_limit(&t)))
            })
            .flatten();
        // A quota beyond u32::MAX percent is no limit on any real machine.
        let cpu_quota = cpu_quota.map(|q| u32::try_from(q).unwrap_or(u32::MAX));
        Limits {
            cpu_quota,
            memory_max,
            tasks_max,
        }
    }

    /// A parsed optional value; unparseable text is logged and read as unknown.
    fn parsed(&self, d: Dir, file: &str, value: Option<Option<u64>>) -> Option<u64> {
        value.unwrap_or_else(|| {
            tracing::warn!(
                "{} holds text we cannot parse; treating the limit as unknown",
                self.show(d, file)
            );
            None
        })
    }

    /// One reading of the unit's cgroup at time `at` (the caller's clock): the last one again,
    /// at `at`, while the unit is quiet, and only what can move without it running after
    /// [`Self::quiet_for_ms`] (see [`QUIET_FULL_MS`]).
    pub fn read(&mut self, at: Millis) -> anyhow::Result<UnitReading> {
        let v2_cpu_stat = self.read_in(Dir::Unified, "cpu.stat")?;
        let cpu_usage_usec = self.cpu_usage_usec(v2_cpu_stat.as_deref())?;
        if let Some(last) = &self.last
            && last.still(cpu_usage_usec)
        {
            let age = at.0 - last.reading.counters.at.0;
            if (0..self.quiet_for_ms).contains(&age) {
                let mut again = last.reading.clone();
                again.counters.at = at;
                again.depth = Depth::Quiet;
                return Ok(again);
            }
            if let Some(refreshed) = self.refresh(at)? {
                return Ok(refreshed);
            }
        }
        self.full(v2_cpu_stat.as_deref(), cpu_usage_usec, at)
    }

    /// A quiet unit's reading after [`Self::quiet_for_ms`]: its memory use and processes read
    /// again, `None` when its processes are not the last reading's (read it in full).
    fn refresh(&mut self, at: Millis) -> anyhow::Result<Option<UnitReading>> {
        let usage = self.usage()?;
        let (procs_dir, procs) = self.procs()?;
        let (mut pids, children) = self.pids(procs_dir, &procs)?;
        pids.sort_unstable();
        pids.dedup();
        let Some(last) = &self.last else {
            return Ok(None);
        };
        if children || pids != last.reading.pids {
            return Ok(None);
        }
        let moved = usage != last.usage;
        let memory_bytes = if moved {
            usage.saturating_sub(self.inactive_file())
        } else {
            last.reading.counters.memory_bytes
        };
        let Some(last) = &mut self.last else {
            return Ok(None);
        };
        last.usage = usage;
        let r = &mut last.reading;
        r.counters.at = at;
        r.counters.memory_bytes = memory_bytes;
        r.depth = Depth::Refresh;
        Ok(Some(r.clone()))
    }

    /// The unit's memory use, page cache included.
    fn usage(&mut self) -> anyhow::Result<u64> {
        self.essential_number(&[
            (Dir::Unified, "memory.current"),
            (Dir::Memory, "memory.usage_in_bytes"),
        ])
        .context("reading the unit's memory use")
    }

    /// The unit's page cache not recently used: v2 `memory.stat`'s `inactive_file`, v1's
    /// `total_inactive_file`, 0 when neither is there.
    fn inactive_file(&mut self) -> u64 {
        [
            (Dir::Unified, "inactive_file"),
            (Dir::Memory, "total_inactive_file"),
        ]
        .into_iter()
        .find_map(|(dir, key)| {
            self.optional(dir, "memory.stat")
                .and_then(|t| keyed(&t, key))
        })
        .unwrap_or(0)
    }

    /// Every file of the unit read again.
    fn full(
        &mut self,
        v2_cpu_stat: Option<&str>,
        cpu_usage_usec: u64,
        at: Millis,
    ) -> anyhow::Result<UnitReading> {
        let usage = self.usage()?;
        let (procs_dir, procs) = self.procs()?;

        let (nr_periods, nr_throttled, throttled_usec) = self.throttling(v2_cpu_stat);
        // The working set, as kubelet and VPA count it: usage includes page cache, which grows
        // to the limit in any service that reads files, and inactive file pages are reclaimed
        // before anything is killed. Counted, they would push every such service to its maximum.
        let memory_bytes = usage.saturating_sub(self.inactive_file());

        let oom_kills = [
            (Dir::Unified, "memory.events"),
            (Dir::Memory, "memory.oom_control"),
        ]
        .into_iter()
        .find_map(|(dir, file)| self.optional(dir, file).and_then(|t| keyed(&t, "oom_kill")))
        .unwrap_or(0);

        let tasks = match [(Dir::Unified, "pids.current"), (Dir::Pids, "pids.current")]
            .into_iter()
            .find_map(|(dir, file)| self.optional(dir, file).and_then(|t| parse_u64(&t)))
        {
            Some(n) => n,
            // Without the pids controller (a root cgroup, or a v1 unit without TasksMax) the
            // threads can still be counted one by one.
            None => count_threads(&self.paths)?,
        };

        let (mut pids, children) = self.pids(procs_dir, &procs)?;
        let processes = pids.len() as u64;
        pids.sort_unstable();
        pids.dedup();

        let counters = Counters {
            at,
            cpu_usage_usec,
            nr_periods,
            nr_throttled,
            throttled_usec,
            oom_kills,
            memory_bytes,
            tasks,
            processes,
            cpu_pressure: self
                .optional(Dir::Unified, "cpu.pressure")
                .and_then(|t| parse_psi(&t)),
            memory_pressure: self
                .optional(Dir::Unified, "memory.pressure")
                .and_then(|t| parse_psi(&t)),
        };
        let reading = UnitReading {
            counters,
            pids,
            depth: Depth::Full,
        };
        if self.keep {
            self.last = Some(Full {
                reading: reading.clone(),
                usage,
                children,
            });
        }
        Ok(reading)
    }

    /// The text of the unit's top `cgroup.procs`, and the directory it was read in.
    fn procs(&mut self) -> anyhow::Result<(Dir, String)> {
        let d = [Dir::Unified, Dir::Pids, Dir::Memory, Dir::Cpu, Dir::Cpuacct]
            .into_iter()
            .find(|d| self.dir(*d).is_some())
            .context("the unit has no cgroup directory to count its processes in")?;
        let file = "cgroup.procs";
        let text = self
            .read_in(d, file)
            .with_context(|| format!("counting the unit's processes in {}", self.show(d, file)))?
            .with_context(|| format!("{} is missing", self.show(d, file)))?;
        Ok((d, text))
    }

    /// The process ids in the unit's cgroup (`procs`, the top directory's `cgroup.procs`) and
    /// its child cgroups (not sorted), the children's read afresh (they come and go), and
    /// whether it has child cgroups (without `cgroup.stat`: whether any process is in one). A
    /// v2 directory's `cgroup.stat` says whether it has children at all, so a unit without
    /// (most services) costs one read, not a walk of its directory (open, stat, two
    /// `getdents64`, close).
    fn pids(&mut self, d: Dir, procs: &str) -> anyhow::Result<(Vec<u32>, bool)> {
        let file = "cgroup.procs";
        let mut ids: Vec<u32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let children = match d {
            Dir::Unified => self
                .optional(d, "cgroup.stat")
                .and_then(|t| keyed(&t, "nr_descendants")),
            _ => None,
        };
        let top = ids.len();
        if let Some(dir) = self.dir(d).filter(|_| children != Some(0)) {
            ids_below(dir, file, &mut ids).with_context(|| {
                format!("counting the unit's processes in {}", self.show(d, file))
            })?;
        }
        let below = children.map_or(ids.len() > top, |n| n > 0);
        Ok((ids, below))
    }

    /// CPU time: v2 `cpu.stat` (present in every v2 cgroup, also on hybrid hosts), else the v1
    /// `cpuacct.usage` of the unit's own cpuacct directory.
    fn cpu_usage_usec(&mut self, v2_cpu_stat: Option<&str>) -> anyhow::Result<u64> {
        let mut tried = Vec::new();
        match (self.dir(Dir::Unified), v2_cpu_stat) {
            (Some(_), Some(text)) => match keyed(text, "usage_usec") {
                Some(usec) => return Ok(usec),
                None => tried.push(format!(
                    "{} has no usage_usec",
                    self.show(Dir::Unified, "cpu.stat")
                )),
            },
            (Some(_), None) => tried.push(format!(
                "{} is missing",
                self.show(Dir::Unified, "cpu.stat")
            )),
            (None, _) => {
                tried.push("the unit has no directory in a unified (v2) hierarchy".to_string())
            }
        }
        // A cpuacct directory named differently from the cpu one belongs to a parent cgroup
        // (locate leaves those out; this guards hand-built paths). Its usage is other units' too.
        let own = match (&self.paths.cpu, &self.paths.cpuacct) {
            (Some(cpu), Some(acct)) => cpu.file_name() == acct.file_name(),
            (_, acct) => acct.is_some(),
        };
        if own {
            let file = self.show(Dir::Cpuacct, "cpuacct.usage");
            if let Some(text) = self.read_in(Dir::Cpuacct, "cpuacct.usage")? {
                let nsec = parse_u64(&text).with_context(|| {
                    format!(
                        "{file} holds {:?}, not a number of nanoseconds",
                        text.trim()
                    )
                })?;
                return Ok(nsec / 1000);
            }
            tried.push(format!("{file} is missing"));
        } else {
            tried.push("the unit has no cpuacct directory of its own (its processes may sit in a parent's, shared with other units)".to_string());
        }
        anyhow::bail!("no source of the unit's CPU time: {}", tried.join("; "))
    }

    /// CFS throttling: v2 `cpu.stat` when the cpu controller is enabled there, else the v1 cpu
    /// hierarchy's `cpu.stat` (nanoseconds). Absent on both: no throttling known, zeros.
    fn throttling(&mut self, v2_cpu_stat: Option<&str>) -> (u64, u64, u64) {
        if let Some(text) = v2_cpu_stat
            && let Some(periods) = keyed(text, "nr_periods")
        {
            return (
                periods,
                keyed(text, "nr_throttled").unwrap_or(0),
                keyed(text, "throttled_usec").unwrap_or(0),
            );
        }
        match self.optional(Dir::Cpu, "cpu.stat") {
            Some(text) => (
                keyed(&text, "nr_periods").unwrap_or(0),
                keyed(&text, "nr_throttled").unwrap_or(0),
                keyed(&text, "throttled_time").unwrap_or(0) / 1000,
            ),
            None => (0, 0, 0),
        }
    }

    /// The first of `sources` that exists, as a number; an error naming every file tried.
    fn essential_number(&mut self, sources: &[(Dir, &'static str)]) -> anyhow::Result<u64> {
        let mut tried = Vec::new();
        for &(d, file) in sources {
            if self.dir(d).is_none() {
                continue;
            }
            match self.read_in(d, file)? {
                Some(text) => {
                    return parse_u64(&text).with_context(|| {
                        format!(
                            "{} holds {:?}, not a number",
                            self.show(d, file),
                            text.trim()
                        )
                    });
                }
                None => tried.push(self.show(d, file)),
            }
        }
        if tried.is_empty() {
            let files: Vec<&str> = sources.iter().map(|(_, f)| *f).collect();
            anyhow::bail!("the unit has no cgroup directory that could hold any of {files:?}");
        }
        anyhow::bail!(
            "none of these files exists: {}; is the controller enabled for the unit?",
            tried.join(", ")
        )
    }
}

/// A cgroup file's whole text, read from offset 0. A read shorter than the room left is the
/// end: cgroup files are generated whole at each read from the start.
fn read_from_start(f: &File) -> io::Result<String> {
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    loop {
        let room = buf.len() - n;
        let got = f.read_at(&mut buf[n..], n as u64)?;
        n += got;
        if got < room {
            break;
        }
        buf.resize(buf.len() * 2, 0);
    }
    buf.truncate(n);
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The limits the unit's cgroup enforces right now, as the kernel sees them, every file opened
/// afresh (see [`CgroupFiles::limits`]).
pub fn read_cgroup_limits(paths: &CgroupPaths) -> Limits {
    CgroupFiles::once(paths.clone()).limits()
}

/// Tasks counted one thread id at a time: v2 `cgroup.threads`, else a v1 `tasks` file.
fn count_threads(paths: &CgroupPaths) -> anyhow::Result<u64> {
    let sources = [
        (paths.unified.as_deref(), "cgroup.threads"),
        (paths.pids.as_deref(), "tasks"),
        (paths.memory.as_deref(), "tasks"),
        (paths.cpu.as_deref(), "tasks"),
    ];
    let (dir, file) = sources
        .into_iter()
        .find_map(|(d, f)| d.map(|d| (d, f)))
        .context("no pids.current and no directory to count the unit's threads in")?;
    let ids = ids_in_tree(dir, file)
        .with_context(|| format!("counting the unit's threads in {}/{file}", dir.display()))?;
    Ok(ids.len() as u64)
}

fn show(dir: Option<&Path>, file: &str) -> String {
    match dir {
        Some(d) => d.join(file).display().to_string(),
        None => file.to_string(),
    }
}

// ---- Pure parsers. `Option<Option<u64>>`: outer `None` is garbage, inner `None` is "max".

/// A file holding one unsigned number (surrounding whitespace allowed).
pub fn parse_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in `key value` lines (`cpu.stat`, `memory.events`, `memory.oom_control`).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.trim().split_once(char::is_whitespace)?;
        if k == key {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// `max` or a number (`memory.max`, `pids.max`, v1 `pids.max`).
pub fn parse_limit(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "max" => Some(None),
        t => t.parse().ok().map(Some),
    }
}

/// v2 `cpu.max`: `"$QUOTA $PERIOD"` in microseconds, quota `max` when unlimited; as
/// CPUQuota percent of one core, rounded to the nearest integer.
pub fn parse_cpu_max(text: &str) -> Option<Option<u64>> {
    let mut it = text.split_whitespace();
    let (quota, period) = (it.next()?, it.next().unwrap_or("100000"));
    if it.next().is_some() {
        return None;
    }
    let period: u64 = period.parse().ok()?;
    match quota {
        "max" => Some(None),
        q => quota_percent(q.parse().ok()?, period).map(Some),
    }
}

/// v1 `cpu.cfs_quota_us` (`-1` is unlimited) and `cpu.cfs_period_us`, as CPUQuota percent.
pub fn parse_v1_cpu_quota(quota: &str, period: &str) -> Option<Option<u64>> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok()?;
    match u64::try_from(quota) {
        Ok(q) => quota_percent(q, period).map(Some),
        Err(_) if quota == -1 => Some(None),
        Err(_) => None,
    }
}

/// v1 `memory.limit_in_bytes`: values of 2^62 and more are the kernel's "no limit".
pub fn parse_v1_memory_limit(text: &str) -> Option<Option<u64>> {
    let bytes = parse_u64(text)?;
    Some((bytes < V1_UNLIMITED_BYTES).then_some(bytes))
}

fn quota_percent(quota_us: u64, period_us: u64) -> Option<u64> {
    if period_us == 0 {
        return None;
    }
    let (q, p) = (u128::from(quota_us), u128::from(period_us));
    u64::try_from((q * 100 + p / 2) / p).ok()
}

/// `cpu.pressure` / `memory.pressure`: the `some` line's avg10. `None` without a valid
/// `some` line (an avg10 that is a finite, non-negative number, and a whole total).
pub fn parse_psi(text: &str) -> Option<Psi> {
    let line = |kind: &str| -> Option<f64> {
        let rest = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(kind)?.strip_prefix(' '))?;
        let field = |name: &str| {
            rest.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        };
        let avg10: f64 = field("avg10")?
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
        let _total: u64 = field("total")?.parse().ok()?;
        Some(avg10)
    };
    Some(Psi {
        some_avg10: line("some")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_table() {
        let v1 =
            "nr_periods 47\nnr_throttled 47\nthrottled_time 6902962436\nnr_bursts 0\nburst_time 0";
        let v2 = "usage_usec 2406924\nuser_usec 2000000\nsystem_usec 406924\nnice_usec 0\n";
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        let cases: &[(&str, &str, Option<u64>)] = &[
            (v1, "nr_periods", Some(47)),
            (v1, "throttled_time", Some(6_902_962_436)),
            (v1, "throttled_usec", None),
            (v2, "usage_usec", Some(2_406_924)),
            (v2, "usage", None),
            (v2, "nr_periods", None),
            (oom, "oom_kill", Some(3)),
            ("oom_kill x\n", "oom_kill", None),
            ("", "oom_kill", None),
            ("oom_kill", "oom_kill", None),
            (
                "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n",
                "oom_kill",
                Some(1),
            ),
        ];
        for (text, key, want) in cases {
            assert_eq!(keyed(text, key), *want, "{key} in {text:?}");
        }
    }

    #[test]
    fn limit_table() {
        type Parser = fn(&str) -> Option<Option<u64>>;
        let cases: &[(Parser, &str, Option<Option<u64>>)] = &[
            (parse_limit, "max\n", Some(None)),
            (parse_limit, "4294967296\n", Some(Some(4_294_967_296))),
            (parse_limit, "-1", None),
            (parse_limit, "", None),
            (parse_cpu_max, "max 100000\n", Some(None)),
            (parse_cpu_max, "50000 100000\n", Some(Some(50))),
            (parse_cpu_max, "200000 100000", Some(Some(200))),
            (parse_cpu_max, "33333 100000", Some(Some(33))),
            (parse_cpu_max, "33500 100000", Some(Some(34))),
            (parse_cpu_max, "150000", Some(Some(150))),
            (parse_cpu_max, "50000 0", None),
            (parse_cpu_max, "lots 100000", None),
            (parse_cpu_max, "1 2 3", None),
            (parse_cpu_max, "", None),
            (parse_v1_memory_limit, "9223372036854771712\n", Some(None)),
            (parse_v1_memory_limit, "4611686018427387904", Some(None)),
            (
                parse_v1_memory_limit,
                "8589934592",
                Some(Some(8_589_934_592)),
            ),
            (parse_v1_memory_limit, "max", None),
        ];
        for (parse, text, want) in cases {
            assert_eq!(parse(text), *want, "{text:?}");
        }
    }

    #[test]
    fn v1_cpu_quota_table() {
        for (quota, period, want) in [
            ("-1\n", "100000\n", Some(None)),
            ("150000", "100000", Some(Some(150))),
            ("25000", "50000", Some(Some(50))),
            ("-5", "100000", None),
            ("x", "100000", None),
            ("1000", "0", None),
        ] {
            assert_eq!(
                parse_v1_cpu_quota(quota, period),
                want,
                "{quota} / {period}"
            );
        }
    }

    #[test]
    fn psi_table() {
        let psi = |some_avg10| Some(Psi { some_avg10 });
        let cases: &[(&str, Option<Psi>)] = &[
            (
                "some avg10=24.23 avg60=4.73 avg300=1.00 total=3477211\nfull avg10=3.50 avg60=1.00 avg300=0.20 total=100\n",
                psi(24.23),
            ),
            ("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", psi(0.0)),
            ("full avg10=1.00 avg60=0.00 avg300=0.00 total=5\n", None),
            ("some avg60=1.00 total=5\n", None),
            ("some avg10=NaN avg60=0 avg300=0 total=5\n", None),
            ("some avg10=-1 total=5\n", None),
            ("some avg10=1.0 total=x\n", None),
            ("something avg10=1.0 total=5\n", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_psi(text), *want, "{text:?}");
        }
    }
}
