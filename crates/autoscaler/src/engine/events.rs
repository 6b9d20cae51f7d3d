//! The kernel wakes a unit's check: PSI triggers, memory thresholds and OOM notifications
//! (`autoscaler_cgroup::events`), polled by a small task a unit that tells the engine which
//! unit and why. The engine then checks that unit at once and a few times more in quick
//! succession (a burst), with the same decision code: an event is fresh evidence, so the
//! streak and cooldown rules hold as for any check.
//!
//! A unit is armed after a reading shows it running, and armed again when its cgroup may
//! have been recreated (a new main process) or its memory limit moved (the threshold follows
//! it). Re-arming aborts the previous watch, which closes its descriptors: the kernel then
//! forgets its triggers.

use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use autoscaler_cgroup::events::{Notifier, Source, Wait};
use autoscaler_core::UnitName;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::{Probe, UnitView};

/// How long after its last event a unit keeps being checked every [`BURST_SPACING`]: long
/// enough for a streak of a few checks, and for a PSI trigger (at most one event per window,
/// 1-2 s) to say again that the unit still starves.
pub(super) const BURST_WINDOW: Duration = Duration::from_secs(2);
/// The gap between the checks of a burst: one CFS period, so a throttled unit shows
/// throttling in every one, and short enough that a streak of three lands in a fifth of a
/// second, before a memory ramp that crossed the threshold reaches its limit.
pub(super) const BURST_SPACING: Duration = Duration::from_millis(100);
/// The memory threshold sits this far under the scale-up threshold (as a share of it): the
/// burst's checks then start before usage breaches, and a streak is complete soon after.
pub(super) const THRESHOLD_LEAD: f64 = 0.9;

/// Units armed at once: every unit is armed after its first reading, and a blocking-pool job
/// each at once for 1000 units made the pool start hundreds of threads at start-up.
static ARMING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// What a watch reports to the engine.
pub(super) enum Note {
    /// `source` fired for unit `unit`.
    Wake { unit: usize, source: Source },
    /// What arming unit `unit` gave, for `/status` and the log.
    Armed {
        unit: usize,
        generation: u64,
        sources: Vec<SourceState>,
    },
}

/// One source of one unit, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    pub source: Source,
    /// Armed, or refused (the unit is then polled for it at its interval).
    pub armed: bool,
    /// What it was armed with, or why the kernel refused it.
    pub detail: String,
}

/// What a unit was armed for: arming again is due when any of it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Key {
    control_group: Option<String>,
    main_pid: Option<u32>,
    threshold: Option<u64>,
}

impl Key {
    /// Whether a unit seen as `view` is armed for already: checked at every reading, so it
    /// allocates nothing.
    pub(super) fn matches(&self, view: &UnitView, threshold: Option<u64>) -> bool {
        self.control_group.as_deref() == view.control_group.as_deref()
            && self.main_pid == view.main_pid
            && self.threshold == threshold
    }

    pub(super) fn of(view: &UnitView, threshold: Option<u64>) -> Key {
        Key {
            control_group: view.control_group.clone(),
            main_pid: view.main_pid,
            threshold,
        }
    }
}

/// A unit's current watch.
pub(super) struct Watch {
    pub(super) key: Key,
    pub(super) generation: u64,
    task: AbortHandle,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Its tasks go with it, and their descriptors close.
        self.task.abort();
    }
}

/// A notifier registered with tokio, and the readiness it waits for.
type Slot = Option<(AsyncFd<Polled>, Interest)>;

/// The most notifiers a unit has: one per [`Source`].
const SOURCES: usize = 4;

/// Arms unit `unit` on the blocking pool and polls what was armed, until aborted. One task a
/// unit polls all its notifiers: a task each, and one more to arm them, took about 2 KB a unit
/// (docs/BENCHMARKS.md, "Memory", session 15).
pub(super) fn watch<P: Probe>(
    probe: Arc<P>,
    unit: usize,
    name: UnitName,
    view: UnitView,
    key: Key,
    generation: u64,
    tx: mpsc::Sender<Note>,
) -> Watch {
    let threshold = key.threshold;
    let task = tokio::spawn(async move {
        let armed = {
            let _turn = ARMING.acquire().await;
            tokio::task::spawn_blocking(move || probe.arm(&name, &view, threshold)).await
        };
        let Ok(Some(mut armed)) = armed else { return };
        let mut sources: Vec<SourceState> = armed
            .notifiers
            .iter_mut()
            .map(|n| SourceState {
                source: n.source,
                armed: true,
                detail: std::mem::take(&mut n.detail),
            })
            .collect();
        sources.extend(armed.refused.into_iter().map(|(source, why)| SourceState {
            source,
            armed: false,
            detail: why,
        }));
        // `sources` begins with the notifiers, in their order.
        let mut slots: [Slot; SOURCES] = std::array::from_fn(|_| None);
        let mut free = slots.iter_mut();
        for (n, state) in armed.notifiers.into_iter().zip(sources.iter_mut()) {
            let interest = interest(n.wait);
            // `arm` gives at most one notifier per source; one past them would be dropped
            // unpolled, so `/status` says so rather than showing it armed.
            let Some(slot) = free.next() else {
                state.armed = false;
                state.detail = format!("cannot poll it: more than {SOURCES} notifiers");
                continue;
            };
            // Safe here: the descriptor belongs to the `Notifier` inside, which nothing else
            // can reach, and stays open as long as the `AsyncFd` (the condition tokio's
            // `unsafe` replacement states; the workspace forbids `unsafe`).
            #[allow(deprecated)]
            let registered = AsyncFd::with_interest(Polled(n), interest);
            match registered {
                Ok(fd) => *slot = Some((fd, interest)),
                Err(e) => {
                    state.armed = false;
                    state.detail = format!("cannot poll it: {e}");
                }
            }
        }
        // Waited for, unlike a wake: a report lost to a full queue would leave `/status`
        // without the unit's sources.
        let _ = tx
            .send(Note::Armed {
                unit,
                generation,
                sources,
            })
            .await;
        poll(&mut slots, unit, &tx).await;
        // Every source ended (the cgroup went away): nothing to do until armed again.
        std::future::pending::<()>().await;
    });
    Watch {
        key,
        generation,
        task: task.abort_handle(),
    }
}

/// Waits for the notifiers' events and tells the engine, each until the cgroup goes away (a
/// failed drain), all until the engine stops listening. A wake the engine has no room for is
/// dropped: the unit is being checked already.
async fn poll(slots: &mut [Slot; SOURCES], unit: usize, tx: &mpsc::Sender<Note>) {
    while slots.iter().any(Option::is_some) {
        let (i, open) = tokio::select! {
            open = fired(slots[0].as_ref()) => (0, open),
            open = fired(slots[1].as_ref()) => (1, open),
            open = fired(slots[2].as_ref()) => (2, open),
            open = fired(slots[3].as_ref()) => (3, open),
        };
        let Some((fd, _)) = &slots[i] else { continue };
        let source = fd.get_ref().0.source;
        if !open {
            slots[i] = None;
            continue;
        }
        match tx.try_send(Note::Wake { unit, source }) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// Waits until `slot`'s notifier fires and drains it: false when the drain failed (its cgroup
/// went away). An empty slot never fires.
async fn fired(slot: Option<&(AsyncFd<Polled>, Interest)>) -> bool {
    let Some((fd, interest)) = slot else {
        return std::future::pending().await;
    };
    let Ok(mut ready) = fd.ready(*interest).await else {
        return false;
    };
    let drained = fd.get_ref().0.drain();
    ready.clear_ready();
    drained.is_ok()
}

fn interest(wait: Wait) -> Interest {
    match wait {
        Wait::Priority => Interest::PRIORITY,
        Wait::Readable => Interest::READABLE,
    }
}

/// A notifier as tokio polls it.
struct Polled(Notifier);

impl AsRawFd for Polled {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd().as_raw_fd()
    }
}

/// The events of one burst, as a set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Seen(u8);

impl Seen {
    pub(super) fn with(self, source: Source) -> Seen {
        Seen(self.0 | Seen::bit(source))
    }

    fn bit(source: Source) -> u8 {
        match source {
            Source::Oom => 1,
            Source::CpuPressure => 2,
            Source::MemoryPressure => 4,
            Source::MemoryThreshold => 8,
        }
    }
}

/// The events in the words of a history reason, the gravest first.
impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = [
            Source::Oom,
            Source::CpuPressure,
            Source::MemoryPressure,
            Source::MemoryThreshold,
        ];
        let mut first = true;
        for s in order.into_iter().filter(|s| self.0 & Seen::bit(*s) != 0) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            f.write_str(match s {
                Source::CpuPressure => "the kernel's CPU pressure trigger fired",
                Source::MemoryPressure => "the kernel's memory pressure trigger fired",
                Source::MemoryThreshold => "memory use crossed its threshold",
                Source::Oom => "the kernel reported an OOM event",
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_names_each_of_its_events_once_the_gravest_first() {
        let seen = Seen::default()
            .with(Source::MemoryThreshold)
            .with(Source::Oom)
            .with(Source::MemoryThreshold);
        assert_eq!(
            seen.to_string(),
            "the kernel reported an OOM event, memory use crossed its threshold"
        );
        assert_eq!(Seen::default().to_string(), "");
    }
}
