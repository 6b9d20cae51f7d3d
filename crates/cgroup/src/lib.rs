//! Reads a systemd unit's cgroup and AutoCoder's workload signals, and turns them into the
//! core's [`Counters`], [`Limits`], [`Host`] and [`Signals`].
//!
//! # Layout
//!
//! - [`mounts`]: [`Mounts`], where each cgroup hierarchy is mounted (pure v2, hybrid, v1
//!   with combined controllers), parsed from `/proc/self/mountinfo`.
//! - [`locate`]: [`CgroupPaths`], the unit's own directory in each hierarchy, from systemd's
//!   `ControlGroup` and `/proc/PID/cgroup`; the unit's process ids.
//! - [`read`]: [`read_counters`] (CPU time, throttling, memory, OOM kills, tasks, processes,
//!   pressure), [`CgroupFiles`] (the same, its files kept open between readings) and
//!   [`read_cgroup_limits`], with the pure parsers of the cgroup file formats.
//! - [`host`]: [`read_host`], the machine's cores, memory and task limit from `/proc`.
//! - [`signals`]: [`signals_of`], AutoCoder's agents, pending features and API quota.
//! - [`events`]: [`events::arm`], the kernel's notifications (PSI triggers, v1 memory
//!   thresholds and OOM eventfds, v2 `memory.events`) as descriptors to poll.
//! - [`fds`]: [`Descriptors`], the budget of descriptors kept open by both, and raising the
//!   process's open-files limit.
//!
//! Architecture invariant: this crate only reads. It never writes a cgroup setting, never
//! changes a limit (that is the systemd adapter's job) and never decides anything (that is
//! the core's). Its one kind of write registers a notification (a PSI trigger, a v1
//! eventfd), which closing the descriptor removes. It uses synchronous std I/O and no async runtime; every filesystem root is a
//! parameter, so tests run against fixture trees in temp dirs.

pub mod events;
pub mod fds;
pub mod host;
pub mod locate;
pub mod mounts;
pub mod read;
pub mod signals;

pub use autoscaler_core::{Counters, Host, Limits, Signals};
pub use fds::Descriptors;
pub use host::read_host;
pub use locate::CgroupPaths;
pub use mounts::{Mount, Mounts};
pub use read::{CgroupFiles, Depth, QUIET_FULL_MS, UnitReading, read_cgroup_limits, read_counters};
pub use signals::{
    AgentCache, AgentKind, AgentProc, CMDLINE_KEPT_MS, SignalSources, agent_processes, signals_of,
};
