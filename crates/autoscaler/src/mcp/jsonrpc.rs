//! The JSON-RPC errors rmcp does not give, checked before a message reaches it, on stdio and
//! on `/mcp` alike.
//!
//! rmcp drops a line that is not JSON without a word (a stdio client then waits forever) and
//! answers a known method with unusable `params` as if the method did not exist (-32601). So
//! each incoming message is looked at first: not JSON is answered with -32700 (`id` null), a
//! request for a method this server serves whose `params` do not have that method's shape
//! with -32602 and the request's `id`. Everything else goes on to rmcp unchanged. The shapes
//! are rmcp's own parameter types, so what passes here is what rmcp accepts. This module
//! must not answer anything a valid message would get from rmcp.

use rmcp::model::{CallToolRequestParams, InitializeRequestParams, PaginatedRequestParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// JSON-RPC 2.0: invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;

/// The error response `raw` must get instead of reaching rmcp, if any.
pub fn precheck(raw: &[u8]) -> Option<Value> {
    let message: Value = match serde_json::from_slice(raw) {
        Ok(v) => v,
        Err(e) => {
            return Some(error(
                Value::Null,
                PARSE_ERROR,
                format!("parse error: the message is not JSON ({e})"),
            ));
        }
    };
    let id = message
        .get("id")
        .filter(|id| id.is_string() || id.is_number())?;
    let method = message.get("method")?.as_str()?;
    let params = message.get("params").cloned();
    let why = match method {
        "initialize" => shape::<InitializeRequestParams>(params),
        "tools/call" => shape::<CallToolRequestParams>(params),
        "tools/list" => shape::<Option<PaginatedRequestParams>>(params),
        "ping" => match params {
            None | Some(Value::Object(_)) => None,
            Some(_) => Some("params must be an object or absent".to_string()),
        },
        _ => None,
    }?;
    Some(error(
        id.clone(),
        INVALID_PARAMS,
        format!("invalid params for {method}: {why}"),
    ))
}

/// Why `params` is not a `T`, or `None` when it is.
fn shape<T: DeserializeOwned>(params: Option<Value>) -> Option<String> {
    serde_json::from_value::<T>(params.unwrap_or(Value::Null))
        .err()
        .map(|e| e.to_string())
}

fn error(id: Value, code: i64, message: String) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (message, expected (code, id), or None when rmcp gets it)
    fn check(raw: &str, want: Option<(i64, Value)>) {
        let got = precheck(raw.as_bytes());
        match (&got, want) {
            (None, None) => {}
            (Some(e), Some((code, id))) => {
                assert_eq!(e["error"]["code"], code, "{raw}: {e}");
                assert_eq!(e["id"], id, "{raw}: {e}");
                assert_eq!(e["jsonrpc"], "2.0");
                assert!(
                    e["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty())
                );
            }
            (got, want) => panic!("{raw}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn errors() {
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#;
        let cases: &[(&str, Option<(i64, Value)>)] = &[
            // Valid messages go to rmcp.
            (init, None),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"autoscaler_get_status","arguments":{}}}"#,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"nope"}}"#,
                None,
            ),
            (r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#, None),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{}}"#,
                None,
            ),
            (r#"{"jsonrpc":"2.0","id":4,"method":"ping"}"#, None),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                None,
            ),
            // Unknown methods stay rmcp's (-32601), whatever their params.
            (
                r#"{"jsonrpc":"2.0","id":5,"method":"nosuch","params":"x"}"#,
                None,
            ),
            // Not JSON: -32700, id null.
            ("{not json", Some((PARSE_ERROR, Value::Null))),
            ("not json at all", Some((PARSE_ERROR, Value::Null))),
            ("[1,2", Some((PARSE_ERROR, Value::Null))),
            ("", Some((PARSE_ERROR, Value::Null))),
            // Known methods with params of the wrong shape: -32602 with the request's id.
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":"oops"}"#,
                Some((INVALID_PARAMS, json!(2))),
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"nam":"x"}}"#,
                Some((INVALID_PARAMS, json!(3))),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"s","method":"tools/call"}"#,
                Some((INVALID_PARAMS, json!("s"))),
            ),
            (
                r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"autoscaler_get_status","arguments":7}}"#,
                Some((INVALID_PARAMS, json!(5))),
            ),
            (
                r#"{"jsonrpc":"2.0","id":6,"method":"tools/list","params":5}"#,
                Some((INVALID_PARAMS, json!(6))),
            ),
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}"#,
                Some((INVALID_PARAMS, json!(7))),
            ),
            (
                r#"{"jsonrpc":"2.0","id":8,"method":"ping","params":[1]}"#,
                Some((INVALID_PARAMS, json!(8))),
            ),
        ];
        for (raw, want) in cases {
            check(raw, want.clone());
        }
    }
}
