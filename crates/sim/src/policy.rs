//! The policies a replay compares, behind one small trait, [`Scaler`].
//!
//! Each scaler is fed one [`Observation`] per tick: what a cgroup would have shown under the
//! limits in force (usage capped at the CPU limit, memory capped at `MemoryMax`, plus "the
//! limit was hit" and "an OOM kill happened"), never the unmet demand, which only the scorer
//! sees. It returns the limits for the next tick. The spec's three policies are the daemon's
//! own [`Controller`], driven exactly as the engine drives it; the others are a static limit,
//! a VPA-style recommender ([`vpa`]) and our headroom policy ([`headroom`]). Every scaler
//! lives within the same [`Bounds`] (hard limits and host minus reserve). This module does no
//! I/O and keeps no score.

use std::fmt;

use autoscaler_core::{
    Bounds, BoundsError, Config, Controller, GIB, Host, Inputs, Limits, Millis, Policy, Usage,
};

pub mod headroom;
pub mod vpa;

/// The machine a replay pretends to run on; it sets the bounds and converts gcd-vms percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    pub cores: u32,
    pub memory_gib: u32,
}

impl Default for Machine {
    /// 8 cores and 32 GiB, the traces README's example.
    fn default() -> Machine {
        Machine {
            cores: 8,
            memory_gib: 32,
        }
    }
}

impl Machine {
    pub fn host(&self) -> Host {
        Host {
            cores: self.cores,
            memory_bytes: u64::from(self.memory_gib) * GIB,
            max_tasks: 4_194_304,
        }
    }

    pub fn scale(&self) -> crate::trace::Scale {
        crate::trace::Scale {
            cores: f64::from(self.cores),
            memory_gib: f64::from(self.memory_gib),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cores, {} GiB", self.cores, self.memory_gib)
    }
}

/// Everything a replay shares between policies: the machine and the base configuration
/// (bounds, reserves, steps). The spec policies overlay their bundle on `base`.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    pub machine: Machine,
    pub base: Config,
    /// Seconds from a decision to the limit being in force (VASim's lag); 0: the next tick.
    pub apply_delay_secs: f64,
}

impl Setup {
    /// The daemon's default configuration on `machine`.
    pub fn new(machine: Machine) -> Setup {
        Setup {
            machine,
            base: Config::default(),
            apply_delay_secs: 0.0,
        }
    }

    /// The bounds every policy lives in, or why the machine cannot hold the configured minimum.
    pub fn bounds(&self) -> Result<Bounds, BoundsError> {
        Bounds::new(&self.base, &self.machine.host())
    }

    /// The limits every replay starts from: the upper bounds, what a unit put under
    /// management with generous limits would have. Tasks are not limited (traces have none).
    pub fn start_limits(&self) -> Result<Limits, BoundsError> {
        let b = self.bounds()?;
        Ok(Limits {
            cpu_quota: Some(b.cpu().1),
            memory_max: Some(b.memory().1),
            tasks_max: None,
        })
    }
}

/// What a cgroup shows at one tick under the limits in force.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub now: Millis,
    /// The limits in force during this tick.
    pub current: Limits,
    /// Cores used: the demand, capped at the CPU limit.
    pub cpu_used: f64,
    /// Demand exceeded the CPU limit: the kernel throttled the unit.
    pub cpu_limited: bool,
    /// Bytes in use, capped at `MemoryMax`; `None` when the trace has no memory.
    pub memory_used: Option<f64>,
    /// Demand exceeded `MemoryMax`: an OOM kill.
    pub oom: bool,
}

/// A policy under replay: one observation in, the limits for the next tick out.
pub trait Scaler {
    fn observe(&mut self, o: &Observation) -> Limits;
}

/// A policy by name, as the CLI and reports spell it.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicySpec {
    /// Fixed limits; `None`: the upper bounds.
    Static(Option<Limits>),
    /// One of the spec's bundles on the base config, run by the daemon's controller.
    Spec(Policy),
    /// A whole configuration (a user's `--config FILE`), run by the daemon's controller.
    Config { name: String, config: Box<Config> },
    /// The VPA-style recommender with its published constants.
    Vpa,
    /// Our replay-only policy: fast up, slow hysteretic down (see [`headroom`]).
    Headroom,
    /// Perfect foresight with about as many resizes as the named policy (`None`: the policy
    /// listed just before it), built from the whole trace by [`crate::report::run`]
    /// ([`crate::oracle`]).
    Oracle(Option<String>),
}

impl PolicySpec {
    /// The names [`PolicySpec::parse`] accepts.
    pub const NAMES: &'static str = "static, static:CPU%:GiB, conservative, balanced, aggressive, adaptive, vpa, headroom, oracle, oracle:POLICY";

    /// Every built-in policy, baselines first.
    pub fn all() -> Vec<PolicySpec> {
        let mut v = vec![PolicySpec::Static(None)];
        v.extend(Policy::ALL.map(PolicySpec::Spec));
        v.push(PolicySpec::Spec(Policy::Adaptive));
        v.push(PolicySpec::Vpa);
        v.push(PolicySpec::Headroom);
        v
    }

    /// `static`, `static:400:16` (CPUQuota percent, MemoryMax GiB), a spec policy, `vpa`, `headroom`.
    pub fn parse(s: &str) -> Result<PolicySpec, String> {
        let unknown = || {
            format!(
                "unknown policy {s:?}; expected one of {}",
                PolicySpec::NAMES
            )
        };
        match s {
            "static" => return Ok(PolicySpec::Static(None)),
            "vpa" => return Ok(PolicySpec::Vpa),
            "headroom" => return Ok(PolicySpec::Headroom),
            "oracle" => return Ok(PolicySpec::Oracle(None)),
            _ => {}
        }
        if let Some(rest) = s.strip_prefix("oracle:")
            && !rest.is_empty()
        {
            return Ok(PolicySpec::Oracle(Some(rest.to_string())));
        }
        if let Some(rest) = s.strip_prefix("static:") {
            let (cpu, mem) = rest.split_once(':').ok_or_else(unknown)?;
            let cpu: u32 = cpu.parse().map_err(|_| unknown())?;
            let mem: u32 = mem.parse().map_err(|_| unknown())?;
            return Ok(PolicySpec::Static(Some(Limits {
                cpu_quota: Some(cpu),
                memory_max: Some(u64::from(mem) * GIB),
                tasks_max: None,
            })));
        }
        Policy::parse(s)
            .map(PolicySpec::Spec)
            .map_err(|_| unknown())
    }

    pub fn name(&self) -> String {
        match self {
            PolicySpec::Static(None) => "static".to_string(),
            PolicySpec::Static(Some(l)) => format!(
                "static:{}:{}",
                l.cpu_quota.unwrap_or(0),
                l.memory_max.map_or(0, |m| m / GIB)
            ),
            PolicySpec::Spec(p) => p.as_str().to_string(),
            PolicySpec::Config { name, .. } => name.clone(),
            PolicySpec::Vpa => "vpa".to_string(),
            PolicySpec::Headroom => "headroom".to_string(),
            PolicySpec::Oracle(None) => "oracle".to_string(),
            PolicySpec::Oracle(Some(p)) => format!("oracle:{p}"),
        }
    }

    /// A fresh scaler for one trace sampled every `step_secs`, starting at `start`.
    pub fn build(
        &self,
        setup: &Setup,
        step_secs: f64,
        start: Limits,
    ) -> Result<Box<dyn Scaler>, BoundsError> {
        let bounds = setup.bounds()?;
        Ok(match self {
            PolicySpec::Static(l) => Box::new(Static(l.unwrap_or(start))),
            PolicySpec::Spec(p) => Box::new(ControllerScaler::new(
                setup.base.with_policy(*p),
                setup.machine.host(),
                step_secs,
            )?),
            PolicySpec::Config { config, .. } => Box::new(ControllerScaler::new(
                (**config).clone(),
                setup.machine.host(),
                step_secs,
            )?),
            PolicySpec::Vpa => Box::new(vpa::Vpa::new(bounds)),
            PolicySpec::Headroom => Box::new(headroom::Headroom::new(bounds)),
            // The oracle needs the whole trace: `report::run` builds its schedule. Alone it
            // holds the start limits.
            PolicySpec::Oracle(_) => Box::new(Static(start)),
        })
    }
}

/// Limits given in advance, one per tick (the oracle's): tick `i` answers tick `i + 1`'s.
#[derive(Debug, Clone)]
pub struct Timeline {
    limits: Vec<Limits>,
    next: usize,
}

impl Timeline {
    pub fn new(limits: Vec<Limits>) -> Timeline {
        Timeline { limits, next: 1 }
    }
}

impl Scaler for Timeline {
    fn observe(&mut self, o: &Observation) -> Limits {
        let l = self.limits.get(self.next).copied().unwrap_or(o.current);
        self.next += 1;
        l
    }
}

/// The same limits forever.
#[derive(Debug, Clone, Copy)]
pub struct Static(pub Limits);

impl Scaler for Static {
    fn observe(&mut self, _: &Observation) -> Limits {
        self.0
    }
}

/// The daemon's [`Controller`], fed what the engine would feed it.
///
/// The check interval is the trace's step: the controller's "consecutive checks" count
/// samples. A CPU limit caps observed usage, so the controller sees `min(demand, limit)`; an
/// over-limit memory demand shows as usage at the limit plus one new OOM kill, which takes
/// the controller's OOM path as `memory.events` would.
#[derive(Debug, Clone)]
pub struct ControllerScaler {
    config: Config,
    bounds: Bounds,
    host: Host,
    ctl: Controller,
}

impl ControllerScaler {
    pub fn new(
        config: Config,
        host: Host,
        step_secs: f64,
    ) -> Result<ControllerScaler, BoundsError> {
        let config = config.with_check_interval(step_secs);
        let bounds = Bounds::new(&config, &host)?;
        Ok(ControllerScaler {
            config,
            bounds,
            host,
            ctl: Controller::default(),
        })
    }
}

impl Scaler for ControllerScaler {
    fn observe(&mut self, o: &Observation) -> Limits {
        // Observations are finite and non-negative (the readers check), so this cannot fail;
        // if it ever did, holding the limits is the safe answer.
        let Ok(mut usage) = Usage::from_demand(o.now, o.cpu_used, o.memory_used.unwrap_or(0.0))
        else {
            return o.current;
        };
        usage.new_oom_kills = u64::from(o.oom);
        let d = self.ctl.observe(Inputs {
            config: &self.config,
            bounds: &self.bounds,
            host: &self.host,
            current: &o.current,
            usage: &usage,
            now: o.now,
            anticipated: &[],
        });
        match d.change {
            Some((_, new, _)) => {
                self.ctl.record_action(o.now);
                new
            }
            None => o.current,
        }
    }
}

/// CPU limit in cores.
pub(crate) fn cores(l: &Limits) -> f64 {
    l.cpu_quota.map_or(f64::INFINITY, |q| f64::from(q) / 100.0)
}

/// Memory limit in bytes.
pub(crate) fn bytes(l: &Limits) -> f64 {
    l.memory_max.map_or(f64::INFINITY, |m| m as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in PolicySpec::all() {
            assert_eq!(PolicySpec::parse(&p.name()), Ok(p.clone()), "{}", p.name());
        }
        let s = PolicySpec::parse("static:400:16").expect("valid static");
        assert_eq!(s.name(), "static:400:16");
        for p in ["oracle", "oracle:adaptive"] {
            assert_eq!(PolicySpec::parse(p).map(|s| s.name()), Ok(p.to_string()));
        }
        for bad in ["", "yolo", "static:", "static:4", "static:a:b", "oracle:"] {
            let err = PolicySpec::parse(bad).expect_err(bad);
            assert!(err.contains("headroom"), "{err}");
        }
    }

    /// The runner's limits, tick by tick, equal a hand-driven `Controller::observe` loop that
    /// does what the engine does: usage capped at the limit, an OOM kill when memory demand
    /// passes `MemoryMax`, `record_action` after each change.
    fn check(policy: Policy, demand: &[(f64, f64)]) {
        let setup = Setup::new(Machine::default());
        let start = setup.start_limits().expect("feasible");
        let points = demand
            .iter()
            .enumerate()
            .map(|(i, &(c, g))| crate::trace::Point {
                t_secs: i as f64 * 60.0,
                cpu_cores: c,
                memory_bytes: Some(g * GIB as f64),
            })
            .collect();
        let trace = crate::trace::Trace {
            name: "seq".to_string(),
            step_secs: 60.0,
            points,
        };
        let mut scaler = PolicySpec::Spec(policy)
            .build(&setup, 60.0, start)
            .expect("feasible");
        let (_, replayed) = crate::replay::replay(&trace, scaler.as_mut(), start);

        let cfg = Config::default()
            .with_policy(policy)
            .with_check_interval(60.0);
        let host = Machine::default().host();
        let bounds = Bounds::new(&cfg, &host).expect("feasible");
        let mut ctl = Controller::default();
        let mut current = start;
        let mut by_hand = Vec::new();
        let mut changes = 0;
        for (i, &(c, g)) in demand.iter().enumerate() {
            by_hand.push(current);
            let now = Millis::from_secs(i as i64 * 60);
            let (cpu_cap, mem_cap) = (
                f64::from(current.cpu_quota.unwrap_or(0)) / 100.0,
                current.memory_max.unwrap_or(0) as f64,
            );
            let mem = g * GIB as f64;
            let mut usage =
                Usage::from_demand(now, c.min(cpu_cap), mem.min(mem_cap)).expect("valid demand");
            usage.new_oom_kills = u64::from(mem > mem_cap);
            let d = ctl.observe(Inputs {
                config: &cfg,
                bounds: &bounds,
                host: &host,
                current: &current,
                usage: &usage,
                now,
                anticipated: &[],
            });
            if let Some((_, new, _)) = d.change {
                current = new;
                ctl.record_action(now);
                changes += 1;
            }
        }
        assert!(
            changes >= 2,
            "{policy:?}: the sequence should make the controller act; {by_hand:?}"
        );
        assert_eq!(replayed, by_hand, "{policy:?}");
    }

    #[test]
    fn spec_runner_takes_the_daemons_decisions() {
        // Idle for an hour (scale down), a burst over the limit (scale up), a memory spike
        // over MemoryMax (OOM bump), then idle again.
        let seq: Vec<(f64, f64)> = (0..240)
            .map(|i| match i {
                0..=59 => (0.3, 2.0),
                60..=99 => (6.5, 6.0),
                100..=104 => (1.0, 30.0),
                _ => (0.2 + (i % 7) as f64 * 0.1, 3.0),
            })
            .collect();
        for p in Policy::ALL {
            check(p, &seq);
        }
    }

    #[test]
    fn default_machine_bounds_are_the_documented_ones() {
        let s = Setup::new(Machine::default());
        let b = s.bounds().expect("8 cores / 32 GiB is feasible");
        assert_eq!((b.cpu(), b.memory()), ((100, 700), (8 * GIB, 24 * GIB)));
        let tiny = Setup::new(Machine {
            cores: 1,
            memory_gib: 4,
        });
        assert!(tiny.bounds().is_err());
    }
}
