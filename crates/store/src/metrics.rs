//! Metric samples (`autoscaler_metrics`): insert, read back, downsample, prune.
//!
//! A row holds the spec's columns (`cpu_percent`, `memory_gb`, `process_count`, agents,
//! quota, features) and ours: the unit, the exact time, raw usage, the limits in force and
//! the starvation signals. Downsampling runs in SQL over the `(unit, ts_ms)` index, so a
//! chart of a day of 1 s samples reads 86,400 rows inside SQLite and returns only the
//! buckets. This module stores what it is given; it must not compute usage or judge it.

use anyhow::{Context, bail};
use autoscaler_core::{GIB, Limits, Millis, UnitName};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row};

use crate::{Store, U64, format_ts, sql_int, sql_real};

/// One sample of one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub unit: UnitName,
    pub at: Millis,
    /// Percent of the CPU quota (of the host's cores when unlimited), as in the spec.
    pub cpu_percent: f64,
    /// Cores used on average since the previous sample.
    pub cpu_cores: f64,
    pub memory_bytes: u64,
    /// Tasks (threads), what `TasksMax` limits.
    pub tasks: u64,
    /// Processes (`cgroup.procs`), the spec's `process_count`.
    pub process_count: u64,
    pub agent_count: u32,
    pub testing_agent_count: u32,
    /// `None` when unknown (stored as NULL): never a made-up number.
    pub api_quota_remaining: Option<u64>,
    pub features_pending: Option<u32>,
    /// The limits in force when the sample was taken; `None` is unlimited.
    pub cpu_quota: Option<u32>,
    pub memory_max: Option<u64>,
    pub tasks_max: Option<u64>,
    /// Share (0..=1) of CFS periods throttled since the previous sample.
    pub throttled_ratio: Option<f64>,
    /// cpu.pressure and memory.pressure "some" avg10, percent.
    pub cpu_pressure: Option<f64>,
    pub memory_pressure: Option<f64>,
    /// OOM kills since the previous sample (not cumulative, so buckets can sum them).
    pub oom_kills: u64,
}

/// The average and the maximum of one quantity over a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stat {
    pub avg: f64,
    pub max: f64,
}

/// The samples of one time bucket `[start, start + step)`, summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricBucket {
    pub start: Millis,
    /// How many samples fell in the bucket (never 0: empty buckets are not returned).
    pub samples: u64,
    pub cpu_cores: Stat,
    pub cpu_percent: Stat,
    pub memory_bytes: Stat,
    pub tasks: Stat,
    pub process_count: Stat,
    /// The limits of the bucket's last sample.
    pub limits: Limits,
    /// The maxima of the starvation signals; `None` when no sample had a value.
    pub throttled_ratio_max: Option<f64>,
    pub cpu_pressure_max: Option<f64>,
    pub memory_pressure_max: Option<f64>,
    /// OOM kills in the bucket.
    pub oom_kills: u64,
}

const INSERT: &str = "INSERT INTO autoscaler_metrics (
    timestamp, cpu_percent, memory_gb, process_count, agent_count, testing_agent_count,
    api_quota_remaining, features_pending, unit, ts_ms, cpu_cores, memory_bytes, tasks,
    cpu_quota, memory_max_bytes, tasks_max, throttled_ratio, cpu_pressure, memory_pressure,
    oom_kills
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)";

/// The columns [`from_row`] reads, in its order.
const SELECT: &str = "SELECT ts_ms, cpu_percent, cpu_cores, memory_bytes, tasks, process_count,
    agent_count, testing_agent_count, api_quota_remaining, features_pending, cpu_quota,
    memory_max_bytes, tasks_max, throttled_ratio, cpu_pressure, memory_pressure, oom_kills
    FROM autoscaler_metrics";

pub(crate) const DOWNSAMPLE: &str = "
WITH b AS (
    SELECT (ts_ms - ?2) / ?4 AS k, count(*) AS n,
           avg(cpu_cores), max(cpu_cores), avg(cpu_percent), max(cpu_percent),
           avg(memory_bytes), max(memory_bytes), avg(tasks), max(tasks),
           avg(process_count), max(process_count),
           max(throttled_ratio), max(cpu_pressure), max(memory_pressure),
           total(oom_kills), max(ts_ms) AS last_ts
    FROM autoscaler_metrics
    WHERE unit = ?1 AND ts_ms >= ?2 AND ts_ms < ?3
    GROUP BY k
)
SELECT b.*, m.cpu_quota, m.memory_max_bytes, m.tasks_max
FROM b JOIN autoscaler_metrics AS m ON m.id = (
    SELECT id FROM autoscaler_metrics
    WHERE unit = ?1 AND ts_ms = b.last_ts
    ORDER BY id DESC LIMIT 1
)
ORDER BY b.k";

/// The columns of an `autoscaler_metrics_minute` row (after `unit`), aggregated from the
/// samples of `autoscaler_metrics` selected by `$from`, grouped by `$group`, as the rollup
/// and the readers of samples not yet rolled up both need (sums as REAL, the columns' type,
/// so an average of integers is not an integer division). `last_ts` is the latest sample's
/// time; its id is found by the caller.
macro_rules! minute_columns {
    ($from:expr, $group:expr) => {
        concat!(
            "SELECT ",
            $group,
            ", ts_ms - (ts_ms % 60000) AS minute_ms, count(*) AS n,
                total(cpu_cores) AS cpu_cores_sum, max(cpu_cores) AS cpu_cores_max,
                total(cpu_percent) AS cpu_percent_sum, max(cpu_percent) AS cpu_percent_max,
                total(memory_bytes) AS memory_bytes_sum, max(memory_bytes) AS memory_bytes_max,
                total(tasks) AS tasks_sum, max(tasks) AS tasks_peak,
                total(process_count) AS process_count_sum, max(process_count) AS process_count_max,
                max(throttled_ratio) AS throttled_ratio_max, max(cpu_pressure) AS cpu_pressure_max,
                max(memory_pressure) AS memory_pressure_max, total(oom_kills) AS oom_kills_sum,
                max(ts_ms) AS last_ts
            FROM ",
            $from,
            " GROUP BY ",
            $group,
            ", minute_ms"
        )
    };
}

/// Adds the samples chosen by `$from` (`autoscaler_metrics` and its conditions) to their
/// minutes' rows, merging with rows already there (a sample that came after its minute was
/// rolled up). The index is named in `$from`: grouped by unit, the planner would otherwise
/// walk the whole unit/time index to save a sort (checked by a test).
macro_rules! roll_up_from {
    ($from:expr) => {
        concat!(
            "INSERT INTO autoscaler_metrics_minute
            SELECT g.*, (SELECT id FROM autoscaler_metrics
                         WHERE unit = g.unit AND ts_ms = g.last_ts ORDER BY id DESC LIMIT 1)
            FROM (",
            minute_columns!($from, "unit"),
            ") AS g WHERE true
            ON CONFLICT (unit, minute_ms) DO UPDATE SET
                n = n + excluded.n,
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
                last_ts = max(last_ts, excluded.last_ts)"
        )
    };
}

/// Rolls up the minutes in `[?1, ?2)`, all units at once (through the `ts_ms` index).
pub(crate) const ROLL_UP: &str = roll_up_from!(
    "autoscaler_metrics INDEXED BY autoscaler_metrics_ts WHERE ts_ms >= ?1 AND ts_ms < ?2"
);

/// Rolls up the samples of this transaction (ids from `?1`) that came before `?2`, where the
/// rollup already stands: their minutes' rows exist or are due.
pub(crate) const ROLL_UP_LATE: &str =
    roll_up_from!("autoscaler_metrics NOT INDEXED WHERE id >= ?1 AND ts_ms < ?2");

/// A minute is rolled up once a sample this long past its end is stored: the samples of one
/// round come from several readers and reach the writer a little out of order, and one that
/// comes after its minute was rolled up costs a statement of its own ([`ROLL_UP_LATE`]).
const ROLL_UP_AFTER_MS: i64 = 10_000;

/// The same buckets as [`DOWNSAMPLE`], from the per-minute rollup, with the samples not rolled
/// up yet (from `autoscaler_metrics_rolled.until_ms` on) aggregated the same way: exact when
/// the step is a whole number of minutes and `since` falls on a minute.
pub(crate) const DOWNSAMPLE_MINUTES: &str = concat!(
    "
WITH raw AS (",
    minute_columns!(
        "autoscaler_metrics WHERE unit = ?1 AND ts_ms < ?3
         AND ts_ms >= max(?2, (SELECT until_ms FROM autoscaler_metrics_rolled))",
        "unit"
    ),
    "),
m AS (
    SELECT minute_ms, n, cpu_cores_sum, cpu_cores_max, cpu_percent_sum, cpu_percent_max,
           memory_bytes_sum, memory_bytes_max, tasks_sum, tasks_peak, process_count_sum,
           process_count_max, throttled_ratio_max, cpu_pressure_max, memory_pressure_max,
           oom_kills_sum, last_ts, last_id
    FROM autoscaler_metrics_minute
    WHERE unit = ?1 AND minute_ms >= ?2 AND minute_ms < ?3
    UNION ALL
    SELECT minute_ms, n, cpu_cores_sum, cpu_cores_max, cpu_percent_sum, cpu_percent_max,
           memory_bytes_sum, memory_bytes_max, tasks_sum, tasks_peak, process_count_sum,
           process_count_max, throttled_ratio_max, cpu_pressure_max, memory_pressure_max,
           oom_kills_sum, last_ts,
           (SELECT id FROM autoscaler_metrics
            WHERE unit = ?1 AND ts_ms = raw.last_ts ORDER BY id DESC LIMIT 1)
    FROM raw
),
b AS (
    SELECT (minute_ms - ?2) / ?4 AS k, sum(n) AS n,
           sum(cpu_cores_sum) / sum(n) AS cpu_avg, max(cpu_cores_max) AS cpu_max,
           sum(cpu_percent_sum) / sum(n) AS pct_avg, max(cpu_percent_max) AS pct_max,
           sum(memory_bytes_sum) / sum(n) AS mem_avg, max(memory_bytes_max) AS mem_max,
           sum(tasks_sum) / sum(n) AS tasks_avg, max(tasks_peak) AS tasks_max,
           sum(process_count_sum) / sum(n) AS procs_avg, max(process_count_max) AS procs_max,
           max(throttled_ratio_max) AS thr, max(cpu_pressure_max) AS cpu_psi,
           max(memory_pressure_max) AS mem_psi, total(oom_kills_sum) AS ooms,
           max(last_ts) AS last_ts, max(last_id) AS last_id
    FROM m
    GROUP BY k
)
SELECT b.k, b.n, b.cpu_avg, b.cpu_max, b.pct_avg, b.pct_max, b.mem_avg, b.mem_max,
       b.tasks_avg, b.tasks_max, b.procs_avg, b.procs_max, b.thr, b.cpu_psi, b.mem_psi,
       b.ooms, b.last_ts, m.cpu_quota, m.memory_max_bytes, m.tasks_max
FROM b LEFT JOIN autoscaler_metrics AS m ON m.id = b.last_id
ORDER BY b.k"
);

impl Store {
    /// Appends one sample.
    pub fn insert_metric(&self, row: &MetricRow) -> anyhow::Result<()> {
        self.insert_metrics(std::slice::from_ref(row))
    }

    /// Appends samples in one transaction: all or none.
    pub fn insert_metrics(&self, rows: &[MetricRow]) -> anyhow::Result<()> {
        // A round's samples share their second: its text is made once.
        let mut second: Option<(i64, String)> = None;
        let values = rows
            .iter()
            .map(|r| {
                let secs = r.at.0.div_euclid(1000);
                let ts = match &second {
                    Some((s, text)) if *s == secs => text.clone(),
                    _ => second.insert((secs, format_ts(r.at))).1.clone(),
                };
                to_values(r, ts).with_context(|| {
                    format!(
                        "storing the {} sample of {} in {}",
                        format_ts(r.at),
                        r.unit,
                        self.path().display()
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut conn = self.writer();
        let what = &format!("inserting {} metric rows", rows.len());
        let tx = conn.transaction().map_err(|e| self.sql_error(e, what))?;
        let mut first_id = None;
        {
            let mut stmt = tx
                .prepare_cached(INSERT)
                .map_err(|e| self.sql_error(e, what))?;
            for v in values {
                let id = stmt
                    .insert(rusqlite::params_from_iter(v))
                    .map_err(|e| self.sql_error(e, what))?;
                first_id.get_or_insert(id);
            }
        }
        if let Some(first_id) = first_id {
            let newest = rows.iter().map(|r| r.at.0).max().unwrap_or(i64::MIN);
            let oldest = rows.iter().map(|r| r.at.0).min().unwrap_or(i64::MAX);
            roll_up(&tx, first_id, oldest, newest).map_err(|e| self.sql_error(e, what))?;
        }
        tx.commit().map_err(|e| self.sql_error(e, what))
    }

    /// Applies `unit`'s retention (each unit keeps its own): deletes its samples older than
    /// `keep_ms` before `now`, but never one newer than the newest sample minus `keep_ms`, so
    /// a wall clock that jumps ahead cannot empty the store. Returns how many went.
    pub fn prune_metrics(
        &self,
        unit: &UnitName,
        now: Millis,
        keep_ms: i64,
    ) -> anyhow::Result<usize> {
        let newest: Option<i64> = self
            .writer()
            .prepare_cached("SELECT max(ts_ms) FROM autoscaler_metrics WHERE unit = ?1")
            .and_then(|mut s| s.query_row([unit.as_str()], |r| r.get(0)))
            .map_err(|e| self.sql_error(e, format_args!("reading the newest sample of {unit}")))?;
        let until = newest.map_or(now.0, |n| n.min(now.0));
        self.prune_older_than(unit, Millis(until.saturating_sub(keep_ms)))
    }

    /// Deletes `unit`'s samples older than `older_than`, with the per-minute rollups whose
    /// samples are all gone, in one transaction.
    pub(crate) fn prune_older_than(
        &self,
        unit: &UnitName,
        older_than: Millis,
    ) -> anyhow::Result<usize> {
        let mut conn = self.writer();
        let what = format!(
            "deleting the metrics of {unit} older than {}",
            format_ts(older_than)
        );
        let tx = conn.transaction().map_err(|e| self.sql_error(e, &what))?;
        let params = rusqlite::params![unit.as_str(), older_than.0];
        // A minute goes with its last sample: it is kept while any of its samples is.
        tx.prepare_cached(
            "DELETE FROM autoscaler_metrics_minute WHERE unit = ?1 AND minute_ms + 60000 <= ?2",
        )
        .and_then(|mut s| s.execute(params))
        .map_err(|e| self.sql_error(e, &what))?;
        let n = tx
            .prepare_cached("DELETE FROM autoscaler_metrics WHERE unit = ?1 AND ts_ms < ?2")
            .and_then(|mut s| s.execute(params))
            .map_err(|e| self.sql_error(e, &what))?;
        tx.commit().map_err(|e| self.sql_error(e, &what))?;
        Ok(n)
    }

    /// The samples of `unit` taken in `[since, until)`, oldest first.
    pub fn metrics_since(
        &self,
        unit: &UnitName,
        since: Millis,
        until: Millis,
    ) -> anyhow::Result<Vec<MetricRow>> {
        let sql =
            format!("{SELECT} WHERE unit = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 ORDER BY ts_ms, id");
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(&sql)
            .map_err(|e| self.sql_error(e, "preparing the metrics query"))?;
        let rows = stmt
            .query_map(rusqlite::params![unit.as_str(), since.0, until.0], |r| {
                from_row(unit, r)
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql_error(e, format_args!("reading the metrics of {unit}")))?;
        Ok(rows)
    }

    /// The newest sample of `unit`, if any.
    pub fn latest_metric(&self, unit: &UnitName) -> anyhow::Result<Option<MetricRow>> {
        let sql = format!("{SELECT} WHERE unit = ?1 ORDER BY ts_ms DESC, id DESC LIMIT 1");
        self.reader()
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_row([unit.as_str()], |r| from_row(unit, r))
                    .optional()
            })
            .map_err(|e| self.sql_error(e, format_args!("reading the latest metric of {unit}")))
    }

    /// The samples of `unit` in `[since, until)` grouped into buckets of `step_ms`, oldest
    /// first; bucket `k` covers `[since + k * step_ms, since + (k + 1) * step_ms)`. Buckets
    /// without samples are left out.
    pub fn metrics_downsampled(
        &self,
        unit: &UnitName,
        since: Millis,
        until: Millis,
        step_ms: i64,
    ) -> anyhow::Result<Vec<MetricBucket>> {
        if step_ms <= 0 {
            bail!("downsampling step must be a positive number of milliseconds, got {step_ms}");
        }
        // Whole minutes from a minute boundary: the rollup gives the same buckets from 60x
        // fewer rows.
        let by_minute = step_ms % 60_000 == 0 && since.0.rem_euclid(60_000) == 0;
        let sql = if by_minute {
            DOWNSAMPLE_MINUTES
        } else {
            DOWNSAMPLE
        };
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(sql)
            .map_err(|e| self.sql_error(e, "preparing the downsampling query"))?;
        let params = rusqlite::params![unit.as_str(), since.0, until.0, step_ms];
        let buckets = stmt
            .query_map(params, |r| bucket_from_row(since, step_ms, r))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql_error(e, format_args!("downsampling the metrics of {unit}")))?;
        Ok(buckets)
    }
}

/// Keeps the per-minute rollup up to date after a transaction stored the samples from id
/// `first_id` on, taken between `oldest` and `newest` (see schema V4): samples before where
/// the rollup stands are added to their minutes at once, and whole minutes up to
/// [`ROLL_UP_AFTER_MS`] before `newest` are rolled up, all units in one statement.
fn roll_up(
    tx: &rusqlite::Transaction<'_>,
    first_id: i64,
    oldest: i64,
    newest: i64,
) -> rusqlite::Result<()> {
    let until: i64 = tx
        .prepare_cached("SELECT until_ms FROM autoscaler_metrics_rolled")?
        .query_row([], |r| r.get(0))?;
    if oldest < until {
        tx.prepare_cached(ROLL_UP_LATE)?
            .execute(rusqlite::params![first_id, until])?;
    }
    let due = newest.saturating_sub(ROLL_UP_AFTER_MS);
    let to = due - due.rem_euclid(60_000);
    if to > until {
        tx.prepare_cached(ROLL_UP)?
            .execute(rusqlite::params![until, to])?;
        tx.prepare_cached("UPDATE autoscaler_metrics_rolled SET until_ms = ?1")?
            .execute([to])?;
    }
    Ok(())
}

/// A sample's values in [`INSERT`]'s order; `ts` is `format_ts(r.at)`.
fn to_values(r: &MetricRow, ts: String) -> anyhow::Result<Vec<Value>> {
    let int = |v: u64, what: &str| sql_int(v, what).map(Value::Integer);
    let opt_int = |v: Option<u64>, what: &str| v.map_or(Ok(Value::Null), |v| int(v, what));
    let real = |v: f64, what: &str| sql_real(v, what).map(Value::Real);
    let opt_real = |v: Option<f64>, what: &str| v.map_or(Ok(Value::Null), |v| real(v, what));
    Ok(vec![
        Value::Text(ts),
        real(r.cpu_percent, "cpu_percent")?,
        Value::Real(r.memory_bytes as f64 / GIB as f64),
        int(r.process_count, "process_count")?,
        Value::Integer(r.agent_count.into()),
        Value::Integer(r.testing_agent_count.into()),
        opt_int(r.api_quota_remaining, "api_quota_remaining")?,
        r.features_pending
            .map_or(Value::Null, |n| Value::Integer(n.into())),
        Value::Text(r.unit.as_str().to_string()),
        Value::Integer(r.at.0),
        real(r.cpu_cores, "cpu_cores")?,
        int(r.memory_bytes, "memory_bytes")?,
        int(r.tasks, "tasks")?,
        r.cpu_quota
            .map_or(Value::Null, |v| Value::Integer(v.into())),
        opt_int(r.memory_max, "memory_max")?,
        opt_int(r.tasks_max, "tasks_max")?,
        opt_real(r.throttled_ratio, "throttled_ratio")?,
        opt_real(r.cpu_pressure, "cpu_pressure")?,
        opt_real(r.memory_pressure, "memory_pressure")?,
        int(r.oom_kills, "oom_kills")?,
    ])
}

fn from_row(unit: &UnitName, r: &Row<'_>) -> rusqlite::Result<MetricRow> {
    let opt_u64 = |i: usize| r.get::<_, Option<U64>>(i).map(|v| v.map(|v| v.0));
    Ok(MetricRow {
        unit: unit.clone(),
        at: Millis(r.get(0)?),
        cpu_percent: r.get(1)?,
        cpu_cores: r.get(2)?,
        memory_bytes: r.get::<_, U64>(3)?.0,
        tasks: r.get::<_, U64>(4)?.0,
        process_count: r.get::<_, U64>(5)?.0,
        agent_count: r.get(6)?,
        testing_agent_count: r.get(7)?,
        api_quota_remaining: opt_u64(8)?,
        features_pending: r.get(9)?,
        cpu_quota: r.get(10)?,
        memory_max: opt_u64(11)?,
        tasks_max: opt_u64(12)?,
        throttled_ratio: r.get(13)?,
        cpu_pressure: r.get(14)?,
        memory_pressure: r.get(15)?,
        oom_kills: r.get::<_, U64>(16)?.0,
    })
}

pub(crate) fn bucket_from_row(
    since: Millis,
    step_ms: i64,
    r: &Row<'_>,
) -> rusqlite::Result<MetricBucket> {
    let k: i64 = r.get(0)?;
    let stat = |i: usize| -> rusqlite::Result<Stat> {
        Ok(Stat {
            avg: r.get(i)?,
            max: r.get(i + 1)?,
        })
    };
    let opt_u64 = |i: usize| r.get::<_, Option<U64>>(i).map(|v| v.map(|v| v.0));
    let oom: f64 = r.get(15)?;
    Ok(MetricBucket {
        start: Millis(since.0.saturating_add(k.saturating_mul(step_ms))),
        samples: r.get::<_, U64>(1)?.0,
        cpu_cores: stat(2)?,
        cpu_percent: stat(4)?,
        memory_bytes: stat(6)?,
        tasks: stat(8)?,
        process_count: stat(10)?,
        throttled_ratio_max: r.get(12)?,
        cpu_pressure_max: r.get(13)?,
        memory_pressure_max: r.get(14)?,
        // total() is a float so it cannot overflow; the counts it sums are small.
        oom_kills: oom as u64,
        limits: Limits {
            cpu_quota: r.get(17)?,
            memory_max: opt_u64(18)?,
            tasks_max: opt_u64(19)?,
        },
    })
}
