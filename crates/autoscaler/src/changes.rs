//! A config change as the fronts receive it, a JSON object of fields (the HTTP body, an MCP
//! tool's arguments, `simulate --config`), turned into the core's [`FieldValue`]s.
//!
//! Only the shape is checked here (an object, scalars); which fields exist and which values
//! they take is the core's (`Config::apply`), so every front refuses the same input with the
//! same words. No HTTP here: `simulate` uses it without the API.

use std::fmt;

use autoscaler_core::FieldValue;
use serde_json::{Map, Value};

/// A change whose shape is wrong: which field, and what it should be.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeError {
    pub field: Option<String>,
    pub message: String,
    pub allowed: &'static str,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (allowed: {})", self.message, self.allowed)
    }
}

impl std::error::Error for ShapeError {}

/// Every key of the object becomes a change, in the object's order.
pub fn config_changes(m: &Map<String, Value>) -> Result<Vec<(String, FieldValue)>, ShapeError> {
    if m.is_empty() {
        return Err(ShapeError {
            field: None,
            message: "no fields to change".into(),
            allowed: "any field of GET /api/autoscaler/config",
        });
    }
    m.iter()
        .map(|(k, v)| {
            let value = match v {
                Value::Number(n) => FieldValue::Number(n.as_f64().unwrap_or(f64::NAN)),
                Value::String(s) => FieldValue::Text(s.clone()),
                Value::Bool(b) => FieldValue::Bool(*b),
                other => {
                    return Err(ShapeError {
                        field: Some(k.clone()),
                        message: format!("{k} has the wrong type: {}", kind(other)),
                        allowed: "a number, or a string for mode and policy",
                    });
                }
            };
            Ok((k.clone(), value))
        })
        .collect()
}

/// A JSON value's type in words, for "has the wrong type" messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        let ok = |v: Value| config_changes(v.as_object().expect("object"));
        assert_eq!(
            ok(json!({"cpu_threshold_high": 80, "policy": "balanced", "predictive": true})),
            Ok(vec![
                ("cpu_threshold_high".into(), FieldValue::Number(80.0)),
                ("policy".into(), FieldValue::Text("balanced".into())),
                ("predictive".into(), FieldValue::Bool(true)),
            ])
        );
        let err = ok(json!({"cpu_threshold_high": [1]})).expect_err("an array");
        assert_eq!(err.field.as_deref(), Some("cpu_threshold_high"));
        assert!(err.message.contains("an array"), "{err}");
        assert_eq!(ok(json!({})).expect_err("empty").field, None);
    }
}
