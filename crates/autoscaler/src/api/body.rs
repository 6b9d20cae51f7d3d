//! Request bodies: JSON objects checked for shape (types, unknown keys) only; the core checks
//! their values (`Config::apply`, `ManualScale::new`, `Mode::parse`) and the engine their
//! bounds. MCP tool arguments go through the same functions, so both fronts
//! reject the same input with the same words.

use autoscaler_core::{FieldValue, ManualScale, Mode, Policy, manual};
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::{Map, Value, json};

use super::ApiError;
use crate::changes::kind;

/// The largest request body we read: a config update is well under a kilobyte.
const MAX_BODY: usize = 64 * 1024;

/// A request body of at most `max` bytes: 413 when it is longer, 408 when it stops arriving
/// (the server's body idle timeout) or cannot be read.
pub async fn read(body: axum::body::Body, max: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, max).await.map_err(|e| {
        let e = e.into_inner();
        if e.is::<http_body_util::LengthLimitError>() {
            ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                body: json!({ "error": format!("the body is larger than {max} bytes") }),
            }
        } else {
            ApiError {
                status: StatusCode::REQUEST_TIMEOUT,
                body: json!({ "error": format!("the body could not be read: {e}") }),
            }
        }
    })
}

/// A JSON object from a request body.
pub struct Body(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            });
        // Strict on purpose: a browser page on another origin can POST text/plain or a form
        // without asking first, but not application/json. With CORS off, this keeps web
        // pages from changing limits through a user's browser.
        if json_type != Some(true) {
            return Err(ApiError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                body: json!({ "error": "the body must be JSON sent with the header `Content-Type: application/json` (curl: -H 'Content-Type: application/json')" }),
            });
        }
        let bytes = read(req.into_body(), MAX_BODY).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!("the body is not valid JSON: {e}"), None, None)
        })?;
        match value {
            Value::Object(map) => Ok(Body(map)),
            other => Err(ApiError::bad_request(
                format!("the body must be a JSON object, not {}", kind(&other)),
                None,
                None,
            )),
        }
    }
}

impl Body {
    pub fn mode(&self) -> Result<Mode, ApiError> {
        parse_mode(&self.0)
    }
    pub fn policy(&self) -> Result<Policy, ApiError> {
        parse_policy(&self.0)
    }
    pub fn scale_request(&self) -> Result<ManualScale, ApiError> {
        parse_scale(&self.0)
    }
    pub fn config_changes(&self) -> Result<Vec<(String, FieldValue)>, ApiError> {
        parse_config(&self.0)
    }
}

pub fn parse_mode(m: &Map<String, Value>) -> Result<Mode, ApiError> {
    only(m, &["mode"])?;
    Mode::parse(required_str(m, "mode", Mode::NAMES)?).map_err(|e| e.into_api())
}

pub fn parse_policy(m: &Map<String, Value>) -> Result<Policy, ApiError> {
    only(m, &["policy"])?;
    Policy::parse(required_str(m, "policy", Policy::NAMES)?).map_err(|e| e.into_api())
}

/// `{"cpu_quota": 600, "memory_max": 96, "tasks_max": 750, "reason": "..."}`: the shape here
/// (known keys, numbers, a string), the values in the core ([`ManualScale::new`]: at least one
/// limit, positive, whole, GiB to bytes, the reason's length).
pub fn parse_scale(m: &Map<String, Value>) -> Result<ManualScale, ApiError> {
    only(m, &["cpu_quota", "memory_max", "tasks_max", "reason"])?;
    let cpu = number(m, "cpu_quota", manual::CPU_ALLOWED)?;
    let tasks = number(m, "tasks_max", manual::TASKS_ALLOWED)?;
    let memory = number(m, "memory_max", "a number of GiB")?;
    let reason = match m.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => return Err(wrong_type("reason", other, "a string")),
    };
    ManualScale::new(cpu, memory, tasks, reason)
        .map_err(|e| ApiError::bad_request(e.message, e.field, Some(e.allowed)))
}

/// Every key of the object becomes a change; the core knows which keys and values are valid.
pub fn parse_config(m: &Map<String, Value>) -> Result<Vec<(String, FieldValue)>, ApiError> {
    crate::changes::config_changes(m)
        .map_err(|e| ApiError::bad_request(e.message, e.field.as_deref(), Some(e.allowed)))
}

fn only(m: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(
            format!("unknown field {k:?}"),
            Some(k),
            Some(&allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

fn required_str<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    allowed: &str,
) -> Result<&'a str, ApiError> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s),
        None => Err(ApiError::bad_request(
            format!("missing field {key:?}"),
            Some(key),
            Some(allowed),
        )),
        Some(other) => Err(wrong_type(key, other, allowed)),
    }
}

/// A number, or nothing when absent or null; its value is the core's to check.
fn number(m: &Map<String, Value>, key: &str, allowed: &str) -> Result<Option<f64>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        // Without serde_json's arbitrary precision every number has an f64 (huge integers
        // lose digits far above any bound); the fallback is unreachable, and refused.
        Some(Value::Number(n)) => Ok(Some(n.as_f64().unwrap_or(f64::NAN))),
        Some(other) => Err(wrong_type(key, other, allowed)),
    }
}

fn wrong_type(key: &str, v: &Value, allowed: &str) -> ApiError {
    ApiError::bad_request(
        format!("{key} has the wrong type: {}", kind(v)),
        Some(key),
        Some(allowed),
    )
}

trait IntoApi {
    fn into_api(self) -> ApiError;
}

impl IntoApi for autoscaler_core::ConfigError {
    fn into_api(self) -> ApiError {
        ApiError::bad_request(self.to_string(), Some(&self.field), Some(&self.allowed))
    }
}
