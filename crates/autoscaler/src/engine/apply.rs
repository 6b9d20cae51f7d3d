//! Changing a unit: its config (validated whole, stored, then put in force), a manual scale,
//! and applying limits with every brake (bounds, the rate limit, a timeout) and its record
//! (the history row, the counts, and on failure the `disabled` mode and the unit's failure).

use std::time::Duration;

use autoscaler_core::{
    Action, Bounds, Config, Limits, ManualScale, Millis, Mode, Status, TriggerType, UnitName,
};
use autoscaler_store::{HistoryRow, NewHistory};

use super::run::Engine;
use super::state::{Failure, UnitSnapshot};
use super::writer::Write;
use super::{
    APPLY_TIMEOUT, Actuator, ApplyError, ApplyErrorKind, EngineError, INSPECT_TIMEOUT, Probe,
    Rollback,
};

/// One change to a unit's limits, as decided (automatically or by a manual scale).
pub(super) struct Change {
    pub action: Action,
    pub trigger: TriggerType,
    pub reason: String,
    /// The limits systemd reported before the change.
    pub old: Limits,
    pub new: Limits,
    pub at: Millis,
    /// Whether the unit was running: a change undone after a crash starts it again.
    pub was_running: bool,
}

/// How long a change's journal entry or a config may take to be stored before the change is
/// refused. A busy database holds a write up to `BUSY_TIMEOUT`; a change waits a little less.
const STORE_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a change's history row is waited for, so that a client reading the history right
/// after the answer finds it; a row not stored by then stays queued and is stored later.
const HISTORY_WAIT: Duration = Duration::from_secs(2);

impl<P: Probe, A: Actuator> Engine<P, A> {
    /// Writes a change's journal entry, or refuses the change.
    async fn journal(
        &mut self,
        id: i64,
        planned: &NewHistory,
        was_running: bool,
    ) -> Result<(), EngineError> {
        let write = Write::BeginChange {
            id,
            planned: planned.clone(),
            was_running,
        };
        match self.writer.now(write, STORE_TIMEOUT).await {
            Ok(()) => {
                autoscaler_systemd::crash::point("journalled");
                Ok(())
            }
            Err(reason) => {
                tracing::error!(
                    unit = %planned.unit,
                    "{} refused, not journalled: {reason}",
                    planned.action
                );
                Err(EngineError::StoreUnavailable { reason })
            }
        }
    }

    pub(super) async fn set_mode(
        &mut self,
        unit: &UnitName,
        mode: Mode,
    ) -> Result<UnitSnapshot, EngineError> {
        let i = self.index(unit)?;
        self.update_config(i, |c| Ok(c.with_mode(mode))).await?;
        // Setting the mode is how someone acknowledges a failure.
        self.units[i].last_failure = None;
        Ok(self.units[i].snapshot(&self.host))
    }

    /// Validates a new config whole (fields, relations, bounds on this host), stores it, and
    /// only then puts it in force; the loop uses it from its next check.
    pub(super) async fn update_config(
        &mut self,
        i: usize,
        change: impl FnOnce(&Config) -> Result<Config, EngineError>,
    ) -> Result<Config, EngineError> {
        let new = change(&self.units[i].config)?;
        new.validate()?;
        Bounds::new(&new, &self.host)?;
        let write = Write::Config {
            unit: self.units[i].name.clone(),
            config: new.clone(),
        };
        self.writer
            .now(write, STORE_TIMEOUT)
            .await
            .map_err(|reason| EngineError::StoreUnavailable { reason })?;
        // Setting the mode, by any route, is how someone acknowledges a failure; a refused
        // change acknowledges nothing, so this comes after every check.
        if new.mode() != self.units[i].config.mode() {
            self.units[i].last_failure = None;
        }
        self.units[i].config = new.clone();
        // A shorter interval takes effect now, not after the old, longer wait.
        let soonest = self.clock.instant() + self.units[i].interval();
        self.due[i] = self.due[i].min(soonest);
        Ok(new)
    }

    pub(super) async fn manual_scale(
        &mut self,
        i: usize,
        req: ManualScale,
    ) -> Result<HistoryRow, EngineError> {
        // The values were checked when `req` was made; what is left is whether they fit.
        let bounds = Bounds::new(&self.units[i].config, &self.host)?;
        bounds.check(&req.limits())?;
        let name = self.units[i].name.clone();
        let view = tokio::time::timeout(INSPECT_TIMEOUT, self.probe.inspect(&name))
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "systemd did not answer within {} s",
                    INSPECT_TIMEOUT.as_secs()
                ))
            })
            .map_err(|e| EngineError::Unavailable {
                unit: name.to_string(),
                reason: format!("{e:#}"),
            })?;
        let new = view.limits.overlay(req.limits());
        // Refused requests change nothing, the mode included.
        let now = self.now();
        if let Some(wait) = self.units[i].rate_wait(now) {
            return Err(EngineError::RateLimited {
                unit: name.to_string(),
                retry_after_secs: wait,
            });
        }
        // A manual request puts the unit in manual mode, so the loop does not undo it.
        self.update_config(i, |c| Ok(c.with_mode(Mode::Manual)))
            .await?;
        let reason = req.into_reason();
        let at = now;
        let change = Change {
            action: Action::ManualScale,
            trigger: TriggerType::Manual,
            reason,
            old: view.limits,
            new,
            at,
            was_running: view.is_running(),
        };
        self.apply(i, change).await
    }

    /// Applies a change and writes its history row, success or failure.
    ///
    /// The change is journalled before systemd is asked (see [`Store::begin_change`]): a daemon
    /// killed at any moment after that leaves an entry that the next one reconciles with what
    /// systemd reports ([`Engine::reconcile`]). A change the journal did not take is not made.
    /// The unit's state changes before its history row is written: a store that fails must
    /// not leave a success without its cooldown, nor a failure with the mode still enabled.
    ///
    /// [`Store::begin_change`]: autoscaler_store::Store::begin_change
    pub(super) async fn apply(&mut self, i: usize, c: Change) -> Result<HistoryRow, EngineError> {
        let Change {
            action,
            trigger,
            reason,
            old,
            new,
            at,
            was_running,
        } = c;
        let reason = reason.as_str();
        let name = self.units[i].name.clone();
        // The invariant every change passes, automatic or manual: what it changes is in bounds.
        Bounds::new(&self.units[i].config, &self.host)?.check(&new.changes_from(&old))?;
        if let Some(wait) = self.units[i].rate_wait(at) {
            return Err(EngineError::RateLimited {
                unit: name.to_string(),
                retry_after_secs: wait,
            });
        }
        let id = self.store.reserve_history_id();
        let planned = NewHistory {
            unit: name.clone(),
            at: self.wall(at),
            action,
            trigger_type: trigger,
            reason: reason.to_string(),
            old,
            new,
            status: Status::Success,
            error_message: None,
        };
        self.journal(id, &planned, was_running).await?;
        self.units[i].note_change(at);
        self.units[i].applying = true;
        self.publish();
        let result =
            match tokio::time::timeout(APPLY_TIMEOUT, self.actuator.apply(&name, &old, &new)).await
            {
                Ok(r) => r,
                Err(_) => Err(ApplyError {
                    kind: ApplyErrorKind::TimedOut,
                    what: format!(
                        "systemd did not answer within {} s while applying {new} to {name}",
                        APPLY_TIMEOUT.as_secs()
                    ),
                    rollback: Rollback::Unknown,
                }),
            };
        self.units[i].applying = false;
        if result.is_ok() {
            autoscaler_systemd::crash::point("applied");
        }
        let status = match &result {
            Ok(after) => {
                tracing::info!(unit = %name, %action, %trigger, "{reason}");
                self.units[i].record_success(action, *after, at);
                Status::Success
            }
            Err(e) => {
                tracing::error!(unit = %name, %action, "applying limits failed: {e}");
                self.loop_stats.apply_failures += 1;
                self.units[i].count(action, Status::Failed);
                if e.kind == ApplyErrorKind::UnitNotFound {
                    // Gone: nothing was changed and nothing is left to protect; the unit is
                    // unavailable until it comes back, and then managed as before.
                    let limits = self.units[i].limits();
                    self.units[i].unavailable(e.to_string(), limits);
                } else {
                    // DESIGN.md: a failure disables the autoscaler until someone sets the mode.
                    self.units[i].config = self.units[i].config.with_mode(Mode::Disabled);
                    self.writer.keep(Write::Config {
                        unit: name.clone(),
                        config: self.units[i].config.clone(),
                    });
                }
                Status::Failed
            }
        };
        let row = NewHistory {
            status,
            error_message: result.as_ref().err().map(ApplyError::to_string),
            ..planned
        };
        let write = Write::FinishChange {
            id,
            row: row.clone(),
        };
        if !self.writer.keep_and_wait(write, HISTORY_WAIT).await {
            // Queued and retried; until it lands, the journal entry stands for it.
            tracing::warn!(unit = %name, "the history row {id} is not stored yet; it stays queued");
        }
        match result {
            Ok(_) => Ok(HistoryRow {
                id,
                unit: row.unit,
                at: row.at,
                action,
                trigger_type: trigger,
                reason: row.reason,
                old,
                new,
                status,
                error_message: None,
            }),
            Err(e) if e.kind == ApplyErrorKind::UnitNotFound => Err(EngineError::Unavailable {
                unit: name.to_string(),
                reason: e.to_string(),
            }),
            Err(e) => {
                let message = e.to_string();
                self.units[i].last_failure = Some(Failure {
                    at: row.at,
                    message: message.clone(),
                    history_id: id,
                    rollback: e.rollback.clone(),
                });
                Err(EngineError::ApplyFailed {
                    message,
                    history_id: id,
                    rollback: e.rollback,
                })
            }
        }
    }
}
