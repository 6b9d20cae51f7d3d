//! What `tests/api.rs` and `tests/cli.rs` share: a sandboxed unit under a real daemon, raw
//! HTTP through curl (headers as given, nothing added), the repo's test tools, and shell
//! commands run as written.
//!
//! It must not skip: a missing tool (curl, jq, the venv's Python or schemathesis) fails the
//! test with the command that installs it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use autoscaler_testkit::{Daemon, Response, Sandbox, busy_unit, wait_until};
use serde_json::Value;

/// The spec's unit: with it, the spec's `systemctl --user ... autocoder-ui.service` lines run
/// against the sandbox unchanged.
pub const UNIT: &str = "autocoder-ui.service";

/// Config that makes manual limits possible on a small host (2 cores, 24 GiB): no CPU
/// reserve, low minimums. The interval stays long unless a test asks for a fast loop.
pub const ROOMY: &str = autoscaler_testkit::SMALL_HOST_BOUNDS;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_autoscaler"))
}

/// A tool from the repo's test environment; an error naming the setup script when absent.
pub fn tool(rel: &str) -> anyhow::Result<PathBuf> {
    autoscaler_testkit::repo_tool(rel)
}

/// A system tool on PATH (curl, jq); an error saying what to install when absent.
pub fn need(cmd: &str) -> anyhow::Result<()> {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!("`{cmd}` is not installed: run scripts/setup-test-env (or apt-get install {cmd})");
    }
    Ok(())
}

/// A sandbox with the spec's unit running one busy loop, and a daemon managing it that has
/// taken its first sample.
pub struct World {
    pub daemon: Daemon,
    pub sandbox: Sandbox,
}

impl World {
    pub fn start(extra: &[&str]) -> anyhow::Result<World> {
        need("curl")?;
        let sandbox = Sandbox::start()?;
        sandbox.write_unit(UNIT, &busy_unit(1))?;
        sandbox.start_unit(UNIT)?;
        let mut args = vec!["--unit", UNIT];
        args.extend_from_slice(extra);
        let daemon = Daemon::start(&bin(), &sandbox, &args)?;
        let w = World { daemon, sandbox };
        w.wait_for_sample()?;
        Ok(w)
    }

    pub fn url(&self) -> &str {
        &self.daemon.url
    }

    pub fn wait_for_sample(&self) -> anyhow::Result<Value> {
        let http = self.daemon.http();
        wait_until(Duration::from_secs(20), "the daemon's first sample", || {
            let r = http.get("/api/autoscaler/metrics")?;
            Ok((r.status == 200).then_some(r.json))
        })
        .with_context(|| format!("daemon log:\n{}", self.daemon.log_text()))
    }

    /// A request exactly as given: no Content-Type unless in `headers`.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&str>,
    ) -> anyhow::Result<Response> {
        raw(&self.daemon.url, method, path, headers, body)
    }

    /// PUT /config with a JSON body (with a token when one is given); must answer 200.
    pub fn put_config(&self, body: &str, token: Option<&str>) -> anyhow::Result<Value> {
        let auth = token.map(|t| format!("Authorization: Bearer {t}"));
        let mut headers = vec!["Content-Type: application/json"];
        if let Some(a) = &auth {
            headers.push(a);
        }
        let r = self.raw("PUT", "/api/autoscaler/config", &headers, Some(body))?;
        if r.status != 200 {
            bail!("PUT config {body}: HTTP {} {}", r.status, r.text);
        }
        Ok(r.json)
    }

    /// What a rejected request must leave as it was: the config, the limits and counters in
    /// the status (not its streaks, which move with every check), and the history.
    pub fn state(&self) -> anyhow::Result<Value> {
        let http = self.daemon.http();
        let s = http.get_ok("/api/autoscaler/status")?;
        Ok(autoscaler_testkit::kept_state(
            &s,
            http.get_ok("/api/autoscaler/config")?,
            http.get_ok("/api/autoscaler/history?limit=1000")?,
        ))
    }
}

pub fn raw(
    base: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> anyhow::Result<Response> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "30",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        // --data-binary with an explicit empty Content-Type would still send curl's
        // form type; `-H 'Content-Type:'` removes it, so "no Content-Type" really is none.
        if !headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("content-type"))
        {
            cmd.args(["-H", "Content-Type:"]);
        }
        cmd.args(["--data-binary", b]);
    }
    cmd.arg(format!("{base}{path}"));
    let out = cmd.output().context("running curl")?;
    if !out.status.success() {
        bail!(
            "curl {method} {path} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (text, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    Ok(Response {
        status: code
            .trim()
            .parse()
            .with_context(|| format!("no status in {stdout:?}"))?,
        json: serde_json::from_str(text).unwrap_or(Value::Null),
        text: text.to_string(),
    })
}

/// Runs a shell command line as the spec writes it, with `http://localhost:8888` pointed at
/// the daemon and the sandbox's environment (so `systemctl --user` and `~` are the sandbox's).
pub fn shell(world: &World, line: &str) -> anyhow::Result<Output> {
    let line = line.replace("http://localhost:8888", world.url());
    let mut cmd = Command::new("bash");
    cmd.args(["-o", "pipefail", "-c", &line])
        .stdin(Stdio::null());
    for (k, v) in world.sandbox.env() {
        cmd.env(k, v);
    }
    cmd.output()
        .with_context(|| format!("running bash -c {line:?}"))
}

/// GET /metrics through the real Prometheus parser: `{family: {type, samples: [...]}}`.
pub fn parse_prometheus(url: &str) -> anyhow::Result<Value> {
    let python = tool(".venv/bin/python")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/prom_parse.py");
    let out = Command::new(python)
        .arg(script)
        .arg(format!("{url}/metrics"))
        .output()
        .context("running tests/api/prom_parse.py")?;
    if !out.status.success() {
        bail!(
            "prom_parse.py failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    serde_json::from_slice(&out.stdout).context("prom_parse.py printed no JSON")
}
