//! The event loop: one task owns every unit, wakes on one [`Event`] at a time and publishes a
//! snapshot after each.
//!
//! A due check does not read the unit here: it starts a reading task ([`super::sampler`]) and
//! schedules the next check; the reading comes back as an event and is then stored, decided
//! on and, when the decision says so, applied. So the loop never sleeps and never waits on a
//! file or on systemd's answer about a unit; only applying a change (under
//! [`super::APPLY_TIMEOUT`]) and a manual scale's look at the unit are awaited here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use autoscaler_core::{Bounds, Host, Millis, Mode, UnitName};
use autoscaler_store::Store;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::IDLE_WAKE;
use super::apply::Change;
use super::clock::{CLOCK_JUMP_MS, Timeline};
use super::events::{self, BURST_SPACING, BURST_WINDOW, Key, Note, Seen, THRESHOLD_LEAD, Watch};
use super::writer::{self, Write, Writer};
use autoscaler_cgroup::events::Source;

/// The smallest move of the wall clock against the timeline that stored times follow (see
/// `watch_the_wall_clock`): well above the jitter of reading two clocks, well below a jump.
const OFFSET_STEP_MS: i64 = 100;

/// How long a stopping engine waits for its queued store writes.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);
use super::handle::{Command, Reply};
use super::sampler::{self, Outcome, Reader, Reading};
use super::state::UnitState;
use super::{Actuator, Clock, EngineError, LoopStats, Probe, SAMPLE_TIMEOUT, Snapshot, Units};

/// The most readings handled before the snapshot is published and the engine lets other
/// tasks run: what is already back when one comes in is handled first, so a publish (a copy
/// of the unit list) serves many. Readers send their readings in batches of up to 32, so a
/// backlog is the rule at 1000 units; a task woken on the engine's worker meanwhile (an API
/// request) waits for the batch, and 16 readings take about a millisecond there.
const READINGS_PER_PUBLISH: usize = 16;

/// How early a check may start to go with a round: checks due within this of the one whose
/// timer fired start with it. Units started, restarted or late at different moments are
/// due a few milliseconds apart ever after; each timer firing was then a round of its own,
/// with its own reader woken, its own batch for the engine and its own transaction (about
/// eight a second at 50 units; docs/BENCHMARKS.md, "Who wakes whom"). 50 ms is 5% of the
/// shortest interval (1 s), and the schedule keeps each unit's own phase.
const ROUND_SLACK: Duration = Duration::from_millis(50);

/// How soon after a unit's first reading the second is taken: a CPU rate needs two. The
/// second belongs to the same check: it does not move the unit's schedule.
const FIRST_RATE_DELAY: Duration = Duration::from_millis(250);

/// Why the engine task woke up.
enum Event {
    Due(usize, Instant),
    /// The second reading of a unit's first check (see [`FIRST_RATE_DELAY`]).
    FollowUp(usize),
    /// A batch of readings, as a reader sends them.
    Readings(Vec<Reading>),
    /// Time to look at the readers at work (see [`Reader::look`]).
    Look,
    /// The kernel woke a unit, or a unit's notifications were armed.
    Note(Note),
    Command(Command),
    /// Nothing was due for [`IDLE_WAKE`]: the loop goes round anyway, so whoever watches
    /// its rounds (the systemd watchdog) hears from it.
    Idle,
    Shutdown,
}

pub(super) struct Engine<P, A> {
    pub(super) units: Vec<UnitState>,
    /// When each unit's next check is due.
    pub(super) due: Vec<Instant>,
    /// When a unit's first check takes its second reading, if it is waiting for one.
    follow_up: Vec<Option<Instant>>,
    /// A unit whose reading is under way gets no second one.
    reading: Vec<bool>,
    /// Where readings are taken (see [`Reader`]).
    reader: Reader<P>,
    /// The units whose reading starts at the end of this round, with when their check
    /// started: handed to the reader together.
    to_read: Vec<(usize, UnitName, Instant)>,
    /// Each unit's kernel notifications, once armed.
    watches: Vec<Option<Watch>>,
    /// A unit woken by the kernel is checked every [`BURST_SPACING`] until this, and why.
    bursts: Vec<Option<(Instant, Seen)>>,
    /// Numbers the watches, so a late report of a replaced one is ignored.
    generation: u64,
    pub(super) host: Host,
    pub(super) store: Store,
    /// Where every store write goes (see [`Writer`]).
    pub(super) writer: Writer,
    pub(super) probe: Arc<P>,
    pub(super) actuator: A,
    pub(super) clock: Arc<dyn Clock>,
    /// The time the rules count in (see [`Timeline`]).
    timeline: Timeline,
    /// How far the wall clock is from the timeline, as of the last round: what turns a
    /// timeline time into the wall-clock time stored for it.
    wall_offset_ms: i64,
    pub(super) loop_stats: LoopStats,
    /// Where the fronts read the state: published after every event, and while a change is
    /// being applied (so `applying` can be seen).
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
    readings_rx: Option<mpsc::Receiver<Vec<Reading>>>,
    notes_tx: mpsc::Sender<Note>,
    notes_rx: Option<mpsc::Receiver<Note>>,
    /// Bumped at the top of every round of the loop: its liveness, for the watchdog.
    rounds: watch::Sender<u64>,
    /// Each unit's snapshot as last published: an event about one unit rebuilds only that
    /// unit's (at 1000 units, rebuilding all of them after every reading was a million unit
    /// snapshots a second).
    published: Units,
}

impl<P: Probe, A: Actuator> Engine<P, A> {
    pub(super) fn new(
        units: Vec<UnitState>,
        host: Host,
        store: Store,
        probe: Arc<P>,
        actuator: A,
        clock: Arc<dyn Clock>,
        snapshot_tx: watch::Sender<Arc<Snapshot>>,
    ) -> anyhow::Result<Self> {
        let writer = Writer::start(store.clone())?;
        let now = clock.instant();
        let timeline = Timeline::starting_now(clock.as_ref());
        let (readings_tx, readings_rx) = mpsc::channel(64);
        // Wakes beyond this many waiting are dropped: their units are being checked anyway.
        let (notes_tx, notes_rx) = mpsc::channel(256);
        Ok(Engine {
            timeline,
            wall_offset_ms: 0,
            due: units.iter().map(|_| now).collect(),
            follow_up: units.iter().map(|_| None).collect(),
            reading: units.iter().map(|_| false).collect(),
            reader: Reader::new(probe.clone(), clock.clone(), timeline, readings_tx),
            to_read: Vec::new(),
            watches: units.iter().map(|_| None).collect(),
            bursts: units.iter().map(|_| None).collect(),
            generation: 0,
            units,
            host,
            store,
            writer,
            probe,
            actuator,
            clock,
            loop_stats: LoopStats::default(),
            snapshot_tx,
            readings_rx: Some(readings_rx),
            notes_tx,
            notes_rx: Some(notes_rx),
            rounds: watch::Sender::new(0),
            published: Units::default(),
        })
    }

    /// Now, on the timeline the rules count in.
    pub(super) fn now(&self) -> Millis {
        self.timeline.at(self.clock.instant())
    }

    /// The wall-clock time to store for the timeline time `at`.
    pub(super) fn wall(&self, at: Millis) -> Millis {
        Millis(at.0.saturating_add(self.wall_offset_ms))
    }

    /// Notices a wall clock that jumped since the last round: rules go on by the timeline,
    /// stored times follow the wall clock from now on, and the log and `/metrics` say so.
    fn watch_the_wall_clock(&mut self) {
        let offset = self.clock.wall().0 - self.now().0;
        let jump = offset - self.wall_offset_ms;
        if jump.abs() > CLOCK_JUMP_MS {
            self.loop_stats.clock_jumps += 1;
            tracing::warn!(
                "the wall clock jumped {} by {:.1} s; cooldowns, streaks and the rate limit go \
                 on by the monotonic clock, and stored times follow the wall clock",
                if jump > 0 { "ahead" } else { "back" },
                jump.abs() as f64 / 1000.0
            );
        }
        // Reading the two clocks one after the other differs by a millisecond now and then;
        // following that would put two changes 9.999 s apart in the history under a 10 s
        // cooldown. The offset follows the wall clock in steps, not in jitter.
        if jump.abs() >= OFFSET_STEP_MS {
            self.wall_offset_ms = offset;
        }
    }

    /// The loop's round counter, for the handle.
    pub(super) fn rounds(&self) -> watch::Receiver<u64> {
        self.rounds.subscribe()
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        tokio::pin!(shutdown);
        let (Some(mut readings), Some(mut notes)) = (self.readings_rx.take(), self.notes_rx.take())
        else {
            return;
        };
        self.reconcile().await;
        self.publish();
        // When to look at the readers next, while one is at work.
        let mut look: Option<Instant> = None;
        loop {
            self.rounds.send_modify(|n| *n = n.wrapping_add(1));
            self.watch_the_wall_clock();
            let (next, when) = self
                .due
                .iter()
                .enumerate()
                .min_by_key(|(_, t)| **t)
                .map(|(i, t)| (i, *t))
                .unwrap_or((0, self.clock.instant() + Duration::from_secs(3600)));
            let follow_up = self
                .follow_up
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.map(|t| (i, t)))
                .min_by_key(|(_, t)| *t)
                .filter(|(_, t)| *t < when);
            let (timer, timer_event) = match follow_up {
                Some((i, t)) => (t, Event::FollowUp(i)),
                None => (when, Event::Due(next, when)),
            };
            let idle = self.clock.instant() + IDLE_WAKE;
            let event = tokio::select! {
                biased;
                () = &mut shutdown => Event::Shutdown,
                Some(cmd) = commands.recv() => Event::Command(cmd),
                Some(batch) = readings.recv() => Event::Readings(batch),
                Some(n) = notes.recv() => Event::Note(n),
                () = tokio::time::sleep_until(look.unwrap_or(idle)), if look.is_some() => {
                    Event::Look
                }
                () = tokio::time::sleep_until(timer) => timer_event,
                () = tokio::time::sleep_until(idle), if idle < timer => Event::Idle,
            };
            // What an event changed is published before the next one is handled: a command
            // may touch any unit, the others only their own.
            match event {
                Event::Shutdown => break,
                // Nothing changed: the round counter moved, no snapshot to publish.
                Event::Idle => continue,
                Event::Command(cmd) => self.handle(cmd).await,
                Event::Due(i, when) => {
                    // A unit's snapshot is rebuilt only when starting its check changed it
                    // (a stuck reading): the reading's outcome rebuilds it anyway.
                    if self.start_check(i, when) {
                        self.refresh(i);
                    }
                    // Every other check due by now, or within [`ROUND_SLACK`], starts in the
                    // same round: a timer fires at most once a millisecond, and at 1000 units
                    // a second one check per firing fell behind.
                    let soon = self.clock.instant() + ROUND_SLACK;
                    for k in 0..self.due.len() {
                        if k != i && self.due[k] <= soon {
                            let when = self.due[k];
                            if self.start_check(k, when) {
                                self.refresh(k);
                            }
                        }
                    }
                    self.send();
                }
                Event::FollowUp(i) => {
                    self.follow_up[i] = None;
                    if self.start_read(i, self.clock.instant()) {
                        self.refresh(i);
                    }
                    self.send();
                }
                Event::Readings(batch) => self.finish_checks(batch).await,
                Event::Look => {
                    look = None;
                    let readings = self.reader.look();
                    self.finish_checks(readings).await;
                }
                Event::Note(Note::Wake { unit, source }) => {
                    self.wake(unit, source);
                    self.publish_unit(unit);
                }
                Event::Note(Note::Armed {
                    unit,
                    generation,
                    sources,
                }) => {
                    let current = self.watches[unit].as_ref().map(|w| w.generation);
                    if current == Some(generation) {
                        self.units[unit].armed(sources);
                        self.publish_unit(unit);
                    }
                }
            }
            // Samples go to the store several rounds together (within
            // [`writer::LATER_WITHIN`]): a round's readings come back in several batches, and
            // a transaction per batch, or per round, wrote the same index pages again each
            // time. A large round has its samples written as they fill a transaction.
            self.writer.flush(writer::BATCH);
            // The readings this round asked for start together.
            let due = std::mem::take(&mut self.to_read);
            self.reader.read(due);
            if self.reader.busy() {
                look.get_or_insert(self.clock.instant() + sampler::TICK);
            } else {
                look = None;
            }
        }
        // What is queued is written before the engine says it stopped, for a while.
        let writer = self.writer.clone();
        let _ = tokio::task::spawn_blocking(move || writer.close(CLOSE_DEADLINE)).await;
        tracing::info!("engine stopped");
    }

    /// Handles readings, [`READINGS_PER_PUBLISH`] to a publish: one publish serves many, and
    /// an API request waits for a few, not for all.
    async fn finish_checks(&mut self, readings: Vec<Reading>) {
        let mut batch = readings.into_iter().peekable();
        while batch.peek().is_some() {
            for r in batch.by_ref().take(READINGS_PER_PUBLISH) {
                let i = r.unit;
                self.finish_check(r).await;
                self.refresh(i);
            }
            self.send();
            tokio::task::yield_now().await;
        }
    }

    /// Publishes the current state of every unit to the fronts.
    pub(super) fn publish(&mut self) {
        self.rebuild();
        self.send();
    }

    fn rebuild(&mut self) {
        self.published = Units::from_vec(
            self.units
                .iter()
                .map(|u| Arc::new(u.snapshot(&self.host)))
                .collect(),
        );
    }

    /// Publishes the current state, where only unit `i` changed since the last publish.
    fn publish_unit(&mut self, i: usize) {
        self.refresh(i);
        self.send();
    }

    /// Rebuilds unit `i`'s snapshot, to be published by the next [`Self::send`].
    fn refresh(&mut self, i: usize) {
        if i < self.units.len() && self.published.len() == self.units.len() {
            self.published
                .set(i, Arc::new(self.units[i].snapshot(&self.host)));
        } else {
            self.rebuild();
        }
    }

    fn send(&self) {
        self.snapshot_tx.send_replace(Arc::new(Snapshot {
            units: self.published.clone(),
            strategy: self.actuator.strategy(),
            host: self.host,
            loop_stats: self.loop_stats,
        }));
    }

    pub(super) fn index(&self, unit: &UnitName) -> Result<usize, EngineError> {
        self.units
            .iter()
            .position(|u| &u.name == unit)
            .ok_or_else(|| EngineError::UnknownUnit {
                unit: unit.to_string(),
                managed: self.units.iter().map(|u| u.name.to_string()).collect(),
            })
    }

    /// Runs a command, publishes what it changed, then answers it: a front that reads the
    /// state after the answer sees the change (read your writes).
    async fn handle(&mut self, cmd: Command) {
        fn answer<T: Send + 'static>(
            reply: Reply<T>,
            r: Result<T, EngineError>,
        ) -> Box<dyn FnOnce() + Send> {
            Box::new(move || {
                let _ = reply.send(r);
            })
        }
        let answer = match cmd {
            Command::SetMode(unit, mode, reply) => answer(reply, self.set_mode(&unit, mode).await),
            Command::SetPolicy(unit, policy, reply) => {
                let r = match self.index(&unit) {
                    Ok(i) => self
                        .update_config(i, |c| Ok(c.with_policy(policy)))
                        .await
                        .map(|_| self.units[i].snapshot(&self.host)),
                    Err(e) => Err(e),
                };
                answer(reply, r)
            }
            Command::SetConfig(unit, changes, reply) => {
                let r = match self.index(&unit) {
                    Ok(i) => self.update_config(i, |c| Ok(c.apply(&changes)?)).await,
                    Err(e) => Err(e),
                };
                answer(reply, r)
            }
            Command::Scale(unit, req, reply) => {
                let r = match self.index(&unit) {
                    Ok(i) => self.manual_scale(i, req).await,
                    Err(e) => Err(e),
                };
                answer(reply, r)
            }
        };
        self.publish();
        answer();
    }

    /// A unit's check is due: schedule the next one, and start reading it unless a reading
    /// is still under way or stuck. Returns whether the unit's state changed (see
    /// [`Self::start_read`]).
    fn start_check(&mut self, i: usize, when: Instant) -> bool {
        let started = self.clock.instant();
        let lag = started.saturating_duration_since(when).as_secs_f64();
        let s = &mut self.loop_stats;
        s.last_lag_seconds = lag;
        s.max_lag_seconds = s.max_lag_seconds.max(lag);
        // Schedule from when it was due, not from when it ran: no drift builds up.
        let interval = self.units[i].interval();
        let mut next_due = when + interval;
        if next_due < started {
            next_due = started + interval;
        }
        self.due[i] = next_due;
        self.start_read(i, started)
    }

    /// Has unit `i` read at the end of this round, unless a reading is still under way or
    /// stuck. Returns whether the unit's state changed: a stuck reading makes it unavailable.
    fn start_read(&mut self, i: usize, started: Instant) -> bool {
        if self.reading[i] {
            return false;
        }
        if self.reader.is_stuck(i) {
            let limits = self.units[i].limits();
            self.units[i].unavailable(
                format!(
                    "an earlier read of its cgroup, processes or AutoCoder's databases did not \
                     finish within {} s and has still not returned: a file or database is stuck",
                    SAMPLE_TIMEOUT.as_secs()
                ),
                limits,
            );
            return true;
        }
        self.reading[i] = true;
        self.to_read.push((i, self.units[i].name.clone(), started));
        false
    }

    /// The kernel says unit `i` starves, nears its memory limit or lost a process: check it
    /// now, and again every [`BURST_SPACING`] for [`BURST_WINDOW`] after the last such event.
    fn wake(&mut self, i: usize, source: Source) {
        let now = self.clock.instant();
        self.units[i].woken(source);
        // Only a unit scaled automatically gains from checks sooner: in `disabled` and
        // `manual` nothing would be done with them, and samples keep their interval.
        if self.units[i].config.mode() != Mode::Enabled {
            return;
        }
        let until = now + BURST_WINDOW;
        let first = self.bursts[i].is_none();
        // Every event of the burst is named in the reason of a change it leads to.
        let seen = self.bursts[i]
            .map_or(Seen::default(), |(_, seen)| seen)
            .with(source);
        self.bursts[i] = Some((until, seen));
        if first && !self.reading[i] && self.follow_up[i].is_none() {
            self.start_read(i, now);
        }
    }

    /// After a reading of unit `i`: the next check of its burst, if it is in one. Returns
    /// the events of the burst the reading belongs to, if any.
    fn go_on_with_burst(&mut self, i: usize) -> Option<Seen> {
        let (until, seen) = self.bursts[i]?;
        let now = self.clock.instant();
        if now < until {
            self.follow_up[i] = Some(now + BURST_SPACING);
        } else {
            self.bursts[i] = None;
        }
        Some(seen)
    }

    /// Arms unit `i`'s kernel notifications, unless they are armed for this cgroup, process
    /// and memory limit already.
    fn arm(&mut self, i: usize, view: &super::UnitView) {
        let threshold = view.limits.memory_max.map(|max| {
            let share = f64::from(self.units[i].config.scale_up_memory_percent()) / 100.0;
            (max as f64 * share * THRESHOLD_LEAD) as u64
        });
        if self.watches[i]
            .as_ref()
            .is_some_and(|w| w.key.matches(view, threshold))
        {
            return;
        }
        let key = Key::of(view, threshold);
        self.generation += 1;
        // The old watch, dropped here, takes its descriptors with it.
        self.watches[i] = Some(events::watch(
            self.probe.clone(),
            i,
            self.units[i].name.clone(),
            view.clone(),
            key,
            self.generation,
            self.notes_tx.clone(),
        ));
    }

    /// A unit's reading came in: store it, decide, and apply what the decision says. Failures
    /// are recorded on the unit and the loop goes on.
    async fn finish_check(&mut self, r: Reading) {
        let i = r.unit;
        self.reading[i] = false;
        let event = self.go_on_with_burst(i);
        let s = &mut self.loop_stats;
        s.checks += 1;
        s.last_check_seconds = self
            .clock
            .instant()
            .saturating_duration_since(r.started)
            .as_secs_f64();
        let (view, sampled, at) = match r.outcome {
            Outcome::Unavailable { reason, limits } => {
                self.units[i].unavailable(reason, limits);
                return;
            }
            Outcome::Sampled { view, sampled, at } => (view, sampled, at),
        };
        self.arm(i, &view);
        // A CPU rate needs two readings: the first one is kept, and the second follows soon
        // as a timer event, not a sleep.
        if self.units[i].prime(&sampled, view.limits) {
            self.follow_up[i] = Some(self.clock.instant() + FIRST_RATE_DELAY);
            return;
        }
        let name = self.units[i].name.clone();
        let unit = &mut self.units[i];
        let bounds = Bounds::new(&unit.config, &self.host);
        let decision = unit.observe(*sampled, view.limits, bounds.as_ref().ok(), &self.host, at);
        let wall_offset = self.wall_offset_ms;
        // Written with the rest of its round (the loop flushes).
        for w in unit.writes(wall_offset) {
            self.writer.keep_later(w);
        }
        if unit.should_prune(at) {
            let keep_ms = i64::from(unit.config.metrics_retention_hours()) * 3_600_000;
            // Retention counts the time that really passed: a wall clock that jumped ahead
            // since the start does not age the samples stored before it.
            let now = Millis(at.0 + wall_offset.min(0));
            self.writer.keep_later(Write::Prune {
                unit: name.clone(),
                now,
                keep_ms,
            });
        }
        if let Err(e) = &bounds {
            self.units[i].decision_note = format!("no automatic action: {e}").into();
            return;
        }
        let Some(d) = decision else { return };
        let Some((action, new, trigger)) = d.change else {
            return;
        };
        // A failure is recorded on the unit and in the history; the loop goes on.
        let change = Change {
            action,
            trigger,
            reason: match event {
                Some(seen) => format!("{}; event: {seen}", d.reason()),
                None => d.reason(),
            },
            old: view.limits,
            new,
            at,
            was_running: view.is_running(),
        };
        // Boxed: a change is rare, and its future, inline, made every reading's future as
        // large (copied in and out at each one).
        let _ = Box::pin(self.apply(i, change)).await;
    }
}
