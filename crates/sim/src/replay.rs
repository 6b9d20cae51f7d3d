//! The replay loop: a trace through one scaler, tick by tick, scored as it goes.
//!
//! At each tick the limits in force meet the demand: the score counts what was served and
//! what was not, the scaler sees what a cgroup would have shown ([`Observation`]) and returns
//! the limits for the next tick. Decisions are causal: a limit chosen after tick `i` is in
//! force from tick `i + 1`. This module does no I/O and allocates only the timeline.

use autoscaler_core::{Limits, Millis};

use crate::policy::{Observation, Scaler, bytes, cores};
use crate::score::{Score, Tally};
use crate::trace::Trace;

/// Replays `trace` through `scaler` from `start`; returns the score and the limits in force
/// at each tick.
pub fn replay(trace: &Trace, scaler: &mut dyn Scaler, start: Limits) -> (Score, Vec<Limits>) {
    let mut tally = Tally::default();
    let mut timeline = Vec::with_capacity(trace.points.len());
    let mut current = start;
    for (i, p) in trace.points.iter().enumerate() {
        let dt = trace
            .points
            .get(i + 1)
            .map_or(trace.step_secs, |n| n.t_secs - p.t_secs);
        tally.add(dt, p.cpu_cores, p.memory_bytes, &current);
        timeline.push(current);
        let (cpu_limit, mem_limit) = (cores(&current), bytes(&current));
        let obs = Observation {
            now: Millis((p.t_secs * 1000.0).round() as i64),
            current,
            cpu_used: p.cpu_cores.min(cpu_limit),
            cpu_limited: p.cpu_cores > cpu_limit,
            memory_used: p.memory_bytes.map(|m| m.min(mem_limit)),
            oom: p.memory_bytes.is_some_and(|m| m > mem_limit),
        };
        current = scaler.observe(&obs);
    }
    (tally.finish(), timeline)
}
