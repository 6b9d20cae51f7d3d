//! The dashboard in a real browser: Debian's headless Chromium, driven by playwright-core
//! (`tests/dashboard.mjs`), against a real daemon managing a busy unit in the systemd sandbox.
//!
//! The driver clicks and types like a user and prints what it saw as one JSON line; this test
//! asserts on that and on systemd itself (the unit's CPUQuota and MemoryMax after the page's
//! manual scale). The browser and playwright-core come from `scripts/setup-test-env`; when
//! they are missing the test fails saying so, it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use autoscaler_testkit::{Sandbox, World, busy_unit, wait_for_eq, wait_until};
use serde_json::Value;

const UNIT: &str = "dash-busy.service";
const TOKEN: &str = "dashboard-test-token";
/// One busy loop under limits that leave room on a 2-core, 24 GiB host.
const LIMITS: &str = "CPUQuota=100%\nMemoryMax=1G\nTasksMax=100\n";
/// A 1 s check interval and bounds that fit the host (no CPU reserve, small minimums).
const CONFIG: &str = r#"{"check_interval_seconds":1,"consecutive_scale_up_checks":2,
    "scale_cooldown_seconds":3,"min_cpu_quota":20,"system_cpu_cores":0,"min_memory_max":1,
    "min_step_memory_gb":1,"min_tasks_max":50}"#;
const CHROMIUM: &str = "/usr/bin/chromium";

/// `<target dir>/screenshots`: `target/screenshots` in a plain build.
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("screenshots")
}

/// `1.300000s`, `1s`, `500ms` (systemd's timespans as `show` prints them) in microseconds.
fn usec(text: &str) -> Option<u64> {
    let (num, scale) = if let Some(v) = text.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = text.strip_suffix("us") {
        (v, 1.0)
    } else {
        (text.strip_suffix('s')?, 1e6)
    };
    num.parse::<f64>().ok().map(|v| (v * scale).round() as u64)
}

/// A JSON pointer into the driver's report, what it shows, and what must hold there.
type Expect = (&'static str, &'static str, &'static dyn Fn(&Value) -> bool);

/// One expectation on the driver's report: a JSON pointer, then what must hold there.
fn check(report: &Value, pointer: &str, what: &str, ok: impl Fn(&Value) -> bool) {
    let v = report.pointer(pointer).unwrap_or(&Value::Null);
    assert!(
        ok(v),
        "dashboard: {what}: {pointer} is {v}\nfull report: {report:#}"
    );
}

fn run_driver(url: &str) -> anyhow::Result<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard.mjs");
    let out = Command::new("node")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg(&script)
        .arg(url)
        .arg(TOKEN)
        .arg(screenshot_dir())
        .output()
        .context("running node (install Node.js 18 or newer)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| {
            format!(
                "the driver printed no RESULT line ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
                out.status
            )
        })?;
    let report: Value = serde_json::from_str(line).context("parsing the driver's RESULT")?;
    if !out.status.success() {
        bail!(
            "the browser driver failed ({}): {}\nreport: {report:#}\nstderr:\n{stderr}",
            out.status,
            report["error"]
        );
    }
    Ok(report)
}

#[test]
fn dashboard_in_a_real_browser() -> anyhow::Result<()> {
    let playwright = autoscaler_testkit::repo().join("node_modules/playwright-core/package.json");
    ensure!(
        playwright.exists(),
        "{} is missing: run scripts/setup-test-env",
        playwright.display()
    );
    ensure!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/setup-test-env (Debian package chromium)"
    );

    let sandbox = Sandbox::start()?;
    sandbox.write_unit(UNIT, &format!("{}{LIMITS}", busy_unit(1)))?;
    sandbox.start_unit(UNIT)?;
    let w = World::start(
        env!("CARGO_BIN_EXE_autoscaler"),
        sandbox,
        &[UNIT],
        &["--token", TOKEN],
    )?;
    let http = w.http();
    w.put_config(CONFIG)?;

    // The page is served from the binary with the right types.
    let page = http.get("/")?;
    ensure!(
        page.status == 200 && page.text.contains("<title>autoscaler</title>"),
        "GET /: {}",
        page.status
    );
    for (path, kind) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/assets/uPlot.iife.min.js", "text/javascript"),
        ("/assets/uPlot.min.css", "text/css"),
    ] {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{content_type}",
            ])
            .arg(format!("{}{path}", w.url()))
            .output()?;
        let got = String::from_utf8_lossy(&out.stdout).to_string();
        ensure!(got.starts_with(&format!("200 {kind}")), "{path}: {got}");
    }
    let bad = http.get("/api/autoscaler/metrics/history?since=soon")?;
    ensure!(
        bad.status == 400 && bad.json["field"] == "since",
        "a bad since must be a 400 on field since: {} {}",
        bad.status,
        bad.text
    );

    // Real samples first: the charts must have something to draw.
    wait_until(Duration::from_secs(20), "5 stored samples", || {
        let v = http.get_ok("/api/autoscaler/metrics/history?since=15m")?;
        let n = v["series"]["samples"]
            .as_array()
            .map_or(0, |a| a.iter().filter_map(Value::as_u64).sum::<u64>());
        Ok((n >= 5).then_some(()))
    })?;

    let report = run_driver(w.url())?;

    let cases: &[Expect] = &[
        (
            "/console",
            "no console errors, warnings or failed requests",
            &|v| {
                v.as_array().is_some_and(|a| {
                    a.iter().all(|e| {
                        // The three refusals the driver provokes on purpose, and only those.
                        let text = e["text"].as_str().unwrap_or("");
                        let phase = e["phase"].as_str().unwrap_or("");
                        text.starts_with("Failed to load resource")
                            && ((phase == "load-needs-token" && text.contains("401"))
                                || ((phase == "out-of-range" || phase == "config")
                                    && text.contains("400")))
                    })
                })
            },
        ),
        (
            "/console_after_load",
            "nothing logged while loading",
            &|v| v == 0,
        ),
        ("/unit_shown", "the unit's name", &|v| v == UNIT),
        (
            "/forecast_text",
            "the forecast table: rows, or why there are none",
            &|v| {
                v.as_str()
                    .is_some_and(|t| t == "No forecast yet." || t.contains(" min"))
            },
        ),
        ("/points_page/cpu", "points plotted", &|v| {
            v.as_u64().is_some_and(|n| n >= 3)
        }),
        (
            "/points_matched",
            "plotted values equal to the API's",
            &|v| v.as_u64().is_some_and(|n| n >= 2),
        ),
        (
            "/points_mismatched",
            "no plotted value differing from the API's",
            &|v| v == 0,
        ),
        (
            "/cpu_canvas_blue_pixels",
            "the CPU line drawn on the canvas",
            &|v| v.as_u64().is_some_and(|n| n > 50),
        ),
        (
            "/token_focused",
            "the token field focused on the first 401",
            &|v| v == "token",
        ),
        ("/token_stored", "the token kept in sessionStorage", &|v| {
            v == true
        }),
        ("/mode_api", "mode switched through the page", &|v| {
            v == "disabled"
        }),
        ("/mode_badge", "the new mode shown", &|v| v == "disabled"),
        ("/limits_after_scale/cpu_quota", "the scale applied", &|v| {
            v == 130
        }),
        ("/limits_after_scale/memory_max", "memory scaled", &|v| {
            v == 1.5
        }),
        (
            "/mode_after_scale",
            "manual mode after a manual scale",
            &|v| v == "manual",
        ),
        ("/api_status", "the API refuses 5000%", &|v| v == 400),
        ("/field_invalid", "the field marked invalid", &|v| {
            v == "true"
        }),
        ("/field_focused", "focus moved to the bad field", &|v| {
            v == "scale-cpu_quota"
        }),
        (
            "/history_added_by_bad",
            "no history row from a refused scale",
            &|v| v == 0,
        ),
        (
            "/limits_after_bad/cpu_quota",
            "limits unchanged by a refused scale",
            &|v| v == 130,
        ),
        (
            "/config_error",
            "the config editor's error next to its field",
            &|v| {
                v.as_str()
                    .is_some_and(|s| s.contains("scale_up_cpu_percent"))
            },
        ),
        (
            "/marker_label",
            "the manual scale marked with its reason",
            &|v| v.as_str().is_some_and(|s| s.contains("manual")),
        ),
        ("/marker_tip_visible", "the reason shown on hover", &|v| {
            v == true
        }),
        (
            "/widths/390/scroll",
            "no horizontal scroll at 390 px",
            &|v| v.as_u64().is_some_and(|n| n <= 390),
        ),
        (
            "/widths/375/scroll",
            "no horizontal scroll at 375 px",
            &|v| v.as_u64().is_some_and(|n| n <= 375),
        ),
        (
            "/widths/1280/scroll",
            "no horizontal scroll at 1280 px",
            &|v| v.as_u64().is_some_and(|n| n <= 1280),
        ),
    ];
    for (pointer, what, ok) in cases {
        check(&report, pointer, what, ok);
    }
    // The page shows the API's own words next to the field.
    let api_error = report["api_error"]["error"].as_str().unwrap_or("?");
    check(&report, "/field_error", "the API's error text", |v| {
        v.as_str().is_some_and(|s| s.starts_with(api_error))
    });
    check(
        &report,
        "/api_error/field",
        "the API names the field",
        |v| v == "cpu_quota",
    );

    // systemd itself: the page's 130% and 1.5 GiB are the unit's limits, the refused
    // 5000% changed nothing.
    wait_for_eq(
        Duration::from_secs(5),
        "CPUQuotaPerSecUSec after the page's scale",
        Some(1_300_000),
        || Ok(usec(&w.sandbox.show(UNIT, "CPUQuotaPerSecUSec")?)),
    )?;
    let memory = w.sandbox.show(UNIT, "MemoryMax")?;
    ensure!(
        memory == "1610612736",
        "MemoryMax after the page's scale: {memory}"
    );
    for width in [390, 1280] {
        let shot = screenshot_dir().join(format!("dashboard-{width}.png"));
        ensure!(shot.exists(), "{} was not written", shot.display());
    }
    Ok(())
}
