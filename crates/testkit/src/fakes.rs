//! Fakes for the engine's ports: a scriptable systemd ([`FakeSystemd`], both the engine's
//! `Probe` and its `Actuator`) and a wall clock that follows tokio's ([`FakeClock`]).
//!
//! With them an engine runs in memory, without root, systemd or cgroups, and with tokio's
//! paused time an hour of checks takes milliseconds. A test scripts each unit: its usage, its
//! limits, a call that hangs or fails, a rollback that fails, a unit that vanishes and comes
//! back. Every apply is recorded.
//!
//! Architecture invariant: nothing here touches the host; the fakes hold their state in memory.
//! A hung `sample` blocks its (blocking-pool) thread until [`FakeSystemd::release`] or, as a
//! safety net, [`HANG_LIMIT`] of real time, so a forgotten release cannot wedge a test run.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use autoscaler::engine::{
    Actuator, ApplyError, ApplyErrorKind, Clock, Probe, Rollback, Sampled, UnitView,
};
use autoscaler_core::{Counters, GIB, Host, Limits, Millis, Signals, UnitName};

/// 2026-11-30 12:00 UTC: where the fast tests' fake clocks start (any fixed time will do).
pub const T0: Millis = Millis(1_796_040_000_000);

/// The host the fast tests' engines run on: 16 cores, 64 GiB.
pub const HOST: Host = Host {
    cores: 16,
    memory_bytes: 64 * GIB,
    max_tasks: 4_194_304,
};

/// The longest a hung `sample` blocks its thread, in real time.
pub const HANG_LIMIT: Duration = Duration::from_secs(30);

/// How a probe call behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Call {
    #[default]
    Answer,
    /// Returns an error.
    Fail,
    /// Never answers (inspect), or blocks until released (sample).
    Hang,
}

/// How an apply behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Apply {
    /// Takes the new limits.
    #[default]
    Take,
    /// Refuses them; the rollback succeeds.
    Refuse,
    /// Refuses them, and the rollback fails too.
    RefuseAndFailRollback,
    /// Never answers.
    Hang,
    /// The unit disappears during the call (and stays gone until [`FakeSystemd::restore`]).
    Vanish,
}

/// One scripted unit.
#[derive(Debug, Clone)]
struct FakeUnit {
    active_state: String,
    limits: Limits,
    /// Cores the unit burns from the last reading on.
    cpu_cores: f64,
    memory_bytes: u64,
    tasks: u64,
    signals: Signals,
    counters: Counters,
    /// When the last reading was taken; the CPU counter grows from there.
    last_at: Option<Millis>,
    vanished: bool,
    inspect: Call,
    sample: Call,
    apply: Apply,
}

#[derive(Default)]
struct State {
    units: HashMap<UnitName, FakeUnit>,
    /// Every apply asked for: (unit, old, new).
    applies: Vec<(UnitName, Limits, Limits)>,
    /// How many readings each unit gave.
    samples: HashMap<UnitName, u64>,
    released: bool,
}

/// A scriptable systemd and cgroup tree. Cheap to clone; clones share the script.
#[derive(Clone, Default)]
pub struct FakeSystemd {
    state: Arc<(Mutex<State>, Condvar)>,
}

impl FakeSystemd {
    pub fn new() -> FakeSystemd {
        FakeSystemd::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn edit(&self, unit: &UnitName, f: impl FnOnce(&mut FakeUnit)) {
        let mut s = self.lock();
        match s.units.get_mut(unit) {
            Some(u) => f(u),
            None => panic!("the fake has no unit {unit}: add it first"),
        }
    }

    /// Adds a running unit with these limits, idle.
    pub fn add(&self, unit: &UnitName, limits: Limits) -> &Self {
        self.lock().units.insert(
            unit.clone(),
            FakeUnit {
                active_state: "active".into(),
                limits,
                cpu_cores: 0.0,
                memory_bytes: 0,
                tasks: 1,
                signals: Signals::default(),
                counters: Counters::default(),
                last_at: None,
                vanished: false,
                inspect: Call::Answer,
                sample: Call::Answer,
                apply: Apply::Take,
            },
        );
        self
    }

    /// From now on the unit burns `cores` cores and holds `memory_bytes` and `tasks`.
    pub fn set_usage(&self, unit: &UnitName, cores: f64, memory_bytes: u64, tasks: u64) {
        self.edit(unit, |u| {
            u.cpu_cores = cores;
            u.memory_bytes = memory_bytes;
            u.tasks = tasks;
        });
    }

    /// The kernel OOM-kills one of the unit's processes.
    pub fn oom_kill(&self, unit: &UnitName) {
        self.edit(unit, |u| u.counters.oom_kills += 1);
    }

    /// Sets the limits systemd reports, as an administrator would.
    pub fn set_limits(&self, unit: &UnitName, limits: Limits) {
        self.edit(unit, |u| u.limits = limits);
    }

    pub fn set_active_state(&self, unit: &UnitName, state: &str) {
        self.edit(unit, |u| u.active_state = state.into());
    }

    pub fn set_inspect(&self, unit: &UnitName, call: Call) {
        self.edit(unit, |u| u.inspect = call);
    }

    pub fn set_sample(&self, unit: &UnitName, call: Call) {
        self.edit(unit, |u| u.sample = call);
    }

    pub fn set_apply(&self, unit: &UnitName, apply: Apply) {
        self.edit(unit, |u| u.apply = apply);
    }

    /// The unit is gone: not loaded any more, its cgroup removed.
    pub fn vanish(&self, unit: &UnitName) {
        self.edit(unit, |u| u.vanished = true);
    }

    /// The unit is back, in a new cgroup (its counters start again from zero).
    pub fn restore(&self, unit: &UnitName) {
        self.edit(unit, |u| {
            u.vanished = false;
            u.counters = Counters::default();
            u.last_at = None;
        });
    }

    /// Lets every hung `sample` return (with an error), now and from now on.
    pub fn release(&self) {
        self.lock().released = true;
        self.state.1.notify_all();
    }

    /// The limits the unit runs under now.
    pub fn limits(&self, unit: &UnitName) -> Option<Limits> {
        self.lock().units.get(unit).map(|u| u.limits)
    }

    /// Every apply asked for so far, oldest first.
    pub fn applies(&self) -> Vec<(UnitName, Limits, Limits)> {
        self.lock().applies.clone()
    }

    /// How many readings the unit has given.
    pub fn samples(&self, unit: &UnitName) -> u64 {
        self.lock().samples.get(unit).copied().unwrap_or(0)
    }

    fn view(unit: &UnitName, u: &FakeUnit) -> UnitView {
        UnitView {
            active_state: u.active_state.clone(),
            main_pid: Some(4242),
            control_group: Some(format!("/user.slice/{unit}")),
            limits: u.limits,
        }
    }

    fn not_found(unit: &UnitName) -> String {
        format!("unit {unit} is not available (LoadState=not-found): the fake made it vanish")
    }
}

impl Probe for FakeSystemd {
    /// A unit the fake answers for is answered at once, as the daemon's cache of systemd's
    /// signals answers; a failing, hanging or missing one is asked for.
    fn inspect_now(&self, unit: &UnitName) -> Option<UnitView> {
        let s = self.lock();
        let u = s.units.get(unit)?;
        (u.inspect == Call::Answer && !u.vanished).then(|| FakeSystemd::view(unit, u))
    }

    async fn inspect(&self, unit: &UnitName) -> anyhow::Result<UnitView> {
        let (call, view) = {
            let s = self.lock();
            let u = s
                .units
                .get(unit)
                .ok_or_else(|| anyhow::anyhow!("the fake has no unit {unit}"))?;
            if u.vanished {
                anyhow::bail!(FakeSystemd::not_found(unit));
            }
            (u.inspect, FakeSystemd::view(unit, u))
        };
        match call {
            Call::Answer => Ok(view),
            Call::Fail => anyhow::bail!("the fake's D-Bus call failed"),
            Call::Hang => std::future::pending().await,
        }
    }

    fn sample(&self, unit: &UnitName, _view: &UnitView, at: Millis) -> anyhow::Result<Sampled> {
        let mut s = self.lock();
        let call = s
            .units
            .get(unit)
            .map(|u| u.sample)
            .ok_or_else(|| anyhow::anyhow!("the fake has no unit {unit}"))?;
        match call {
            Call::Answer => {}
            Call::Fail => anyhow::bail!("reading cpu.stat: the fake's file is unreadable"),
            Call::Hang => {
                let (s, _) = self
                    .state
                    .1
                    .wait_timeout_while(s, HANG_LIMIT, |s| !s.released)
                    .unwrap_or_else(|e| e.into_inner());
                drop(s);
                anyhow::bail!("the fake's hung read was released");
            }
        }
        *s.samples.entry(unit.clone()).or_default() += 1;
        let u = s
            .units
            .get_mut(unit)
            .ok_or_else(|| anyhow::anyhow!("the fake has no unit {unit}"))?;
        if u.vanished {
            anyhow::bail!("the unit's cgroup is gone");
        }
        let secs = u.last_at.map_or(0.0, |last| at.secs_since(last)).max(0.0);
        u.counters.cpu_usage_usec += (u.cpu_cores * secs * 1e6).round() as u64;
        u.counters.at = at;
        u.counters.memory_bytes = u.memory_bytes;
        u.counters.tasks = u.tasks;
        u.counters.processes = u.tasks;
        u.last_at = Some(at);
        Ok(Sampled {
            counters: u.counters,
            signals: u.signals,
            features: Vec::new(),
        })
    }
}

impl Actuator for FakeSystemd {
    async fn apply(
        &self,
        unit: &UnitName,
        old: &Limits,
        new: &Limits,
    ) -> Result<Limits, ApplyError> {
        let behaviour = {
            let mut s = self.lock();
            s.applies.push((unit.clone(), *old, *new));
            let Some(u) = s.units.get_mut(unit) else {
                return Err(ApplyError {
                    kind: ApplyErrorKind::UnitNotFound,
                    what: FakeSystemd::not_found(unit),
                    rollback: Rollback::NothingChanged,
                });
            };
            if u.apply == Apply::Take {
                u.limits = u.limits.overlay(*new);
                return Ok(u.limits);
            }
            if u.apply == Apply::Vanish {
                u.vanished = true;
            }
            u.apply
        };
        let what = format!("fake apply to {unit} failed: systemd refused {new}");
        match behaviour {
            Apply::Take | Apply::Hang => std::future::pending().await,
            Apply::Refuse => Err(ApplyError {
                kind: ApplyErrorKind::Refused,
                what,
                rollback: Rollback::Done(format!("{old} restored")),
            }),
            Apply::RefuseAndFailRollback => Err(ApplyError {
                kind: ApplyErrorKind::Refused,
                what,
                rollback: Rollback::Failed(format!("restoring {old} failed too")),
            }),
            Apply::Vanish => Err(ApplyError {
                kind: ApplyErrorKind::UnitNotFound,
                what: FakeSystemd::not_found(unit),
                rollback: Rollback::NothingChanged,
            }),
        }
    }

    /// The fake applies live, in one step: nothing is ever left half done.
    async fn recover(&self, _unit: &UnitName, _was_running: bool) -> Option<Rollback> {
        None
    }

    fn strategy(&self) -> &'static str {
        "live"
    }
}

/// A wall clock that starts at a chosen time and moves with tokio's clock: with paused time,
/// `tokio::time::advance` (or auto-advance) moves both. [`FakeClock::jump`] moves the wall
/// clock alone, as an administrator or a bad NTP server would. Clones share their jumps.
#[derive(Debug, Clone)]
pub struct FakeClock {
    start_wall: Millis,
    start: tokio::time::Instant,
    jumped_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl FakeClock {
    /// A clock reading `wall` now. Make it inside the runtime, after pausing time.
    pub fn starting_at(wall: Millis) -> FakeClock {
        FakeClock {
            start_wall: wall,
            start: tokio::time::Instant::now(),
            jumped_ms: Arc::default(),
        }
    }

    /// Sets the wall clock `by` ahead (or back, when negative); the monotonic clock goes on.
    pub fn jump(&self, by: Duration, back: bool) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 2);
        self.jumped_ms.fetch_add(
            if back { -ms } else { ms },
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

impl Clock for FakeClock {
    fn wall(&self) -> Millis {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.start);
        let jumped = self.jumped_ms.load(std::sync::atomic::Ordering::Relaxed);
        Millis(self.start_wall.0 + i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX) + jumped)
    }
}

/// An engine over the fakes, with the daemon's HTTP router in front of it: the daemon without
/// systemd, cgroups, root or a socket. Requests go through the router in process
/// (`tower::ServiceExt::oneshot`); waits follow the published snapshot, with a deadline in
/// tokio's time (virtual when paused).
pub struct FakeDaemon {
    pub engine: autoscaler::engine::EngineHandle,
    pub system: FakeSystemd,
    pub clock: FakeClock,
    pub units: Vec<UnitName>,
    router: axum::Router,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// How long [`FakeDaemon::wait`] waits, in tokio's time.
pub const WAIT_LIMIT: Duration = Duration::from_secs(4 * 3600);

impl FakeDaemon {
    /// Starts an engine managing `units` (all added to `system` beforehand) on `host`, with the
    /// store at `db` (a second start on the same file is a daemon restart).
    pub fn start(
        system: &FakeSystemd,
        units: &[UnitName],
        host: autoscaler_core::Host,
        db: &std::path::Path,
        clock: FakeClock,
    ) -> anyhow::Result<FakeDaemon> {
        use autoscaler::engine::{EngineSetup, UnitSetup};
        let first = units
            .first()
            .ok_or_else(|| anyhow::anyhow!("a fake daemon needs at least one unit"))?;
        let store = autoscaler_store::Store::open(db, first)?;
        let setup = EngineSetup {
            units: units
                .iter()
                .map(|u| UnitSetup {
                    name: u.clone(),
                    manager: "user",
                })
                .collect(),
            host,
            store,
            clock: Arc::new(clock.clone()),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (engine, task) =
            autoscaler::engine::start(setup, system.clone(), system.clone(), async {
                let _ = stopped.await;
            })?;
        let router = autoscaler::api::router(autoscaler::api::AppState {
            engine: engine.clone(),
            settings: autoscaler::api::ApiSettings::default(),
        });
        Ok(FakeDaemon {
            engine,
            system: system.clone(),
            clock,
            units: units.to_vec(),
            router,
            stop: Some(stop),
            task,
        })
    }

    /// Stops the engine and waits until it has.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?;
        Ok(())
    }

    /// One HTTP request through the daemon's router: the status and the JSON body (`Null`
    /// when the body is not JSON).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        use tower::ServiceExt;
        let mut req = axum::http::Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req.body(axum::body::Body::from(body.unwrap_or("").to_string()))?;
        let resp = self.router.clone().oneshot(req).await?;
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20).await?;
        // A body that is not JSON (`/healthz`, `/metrics`) comes back as a JSON string.
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        });
        Ok((status, json))
    }

    /// A GET through the daemon's router: the status and the body as the chunks it was sent
    /// in, for the answers that are streamed (`/metrics`).
    pub async fn get_chunks(&self, path: &str) -> anyhow::Result<(u16, Vec<String>)> {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let req = axum::http::Request::get(path).body(axum::body::Body::empty())?;
        let resp = self.router.clone().oneshot(req).await?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut chunks = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                chunks.push(String::from_utf8(data.to_vec())?);
            }
        }
        Ok((status, chunks))
    }

    /// Waits, in real time, until the store's writer has written everything queued: the
    /// writer is a thread that works in real time while a test's clock may be paused, so a
    /// test that reads the store right after paused hours must let it catch up.
    pub fn wait_for_store(&self) {
        self.engine.flush_store();
        for _ in 0..1000 {
            if self.engine.store_state().queued == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "the store's writer did not catch up: {:?}",
            self.engine.store_state()
        );
    }

    /// A JSON request that must answer 200.
    pub async fn ok(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, json) = self
            .request(method, path, Some("application/json"), body)
            .await?;
        anyhow::ensure!(status == 200, "{method} {path}: HTTP {status}: {json}");
        Ok(json)
    }

    /// Waits until the published snapshot satisfies `cond`, for at most [`WAIT_LIMIT`] of
    /// tokio's time; returns it, or an error saying what was awaited and what was seen.
    pub async fn wait(
        &self,
        what: &str,
        cond: impl Fn(&autoscaler::engine::Snapshot) -> bool,
    ) -> anyhow::Result<Arc<autoscaler::engine::Snapshot>> {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        let mut rx = self.engine.subscribe();
        loop {
            let snap = rx.borrow_and_update().clone();
            if cond(&snap) {
                return Ok(snap);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    anyhow::bail!("waiting for {what}: the engine stopped; last: {snap:?}")
                }
                Err(_) => anyhow::bail!(
                    "waiting for {what}: not within {} s; last: {snap:?}",
                    WAIT_LIMIT.as_secs()
                ),
            }
        }
    }

    /// The snapshot of one unit, by index.
    pub fn unit(&self, i: usize) -> autoscaler::engine::UnitSnapshot {
        let snap = self.engine.snapshot();
        snap.units
            .iter()
            .find(|u| u.name == self.units[i])
            .map(|u| autoscaler::engine::UnitSnapshot::clone(u))
            .unwrap_or_else(|| panic!("unit {} is not in the snapshot", self.units[i]))
    }
}
