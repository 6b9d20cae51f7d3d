//! Table-driven tests of workload profiles: known coefficients recovered from synthetic
//! samples (exact and noisy), the fallbacks when a count never varies, sizing, and the
//! heaviest features.

use super::*;
use crate::forecast::tests::Rng;

/// What a fit must give: terms, base, per agent, per testing agent, samples, R² (each within
/// `tol`), or nothing.
type Want = Option<(Terms, f64, f64, f64, usize, f64)>;

fn check(name: &str, samples: &[(u32, u32, f64)], tol: f64, want: Want) {
    let got = fit_profile(samples);
    match (got, want) {
        (None, None) => {}
        (Some(p), Some((terms, base, pa, pt, n, r2))) => {
            assert_eq!(p.terms, terms, "{name}: {p:?}");
            let near = |a: f64, b: f64| (a - b).abs() <= tol;
            assert!(near(p.base, base), "{name}: base {p:?}, want {base}");
            assert!(near(p.per_agent, pa), "{name}: per agent {p:?}, want {pa}");
            assert!(
                near(p.per_testing_agent, pt),
                "{name}: per testing agent {p:?}, want {pt}"
            );
            assert_eq!(p.samples, n, "{name}: {p:?}");
            assert!(near(p.r2, r2), "{name}: r2 {p:?}, want {r2}");
        }
        (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
    }
}

/// `f(agents, testing)` over agents 0..=5 with 0..=agents of them testing.
fn grid(f: impl Fn(f64, f64) -> f64) -> Vec<(u32, u32, f64)> {
    let mut out = Vec::new();
    for a in 0..=5u32 {
        for t in 0..=a {
            out.push((a, t, f(f64::from(a), f64::from(t))));
        }
    }
    out
}

#[test]
fn fits_table() {
    use Terms::*;
    let exact = |a: f64, t: f64| 1.5 + 0.25 * a + 0.5 * t;
    check(
        "exact",
        &grid(exact),
        1e-9,
        Some((Both, 1.5, 0.25, 0.5, 21, 1.0)),
    );
    let mut with_nan = grid(exact);
    with_nan.push((3, 1, f64::NAN));
    with_nan.push((9, 9, f64::INFINITY));
    check(
        "non-finite skipped",
        &with_nan,
        1e-9,
        Some((Both, 1.5, 0.25, 0.5, 21, 1.0)),
    );
    // No agent ever tested: the testing cost cannot be known.
    let no_tests: Vec<_> = (0..=6).map(|a| (a, 0, 2.0 + 0.75 * f64::from(a))).collect();
    check(
        "testing never varies",
        &no_tests,
        1e-9,
        Some((AgentsOnly, 2.0, 0.75, 0.0, 7, 1.0)),
    );
    // Every agent always tests: the two costs are one, reported per agent.
    let lockstep: Vec<_> = (0..=6).map(|a| (a, a, 2.0 + 0.75 * f64::from(a))).collect();
    check(
        "lockstep",
        &lockstep,
        1e-9,
        Some((AgentsOnly, 2.0, 0.75, 0.0, 7, 1.0)),
    );
    let doubled: Vec<_> = (0..=6).map(|a| (2 * a, a, 1.0 + f64::from(a))).collect();
    check(
        "proportional",
        &doubled,
        1e-9,
        Some((AgentsOnly, 1.0, 0.5, 0.0, 7, 1.0)),
    );
    // Four agents all along, a varying number testing.
    let fixed_agents: Vec<_> = (0..=4).map(|t| (4, t, 3.0 + 0.5 * f64::from(t))).collect();
    check(
        "agents never vary",
        &fixed_agents,
        1e-9,
        Some((TestingOnly, 3.0, 0.0, 0.5, 5, 1.0)),
    );
    check(
        "nothing varies",
        &[(2, 1, 4.0), (2, 1, 6.0)],
        1e-9,
        Some((BaseOnly, 5.0, 0.0, 0.0, 2, 0.0)),
    );
    check(
        "constant usage",
        &[(2, 1, 4.0), (2, 1, 4.0)],
        1e-9,
        Some((BaseOnly, 4.0, 0.0, 0.0, 2, 1.0)),
    );
    check(
        "one sample",
        &[(3, 0, 9.0)],
        1e-9,
        Some((BaseOnly, 9.0, 0.0, 0.0, 1, 1.0)),
    );
    // Two samples always lie on a line: the second count is dropped rather than solved for.
    check(
        "two samples",
        &[(1, 0, 2.0), (3, 2, 6.0)],
        1e-9,
        Some((AgentsOnly, 0.0, 2.0, 0.0, 2, 1.0)),
    );
    check("empty", &[], 1e-9, None);
    check("all NaN", &[(1, 0, f64::NAN)], 1e-9, None);
}

#[test]
fn noisy_samples_recover_the_costs() {
    let mut rng = Rng::new(2024);
    let (base, pa, pt) = (0.8, 0.35, 0.6);
    for (sigma, tol, min_r2) in [(0.0, 1e-9, 1.0), (0.1, 0.02, 0.95), (0.5, 0.05, 0.6)] {
        let samples: Vec<_> = (0..600)
            .map(|_| {
                let a = (rng.uniform() * 9.0) as u32; // 0..=8
                let t = (rng.uniform() * f64::from(a + 1)) as u32; // 0..=a
                let usage = base + pa * f64::from(a) + pt * f64::from(t) + sigma * rng.normal();
                (a, t, usage)
            })
            .collect();
        let p = fit_profile(&samples).expect("600 samples");
        assert_eq!(p.terms, Terms::Both, "σ={sigma}: {p:?}");
        let errs = [p.base - base, p.per_agent - pa, p.per_testing_agent - pt];
        assert!(errs.iter().all(|e| e.abs() <= tol), "σ={sigma}: {p:?}");
        assert!(
            p.r2 >= min_r2 - 1e-12 && p.r2 <= 1.0,
            "σ={sigma}: r2 {}",
            p.r2
        );
    }
}

#[test]
fn sizing() {
    let p = Profile {
        base: 1.0,
        per_agent: 0.5,
        per_testing_agent: 0.25,
        samples: 100,
        r2: 0.9,
        terms: Terms::Both,
    };
    let negative = Profile {
        per_agent: -0.5,
        base: -3.0,
        ..p
    };
    let cases: &[(&Profile, u32, u32, f64, f64)] = &[
        (&p, 0, 0, 0.0, 1.0),
        (&p, 4, 2, 0.0, 3.5),
        (&p, 4, 2, 0.5, 4.0),
        // A negative cost is noise: more agents never plan for less.
        (&negative, 4, 0, 0.0, 0.0),
        (&negative, 4, 4, 5.0, 3.0),
        (&p, 0, 0, f64::NAN, 0.0),
    ];
    for &(profile, a, t, margin, want) in cases {
        let got = profile.size_for(a, t, margin);
        assert!(
            (got - want).abs() < 1e-12,
            "{a} agents, {t} testing, margin {margin}: {got}, want {want}"
        );
    }
    assert!(Terms::AgentsOnly.describe().contains("testing agents"));
}
