//! The threshold controller: from usage and current limits to "hold", "scale up" or
//! "scale down", with the reason in words.
//!
//! Rules (DESIGN.md): percentages compare usage with the *current* limits. Any resource over
//! its threshold (or starving: throttled, under pressure) for N consecutive checks grows by
//! the policy factor, at least by the minimum step; the others keep their limits. Every
//! resource under its scale-down threshold while the workload is idle, for N consecutive
//! checks, shrinks by the down factor, at least by the minimum step, never below the hard
//! minimum nor below what is in use now plus the headroom that keeps it under the scale-up
//! threshold. An OOM kill bumps memory at once. Nothing automatic happens within the cooldown
//! after an action; streaks reset when their condition breaks and after an action.

use std::fmt;

use crate::adaptive::{Learned, Verdict};
use crate::config::{Config, Mode, Policy};
pub use crate::history::{Action, TriggerType};
use crate::limits::{Bounds, GIB, Host, Limits, MIB, Resource, fmt_gib};
use crate::sample::Usage;
use crate::time::Millis;

/// What made a resource count as breached at one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Usage over its percent-of-limit threshold.
    Usage,
    /// CPU throttled in more than the configured share of CFS periods.
    Throttled,
    /// PSI "some" avg10 over its threshold.
    Pressure,
    /// The forecast's upper bound crosses the threshold within the horizon (predictive).
    Forecast,
    /// More agents are starting than the limit can hold, by the learned workload profile.
    Queue,
}

/// One scale-up trigger that fired: which resource, why, by how much.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breach {
    pub resource: Resource,
    pub trigger: Trigger,
    /// The measured (or predicted) value, in percent.
    pub percent: f64,
    pub threshold: u32,
    /// The absolute amount behind the percent: bytes for memory, tasks for tasks, cores for CPU.
    pub amount: f64,
    /// For forecasts: the horizon in seconds.
    pub horizon_secs: f64,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, t) = (self.percent, self.threshold);
        match (self.resource, self.trigger) {
            (Resource::Cpu, Trigger::Usage) => write!(f, "CPU={p:.1}% (>{t}%)"),
            (Resource::Cpu, Trigger::Throttled) => {
                write!(f, "CPU throttled in {p:.0}% of periods (>{t}%)")
            }
            (Resource::Cpu, Trigger::Pressure) => write!(f, "CPU pressure {p:.1}% (>{t}%)"),
            (Resource::Memory, Trigger::Usage) => {
                write!(
                    f,
                    "Memory={}GB ({p:.1}% >{t}%)",
                    fmt_gib(self.amount / GIB as f64)
                )
            }
            (Resource::Memory, Trigger::Pressure) => write!(f, "memory pressure {p:.1}% (>{t}%)"),
            (Resource::Tasks, Trigger::Usage) => write!(f, "Tasks={} ({p:.1}% >{t}%)", self.amount),
            (r, Trigger::Forecast) => write!(
                f,
                "{} forecast to reach {p:.1}% within {:.0} min (>{t}%)",
                name(r),
                self.horizon_secs / 60.0
            ),
            (r, Trigger::Queue) => write!(
                f,
                "{} needed by the agents starting: {p:.1}% (>{t}%)",
                name(r)
            ),
            (r, _) => write!(f, "{} at {p:.1}% (>{t}%)", name(r)),
        }
    }
}

fn name(r: Resource) -> &'static str {
    match r {
        Resource::Cpu => "CPU",
        Resource::Memory => "Memory",
        Resource::Tasks => "Tasks",
    }
}

/// Usage as percentages of the current limits, and what they trigger.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evaluation {
    /// Percent of the CPU quota (of the host's cores when the quota is unlimited).
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub tasks_percent: Option<f64>,
    /// Triggers that fired at this check, measured first, then anticipated ones.
    pub breached: Vec<Breach>,
    /// Every resource under its scale-down threshold, and the workload idle.
    pub idle_and_under: bool,
    pub up_streak: u32,
    pub down_streak: u32,
    memory_bytes: u64,
    tasks: u64,
    agents: u32,
}

/// Up to three limit changes: (resource, from, to).
pub type Changes = [Option<(Resource, u64, u64)>; 3];

/// Why the controller decided what it did. Rendered into words only when someone reads it
/// ([`Decision::reason`]): a replay of a day makes no strings.
// The adaptive verdict makes one variant large (about 0.5 KB); `Why` stays `Copy` and on the
// stack, since a box per check would cost more than copying it once into the decision.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Why {
    Mode(Mode),
    Oom {
        kills: u64,
        from: u64,
        to: u64,
    },
    Cooldown {
        left_secs: f64,
    },
    AtMaximum,
    QuotaLow {
        remaining: u64,
        floor: u32,
    },
    ScaleUp {
        changes: Changes,
    },
    AtMinimum,
    ScaleDown {
        changes: Changes,
    },
    Breaching {
        need: u32,
    },
    Within {
        need: u32,
    },
    /// The adaptive policy's verdict, moves or hold, with its models and figures.
    Adaptive(Verdict),
}

/// The controller's verdict for one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The change to make, if any: direction, the complete new limits, and the trigger type.
    pub change: Option<(Action, Limits, TriggerType)>,
    pub why: Why,
    pub evaluation: Evaluation,
}

impl Decision {
    /// Why, in words: for the history row when acting, for the status when holding.
    pub fn reason(&self) -> String {
        let ev = &self.evaluation;
        let breaches = || {
            ev.breached
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.why {
            Why::Mode(m) => format!("mode is {}: no automatic action", m.as_str()),
            Why::Oom { kills, from, to } => format!(
                "OOM kill: {kills} new kill(s) at Memory={}GB; {}",
                fmt_gib(ev.memory_bytes as f64 / GIB as f64),
                describe_change(Resource::Memory, from, to)
            ),
            Why::Cooldown { left_secs } => {
                format!("cooldown: {left_secs:.0}s left after the last action")
            }
            Why::AtMaximum => format!(
                "Thresholds breached ({}) but the limits are at their maximum",
                breaches()
            ),
            Why::QuotaLow { remaining, floor } => format!(
                "Thresholds breached ({}) but the API quota is nearly gone ({remaining} < {floor}): agents would stall, no scale-up",
                breaches()
            ),
            Why::ScaleUp { changes } => format!(
                "Thresholds breached: {} ({} consecutive checks); {}",
                breaches(),
                ev.up_streak,
                describe_changes(&changes)
            ),
            Why::AtMinimum => {
                "Idle and under thresholds but the limits are at their minimum".to_string()
            }
            Why::ScaleDown { changes } => format!(
                "Idle and under thresholds: {} ({} consecutive checks); {}",
                usage_words(ev),
                ev.down_streak,
                describe_changes(&changes)
            ),
            Why::Breaching { need } => {
                format!("breached: {}; streak {}/{need}", breaches(), ev.up_streak)
            }
            Why::Adaptive(v) => v.to_string(),
            Why::Within { need } => {
                format!(
                    "within thresholds: {}; idle streak {}/{need}",
                    usage_words(ev),
                    ev.down_streak
                )
            }
        }
    }
}

/// Streaks and the time of the last action for one unit, and what the adaptive policy has
/// learned about it. Everything else is an argument.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Controller {
    up_streak: u32,
    down_streak: u32,
    last_action: Option<Millis>,
    /// Boxed and made at the first check under `adaptive`: about 3.5 KB a unit (the models'
    /// costs and 8 hours of window peaks per resource) that other policies never use.
    learned: Option<Box<Learned>>,
}

/// What a check looks at besides the controller's own state.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub config: &'a Config,
    pub bounds: &'a Bounds,
    pub host: &'a Host,
    pub current: &'a Limits,
    pub usage: &'a Usage,
    pub now: Millis,
    /// Breaches the caller anticipates from forecasts or workload profiles (predictive mode);
    /// they count like measured ones.
    pub anticipated: &'a [Breach],
}

impl Controller {
    /// A controller that remembers when the unit was last resized (after a daemon restart).
    pub fn resume(last_action: Option<Millis>) -> Controller {
        Controller {
            last_action,
            ..Controller::default()
        }
    }

    /// Puts back what the adaptive policy learned before (after a daemon restart).
    pub fn with_learned(mut self, learned: Learned) -> Controller {
        self.learned = Some(Box::new(learned));
        self
    }

    /// What the adaptive policy has learned; `None` before the unit's first check under it.
    pub fn learned(&self) -> Option<&Learned> {
        self.learned.as_deref()
    }

    pub fn last_action(&self) -> Option<Millis> {
        self.last_action
    }

    /// Forgets the streaks (the unit went away; what comes back is a new process), keeping the
    /// time of the last action for the cooldown.
    pub fn reset_streaks(&mut self) {
        self.up_streak = 0;
        self.down_streak = 0;
    }

    /// Records an action taken now (automatic or manual): streaks start over.
    pub fn record_action(&mut self, now: Millis) {
        self.up_streak = 0;
        self.down_streak = 0;
        self.last_action = Some(now);
    }

    /// One check: updates the streaks and says what to do.
    ///
    /// The caller applies the change and then calls [`Controller::record_action`]; a change
    /// that could not be applied is not recorded, and its streak goes on.
    pub fn observe(&mut self, i: Inputs<'_>) -> Decision {
        let mut ev = evaluate(i);
        self.up_streak = if ev.breached.is_empty() {
            0
        } else {
            self.up_streak.saturating_add(1)
        };
        self.down_streak = if ev.idle_and_under {
            self.down_streak.saturating_add(1)
        } else {
            0
        };
        ev.up_streak = self.up_streak;
        ev.down_streak = self.down_streak;
        let cfg = i.config;
        let hold = |why: Why, evaluation: Evaluation| Decision {
            change: None,
            why,
            evaluation,
        };

        if cfg.policy == Policy::Adaptive {
            let learned = self.learned.get_or_insert_default();
            if cfg.mode != Mode::Enabled {
                learned.learn(i.bounds, i.current, i.usage, i.now);
                return hold(Why::Mode(cfg.mode), ev);
            }
            let v = learned.observe(i.bounds, i.current, i.usage, i.now);
            let change = v.limits(i.current).map(|new| {
                let action = if v.grows() {
                    Action::ScaleUp
                } else {
                    Action::ScaleDown
                };
                (action, new, v.trigger())
            });
            return Decision {
                change,
                why: Why::Adaptive(v),
                evaluation: ev,
            };
        }
        if cfg.mode != Mode::Enabled {
            return hold(Why::Mode(cfg.mode), ev);
        }
        // An OOM kill is damage already done: bump memory now, streak and cooldown aside.
        if i.usage.new_oom_kills > 0
            && let Some(cur) = i.current.memory_max
        {
            let bumped = ((cur as f64 * cfg.oom_bump_factor) as u64).max(cur + 256 * MIB);
            let new = i.bounds.clamp(Resource::Memory, round_up_gib(bumped));
            if new > cur {
                let why = Why::Oom {
                    kills: i.usage.new_oom_kills,
                    from: cur,
                    to: new,
                };
                let limits = i.current.with(Resource::Memory, new);
                return Decision {
                    change: Some((Action::ScaleUp, limits, TriggerType::Oom)),
                    why,
                    evaluation: ev,
                };
            }
        }
        if let Some(last) = self.last_action {
            let left = f64::from(cfg.scale_cooldown_seconds) - i.now.secs_since(last);
            if left > 0.0 {
                return hold(Why::Cooldown { left_secs: left }, ev);
            }
        }
        if self.up_streak >= cfg.consecutive_scale_up_checks {
            if let Some(remaining) = i.usage.signals.api_quota_remaining
                && cfg.api_quota_floor > 0
                && remaining < u64::from(cfg.api_quota_floor)
            {
                return hold(
                    Why::QuotaLow {
                        remaining,
                        floor: cfg.api_quota_floor,
                    },
                    ev,
                );
            }
            let mut new = *i.current;
            let mut changes: Changes = [None; 3];
            for (slot, r) in Resource::ALL.into_iter().enumerate() {
                if !ev.breached.iter().any(|b| b.resource == r) {
                    continue;
                }
                let Some(cur) = i.current.get(r) else {
                    continue;
                };
                // Clamped on both sides: a limit below the hard minimum (set by hand, or
                // before the config changed) comes up to it.
                let target = i.bounds.clamp(r, grow(cfg, r, cur));
                if target > cur {
                    new = new.with(r, target);
                    changes[slot] = Some((r, cur, target));
                }
            }
            if changes.iter().all(Option::is_none) {
                return hold(Why::AtMaximum, ev);
            }
            let trigger = trigger_type(&ev.breached);
            return Decision {
                change: Some((Action::ScaleUp, new, trigger)),
                why: Why::ScaleUp { changes },
                evaluation: ev,
            };
        }
        if self.down_streak >= cfg.consecutive_scale_down_checks {
            let mut new = *i.current;
            let mut changes: Changes = [None; 3];
            for (slot, r) in Resource::ALL.into_iter().enumerate() {
                let Some(cur) = i.current.get(r) else {
                    continue;
                };
                // Clamped on both sides: a limit above the hard maximum comes down to it.
                let target = i
                    .bounds
                    .clamp(r, shrink(cfg, r, cur).max(floor_for_usage(cfg, r, i.usage)));
                if target < cur {
                    new = new.with(r, target);
                    changes[slot] = Some((r, cur, target));
                }
            }
            if changes.iter().all(Option::is_none) {
                return hold(Why::AtMinimum, ev);
            }
            return Decision {
                change: Some((Action::ScaleDown, new, TriggerType::Threshold)),
                why: Why::ScaleDown { changes },
                evaluation: ev,
            };
        }
        if ev.breached.is_empty() {
            hold(
                Why::Within {
                    need: cfg.consecutive_scale_down_checks,
                },
                ev,
            )
        } else {
            hold(
                Why::Breaching {
                    need: cfg.consecutive_scale_up_checks,
                },
                ev,
            )
        }
    }
}

/// The history's `trigger_type`: the kind of the strongest evidence among the breaches.
fn trigger_type(breaches: &[Breach]) -> TriggerType {
    let has = |t: Trigger| breaches.iter().any(|b| b.trigger == t);
    if has(Trigger::Usage) {
        TriggerType::Threshold
    } else if has(Trigger::Throttled) || has(Trigger::Pressure) {
        TriggerType::Pressure
    } else if has(Trigger::Queue) {
        TriggerType::Queue
    } else {
        TriggerType::Predictive
    }
}

/// Percentages and triggers for one check; no state.
pub fn evaluate(i: Inputs<'_>) -> Evaluation {
    let (cfg, u) = (i.config, i.usage);
    let cpu_percent = u.cpu_cores.map(|cores| match i.current.cpu_quota {
        Some(q) if q > 0 => cores * 100.0 / (f64::from(q) / 100.0),
        _ => cores * 100.0 / f64::from(i.host.cores.max(1)),
    });
    let memory_percent = i
        .current
        .memory_max
        .filter(|m| *m > 0)
        .map(|m| u.memory_bytes as f64 * 100.0 / m as f64);
    let tasks_percent = i
        .current
        .tasks_max
        .filter(|t| *t > 0)
        .map(|t| u.tasks as f64 * 100.0 / t as f64);

    let mut breached = Vec::new();
    let mut check = |resource, trigger, value: Option<f64>, threshold: u32, amount: f64| {
        if let Some(percent) = over(value, threshold) {
            breached.push(Breach {
                resource,
                trigger,
                percent,
                threshold,
                amount,
                horizon_secs: 0.0,
            });
        }
    };
    let cores = u.cpu_cores.unwrap_or(0.0);
    check(
        Resource::Cpu,
        Trigger::Usage,
        cpu_percent,
        cfg.scale_up_cpu_percent,
        cores,
    );
    check(
        Resource::Cpu,
        Trigger::Throttled,
        u.throttled_ratio.map(|t| t * 100.0),
        cfg.scale_up_throttled_percent,
        cores,
    );
    check(
        Resource::Cpu,
        Trigger::Pressure,
        u.cpu_pressure,
        cfg.scale_up_cpu_pressure_percent,
        cores,
    );
    let mem = u.memory_bytes as f64;
    check(
        Resource::Memory,
        Trigger::Usage,
        memory_percent,
        cfg.scale_up_memory_percent,
        mem,
    );
    check(
        Resource::Memory,
        Trigger::Pressure,
        u.memory_pressure,
        cfg.scale_up_memory_pressure_percent,
        mem,
    );
    check(
        Resource::Tasks,
        Trigger::Usage,
        tasks_percent,
        cfg.scale_up_tasks_percent,
        u.tasks as f64,
    );
    breached.extend_from_slice(i.anticipated);

    // Scale-down needs data on every limited resource, and every one of them low.
    let under = |p: Option<f64>, limited: bool, thr: u32| match p {
        Some(p) => p < f64::from(thr),
        None => !limited,
    };
    let idle_and_under = u.cpu_cores.is_some()
        && under(
            cpu_percent,
            i.current.cpu_quota.is_some(),
            cfg.scale_down_cpu_percent,
        )
        && under(
            memory_percent,
            i.current.memory_max.is_some(),
            cfg.scale_down_memory_percent,
        )
        && under(
            tasks_percent,
            i.current.tasks_max.is_some(),
            cfg.scale_down_tasks_percent,
        )
        && breached.is_empty()
        && u.signals.idle();

    Evaluation {
        cpu_percent,
        memory_percent,
        tasks_percent,
        breached,
        idle_and_under,
        up_streak: 0,
        down_streak: 0,
        memory_bytes: u.memory_bytes,
        tasks: u.tasks,
        agents: u.signals.agents + u.signals.testing_agents,
    }
}

/// The value when an optional trigger is on (threshold > 0) and exceeded.
fn over(value: Option<f64>, threshold: u32) -> Option<f64> {
    value.filter(|v| threshold > 0 && *v > f64::from(threshold))
}

/// The next limit up: the factor, at least the minimum step; memory in whole GiB.
fn grow(cfg: &Config, r: Resource, cur: u64) -> u64 {
    let by_factor = (cur as f64 * cfg.scale_up_factor).ceil() as u64;
    let target = by_factor.max(cur.saturating_add(step(cfg, r)));
    if r == Resource::Memory {
        round_up_gib(target)
    } else {
        target
    }
}

/// The next limit down: the factor, at least the minimum step; memory in whole GiB.
fn shrink(cfg: &Config, r: Resource, cur: u64) -> u64 {
    let by_factor = (cur as f64 * cfg.scale_down_factor).floor() as u64;
    let target = by_factor.min(cur.saturating_sub(step(cfg, r)));
    if r == Resource::Memory {
        (target / GIB) * GIB
    } else {
        target
    }
}

fn step(cfg: &Config, r: Resource) -> u64 {
    match r {
        Resource::Cpu => u64::from(cfg.min_step_cpu_quota),
        Resource::Memory => u64::from(cfg.min_step_memory_gb) * GIB,
        Resource::Tasks => u64::from(cfg.min_step_tasks),
    }
}

/// The lowest limit that keeps today's usage under the scale-up threshold: a smaller one
/// would trigger a scale-up at the next check (thrash), or for memory an OOM kill.
fn floor_for_usage(cfg: &Config, r: Resource, u: &Usage) -> u64 {
    let (used, thr) = match r {
        Resource::Cpu => (u.cpu_cores.unwrap_or(0.0) * 100.0, cfg.scale_up_cpu_percent),
        Resource::Memory => (u.memory_bytes as f64, cfg.scale_up_memory_percent),
        Resource::Tasks => (u.tasks as f64, cfg.scale_up_tasks_percent),
    };
    let floor = (used * 100.0 / f64::from(thr.max(1))).ceil() as u64;
    if r == Resource::Memory {
        round_up_gib(floor)
    } else {
        floor
    }
}

fn round_up_gib(bytes: u64) -> u64 {
    bytes.div_ceil(GIB).saturating_mul(GIB)
}

fn describe_change(r: Resource, from: u64, to: u64) -> String {
    match r {
        Resource::Cpu => format!("CPU {from}%->{to}%"),
        Resource::Memory => format!(
            "Memory {}GB->{}GB",
            fmt_gib(from as f64 / GIB as f64),
            fmt_gib(to as f64 / GIB as f64)
        ),
        Resource::Tasks => format!("Tasks {from}->{to}"),
    }
}

fn describe_changes(changes: &Changes) -> String {
    changes
        .iter()
        .flatten()
        .map(|(r, from, to)| describe_change(*r, *from, *to))
        .collect::<Vec<_>>()
        .join(", ")
}

fn usage_words(ev: &Evaluation) -> String {
    let pct = |p: Option<f64>| p.map_or_else(|| "n/a".to_string(), |p| format!("{p:.1}%"));
    format!(
        "CPU={}, Memory={}GB ({}), Tasks={} ({}), agents={}",
        pct(ev.cpu_percent),
        fmt_gib(ev.memory_bytes as f64 / GIB as f64),
        pct(ev.memory_percent),
        ev.tasks,
        pct(ev.tasks_percent),
        ev.agents
    )
}

#[cfg(test)]
mod tests;
