use super::*;
use crate::config::{Config, Policy};
use crate::decide::Controller;
use crate::decide::Inputs;
use crate::limits::Host;

fn host() -> Host {
    Host {
        cores: 8,
        memory_bytes: 32 * GIB,
        max_tasks: 4_194_304,
    }
}

/// Drives the controller under `adaptive`, one check a minute, with `demand` as (cores, GiB);
/// usage is capped at the limits as a cgroup caps it, and an OOM kill is reported when memory
/// demand passes `MemoryMax`. Returns the limits in force at each minute and the reasons of
/// the changes.
fn run(demand: &[(f64, f64)]) -> (Vec<Limits>, Vec<String>) {
    let cfg = Config::default().with_policy(Policy::Adaptive);
    let host = host();
    let bounds = Bounds::new(&cfg, &host).expect("feasible");
    let mut current = Limits {
        cpu_quota: Some(bounds.cpu().1),
        memory_max: Some(bounds.memory().1),
        tasks_max: None,
    };
    let mut ctl = Controller::default();
    let (mut limits, mut reasons) = (Vec::new(), Vec::new());
    for (i, &(c, g)) in demand.iter().enumerate() {
        limits.push(current);
        let now = Millis::from_secs(i as i64 * 60);
        let cap_c = f64::from(current.cpu_quota.unwrap_or(0)) / 100.0;
        let cap_m = current.memory_max.unwrap_or(0) as f64;
        let m = g * GIB as f64;
        let mut usage = Usage::from_demand(now, c.min(cap_c), m.min(cap_m)).expect("valid");
        usage.new_oom_kills = u64::from(m > cap_m);
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
            assert!(bounds.check(&new).is_ok(), "{new:?} out of {bounds:?}");
            reasons.push(d.reason());
            current = new;
            ctl.record_action(now);
        }
    }
    (limits, reasons)
}

fn cpu_at(l: &[Limits], minute: usize) -> u32 {
    l[minute].cpu_quota.unwrap_or(0)
}

/// The policy's behaviour on a demand sequence: `expect` checks the limits minute by minute.
fn check(name: &str, demand: &[(f64, f64)], expect: impl Fn(&[Limits], &[String])) {
    let (limits, reasons) = run(demand);
    expect(&limits, &reasons);
    let _ = name;
}

#[test]
fn behaviour_table() {
    // A steady unit: generous limits for its first three windows, then cut to its peak plus a
    // margin (a steady unit's range adds nothing), and no resize after that.
    let steady: Vec<_> = (0..300).map(|_| (2.0, 3.0)).collect();
    check("steady", &steady, |l, r| {
        assert_eq!(cpu_at(l, 10), 700, "no cut before 15 minutes of history");
        assert!(
            cpu_at(l, 30) < 700,
            "cut once three windows show the level: {r:?}"
        );
        let last = cpu_at(l, 299);
        assert!(
            (205..=300).contains(&last),
            "cut near 2 cores: {last}; {r:?}"
        );
        assert!(r.len() <= 4, "few resizes: {r:?}");
        assert!(r[0].contains("model peak of"), "{}", r[0]);
    });
    // A burst above the cut limit: the hit limit grows at once, by half at least.
    let burst: Vec<_> = (0..240)
        .map(|i| {
            if (150..160).contains(&i) {
                (5.0, 3.0)
            } else {
                (1.0, 3.0)
            }
        })
        .collect();
    check("burst", &burst, |l, r| {
        let before = cpu_at(l, 149);
        assert!(before < 300, "cut before the burst: {before}");
        assert!(
            f64::from(cpu_at(l, 151)) >= f64::from(before) * 1.5,
            "grown at once: {} from {before}; {r:?}",
            cpu_at(l, 151)
        );
        assert!(r.iter().any(|x| x.contains("limit hit")), "{r:?}");
        // Not cut again within the hold time after the burst.
        assert!(cpu_at(l, 175) >= cpu_at(l, 160), "{r:?}");
    });
    // Memory over MemoryMax after a cut: an OOM kill grows memory at once.
    let oom: Vec<_> = (0..200)
        .map(|i| if i >= 150 { (1.0, 20.0) } else { (1.0, 9.0) })
        .collect();
    check("oom", &oom, |l, r| {
        let m = |i: usize| l[i].memory_max.unwrap_or(0);
        assert!(m(149) < 24 * GIB, "memory cut: {}; {r:?}", m(149));
        assert!(m(152) > m(149), "{r:?}");
        assert!(r.iter().any(|x| x.contains("OOM kill")), "{r:?}");
    });
}

#[test]
fn learned_state_round_trips() {
    let cfg = Config::default().with_policy(Policy::Adaptive);
    let bounds = Bounds::new(&cfg, &host()).expect("feasible");
    let current = Limits::new(400, 16, 500);
    let mut l = Learned::default();
    assert_eq!(
        Learned::decode(&l.encode()).map(|x| x.encode()),
        Some(l.encode())
    );
    for i in 0..500 {
        let mut u = Usage::from_demand(
            Millis::from_secs(i * 60),
            0.5 + (i % 13) as f64 * 0.1,
            3e9 + (i % 7) as f64 * 1e8,
        )
        .expect("valid");
        u.tasks = 40 + (i % 5) as u64;
        l.observe(&bounds, &current, &u, Millis::from_secs(i * 60));
    }
    let text = l.encode();
    let back = Learned::decode(&text).expect("decodes");
    // NaN != NaN: compare the encodings, which are exact.
    assert_eq!(back.encode(), text);
    for bad in [
        "",
        "adaptive0 | 1",
        "adaptive1 | x",
        &text[..text.len() - 3],
        &format!("{text} 1"),
    ] {
        assert!(Learned::decode(bad).is_none(), "{bad:?}");
    }
}

/// The default bounds on the test host, and a unit limited to 2 cores only.
fn two_cores() -> (Bounds, Limits) {
    let cfg = Config::default().with_policy(Policy::Adaptive);
    let bounds = Bounds::new(&cfg, &host()).expect("feasible");
    let current = Limits {
        cpu_quota: Some(200),
        memory_max: None,
        tasks_max: None,
    };
    (bounds, current)
}

/// Under an apply delay the limit in force stays the old one for a while: a hit seen again
/// before the larger limit lands asks for nothing more (no x1.5 per check).
#[test]
fn a_hit_waits_for_the_growth_in_flight() {
    let (bounds, current) = two_cores();
    let mut l = Learned::default();
    let mut moves = Vec::new();
    for i in 0..10 {
        let now = Millis::from_secs(i * 60);
        let u = Usage::from_demand(now, 2.0, 0.0).expect("valid");
        let v = l.observe(&bounds, &current, &u, now);
        moves.extend(v.moves.iter().flatten().map(|m| (m.cause, m.to)));
    }
    // One move only; it is large because a unit without history is sized generously.
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(moves[0].0, Cause::Hit);
    assert!(moves[0].1 >= 300, "{moves:?}");
}

#[test]
fn the_written_out_decay_is_the_half_life() {
    let want = 0.5f64.powf(WINDOW_SECS as f64 / COST_HALF_LIFE_SECS);
    assert!((COST_DECAY_PER_WINDOW - want).abs() < 1e-15, "{want}");
}

/// Learning without acting (mode not `enabled`) asks for nothing, so the first check after
/// the unit is enabled again reacts to a hit at once.
#[test]
fn learning_while_disabled_leaves_nothing_in_flight() {
    let (bounds, current) = two_cores();
    let mut l = Learned::default();
    for i in 0..5 {
        let now = Millis::from_secs(i * 60);
        let u = Usage::from_demand(now, 2.0, 0.0).expect("valid");
        let v = l.learn(&bounds, &current, &u, now);
        assert!(v.moves.iter().all(Option::is_none), "{v:?}");
        assert!(v.recs[0].is_some());
    }
    let now = Millis::from_secs(300);
    let u = Usage::from_demand(now, 2.0, 0.0).expect("valid");
    let v = l.observe(&bounds, &current, &u, now);
    assert_eq!(v.moves[0].map(|m| m.cause), Some(Cause::Hit), "{v:?}");
}

/// CPU read every second enters a window's peak as its mean over [`CPU_RATE_SECS`]: a busy
/// loop that reads 0.6 and 1.4 cores by turns peaks at 1 core, not 1.4; read once a minute,
/// each reading counts as it is.
#[test]
fn cpu_peaks_are_means_over_the_rate_span_whatever_the_interval() {
    let peak_after = |every_secs: i64, readings: &[f64]| {
        let mut t = Track::default();
        for (k, &cores) in readings.iter().enumerate() {
            let now = Millis::from_secs(k as i64 * every_secs);
            t.observe(
                Resource::Cpu,
                now,
                cores * 100.0,
                800.0,
                false,
                50.0,
                800.0,
                false,
            );
        }
        t.win_peak
    };
    let noisy: Vec<f64> = (0..120)
        .map(|k| if k % 2 == 0 { 0.6 } else { 1.4 })
        .collect();
    let every_second = peak_after(1, &noisy);
    assert!(
        (95.0..=105.0).contains(&every_second),
        "noise taken for demand: {every_second}"
    );
    // A minute apart, within one 5-minute window: the largest reading is the peak.
    assert_eq!(peak_after(60, &[0.6, 1.4, 0.6, 1.0]), 140.0);
    // Memory is a level, not a rate: its peak is the largest reading at any interval.
    let mut t = Track::default();
    for (k, gib) in [1.0, 3.0, 1.0].into_iter().enumerate() {
        let now = Millis::from_secs(k as i64);
        let bytes = gib * GIB as f64;
        t.observe(
            Resource::Memory,
            now,
            bytes,
            8.0 * GIB as f64,
            false,
            0.0,
            1e12,
            false,
        );
    }
    assert_eq!(t.win_peak, 3.0 * GIB as f64);
}

/// A hit's guessed demand is kept with the open window ("1:GUESS"); text from an older
/// daemon, which wrote only "1", still loads (the guess is then the limit at the close).
#[test]
fn a_hit_guess_is_kept_and_older_text_still_loads() {
    let (bounds, current) = two_cores();
    let mut l = Learned::default();
    let now = Millis::from_secs(60);
    let u = Usage::from_demand(now, 2.0, 0.0).expect("valid");
    l.observe(&bounds, &current, &u, now);
    let text = l.encode();
    assert!(text.contains(" 1:300 "), "{text}");
    assert_eq!(
        Learned::decode(&text).map(|b| b.encode()),
        Some(text.clone())
    );
    let older = text.replacen(" 1:300 ", " 1 ", 1);
    let back = Learned::decode(&older).expect("an older daemon's text loads");
    assert_eq!(back.encode(), older);
}

/// Use near the quota, unthrottled, grows the limit by [`NEAR_GROWTH`] (a raise the band keeps);
/// use at the quota, or the same evidence under an apply delay, by [`HIT_GROWTH`].
#[test]
fn use_near_the_quota_grows_less_than_starvation() {
    let grow = |used: f64, lag_checks: f64| {
        let mut t = Track::default();
        for k in 0..24 {
            let now = Millis::from_secs(k * WINDOW_SECS);
            t.observe(Resource::Cpu, now, 780.0, 800.0, false, 50.0, 3200.0, false);
        }
        t.lag_checks = lag_checks;
        let now = Millis::from_secs(24 * WINDOW_SECS);
        let (want, _) = t.observe(Resource::Cpu, now, used, 800.0, false, 50.0, 3200.0, true);
        want.expect("a hit grows the limit")
    };
    let near = grow(785.0, 1.0);
    assert_eq!(near.0, Cause::Hit);
    assert!(near.1 < 800.0 * HIT_GROWTH, "{near:?}");
    assert!(near.1 >= 800.0 * NEAR_GROWTH, "{near:?}");
    assert_eq!(grow(800.0, 1.0).1, 800.0 * HIT_GROWTH);
    assert_eq!(grow(785.0, 10.0).1, 800.0 * HIT_GROWTH);
}

/// A ramp checked every minute that outgrows a model raise within the window it was made in
/// is followed in steps the band keeps (at least [`NEAR_GROWTH`]), not a small step a check.
#[test]
fn a_ramp_that_outgrows_a_raise_within_a_window_steps_by_the_band() {
    let mut t = Track::default();
    for k in 0..24 {
        let now = Millis::from_secs(k * WINDOW_SECS);
        t.observe(Resource::Cpu, now, 500.0, 600.0, false, 50.0, 3200.0, false);
    }
    let start = 24 * WINDOW_SECS;
    let mut limit = 600.0;
    let mut raises = Vec::new();
    for m in 0..15 {
        let used = (500.0 + 40.0 * m as f64).min(limit);
        let now = Millis::from_secs(start + m * 60);
        let (want, _) = t.observe(Resource::Cpu, now, used, limit, false, 50.0, 3200.0, true);
        if let Some((cause, to)) = want {
            raises.push((m, cause, limit, to));
            limit = to;
        }
    }
    let pairs: Vec<_> = raises
        .windows(2)
        .filter(|w| w[1].0 - w[0].0 < WINDOW_SECS / 60 && w[1].1 == Cause::Model)
        .collect();
    assert!(!pairs.is_empty(), "{raises:?}");
    for w in pairs {
        assert!(w[1].3 >= w[1].2 * NEAR_GROWTH, "{raises:?}");
    }
}

/// One throttled period in a check that came a fraction of a second after the last one (a
/// pressure event woke the daemon) is not starvation; throttling over a second or more is.
#[test]
fn throttling_is_judged_over_a_second_at_least() {
    let mut t = Track::default();
    let mut at = 0;
    let mut check = |t: &mut Track, ms: i64, share: f64| {
        at += ms;
        let hit = t.throttled(at, Some(share));
        t.observe(
            Resource::Cpu,
            Millis(at),
            100.0,
            110.0,
            hit,
            20.0,
            200.0,
            false,
        );
        hit
    };
    assert!(!check(&mut t, 1000, 0.0), "a first, unthrottled check");
    assert!(!check(&mut t, 1000, 0.0));
    // 300 ms later: 1 of 3 periods throttled is not judged alone...
    assert!(!check(&mut t, 300, 1.0 / 3.0));
    // ...but joins the next check's second: 0.1 s throttled in 1.3 s.
    assert!(!check(&mut t, 1000, 0.0));
    // Throttled in half the periods of a whole second is a hit at once.
    assert!(check(&mut t, 1000, 0.5));
    // A short check of heavy throttling, then a second of it, is a hit over the two.
    assert!(!check(&mut t, 200, 1.0));
    assert!(check(&mut t, 1000, 0.3));
    // Checks a minute apart (the traces) are each judged on their own.
    assert!(check(&mut t, 60_000, 0.25));
    assert!(!check(&mut t, 60_000, 0.15));
}
