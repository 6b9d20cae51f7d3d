//! Replay and scoring of autoscaler policies on usage traces: `autoscaler simulate`'s library.
//!
//! # Layout
//!
//! - [`trace`]: readers for gcd-vms, VASim CSV and our own export (whose writer lives here
//!   too), giving a [`Trace`] of demand; malformed input names its file and line.
//! - [`policy`]: the [`Scaler`] trait and the policies compared: a static limit, the spec's
//!   conservative / balanced / aggressive and our `adaptive` run by the daemon's own controller, a VPA-style
//!   recommender ([`policy::vpa`]) and our headroom policy ([`policy::headroom`]).
//! - [`mod@replay`]: the tick-by-tick loop, [`replay()`], with an optional apply delay.
//! - [`oracle`]: the perfect-foresight baseline, piecewise constant with a given number of
//!   changes.
//! - [`score`]: slack, insufficient CPU, OOM events, resizes, mean limits ([`Score`]).
//! - [`report`]: [`run`] over traces x policies, a text table, JSON, the Pareto summary and
//!   SVG plots.
//! - [`forecast_report`]: how the daemon's online forecasts hold on traces (interval
//!   coverage, error against persistence), [`forecast_report()`].
//!
//! Architecture invariant: the spec policies are not re-implemented here: they call
//! [`autoscaler_core::Controller::observe`] with the inputs the engine would give it, so a
//! replayed trace takes the daemon's decisions. Only [`trace::read_trace`],
//! [`trace::read_dir`] and [`report::plot_svg`] touch the file system.

pub mod forecast_report;
pub mod oracle;
pub mod policy;
pub mod replay;
pub mod report;
pub mod score;
pub mod trace;

pub use forecast_report::{ForecastReport, forecast_report};
pub use policy::{Machine, Observation, PolicySpec, Scaler, Setup};
pub use replay::{replay, replay_delayed};
pub use report::{ParetoRow, Report, Run, TraceResult, plot_svg, run};
pub use score::Score;
pub use trace::{ExportWriter, Point, Trace, read_dir, read_trace, shared_traces_dir};
