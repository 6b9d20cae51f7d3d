//! `autoscaler simulate`: replay usage traces through the daemon's own decision code and
//! score the policies. A thin front over `autoscaler-sim`: parse flags, read traces, print.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use autoscaler_core::{Config, FieldValue};
use autoscaler_sim::{
    Machine, PolicySpec, Setup, forecast_report, plot_svg, read_dir, read_trace, run,
};

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Trace files or directories (gcd-vms .txt, VASim CSV, `autoscaler export metrics` CSV).
    #[arg(long = "trace", required = true, num_args = 1.., value_name = "FILE|DIR")]
    pub traces: Vec<PathBuf>,
    /// Policies to compare (repeat): static, static:CPU%:GiB, conservative, balanced,
    /// aggressive, adaptive, vpa, headroom, oracle (perfect foresight with as many resizes as
    /// the policy before it), oracle:POLICY [default: all, then oracle:adaptive]
    #[arg(long = "policy")]
    pub policies: Vec<String>,
    /// Time from a decision to its limit being in force, e.g. 10m (VASim's lag) [default: 0,
    /// in force from the next sample]
    #[arg(long, value_parser = parse_delay, value_name = "DURATION")]
    pub apply_delay: Option<std::time::Duration>,
    /// A configuration to replay as one more policy (JSON as `GET /config` prints it, or TOML
    /// with the same keys); its bounds and reserves also apply to the other policies.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Set one config field for every policy, e.g. `--set max_cpu_quota=2500` (repeat);
    /// applied after `--config`, checked as a PUT of the config would be.
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// The machine the trace ran on: cores (gcd-vms percentages are of this machine).
    #[arg(long, default_value_t = 8)]
    pub cores: u32,
    /// The machine's memory in GiB.
    #[arg(long, default_value_t = 32)]
    pub memory_gib: u32,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also print every trace's scores, not only the summary.
    #[arg(long)]
    pub per_trace: bool,
    /// Write an SVG per trace (demand vs limits, resize markers) into this directory.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Instead of replaying policies, measure the daemon's forecasts on the traces: coverage of
    /// the 95% intervals and error against persistence, per horizon. Each --trace is one
    /// family (e.g. --trace traces/gcd-vms --trace traces/vasim).
    #[arg(long)]
    pub forecast_report: bool,
}

pub fn run_simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let machine = Machine {
        cores: args.cores,
        memory_gib: args.memory_gib,
    };
    if args.forecast_report {
        return run_forecast_report(&args.traces, machine);
    }
    let mut setup = Setup::new(machine);
    setup.apply_delay_secs = args.apply_delay.map_or(0.0, |d| d.as_secs_f64());
    let mut policies = Vec::new();
    for p in &args.policies {
        policies.push(PolicySpec::parse(p).map_err(anyhow::Error::msg)?);
    }
    if let Some(path) = &args.config {
        let config = read_config(path, &setup.base)?;
        setup.base = config.clone();
        let name = path
            .file_stem()
            .map_or("config".into(), |s| s.to_string_lossy().to_string());
        policies.push(PolicySpec::Config {
            name,
            config: Box::new(config),
        });
    }
    if !args.set.is_empty() {
        setup.base = apply_sets(&args.set, &setup.base)?;
    }
    if args.policies.is_empty() {
        policies.splice(0..0, PolicySpec::all());
        policies.push(PolicySpec::Oracle(Some("adaptive".into())));
    }
    let mut traces = Vec::new();
    for path in &args.traces {
        if path.is_dir() {
            let (found, errors) = read_dir(path, machine.scale())?;
            if let Some(e) = errors.first() {
                bail!(
                    "{e} ({} file(s) in {} could not be read)",
                    errors.len(),
                    path.display()
                );
            }
            traces.extend(found);
        } else {
            traces.push(read_trace(path, machine.scale())?);
        }
    }
    if traces.is_empty() {
        bail!("no traces found in {:?}", args.traces);
    }
    let report = run(&traces, &policies, &setup).map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        if args.per_trace || traces.len() == 1 {
            print!("{}", report.table());
            println!();
        }
        println!(
            "{} trace(s), {:.0} hours, machine {} cores / {} GiB",
            traces.len(),
            traces.iter().map(|t| t.hours()).sum::<f64>(),
            machine.cores,
            machine.memory_gib
        );
        print!("{}", report.pareto_table());
    }
    if let Some(dir) = &args.plot {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (t, r) in traces.iter().zip(&report.traces) {
            plot_svg(t, &r.runs, dir)?;
        }
        eprintln!("wrote {} SVG file(s) to {}", traces.len(), dir.display());
    }
    Ok(())
}

/// The one duration reader the fronts share (the store's), for `--apply-delay`.
fn parse_delay(text: &str) -> Result<std::time::Duration, String> {
    autoscaler_store::when::parse_duration_ms(text)
        .and_then(|ms| u64::try_from(ms).ok())
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is not a duration like 10m or 30s"))
}

/// `FIELD=VALUE` pairs over `base`, validated whole. A value that reads as JSON (a number,
/// `true`) is taken as such; anything else as text (`policy=aggressive`).
fn apply_sets(sets: &[String], base: &Config) -> anyhow::Result<Config> {
    let mut map = serde_json::Map::new();
    for s in sets {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--set {s:?}: expected FIELD=VALUE"))?;
        let value = serde_json::from_str(v.trim())
            .ok()
            .filter(|v: &serde_json::Value| !v.is_object() && !v.is_array())
            .unwrap_or_else(|| serde_json::Value::String(v.trim().to_string()));
        map.insert(k.trim().to_string(), value);
    }
    let changes =
        crate::changes::config_changes(&map).map_err(|e| anyhow::anyhow!("--set: {e}"))?;
    base.apply(&changes)
        .map_err(|e| anyhow::anyhow!("--set: {e}"))
}

/// `--forecast-report`: one family per path, named by its last component.
fn run_forecast_report(paths: &[PathBuf], machine: Machine) -> anyhow::Result<()> {
    let mut families = Vec::new();
    for path in paths {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        let traces = if path.is_dir() {
            let (found, errors) = read_dir(path, machine.scale())?;
            for e in &errors {
                eprintln!("skipped: {e}");
            }
            found
        } else {
            vec![read_trace(path, machine.scale())?]
        };
        if traces.is_empty() {
            bail!("no traces found in {}", path.display());
        }
        families.push((name, traces));
    }
    println!(
        "machine {} cores / {} GiB (gcd-vms percentages are of it); horizons 5, 15, 30 min",
        machine.cores, machine.memory_gib
    );
    print!("{}", forecast_report(&families).table());
    Ok(())
}

/// A config file: a JSON object (what `GET /api/autoscaler/config` prints) or TOML with the
/// same keys, applied over `base` and validated whole.
fn read_config(path: &Path, base: &Config) -> anyhow::Result<Config> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            let t: toml::Table = toml::from_str(&text)
                .with_context(|| format!("{} is neither JSON nor TOML", path.display()))?;
            serde_json::to_value(t)?
        }
    };
    let map = value
        .as_object()
        .with_context(|| format!("{} must hold an object of config fields", path.display()))?;
    let changes = crate::changes::config_changes(map)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let changes: Vec<(String, FieldValue)> =
        changes.into_iter().filter(|(k, _)| k != "mode").collect();
    base.apply(&changes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
