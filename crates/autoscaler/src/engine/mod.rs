//! The engine: the one owner of every managed unit's state, and the only place that acts.
//!
//! The data flows one way: collect -> store -> decide -> apply. A single task owns the units;
//! it wakes on a closed set of events (a unit's check is due, a unit's reading has come in, a
//! command from a front end, shutdown) and handles one at a time, so no lock guards the state.
//! Front ends hold an [`EngineHandle`]: commands go through a channel and get their answer
//! back, reads come from the [`Snapshot`] the task publishes after every event (no waiting
//! behind a check), and history comes straight from the store.
//!
//! The engine talks to the world through two traits defined here, where they are consumed:
//! [`Probe`] (what the unit is and uses) and [`Actuator`] (set its limits), and reads the time
//! from a [`Clock`] it is given. The daemon plugs in systemd and cgroup adapters and the
//! system clock; tests plug in the testkit's fakes. Nothing here knows D-Bus, file formats,
//! JSON or HTTP.
//!
//! # Layout
//!
//! - `mod.rs`: the traits, the setup and [`start`].
//! - [`clock`]: the [`Clock`] trait and the [`SystemClock`].
//! - `errors.rs`: [`ApplyError`] (an actuator's failure and its [`Rollback`]) and
//!   [`EngineError`] (what a front shows).
//! - `handle.rs`: [`EngineHandle`], the fronts' access; `range.rs`: its range query.
//! - `run.rs`: the event loop and scheduling.
//! - `sampler.rs`: units' readings, taken off the engine task by a reader on the blocking
//!   pool that reads the due units in a row, looked at by the engine while it works, for a
//!   read that hangs.
//! - `apply.rs`: config changes, manual scales and applying limits, with their brakes; every
//!   change is journalled in the store before systemd is asked.
//! - [`writer`]: every store write, on one thread with a queue, retried until stored.
//! - `recover.rs`: at startup, the journal's unfinished changes settled with what systemd
//!   reports.
//! - `state.rs`: one unit's state and the snapshot fronts read.
//!
//! **Invariant:** the engine task never blocks and never waits on a unit's probe: readings
//! are taken off it (systemd's view from a cache, or else in one task per round, the
//! synchronous [`Probe::sample`] by a reader on tokio's blocking pool) under a timeout, and
//! come back as events. A stuck
//! read shows on its own unit and delays the others by about `sampler::STALL` (200 ms).

mod apply;
pub mod clock;
mod errors;
mod events;
mod handle;
mod range;
mod recover;
mod run;
mod sampler;
mod state;
pub mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use autoscaler_core::{Counters, Host, Limits, Millis, Signals, UnitName};
use autoscaler_store::Store;
use tokio::sync::{mpsc, watch};

pub use clock::{Clock, SystemClock, now};
pub use errors::{ApplyError, ApplyErrorKind, EngineError, Rollback};
pub use events::SourceState;
pub use handle::EngineHandle;
pub use state::{Failure, Observation, Snapshot, UnitSnapshot, Units};

use run::Engine;
use state::UnitState;

/// What systemd says about a unit at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitView {
    pub active_state: String,
    pub main_pid: Option<u32>,
    pub control_group: Option<String>,
    pub limits: Limits,
}

impl UnitView {
    /// Running, or on its way (a unit being started or reloaded counts).
    pub fn is_running(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "reloading"
        )
    }
}

/// Reads a unit's state, usage and workload. Implemented by the daemon's adapters.
pub trait Probe: Send + Sync + 'static {
    /// The unit as systemd sees it now; `Err` says why it cannot be managed (not loaded, no bus).
    fn inspect(&self, unit: &UnitName) -> impl Future<Output = anyhow::Result<UnitView>> + Send;
    /// What [`Probe::inspect`] would answer at once, without waiting (a cache of systemd's
    /// signals); `None`: ask with `inspect`. The engine's reader takes a round's cached units
    /// straight to the cgroup reads, without a task, future or timer for each.
    fn inspect_now(&self, _unit: &UnitName) -> Option<UnitView> {
        None
    }
    /// Cgroup counters and workload signals of a running unit. It may block on files (cgroup,
    /// /proc, AutoCoder's SQLite): the engine's reader runs it on tokio's blocking pool, one
    /// unit after the other, under [`SAMPLE_TIMEOUT`], never on the engine's task.
    fn sample(&self, unit: &UnitName, view: &UnitView, at: Millis) -> anyhow::Result<Sampled>;
    /// Arms the kernel's notifications for a running unit, with a memory usage threshold of
    /// `threshold` bytes where the host has them (see [`autoscaler_cgroup::events`]). It may
    /// block on files, like `sample`. `None`: this probe offers no notifications, and the unit
    /// is checked at its interval only.
    fn arm(
        &self,
        _unit: &UnitName,
        _view: &UnitView,
        _threshold: Option<u64>,
    ) -> Option<autoscaler_cgroup::events::Armed> {
        None
    }
}

/// One reading of a running unit.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sampled {
    pub counters: Counters,
    pub signals: Signals,
    /// The feature id of each running agent (`--feature-id`), for per-feature cost.
    pub features: Vec<Option<String>>,
}

/// Sets a unit's limits. Implemented by the daemon's adapters (live, restart, dry-run).
pub trait Actuator: Send + Sync + 'static {
    /// Applies `new` and returns the limits read back afterwards. `new` is the unit's whole
    /// set of limits and `old` its current one: only the limits that differ are written
    /// ([`Limits::changes_from`]). On failure the actuator has already tried to restore `old`;
    /// the error says what failed and whether that worked.
    fn apply(
        &self,
        unit: &UnitName,
        old: &Limits,
        new: &Limits,
    ) -> impl Future<Output = Result<Limits, ApplyError>> + Send;
    /// After a restart, for a change the previous daemon journalled and never finished: undoes
    /// whatever of it the strategy left half done (the restart strategy's unit file backup),
    /// and says how that went. `None`: nothing was left half done; what systemd reports now
    /// tells whether the change took.
    fn recover(
        &self,
        unit: &UnitName,
        was_running: bool,
    ) -> impl Future<Output = Option<Rollback>> + Send;
    /// "live", "restart" or "dry-run".
    fn strategy(&self) -> &'static str;
}

/// The most limit changes one unit gets per minute, automatic and manual together: the
/// brake behind cooldowns, for requests that skip them (manual scales, OOM bumps) and for
/// a client that loops. systemd itself refuses more than 5 restarts in 10 s.
pub const MAX_CHANGES_PER_MINUTE: usize = 12;

/// How long systemd may take to apply limits (a restart waits for the unit to settle, and a
/// rollback restarts it again) and to describe a unit, before the engine moves on.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(60);
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading a unit's cgroup, processes and AutoCoder's databases may take. The reads
/// are local files and SQLite with a 500 ms busy timeout each: seconds mean something is stuck.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest the loop sleeps without going round, even when no check is due for longer.
/// Going round idle costs one counter bump; it bounds how short a watchdog period can be.
pub const IDLE_WAKE: Duration = Duration::from_secs(1);

/// One managed unit as the engine starts it.
#[derive(Debug, Clone)]
pub struct UnitSetup {
    pub name: UnitName,
    /// Which manager runs it ("user" or "system"), for the fronts to show.
    pub manager: &'static str,
}

/// What the engine needs besides its adapters.
pub struct EngineSetup {
    pub units: Vec<UnitSetup>,
    pub host: Host,
    pub store: Store,
    /// The time: [`SystemClock`] in the daemon, a fake in tests.
    pub clock: Arc<dyn Clock>,
}

/// How punctual the loop is, for `/metrics` and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoopStats {
    pub checks: u64,
    /// How long the last check took, from when it started to when its reading was handled.
    pub last_check_seconds: f64,
    /// How late the last check started after it was due.
    pub last_lag_seconds: f64,
    pub max_lag_seconds: f64,
    pub apply_failures: u64,
    /// Store reads and writes that failed (each is logged).
    pub store_errors: u64,
    /// Times the wall clock jumped (see `clock::CLOCK_JUMP_MS`).
    pub clock_jumps: u64,
}

/// Starts the engine task. It runs until `shutdown` resolves, then returns.
pub fn start<P: Probe, A: Actuator>(
    setup: EngineSetup,
    probe: P,
    actuator: A,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(EngineHandle, tokio::task::JoinHandle<()>)> {
    let now = setup.clock.wall();
    let mut units = Vec::new();
    for u in &setup.units {
        units.push(UnitState::load(
            &setup.store,
            u.name.clone(),
            u.manager,
            now,
        )?);
    }
    let (tx, rx) = mpsc::channel(64);
    let (snapshot_tx, snap_rx) = watch::channel(Arc::new(Snapshot {
        units: Units::default(),
        strategy: actuator.strategy(),
        host: setup.host,
        loop_stats: LoopStats::default(),
    }));
    let mut engine = Engine::new(
        units,
        setup.host,
        setup.store.clone(),
        Arc::new(probe),
        actuator,
        setup.clock.clone(),
        snapshot_tx,
    )?;
    let rounds = engine.rounds();
    let writer = engine.writer.clone();
    engine.publish();
    let handle = EngineHandle {
        commands: tx,
        snapshot: snap_rx,
        rounds,
        store: setup.store,
        writer,
        clock: setup.clock,
    };
    let task = tokio::spawn(engine.run(rx, shutdown));
    Ok((handle, task))
}
