//! A VPA-style recommender: the Kubernetes Vertical Pod Autoscaler's recommender and updater
//! rules with their published defaults, for one unit, as a baseline.
//!
//! Recommender (vertical-pod-autoscaler/pkg/recommender): CPU usage goes into a decaying
//! exponential histogram (first bucket 0.001 core, buckets 5% wider each, half-life 24 h,
//! sample weight = the CPU request, at least 0.1); memory goes in as one peak per 24 h
//! interval into a histogram of its own (first bucket 10 MB). Target = p90 + 15% margin,
//! lower bound = p50 + 15% times `(1 + 0.001/confidence)^-2`, upper bound = p95 + 15% times
//! `(1 + 1/confidence)`, where confidence is the history in days (the lesser of lifespan and
//! samples / 1440). Minimums 25 millicores and 250 MiB. An OOM kill adds a memory sample of
//! `max(used + 100 MiB, used x 1.2)`. Everything is capped to the bounds, as VPA's
//! minAllowed/maxAllowed would.
//!
//! Updater (pkg/updater/priority): the limits change (a pod eviction, so the pod's age starts
//! over) when the current value lies outside [lower bound, upper bound], or when the pod is at
//! least 12 h old and the summed relative difference from the target is at least 10%
//! (`pod-update-threshold`). Limits are set to the target (no request/limit ratio).
//! This module does no I/O; it only sees what [`super::Observation`] shows.

use autoscaler_core::{Bounds, Limits, MIB, Resource};

use super::{Observation, Scaler, bytes, cores};

const HALF_LIFE_SECS: f64 = 24.0 * 3600.0;
const MARGIN: f64 = 0.15;
const TARGET_PERCENTILE: f64 = 0.9;
const LOWER_PERCENTILE: f64 = 0.5;
const UPPER_PERCENTILE: f64 = 0.95;
const MIN_CPU_CORES: f64 = 0.025;
const MIN_MEMORY_BYTES: f64 = 250.0 * MIB as f64;
const OOM_BUMP_RATIO: f64 = 1.2;
const OOM_MIN_BUMP_BYTES: f64 = 100.0 * MIB as f64;
const MEMORY_INTERVAL_SECS: f64 = 24.0 * 3600.0;
const MIN_SAMPLE_WEIGHT: f64 = 0.1;
const UPDATE_THRESHOLD: f64 = 0.1;
const POD_LIFETIME_UPDATE_SECS: f64 = 12.0 * 3600.0;
/// VPA renormalises the decaying weights before they overflow (`maxDecayExponent`).
const MAX_DECAY_EXPONENT: f64 = 100.0;

/// VPA's exponential histogram with exponentially decaying sample weights.
#[derive(Debug, Clone)]
struct DecayingHistogram {
    first: f64,
    ln_ratio: f64,
    ratio: f64,
    weights: Vec<f64>,
    total: f64,
    /// Lowest and highest bucket that ever held weight since the last reset.
    min_bucket: usize,
    max_bucket: usize,
    reference: Option<f64>,
}

impl DecayingHistogram {
    fn new(max_value: f64, first: f64, ratio: f64) -> DecayingHistogram {
        let ln_ratio = ratio.ln();
        let n = ((max_value * (ratio - 1.0) / first + 1.0).ln() / ln_ratio).ceil() as usize + 1;
        DecayingHistogram {
            first,
            ln_ratio,
            ratio,
            weights: vec![0.0; n],
            total: 0.0,
            min_bucket: n,
            max_bucket: 0,
            reference: None,
        }
    }

    fn bucket(&self, v: f64) -> usize {
        if v < self.first {
            return 0;
        }
        let b = ((v * (self.ratio - 1.0) / self.first + 1.0).ln() / self.ln_ratio) as usize;
        b.min(self.weights.len() - 1)
    }

    fn bucket_start(&self, b: usize) -> f64 {
        self.first * (self.ratio.powi(b as i32) - 1.0) / (self.ratio - 1.0)
    }

    /// The weight multiplier of a sample at `t`; moves the reference time when needed.
    fn decay(&mut self, t: f64) -> f64 {
        let reference = *self.reference.get_or_insert(t);
        if (t - reference) / HALF_LIFE_SECS > MAX_DECAY_EXPONENT {
            let factor = 2f64.powf(-(t - reference) / HALF_LIFE_SECS);
            self.weights.iter_mut().for_each(|w| *w *= factor);
            self.total *= factor;
            self.reference = Some(t);
            return 1.0;
        }
        2f64.powf((t - reference) / HALF_LIFE_SECS)
    }

    fn add(&mut self, v: f64, weight: f64, t: f64) {
        let w = weight * self.decay(t);
        let b = self.bucket(v);
        self.weights[b] += w;
        self.total += w;
        self.min_bucket = self.min_bucket.min(b);
        self.max_bucket = self.max_bucket.max(b);
    }

    fn subtract(&mut self, v: f64, weight: f64, t: f64) {
        let w = weight * self.decay(t);
        let b = self.bucket(v);
        let taken = w.min(self.weights[b]);
        self.weights[b] -= taken;
        self.total -= taken;
    }

    /// Several percentiles (ascending) in one pass: each is the end of the bucket where the
    /// running weight reaches it, as VPA's `Percentile` returns.
    fn percentiles<const N: usize>(&self, ps: [f64; N]) -> [f64; N] {
        let mut out = [0.0; N];
        if self.total <= 0.0 || self.min_bucket > self.max_bucket {
            return out;
        }
        let (mut sum, mut k) = (0.0, 0);
        for b in self.min_bucket..=self.max_bucket {
            sum += self.weights[b];
            while k < N && sum >= ps[k] * self.total {
                out[k] = self.end_of(b);
                k += 1;
            }
            if k == N {
                return out;
            }
        }
        for o in out.iter_mut().skip(k) {
            *o = self.end_of(self.max_bucket);
        }
        out
    }

    fn end_of(&self, b: usize) -> f64 {
        if b + 1 < self.weights.len() {
            self.bucket_start(b + 1)
        } else {
            self.bucket_start(b)
        }
    }
}

/// Target and bounds for one resource.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Estimate {
    target: f64,
    lower: f64,
    upper: f64,
}

/// The VPA-style recommender and updater for one unit.
#[derive(Debug, Clone)]
pub struct Vpa {
    bounds: Bounds,
    cpu: DecayingHistogram,
    memory: DecayingHistogram,
    first_sample: Option<f64>,
    last_sample: f64,
    samples: u64,
    memory_seen: bool,
    window_end: Option<f64>,
    memory_peak: f64,
    oom_peak: f64,
    pod_start: Option<f64>,
}

impl Vpa {
    pub fn new(bounds: Bounds) -> Vpa {
        Vpa {
            bounds,
            cpu: DecayingHistogram::new(1000.0, 0.001, 1.05),
            memory: DecayingHistogram::new(1e12, 1e7, 1.05),
            first_sample: None,
            last_sample: 0.0,
            samples: 0,
            memory_seen: false,
            window_end: None,
            memory_peak: 0.0,
            oom_peak: 0.0,
            pod_start: None,
        }
    }

    /// One peak per memory aggregation interval (VPA's `addMemorySample`).
    fn add_memory(&mut self, v: f64, t: f64, oom: bool) {
        let end = *self.window_end.get_or_insert(t);
        let mut add = false;
        if t < end {
            let old = self.memory_peak.max(self.oom_peak);
            if old != 0.0 && v > old {
                self.memory.subtract(old, 1.0, end);
                add = true;
            }
        } else {
            let shift = ((t - end) / MEMORY_INTERVAL_SECS).floor() * MEMORY_INTERVAL_SECS
                + MEMORY_INTERVAL_SECS;
            self.window_end = Some(end + shift);
            self.memory_peak = 0.0;
            self.oom_peak = 0.0;
            add = true;
        }
        if add {
            let end = self.window_end.unwrap_or(t);
            self.memory.add(v, 1.0, end);
            if oom {
                self.oom_peak = v
            } else {
                self.memory_peak = v
            }
        }
    }

    fn confidence(&self) -> f64 {
        let lifespan_days = self
            .first_sample
            .map_or(0.0, |f| (self.last_sample - f) / 86_400.0);
        lifespan_days.min(self.samples as f64 / 1440.0)
    }

    fn estimate(h: &DecayingHistogram, confidence: f64, min: f64) -> Estimate {
        let [p50, p90, p95] =
            h.percentiles([LOWER_PERCENTILE, TARGET_PERCENTILE, UPPER_PERCENTILE]);
        let m = 1.0 + MARGIN;
        Estimate {
            target: (p90 * m).max(min),
            lower: (p50 * m * (1.0 + 0.001 / confidence).powf(-2.0)).max(min),
            upper: (p95 * m * (1.0 + 1.0 / confidence)).max(min),
        }
    }

    /// The estimate capped to the bounds, in the units of [`Limits`] (percent, bytes).
    fn capped(&self, r: Resource, e: Estimate, unit: f64) -> Estimate {
        let (lo, hi) = self.bounds.range(r);
        let cap = |v: f64| (v * unit).clamp(lo as f64, hi as f64);
        Estimate {
            target: cap(e.target).ceil(),
            lower: cap(e.lower),
            upper: cap(e.upper),
        }
    }
}

impl Scaler for Vpa {
    fn observe(&mut self, o: &Observation) -> Limits {
        let t = o.now.0 as f64 / 1000.0;
        let pod_start = *self.pod_start.get_or_insert(t);
        self.cpu
            .add(o.cpu_used, cores(&o.current).max(MIN_SAMPLE_WEIGHT), t);
        self.first_sample.get_or_insert(t);
        self.last_sample = t;
        self.samples += 1;
        if let Some(m) = o.memory_used {
            self.memory_seen = true;
            self.add_memory(m, t, false);
            if o.oom {
                let used = bytes(&o.current).min(1e15).max(self.memory_peak);
                self.add_memory(
                    (used + OOM_MIN_BUMP_BYTES).max(used * OOM_BUMP_RATIO),
                    t,
                    true,
                );
            }
        }

        let conf = self.confidence();
        let cpu = self.capped(
            Resource::Cpu,
            Vpa::estimate(&self.cpu, conf, MIN_CPU_CORES),
            100.0,
        );
        let cur_cpu = o.current.cpu_quota.map_or(f64::INFINITY, f64::from);
        let mut outside = cur_cpu < cpu.lower || cur_cpu > cpu.upper;
        let mut diff = (cur_cpu - cpu.target).abs() / cur_cpu.max(1.0);
        let mut new = o.current.with(Resource::Cpu, cpu.target as u64);
        if self.memory_seen {
            let mem = self.capped(
                Resource::Memory,
                Vpa::estimate(&self.memory, conf, MIN_MEMORY_BYTES),
                1.0,
            );
            // MemoryMax in whole MiB: VPA rounds memory too, and it keeps the numbers readable.
            let target = (mem.target / MIB as f64).ceil() * MIB as f64;
            let cur = bytes(&o.current);
            outside |= cur < mem.lower || cur > mem.upper;
            diff += (cur - target).abs() / cur.max(1.0);
            new = new.with(Resource::Memory, target as u64);
        }
        let old_enough = t - pod_start >= POD_LIFETIME_UPDATE_SECS;
        if new != o.current && (outside || (old_enough && diff >= UPDATE_THRESHOLD)) {
            self.pod_start = Some(t);
            return new;
        }
        o.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles of a histogram filled with `values` (weight 1, same time).
    fn check(values: &[f64], ps: [f64; 3], expect: [f64; 3]) {
        let mut h = DecayingHistogram::new(1000.0, 0.001, 1.05);
        for v in values {
            h.add(*v, 1.0, 0.0);
        }
        let got = h.percentiles(ps);
        for (g, e) in got.iter().zip(expect) {
            // Bucket ends lie within 5% above the value.
            assert!(
                *g >= e && *g <= e * 1.05 + 0.001,
                "{values:?} {ps:?}: got {got:?}, want about {expect:?}"
            );
        }
    }

    #[test]
    fn percentiles_table() {
        check(&[1.0], [0.5, 0.9, 0.95], [1.0, 1.0, 1.0]);
        check(
            &(1..=100).map(f64::from).collect::<Vec<_>>(),
            [0.5, 0.9, 0.95],
            [50.0, 90.0, 95.0],
        );
        check(&[], [0.5, 0.9, 0.95], [0.0, 0.0, 0.0]);
    }

    #[test]
    fn old_samples_weigh_half_after_a_half_life() {
        let mut h = DecayingHistogram::new(1000.0, 0.001, 1.05);
        h.add(1.0, 1.0, 0.0);
        h.add(2.0, 1.0, HALF_LIFE_SECS);
        // Weights 1 and 2: p50 lands in the newer sample's bucket.
        let [p40, p50] = h.percentiles([0.3, 0.5]);
        assert!(p40 < 1.1 && p50 > 1.9, "{p40} {p50}");
        // Far-future samples renormalise instead of overflowing.
        h.add(3.0, 1.0, HALF_LIFE_SECS * 500.0);
        assert!(h.total.is_finite() && h.total > 0.0);
    }
}
