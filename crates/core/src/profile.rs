//! Workload profiles: what a running agent and a testing agent cost in one resource, learned
//! from history.
//!
//! [`fit_profile`] regresses usage on the agent counts by least squares,
//! `usage ≈ base + per_agent · agents + per_testing_agent · testing_agents`, a testing agent
//! counting in both terms (it is an agent that also runs tests). A regressor that never varied,
//! or that moved in lockstep with the other, cannot be told apart from the base or from the
//! other: it is dropped and [`Profile::terms`] says so. [`Profile::size_for`] turns a profile
//! into a limit for a given number of agents.
//!
//! Pure arithmetic: no I/O, no clock, no panics; non-finite usage is skipped.

/// Which coefficients a profile could estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terms {
    /// Both counts varied independently: base, per-agent and per-testing-agent costs.
    Both,
    /// The testing count never varied, or only in lockstep with agents: its cost is folded
    /// into the base or the per-agent cost, and `per_testing_agent` is 0.
    AgentsOnly,
    /// The agent count never varied: its cost is in the base, and `per_agent` is 0.
    TestingOnly,
    /// Neither count varied: the base is the mean usage, both costs are 0.
    BaseOnly,
}

impl Terms {
    /// What was estimated, in words, for the API and the logs.
    pub fn describe(self) -> &'static str {
        match self {
            Terms::Both => "base, per-agent and per-testing-agent costs estimated",
            Terms::AgentsOnly => {
                "testing agents never varied apart from agents: their cost is included in the \
                 base and per-agent cost"
            }
            Terms::TestingOnly => {
                "the agent count never varied: the agents' cost is included in the base"
            }
            Terms::BaseOnly => "agent counts never varied: only the mean usage is known",
        }
    }
}

/// A learned cost model of one resource, in that resource's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Usage with no agent running.
    pub base: f64,
    pub per_agent: f64,
    /// Extra cost of an agent while it tests, on top of `per_agent`.
    pub per_testing_agent: f64,
    /// Samples fitted.
    pub samples: usize,
    /// Share of the usage's variance the model explains, 0 to 1 (1 when usage never varied).
    pub r2: f64,
    pub terms: Terms,
}

impl Profile {
    /// The usage to plan for with `agents` running of which `testing` test, plus `margin`
    /// (same unit). A negative cost estimate is noise, not an agent freeing resources, so it
    /// counts as 0: more agents never size a smaller limit. The result is at least 0.
    pub fn size_for(&self, agents: u32, testing: u32, margin: f64) -> f64 {
        let need = self.base
            + self.per_agent.max(0.0) * f64::from(agents)
            + self.per_testing_agent.max(0.0) * f64::from(testing)
            + margin;
        need.max(0.0)
    }
}

/// Fits a [`Profile`] to `(agents, testing_agents, usage)` samples; `None` when no sample has
/// a finite usage. How much to trust it is for the caller to judge from `samples` and `r2`.
pub fn fit_profile(samples: &[(u32, u32, f64)]) -> Option<Profile> {
    let rows: Vec<(f64, f64, f64)> = samples
        .iter()
        .filter(|s| s.2.is_finite())
        .map(|&(a, t, u)| (f64::from(a), f64::from(t), u))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let n = rows.len() as f64;
    let mean = |f: fn(&(f64, f64, f64)) -> f64| rows.iter().map(f).sum::<f64>() / n;
    let (ma, mt, mu) = (mean(|r| r.0), mean(|r| r.1), mean(|r| r.2));
    // Centring removes the intercept from the 3x3 normal equations, leaving a 2x2 system in
    // the costs whose conditioning can be judged directly; the base follows from the means.
    let (mut saa, mut stt, mut sat, mut sau, mut stu, mut suu) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for &(a, t, u) in &rows {
        let (da, dt, du) = (a - ma, t - mt, u - mu);
        saa += da * da;
        stt += dt * dt;
        sat += da * dt;
        sau += da * du;
        stu += dt * du;
        suu += du * du;
    }
    let det = saa * stt - sat * sat;
    // The counts are integers, so "never varied" is exact; lockstep shows as a determinant
    // that is zero up to rounding relative to its terms.
    let (terms, pa, pt) = if saa > 0.0 && stt > 0.0 && det > 1e-9 * saa * stt {
        (
            Terms::Both,
            (sau * stt - stu * sat) / det,
            (stu * saa - sau * sat) / det,
        )
    } else if saa > 0.0 {
        (Terms::AgentsOnly, sau / saa, 0.0)
    } else if stt > 0.0 {
        (Terms::TestingOnly, 0.0, stu / stt)
    } else {
        (Terms::BaseOnly, 0.0, 0.0)
    };
    let base = mu - pa * ma - pt * mt;
    let ssr: f64 = rows
        .iter()
        .map(|&(a, t, u)| (u - (base + pa * a + pt * t)).powi(2))
        .sum();
    let r2 = if suu > 0.0 {
        (1.0 - ssr / suu).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some(Profile {
        base,
        per_agent: pa,
        per_testing_agent: pt,
        samples: rows.len(),
        r2,
        terms,
    })
}

#[cfg(test)]
mod tests;
