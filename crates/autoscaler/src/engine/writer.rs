//! Every store write, off the async runtime: one thread, one queue, in order (issue 11).
//!
//! SQLite calls block: a database locked by another writer holds each one for the busy
//! timeout (5 s), a full disk or a read-only file fails them. Made on the engine task, they
//! stalled every unit and every API call, and a failed write was logged and lost. Here:
//!
//! - Writes are queued in order and made by one thread. A write that fails for a reason that
//!   passes (locked, busy, full, read-only, I/O) is retried, with a growing pause, until it
//!   is stored; only samples may be dropped, when [`MAX_QUEUED_SAMPLES`] are already waiting,
//!   and they are counted. A write refused for a reason that does not pass (a constraint)
//!   is tried [`PERMANENT_TRIES`] times, then dropped and counted as lost, loudly.
//! - Consecutive samples go in one transaction. Samples (and what else the engine queues
//!   with them) wait up to [`LATER_WITHIN`] for company: at 50 units checked every second, a
//!   transaction each second rewrote the same index pages five times as often.
//! - A write the caller waits for ([`Writer::now`]: a change's journal entry, a config) is
//!   tried once, and withdrawn if it has not started when the caller stops waiting, so an
//!   answer of "refused" is never followed by the write landing.
//! - [`Writer::state`] says whether the store keeps up: `/healthz`, `/status` and `/metrics`
//!   show it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use autoscaler_core::{Config, Millis, UnitName};
use autoscaler_store::{MetricRow, NewHistory, Store};
use std::sync::mpsc;

/// Samples that may wait for the store; more are dropped (and counted). At 1000 units and a
/// 1 s interval this is ten seconds of samples; at the default 30 s, hours.
pub const MAX_QUEUED_SAMPLES: usize = 10_000;
/// How often a write the store refuses for a lasting reason is tried before it is dropped.
pub const PERMANENT_TRIES: u32 = 3;
/// The longest pause between two tries of a write that failed.
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// The most samples written in one transaction.
pub const BATCH: usize = 256;
/// How long a write queued by [`Writer::keep_later`] may wait for others before it is
/// written, unless [`BATCH`] samples or a write someone waits for come first. A crash loses at
/// most this much of the samples; never a change, a config or a limit (those are written at
/// once). The range endpoint reads the database, so its newest points are this late at most.
pub const LATER_WITHIN: Duration = Duration::from_secs(5);

/// One write to the store.
#[derive(Debug, Clone)]
pub enum Write {
    Metric(MetricRow),
    Learned {
        unit: UnitName,
        state: String,
        at: Millis,
    },
    Config {
        unit: UnitName,
        config: Config,
    },
    BeginChange {
        id: i64,
        planned: NewHistory,
        was_running: bool,
    },
    FinishChange {
        id: i64,
        row: NewHistory,
    },
    Prune {
        unit: UnitName,
        now: Millis,
        keep_ms: i64,
    },
}

impl Write {
    /// Makes the write, once.
    pub fn apply(&self, store: &Store) -> anyhow::Result<()> {
        match self {
            Write::Metric(m) => store.insert_metric(m),
            Write::Learned { unit, state, at } => store.save_learned(unit, state, *at),
            Write::Config { unit, config } => store.save_config(unit, config),
            Write::BeginChange {
                id,
                planned,
                was_running,
            } => store.begin_change(*id, planned, *was_running),
            Write::FinishChange { id, row } => store.finish_change(*id, row),
            Write::Prune { unit, now, keep_ms } => {
                store.prune_metrics(unit, *now, *keep_ms).map(|_| ())
            }
        }
    }
}

/// How the store keeps up, as the fronts show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreState {
    /// Writes waiting, samples included.
    pub queued: usize,
    /// Samples dropped because the queue was full, since start.
    pub dropped_samples: u64,
    /// Writes that could never be stored (refused for a lasting reason), since start.
    pub lost_writes: u64,
    /// Failed attempts, since start.
    pub errors: u64,
    /// Set while writes fail: since when (seconds) and the last error.
    pub failing: Option<(f64, String)>,
}

impl StoreState {
    /// Whether the database refuses writes now (they are queued and retried).
    pub fn is_degraded(&self) -> bool {
        self.failing.is_some()
    }

    /// Why the store is not keeping up, in words, or `None` when it is.
    pub fn degraded(&self) -> Option<String> {
        let (secs, error) = self.failing.as_ref()?;
        Some(format!(
            "the database has refused writes for {secs:.0} s ({error}); {} writes are queued \
             and retried, {} samples dropped so far",
            self.queued, self.dropped_samples
        ))
    }
}

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const WITHDRAWN: u8 = 2;

/// Where a waiting caller hears a write's outcome, and whether it has withdrawn the write.
type Reply = (mpsc::SyncSender<Result<(), String>>, Arc<AtomicU8>);
/// Where a waiting caller reads a write's outcome.
type Outcome = mpsc::Receiver<Result<(), String>>;

struct Job {
    write: Write,
    /// Whether the write is tried until it is stored; otherwise once, for a caller waiting.
    retry: bool,
    reply: Option<Reply>,
    tries: u32,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    samples: usize,
    state: StoreState,
    failing_since: Option<Instant>,
    closing: bool,
    /// Jobs queued by [`Writer::keep_later`] that the thread was not woken for.
    unannounced: usize,
    /// When the thread is to write what is queued: now for a write it was woken for,
    /// [`LATER_WITHIN`] after the first of a run of [`Writer::keep_later`] writes. `None`
    /// while the queue is empty.
    due: Option<Instant>,
    /// Jobs done since the queue was last empty: what a round needs (see [`Queue::drained`]).
    since_empty: usize,
}

impl Queue {
    /// Gives back the room a burst left once the queue is empty again: a queue that once
    /// held [`MAX_QUEUED_SAMPLES`] (a stalled database at 1000 units) kept about 2 MB for good.
    /// Twice what the jobs since the last empty queue took stays, so steady rounds never
    /// reallocate.
    fn drained(&mut self) {
        let keep = (2 * self.since_empty).max(64);
        if self.jobs.capacity() > keep {
            self.jobs.shrink_to(keep);
        }
        self.since_empty = 0;
    }
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The store's one writer. Cheap to clone; clones share the queue and the thread.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Writer {
    /// Starts the writer thread over `store`.
    pub fn start(store: Store) -> anyhow::Result<Writer> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&s, &store))?;
        Ok(Writer {
            shared,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Queues `job`, and wakes the writer thread for it unless `later` (see
    /// [`Self::keep_later`]).
    fn push(&self, job: Job, later: bool) {
        let mut q = self.shared.lock();
        if matches!(job.write, Write::Metric(_)) {
            if q.samples >= MAX_QUEUED_SAMPLES {
                q.state.dropped_samples += 1;
                return;
            }
            q.samples += 1;
        }
        q.jobs.push_back(job);
        let now = Instant::now();
        if later {
            q.unannounced += 1;
            if q.due.is_some() {
                return;
            }
            // The first of a run: the thread sets its timer by it.
            q.due = Some(now + LATER_WITHIN);
        } else {
            q.unannounced = 0;
            q.due = Some(now);
        }
        drop(q);
        self.shared.wake.notify_one();
    }

    fn retried(write: Write) -> Job {
        Job {
            write,
            retry: true,
            reply: None,
            tries: 0,
        }
    }

    /// Queues a write that is retried until it is stored (a sample may be dropped when the
    /// queue is full).
    pub fn keep(&self, write: Write) {
        self.push(Writer::retried(write), false);
    }

    /// Queues a write like [`Self::keep`], but the writer thread starts on it only
    /// [`LATER_WITHIN`] after the first such write, at the next [`Self::flush`] that finds
    /// enough waiting, or with the next write that does wake it (a thread already at work
    /// takes it too). The engine queues its samples this way: one wake and one transaction
    /// for several rounds, where a wake per sample cost a context switch and a commit each
    /// (docs/BENCHMARKS.md, "Fewer wakes and reads per sample"), and a commit per round
    /// wrote the same index pages again each second.
    pub fn keep_later(&self, write: Write) {
        self.push(Writer::retried(write), true);
    }

    /// Wakes the writer thread for the writes queued by [`Self::keep_later`], if there are at
    /// least `at_least` of them (1: any).
    pub fn flush(&self, at_least: usize) {
        let mut q = self.shared.lock();
        if q.unannounced < at_least.max(1) {
            return;
        }
        q.unannounced = 0;
        q.due = Some(Instant::now());
        drop(q);
        self.shared.wake.notify_one();
    }

    /// Queues a write that is retried until stored, and waits up to `timeout` for it to be:
    /// `false` when it is still queued then (it stays queued).
    pub async fn keep_and_wait(&self, write: Write, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::sync_channel(1);
        self.push(
            Job {
                reply: Some((tx, Arc::new(AtomicU8::new(PENDING)))),
                ..Writer::retried(write)
            },
            false,
        );
        matches!(
            wait(Arc::new(Mutex::new(rx)), Some(timeout)).await,
            Ok(Ok(()))
        )
    }

    /// Queues a write and waits up to `timeout` for its one attempt. A write that has not
    /// started by then is withdrawn (it will never land); one that has is waited for. `Err`
    /// says why it was not stored; while the database is known to refuse writes, at once.
    pub async fn now(&self, write: Write, timeout: Duration) -> Result<(), String> {
        // While writes are queued behind one the database keeps refusing, say so at once:
        // waiting would only hold up the caller (the engine's loop) for the timeout.
        let state = self.state();
        if state.queued > 0
            && let Some(why) = state.degraded()
        {
            return Err(why);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let flag = Arc::new(AtomicU8::new(PENDING));
        self.push(
            Job {
                write,
                retry: false,
                reply: Some((tx, flag.clone())),
                tries: 0,
            },
            false,
        );
        let rx = Arc::new(Mutex::new(rx));
        match wait(rx.clone(), Some(timeout)).await {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err("the store's writer has stopped".into())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if flag
                    .compare_exchange(PENDING, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Err(format!(
                        "not written within {} s: writes ahead of it are waiting for the \
                         database",
                        timeout.as_secs()
                    ));
                }
                // Started: its one attempt ends within the busy timeout.
                wait(rx, None)
                    .await
                    .unwrap_or_else(|_| Err("the store's writer has stopped".into()))
            }
        }
    }

    /// How the store keeps up.
    pub fn state(&self) -> StoreState {
        let q = self.shared.lock();
        let mut s = q.state.clone();
        s.queued = q.jobs.len();
        if let (Some(since), Some((_, e))) = (q.failing_since, &q.state.failing) {
            s.failing = Some((since.elapsed().as_secs_f64(), e.clone()));
        }
        s
    }

    /// Writes what is queued, for at most `deadline`, and stops the thread. What could not be
    /// written by then is counted in the log.
    pub fn close(&self, deadline: Duration) {
        {
            let mut q = self.shared.lock();
            q.closing = true;
        }
        self.shared.wake.notify_all();
        let started = Instant::now();
        loop {
            let left = self.shared.lock().jobs.len();
            if left == 0 {
                break;
            }
            if started.elapsed() >= deadline {
                tracing::error!("stopping with {left} store writes not written");
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        {
            let mut q = self.shared.lock();
            q.jobs.clear();
        }
        self.shared.wake.notify_all();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// Waits for a write's outcome on the blocking pool, in real time: the writer thread works in
/// real time, whatever clock the caller's runtime keeps (tests pause it).
async fn wait(
    rx: Arc<Mutex<Outcome>>,
    timeout: Option<Duration>,
) -> Result<Result<(), String>, mpsc::RecvTimeoutError> {
    tokio::task::spawn_blocking(move || {
        let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
        match timeout {
            Some(t) => rx.recv_timeout(t),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        }
    })
    .await
    .unwrap_or(Err(mpsc::RecvTimeoutError::Disconnected))
}

fn run(shared: &Shared, store: &Store) {
    let mut pause = Duration::from_millis(100);
    loop {
        // Take the next write, or a run of samples, leaving them queued until stored.
        let (samples, single) = {
            let mut q = shared.lock();
            loop {
                if let Some(front) = q.jobs.front() {
                    let withdrawn = !front.retry
                        && front
                            .reply
                            .as_ref()
                            .is_some_and(|(_, f)| f.load(Ordering::Acquire) == WITHDRAWN);
                    if withdrawn {
                        q.jobs.pop_front();
                        continue;
                    }
                    let wait = q.due.map(|d| d.saturating_duration_since(Instant::now()));
                    match wait {
                        Some(w) if !w.is_zero() && !q.closing => {
                            q = shared
                                .wake
                                .wait_timeout(q, w)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0;
                            continue;
                        }
                        _ => break,
                    }
                }
                // Empty (written, given up or withdrawn): the next later write sets the time.
                q.due = None;
                if q.closing {
                    return;
                }
                q = shared.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            let front = q.jobs.front_mut().expect("a job is queued");
            if let Some((_, flag)) = &front.reply {
                let _ =
                    flag.compare_exchange(PENDING, STARTED, Ordering::AcqRel, Ordering::Acquire);
            }
            let samples: Vec<MetricRow> = q
                .jobs
                .iter()
                .take(BATCH)
                .map_while(|j| match &j.write {
                    Write::Metric(m) => Some(m.clone()),
                    _ => None,
                })
                .collect();
            let front = q.jobs.front().expect("a job is queued");
            let single = samples.is_empty().then(|| front.write.clone());
            (samples, single)
        };
        let result = match &single {
            Some(w) => w.apply(store),
            None => store.insert_metrics(&samples),
        };
        let mut q = shared.lock();
        let n = if single.is_some() { 1 } else { samples.len() };
        match result {
            Ok(()) => {
                pause = Duration::from_millis(100);
                if q.failing_since.take().is_some() {
                    tracing::info!("the database takes writes again");
                }
                q.state.failing = None;
                for _ in 0..n {
                    if let Some(job) = q.jobs.pop_front() {
                        if matches!(job.write, Write::Metric(_)) {
                            q.samples -= 1;
                        }
                        if let Some((tx, _)) = job.reply {
                            let _ = tx.send(Ok(()));
                        }
                    }
                }
                q.since_empty += n;
                if q.jobs.is_empty() {
                    // Under the lock that emptied it: a later write queued from now on sets
                    // its own time (not the one this batch was written by).
                    q.due = None;
                    q.drained();
                }
            }
            Err(e) => {
                q.state.errors += 1;
                let message = format!("{e:#}");
                if q.failing_since.is_none() {
                    q.failing_since = Some(Instant::now());
                    tracing::error!("a store write failed: {message}; retrying");
                }
                q.state.failing = Some((0.0, message.clone()));
                let lasting = !autoscaler_store::passes(&e);
                let front = q.jobs.front_mut().expect("the job is still queued");
                front.tries += 1;
                let give_up = !front.retry || (lasting && front.tries >= PERMANENT_TRIES);
                if give_up {
                    let job = q.jobs.pop_front().expect("the job is still queued");
                    if matches!(job.write, Write::Metric(_)) {
                        q.samples -= 1;
                    }
                    if job.retry {
                        q.state.lost_writes += 1;
                        tracing::error!(
                            "a store write was refused {PERMANENT_TRIES} times and is \
                             dropped: {message}; write: {:?}",
                            job.write
                        );
                    }
                    if let Some((tx, _)) = job.reply {
                        let _ = tx.send(Err(message));
                    }
                    continue;
                }
                drop(q);
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(unit: &UnitName, at: i64) -> Write {
        Write::Metric(MetricRow {
            unit: unit.clone(),
            at: Millis(at),
            cpu_percent: 10.0,
            cpu_cores: 0.1,
            memory_bytes: 1 << 20,
            tasks: 1,
            process_count: 1,
            agent_count: 0,
            testing_agent_count: 0,
            api_quota_remaining: None,
            features_pending: None,
            cpu_quota: None,
            memory_max: None,
            tasks_max: None,
            throttled_ratio: None,
            cpu_pressure: None,
            memory_pressure: None,
            oom_kills: 0,
        })
    }

    /// A burst's room is given back once the queue is empty; a steady round's is kept.
    #[test]
    fn a_drained_queue_gives_back_what_a_burst_took() {
        let unit = UnitName::parse("a.service").expect("a unit name");
        let job = |at| Writer::retried(sample(&unit, at));
        let mut q = Queue::default();
        q.jobs.extend((0..5000).map(job));
        q.jobs.clear();
        q.since_empty = 5000;
        q.drained();
        assert!(q.jobs.capacity() >= 5000, "a round as large keeps its room");
        q.jobs.extend((0..100).map(job));
        q.jobs.clear();
        q.since_empty = 100;
        q.drained();
        assert!(q.jobs.capacity() <= 256, "{}", q.jobs.capacity());
        assert_eq!(q.since_empty, 0);
    }

    fn stored(store: &Store, unit: &UnitName) -> usize {
        store
            .metrics_since(unit, Millis(0), Millis(i64::MAX))
            .expect("reading the samples back")
            .len()
    }

    /// Samples queued with `keep_later` wait, while the thread is idle, for a flush with
    /// enough of them, a write that wakes the thread (which takes them along, in order), or
    /// `LATER_WITHIN` after the first of them.
    #[test]
    fn samples_kept_for_later_are_written_at_the_flush() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let unit = UnitName::parse("a.service").expect("a unit name");
        let store = Store::open(&dir.path().join("a.db"), &unit).expect("opening the store");
        let writer = Writer::start(store.clone()).expect("starting the writer");
        let settle = || std::thread::sleep(Duration::from_millis(300));
        // The samples stored once `n` are, or after LATER_WITHIN and 10 s.
        let stored_by_then = |n: usize| {
            let deadline = Instant::now() + LATER_WITHIN + Duration::from_secs(10);
            while stored(&store, &unit) < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            stored(&store, &unit)
        };
        // The thread waits for work (one already awake takes whatever is queued).
        settle();
        writer.keep_later(sample(&unit, 1_000));
        writer.keep_later(sample(&unit, 2_000));
        settle();
        assert_eq!(
            stored(&store, &unit),
            0,
            "nothing is written before a flush"
        );
        writer.flush(3);
        settle();
        assert_eq!(
            stored(&store, &unit),
            0,
            "two samples are fewer than the three asked"
        );
        assert_eq!(writer.state().queued, 2);
        // Any number will do: the thread wakes and writes both (not `close`, which would
        // write them anyway).
        writer.flush(1);
        assert_eq!(stored_by_then(2), 2, "the flush woke the thread");
        writer.close(Duration::from_secs(10));

        // A write that wakes the thread takes the samples queued before it along.
        let writer = Writer::start(store.clone()).expect("starting the writer again");
        writer.keep_later(sample(&unit, 3_000));
        writer.keep(sample(&unit, 4_000));
        assert_eq!(stored_by_then(4), 4);

        // Left alone, they are written LATER_WITHIN after the first of them, together.
        let first = Instant::now();
        writer.keep_later(sample(&unit, 5_000));
        settle();
        writer.keep_later(sample(&unit, 6_000));
        assert_eq!(stored(&store, &unit), 4, "not yet");
        assert_eq!(stored_by_then(6), 6, "written without a flush");
        assert!(
            first.elapsed() >= LATER_WITHIN,
            "written after {:?}",
            first.elapsed()
        );
        writer.close(Duration::from_secs(10));
    }
}
