//! Each unit's state as systemd last reported it, kept true by systemd's signals, so that a
//! check in the steady state makes no D-Bus call (issue 14).
//!
//! [`Watch`] owns this cache for one connection. It asks the manager to send its signals
//! (`Subscribe`) and listens to them: `PropertiesChanged` on a unit's object, `UnitNew`,
//! `UnitRemoved` and `JobRemoved` make that unit read again over D-Bus at its next
//! [`Watch::inspect`]; `Reloading` and the manager's bus name changing owner (a re-exec, a
//! restart) make every unit read again. The limits and `ControlGroup` send no change signal
//! (`EmitsChangedSignal=false`), so the caller says when they may have changed
//! ([`Watch::invalidate`]: after its own change, or when the kernel's limits in the unit's
//! cgroup differ from those it last saw), and every entry is read again after [`REFRESH`]
//! (to twice that, spread by name) whatever was heard. While the signals are not heard (the
//! subscription failed, or their stream ended with the connection) nothing is cached: every
//! inspect goes to systemd, as before the cache.
//!
//! What a change must be confirmed by (the actuators' read-back) never comes from here: that
//! is [`Systemd::inspect`], uncached. Only failures of nothing are cached: a unit systemd
//! cannot use is asked about again at every check.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use autoscaler_core::UnitName;
use futures_util::StreamExt;
use zbus::message::Type;
use zbus::{MatchRule, Message, MessageStream, OwnedObjectPath};

use crate::manager::{Error, Systemd, UnitInfo};

/// How long a cached unit is trusted without any signal about it, at least: a safety net for
/// what no signal reports (a limit set behind systemd's back, a signal this code does not know).
pub const REFRESH: Duration = Duration::from_secs(60);

/// Signals queued for the listener before the connection stops reading (zbus applies back
/// pressure, it drops nothing): a daemon-reload of a large manager sends a burst.
const QUEUE: usize = 4096;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const UNIT_PATHS: &str = "/org/freedesktop/systemd1/unit/";

/// The cache and the listener of one connection. Dropping it stops the listener.
#[derive(Debug)]
pub struct Watch {
    sd: Systemd,
    state: Arc<Mutex<State>>,
    listener: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether the signals are heard: only then is anything cached.
    live: bool,
    /// Whether the listener stopped for good (the connection closed).
    ended: bool,
    /// Bumped by every manager-wide change: what was read before it is stale.
    epoch: u64,
    /// By unit name.
    units: HashMap<String, Entry>,
    /// Unit name by object path, for `PropertiesChanged`, which names only the path.
    by_path: HashMap<String, String>,
    /// How many units were read again because of a signal, the safety net or a caller.
    stats: WatchStats,
}

#[derive(Debug, Default)]
struct Entry {
    /// Bumped by every change heard about this unit.
    generation: u64,
    cached: Option<Cached>,
}

#[derive(Debug)]
struct Cached {
    info: UnitInfo,
    until: Instant,
}

/// What the cache saved and cost, for logs and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WatchStats {
    /// Inspects answered from the cache.
    pub hits: u64,
    /// Inspects that asked systemd.
    pub reads: u64,
    /// Signals that named a unit or the whole manager.
    pub signals: u64,
}

/// What a read was started under: it is cached only if nothing was heard meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    epoch: u64,
    generation: u64,
}

impl State {
    fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
        state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh(&mut self, unit: &str, now: Instant) -> Option<UnitInfo> {
        self.fresh_with(unit, now, UnitInfo::clone)
    }

    /// `f` of the cached info while it is current, without copying what `f` does not take.
    fn fresh_with<T>(
        &mut self,
        unit: &str,
        now: Instant,
        f: impl FnOnce(&UnitInfo) -> T,
    ) -> Option<T> {
        if !self.live {
            return None;
        }
        let taken = self
            .units
            .get(unit)?
            .cached
            .as_ref()
            .filter(|c| now < c.until)
            .map(|c| f(&c.info));
        if taken.is_some() {
            self.stats.hits += 1;
        }
        taken
    }

    fn token(&mut self, unit: &str) -> Option<Token> {
        self.stats.reads += 1;
        if !self.live {
            return None;
        }
        // Remembered from now on, so a change heard during this first read is not lost.
        let generation = self.units.entry(unit.to_string()).or_default().generation;
        Some(Token {
            epoch: self.epoch,
            generation,
        })
    }

    fn learn_path(&mut self, path: &str, unit: &str) {
        if !self.by_path.contains_key(path) {
            self.by_path.insert(path.to_string(), unit.to_string());
        }
    }

    fn store(&mut self, unit: &str, token: Token, info: &UnitInfo) {
        if !self.live || token.epoch != self.epoch {
            return;
        }
        let entry = self.units.entry(unit.to_string()).or_default();
        if entry.generation != token.generation {
            return;
        }
        entry.cached = Some(Cached {
            info: info.clone(),
            until: Instant::now() + lifetime(unit),
        });
    }

    fn invalidate(&mut self, unit: &str) {
        // Units nobody asked about are not remembered: a busy manager's other units come and go.
        if let Some(e) = self.units.get_mut(unit) {
            e.generation += 1;
            e.cached = None;
        }
    }

    fn invalidate_path(&mut self, path: &str) {
        if let Some(unit) = self.by_path.get(path).cloned() {
            self.invalidate(&unit);
        }
    }

    fn invalidate_all(&mut self) {
        self.epoch += 1;
        for e in self.units.values_mut() {
            e.cached = None;
        }
    }

    fn stop(&mut self) {
        self.live = false;
        self.ended = true;
        self.invalidate_all();
    }
}

/// [`REFRESH`] to twice that, by a hash of the unit's name: units first read together (all of
/// them, at start) are not all read again in the same second.
fn lifetime(unit: &str) -> Duration {
    REFRESH + REFRESH.mul_f64(autoscaler_core::time::spread(unit.as_bytes()))
}

impl Watch {
    /// Subscribes to `sd`'s manager and starts listening. If that fails, the watch caches
    /// nothing (every inspect asks systemd) and says why in the log.
    pub async fn start(sd: Systemd) -> Watch {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = match subscribe(&sd).await {
            Ok(streams) => {
                State::lock(&state).live = true;
                let (sd2, st) = (sd.clone(), state.clone());
                Some(tokio::spawn(listen(sd2, streams, st)))
            }
            Err(e) => {
                tracing::warn!(
                    "cannot follow the {} manager's signals ({e}); its units are read over \
                     D-Bus at every check",
                    sd.bus()
                );
                State::lock(&state).ended = true;
                None
            }
        };
        Watch {
            sd,
            state,
            listener,
        }
    }

    /// The connection, for calls that must not be cached (the actuators).
    pub fn systemd(&self) -> &Systemd {
        &self.sd
    }

    /// Whether the signals have stopped (the connection closed): a new connection is needed
    /// for the cache to work again.
    pub fn ended(&self) -> bool {
        State::lock(&self.state).ended
    }

    /// What [`Systemd::inspect`] says, from the cache when nothing was heard about the unit
    /// since it was last read. Errors are not cached.
    pub async fn inspect(&self, unit: &UnitName) -> Result<UnitInfo, Error> {
        // A unit's first read learns its object path: only from then on can a
        // `PropertiesChanged`, which names only the path, be told apart, so only a read that
        // started with the path known is kept.
        let path = self.sd.known_path(unit);
        let token = {
            let mut s = State::lock(&self.state);
            if let Some(info) = s.fresh(unit.as_str(), Instant::now()) {
                return Ok(info);
            }
            if let Some(p) = &path {
                s.learn_path(p.as_str(), unit.as_str());
            }
            s.token(unit.as_str()).filter(|_| path.is_some())
        };
        let info = self.sd.inspect(unit).await?;
        if let Some(token) = token {
            State::lock(&self.state).store(unit.as_str(), token, &info);
        }
        Ok(info)
    }

    /// `f` of the unit as last read or signalled, while that is known to be current: of what
    /// [`Watch::inspect`] would answer without asking systemd. `None`: ask. Called at every
    /// check of every unit, so the caller copies only what it keeps.
    pub fn cached<T>(&self, unit: &UnitName, f: impl FnOnce(&UnitInfo) -> T) -> Option<T> {
        State::lock(&self.state).fresh_with(unit.as_str(), Instant::now(), f)
    }

    /// Makes the unit be read from systemd at its next inspect: its limits or cgroup may have
    /// changed, which systemd does not signal.
    pub fn invalidate(&self, unit: &UnitName) {
        State::lock(&self.state).invalidate(unit.as_str());
    }

    /// How many inspects were answered from the cache, and how many asked systemd.
    pub fn stats(&self) -> WatchStats {
        State::lock(&self.state).stats
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(l) = self.listener.take() {
            l.abort();
        }
    }
}

/// The two streams the listener reads: everything systemd signals, and its bus name's owner.
struct Streams {
    systemd: MessageStream,
    owner: MessageStream,
}

/// Registers the match rules, then asks the manager to send its signals: once this returns,
/// no change goes unheard.
async fn subscribe(sd: &Systemd) -> Result<Streams, zbus::Error> {
    let conn = sd.connection();
    let queue = NonZeroUsize::new(QUEUE);
    let systemd_rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .sender(SYSTEMD)
        .build()?;
    let owner_rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .sender("org.freedesktop.DBus")
        .interface("org.freedesktop.DBus")
        .member("NameOwnerChanged")
        .add_arg(SYSTEMD)
        .build()?;
    let systemd = MessageStream::for_match_rule(systemd_rule, conn, queue).await?;
    let owner = MessageStream::for_match_rule(owner_rule, conn, queue).await?;
    resubscribe(sd).await?;
    Ok(Streams { systemd, owner })
}

/// `Subscribe`; a client already subscribed (after a re-exec, systemd keeps its subscribers)
/// is fine.
async fn resubscribe(sd: &Systemd) -> Result<(), zbus::Error> {
    match sd.manager().subscribe().await {
        Ok(()) => Ok(()),
        Err(zbus::Error::MethodError(name, _, _))
            if name.as_str().ends_with("AlreadySubscribed") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn listen(sd: Systemd, mut streams: Streams, state: Arc<Mutex<State>>) {
    loop {
        let next = tokio::select! {
            m = streams.systemd.next() => m,
            m = streams.owner.next() => m,
        };
        let msg = match next {
            Some(Ok(m)) => m,
            // A message that did not parse says nothing about which unit changed.
            Some(Err(e)) => {
                tracing::debug!("a signal from the {} manager: {e}", sd.bus());
                State::lock(&state).invalidate_all();
                continue;
            }
            None => break,
        };
        if heard(&msg, &state) == Heard::NewManager {
            // Not awaited here: the listener must keep reading, or the connection stalls
            // with the reply behind the queued signals.
            let sd = sd.clone();
            tokio::spawn(async move {
                if let Err(e) = resubscribe(&sd).await {
                    tracing::warn!("subscribing to the restarted {} manager: {e}", sd.bus());
                }
            });
        }
    }
    tracing::debug!(
        "the {} manager's signals stopped; its units are read over D-Bus",
        sd.bus()
    );
    State::lock(&state).stop();
}

#[derive(Debug, PartialEq, Eq)]
enum Heard {
    Nothing,
    Change,
    NewManager,
}

/// Applies one signal to the cache.
fn heard(msg: &Message, state: &Mutex<State>) -> Heard {
    let h = msg.header();
    let (Some(iface), Some(member)) = (h.interface(), h.member()) else {
        return Heard::Nothing;
    };
    match (iface.as_str(), member.as_str()) {
        ("org.freedesktop.DBus", "NameOwnerChanged") => {
            let body = msg.body();
            let Ok((name, _old, new)) = body.deserialize::<(&str, &str, &str)>() else {
                return Heard::Nothing;
            };
            if name != SYSTEMD {
                return Heard::Nothing;
            }
            let mut s = State::lock(state);
            s.stats.signals += 1;
            s.invalidate_all();
            if new.is_empty() {
                Heard::Change
            } else {
                Heard::NewManager
            }
        }
        ("org.freedesktop.DBus.Properties", "PropertiesChanged") => {
            match h.path().map(|p| p.as_str()) {
                Some(p) if p.starts_with(UNIT_PATHS) => {
                    let mut s = State::lock(state);
                    s.stats.signals += 1;
                    s.invalidate_path(p);
                    Heard::Change
                }
                _ => Heard::Nothing,
            }
        }
        ("org.freedesktop.systemd1.Manager", "UnitNew" | "UnitRemoved") => {
            let body = msg.body();
            match body.deserialize::<(&str, OwnedObjectPath)>() {
                Ok((unit, _)) => {
                    let mut s = State::lock(state);
                    s.stats.signals += 1;
                    s.invalidate(unit);
                    Heard::Change
                }
                Err(_) => Heard::Nothing,
            }
        }
        ("org.freedesktop.systemd1.Manager", "JobRemoved") => {
            let body = msg.body();
            match body.deserialize::<(u32, OwnedObjectPath, &str, &str)>() {
                Ok((_, _, unit, _)) => {
                    let mut s = State::lock(state);
                    s.stats.signals += 1;
                    s.invalidate(unit);
                    Heard::Change
                }
                Err(_) => Heard::Nothing,
            }
        }
        ("org.freedesktop.systemd1.Manager", "Reloading") => {
            let mut s = State::lock(state);
            s.stats.signals += 1;
            s.invalidate_all();
            Heard::Change
        }
        _ => Heard::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn info(state: &str) -> UnitInfo {
        UnitInfo {
            load_state: "loaded".into(),
            active_state: state.into(),
            sub_state: "running".into(),
            main_pid: Some(7),
            control_group: Some("/app.slice/a.service".into()),
            limits: autoscaler_core::Limits::default(),
            fragment_path: Some(PathBuf::from("/u/a.service")),
            drop_in_paths: Vec::new(),
        }
    }

    const PATH: &str = "/org/freedesktop/systemd1/unit/a_2eservice";

    /// What the cache answers after a read and then one event: (event, cached afterwards).
    #[test]
    fn what_makes_a_unit_be_read_again() {
        type Event = fn(&mut State);
        let cases: [(&str, Event, bool); 8] = [
            ("nothing heard", |_| {}, true),
            ("its PropertiesChanged", |s| s.invalidate_path(PATH), false),
            (
                "another unit's PropertiesChanged",
                |s| s.invalidate_path("/x"),
                true,
            ),
            ("a job of it removed", |s| s.invalidate("a.service"), false),
            ("another unit's job", |s| s.invalidate("b.service"), true),
            ("a reload", State::invalidate_all, false),
            ("the signals stopped", State::stop, false),
            ("not live", |s| s.live = false, false),
        ];
        for (what, event, cached) in cases {
            let mut s = State {
                live: true,
                ..State::default()
            };
            s.learn_path(PATH, "a.service");
            let token = s.token("a.service").expect("live");
            s.store("a.service", token, &info("active"));
            event(&mut s);
            let got = s.fresh("a.service", Instant::now()).is_some();
            assert_eq!(got, cached, "{what}");
        }
    }

    /// A change heard while a read was under way: that read is not cached, the next one is.
    #[test]
    fn a_read_that_raced_a_signal_is_not_kept() {
        for event in [
            (|s: &mut State| s.invalidate("a.service")) as fn(&mut State),
            State::invalidate_all,
        ] {
            let mut s = State {
                live: true,
                ..State::default()
            };
            // Known before the read, so the invalidation has an entry to bump.
            let t0 = s.token("a.service").expect("live");
            s.store("a.service", t0, &info("active"));
            s.invalidate("a.service");
            let t1 = s.token("a.service").expect("live");
            event(&mut s);
            s.store("a.service", t1, &info("active"));
            assert!(s.fresh("a.service", Instant::now()).is_none());
            let t2 = s.token("a.service").expect("live");
            s.store("a.service", t2, &info("inactive"));
            let got = s.fresh("a.service", Instant::now()).expect("cached");
            assert_eq!(got.active_state, "inactive");
        }
    }

    #[test]
    fn entries_expire_between_one_and_two_refresh_periods() {
        for name in ["a.service", "bench-idle-0001.service", "x"] {
            let l = lifetime(name);
            assert!(l >= REFRESH && l < REFRESH * 2, "{name}: {l:?}");
        }
        let mut s = State {
            live: true,
            ..State::default()
        };
        let t = s.token("a.service").expect("live");
        s.store("a.service", t, &info("active"));
        assert!(s.fresh("a.service", Instant::now() + REFRESH * 2).is_none());
    }
}
