//! Who may talk to the daemon over the network: the `Host` check and the token, in front of
//! everything the daemon serves (the API, the dashboard, `/metrics` and `/mcp`).
//!
//! - Every request needs exactly one `Host` header that parses strictly (a name or address,
//!   then an optional numeric port); anything else is a 400. `127.0.0.1:evil`, `[::1]evil`
//!   and a missing `Host` used to pass.
//! - Without a token, only loopback names are served (403 otherwise): a web page that rebinds
//!   its own name to 127.0.0.1 is same-origin to the browser and could otherwise read and
//!   change everything.
//! - With a token, every request needs `Authorization: Bearer <token>` (the scheme in any
//!   case, as RFC 9110 says), reads included: listening beyond loopback is what a token is
//!   for, and `/status` shows limits and process counts. Only the static dashboard files and
//!   `/healthz`, which show nothing about the host, are open.
//!
//! In-process calls (the `/mcp` tools calling the API router) do not pass through here: their
//! request was checked when it reached `/mcp`. This module must not look at bodies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiError;

/// `app` behind the `Host` check and, when `token` is set, the token.
pub fn guard(app: Router, token: Option<String>) -> Router {
    app.layer(middleware::from_fn_with_state(
        token.map(std::sync::Arc::<str>::from),
        check,
    ))
}

async fn check(
    State(token): State<Option<std::sync::Arc<str>>>,
    req: Request,
    next: Next,
) -> Response {
    let host = match request_host(req.headers()) {
        Ok(h) => h,
        Err(why) => {
            return ApiError {
                status: StatusCode::BAD_REQUEST,
                body: json!({ "error": why }),
            }
            .into_response();
        }
    };
    match &token {
        None if !host.is_loopback() => ApiError {
            status: StatusCode::FORBIDDEN,
            body: json!({ "error": "without a token the daemon only answers requests addressed to 127.0.0.1, localhost or [::1]; set a token to serve other names" }),
        }
        .into_response(),
        Some(t) if !open(req.uri().path()) && !bearer_matches(req.headers(), t) => {
            let mut r = ApiError {
                status: StatusCode::UNAUTHORIZED,
                body: json!({ "error": "this daemon has a token: every request needs the header `Authorization: Bearer <token>` with it (reads too)" }),
            }
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"autoscaler\""),
            );
            r
        }
        _ => next.run(req).await,
    }
}

/// Paths served without the token: the dashboard's static files and liveness. The page asks
/// for the token when its first API call answers 401.
fn open(path: &str) -> bool {
    path == "/"
        || path == "/healthz"
        || (path.starts_with("/assets/") && path != "/assets/config-fields.json")
}

/// The name a request is addressed to, as its `Host` header gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostName {
    Ip(IpAddr),
    /// A registered name, lowercased.
    Name(String),
}

/// A parsed `Host` header: `name[:port]` or `[v6][:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: HostName,
    pub port: Option<u16>,
}

impl Host {
    pub fn is_loopback(&self) -> bool {
        match &self.name {
            HostName::Ip(ip) => ip.to_canonical().is_loopback(),
            HostName::Name(n) => n == "localhost",
        }
    }
}

/// The request's one `Host` header, parsed.
pub fn request_host(headers: &HeaderMap) -> Result<Host, String> {
    let mut all = headers.get_all(header::HOST).iter();
    let (Some(value), None) = (all.next(), all.next()) else {
        return Err(
            "a request needs exactly one Host header (HTTP/1.1 requires it; the daemon checks the name it is addressed by)"
                .into(),
        );
    };
    let text = value
        .to_str()
        .map_err(|_| "the Host header is not ASCII".to_string())?;
    parse_host(text).map_err(|why| format!("the Host header {text:?} is not a host name: {why}"))
}

/// RFC 3986's `host [":" port]`, strictly: an IPv6 address only in brackets, nothing after
/// the bracket but a port, a port of 1 to 5 digits below 65536, a name of letters, digits,
/// `-` and `.`. No user info, path, blank or percent-encoding.
pub fn parse_host(text: &str) -> Result<Host, &'static str> {
    let (name, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or("a '[' without its ']'")?;
        let ip: Ipv6Addr = inside
            .parse()
            .map_err(|_| "not an IPv6 address inside '[]'")?;
        let port = match after {
            "" => None,
            p => Some(port(
                p.strip_prefix(':').ok_or("only ':port' may follow ']'")?,
            )?),
        };
        (HostName::Ip(IpAddr::V6(ip)), port)
    } else {
        let (name, port) = match text.split_once(':') {
            Some((n, p)) => (n, Some(port(p)?)),
            None => (text, None),
        };
        let name = if let Ok(ip) = name.parse::<Ipv4Addr>() {
            HostName::Ip(IpAddr::V4(ip))
        } else if name.is_empty() {
            return Err("the name is empty");
        } else if name.len() > 253 {
            return Err("the name is longer than 253 characters");
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err("a name has only letters, digits, '-' and '.'");
        } else {
            HostName::Name(name.to_ascii_lowercase())
        };
        (name, port)
    };
    Ok(Host { name, port })
}

fn port(p: &str) -> Result<u16, &'static str> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port is not a number of 1 to 5 digits");
    }
    p.parse().map_err(|_| "the port is above 65535")
}

/// Whether the request carries `Authorization: Bearer <token>`, compared in constant time.
/// The scheme is case-insensitive (RFC 9110 section 11.1); the token is not.
pub fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    // The length may show; the bytes do not.
    given.is_some_and(|t| subtle::ConstantTimeEq::ct_eq(t.as_bytes(), token.as_bytes()).into())
}

/// The token of an `Authorization` value `Bearer <token>`: the scheme in any case, one or
/// more spaces, then a non-empty token without blanks.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    let token = rest.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains([' ', '\t']))
        .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> HostName {
        HostName::Ip(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
    }

    #[test]
    fn hosts() {
        let v6 = |s: &str| HostName::Ip(s.parse().expect("an address"));
        let name = |s: &str| HostName::Name(s.into());
        // (header, parsed as (name, port), loopback)
        let good: &[(&str, HostName, Option<u16>, bool)] = &[
            ("127.0.0.1:8888", v4(127, 0, 0, 1), Some(8888), true),
            ("127.0.0.1", v4(127, 0, 0, 1), None, true),
            ("127.1.2.3:80", v4(127, 1, 2, 3), Some(80), true),
            ("localhost:8888", name("localhost"), Some(8888), true),
            ("LOCALHOST", name("localhost"), None, true),
            ("[::1]:8888", v6("::1"), Some(8888), true),
            ("[::1]", v6("::1"), None, true),
            (
                "[::ffff:127.0.0.1]:1",
                v6("::ffff:127.0.0.1"),
                Some(1),
                true,
            ),
            ("evil.example:8888", name("evil.example"), Some(8888), false),
            ("10.0.0.1:8888", v4(10, 0, 0, 1), Some(8888), false),
            ("[::2]:8888", v6("::2"), Some(8888), false),
            ("localhost.:1", name("localhost."), Some(1), false),
            ("127.1", name("127.1"), None, false),
            ("localhost:65535", name("localhost"), Some(65535), true),
        ];
        for (text, want_name, want_port, loopback) in good {
            let h = parse_host(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!((&h.name, h.port), (want_name, *want_port), "{text:?}");
            assert_eq!(h.is_loopback(), *loopback, "{text:?}");
        }
        let bad = [
            "",
            "127.0.0.1:evil",
            "127.0.0.1:",
            "127.0.0.1:8888:1",
            "127.0.0.1:65536",
            "127.0.0.1:123456",
            "127.0.0.1:+80",
            "[::1]evil",
            "[::1]:",
            "[::1]:x",
            "[::1",
            "[evil]:80",
            "[127.0.0.1]",
            "::1",
            "::1:80",
            "user@127.0.0.1",
            "127.0.0.1/x",
            "127.0.0.1 :80",
            " 127.0.0.1",
            "local%68ost",
            "localhost:80 ",
        ];
        for text in bad {
            assert!(parse_host(text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn one_host_header() {
        let mut h = HeaderMap::new();
        assert!(request_host(&h).is_err(), "a missing Host is refused");
        h.insert(header::HOST, "127.0.0.1:1".parse().expect("value"));
        assert!(request_host(&h).is_ok());
        h.append(header::HOST, "127.0.0.1:1".parse().expect("value"));
        assert!(request_host(&h).is_err(), "two Host headers are refused");
    }

    #[test]
    fn bearer_tokens() {
        let cases = [
            (Some("Bearer s3cret"), true),
            (Some("bearer s3cret"), true),
            (Some("BEARER s3cret"), true),
            (Some("bEaReR s3cret"), true),
            (Some("Bearer   s3cret"), true),
            (Some("Bearer s3cre"), false),
            (Some("Bearer s3cret2"), false),
            (Some("Bearer S3cret"), false),
            (Some("Bearer s3cret x"), false),
            (Some("Bearers3cret"), false),
            (Some("Basic s3cret"), false),
            (Some("s3cret"), false),
            (Some("Bearer "), false),
            (Some("Bearer"), false),
            (None, false),
        ];
        for (header, want) in cases {
            let mut h = HeaderMap::new();
            if let Some(v) = header {
                h.insert(header::AUTHORIZATION, v.parse().expect("a header value"));
            }
            assert_eq!(bearer_matches(&h, "s3cret"), want, "{header:?}");
        }
    }

    /// The guard as a whole, on a router that answers 200 everywhere: (token, method, path,
    /// headers, status).
    #[tokio::test]
    async fn requests() {
        use tower::ServiceExt;
        let app = || Router::new().fallback(|| async { "ok" });
        type Row = (
            Option<&'static str>,
            &'static str,
            &'static [(&'static str, &'static str)],
            u16,
        );
        const H: &str = "host";
        const A: &str = "authorization";
        let table: &[Row] = &[
            (
                None,
                "/api/autoscaler/status",
                &[(H, "127.0.0.1:8888")],
                200,
            ),
            (None, "/api/autoscaler/status", &[(H, "localhost")], 200),
            (None, "/api/autoscaler/status", &[], 400),
            (
                None,
                "/api/autoscaler/status",
                &[(H, "127.0.0.1:evil")],
                400,
            ),
            (None, "/api/autoscaler/status", &[(H, "[::1]evil")], 400),
            (None, "/api/autoscaler/status", &[(H, "evil.example")], 403),
            (None, "/", &[(H, "evil.example")], 403),
            (None, "/mcp", &[(H, "evil.example:80")], 403),
            (
                Some("T"),
                "/api/autoscaler/status",
                &[(H, "127.0.0.1")],
                401,
            ),
            (Some("T"), "/metrics", &[(H, "127.0.0.1")], 401),
            (Some("T"), "/mcp", &[(H, "127.0.0.1")], 401),
            (
                Some("T"),
                "/assets/config-fields.json",
                &[(H, "127.0.0.1")],
                401,
            ),
            (
                Some("T"),
                "/api/autoscaler/status",
                &[(H, "127.0.0.1"), (A, "Bearer T")],
                200,
            ),
            (
                Some("T"),
                "/api/autoscaler/status",
                &[(H, "127.0.0.1"), (A, "bearer T")],
                200,
            ),
            (
                Some("T"),
                "/api/autoscaler/status",
                &[(H, "db.internal:8888"), (A, "Bearer T")],
                200,
            ),
            (Some("T"), "/api/autoscaler/status", &[(A, "Bearer T")], 400),
            (
                Some("T"),
                "/api/autoscaler/status",
                &[(H, "x:y"), (A, "Bearer T")],
                400,
            ),
            (Some("T"), "/", &[(H, "127.0.0.1")], 200),
            (Some("T"), "/healthz", &[(H, "127.0.0.1")], 200),
            (Some("T"), "/assets/app.js", &[(H, "127.0.0.1")], 200),
        ];
        for (token, path, headers, status) in table {
            let mut req = axum::http::Request::builder().uri(*path);
            for (k, v) in *headers {
                req = req.header(*k, *v);
            }
            let req = req.body(axum::body::Body::empty()).expect("a request");
            let resp = guard(app(), token.map(str::to_string))
                .oneshot(req)
                .await
                .expect("infallible");
            assert_eq!(
                resp.status().as_u16(),
                *status,
                "{token:?} {path} {headers:?}"
            );
            if *status == 401 {
                assert_eq!(
                    resp.headers()
                        .get(header::WWW_AUTHENTICATE)
                        .map(|v| v.as_bytes()),
                    Some(&b"Bearer realm=\"autoscaler\""[..])
                );
            }
        }
    }
}
