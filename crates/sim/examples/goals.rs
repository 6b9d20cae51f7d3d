//! The goals of issue 12, measured: `balanced`, `adaptive` and the oracle on gcd-vms (8 cores,
//! 32 GiB), and on the VASim container c_12104 with VASim's bounds (2..25 cores, 32-core
//! machine), with no apply delay and with VASim's 10 minutes. Prints the Pareto tables and the
//! VASim figures (per-sample sums, scalings) that VASim's own runs are compared on.
//!
//! `cargo run --release -p autoscaler-sim --example goals [-- TRACES_DIR]` (default: the shared
//! traces beside the repository). The same figures come from `autoscaler simulate`; this
//! example only saves building the daemon.
//!
//! It also prints gcd-vms split in two halves by job (files `vm_JOB_TASK.txt`; jobs sorted,
//! alternately to A and B, so that no job's tasks sit on both sides): a change is tuned on A
//! and confirmed on B, the guard against fitting these particular traces.

use std::path::PathBuf;

use anyhow::Context;
use autoscaler_core::{FieldValue, Policy};
use autoscaler_sim::{Machine, PolicySpec, Setup, read_dir, read_trace, run, shared_traces_dir};

fn main() -> anyhow::Result<()> {
    let root = std::env::args()
        .nth(1)
        .map_or_else(shared_traces_dir, PathBuf::from);
    let policies = [
        PolicySpec::Spec(Policy::Balanced),
        PolicySpec::Spec(Policy::Aggressive),
        PolicySpec::Headroom,
        PolicySpec::Spec(Policy::Adaptive),
        PolicySpec::Oracle(Some("adaptive".into())),
    ];

    let gcd = Setup::new(Machine::default());
    let (traces, errors) = read_dir(&root.join("gcd-vms"), gcd.machine.scale())?;
    anyhow::ensure!(errors.is_empty(), "unreadable traces: {errors:?}");
    print!("{}", run(&traces, &policies, &gcd)?.pareto_table());
    let (a, b) = split_by_job(&traces);
    for (half, set) in [("A", a), ("B", b)] {
        println!("\ngcd-vms, held-out half {half} ({} traces)", set.len());
        print!("{}", run(&set, &policies, &gcd)?.pareto_table());
    }

    let machine = Machine {
        cores: 32,
        memory_gib: 32,
    };
    let mut vasim = Setup::new(machine);
    vasim.base = vasim
        .base
        .apply(&[
            ("min_cpu_quota".into(), FieldValue::Number(200.0)),
            ("max_cpu_quota".into(), FieldValue::Number(2500.0)),
        ])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let c =
        read_trace(&root.join("vasim/c_12104.csv"), machine.scale()).context("reading c_12104")?;
    for delay in [0.0, 600.0] {
        vasim.apply_delay_secs = delay;
        let r = run(std::slice::from_ref(&c), &policies, &vasim)?;
        print!("\n{}", r.pareto_table());
        println!(
            "  VASim figures: policy, slack (sum/sum of limits), insufficient core-min, scalings"
        );
        for (p, s) in &r.totals {
            println!(
                "  {:<18} {:>6.1}% {:>10.1} {:>6}",
                p,
                vasim_slack(&r, p) * 100.0,
                s.vasim.sum_insufficient_cpu * c.step_secs / 60.0,
                s.vasim.num_scalings
            );
        }
    }
    Ok(())
}

/// The traces in two halves by job: the job is the file name up to its last `_`.
fn split_by_job(
    traces: &[autoscaler_sim::Trace],
) -> (Vec<autoscaler_sim::Trace>, Vec<autoscaler_sim::Trace>) {
    let job = |t: &autoscaler_sim::Trace| {
        let stem = t.name.rsplit('/').next().unwrap_or(&t.name);
        stem.rsplit_once('_').map_or(stem, |(j, _)| j).to_string()
    };
    let mut jobs: Vec<String> = traces.iter().map(job).collect();
    jobs.sort();
    jobs.dedup();
    traces
        .iter()
        .cloned()
        .partition(|t| jobs.iter().position(|j| *j == job(t)).unwrap_or(0) % 2 == 0)
}

/// VASim's slack: the sum of slack over the sum of limits, per sample.
fn vasim_slack(r: &autoscaler_sim::Report, policy: &str) -> f64 {
    let Some(run) = r
        .traces
        .first()
        .and_then(|t| t.runs.iter().find(|x| x.policy == policy))
    else {
        return f64::NAN;
    };
    let s = run.score.vasim.sum_slack;
    let limits: f64 = run
        .limits
        .iter()
        .map(|l| f64::from(l.cpu_quota.unwrap_or(0)) / 100.0)
        .sum();
    if limits > 0.0 { s / limits } else { 0.0 }
}
