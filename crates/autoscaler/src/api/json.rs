//! The spec's JSON shapes, built by hand from engine types. Field names and types follow the
//! spec's examples exactly; what we add comes after, under new names.

use autoscaler_core::config::FIELDS;
use autoscaler_core::{Config, GIB, Limits, Millis};
use autoscaler_store::{HistoryRow, format_ts};
use serde_json::{Map, Number, Value, json};

use crate::engine::{Observation, Snapshot, UnitSnapshot};

/// GiB as the spec writes them: an integer when whole, else a number with 3 decimals.
pub fn gib(bytes: u64) -> Value {
    if bytes % GIB == 0 {
        json!(bytes / GIB)
    } else {
        num(bytes as f64 / GIB as f64, 3)
    }
}

fn num(v: f64, decimals: i32) -> Value {
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

pub fn status_json(u: &UnitSnapshot, snap: &Snapshot) -> Value {
    let ev = u.observation.as_ref().map(|o| &o.evaluation);
    let bounds = match &u.bounds {
        Ok(b) => json!({
            "cpu_quota": [b.cpu.0, b.cpu.1],
            "memory_max": [gib(b.memory.0), gib(b.memory.1)],
            "tasks_max": [b.tasks.0, b.tasks.1],
        }),
        Err(e) => json!({ "error": e }),
    };
    json!({
        "mode": u.config.mode.as_str(),
        "policy": u.config.policy.as_str(),
        "is_running": u.applying,
        "current_limits": u.limits.as_ref().map_or(Value::Null, limits_json),
        "last_scale_time": ts(u.last_scale_time),
        "scale_up_count": u.scale_up_count,
        "scale_down_count": u.scale_down_count,
        "unit": u.name.as_str(),
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
        "action": h.action,
        "trigger_type": h.trigger_type,
        "reason": h.reason,
        "old_limits": limits_json(&h.old),
        "new_limits": limits_json(&h.new),
        "status": h.status,
        "error_message": h.error_message,
        "unit": h.unit.as_str(),
    })
}

pub fn config_json(c: &Config) -> Value {
    let mut m = Map::new();
    m.insert("mode".into(), json!(c.mode.as_str()));
    m.insert("policy".into(), json!(c.policy.as_str()));
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
    m.insert("predictive".into(), json!(c.predictive));
    Value::Object(m)
}
