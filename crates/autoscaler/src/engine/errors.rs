//! The engine's errors: what an [`Actuator`](super::Actuator) reports when an apply fails
//! ([`ApplyError`], with its [`Rollback`] outcome and [`ApplyErrorKind`]), and what a front end
//! shows its user ([`EngineError`]).
//!
//! Nothing here knows HTTP or D-Bus: each front maps an [`EngineError`] to its own status,
//! and the adapters map systemd's errors to an [`ApplyError`].

use std::fmt;

use super::MAX_CHANGES_PER_MINUTE;

/// What kind of failure an apply met; the engine answers each differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyErrorKind {
    /// The unit does not exist or is not loaded any more: nothing to roll back, nothing to
    /// disable; the unit is unavailable until it comes back.
    UnitNotFound,
    /// The manager refused or did not take the change (read-back mismatch, a failed call).
    Refused,
    /// The manager did not answer in time.
    TimedOut,
}

/// What became of the unit after a failed apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// The failure came before anything was changed.
    NothingChanged,
    /// The previous limits are back; the sentence says what was restored.
    Done(String),
    /// Restoring failed too: the unit may be left changed or stopped.
    Failed(String),
    /// Nobody knows: the call did not answer, so it may have changed part of the unit.
    Unknown,
}

impl Rollback {
    /// True when the unit is known to run under its previous limits.
    pub fn restored(&self) -> bool {
        matches!(self, Rollback::NothingChanged | Rollback::Done(_))
    }
}

impl fmt::Display for Rollback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rollback::NothingChanged => f.write_str("nothing was changed"),
            Rollback::Done(what) => write!(f, "rolled back: {what}"),
            Rollback::Failed(why) => write!(f, "ROLLBACK FAILED: {why}; check the unit by hand"),
            Rollback::Unknown => f.write_str(
                "whether anything changed is unknown; check the unit by hand \
                 (`systemctl show <unit>`)",
            ),
        }
    }
}

/// An apply that failed: what failed, of which kind, and whether the previous state is back.
/// Its `Display` is one line, for a history row's `error_message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyError {
    pub kind: ApplyErrorKind,
    /// What failed, as a sentence, without the rollback's outcome.
    pub what: String,
    pub rollback: Rollback,
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.what, self.rollback)
    }
}

impl std::error::Error for ApplyError {}

/// An error a front end shows to its user; each front maps the kind to its own status.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    /// The request is wrong; nothing changed. `field` and `allowed` say what to fix.
    BadRequest {
        message: String,
        field: Option<String>,
        allowed: Option<String>,
    },
    /// The unit cannot be managed right now (not loaded, not running, no bus, gone while
    /// being changed).
    Unavailable { unit: String, reason: String },
    /// No such unit is managed by this daemon.
    UnknownUnit { unit: String, managed: Vec<String> },
    /// Applying limits failed and the mode was set to disabled; `rollback` says whether the
    /// previous limits are back, and `message` says it in words.
    ApplyFailed {
        message: String,
        history_id: i64,
        rollback: Rollback,
    },
    /// Too many changes to this unit in the last minute; nothing changed.
    RateLimited { unit: String, retry_after_secs: u64 },
    /// The database could not be written (a config, or a change's journal entry), so nothing
    /// was changed: no limit may be in force that the history could miss.
    StoreUnavailable { reason: String },
    /// The store or the engine itself failed.
    Internal(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::BadRequest { message, .. } => f.write_str(message),
            EngineError::Unavailable { unit, reason } => {
                write!(f, "unit {unit} is unavailable: {reason}")
            }
            EngineError::UnknownUnit { unit, managed } => {
                write!(
                    f,
                    "unit {unit} is not managed by this daemon; managed units: {}",
                    managed.join(", ")
                )
            }
            EngineError::ApplyFailed {
                message,
                history_id,
                rollback,
            } => {
                let what = match rollback {
                    Rollback::NothingChanged => "failed before anything was changed",
                    Rollback::Done(_) => "failed and was rolled back",
                    Rollback::Failed(_) => {
                        "failed, AND ITS ROLLBACK FAILED: the unit may be left changed or stopped"
                    }
                    Rollback::Unknown => "did not finish: whether it was rolled back is unknown",
                };
                write!(
                    f,
                    "applying the limits {what}; the autoscaler is disabled for this unit until \
                     someone sets the mode (history id {history_id}): {message}"
                )
            }
            EngineError::RateLimited {
                unit,
                retry_after_secs,
            } => write!(
                f,
                "unit {unit} had {MAX_CHANGES_PER_MINUTE} limit changes in the last minute, the most allowed; \
                 try again in {retry_after_secs}s"
            ),
            EngineError::StoreUnavailable { reason } => write!(
                f,
                "the database cannot be written now ({reason}); nothing was changed: every \
                 change is journalled before it is made"
            ),
            EngineError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<autoscaler_core::ConfigError> for EngineError {
    fn from(e: autoscaler_core::ConfigError) -> Self {
        EngineError::BadRequest {
            message: e.to_string(),
            field: Some(e.field),
            allowed: Some(e.allowed),
        }
    }
}

impl From<autoscaler_core::BoundsError> for EngineError {
    fn from(e: autoscaler_core::BoundsError) -> Self {
        let allowed = match &e {
            autoscaler_core::BoundsError::OutOfRange { min, max, unit, .. } => {
                Some(format!("{min}..={max}{unit}"))
            }
            autoscaler_core::BoundsError::Infeasible {
                min_field,
                reserve_field,
                capacity,
                unit,
                ..
            } => Some(format!(
                "{min_field} at most {capacity}{unit}, or a smaller {reserve_field}"
            )),
        };
        EngineError::BadRequest {
            message: e.to_string(),
            field: Some(e.field().to_string()),
            allowed,
        }
    }
}
