//! The generated OpenAPI document, without root: it is valid OpenAPI 3.1
//! (`openapi-spec-validator`), its vocabularies are the core's, and the daemon's real answers,
//! over the testkit's fake systemd, match the schemas it gives for them: every JSON operation's
//! 200, for the default unit and for a named one, and the errors the fakes can provoke.
//!
//! The answers are built by hand in `api/json.rs` and described apart in `api/schema.rs`; the
//! response schemas deny unknown fields and require every key, so a field added, renamed or
//! dropped on one side only fails `answers_match_the_document`. That every route is in the
//! document is `api.rs`'s `openapi_covers_every_route`.

use std::process::Command;

use autoscaler_core::{GIB, Host, Limits, Millis, Mode, Policy, TriggerType, UnitName};
use autoscaler_testkit::fakes::{Apply, Call, FakeClock, FakeDaemon, FakeSystemd};
use serde_json::{Value, json};

const A: &str = "autocoder-ui.service";
const B: &str = "worker-b.service";

/// Room for the scale-ups the busy unit asks for.
const HOST: Host = Host {
    cores: 16,
    memory_bytes: 64 * GIB,
    max_tasks: 4_194_304,
};

fn document() -> Value {
    serde_json::from_str(autoscaler::api::openapi::document_json()).expect("the document is JSON")
}

/// The answers collected, each with the document's path template it answers to.
struct Answers<'a> {
    d: &'a FakeDaemon,
    list: Vec<Value>,
}

impl Answers<'_> {
    /// Sends a request and keeps its answer, which must have the `status` expected.
    async fn ask(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
        status: u16,
    ) -> Value {
        let (got, json) = self
            .d
            .request(method, path, content_type, body)
            .await
            .expect("request");
        assert_eq!(got, status, "{method} {path} {body:?}: {json}");
        self.list.push(json!({
            "method": method, "path": template, "status": got, "body": json,
        }));
        json
    }

    /// A JSON request, on the default unit and then on unit B through its twin path.
    async fn both(&mut self, method: &str, rest: &str, body: Option<&str>) {
        let ct = Some("application/json");
        let (path, query) = rest.split_once('?').map_or((rest, ""), |(p, q)| (p, q));
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        self.ask(
            method,
            &format!("/api/autoscaler/{path}"),
            &format!("/api/autoscaler/{path}{q}"),
            ct,
            body,
            200,
        )
        .await;
        self.ask(
            method,
            &format!("/api/autoscaler/units/{{unit}}/{path}"),
            &format!("/api/autoscaler/units/{B}/{path}{q}"),
            ct,
            body,
            200,
        )
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn answers_match_the_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sys = FakeSystemd::new();
    let a = UnitName::parse(A).expect("unit name");
    let b = UnitName::parse(B).expect("unit name");
    sys.add(&a, Limits::new(100, 4, 200));
    // B is unlimited: every limit reads null.
    sys.add(
        &b,
        Limits {
            cpu_quota: None,
            memory_max: None,
            tasks_max: None,
        },
    );
    // A is busy enough to be scaled up, so its history, range and prediction have content.
    sys.set_usage(&a, 0.95, 3 * GIB + GIB / 2, 180);
    sys.set_usage(&b, 0.4, GIB, 40);
    let clock = FakeClock::starting_at(Millis(1_796_040_000_000));
    let d = FakeDaemon::start(
        &sys,
        &[a.clone(), b.clone()],
        HOST,
        &dir.path().join("a.db"),
        clock,
    )
    .expect("engine over fakes");
    d.ok(
        "PUT",
        "/api/autoscaler/config",
        Some(r#"{"predictive": true}"#),
    )
    .await
    .expect("predictive on");
    d.ok(
        "POST",
        &format!("/api/autoscaler/units/{B}/policy"),
        Some(r#"{"policy": "adaptive"}"#),
    )
    .await
    .expect("B adaptive");
    d.wait("a scale-up of A", |s| s.units[0].scale_up_count > 0)
        .await
        .expect("scaled");
    // Long enough for forecasts, profiles and the adaptive policy's first windows.
    tokio::time::sleep(std::time::Duration::from_secs(40 * 60)).await;

    let mut ans = Answers {
        d: &d,
        list: vec![],
    };
    for rest in [
        "status",
        "metrics",
        "prediction",
        "history",
        "history?limit=5",
        "config",
        "metrics/history",
        "metrics/history?since=1h&step=1m",
    ] {
        ans.both("GET", rest, None).await;
    }
    ans.both("PUT", "config", Some(r#"{"scale_up_cpu_percent": 80}"#))
        .await;
    ans.both("POST", "mode", Some(r#"{"mode": "enabled"}"#))
        .await;
    ans.both("POST", "policy", Some(r#"{"policy": "balanced"}"#))
        .await;
    ans.both(
        "POST",
        "scale",
        Some(r#"{"cpu_quota": 300, "reason": "test"}"#),
    )
    .await;
    let ct = Some("application/json");
    for (template, path) in [
        ("/api/autoscaler/units", "/api/autoscaler/units"),
        (
            "/api/autoscaler/openapi.json",
            "/api/autoscaler/openapi.json",
        ),
        ("/assets/config-fields.json", "/assets/config-fields.json"),
    ] {
        ans.ask("GET", template, path, None, None, 200).await;
    }

    // The errors the fakes can provoke.
    let status = "/api/autoscaler/units/{unit}/status";
    ans.ask(
        "GET",
        status,
        "/api/autoscaler/units/nope.service/status",
        None,
        None,
        404,
    )
    .await;
    ans.ask(
        "GET",
        status,
        "/api/autoscaler/units/..%2Fx/status",
        None,
        None,
        400,
    )
    .await;
    ans.ask("GET", "/assets/{name}", "/assets/nope.js", None, None, 404)
        .await;
    let mode = "/api/autoscaler/mode";
    ans.ask("POST", mode, mode, ct, Some(r#"{"mode": "fast"}"#), 400)
        .await;
    ans.ask("POST", mode, mode, Some("text/plain"), Some("{}"), 415)
        .await;
    let big = format!(r#"{{"mode": "{}"}}"#, "x".repeat(70_000));
    ans.ask("POST", mode, mode, ct, Some(&big), 413).await;
    ans.ask(
        "GET",
        "/api/autoscaler/history",
        "/api/autoscaler/history?limit=many",
        None,
        None,
        400,
    )
    .await;
    ans.ask(
        "GET",
        "/api/autoscaler/metrics/history",
        "/api/autoscaler/metrics/history?since=yesterday-ish",
        None,
        None,
        400,
    )
    .await;
    let scale = "/api/autoscaler/scale";
    sys.set_apply(&a, Apply::Refuse);
    ans.ask("POST", scale, scale, ct, Some(r#"{"cpu_quota": 250}"#), 502)
        .await;
    sys.set_apply(&a, Apply::Take);
    d.ok("POST", mode, Some(r#"{"mode": "manual"}"#))
        .await
        .expect("acknowledged");
    // Past the rate limit: the twelfth change in a minute is the last one allowed.
    let mut last = 0;
    for i in 0..20 {
        let body = format!(r#"{{"tasks_max": {}}}"#, 300 + i);
        let (s, _) = d
            .request("POST", scale, ct, Some(&body))
            .await
            .expect("request");
        last = s;
        if s == 429 {
            break;
        }
    }
    assert_eq!(last, 429, "the rate limit never answered");
    ans.ask("POST", scale, scale, ct, Some(r#"{"tasks_max": 400}"#), 429)
        .await;
    // B's systemd stops answering: it cannot be managed until it does.
    sys.set_inspect(&b, Call::Fail);
    d.wait("B unavailable", |s| s.units[1].unit_error.is_some())
        .await
        .expect("unavailable");
    let b_scale = "/api/autoscaler/units/{unit}/scale";
    ans.ask(
        "POST",
        b_scale,
        &format!("/api/autoscaler/units/{B}/scale"),
        ct,
        Some(r#"{"tasks_max": 100}"#),
        503,
    )
    .await;
    ans.both("GET", "status", None).await;

    // What the test saw had content where it matters.
    let seen = |method: &str, path: &str| -> Vec<&Value> {
        ans.list
            .iter()
            .filter(|x| x["method"] == method && x["path"] == path && x["status"] == 200)
            .map(|x| &x["body"])
            .collect()
    };
    let p = seen("GET", "/api/autoscaler/units/{unit}/prediction");
    assert!(
        p.iter().any(|p| p["adaptive"].is_object()),
        "B's prediction has no adaptive recommendation: {p:?}"
    );
    let p = seen("GET", "/api/autoscaler/prediction");
    assert!(
        p.iter()
            .any(|p| p["series"]["cpu_cores"]["forecast"].is_array()),
        "A's prediction has no forecast: {p:?}"
    );
    let h = seen("GET", "/api/autoscaler/history");
    assert!(
        h.iter()
            .any(|h| h.as_array().is_some_and(|r| !r.is_empty())),
        "A has no history: {h:?}"
    );

    // Every JSON operation's 200 was seen.
    let doc = document();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let json_ok = op["responses"]["200"]["content"]
                .get("application/json")
                .is_some();
            if json_ok {
                assert!(
                    !seen(&method.to_uppercase(), path).is_empty(),
                    "no answer checked for {method} {path}"
                );
            }
        }
    }

    let report = check_answers(&doc, &ans.list);
    assert_eq!(report["valid"], Value::Null, "not valid OpenAPI: {report}");
    assert_eq!(report["checked"], ans.list.len());
    let failures = report["failures"].as_array().expect("failures");
    assert!(
        failures.is_empty(),
        "{} answers do not match the document:\n{}",
        failures.len(),
        serde_json::to_string_pretty(failures).unwrap_or_default()
    );
    d.stop().await.expect("stop");
}

/// Runs `tests/api/check_answers.py` (openapi-spec-validator and jsonschema) on the document
/// and the answers.
fn check_answers(doc: &Value, answers: &[Value]) -> Value {
    let python = autoscaler_testkit::repo_tool(".venv/bin/python").expect("python");
    let dir = tempfile::tempdir().expect("tempdir");
    let doc_file = dir.path().join("openapi.json");
    let answers_file = dir.path().join("answers.json");
    std::fs::write(&doc_file, doc.to_string()).expect("write the document");
    std::fs::write(&answers_file, Value::from(answers.to_vec()).to_string())
        .expect("write the answers");
    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/api/check_answers.py"
        ))
        .arg(&doc_file)
        .arg(&answers_file)
        .output()
        .expect("check_answers.py");
    assert!(
        out.status.success(),
        "check_answers.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

/// The document alone is valid OpenAPI 3.1, whatever the answers.
#[test]
fn the_document_is_valid_openapi() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let report = check_answers(&doc, &[]);
    assert_eq!(report["valid"], Value::Null, "not valid OpenAPI: {report}");
}

/// Modes, policies and triggers are the core's, with the core's words; the prediction and the
/// history keep their descriptions.
#[test]
fn the_vocabularies_are_the_cores() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let check = |name: &str, want: Vec<&str>, description: Option<String>| {
        let s = &schemas[name];
        assert_eq!(s["enum"], json!(want), "{name}: {s}");
        if let Some(d) = description {
            assert_eq!(s["description"], d, "{name}");
        }
    };
    check(
        "Mode",
        Mode::ALL.map(Mode::as_str).to_vec(),
        Some(Mode::summary()),
    );
    check(
        "Policy",
        Policy::CHOICES.map(Policy::as_str).to_vec(),
        Some(Policy::summary()),
    );
    assert!(
        schemas["Policy"]["enum"]
            .as_array()
            .is_some_and(|e| e.contains(&json!("adaptive")))
    );
    let triggers: Vec<&str> = TriggerType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(
        triggers,
        [
            "threshold",
            "pressure",
            "queue",
            "predictive",
            "oom",
            "manual",
            "adaptive"
        ]
    );
    check("TriggerType", triggers.clone(), Some(triggers.join(", ")));
    assert_eq!(
        schemas["HistoryRow"]["properties"]["trigger_type"]["$ref"],
        "#/components/schemas/TriggerType"
    );
    // The config's fields are the core's table, with its ranges.
    let config = &schemas["Config"];
    for f in autoscaler_core::config::FIELDS {
        let p = &config["properties"][f.name];
        assert_eq!(p["minimum"].as_f64(), Some(f.min), "{}", f.name);
        assert_eq!(p["maximum"].as_f64(), Some(f.max), "{}", f.name);
        assert_eq!(p["description"], f.doc.trim(), "{}", f.name);
    }
    let prediction = &doc["paths"]["/api/autoscaler/prediction"]["get"]["responses"]["200"];
    assert!(
        prediction["description"]
            .as_str()
            .is_some_and(|d| d.contains("ForecastPoint") && d.contains("`adaptive` member")),
        "{prediction}"
    );
    let history = &doc["paths"]["/api/autoscaler/history"]["get"];
    assert_eq!(history["summary"], "Scaling actions, newest first.");
    assert_eq!(
        history["parameters"][0]["schema"]["default"], 20,
        "{history}"
    );
}
