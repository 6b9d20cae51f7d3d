//! The Pareto summary over a trace directory, until `autoscaler simulate --pareto` exists.
//!
//! `cargo run --release -p autoscaler-sim --example pareto -- DIR [--cores N] [--memory-gib M]
//! [--set FIELD=VALUE]... [--table] [--plot DIR]`; `--set` changes the base config (bounds,
//! reserves) the way a config file would.

use std::path::PathBuf;

use anyhow::{Context, bail};
use autoscaler_core::FieldValue;
use autoscaler_sim::{Machine, PolicySpec, Setup, plot_svg, read_dir, run};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut machine, mut changes, mut table, mut plot) =
        (None, Machine::default(), Vec::new(), false, None);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--cores" => {
                machine.cores = value("--cores")?
                    .parse()
                    .context("--cores: a whole number")?
            }
            "--memory-gib" => {
                machine.memory_gib = value("--memory-gib")?
                    .parse()
                    .context("--memory-gib: a whole number")?
            }
            "--set" => {
                let kv = value("--set")?;
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--set {kv}: expected FIELD=VALUE"))?;
                changes.push((
                    k.to_string(),
                    FieldValue::Number(v.parse().with_context(|| format!("--set {kv}: a number"))?),
                ));
            }
            "--table" => table = true,
            "--plot" => plot = Some(PathBuf::from(value("--plot")?)),
            _ if dir.is_none() && !a.starts_with("--") => dir = Some(PathBuf::from(a)),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let dir = dir.context("usage: pareto DIR [--cores N] [--memory-gib M] [--set FIELD=VALUE]... [--table] [--plot DIR]")?;
    let mut setup = Setup::new(machine);
    setup.base = setup
        .base
        .apply(&changes)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (traces, errors) = read_dir(&dir, machine.scale())?;
    for e in &errors {
        eprintln!("skipped: {e}");
    }
    let report = run(&traces, &PolicySpec::all(), &setup)?;
    if table {
        print!("{}", report.table());
    }
    print!("{}", report.pareto_table());
    if let Some(out) = plot {
        for (t, r) in traces.iter().zip(&report.traces) {
            plot_svg(t, &r.runs, &out)?;
        }
    }
    Ok(())
}
