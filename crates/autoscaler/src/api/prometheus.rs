//! Prometheus `/metrics`: the engine's snapshot in OpenMetrics text, written at each scrape.
//!
//! The snapshot is the only source, so what Prometheus sees is what the status endpoint says.
//! The text is written and sent a family at a time: at 1000 units the exposition is about
//! 1.3 MB, and building it whole (a registry of label sets, then the text) added 9-10 MiB to
//! the daemon's RSS at each scrape, more than the units' state grows in an hour. A family's
//! samples for every unit are one chunk of the body (OpenMetrics keeps a family together).

use std::convert::Infallible;
use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;

use super::AppState;
use crate::engine::writer::StoreState;
use crate::engine::{Failure, LoopStats, Observation, Rollback, UnitSnapshot, Units};
use autoscaler_core::Mode;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Gauge,
    Counter,
}

/// One metric family: its name, help and type, and where its samples come from.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Samples,
}

enum Samples {
    /// Samples of each unit (none, one or several), written through [`Lines`].
    Unit(fn(&UnitSnapshot, &mut Lines<'_>)),
    /// One sample for the whole daemon.
    Daemon(fn(&Daemon) -> f64),
}

/// What the daemon-wide families read.
struct Daemon {
    loop_stats: LoopStats,
    store: StoreState,
}

/// Writes one unit's samples of one family: `name{unit="…",…} value`.
struct Lines<'a> {
    out: &'a mut String,
    name: &'static str,
    kind: Kind,
    unit: &'a str,
}

impl Lines<'_> {
    fn put(&mut self, value: f64) {
        self.put_with(&[], value);
    }

    /// A sample when the unit has a value (no reading yet, no limit, no bounds: none).
    fn put_some(&mut self, value: Option<f64>) {
        if let Some(v) = value {
            self.put(v);
        }
    }

    fn put_with(&mut self, labels: &[(&str, &str)], value: f64) {
        let unit = [("unit", self.unit)];
        sample(
            self.out,
            self.name,
            self.kind,
            unit.iter().chain(labels),
            value,
        );
    }
}

/// One sample line; a counter's samples carry the `_total` suffix.
fn sample<'l>(
    out: &mut String,
    name: &str,
    kind: Kind,
    labels: impl IntoIterator<Item = &'l (&'l str, &'l str)>,
    value: f64,
) {
    out.push_str(name);
    if kind == Kind::Counter {
        out.push_str("_total");
    }
    let mut sep = '{';
    for (key, val) in labels {
        out.push(sep);
        out.push_str(key);
        out.push_str("=\"");
        escape_label(out, val);
        out.push('"');
        sep = ',';
    }
    if sep == ',' {
        out.push('}');
    }
    out.push(' ');
    number(out, value);
    out.push('\n');
}

/// A label value as OpenMetrics quotes it: backslash, double quote and newline escaped.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A sample's value: the shortest text that reads back as the same number (`1.0`, `0.25`,
/// `1.8446744073709552e19`), and OpenMetrics' words for what is not finite.
fn number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v:?}");
    }
}

/// A family's whole text: its `HELP` and `TYPE` lines, then its samples for every unit.
fn family_text(f: &Family, units: &Units, daemon: &Daemon) -> String {
    let mut out = String::new();
    let kind = match f.kind {
        Kind::Gauge => "gauge",
        Kind::Counter => "counter",
    };
    let _ = writeln!(
        out,
        "# HELP {} {}\n# TYPE {} {kind}",
        f.name, f.help, f.name
    );
    match f.samples {
        Samples::Unit(write) => {
            for u in units {
                let mut lines = Lines {
                    out: &mut out,
                    name: f.name,
                    kind: f.kind,
                    unit: u.name.as_str(),
                };
                write(u, &mut lines);
            }
        }
        Samples::Daemon(read) => sample(&mut out, f.name, f.kind, [], read(daemon)),
    }
    out
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// `autoscaler_unit_failed` and `autoscaler_rollback_failed` for a unit's unacknowledged
/// failure. The rollback's outcome is read from its type, never from the message's words, so
/// rewording the message cannot silence the critical alert.
fn failure_gauges(last: Option<&Failure>) -> (f64, f64) {
    (
        flag(last.is_some()),
        flag(last.is_some_and(|f| matches!(f.rollback, Rollback::Failed(_)))),
    )
}

fn observed(u: &UnitSnapshot) -> Option<&Observation> {
    u.observation.as_deref()
}

impl Family {
    const fn units(
        kind: Kind,
        name: &'static str,
        help: &'static str,
        write: fn(&UnitSnapshot, &mut Lines<'_>),
    ) -> Family {
        let samples = Samples::Unit(write);
        Family {
            name,
            help,
            kind,
            samples,
        }
    }

    const fn daemon(
        kind: Kind,
        name: &'static str,
        help: &'static str,
        read: fn(&Daemon) -> f64,
    ) -> Family {
        let samples = Samples::Daemon(read);
        Family {
            name,
            help,
            kind,
            samples,
        }
    }
}

/// Every family, in the order they are sent.
static FAMILIES: &[Family] = {
    use Kind::{Counter, Gauge};
    &[
        Family::units(
            Gauge,
            "autoscaler_cpu_cores_used",
            "CPU cores used by the unit over the last check interval.",
            |u, l| l.put_some(observed(u).and_then(|o| o.usage.cpu_cores)),
        ),
        Family::units(
            Gauge,
            "autoscaler_cpu_percent_of_quota",
            "CPU use in percent of the unit's CPUQuota.",
            |u, l| l.put_some(observed(u).and_then(|o| o.evaluation.cpu_percent)),
        ),
        Family::units(
            Gauge,
            "autoscaler_memory_bytes",
            "Memory used by the unit's cgroup.",
            |u, l| l.put_some(observed(u).map(|o| o.usage.memory_bytes as f64)),
        ),
        Family::units(
            Gauge,
            "autoscaler_tasks",
            "Tasks (threads) in the unit's cgroup.",
            |u, l| l.put_some(observed(u).map(|o| o.usage.tasks as f64)),
        ),
        Family::units(
            Gauge,
            "autoscaler_processes",
            "Processes in the unit's cgroup.",
            |u, l| l.put_some(observed(u).map(|o| o.usage.processes as f64)),
        ),
        Family::units(
            Gauge,
            "autoscaler_limit_cpu_quota_percent",
            "CPUQuota in percent of one core (absent: unlimited).",
            |u, l| l.put_some(u.limits.and_then(|lim| lim.cpu_quota).map(f64::from)),
        ),
        Family::units(
            Gauge,
            "autoscaler_limit_memory_bytes",
            "MemoryMax in bytes (absent: unlimited).",
            |u, l| l.put_some(u.limits.and_then(|lim| lim.memory_max).map(|m| m as f64)),
        ),
        Family::units(
            Gauge,
            "autoscaler_limit_tasks",
            "TasksMax (absent: unlimited).",
            |u, l| l.put_some(u.limits.and_then(|lim| lim.tasks_max).map(|t| t as f64)),
        ),
        Family::units(
            Gauge,
            "autoscaler_cpu_throttled_ratio",
            "Share of CFS periods throttled over the last interval.",
            |u, l| l.put_some(observed(u).and_then(|o| o.usage.throttled_ratio)),
        ),
        Family::units(
            Counter,
            "autoscaler_cpu_throttled_seconds",
            "Time the unit was throttled by its CPU quota.",
            |u, l| l.put_some(observed(u).map(|o| o.counters.throttled_usec as f64 / 1e6)),
        ),
        Family::units(
            Gauge,
            "autoscaler_pressure_some_avg10",
            "PSI 'some' avg10 in percent, by resource.",
            |u, l| {
                let Some(o) = observed(u) else { return };
                if let Some(p) = o.usage.cpu_pressure {
                    l.put_with(&[("resource", "cpu")], p);
                }
                if let Some(p) = o.usage.memory_pressure {
                    l.put_with(&[("resource", "memory")], p);
                }
            },
        ),
        Family::units(
            Counter,
            "autoscaler_oom_kills",
            "OOM kills in the unit's cgroup.",
            |u, l| l.put_some(observed(u).map(|o| o.counters.oom_kills as f64)),
        ),
        Family::units(
            Counter,
            "autoscaler_actions",
            "Scaling actions taken by this daemon since it started or as stored, by action and status.",
            |u, l| {
                for ((action, status), n) in &u.action_counts {
                    l.put_with(
                        &[("action", action.as_str()), ("status", status.as_str())],
                        *n as f64,
                    );
                }
            },
        ),
        Family::units(
            Gauge,
            "autoscaler_unit_available",
            "1 when the unit can be read and managed.",
            |u, l| l.put(flag(u.unit_error.is_none())),
        ),
        Family::units(
            Gauge,
            "autoscaler_mode",
            "1 for the unit's current mode.",
            |u, l| {
                for m in Mode::ALL {
                    l.put_with(&[("mode", m.as_str())], flag(u.config.mode() == m));
                }
            },
        ),
        Family::units(
            Gauge,
            "autoscaler_unit_failed",
            "1 while a failed change is unacknowledged: the unit was disabled and stays so until its mode is set.",
            |u, l| l.put(failure_gauges(u.last_failure.as_ref()).0),
        ),
        Family::units(
            Gauge,
            "autoscaler_rollback_failed",
            "1 while the unacknowledged failure's rollback failed too: the unit may be left changed or stopped.",
            |u, l| l.put(failure_gauges(u.last_failure.as_ref()).1),
        ),
        Family::units(
            Gauge,
            "autoscaler_bound_max_cpu_quota_percent",
            "The highest CPUQuota the bounds allow on this host, in percent of one core.",
            |u, l| l.put_some(u.bounds.as_ref().ok().map(|b| f64::from(b.cpu().1))),
        ),
        Family::units(
            Gauge,
            "autoscaler_bound_max_memory_bytes",
            "The highest MemoryMax the bounds allow on this host.",
            |u, l| l.put_some(u.bounds.as_ref().ok().map(|b| b.memory().1 as f64)),
        ),
        Family::units(
            Gauge,
            "autoscaler_bound_max_tasks",
            "The highest TasksMax the bounds allow on this host.",
            |u, l| l.put_some(u.bounds.as_ref().ok().map(|b| b.tasks().1 as f64)),
        ),
        Family::daemon(
            Gauge,
            "autoscaler_loop_duration_seconds",
            "How long the last check took.",
            |d| d.loop_stats.last_check_seconds,
        ),
        Family::daemon(
            Gauge,
            "autoscaler_loop_lag_seconds",
            "How late the last check started after it was due.",
            |d| d.loop_stats.last_lag_seconds,
        ),
        Family::daemon(
            Gauge,
            "autoscaler_loop_lag_max_seconds",
            "The largest lag of any check since start.",
            |d| d.loop_stats.max_lag_seconds,
        ),
        Family::daemon(
            Counter,
            "autoscaler_checks",
            "Checks run since start.",
            |d| d.loop_stats.checks as f64,
        ),
        Family::daemon(
            Counter,
            "autoscaler_apply_failures",
            "Failed applies since start.",
            |d| d.loop_stats.apply_failures as f64,
        ),
        Family::daemon(
            Counter,
            "autoscaler_store_errors",
            "Store reads and write attempts that failed since start.",
            |d| (d.loop_stats.store_errors + d.store.errors) as f64,
        ),
        Family::daemon(
            Gauge,
            "autoscaler_store_queued_writes",
            "Writes waiting for the database (retried until stored).",
            |d| d.store.queued as f64,
        ),
        Family::daemon(
            Gauge,
            "autoscaler_store_degraded",
            "1 while the database refuses writes.",
            |d| flag(d.store.is_degraded()),
        ),
        Family::daemon(
            Counter,
            "autoscaler_store_dropped_samples",
            "Samples dropped because too many writes were waiting, since start.",
            |d| d.store.dropped_samples as f64,
        ),
        Family::daemon(
            Counter,
            "autoscaler_store_lost_writes",
            "Writes the database refused for a lasting reason, since start.",
            |d| d.store.lost_writes as f64,
        ),
        Family::daemon(
            Counter,
            "autoscaler_clock_jumps",
            "Times the wall clock jumped since start (rules go by the monotonic clock).",
            |d| d.loop_stats.clock_jumps as f64,
        ),
        Family::units(
            Counter,
            "autoscaler_event_wakes",
            "Times the kernel woke the unit's check (pressure, memory threshold, OOM), since start.",
            |u, l| l.put(u.wakes as f64),
        ),
        Family::units(
            Gauge,
            "autoscaler_event_armed",
            "1 when the kernel notification is armed for the unit, 0 when refused (checked at the interval instead).",
            |u, l| {
                for e in u.events.iter() {
                    l.put_with(&[("source", e.source.name())], flag(e.armed));
                }
            },
        ),
    ]
};

#[utoipa::path(get, path = "/metrics", operation_id = "prometheus", tag = "meta",
    summary = "Prometheus metrics (OpenMetrics text): usage, limits, throttling, pressure, OOM kills, actions by action and status, loop duration and lag.",
    responses((status = 200, description = "OpenMetrics text.", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(s): State<AppState>) -> Response {
    let snap = s.engine.snapshot();
    let daemon = Daemon {
        loop_stats: snap.loop_stats,
        store: s.engine.store_state(),
    };
    // Each family is written when the body is polled for it, so one family's text is held
    // at a time, however many units there are.
    let chunks =
        futures_util::stream::iter(FAMILIES.iter().map(Some).chain([None])).map(move |f| {
            Ok::<_, Infallible>(match f {
                Some(f) => family_text(f, &snap.units, &daemon),
                None => "# EOF\n".to_string(),
            })
        });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        Body::from_stream(chunks),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use autoscaler_core::Millis;

    fn check(rollback: Rollback, message: &str, want: (f64, f64)) {
        let f = Failure {
            at: Millis(0),
            message: message.to_string(),
            history_id: 1,
            rollback: rollback.clone(),
        };
        assert_eq!(failure_gauges(Some(&f)), want, "{rollback:?}, {message:?}");
    }

    fn text(f: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        f(&mut out);
        out
    }

    #[test]
    fn a_value_reads_back_as_the_same_number() {
        let cases = [
            (1.0, "1.0"),
            (0.25, "0.25"),
            (0.0, "0.0"),
            (4294967296.0, "4294967296.0"),
            (u64::MAX as f64, "1.8446744073709552e19"),
            (1e-7, "1e-7"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(text(|o| number(o, v)), want, "{v}");
            if v.is_finite() {
                assert_eq!(want.parse::<f64>(), Ok(v), "{want}");
            }
        }
    }

    #[test]
    fn a_sample_line_quotes_its_labels_and_suffixes_a_counter() {
        // systemd escapes a unit name's dashes as `\x2d`: the backslash must be doubled.
        let labels = [("unit", r#"a\x2db"c"#), ("source", "line\nbreak")];
        assert_eq!(
            text(|o| sample(o, "m", Kind::Counter, &labels, 2.0)),
            "m_total{unit=\"a\\\\x2db\\\"c\",source=\"line\\nbreak\"} 2.0\n"
        );
        assert_eq!(text(|o| sample(o, "g", Kind::Gauge, [], 0.5)), "g 0.5\n");
    }

    #[test]
    fn every_family_is_named_once_with_a_help_that_ends_in_a_full_stop() {
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len(), "a family named twice");
        for f in FAMILIES {
            assert!(f.name.starts_with("autoscaler_"), "{}", f.name);
            assert!(
                !f.name.ends_with("_total"),
                "{}: the suffix is added",
                f.name
            );
            assert!(
                f.help.ends_with('.') && !f.help.contains('\n'),
                "{}",
                f.name
            );
        }
    }

    #[test]
    fn the_rollback_gauge_follows_the_typed_outcome_not_the_words() {
        assert_eq!(failure_gauges(None), (0.0, 0.0));
        // (outcome, message, (unit_failed, rollback_failed)): the messages are reworded on
        // purpose, one of them mentioning the old words for an outcome that is not a failure.
        let cases = [
            (
                Rollback::Failed("disk full".into()),
                "could not restore",
                (1.0, 1.0),
            ),
            (Rollback::Failed(String::new()), "", (1.0, 1.0)),
            (
                Rollback::Done("50%".into()),
                "ROLLBACK FAILED? no: restored",
                (1.0, 0.0),
            ),
            (Rollback::NothingChanged, "refused", (1.0, 0.0)),
            (Rollback::Unknown, "timed out", (1.0, 0.0)),
        ];
        for (rollback, message, want) in cases {
            check(rollback, message, want);
        }
    }
}
