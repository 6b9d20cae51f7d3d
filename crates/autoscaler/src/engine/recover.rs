//! After a crash: every change the previous daemon journalled and never finished is settled
//! with what systemd reports, before the loop starts (issue 11).
//!
//! A journal entry is written before systemd is asked for anything, and moved into the
//! history when the change ends. An entry found at startup is a change that was cut short
//! somewhere between the two, so:
//!
//! - whatever the strategy left half done is undone first ([`Actuator::recover`]: the restart
//!   strategy's unit file backup is put back, and the unit started again if it was running);
//!   the history row says it was rolled back, and how that went;
//! - otherwise the limits systemd reports decide: the new ones mean the change took (a
//!   success, recorded late), the old ones mean it did not (a failure that changed nothing),
//!   anything else is recorded as such, for a person to look at.
//!
//! Either way the row is written under the id the change was journalled with, and the unit's
//! cooldown and rate limit count it.

use autoscaler_core::{Limits, Mode, Resource, Status};
use autoscaler_store::{Intent, NewHistory};

use super::run::Engine;
use super::writer::Write;

/// How long a settled change's history row is waited for before the next is settled.
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
use super::state::Failure;
use super::{APPLY_TIMEOUT, Actuator, INSPECT_TIMEOUT, Probe, Rollback};

/// What became of a change that was cut short.
#[derive(Debug, PartialEq)]
enum Settled {
    /// systemd has the new limits: the change took.
    Took(Limits),
    /// systemd has the old limits: nothing was changed.
    Kept,
    /// Half done, and undone: the rollback's outcome.
    RolledBack(Rollback),
    /// Neither: what systemd says, in words.
    Unclear(String),
}

/// Whether `actual` has `side`'s value for every resource the change moved.
fn has(actual: &Limits, side: &Limits, old: &Limits, new: &Limits) -> bool {
    Resource::ALL
        .into_iter()
        .filter(|&r| old.get(r) != new.get(r))
        .all(|r| actual.get(r) == side.get(r))
}

impl<P: Probe, A: Actuator> Engine<P, A> {
    /// Settles every unfinished change in the journal. Runs once, before the first check.
    pub(super) async fn reconcile(&mut self) {
        let intents = match self.store.unfinished_changes() {
            Ok(intents) => intents,
            Err(e) => {
                self.loop_stats.store_errors += 1;
                tracing::error!("reading the journal of unfinished changes failed: {e:#}");
                return;
            }
        };
        for intent in intents {
            let settled = self.settle(&intent).await;
            self.record_settled(intent, settled).await;
        }
    }

    async fn settle(&self, intent: &Intent) -> Settled {
        let p = &intent.planned;
        let undo = tokio::time::timeout(
            APPLY_TIMEOUT,
            self.actuator.recover(&p.unit, intent.was_running),
        )
        .await;
        match undo {
            Ok(Some(rollback)) => return Settled::RolledBack(rollback),
            Ok(None) => {}
            Err(_) => return Settled::RolledBack(Rollback::Unknown),
        }
        let view = tokio::time::timeout(INSPECT_TIMEOUT, self.probe.inspect(&p.unit)).await;
        match view {
            Ok(Ok(v)) if has(&v.limits, &p.new, &p.old, &p.new) => Settled::Took(v.limits),
            Ok(Ok(v)) if has(&v.limits, &p.old, &p.old, &p.new) => Settled::Kept,
            Ok(Ok(v)) => Settled::Unclear(format!(
                "systemd now reports {}, neither the old nor the new limits",
                v.limits
            )),
            Ok(Err(e)) => Settled::Unclear(format!(
                "the unit cannot be read now ({e:#}), so whether it took is unknown"
            )),
            Err(_) => Settled::Unclear(format!(
                "systemd did not describe the unit within {} s, so whether it took is unknown",
                INSPECT_TIMEOUT.as_secs()
            )),
        }
    }

    /// Writes the settled change's history row and puts it on its unit (counts, cooldown,
    /// rate limit; a failed rollback disables the unit as a failed apply does).
    async fn record_settled(&mut self, intent: Intent, settled: Settled) {
        let cut = "the daemon stopped in the middle of this change";
        let (status, error_message, reason) = match &settled {
            Settled::Took(_) => (
                Status::Success,
                None,
                format!(
                    "{} (recorded by the next start: systemd had the new limits)",
                    intent.planned.reason
                ),
            ),
            Settled::Kept => (
                Status::Failed,
                Some(format!("{cut}; not applied: systemd kept the old limits")),
                intent.planned.reason.clone(),
            ),
            Settled::RolledBack(rollback) => (
                Status::Failed,
                Some(format!("{cut}; {rollback}")),
                intent.planned.reason.clone(),
            ),
            Settled::Unclear(what) => (
                Status::Failed,
                Some(format!("{cut}; {what}")),
                intent.planned.reason.clone(),
            ),
        };
        let row = NewHistory {
            status,
            error_message,
            reason,
            ..intent.planned
        };
        tracing::warn!(
            unit = %row.unit,
            id = intent.id,
            "an unfinished {} found at startup: {}",
            row.action,
            row.error_message.as_deref().unwrap_or("it took"),
        );
        let write = Write::FinishChange {
            id: intent.id,
            row: row.clone(),
        };
        if !self.writer.keep_and_wait(write, STORE_WAIT).await {
            tracing::warn!(unit = %row.unit, "the settled change {} is not stored yet; it stays queued", intent.id);
        }
        let Ok(i) = self.index(&row.unit) else {
            return;
        };
        let unit = &mut self.units[i];
        unit.note_change(row.at);
        match settled {
            Settled::Took(after) => unit.record_success(row.action, after, row.at),
            Settled::RolledBack(rollback @ (Rollback::Failed(_) | Rollback::Unknown)) => {
                unit.count(row.action, Status::Failed);
                unit.config = unit.config.with_mode(Mode::Disabled);
                self.writer.keep(Write::Config {
                    unit: row.unit.clone(),
                    config: unit.config.clone(),
                });
                unit.last_failure = Some(Failure {
                    at: row.at,
                    message: row.error_message.clone().unwrap_or_default(),
                    history_id: intent.id,
                    rollback,
                });
            }
            _ => unit.count(row.action, Status::Failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::has;
    use autoscaler_core::{GIB, Limits};

    /// Only the resources the change moved decide; one that was not moved may be anything.
    #[test]
    fn only_moved_resources_decide_whether_a_change_took() {
        let old = Limits::new(100, 2, 100);
        let new = Limits {
            cpu_quota: Some(250),
            ..old
        };
        let took = Limits {
            cpu_quota: Some(250),
            memory_max: Some(5 * GIB),
            ..old
        };
        assert!(has(&took, &new, &old, &new));
        assert!(!has(&took, &old, &old, &new));
        assert!(has(&old, &old, &old, &new));
        let neither = Limits {
            cpu_quota: Some(180),
            ..old
        };
        assert!(!has(&neither, &new, &old, &new) && !has(&neither, &old, &old, &new));
    }
}
