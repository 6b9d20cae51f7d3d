//! One managed unit's state inside the engine task, and the snapshot fronts read.
//!
//! Only the engine task mutates a [`UnitState`]; fronts see immutable [`UnitSnapshot`]s.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use autoscaler_cgroup::events::Source;
use autoscaler_core::adaptive::Verdict;
use autoscaler_core::decide::{Inputs, evaluate};
use autoscaler_core::predict::{
    FeatureLedger, FeatureUsage, Forecaster, Prediction, Recent, Sample, anticipate, predict_recent,
};
use autoscaler_core::{
    Action, Bounds, Config, Controller, Counters, Decision, Evaluation, Host, Learned, Limits,
    Millis, Policy, Status, UnitName, Usage, Why,
};
use autoscaler_store::{MetricRow, Store};

use super::writer::Write;

use super::events::SourceState;
use super::{LoopStats, Rollback, Sampled};

/// A failed apply, shown by the status until someone sets the mode again.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub at: Millis,
    /// The whole story in one line, as in the history row: what failed and the rollback.
    pub message: String,
    pub history_id: i64,
    /// Whether the previous limits are back.
    pub rollback: Rollback,
}

/// What the last check saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub usage: Usage,
    pub counters: Counters,
    pub limits: Limits,
    pub evaluation: Evaluation,
}

/// A unit as the fronts see it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitSnapshot {
    pub name: UnitName,
    /// "user" or "system".
    pub manager: &'static str,
    pub config: Config,
    /// Limits as systemd last reported them.
    pub limits: Option<Limits>,
    /// Shared with the unit's state: a new one each check, 384 bytes not copied again.
    pub observation: Option<Arc<Observation>>,
    /// Why the unit cannot be managed right now, if it cannot.
    pub unit_error: Option<String>,
    pub last_failure: Option<Failure>,
    /// The controller's last verdict in words.
    pub decision: Arc<str>,
    /// A scaling action is being applied right now.
    pub applying: bool,
    pub scale_up_count: u64,
    pub scale_down_count: u64,
    /// Actions by (action, status), as stored: what Prometheus counts.
    pub action_counts: BTreeMap<(Action, Status), u64>,
    pub last_scale_time: Option<Millis>,
    pub bounds: Result<Bounds, String>,
    /// Trends, forecasts and the recommendation as of the last check.
    pub prediction: Option<Arc<Prediction>>,
    /// Under the `adaptive` policy: its last verdict (recommendation and chosen model per
    /// resource, and the moves it asked for). Shared with the unit's state: most units run
    /// another policy, and a verdict inline took 456 bytes in each state and snapshot.
    pub adaptive: Option<Arc<Verdict>>,
    /// The heaviest features by CPU, as recorded while their agents ran.
    pub features: Vec<FeatureUsage>,
    /// The kernel's notifications for the unit: each source armed, or refused and why. Shared
    /// with the unit's state: it changes when the unit is armed, and a snapshot is taken at
    /// every check.
    pub events: Arc<[SourceState]>,
    /// How many times the kernel woke the unit's check, since start.
    pub wakes: u64,
}

/// Everything the engine publishes after each event.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Shared with the snapshots before and after it: a unit's is rebuilt only when it changed.
    pub units: Units,
    pub strategy: &'static str,
    pub host: Host,
    pub loop_stats: LoopStats,
}

/// Every unit's snapshot, in the engine's order, in chunks of [`Units::CHUNK`] shared between
/// publications: replacing one unit copies its chunk and the list of chunks, not the list of
/// all units. At 1000 units a second, copying (and dropping) a list of 1000 `Arc`s at every
/// publication was the daemon's largest single cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Units {
    chunks: Vec<Arc<Vec<Arc<UnitSnapshot>>>>,
    len: usize,
}

impl Units {
    const CHUNK: usize = 32;

    pub fn from_vec(units: Vec<Arc<UnitSnapshot>>) -> Units {
        let len = units.len();
        let chunks = units
            .chunks(Self::CHUNK)
            .map(|c| Arc::new(c.to_vec()))
            .collect();
        Units { chunks, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<&Arc<UnitSnapshot>> {
        self.chunks.get(i / Self::CHUNK)?.get(i % Self::CHUNK)
    }

    pub fn first(&self) -> Option<&Arc<UnitSnapshot>> {
        self.get(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<UnitSnapshot>> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Replaces unit `i`'s snapshot; the other chunks stay shared.
    pub(super) fn set(&mut self, i: usize, unit: Arc<UnitSnapshot>) {
        if let Some(chunk) = self.chunks.get_mut(i / Self::CHUNK) {
            let slot = &mut Arc::make_mut(chunk)[i % Self::CHUNK];
            *slot = unit;
        }
    }
}

impl std::ops::Index<usize> for Units {
    type Output = Arc<UnitSnapshot>;

    fn index(&self, i: usize) -> &Arc<UnitSnapshot> {
        self.get(i)
            .unwrap_or_else(|| panic!("unit {i} of {} in the snapshot", self.len))
    }
}

impl<'a> IntoIterator for &'a Units {
    type Item = &'a Arc<UnitSnapshot>;
    type IntoIter = Box<dyn Iterator<Item = &'a Arc<UnitSnapshot>> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

pub(super) struct UnitState {
    pub name: UnitName,
    manager: &'static str,
    pub config: Config,
    controller: Controller,
    pub prev: Option<Counters>,
    observation: Option<Arc<Observation>>,
    limits: Option<Limits>,
    unit_error: Option<String>,
    pub last_failure: Option<Failure>,
    /// The last verdict in words; shared with the snapshots, and replaced only when it reads
    /// differently (most checks of a steady unit say the same).
    pub decision_note: Arc<str>,
    pub applying: bool,
    action_counts: BTreeMap<(Action, Status), u64>,
    last_scale_time: Option<Millis>,
    last_prune: Millis,
    /// Recent samples for trends, forecasts and profiles, at a bounded resolution.
    recent: Recent,
    /// Online forecasts, fed every sample kept in `recent`.
    forecaster: Forecaster,
    features: FeatureLedger,
    prediction: Option<Arc<Prediction>>,
    /// What `prediction` was computed from: it is computed again only when one of these
    /// changed (see [`Recent::version`]).
    predicted_from: Option<PredictedFrom>,
    adaptive: Option<Arc<Verdict>>,
    /// When the last changes were attempted, for the rate limit.
    changes: VecDeque<Millis>,
    events: Arc<[SourceState]>,
    wakes: u64,
}

/// What a unit's prediction was computed from (see `UnitState::predict`).
#[derive(Debug, Clone, PartialEq)]
struct PredictedFrom {
    version: u64,
    config: Config,
    limits: Limits,
    bounds: Option<Bounds>,
}

/// How often a unit's samples past their retention are deleted. Retention is set in whole
/// hours, so a sample outlives it by at most a sixth of the smallest setting; a delete per
/// unit every minute was a transaction of its own per unit per minute (50 a minute at 50
/// units, a few percent of the daemon's CPU).
const PRUNE_EVERY_SECS: f64 = 600.0;

/// The forecast window and how long recent samples are kept (an hour, or the window if
/// longer), in seconds.
fn recent_spans(config: &Config) -> (f64, f64) {
    let window = f64::from(config.forecast_window_minutes() * 60);
    (window, window.max(3600.0))
}

impl UnitState {
    /// The unit as the store remembers it: config, counters and the last action's time, so a
    /// restarted daemon keeps its cooldown and its counts. `now` is the engine clock's.
    pub fn load(
        store: &Store,
        name: UnitName,
        manager: &'static str,
        now: Millis,
    ) -> anyhow::Result<UnitState> {
        let config = store.load_config(&name)?.unwrap_or_default();
        let action_counts = store
            .action_counts(&name)?
            .into_iter()
            .map(|(a, s, n)| ((a, s), n))
            .collect();
        let last = store.last_action(&name)?.map(|h| h.at);
        // The rate limit counts attempts, so it goes on from the history's last minute.
        let changes = store
            .history_between(
                &name,
                Millis(now.0 - 60_000),
                Millis(now.0 + 1),
                super::MAX_CHANGES_PER_MINUTE as u32,
            )?
            .into_iter()
            .rev()
            .map(|h| h.at)
            .collect();
        // Predictions start from the stored last hour rather than from nothing.
        let recent = store
            .metrics_since(&name, Millis(now.0 - 3_600_000), now)?
            .into_iter()
            .map(|r| Sample {
                at: r.at,
                cpu_cores: r.cpu_cores,
                memory_bytes: r.memory_bytes as f64,
                tasks: r.tasks as f64,
                agents: r.agent_count,
                testing_agents: r.testing_agent_count,
                features_pending: r.features_pending,
            })
            .collect::<Vec<Sample>>();
        let forecaster = Forecaster::from_samples(&recent);
        let mut kept = Recent::default();
        let (window, keep) = recent_spans(&config);
        for s in recent {
            kept.push(s, window, keep);
        }
        // What the adaptive policy learned survives a restart; a state that does not decode
        // (another version) starts learning afresh, which only means generous limits a while.
        // A unit that never ran under it has nothing stored and carries nothing.
        let mut controller = Controller::resume(last);
        if let Some(learned) = store
            .load_learned(&name)?
            .and_then(|(text, _)| Learned::decode(&text))
        {
            controller = controller.with_learned(learned);
        }
        Ok(UnitState {
            name,
            manager,
            config,
            controller,
            prev: None,
            observation: None,
            limits: None,
            unit_error: None,
            last_failure: None,
            decision_note: "waiting for the first check".into(),
            applying: false,
            action_counts,
            last_scale_time: last,
            last_prune: Millis(0),
            recent: kept,
            forecaster,
            features: FeatureLedger::default(),
            prediction: None,
            predicted_from: None,
            adaptive: None,
            changes,
            events: Arc::new([]),
            wakes: 0,
        })
    }

    /// What arming the kernel's notifications gave. A source the kernel refused is said once
    /// in the log (each time it is armed again after a change, not at every check).
    pub fn armed(&mut self, sources: Vec<SourceState>) {
        for s in sources.iter().filter(|s| !s.armed) {
            let before = self.events.iter().find(|e| e.source == s.source);
            if before != Some(s) {
                tracing::info!(
                    unit = %self.name,
                    "no kernel notification for {}, checked at its interval instead: {}",
                    s.source.name(),
                    s.detail
                );
            }
        }
        self.events = sources.into();
    }

    pub fn woken(&mut self, source: Source) {
        tracing::debug!(unit = %self.name, source = source.name(), "woken by the kernel");
        self.wakes += 1;
    }

    pub fn unavailable(&mut self, reason: String, limits: Option<Limits>) {
        tracing::debug!(unit = %self.name, "unavailable: {reason}");
        self.unit_error = Some(reason);
        self.limits = limits.or(self.limits);
        // The next reading may come from a new cgroup: no rate across the gap, and no streak
        // begun before it.
        self.prev = None;
        self.controller.reset_streaks();
    }

    /// Keeps a unit's first reading after a start or a gap, or the first from a cgroup made
    /// anew, which has no CPU rate yet, as the base of the next one. True when it was such a
    /// reading.
    pub fn prime(&mut self, sampled: &Sampled, limits: Limits) -> bool {
        // CPU time that went backwards means a cgroup made anew (a restart seen only now, or
        // between a stop and a start): no rate across it, and no streak begun before it.
        let anew = self
            .prev
            .is_some_and(|p| sampled.counters.cpu_usage_usec < p.cpu_usage_usec);
        if self.prev.is_some() && !anew {
            return false;
        }
        if anew {
            self.controller.reset_streaks();
        }
        self.prev = Some(sampled.counters);
        self.unit_error = None;
        self.limits = Some(limits);
        true
    }

    /// Time between two checks, as configured now.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.check_interval_seconds()))
    }

    /// The limits systemd last reported.
    pub fn limits(&self) -> Option<Limits> {
        self.limits
    }

    /// Turns a reading into usage, keeps it for predictions, runs the controller (when the
    /// bounds are feasible, with the anticipated breaches in predictive mode) and keeps the
    /// observation. Returns the decision, if the controller ran.
    pub fn observe(
        &mut self,
        sampled: Sampled,
        limits: Limits,
        bounds: Option<&Bounds>,
        host: &Host,
        at: Millis,
    ) -> Option<Decision> {
        let counters = sampled.counters;
        let usage = Usage::between(self.prev.as_ref(), &counters, sampled.signals);
        self.prev = Some(counters);
        self.unit_error = None;
        self.limits = Some(limits);
        if let Some(cores) = usage.cpu_cores {
            self.remember(Sample {
                at,
                cpu_cores: cores,
                memory_bytes: usage.memory_bytes as f64,
                tasks: usage.tasks as f64,
                agents: usage.signals.agents,
                testing_agents: usage.signals.testing_agents,
                features_pending: usage.signals.features_pending,
            });
            self.features
                .record(&sampled.features, cores, usage.memory_bytes as f64);
        }
        // Bounds that cannot be met leave the controller out; the evaluation is still shown.
        let prediction = self.predict(&limits, bounds, at);
        let anticipated = anticipate(&prediction, &self.config, &limits);
        let inputs = Inputs {
            config: &self.config,
            bounds: bounds.unwrap_or(&Bounds::ZERO),
            host,
            current: &limits,
            usage: &usage,
            now: at,
            anticipated: &anticipated,
        };
        let (evaluation, decision) = match bounds {
            Some(_) => {
                let d = self.controller.observe(inputs);
                let note = d.reason();
                if *self.decision_note != *note {
                    self.decision_note = note.into();
                }
                self.adaptive = match d.why {
                    Why::Adaptive(v) => Some(Arc::new(v)),
                    _ => None,
                };
                (d.evaluation.clone(), Some(d))
            }
            None => (evaluate(inputs), None),
        };
        self.observation = Some(Arc::new(Observation {
            usage,
            counters,
            limits,
            evaluation,
        }));
        decision
    }

    /// Keeps a sample for trends, forecasts and profiles: an hour, or the forecast window if
    /// longer, merged to the resolution [`Recent`] keeps.
    fn remember(&mut self, sample: Sample) {
        let (window, keep) = recent_spans(&self.config);
        self.forecaster.observe(&sample);
        self.recent.push(sample, window, keep);
    }

    /// The unit's prediction: computed again when a point was added to or dropped from the
    /// recent samples, or the config, limits or bounds changed; otherwise the last one. At
    /// the default interval that is every check; at 1 s, every 15 s or so (a step of the
    /// forecast window, see [`Recent`]), not every second over thousands of samples.
    fn predict(&mut self, limits: &Limits, bounds: Option<&Bounds>, at: Millis) -> Arc<Prediction> {
        let version = self.recent.version();
        if let (Some(p), Some(f)) = (&self.prediction, &self.predicted_from)
            && f.version == version
            && f.limits == *limits
            && f.bounds.as_ref() == bounds
            && f.config == self.config
        {
            return p.clone();
        }
        let p = Arc::new(predict_recent(
            &self.recent,
            &self.forecaster,
            &self.config,
            limits,
            bounds,
            at,
        ));
        self.prediction = Some(p.clone());
        self.predicted_from = Some(PredictedFrom {
            version,
            config: self.config.clone(),
            limits: *limits,
            bounds: bounds.cloned(),
        });
        p
    }

    /// What to store of the last observation: its sample, if it has a CPU rate, and under
    /// `adaptive` what the policy has learned so far. Stored times are wall-clock:
    /// `wall_offset_ms` is how far the wall clock is from the engine's timeline.
    pub fn writes(&self, wall_offset_ms: i64) -> Vec<Write> {
        let Some(o) = &self.observation else {
            return Vec::new();
        };
        let Some(cpu_cores) = o.usage.cpu_cores else {
            return Vec::new();
        };
        let u = &o.usage;
        let at = Millis(u.at.0.saturating_add(wall_offset_ms));
        let mut writes = Vec::new();
        if let (Policy::Adaptive, Some(learned)) = (self.config.policy(), self.controller.learned())
        {
            writes.push(Write::Learned {
                unit: self.name.clone(),
                state: learned.encode(),
                at,
            });
        }
        writes.push(Write::Metric(MetricRow {
            unit: self.name.clone(),
            at,
            cpu_percent: o.evaluation.cpu_percent.unwrap_or(0.0),
            cpu_cores,
            memory_bytes: u.memory_bytes,
            tasks: u.tasks,
            process_count: u.processes,
            agent_count: u.signals.agents,
            testing_agent_count: u.signals.testing_agents,
            api_quota_remaining: u.signals.api_quota_remaining,
            features_pending: u.signals.features_pending,
            cpu_quota: o.limits.cpu_quota,
            memory_max: o.limits.memory_max,
            tasks_max: o.limits.tasks_max,
            throttled_ratio: u.throttled_ratio,
            cpu_pressure: u.cpu_pressure,
            memory_pressure: u.memory_pressure,
            // The store sums this column over time: kills since the last reading, not the
            // cgroup's running total.
            oom_kills: u.new_oom_kills,
        }));
        writes
    }

    /// Whether to delete the unit's samples past their retention now: every
    /// [`PRUNE_EVERY_SECS`].
    pub fn should_prune(&mut self, at: Millis) -> bool {
        if at.secs_since(self.last_prune) < PRUNE_EVERY_SECS {
            return false;
        }
        self.last_prune = at;
        true
    }

    pub fn record_success(&mut self, action: Action, after: Limits, at: Millis) {
        self.controller.record_action(at);
        self.limits = Some(after);
        self.last_scale_time = Some(at);
        self.count(action, Status::Success);
    }

    /// `Some(seconds to wait)` when another change now would exceed the rate limit.
    pub fn rate_wait(&mut self, at: Millis) -> Option<u64> {
        while self
            .changes
            .front()
            .is_some_and(|t| at.secs_since(*t) >= 60.0)
        {
            self.changes.pop_front();
        }
        let oldest = *self.changes.front()?;
        (self.changes.len() >= super::MAX_CHANGES_PER_MINUTE)
            .then(|| (60.0 - at.secs_since(oldest)).ceil().max(1.0) as u64)
    }

    /// Counts a change attempted now against the rate limit.
    pub fn note_change(&mut self, at: Millis) {
        self.changes.push_back(at);
    }

    pub fn count(&mut self, action: Action, status: Status) {
        *self.action_counts.entry((action, status)).or_default() += 1;
    }

    fn successes(&self, action: Action) -> u64 {
        self.action_counts
            .get(&(action, Status::Success))
            .copied()
            .unwrap_or(0)
    }

    pub fn snapshot(&self, host: &Host) -> UnitSnapshot {
        UnitSnapshot {
            name: self.name.clone(),
            manager: self.manager,
            config: self.config.clone(),
            limits: self.limits,
            observation: self.observation.clone(),
            unit_error: self.unit_error.clone(),
            last_failure: self.last_failure.clone(),
            decision: self.decision_note.clone(),
            applying: self.applying,
            scale_up_count: self.successes(Action::ScaleUp),
            scale_down_count: self.successes(Action::ScaleDown),
            action_counts: self.action_counts.clone(),
            last_scale_time: self.last_scale_time,
            bounds: Bounds::new(&self.config, host).map_err(|e| e.to_string()),
            prediction: self.prediction.clone(),
            adaptive: self.adaptive.clone(),
            features: self.features.heaviest(10),
            events: self.events.clone(),
            wakes: self.wakes,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The daemon and the simulator must take the same decisions on the same usage: here the
    //! engine's per-unit path (counters -> usage -> prediction -> controller) and
    //! `autoscaler simulate`'s replay run one recorded sequence side by side.

    use autoscaler_core::{Counters, GIB, Limits, Millis, Policy, UnitName};
    use autoscaler_sim::{Machine, Observation, PolicySpec, Setup};
    use autoscaler_store::Store;

    use super::{Sampled, UnitState};

    /// A day's worth of shapes in 5-minute steps: idle, a ramp, a plateau over the threshold,
    /// spikes, and idle again (cores, GiB).
    fn recorded() -> Vec<(f64, f64)> {
        let mut v = Vec::new();
        v.extend((0..20).map(|_| (0.4, 2.0)));
        v.extend((0..20).map(|k| (0.4 + 0.3 * f64::from(k), 2.0 + 0.5 * f64::from(k))));
        v.extend((0..30).map(|_| (6.5, 14.0)));
        v.extend((0..30).map(|k| if k % 3 == 0 { (6.9, 20.0) } else { (1.0, 4.0) }));
        v.extend((0..60).map(|_| (0.2, 1.5)));
        v
    }

    #[test]
    fn the_daemon_decides_as_the_simulator_on_a_recorded_sequence() {
        for policy in Policy::ALL.into_iter().chain([Policy::Adaptive]) {
            let step = 300.0;
            let machine = Machine::default();
            let setup = Setup::new(machine);
            let host = machine.host();
            let start = setup.start_limits().expect("start limits");
            let mut sim = PolicySpec::Spec(policy)
                .build(&setup, step, start)
                .expect("sim policy");

            let dir = tempfile::tempdir().expect("tempdir");
            let unit = UnitName::parse("replay.service").expect("unit name");
            let store = Store::open(&dir.path().join("a.db"), &unit).expect("store");
            let mut daemon = UnitState::load(&store, unit, "user", Millis(0)).expect("unit state");
            // What the simulator's controller runs: the policy's bundle, checked once a step.
            daemon.config = setup.base.with_policy(policy).with_check_interval(step);
            let bounds = autoscaler_core::Bounds::new(&daemon.config, &host).expect("bounds");

            let (mut sim_limits, mut daemon_limits) = (start, start);
            // The engine's first check primes a reading before it; so does this one.
            let mut counters = Counters {
                at: Millis(0),
                ..Counters::default()
            };
            daemon.prev = Some(counters);
            for (k, (cores, gib)) in recorded().into_iter().enumerate() {
                let now = Millis::from_secs((k as i64 + 1) * step as i64);
                // The simulator sees demand capped at the limit in force; the kernel does the
                // same to the unit, so that is what the cgroup's counters accumulate.
                let cap = |l: &Limits| l.cpu_quota.map_or(f64::INFINITY, |q| f64::from(q) / 100.0);
                let used = cores.min(cap(&sim_limits));
                let memory = (gib * GIB as f64)
                    .min(sim_limits.memory_max.map_or(f64::INFINITY, |m| m as f64));
                sim_limits = sim.observe(&Observation {
                    now,
                    current: sim_limits,
                    cpu_used: used,
                    cpu_limited: cores > cap(&sim_limits),
                    memory_used: Some(memory),
                    oom: false,
                });

                counters.at = now;
                counters.cpu_usage_usec +=
                    (cores.min(cap(&daemon_limits)) * step * 1e6).round() as u64;
                counters.memory_bytes = memory as u64;
                let sampled = Sampled {
                    counters,
                    ..Sampled::default()
                };
                let d = daemon.observe(sampled, daemon_limits, Some(&bounds), &host, now);
                if let Some((action, new, _)) = d.and_then(|d| d.change) {
                    daemon.record_success(action, new, now);
                    daemon_limits = new;
                }
                assert_eq!(
                    daemon_limits, sim_limits,
                    "{policy:?}, step {k}: the daemon and the simulator disagree"
                );
            }
            assert_ne!(
                daemon_limits, start,
                "{policy:?}: the sequence should have moved the limits"
            );
        }
    }

    /// What `adaptive` learned is stored at each check and read back by a restarted daemon.
    #[test]
    fn a_restart_keeps_what_adaptive_learned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let unit = UnitName::parse("learn.service").expect("unit name");
        let path = dir.path().join("a.db");
        let host = Machine::default().host();
        let learned = {
            let store = Store::open(&path, &unit).expect("store");
            let mut daemon =
                UnitState::load(&store, unit.clone(), "user", Millis(0)).expect("unit state");
            assert!(
                daemon.controller.learned().is_none(),
                "nothing stored, nothing carried"
            );
            daemon.config = daemon.config.with_policy(Policy::Adaptive);
            let bounds = autoscaler_core::Bounds::new(&daemon.config, &host).expect("bounds");
            let limits = Limits::new(400, 16, 1000);
            let mut counters = Counters::default();
            daemon.prev = Some(counters);
            for (k, (cores, gib)) in recorded().into_iter().take(40).enumerate() {
                let now = Millis::from_secs((k as i64 + 1) * 300);
                counters.at = now;
                counters.cpu_usage_usec += (cores.min(4.0) * 300.0 * 1e6) as u64;
                counters.memory_bytes = (gib * GIB as f64) as u64;
                let sampled = Sampled {
                    counters,
                    ..Sampled::default()
                };
                daemon.observe(sampled, limits, Some(&bounds), &host, now);
                for w in daemon.writes(0) {
                    w.apply(&store).expect("store metric and learned state");
                }
            }
            daemon.controller.learned().expect("learned").encode()
        };
        assert_ne!(learned, autoscaler_core::Learned::default().encode());
        let store = Store::open(&path, &unit).expect("store again");
        let again = UnitState::load(&store, unit, "user", Millis(0)).expect("unit state again");
        assert_eq!(
            again
                .controller
                .learned()
                .map(autoscaler_core::Learned::encode),
            Some(learned)
        );
    }
}
