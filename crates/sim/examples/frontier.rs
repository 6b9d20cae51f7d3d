//! Where issue 12's gcd-vms goal lies: how little CPU slack a causal rule can leave at
//! `balanced`'s unmet CPU, when it is free to set a new limit at every sample.
//!
//! `cargo run --release -p autoscaler-sim --example frontier [-- TRACES_DIR]` (default: the
//! shared traces beside the repository).
//!
//! Each rule here sees what a policy sees (usage capped at the limit, and whether the limit was
//! hit), grows a hit limit x1.5 at once, as `adaptive` does, and otherwise sets the limit to
//! the level it sees plus room, every sample: no hysteresis band, no hold, no resize cost, no
//! generous first hours. It is not a policy (it makes 40 to 200 resizes a day against the
//! goal's 24); it is a bound on what rules of its kind can reach on these traces. Each family
//! is swept over its one factor and the slack at `balanced`'s unmet CPU read off the curve.
//! The families are the room the rounds in docs/DECISIONS.md tried, in their freest form:
//!
//! - `rise`: the level plus m x the largest rise from one sample to the next in 8 hours;
//! - `ewma`: the level plus m x the mean absolute change, decaying with a one-hour half-life;
//! - `peak`: m x the highest use of the last hour;
//! - `peak+rise`: the higher of the last hour's peak and the level plus m x the largest rise.

use std::collections::VecDeque;
use std::path::PathBuf;

use autoscaler_core::{Limits, Policy};
use autoscaler_sim::{
    Machine, Observation, PolicySpec, Scaler, Setup, read_dir, replay, run, shared_traces_dir,
};

/// Samples in 8 hours and in one hour at gcd-vms' 5-minute step.
const LONG: usize = 96;
const HOUR: usize = 12;
/// The growth of a limit that was hit, as `adaptive`'s.
const HIT_GROWTH: f64 = 1.5;

#[derive(Clone, Copy)]
enum Family {
    Rise,
    Ewma,
    Peak,
    PeakRise,
}

struct Rule {
    family: Family,
    m: f64,
    cpu_bounds: (u32, u32),
    seen: VecDeque<f64>,
    ewma: f64,
}

impl Rule {
    /// The limit the rule sets, in cores, when usage `level` was not held at the limit.
    fn target(&self, level: f64) -> f64 {
        let rise = || {
            self.seen
                .iter()
                .zip(self.seen.iter().skip(1))
                .map(|(a, b)| b - a)
                .fold(0.0, f64::max)
        };
        let peak = |n: usize| self.seen.iter().rev().take(n).copied().fold(0.0, f64::max);
        match self.family {
            Family::Rise => level + self.m * rise(),
            Family::Ewma => level + self.m * self.ewma,
            Family::Peak => self.m * peak(HOUR),
            Family::PeakRise => peak(HOUR).max(level + self.m * rise()),
        }
    }
}

impl Scaler for Rule {
    fn observe(&mut self, o: &Observation) -> Limits {
        let cores = o.cpu_used;
        if let Some(&last) = self.seen.back() {
            let alpha = 1.0 - 0.5f64.powf(1.0 / HOUR as f64);
            self.ewma += alpha * ((cores - last).abs() - self.ewma);
        }
        self.seen.push_back(cores);
        if self.seen.len() > LONG {
            self.seen.pop_front();
        }
        let current = f64::from(o.current.cpu_quota.unwrap_or(self.cpu_bounds.1)) / 100.0;
        let target = if o.cpu_limited {
            current * HIT_GROWTH
        } else {
            self.target(cores)
        };
        // Rounded up to 5% of a core, within the bounds, as `adaptive`'s targets are.
        let quota = ((target * 20.0).ceil() * 5.0) as u32;
        Limits {
            cpu_quota: Some(quota.clamp(self.cpu_bounds.0, self.cpu_bounds.1)),
            ..o.current
        }
    }
}

fn main() -> anyhow::Result<()> {
    let root = std::env::args()
        .nth(1)
        .map_or_else(shared_traces_dir, PathBuf::from);
    let setup = Setup::new(Machine::default());
    let (traces, errors) = read_dir(&root.join("gcd-vms"), setup.machine.scale())?;
    anyhow::ensure!(errors.is_empty(), "unreadable traces: {errors:?}");
    let start = setup.start_limits().map_err(|e| anyhow::anyhow!("{e}"))?;
    let cpu_bounds = setup.bounds().map_err(|e| anyhow::anyhow!("{e}"))?.cpu();

    let reference = run(
        &traces,
        &[
            PolicySpec::Spec(Policy::Balanced),
            PolicySpec::Spec(Policy::Adaptive),
        ],
        &setup,
    )?;
    let mut goal_short = f64::NAN;
    println!("gcd-vms, {} traces, 8 cores", traces.len());
    println!("  rule                cpu slack   short core-h   resizes/d");
    for (name, s) in &reference.totals {
        println!(
            "  {name:<18} {:>9.1}% {:>14.2} {:>11.1}",
            s.cpu_slack * 100.0,
            s.insufficient_cpu_core_hours,
            s.cpu_resizes as f64 / s.hours * 24.0
        );
        if name == "balanced" {
            goal_short = s.insufficient_cpu_core_hours;
        }
    }
    let families = [
        ("rise", Family::Rise, [1.0, 1.25, 1.5, 1.75, 2.0, 2.5]),
        ("ewma", Family::Ewma, [4.0, 6.0, 8.0, 10.0, 12.0, 15.0]),
        ("peak", Family::Peak, [1.1, 1.2, 1.3, 1.4, 1.5, 1.7]),
        (
            "peak+rise",
            Family::PeakRise,
            [1.0, 1.25, 1.5, 1.75, 2.0, 2.5],
        ),
    ];
    for (name, family, factors) in families {
        let mut curve = Vec::new();
        for m in factors {
            let mut scores = Vec::new();
            for t in &traces {
                let mut rule = Rule {
                    family,
                    m,
                    cpu_bounds,
                    seen: VecDeque::with_capacity(LONG + 1),
                    ewma: 0.0,
                };
                scores.push(replay(t, &mut rule, start).0);
            }
            let s = autoscaler_sim::Score::combine(&scores);
            println!(
                "  {:<18} {:>9.1}% {:>14.2} {:>11.1}",
                format!("{name} x{m}"),
                s.cpu_slack * 100.0,
                s.insufficient_cpu_core_hours,
                s.cpu_resizes as f64 / s.hours * 24.0
            );
            curve.push((s.insufficient_cpu_core_hours, s.cpu_slack));
        }
        match at(&curve, goal_short) {
            Some(slack) => println!(
                "  {name}: {:.1}% CPU slack at balanced's {goal_short:.2} core-h",
                slack * 100.0
            ),
            None => {
                println!("  {name}: the sweep does not cross balanced's {goal_short:.2} core-h")
            }
        }
    }
    Ok(())
}

/// The slack where the (shortage, slack) curve crosses `short`, by linear interpolation
/// between the two sweep points on either side.
fn at(curve: &[(f64, f64)], short: f64) -> Option<f64> {
    let mut pts = curve.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts.windows(2).find_map(|w| {
        let ((h0, s0), (h1, s1)) = (w[0], w[1]);
        (h0 <= short && short <= h1 && h1 > h0).then(|| s0 + (s1 - s0) * (short - h0) / (h1 - h0))
    })
}
