//! [`Daemon`]: a real `autoscaler serve` process for end-to-end tests, talking to a
//! [`Sandbox`](crate::Sandbox)'s user manager, on an ephemeral loopback port, with its own
//! SQLite file; and [`Http`], plain HTTP calls through `curl`, the client the spec's examples
//! use.
//!
//! The daemon prints `autoscaler: listening on http://ADDR` on stderr once it serves; the
//! harness waits for that line (with a deadline), so tests never guess the port or sleep.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tempfile::TempDir;

use crate::{Sandbox, wait_exit, wait_until};

/// A running daemon. Dropping it sends SIGTERM and waits (then SIGKILL).
pub struct Daemon {
    child: Option<Child>,
    pub url: String,
    pub db: PathBuf,
    pub log: PathBuf,
    dir: TempDir,
    bin: PathBuf,
    /// A command the daemon runs under (e.g. `unshare --user --map-root-user --`), if any.
    wrapper: Vec<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// Environment for the next start only (e.g. a crash point).
    once: Vec<(String, String)>,
}

impl Daemon {
    /// Starts `bin serve --listen 127.0.0.1:0 --db <temp> ARGS` with the sandbox's environment.
    pub fn start(bin: &Path, sandbox: &Sandbox, args: &[&str]) -> anyhow::Result<Daemon> {
        Daemon::start_with_env(bin, sandbox, args, &[])
    }

    /// Like [`Daemon::start`], with `env` set last: a benchmark passes `AUTOSCALER_LOG=info`
    /// here, since the tests' debug logging would be part of what it measures.
    pub fn start_with_env(
        bin: &Path,
        sandbox: &Sandbox,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Daemon> {
        Daemon::start_wrapped(&[], bin, sandbox, args, env)
    }

    /// Like [`Daemon::start_with_env`], run as `WRAPPER... setpriv --pdeathsig TERM -- BIN
    /// serve ...`: a wrapper that `exec`s the daemon (so the child's pid is the daemon's),
    /// such as `unshare`.
    pub fn start_wrapped(
        wrapper: &[&str],
        bin: &Path,
        sandbox: &Sandbox,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Daemon> {
        let dir = tempfile::tempdir().context("creating the daemon's temp dir")?;
        let mut env_all = sandbox.env();
        env_all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut d = Daemon {
            child: None,
            url: String::new(),
            db: dir.path().join("autoscaler.db"),
            log: dir.path().join("daemon.log"),
            dir,
            bin: bin.to_path_buf(),
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
            env: env_all,
            args: args.iter().map(|s| s.to_string()).collect(),
            once: Vec::new(),
        };
        d.spawn()?;
        Ok(d)
    }

    /// Stops the daemon (SIGTERM, as systemd would) and starts it again on the same store.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.spawn()
    }

    /// Stops the daemon and starts it again on the same store, built to die at the crash point
    /// `point` (see `autoscaler_systemd::crash`); for this start only.
    pub fn restart_to_crash_at(&mut self, point: &str) -> anyhow::Result<()> {
        self.stop()?;
        self.once = vec![("AUTOSCALER_CRASH_AT".into(), point.into())];
        self.spawn()
    }

    /// Waits for a daemon started to crash to die by itself, and checks that it died at its
    /// crash point, not of something else. The next [`Daemon::start_again`] starts it afresh.
    pub fn wait_for_crash(&mut self, point: &str) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("the daemon is not running");
        };
        let status = wait_exit(&mut child, Duration::from_secs(30), "the daemon to crash")
            .map_err(|e| anyhow::anyhow!("{e:#}; log:\n{}", self.log_text()))?;
        let said = format!("crashing at {point},");
        if status.success() || !self.log_text().contains(&said) {
            bail!(
                "the daemon ended with {status}, not at the crash point {point}; log:\n{}",
                self.log_text()
            );
        }
        Ok(())
    }

    /// Starts a daemon that is not running (it crashed) again on the same store.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("the daemon is still running");
        }
        self.spawn()
    }

    /// Sends SIGTERM and waits for a clean exit; errors if it does not exit by itself.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = wait_exit(
            &mut child,
            Duration::from_secs(15),
            "the daemon to exit after SIGTERM",
        )?;
        if !status.success() {
            bail!(
                "the daemon exited with {status} after SIGTERM; log:\n{}",
                self.log_text()
            );
        }
        Ok(())
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let start_len = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0) as usize;
        // `setpriv` (util-linux) sets the parent-death signal and execs the daemon: a bench
        // or test killed before its `Drop` runs takes its daemon with it.
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg("setpriv");
                c
            }
            None => Command::new("setpriv"),
        };
        cmd.args(["--pdeathsig", "TERM", "--"])
            .arg(&self.bin)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(&self.db)
            .args(&self.args)
            .env("AUTOSCALER_LOG", "info,autoscaler=debug")
            .env_remove("AUTOSCALER_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in self.env.iter().chain(&self.once) {
            cmd.env(k, v);
        }
        self.once.clear();
        let child = spawn_tied(cmd).with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        let log_path = self.log.clone();
        let url = wait_until(Duration::from_secs(20), "the daemon to listen", || {
            let text = fs::read_to_string(&log_path).unwrap_or_default();
            Ok(text.get(start_len..).unwrap_or("").lines().find_map(|l| {
                l.strip_prefix("autoscaler: listening on ")
                    .map(str::to_string)
            }))
        });
        match url {
            Ok(u) => {
                self.url = u;
                Ok(())
            }
            Err(e) => bail!("{e:#}; daemon log:\n{}", self.log_text()),
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the daemon's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// curl against the daemon, with its `--token` when it was started with one: the token
    /// guards reads too.
    pub fn http(&self) -> Http {
        Http {
            base: self.url.clone(),
            token: self
                .args
                .windows(2)
                .find(|w| w[0] == "--token")
                .map(|w| w[1].clone()),
        }
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and returns at once; [`Daemon::wait_exit`] waits for the exit.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let pid = self.pid().context("the daemon is not running")?;
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM {pid}: {status}");
        Ok(())
    }

    /// Waits (at most `limit`) for the daemon to exit and returns whether it exited cleanly.
    pub fn wait_exit(&mut self, limit: Duration) -> anyhow::Result<bool> {
        let Some(child) = self.child.as_mut() else {
            bail!("the daemon is not running");
        };
        let status = wait_until(limit, "the daemon to exit", || Ok(child.try_wait()?))?;
        self.child = None;
        Ok(status.success())
    }
}

/// Spawns `cmd` from one thread that lives as long as the process. The parent-death signal
/// fires when the thread that spawned a child ends, not the process, and tests restart their
/// daemon from helper threads that end long before the daemon should.
fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the testkit's spawner thread");
        tx
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .send((cmd, reply))
        .map_err(|_| std::io::Error::other("the testkit's spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the testkit's spawner thread is gone"))?
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for _ in 0..50 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An HTTP response: status and parsed JSON body (`Value::Null` when the body is empty or not
/// JSON; `text` keeps it as sent).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub json: Value,
    pub text: String,
}

/// HTTP calls through `curl` against one base URL.
#[derive(Debug, Clone)]
pub struct Http {
    pub base: String,
    pub token: Option<String>,
}

impl Http {
    pub fn get(&self, path: &str) -> anyhow::Result<Response> {
        self.call("GET", path, None)
    }

    /// GET that must answer 200 with JSON.
    pub fn get_ok(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.get(path)?;
        if r.status != 200 {
            bail!("GET {path}: HTTP {} {}", r.status, r.text);
        }
        Ok(r.json)
    }

    pub fn post(&self, path: &str, body: &str) -> anyhow::Result<Response> {
        self.call("POST", path, Some(body))
    }

    pub fn put(&self, path: &str, body: &str) -> anyhow::Result<Response> {
        self.call("PUT", path, Some(body))
    }

    /// Any method, with an optional JSON body sent as `application/json`.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<Response> {
        let mut headers = Vec::new();
        if body.is_some() {
            headers.push("Content-Type: application/json".to_string());
        }
        if let Some(t) = &self.token {
            headers.push(format!("Authorization: Bearer {t}"));
        }
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        self.raw(method, path, &headers, body)
    }

    /// A request exactly as given: these headers and no others (no Content-Type, no token
    /// unless in `headers`).
    pub fn raw(
        &self,
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
            // `--data-binary` alone sends curl's form type; `-H 'Content-Type:'` removes it,
            // so "no Content-Type" really is none.
            if !headers
                .iter()
                .any(|h| h.to_ascii_lowercase().starts_with("content-type"))
            {
                cmd.args(["-H", "Content-Type:"]);
            }
            cmd.args(["--data-binary", b]);
        }
        cmd.arg(format!("{}{path}", self.base));
        let out = cmd.output().context("running curl")?;
        if !out.status.success() {
            bail!(
                "curl {method} {path} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let (text, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
        let status: u16 = code
            .trim()
            .parse()
            .with_context(|| format!("curl printed no status: {stdout:?}"))?;
        let json = serde_json::from_str(text).unwrap_or(Value::Null);
        Ok(Response {
            status,
            json,
            text: text.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn sleeper() -> Command {
        let mut c = Command::new("setpriv");
        c.args(["--pdeathsig", "TERM", "--", "sleep", "60"]);
        c
    }

    /// The parent-death signal follows the spawning thread: spawned from a helper thread that
    /// ends, a child dies with it (the control), unless the testkit's spawner spawned it.
    #[test]
    fn a_tied_child_outlives_the_thread_that_asked_for_it() {
        let spawned = |tied: bool| {
            std::thread::spawn(move || {
                let child = if tied {
                    spawn_tied(sleeper())
                } else {
                    sleeper().spawn()
                }
                .expect("spawning sleep");
                // The thread lives on until `setpriv` has set the signal and run `sleep`, as
                // a test's thread waits for its daemon to listen.
                let comm = format!("/proc/{}/comm", child.id());
                wait_until(Duration::from_secs(10), "setpriv to run sleep", || {
                    let name = fs::read_to_string(&comm).unwrap_or_default();
                    Ok((name.trim() == "sleep").then_some(()))
                })
                .expect("sleep");
                child
            })
            .join()
            .expect("the helper thread")
        };
        let mut control = spawned(false);
        let mut tied = spawned(true);
        let status = wait_exit(&mut control, Duration::from_secs(10), "the control to die")
            .expect("the control dies with its thread");
        assert_eq!(status.signal(), Some(15), "{status}");
        let alive = tied.try_wait().expect("try_wait").is_none();
        let _ = tied.kill();
        let _ = tied.wait();
        assert!(
            alive,
            "the tied child died with the thread that asked for it"
        );
    }
}
