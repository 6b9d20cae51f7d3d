//! The replay loop: a trace through one scaler, tick by tick, scored as it goes.
//!
//! At each tick the limits in force meet the demand: the score counts what was served and
//! what was not, the scaler sees what a cgroup would have shown ([`Observation`]) and returns
//! the limits for the next tick. Decisions are causal: a limit chosen after tick `i` is in
//! force from tick `i + 1`, or, with an apply delay (VASim's "lag"), from the first tick at
//! or after `t_i + delay`. This module does no I/O and allocates only the timeline.

use std::collections::VecDeque;

use autoscaler_core::{Limits, Millis};

use crate::policy::{Observation, Scaler, bytes, cores};
use crate::score::{Score, Tally};
use crate::trace::Trace;

/// Replays `trace` through `scaler` from `start`; returns the score and the limits in force
/// at each tick.
pub fn replay(trace: &Trace, scaler: &mut dyn Scaler, start: Limits) -> (Score, Vec<Limits>) {
    replay_delayed(trace, scaler, start, 0.0)
}

/// [`replay`] where the limits decided at `t` take effect at `t + delay_secs` (the first tick
/// at or after it). The scaler sees the limits in force, as a cgroup shows them; decisions
/// still waiting are queued in order. A scaler answers "hold" by returning the limits in
/// force, so only an answer that differs from both those and the last one queued is a new
/// decision (a policy cannot cancel a queued change, as an applied one cannot be unsent).
pub fn replay_delayed(
    trace: &Trace,
    scaler: &mut dyn Scaler,
    start: Limits,
    delay_secs: f64,
) -> (Score, Vec<Limits>) {
    let mut tally = Tally::default();
    let mut timeline = Vec::with_capacity(trace.points.len());
    let mut current = start;
    let mut pending: VecDeque<(f64, Limits)> = VecDeque::new();
    for (i, p) in trace.points.iter().enumerate() {
        while pending
            .front()
            .is_some_and(|&(at, _)| at <= p.t_secs + 1e-9)
        {
            if let Some((_, l)) = pending.pop_front() {
                current = l;
            }
        }
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
        let asked = scaler.observe(&obs);
        if delay_secs <= 0.0 {
            current = asked;
        } else if asked != current && pending.back().is_none_or(|&(_, l)| l != asked) {
            pending.push_back((p.t_secs + delay_secs, asked));
        }
    }
    (tally.finish(), timeline)
}
