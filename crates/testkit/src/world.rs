//! [`World`]: the one end-to-end rig every test file of the daemon uses: a [`Sandbox`], a
//! real [`Daemon`] managing given units on it, the daemon's [`Http`] client, and the helpers
//! every file needed (put a config and insist on 200, read status, config and history, wait
//! with the daemon's log in the error, what a rejected request must leave as it was).
//!
//! It knows nothing of a test's units: the caller writes and starts them on the sandbox
//! first, then hands the sandbox over. Methods without a unit address the daemon's default
//! (first) unit through the spec's paths (`/api/autoscaler/config`); the `unit_` ones use the
//! per-unit paths (`/api/autoscaler/units/{unit}/config`).

use std::fmt::Display;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use autoscaler_core::UnitName;
use autoscaler_store::Store;
use serde_json::Value;

use crate::{Daemon, Http, Sandbox, wait_until};

/// How many of the daemon's last log lines an error shows.
const LOG_LINES: usize = 40;

/// A daemon on a sandbox. Fields drop in order: the daemon gets SIGTERM and exits before its
/// manager goes away (a daemon whose bus vanished under it logs errors, not a clean stop).
pub struct World {
    pub daemon: Daemon,
    pub sandbox: Sandbox,
    /// The managed units, the default (first) one first.
    units: Vec<String>,
}

/// `/api/autoscaler/units/{unit}{tail}`: a unit's own path.
pub fn unit_path(unit: &str, tail: &str) -> String {
    format!("/api/autoscaler/units/{unit}{tail}")
}

impl World {
    /// Starts `bin serve` on `sandbox` with `--unit U` for each of `units` (written, and
    /// started or not, by the caller) and then `extra`.
    pub fn start(
        bin: impl AsRef<Path>,
        sandbox: Sandbox,
        units: &[&str],
        extra: &[&str],
    ) -> anyhow::Result<World> {
        let mut args: Vec<&str> = units.iter().flat_map(|u| ["--unit", *u]).collect();
        args.extend_from_slice(extra);
        let daemon = Daemon::start(bin.as_ref(), &sandbox, &args)?;
        Ok(World {
            daemon,
            sandbox,
            units: units.iter().map(|u| u.to_string()).collect(),
        })
    }

    /// A sandbox running `unit` with one busy loop, and a daemon managing it (with `extra`
    /// flags) that has taken its first sample.
    pub fn with_busy_unit(
        bin: impl AsRef<Path>,
        unit: &str,
        extra: &[&str],
    ) -> anyhow::Result<World> {
        crate::need_command("curl")?;
        let sandbox = Sandbox::start()?;
        sandbox.write_unit(unit, &crate::busy_unit(1))?;
        sandbox.start_unit(unit)?;
        let w = World::start(bin, sandbox, &[unit], extra)?;
        w.wait_for_sample()?;
        Ok(w)
    }

    /// curl against the daemon as it runs now (a restart moves it to another port), with its
    /// token when it has one.
    pub fn http(&self) -> Http {
        self.daemon.http()
    }

    pub fn url(&self) -> &str {
        &self.daemon.url
    }

    /// The managed units, the default one first.
    pub fn units(&self) -> &[String] {
        &self.units
    }

    /// The last lines of the daemon's log, for error messages.
    pub fn log_tail(&self) -> String {
        self.daemon.log_tail(LOG_LINES)
    }

    /// Polls `f` (see [`wait_until`]) for at most `secs` seconds; the error shows the daemon's
    /// log.
    pub fn wait<T>(
        &self,
        secs: u64,
        what: &str,
        f: impl FnMut() -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        wait_until(Duration::from_secs(secs), what, f)
            .with_context(|| format!("daemon log:\n{}", self.log_tail()))
    }

    /// `PUT /api/autoscaler/config` (the default unit's) that must answer 200; returns the
    /// config in force. `config` is JSON text or a `serde_json::Value`.
    pub fn put_config(&self, config: impl Display) -> anyhow::Result<Value> {
        self.put_at("/api/autoscaler/config", config)
    }

    /// `PUT /api/autoscaler/units/{unit}/config` that must answer 200.
    pub fn put_unit_config(&self, unit: &str, config: impl Display) -> anyhow::Result<Value> {
        self.put_at(&unit_path(unit, "/config"), config)
    }

    fn put_at(&self, path: &str, config: impl Display) -> anyhow::Result<Value> {
        let body = config.to_string();
        let r = self.http().put(path, &body)?;
        ensure!(
            r.status == 200,
            "PUT {path} {body} answered {}: {}",
            r.status,
            r.text
        );
        Ok(r.json)
    }

    /// `GET /api/autoscaler/status` of the default unit.
    pub fn status(&self) -> anyhow::Result<Value> {
        self.http().get_ok("/api/autoscaler/status")
    }

    /// `GET /api/autoscaler/config` of the default unit.
    pub fn config(&self) -> anyhow::Result<Value> {
        self.http().get_ok("/api/autoscaler/config")
    }

    /// The default unit's history rows (at most 100), newest first.
    pub fn history(&self) -> anyhow::Result<Vec<Value>> {
        rows(&self.http(), "/api/autoscaler/history?limit=100")
    }

    /// One unit's history rows (at most 100) through its own path, newest first.
    pub fn unit_history(&self, unit: &str) -> anyhow::Result<Vec<Value>> {
        rows(&self.http(), &unit_path(unit, "/history?limit=100"))
    }

    /// Waits for the default unit's first sample (`GET /metrics` answers 200) and returns it.
    pub fn wait_for_sample(&self) -> anyhow::Result<Value> {
        let http = self.http();
        self.wait(20, "the daemon's first sample", || {
            let r = http.get("/api/autoscaler/metrics")?;
            Ok((r.status == 200).then_some(r.json))
        })
    }

    /// Waits until the daemon's status of `unit` shows the CPU quota `percent`: it has read the
    /// unit's limits from systemd.
    pub fn wait_for_cpu_quota(&self, unit: &str, percent: u32) -> anyhow::Result<()> {
        let http = self.http();
        self.wait(15, &format!("the daemon to read {unit}'s limits"), || {
            let s = http.get_ok(&unit_path(unit, "/status"))?;
            Ok((s["current_limits"]["cpu_quota"] == percent).then_some(()))
        })
    }

    /// Waits until the daemon has checked `unit` `n` more times (a new metrics timestamp
    /// each), and returns the last metrics.
    pub fn wait_checks(&self, unit: &str, n: usize) -> anyhow::Result<Value> {
        let http = self.http();
        let mut seen: Vec<String> = Vec::new();
        let mut last = Value::Null;
        self.wait(
            10 + 3 * n as u64,
            &format!("{n} new checks of {unit}"),
            || {
                let m = http.get(&unit_path(unit, "/metrics"))?;
                if m.status != 200 {
                    return Ok(None);
                }
                let ts = m.json["timestamp"].as_str().unwrap_or_default().to_string();
                if seen.last() != Some(&ts) {
                    seen.push(ts);
                }
                last = m.json;
                // The first timestamp seen is a check from before the call.
                Ok((seen.len() > n).then_some(()))
            },
        )?;
        Ok(last)
    }

    /// What a rejected request must leave as it was (see [`crate::kept_state`]), for the
    /// default unit, with its whole history.
    pub fn state(&self) -> anyhow::Result<Value> {
        let http = self.http();
        let s = http.get_ok("/api/autoscaler/status")?;
        Ok(crate::kept_state(
            &s,
            http.get_ok("/api/autoscaler/config")?,
            http.get_ok("/api/autoscaler/history?limit=1000")?,
        ))
    }

    /// The daemon's store of the default unit, opened beside it (SQLite allows it), for
    /// timestamps in ms and the rows the API does not list.
    pub fn store(&self) -> anyhow::Result<Store> {
        let unit = self.units.first().context("the daemon manages no unit")?;
        Store::open(&self.daemon.db, &UnitName::parse(unit)?)
    }

    /// Runs a shell command line as the spec writes it, with `http://localhost:8888` pointed
    /// at the daemon and the sandbox's environment (so `systemctl --user` and `~` are the
    /// sandbox's).
    pub fn shell(&self, line: &str) -> anyhow::Result<Output> {
        let line = line.replace("http://localhost:8888", self.url());
        Command::new("bash")
            .args(["-o", "pipefail", "-c", &line])
            .stdin(Stdio::null())
            .envs(self.sandbox.env())
            .output()
            .with_context(|| format!("running bash -c {line:?}"))
    }
}

fn rows(http: &Http, path: &str) -> anyhow::Result<Vec<Value>> {
    match http.get_ok(path)? {
        Value::Array(rows) => Ok(rows),
        other => bail!("GET {path} is not an array: {other}"),
    }
}
