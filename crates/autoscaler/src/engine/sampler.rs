//! Units' readings, taken off the engine task.
//!
//! [`Reader::read`] takes the units whose check is due: what systemd's cached view says each
//! is (one task asks systemd, async, under [`INSPECT_TIMEOUT`], about those it does not
//! cover), and the running ones are queued for a reader on tokio's blocking pool, which reads
//! their cgroups, processes and AutoCoder's databases in a row (synchronous file and SQLite
//! reads) and sends the readings back to the engine in batches, one event each. A reader goes
//! back to the pool when the queue is empty.
//!
//! Why one reader and not one blocking job per unit: at 1000 units a second, a job (and a
//! task) per unit kept about 130 threads in the pool, created and retired all the time, with
//! about 9000 futex calls a second, and held the loop at about 700 checks a second
//! (docs/BENCHMARKS.md, "Scale: 1000 units at 1 s").
//!
//! A file that hangs must not hold the others, so the engine looks at the readers every
//! [`TICK`] while they work ([`Reader::look`]). A reader on one unit for longer than
//! [`STALL`] is left to it, and a new reader takes the queue; a reader still on it after
//! [`SAMPLE_TIMEOUT`] has its unit reported as stuck, and that unit is not read again until
//! the read returns: a stuck file costs one blocked thread, not one per check, and delays the
//! units queued behind it by [`STALL`] and at most one tick.
//!
//! This module decides nothing and touches no unit state.

use std::collections::{HashSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use autoscaler_core::{Limits, Millis, UnitName};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};

use super::clock::Timeline;
use super::{Clock, INSPECT_TIMEOUT, Probe, SAMPLE_TIMEOUT, Sampled, UnitView};

/// How long a reader may spend on one unit before the units queued behind it go to a new
/// reader. A reading takes about 100 µs; AutoCoder's databases wait up to 500 ms for a lock.
pub(super) const STALL: Duration = Duration::from_millis(200);

/// How long a round's answers from systemd wait for the slower ones before they go to the
/// readers: a unit whose view is read from systemd again (once a minute each) answers in about
/// a millisecond, and then joins its round's batch.
const GATHER: Duration = Duration::from_millis(5);

/// How often the engine looks at the readers while one is at work ([`Reader::look`]).
pub(super) const TICK: Duration = Duration::from_millis(100);

/// The most readings a reader keeps before it sends them to the engine. It sends them when
/// the queue is empty, so a round's readings wake the engine a few times, not once each
/// (docs/BENCHMARKS.md, "Fewer wakes and reads per sample"). At 1000 units, batches of this
/// size keep the engine working while the reader goes on. Readings kept by a reader that
/// then hangs are handled at the engine's next look ([`Reader::look`]).
const OUTBOX: usize = 32;

/// What one check of one unit read.
pub(super) struct Reading {
    /// The unit's index in the engine.
    pub unit: usize,
    /// When the check started (monotonic), for the loop's statistics.
    pub started: Instant,
    pub outcome: Outcome,
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

/// A unit to read: which, as systemd sees it, and when its check started.
struct Job {
    unit: usize,
    name: UnitName,
    view: UnitView,
    started: Instant,
}

/// A reader at work, as [`Reader::look`] sees it.
struct Worker {
    id: u64,
    /// The job it is reading (unit, limits, when its check started), and since when.
    on: Option<(usize, Limits, Instant, Instant)>,
    /// Left to its current job: it sends that job's reading and stops.
    left: bool,
    /// Its unit was reported stuck: what it reads, when it returns, is dropped.
    reported: bool,
}

#[derive(Default)]
struct Shared {
    queue: VecDeque<Job>,
    workers: Vec<Worker>,
    next_id: u64,
    /// Units whose read was reported stuck and has not returned.
    stuck: HashSet<usize>,
    /// Readings taken and not yet sent to the engine (see [`OUTBOX`]).
    outbox: Vec<Reading>,
}

impl Shared {
    fn worker(&mut self, id: u64) -> Option<&mut Worker> {
        self.workers.iter_mut().find(|w| w.id == id)
    }

    /// A new reader's number, when the queue has jobs and no reader takes them.
    fn hire(&mut self) -> Option<u64> {
        if self.queue.is_empty() || self.workers.iter().any(|w| !w.left) {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.workers.push(Worker {
            id,
            on: None,
            left: false,
            reported: false,
        });
        Some(id)
    }
}

struct Inner<P> {
    shared: Mutex<Shared>,
    probe: Arc<P>,
    clock: Arc<dyn Clock>,
    timeline: Timeline,
    tx: mpsc::Sender<Vec<Reading>>,
}

impl<P> Inner<P> {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The engine's readers: where due units go to be read, and whose readings come back on the
/// engine's channel.
pub(super) struct Reader<P> {
    inner: Arc<Inner<P>>,
}

impl<P: Probe> Reader<P> {
    pub(super) fn new(
        probe: Arc<P>,
        clock: Arc<dyn Clock>,
        timeline: Timeline,
        tx: mpsc::Sender<Vec<Reading>>,
    ) -> Reader<P> {
        Reader {
            inner: Arc::new(Inner {
                shared: Mutex::new(Shared::default()),
                probe,
                clock,
                timeline,
                tx,
            }),
        }
    }

    /// Whether an earlier read of unit `unit` was reported stuck and has not returned.
    pub(super) fn is_stuck(&self, unit: usize) -> bool {
        self.inner.lock().stuck.contains(&unit)
    }

    /// Reads the units given (index, name, when the check started); each reading comes back
    /// on the engine's channel. Never fails: a failure is an outcome.
    pub(super) fn read(&self, units: Vec<(usize, UnitName, Instant)>) {
        // systemd's view of a unit comes from a cache in the steady state: the units it
        // answers for at once go to the readers from here, and only the others need a task
        // that waits for systemd (a future and a timer for each unit, every round, were about
        // 8% of the daemon's CPU at 50 idle units: docs/BENCHMARKS.md).
        let mut jobs = Vec::with_capacity(units.len());
        let mut answers = Vec::new();
        let mut ask = Vec::new();
        for (unit, name, started) in units {
            match self.inner.probe.inspect_now(&name) {
                Some(view) => match admit(unit, name, view, started) {
                    Ok(job) => jobs.push(job),
                    Err(reading) => answers.push(*reading),
                },
                None => ask.push((unit, name, started)),
            }
        }
        submit(&self.inner, jobs);
        if answers.is_empty() && ask.is_empty() {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if !answers.is_empty() {
                // The engine may have stopped; then nobody needs the readings.
                let _ = inner.tx.send(answers).await;
            }
            let mut pending: FuturesUnordered<_> = ask
                .into_iter()
                .map(|(unit, name, started)| inspect(inner.probe.clone(), unit, name, started))
                .collect();
            // The answers that come within [`GATHER`] of the first go to the readers together
            // (a unit whose view is read from systemd again answers in about a millisecond):
            // one reader woken, where a batch per answer woke a reader, and then the engine,
            // for each.
            while let Some(first) = pending.next().await {
                let mut jobs = Vec::new();
                let mut answers = Vec::new();
                let mut take = |r: Result<Job, Box<Reading>>| match r {
                    Ok(job) => jobs.push(job),
                    Err(reading) => answers.push(*reading),
                };
                take(first);
                let until = Instant::now() + GATHER;
                while let Ok(Some(r)) = timeout_at(until, pending.next()).await {
                    take(r);
                }
                submit(&inner, jobs);
                if !answers.is_empty() {
                    let _ = inner.tx.send(answers).await;
                }
            }
        });
    }

    /// Whether a reader is at work, or units wait for one: the engine then looks at the
    /// readers every [`TICK`] ([`Reader::look`]). A reader whose unit was reported stuck needs
    /// no more looking at.
    pub(super) fn busy(&self) -> bool {
        let s = self.inner.lock();
        !s.queue.is_empty() || s.workers.iter().any(|w| !w.reported)
    }

    /// One look at the readers, every [`TICK`] while they are [`Reader::busy`]: leaves a
    /// reader stalled on one unit to it (a new one takes the queue), and reports a unit whose
    /// read outlived [`SAMPLE_TIMEOUT`]. Returns the readings for the engine to handle now:
    /// those reports, and the readings a stalled reader holds.
    ///
    /// The engine looks from its own loop, woken by its own timer only while a reader is at
    /// work: a reading takes about 100 µs and a round's a few milliseconds, so in the steady
    /// state the timer never fires. A watchdog task that was told of every reader started and
    /// looked 100 ms later woke twice a round (docs/BENCHMARKS.md).
    pub(super) fn look(&self) -> Vec<Reading> {
        let inner = &self.inner;
        let now = inner.clock.instant();
        let mut reports = Vec::new();
        let hire = {
            let mut s = inner.lock();
            let mut stuck = Vec::new();
            for w in &mut s.workers {
                let Some((unit, limits, started, since)) = w.on else {
                    continue;
                };
                let busy = now.saturating_duration_since(since);
                w.left |= busy >= STALL;
                if busy >= SAMPLE_TIMEOUT && !w.reported {
                    w.reported = true;
                    stuck.push(unit);
                    reports.push(Reading {
                        unit,
                        started,
                        outcome: unavailable(stuck_reason(), Some(limits)),
                    });
                }
            }
            s.stuck.extend(stuck);
            // Readings a reader holds: one that stalled cannot send them.
            reports.append(&mut s.outbox);
            s.hire()
        };
        if let Some(id) = hire {
            let inner = inner.clone();
            tokio::task::spawn_blocking(move || work(&inner, id));
        }
        reports
    }
}

fn stuck_reason() -> String {
    format!(
        "reading its cgroup, processes and AutoCoder's databases did not finish within {} s: \
         a file or database is stuck (an unresponsive filesystem, a locked database); the \
         unit is not read again until that read returns",
        SAMPLE_TIMEOUT.as_secs()
    )
}

/// systemd's view of one unit, asked for: a job for a reader when it runs, else the reading
/// that says why it cannot be read.
async fn inspect<P: Probe>(
    probe: Arc<P>,
    unit: usize,
    name: UnitName,
    started: Instant,
) -> Result<Job, Box<Reading>> {
    let done = |outcome| {
        Err(Box::new(Reading {
            unit,
            started,
            outcome,
        }))
    };
    match timeout(INSPECT_TIMEOUT, probe.inspect(&name)).await {
        Ok(Ok(view)) => admit(unit, name, view, started),
        Ok(Err(e)) => done(unavailable(format!("{e:#}"), None)),
        Err(_) => {
            let reason = format!(
                "systemd did not answer within {} s",
                INSPECT_TIMEOUT.as_secs()
            );
            done(unavailable(reason, None))
        }
    }
}

/// A job for a reader when systemd says the unit runs, else the reading that says why it
/// cannot be read.
fn admit(
    unit: usize,
    name: UnitName,
    view: UnitView,
    started: Instant,
) -> Result<Job, Box<Reading>> {
    if view.active_state != "active" && view.active_state != "reloading" {
        let reason = format!("unit is {}; start it to manage it", view.active_state);
        return Err(Box::new(Reading {
            unit,
            started,
            outcome: unavailable(reason, Some(view.limits)),
        }));
    }
    Ok(Job {
        unit,
        name,
        view,
        started,
    })
}

/// Queues `jobs`, and starts a reader when none is taking the queue.
fn submit<P: Probe>(inner: &Arc<Inner<P>>, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let hire = {
        let mut s = inner.lock();
        s.queue.extend(jobs);
        s.hire()
    };
    if let Some(id) = hire {
        let worker = inner.clone();
        tokio::task::spawn_blocking(move || work(&worker, id));
    }
}

/// A reader: reads the queued units in a row until the queue is empty, or until the
/// engine's look leaves it to a unit that takes too long.
fn work<P: Probe>(inner: &Inner<P>, id: u64) {
    loop {
        let job = {
            let mut s = inner.lock();
            let Some(job) = s.queue.pop_front() else {
                s.workers.retain(|w| w.id != id);
                return;
            };
            let since = inner.clock.instant();
            if let Some(w) = s.worker(id) {
                w.on = Some((job.unit, job.view.limits, job.started, since));
            }
            job
        };
        let at = inner.timeline.at(inner.clock.instant());
        let result = catch_unwind(AssertUnwindSafe(|| {
            inner.probe.sample(&job.name, &job.view, at)
        }));
        let (reported, left) = {
            let mut s = inner.lock();
            let (reported, left) = s.worker(id).map_or((false, true), |w| {
                w.on = None;
                (w.reported, w.left)
            });
            if reported {
                s.stuck.remove(&job.unit);
            }
            if left {
                s.workers.retain(|w| w.id != id);
            }
            (reported, left)
        };
        // A unit reported stuck was told so; its next check reads it afresh.
        let mut send = Vec::new();
        if !reported {
            let outcome = match result {
                Ok(Ok(sampled)) => Outcome::Sampled {
                    view: job.view,
                    sampled: Box::new(sampled),
                    at,
                },
                Ok(Err(e)) => unavailable(
                    format!("cannot read its cgroup: {e:#}"),
                    Some(job.view.limits),
                ),
                Err(_) => unavailable(
                    "reading its cgroup stopped unexpectedly (a panic, in the log)".into(),
                    Some(job.view.limits),
                ),
            };
            let reading = Reading {
                unit: job.unit,
                started: job.started,
                outcome,
            };
            let mut s = inner.lock();
            s.outbox.push(reading);
            if left || s.queue.is_empty() || s.outbox.len() >= OUTBOX {
                send = std::mem::take(&mut s.outbox);
            }
        }
        // One message for the batch: a message per reading woke the engine for each, and it
        // took the reader's core from it each time (docs/BENCHMARKS.md, "Who wakes whom").
        // The engine may have stopped; then nobody needs the readings.
        if !send.is_empty() && inner.tx.blocking_send(send).is_err() {
            let mut s = inner.lock();
            s.queue.clear();
            s.workers.retain(|w| w.id != id);
            return;
        }
        if left {
            return;
        }
    }
}
