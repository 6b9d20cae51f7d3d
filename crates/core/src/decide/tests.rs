//! Table-driven tests of the controller: each case is a config tweak, starting limits and a
//! sequence of checks; `check` runs them one second apart and compares every verdict.

use super::*;
use crate::config::Policy;
use crate::decide::{Breach, Trigger};
use crate::sample::Signals;

/// The spec's machine: 12 cores, 251 GiB.
const SPEC_HOST: Host = Host {
    cores: 12,
    memory_bytes: 251 * GIB,
    max_tasks: 4_194_304,
};
const TWO_CORES: Host = Host {
    cores: 2,
    memory_bytes: 24 * GIB,
    max_tasks: 4_194_304,
};

/// One check's usage: cores, GiB, tasks, agents, features pending, new OOM kills.
#[derive(Clone, Copy)]
struct S(f64, f64, u64, u32, u32, u64);

const BUSY: S = S(1.8, 28.5, 230, 2, 5, 0);
const QUIET: S = S(0.2, 4.0, 20, 0, 0, 0);

fn usage(at: Millis, s: S) -> Usage {
    Usage {
        at,
        cpu_cores: Some(s.0),
        memory_bytes: (s.1 * GIB as f64) as u64,
        tasks: s.2,
        processes: s.2,
        signals: Signals {
            agents: s.3,
            testing_agents: 0,
            features_pending: Some(s.4),
            api_quota_remaining: None,
        },
        new_oom_kills: s.5,
        ..Usage::default()
    }
}

/// What a check should say: nothing, or this change with a reason containing the text.
enum Want {
    Hold(&'static str),
    Up(Limits, &'static str),
    Down(Limits, &'static str),
}
use Want::*;

fn check(cfg: Config, host: Host, start: Limits, checks: &[(S, Want)]) {
    let bounds = Bounds::new(&cfg, &host).expect("feasible bounds");
    let mut ctl = Controller::default();
    let mut current = start;
    for (n, (s, want)) in checks.iter().enumerate() {
        let now = Millis::from_secs(n as i64);
        let u = usage(now, *s);
        let d = ctl.observe(Inputs {
            config: &cfg,
            bounds: &bounds,
            host: &host,
            current: &current,
            usage: &u,
            now,
            anticipated: &[],
        });
        let (action, limits, text) = match want {
            Hold(t) => (None, current, *t),
            Up(l, t) => (Some(Action::ScaleUp), *l, *t),
            Down(l, t) => (Some(Action::ScaleDown), *l, *t),
        };
        assert_eq!(d.change.map(|c| c.0), action, "check {n}: {}", d.reason());
        assert!(
            d.reason().contains(text),
            "check {n}: {:?} lacks {text:?}",
            d.reason()
        );
        if let Some((_, new, _)) = d.change {
            assert_eq!(new, limits, "check {n}: {}", d.reason());
            bounds.check(&new).expect("decisions stay in bounds");
            current = new;
            ctl.record_action(now);
        }
    }
}

fn cfg(changes: &[(&str, f64)]) -> Config {
    let changes: Vec<_> = changes
        .iter()
        .map(|(k, v)| (k.to_string(), crate::FieldValue::Number(*v)))
        .collect();
    Config::default()
        .apply(&changes)
        .expect("valid test config")
}

#[test]
fn spec_example_scales_every_breached_resource_after_three_checks() {
    check(
        Config::default(),
        SPEC_HOST,
        Limits::new(200, 32, 250),
        &[
            (BUSY, Hold("streak 1/3")),
            (BUSY, Hold("streak 2/3")),
            (
                BUSY,
                Up(
                    Limits::new(300, 48, 375),
                    "Thresholds breached: CPU=90.0% (>85%), Memory=28.5GB (89.1% >80%), Tasks=230 (92.0% >85%)",
                ),
            ),
        ],
    );
}

#[test]
fn only_breached_resources_grow() {
    let cpu_only = S(1.8, 4.0, 20, 2, 5, 0);
    check(
        Config::default(),
        SPEC_HOST,
        Limits::new(200, 32, 250),
        &[
            (cpu_only, Hold("")),
            (cpu_only, Hold("")),
            (cpu_only, Up(Limits::new(300, 32, 250), "CPU 200%->300%")),
        ],
    );
}

#[test]
fn a_broken_streak_starts_over_and_flapping_never_scales() {
    let calm = S(1.0, 4.0, 20, 2, 5, 0);
    let mut checks = Vec::new();
    for _ in 0..10 {
        checks.push((BUSY, Hold("streak 1/3")));
        checks.push((BUSY, Hold("streak 2/3")));
        checks.push((calm, Hold("within thresholds")));
    }
    check(
        Config::default(),
        SPEC_HOST,
        Limits::new(200, 32, 250),
        &checks,
    );
}

#[test]
fn minimum_steps_and_rounding() {
    // 100% x1.5 = 150 = 100 + 50; 8 GiB x1.5 = 12 < 8 + 8 = 16; 100 tasks x1.5 = 150 = 100 + 50.
    let busy = S(0.9, 7.0, 90, 1, 1, 0);
    let c = cfg(&[("consecutive_scale_up_checks", 1.0)]);
    check(
        c,
        SPEC_HOST,
        Limits::new(100, 8, 100),
        &[(busy, Up(Limits::new(150, 16, 150), "Memory 8GB->16GB"))],
    );
    // 120% x1.5 = 180 > 170.
    let c = cfg(&[("consecutive_scale_up_checks", 1.0)]);
    check(
        c,
        SPEC_HOST,
        Limits::new(120, 64, 1000),
        &[(
            S(1.1, 1.0, 10, 1, 1, 0),
            Up(Limits::new(180, 64, 1000), "CPU 120%->180%"),
        )],
    );
}

#[test]
fn cooldown_blocks_a_second_action() {
    let c = cfg(&[
        ("consecutive_scale_up_checks", 1.0),
        ("scale_cooldown_seconds", 3.0),
    ]);
    let hot = S(10.0, 1.0, 10, 1, 1, 0);
    check(
        c,
        SPEC_HOST,
        Limits::new(100, 64, 1000),
        &[
            (hot, Up(Limits::new(150, 64, 1000), "CPU 100%->150%")),
            (hot, Hold("cooldown: 2s left")),
            (hot, Hold("cooldown: 1s left")),
            (hot, Up(Limits::new(225, 64, 1000), "CPU 150%->225%")),
        ],
    );
}

#[test]
fn capacity_minus_reserve_caps_scale_up() {
    // 12 cores minus 1 reserved: at most 800 (the hard max) anyway; on 2 cores, 100.
    let c = cfg(&[("consecutive_scale_up_checks", 1.0)]);
    check(
        c.clone(),
        SPEC_HOST,
        Limits::new(700, 64, 1000),
        &[(
            S(6.9, 1.0, 10, 1, 1, 0),
            Up(Limits::new(800, 64, 1000), "CPU 700%->800%"),
        )],
    );
    check(
        c.clone(),
        SPEC_HOST,
        Limits::new(800, 64, 1000),
        &[(S(7.9, 1.0, 10, 1, 1, 0), Hold("at their maximum"))],
    );
    let c = cfg(&[
        ("consecutive_scale_up_checks", 1.0),
        ("min_cpu_quota", 20.0),
        ("min_memory_max", 1.0),
    ]);
    check(
        c,
        TWO_CORES,
        Limits::new(50, 8, 1000),
        &[(
            S(0.5, 1.0, 10, 1, 1, 0),
            Up(Limits::new(100, 8, 1000), "CPU 50%->100%"),
        )],
    );
}

#[test]
fn scale_down_needs_idle_and_every_resource_low() {
    let c = cfg(&[("consecutive_scale_down_checks", 2.0)]);
    let busy_queue = S(0.2, 4.0, 20, 2, 5, 0);
    check(
        c.clone(),
        SPEC_HOST,
        Limits::new(300, 48, 375),
        &[
            (busy_queue, Hold("idle streak 0/2")),
            (busy_queue, Hold("idle streak 0/2")),
            (QUIET, Hold("idle streak 1/2")),
            // 300 x0.6 = 180 < 250; 48 x0.6 = 28.8 -> 28 < 40; 375 x0.6 = 225 < 325.
            (
                QUIET,
                Down(Limits::new(180, 28, 225), "Idle and under thresholds"),
            ),
        ],
    );
    // Memory at 45% is not under 50%... but 55% is not: no scale-down.
    let mem_mid = S(0.2, 26.0, 20, 0, 0, 0);
    check(
        c,
        SPEC_HOST,
        Limits::new(300, 48, 375),
        &[
            (mem_mid, Hold("idle streak 0/2")),
            (mem_mid, Hold("idle streak 0/2")),
        ],
    );
}

#[test]
fn scale_down_never_below_minimum_nor_usage_headroom() {
    let c = cfg(&[
        ("consecutive_scale_down_checks", 1.0),
        ("min_memory_max", 1.0),
        ("min_cpu_quota", 10.0),
        ("scale_down_memory_percent", 60.0),
    ]);
    // 3.9 cores is 39% of 1000: the floor keeps it under 85%: ceil(390 / 0.85) = 459.
    // Memory 10 GiB of 24 (41.7%): x0.6 = 14.4 -> 14, floor ceil(10 / 0.8) = 13 -> 14.
    check(
        c.clone(),
        SPEC_HOST,
        Limits::new(1000, 24, 1000),
        &[(
            S(3.9, 10.0, 10, 0, 0, 0),
            Down(Limits::new(600, 14, 600), "CPU 1000%->600%"),
        )],
    );
    check(
        c,
        SPEC_HOST,
        Limits::new(800, 32, 1000),
        &[(
            S(3.1, 10.0, 10, 0, 0, 0),
            Down(Limits::new(480, 19, 600), "Memory 32GB->19GB"),
        )],
    );
    let c = cfg(&[("consecutive_scale_down_checks", 1.0)]);
    check(
        c,
        SPEC_HOST,
        Limits::new(100, 8, 100),
        &[(S(0.2, 2.0, 20, 0, 0, 0), Hold("at their minimum"))],
    );
}

#[test]
fn oom_kill_bumps_memory_at_once() {
    let c = cfg(&[("min_memory_max", 1.0), ("scale_cooldown_seconds", 600.0)]);
    let oom = S(0.1, 0.9, 10, 1, 1, 1);
    check(
        c,
        SPEC_HOST,
        Limits::new(100, 1, 1000),
        &[
            (
                oom,
                Up(Limits::new(100, 2, 1000), "OOM kill: 1 new kill(s)"),
            ),
            // Another OOM right after: cooldown does not hold an OOM bump back.
            (oom, Up(Limits::new(100, 3, 1000), "Memory 2GB->3GB")),
        ],
    );
}

#[test]
fn modes_other_than_enabled_take_no_action() {
    for mode in [Mode::Manual, Mode::Disabled] {
        let c = Config {
            mode,
            consecutive_scale_up_checks: 1,
            ..Config::default()
        };
        check(
            c,
            SPEC_HOST,
            Limits::new(200, 32, 250),
            &[
                (BUSY, Hold("no automatic action")),
                (S(0.1, 0.5, 10, 0, 0, 3), Hold("")),
            ],
        );
    }
}

#[test]
fn unlimited_and_unknown_values() {
    let c = cfg(&[
        ("consecutive_scale_up_checks", 1.0),
        ("consecutive_scale_down_checks", 1.0),
    ]);
    let bounds = Bounds::new(&c, &SPEC_HOST).expect("bounds");
    let unlimited = Limits {
        cpu_quota: None,
        memory_max: None,
        tasks_max: None,
    };
    // Unlimited quota: percent of the host's cores; nothing to grow.
    let u = usage(Millis(0), S(11.5, 1.0, 10, 1, 1, 0));
    let mut ctl = Controller::default();
    let d = ctl.observe(Inputs {
        config: &c,
        bounds: &bounds,
        host: &SPEC_HOST,
        current: &unlimited,
        usage: &u,
        now: Millis(0),
        anticipated: &[],
    });
    assert!(d.change.is_none(), "{}", d.reason());
    assert!((d.evaluation.cpu_percent.expect("cpu") - 95.83).abs() < 0.01);
    // No CPU rate yet (first sample): no breach and no idle streak.
    let mut u = usage(Millis(0), QUIET);
    u.cpu_cores = None;
    let d = Controller::default().observe(Inputs {
        config: &c,
        bounds: &bounds,
        host: &SPEC_HOST,
        current: &Limits::new(800, 64, 1000),
        usage: &u,
        now: Millis(0),
        anticipated: &[],
    });
    assert_eq!(
        (d.change, d.evaluation.idle_and_under),
        (None, false),
        "{}",
        d.reason()
    );
}

#[test]
fn pressure_triggers_count_as_cpu_and_memory_breaches() {
    let c = cfg(&[("consecutive_scale_up_checks", 1.0)]);
    let bounds = Bounds::new(&c, &SPEC_HOST).expect("bounds");
    let mut u = usage(Millis(0), S(1.6, 4.0, 20, 1, 1, 0)); // 80% of 200: under 85%
    u.throttled_ratio = Some(0.5);
    u.memory_pressure = Some(25.0);
    let d = Controller::default().observe(Inputs {
        config: &c,
        bounds: &bounds,
        host: &SPEC_HOST,
        current: &Limits::new(200, 32, 250),
        usage: &u,
        now: Millis(0),
        anticipated: &[],
    });
    let (action, new, trigger) = d.change.expect("scale up");
    assert_eq!(
        (action, new, trigger),
        (
            Action::ScaleUp,
            Limits::new(300, 48, 250),
            TriggerType::Pressure
        ),
        "{}",
        d.reason()
    );
    assert!(
        d.reason().contains("throttled in 50% of periods"),
        "{}",
        d.reason()
    );
}

#[test]
fn policies_change_when_and_how_much() {
    let hot = S(1.8, 1.0, 10, 1, 1, 0); // 90% of 200: over balanced and aggressive, not conservative's 90
    let agg = Config::default().with_policy(Policy::Aggressive);
    check(
        agg,
        SPEC_HOST,
        Limits::new(200, 32, 250),
        &[
            (hot, Hold("")),
            (hot, Up(Limits::new(400, 32, 250), "CPU 200%->400%")),
        ],
    );
    let cons = Config::default().with_policy(Policy::Conservative);
    check(
        cons,
        SPEC_HOST,
        Limits::new(200, 32, 250),
        &[
            (hot, Hold("within")),
            (hot, Hold("within")),
            (hot, Hold("within")),
            (hot, Hold("within")),
            (hot, Hold("within")),
            (hot, Hold("within")),
        ],
    );
}

#[test]
fn anticipated_breaches_and_the_api_quota_floor() {
    let c = cfg(&[
        ("consecutive_scale_up_checks", 1.0),
        ("api_quota_floor", 1000.0),
    ]);
    let bounds = Bounds::new(&c, &SPEC_HOST).expect("bounds");
    let current = Limits::new(200, 32, 250);
    let forecast = Breach {
        resource: Resource::Cpu,
        trigger: Trigger::Forecast,
        percent: 97.0,
        threshold: 85,
        amount: 1.94,
        horizon_secs: 900.0,
    };
    let check = |quota: Option<u64>,
                 anticipated: &[Breach],
                 want: Option<(Limits, TriggerType)>,
                 text: &str| {
        let mut u = usage(Millis(0), S(1.0, 4.0, 20, 2, 5, 0)); // 50% CPU: no measured breach
        u.signals.api_quota_remaining = quota;
        let inputs = Inputs {
            config: &c,
            bounds: &bounds,
            host: &SPEC_HOST,
            current: &current,
            usage: &u,
            now: Millis(0),
            anticipated,
        };
        let d = Controller::default().observe(inputs);
        assert_eq!(d.change.map(|(_, l, t)| (l, t)), want, "{}", d.reason());
        assert!(d.reason().contains(text), "{:?} lacks {text:?}", d.reason());
    };
    check(
        None,
        &[forecast],
        Some((Limits::new(300, 32, 250), TriggerType::Predictive)),
        "CPU forecast to reach 97.0% within 15 min (>85%)",
    );
    check(
        Some(5000),
        &[forecast],
        Some((Limits::new(300, 32, 250), TriggerType::Predictive)),
        "CPU 200%->300%",
    );
    check(
        Some(10),
        &[forecast],
        None,
        "API quota is nearly gone (10 < 1000)",
    );
    check(None, &[], None, "within thresholds");
    let queue = Breach {
        trigger: Trigger::Queue,
        resource: Resource::Memory,
        percent: 120.0,
        threshold: 80,
        amount: 0.0,
        horizon_secs: 0.0,
    };
    check(
        None,
        &[queue],
        Some((Limits::new(200, 48, 250), TriggerType::Queue)),
        "Memory needed by the agents starting: 120.0% (>80%)",
    );
}

#[test]
fn limits_outside_the_bounds_come_back_inside() {
    // Set by hand at 1600% with a maximum of 800: an idle scale-down lands on the maximum,
    // not at 960%.
    let c = cfg(&[
        ("consecutive_scale_down_checks", 1.0),
        ("min_memory_max", 1.0),
    ]);
    check(
        c,
        SPEC_HOST,
        Limits::new(1600, 64, 1000),
        &[(
            S(0.1, 1.0, 10, 0, 0, 0),
            Down(Limits::new(800, 38, 600), "CPU 1600%->800%"),
        )],
    );
    // Below the minimum with no minimum step: a scale-up reaches at least the minimum.
    let c = cfg(&[
        ("consecutive_scale_up_checks", 1.0),
        ("min_step_cpu_quota", 0.0),
        ("scale_up_factor", 1.1),
    ]);
    check(
        c,
        SPEC_HOST,
        Limits::new(20, 64, 1000),
        &[(
            S(0.2, 1.0, 10, 1, 1, 0),
            Up(Limits::new(100, 64, 1000), "CPU 20%->100%"),
        )],
    );
}
