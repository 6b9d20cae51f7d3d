//! The engine's [`Probe`] and [`Actuator`] over the systemd and cgroup crates.
//!
//! Thin on purpose: connecting lazily (the daemon serves even when no bus is up yet), caching
//! where a unit's cgroup is, and translating types. No decisions are made here.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use autoscaler_cgroup::{
    CgroupPaths, Mounts, SignalSources, agent_processes, read_counters, signals_of,
};
use autoscaler_core::{Limits, Millis, UnitName};
use autoscaler_systemd::{Bus, Systemd};

use crate::engine::{Actuator, Probe, Sampled, UnitView};
use crate::settings::{BusKind, SignalSettings, Strategy};

/// A systemd connection made on first use and made again after it breaks.
pub struct Connector {
    bus: Bus,
    conn: tokio::sync::Mutex<Option<Systemd>>,
}

impl Connector {
    pub async fn get(&self) -> anyhow::Result<Systemd> {
        let mut guard = self.conn.lock().await;
        if let Some(sd) = guard.as_ref() {
            return Ok(sd.clone());
        }
        let sd = Systemd::connect(self.bus).await?;
        *guard = Some(sd.clone());
        Ok(sd)
    }

    /// Forgets a connection that failed, so the next call reconnects.
    pub async fn reset(&self) {
        *self.conn.lock().await = None;
    }
}

pub struct SystemProbe {
    systemd: Arc<Connector>,
    mounts: Mounts,
    signals: SignalSources,
    /// Where each unit's cgroup is, keyed by what it was located from.
    paths: Mutex<HashMap<UnitName, (String, Option<u32>, CgroupPaths)>>,
}

impl SystemProbe {
    pub fn new(bus: BusKind, s: &SignalSettings) -> anyhow::Result<SystemProbe> {
        let bus = match bus {
            BusKind::User => Bus::User,
            BusKind::System => Bus::System,
        };
        let mounts = Mounts::read(Path::new("/proc")).context("finding the cgroup mounts")?;
        let home = crate::settings::home();
        let mut signals = SignalSources::autocoder_defaults(Some(&home));
        if let Some(script) = &s.agent_script {
            signals.agent_script = script.clone();
        }
        if let Some(db) = &s.registry_db {
            signals.registry_db = Some(db.clone());
        }
        signals.project_dirs = s.project_dirs.clone();
        signals.api_quota_file = s.api_quota_file.clone();
        Ok(SystemProbe {
            systemd: Arc::new(Connector {
                bus,
                conn: tokio::sync::Mutex::new(None),
            }),
            mounts,
            signals,
            paths: Mutex::new(HashMap::new()),
        })
    }

    pub fn systemd(&self) -> Arc<Connector> {
        self.systemd.clone()
    }

    fn paths(&self, unit: &UnitName, view: &UnitView) -> anyhow::Result<CgroupPaths> {
        let cg = view
            .control_group
            .clone()
            .filter(|c| !c.is_empty())
            .context("systemd reports no cgroup for the unit")?;
        let mut cache = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, pid, p)) = cache.get(unit) {
            if *c == cg && *pid == view.main_pid {
                return Ok(p.clone());
            }
        }
        let p = CgroupPaths::locate(&self.mounts, Path::new("/proc"), &cg, view.main_pid)?;
        cache.insert(unit.clone(), (cg, view.main_pid, p.clone()));
        Ok(p)
    }
}

impl Probe for SystemProbe {
    async fn inspect(&self, unit: &UnitName) -> anyhow::Result<UnitView> {
        let sd = self.systemd.get().await?;
        match sd.inspect(unit).await {
            Ok(info) => Ok(UnitView {
                active_state: info.active_state,
                main_pid: info.main_pid,
                control_group: info.control_group,
                limits: info.limits,
            }),
            Err(e) => {
                // A failed call may mean a broken connection: make a new one next time.
                if matches!(e, autoscaler_systemd::Error::Call { .. }) {
                    self.systemd.reset().await;
                }
                Err(e.into())
            }
        }
    }

    fn sample(&self, unit: &UnitName, view: &UnitView, at: Millis) -> anyhow::Result<Sampled> {
        let paths = self.paths(unit, view)?;
        let counters = match read_counters(&paths, at) {
            Ok(c) => c,
            Err(e) => {
                // The cgroup may have been recreated (a restart): locate it again next time.
                self.paths
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(unit);
                return Err(e);
            }
        };
        let pids = paths.pids_of_unit().unwrap_or_default();
        let agents = agent_processes(&self.signals, &pids);
        Ok(Sampled {
            counters,
            signals: signals_of(&self.signals, &agents),
            features: agents.into_iter().map(|a| a.feature_id).collect(),
        })
    }
}

pub struct SystemActuator {
    systemd: Arc<Connector>,
    strategy: Strategy,
}

impl SystemActuator {
    pub fn new(systemd: Arc<Connector>, strategy: Strategy) -> SystemActuator {
        SystemActuator { systemd, strategy }
    }
}

impl Actuator for SystemActuator {
    async fn apply(&self, unit: &UnitName, _old: &Limits, new: &Limits) -> Result<Limits, String> {
        let sd = self.systemd.get().await.map_err(|e| format!("{e:#}"))?;
        let strategy = match self.strategy {
            Strategy::Live => autoscaler_systemd::Strategy::Live,
            Strategy::Restart => autoscaler_systemd::Strategy::Restart,
            Strategy::DryRun => autoscaler_systemd::Strategy::DryRun,
        };
        match autoscaler_systemd::apply(&sd, strategy, unit, new).await {
            Ok(applied) if applied.dry_run => Ok(*new),
            Ok(applied) => Ok(applied.limits_after),
            Err(e) => Err(e.to_string()),
        }
    }

    fn strategy(&self) -> &'static str {
        match self.strategy {
            Strategy::Live => "live",
            Strategy::Restart => "restart",
            Strategy::DryRun => "dry-run",
        }
    }
}
