//! The connection to a systemd manager over D-Bus, and what we read from and ask of it.
//!
//! [`Systemd`] wraps one zbus connection to the user or the system bus. It reads a unit's
//! state and limits ([`Systemd::inspect`]) and offers the few manager calls the actuators
//! need (set properties, reload, restart and wait). It decides nothing: when to change
//! limits and how to roll back is `apply`'s business. Properties are never cached here: every
//! read goes to systemd, because the point of reading back is to see what systemd did (the
//! checks' cache, kept true by systemd's signals, is [`crate::watch`]). Only each unit's
//! object path is kept (a unit's path never changes), which saves a `LoadUnit` round trip per
//! read.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoscaler_core::{Limits, Resource, UnitName};
use zbus::proxy::CacheProperties;
use zbus::{OwnedObjectPath, OwnedVariant, Variant};
use zbus_systemd::systemd1::{ManagerProxy, UnitProxy};

/// Which manager: the user's (`systemctl --user`) or the system's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bus {
    User,
    System,
}

impl Bus {
    /// The names [`Bus::from_str`] takes, as settings and flags spell them.
    pub const NAMES: [&'static str; 2] = ["user", "system"];

    pub fn as_str(self) -> &'static str {
        match self {
            Bus::User => "user",
            Bus::System => "system",
        }
    }
}

impl fmt::Display for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Bus {
    type Err = String;

    fn from_str(s: &str) -> Result<Bus, String> {
        match s {
            "user" => Ok(Bus::User),
            "system" => Ok(Bus::System),
            _ => Err(format!("unknown manager {s:?}: expected user or system")),
        }
    }
}

/// What went wrong talking to systemd.
#[derive(Debug)]
pub enum Error {
    /// No connection to the bus, or no usable address for it.
    Connect {
        bus: Bus,
        address: String,
        why: String,
    },
    /// The manager has no usable unit of that name (no unit file, masked, or a unit file it
    /// could not parse). The daemon answers this with HTTP 503 and the reason.
    UnitNotFound {
        unit: UnitName,
        load_state: String,
        reason: String,
    },
    /// A D-Bus call failed or returned something unexpected.
    Call { what: String, source: zbus::Error },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect { bus, address, why } => write!(
                f,
                "cannot connect to the {bus} bus at {address:?}: {why}; is the {bus} manager \
                 (and its D-Bus) running, and is this the right address?"
            ),
            Error::UnitNotFound {
                unit,
                load_state,
                reason,
            } => {
                write!(
                    f,
                    "unit {unit} is not available (LoadState={load_state}): {reason}"
                )
            }
            Error::Call { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Call { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn call(what: impl Into<String>) -> impl FnOnce(zbus::Error) -> Error {
    let what = what.into();
    move |source| Error::Call { what, source }
}

/// A unit as systemd sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitInfo {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// The service's main process; `None` when it has none (or the unit is no service).
    pub main_pid: Option<u32>,
    /// The cgroup path relative to the manager's root cgroup, e.g.
    /// `/app.slice/autocoder-ui.service`; `None` when the unit has no cgroup now.
    pub control_group: Option<String>,
    /// CPUQuota (from CPUQuotaPerSecUSec, rounded to a whole percent), MemoryMax, TasksMax.
    pub limits: Limits,
    /// The unit file; `None` for units without one.
    pub fragment_path: Option<PathBuf>,
    /// Drop-ins in the order systemd applies them (later ones win).
    pub drop_in_paths: Vec<PathBuf>,
}

/// `CPUQuotaPerSecUSec` is CPU time per second of wall time: 1 s per s = one core = 100%.
pub const USEC_PER_PERCENT: u64 = 10_000;

/// The CPU quota in percent for a `CPUQuotaPerSecUSec`, `None` for infinity. Quotas that are
/// not a whole percent (set by hand) round to the nearest one.
pub fn usec_to_percent(usec: u64) -> Option<u32> {
    (usec != u64::MAX).then(|| {
        u32::try_from(usec.saturating_add(USEC_PER_PERCENT / 2) / USEC_PER_PERCENT)
            .unwrap_or(u32::MAX)
    })
}

/// One limit to set; `None` sets it to infinity (how a rollback restores "unlimited").
pub(crate) type Setting = (Resource, Option<u64>);

/// The D-Bus property name and value for one limit.
fn property((r, v): Setting) -> (&'static str, u64) {
    match r {
        Resource::Cpu => (
            "CPUQuotaPerSecUSec",
            v.map_or(u64::MAX, |p| p.saturating_mul(USEC_PER_PERCENT)),
        ),
        Resource::Memory => ("MemoryMax", v.unwrap_or(u64::MAX)),
        Resource::Tasks => ("TasksMax", v.unwrap_or(u64::MAX)),
    }
}

/// The systemd1 interface that carries a unit type's cgroup properties, if it has any.
fn cgroup_interface(unit: &UnitName) -> Option<&'static str> {
    let suffix = unit.as_str().rsplit('.').next()?;
    Some(match suffix {
        "service" => "org.freedesktop.systemd1.Service",
        "slice" => "org.freedesktop.systemd1.Slice",
        "scope" => "org.freedesktop.systemd1.Scope",
        "socket" => "org.freedesktop.systemd1.Socket",
        "mount" => "org.freedesktop.systemd1.Mount",
        "swap" => "org.freedesktop.systemd1.Swap",
        _ => return None,
    })
}

/// A connection to one systemd manager.
#[derive(Debug, Clone)]
pub struct Systemd {
    conn: zbus::Connection,
    manager: ManagerProxy<'static>,
    bus: Bus,
    address: String,
    /// Each unit's object path, from its first `LoadUnit`.
    paths: Arc<Mutex<HashMap<UnitName, OwnedObjectPath>>>,
}

impl Systemd {
    /// Connects to the user bus (`$DBUS_SESSION_BUS_ADDRESS`, else
    /// `unix:path=$XDG_RUNTIME_DIR/bus`) or the system bus (`$DBUS_SYSTEM_BUS_ADDRESS`, else
    /// `unix:path=/run/dbus/system_bus_socket`).
    pub async fn connect(bus: Bus) -> Result<Systemd, Error> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let address = match bus {
            Bus::User => match (env("DBUS_SESSION_BUS_ADDRESS"), env("XDG_RUNTIME_DIR")) {
                (Some(a), _) => a,
                (None, Some(rt)) => format!("unix:path={rt}/bus"),
                (None, None) => {
                    return Err(Error::Connect {
                        bus,
                        address: String::new(),
                        why: "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set".into(),
                    });
                }
            },
            Bus::System => env("DBUS_SYSTEM_BUS_ADDRESS")
                .unwrap_or_else(|| "unix:path=/run/dbus/system_bus_socket".into()),
        };
        Systemd::connect_to(bus, &address).await
    }

    /// Connects to the manager on the bus at `address` (tests pass a sandbox's bus here).
    pub async fn connect_to(bus: Bus, address: &str) -> Result<Systemd, Error> {
        let fail = |why: String| Error::Connect {
            bus,
            address: address.to_string(),
            why,
        };
        let conn = zbus::connection::Builder::address(address)
            .build()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let manager = ManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| fail(e.to_string()))?;
        // A bus without systemd on it answers the connection but not the manager.
        manager
            .version()
            .await
            .map_err(|e| fail(format!("systemd does not answer on it: {e}")))?;
        Ok(Systemd {
            conn,
            manager,
            bus,
            address: address.to_string(),
            paths: Arc::default(),
        })
    }

    pub fn bus(&self) -> Bus {
        self.bus
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub(crate) fn connection(&self) -> &zbus::Connection {
        &self.conn
    }

    pub(crate) fn manager(&self) -> &ManagerProxy<'static> {
        &self.manager
    }

    /// Loads `unit` if needed and reads its state, cgroup and limits.
    pub async fn inspect(&self, unit: &UnitName) -> Result<UnitInfo, Error> {
        let known = self.known_path(unit);
        let path = match &known {
            Some(p) => p.clone(),
            None => self.load(unit).await?,
        };
        let (path, props) = match self.get_all::<UnitProps>(&path, UNIT, unit).await {
            Ok(props) => (path, props),
            // A kept path that no longer answers: load the unit again, once.
            Err(_) if known.is_some() => {
                self.forget_path(unit);
                let path = self.load(unit).await?;
                let props = self.get_all::<UnitProps>(&path, UNIT, unit).await?;
                (path, props)
            }
            Err(e) => return Err(e),
        };
        let load_state = need(props.load_state, "LoadState", unit)?;
        if load_state != "loaded" {
            let reason = match self.unit_proxy(&path).await?.load_error().await {
                Ok((_, msg)) if !msg.is_empty() => msg,
                _ if load_state == "not-found" => {
                    "no unit file of that name in the manager's search path".into()
                }
                _ => format!("systemd cannot use it ({load_state})"),
            };
            return Err(Error::UnitNotFound {
                unit: unit.clone(),
                load_state,
                reason,
            });
        }
        let fragment = need(props.fragment_path, "FragmentPath", unit)?;
        let drop_ins = need(props.drop_in_paths, "DropInPaths", unit)?;
        let mut info = UnitInfo {
            load_state,
            active_state: need(props.active_state, "ActiveState", unit)?,
            sub_state: need(props.sub_state, "SubState", unit)?,
            main_pid: None,
            control_group: None,
            limits: Limits::default(),
            fragment_path: (!fragment.is_empty()).then(|| PathBuf::from(fragment)),
            drop_in_paths: drop_ins.into_iter().map(PathBuf::from).collect(),
        };
        if let Some(iface) = cgroup_interface(unit) {
            let c: CgroupProps = self.get_all(&path, iface, unit).await?;
            let cg = need(c.control_group, "ControlGroup", unit)?;
            info.control_group = (!cg.is_empty()).then_some(cg);
            info.limits = Limits {
                cpu_quota: usec_to_percent(need(c.cpu_quota, "CPUQuotaPerSecUSec", unit)?),
                memory_max: Some(need(c.memory_max, "MemoryMax", unit)?).filter(|v| *v != u64::MAX),
                tasks_max: Some(need(c.tasks_max, "TasksMax", unit)?).filter(|v| *v != u64::MAX),
            };
            // Only services have a main process.
            info.main_pid = c.main_pid.filter(|p| *p != 0);
            // The two interfaces are read one after the other: a unit that stopped between
            // them reads as running without a cgroup. Its state read again after the cgroup
            // is at least as new, so the view says what the unit is now (stopping, stopped).
            let running = matches!(info.active_state.as_str(), "active" | "reloading");
            if running && info.control_group.is_none() {
                let again: UnitProps = self.get_all(&path, UNIT, unit).await?;
                info.active_state = need(again.active_state, "ActiveState", unit)?;
                info.sub_state = need(again.sub_state, "SubState", unit)?;
            }
        }
        Ok(info)
    }

    /// `SetUnitProperties(unit, runtime=false, ...)`: changes the cgroup limits at once and
    /// persists them as drop-ins (`50-CPUQuota.conf`, ...) in the manager's `*.control` dir.
    pub(crate) async fn set_limits(
        &self,
        unit: &UnitName,
        settings: &[Setting],
    ) -> Result<(), Error> {
        let mut props = Vec::with_capacity(settings.len());
        let mut shown = Vec::new();
        for s in settings {
            let (name, value) = property(*s);
            let v = OwnedVariant::try_from(Variant::from(value))
                .map_err(call("encoding a property"))?;
            props.push((name.to_string(), v));
            shown.push(format!("{name}={value}"));
        }
        self.manager
            .set_unit_properties(unit.to_string(), false, props)
            .await
            .map_err(call(format!(
                "SetUnitProperties({unit}, {})",
                shown.join(", ")
            )))
    }

    /// `daemon-reload`; systemd answers once the reload is done.
    pub(crate) async fn reload(&self) -> Result<(), Error> {
        self.manager
            .reload()
            .await
            .map_err(call("daemon-reload (Manager.Reload)"))
    }

    pub(crate) async fn reset_failed(&self, unit: &UnitName) -> Result<(), Error> {
        self.manager
            .reset_failed_unit(unit.to_string())
            .await
            .map_err(call(format!("ResetFailedUnit({unit})")))
    }

    /// Restarts (or, with `restart == false`, starts) the unit and waits until it is
    /// [`running steadily`](Self::wait_running). Returns a sentence saying why not on failure.
    pub(crate) async fn restart_and_wait(
        &self,
        unit: &UnitName,
        restart: bool,
        timeout: Duration,
    ) -> Result<(), String> {
        let (verb, r) = if restart {
            (
                "RestartUnit",
                self.manager
                    .restart_unit(unit.to_string(), "replace".into())
                    .await,
            )
        } else {
            (
                "StartUnit",
                self.manager
                    .start_unit(unit.to_string(), "replace".into())
                    .await,
            )
        };
        r.map_err(|e| format!("{verb}({unit}) failed: {e}"))?;
        self.wait_running(unit, timeout).await
    }

    /// Waits until the unit has no pending job and has been `active` with the same main
    /// process for [`SETTLE`]: a service that starts and dies a moment later (a memory limit
    /// too low for its startup, say) is a failed restart, not a good one. `failed` or
    /// `inactive` once the job is done, or no steady state before `timeout`, is a failure.
    pub(crate) async fn wait_running(
        &self,
        unit: &UnitName,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut steady_since: Option<(Instant, Option<u32>)> = None;
        loop {
            let (pending, info) = match self.job_and_info(unit).await {
                Ok(v) => v,
                Err(e) => return Err(format!("reading the state of {unit}: {e}")),
            };
            let state = format!("{} ({})", info.active_state, info.sub_state);
            if !pending {
                match info.active_state.as_str() {
                    "active" => match steady_since {
                        Some((t, pid)) if pid == info.main_pid => {
                            if t.elapsed() >= SETTLE {
                                return Ok(());
                            }
                        }
                        _ => steady_since = Some((Instant::now(), info.main_pid)),
                    },
                    "failed" | "inactive" => {
                        let result = self.service_result(unit).await;
                        return Err(format!("{unit} did not start: it is {state}{result}"));
                    }
                    _ => steady_since = None,
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{unit} was not running steadily within {timeout:?}; last state {state}"
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn job_and_info(&self, unit: &UnitName) -> Result<(bool, UnitInfo), Error> {
        let path = self.load(unit).await?;
        let (job, _) = self
            .unit_proxy(&path)
            .await?
            .job()
            .await
            .map_err(call(format!("reading Job of {unit}")))?;
        Ok((job != 0, self.inspect(unit).await?))
    }

    /// `, result: exit-code` for a failed service, or nothing.
    async fn service_result(&self, unit: &UnitName) -> String {
        let Ok(path) = self.load(unit).await else {
            return String::new();
        };
        match self
            .get_all::<ServiceResult>(&path, "org.freedesktop.systemd1.Service", unit)
            .await
        {
            Ok(ServiceResult { result: Some(r) }) => format!(", result: {r}"),
            _ => String::new(),
        }
    }

    /// `LoadUnit`: loads the unit if needed and returns its object path, which is kept.
    async fn load(&self, unit: &UnitName) -> Result<OwnedObjectPath, Error> {
        let path = self
            .manager
            .load_unit(unit.to_string())
            .await
            .map_err(call(format!("LoadUnit({unit}) on the {} bus", self.bus)))?;
        self.paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(unit.clone(), path.clone());
        Ok(path)
    }

    pub(crate) fn known_path(&self, unit: &UnitName) -> Option<OwnedObjectPath> {
        let paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        paths.get(unit).cloned()
    }

    fn forget_path(&self, unit: &UnitName) {
        self.paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(unit);
    }

    async fn unit_proxy(&self, path: &OwnedObjectPath) -> Result<UnitProxy<'static>, Error> {
        UnitProxy::builder(&self.conn)
            .path(path.clone())
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(call(format!("a proxy for {}", path.as_str())))
    }

    /// `Properties.GetAll(iface)`, decoded into `T`: only the properties `T` names are kept;
    /// the others (a service has hundreds) are skipped in the message, not decoded into
    /// values. Decoding them all was half of an async worker's time in a thousand units'
    /// first round, and a steady cost as the watch reads each unit again every minute or two.
    async fn get_all<T>(
        &self,
        path: &OwnedObjectPath,
        iface: &'static str,
        unit: &UnitName,
    ) -> Result<T, Error>
    where
        T: for<'de> serde::Deserialize<'de> + zbus::wire::Type,
    {
        let what = || format!("reading the {iface} properties of {unit}");
        let reply = self
            .conn
            .call_method(
                Some("org.freedesktop.systemd1"),
                path.as_ref(),
                Some("org.freedesktop.DBus.Properties"),
                "GetAll",
                &(iface,),
            )
            .await
            .map_err(call(what()))?;
        reply.body().deserialize().map_err(call(what()))
    }
}

const UNIT: &str = "org.freedesktop.systemd1.Unit";

/// What [`Systemd::inspect`] keeps of the `Unit` interface.
#[derive(zbus::DeserializeDict, zbus::wire::Type)]
#[zbus(signature = "a{sv}", rename_all = "PascalCase")]
struct UnitProps {
    load_state: Option<String>,
    active_state: Option<String>,
    sub_state: Option<String>,
    fragment_path: Option<String>,
    drop_in_paths: Option<Vec<String>>,
}

/// What [`Systemd::inspect`] keeps of a unit's cgroup interface (`Service`, `Slice`, ...).
#[derive(zbus::DeserializeDict, zbus::wire::Type)]
#[zbus(signature = "a{sv}")]
struct CgroupProps {
    #[zbus(rename = "ControlGroup")]
    control_group: Option<String>,
    #[zbus(rename = "CPUQuotaPerSecUSec")]
    cpu_quota: Option<u64>,
    #[zbus(rename = "MemoryMax")]
    memory_max: Option<u64>,
    #[zbus(rename = "TasksMax")]
    tasks_max: Option<u64>,
    #[zbus(rename = "MainPID")]
    main_pid: Option<u32>,
}

/// A failed service's `Result` (`exit-code`, `signal`, ...).
#[derive(zbus::DeserializeDict, zbus::wire::Type)]
#[zbus(signature = "a{sv}", rename_all = "PascalCase")]
struct ServiceResult {
    result: Option<String>,
}

/// How long a restarted unit must stay active with the same main process.
pub const SETTLE: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(100);

/// A property every unit of its kind has; its absence means the reply is not systemd's.
fn need<T>(value: Option<T>, key: &str, unit: &UnitName) -> Result<T, Error> {
    value.ok_or_else(|| Error::Call {
        what: format!("property {key} of {unit}"),
        source: zbus::Error::InvalidReply,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quota_conversions() {
        let cases: [(u64, Option<u32>); 6] = [
            (u64::MAX, None),
            (1_000_000, Some(100)),
            (500_000, Some(50)),
            (1_500_000, Some(150)),
            (1_234_567, Some(123)),
            (5_000, Some(1)),
        ];
        for (usec, want) in cases {
            assert_eq!(usec_to_percent(usec), want, "{usec}");
        }
        let props: [(Setting, (&str, u64)); 5] = [
            (
                (Resource::Cpu, Some(150)),
                ("CPUQuotaPerSecUSec", 1_500_000),
            ),
            ((Resource::Cpu, None), ("CPUQuotaPerSecUSec", u64::MAX)),
            ((Resource::Memory, Some(1 << 30)), ("MemoryMax", 1 << 30)),
            ((Resource::Memory, None), ("MemoryMax", u64::MAX)),
            ((Resource::Tasks, Some(64)), ("TasksMax", 64)),
        ];
        for (s, want) in props {
            assert_eq!(property(s), want, "{s:?}");
        }
    }
}
