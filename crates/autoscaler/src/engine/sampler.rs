//! A unit's reading, taken off the engine task.
//!
//! [`read`] runs in a task of its own: it asks systemd what the unit is (async, under
//! [`INSPECT_TIMEOUT`]), then reads its cgroup, processes and AutoCoder's databases on tokio's
//! blocking pool (synchronous file and SQLite reads, under [`SAMPLE_TIMEOUT`]). The engine
//! gets the outcome back as an event. A read that does not return in time is reported on its
//! unit and handed back still running, so the engine starts no second read of that unit
//! until it has returned: a stuck file costs one blocked thread, not one per check.
//!
//! This module decides nothing and touches no unit state.

use std::sync::Arc;

use autoscaler_core::{Limits, Millis, UnitName};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use super::clock::Timeline;
use super::{Clock, INSPECT_TIMEOUT, Probe, SAMPLE_TIMEOUT, Sampled, UnitView};

/// A blocking read still running after its timeout.
pub(super) type StuckRead = JoinHandle<anyhow::Result<Sampled>>;

/// What one check of one unit read.
pub(super) struct Reading {
    /// The unit's index in the engine.
    pub unit: usize,
    /// When the check started (monotonic), for the loop's statistics.
    pub started: Instant,
    pub outcome: Outcome,
    /// The blocking read, when it did not return in time.
    pub stuck: Option<StuckRead>,
}

pub(super) enum Outcome {
    /// The unit cannot be read now: why, and its limits when systemd gave them.
    Unavailable {
        reason: String,
        limits: Option<Limits>,
    },
    /// A running unit's reading, taken at `at`.
    Sampled {
        view: UnitView,
        sampled: Box<Sampled>,
        at: Millis,
    },
}

fn unavailable(reason: String, limits: Option<Limits>) -> Outcome {
    Outcome::Unavailable { reason, limits }
}

/// Reads one unit: systemd's view, then its usage. Never fails: a failure is an outcome.
pub(super) async fn read<P: Probe>(
    probe: Arc<P>,
    clock: Arc<dyn Clock>,
    timeline: Timeline,
    name: UnitName,
) -> (Outcome, Option<StuckRead>) {
    let view = match timeout(INSPECT_TIMEOUT, probe.inspect(&name)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return (unavailable(format!("{e:#}"), None), None),
        Err(_) => {
            let reason = format!(
                "systemd did not answer within {} s",
                INSPECT_TIMEOUT.as_secs()
            );
            return (unavailable(reason, None), None);
        }
    };
    if view.active_state != "active" && view.active_state != "reloading" {
        let reason = format!("unit is {}; start it to manage it", view.active_state);
        return (unavailable(reason, Some(view.limits)), None);
    }
    let at = timeline.at(clock.instant());
    let mut job = {
        let (probe, name, view) = (probe.clone(), name.clone(), view.clone());
        tokio::task::spawn_blocking(move || probe.sample(&name, &view, at))
    };
    match timeout(SAMPLE_TIMEOUT, &mut job).await {
        Ok(Ok(Ok(sampled))) => {
            let sampled = Box::new(sampled);
            (Outcome::Sampled { view, sampled, at }, None)
        }
        Ok(Ok(Err(e))) => (
            unavailable(format!("cannot read its cgroup: {e:#}"), Some(view.limits)),
            None,
        ),
        Ok(Err(e)) => (
            unavailable(
                format!("reading its cgroup stopped unexpectedly: {e}"),
                Some(view.limits),
            ),
            None,
        ),
        Err(_) => {
            let reason = format!(
                "reading its cgroup, processes and AutoCoder's databases did not finish within \
                 {} s: a file or database is stuck (an unresponsive filesystem, a locked \
                 database); the unit is not read again until that read returns",
                SAMPLE_TIMEOUT.as_secs()
            );
            (unavailable(reason, Some(view.limits)), Some(job))
        }
    }
}
