//! The spec's MCP tools: their names, input schemas and descriptions, and how each call
//! becomes one API request.
//!
//! A tool holds no logic of its own: its arguments (minus `unit`, which picks the path) are the
//! endpoint's JSON body or query, so the API checks them and its message is the tool's error.
//! The only checks made here are for arguments the API never sees: `unit`, the keys of tools
//! whose endpoint takes no body, and the type of `limit` (a query string has no types). They
//! use the API's error shape and words. The `set_config` schema is generated from the core's
//! field table, so it cannot drift from what the API accepts.

use std::sync::Arc;

use crate::changes::kind;
use autoscaler_core::config::FIELDS;
use autoscaler_core::{Mode, Policy};
use axum::http::Method;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Map, Value, json};

use super::backend::{ApiRequest, ToolError};
use crate::api::ApiError;
use crate::client::Client;

/// What a tool does with the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// GET an endpoint that takes no arguments.
    Get(&'static str),
    /// GET `history?limit=N`.
    History,
    /// POST the arguments as the JSON body.
    Post(&'static str),
    /// PUT the arguments as the JSON body.
    Put(&'static str),
}

struct Spec {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    call: Call,
}

/// The nine tools, in the spec's order.
const SPECS: &[Spec] = &[
    Spec {
        name: "autoscaler_set_mode",
        title: "Set the autoscaler's mode",
        // The modes and their words come from the core (`Mode::summary`), after this.
        description: "Set the autoscaler's mode for a unit. Returns the new status (as \
            autoscaler_get_status). The modes:",
        call: Call::Post("mode"),
    },
    Spec {
        name: "autoscaler_set_policy",
        title: "Set the scaling policy",
        // The policies and their bundles come from the core (`Policy::summary`), after this.
        description: "Set the scaling policy, a bundle of thresholds, streak length, cooldown \
            and growth factor that overwrites those config fields. Returns the new status. The \
            policies:",
        call: Call::Post("policy"),
    },
    Spec {
        name: "autoscaler_manual_scale",
        title: "Set limits by hand",
        description: "Set the unit's limits now and switch the mode to \"manual\" so the \
            autoscaler does not undo them. Give at least one of cpu_quota (percent of one core), \
            memory_max (GiB), tasks_max; the others keep their values. Each must lie within the \
            unit's bounds (autoscaler_get_status -> bounds: the config's hard min/max, capped by \
            the host's capacity minus the system reserve); a value outside them is refused with \
            the allowed range and nothing changes. Returns the history row of the change.",
        call: Call::Post("scale"),
    },
    Spec {
        name: "autoscaler_get_status",
        title: "Autoscaler status",
        description: "Get the autoscaler's state for a unit: mode, policy, current limits \
            (cpu_quota in percent of one core, memory_max in GiB, tasks_max), scale-up and \
            scale-down counts, the last decision and streaks, the bounds new limits must lie \
            in, the host's cores and memory, and whether the unit can be read (unit_error).",
        call: Call::Get("status"),
    },
    Spec {
        name: "autoscaler_get_metrics",
        title: "Current resource usage",
        description: "Get the unit's current resource usage from its cgroup: cpu_percent (of \
            the quota) and cpu_cores_used, memory_gb and memory_percent (of MemoryMax), \
            process_count and task_count, throttling, CPU and memory pressure, OOM kills, the \
            agents' signals, and the limits in force.",
        call: Call::Get("metrics"),
    },
    Spec {
        name: "autoscaler_get_history",
        title: "Scaling history",
        description: "List scaling actions, newest first: id, timestamp, action (scale_up, \
            scale_down, manual, ...), trigger_type, reason, old_limits and new_limits, status \
            (success or failed) and error_message. The structured result is \
            {\"history\": [rows]}; the text is the API's JSON array.",
        call: Call::History,
    },
    Spec {
        name: "autoscaler_get_config",
        title: "Autoscaler configuration",
        description: "Get the unit's configuration: mode, policy, predictive, the scale-up and \
            scale-down thresholds (percent), check interval and cooldown (seconds), streak \
            lengths, growth and shrink factors, hard bounds (CPU percent of one core, memory \
            GiB, tasks), system reserves and minimum steps.",
        call: Call::Get("config"),
    },
    Spec {
        name: "autoscaler_set_config",
        title: "Change the configuration",
        description: "Change configuration fields; omitted fields keep their values. The change \
            is applied whole or not at all: one invalid value (the error names the field and \
            the allowed range) changes nothing. A policy given here is applied first, so \
            explicit fields in the same call override its bundle. Returns the whole new \
            configuration (as autoscaler_get_config).",
        call: Call::Put("config"),
    },
    Spec {
        name: "autoscaler_get_prediction",
        title: "Forecasts and recommended limits",
        description: "Get the forecast of the unit's CPU, memory and task use and the limits \
            the autoscaler recommends (predictive scaling). Fails with the API's error when \
            the daemon does not serve predictions.",
        call: Call::Get("prediction"),
    },
];

const UNIT_ALLOWED: &str = "the name of a unit the daemon manages, e.g. \"autocoder-ui.service\" (GET /api/autoscaler/units lists them); omit it for the default unit";
const LIMIT_ALLOWED: &str = "an integer in 1..=1000";

/// Every tool as `tools/list` shows it.
pub fn all() -> Vec<Tool> {
    SPECS.iter().map(definition).collect()
}

/// Whether a tool of this name exists.
pub fn exists(name: &str) -> bool {
    SPECS.iter().any(|s| s.name == name)
}

/// The API request a call of tool `name` makes, or the error it fails with before any.
/// `default_unit` is used when the arguments name none (`autoscaler mcp --unit`).
pub fn request(
    name: &str,
    mut args: Map<String, Value>,
    default_unit: Option<&str>,
) -> Result<ApiRequest, ToolError> {
    let spec = SPECS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| bad(format!("unknown tool {name:?}"), None, None))?;
    let unit = match args.remove("unit") {
        None | Some(Value::Null) => default_unit.map(str::to_string),
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(Value::String(_)) => {
            return Err(bad("unit is empty", Some("unit"), Some(UNIT_ALLOWED)));
        }
        Some(other) => {
            return Err(bad(
                format!("unit has the wrong type: {}", kind(&other)),
                Some("unit"),
                Some(UNIT_ALLOWED),
            ));
        }
    };
    // Client::path percent-encodes the unit, as for the CLI.
    let path = |endpoint: &str| Client::path(unit.as_deref(), endpoint);
    let req = match spec.call {
        Call::Get(endpoint) => {
            only_unit(&args, "unit")?;
            ApiRequest {
                method: Method::GET,
                path: path(endpoint),
                body: None,
            }
        }
        Call::History => {
            let limit = args.remove("limit");
            only_unit(&args, "limit, unit")?;
            let query = match limit {
                None | Some(Value::Null) => String::new(),
                Some(Value::Number(n)) => format!("?limit={n}"),
                Some(other) => {
                    return Err(bad(
                        format!("limit has the wrong type: {}", kind(&other)),
                        Some("limit"),
                        Some(LIMIT_ALLOWED),
                    ));
                }
            };
            ApiRequest {
                method: Method::GET,
                path: format!("{}{query}", path("history")),
                body: None,
            }
        }
        Call::Post(endpoint) => ApiRequest {
            method: Method::POST,
            path: path(endpoint),
            body: Some(Value::Object(args)),
        },
        Call::Put(endpoint) => ApiRequest {
            method: Method::PUT,
            path: path(endpoint),
            body: Some(Value::Object(args)),
        },
    };
    Ok(req)
}

/// The structured result of a tool: MCP wants an object, the history endpoint answers an array.
pub fn structured(name: &str, value: Value) -> Value {
    match value {
        Value::Object(_) => value,
        other if name == "autoscaler_get_history" => json!({ "history": other }),
        other => json!({ "result": other }),
    }
}

fn only_unit(args: &Map<String, Value>, allowed: &str) -> Result<(), ToolError> {
    match args.keys().next() {
        Some(k) => Err(bad(format!("unknown field {k:?}"), Some(k), Some(allowed))),
        None => Ok(()),
    }
}

fn bad(message: impl Into<String>, field: Option<&str>, allowed: Option<&str>) -> ToolError {
    let e = ApiError::bad_request(message, field, allowed);
    ToolError::from_api(e.status.as_u16(), e.body)
}

fn definition(spec: &Spec) -> Tool {
    let mut properties = match spec.name {
        "autoscaler_set_mode" => json!({ "mode": mode_schema() }),
        "autoscaler_set_policy" => json!({ "policy": policy_schema() }),
        "autoscaler_manual_scale" => json!({
            "cpu_quota": {
                "type": "integer",
                "minimum": 1,
                "description": "CPUQuota in percent of one core: 100 = one core, 250 = two and a half cores. Must lie within the unit's bounds (autoscaler_get_status -> bounds.cpu_quota).",
            },
            "memory_max": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "MemoryMax in GiB (1024^3 bytes); fractions are allowed and rounded to whole MiB, e.g. 1.5. Must lie within bounds.memory_max.",
            },
            "tasks_max": {
                "type": "integer",
                "minimum": 1,
                "description": "TasksMax: how many tasks (processes and threads) the unit may run. Must lie within bounds.tasks_max.",
            },
            "reason": {
                "type": "string",
                "description": "Why, in a few words; recorded in the history.",
            },
        }),
        "autoscaler_get_history" => json!({
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1000,
                "default": 20,
                "description": "How many rows, newest first (1..=1000, default 20).",
            },
        }),
        "autoscaler_set_config" => config_properties(),
        _ => json!({}),
    };
    properties["unit"] = json!({
        "type": "string",
        "description": "A managed unit other than the daemon's default, e.g. \"worker.service\"; omit for the default unit.",
    });
    let mut schema = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    match spec.name {
        "autoscaler_set_mode" => schema["required"] = json!(["mode"]),
        "autoscaler_set_policy" => schema["required"] = json!(["policy"]),
        "autoscaler_manual_scale" => {
            schema["anyOf"] = json!([
                { "required": ["cpu_quota"] },
                { "required": ["memory_max"] },
                { "required": ["tasks_max"] },
            ]);
        }
        _ => {}
    }
    let output = match spec.call {
        Call::History => json!({
            "type": "object",
            "properties": { "history": { "type": "array", "items": { "type": "object" } } },
            "required": ["history"],
        }),
        _ => json!({ "type": "object" }),
    };
    let read_only = matches!(spec.call, Call::Get(_) | Call::History);
    let annotations = ToolAnnotations::with_title(spec.title)
        .read_only(read_only)
        .open_world(false);
    let annotations = match spec.call {
        Call::Get(_) | Call::History => annotations,
        // A lower MemoryMax can get the service OOM-killed; every call adds a history row.
        Call::Post("scale") => annotations.destructive(true).idempotent(false),
        // Setting the same mode, policy or fields twice changes nothing more.
        _ => annotations.destructive(false).idempotent(true),
    };
    let description = match spec.call {
        Call::Post("mode") => format!("{} {}.", spec.description, Mode::summary()),
        Call::Post("policy") => format!("{} {}.", spec.description, Policy::summary()),
        _ => spec.description.to_string(),
    };
    Tool::new(spec.name, description, object(schema))
        .with_title(spec.title)
        .with_raw_output_schema(object(output))
        .with_annotations(annotations)
}

fn mode_schema() -> Value {
    json!({
        "type": "string",
        "enum": names(Mode::NAMES),
        "description": Mode::summary(),
    })
}

fn policy_schema() -> Value {
    json!({
        "type": "string",
        "enum": names(Policy::NAMES),
        "description": Policy::summary(),
    })
}

/// `"a", "b"` (the core's list of names in words) as `["a", "b"]`.
fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(|n| n.trim().trim_matches('"').to_string())
        .collect()
}

/// One property per config field, from the core's table: its doc, type and range.
fn config_properties() -> Value {
    let mut props = Map::new();
    props.insert("mode".into(), mode_schema());
    let mut policy = policy_schema();
    policy["description"] = json!(format!(
        "{} Applied before the other fields of the same call.",
        policy["description"].as_str().unwrap_or_default()
    ));
    props.insert("policy".into(), policy);
    props.insert(
        "predictive".into(),
        json!({
            "type": "boolean",
            "description": "Scale up before a breach when the forecast's upper bound crosses the threshold.",
        }),
    );
    for f in FIELDS {
        let (kind, min, max) = if f.integer {
            ("integer", json!(f.min as i64), json!(f.max as i64))
        } else {
            ("number", json!(f.min), json!(f.max))
        };
        props.insert(
            f.name.to_string(),
            json!({
                "type": kind,
                "minimum": min,
                "maximum": max,
                "description": format!("{} Allowed: {}.", f.doc.trim(), f.allowed()),
            }),
        );
    }
    Value::Object(props)
}

fn object(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    /// The method and path of the request a call makes, or its error message.
    type Want<'a> = Result<(&'a str, &'a str), &'a str>;

    fn check(tool: &str, a: Value, default_unit: Option<&str>, want: Want) {
        let got = request(tool, args(a.clone()), default_unit);
        match (got, want) {
            (Ok(r), Ok((method, path))) => {
                assert_eq!(
                    (r.method.as_str(), r.path.as_str()),
                    (method, path),
                    "{tool} {a}"
                );
            }
            (Err(e), Err(msg)) => assert_eq!(e.message, msg, "{tool} {a}"),
            (got, want) => panic!("{tool} {a}: got {got:?}, wanted {want:?}"),
        }
    }

    #[test]
    fn calls_become_api_requests() {
        let cases: &[(&str, Value, Option<&str>, Want)] = &[
            (
                "autoscaler_get_status",
                json!({}),
                None,
                Ok(("GET", "/api/autoscaler/status")),
            ),
            (
                "autoscaler_get_status",
                json!({"unit": "w.service"}),
                None,
                Ok(("GET", "/api/autoscaler/units/w.service/status")),
            ),
            (
                "autoscaler_get_metrics",
                json!({}),
                Some("d.service"),
                Ok(("GET", "/api/autoscaler/units/d.service/metrics")),
            ),
            (
                "autoscaler_get_config",
                json!({"unit": "a/../b?x"}),
                None,
                Ok(("GET", "/api/autoscaler/units/a%2F..%2Fb%3Fx/config")),
            ),
            (
                "autoscaler_get_history",
                json!({"limit": 5}),
                None,
                Ok(("GET", "/api/autoscaler/history?limit=5")),
            ),
            (
                "autoscaler_get_history",
                json!({}),
                None,
                Ok(("GET", "/api/autoscaler/history")),
            ),
            (
                "autoscaler_get_history",
                json!({"limit": "5"}),
                None,
                Err("limit has the wrong type: a string (allowed: an integer in 1..=1000)"),
            ),
            (
                "autoscaler_get_status",
                json!({"verbose": true}),
                None,
                Err("unknown field \"verbose\" (allowed: unit)"),
            ),
            (
                "autoscaler_get_prediction",
                json!({"unit": 3}),
                None,
                Err(&*format!(
                    "unit has the wrong type: a number (allowed: {UNIT_ALLOWED})"
                )),
            ),
            (
                "autoscaler_set_mode",
                json!({"mode": "manual"}),
                None,
                Ok(("POST", "/api/autoscaler/mode")),
            ),
            (
                "autoscaler_set_config",
                json!({"x": 1}),
                None,
                Ok(("PUT", "/api/autoscaler/config")),
            ),
            (
                "autoscaler_nope",
                json!({}),
                None,
                Err("unknown tool \"autoscaler_nope\""),
            ),
        ];
        for (tool, a, unit, want) in cases {
            check(tool, a.clone(), *unit, *want);
        }
    }

    #[test]
    fn bodies_drop_the_unit_and_keep_the_rest() {
        let r = request(
            "autoscaler_manual_scale",
            args(json!({"cpu_quota": 150, "unit": "w.service", "bogus": 1})),
            None,
        )
        .expect("a request");
        assert_eq!(r.body, Some(json!({"cpu_quota": 150, "bogus": 1})));
    }

    #[test]
    fn config_schema_lists_every_field_with_its_range() {
        let tool = all()
            .into_iter()
            .find(|t| t.name == "autoscaler_set_config")
            .expect("set_config");
        let props = &tool.input_schema["properties"];
        for f in FIELDS {
            assert!(props[f.name]["description"].is_string(), "{}", f.name);
            assert_eq!(props[f.name]["maximum"].as_f64(), Some(f.max), "{}", f.name);
        }
        assert_eq!(
            props["mode"]["enum"],
            json!(["enabled", "disabled", "manual"])
        );
        assert_eq!(tool.input_schema["additionalProperties"], json!(false));
    }
}
