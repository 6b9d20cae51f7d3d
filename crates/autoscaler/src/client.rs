//! A small HTTP client of the daemon's API, for the CLI and the stdio MCP server.
//!
//! It knows URLs and the token, nothing about what the answers mean: an API error comes back
//! as [`ClientError::Api`] with the daemon's own message, so every front says the same thing.

use std::time::Duration;

use serde_json::Value;

pub const DEFAULT_URL: &str = "http://127.0.0.1:8888";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the autoscaler daemon at {url}: {why}. Start it with `autoscaler serve` (or pass --url / AUTOSCALER_URL)"
    )]
    Unreachable { url: String, why: String },
    #[error("{message}")]
    Api {
        status: u16,
        message: String,
        body: Value,
    },
    #[error("the daemon at {url} answered with something that is not JSON: {why}")]
    BadAnswer { url: String, why: String },
}

#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        }
    }

    /// The API path of an endpoint, for the default unit or a named one.
    pub fn path(unit: Option<&str>, endpoint: &str) -> String {
        match unit {
            Some(u) => format!("/api/autoscaler/units/{}/{endpoint}", encode_segment(u)),
            None => format!("/api/autoscaler/{endpoint}"),
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, mut req: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            why: root_cause(&e),
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            why: root_cause(&e),
        })?;
        let body: Value = serde_json::from_str(&text).map_err(|e| ClientError::BadAnswer {
            url: self.base.clone(),
            why: format!("{e} (HTTP {status})"),
        })?;
        if status.is_success() {
            return Ok(body);
        }
        let message = api_message(&body);
        Err(ClientError::Api {
            status: status.as_u16(),
            message,
            body,
        })
    }
}

/// The message of an API error body: `error`, plus `allowed` when the message lacks it. The
/// CLI and the MCP tools both show it, so both say what curl would.
pub fn api_message(body: &Value) -> String {
    let mut message = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("request failed")
        .to_string();
    if let Some(allowed) = body.get("allowed").and_then(Value::as_str)
        && !message.contains(allowed)
    {
        message.push_str(&format!(" (allowed: {allowed})"));
    }
    message
}

/// What stays as it is in a path segment: RFC 3986's unreserved characters, and `@` and `:`
/// that unit names use (`getty@tty1.service`, `system:nginx.service`).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@')
    .remove(b':');

/// Percent-encodes a path segment: a unit name given by a user must stay one segment, so
/// `x/../mode` reaches the API (and is refused there) instead of another endpoint.
pub fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_stay_one_segment() {
        let cases = [
            ("autocoder-ui.service", "autocoder-ui.service"),
            ("getty@tty1.service", "getty@tty1.service"),
            ("x/../mode", "x%2F..%2Fmode"),
            ("a b?c#d%", "a%20b%3Fc%23d%25"),
            ("é.service", "%C3%A9.service"),
        ];
        for (raw, want) in cases {
            assert_eq!(super::encode_segment(raw), want, "{raw:?}");
        }
    }
}
