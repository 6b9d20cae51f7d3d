//! Running a set of policies over a set of traces, and presenting the outcome: a text table,
//! JSON, a Pareto summary and SVG plots.
//!
//! [`run`] is the whole simulation; everything else formats its [`Report`]. Front ends (the
//! `simulate` command) choose what to print; they do no arithmetic of their own. Only
//! [`plot_svg`] writes files.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use autoscaler_core::{BoundsError, GIB, Limits};
use serde_json::{Value, json};

use crate::policy::{Machine, PolicySpec, Setup, Timeline};
use crate::replay::{replay, replay_delayed};
use crate::score::Score;
use crate::trace::Trace;

/// One policy on one trace.
#[derive(Debug, Clone)]
pub struct Run {
    pub policy: String,
    pub score: Score,
    /// The limits in force at each tick of the trace.
    pub limits: Vec<Limits>,
}

/// Every policy on one trace.
#[derive(Debug, Clone)]
pub struct TraceResult {
    pub name: String,
    pub samples: usize,
    pub hours: f64,
    pub runs: Vec<Run>,
}

/// Every policy on every trace, and per policy over all of them.
#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    /// Seconds from a decision to its limit being in force.
    pub apply_delay_secs: f64,
    pub start: Limits,
    pub policies: Vec<String>,
    pub traces: Vec<TraceResult>,
    /// Per policy, in the order of `policies`: scores combined over all traces.
    pub totals: Vec<(String, Score)>,
}

/// Replays every trace through every policy, each from the same start limits, with the
/// setup's apply delay. An oracle is built per trace after the policies, with as many CPU and
/// memory changes as the policy it names made on that trace (the one before it when it names
/// none; one change every 2 hours when there is none), and is in force as scheduled: it knows
/// the future, so it has no delay.
pub fn run(
    traces: &[Trace],
    policies: &[PolicySpec],
    setup: &Setup,
) -> Result<Report, BoundsError> {
    let start = setup.start_limits()?;
    let bounds = setup.bounds()?;
    let mut results = Vec::with_capacity(traces.len());
    for t in traces {
        let mut runs: Vec<Run> = Vec::with_capacity(policies.len());
        for p in policies {
            if let PolicySpec::Oracle(_) = p {
                runs.push(Run {
                    policy: p.name(),
                    score: Score::default(),
                    limits: Vec::new(),
                });
                continue;
            }
            let mut scaler = p.build(setup, t.step_secs, start)?;
            let (score, limits) = replay_delayed(t, scaler.as_mut(), start, setup.apply_delay_secs);
            runs.push(Run {
                policy: p.name(),
                score,
                limits,
            });
        }
        for (k, p) in policies.iter().enumerate() {
            let PolicySpec::Oracle(of) = p else { continue };
            let matched = match of {
                Some(name) => runs.iter().find(|r| &r.policy == name),
                None => runs[..k]
                    .iter()
                    .rev()
                    .find(|r| !r.policy.starts_with("oracle")),
            };
            let every_2h = (t.hours() / 2.0).round() as u64;
            let (cpu, mem) = matched.map_or((every_2h, every_2h), |r| {
                (r.score.cpu_resizes, r.score.memory_resizes)
            });
            let schedule = crate::oracle::oracle(t, &bounds, start, cpu as usize, mem as usize);
            let first = schedule.first().copied().unwrap_or(start);
            let (score, limits) = replay(t, &mut Timeline::new(schedule), first);
            runs[k] = Run {
                policy: p.name(),
                score,
                limits,
            };
        }
        results.push(TraceResult {
            name: t.name.clone(),
            samples: t.points.len(),
            hours: t.hours(),
            runs,
        });
    }
    let totals = policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                p.name(),
                Score::combine(results.iter().map(|r| &r.runs[i].score)),
            )
        })
        .collect();
    Ok(Report {
        machine: setup.machine,
        apply_delay_secs: setup.apply_delay_secs,
        start,
        policies: policies.iter().map(PolicySpec::name).collect(),
        traces: results,
        totals,
    })
}

/// One policy's line of the Pareto summary.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoRow {
    pub policy: String,
    pub cpu_slack: f64,
    pub insufficient_cpu_core_hours: f64,
    pub insufficient_cpu_share: f64,
    /// Memory slack (time-weighted mean share), when the traces have memory.
    pub memory_slack: Option<f64>,
    pub oom_events: u64,
    pub resizes: u64,
    /// No other policy is at least as good on every objective and better on one.
    pub non_dominated: bool,
}

impl Report {
    /// The Pareto summary over all traces. Objectives, all minimised: mean CPU slack,
    /// insufficient CPU (core-hours), OOM events, resizes.
    pub fn pareto(&self) -> Vec<ParetoRow> {
        let key = |s: &Score| {
            [
                s.cpu_slack,
                s.insufficient_cpu_core_hours,
                s.oom_events as f64,
                s.resizes as f64,
            ]
        };
        self.totals
            .iter()
            .map(|(name, s)| {
                let k = key(s);
                // The oracle is a reference, not a rival: it dominates no one.
                let dominated = self
                    .totals
                    .iter()
                    .filter(|(n, _)| !n.starts_with("oracle"))
                    .any(|(_, o)| {
                        let ko = key(o);
                        ko.iter().zip(&k).all(|(a, b)| a <= b)
                            && ko.iter().zip(&k).any(|(a, b)| a < b)
                    });
                ParetoRow {
                    policy: name.clone(),
                    cpu_slack: s.cpu_slack,
                    insufficient_cpu_core_hours: s.insufficient_cpu_core_hours,
                    insufficient_cpu_share: s.insufficient_cpu_share,
                    memory_slack: s.has_memory().then_some(s.memory_slack),
                    oom_events: s.oom_events,
                    resizes: s.resizes,
                    non_dominated: !dominated,
                }
            })
            .collect()
    }

    /// The Pareto summary as text; `*` marks the non-dominated policies.
    pub fn pareto_table(&self) -> String {
        let hours: f64 = self.traces.iter().map(|t| t.hours).sum();
        let mut out = format!(
            "Pareto summary: {} trace(s), {:.1} h, machine {}, start {}, apply delay {:.0} s\n",
            self.traces.len(),
            hours,
            self.machine,
            self.start,
            self.apply_delay_secs
        );
        let _ = writeln!(
            out,
            "  {:<16} {:>10} {:>14} {:>10} {:>10} {:>8} {:>8} {:>10}",
            "policy",
            "cpu slack",
            "short core-h",
            "short %t",
            "mem slack",
            "OOMs",
            "resizes",
            "resizes/d"
        );
        for r in self.pareto() {
            let _ = writeln!(
                out,
                "{} {:<16} {:>9.1}% {:>14.2} {:>9.2}% {:>10} {:>8} {:>8} {:>10.2}",
                if r.non_dominated { "*" } else { " " },
                r.policy,
                r.cpu_slack * 100.0,
                r.insufficient_cpu_core_hours,
                r.insufficient_cpu_share * 100.0,
                r.memory_slack
                    .map_or("-".to_string(), |m| format!("{:.1}%", m * 100.0)),
                r.oom_events,
                r.resizes,
                if hours > 0.0 {
                    r.resizes as f64 / (hours / 24.0)
                } else {
                    0.0
                }
            );
        }
        out.push_str(
            "  * = non-dominated on (cpu slack, short core-h, OOMs, resizes), all minimised\n",
        );
        out
    }

    /// Per trace and policy, then totals when there is more than one trace.
    pub fn table(&self) -> String {
        let mut out = format!(
            "machine: {}; every policy starts at {}\n",
            self.machine, self.start
        );
        for t in &self.traces {
            let _ = writeln!(
                out,
                "\ntrace {} ({} samples, {:.1} h)",
                t.name, t.samples, t.hours
            );
            out.push_str(&score_rows(
                t.runs.iter().map(|r| (r.policy.as_str(), &r.score)),
            ));
        }
        if self.traces.len() > 1 {
            let _ = writeln!(out, "\nall {} traces", self.traces.len());
            out.push_str(&score_rows(
                self.totals.iter().map(|(p, s)| (p.as_str(), s)),
            ));
        }
        out
    }

    /// The whole report as JSON (timelines left out).
    pub fn to_json(&self) -> String {
        let v = json!({
            "machine": { "cores": self.machine.cores, "memory_gib": self.machine.memory_gib },
            "apply_delay_secs": self.apply_delay_secs,
            "start": limits_json(&self.start),
            "policies": self.policies,
            "traces": self.traces.iter().map(|t| json!({
                "name": t.name,
                "samples": t.samples,
                "hours": t.hours,
                "scores": t.runs.iter().map(|r| score_json(&r.policy, &r.score)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "totals": self.totals.iter().map(|(p, s)| score_json(p, s)).collect::<Vec<_>>(),
            "pareto": self.pareto().iter().map(|r| json!({
                "policy": r.policy,
                "cpu_slack": r.cpu_slack,
                "insufficient_cpu_core_hours": r.insufficient_cpu_core_hours,
                "insufficient_cpu_share": r.insufficient_cpu_share,
                "memory_slack": r.memory_slack,
                "oom_events": r.oom_events,
                "resizes": r.resizes,
                "non_dominated": r.non_dominated,
            })).collect::<Vec<_>>(),
        });
        serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

fn score_rows<'a>(rows: impl Iterator<Item = (&'a str, &'a Score)>) -> String {
    let mut out = format!(
        "  {:<14} {:>9} {:>9} {:>9} {:>10} {:>7} {:>8} {:>8} {:>9} {:>9} {:>8}\n",
        "policy",
        "cpu slack",
        "slack c-h",
        "short %t",
        "short c-h",
        "resizes",
        "mean cpu",
        "mem slk",
        "slack G-h",
        "mean mem",
        "OOMs"
    );
    for (p, s) in rows {
        let mem = |v: String| if s.has_memory() { v } else { "-".to_string() };
        let _ = writeln!(
            out,
            "  {:<14} {:>8.1}% {:>9.2} {:>8.2}% {:>10.3} {:>7} {:>8.2} {:>8} {:>9} {:>9} {:>8}",
            p,
            s.cpu_slack * 100.0,
            s.cpu_slack_core_hours,
            s.insufficient_cpu_share * 100.0,
            s.insufficient_cpu_core_hours,
            s.resizes,
            s.mean_cpu_limit,
            mem(format!("{:.1}%", s.memory_slack * 100.0)),
            mem(format!("{:.1}", s.memory_slack_gib_hours)),
            mem(format!("{:.2}", s.mean_memory_limit)),
            mem(s.oom_events.to_string()),
        );
    }
    out
}

fn limits_json(l: &Limits) -> Value {
    json!({ "cpu_quota": l.cpu_quota, "memory_gb": l.memory_gib() })
}

fn score_json(policy: &str, s: &Score) -> Value {
    let mem = |v: Value| if s.has_memory() { v } else { Value::Null };
    json!({
        "policy": policy,
        "samples": s.samples,
        "hours": s.hours,
        "cpu_slack": s.cpu_slack,
        "cpu_slack_core_hours": s.cpu_slack_core_hours,
        "insufficient_cpu_share": s.insufficient_cpu_share,
        "insufficient_cpu_core_hours": s.insufficient_cpu_core_hours,
        "mean_cpu_limit_cores": s.mean_cpu_limit,
        "memory_slack": mem(json!(s.memory_slack)),
        "memory_slack_gib_hours": mem(json!(s.memory_slack_gib_hours)),
        "mean_memory_limit_gib": mem(json!(s.mean_memory_limit)),
        "oom_events": mem(json!(s.oom_events)),
        "resizes": s.resizes,
        "cpu_resizes": s.cpu_resizes,
        "memory_resizes": s.memory_resizes,
        "vasim": {
            "sum_slack": s.vasim.sum_slack,
            "sum_insufficient_cpu": s.vasim.sum_insufficient_cpu,
            "num_scalings": s.vasim.num_scalings,
        },
    })
}

/// Draws demand against every policy's limits for one trace, with a marker at each resize:
/// CPU on top, memory below when the trace has it. Writes `DIR/<trace name>.svg`.
pub fn plot_svg(trace: &Trace, runs: &[Run], dir: &Path) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    use plotters::prelude::*;

    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the plot directory {}", dir.display()))?;
    let safe: String = trace
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{safe}.svg"));
    let has_memory = trace.has_memory();
    let t0 = trace.points.first().map_or(0.0, |p| p.t_secs);
    let hours: Vec<f64> = trace
        .points
        .iter()
        .map(|p| (p.t_secs - t0) / 3600.0)
        .collect();
    let x_max = hours.last().copied().unwrap_or(0.0) + trace.step_secs / 3600.0;
    let colours = [
        RED,
        BLUE,
        GREEN,
        MAGENTA,
        CYAN,
        RGBColor(230, 140, 0),
        RGBColor(120, 60, 160),
        RGBColor(90, 90, 90),
    ];

    let root =
        SVGBackend::new(&path, (1200, if has_memory { 800 } else { 450 })).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
    let panels = if has_memory {
        root.split_evenly((2, 1))
    } else {
        vec![root.clone()]
    };

    type Get = fn(&crate::trace::Point) -> Option<f64>;
    type GetLimit = fn(&Limits) -> Option<f64>;
    let cpu: (Get, GetLimit, &str) = (
        |p| Some(p.cpu_cores),
        |l| l.cpu_quota.map(|q| f64::from(q) / 100.0),
        "CPU (cores)",
    );
    let mem: (Get, GetLimit, &str) = (
        |p| p.memory_bytes.map(|b| b / GIB as f64),
        |l| l.memory_gib(),
        "memory (GiB)",
    );
    for (panel, (demand, limit, label)) in panels.iter().zip([cpu, mem]) {
        let y_max = trace
            .points
            .iter()
            .filter_map(demand)
            .chain(runs.iter().flat_map(|r| r.limits.iter().filter_map(limit)))
            .fold(0.0f64, f64::max)
            * 1.05
            + 1e-9;
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("{}: {label}, demand vs limits", trace.name),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
        chart
            .configure_mesh()
            .x_desc("hours")
            .y_desc(label)
            .draw()
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
        let series: Vec<(f64, f64)> = trace
            .points
            .iter()
            .zip(&hours)
            .filter_map(|(p, h)| demand(p).map(|v| (*h, v)))
            .collect();
        chart
            .draw_series(LineSeries::new(series, BLACK.stroke_width(1)))
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?
            .label("demand")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        for (i, r) in runs.iter().enumerate() {
            let colour = colours[i % colours.len()];
            // Limits are steps: hold each value until the next tick.
            let mut steps = Vec::with_capacity(r.limits.len() * 2);
            let mut marks = Vec::new();
            for (k, l) in r.limits.iter().enumerate() {
                let Some(v) = limit(l) else { continue };
                let (x, x_next) = (hours[k], hours.get(k + 1).copied().unwrap_or(x_max));
                if k > 0 && limit(&r.limits[k - 1]) != Some(v) {
                    marks.push((x, v));
                }
                steps.push((x, v));
                steps.push((x_next, v));
            }
            chart
                .draw_series(LineSeries::new(steps, colour.stroke_width(2)))
                .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?
                .label(r.policy.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(
                    marks
                        .into_iter()
                        .map(|(x, y)| Circle::new((x, y), 3, colour.filled())),
                )
                .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
    }
    root.present()
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    drop(panels);
    drop(root);
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Point;

    fn trace(name: &str, memory: bool) -> Trace {
        let points = (0..120)
            .map(|i| Point {
                t_secs: f64::from(i) * 300.0,
                cpu_cores: 0.5 + f64::from(i % 24) * 0.2,
                memory_bytes: memory.then(|| (2.0 + f64::from(i % 12)) * GIB as f64),
            })
            .collect();
        Trace {
            name: name.to_string(),
            step_secs: 300.0,
            points,
        }
    }

    /// Runs every policy on two traces and checks the report's shapes and outputs.
    fn check(traces: &[Trace]) {
        let report =
            run(traces, &PolicySpec::all(), &Setup::new(Machine::default())).expect("feasible");
        assert_eq!(report.traces.len(), traces.len());
        assert_eq!(report.totals.len(), PolicySpec::all().len());
        for t in &report.traces {
            for r in &t.runs {
                assert_eq!(r.limits.len(), t.samples, "{} {}", t.name, r.policy);
            }
        }
        let pareto = report.pareto();
        assert!(pareto.iter().any(|r| r.non_dominated));
        // Static at the upper bounds never runs short, so nothing can dominate it on that.
        assert!(pareto.iter().any(|r| r.policy == "static"
            && r.non_dominated
            && r.insufficient_cpu_core_hours == 0.0));
        let json: Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
        assert_eq!(json["traces"].as_array().map(Vec::len), Some(traces.len()));
        let table = report.table();
        assert!(
            table.contains("headroom") && table.contains("vpa"),
            "{table}"
        );
        assert!(report.pareto_table().contains("* = non-dominated"));

        let dir = tempfile::tempdir().expect("temp dir");
        for (t, r) in traces.iter().zip(&report.traces) {
            let path = plot_svg(t, &r.runs, dir.path()).expect("plot");
            let svg = std::fs::read_to_string(&path).expect("svg written");
            assert!(
                svg.starts_with("<svg") && svg.contains("<circle"),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn run_and_outputs() {
        check(&[trace("with memory", true), trace("cpu-only", false)]);
    }
}
