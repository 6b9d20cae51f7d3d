//! The JSON shapes `json.rs` builds, described as types for the OpenAPI document.
//!
//! The answers are built with `json!` from engine types (rounding, GiB, nulls as the spec
//! writes them), so no Rust type holds them; these types exist only so `utoipa` can derive
//! their schemas, and nothing constructs them. What keeps the two from drifting is a test, not
//! this file: `tests/openapi.rs` sends real requests to the daemon over fakes and validates
//! every answer against the served document, and the response objects here deny unknown
//! fields and require every key `json.rs` always writes (nullable ones too), so a field added,
//! renamed or dropped on one side only fails it.
//!
//! Closed vocabularies (modes, policies, triggers, models, ...) are not retyped here: their
//! schemas are written from the core's and the systemd crate's own lists in `openapi.rs`.

// Described, never built: see above.
#![allow(dead_code)]

use std::collections::BTreeMap;

use utoipa::{ToResponse, ToSchema};

use super::openapi::{
    ActionName, BusName, DisabledMode, ForecastModel, ModeName, PolicyName, Range, StatusName,
    StrategyName, TrendName, TriggerName,
};

/// Resource limits; null means unlimited (systemd's `infinity`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPUQuota in percent of one core (200 = two cores).
    #[schema(required)]
    cpu_quota: Option<u32>,
    /// MemoryMax in GiB (1024^3 bytes): an integer when whole, else 3 decimals.
    #[schema(required, minimum = 0)]
    memory_max: Option<f64>,
    /// TasksMax.
    #[schema(required)]
    tasks_max: Option<u64>,
}

/// A unit's state (`GET status`, `GET units`, and the answer to `POST mode` and `POST policy`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Status {
    mode: ModeName,
    policy: PolicyName,
    /// A scaling action is being applied right now.
    is_running: bool,
    /// Limits as systemd last reported them; null before the first check.
    #[schema(required)]
    current_limits: Option<Limits>,
    /// Local time of the last successful action, `YYYY-MM-DDTHH:MM:SS`.
    #[schema(required)]
    last_scale_time: Option<String>,
    scale_up_count: u64,
    scale_down_count: u64,
    /// The systemd unit this status is about.
    unit: String,
    /// Which systemd manager the unit belongs to.
    manager: BusName,
    /// How limits are applied.
    strategy: StrategyName,
    unit_available: bool,
    /// Why the unit cannot be managed right now.
    #[schema(required)]
    unit_error: Option<String>,
    /// The last failed apply; shown until the mode is set again.
    #[schema(required)]
    last_failure: Option<LastFailure>,
    /// The controller's last verdict in words.
    last_decision: String,
    /// Consecutive breaching / idle checks so far.
    streaks: Streaks,
    /// The range each limit may take on this host: hard limits intersected with capacity minus
    /// the reserve, as [min, max]; or why none is possible.
    bounds: Bounds,
    host: Host,
    store: StoreHealth,
    events: Events,
}

/// The kernel's notifications for the unit, which run its check at once: PSI triggers on CPU
/// and memory pressure, a memory-usage threshold and OOM events. A source the kernel refused
/// is checked at the unit's interval instead.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Events {
    /// Empty until the unit's first reading.
    sources: Vec<EventSource>,
    /// How many times the kernel woke the unit's check, since start.
    wakes: u64,
}

/// One notification source of a unit.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSource {
    #[schema(pattern = "^(cpu_pressure|memory_pressure|memory_threshold|oom)$")]
    source: String,
    /// Armed; or refused, and then polled at the unit's interval.
    armed: bool,
    /// What it was armed with, or why the kernel refused it.
    detail: String,
}

/// How the store keeps up with the daemon's writes.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreHealth {
    /// `ok`, or `degraded` while the database refuses writes (they are queued and retried).
    #[schema(pattern = "^(ok|degraded)$")]
    state: String,
    /// Why it is degraded, in words.
    #[schema(required)]
    reason: Option<String>,
    /// Writes waiting for the database.
    queued_writes: u64,
    /// Samples dropped because too many were waiting, since start.
    dropped_samples: u64,
    /// Writes the database refused for a lasting reason, since start (never expected).
    lost_writes: u64,
    /// Failed write attempts, since start.
    errors: u64,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LastFailure {
    timestamp: String,
    error_message: String,
    history_id: i64,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Streaks {
    scale_up: u32,
    scale_down: u32,
}

#[derive(ToSchema)]
#[serde(untagged)]
pub enum Bounds {
    Ranges(BoundRanges),
    Impossible(BoundsError),
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BoundRanges {
    cpu_quota: Range,
    memory_max: Range,
    tasks_max: Range,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BoundsError {
    error: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    cores: u32,
    memory_gb: f64,
}

/// The last sample of the unit's cgroup (`GET metrics`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Local time of the sample, `YYYY-MM-DDTHH:MM:SS`.
    timestamp: String,
    /// CPU use in percent of the unit's CPUQuota (of the host's cores when unlimited).
    #[schema(required)]
    cpu_percent: Option<f64>,
    /// CPU cores used over the last interval.
    #[schema(required)]
    cpu_cores_used: Option<f64>,
    /// Memory in use, GiB.
    #[schema(minimum = 0)]
    memory_gb: f64,
    /// Processes in the cgroup (cgroup.procs).
    process_count: u64,
    agent_count: u32,
    testing_agent_count: u32,
    /// null when no quota source is configured.
    #[schema(required)]
    api_quota_remaining: Option<u64>,
    /// null when no AutoCoder project can be read: unknown, not 0.
    #[schema(required)]
    features_pending: Option<u32>,
    /// Tasks (threads), what TasksMax limits.
    task_count: u64,
    /// Memory in percent of the current MemoryMax.
    #[schema(required)]
    memory_percent: Option<f64>,
    /// Tasks in percent of the current TasksMax.
    #[schema(required)]
    tasks_percent: Option<f64>,
    /// Share of CFS periods throttled over the last interval, percent.
    #[schema(required)]
    throttled_percent: Option<f64>,
    /// cpu.pressure some avg10.
    #[schema(required)]
    cpu_pressure: Option<f64>,
    /// memory.pressure some avg10.
    #[schema(required)]
    memory_pressure: Option<f64>,
    oom_kills: u64,
    limits: Limits,
}

/// One scaling action (`GET history`, the answer to `POST scale`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryRow {
    id: i64,
    timestamp: String,
    action: ActionName,
    trigger_type: TriggerName,
    reason: String,
    old_limits: Limits,
    new_limits: Limits,
    status: StatusName,
    #[schema(required)]
    error_message: Option<String>,
    unit: String,
}

/// `GET prediction`. Per series (cpu_cores, memory_gb, tasks, agents, features_pending) the
/// trend and `forecast`, a list of ForecastPoint (one per horizon: 5, 15, 30 min) or null with
/// `error` saying what is missing. Its `adaptive` member is the adaptive policy's current
/// recommendation and chosen model per resource (null under other policies).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    /// Local time of the last sample; null before the first.
    #[schema(required)]
    timestamp: Option<String>,
    unit: String,
    #[schema(required)]
    adaptive: Option<Adaptive>,
    /// Whether the predictive trigger is on.
    predictive: bool,
    window_minutes: u32,
    samples: u64,
    samples_needed: u64,
    /// Every limited resource has a forecast.
    enough_data: bool,
    /// What is missing when `enough_data` is false.
    #[schema(required)]
    message: Option<String>,
    /// One entry per series, by name.
    series: BTreeMap<String, Series>,
    recommendation: Recommendation,
    /// Workload profiles (`cpu_cores`, `memory_gb`) per agent, where estimated.
    profiles: BTreeMap<String, Profile>,
    heaviest_features: Vec<FeatureCost>,
}

/// The adaptive policy's recommendation per resource (present where it has one) and its
/// verdict.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Adaptive {
    /// Percent of one core.
    #[schema(required = false)]
    cpu_quota: AdaptiveRec,
    /// GiB.
    #[schema(required = false)]
    memory_gb: AdaptiveRec,
    #[schema(required = false)]
    tasks_max: AdaptiveRec,
    verdict: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveRec {
    recommended: f64,
    /// The model chosen by running cost, e.g. `1h x1.2`.
    model: String,
    window_minutes: i64,
    margin: f64,
    peak: f64,
    cost: f64,
    history_hours: f64,
}

/// One series: its trend (absent, with `trend` null, before there are samples) and forecast.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Series {
    #[schema(required = false)]
    current: f64,
    #[schema(required = false, nullable)]
    ma5: f64,
    #[schema(required = false, nullable)]
    ma15: f64,
    #[schema(required = false)]
    slope_per_min: f64,
    #[schema(required)]
    trend: Option<TrendName>,
    #[schema(required = false)]
    samples: u64,
    #[schema(required)]
    forecast: Option<Vec<ForecastPoint>>,
    /// Why there is no forecast.
    #[schema(required)]
    error: Option<String>,
}

/// One horizon of a series' forecast (in `series.<name>.forecast` of GET prediction).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastPoint {
    horizon_minutes: i64,
    /// The point forecast, from `model`.
    value: f64,
    /// 95% interval, lower bound (clamped at 0).
    lower: f64,
    /// 95% interval, upper bound; the predictive trigger uses it when enough_data is true.
    upper: f64,
    model: ForecastModel,
    /// Whether the interval is calibrated on the unit's own past errors at this horizon; when
    /// false it is deliberately wide and does not trigger scale-ups.
    enough_data: bool,
    /// Past forecasts at this horizon compared with what happened.
    errors_scored: u64,
    /// Share of the last (up to 128) calibrated intervals that held the actual value; null
    /// before any.
    #[schema(required)]
    recent_coverage: Option<f64>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recommendation {
    limits: Limits,
    reasons: Vec<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    base: f64,
    per_agent: f64,
    per_testing_agent: f64,
    samples: u64,
    r2: f64,
    /// Which costs were estimated.
    terms: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureCost {
    feature_id: String,
    samples: u64,
    cpu_cores_mean: f64,
    cpu_cores_peak: f64,
    memory_gb_mean: f64,
    memory_gb_peak: f64,
}

/// Stored samples in buckets (`GET metrics/history`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsRange {
    unit: String,
    since: String,
    until: String,
    step_seconds: f64,
    points: u64,
    series: RangeSeries,
    /// History rows in the range, each with `time` (unix seconds) added.
    actions: Vec<BTreeMap<String, serde_json::Value>>,
}

/// One array per series, index-aligned with `time` (bucket starts, unix seconds).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeSeries {
    time: Vec<f64>,
    samples: Vec<u64>,
    cpu_cores: Vec<Option<f64>>,
    cpu_cores_max: Vec<Option<f64>>,
    cpu_percent: Vec<Option<f64>>,
    cpu_quota_cores: Vec<Option<f64>>,
    memory_gib: Vec<Option<f64>>,
    memory_gib_max: Vec<Option<f64>>,
    memory_max_gib: Vec<Option<f64>>,
    tasks: Vec<Option<f64>>,
    tasks_peak: Vec<Option<f64>>,
    tasks_max: Vec<Option<u64>>,
    process_count: Vec<Option<f64>>,
    throttled_percent: Vec<Option<f64>>,
    cpu_pressure: Vec<Option<f64>>,
    memory_pressure: Vec<Option<f64>>,
    oom_kills: Vec<u64>,
}

/// A config field with its range and doc, for the dashboard's editor.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFieldDoc {
    name: String,
    min: f64,
    max: f64,
    integer: bool,
    doc: String,
    allowed: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    mode: ModeName,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    policy: PolicyName,
}

/// An error: what was wrong and what to do.
#[derive(ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What was wrong and what to do.
    error: String,
    /// The field that was rejected.
    #[schema(required = false)]
    field: String,
    /// What the field may hold.
    #[schema(required = false)]
    allowed: String,
}

#[derive(ToSchema)]
pub struct UnavailableError {
    error: String,
    unit: String,
    reason: String,
}

#[derive(ToSchema)]
pub struct UnknownUnitError {
    error: String,
    unit: String,
    managed_units: Vec<String>,
}

#[derive(ToSchema)]
pub struct ApplyFailedError {
    error: String,
    history_id: i64,
    mode: DisabledMode,
}

#[derive(ToSchema)]
pub struct RateLimitedError {
    error: String,
    retry_after_seconds: u64,
}

/// The request is wrong and nothing changed: malformed JSON, a wrong type, an unknown field or
/// value, a value out of range, a config that contradicts itself, a limit outside the bounds,
/// an invalid unit name. `field` and `allowed` say what to fix.
#[derive(ToResponse)]
pub struct BadRequest(ErrorBody);

/// The daemon has a token and the request lacks `Authorization: Bearer <token>`.
#[derive(ToResponse)]
pub struct Unauthorized(ErrorBody);

/// The body is larger than 64 KiB.
#[derive(ToResponse)]
pub struct TooLarge(ErrorBody);

/// The body was not sent as `Content-Type: application/json`.
#[derive(ToResponse)]
pub struct UnsupportedMediaType(ErrorBody);

/// The unit cannot be read or managed right now (not loaded, not running, no bus, no sample
/// yet); nothing changed.
#[derive(ToResponse)]
pub struct Unavailable(UnavailableError);

/// The unit had the most limit changes allowed in the last minute; nothing changed. Try again
/// after `retry_after_seconds`.
#[derive(ToResponse)]
pub struct RateLimited(RateLimitedError);

/// systemd refused the limits: they were rolled back (the error says so when the rollback
/// itself failed, or when a timeout leaves it unknown), a failed history row written, and the
/// mode set to disabled.
#[derive(ToResponse)]
pub struct ApplyFailed(ApplyFailedError);
