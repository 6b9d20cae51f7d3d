//! The pure decision core of `autoscaler`.
//!
//! # Layout
//!
//! - [`time`]: [`Millis`], the only notion of time here; callers pass it in.
//! - [`limits`]: [`Limits`] (CPUQuota, MemoryMax, TasksMax), [`Host`] capacity and the
//!   effective [`Bounds`] a limit must lie in.
//! - [`manual`]: [`ManualScale`], a manual scale request checked and converted from the units
//!   users write (percent, GiB, tasks); every front sends its values here.
//! - [`config`]: the spec's configuration row ([`Config`]), [`Mode`], [`Policy`] bundles and
//!   field-by-field validation.
//! - [`sample`]: cumulative cgroup [`Counters`] and the [`Usage`] derived from two of them.
//! - [`decide`]: the threshold controller: streaks, cooldown, steps, bounds, reasons; it
//!   hands the `adaptive` policy to [`adaptive`].
//! - [`adaptive`]: the learned per-unit recommender (moving-window peak models chosen by
//!   running cost, grow at once when a limit is hit) and its persisted state, [`Learned`].
//! - [`range`]: the [`Range`] a chart reads: start, step and bucket alignment, checked.
//! - [`history`]: a history row's [`Action`], [`TriggerType`] and [`Status`], as enums.
//! - [`unit`]: [`UnitName`], a unit name that passed systemd's naming rules.
//!
//! Architecture invariant: nothing in this crate does I/O, reads a clock, knows JSON, or can
//! panic on input. The daemon and the simulator both drive [`decide::Controller`], so a
//! replayed day takes exactly the decisions the daemon would have taken.

pub mod adaptive;
pub mod config;
pub mod decide;
pub mod forecast;
pub mod history;
pub mod limits;
pub mod manual;
pub mod predict;
pub mod profile;
pub mod range;
pub mod sample;
pub mod time;
pub mod trend;
pub mod unit;

pub use adaptive::Learned;
pub use config::{Config, ConfigError, FieldValue, Mode, Policy};
pub use decide::{Breach, Controller, Decision, Evaluation, Inputs, Trigger, Why};
pub use history::{Action, Status, TriggerType};
pub use limits::{Bounds, BoundsError, GIB, Host, Limits, MIB, Resource};
pub use manual::{ManualScale, ScaleError};
pub use range::{Range, RangeError};
pub use sample::{Counters, InvalidSample, Psi, Signals, Usage};
pub use time::Millis;
pub use unit::{InvalidUnitName, UnitName};
