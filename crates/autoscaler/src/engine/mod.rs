//! The engine: the one owner of every managed unit's state, and the only place that acts.
//!
//! The data flows one way: collect -> store -> decide -> apply. A single task ([`run`]) owns
//! the units; it wakes on a closed set of [`Event`]s (a unit's check is due, a command from a
//! front end, shutdown) and handles one at a time, so no lock guards the state. Front ends hold
//! an [`EngineHandle`]: commands go through a channel and get their answer back, reads come
//! from the [`Snapshot`] the task publishes after every event (no waiting behind a check), and
//! history comes straight from the store.
//!
//! The engine talks to the world through two traits defined here, where they are consumed:
//! [`Probe`] (what the unit is and uses) and [`Actuator`] (set its limits). The daemon plugs
//! in systemd and cgroup adapters; nothing here knows D-Bus, file formats, JSON or HTTP.

mod range;
mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use autoscaler_core::{
    Bounds, Config, Counters, FieldValue, Host, Limits, Millis, Mode, Policy, Signals, UnitName,
};
use autoscaler_store::{HistoryRow, Store};
use tokio::sync::{mpsc, oneshot, watch};

use state::UnitState;
pub use state::{Failure, Observation, Snapshot, UnitSnapshot};

/// What systemd says about a unit at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitView {
    pub active_state: String,
    pub main_pid: Option<u32>,
    pub control_group: Option<String>,
    pub limits: Limits,
}

/// Reads a unit's state, usage and workload. Implemented by the daemon's adapters.
pub trait Probe: Send + Sync + 'static {
    /// The unit as systemd sees it now; `Err` says why it cannot be managed (not loaded, no bus).
    fn inspect(&self, unit: &UnitName) -> impl Future<Output = anyhow::Result<UnitView>> + Send;
    /// Cgroup counters and workload signals of a running unit.
    fn sample(&self, unit: &UnitName, view: &UnitView, at: Millis) -> anyhow::Result<Sampled>;
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
    /// Applies `new` and returns the limits read back afterwards. On failure the actuator has
    /// already tried to restore `old`; the error says what failed and whether that worked.
    fn apply(
        &self,
        unit: &UnitName,
        old: &Limits,
        new: &Limits,
    ) -> impl Future<Output = Result<Limits, String>> + Send;
    /// "live", "restart" or "dry-run".
    fn strategy(&self) -> &'static str;
}

/// An error a front end shows to its user; each front maps the kind to its own status.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    /// The request is wrong; nothing changed. `field` and `allowed` say what to fix.
    BadRequest {
        message: String,
        field: Option<String>,
        allowed: Option<String>,
    },
    /// The unit cannot be managed right now (not loaded, not running, no bus); nothing changed.
    Unavailable { unit: String, reason: String },
    /// No such unit is managed by this daemon.
    UnknownUnit { unit: String, managed: Vec<String> },
    /// Applying limits failed; they were rolled back and the mode set to disabled.
    ApplyFailed { message: String, history_id: i64 },
    /// Too many changes to this unit in the last minute; nothing changed.
    RateLimited { unit: String, retry_after_secs: u64 },
    /// The store or the engine itself failed.
    Internal(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
            } => {
                write!(
                    f,
                    "applying the limits failed and was rolled back (history id {history_id}): {message}"
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

/// The most limit changes one unit gets per minute, automatic and manual together: the
/// brake behind cooldowns, for requests that skip them (manual scales, OOM bumps) and for
/// a client that loops. systemd itself refuses more than 5 restarts in 10 s.
pub const MAX_CHANGES_PER_MINUTE: usize = 12;

/// A manual scale request: the limits to set (unset fields keep their value) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleRequest {
    pub limits: Limits,
    pub reason: String,
}

/// A command from a front end. One variant per state-changing operation.
#[derive(Debug)]
enum Command {
    SetMode(UnitName, Mode, Reply<UnitSnapshot>),
    SetPolicy(UnitName, Policy, Reply<UnitSnapshot>),
    SetConfig(UnitName, Vec<(String, FieldValue)>, Reply<Config>),
    Scale(UnitName, ScaleRequest, Reply<HistoryRow>),
}

type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// Why the engine task woke up.
enum Event {
    Due(usize),
    Command(Command),
    Shutdown,
}

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
}

/// The front ends' access to the engine. Cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    commands: mpsc::Sender<Command>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    store: Store,
}

impl EngineHandle {
    /// The latest published state of every unit.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Resolves an optional unit name from a front end to a managed unit (default first).
    pub fn unit(&self, name: Option<&str>) -> Result<UnitName, EngineError> {
        let snap = self.snapshot();
        let managed = || {
            snap.units
                .iter()
                .map(|u| u.name.to_string())
                .collect::<Vec<_>>()
        };
        let Some(name) = name else {
            return snap
                .units
                .first()
                .map(|u| u.name.clone())
                .ok_or(EngineError::Internal("no units".into()));
        };
        let parsed = UnitName::parse(name).map_err(|e| EngineError::BadRequest {
            message: e.to_string(),
            field: Some("unit".into()),
            allowed: Some("a systemd unit name such as autocoder-ui.service".into()),
        })?;
        if snap.units.iter().any(|u| u.name == parsed) {
            Ok(parsed)
        } else {
            Err(EngineError::UnknownUnit {
                unit: name.to_string(),
                managed: managed(),
            })
        }
    }

    pub fn unit_snapshot(&self, unit: &UnitName) -> Result<UnitSnapshot, EngineError> {
        let snap = self.snapshot();
        snap.units
            .iter()
            .find(|u| &u.name == unit)
            .cloned()
            .ok_or_else(|| EngineError::UnknownUnit {
                unit: unit.to_string(),
                managed: vec![],
            })
    }

    /// The latest observation, or 503-style `Unavailable` when the unit cannot be read.
    pub fn metrics(&self, unit: &UnitName) -> Result<Observation, EngineError> {
        let u = self.unit_snapshot(unit)?;
        match (&u.observation, &u.unit_error) {
            (_, Some(reason)) => Err(EngineError::Unavailable {
                unit: unit.to_string(),
                reason: reason.clone(),
            }),
            (Some(o), None) => Ok(o.clone()),
            (None, None) => Err(EngineError::Unavailable {
                unit: unit.to_string(),
                reason: "no sample yet: the first check has not run".into(),
            }),
        }
    }

    /// The latest prediction, or `Unavailable` before the first check.
    pub fn prediction(
        &self,
        unit: &UnitName,
    ) -> Result<(UnitSnapshot, Arc<autoscaler_core::predict::Prediction>), EngineError> {
        let u = self.unit_snapshot(unit)?;
        match u.prediction.clone() {
            Some(p) => Ok((u, p)),
            None => Err(EngineError::Unavailable {
                unit: unit.to_string(),
                reason: u
                    .unit_error
                    .clone()
                    .unwrap_or_else(|| "no sample yet: the first check has not run".into()),
            }),
        }
    }

    /// History rows, newest first.
    pub fn history(&self, unit: &UnitName, limit: u32) -> Result<Vec<HistoryRow>, EngineError> {
        if !(1..=1000).contains(&limit) {
            return Err(EngineError::BadRequest {
                message: format!("limit {limit} is out of range"),
                field: Some("limit".into()),
                allowed: Some("an integer in 1..=1000".into()),
            });
        }
        self.store
            .history(unit, limit)
            .map_err(|e| EngineError::Internal(format!("{e:#}")))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn set_mode(&self, unit: UnitName, mode: Mode) -> Result<UnitSnapshot, EngineError> {
        self.call(|r| Command::SetMode(unit, mode, r)).await
    }

    pub async fn set_policy(
        &self,
        unit: UnitName,
        policy: Policy,
    ) -> Result<UnitSnapshot, EngineError> {
        self.call(|r| Command::SetPolicy(unit, policy, r)).await
    }

    pub async fn set_config(
        &self,
        unit: UnitName,
        changes: Vec<(String, FieldValue)>,
    ) -> Result<Config, EngineError> {
        self.call(|r| Command::SetConfig(unit, changes, r)).await
    }

    pub async fn scale(
        &self,
        unit: UnitName,
        req: ScaleRequest,
    ) -> Result<HistoryRow, EngineError> {
        self.call(|r| Command::Scale(unit, req, r)).await
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| EngineError::Internal("the engine has stopped".into()))?;
        rx.await
            .map_err(|_| EngineError::Internal("the engine dropped the request".into()))?
    }
}

/// Starts the engine task. It runs until `shutdown` resolves, then returns.
pub fn start<P: Probe, A: Actuator>(
    setup: EngineSetup,
    probe: P,
    actuator: A,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(EngineHandle, tokio::task::JoinHandle<()>)> {
    let mut units = Vec::new();
    for u in &setup.units {
        units.push(UnitState::load(&setup.store, u.name.clone(), u.manager)?);
    }
    let (tx, rx) = mpsc::channel(64);
    let due = units.iter().map(|_| tokio::time::Instant::now()).collect();
    let (snapshot_tx, snap_rx) = watch::channel(Arc::new(Snapshot {
        units: Vec::new(),
        strategy: actuator.strategy(),
        host: setup.host,
        loop_stats: LoopStats::default(),
    }));
    let engine = Engine {
        units,
        due,
        host: setup.host,
        store: setup.store.clone(),
        probe,
        actuator,
        loop_stats: Default::default(),
        snapshot_tx,
    };
    engine.publish();
    let handle = EngineHandle {
        commands: tx,
        snapshot: snap_rx,
        store: setup.store,
    };
    let task = tokio::spawn(engine.run(rx, shutdown));
    Ok((handle, task))
}

/// How punctual the loop is, for `/metrics` and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoopStats {
    pub checks: u64,
    pub last_check_seconds: f64,
    /// How late the last check started after it was due.
    pub last_lag_seconds: f64,
    pub max_lag_seconds: f64,
    pub apply_failures: u64,
}

struct Engine<P, A> {
    units: Vec<UnitState>,
    /// When each unit's next check is due.
    due: Vec<tokio::time::Instant>,
    host: Host,
    store: Store,
    probe: P,
    actuator: A,
    loop_stats: LoopStats,
    /// Where the fronts read the state: published after every event, and while a change is
    /// being applied (so `is_running` can be seen).
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
}

/// The limits `new` changes relative to `old` (the others unset): what a change must keep in
/// bounds. A limit that is out of bounds and not touched is not this change's doing.
fn changed(old: &Limits, new: &Limits) -> Limits {
    let pick = |o: Option<u64>, n: Option<u64>| if o == n { None } else { n };
    Limits {
        cpu_quota: if old.cpu_quota == new.cpu_quota {
            None
        } else {
            new.cpu_quota
        },
        memory_max: pick(old.memory_max, new.memory_max),
        tasks_max: pick(old.tasks_max, new.tasks_max),
    }
}

/// How long systemd may take to apply limits (a restart waits for the unit to settle, and a
/// rollback restarts it again) and to describe a unit, before the engine moves on.
const APPLY_TIMEOUT: Duration = Duration::from_secs(60);
const INSPECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The wall clock, read only here and in the fronts: the core gets time as an argument.
pub fn now() -> Millis {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl<P: Probe, A: Actuator> Engine<P, A> {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        tokio::pin!(shutdown);
        loop {
            let (next, when) = self
                .due
                .iter()
                .enumerate()
                .min_by_key(|(_, t)| **t)
                .map(|(i, t)| (i, *t))
                .unwrap_or((0, tokio::time::Instant::now() + Duration::from_secs(3600)));
            let event = tokio::select! {
                biased;
                () = &mut shutdown => Event::Shutdown,
                Some(cmd) = commands.recv() => Event::Command(cmd),
                () = tokio::time::sleep_until(when) => Event::Due(next),
            };
            match event {
                Event::Shutdown => break,
                Event::Command(cmd) => self.handle(cmd).await,
                Event::Due(i) => {
                    let started = tokio::time::Instant::now();
                    let lag = started.saturating_duration_since(when).as_secs_f64();
                    self.check(i).await;
                    let took = started.elapsed();
                    let s = &mut self.loop_stats;
                    s.checks += 1;
                    s.last_check_seconds = took.as_secs_f64();
                    s.last_lag_seconds = lag;
                    s.max_lag_seconds = s.max_lag_seconds.max(lag);
                    // Schedule from when it was due, not from when it ran: no drift builds up.
                    let interval =
                        Duration::from_secs(u64::from(self.units[i].config.check_interval_seconds));
                    let mut next_due = when + interval;
                    if next_due < started {
                        next_due = started + interval;
                    }
                    self.due[i] = next_due;
                }
            }
            self.publish();
        }
        tracing::info!("engine stopped");
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            units: self.units.iter().map(|u| u.snapshot(&self.host)).collect(),
            strategy: self.actuator.strategy(),
            host: self.host,
            loop_stats: self.loop_stats,
        }
    }

    fn index(&self, unit: &UnitName) -> Result<usize, EngineError> {
        self.units
            .iter()
            .position(|u| &u.name == unit)
            .ok_or_else(|| EngineError::UnknownUnit {
                unit: unit.to_string(),
                managed: self.units.iter().map(|u| u.name.to_string()).collect(),
            })
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::SetMode(unit, mode, reply) => {
                let r = self.index(&unit).and_then(|i| {
                    self.update_config(i, |c| Ok(Config { mode, ..c.clone() }))?;
                    // Setting the mode is how someone acknowledges a failure.
                    self.units[i].last_failure = None;
                    Ok(self.units[i].snapshot(&self.host))
                });
                let _ = reply.send(r);
            }
            Command::SetPolicy(unit, policy, reply) => {
                let r = self.index(&unit).and_then(|i| {
                    self.update_config(i, |c| Ok(c.with_policy(policy)))?;
                    Ok(self.units[i].snapshot(&self.host))
                });
                let _ = reply.send(r);
            }
            Command::SetConfig(unit, changes, reply) => {
                let r = self
                    .index(&unit)
                    .and_then(|i| self.update_config(i, |c| Ok(c.apply(&changes)?)));
                let _ = reply.send(r);
            }
            Command::Scale(unit, req, reply) => {
                let r = match self.index(&unit) {
                    Ok(i) => self.manual_scale(i, req).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
        }
    }

    /// Validates a new config whole (fields, relations, bounds on this host), stores it, and
    /// only then puts it in force; the loop uses it from its next check.
    fn update_config(
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
        // A shorter interval takes effect now, not after the old, longer wait.
        let soonest = tokio::time::Instant::now()
            + Duration::from_secs(u64::from(new.check_interval_seconds));
        self.due[i] = self.due[i].min(soonest);
        self.units[i].config = new.clone();
        Ok(new)
    }

    /// One check of one unit. Failures are recorded on the unit and the loop goes on.
    async fn check(&mut self, i: usize) {
        let at = now();
        let name = self.units[i].name.clone();
        let view = match tokio::time::timeout(INSPECT_TIMEOUT, self.probe.inspect(&name))
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "systemd did not answer within {} s",
                    INSPECT_TIMEOUT.as_secs()
                ))
            }) {
            Ok(v) if v.active_state == "active" || v.active_state == "reloading" => v,
            Ok(v) => {
                self.units[i].unavailable(
                    format!("unit is {}; start it to manage it", v.active_state),
                    Some(v.limits),
                );
                return;
            }
            Err(e) => {
                self.units[i].unavailable(format!("{e:#}"), None);
                return;
            }
        };
        // A CPU rate needs two readings: on a unit's first check, take one a moment earlier
        // so the first sample already has one.
        if self.units[i].prev.is_none()
            && let Ok(first) = self.probe.sample(&name, &view, at)
        {
            self.units[i].prev = Some(first.counters);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let at = now();
        let sampled = match self.probe.sample(&name, &view, at) {
            Ok(s) => s,
            Err(e) => {
                self.units[i]
                    .unavailable(format!("cannot read its cgroup: {e:#}"), Some(view.limits));
                return;
            }
        };
        let unit = &mut self.units[i];
        let bounds = Bounds::new(&unit.config, &self.host);
        let decision = unit.observe(sampled, view.limits, bounds.as_ref().ok(), &self.host, at);
        if let Err(e) = unit.store_metric(&self.store) {
            tracing::warn!(unit = %name, "storing a metric failed: {e:#}");
        }
        if unit.should_prune(at) {
            let cutoff = Millis(at.0 - i64::from(unit.config.metrics_retention_hours) * 3_600_000);
            if let Err(e) = self.store.prune_metrics(&name, cutoff) {
                tracing::warn!("pruning metrics failed: {e:#}");
            }
        }
        if let Err(e) = &bounds {
            self.units[i].decision_note = format!("no automatic action: {e}");
            return;
        }
        let Some(d) = decision else { return };
        let Some((action, new, trigger)) = d.change else {
            return;
        };
        // A failure is recorded on the unit and in the history; the loop goes on.
        let _ = self
            .apply(
                i,
                action.as_str(),
                trigger,
                &d.reason(),
                view.limits,
                new,
                at,
            )
            .await;
    }

    async fn manual_scale(
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
        if let Some(wait) = self.units[i].rate_wait(now()) {
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
        let at = now();
        self.apply(i, "manual_scale", "manual", &reason, view.limits, new, at)
            .await
    }

    /// Applies new limits and writes the history row, success or failure.
    ///
    /// The unit's state changes before the store is written: a store that fails must not
    /// leave a success without its cooldown, nor a failure with the mode still enabled.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &mut self,
        i: usize,
        action: &str,
        trigger: &str,
        reason: &str,
        old: Limits,
        new: Limits,
        at: Millis,
    ) -> Result<HistoryRow, EngineError> {
        let name = self.units[i].name.clone();
        // The invariant every change passes, automatic or manual: what it changes is in bounds.
        Bounds::new(&self.units[i].config, &self.host)?.check(&changed(&old, &new))?;
        if let Some(wait) = self.units[i].rate_wait(at) {
            return Err(EngineError::RateLimited {
                unit: name.to_string(),
                retry_after_secs: wait,
            });
        }
        self.units[i].note_change(at);
        self.units[i].applying = true;
        self.publish();
        let result = match tokio::time::timeout(
            APPLY_TIMEOUT,
            self.actuator.apply(&name, &old, &new),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(format!(
                "systemd did not answer within {} s; the unit may be partly changed: check it with \
                 `systemctl show {name}`",
                APPLY_TIMEOUT.as_secs()
            )),
        };
        self.units[i].applying = false;
        match &result {
            Ok(after) => {
                tracing::info!(unit = %name, action, trigger, "{reason}");
                self.units[i].record_success(action, *after, at);
            }
            Err(message) => {
                tracing::error!(unit = %name, action, "applying limits failed: {message}");
                self.loop_stats.apply_failures += 1;
                self.units[i].count(action, "failed");
                // DESIGN.md: a failure disables the autoscaler until someone sets the mode.
                self.units[i].config.mode = Mode::Disabled;
                if let Err(e) = self.store.save_config(&name, &self.units[i].config) {
                    tracing::error!(unit = %name, "storing the disabled mode failed: {e:#}");
                }
            }
        }
        let (status, error_message) = match &result {
            Ok(_) => ("success", None),
            Err(e) => ("failed", Some(e.clone())),
        };
        let row = autoscaler_store::NewHistory {
            unit: name.clone(),
            at,
            action: action.to_string(),
            trigger_type: trigger.to_string(),
            reason: reason.to_string(),
            old,
            new,
            status: status.to_string(),
            error_message,
        };
        // 0 when the history could not be written: the change itself stands, and is logged.
        let id = self.store.insert_history(&row).unwrap_or_else(|e| {
            tracing::error!(unit = %name, "writing the history row failed: {e:#}; {action}: {reason}");
            0
        });
        if let Err(message) = result {
            self.units[i].last_failure = Some(Failure {
                at,
                message: message.clone(),
                history_id: id,
            });
            return Err(EngineError::ApplyFailed {
                message,
                history_id: id,
            });
        }
        Ok(HistoryRow {
            id,
            unit: row.unit,
            at,
            action: row.action,
            trigger_type: row.trigger_type,
            reason: row.reason,
            old,
            new,
            status: row.status,
            error_message: row.error_message,
        })
    }

    /// Publishes the current state to the fronts.
    fn publish(&self) {
        self.snapshot_tx.send_replace(Arc::new(self.snapshot()));
    }
}
