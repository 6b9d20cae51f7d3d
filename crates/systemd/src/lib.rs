//! The systemd adapter of `autoscaler`: unit state over D-Bus, and the actuators that put
//! new limits on a unit.
//!
//! # Layout
//!
//! - [`manager`]: [`Systemd`], one D-Bus connection to the user or system manager ([`Bus`]);
//!   [`Systemd::inspect`] reads a unit's state, cgroup and limits into a [`UnitInfo`]; the
//!   typed [`Error`] has [`Error::UnitNotFound`] for units the manager cannot use.
//! - [`apply`]: [`apply()`] with a [`Strategy`] (live, restart, dry-run); reads back what
//!   systemd did and rolls back a change that did not take ([`ApplyError`], [`Rollback`]).
//! - [`watch`]: [`Watch`], each unit's state cached for the checks and kept true by systemd's
//!   signals (`Subscribe`), so the steady state makes no D-Bus call.
//! - [`crash`]: crash points for the fault-injection tests (debug builds only).
//! - [`unit_file`]: [`rewrite_limits`], the pure unit-file rewrite behind the restart
//!   strategy.
//!
//! Architecture invariant: this crate decides nothing. Bounds, cooldowns and when to act are
//! the engine's; here a request is carried out, verified, and undone if it did not take.
//! Unit names arrive as [`autoscaler_core::UnitName`], so nothing unchecked reaches D-Bus or
//! a file path.

pub mod apply;
pub mod crash;
pub mod manager;
pub mod unit_file;
pub mod watch;

pub use apply::{Applied, ApplyError, Rollback, Strategy, apply, recover};
pub use manager::{Bus, Error, Systemd, UnitInfo};
pub use unit_file::rewrite_limits;
pub use watch::{Watch, WatchStats};
