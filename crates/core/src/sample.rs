//! Cgroup readings and the usage derived from them.
//!
//! [`Counters`] are cumulative values read at one moment (CPU time, throttled periods, OOM
//! kills) plus gauges (memory, tasks). CPU use is a rate, so it needs two readings:
//! [`Usage::between`] turns a pair into cores used over the interval, and says "no data"
//! instead of a made-up number when there is one reading only or a counter went backwards
//! (the unit restarted and its cgroup was recreated).

use std::fmt;

use crate::time::Millis;

/// Pressure stall information of one resource ("some" line), from `*.pressure`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Psi {
    /// Percent of the last 10 s in which some task stalled.
    pub some_avg10: f64,
}

/// One reading of a unit's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counters {
    pub at: Millis,
    /// Cumulative CPU time, microseconds.
    pub cpu_usage_usec: u64,
    /// CFS enforcement periods so far, and how many of them were throttled.
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_usec: u64,
    /// OOM kills in the cgroup so far.
    pub oom_kills: u64,
    pub memory_bytes: u64,
    /// Tasks (threads): what `TasksMax` limits.
    pub tasks: u64,
    /// Processes (`cgroup.procs`): the spec's `process_count`.
    pub processes: u64,
    pub cpu_pressure: Option<Psi>,
    pub memory_pressure: Option<Psi>,
}

/// What the workload inside the unit is doing (AutoCoder's agents and queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signals {
    pub agents: u32,
    pub testing_agents: u32,
    /// Features not passing yet, over the known projects; `None` when no project is known or
    /// one could not be read: "unknown" must not read as "all done".
    pub features_pending: Option<u32>,
    /// `None` when no quota source is configured: never a made-up number.
    pub api_quota_remaining: Option<u64>,
}

impl Signals {
    /// The spec's idle condition: no agents running, or every feature complete.
    pub fn idle(&self) -> bool {
        self.agents + self.testing_agents == 0 || self.features_pending == Some(0)
    }
}

/// Usage over one check interval, ready for the decision.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    pub at: Millis,
    /// Cores used on average since the previous reading; `None` when unknown.
    pub cpu_cores: Option<f64>,
    pub memory_bytes: u64,
    pub tasks: u64,
    pub processes: u64,
    /// Share (0..=1) of CFS periods that were throttled in the interval.
    pub throttled_ratio: Option<f64>,
    /// cpu.pressure and memory.pressure "some" avg10, percent.
    pub cpu_pressure: Option<f64>,
    pub memory_pressure: Option<f64>,
    /// OOM kills since the previous reading.
    pub new_oom_kills: u64,
    pub signals: Signals,
}

/// A sample that cannot be used: a value that is negative, not finite, or out of order.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidSample {
    pub field: &'static str,
    pub value: f64,
}

impl fmt::Display for InvalidSample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {} is not a finite, non-negative number",
            self.field, self.value
        )
    }
}

impl std::error::Error for InvalidSample {}

impl Usage {
    /// Usage from a reading and, when there is one, the reading before it.
    pub fn between(prev: Option<&Counters>, cur: &Counters, signals: Signals) -> Usage {
        let delta = |f: fn(&Counters) -> u64| prev.and_then(|p| f(cur).checked_sub(f(p)));
        let wall_secs = prev.map(|p| cur.at.secs_since(p.at)).filter(|s| *s > 0.0);
        let cpu_cores = match (delta(|c| c.cpu_usage_usec), wall_secs) {
            (Some(usec), Some(secs)) => Some(usec as f64 / 1e6 / secs),
            _ => None,
        };
        let throttled_ratio = match (delta(|c| c.nr_periods), delta(|c| c.nr_throttled)) {
            (Some(p), Some(t)) if p > 0 => Some((t as f64 / p as f64).min(1.0)),
            (Some(0), Some(_)) => Some(0.0),
            _ => None,
        };
        Usage {
            at: cur.at,
            cpu_cores,
            memory_bytes: cur.memory_bytes,
            tasks: cur.tasks,
            processes: cur.processes,
            throttled_ratio,
            cpu_pressure: cur.cpu_pressure.map(|p| p.some_avg10),
            memory_pressure: cur.memory_pressure.map(|p| p.some_avg10),
            // A counter that went backwards means a new cgroup: its kills are all new.
            new_oom_kills: match prev {
                Some(p) => cur
                    .oom_kills
                    .checked_sub(p.oom_kills)
                    .unwrap_or(cur.oom_kills),
                None => 0,
            },
            signals,
        }
    }

    /// Usage given directly as demand (a replayed trace): cores and bytes.
    pub fn from_demand(
        at: Millis,
        cpu_cores: f64,
        memory_bytes: f64,
    ) -> Result<Usage, InvalidSample> {
        for (field, value) in [("cpu_cores", cpu_cores), ("memory_bytes", memory_bytes)] {
            if !value.is_finite() || value < 0.0 {
                return Err(InvalidSample { field, value });
            }
        }
        Ok(Usage {
            at,
            cpu_cores: Some(cpu_cores),
            memory_bytes: memory_bytes.round() as u64,
            ..Usage::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(at_ms: i64, cpu_usec: u64, periods: u64, throttled: u64, ooms: u64) -> Counters {
        Counters {
            at: Millis(at_ms),
            cpu_usage_usec: cpu_usec,
            nr_periods: periods,
            nr_throttled: throttled,
            oom_kills: ooms,
            ..Counters::default()
        }
    }

    fn check(
        prev: Option<Counters>,
        cur: Counters,
        cores: Option<f64>,
        throttled: Option<f64>,
        ooms: u64,
    ) {
        let u = Usage::between(prev.as_ref(), &cur, Signals::default());
        assert_eq!(
            (u.cpu_cores, u.throttled_ratio, u.new_oom_kills),
            (cores, throttled, ooms),
            "{prev:?} -> {cur:?}"
        );
    }

    #[test]
    fn usage_between_table() {
        // One reading: no rate yet.
        check(None, counters(1000, 5_000_000, 10, 5, 0), None, None, 0);
        // 1.5 s of CPU in 1 s of wall time: 1.5 cores; 3 of 10 periods throttled.
        check(
            Some(counters(0, 0, 0, 0, 0)),
            counters(1000, 1_500_000, 10, 3, 0),
            Some(1.5),
            Some(0.3),
            0,
        );
        // Counters went backwards (unit restarted): no CPU rate; the new cgroup's kills count.
        check(
            Some(counters(0, 9_000_000, 50, 5, 4)),
            counters(1000, 100, 1, 0, 1),
            None,
            None,
            1,
        );
        // Same timestamp twice: no rate, no division by zero.
        check(
            Some(counters(1000, 0, 0, 0, 0)),
            counters(1000, 1000, 0, 0, 0),
            None,
            Some(0.0),
            0,
        );
        // Two new OOM kills.
        check(
            Some(counters(0, 0, 0, 0, 1)),
            counters(2000, 1_000_000, 0, 0, 3),
            Some(0.5),
            Some(0.0),
            2,
        );
    }

    #[test]
    fn demand_rejects_bad_numbers() {
        for (cpu, mem) in [
            (f64::NAN, 1.0),
            (-0.1, 1.0),
            (1.0, f64::INFINITY),
            (1.0, -5.0),
        ] {
            assert!(
                Usage::from_demand(Millis(0), cpu, mem).is_err(),
                "{cpu} {mem}"
            );
        }
        assert!(Usage::from_demand(Millis(0), 0.0, 0.0).is_ok());
    }

    #[test]
    fn idle_is_no_agents_or_no_work() {
        let s = |agents, testing, pending| Signals {
            agents,
            testing_agents: testing,
            features_pending: pending,
            api_quota_remaining: None,
        };
        assert!(s(0, 0, Some(5)).idle());
        assert!(s(0, 0, None).idle());
        assert!(s(3, 0, Some(0)).idle());
        assert!(!s(3, 0, Some(5)).idle());
        assert!(!s(0, 1, Some(5)).idle());
        // Unknown work with agents running is not idle.
        assert!(!s(3, 0, None).idle());
    }
}
