//! The database schema: the migrations, in order, and nothing else.
//!
//! The spec's three tables are written with the spec's columns literally and first, then our
//! extra columns; nothing of the spec is renamed or dropped, so a tool written against the
//! spec can still read the file. This module owns the SQL text only; it must not run queries.
//!
//! Architecture invariant: a migration, once released, is never edited. A change to the schema
//! is a new `M::up` appended in [`migrations`] (`PRAGMA user_version` counts them). A new
//! numeric field in `autoscaler_core::config::FIELDS` therefore needs a new migration adding
//! its column to both config tables; the test `every_config_field_has_a_column` fails until
//! it exists.

use rusqlite_migration::{M, Migrations};

/// The columns of a unit's configuration: the spec's `autoscaler_config` columns (after `id`)
/// literally, then ours. Shared by `autoscaler_config` (the default unit, id = 1) and
/// `autoscaler_unit_config` (every other unit), so both tables have the same columns.
macro_rules! config_columns_v1 {
    () => {
        "
    mode TEXT DEFAULT 'enabled',
    policy TEXT DEFAULT 'balanced',
    scale_up_cpu_percent INTEGER DEFAULT 85,
    scale_up_memory_percent INTEGER DEFAULT 80,
    scale_up_tasks_percent INTEGER DEFAULT 85,
    scale_down_cpu_percent INTEGER DEFAULT 40,
    scale_down_memory_percent INTEGER DEFAULT 50,
    scale_down_tasks_percent INTEGER DEFAULT 30,
    check_interval_seconds INTEGER DEFAULT 30,
    scale_cooldown_seconds INTEGER DEFAULT 300,
    consecutive_scale_up_checks INTEGER DEFAULT 3,
    consecutive_scale_down_checks INTEGER DEFAULT 10,
    scale_up_factor REAL DEFAULT 1.5,
    scale_down_factor REAL DEFAULT 0.6,
    min_cpu_quota INTEGER DEFAULT 100,
    max_cpu_quota INTEGER DEFAULT 800,
    min_memory_max INTEGER DEFAULT 8,
    max_memory_max INTEGER DEFAULT 192,
    min_tasks_max INTEGER DEFAULT 100,
    max_tasks_max INTEGER DEFAULT 1500,
    system_cpu_cores INTEGER DEFAULT 1,
    system_memory_gb INTEGER DEFAULT 8,
    system_processes INTEGER DEFAULT 50,
    predictive INTEGER NOT NULL DEFAULT 0,
    min_step_cpu_quota INTEGER DEFAULT 50,
    min_step_memory_gb INTEGER DEFAULT 8,
    min_step_tasks INTEGER DEFAULT 50,
    scale_up_throttled_percent INTEGER DEFAULT 20,
    scale_up_cpu_pressure_percent INTEGER DEFAULT 0,
    scale_up_memory_pressure_percent INTEGER DEFAULT 10,
    oom_bump_factor REAL DEFAULT 1.2,
    metrics_retention_hours INTEGER DEFAULT 24,
    forecast_window_minutes INTEGER DEFAULT 120,
    api_quota_floor INTEGER DEFAULT 0
"
    };
}

/// Version 1: the spec's tables plus multi-unit, exact-time and pressure columns.
///
/// - `timestamp` holds `YYYY-MM-DDTHH:MM:SS` in UTC, for the spec's readers; `ts_ms`
///   (milliseconds since the epoch) is what we order, select and prune by.
/// - `api_quota_remaining` is nullable, unlike the spec: NULL is "unknown", never a made-up
///   number (DESIGN).
/// - History keeps the spec's INTEGER limit columns (CPU percent, memory GiB, tasks; 0 means
///   unlimited) and adds the exact MemoryMax in bytes (NULL means unlimited).
const V1: &str = concat!(
    "
CREATE TABLE autoscaler_metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp DATETIME DEFAULT CURRENT_TIMESTAMP,
    cpu_percent REAL NOT NULL,
    memory_gb REAL NOT NULL,
    process_count INTEGER NOT NULL,
    agent_count INTEGER NOT NULL,
    testing_agent_count INTEGER NOT NULL,
    api_quota_remaining INTEGER,
    features_pending INTEGER,
    unit TEXT NOT NULL DEFAULT 'autocoder-ui.service',
    ts_ms INTEGER NOT NULL,
    cpu_cores REAL NOT NULL,
    memory_bytes INTEGER NOT NULL,
    tasks INTEGER NOT NULL,
    cpu_quota INTEGER,
    memory_max_bytes INTEGER,
    tasks_max INTEGER,
    throttled_ratio REAL,
    cpu_pressure REAL,
    memory_pressure REAL,
    oom_kills INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX autoscaler_metrics_unit_ts ON autoscaler_metrics (unit, ts_ms);
CREATE INDEX autoscaler_metrics_ts ON autoscaler_metrics (ts_ms);

-- Per-minute sums and peaks of the samples, kept by a trigger as samples arrive, so a day's
-- chart reads 1,440 rows instead of 86,400 (the dashboard's 24 h range).
CREATE TABLE autoscaler_metrics_minute (
    unit TEXT NOT NULL,
    minute_ms INTEGER NOT NULL,
    n INTEGER NOT NULL,
    cpu_cores_sum REAL NOT NULL,
    cpu_cores_max REAL NOT NULL,
    cpu_percent_sum REAL NOT NULL,
    cpu_percent_max REAL NOT NULL,
    memory_bytes_sum REAL NOT NULL,
    memory_bytes_max REAL NOT NULL,
    tasks_sum REAL NOT NULL,
    tasks_peak REAL NOT NULL,
    process_count_sum REAL NOT NULL,
    process_count_max REAL NOT NULL,
    throttled_ratio_max REAL,
    cpu_pressure_max REAL,
    memory_pressure_max REAL,
    oom_kills_sum REAL NOT NULL,
    last_ts INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    PRIMARY KEY (unit, minute_ms)
) WITHOUT ROWID;
CREATE TRIGGER autoscaler_metrics_rollup AFTER INSERT ON autoscaler_metrics BEGIN
    INSERT INTO autoscaler_metrics_minute VALUES (
        NEW.unit, NEW.ts_ms - (NEW.ts_ms % 60000), 1,
        NEW.cpu_cores, NEW.cpu_cores, NEW.cpu_percent, NEW.cpu_percent,
        NEW.memory_bytes, NEW.memory_bytes, NEW.tasks, NEW.tasks,
        NEW.process_count, NEW.process_count,
        NEW.throttled_ratio, NEW.cpu_pressure, NEW.memory_pressure,
        NEW.oom_kills, NEW.ts_ms, NEW.id)
    ON CONFLICT (unit, minute_ms) DO UPDATE SET
        n = n + 1,
        cpu_cores_sum = cpu_cores_sum + excluded.cpu_cores_sum,
        cpu_cores_max = max(cpu_cores_max, excluded.cpu_cores_max),
        cpu_percent_sum = cpu_percent_sum + excluded.cpu_percent_sum,
        cpu_percent_max = max(cpu_percent_max, excluded.cpu_percent_max),
        memory_bytes_sum = memory_bytes_sum + excluded.memory_bytes_sum,
        memory_bytes_max = max(memory_bytes_max, excluded.memory_bytes_max),
        tasks_sum = tasks_sum + excluded.tasks_sum,
        tasks_peak = max(tasks_peak, excluded.tasks_peak),
        process_count_sum = process_count_sum + excluded.process_count_sum,
        process_count_max = max(process_count_max, excluded.process_count_max),
        -- Scalar max() of a NULL is NULL; a missing pressure reading must not hide a known one.
        throttled_ratio_max = max(coalesce(throttled_ratio_max, excluded.throttled_ratio_max),
                                  coalesce(excluded.throttled_ratio_max, throttled_ratio_max)),
        cpu_pressure_max = max(coalesce(cpu_pressure_max, excluded.cpu_pressure_max),
                               coalesce(excluded.cpu_pressure_max, cpu_pressure_max)),
        memory_pressure_max = max(coalesce(memory_pressure_max, excluded.memory_pressure_max),
                                  coalesce(excluded.memory_pressure_max, memory_pressure_max)),
        oom_kills_sum = oom_kills_sum + excluded.oom_kills_sum,
        last_id = CASE WHEN excluded.last_ts >= last_ts THEN excluded.last_id ELSE last_id END,
        last_ts = max(last_ts, excluded.last_ts);
END;

CREATE TABLE autoscaler_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp DATETIME DEFAULT CURRENT_TIMESTAMP,
    action TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    reason TEXT NOT NULL,
    old_cpu_quota INTEGER NOT NULL,
    old_memory_max INTEGER NOT NULL,
    old_tasks_max INTEGER NOT NULL,
    new_cpu_quota INTEGER NOT NULL,
    new_memory_max INTEGER NOT NULL,
    new_tasks_max INTEGER NOT NULL,
    status TEXT NOT NULL,
    error_message TEXT,
    unit TEXT NOT NULL DEFAULT 'autocoder-ui.service',
    ts_ms INTEGER NOT NULL,
    old_memory_max_bytes INTEGER,
    new_memory_max_bytes INTEGER
);
CREATE INDEX autoscaler_history_unit_ts ON autoscaler_history (unit, ts_ms);

CREATE TABLE autoscaler_config (
    id INTEGER PRIMARY KEY CHECK (id = 1),",
    config_columns_v1!(),
    ");

CREATE TABLE autoscaler_unit_config (
    unit TEXT PRIMARY KEY,",
    config_columns_v1!(),
    ");
"
);

/// Every migration, oldest first.
/// Version 2: what the `adaptive` policy learned per unit (issue 12), one line of text per unit
/// as `autoscaler_core::Learned::encode` writes it; the store does not read inside it.
const V2: &str = "
CREATE TABLE autoscaler_learned (
    unit TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
";

/// Version 3: the journal of changes (issue 11). A change is written here, with the id its
/// history row will have, before systemd is touched, and moved to `autoscaler_history` in one
/// transaction once it ended; a row left here was interrupted, and a restarted daemon
/// reconciles it with what systemd reports. The columns are the history's (`status` as
/// planned: success), plus whether the unit was running (a restart-strategy change that is rolled back starts it again).
const V3: &str = "
CREATE TABLE autoscaler_intents AS SELECT * FROM autoscaler_history WHERE 0;
ALTER TABLE autoscaler_intents ADD COLUMN was_running INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX autoscaler_intents_id ON autoscaler_intents (id);
";

/// Version 4: the per-minute rollup is kept by the writer a minute at a time (issue 14), not by
/// a trigger at every sample, which cost about 40% of storing a sample. `until_ms` is where
/// the rollup stands: every sample before it is in `autoscaler_metrics_minute`, none after it
/// is, and no minute row starts at or after it, so a reader adds the samples from `until_ms`
/// on to the minute rows and counts each sample once (`metrics::DOWNSAMPLE_MINUTES`). Every
/// sample already stored was rolled up by the trigger, so the rollup starts after the minute
/// of the newest one.
const V4: &str = "
DROP TRIGGER autoscaler_metrics_rollup;
CREATE TABLE autoscaler_metrics_rolled (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    until_ms INTEGER NOT NULL
);
INSERT INTO autoscaler_metrics_rolled (id, until_ms)
    SELECT 1, coalesce(max(ts_ms) - (max(ts_ms) % 60000) + 60000, 0) FROM autoscaler_metrics;
";

pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(V1), M::up(V2), M::up(V3), M::up(V4)])
}

/// The schema version this build writes (`PRAGMA user_version` after all migrations).
pub(crate) const VERSION: usize = 4;
