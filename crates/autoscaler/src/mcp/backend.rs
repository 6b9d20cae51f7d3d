//! Where a tool call goes: the daemon's HTTP API, over the network ([`Backend::Remote`], for
//! `autoscaler mcp` on stdio) or in-process ([`Backend::Local`], for `/mcp` in the daemon).
//!
//! Both run the very same API handlers, so a tool answers exactly what the endpoint answers
//! and fails with exactly the endpoint's message. This module must not interpret answers:
//! it moves a request in and a JSON value or an error out, nothing else.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::client::{Client, ClientError};

/// The largest API answer read in-process; a history of 1000 rows is well under this.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// One API call: method, path with query string, and a JSON body for POST/PUT.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
}

/// Why a tool call failed, in words for the agent and as JSON for programs.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolError {
    /// The API's own message (`error`, plus `allowed` when the message lacks it).
    pub message: String,
    /// The API's error body with its HTTP status as `http_status`, or `{"error": message}`
    /// when the API was not reached.
    pub detail: Value,
}

impl ToolError {
    /// An error answer of the API: its status and `{"error", "field", "allowed", ...}` body.
    pub fn from_api(status: u16, body: Value) -> ToolError {
        let message = api_message(&body);
        let mut detail = match body {
            Value::Object(m) => Value::Object(m),
            other => json!({ "error": message, "body": other }),
        };
        detail["http_status"] = json!(status);
        ToolError { message, detail }
    }

    fn plain(message: String) -> ToolError {
        ToolError {
            detail: json!({ "error": message }),
            message,
        }
    }
}

/// The words of an API error, composed as the CLI's client composes them, so the CLI, MCP
/// and a curl user read the same sentence.
use crate::client::api_message;

/// The API, reached over HTTP or called in-process.
#[derive(Clone)]
pub enum Backend {
    /// A running daemon at a URL (with its token, if any).
    Remote(Client),
    /// The API router of this very daemon, without the network guard: the request that
    /// reached `/mcp` passed it already.
    Local(Router),
}

impl Backend {
    pub async fn send(&self, req: ApiRequest) -> Result<Value, ToolError> {
        match self {
            Backend::Remote(client) => {
                let answer = match (&req.method, &req.body) {
                    (&Method::POST, Some(b)) => client.post(&req.path, b).await,
                    (&Method::PUT, Some(b)) => client.put(&req.path, b).await,
                    _ => client.get(&req.path).await,
                };
                answer.map_err(|e| match e {
                    ClientError::Api { status, body, .. } => ToolError::from_api(status, body),
                    // Unreachable says how to start the daemon; keep its words.
                    other => ToolError::plain(other.to_string()),
                })
            }
            Backend::Local(router) => local(router.clone(), req).await,
        }
    }
}

async fn local(router: Router, req: ApiRequest) -> Result<Value, ToolError> {
    let mut builder = Request::builder().method(req.method.clone()).uri(&req.path);
    let body = match &req.body {
        Some(b) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let request = builder.body(body).map_err(|e| {
        ToolError::plain(format!(
            "cannot build the API request {} {}: {e}",
            req.method, req.path
        ))
    })?;
    // The router's error type is Infallible: every failure is a response.
    let response = match router.oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
        .await
        .map_err(|e| {
            ToolError::plain(format!(
                "reading the API's answer to {} {}: {e}",
                req.method, req.path
            ))
        })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ToolError::plain(format!(
            "the API answered {} {} with something that is not JSON ({e}, HTTP {status})",
            req.method, req.path
        ))
    })?;
    if status.is_success() {
        Ok(value)
    } else {
        Err(ToolError::from_api(status.as_u16(), value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_read_like_the_cli() {
        fn check(body: Value, want: &str) {
            let e = ToolError::from_api(400, body);
            assert_eq!(e.message, want);
            assert_eq!(e.detail["http_status"], 400);
        }
        check(
            json!({"error": "unknown field \"x\"", "field": "x", "allowed": "mode, unit"}),
            "unknown field \"x\" (allowed: mode, unit)",
        );
        check(
            json!({"error": "mode: unknown mode \"turbo\"; allowed: a, b", "allowed": "a, b"}),
            "mode: unknown mode \"turbo\"; allowed: a, b",
        );
        check(json!("oops"), "request failed");
    }
}
