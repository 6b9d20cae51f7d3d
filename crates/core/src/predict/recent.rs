//! A unit's recent samples at a bounded resolution: what [`predict`](super::predict) reads.
//!
//! The engine kept every sample of the last hour or forecast window (two hours by default).
//! At a 1 s check interval that was 7,200 samples a unit, 345 KB, and every check ran the
//! trends, forecasts and profiles over all of them: about 2-4 ms a check after two hours, a
//! cost the first minutes of a benchmark do not show. A regression over two hours gains
//! nothing from one point a second that one point every 15-30 s does not give it; the noise
//! the extra points carry is averaged away anyway.
//!
//! So the samples of one step ([`POINTS_PER_WINDOW`] steps make the forecast window) are
//! merged into one point, their mean (time included), and each point remembers how many
//! samples it holds. A point spans a step less three quarters of the gap before its newest
//! sample ([`EARLY`]): samples every `i` seconds, `i` a divisor of the step, make exactly one
//! point a step, and a check up to a quarter of its interval early is still a point of its
//! own. At the spec's defaults (30 s checks, a 120-minute window, so a 30 s step) no two samples
//! are ever merged and every figure is as before; a faster interval keeps
//! `POINTS_PER_WINDOW` points per window. [`Recent::version`] changes only when a point is
//! added or dropped, so a caller can redo the O(points) work once per point rather than once
//! per sample.

use std::collections::VecDeque;

use super::Sample;
use crate::time::Millis;

/// Points per forecast window at which samples start to be merged: the spec's default window
/// (120 minutes) over its default check interval (30 s). Finer sampling changes nothing at
/// that resolution but the work per check.
pub const POINTS_PER_WINDOW: u32 = 240;

/// The share of the gap before a sample by which the point it would join must end earlier
/// than a whole step. Samples at the step's own interval are then never merged, even when one
/// comes a quarter of an interval early (a late timer, a check the kernel woke); at any
/// interval dividing the step, a step's samples make one point. The rule was "a point spans
/// less than three quarters of a step", which at a 1 s interval kept 313 points a window
/// where 240 tell the regression the same (docs/BENCHMARKS.md, "Memory: what a unit keeps",
/// sessions 12 and 15).
const EARLY: f64 = 0.75;

/// The recent samples, oldest first, merged to about a point per step.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    /// The points, oldest first; the newest is `open`'s mean while it is open.
    points: VecDeque<Point>,
    /// How many samples each point holds, index for index with `points` (saturating; a
    /// point holds a step's samples, at most a few hundred). Kept apart so that a point is
    /// 16 bytes: 242 of them fit a 4 KiB allocation, where 20 bytes took a 5 KiB one.
    weights: VecDeque<u16>,
    /// The time the points' `at` counts from.
    base: Millis,
    /// AutoCoder's counts of each point, index for index with `points`, from the first point
    /// that has any: most units never do, and keep none.
    signals: Option<VecDeque<Signals>>,
    /// The newest point's sums, while samples may still be merged into it.
    open: Option<Open>,
    version: u64,
}

/// One kept point: 16 bytes, where a [`Sample`] and its weight took 52. At a 1 s interval a
/// unit keeps 240 (two hours, a point a step), so 25 KB became about 4.5 KB a unit of the
/// daemon's memory, the counts ([`Recent::weights`]) included. Usage is kept to 24 bits (a
/// relative error of 6e-8, far under its noise), the time as milliseconds after
/// [`Recent::base`] (24 days either way; the points span hours). AutoCoder's counts are kept
/// apart ([`Signals`]), for the units that have them.
#[derive(Debug, Clone, Copy)]
struct Point {
    /// Milliseconds after [`Recent::base`].
    at: i32,
    cpu_cores: f32,
    memory_bytes: f32,
    tasks: f32,
}

/// A point's AutoCoder counts: agent counts to 16 bits (saturating).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Signals {
    /// [`NO_FEATURES`] for `None`.
    features_pending: u32,
    agents: u16,
    testing_agents: u16,
}

/// `features_pending` unknown; a count this high is read as the largest one below it.
const NO_FEATURES: u32 = u32::MAX;

impl Signals {
    /// What a point without AutoCoder's counts holds.
    const NONE: Signals = Signals {
        features_pending: NO_FEATURES,
        agents: 0,
        testing_agents: 0,
    };

    fn of(s: &Sample) -> Signals {
        let small = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
        Signals {
            features_pending: s
                .features_pending
                .map_or(NO_FEATURES, |f| f.min(NO_FEATURES - 1)),
            agents: small(s.agents),
            testing_agents: small(s.testing_agents),
        }
    }
}

impl Point {
    fn new(at: i32, s: &Sample) -> Point {
        Point {
            at,
            cpu_cores: s.cpu_cores as f32,
            memory_bytes: s.memory_bytes as f32,
            tasks: s.tasks as f32,
        }
    }

    fn at(&self, base: Millis) -> Millis {
        Millis(base.0 + i64::from(self.at))
    }

    fn sample(&self, base: Millis, signals: Signals) -> Sample {
        Sample {
            at: self.at(base),
            cpu_cores: f64::from(self.cpu_cores),
            memory_bytes: f64::from(self.memory_bytes),
            tasks: f64::from(self.tasks),
            agents: u32::from(signals.agents),
            testing_agents: u32::from(signals.testing_agents),
            features_pending: (signals.features_pending != NO_FEATURES)
                .then_some(signals.features_pending),
        }
    }
}

/// Running sums of the samples merged into the newest point.
#[derive(Debug, Clone, Copy)]
struct Open {
    first: Millis,
    /// The newest sample's time.
    last: Millis,
    n: u32,
    /// Milliseconds after `first`, summed.
    offset_ms: f64,
    cpu: f64,
    memory: f64,
    tasks: f64,
    agents: f64,
    testing: f64,
    features: f64,
    features_n: u32,
}

impl Open {
    fn new(s: &Sample) -> Open {
        let mut o = Open {
            first: s.at,
            last: s.at,
            n: 0,
            offset_ms: 0.0,
            cpu: 0.0,
            memory: 0.0,
            tasks: 0.0,
            agents: 0.0,
            testing: 0.0,
            features: 0.0,
            features_n: 0,
        };
        o.add(s);
        o
    }

    fn add(&mut self, s: &Sample) {
        self.n += 1;
        self.last = s.at;
        self.offset_ms += s.at.0.saturating_sub(self.first.0) as f64;
        self.cpu += s.cpu_cores;
        self.memory += s.memory_bytes;
        self.tasks += s.tasks;
        self.agents += f64::from(s.agents);
        self.testing += f64::from(s.testing_agents);
        if let Some(f) = s.features_pending {
            self.features += f64::from(f);
            self.features_n += 1;
        }
    }

    /// The mean of the merged samples. Counts are rounded: a profile fits usage against whole
    /// agents.
    fn mean(&self) -> Sample {
        let n = f64::from(self.n.max(1));
        let count = |sum: f64, n: f64| (sum / n).round().clamp(0.0, f64::from(u32::MAX)) as u32;
        Sample {
            at: Millis(self.first.0 + (self.offset_ms / n).round() as i64),
            cpu_cores: self.cpu / n,
            memory_bytes: self.memory / n,
            tasks: self.tasks / n,
            agents: count(self.agents, n),
            testing_agents: count(self.testing, n),
            features_pending: (self.features_n > 0)
                .then(|| count(self.features, f64::from(self.features_n))),
        }
    }
}

impl Recent {
    /// Takes a sample, merging it into the newest point when that point's first sample is
    /// less than a step, less [`EARLY`] of the gap since the newest sample, older (a step is
    /// `window_secs / POINTS_PER_WINDOW`), and drops the points older than `keep_secs` before
    /// the sample.
    pub fn push(&mut self, s: Sample, window_secs: f64, keep_secs: f64) {
        let step_ms = window_secs * 1000.0 / f64::from(POINTS_PER_WINDOW);
        let version = self.version;
        let base = self.base;
        while self
            .points
            .front()
            .is_some_and(|p| s.at.secs_since(p.at(base)) > keep_secs)
        {
            self.points.pop_front();
            self.weights.pop_front();
            if let Some(signals) = &mut self.signals {
                signals.pop_front();
            }
            self.version += 1;
        }
        if self.points.is_empty() {
            self.open = None;
        }
        // Counts that aged out leave nothing behind (a scan per dropped point, not per sample).
        if self.version != version
            && let Some(signals) = &self.signals
            && signals.iter().all(|x| *x == Signals::NONE)
        {
            self.signals = None;
        }
        let joins = |o: &Open| {
            let span = (s.at.0 - o.first.0) as f64;
            let gap = (s.at.0 - o.last.0) as f64;
            s.at >= o.last && span < step_ms - EARLY * gap
        };
        let newest = match &mut self.open {
            Some(o) if joins(o) => {
                o.add(&s);
                let (mean, n) = (o.mean(), o.n);
                let at = self.offset(mean.at);
                if let Some(p) = self.points.back_mut() {
                    *p = Point::new(at, &mean);
                }
                if let Some(w) = self.weights.back_mut() {
                    *w = u16::try_from(n).unwrap_or(u16::MAX);
                }
                mean
            }
            _ => {
                self.open = Some(Open::new(&s));
                if self.points.len() == self.points.capacity() {
                    // Grown by doubling up to the points `keep_secs` holds at a point a step,
                    // and not past it (doubling from 256 gave room for 512); a quarter more
                    // at a time past that, for irregular checks.
                    let most = (keep_secs * 1000.0 / step_ms).ceil() as usize + 2;
                    let len = self.points.len();
                    let more = if len < most {
                        len.max(4).min(most - len)
                    } else {
                        len / 4
                    };
                    self.points.reserve_exact(more.max(1));
                    let room = self.points.capacity().saturating_sub(self.weights.len());
                    self.weights.reserve_exact(room);
                }
                let at = self.offset(s.at);
                self.points.push_back(Point::new(at, &s));
                self.weights.push_back(1);
                self.version += 1;
                s
            }
        };
        self.note_signals(&newest);
    }

    /// `at` as a point's time, after [`Recent::base`]. The base is the first point's time,
    /// moved to the oldest point's if `at` is over 24 days from it; points more than that
    /// before `at` (only a clock set back by weeks leaves them) are dropped.
    fn offset(&mut self, at: Millis) -> i32 {
        if self.points.is_empty() {
            self.base = at;
        }
        if let Ok(x) = i32::try_from(at.0 - self.base.0) {
            return x;
        }
        let base = self.base;
        let first = self.points.front().map_or(at, |p| p.at(base));
        let last = self.points.back().map_or(at, |p| p.at(base));
        let (oldest, newest) = (first.min(at), last.max(at));
        if i32::try_from(newest.0 - oldest.0).is_err() {
            self.points.clear();
            self.weights.clear();
            self.signals = None;
            self.version += 1;
            self.base = at;
            return 0;
        }
        for p in &mut self.points {
            p.at = i32::try_from(p.at(base).0 - oldest.0).unwrap_or(i32::MAX);
        }
        self.base = oldest;
        i32::try_from(at.0 - oldest.0).unwrap_or(i32::MAX)
    }

    /// Keeps the newest point's AutoCoder counts, once any point has had some.
    fn note_signals(&mut self, newest: &Sample) {
        let signals = Signals::of(newest);
        if self.signals.is_none() && signals == Signals::NONE {
            return;
        }
        let all = self.signals.get_or_insert_default();
        all.resize(self.points.len(), Signals::NONE);
        if let Some(last) = all.back_mut() {
            *last = signals;
        }
    }

    /// The points, oldest first.
    pub fn points(&self) -> Vec<Sample> {
        let signals = self.signals.iter().flatten().copied();
        self.points
            .iter()
            .zip(signals.chain(std::iter::repeat(Signals::NONE)))
            .map(|(p, s)| p.sample(self.base, s))
            .collect()
    }

    /// How many points there are.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Changes when a point is added or dropped, not when one is merged into the newest.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Samples (not points) taken less than `window_secs` before `now`, and not after it.
    pub fn samples_within(&self, now: Millis, window_secs: f64) -> usize {
        self.points
            .iter()
            .zip(&self.weights)
            .filter(|(p, _)| {
                let at = p.at(self.base);
                at <= now && now.secs_since(at) < window_secs
            })
            .map(|(_, w)| usize::from(*w))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64, cpu: f64) -> Sample {
        Sample {
            at: Millis((secs * 1000.0) as i64),
            cpu_cores: cpu,
            memory_bytes: 1e9,
            tasks: 4.0,
            agents: 1,
            testing_agents: 0,
            features_pending: None,
        }
    }

    #[test]
    fn samples_at_the_default_interval_are_never_merged() {
        let mut r = Recent::default();
        // 120-minute window: a 30 s step. Checks 30 s apart, early or late by up to 2 s.
        for k in 0..300 {
            let jitter = [0.0, -2.0, 1.5, 2.0][k % 4];
            r.push(at(k as f64 * 30.0 + jitter, 0.5), 7200.0, 7200.0);
        }
        assert_eq!(r.len(), 241, "two hours of 30 s checks, the oldest dropped");
        assert_eq!(
            r.samples_within(Millis(299 * 30_000), 7200.0),
            240,
            "the window holds 240 samples"
        );
    }

    #[test]
    fn a_fast_interval_keeps_a_point_a_step_of_means() {
        let mut r = Recent::default();
        for k in 0..7199 {
            let cpu = if k % 2 == 0 { 1.0 } else { 0.0 };
            r.push(at(f64::from(k), cpu), 7200.0, 7200.0);
        }
        // 30 s per point over two hours (a point spans under 30 s less 0.75 s).
        assert_eq!(r.len(), 240);
        assert!(
            r.points.capacity() <= 242,
            "room for what two hours hold, not doubled past it: {}",
            r.points.capacity()
        );
        assert_eq!(r.weights.capacity(), r.points.capacity(), "weights alike");
        assert!(
            r.points.capacity() * std::mem::size_of::<Point>() <= 4096,
            "the points fit 4 KiB"
        );
        let points = r.points();
        assert!(
            points.iter().all(|p| (p.cpu_cores - 0.5).abs() < 0.04),
            "means"
        );
        // A point's time is its samples' mean time: the first holds 0..=29 s.
        assert_eq!(points[0].at, Millis(14_500));
        assert_eq!(r.samples_within(Millis(7_199_000), 7200.0), 7199);
    }

    #[test]
    fn checks_at_any_divisor_of_the_step_make_a_point_a_step_and_an_early_one_stands_alone() {
        for interval in [1.0, 2.0, 5.0, 10.0, 15.0] {
            let mut r = Recent::default();
            let n = (3600.0 / interval) as usize;
            for k in 0..n {
                r.push(at(k as f64 * interval, 1.0), 7200.0, 7200.0);
            }
            assert_eq!(r.len(), 120, "an hour at {interval} s");
        }
        let mut r = Recent::default();
        // 30 s checks, one of them a quarter of the interval early.
        for secs in [0.0, 30.0, 52.5, 90.0] {
            r.push(at(secs, 1.0), 7200.0, 7200.0);
        }
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn points_weeks_apart_in_time_keep_their_times() {
        let day = 86_400.0;
        let mut r = Recent::default();
        // A point a day, two days kept, for 30 days: the base moves to the oldest point kept
        // once the newest is 24 days past it.
        for d in 0..30 {
            r.push(at(f64::from(d) * day, 1.0), 7200.0, 2.0 * day);
        }
        r.push(at(30.0 * day + 60.0, 2.0), 7200.0, 2.0 * day);
        let points = r.points();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].at, at(29.0 * day, 1.0).at);
        assert_eq!(points[1].at, at(30.0 * day + 60.0, 2.0).at);
        assert!(r.base > Millis(0), "moved");
        // A clock set back by 40 days: the points from its future go.
        r.push(at(-10.0 * day, 3.0), 7200.0, 2.0 * day);
        let points = r.points();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].at, at(-10.0 * day, 3.0).at);
        assert_eq!(points[0].cpu_cores, 3.0);
    }

    #[test]
    fn the_version_moves_with_points_not_with_merges() {
        let mut r = Recent::default();
        r.push(at(0.0, 1.0), 7200.0, 7200.0);
        let v = r.version();
        r.push(at(1.0, 3.0), 7200.0, 7200.0);
        assert_eq!(r.version(), v, "merged into the newest point");
        assert_eq!(r.points()[0].cpu_cores, 2.0);
        r.push(at(25.0, 1.0), 7200.0, 7200.0);
        assert_ne!(r.version(), v, "a new point");
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn old_points_go_and_a_gap_opens_a_new_point() {
        let mut r = Recent::default();
        r.push(at(0.0, 1.0), 7200.0, 60.0);
        r.push(at(100.0, 2.0), 7200.0, 60.0);
        assert_eq!(r.len(), 1);
        assert_eq!(r.points()[0].cpu_cores, 2.0);
        // A clock that went back does not merge into a point from the future.
        r.push(at(90.0, 4.0), 7200.0, 60.0);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn a_point_is_16_bytes_and_gives_back_its_sample() {
        assert_eq!(std::mem::size_of::<Point>(), 16);
        let s = Sample {
            at: Millis(123_456),
            cpu_cores: 1.25,
            memory_bytes: 3.0e9,
            tasks: 17.0,
            agents: 3,
            testing_agents: 1,
            features_pending: Some(5),
        };
        let base = Millis(100_000);
        assert_eq!(Point::new(23_456, &s).sample(base, Signals::of(&s)), s);
        let odd = Sample {
            cpu_cores: 0.1,
            agents: 70_000,
            features_pending: None,
            ..s
        };
        let back = Point::new(23_456, &odd).sample(base, Signals::of(&odd));
        assert!((back.cpu_cores - 0.1).abs() < 1e-8);
        assert_eq!(back.agents, u32::from(u16::MAX));
        assert_eq!(back.features_pending, None);
    }

    #[test]
    fn agent_counts_are_kept_from_the_first_point_that_has_any() {
        let quiet = |secs: f64| Sample {
            agents: 0,
            ..at(secs, 1.0)
        };
        let mut r = Recent::default();
        r.push(quiet(0.0), 7200.0, 100.0);
        r.push(quiet(30.0), 7200.0, 100.0);
        assert!(r.signals.is_none(), "no counts, none kept");
        r.push(at(60.0, 1.0), 7200.0, 100.0);
        // Merged into the newest point: its mean count, rounded.
        r.push(
            Sample {
                agents: 3,
                ..at(61.0, 1.0)
            },
            7200.0,
            100.0,
        );
        r.push(quiet(90.0), 7200.0, 100.0);
        let agents: Vec<u32> = r.points().iter().map(|p| p.agents).collect();
        assert_eq!(agents, [0, 0, 2, 0]);
        // The point with counts ages out, and the counts with it.
        r.push(quiet(150.0), 7200.0, 100.0);
        assert!(r.signals.is_some());
        r.push(quiet(180.0), 7200.0, 100.0);
        assert_eq!(r.len(), 3);
        assert!(
            r.signals.is_none(),
            "a unit that stopped having counts keeps none"
        );
        assert!(r.points().iter().all(|p| p.agents == 0));
    }
}
