//! The HTTP API end to end: a real daemon on an ephemeral port managing a real unit in a
//! systemd sandbox, driven with curl.
//!
//! Covers the spec's curl commands as written (Quick Start, the three Workflows,
//! Troubleshooting), atomic config updates used from the next check, Prometheus `/metrics`
//! through the real parser, the OpenAPI document (every route in it, and a bounded
//! schemathesis run with no server error), and the security defaults (token on POST/PUT, no
//! non-loopback listen without one, no CORS). Nothing here skips: a missing tool fails the test. The bad-input matrix, which
//! exercises validation only, runs without root in `api_inputs.rs`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use autoscaler_testkit::{
    Sandbox, World, busy_unit, need_command as need, repo_tool as tool, wait_exit, wait_until,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_autoscaler");

/// The spec's unit: with it, the spec's `systemctl --user ... autocoder-ui.service` lines run
/// against the sandbox unchanged.
const UNIT: &str = "autocoder-ui.service";

/// Config that makes manual limits possible on a small host (2 cores, 24 GiB): no CPU
/// reserve, low minimums. The interval stays long unless a test asks for a fast loop.
const ROOMY: &str = autoscaler_testkit::SMALL_HOST_BOUNDS;

/// A sandbox with the spec's unit running one busy loop, and a daemon managing it (with
/// `extra` flags) that has taken its first sample.
fn world(extra: &[&str]) -> anyhow::Result<World> {
    World::with_busy_unit(BIN, UNIT, extra)
}

/// GET /metrics through the real Prometheus parser: `{family: {type, samples: [...]}}`.
fn parse_prometheus(url: &str) -> anyhow::Result<Value> {
    let python = tool(".venv/bin/python")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/prom_parse.py");
    let out = Command::new(python)
        .arg(script)
        .arg(format!("{url}/metrics"))
        .output()
        .context("running tests/api/prom_parse.py")?;
    anyhow::ensure!(
        out.status.success(),
        "prom_parse.py failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).context("prom_parse.py printed no JSON")
}

/// Runs a spec command line and checks what it printed and how it exited.
fn check_shell(world: &World, line: &str, want: Expect) {
    let out = world.shell(line).expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{line}\nexited with {}\nstdout: {stdout}\nstderr: {stderr}\ndaemon log tail: {}",
        out.status,
        tail(&world.daemon.log_text())
    );
    let ok = match &want {
        Expect::Json(check) => match serde_json::from_str::<Value>(&stdout) {
            Ok(v) => check(&v),
            Err(e) => panic!("{line}\nprinted no JSON ({e}): {stdout}"),
        },
        Expect::Contains(s) => stdout.contains(s),
    };
    assert!(ok, "{line}\nunexpected output: {stdout}");
}

enum Expect {
    Json(Box<dyn Fn(&Value) -> bool>),
    Contains(&'static str),
}

fn json_is(f: impl Fn(&Value) -> bool + 'static) -> Expect {
    Expect::Json(Box::new(f))
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The spec's status keys with their JSON types.
fn is_spec_status(v: &Value) -> bool {
    v["mode"].is_string()
        && v["policy"].is_string()
        && v["is_running"].is_boolean()
        && v["current_limits"].is_object()
        && ["cpu_quota", "memory_max", "tasks_max"]
            .iter()
            .all(|k| v["current_limits"].get(*k).is_some())
        && (v["last_scale_time"].is_null() || v["last_scale_time"].is_string())
        && v["scale_up_count"].is_u64()
        && v["scale_down_count"].is_u64()
        && v["unit"] == UNIT
        && v["strategy"] == "live"
}

fn is_spec_metrics(v: &Value) -> bool {
    v["timestamp"].is_string()
        && v["cpu_percent"].is_number()
        && v["cpu_cores_used"].is_number()
        && v["memory_gb"].is_number()
        && ["process_count", "agent_count", "testing_agent_count"]
            .iter()
            .all(|k| v[*k].is_u64())
        && (v["features_pending"].is_u64() || v["features_pending"].is_null())
        && v.get("api_quota_remaining").is_some()
}

fn is_history(v: &Value) -> bool {
    v.as_array().is_some_and(|rows| {
        rows.iter().all(|r| {
            r["id"].is_i64()
                && r["action"].is_string()
                && r["old_limits"].is_object()
                && r["new_limits"].is_object()
                && r["status"].is_string()
                && r.get("error_message").is_some()
        })
    })
}

/// Quick Start, the three Workflows and Troubleshooting, run as the spec writes them.
#[test]
fn spec_commands_as_written() {
    need("jq").expect("jq");
    let w = world(&[]).expect("sandbox and daemon");
    let http = w.daemon.http();

    // Quick Start.
    check_shell(
        &w,
        r#"curl -X POST http://localhost:8888/api/autoscaler/mode \
  -H "Content-Type: application/json" \
  -d '{"mode": "enabled"}'"#,
        json_is(|v| v["mode"] == "enabled" && is_spec_status(v)),
    );
    check_shell(
        &w,
        "curl http://localhost:8888/api/autoscaler/status",
        json_is(is_spec_status),
    );
    check_shell(
        &w,
        "curl http://localhost:8888/api/autoscaler/history?limit=10",
        json_is(is_history),
    );

    // Troubleshooting, "Autoscaler not scaling": the jq paths print the spec's fields.
    check_shell(
        &w,
        "curl http://localhost:8888/api/autoscaler/status | jq '.mode'",
        json_is(|v| v == "enabled"),
    );
    check_shell(
        &w,
        "curl http://localhost:8888/api/autoscaler/metrics | jq '.cpu_percent'",
        json_is(|v| v.as_f64().is_some_and(|p| p > 0.0)),
    );
    check_shell(
        &w,
        "curl http://localhost:8888/api/autoscaler/config | jq '.scale_up_cpu_percent'",
        json_is(|v| v == 85),
    );
    check_shell(
        &w,
        "curl http://localhost:8888/api/autoscaler/metrics",
        json_is(is_spec_metrics),
    );

    // Workflow 1 step 1 (the rest are comments about load).
    check_shell(
        &w,
        r#"curl -X POST http://localhost:8888/api/autoscaler/mode \
  -H "Content-Type: application/json" \
  -d '{"mode": "enabled"}'"#,
        json_is(|v| v["mode"] == "enabled"),
    );

    // Workflow 3: the policy and its "Result" comments.
    check_shell(
        &w,
        r#"curl -X POST http://localhost:8888/api/autoscaler/policy \
  -H "Content-Type: application/json" \
  -d '{"policy": "conservative"}'"#,
        json_is(|v| v["policy"] == "conservative" && is_spec_status(v)),
    );
    let c = http.get_ok("/api/autoscaler/config").expect("config");
    assert_eq!(
        (
            &c["scale_up_cpu_percent"],
            &c["consecutive_scale_up_checks"],
            &c["scale_cooldown_seconds"],
            &c["scale_up_factor"]
        ),
        (&json!(90), &json!(5), &json!(600), &json!(1.3)),
        "{c}"
    );

    // Workflow 2 as written asks for 600% CPU / 96 GB / 750 tasks: more than this host
    // (2 cores, 24 GiB) minus its reserve. The answer is a 400 with the allowed range, and
    // nothing changes.
    let before = w.state().expect("state");
    let workflow2 = r#"curl -X POST http://localhost:8888/api/autoscaler/scale \
  -H "Content-Type: application/json" \
  -d '{
    "cpu_quota": 600,
    "memory_max": 96,
    "tasks_max": 750,
    "reason": "Complex ML model training"
  }'"#;
    check_shell(
        &w,
        workflow2,
        json_is(|v| {
            v["field"] == "cpu_quota"
                && v["allowed"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("100..=100"))
                && v["error"].as_str().is_some_and(|e| e.contains("600"))
        }),
    );
    let code = w
        .shell(&format!("{workflow2} -o /dev/null -w '%{{http_code}}'"))
        .expect("curl")
        .stdout;
    assert_eq!(String::from_utf8_lossy(&code), "400");
    assert_eq!(
        w.state().expect("state"),
        before,
        "a rejected scale changed state"
    );

    // The same request with values this host can give (after lowering the reserve and the
    // minimums), and systemd really has the new limits.
    w.put_config(ROOMY).expect("roomy config");
    let fitting = workflow2
        .replace("600", "150")
        .replace("\"memory_max\": 96", "\"memory_max\": 2");
    check_shell(
        &w,
        &fitting,
        json_is(|v| {
            v["status"] == "success"
                && v["action"] == "manual_scale"
                && v["reason"] == "Complex ML model training"
                && v["new_limits"] == json!({"cpu_quota": 150, "memory_max": 2, "tasks_max": 750})
        }),
    );
    let sb = &w.sandbox;
    assert_eq!(
        sb.show(UNIT, "CPUQuotaPerSecUSec").expect("show"),
        "1.500000s"
    );
    assert_eq!(sb.show(UNIT, "MemoryMax").expect("show"), "2147483648");
    assert_eq!(sb.show(UNIT, "TasksMax").expect("show"), "750");
    let s = http.get_ok("/api/autoscaler/status").expect("status");
    assert_eq!(s["mode"], "manual", "{s}");
    // Step 3: re-enable.
    check_shell(
        &w,
        r#"curl -X POST http://localhost:8888/api/autoscaler/mode \
  -H "Content-Type: application/json" \
  -d '{"mode": "enabled"}'"#,
        json_is(|v| v["mode"] == "enabled"),
    );

    // Troubleshooting, "Service restart failed". The last action succeeded: no error.
    check_shell(
        &w,
        "curl http://localhost:8888/api/autoscaler/history?limit=5 | jq '.[0].error_message'",
        json_is(Value::is_null),
    );
    check_shell(
        &w,
        "systemctl --user show autocoder-ui.service | grep FragmentPath",
        Expect::Contains(".config/systemd/user/autocoder-ui.service"),
    );
    check_shell(
        &w,
        "cat ~/.config/systemd/user/autocoder-ui.service",
        Expect::Contains("ExecStart="),
    );
    for line in [
        "systemctl --user daemon-reload",
        "systemctl --user restart autocoder-ui.service",
    ] {
        check_shell(&w, line, Expect::Contains(""));
    }
    check_shell(
        &w,
        "systemctl --user status autocoder-ui.service",
        Expect::Contains("active (running)"),
    );
    // Live limits are persisted as drop-ins: a restart keeps them.
    assert_eq!(sb.show(UNIT, "TasksMax").expect("show"), "750");

    // "cgroup not found": a stopped unit gives 503 with the reason; starting it as the spec
    // says brings the metrics back.
    // The loop notices a stopped unit at its next check: make that soon (the interval
    // is taken from the next check on).
    w.put_config(r#"{"check_interval_seconds":1}"#)
        .expect("interval");
    sb.stop_unit(UNIT).expect("stop");
    // A check that runs while the unit stops may find its cgroup already gone and say so
    // (a 503 too); the check after it sees the stopped unit and says to start it.
    let mut last = String::new();
    let r = wait_until(
        Duration::from_secs(15),
        "metrics to say 503, start it",
        || {
            let r = http.get("/api/autoscaler/metrics")?;
            last = format!("{} {}", r.status, r.text);
            let settled = r.status == 503
                && r.json["reason"]
                    .as_str()
                    .is_some_and(|s| s.contains("start"));
            Ok(settled.then_some(r))
        },
    )
    .unwrap_or_else(|e| panic!("503 for a stopped unit: {e:#}; last answer: {last}"));
    assert_eq!(r.json["unit"], UNIT, "{}", r.text);
    check_shell(
        &w,
        "systemctl --user start autocoder-ui.service",
        Expect::Contains(""),
    );

    wait_until(Duration::from_secs(20), "metrics after the start", || {
        let r = http.get("/api/autoscaler/metrics")?;
        Ok((r.status == 200).then_some(()))
    })
    .expect("metrics again");
    check_shell(
        &w,
        "curl http://localhost:8888/api/autoscaler/metrics",
        json_is(is_spec_metrics),
    );
}

/// A good batch is applied whole, and the loop runs at the new interval from its next check.
#[test]
fn config_update_is_atomic_and_used_from_the_next_check() {
    let w = world(&[]).expect("sandbox and daemon");
    let checks = |w: &World| -> anyhow::Result<f64> {
        let m = parse_prometheus(w.url())?;
        m["families"]["autoscaler_checks"]["samples"][0]["value"]
            .as_f64()
            .context("autoscaler_checks_total has no sample")
    };
    // At the default 30 s interval the first check is done and the next is far away.
    let c0 = checks(&w).expect("checks");
    let bad = r#"{"check_interval_seconds": 1, "consecutive_scale_up_checks": 2, "scale_up_cpu_percent": 101}"#;
    let r = w
        .http()
        .raw(
            "PUT",
            "/api/autoscaler/config",
            &["Content-Type: application/json"],
            Some(bad),
        )
        .expect("put");
    assert_eq!(
        (r.status, &r.json["field"]),
        (400, &json!("scale_up_cpu_percent"))
    );
    let c = w
        .daemon
        .http()
        .get_ok("/api/autoscaler/config")
        .expect("config");
    assert_eq!(
        (
            &c["check_interval_seconds"],
            &c["consecutive_scale_up_checks"]
        ),
        (&json!(30), &json!(3))
    );

    let good = w
        .put_config(
            r#"{"check_interval_seconds": 1, "consecutive_scale_up_checks": 2, "scale_up_cpu_percent": 70, "scale_cooldown_seconds": 3}"#,
        )
        .expect("good batch");
    assert_eq!(
        (
            &good["check_interval_seconds"],
            &good["consecutive_scale_up_checks"],
            &good["scale_up_cpu_percent"],
            &good["scale_cooldown_seconds"]
        ),
        (&json!(1), &json!(2), &json!(70), &json!(3))
    );
    // Five checks in under 15 s cannot happen at 30 s: the loop took the new interval.
    wait_until(
        Duration::from_secs(15),
        "checks at the new 1 s interval",
        || Ok((checks(&w)? >= c0 + 5.0).then_some(())),
    )
    .expect("a faster loop");
    // And a daemon restart keeps the config (it lives in the store).
    let mut w = w;
    w.daemon.restart().expect("restart");
    let c = w
        .daemon
        .http()
        .get_ok("/api/autoscaler/config")
        .expect("config");
    assert_eq!(c["check_interval_seconds"], 1, "{c}");
}

/// `/metrics` parses with prometheus_client's parser and has every family the issue names.
#[test]
fn prometheus_metrics_parse() {
    let w = world(&[]).expect("sandbox and daemon");
    w.put_config(ROOMY).expect("roomy");
    // One manual action so the action counter has a sample, and limits to report.
    let r = w
        .http()
        .raw(
            "POST",
            "/api/autoscaler/scale",
            &["Content-Type: application/json"],
            Some(r#"{"cpu_quota": 150, "memory_max": 2, "tasks_max": 500, "reason": "metrics test"}"#),
        )
        .expect("scale");
    assert_eq!(r.status, 200, "{}", r.text);
    // The limits in the snapshot come from systemd at the next check.
    w.put_config(r#"{"check_interval_seconds": 1}"#)
        .expect("interval");
    let m = wait_until(Duration::from_secs(15), "limits in /metrics", || {
        let m = parse_prometheus(w.url())?;
        let has = m["families"]["autoscaler_limit_tasks"]["samples"][0]["value"] == 500.0;
        Ok(has.then_some(m))
    })
    .expect("metrics");
    assert!(
        m["content_type"]
            .as_str()
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{}",
        m["content_type"]
    );
    let fams = &m["families"];
    let unit = json!({ "unit": UNIT });
    // (family, type, labels of one sample that must be there, a check of its value)
    type ValueCheck = fn(f64) -> bool;
    let table: &[(&str, &str, Value, ValueCheck)] = &[
        ("autoscaler_cpu_cores_used", "gauge", unit.clone(), |v| {
            v > 0.3
        }),
        (
            "autoscaler_cpu_percent_of_quota",
            "gauge",
            unit.clone(),
            |v| v > 0.0,
        ),
        ("autoscaler_memory_bytes", "gauge", unit.clone(), |v| {
            v > 0.0
        }),
        ("autoscaler_tasks", "gauge", unit.clone(), |v| v >= 2.0),
        ("autoscaler_processes", "gauge", unit.clone(), |v| v >= 2.0),
        (
            "autoscaler_limit_cpu_quota_percent",
            "gauge",
            unit.clone(),
            |v| v == 150.0,
        ),
        (
            "autoscaler_limit_memory_bytes",
            "gauge",
            unit.clone(),
            |v| v == 2147483648.0,
        ),
        ("autoscaler_limit_tasks", "gauge", unit.clone(), |v| {
            v == 500.0
        }),
        (
            "autoscaler_cpu_throttled_ratio",
            "gauge",
            unit.clone(),
            |v| (0.0..=1.0).contains(&v),
        ),
        (
            "autoscaler_cpu_throttled_seconds",
            "counter",
            unit.clone(),
            |v| v >= 0.0,
        ),
        ("autoscaler_oom_kills", "counter", unit.clone(), |v| {
            v == 0.0
        }),
        (
            "autoscaler_actions",
            "counter",
            json!({ "unit": UNIT, "action": "manual_scale", "status": "success" }),
            |v| v == 1.0,
        ),
        ("autoscaler_unit_available", "gauge", unit.clone(), |v| {
            v == 1.0
        }),
        (
            "autoscaler_mode",
            "gauge",
            json!({ "unit": UNIT, "mode": "manual" }),
            |v| v == 1.0,
        ),
        ("autoscaler_unit_failed", "gauge", unit.clone(), |v| {
            v == 0.0
        }),
        ("autoscaler_rollback_failed", "gauge", unit.clone(), |v| {
            v == 0.0
        }),
        (
            "autoscaler_bound_max_cpu_quota_percent",
            "gauge",
            unit.clone(),
            |v| v >= 150.0,
        ),
        (
            "autoscaler_bound_max_memory_bytes",
            "gauge",
            unit.clone(),
            |v| v >= 2147483648.0,
        ),
        ("autoscaler_bound_max_tasks", "gauge", unit.clone(), |v| {
            v >= 500.0
        }),
        (
            "autoscaler_loop_duration_seconds",
            "gauge",
            json!({}),
            |v| (0.0..5.0).contains(&v),
        ),
        ("autoscaler_loop_lag_seconds", "gauge", json!({}), |v| {
            (0.0..5.0).contains(&v)
        }),
        ("autoscaler_loop_lag_max_seconds", "gauge", json!({}), |v| {
            (0.0..5.0).contains(&v)
        }),
        ("autoscaler_checks", "counter", json!({}), |v| v >= 1.0),
        ("autoscaler_apply_failures", "counter", json!({}), |v| {
            v == 0.0
        }),
    ];
    for (name, kind, labels, ok) in table {
        let fam = &fams[*name];
        assert_eq!(fam["type"], *kind, "{name}: {fam}");
        let sample = fam["samples"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["labels"] == *labels))
            .unwrap_or_else(|| panic!("{name} has no sample with labels {labels}: {fam}"));
        let v = sample["value"].as_f64().expect("finite value");
        assert!(ok(v), "{name}{labels} = {v}");
    }
    // Pressure: a family is always declared; its samples exist where the kernel has PSI.
    assert_eq!(fams["autoscaler_pressure_some_avg10"]["type"], "gauge");
    let psi = Path::new("/proc/pressure/cpu").exists();
    let samples = fams["autoscaler_pressure_some_avg10"]["samples"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(
        !psi || samples > 0,
        "PSI exists but no pressure samples: {fams}"
    );
}

/// Every route of the router is in the generated OpenAPI document and nothing else is, and
/// the document is OpenAPI 3.1. (That it is valid and that answers match it: `openapi.rs`.)
#[test]
fn openapi_covers_every_route() {
    let python = tool(".venv/bin/python").expect("python");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = autoscaler::api::openapi::document_json();
    let doc: Value = serde_json::from_str(text).expect("the document is JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("openapi.json");
    std::fs::write(&file, text).expect("write the document");
    let out = Command::new(python)
        .arg(dir.join("tests/api/check_openapi.py"))
        .arg(dir.join("src/api/mod.rs"))
        .arg(&file)
        .output()
        .expect("check_openapi.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
    assert!(
        report["routes"].as_array().is_some_and(|r| r.len() >= 20),
        "the router parser found too few routes: {report}"
    );
    assert_eq!(
        report["missing"],
        json!([]),
        "routes missing from the OpenAPI document"
    );
    assert_eq!(
        report["extra"],
        json!([]),
        "documented operations no route serves"
    );
    // Every $ref resolves.
    let refs: Vec<&str> = text
        .match_indices("\"$ref\": \"#/")
        .map(|(i, m)| {
            let rest = &text[i + m.len()..];
            &rest[..rest.find('"').unwrap_or(0)]
        })
        .collect();
    for r in refs {
        let mut v = &doc;
        for part in r.split('/') {
            v = &v[part];
        }
        assert!(!v.is_null(), "unresolved $ref #/{r}");
    }
}

/// schemathesis, bounded, against a daemon managing a running unit: no server error, and the
/// answers match the document.
#[test]
fn schemathesis_finds_no_server_error() {
    let st = tool(".venv/bin/schemathesis").expect("schemathesis");
    let w = world(&[]).expect("sandbox and daemon");
    // Room for schemathesis's manual limits on this host; the doc is served by the daemon.
    w.put_config(ROOMY).expect("roomy");
    let served = w
        .daemon
        .http()
        .get_ok("/api/autoscaler/openapi.json")
        .expect("doc");
    assert_eq!(served["openapi"], "3.1.0");
    let report = w.daemon.dir().join("schemathesis");
    let out = Command::new(st)
        .arg("run")
        .arg(format!("{}/api/autoscaler/openapi.json", w.url()))
        .args(["--url", w.url()])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "8",
            "--max-time",
            "40",
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--seed",
            "1",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
        ])
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "")
        .stdin(Stdio::null())
        .output()
        .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{}\ndaemon log tail:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        tail(&w.daemon.log_text())
    );
    // The unit is still running and managed after the fuzzing.
    assert_eq!(w.sandbox.show(UNIT, "ActiveState").expect("show"), "active");
    w.wait_for_sample().expect("still sampled");
}

/// With a token, every request but the page and `/healthz` needs it (reads too), with the
/// scheme in any case; no CORS headers unless configured.
#[test]
fn token_and_cors() {
    need("curl").expect("curl");
    let sandbox = Sandbox::start().expect("sandbox");
    sandbox.write_unit(UNIT, &busy_unit(1)).expect("unit");
    sandbox.start_unit(UNIT).expect("start");
    let w = World::start(BIN, sandbox, &[UNIT], &["--token", "T0ken-s3cret"]).expect("daemon");
    let d = &w.daemon;
    let url = d.url.clone();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let json_ct = "Content-Type: application/json";
    let mode = Some(r#"{"mode": "disabled"}"#);
    let config = Some(r#"{"scale_up_cpu_percent": 80}"#);
    // (method, path, headers, body, status)
    type Row<'a> = (&'a str, &'a str, &'a [&'a str], Option<&'a str>, u16);
    let table: &[Row] = &[
        ("POST", "/api/autoscaler/mode", &[json_ct], mode, 401),
        (
            "POST",
            "/api/autoscaler/mode",
            &[json_ct, "Authorization: Bearer wrong"],
            mode,
            401,
        ),
        (
            "POST",
            "/api/autoscaler/mode",
            &[json_ct, "Authorization: Bearer T0ken-s3cre"],
            mode,
            401,
        ),
        (
            "POST",
            "/api/autoscaler/mode",
            &[json_ct, "Authorization: Basic T0ken-s3cret"],
            mode,
            401,
        ),
        (
            "POST",
            "/api/autoscaler/mode",
            &[json_ct, "Authorization: T0ken-s3cret"],
            mode,
            401,
        ),
        ("PUT", "/api/autoscaler/config", &[json_ct], config, 401),
        (
            "POST",
            "/api/autoscaler/scale",
            &[json_ct],
            Some(r#"{"cpu_quota": 100}"#),
            401,
        ),
        (
            "POST",
            "/api/autoscaler/policy",
            &[json_ct],
            Some(r#"{"policy": "aggressive"}"#),
            401,
        ),
        (
            "POST",
            "/api/autoscaler/units/nope.service/mode",
            &[json_ct],
            mode,
            401,
        ),
        // Reads need the token too; the scheme is case-insensitive.
        ("GET", "/api/autoscaler/status", &[], None, 401),
        ("GET", "/api/autoscaler/config", &[], None, 401),
        ("GET", "/api/autoscaler/history?limit=5", &[], None, 401),
        ("GET", "/api/autoscaler/units", &[], None, 401),
        ("GET", "/metrics", &[], None, 401),
        (
            "GET",
            "/api/autoscaler/status",
            &["Authorization: bearer T0ken-s3cret"],
            None,
            200,
        ),
        (
            "GET",
            "/metrics",
            &["Authorization: BEARER T0ken-s3cret"],
            None,
            200,
        ),
        // The page and liveness show nothing and stay open.
        ("GET", "/healthz", &[], None, 200),
        ("GET", "/", &[], None, 200),
        (
            "POST",
            "/api/autoscaler/mode",
            &[json_ct, "Authorization: Bearer T0ken-s3cret"],
            mode,
            200,
        ),
        (
            "PUT",
            "/api/autoscaler/config",
            &[json_ct, "Authorization: Bearer T0ken-s3cret"],
            config,
            200,
        ),
    ];
    for (method, path, headers, body, status) in table {
        let before_mode = d.http().get_ok("/api/autoscaler/config").expect("config");
        let r = d.http().raw(method, path, headers, *body).expect("request");
        assert_eq!(r.status, *status, "{method} {path} {headers:?}: {}", r.text);
        if *status == 401 {
            assert!(
                r.json["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Bearer")),
                "{}",
                r.text
            );
            assert_eq!(
                d.http().get_ok("/api/autoscaler/config").expect("config"),
                before_mode,
                "{method} {path} without the token changed the config"
            );
        }
    }
    let c = d.http().get_ok("/api/autoscaler/config").expect("config");
    assert_eq!(
        (&c["mode"], &c["scale_up_cpu_percent"]),
        (&json!("disabled"), &json!(80))
    );

    // CORS stays off: no Access-Control-* header on a cross-origin GET or a preflight.
    for args in [
        vec!["-H", "Origin: http://evil.example", "-X", "GET"],
        vec![
            "-H",
            "Origin: http://evil.example",
            "-H",
            "Access-Control-Request-Method: POST",
            "-H",
            "Access-Control-Request-Headers: content-type",
            "-X",
            "OPTIONS",
        ],
    ] {
        let out = Command::new("curl")
            .args(["-sS", "-D", "-", "-o", "/dev/null"])
            .args(&args)
            .arg(format!("{url}/api/autoscaler/mode"))
            .output()
            .expect("curl");
        let headers = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(headers.starts_with("http/1.1"), "{headers}");
        assert!(
            !headers.contains("access-control-"),
            "CORS header sent: {headers}"
        );
    }
}

/// Listening beyond loopback without a token is refused before anything binds.
#[test]
fn non_loopback_without_token_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    // (listen address, token, must refuse). 192.0.2.1 is TEST-NET-1: never this host's, so
    // even a regression could not open a port to the network.
    let table: &[(&str, Option<&str>, &str)] = &[
        ("192.0.2.1:0", None, "without a token"),
        ("0.0.0.0:0", None, "without a token"),
        ("[::]:0", None, "without a token"),
        ("192.0.2.1:0", Some(""), "without a token"),
    ];
    for (listen, token, want) in table {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", listen, "--unit", UNIT, "--db"])
            .arg(dir.path().join("a.db"))
            .env_remove("AUTOSCALER_TOKEN")
            .stdin(Stdio::null());
        if let Some(t) = token {
            cmd.env("AUTOSCALER_TOKEN", t);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let status = wait_exit(&mut child, Duration::from_secs(10), "the daemon to refuse")
            .unwrap_or_else(|e| panic!("--listen {listen} did not exit: {e:#}"));
        let out = child.wait_with_output().expect("output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!status.success(), "--listen {listen} started");
        assert!(stderr.contains(want), "--listen {listen}: {stderr}");
        assert!(
            stderr.contains("AUTOSCALER_TOKEN"),
            "the message says how to fix it: {stderr}"
        );
    }
}
