//! The HTTP bad-input matrix, without root: the daemon's router over an engine with the
//! testkit's fake systemd. Each rejected request must answer with the right status, name the
//! field and what is allowed, and change nothing (config, status, history).
//!
//! It exercises validation only, so it needs no real unit; `api.rs` keeps the end-to-end
//! tests that do.

use autoscaler_core::{GIB, Host, Limits, Millis, UnitName};
use autoscaler_testkit::fakes::{FakeClock, FakeDaemon, FakeSystemd};
use serde_json::Value;

/// The unit the matrix addresses.
const UNIT: &str = "autocoder-ui.service";

/// The small host the end-to-end tests run on (2 cores, 24 GiB): with the spec's defaults
/// the only CPU quota left is exactly 100%.
const HOST: Host = Host {
    cores: 2,
    memory_bytes: 24 * GIB,
    max_tasks: 4_194_304,
};

/// An answer as the checks read it.
struct Answer {
    status: u16,
    text: String,
    json: Value,
}

/// What a rejected request must leave as it was.
async fn state(d: &FakeDaemon) -> anyhow::Result<Value> {
    let s = d.ok("GET", "/api/autoscaler/status", None).await?;
    Ok(autoscaler_testkit::kept_state(
        &s,
        d.ok("GET", "/api/autoscaler/config", None).await?,
        d.ok("GET", "/api/autoscaler/history?limit=1000", None)
            .await?,
    ))
}

/// One request of the matrix: what is sent, and the status and `field` expected back.
struct Case {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Option<String>,
    status: u16,
    field: Option<&'static str>,
    /// The body must say what is allowed (every 400 naming a field, but see below).
    allowed: bool,
}

fn case(method: &'static str, path: &str, body: &str, status: u16, field: &'static str) -> Case {
    Case {
        method,
        path: path.to_string(),
        content_type: Some("application/json"),
        body: (method != "GET").then(|| body.to_string()),
        status,
        field: (!field.is_empty()).then_some(field),
        allowed: status == 400 && !field.is_empty(),
    }
}

/// Sends one case and checks its answer; every rejected request must leave the state as it
/// was, and every error body must name what to fix.
async fn check(d: &FakeDaemon, c: &Case) {
    let before = state(d).await.expect("state before");
    let (status, json) = d
        .request(c.method, &c.path, c.content_type, c.body.as_deref())
        .await
        .expect("request");
    let r = Answer {
        status,
        text: json.to_string(),
        json,
    };
    let what = format!(
        "{} {} {:?} (Content-Type {:?})",
        c.method, c.path, c.body, c.content_type
    );
    assert_eq!(r.status, c.status, "{what}: {}", r.text);
    if r.status >= 400 {
        assert!(
            r.json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: no error message: {}",
            r.text
        );
        if let Some(f) = c.field {
            assert_eq!(r.json["field"], f, "{what}: {}", r.text);
            if c.allowed {
                assert!(
                    r.json["allowed"].as_str().is_some_and(|a| !a.is_empty()),
                    "{what}: no allowed range: {}",
                    r.text
                );
            }
        }
        assert_eq!(
            state(d).await.expect("state after"),
            before,
            "{what} changed state"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn bad_input_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sys = FakeSystemd::new();
    let unit = UnitName::parse(UNIT).expect("unit name");
    sys.add(&unit, Limits::new(100, 4, 200));
    let clock = FakeClock::starting_at(Millis(1_796_040_000_000));
    let d = FakeDaemon::start(&sys, &[unit], HOST, &dir.path().join("a.db"), clock)
        .expect("engine over fakes");
    // Like the end-to-end daemon, the matrix starts once the unit has been read.
    d.wait("a first observation", |s| s.units[0].observation.is_some())
        .await
        .expect("observed");
    // No automatic action may change limits while the matrix runs.
    d.ok(
        "PUT",
        "/api/autoscaler/config",
        Some(r#"{"mode":"disabled"}"#),
    )
    .await
    .expect("disable");
    let long = format!(r#"{{"cpu_quota":100,"reason":"{}"}}"#, "x".repeat(1001));
    let mut cases = vec![
        // Malformed JSON and wrong shapes.
        case("POST", "/api/autoscaler/mode", r#"{"mode": "#, 400, ""),
        case("POST", "/api/autoscaler/mode", "", 400, ""),
        case("POST", "/api/autoscaler/mode", "[]", 400, ""),
        case("POST", "/api/autoscaler/mode", r#""enabled""#, 400, ""),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"scale_up_factor": NaN}"#,
            400,
            "",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"scale_up_factor": 1e400}"#,
            400,
            "",
        ),
        // Wrong types.
        case(
            "POST",
            "/api/autoscaler/mode",
            r#"{"mode": 1}"#,
            400,
            "mode",
        ),
        case(
            "POST",
            "/api/autoscaler/mode",
            r#"{"mode": null}"#,
            400,
            "mode",
        ),
        case(
            "POST",
            "/api/autoscaler/policy",
            r#"{"policy": ["balanced"]}"#,
            400,
            "policy",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": "200"}"#,
            400,
            "cpu_quota",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"memory_max": "8G"}"#,
            400,
            "memory_max",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": 100, "reason": 5}"#,
            400,
            "reason",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"scale_up_cpu_percent": "85"}"#,
            400,
            "scale_up_cpu_percent",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"scale_up_cpu_percent": true}"#,
            400,
            "scale_up_cpu_percent",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"scale_up_cpu_percent": {"v": 1}}"#,
            400,
            "scale_up_cpu_percent",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"predictive": 1}"#,
            400,
            "predictive",
        ),
        // Missing and unknown fields, unknown values.
        case("POST", "/api/autoscaler/mode", "{}", 400, "mode"),
        case(
            "POST",
            "/api/autoscaler/mode",
            r#"{"mode": "enabled", "force": true}"#,
            400,
            "force",
        ),
        case(
            "POST",
            "/api/autoscaler/mode",
            r#"{"mode": "on"}"#,
            400,
            "mode",
        ),
        case(
            "POST",
            "/api/autoscaler/mode",
            r#"{"mode": "Enabled"}"#,
            400,
            "mode",
        ),
        case(
            "POST",
            "/api/autoscaler/policy",
            r#"{"policy": "yolo"}"#,
            400,
            "policy",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": 100, "gpu": 1}"#,
            400,
            "gpu",
        ),
        case("POST", "/api/autoscaler/scale", "{}", 400, ""),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"reason": "only a reason"}"#,
            400,
            "",
        ),
        case("PUT", "/api/autoscaler/config", "{}", 400, ""),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"bogus": 1}"#,
            400,
            "bogus",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"mode": "on"}"#,
            400,
            "mode",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"policy": "yolo"}"#,
            400,
            "policy",
        ),
        // Limits outside the hard bounds (100..=800 %, 8..=192 GB, 100..=1500) or above the
        // host's capacity minus the reserve (2 cores - 1, 24 GiB - 8).
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": 900}"#,
            400,
            "cpu_quota",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": 150}"#,
            400,
            "cpu_quota",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": 50}"#,
            400,
            "cpu_quota",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"memory_max": 4}"#,
            400,
            "memory_max",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"memory_max": 20}"#,
            400,
            "memory_max",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"memory_max": 200}"#,
            400,
            "memory_max",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"tasks_max": 50}"#,
            400,
            "tasks_max",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"tasks_max": 2000}"#,
            400,
            "tasks_max",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": 100, "tasks_max": 2000}"#,
            400,
            "tasks_max",
        ),
        case("POST", "/api/autoscaler/scale", &long, 400, "reason"),
        // Zero, negative, fractional, non-finite and huge numbers.
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": 0}"#,
            400,
            "cpu_quota",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": -100}"#,
            400,
            "cpu_quota",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": 100.5}"#,
            400,
            "cpu_quota",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": 1e300}"#,
            400,
            "cpu_quota",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": 18446744073709551616}"#,
            400,
            "cpu_quota",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"cpu_quota": 4294967396}"#,
            400,
            "cpu_quota",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"memory_max": 0}"#,
            400,
            "memory_max",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"memory_max": -8}"#,
            400,
            "memory_max",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"memory_max": 1e300}"#,
            400,
            "memory_max",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"memory_max": 1e-300}"#,
            400,
            "memory_max",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"tasks_max": 0}"#,
            400,
            "tasks_max",
        ),
        case(
            "POST",
            "/api/autoscaler/scale",
            r#"{"tasks_max": 99999999999999999999}"#,
            400,
            "tasks_max",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"check_interval_seconds": 0}"#,
            400,
            "check_interval_seconds",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"check_interval_seconds": -1}"#,
            400,
            "check_interval_seconds",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"check_interval_seconds": 2.5}"#,
            400,
            "check_interval_seconds",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"check_interval_seconds": 1e300}"#,
            400,
            "check_interval_seconds",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"scale_up_factor": 0.5}"#,
            400,
            "scale_up_factor",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"scale_up_factor": 1e308}"#,
            400,
            "scale_up_factor",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"scale_cooldown_seconds": 18446744073709551616}"#,
            400,
            "scale_cooldown_seconds",
        ),
        // A config that contradicts itself, or leaves no feasible bounds on this host.
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"scale_down_cpu_percent": 85}"#,
            400,
            "scale_down_cpu_percent",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"scale_up_memory_percent": 50}"#,
            400,
            "scale_down_memory_percent",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"scale_up_tasks_percent": 20, "scale_down_tasks_percent": 30}"#,
            400,
            "scale_down_tasks_percent",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"min_cpu_quota": 900}"#,
            400,
            "min_cpu_quota",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"min_memory_max": 100, "max_memory_max": 64}"#,
            400,
            "min_memory_max",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"max_tasks_max": 50}"#,
            400,
            "min_tasks_max",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"system_cpu_cores": 2}"#,
            400,
            "system_cpu_cores",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"system_memory_gb": 24}"#,
            400,
            "system_memory_gb",
        ),
        // One bad field in a batch of good ones: nothing of the batch is applied.
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"scale_up_cpu_percent": 70, "check_interval_seconds": 1, "scale_cooldown_seconds": 10, "scale_up_factor": 0.5}"#,
            400,
            "scale_up_factor",
        ),
        case(
            "PUT",
            "/api/autoscaler/config",
            r#"{"policy": "aggressive", "mode": "enabled", "scale_down_cpu_percent": 80}"#,
            400,
            "scale_down_cpu_percent",
        ),
        // `limit` out of range or not a number.
        case("GET", "/api/autoscaler/history?limit=0", "", 400, "limit"),
        case(
            "GET",
            "/api/autoscaler/history?limit=1001",
            "",
            400,
            "limit",
        ),
        case("GET", "/api/autoscaler/history?limit=-1", "", 400, "limit"),
        case("GET", "/api/autoscaler/history?limit=abc", "", 400, "limit"),
        case("GET", "/api/autoscaler/history?limit=1.5", "", 400, "limit"),
        case("GET", "/api/autoscaler/history?limit=", "", 400, "limit"),
        case(
            "GET",
            "/api/autoscaler/history?limit=99999999999",
            "",
            400,
            "limit",
        ),
        case("GET", "/api/autoscaler/history?limit=1", "", 200, ""),
        case("GET", "/api/autoscaler/history?limit=1000", "", 200, ""),
        // Unknown unit, invalid unit names, unknown endpoint.
        case(
            "GET",
            "/api/autoscaler/units/nope.service/status",
            "",
            404,
            "",
        ),
        case(
            "POST",
            "/api/autoscaler/units/nope.service/mode",
            r#"{"mode": "enabled"}"#,
            404,
            "",
        ),
        case(
            "PUT",
            "/api/autoscaler/units/nope.service/config",
            r#"{"scale_up_cpu_percent": 70}"#,
            404,
            "",
        ),
        case("GET", "/api/autoscaler/units/nope/status", "", 400, "unit"),
        case(
            "GET",
            "/api/autoscaler/units/..%2F..%2Fetc%2Fpasswd/metrics",
            "",
            400,
            "unit",
        ),
        case(
            "POST",
            "/api/autoscaler/units/a%20b.service/mode",
            r#"{"mode": "enabled"}"#,
            400,
            "unit",
        ),
        case(
            "POST",
            "/api/autoscaler/units/%24%28reboot%29.service/scale",
            r#"{"cpu_quota": 100}"#,
            400,
            "unit",
        ),
        case("GET", "/api/autoscaler/nope", "", 404, ""),
        case(
            "GET",
            &format!("/api/autoscaler/units/{UNIT}/status"),
            "",
            200,
            "",
        ),
    ];
    // Bodies without `Content-Type: application/json`: 415, whatever the body says.
    for (ct, method, path) in [
        (None, "POST", "/api/autoscaler/mode"),
        (Some("text/plain"), "POST", "/api/autoscaler/mode"),
        (
            Some("application/x-www-form-urlencoded"),
            "POST",
            "/api/autoscaler/mode",
        ),
        (
            Some("multipart/form-data; boundary=x"),
            "POST",
            "/api/autoscaler/policy",
        ),
        (None, "POST", "/api/autoscaler/scale"),
        (Some("text/plain"), "PUT", "/api/autoscaler/config"),
    ] {
        let body = match path {
            "/api/autoscaler/mode" => r#"{"mode": "enabled"}"#,
            "/api/autoscaler/policy" => r#"{"policy": "aggressive"}"#,
            "/api/autoscaler/scale" => r#"{"cpu_quota": 100}"#,
            _ => r#"{"scale_up_cpu_percent": 70}"#,
        };
        cases.push(Case {
            method,
            path: path.to_string(),
            content_type: ct,
            body: Some(body.to_string()),
            status: 415,
            field: None,
            allowed: false,
        });
    }
    for c in &cases {
        check(&d, c).await;
    }
    // The error names the allowed range, in the words of the core.
    let (_, r) = d
        .request(
            "POST",
            "/api/autoscaler/scale",
            Some("application/json"),
            Some(r#"{"cpu_quota": 900}"#),
        )
        .await
        .expect("scale");
    assert_eq!(r["allowed"], "100..=100%", "{r}");
    let (_, r) = d
        .request("GET", "/api/autoscaler/history?limit=0", None, None)
        .await
        .expect("history");
    assert_eq!(r["allowed"], "an integer in 1..=1000", "{r}");
    d.stop().await.expect("stop");
}
