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

use std::fmt::Write;

use crate::config::{Config, Mode};
use crate::limits::{Bounds, GIB, Host, Limits, MIB, Resource, fmt_gib};
use crate::sample::Usage;
use crate::time::Millis;

/// Which way a change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ScaleUp,
    ScaleDown,
}

impl Action {
    /// The spec's history `action` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ScaleUp => "scale_up",
            Action::ScaleDown => "scale_down",
        }
    }
}

/// Usage as percentages of the current limits, and what they trigger.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evaluation {
    /// Percent of the CPU quota (of the host's cores when the quota is unlimited).
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub tasks_percent: Option<f64>,
    /// Resources over a scale-up trigger at this check, each with its reason.
    pub breached: Vec<(Resource, String)>,
    /// Every resource under its scale-down threshold, and the workload idle.
    pub idle_and_under: bool,
    pub up_streak: u32,
    pub down_streak: u32,
}

/// The controller's verdict for one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The change to make, if any: direction, the complete new limits, and the trigger type.
    pub change: Option<(Action, Limits, &'static str)>,
    /// Why, in words: for the history row when acting, for the status when holding.
    pub reason: String,
    pub evaluation: Evaluation,
}

/// Streaks and the time of the last action for one unit. Everything else is an argument.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Controller {
    up_streak: u32,
    down_streak: u32,
    last_action: Option<Millis>,
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
}

impl Controller {
    /// A controller that remembers when the unit was last resized (after a daemon restart).
    pub fn resume(last_action: Option<Millis>) -> Controller {
        Controller {
            last_action,
            ..Controller::default()
        }
    }

    pub fn last_action(&self) -> Option<Millis> {
        self.last_action
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
        let hold = |reason: String, ev: Evaluation| Decision {
            change: None,
            reason,
            evaluation: ev,
        };

        if cfg.mode != Mode::Enabled {
            return hold(
                format!("mode is {}: no automatic action", cfg.mode.as_str()),
                ev,
            );
        }
        // An OOM kill is damage already done: bump memory now, streak and cooldown aside.
        if i.usage.new_oom_kills > 0
            && let Some(cur) = i.current.memory_max
        {
            {
                let bumped = ((cur as f64 * cfg.oom_bump_factor) as u64).max(cur + 256 * MIB);
                let new = i.bounds.clamp(Resource::Memory, round_up_gib(bumped));
                if new > cur {
                    let reason = format!(
                        "OOM kill: {} new kill(s) at Memory={}GB; Memory {}GB->{}GB",
                        i.usage.new_oom_kills,
                        fmt_gib(i.usage.memory_bytes as f64 / GIB as f64),
                        fmt_gib(cur as f64 / GIB as f64),
                        fmt_gib(new as f64 / GIB as f64)
                    );
                    let new_limits = i.current.with(Resource::Memory, new);
                    return Decision {
                        change: Some((Action::ScaleUp, new_limits, "oom")),
                        reason,
                        evaluation: ev,
                    };
                }
            }
        }
        if let Some(last) = self.last_action {
            let left = f64::from(cfg.scale_cooldown_seconds) - i.now.secs_since(last);
            if left > 0.0 {
                return hold(
                    format!("cooldown: {left:.0}s left after the last action"),
                    ev,
                );
            }
        }
        if self.up_streak >= cfg.consecutive_scale_up_checks {
            let breached: Vec<Resource> = ev.breached.iter().map(|(r, _)| *r).collect();
            let mut new = *i.current;
            let mut changes = String::new();
            for r in breached {
                let Some(cur) = i.current.get(r) else {
                    continue;
                };
                let target = grow(cfg, r, cur);
                let target = target.min(i.bounds.range(r).1);
                if target > cur {
                    new = new.with(r, target);
                    let _ = write!(changes, ", {}", describe_change(r, cur, target));
                }
            }
            let why = ev
                .breached
                .iter()
                .map(|(_, s)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if changes.is_empty() {
                return hold(
                    format!("Thresholds breached ({why}) but the limits are at their maximum"),
                    ev,
                );
            }
            let trigger = if why.contains("throttled") || why.contains("pressure") {
                "pressure"
            } else {
                "threshold"
            };
            let reason = format!(
                "Thresholds breached: {why} ({} consecutive checks);{}",
                self.up_streak,
                &changes[1..]
            );
            return Decision {
                change: Some((Action::ScaleUp, new, trigger)),
                reason,
                evaluation: ev,
            };
        }
        if self.down_streak >= cfg.consecutive_scale_down_checks {
            let mut new = *i.current;
            let mut changes = String::new();
            for r in Resource::ALL {
                let Some(cur) = i.current.get(r) else {
                    continue;
                };
                let target = shrink(cfg, r, cur)
                    .max(floor_for_usage(cfg, r, i.usage))
                    .max(i.bounds.range(r).0);
                if target < cur {
                    new = new.with(r, target);
                    let _ = write!(changes, ", {}", describe_change(r, cur, target));
                }
            }
            if changes.is_empty() {
                return hold(
                    "Idle and under thresholds but the limits are at their minimum".to_string(),
                    ev,
                );
            }
            let reason = format!(
                "Idle and under thresholds: {} ({} consecutive checks);{}",
                usage_words(i, &ev),
                self.down_streak,
                &changes[1..]
            );
            return Decision {
                change: Some((Action::ScaleDown, new, "threshold")),
                reason,
                evaluation: ev,
            };
        }
        let reason = if ev.breached.is_empty() {
            format!(
                "within thresholds: {}; idle streak {}/{}",
                usage_words(i, &ev),
                self.down_streak,
                cfg.consecutive_scale_down_checks
            )
        } else {
            let why = ev
                .breached
                .iter()
                .map(|(_, s)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "breached: {why}; streak {}/{}",
                self.up_streak, cfg.consecutive_scale_up_checks
            )
        };
        hold(reason, ev)
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
    let mut cpu_why = Vec::new();
    if let Some(p) = cpu_percent.filter(|p| *p > f64::from(cfg.scale_up_cpu_percent)) {
        cpu_why.push(format!("CPU={p:.1}% (>{}%)", cfg.scale_up_cpu_percent));
    }
    if let Some(t) = over(
        u.throttled_ratio.map(|t| t * 100.0),
        cfg.scale_up_throttled_percent,
    ) {
        cpu_why.push(format!(
            "CPU throttled in {t:.0}% of periods (>{}%)",
            cfg.scale_up_throttled_percent
        ));
    }
    if let Some(p) = over(u.cpu_pressure, cfg.scale_up_cpu_pressure_percent) {
        cpu_why.push(format!(
            "CPU pressure {p:.1}% (>{}%)",
            cfg.scale_up_cpu_pressure_percent
        ));
    }
    if !cpu_why.is_empty() {
        breached.push((Resource::Cpu, cpu_why.join(", ")));
    }
    let mut mem_why = Vec::new();
    if let Some(p) = memory_percent.filter(|p| *p > f64::from(cfg.scale_up_memory_percent)) {
        mem_why.push(format!(
            "Memory={}GB ({p:.1}% >{}%)",
            fmt_gib(u.memory_bytes as f64 / GIB as f64),
            cfg.scale_up_memory_percent
        ));
    }
    if let Some(p) = over(u.memory_pressure, cfg.scale_up_memory_pressure_percent) {
        mem_why.push(format!(
            "memory pressure {p:.1}% (>{}%)",
            cfg.scale_up_memory_pressure_percent
        ));
    }
    if !mem_why.is_empty() {
        breached.push((Resource::Memory, mem_why.join(", ")));
    }
    if let Some(p) = tasks_percent.filter(|p| *p > f64::from(cfg.scale_up_tasks_percent)) {
        breached.push((
            Resource::Tasks,
            format!(
                "Tasks={} ({p:.1}% >{}%)",
                u.tasks, cfg.scale_up_tasks_percent
            ),
        ));
    }

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

fn usage_words(i: Inputs<'_>, ev: &Evaluation) -> String {
    let pct = |p: Option<f64>| p.map_or_else(|| "n/a".to_string(), |p| format!("{p:.1}%"));
    let s = i.usage.signals;
    format!(
        "CPU={}, Memory={}GB ({}), Tasks={} ({}), agents={}",
        pct(ev.cpu_percent),
        fmt_gib(i.usage.memory_bytes as f64 / GIB as f64),
        pct(ev.memory_percent),
        i.usage.tasks,
        pct(ev.tasks_percent),
        s.agents + s.testing_agents
    )
}

#[cfg(test)]
mod tests;
