//! The oracle baseline: limits chosen with perfect foresight, piecewise constant, with a given
//! number of changes. It is not a policy anyone can run; it shows how far each policy is from
//! the least slack that a given number of resizes allows.
//!
//! For each resource the trace is cut into segments, and each segment's limit is the highest
//! demand in it (so nothing is unmet unless the demand passes the upper bound), within the
//! bounds and rounded up to the resource's grain. The cuts are chosen greedily, bottom up:
//! merge the adjacent segments whose merge adds the least slack (time-weighted) until there
//! are `changes + 1`. Greedy merging is not always optimal, so the oracle's slack is an upper
//! bound on the best possible; it runs in O(samples x log samples). This module does no I/O.

use autoscaler_core::{Bounds, Limits, MIB};

use crate::trace::Trace;

/// The limit that serves `demand[a..b]` within `(lo, hi)` on the grain `g`.
fn level(max: f64, lo: f64, hi: f64, g: f64) -> f64 {
    // Strictly above: 11.120000000000001 cores is 1112.0 percent in floating point, and a
    // limit of 11.12 cores would leave it 1e-15 short.
    ((max / g + 1e-9).ceil() * g).clamp(lo, hi)
}

/// Piecewise-constant limits for one series with at most `changes` changes.
///
/// Bottom-up: every sample starts as its own segment, and the adjacent pair whose merge adds
/// the least slack (time-weighted) is merged, again and again, until `changes + 1` segments
/// are left. A heap with stale entries skipped keeps it O(n log n).
fn schedule(d: &[f64], w: &[f64], changes: usize, lo: f64, hi: f64, g: f64) -> Vec<f64> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    #[derive(Clone, Copy)]
    struct Seg {
        end: usize,
        max: f64,
        w: f64,
        dw: f64,
        next: Option<usize>,
        prev: Option<usize>,
        version: u32,
        alive: bool,
    }
    // Demand above the upper bound is unmet, not slack: count what the limit serves.
    let cost = |s: &Seg| level(s.max, lo, hi, g) * s.w - s.dw;
    let merged = |a: &Seg, b: &Seg| Seg {
        end: b.end,
        max: a.max.max(b.max),
        w: a.w + b.w,
        dw: a.dw + b.dw,
        next: b.next,
        prev: a.prev,
        version: a.version + 1,
        alive: true,
    };
    let n = d.len();
    let mut segs: Vec<Seg> = (0..n)
        .map(|i| Seg {
            end: i + 1,
            max: d[i],
            w: w[i],
            dw: d[i].min(hi) * w[i],
            next: (i + 1 < n).then_some(i + 1),
            prev: i.checked_sub(1),
            version: 0,
            alive: true,
        })
        .collect();
    // Entries: (added slack as ordered bits, left start, left version, right version).
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<_>, segs: &[Seg], a: usize| {
        if let Some(b) = segs[a].next {
            let m = merged(&segs[a], &segs[b]);
            let added = (cost(&m) - cost(&segs[a]) - cost(&segs[b])).max(0.0);
            heap.push(Reverse((
                added.to_bits(),
                a,
                segs[a].version,
                segs[b].version,
            )));
        }
    };
    for a in 0..n {
        push(&mut heap, &segs, a);
    }
    let mut count = n;
    while count > changes + 1 {
        let Some(Reverse((_, a, va, vb))) = heap.pop() else {
            break;
        };
        let Some(b) = segs[a].next else { continue };
        if !segs[a].alive || segs[a].version != va || segs[b].version != vb {
            continue;
        }
        let m = merged(&segs[a], &segs[b]);
        segs[b].alive = false;
        segs[a] = m;
        if let Some(c) = m.next {
            segs[c].prev = Some(a);
        }
        count -= 1;
        push(&mut heap, &segs, a);
        if let Some(p) = m.prev {
            push(&mut heap, &segs, p);
        }
    }
    let mut out = vec![0.0; n];
    let mut at = (n > 0).then_some(0);
    let mut start = 0;
    while let Some(i) = at {
        let s = segs[i];
        let l = level(s.max, lo, hi, g);
        out[start..s.end].iter_mut().for_each(|v| *v = l);
        start = s.end;
        at = s.next;
    }
    out
}

/// The oracle's limits for every tick of `trace`: CPU with at most `cpu_changes` changes,
/// memory with at most `memory_changes` (memory stays at `start` when the trace has none).
pub fn oracle(
    trace: &Trace,
    bounds: &Bounds,
    start: Limits,
    cpu_changes: usize,
    memory_changes: usize,
) -> Vec<Limits> {
    let pts = &trace.points;
    if pts.is_empty() {
        return Vec::new();
    }
    let w: Vec<f64> = (0..pts.len())
        .map(|i| {
            pts.get(i + 1)
                .map_or(trace.step_secs, |n| n.t_secs - pts[i].t_secs)
        })
        .collect();
    let cpu: Vec<f64> = pts.iter().map(|p| p.cpu_cores * 100.0).collect();
    let cpu = schedule(
        &cpu,
        &w,
        cpu_changes,
        f64::from(bounds.cpu().0),
        f64::from(bounds.cpu().1),
        1.0,
    );
    let mem = pts.iter().all(|p| p.memory_bytes.is_some()).then(|| {
        let m: Vec<f64> = pts.iter().map(|p| p.memory_bytes.unwrap_or(0.0)).collect();
        schedule(
            &m,
            &w,
            memory_changes,
            bounds.memory().0 as f64,
            bounds.memory().1 as f64,
            (64 * MIB) as f64,
        )
    });
    (0..pts.len())
        .map(|i| Limits {
            cpu_quota: Some(cpu[i] as u32),
            memory_max: mem.as_ref().map_or(start.memory_max, |m| Some(m[i] as u64)),
            tasks_max: start.tasks_max,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series cut into `changes + 1` pieces gives these limits.
    fn check(d: &[f64], changes: usize, expect: &[f64]) {
        let w = vec![1.0; d.len()];
        assert_eq!(schedule(d, &w, changes, 1.0, 100.0, 1.0), expect, "{d:?}");
    }

    #[test]
    fn oracle_table() {
        // No change allowed: the overall peak throughout, rounded up to the grain.
        check(&[1.0, 5.5, 2.0], 0, &[6.0, 6.0, 6.0]);
        // One change: the cut that saves most slack, after the burst.
        check(&[4.5, 4.5, 1.5, 1.5], 1, &[5.0, 5.0, 2.0, 2.0]);
        // Two changes around a burst in the middle.
        check(&[1.5, 1.5, 8.5, 1.5, 1.5], 2, &[2.0, 2.0, 9.0, 2.0, 2.0]);
        // Only one change: the longer side of the burst gets its own limit.
        check(&[1.5, 8.5, 1.5, 1.5, 1.5], 1, &[9.0, 9.0, 2.0, 2.0, 2.0]);
        // The lower bound: nothing under 1.
        check(&[0.2, 0.3], 1, &[1.0, 1.0]);
        // Above the upper bound the limit stays at it.
        check(&[150.0, 1.5], 1, &[100.0, 2.0]);
    }
}
