//! Changing a unit: its config (validated whole, stored, then put in force), a manual scale,
//! and applying limits with every brake (bounds, the rate limit, a timeout) and its record
//! (the history row, the counts, and on failure the `disabled` mode and the unit's failure).

use autoscaler_core::{
    Action, Bounds, Config, Limits, Millis, Mode, Status, TriggerType, UnitName,
};
use autoscaler_store::{HistoryRow, NewHistory};

use super::run::Engine;
use super::state::{Failure, UnitSnapshot};
use super::{
    APPLY_TIMEOUT, Actuator, ApplyError, ApplyErrorKind, EngineError, INSPECT_TIMEOUT, Probe,
    Rollback, ScaleRequest,
};

impl<P: Probe, A: Actuator> Engine<P, A> {
    pub(super) fn set_mode(
        &mut self,
        unit: &UnitName,
        mode: Mode,
    ) -> Result<UnitSnapshot, EngineError> {
        let i = self.index(unit)?;
        self.update_config(i, |c| Ok(Config { mode, ..c.clone() }))?;
        // Setting the mode is how someone acknowledges a failure.
        self.units[i].last_failure = None;
        Ok(self.units[i].snapshot(&self.host))
    }

    /// Validates a new config whole (fields, relations, bounds on this host), stores it, and
    /// only then puts it in force; the loop uses it from its next check.
    pub(super) fn update_config(
        &mut self,
        i: usize,
        change: impl FnOnce(&Config) -> Result<Config, EngineError>,
    ) -> Result<Config, EngineError> {
        let new = change(&self.units[i].config)?;
        new.validate()?;
        Bounds::new(&new, &self.host)?;
        self.store
            .save_config(&self.units[i].name, &new)
            .map_err(|e| EngineError::Internal(format!("{e:#}")))?;
        // Setting the mode, by any route, is how someone acknowledges a failure; a refused
        // change acknowledges nothing, so this comes after every check.
        if new.mode != self.units[i].config.mode {
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
        req: ScaleRequest,
    ) -> Result<HistoryRow, EngineError> {
        if req.reason.chars().count() > 1000 {
            return Err(EngineError::BadRequest {
                message: "reason is longer than 1000 characters".into(),
                field: Some("reason".into()),
                allowed: Some("a string of at most 1000 characters".into()),
            });
        }
        let bounds = Bounds::new(&self.units[i].config, &self.host)?;
        bounds.check(&req.limits)?;
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
        let new = view.limits.overlay(req.limits);
        // Refused requests change nothing, the mode included.
        if let Some(wait) = self.units[i].rate_wait(self.clock.wall()) {
            return Err(EngineError::RateLimited {
                unit: name.to_string(),
                retry_after_secs: wait,
            });
        }
        // A manual request puts the unit in manual mode, so the loop does not undo it.
        self.update_config(i, |c| {
            Ok(Config {
                mode: Mode::Manual,
                ..c.clone()
            })
        })?;
        let reason = if req.reason.trim().is_empty() {
            "manual scale".to_string()
        } else {
            req.reason
        };
        let at = self.clock.wall();
        self.apply(
            i,
            Action::ManualScale,
            TriggerType::Manual,
            &reason,
            view.limits,
            new,
            at,
        )
        .await
    }

    /// Applies new limits and writes the history row, success or failure.
    ///
    /// The unit's state changes before the store is written: a store that fails must not
    /// leave a success without its cooldown, nor a failure with the mode still enabled.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply(
        &mut self,
        i: usize,
        action: Action,
        trigger: TriggerType,
        reason: &str,
        old: Limits,
        new: Limits,
        at: Millis,
    ) -> Result<HistoryRow, EngineError> {
        let name = self.units[i].name.clone();
        // The invariant every change passes, automatic or manual: what it changes is in bounds.
        Bounds::new(&self.units[i].config, &self.host)?.check(&new.changes_from(&old))?;
        if let Some(wait) = self.units[i].rate_wait(at) {
            return Err(EngineError::RateLimited {
                unit: name.to_string(),
                retry_after_secs: wait,
            });
        }
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
                    self.units[i].config.mode = Mode::Disabled;
                    if let Err(e) = self.store.save_config(&name, &self.units[i].config) {
                        tracing::error!(unit = %name, "storing the disabled mode failed: {e:#}");
                    }
                }
                Status::Failed
            }
        };
        let row = NewHistory {
            unit: name.clone(),
            at,
            action,
            trigger_type: trigger,
            reason: reason.to_string(),
            old,
            new,
            status,
            error_message: result.as_ref().err().map(ApplyError::to_string),
        };
        // 0 when the history could not be written: the change itself stands, and is logged.
        let id = self.store.insert_history(&row).unwrap_or_else(|e| {
            tracing::error!(unit = %name, "writing the history row failed: {e:#}; {action}: {reason}");
            0
        });
        match result {
            Ok(_) => Ok(HistoryRow {
                id,
                unit: row.unit,
                at,
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
                    at,
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
