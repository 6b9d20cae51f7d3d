//! The front ends' side of the engine: an [`EngineHandle`] reads the published snapshot and
//! the store, and sends each state-changing request to the engine task as a [`Command`],
//! waiting for its answer. It holds no state and makes no decision of its own.

use std::sync::Arc;

use autoscaler_core::{Config, FieldValue, ManualScale, Millis, Mode, Policy, UnitName};
use autoscaler_store::{HistoryRow, Store};
use tokio::sync::{mpsc, oneshot, watch};

use super::{Clock, EngineError, Observation, Snapshot, UnitSnapshot};

/// A command from a front end. One variant per state-changing operation.
#[derive(Debug)]
pub(super) enum Command {
    SetMode(UnitName, Mode, Reply<UnitSnapshot>),
    SetPolicy(UnitName, Policy, Reply<UnitSnapshot>),
    SetConfig(UnitName, Vec<(String, FieldValue)>, Reply<Config>),
    Scale(UnitName, ManualScale, Reply<HistoryRow>),
}

pub(super) type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// The front ends' access to the engine. Cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) snapshot: watch::Receiver<Arc<Snapshot>>,
    pub(super) store: Store,
    pub(super) writer: super::writer::Writer,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) rounds: watch::Receiver<u64>,
}

impl EngineHandle {
    /// Counts the loop's rounds: one per event, and at least one every [`IDLE_WAKE`] when
    /// idle. A loop that hangs stops counting; the systemd watchdog pings only when it counts.
    ///
    /// [`IDLE_WAKE`]: super::IDLE_WAKE
    pub fn rounds(&self) -> watch::Receiver<u64> {
        self.rounds.clone()
    }

    /// Whether the store keeps up with the writes: queued, dropped, failing and why.
    pub fn store_state(&self) -> super::writer::StoreState {
        self.writer.state()
    }

    /// Has the store's writer start on the samples it holds now, rather than within
    /// [`super::writer::LATER_WITHIN`].
    pub fn flush_store(&self) {
        self.writer.flush(1);
    }

    /// The latest published state of every unit.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// A receiver that wakes on every published snapshot: for whoever waits for a change
    /// (tests, push-style fronts) instead of polling.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    /// The engine's wall clock: fronts that need "now" (a time range) ask it, so a test's
    /// fake clock reaches them too.
    pub fn now(&self) -> Millis {
        self.clock.wall()
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
            .map(|u| UnitSnapshot::clone(u))
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
            (Some(o), None) => Ok(Observation::clone(o)),
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

    /// History rows, newest first, queried off the async workers ([`EngineHandle::query`]).
    pub async fn history(
        &self,
        unit: &UnitName,
        limit: u32,
    ) -> Result<Vec<HistoryRow>, EngineError> {
        if !(1..=1000).contains(&limit) {
            return Err(EngineError::BadRequest {
                message: format!("limit {limit} is out of range"),
                field: Some("limit".into()),
                allowed: Some("an integer in 1..=1000".into()),
            });
        }
        let unit = unit.clone();
        self.query("history", move |store| store.history(&unit, limit))
            .await
    }

    /// Runs a store query off the async workers: SQLite calls block (a cold day of samples
    /// takes a good part of a second on a busy host; a database another process holds locked,
    /// the busy timeout), and a worker held there is one the engine's loop and other requests
    /// lack.
    pub(super) async fn query<T: Send + 'static>(
        &self,
        what: &str,
        run: impl FnOnce(&Store) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, EngineError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || run(&store))
            .await
            .map_err(|e| EngineError::Internal(format!("the {what} query task failed: {e}")))?
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

    pub async fn scale(&self, unit: UnitName, req: ManualScale) -> Result<HistoryRow, EngineError> {
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
