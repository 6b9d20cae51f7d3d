//! Kernel notifications about a unit's cgroup: the files and descriptors that wake a poller
//! when the unit starts to starve, nears its memory limit or loses a process to the OOM
//! killer, so a check can run at once instead of at the next interval.
//!
//! [`arm`] sets up what the kernel offers, each source on its own and never failing the unit:
//!
//! - **PSI triggers** ([`Source::CpuPressure`], [`Source::MemoryPressure`]): a line such as
//!   `some 100000 1000000` written to the unified hierarchy's `cpu.pressure` or
//!   `memory.pressure`, held open; the descriptor is ready for `POLLPRI` once 10% of the
//!   window was stalled. Kernels refuse some windows (without `CAP_SYS_RESOURCE`, all but
//!   whole multiples of 2 s), so the windows of [`TRIGGER_WINDOWS`] are tried in turn,
//!   shortest first.
//! - **v1 memory threshold** ([`Source::MemoryThreshold`]): an eventfd registered on
//!   `memory.usage_in_bytes` through `cgroup.event_control`, readable once usage crosses the
//!   threshold (either way).
//! - **OOM kills** ([`Source::Oom`]): v1, an eventfd registered on `memory.oom_control`; v2,
//!   `memory.events`, which the kernel marks modified (`POLLPRI`) at every `oom_kill`, `max`
//!   and `high` event.
//!
//! A source the kernel refuses is reported in [`Armed::refused`] with the reason; the caller
//! polls as before and says so. So is a source whose descriptors the daemon's budget cannot
//! hold ([`crate::fds`]). Registering a trigger or an eventfd is the one kind of write
//! this crate makes to a cgroup: it sets no limit, and closing the descriptor removes it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use rustix::event::{EventfdFlags, eventfd};

use crate::fds::{Descriptors, Lease};
use crate::locate::CgroupPaths;

/// PSI trigger windows tried, shortest first, in microseconds: (stall, window). A 10% stall
/// over the window: enough to tell starving from a busy moment. The shortest window the
/// kernel takes decides how soon a starving unit is noticed: with `CAP_SYS_RESOURCE` the
/// kernel polls a trigger ten times per window and takes a 500 ms window; without it
/// (a user manager's daemon, some containers) it takes only whole multiples of 2 s and
/// checks them every 2 s, so the first event comes about 2 s after the stall begins.
pub const TRIGGER_WINDOWS: [(u64, u64); 3] = [
    (50_000, 500_000),
    (100_000, 1_000_000),
    (200_000, 2_000_000),
];

/// What woke the poller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    CpuPressure,
    MemoryPressure,
    MemoryThreshold,
    Oom,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::CpuPressure,
        Source::MemoryPressure,
        Source::MemoryThreshold,
        Source::Oom,
    ];

    /// The name `/status` and the history use.
    pub fn name(self) -> &'static str {
        match self {
            Source::CpuPressure => "cpu_pressure",
            Source::MemoryPressure => "memory_pressure",
            Source::MemoryThreshold => "memory_threshold",
            Source::Oom => "oom",
        }
    }
}

/// How a notifier's descriptor says an event came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `POLLPRI`: a PSI trigger, or a cgroup v2 file marked modified.
    Priority,
    /// Readable: an eventfd with a count.
    Readable,
}

/// One armed source: poll `fd` for `wait`, then call [`Notifier::drain`].
#[derive(Debug)]
pub struct Notifier {
    pub source: Source,
    pub wait: Wait,
    /// What it was armed with, for the log and `/status` (e.g. `some 200000 2000000`).
    pub detail: String,
    fd: OwnedFd,
    /// The watched file of a v1 registration: it must stay open as long as the eventfd.
    _watched: Option<File>,
    /// Its descriptors in the budget, given back when it is dropped.
    _lease: Option<Lease>,
}

impl Notifier {
    /// The descriptor to poll.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Takes the pending event, so the next one wakes the poller again. An error means the
    /// cgroup is gone (ENODEV): the notifier is dead and the unit must be armed again.
    pub fn drain(&self) -> io::Result<()> {
        let mut buf = [0u8; 512];
        match self.wait {
            Wait::Readable => match rustix::io::read(&self.fd, &mut buf[..8]) {
                Ok(_) => Ok(()),
                Err(e) if e == rustix::io::Errno::AGAIN => Ok(()),
                Err(e) => Err(e.into()),
            },
            // Reading the file acknowledges a kernfs "modified" mark; for a PSI trigger it
            // only tells that the cgroup still exists.
            Wait::Priority => rustix::io::pread(&self.fd, &mut buf[..], 0)
                .map(|_| ())
                .map_err(Into::into),
        }
    }
}

/// What [`arm`] set up, and what the kernel refused, with why.
#[derive(Debug, Default)]
pub struct Armed {
    pub notifiers: Vec<Notifier>,
    pub refused: Vec<(Source, String)>,
}

/// Arms every source the host offers for the unit at `paths`: PSI triggers in its unified
/// directory, and, on a v1 memory hierarchy, a usage threshold at `threshold` bytes (when
/// given) and the OOM notification; on a v2 one, `memory.events`. `windows` are the PSI
/// windows to try ([`TRIGGER_WINDOWS`] unless a test forces a refusal). Each notification's
/// descriptors are taken from `budget`; one it cannot take is refused (the unit is polled).
pub fn arm(
    paths: &CgroupPaths,
    threshold: Option<u64>,
    windows: &[(u64, u64)],
    budget: &Arc<Descriptors>,
) -> Armed {
    let mut armed = Armed::default();
    let mut keep = |source: Source, r: io::Result<Notifier>| match r {
        Ok(n) => armed.notifiers.push(n),
        Err(e) => armed.refused.push((source, e.to_string())),
    };
    match &paths.unified {
        Some(dir) => {
            keep(
                Source::CpuPressure,
                leased(budget, 1, || {
                    psi_trigger(Source::CpuPressure, &dir.join("cpu.pressure"), windows)
                }),
            );
            keep(
                Source::MemoryPressure,
                leased(budget, 1, || {
                    psi_trigger(
                        Source::MemoryPressure,
                        &dir.join("memory.pressure"),
                        windows,
                    )
                }),
            );
        }
        None => {
            for s in [Source::CpuPressure, Source::MemoryPressure] {
                keep(
                    s,
                    Err(io::Error::other("the unit has no cgroup v2 directory")),
                );
            }
        }
    }
    match (&paths.memory, &paths.unified) {
        // A v1 memory hierarchy: the v1 registrations.
        (Some(mem), _) => {
            match threshold {
                Some(bytes) => keep(
                    Source::MemoryThreshold,
                    leased(budget, 2, || {
                        v1_event(
                            Source::MemoryThreshold,
                            mem,
                            "memory.usage_in_bytes",
                            Some(bytes),
                        )
                    }),
                ),
                None => keep(
                    Source::MemoryThreshold,
                    Err(io::Error::other("the unit has no memory limit")),
                ),
            }
            keep(
                Source::Oom,
                leased(budget, 2, || {
                    v1_event(Source::Oom, mem, "memory.oom_control", None)
                }),
            );
        }
        // Pure v2: memory.events is marked modified at every oom_kill, max and high event.
        (None, Some(dir)) => {
            keep(
                Source::Oom,
                leased(budget, 1, || {
                    modified_file(Source::Oom, &dir.join("memory.events"))
                }),
            );
            keep(
                Source::MemoryThreshold,
                Err(io::Error::other(
                    "cgroup v2 has no usage threshold; memory pressure and memory.events stand in",
                )),
            );
        }
        (None, None) => {
            for s in [Source::MemoryThreshold, Source::Oom] {
                keep(s, Err(io::Error::other("the unit has no memory cgroup")));
            }
        }
    }
    armed
}

/// The notification `make` arms, holding `fds` descriptors of `budget`; refused without
/// trying when the budget has not that many left.
fn leased(
    budget: &Arc<Descriptors>,
    fds: usize,
    make: impl FnOnce() -> io::Result<Notifier>,
) -> io::Result<Notifier> {
    let lease = budget.lease(fds).ok_or_else(|| {
        io::Error::other(format!(
            "the daemon's descriptor budget is spent ({} of {} kept open; raise LimitNOFILE=)",
            budget.used(),
            budget.total()
        ))
    })?;
    let mut n = make()?;
    n._lease = Some(lease);
    Ok(n)
}

/// A PSI trigger on `file`, with the first of `windows` the kernel takes.
fn psi_trigger(source: Source, file: &Path, windows: &[(u64, u64)]) -> io::Result<Notifier> {
    let mut last = io::Error::other("no trigger window to try");
    let mut refused = Vec::new();
    for (stall, window) in windows {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(file)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open {} for a PSI trigger: {e}", file.display()),
                )
            })?;
        let line = format!("some {stall} {window}");
        // The trigger lives as long as this descriptor.
        match f.write_all(format!("{line}\0").as_bytes()) {
            Ok(()) => {
                let mut detail = format!("PSI trigger \"{line}\" on {}", file.display());
                if !refused.is_empty() {
                    detail.push_str(&format!(
                        " (the kernel refused {}: since Linux 6.4 a window that is not a whole \
                         multiple of 2 s needs CAP_SYS_RESOURCE, and a trigger set without it is \
                         checked every 2 s)",
                        refused.join(", ")
                    ));
                }
                return Ok(Notifier {
                    source,
                    wait: Wait::Priority,
                    detail,
                    fd: f.into(),
                    _watched: None,
                    _lease: None,
                });
            }
            Err(e) => {
                refused.push(format!("\"{line}\""));
                last = io::Error::new(
                    e.kind(),
                    format!(
                        "the kernel refused the PSI trigger \"{line}\" on {}: {e}",
                        file.display()
                    ),
                );
            }
        }
    }
    Err(last)
}

/// A cgroup v2 file the kernel marks modified on events (`POLLPRI`).
fn modified_file(source: Source, file: &Path) -> io::Result<Notifier> {
    let f = File::open(file)?;
    let mut buf = [0u8; 512];
    // Read once, so only a change from now on wakes the poller.
    f.read_at(&mut buf, 0)?;
    Ok(Notifier {
        source,
        wait: Wait::Priority,
        detail: format!("changes of {}", file.display()),
        fd: f.into(),
        _watched: None,
        _lease: None,
    })
}

/// A cgroup v1 notification: an eventfd registered on `file` of the memory directory `dir`
/// through `cgroup.event_control`, with `arg` (a usage threshold) when given.
fn v1_event(source: Source, dir: &Path, file: &str, arg: Option<u64>) -> io::Result<Notifier> {
    let watched = File::open(dir.join(file))?;
    let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
    let mut line = format!("{} {}", efd.as_fd().as_raw_fd(), watched.as_raw_fd());
    if let Some(v) = arg {
        line.push_str(&format!(" {v}"));
    }
    let control = dir.join("cgroup.event_control");
    OpenOptions::new()
        .write(true)
        .open(&control)
        .and_then(|mut c| c.write_all(line.as_bytes()))
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("registering on {}: {e}", control.display()),
            )
        })?;
    let detail = match arg {
        Some(v) => format!("eventfd on {} at {v} bytes", dir.join(file).display()),
        None => format!("eventfd on {}", dir.join(file).display()),
    };
    Ok(Notifier {
        source,
        wait: Wait::Readable,
        detail,
        fd: efd,
        _watched: Some(watched),
        _lease: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_without_cgroups_is_refused_every_source_with_a_reason() {
        let armed = arm(
            &CgroupPaths::default(),
            Some(1 << 30),
            &TRIGGER_WINDOWS,
            &Descriptors::unlimited(),
        );
        assert!(armed.notifiers.is_empty());
        let sources: Vec<_> = armed.refused.iter().map(|(s, _)| *s).collect();
        for s in Source::ALL {
            assert!(sources.contains(&s), "{s:?} not reported: {armed:?}");
        }
        assert!(armed.refused.iter().all(|(_, why)| !why.is_empty()));
    }

    #[test]
    fn a_missing_pressure_file_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let paths = CgroupPaths {
            unified: Some(dir.path().join("missing")),
            ..CgroupPaths::default()
        };
        let armed = arm(&paths, None, &TRIGGER_WINDOWS, &Descriptors::unlimited());
        let (_, why) = armed
            .refused
            .iter()
            .find(|(s, _)| *s == Source::CpuPressure)
            .expect("CPU pressure reported");
        assert!(why.contains("No such file"), "{why}");
    }
}
