//! Scores: how well the limits in force served the demand of a trace.
//!
//! The trace is demand; a limit caps what the unit gets, so the unmet part (demand above the
//! CPU limit) is counted as insufficient CPU and memory demand above `MemoryMax` as an OOM
//! event. Times are weighted by the real time to the next sample (the trace's step for the
//! last one), so gaps count for what they are. Where VASim (microsoft/vasim,
//! `simulator/analysis/plot_utils.py`: `process_data`, `calculate_metrics`) defines the same
//! figure we use its definition: slack = `max(0, limit - usage)`, insufficient CPU =
//! `max(0, usage - limit)`, and its per-sample sums `sum_slack`, `sum_insufficient_cpu` and
//! `num_scalings` are reported as they are. This module does no I/O and knows no policy.

use autoscaler_core::{GIB, Limits};

use crate::policy::{bytes, cores};

/// VASim's own figures, per sample (not per hour), for comparing with a VASim run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct VasimFigures {
    /// Σ max(0, limit − demand) over samples, cores.
    pub sum_slack: f64,
    /// Σ max(0, demand − limit) over samples, cores.
    pub sum_insufficient_cpu: f64,
    /// VASim counts rows whose limit differs from the next row's, and its last row always
    /// counts (it is compared with "nothing"): CPU changes + 1.
    pub num_scalings: u64,
}

/// The scores of one policy on one trace, or summed over several.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Score {
    pub samples: u64,
    pub hours: f64,
    /// Time-weighted mean of `max(0, limit − demand) / limit`, CPU (0..=1).
    pub cpu_slack: f64,
    /// ∫ max(0, limit − demand) dt, core-hours.
    pub cpu_slack_core_hours: f64,
    /// Share of time (0..=1) in which demand exceeded the CPU limit.
    pub insufficient_cpu_share: f64,
    /// ∫ max(0, demand − limit) dt: the unmet CPU, core-hours.
    pub insufficient_cpu_core_hours: f64,
    /// Time-weighted mean CPU limit, cores.
    pub mean_cpu_limit: f64,
    /// Hours of trace that had memory; the memory figures below cover only those.
    pub memory_hours: f64,
    /// Time-weighted mean of `max(0, limit − demand) / limit`, memory (0..=1).
    pub memory_slack: f64,
    /// ∫ max(0, MemoryMax − demand) dt, GiB-hours.
    pub memory_slack_gib_hours: f64,
    /// Samples whose memory demand exceeded `MemoryMax`.
    pub oom_events: u64,
    /// Time-weighted mean `MemoryMax`, GiB.
    pub mean_memory_limit: f64,
    /// Ticks at which any limit changed, and per resource.
    pub resizes: u64,
    pub cpu_resizes: u64,
    pub memory_resizes: u64,
    pub vasim: VasimFigures,
}

impl Score {
    /// Whether memory was scored at all.
    pub fn has_memory(&self) -> bool {
        self.memory_hours > 0.0
    }

    /// Scores over several runs: sums add, means are weighted by the hours they cover.
    pub fn combine<'a>(scores: impl IntoIterator<Item = &'a Score>) -> Score {
        let mut c = Score::default();
        for s in scores {
            let (h0, h1) = (c.hours, c.hours + s.hours);
            let (m0, m1) = (c.memory_hours, c.memory_hours + s.memory_hours);
            let mix = |a: f64, wa: f64, b: f64, wb: f64, w: f64| {
                if w > 0.0 { (a * wa + b * wb) / w } else { 0.0 }
            };
            c.cpu_slack = mix(c.cpu_slack, h0, s.cpu_slack, s.hours, h1);
            c.insufficient_cpu_share = mix(
                c.insufficient_cpu_share,
                h0,
                s.insufficient_cpu_share,
                s.hours,
                h1,
            );
            c.mean_cpu_limit = mix(c.mean_cpu_limit, h0, s.mean_cpu_limit, s.hours, h1);
            c.memory_slack = mix(c.memory_slack, m0, s.memory_slack, s.memory_hours, m1);
            c.mean_memory_limit = mix(
                c.mean_memory_limit,
                m0,
                s.mean_memory_limit,
                s.memory_hours,
                m1,
            );
            c.hours = h1;
            c.memory_hours = m1;
            c.samples += s.samples;
            c.cpu_slack_core_hours += s.cpu_slack_core_hours;
            c.insufficient_cpu_core_hours += s.insufficient_cpu_core_hours;
            c.memory_slack_gib_hours += s.memory_slack_gib_hours;
            c.oom_events += s.oom_events;
            c.resizes += s.resizes;
            c.cpu_resizes += s.cpu_resizes;
            c.memory_resizes += s.memory_resizes;
            c.vasim.sum_slack += s.vasim.sum_slack;
            c.vasim.sum_insufficient_cpu += s.vasim.sum_insufficient_cpu;
            c.vasim.num_scalings += s.vasim.num_scalings;
        }
        c
    }
}

/// Accumulates a [`Score`] tick by tick; [`Tally::finish`] turns sums into means.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    s: Score,
    secs: f64,
    memory_secs: f64,
    previous: Option<Limits>,
}

impl Tally {
    /// One tick: `dt_secs` of `cpu` cores and `memory` bytes of demand under `limits`.
    #[inline]
    pub fn add(&mut self, dt_secs: f64, cpu: f64, memory: Option<f64>, limits: &Limits) {
        let s = &mut self.s;
        s.samples += 1;
        self.secs += dt_secs;
        let l = cores(limits);
        let slack = (l - cpu).max(0.0);
        let short = (cpu - l).max(0.0);
        if l.is_finite() {
            s.cpu_slack += if l > 0.0 { slack / l * dt_secs } else { 0.0 };
            s.cpu_slack_core_hours += slack * dt_secs;
            s.mean_cpu_limit += l * dt_secs;
            s.vasim.sum_slack += slack;
        }
        if short > 0.0 {
            s.insufficient_cpu_share += dt_secs;
            s.insufficient_cpu_core_hours += short * dt_secs;
            s.vasim.sum_insufficient_cpu += short;
        }
        if let Some(m) = memory {
            let lm = bytes(limits);
            self.memory_secs += dt_secs;
            if lm.is_finite() {
                let slack = (lm - m).max(0.0);
                s.memory_slack += if lm > 0.0 { slack / lm * dt_secs } else { 0.0 };
                s.memory_slack_gib_hours += slack / GIB as f64 * dt_secs;
                s.mean_memory_limit += lm / GIB as f64 * dt_secs;
            }
            if m > lm {
                s.oom_events += 1;
            }
        }
        if let Some(p) = self.previous.filter(|p| p != limits) {
            s.resizes += 1;
            s.cpu_resizes += u64::from(p.cpu_quota != limits.cpu_quota);
            s.memory_resizes += u64::from(p.memory_max != limits.memory_max);
        }
        self.previous = Some(*limits);
    }

    pub fn finish(self) -> Score {
        let mut s = self.s;
        let per = |v: f64, secs: f64| if secs > 0.0 { v / secs } else { 0.0 };
        s.cpu_slack = per(s.cpu_slack, self.secs);
        s.insufficient_cpu_share = per(s.insufficient_cpu_share, self.secs);
        s.mean_cpu_limit = per(s.mean_cpu_limit, self.secs);
        s.memory_slack = per(s.memory_slack, self.memory_secs);
        s.mean_memory_limit = per(s.mean_memory_limit, self.memory_secs);
        s.cpu_slack_core_hours /= 3600.0;
        s.insufficient_cpu_core_hours /= 3600.0;
        s.memory_slack_gib_hours /= 3600.0;
        s.hours = self.secs / 3600.0;
        s.memory_hours = self.memory_secs / 3600.0;
        s.vasim.num_scalings = s.cpu_resizes + u64::from(s.samples > 0);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Scaler, Static};
    use crate::replay::replay;
    use crate::trace::{Point, Trace};

    fn limits(cpu_quota: u32, memory_gib: u32) -> Limits {
        Limits {
            cpu_quota: Some(cpu_quota),
            memory_max: Some(u64::from(memory_gib) * GIB),
            tasks_max: None,
        }
    }

    /// A trace of (cores, GiB) demand, one sample a minute.
    fn trace(demand: &[(f64, Option<f64>)]) -> Trace {
        let points = demand
            .iter()
            .enumerate()
            .map(|(i, &(c, m))| Point {
                t_secs: i as f64 * 60.0,
                cpu_cores: c,
                memory_bytes: m.map(|g| g * GIB as f64),
            })
            .collect();
        Trace {
            name: "hand".to_string(),
            step_secs: 60.0,
            points,
        }
    }

    /// Replays a static limit (or a schedule of limits, one per tick) and compares the named
    /// figures with what they must be.
    fn check(demand: &[(f64, Option<f64>)], schedule: &[Limits], expect: &[(&str, f64)]) {
        struct Schedule(Vec<Limits>, usize);
        impl Scaler for Schedule {
            fn observe(&mut self, _: &crate::policy::Observation) -> Limits {
                self.1 += 1;
                self.0[self.1.min(self.0.len() - 1)]
            }
        }
        let t = trace(demand);
        let s = if schedule.len() == 1 {
            replay(&t, &mut Static(schedule[0]), schedule[0]).0
        } else {
            replay(&t, &mut Schedule(schedule.to_vec(), 0), schedule[0]).0
        };
        for (name, want) in expect {
            let got = match *name {
                "cpu_slack" => s.cpu_slack,
                "cpu_slack_core_hours" => s.cpu_slack_core_hours,
                "insufficient_cpu_share" => s.insufficient_cpu_share,
                "insufficient_cpu_core_hours" => s.insufficient_cpu_core_hours,
                "memory_slack" => s.memory_slack,
                "memory_slack_gib_hours" => s.memory_slack_gib_hours,
                "oom_events" => s.oom_events as f64,
                "resizes" => s.resizes as f64,
                "mean_cpu_limit" => s.mean_cpu_limit,
                "mean_memory_limit" => s.mean_memory_limit,
                "hours" => s.hours,
                "vasim_sum_slack" => s.vasim.sum_slack,
                "vasim_num_scalings" => s.vasim.num_scalings as f64,
                other => panic!("no figure {other}"),
            };
            assert!(
                (got - want).abs() < 1e-9,
                "{name}: got {got}, want {want}; {s:?}"
            );
        }
    }

    #[test]
    fn scores_table() {
        // Constant 1 core under 2 cores for an hour: half the CPU idle, 1 core-hour wasted.
        let flat: Vec<_> = (0..60).map(|_| (1.0, Some(4.0))).collect();
        check(
            &flat,
            &[limits(200, 8)],
            &[
                ("hours", 1.0),
                ("cpu_slack", 0.5),
                ("cpu_slack_core_hours", 1.0),
                ("insufficient_cpu_share", 0.0),
                ("memory_slack", 0.5),
                ("memory_slack_gib_hours", 4.0),
                ("oom_events", 0.0),
                ("resizes", 0.0),
                ("mean_cpu_limit", 2.0),
                ("mean_memory_limit", 8.0),
                ("vasim_sum_slack", 60.0),
                ("vasim_num_scalings", 1.0),
            ],
        );
        // A step to 3 cores over a 2-core limit for the last 30 of 60 minutes: half the time
        // short, by 1 core, so 0.5 core-hours unmet; slack only in the first half.
        let step: Vec<_> = (0..60)
            .map(|i| (if i < 30 { 1.0 } else { 3.0 }, None))
            .collect();
        check(
            &step,
            &[limits(200, 8)],
            &[
                ("insufficient_cpu_share", 0.5),
                ("insufficient_cpu_core_hours", 0.5),
                ("cpu_slack", 0.25),
                ("cpu_slack_core_hours", 0.5),
                ("oom_events", 0.0),
            ],
        );
        // A memory spike over the limit for one sample: one OOM event.
        let spike = [(1.0, Some(4.0)), (1.0, Some(9.0)), (1.0, Some(4.0))];
        check(&spike, &[limits(200, 8)], &[("oom_events", 1.0)]);
        // Limits 2 -> 4 -> 4 -> 2 cores: two resizes; VASim counts three.
        let four = [(1.0, None); 4];
        check(
            &four,
            &[
                limits(200, 8),
                limits(400, 8),
                limits(400, 8),
                limits(200, 8),
            ],
            &[
                ("resizes", 2.0),
                ("vasim_num_scalings", 3.0),
                ("mean_cpu_limit", 3.0),
                ("cpu_slack", (0.5 + 0.75 + 0.75 + 0.5) / 4.0),
            ],
        );
    }

    #[test]
    fn combine_weights_by_hours() {
        let a = Score {
            hours: 1.0,
            cpu_slack: 0.2,
            samples: 10,
            resizes: 1,
            ..Score::default()
        };
        let b = Score {
            hours: 3.0,
            cpu_slack: 0.6,
            samples: 30,
            resizes: 2,
            ..Score::default()
        };
        let c = Score::combine([&a, &b]);
        assert!((c.cpu_slack - 0.5).abs() < 1e-12, "{c:?}");
        assert_eq!((c.samples, c.resizes, c.hours), (40, 3, 4.0));
        assert!(!c.has_memory());
    }
}
