//! The `adaptive` policy: a learned, per-unit recommender that sizes each limit from the
//! unit's own recent peaks, picks per unit the model that has cost least so far, and grows a
//! limit at once when it was hit.
//!
//! What it owns: the learned state of one unit ([`Learned`]: per resource, 5-minute window
//! peaks, every model's running cost and its last recommendation) and the rules that turn it
//! into a decision. It does no I/O and reads no clock: "now" is an argument, and the state
//! encodes itself to a line of text ([`Learned::encode`]) that the store keeps as it is.
//!
//! The design, and why (docs/DECISIONS.md, "The adaptive policy", has the evidence):
//!
//! - **Moving windows** (Autopilot): usage is aggregated into 5-minute windows, one peak per
//!   window. A model is "the peak of the last W, times (1 + margin)"; [`MODELS`] crosses four
//!   window lengths with four margins. Long windows and wide margins suit bursty units, short
//!   and narrow ones steady units.
//! - **Per-unit model choice by running cost** (Autopilot's ML recommender): when a window
//!   closes, every model's recommendation made at the previous close is scored against the
//!   peak that came: demand above the limit costs [`OVERRUN_WEIGHT`] times as much as room
//!   left unused, and a recommendation that moves by more than the resize gap costs
//!   [`RESIZE_COST`]. Both are shares of the demand for CPU and tasks, of the model's own
//!   limit for memory (fourth round: slack then costs at most a window's worth, so the cost
//!   of an OOM kill weighs more and a jumpy working set earns its margin sooner). A hit hides
//!   the demand: it is guessed at the limit in force at the hit times [`HIT_GROWTH`] (fifth
//!   round; it was the limit at the window's close, already raised by the hit). Costs decay
//!   with a [`COST_HALF_LIFE_SECS`] half-life so the unit's recent behaviour counts most. The unit runs the cheapest model, switching only when it
//!   is clearly cheaper ([`SWITCH_MARGIN`]).
//! - **Up at once when a limit is hit** (our `headroom`, VPA's OOM bump): demand above a limit
//!   is invisible (throttling, an OOM kill), so a hit limit grows by [`HIT_GROWTH`] at once,
//!   as does one under memory pressure. No streak, no cooldown on the way up. CPU use near
//!   the quota with no throttling (97-99%) is demand seen as it is: it grows by the smaller
//!   [`NEAR_GROWTH`], a raise the hysteresis band keeps, unless moves take more than a check to
//!   land (an apply delay, learned from the last move). A model raise outgrown within the
//!   window it was made in (a ramp, checked more often than once a window) steps by
//!   [`NEAR_GROWTH`] too (seventh round).
//! - **Room for the unit's own spikes** (fifth round): a CPU or task limit is never under the
//!   current level plus a high quantile of the unit's window-to-window rises over 8 hours
//!   (`Track::spike`), so a steady unit is sized close to its level and a spiky one keeps
//!   standing room for its next spike, however long ago the last one was. The room reaches
//!   no higher than the unit's highest 8-hour peak times the model's margin (sixth round): a
//!   step load at its top is not held at twice its peak.
//! - **Room for a short history** (VPA's confidence), memory only: x(1 +
//!   [`CONFIDENCE_HOURS`] / hours of history), since a working set that has not jumped yet
//!   shows no spike.
//! - **Down only with evidence** (the spec's rules): never while the unit is starving, not
//!   before [`MIN_HISTORY_SECS`] of history, not within [`HOLD_SECS`] of the last move, and
//!   only when the recommendation is at least [`DOWN_GAP`] under the limit. A new unit
//!   therefore keeps its generous starting limits until a few windows show its level.
//!
//! Every constant is a ratio or a duration, not a size: the policy behaves the same on a
//! unit of 0.1 or 20 cores, and at a 1 s, 30 s or 5 min check interval (CPU use is taken as
//! its mean over [`CPU_RATE_SECS`], whatever the interval).

use std::collections::VecDeque;
use std::fmt;
use std::fmt::Write;

use crate::history::TriggerType;
use crate::limits::{Bounds, GIB, Limits, MIB, Resource, fmt_gib};
use crate::sample::Usage;
use crate::time::Millis;

/// Length of one aggregation window: Autopilot's 5 minutes.
pub const WINDOW_SECS: i64 = 300;
/// Usage at or above this share of the CPU limit means the limit was hit: a cgroup at its
/// quota shows usage equal to the quota, and the demand above it is invisible.
pub const HIT_UTIL: f64 = 0.97;
/// A hit limit grows at least by this factor at once (the "x1.5 when the limit is hit" rule).
pub const HIT_GROWTH: f64 = 1.5;
/// CPU use at or above this share of the quota is starvation, as throttling is: a cgroup held
/// at its quota reads at it, less the accounting's jitter. Use between [`HIT_UTIL`] and this,
/// with no throttling, is a unit near its quota that got all it asked for.
pub const AT_QUOTA: f64 = 0.99;
/// A limit hit only by use near the quota grows at least by this factor, not [`HIT_GROWTH`]:
/// 1 / (1 - [`DOWN_GAP`]), the largest raise the hysteresis band keeps while use stays where
/// it is. A larger one is cut back an hour later (c_12104: 740% -> 1110% -> 810% on a drift
/// at 97% of the quota, most of its moves). With an apply delay (a move that took more than
/// one check to show) the full [`HIT_GROWTH`] stays: a drift goes on until the raise lands.
/// A raise on the model's say within a window of the last move grows at least as much: the
/// ramp outgrew the one-window trend, and one small step a check was most of c_12104's
/// raises (1100% -> 1220 -> 1365 -> 1510 -> 1660 -> 1805% in six minutes).
pub const NEAR_GROWTH: f64 = 1.0 / (1.0 - DOWN_GAP);
/// Demand above the limit costs this many times as much as the same amount of slack: a
/// throttled or killed unit loses work, an oversized one only wastes room. With linear costs
/// the best constant limit is then the 1 - 1/(1 + w) quantile of the window peaks, about the
/// 97th: a limit is exceeded in about one 5-minute window in 30.
pub const OVERRUN_WEIGHT: f64 = 30.0;
/// What one overrun costs besides its size, per resource, in windows of slack equal to the
/// demand. Throttling costs in proportion to the shortfall (CPU: 1); a task limit that is hit
/// fails a fork (tasks: 4); an OOM kill loses the process's work whatever the overrun
/// (memory: 24, two hours of a limit twice the need).
pub const OVERRUN_EVENT: [f64; 3] = [1.0, 24.0, 4.0];
/// The cost of a recommendation moving by more than [`DOWN_GAP`]: one window's worth of
/// slack equal to the demand. It favours steady models, since each move is a resize.
pub const RESIZE_COST: f64 = 1.0;
/// Half-life of the models' running costs: half a day, so a unit's last few hours decide.
pub const COST_HALF_LIFE_SECS: f64 = 12.0 * 3600.0;
/// 0.5^(WINDOW_SECS / COST_HALF_LIFE_SECS), written out: `powf` at every close would cost
/// more than the rest of it (a unit test checks the figure).
pub const COST_DECAY_PER_WINDOW: f64 = 0.995_198_044_344_353_8;
/// Switch model only when another one costs at most this share of the current one's.
pub const SWITCH_MARGIN: f64 = 0.9;
/// Lower a limit only when the recommendation is this far under it (the hysteresis band).
pub const DOWN_GAP: f64 = 0.15;
/// Raise a limit on the model's say alone only when the recommendation is this far above it.
pub const UP_GAP: f64 = 0.05;
/// A limit holds at least this long after it moved before it may fall.
pub const HOLD_SECS: f64 = 3600.0;
/// How far ahead a rise is carried, in windows: a limit set now is in force at least until
/// the next window's checks, so demand that rose by `d` since the last closed window is
/// expected at `d` more by then (a linear trend over one window). Without it a ramp meets the
/// limit before the model raises it: a narrow margin only follows, one hit per step.
pub const TREND_WINDOWS: f64 = 1.0;
/// The extra room for a short history of memory, as VPA widens its bounds by 1/confidence:
/// x(1 + this / hours of history), so x1.5 after an hour, x1.125 after four, x1.02 after a
/// day. A working set that has not yet jumped shows no spike, and a kill costs the work
/// whatever its size. CPU and tasks keep room for the unit's own spikes instead (see
/// `Track::spike`; the fifth round dropped their decaying range room for it).
pub const CONFIDENCE_HOURS: f64 = 0.5;
/// No cut before this much history: three windows, the fewest that show a level and two
/// changes of it (hence a range). A new unit keeps its generous limits until then; the
/// confidence room above keeps the first cuts wide.
pub const MIN_HISTORY_SECS: f64 = 3.0 * WINDOW_SECS as f64;
/// A recommendation younger than this that was not yet in force still counts (apply delays).
pub const PENDING_SECS: f64 = 1800.0;
/// Window peaks kept: 8 hours, the longest memory model.
const RING: usize = 96;
/// Memory PSI "some" avg10 above this percent counts as the limit being hit (reclaim stalls
/// the unit before any OOM kill).
pub const MEMORY_PRESSURE_PERCENT: f64 = 10.0;
/// CFS periods throttled above this share count as the CPU limit being hit.
pub const THROTTLED_SHARE: f64 = 0.2;
/// The throttled share is judged over at least this long: ten of the kernel's default 100 ms
/// periods. A check that follows another closely (a pressure event woke the daemon) covers a
/// few periods, and one throttled by a busy loop's jitter reads as a third of them; at a 1 s
/// interval or more every check is judged on its own, as before.
pub const THROTTLE_SPAN_SECS: f64 = 1.0;
/// CPU use enters a window's peak, and counts as use at the quota, as its mean over at least
/// this long. A rate read over one second is mostly the scheduler's noise (one busy loop reads
/// 0.6 to 1.5 cores), and a limit sized to such a peak is paid for all the time, or grown for
/// nothing; throttling, the kernel's own word that the quota is too small, still counts at
/// once. Checks this far apart or more (the daemon's default interval is 30 s, the
/// traces have a sample a minute or more) count one by one, as before.
pub const CPU_RATE_SECS: f64 = 30.0;

/// One model: the peak over `windows` 5-minute windows, times `margin`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    pub windows: usize,
    pub margin: f64,
}

const fn grid(windows: [usize; 4], margins: [f64; 4]) -> [Model; 16] {
    let mut out = [Model {
        windows: 1,
        margin: 1.0,
    }; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = Model {
            windows: windows[i / 4],
            margin: margins[i % 4],
        };
        i += 1;
    }
    out
}

/// CPU and tasks: windows of 30 min, 1, 2 and 4 hours. Memory: 1, 2, 4 and 8 hours, since a
/// working set frees slowly and an OOM kill costs more than throttling.
/// Margins: CPU and tasks from 5% (a steady unit) to 50% (a bursty one); memory from VPA's
/// 15% to 100%, since a working set jumps by whole allocations and an overrun is a kill.
pub const MODELS: [[Model; 16]; 3] = [
    grid([6, 12, 24, 48], [1.05, 1.15, 1.3, 1.5]),
    grid([12, 24, 48, 96], [1.15, 1.3, 1.5, 2.0]),
    grid([6, 12, 24, 48], [1.05, 1.15, 1.3, 1.5]),
];
const M: usize = 16;
/// The model a unit starts with: 2 hours (memory 4), margin 1.3, a middle choice.
const START_MODEL: usize = 10;

/// Why one resource moved (or would move).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The limit was hit (throttled, OOM kill, memory pressure): grow at once.
    Hit,
    /// The chosen model recommends more than the limit.
    Model,
    /// The chosen model recommends clearly less, with enough history and hold time.
    Cut,
}

/// What the adaptive policy says about one resource at one check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recommendation {
    pub resource: Resource,
    /// The chosen model.
    pub model: Model,
    /// Its index in [`MODELS`], and its running cost (decayed sum).
    pub model_index: usize,
    pub cost: f64,
    /// The peak over the model's window, in the resource's unit (percent of a core, bytes,
    /// tasks).
    pub peak: f64,
    /// The limit the model recommends, within the bounds.
    pub target: u64,
    /// History so far, seconds.
    pub history_secs: f64,
}

impl Recommendation {
    /// The model in words: "peak of 2h x1.30".
    pub fn model_name(&self) -> String {
        model_name(self.model)
    }
}

/// A change the policy makes to one resource, with its evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Move {
    pub cause: Cause,
    pub from: u64,
    pub to: u64,
    pub rec: Recommendation,
}

/// The adaptive policy's verdict: up to three moves and the recommendations behind them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub moves: [Option<Move>; 3],
    pub recs: [Option<Recommendation>; 3],
}

impl Verdict {
    /// The new limits when anything moved.
    pub fn limits(&self, current: &Limits) -> Option<Limits> {
        let mut new = *current;
        let mut any = false;
        for m in self.moves.iter().flatten() {
            new = new.with(m.rec.resource, m.to);
            any = true;
        }
        any.then_some(new)
    }

    /// Whether any move grows a limit.
    pub fn grows(&self) -> bool {
        self.moves.iter().flatten().any(|m| m.to > m.from)
    }

    /// The history's `trigger_type`: `oom` or `pressure` for a hit, else `adaptive`.
    pub fn trigger(&self) -> TriggerType {
        let hit = |r: Resource| {
            self.moves
                .iter()
                .flatten()
                .any(|m| m.cause == Cause::Hit && m.rec.resource == r)
        };
        if hit(Resource::Memory) {
            TriggerType::Oom
        } else if hit(Resource::Cpu) || hit(Resource::Tasks) {
            TriggerType::Pressure
        } else {
            TriggerType::Adaptive
        }
    }
}

impl fmt::Display for Verdict {
    /// "adaptive: CPU 700%->215% (cut; peak of 2h x1.30: peak 165%, expects use <= 77% of the
    /// limit; history 1.0 h)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let moves: Vec<_> = self.moves.iter().flatten().collect();
        if moves.is_empty() {
            write!(f, "adaptive: holding")?;
            for r in self.recs.iter().flatten() {
                write!(
                    f,
                    "; {} recommends {} ({}: peak {})",
                    name(r.resource),
                    show(r.resource, r.target as f64),
                    r.model_name(),
                    show(r.resource, r.peak)
                )?;
            }
            return Ok(());
        }
        write!(f, "adaptive: ")?;
        for (i, m) in moves.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            let r = m.rec.resource;
            let cause = match (m.cause, r) {
                (Cause::Hit, Resource::Memory) => "OOM kill or memory pressure, grow at once",
                (Cause::Hit, Resource::Cpu) => {
                    "limit hit (use at or near the quota, or throttled), grow at once"
                }
                (Cause::Hit, Resource::Tasks) => "task limit hit, grow at once",
                (Cause::Model, _) => "the model wants more",
                (Cause::Cut, _) => "the model shows room unused",
            };
            let util = if m.to > 0 {
                m.rec.peak / m.to as f64 * 100.0
            } else {
                0.0
            };
            write!(
                f,
                "{} {}->{} ({cause}; model {}: peak {}, expects use <= {util:.0}% of the new limit; cost {:.2}, history {:.1} h)",
                name(r),
                show(r, m.from as f64),
                show(r, m.to as f64),
                m.rec.model_name(),
                show(r, m.rec.peak),
                m.rec.cost,
                m.rec.history_secs / 3600.0
            )?;
        }
        Ok(())
    }
}

fn name(r: Resource) -> &'static str {
    match r {
        Resource::Cpu => "CPU",
        Resource::Memory => "Memory",
        Resource::Tasks => "Tasks",
    }
}

fn show(r: Resource, v: f64) -> String {
    match r {
        Resource::Cpu => format!("{v:.0}%"),
        Resource::Memory => format!("{}GB", fmt_gib(v / GIB as f64)),
        Resource::Tasks => format!("{v:.0}"),
    }
}

fn model_name(m: Model) -> String {
    let mins = m.windows as i64 * WINDOW_SECS / 60;
    let span = if mins % 60 == 0 {
        format!("{}h", mins / 60)
    } else {
        format!("{mins}min")
    };
    format!("peak of {span} x{:.2}", m.margin)
}

/// Rounding of each resource's limit, upwards: 5% of a core, 64 MiB, 8 tasks. Fine enough to
/// follow small units, coarse enough not to resize for noise.
fn grain(r: Resource) -> f64 {
    match r {
        Resource::Cpu => 5.0,
        Resource::Memory => (64 * MIB) as f64,
        Resource::Tasks => 8.0,
    }
}

/// A time-weighted mean gathered over at least a span: values x seconds, and seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SpanMean {
    sum: f64,
    secs: f64,
}

impl SpanMean {
    /// Adds `value` held for `secs`; once `span` seconds have gathered, their mean (and the
    /// next mean starts from nothing).
    fn add(&mut self, value: f64, secs: f64, span: f64) -> Option<f64> {
        self.sum += value * secs;
        self.secs += secs;
        if self.secs < span {
            return None;
        }
        let mean = self.sum / self.secs;
        *self = SpanMean::default();
        Some(mean)
    }
}

/// What one resource learned.
#[derive(Debug, Clone, PartialEq)]
struct Track {
    /// Start of the open window, ms; its peak and whether the limit was hit in it.
    win_start: Option<i64>,
    win_peak: f64,
    win_hit: bool,
    /// The demand the open window's hits point to: the largest limit in force at a hit times
    /// [`HIT_GROWTH`], or the larger limit then on its way (NaN: a state saved by an older
    /// daemon, which kept no guess; the limit in force at the close stands in, as it did).
    win_guess: f64,
    /// Closed windows' peaks, oldest first, at most [`RING`].
    peaks: VecDeque<f64>,
    /// Windows closed so far (the history's length).
    closed: u64,
    costs: [f64; M],
    /// Every model's recommendation at the last close, scored at the next one.
    recs: [f64; M],
    chosen: usize,
    /// When the policy last moved this limit, and the last value it asked for.
    last_move: Option<i64>,
    asked: Option<f64>,
    /// Derived, not persisted: [`Track::closed_maxima`] as of the last close.
    closed_max: [f64; 4],
    /// Derived, not persisted: the unit's spike size as of the last close (see
    /// [`Track::spike`]).
    closed_spike: f64,
    /// Not persisted: CPU use gathered toward its next [`CPU_RATE_SECS`] mean, and when the
    /// last observation was.
    rate: SpanMean,
    last_at: Option<i64>,
    /// Not persisted: the throttled share gathered toward its next [`THROTTLE_SPAN_SECS`]
    /// judgement.
    throttle: SpanMean,
    /// Not persisted (relearned at the first move after a restart): seconds between the last
    /// two CPU checks, and how many checks the last move took to show in the limits (1: in
    /// force at the next check, no apply delay).
    interval: f64,
    lag_checks: f64,
}

impl Default for Track {
    fn default() -> Track {
        Track {
            win_start: None,
            win_peak: 0.0,
            win_hit: false,
            win_guess: f64::NAN,
            peaks: VecDeque::with_capacity(RING),
            closed: 0,
            costs: [0.0; M],
            recs: [f64::NAN; M],
            chosen: START_MODEL,
            last_move: None,
            asked: None,
            closed_max: [0.0; 4],
            closed_spike: 0.0,
            rate: SpanMean::default(),
            last_at: None,
            throttle: SpanMean::default(),
            interval: 0.0,
            lag_checks: 1.0,
        }
    }
}

impl Track {
    /// For each model length L, the maximum of the newest L - 1 closed windows (what a check
    /// adds the open window to) and of the newest L (what a close recommends from), in one
    /// pass from the newest window, so that a check costs O(1) and a close one pass.
    fn maxima(&self, models: &[Model; M]) -> ([f64; 4], [f64; 4]) {
        let lens = [
            models[0].windows,
            models[4].windows,
            models[8].windows,
            models[12].windows,
        ];
        let (mut within, mut full) = ([0.0; 4], [0.0; 4]);
        let mut running = 0.0f64;
        for (i, &p) in self.peaks.iter().rev().enumerate() {
            let c = i + 1;
            if c > lens[3] {
                break;
            }
            running = running.max(p);
            for k in 0..4 {
                if c + 1 == lens[k] {
                    within[k] = running;
                }
                if c == lens[k] {
                    full[k] = running;
                }
            }
        }
        // A history shorter than a model's window: all of it.
        for k in 0..4 {
            if self.peaks.len() + 1 < lens[k] {
                within[k] = running;
            }
            if self.peaks.len() < lens[k] {
                full[k] = running;
            }
        }
        (within, full)
    }

    /// The unit's spike size (lead 3 of round four): a high quantile of the
    /// rises from one window's peak to the next over every window kept (8 h), the rise met
    /// about once per longest model window (4 h for CPU and tasks): the largest until the
    /// history holds two such spans, then the second largest. A limit keeps that much room
    /// above the current level, so a steady unit gets a narrow margin and a spiky one a wide
    /// one that does not decay with the hours since its last spike (on gcd-vms 122 of the 130
    /// short samples were the first sample of a spike, which only standing room can serve).
    /// `longest` is the longest model window, in windows. One tight pass, kept apart from
    /// [`Track::maxima`] so memory (which does not use it) pays nothing.
    fn spike(&self, longest: usize) -> f64 {
        let (mut first, mut second) = (0.0f64, 0.0f64);
        let mut older = self.peaks.iter();
        for (&new, &old) in self.peaks.iter().skip(1).zip(&mut older) {
            let rise = new - old;
            if rise > second {
                if rise > first {
                    (first, second) = (rise, first);
                } else {
                    second = rise;
                }
            }
        }
        let rises = self.peaks.len().saturating_sub(1);
        if rises >= longest { second } else { first }
    }

    /// Whether the CPU limit was throttled, judged over at least [`THROTTLE_SPAN_SECS`]: a
    /// check closer to the last one adds its share to the next. Called before
    /// [`Track::observe`], which moves `last_at`.
    fn throttled(&mut self, t: i64, share: Option<f64>) -> bool {
        let Some(share) = share else {
            return false;
        };
        let secs = self.last_at.map_or(THROTTLE_SPAN_SECS, |last| {
            ((t - last) as f64 / 1000.0).max(0.0)
        });
        self.throttle
            .add(share, secs, THROTTLE_SPAN_SECS)
            .is_some_and(|mean| mean > THROTTLED_SHARE)
    }

    /// What one observation adds to the window's peak: memory and tasks as they are, CPU as
    /// its mean over [`CPU_RATE_SECS`] once that much has gathered (see there).
    fn level(&mut self, r: Resource, t: i64, used: f64) -> Option<f64> {
        if r != Resource::Cpu {
            return Some(used);
        }
        if let Some(last) = self.last_at {
            self.interval = (t - last) as f64 / 1000.0;
        }
        let secs = self.last_at.map_or(CPU_RATE_SECS, |last| {
            ((t - last) as f64 / 1000.0).clamp(0.0, CPU_RATE_SECS)
        });
        self.last_at = Some(t);
        self.rate.add(used, secs, CPU_RATE_SECS)
    }

    /// Closes the open window: scores every model against its peak and picks the cheapest.
    ///
    /// A model's cost is its overrun (weighted) and slack as shares of a scale. CPU and tasks
    /// take the demand as the scale. Memory takes the model's own limit, as the memory slack
    /// figure does: slack then costs at most one window's worth, whatever the margin, so a
    /// working set that jumps by whole allocations earns a wide margin sooner and an OOM kill
    /// (a lost process, whatever its size) weighs more against it. (For CPU the same change cut
    /// the shortage but widened margins on smooth units and broke the delayed c_12104 case;
    /// docs/DECISIONS.md, fourth round.)
    fn close(&mut self, r: Resource, lo: f64, hi: f64, hit_guess: f64) {
        let models = &MODELS[index(r)];
        // A hit is scored from the limit that was hit, taken when it was hit. The limit in force
        // at the close is, with one check per window (gcd-vms), the limit the hit already
        // raised: a hit would be scored at HIT_GROWTH squared of the limit hit (round four).
        let guess = if self.win_guess.is_nan() {
            hit_guess
        } else {
            self.win_guess
        };
        let demand = if self.win_hit {
            self.win_peak.max(guess)
        } else {
            self.win_peak
        };
        let scale = demand.max(lo).max(f64::MIN_POSITIVE);
        let decay = COST_DECAY_PER_WINDOW;
        if self.peaks.len() == RING {
            self.peaks.pop_front();
        }
        self.peaks.push_back(self.win_peak);
        self.closed += 1;
        let (within, full) = self.maxima(models);
        if r != Resource::Memory {
            self.closed_spike = self.spike(models[12].windows);
        }
        let mut fresh = [0.0; M];
        for (i, (f, m)) in fresh.iter_mut().zip(models).enumerate() {
            *f = (full[i / 4] * m.margin).clamp(lo, hi);
        }
        for ((cost, &l), &f) in self.costs.iter_mut().zip(&self.recs).zip(&fresh) {
            let mut c = 0.0;
            if l.is_finite() {
                // Memory is scored over the model's limit (see above).
                let scale = if r == Resource::Memory {
                    l.max(lo).max(f64::MIN_POSITIVE)
                } else {
                    scale
                };
                c = (OVERRUN_WEIGHT * (demand - l).max(0.0) + (l - demand).max(0.0)) / scale;
                if demand > l {
                    c += OVERRUN_EVENT[index(r)];
                }
                if (f - l).abs() > DOWN_GAP * l {
                    c += RESIZE_COST;
                }
            }
            *cost = *cost * decay + c;
        }
        self.recs = fresh;
        self.closed_max = within;
        let best = (0..M)
            .min_by(|&a, &b| self.costs[a].total_cmp(&self.costs[b]))
            .unwrap_or(self.chosen);
        if self.costs[best] < SWITCH_MARGIN * self.costs[self.chosen] {
            self.chosen = best;
        }
        self.win_peak = 0.0;
        self.win_hit = false;
        self.win_guess = f64::NAN;
    }

    /// One observation of `used` under `limit` (both in the resource's unit); the move to
    /// make, if any, and the recommendation.
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &mut self,
        r: Resource,
        now: Millis,
        used: f64,
        limit: f64,
        hit: bool,
        lo: f64,
        hi: f64,
        act: bool,
    ) -> (Option<(Cause, f64)>, Recommendation) {
        let models = &MODELS[index(r)];
        let t = now.0;
        let w = WINDOW_SECS * 1000;
        match self.win_start {
            None => self.win_start = Some(t - t.rem_euclid(w)),
            Some(s) if t >= s + w => {
                self.close(r, lo, hi, limit * HIT_GROWTH);
                self.win_start = Some(t - t.rem_euclid(w));
            }
            Some(_) => {}
        }
        let level = self.level(r, t, used);
        if let Some(level) = level {
            self.win_peak = self.win_peak.max(level);
        }
        // Starved: throttled (or OOM, pressure, tasks at their limit), or CPU use at the quota.
        // Use near the quota counts as a hit too, with a smaller growth (see [`NEAR_GROWTH`]).
        let at = |share: f64| r == Resource::Cpu && level.is_some_and(|l| l >= share * limit);
        let starved = hit || at(AT_QUOTA);
        let hit = hit || at(HIT_UTIL);
        self.win_hit |= hit;
        let model = models[self.chosen];
        let peak = self.win_peak.max(self.closed_max[self.chosen / 4]);
        // A rising unit: the peak expected by the next window (see [`TREND_WINDOWS`]).
        let rise = self
            .peaks
            .back()
            .map_or(0.0, |&last| (self.win_peak - last).max(0.0));
        let ahead = peak.max(self.win_peak + TREND_WINDOWS * rise);
        // A cut is a commitment: the limit it sets holds at least [`HOLD_SECS`] (nothing
        // lowers it sooner, only a hit raises it), so it must cover the peak of a whole hold,
        // not only of the model's window, which for the shortest models is shorter.
        let hold_peak = self.win_peak.max(self.closed_max[hold_model_index(models)]);
        let history = self.closed as f64 * WINDOW_SECS as f64;
        // VPA's confidence: with little history the model knows less, so it keeps more room
        // (see [`CONFIDENCE_HOURS`]).
        let unsure = CONFIDENCE_HOURS * 3600.0 / history.max(WINDOW_SECS as f64);
        let (spike, confidence) = if r == Resource::Memory {
            (None, 1.0 + unsure)
        } else {
            (Some(self.closed_spike), 1.0)
        };
        // The unit's own spike on top of its current level: the open window or the last closed
        // one, whichever is higher, since a limit set now holds through the next window. It is
        // room for what the unit has done, so it reaches no higher than the unit's highest peak
        // over the spike's own horizon with the model's margin: a unit already at that peak (a
        // step load at its top) is sized by its model, and a new high is a hit that grows the
        // limit at once.
        let floor = spike.map_or(lo, |s| {
            let level = self.win_peak.max(self.peaks.back().copied().unwrap_or(0.0));
            let highest = self.win_peak.max(self.closed_max[3]) * model.margin;
            round_up(r, (level + s).min(highest).clamp(lo, hi)).clamp(lo, hi)
        });
        let size = |p: f64| {
            round_up(r, (p * model.margin * confidence).clamp(lo, hi))
                .clamp(lo, hi)
                .max(floor)
        };
        let target = size(ahead);
        let cut_target = size(ahead.max(hold_peak));
        let rec = Recommendation {
            resource: r,
            model,
            model_index: self.chosen,
            cost: self.costs[self.chosen],
            peak,
            target: target as u64,
            history_secs: history,
        };
        if self.asked.is_some_and(|a| (a - limit).abs() < 0.5) {
            self.asked = None;
            if let Some(m) = self.last_move {
                self.lag_checks = (t - m) as f64 / 1e3 / self.interval.max(1.0);
            }
        }
        let since_move = self
            .last_move
            .map_or(f64::INFINITY, |m| (t - m) as f64 / 1e3);
        // A larger limit asked for recently but not yet in force (an apply delay) counts.
        let reference = match self.asked {
            Some(a) if since_move < PENDING_SECS => limit.max(a),
            _ => limit,
        };
        if hit {
            // With a larger limit on its way (an apply delay), that limit is the guess: the
            // policy already sized the demand this hit shows, and a hit per check of the delay
            // is not new evidence.
            // Use near the quota, unthrottled, is demand seen as it is.
            let guess = if !starved {
                level.unwrap_or(0.0)
            } else if reference > limit {
                reference
            } else {
                limit * HIT_GROWTH
            };
            self.win_guess = guess.max(self.win_guess);
        }
        let want = if !act {
            None
        } else if hit && reference > limit {
            // A larger limit is on its way: the hit is the old limit's, and growing again
            // before it lands would compound x1.5 at every check of the delay.
            None
        } else if hit {
            // A move that took more than one check to show (half a check of slack for timing
            // jitter) means an apply delay.
            let delayed = self.lag_checks > 1.5;
            let growth = if starved || delayed {
                HIT_GROWTH
            } else {
                NEAR_GROWTH
            };
            let grown = round_up(r, (limit * growth).max(target)).clamp(lo, hi);
            (grown > limit).then_some((Cause::Hit, grown))
        } else if target > reference * (1.0 + UP_GAP) {
            // A limit outgrown within the window it was set in (checks closer than a window
            // apart) shows a ramp steeper than the one-window trend foresaw: step by the band
            // (see [`NEAR_GROWTH`]), not by a few percent at every check. With one check a
            // window (gcd-vms) this never applies.
            let growth = if since_move < WINDOW_SECS as f64 {
                NEAR_GROWTH
            } else {
                1.0
            };
            let grown = round_up(r, (reference * growth).max(target)).clamp(lo, hi);
            Some((Cause::Model, grown))
        } else if !self.win_hit
            && history >= MIN_HISTORY_SECS
            && since_move >= HOLD_SECS
            && cut_target < limit * (1.0 - DOWN_GAP)
        {
            Some((Cause::Cut, cut_target))
        } else {
            None
        };
        if let Some((_, v)) = want {
            self.last_move = Some(t);
            self.asked = Some(v);
        }
        (want, rec)
    }
}

/// The first window length (an index into [`Track::maxima`]'s four) that spans a whole
/// [`HOLD_SECS`], or the longest.
fn hold_model_index(models: &[Model; M]) -> usize {
    (0..4)
        .find(|&k| models[k * 4].windows as f64 * WINDOW_SECS as f64 >= HOLD_SECS)
        .unwrap_or(3)
}

/// Rounds up to the resource's grain. A value a millionth of a grain over a step is taken
/// as that step: usage derived from cgroup counters (microseconds over a measured interval)
/// carries rounding noise of that order, and it must not add a grain (the daemon and a replay
/// of the same demand must decide alike).
fn round_up(r: Resource, v: f64) -> f64 {
    let g = grain(r);
    (v / g - 1e-6).ceil() * g
}

fn index(r: Resource) -> usize {
    match r {
        Resource::Cpu => 0,
        Resource::Memory => 1,
        Resource::Tasks => 2,
    }
}

/// Everything the adaptive policy learned about one unit. Persisted by the store as the
/// text of [`Learned::encode`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Learned {
    tracks: [Track; 3],
}

impl Learned {
    /// One check of a unit under `current` limits within `bounds`. Limits that are unset
    /// (unlimited) stay so; the others move when the rules in the module docs say.
    ///
    /// The caller applies the new limits; a change that could not be applied is simply asked
    /// for again at the next check.
    pub fn observe(
        &mut self,
        bounds: &Bounds,
        current: &Limits,
        usage: &Usage,
        now: Millis,
    ) -> Verdict {
        self.step(bounds, current, usage, now, true)
    }

    /// Learns from one check without acting (the unit's mode is not `enabled`): the windows and
    /// costs go on, no move is asked for, so nothing is later taken as "in flight".
    pub fn learn(
        &mut self,
        bounds: &Bounds,
        current: &Limits,
        usage: &Usage,
        now: Millis,
    ) -> Verdict {
        self.step(bounds, current, usage, now, false)
    }

    fn step(
        &mut self,
        bounds: &Bounds,
        current: &Limits,
        usage: &Usage,
        now: Millis,
        act: bool,
    ) -> Verdict {
        let mut verdict = Verdict {
            moves: [None; 3],
            recs: [None; 3],
        };
        for r in Resource::ALL {
            let Some(limit) = current.get(r) else {
                continue;
            };
            let limit = limit as f64;
            let (used, hit) = match r {
                Resource::Cpu => {
                    let Some(cores) = usage.cpu_cores else {
                        continue;
                    };
                    // Use at the quota counts as a hit over the same span as the peak (see
                    // `Track::level`); throttling is the kernel's own word, taken at once
                    // when the check spans a second or more (see `Track::throttled`).
                    let used = cores * 100.0;
                    let track = &mut self.tracks[index(r)];
                    (used, track.throttled(now.0, usage.throttled_ratio))
                }
                Resource::Memory => (
                    usage.memory_bytes as f64,
                    usage.new_oom_kills > 0
                        || usage
                            .memory_pressure
                            .is_some_and(|p| p > MEMORY_PRESSURE_PERCENT),
                ),
                Resource::Tasks => {
                    let used = usage.tasks as f64;
                    (used, used >= HIT_UTIL * limit)
                }
            };
            let (lo, hi) = bounds.range(r);
            let (want, rec) =
                self.tracks[index(r)].observe(r, now, used, limit, hit, lo as f64, hi as f64, act);
            verdict.recs[index(r)] = Some(rec);
            if let Some((cause, to)) = want {
                let to = to as u64;
                if to != limit as u64 {
                    verdict.moves[index(r)] = Some(Move {
                        cause,
                        from: limit as u64,
                        to,
                        rec,
                    });
                }
            }
        }
        verdict
    }

    /// The state as one line of text: a version tag, then per resource its numbers.
    pub fn encode(&self) -> String {
        let mut s = String::from("adaptive1");
        for t in &self.tracks {
            let _ = write!(
                s,
                " | {} {} {} {} {} {} {} {}",
                t.win_start.map_or("-".into(), |v| v.to_string()),
                t.win_peak,
                match (t.win_hit, t.win_guess.is_nan()) {
                    (false, _) => "0".to_string(),
                    (true, true) => "1".to_string(),
                    (true, false) => format!("1:{}", t.win_guess),
                },
                t.closed,
                t.chosen,
                t.last_move.map_or("-".into(), |v| v.to_string()),
                t.asked.map_or("-".into(), |v| v.to_string()),
                t.peaks.len()
            );
            for p in &t.peaks {
                let _ = write!(s, " {p}");
            }
            for c in t.costs.iter().chain(&t.recs) {
                let _ = write!(s, " {c}");
            }
        }
        s
    }

    /// The state [`Learned::encode`] wrote, or `None` when the text is not one (another
    /// version, damaged): the unit then starts learning afresh, which is safe.
    pub fn decode(text: &str) -> Option<Learned> {
        let mut parts = text.split(" | ");
        if parts.next()? != "adaptive1" {
            return None;
        }
        let mut out = Learned::default();
        for (t, r) in out.tracks.iter_mut().zip(Resource::ALL) {
            *t = decode_track(r, parts.next()?)?;
        }
        parts.next().is_none().then_some(out)
    }

    /// The current recommendation per resource, as of the last check (for `/prediction`).
    pub fn chosen(&self, r: Resource) -> (usize, Model, f64) {
        let t = &self.tracks[index(r)];
        (t.chosen, MODELS[index(r)][t.chosen], t.costs[t.chosen])
    }
}

/// One resource's part of an encoded state (see [`Learned::encode`]).
fn decode_track(r: Resource, text: &str) -> Option<Track> {
    let mut toks = text.split(' ');
    let mut tok = || toks.next();
    fn maybe<T: std::str::FromStr>(v: &str) -> Option<Option<T>> {
        if v == "-" {
            Some(None)
        } else {
            v.parse().ok().map(Some)
        }
    }
    let win_start = maybe(tok()?)?;
    let win_peak = tok()?.parse().ok()?;
    // "0", "1" (a hit, as older daemons wrote it, with no guess kept) or "1:GUESS".
    let (win_hit, win_guess) = match tok()? {
        "0" => (false, f64::NAN),
        "1" => (true, f64::NAN),
        h => (true, h.strip_prefix("1:")?.parse().ok()?),
    };
    let mut t = Track {
        win_start,
        win_peak,
        win_hit,
        win_guess,
        closed: tok()?.parse().ok()?,
        chosen: tok()?.parse().ok().filter(|&c: &usize| c < M)?,
        last_move: maybe(tok()?)?,
        asked: maybe(tok()?)?,
        ..Track::default()
    };
    let n: usize = tok()?.parse().ok().filter(|&n: &usize| n <= RING)?;
    for _ in 0..n {
        t.peaks.push_back(tok()?.parse().ok()?);
    }
    for k in 0..M {
        t.costs[k] = tok()?.parse().ok()?;
    }
    for k in 0..M {
        t.recs[k] = tok()?.parse().ok()?;
    }
    (t.closed_max, _) = t.maxima(&MODELS[index(r)]);
    if r != Resource::Memory {
        t.closed_spike = t.spike(MODELS[index(r)][12].windows);
    }
    tok().is_none().then_some(t)
}

#[cfg(test)]
mod tests;
