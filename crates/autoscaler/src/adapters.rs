//! The engine's [`Probe`] and [`Actuator`] over the systemd and cgroup crates.
//!
//! Thin on purpose: connecting lazily (the daemon serves even when no bus is up yet), caching
//! where a unit's cgroup is, and translating types. No decisions are made here.
//!
//! A check asks systemd nothing in the steady state: each connection's [`Watch`] keeps every
//! unit's state from systemd's signals. What systemd does not signal, this module reports to
//! it: a change of limits made here (the actuator), and the kernel's limits in a unit's cgroup
//! differing from those seen at the last reading (someone else changed them).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use autoscaler_cgroup::events::{self, Armed, Source};
use autoscaler_cgroup::{
    AgentCache, CgroupFiles, CgroupPaths, Depth, Descriptors, Mounts, SignalSources, signals_of,
};
use autoscaler_core::{Limits, Millis, UnitName};
use autoscaler_systemd::{Bus, Systemd, UnitInfo, Watch};

use crate::engine::{Actuator, ApplyError, ApplyErrorKind, Probe, Rollback, Sampled, UnitView};
use crate::settings::{SignalSettings, Strategy, UnitSettings};

/// A systemd connection made on first use and made again after it breaks, with its
/// [`Watch`] (a new connection starts with nothing cached).
pub struct Connector {
    bus: Bus,
    /// The connection in use: read at every check, and from synchronous readings.
    current: Mutex<Option<Arc<Watch>>>,
    /// Held while connecting, so that one connection is made at a time.
    connecting: tokio::sync::Mutex<()>,
}

impl Connector {
    fn new(bus: Bus) -> Connector {
        Connector {
            bus,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// The connection in use; `None` when there is none, or its signals stopped (the bus
    /// closed it).
    fn current(&self) -> Option<Arc<Watch>> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.as_ref().filter(|w| !w.ended()).cloned()
    }

    pub async fn get(&self) -> anyhow::Result<Arc<Watch>> {
        if let Some(w) = self.current() {
            return Ok(w);
        }
        let _one = self.connecting.lock().await;
        if let Some(w) = self.current() {
            return Ok(w);
        }
        let sd = Systemd::connect(self.bus).await?;
        let w = Arc::new(Watch::start(sd).await);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(w.clone());
        Ok(w)
    }

    /// Forgets a connection that failed, so the next call reconnects.
    pub fn reset(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The user and the system manager, and which of them runs each unit.
pub struct Managers {
    user: Connector,
    system: Connector,
    bus_of: HashMap<UnitName, Bus>,
}

impl Managers {
    pub fn new(units: &[UnitSettings]) -> Managers {
        Managers {
            user: Connector::new(Bus::User),
            system: Connector::new(Bus::System),
            bus_of: units.iter().map(|u| (u.name.clone(), u.bus)).collect(),
        }
    }

    fn connector(&self, unit: &UnitName) -> &Connector {
        match self.bus_of.get(unit) {
            Some(Bus::System) => &self.system,
            _ => &self.user,
        }
    }

    pub async fn get(&self, unit: &UnitName) -> anyhow::Result<Arc<Watch>> {
        self.connector(unit).get().await
    }

    /// Makes the unit be read from systemd at its next check (see [`Watch::invalidate`]). A
    /// new connection starts with nothing cached: without one there is nothing to do.
    fn invalidate(&self, unit: &UnitName) {
        if let Some(w) = self.connector(unit).current() {
            w.invalidate(unit);
        }
    }
}

/// A unit's cgroup files, open, and the (ControlGroup, MainPID, limits) they were found from:
/// a new MainPID or cgroup (a restart) means looking again, and so do new limits (systemd may
/// then have enabled a controller for the unit, giving it a directory or files it lacked).
/// `kernel` is what the cgroup's own limit files said at the last reading.
struct Located {
    control_group: String,
    main_pid: Option<u32>,
    limits: Limits,
    files: Arc<Mutex<Files>>,
}

/// The open files, and the kernel's limits as last read through them.
struct Files {
    files: CgroupFiles,
    /// The limits the kernel enforced at the last look, and when that was.
    kernel: Option<Limits>,
    limits_read: Option<Millis>,
    agents: AgentCache,
}

/// How often a unit's limits are read from its cgroup to see whether someone else changed
/// them (`systemctl set-property`): such a change is seen within this long, or at the
/// unit's next check when its interval is longer. A quiet unit's limits are read with its
/// next full reading or refresh (at most [`autoscaler_cgroup::QUIET_FULL_MS`] later): limits
/// matter once it runs, and a reading that finds it running is a full one.
const LIMITS_EVERY_MS: i64 = 5_000;

pub struct SystemProbe {
    managers: Arc<Managers>,
    mounts: Mounts,
    /// Each unit's signal sources: its own AutoCoder projects.
    signals: HashMap<UnitName, SignalSources>,
    /// Where each unit's cgroup is, its files, and what it was located from.
    located: Mutex<HashMap<UnitName, Located>>,
    /// The descriptors the units' kept files and notifications may hold.
    descriptors: Arc<Descriptors>,
}

impl SystemProbe {
    /// The first unit takes AutoCoder's registry and `[signals] project_dirs`, unless it lists
    /// its own projects; other units see only the projects they list.
    pub fn new(
        managers: Arc<Managers>,
        units: &[UnitSettings],
        s: &SignalSettings,
        descriptors: Arc<Descriptors>,
    ) -> anyhow::Result<SystemProbe> {
        let mounts = Mounts::read(Path::new("/proc")).context("finding the cgroup mounts")?;
        let home = crate::settings::home();
        let mut base = SignalSources::autocoder_defaults(Some(&home));
        if let Some(script) = &s.agent_script {
            base.agent_script = script.clone();
        }
        if let Some(db) = &s.registry_db {
            base.registry_db = Some(db.clone());
        }
        base.api_quota_file = s.api_quota_file.clone();
        let signals = units
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let mut src = base.clone();
                match (&u.projects, i) {
                    (Some(projects), _) => {
                        src.registry_db = None;
                        src.project_dirs = projects.clone();
                    }
                    (None, 0) => src.project_dirs = s.project_dirs.clone(),
                    (None, _) => src.registry_db = None,
                }
                (u.name.clone(), src)
            })
            .collect();
        Ok(SystemProbe {
            managers,
            mounts,
            signals,
            located: Mutex::new(HashMap::new()),
            descriptors,
        })
    }

    fn files(&self, unit: &UnitName, view: &UnitView) -> anyhow::Result<Arc<Mutex<Files>>> {
        let cg = view
            .control_group
            .as_deref()
            .filter(|c| !c.is_empty())
            .context("systemd reports no cgroup for the unit")?;
        let mut cache = self.located.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = cache.get(unit)
            && l.control_group == cg
            && l.main_pid == view.main_pid
            && l.limits == view.limits
        {
            return Ok(l.files.clone());
        }
        let paths = CgroupPaths::locate(&self.mounts, Path::new("/proc"), cg, view.main_pid)?;
        let files = Arc::new(Mutex::new(Files {
            files: CgroupFiles::new(paths, self.descriptors.clone()),
            kernel: None,
            limits_read: None,
            agents: AgentCache::default(),
        }));
        cache.insert(
            unit.clone(),
            Located {
                control_group: cg.to_string(),
                main_pid: view.main_pid,
                limits: view.limits,
                files: files.clone(),
            },
        );
        Ok(files)
    }
}

impl Probe for SystemProbe {
    async fn inspect(&self, unit: &UnitName) -> anyhow::Result<UnitView> {
        let watch = self.managers.get(unit).await?;
        match watch.inspect(unit).await {
            Ok(info) => Ok(view_of(&info)),
            Err(e) => {
                // A failed call may mean a broken connection: make a new one next time.
                if matches!(e, autoscaler_systemd::Error::Call { .. }) {
                    self.managers.connector(unit).reset();
                }
                Err(e.into())
            }
        }
    }

    fn inspect_now(&self, unit: &UnitName) -> Option<UnitView> {
        let watch = self.managers.connector(unit).current()?;
        watch.cached(unit, view_of)
    }

    fn sample(&self, unit: &UnitName, view: &UnitView, at: Millis) -> anyhow::Result<Sampled> {
        let src = self
            .signals
            .get(unit)
            .context("the unit has no signal sources: not a managed unit")?;
        let files = self.files(unit, view)?;
        let (reading, agents, limits_moved) = {
            let mut f = files.lock().unwrap_or_else(|e| e.into_inner());
            let reading = f.files.read(at);
            // systemd does not signal new limits: the kernel's, read through the open files,
            // tell when systemd's view should be read again. Read at most every
            // LIMITS_EVERY_MS, and not with a quiet reading: four files, more than a quiet
            // unit's reading, for news that is rare (a refresh reads them).
            let due = f
                .limits_read
                .is_none_or(|then| at.0.saturating_sub(then.0) >= LIMITS_EVERY_MS);
            let full = reading.as_ref().is_ok_and(|r| r.depth != Depth::Quiet);
            let kernel = (full && due).then(|| f.files.limits());
            let moved = kernel.is_some() && f.kernel.is_some() && kernel != f.kernel;
            if kernel.is_some() {
                f.kernel = kernel;
                f.limits_read = Some(at);
            }
            // The pids come with the counters: a failed listing fails the reading, so unknown
            // processes never read as "no agents running" (idle: a scale-down).
            let agents = match &reading {
                Ok(r) if r.quiet() => f.agents.unchanged(),
                Ok(r) => f.agents.agents(src, &r.pids, at),
                Err(_) => Vec::new(),
            };
            (reading, agents, moved)
        };
        if limits_moved {
            tracing::debug!(unit = %unit, "the cgroup's limits changed; reading systemd's view again");
            self.managers.invalidate(unit);
        }
        let reading = match reading {
            Ok(r) => r,
            Err(e) => {
                // The cgroup may have been removed or recreated (a restart): locate it again
                // next time, with files opened afresh, and ask systemd again what the unit is.
                self.located
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(unit);
                self.managers.invalidate(unit);
                return Err(e);
            }
        };
        Ok(Sampled {
            counters: reading.counters,
            signals: signals_of(src, &agents),
            features: agents.into_iter().map(|a| a.feature_id).collect(),
        })
    }

    fn arm(&self, _unit: &UnitName, view: &UnitView, threshold: Option<u64>) -> Option<Armed> {
        // Polling only: the control of the events benchmark, and a way out on a kernel whose
        // notifications misbehave.
        if std::env::var("AUTOSCALER_EVENTS").is_ok_and(|v| v == "off") {
            return None;
        }
        let mut armed = Armed::default();
        let cg = view.control_group.as_deref().filter(|c| !c.is_empty());
        let paths =
            cg.map(|cg| CgroupPaths::locate(&self.mounts, Path::new("/proc"), cg, view.main_pid));
        match paths {
            Some(Ok(paths)) => {
                armed = events::arm(&paths, threshold, &trigger_windows(), &self.descriptors);
            }
            Some(Err(e)) => {
                let why = format!("the unit's cgroup was not found: {e:#}");
                armed.refused = Source::ALL.iter().map(|s| (*s, why.clone())).collect();
            }
            None => {
                let why = "systemd reports no cgroup for the unit".to_string();
                armed.refused = Source::ALL.iter().map(|s| (*s, why.clone())).collect();
            }
        }
        Some(armed)
    }
}

fn view_of(info: &UnitInfo) -> UnitView {
    UnitView {
        active_state: info.active_state.clone(),
        main_pid: info.main_pid,
        control_group: info.control_group.clone(),
        limits: info.limits,
    }
}

/// The PSI trigger windows to try: the cgroup crate's, or `AUTOSCALER_PSI_WINDOWS` as
/// `stall:window` pairs in microseconds, comma-separated. The variable is for tests: one the
/// kernel refuses (`1000:10000`) shows the fallback to polling on a real kernel.
fn trigger_windows() -> Vec<(u64, u64)> {
    let parsed = std::env::var("AUTOSCALER_PSI_WINDOWS").ok().and_then(|v| {
        v.split(',')
            .map(|pair| {
                let (a, b) = pair.trim().split_once(':')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect::<Option<Vec<(u64, u64)>>>()
    });
    parsed.unwrap_or_else(|| events::TRIGGER_WINDOWS.to_vec())
}

pub struct SystemActuator {
    managers: Arc<Managers>,
    strategy: Strategy,
}

impl SystemActuator {
    pub fn new(managers: Arc<Managers>, strategy: Strategy) -> SystemActuator {
        SystemActuator { managers, strategy }
    }
}

impl Actuator for SystemActuator {
    async fn apply(
        &self,
        unit: &UnitName,
        old: &Limits,
        new: &Limits,
    ) -> Result<Limits, ApplyError> {
        let watch = self.managers.get(unit).await.map_err(|e| ApplyError {
            kind: ApplyErrorKind::Refused,
            what: format!("{e:#}"),
            rollback: Rollback::NothingChanged,
        })?;
        // Only what changes is written: a CPU-only scale leaves the unit file's other lines
        // (and systemd's defaults for keys it lacks) alone.
        let changes = new.changes_from(old);
        let result =
            autoscaler_systemd::apply(watch.systemd(), self.strategy, unit, &changes).await;
        // Limits send no signal: whatever happened, the next check asks systemd.
        watch.invalidate(unit);
        match result {
            Ok(applied) if applied.dry_run => Ok(*new),
            Ok(applied) => Ok(applied.limits_after),
            Err(e) => Err(apply_error(e)),
        }
    }

    async fn recover(&self, unit: &UnitName, was_running: bool) -> Option<Rollback> {
        let watch = self.managers.get(unit).await.ok()?;
        let r = autoscaler_systemd::recover(watch.systemd(), unit, was_running).await;
        watch.invalidate(unit);
        r.map(rollback)
    }

    fn strategy(&self) -> &'static str {
        self.strategy.as_str()
    }
}

fn rollback(r: autoscaler_systemd::Rollback) -> Rollback {
    match r {
        autoscaler_systemd::Rollback::NothingChanged => Rollback::NothingChanged,
        autoscaler_systemd::Rollback::Done(what) => Rollback::Done(what),
        autoscaler_systemd::Rollback::Failed(why) => Rollback::Failed(why),
    }
}

/// systemd's apply error as the engine's: the kind and the rollback's outcome kept apart, the
/// sentence unchanged.
fn apply_error(e: autoscaler_systemd::ApplyError) -> ApplyError {
    let kind = if e.is_unit_not_found() {
        ApplyErrorKind::UnitNotFound
    } else {
        ApplyErrorKind::Refused
    };
    ApplyError {
        kind,
        what: format!("{} apply to {} failed: {}", e.strategy, e.unit, e.what),
        rollback: rollback(e.rollback),
    }
}
