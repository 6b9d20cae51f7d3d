//! Fleets through Prometheus (issue 15): the shipped alerting rules pass `promtool check` and
//! their unit tests, the Grafana dashboard's queries parse and name only metrics the daemon
//! exports, and a real Prometheus server (Debian's, on loopback) scrapes a real daemon on a
//! sandboxed manager, returns the managed unit's series, and fires an alert on a real failure.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use autoscaler_testkit::{Http, Sandbox, World, free_port, repo, wait_until};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_autoscaler");

fn contrib(rel: &str) -> PathBuf {
    repo().join("contrib").join(rel)
}

fn promtool(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .context("running promtool (scripts/setup-test-env installs Debian's prometheus)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "promtool {args:?} failed:\n{text}");
    Ok(text)
}

#[test]
fn promtool_checks_and_unit_tests_the_alert_rules() -> anyhow::Result<()> {
    let rules = contrib("prometheus/alerts.yml");
    let out = promtool(&["check", "rules", &rules.display().to_string()])?;
    assert!(out.contains("SUCCESS: 7 rules found"), "{out}");
    let tests = contrib("prometheus/alerts_test.yml");
    let out = promtool(&["test", "rules", &tests.display().to_string()])?;
    assert!(out.contains("SUCCESS"), "{out}");
    let scrape = contrib("prometheus/scrape.yml");
    promtool(&["check", "config", &scrape.display().to_string()])?;
    Ok(())
}

/// Metric names the daemon declares on `/metrics` (`# TYPE` lines; counters also as `_total`,
/// the name their samples carry).
fn exported(metrics: &str) -> Vec<String> {
    let mut names = Vec::new();
    for l in metrics.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                names.push(name.to_string());
                if kind == "counter" {
                    names.push(format!("{name}_total"));
                }
            }
        }
    }
    names
}

/// Every `autoscaler_*` name in a PromQL expression.
fn names_in(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("autoscaler_"))
        .map(str::to_string)
        .collect()
}

/// The dashboard's queries: panel targets, and the selectors inside `label_values(...)`.
fn dashboard_queries(dash: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push(e.to_string());
            }
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["definition"].as_str()
            && let Some(inner) = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
        {
            out.push(inner.0.to_string());
        }
    }
    out
}

/// A real daemon's `/metrics`, managing one running unit with limits after one manual scale:
/// families without samples are not declared, so every one gets a sample.
fn live_metrics() -> anyhow::Result<String> {
    let sb = Sandbox::start()?;
    let unit = format!(
        "{}CPUQuota=50%\nMemoryMax=1G\nTasksMax=100\n",
        autoscaler_testkit::busy_unit(1)
    );
    sb.write_unit("busy.service", &unit)?;
    sb.start_unit("busy.service")?;
    let w = World::start(BIN, sb, &["busy.service"], &[])?;
    let http = w.http();
    let mut config: Value = serde_json::from_str(autoscaler_testkit::SMALL_HOST_BOUNDS)?;
    config["mode"] = json!("manual");
    w.put_config(&config)?;
    w.wait_for_sample()?;
    let r = http.post("/api/autoscaler/scale", r#"{"cpu_quota": 60}"#)?;
    ensure!(r.status == 200, "scale: {}", r.text);
    Ok(http.get("/metrics")?.text)
}

#[test]
fn the_dashboard_and_rules_parse_and_name_only_exported_metrics() -> anyhow::Result<()> {
    let path = contrib("grafana/autoscaler-fleet.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    let queries = dashboard_queries(&dash);
    assert!(queries.len() >= 15, "{queries:?}");

    // Each query parses: promtool checks them as recording rules.
    let dir = tempfile::tempdir()?;
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| json!({ "record": format!("dashboard:query_{i}"), "expr": q }))
        .collect();
    let file = dir.path().join("dashboard_rules.json");
    // JSON is YAML: promtool reads it as a rules file.
    std::fs::write(
        &file,
        json!({ "groups": [{ "name": "dashboard", "rules": rules }] }).to_string(),
    )?;
    let out = promtool(&["check", "rules", &file.display().to_string()])?;
    assert!(out.contains("SUCCESS"), "{out}");

    // Each metric they name is one the daemon exports, and so is each the alerts name.
    let metrics = live_metrics()?;
    let names = exported(&metrics);
    assert!(
        names.iter().any(|n| n == "autoscaler_oom_kills_total"),
        "{names:?}"
    );
    let alerts = std::fs::read_to_string(contrib("prometheus/alerts.yml"))?;
    let mut used = names_in(&alerts);
    for q in &queries {
        used.extend(names_in(q));
    }
    used.sort();
    used.dedup();
    for name in &used {
        assert!(
            names.contains(name),
            "{name} is not exported; /metrics:\n{metrics}"
        );
    }
    assert!(used.len() >= 15, "{used:?}");
    Ok(())
}

/// A Prometheus server, stopped (by its pid) on drop.
struct Prometheus {
    child: Child,
    http: Http,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> anyhow::Result<Prometheus> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let config = dir.path().join("prometheus.yml");
        let rules = contrib("prometheus/alerts.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules:?}\n\
                 scrape_configs:\n  - job_name: autoscaler\n    static_configs:\n      - targets: [{target:?}]\n",
                rules = rules.display().to_string()
            ),
        )?;
        let log = dir.path().join("prometheus.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting prometheus (scripts/setup-test-env installs Debian's)")?;
        let p = Prometheus {
            child,
            http: Http {
                base: format!("http://127.0.0.1:{port}"),
                token: None,
            },
            log,
            _dir: dir,
        };
        wait_until(Duration::from_secs(30), "prometheus to be ready", || {
            Ok((p.http.get("/-/ready")?.status == 200).then_some(()))
        })
        .with_context(|| p.log_text())?;
        Ok(p)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant query's result vector.
    fn query(&self, promql: &str) -> anyhow::Result<Vec<Value>> {
        let v = self
            .http
            .get_ok(&format!("/api/v1/query?query={}", encode(promql)))?;
        ensure!(v["status"] == "success", "{promql}: {v}");
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// Alerts as the server's rule evaluation has them: (name, state, labels).
    fn alerts(&self) -> anyhow::Result<Vec<Value>> {
        let v = self.http.get_ok("/api/v1/alerts")?;
        Ok(v["data"]["alerts"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A query string's value, percent-encoded.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_real_prometheus_scrapes_the_daemon_and_alerts_on_a_failed_change() -> anyhow::Result<()> {
    let sb = Sandbox::start()?;
    let unit = "flaky.service";
    let token = sb.home().join("fail-next-start");
    // Its next start fails while the token file exists: the restart strategy's apply fails.
    sb.write_unit(
        unit,
        &format!(
            "[Unit]\nDescription=autoscaler test: fails its next start when {token} exists\n\
             StartLimitIntervalSec=0\n\n[Service]\n\
             ExecStartPre=/bin/sh -c 'if [ -e {token} ]; then rm -f {token}; exit 1; fi'\n\
             ExecStart=/bin/sleep infinity\nCPUQuota=50%\nMemoryMax=1G\nTasksMax=100\n",
            token = token.display()
        ),
    )?;
    sb.start_unit(unit)?;
    let w = World::start(BIN, sb, &[unit], &["--strategy", "restart"])?;
    let http = w.http();
    let mut config: Value = serde_json::from_str(autoscaler_testkit::SMALL_HOST_BOUNDS)?;
    config["mode"] = json!("manual");
    config["check_interval_seconds"] = json!(1);
    w.put_config(&config)?;

    let target = w.url().trim_start_matches("http://").to_string();
    let prom = Prometheus::start(&target)?;
    let series = wait_until(
        Duration::from_secs(30),
        "the unit's CPUQuota series in Prometheus",
        || {
            let r = prom.query(&format!(
                "autoscaler_limit_cpu_quota_percent{{job=\"autoscaler\", unit=\"{unit}\"}}"
            ))?;
            Ok((!r.is_empty()).then_some(r))
        },
    )
    .with_context(|| prom.log_text())?;
    assert_eq!(series[0]["value"][1], "50", "{series:?}");
    assert_eq!(series[0]["metric"]["instance"], target.as_str());
    let up = prom.query("up{job=\"autoscaler\"}")?;
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    let firing = |name: &str| -> anyhow::Result<Option<Value>> {
        Ok(prom
            .alerts()?
            .into_iter()
            .find(|a| a["labels"]["alertname"] == name && a["state"] == "firing"))
    };
    assert_eq!(firing("AutoscalerUnitDisabledAfterFailure")?, None);

    // The failure: a restart that does not come up, rolled back by the daemon.
    std::fs::write(&token, b"")?;
    let r = http.post(
        "/api/autoscaler/scale",
        r#"{"cpu_quota": 80, "reason": "prometheus test: a restart that fails"}"#,
    )?;
    assert_eq!(r.status, 502, "{}", r.text);
    let alert = wait_until(
        Duration::from_secs(30),
        "AutoscalerUnitDisabledAfterFailure to fire",
        || firing("AutoscalerUnitDisabledAfterFailure"),
    )
    .with_context(|| prom.log_text())?;
    assert_eq!(alert["labels"]["unit"], unit, "{alert}");
    assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    // It was rolled back, so that alert stays quiet.
    assert_eq!(firing("AutoscalerRollbackFailed")?, None);

    // Setting the mode acknowledges the failure; the alert resolves.
    let r = http.post("/api/autoscaler/mode", r#"{"mode": "manual"}"#)?;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until(Duration::from_secs(30), "the alert to resolve", || {
        Ok(firing("AutoscalerUnitDisabledAfterFailure")?
            .is_none()
            .then_some(()))
    })?;
    Ok(())
}
