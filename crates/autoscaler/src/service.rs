//! The daemon as a systemd service: READY once it serves, watchdog pings driven by the
//! control loop, SIGHUP re-reading the config file, logs to the journal when systemd
//! connected stderr to it.
//!
//! Outside systemd every part is inert (`sd_notify` does nothing without `NOTIFY_SOCKET`,
//! the watchdog without `WATCHDOG_USEC`), so `autoscaler serve` in a terminal behaves the
//! same. This module decides nothing about units: a reload goes through the engine's
//! `set_config`, the same call and the same validation as `PUT /api/autoscaler/config`.

use std::future::Future;

use anyhow::Context;
use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::engine::EngineHandle;
use crate::settings::{Overrides, Settings};

/// Logs go to the journal, with the event's fields as journal fields, when systemd connected
/// stderr to it; to stderr as text otherwise.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("AUTOSCALER_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let journal = journal_connected()
        .then(tracing_journald::layer)
        .map(|r| r.map_err(|e| format!("the journal cannot be reached ({e}); logging to stderr")));
    match journal {
        Some(Ok(layer)) => {
            let _ = tracing_subscriber::registry()
                .with(filter())
                // `AUTOSCALER_UNIT=...`, not `UNIT=`: systemd's own field for the unit a
                // message is about, which `journalctl -u` matches.
                .with(
                    layer
                        .with_syslog_identifier("autoscaler".into())
                        .with_field_prefix(Some("AUTOSCALER".into())),
                )
                .try_init();
        }
        other => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter())
                .with_writer(std::io::stderr)
                .try_init();
            if let Some(Err(e)) = other {
                tracing::warn!("{e}");
            }
        }
    }
}

/// `JOURNAL_STREAM` names the device and inode of the stream systemd connected; it counts only
/// when stderr is still that stream (a child that inherited the variable may write elsewhere).
fn journal_connected() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(want) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2")
        .is_ok_and(|m| stream_matches(&want.to_string_lossy(), m.dev(), m.ino()))
}

fn stream_matches(journal_stream: &str, dev: u64, ino: u64) -> bool {
    journal_stream.split_once(':').is_some_and(|(d, i)| {
        d.parse::<u64>().is_ok_and(|d| d == dev) && i.parse::<u64>().is_ok_and(|i| i == ino)
    })
}

/// Tells systemd the daemon is ready: the store is open, the engine runs, the API listens.
pub fn ready(status: &str) {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]) {
        tracing::warn!("telling systemd the daemon is ready failed: {e}");
    }
}

/// Tells systemd the daemon is stopping on purpose (SIGTERM), before it drains.
pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// Pings systemd's watchdog each time the control loop goes round (at most four times per
/// watchdog period). The pings come from the loop's own progress, not from a timer, so a loop
/// that hangs, in a check or because the process is stopped, is restarted by systemd.
pub fn watchdog(mut rounds: watch::Receiver<u64>, stop: impl Future<Output = ()> + Send + 'static) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    tracing::info!("systemd watchdog on: the control loop must go round every {period:?}");
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                changed = rounds.changed() => if changed.is_err() { break },
            }
            if let Err(e) = sd_notify::notify(&[NotifyState::Watchdog]) {
                tracing::warn!("pinging the systemd watchdog failed: {e}");
            }
            // Changes made meanwhile are still seen after the pause.
            tokio::time::sleep(period / 4).await;
        }
    });
}

/// Puts the config file's `[config]` table in force on every managed unit, as one
/// `PUT /api/autoscaler/config` each: same parsing, same validation, nothing changed on a
/// unit that refuses it.
pub async fn apply_file_config(engine: &EngineHandle, table: &toml::Table) -> anyhow::Result<()> {
    if table.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_value(table).context("reading the [config] table")?;
    let map = json.as_object().cloned().unwrap_or_default();
    let changes = crate::changes::config_changes(&map)
        .map_err(|e| anyhow::anyhow!("[config] in the config file: {e}"))?;
    for u in engine.snapshot().units.iter() {
        engine
            .set_config(u.name.clone(), changes.clone())
            .await
            .with_context(|| format!("[config] in the config file, for unit {}", u.name))?;
    }
    Ok(())
}

/// Waits for SIGTERM or SIGINT (returns) and handles SIGHUP (re-reads the config file) meanwhile.
pub async fn signals(engine: EngineHandle, overrides: Overrides, mut running: Settings) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::warn!("cannot install signal handlers; stopping on Ctrl-C only");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                if let Some(new) = reload(&engine, &overrides, &running).await {
                    running = new;
                }
            }
        }
    }
}

/// One reload: the file is read and checked whole; a bad file changes nothing and the daemon
/// runs on. Keys that only a restart can change (listen, db, units, ...) are reported.
async fn reload(
    engine: &EngineHandle,
    overrides: &Overrides,
    running: &Settings,
) -> Option<Settings> {
    let mut states = vec![NotifyState::Reloading];
    states.extend(NotifyState::monotonic_usec_now().ok());
    let _ = sd_notify::notify(&states);
    let result = match Settings::resolve(overrides.clone()) {
        Err(e) => Err(e),
        Ok(new) => apply_file_config(engine, &new.config).await.map(|()| new),
    };
    let status = match &result {
        Ok(new) => {
            let restart = needs_restart(running, new);
            if restart.is_empty() {
                tracing::info!("reloaded the config file");
            } else {
                tracing::warn!(
                    "reloaded the config file; {} changed and take effect at the next restart",
                    restart.join(", ")
                );
            }
            "serving; config reloaded".to_string()
        }
        Err(e) => {
            tracing::error!("reload refused, nothing changed: {e:#}");
            format!("serving; last reload refused: {e:#}")
        }
    };
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    result.ok()
}

/// Settings the running daemon cannot change in place.
fn needs_restart(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut differs = |name, a: String, b: String| {
        if a != b {
            out.push(name);
        }
    };
    differs("listen", old.listen.to_string(), new.listen.to_string());
    differs("db", format!("{:?}", old.db), format!("{:?}", new.db));
    differs(
        "units",
        format!("{:?}", old.units),
        format!("{:?}", new.units),
    );
    differs(
        "strategy",
        format!("{:?}", old.strategy),
        format!("{:?}", new.strategy),
    );
    differs(
        "token",
        format!("{:?}", old.token),
        format!("{:?}", new.token),
    );
    differs(
        "cors_origins",
        format!("{:?}", old.cors_origins),
        format!("{:?}", new.cors_origins),
    );
    differs(
        "signals",
        format!("{:?}", old.signals),
        format!("{:?}", new.signals),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::stream_matches;

    #[test]
    fn journal_stream_matches_only_the_same_stream() {
        let cases = [
            ("8:12345", 8, 12345, true),
            ("8:12345", 8, 12346, false),
            ("9:12345", 8, 12345, false),
            ("", 8, 12345, false),
            ("8", 8, 12345, false),
            ("x:y", 8, 12345, false),
        ];
        for (env, dev, ino, want) in cases {
            assert_eq!(stream_matches(env, dev, ino), want, "{env} vs {dev}:{ino}");
        }
    }
}
