//! The spec's JSON shapes, built by hand from engine types. Field names and types follow the
//! spec's examples exactly; what we add comes after, under new names.

use crate::engine::writer::StoreState;
use autoscaler_core::config::FIELDS;
use autoscaler_core::{Config, GIB, Limits, Millis};
use autoscaler_store::{HistoryRow, format_ts};
use serde_json::{Map, Number, Value, json};

use autoscaler_core::predict::Prediction;

use crate::engine::{Observation, Snapshot, UnitSnapshot};

/// GiB as the spec writes them: an integer when whole, else a number with 3 decimals.
pub fn gib(bytes: u64) -> Value {
    if bytes.is_multiple_of(GIB) {
        json!(bytes / GIB)
    } else {
        num(bytes as f64 / GIB as f64, 3)
    }
}

/// A JSON number rounded to `decimals` places; null for a value JSON cannot hold.
pub(crate) fn num(v: f64, decimals: i32) -> Value {
    let p = 10f64.powi(decimals);
    Number::from_f64((v * p).round() / p).map_or(Value::Null, Value::Number)
}

pub fn limits_json(l: &Limits) -> Value {
    json!({
        "cpu_quota": l.cpu_quota,
        "memory_max": l.memory_max.map_or(Value::Null, gib),
        "tasks_max": l.tasks_max,
    })
}

fn ts(m: Option<Millis>) -> Value {
    m.map_or(Value::Null, |m| Value::String(format_ts(m)))
}

pub fn status_json(u: &UnitSnapshot, snap: &Snapshot, store: &StoreState) -> Value {
    let ev = u.observation.as_ref().map(|o| &o.evaluation);
    let bounds = match &u.bounds {
        Ok(b) => json!({
            "cpu_quota": [b.cpu().0, b.cpu().1],
            "memory_max": [gib(b.memory().0), gib(b.memory().1)],
            "tasks_max": [b.tasks().0, b.tasks().1],
        }),
        Err(e) => json!({ "error": e }),
    };
    json!({
        "mode": u.config.mode().as_str(),
        "policy": u.config.policy().as_str(),
        "is_running": u.applying,
        "current_limits": u.limits.as_ref().map_or(Value::Null, limits_json),
        "last_scale_time": ts(u.last_scale_time),
        "scale_up_count": u.scale_up_count,
        "scale_down_count": u.scale_down_count,
        "unit": u.name.as_str(),
        "manager": u.manager,
        "strategy": snap.strategy,
        "unit_available": u.unit_error.is_none(),
        "unit_error": u.unit_error,
        "last_failure": u.last_failure.as_ref().map(|f| json!({
            "timestamp": format_ts(f.at),
            "error_message": f.message,
            "history_id": f.history_id,
        })),
        "last_decision": u.decision,
        "streaks": {
            "scale_up": ev.map_or(0, |e| e.up_streak),
            "scale_down": ev.map_or(0, |e| e.down_streak),
        },
        "bounds": bounds,
        "host": { "cores": snap.host.cores, "memory_gb": gib(snap.host.memory_bytes) },
        "store": store_json(store),
        "events": {
            "sources": u.events.iter().map(|e| json!({
                "source": e.source.name(),
                "armed": e.armed,
                "detail": e.detail,
            })).collect::<Vec<_>>(),
            "wakes": u.wakes,
        },
    })
}

/// How the store keeps up: `ok`, or `degraded` with why, and what waits or was dropped.
pub fn store_json(s: &StoreState) -> Value {
    json!({
        "state": if s.is_degraded() { "degraded" } else { "ok" },
        "reason": s.degraded(),
        "queued_writes": s.queued,
        "dropped_samples": s.dropped_samples,
        "lost_writes": s.lost_writes,
        "errors": s.errors,
    })
}

pub fn metrics_json(o: &Observation) -> Value {
    let u = &o.usage;
    let e = &o.evaluation;
    let opt = |v: Option<f64>, d| v.map_or(Value::Null, |v| num(v, d));
    json!({
        "timestamp": format_ts(u.at),
        "cpu_percent": opt(e.cpu_percent, 1),
        "cpu_cores_used": opt(u.cpu_cores, 3),
        "memory_gb": num(u.memory_bytes as f64 / GIB as f64, 3),
        "process_count": u.processes,
        "agent_count": u.signals.agents,
        "testing_agent_count": u.signals.testing_agents,
        "api_quota_remaining": u.signals.api_quota_remaining,
        "features_pending": u.signals.features_pending,
        "task_count": u.tasks,
        "memory_percent": opt(e.memory_percent, 1),
        "tasks_percent": opt(e.tasks_percent, 1),
        "throttled_percent": opt(u.throttled_ratio.map(|r| r * 100.0), 1),
        "cpu_pressure": opt(u.cpu_pressure, 2),
        "memory_pressure": opt(u.memory_pressure, 2),
        "oom_kills": o.counters.oom_kills,
        "limits": limits_json(&o.limits),
    })
}

pub fn history_json(h: &HistoryRow) -> Value {
    json!({
        "id": h.id,
        "timestamp": format_ts(h.at),
        "action": h.action.as_str(),
        "trigger_type": h.trigger_type.as_str(),
        "reason": h.reason,
        "old_limits": limits_json(&h.old),
        "new_limits": limits_json(&h.new),
        "status": h.status.as_str(),
        "error_message": h.error_message,
        "unit": h.unit.as_str(),
    })
}

pub fn config_json(c: &Config) -> Value {
    let mut m = Map::new();
    m.insert("mode".into(), json!(c.mode().as_str()));
    m.insert("policy".into(), json!(c.policy().as_str()));
    for f in FIELDS {
        let v = (f.get)(c);
        m.insert(
            f.name.into(),
            if f.integer {
                json!(v as i64)
            } else {
                num(v, 4)
            },
        );
    }
    m.insert("predictive".into(), json!(c.predictive()));
    Value::Object(m)
}

/// The adaptive policy's current recommendation per resource: the chosen model, its figures,
/// and the limit it recommends (CPU in percent of a core, memory in GB, tasks).
fn adaptive_json(v: &autoscaler_core::adaptive::Verdict) -> Value {
    use autoscaler_core::Resource;
    let mut m = Map::new();
    for r in v.recs.iter().flatten() {
        let (key, show): (&str, fn(f64) -> Value) = match r.resource {
            Resource::Cpu => ("cpu_quota", |x| num(x, 1)),
            Resource::Memory => ("memory_gb", |x| num(x / GIB as f64, 3)),
            Resource::Tasks => ("tasks_max", |x| num(x, 0)),
        };
        m.insert(
            key.into(),
            json!({
                "recommended": show(r.target as f64),
                "model": r.model_name(),
                "window_minutes": r.model.windows as i64 * autoscaler_core::adaptive::WINDOW_SECS / 60,
                "margin": num(r.model.margin, 2),
                "peak": show(r.peak),
                "cost": num(r.cost, 3),
                "history_hours": num(r.history_secs / 3600.0, 2),
            }),
        );
    }
    m.insert("verdict".into(), json!(v.to_string()));
    Value::Object(m)
}

/// `GET prediction`: trends, forecasts with 95% intervals (the model chosen, whether the
/// interval is calibrated on the unit's own errors, and its recent coverage), profiles,
/// heaviest features and the recommended limits. A series without enough data says so
/// instead of guessing.
pub fn prediction_json(u: &UnitSnapshot, p: &Prediction) -> Value {
    let opt = |v: Option<f64>| v.map_or(Value::Null, |v| num(v, 3));
    let mut series = Map::new();
    for s in &p.series {
        let trend = s.trend.map(|t| {
            json!({
                "current": num(t.current, 3),
                "ma5": opt(t.ma5),
                "ma15": opt(t.ma15),
                "slope_per_min": num(t.slope_per_min, 4),
                "trend": t.trend.as_str(),
                "samples": t.samples,
            })
        });
        let (forecast, error) = match &s.forecast {
            Ok(f) => (
                Value::Array(
                    f.points
                        .iter()
                        .map(|pt| {
                            json!({
                                "horizon_minutes": (pt.horizon_secs / 60.0).round() as i64,
                                "value": num(pt.value, 3),
                                "lower": num(pt.lower, 3),
                                "upper": num(pt.upper, 3),
                                "model": pt.model.as_str(),
                                "enough_data": pt.enough_data,
                                "errors_scored": pt.errors,
                                "recent_coverage": pt.recent_coverage.map_or(Value::Null, |c| num(c, 3)),
                            })
                        })
                        .collect(),
                ),
                Value::Null,
            ),
            Err(e) => (Value::Null, json!(e.to_string())),
        };
        let mut entry = trend.unwrap_or_else(|| json!({ "trend": Value::Null }));
        entry["forecast"] = forecast;
        entry["error"] = error;
        series.insert(s.name.to_string(), entry);
    }
    let profiles: Map<String, Value> = p
        .profiles
        .iter()
        .map(|rp| {
            let scale = if rp.resource == autoscaler_core::Resource::Memory {
                GIB as f64
            } else {
                1.0
            };
            let name = if scale > 1.0 {
                "memory_gb"
            } else {
                "cpu_cores"
            };
            let pr = &rp.profile;
            (
                name.to_string(),
                json!({
                    "base": num(pr.base / scale, 3),
                    "per_agent": num(pr.per_agent / scale, 3),
                    "per_testing_agent": num(pr.per_testing_agent / scale, 3),
                    "samples": pr.samples,
                    "r2": num(pr.r2, 3),
                    "terms": pr.terms.describe(),
                }),
            )
        })
        .collect();
    let features: Vec<Value> = u
        .features
        .iter()
        .map(|f| {
            json!({
                "feature_id": f.feature_id,
                "samples": f.samples,
                "cpu_cores_mean": num(f.cpu_cores_mean, 3),
                "cpu_cores_peak": num(f.cpu_cores_peak, 3),
                "memory_gb_mean": num(f.memory_bytes_mean / GIB as f64, 3),
                "memory_gb_peak": num(f.memory_bytes_peak / GIB as f64, 3),
            })
        })
        .collect();
    // Enough data means every limited resource has a forecast; agents and features are
    // context (a unit without AutoCoder has no features to forecast).
    let missing: Vec<String> = p
        .series
        .iter()
        .filter(|s| s.resource.is_some())
        .filter_map(|s| {
            s.forecast
                .as_ref()
                .err()
                .map(|e| format!("{}: {e}", s.name))
        })
        .collect();
    json!({
        "timestamp": ts(u.observation.as_ref().map(|o| o.usage.at)),
        "unit": u.name.as_str(),
        "adaptive": u.adaptive.as_deref().map_or(Value::Null, adaptive_json),
        "predictive": u.config.predictive(),
        "window_minutes": u.config.forecast_window_minutes(),
        "samples": p.samples,
        "samples_needed": p.needed,
        "enough_data": missing.is_empty(),
        "message": if missing.is_empty() { Value::Null } else { json!(missing.join("; ")) },
        "series": series,
        "recommendation": {
            "limits": limits_json(&p.recommendation.limits),
            "reasons": p.recommendation.reasons,
        },
        "profiles": profiles,
        "heaviest_features": features,
    })
}
