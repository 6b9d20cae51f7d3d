//! Limits, the host they live on, and the bounds every limit must respect.
//!
//! A [`Limits`] is what a unit runs under, as systemd reports it; `None` is systemd's
//! `infinity`. [`Bounds`] combine the configured hard minimum and maximum with the host's
//! capacity minus the system reserve; every limit the autoscaler sets, automatic or manual,
//! passes [`Bounds::check`] first.

use std::fmt;

use crate::config::Config;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// One of the three limited resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Cpu,
    Memory,
    Tasks,
}

impl Resource {
    pub const ALL: [Resource; 3] = [Resource::Cpu, Resource::Memory, Resource::Tasks];

    /// The spec's JSON field name for this resource's limit.
    pub fn field(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu_quota",
            Resource::Memory => "memory_max",
            Resource::Tasks => "tasks_max",
        }
    }
}

/// The limits a unit runs under. `None` means unlimited (systemd's `infinity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// `CPUQuota=` in percent of one core: 200 is two cores.
    pub cpu_quota: Option<u32>,
    /// `MemoryMax=` in bytes.
    pub memory_max: Option<u64>,
    /// `TasksMax=`: tasks (threads), not processes.
    pub tasks_max: Option<u64>,
}

impl Limits {
    /// Limits with all three values set; memory in whole GiB, as the spec writes it.
    pub const fn new(cpu_quota: u32, memory_gib: u32, tasks_max: u64) -> Limits {
        Limits {
            cpu_quota: Some(cpu_quota),
            memory_max: Some(memory_gib as u64 * GIB),
            tasks_max: Some(tasks_max),
        }
    }

    /// `MemoryMax` in GiB, the unit of the spec's JSON and tables.
    pub fn memory_gib(&self) -> Option<f64> {
        self.memory_max.map(|b| b as f64 / GIB as f64)
    }

    /// The value of one resource's limit as a plain number (percent, bytes or tasks).
    pub fn get(&self, r: Resource) -> Option<u64> {
        match r {
            Resource::Cpu => self.cpu_quota.map(u64::from),
            Resource::Memory => self.memory_max,
            Resource::Tasks => self.tasks_max,
        }
    }

    /// A copy with one resource's limit replaced (CPU saturates at `u32::MAX`).
    pub fn with(mut self, r: Resource, value: u64) -> Limits {
        match r {
            Resource::Cpu => self.cpu_quota = Some(u32::try_from(value).unwrap_or(u32::MAX)),
            Resource::Memory => self.memory_max = Some(value),
            Resource::Tasks => self.tasks_max = Some(value),
        }
        self
    }

    /// The limits this one changes relative to `old`, the others unset: what a change must
    /// keep in bounds, and all an actuator should write (a CPU-only request must not put
    /// the unit's current `TasksMax` into its unit file).
    pub fn changes_from(&self, old: &Limits) -> Limits {
        let pick = |o: Option<u64>, n: Option<u64>| if o == n { None } else { n };
        Limits {
            cpu_quota: if old.cpu_quota == self.cpu_quota {
                None
            } else {
                self.cpu_quota
            },
            memory_max: pick(old.memory_max, self.memory_max),
            tasks_max: pick(old.tasks_max, self.tasks_max),
        }
    }

    /// Fields of `other` that are set override this one's (a partial manual request).
    pub fn overlay(self, other: Limits) -> Limits {
        Limits {
            cpu_quota: other.cpu_quota.or(self.cpu_quota),
            memory_max: other.memory_max.or(self.memory_max),
            tasks_max: other.tasks_max.or(self.tasks_max),
        }
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn opt<T: fmt::Display>(v: Option<T>) -> String {
            v.map_or_else(|| "unlimited".to_string(), |v| v.to_string())
        }
        write!(
            f,
            "CPU={}%, Memory={}GB, Tasks={}",
            opt(self.cpu_quota),
            opt(self.memory_gib().map(fmt_gib)),
            opt(self.tasks_max)
        )
    }
}

/// GiB with at most one decimal, and none when whole ("32", "28.5").
pub fn fmt_gib(gib: f64) -> String {
    if (gib - gib.round()).abs() < 0.05 {
        format!("{}", gib.round() as i64)
    } else {
        format!("{gib:.1}")
    }
}

/// What the machine has. The engine reads it once; the simulator chooses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    pub cores: u32,
    pub memory_bytes: u64,
    /// The most tasks the kernel allows (`/proc/sys/kernel/pid_max`).
    pub max_tasks: u64,
}

/// The inclusive range each limit must lie in: hard bounds intersected with capacity.
///
/// The fields are private so every `Bounds` has `min <= max` in each range: only
/// [`Bounds::new`] makes one, and it refuses a config whose minimum the host cannot give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    cpu: (u32, u32),
    memory: (u64, u64),
    tasks: (u64, u64),
}

/// A limit, or a set of bounds, that cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub enum BoundsError {
    /// A requested limit lies outside the allowed range.
    OutOfRange {
        field: &'static str,
        value: String,
        min: String,
        max: String,
        unit: &'static str,
    },
    /// The host minus its reserve cannot hold even the hard minimum.
    Infeasible {
        /// The config fields that must give: the hard minimum, or the system reserve.
        min_field: &'static str,
        reserve_field: &'static str,
        min: String,
        capacity: String,
        unit: &'static str,
    },
}

impl BoundsError {
    pub fn field(&self) -> &'static str {
        match self {
            BoundsError::OutOfRange { field, .. } => field,
            BoundsError::Infeasible { reserve_field, .. } => reserve_field,
        }
    }
}

impl fmt::Display for BoundsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoundsError::OutOfRange {
                field,
                value,
                min,
                max,
                unit,
            } => write!(
                f,
                "{field} {value}{unit} is outside the allowed range {min}..={max}{unit} \
                 (hard limits intersected with host capacity minus the system reserve)"
            ),
            BoundsError::Infeasible {
                min_field,
                reserve_field,
                min,
                capacity,
                unit,
            } => write!(
                f,
                "{min_field} ({min}{unit}) exceeds what the host can give after {reserve_field} \
                 ({capacity}{unit}); lower {min_field} or {reserve_field}"
            ),
        }
    }
}

impl std::error::Error for BoundsError {}

impl Bounds {
    /// The bounds a config allows on a host, or why none are possible.
    pub fn new(cfg: &Config, host: &Host) -> Result<Bounds, BoundsError> {
        let cpu_cap = u64::from(host.cores.saturating_sub(cfg.system_cpu_cores)) * 100;
        let cpu_max = u64::from(cfg.max_cpu_quota).min(cpu_cap);
        if cpu_max < u64::from(cfg.min_cpu_quota) {
            return Err(BoundsError::Infeasible {
                min_field: "min_cpu_quota",
                reserve_field: "system_cpu_cores",
                min: cfg.min_cpu_quota.to_string(),
                capacity: cpu_cap.to_string(),
                unit: "%",
            });
        }
        let mem_cap_gib = (host.memory_bytes / GIB).saturating_sub(u64::from(cfg.system_memory_gb));
        let mem_max_gib = u64::from(cfg.max_memory_max).min(mem_cap_gib);
        if mem_max_gib < u64::from(cfg.min_memory_max) {
            return Err(BoundsError::Infeasible {
                min_field: "min_memory_max",
                reserve_field: "system_memory_gb",
                min: cfg.min_memory_max.to_string(),
                capacity: mem_cap_gib.to_string(),
                unit: "GB",
            });
        }
        let tasks_cap = host
            .max_tasks
            .saturating_sub(u64::from(cfg.system_processes));
        let tasks_max = u64::from(cfg.max_tasks_max).min(tasks_cap);
        if tasks_max < u64::from(cfg.min_tasks_max) {
            return Err(BoundsError::Infeasible {
                min_field: "min_tasks_max",
                reserve_field: "system_processes",
                min: cfg.min_tasks_max.to_string(),
                capacity: tasks_cap.to_string(),
                unit: "",
            });
        }
        Ok(Bounds {
            cpu: (cfg.min_cpu_quota, cpu_max as u32),
            memory: (u64::from(cfg.min_memory_max) * GIB, mem_max_gib * GIB),
            tasks: (u64::from(cfg.min_tasks_max), tasks_max),
        })
    }

    /// Bounds that allow only zero, for evaluating usage where no bounds can be met: the
    /// controller never runs with them.
    pub const ZERO: Bounds = Bounds {
        cpu: (0, 0),
        memory: (0, 0),
        tasks: (0, 0),
    };

    /// `CPUQuota=` range, percent of one core.
    pub fn cpu(&self) -> (u32, u32) {
        self.cpu
    }

    /// `MemoryMax=` range, bytes.
    pub fn memory(&self) -> (u64, u64) {
        self.memory
    }

    /// `TasksMax=` range.
    pub fn tasks(&self) -> (u64, u64) {
        self.tasks
    }

    /// The range of one resource as plain numbers (percent, bytes, tasks).
    pub fn range(&self, r: Resource) -> (u64, u64) {
        match r {
            Resource::Cpu => (u64::from(self.cpu.0), u64::from(self.cpu.1)),
            Resource::Memory => self.memory,
            Resource::Tasks => self.tasks,
        }
    }

    /// Clamps one value into its resource's range. `max` then `min` rather than
    /// `Ord::clamp`, which panics when `lo > hi`: the constructor rules that out, and this
    /// must not panic even if that ever changed.
    pub fn clamp(&self, r: Resource, v: u64) -> u64 {
        let (lo, hi) = self.range(r);
        v.max(lo).min(hi)
    }

    /// Every limit that is set must lie in range; unset ones are not checked.
    pub fn check(&self, l: &Limits) -> Result<(), BoundsError> {
        for r in Resource::ALL {
            let Some(v) = l.get(r) else { continue };
            let (lo, hi) = self.range(r);
            if v < lo || v > hi {
                let (show, unit): (fn(u64) -> String, &'static str) = match r {
                    Resource::Memory => (|b| fmt_gib(b as f64 / GIB as f64), "GB"),
                    Resource::Cpu => (|v| v.to_string(), "%"),
                    Resource::Tasks => (|v| v.to_string(), ""),
                };
                return Err(BoundsError::OutOfRange {
                    field: r.field(),
                    value: show(v),
                    min: show(lo),
                    max: show(hi),
                    unit,
                });
            }
        }
        Ok(())
    }
}
