//! Prometheus `/metrics`: the engine's snapshot in OpenMetrics text, built at each scrape.
//!
//! Building a small registry per scrape keeps this stateless: the snapshot is the only
//! source, so what Prometheus sees is what the status endpoint says.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::engine::{Failure, Rollback};
use autoscaler_core::Mode;

type Labels = Vec<(String, String)>;
type G = Family<Labels, Gauge<f64, AtomicU64>>;
type C = Family<Labels, Counter<f64, AtomicU64>>;

struct Families {
    reg: Registry,
}

impl Families {
    fn gauge(&mut self, name: &str, help: &str) -> G {
        let f = G::default();
        self.reg.register(name, help, f.clone());
        f
    }
    fn counter(&mut self, name: &str, help: &str) -> C {
        let f = C::default();
        self.reg.register(name, help, f.clone());
        f
    }
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `autoscaler_unit_failed` and `autoscaler_rollback_failed` for a unit's unacknowledged
/// failure. The rollback's outcome is read from its type, never from the message's words, so
/// rewording the message cannot silence the critical alert.
fn failure_gauges(last: Option<&Failure>) -> (f64, f64) {
    let gauge = |on: bool| if on { 1.0 } else { 0.0 };
    (
        gauge(last.is_some()),
        gauge(last.is_some_and(|f| matches!(f.rollback, Rollback::Failed(_)))),
    )
}

#[utoipa::path(get, path = "/metrics", operation_id = "prometheus", tag = "meta",
    summary = "Prometheus metrics (OpenMetrics text): usage, limits, throttling, pressure, OOM kills, actions by action and status, loop duration and lag.",
    responses((status = 200, description = "OpenMetrics text.", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(s): State<AppState>) -> Response {
    let snap = s.engine.snapshot();
    let mut f = Families {
        reg: Registry::default(),
    };
    let cpu = f.gauge(
        "autoscaler_cpu_cores_used",
        "CPU cores used by the unit over the last check interval",
    );
    let cpu_pct = f.gauge(
        "autoscaler_cpu_percent_of_quota",
        "CPU use in percent of the unit's CPUQuota",
    );
    let mem = f.gauge(
        "autoscaler_memory_bytes",
        "Memory used by the unit's cgroup",
    );
    let tasks = f.gauge("autoscaler_tasks", "Tasks (threads) in the unit's cgroup");
    let procs = f.gauge("autoscaler_processes", "Processes in the unit's cgroup");
    let lim_cpu = f.gauge(
        "autoscaler_limit_cpu_quota_percent",
        "CPUQuota in percent of one core (absent: unlimited)",
    );
    let lim_mem = f.gauge(
        "autoscaler_limit_memory_bytes",
        "MemoryMax in bytes (absent: unlimited)",
    );
    let lim_tasks = f.gauge("autoscaler_limit_tasks", "TasksMax (absent: unlimited)");
    let throttled = f.gauge(
        "autoscaler_cpu_throttled_ratio",
        "Share of CFS periods throttled over the last interval",
    );
    let throttled_s = f.counter(
        "autoscaler_cpu_throttled_seconds",
        "Time the unit was throttled by its CPU quota",
    );
    let pressure = f.gauge(
        "autoscaler_pressure_some_avg10",
        "PSI 'some' avg10 in percent, by resource",
    );
    let ooms = f.counter("autoscaler_oom_kills", "OOM kills in the unit's cgroup");
    let actions = f.counter(
        "autoscaler_actions",
        "Scaling actions taken by this daemon since it started or as stored, by action and status",
    );
    let available = f.gauge(
        "autoscaler_unit_available",
        "1 when the unit can be read and managed",
    );
    let mode = f.gauge("autoscaler_mode", "1 for the unit's current mode");
    let failed = f.gauge(
        "autoscaler_unit_failed",
        "1 while a failed change is unacknowledged: the unit was disabled and stays so until its mode is set",
    );
    let rollback_failed = f.gauge(
        "autoscaler_rollback_failed",
        "1 while the unacknowledged failure's rollback failed too: the unit may be left changed or stopped",
    );
    let max_cpu = f.gauge(
        "autoscaler_bound_max_cpu_quota_percent",
        "The highest CPUQuota the bounds allow on this host, in percent of one core",
    );
    let max_mem = f.gauge(
        "autoscaler_bound_max_memory_bytes",
        "The highest MemoryMax the bounds allow on this host",
    );
    let max_tasks = f.gauge(
        "autoscaler_bound_max_tasks",
        "The highest TasksMax the bounds allow on this host",
    );
    let loop_dur = f.gauge(
        "autoscaler_loop_duration_seconds",
        "How long the last check took",
    );
    let loop_lag = f.gauge(
        "autoscaler_loop_lag_seconds",
        "How late the last check started after it was due",
    );
    let loop_lag_max = f.gauge(
        "autoscaler_loop_lag_max_seconds",
        "The largest lag of any check since start",
    );
    let checks = f.counter("autoscaler_checks", "Checks run since start");
    let failures = f.counter("autoscaler_apply_failures", "Failed applies since start");
    let store_errors = f.counter(
        "autoscaler_store_errors",
        "Store reads and write attempts that failed since start",
    );
    let store_queued = f.gauge(
        "autoscaler_store_queued_writes",
        "Writes waiting for the database (retried until stored)",
    );
    let store_degraded = f.gauge(
        "autoscaler_store_degraded",
        "1 while the database refuses writes",
    );
    let store_dropped = f.counter(
        "autoscaler_store_dropped_samples",
        "Samples dropped because too many writes were waiting, since start",
    );
    let store_lost = f.counter(
        "autoscaler_store_lost_writes",
        "Writes the database refused for a lasting reason, since start",
    );
    let clock_jumps = f.counter(
        "autoscaler_clock_jumps",
        "Times the wall clock jumped since start (rules go by the monotonic clock)",
    );
    let wakes = f.counter(
        "autoscaler_event_wakes",
        "Times the kernel woke the unit's check (pressure, memory threshold, OOM), since start",
    );
    let armed = f.gauge(
        "autoscaler_event_armed",
        "1 when the kernel notification is armed for the unit, 0 when refused (checked at the interval instead)",
    );

    for u in &snap.units {
        let unit = u.name.as_str();
        let ul = l(&[("unit", unit)]);
        available
            .get_or_create(&ul)
            .set(if u.unit_error.is_none() { 1.0 } else { 0.0 });
        wakes.get_or_create(&ul).inc_by(u.wakes as f64);
        for e in u.events.iter() {
            armed
                .get_or_create(&l(&[("unit", unit), ("source", e.source.name())]))
                .set(if e.armed { 1.0 } else { 0.0 });
        }
        let (is_failed, is_rollback_failed) = failure_gauges(u.last_failure.as_ref());
        failed.get_or_create(&ul).set(is_failed);
        rollback_failed.get_or_create(&ul).set(is_rollback_failed);
        if let Ok(b) = &u.bounds {
            max_cpu.get_or_create(&ul).set(f64::from(b.cpu().1));
            max_mem.get_or_create(&ul).set(b.memory().1 as f64);
            max_tasks.get_or_create(&ul).set(b.tasks().1 as f64);
        }
        for m in Mode::ALL {
            let on = u.config.mode() == m;
            mode.get_or_create(&l(&[("unit", unit), ("mode", m.as_str())]))
                .set(if on { 1.0 } else { 0.0 });
        }
        if let Some(lim) = &u.limits {
            if let Some(q) = lim.cpu_quota {
                lim_cpu.get_or_create(&ul).set(f64::from(q));
            }
            if let Some(m) = lim.memory_max {
                lim_mem.get_or_create(&ul).set(m as f64);
            }
            if let Some(t) = lim.tasks_max {
                lim_tasks.get_or_create(&ul).set(t as f64);
            }
        }
        for ((action, status), n) in &u.action_counts {
            actions
                .get_or_create(&l(&[
                    ("unit", unit),
                    ("action", action.as_str()),
                    ("status", status.as_str()),
                ]))
                .inc_by(*n as f64);
        }
        let Some(o) = &u.observation else { continue };
        if let Some(c) = o.usage.cpu_cores {
            cpu.get_or_create(&ul).set(c);
        }
        if let Some(p) = o.evaluation.cpu_percent {
            cpu_pct.get_or_create(&ul).set(p);
        }
        mem.get_or_create(&ul).set(o.usage.memory_bytes as f64);
        tasks.get_or_create(&ul).set(o.usage.tasks as f64);
        procs.get_or_create(&ul).set(o.usage.processes as f64);
        if let Some(t) = o.usage.throttled_ratio {
            throttled.get_or_create(&ul).set(t);
        }
        throttled_s
            .get_or_create(&ul)
            .inc_by(o.counters.throttled_usec as f64 / 1e6);
        ooms.get_or_create(&ul).inc_by(o.counters.oom_kills as f64);
        if let Some(p) = o.usage.cpu_pressure {
            pressure
                .get_or_create(&l(&[("unit", unit), ("resource", "cpu")]))
                .set(p);
        }
        if let Some(p) = o.usage.memory_pressure {
            pressure
                .get_or_create(&l(&[("unit", unit), ("resource", "memory")]))
                .set(p);
        }
    }
    let ls = snap.loop_stats;
    loop_dur.get_or_create(&vec![]).set(ls.last_check_seconds);
    loop_lag.get_or_create(&vec![]).set(ls.last_lag_seconds);
    loop_lag_max.get_or_create(&vec![]).set(ls.max_lag_seconds);
    checks.get_or_create(&vec![]).inc_by(ls.checks as f64);
    failures
        .get_or_create(&vec![])
        .inc_by(ls.apply_failures as f64);
    let st = &s.engine.store_state();
    store_errors
        .get_or_create(&vec![])
        .inc_by((ls.store_errors + st.errors) as f64);
    store_queued.get_or_create(&vec![]).set(st.queued as f64);
    store_degraded
        .get_or_create(&vec![])
        .set(if st.is_degraded() { 1.0 } else { 0.0 });
    store_dropped
        .get_or_create(&vec![])
        .inc_by(st.dropped_samples as f64);
    store_lost
        .get_or_create(&vec![])
        .inc_by(st.lost_writes as f64);
    clock_jumps
        .get_or_create(&vec![])
        .inc_by(ls.clock_jumps as f64);

    let mut body = String::new();
    if let Err(e) = encode(&mut body, &f.reg) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics failed: {e}"),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
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
