//! The audit log of scaling actions (`autoscaler_history`). Never pruned.
//!
//! Limits are stored twice. The spec's INTEGER columns hold CPU percent, memory in GiB and
//! tasks, with 0 for "unlimited" (systemd rejects `CPUQuota=0%` and `TasksMax=0`, so 0 is
//! free to mean that). A MemoryMax that is not whole GiB goes in as the exact GiB number
//! (SQLite keeps a REAL in an INTEGER column when it is not integral), and the extra columns
//! `old_memory_max_bytes`/`new_memory_max_bytes` hold the bytes exactly, NULL for unlimited.
//! Reading back, the bytes column wins; a row without it (written by another tool) falls back
//! to the GiB column. So every [`Limits`] round-trips exactly, except a limit of `Some(0)` for
//! CPU or tasks, which systemd cannot hold and which reads back as `None`.
//!
//! This module records what happened; it must not decide what counts as an action.

use autoscaler_core::{GIB, Limits, Millis, UnitName};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row};

use crate::{Store, U64, format_ts, sql_int};

/// The history `status` of an action that was applied.
pub const STATUS_SUCCESS: &str = "success";
/// The history `status` of an action that failed and was rolled back.
pub const STATUS_FAILED: &str = "failed";

/// A history row to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct NewHistory {
    pub unit: UnitName,
    pub at: Millis,
    /// `scale_up`, `scale_down`, `manual`, ...
    pub action: String,
    /// `threshold`, `manual`, `oom`, `forecast`, ...
    pub trigger_type: String,
    pub reason: String,
    pub old: Limits,
    pub new: Limits,
    /// [`STATUS_SUCCESS`] or [`STATUS_FAILED`].
    pub status: String,
    pub error_message: Option<String>,
}

/// A stored history row.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub id: i64,
    pub unit: UnitName,
    pub at: Millis,
    pub action: String,
    pub trigger_type: String,
    pub reason: String,
    pub old: Limits,
    pub new: Limits,
    pub status: String,
    pub error_message: Option<String>,
}

const INSERT: &str = "INSERT INTO autoscaler_history (
    timestamp, action, trigger_type, reason,
    old_cpu_quota, old_memory_max, old_tasks_max, new_cpu_quota, new_memory_max, new_tasks_max,
    status, error_message, unit, ts_ms, old_memory_max_bytes, new_memory_max_bytes
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/// The columns [`from_row`] reads, in its order.
const SELECT: &str = "SELECT id, ts_ms, action, trigger_type, reason,
    old_cpu_quota, old_memory_max, old_tasks_max, new_cpu_quota, new_memory_max, new_tasks_max,
    status, error_message, old_memory_max_bytes, new_memory_max_bytes
    FROM autoscaler_history";

impl Store {
    /// Appends a history row; returns its id.
    pub fn insert_history(&self, h: &NewHistory) -> anyhow::Result<i64> {
        let (old, new) = (limit_values(&h.old, "old")?, limit_values(&h.new, "new")?);
        let params: Vec<Value> = vec![
            Value::Text(format_ts(h.at)),
            Value::Text(h.action.clone()),
            Value::Text(h.trigger_type.clone()),
            Value::Text(h.reason.clone()),
            old.cpu,
            old.memory_gib,
            old.tasks,
            new.cpu,
            new.memory_gib,
            new.tasks,
            Value::Text(h.status.clone()),
            h.error_message.clone().map_or(Value::Null, Value::Text),
            Value::Text(h.unit.as_str().to_string()),
            Value::Integer(h.at.0),
            old.memory_bytes,
            new.memory_bytes,
        ];
        let conn = self.writer();
        conn.prepare_cached(INSERT)
            .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(params)))
            .map_err(|e| {
                self.sql_error(
                    e,
                    format_args!("recording a {} of {} in the history", h.action, h.unit),
                )
            })?;
        Ok(conn.last_insert_rowid())
    }

    /// The newest `limit` history rows of `unit`, newest first.
    pub fn history(&self, unit: &UnitName, limit: u32) -> anyhow::Result<Vec<HistoryRow>> {
        let sql = format!("{SELECT} WHERE unit = ?1 ORDER BY ts_ms DESC, id DESC LIMIT ?2");
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(&sql)
            .map_err(|e| self.sql_error(e, "preparing the history query"))?;
        let rows = stmt
            .query_map(rusqlite::params![unit.as_str(), limit], |r| {
                from_row(unit, r)
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql_error(e, format_args!("reading the history of {unit}")))?;
        Ok(rows)
    }

    /// The newest `limit` history rows of `unit` in `[since, until)`, newest first: the
    /// filter runs in SQL, on the `(unit, ts_ms)` index.
    pub fn history_between(
        &self,
        unit: &UnitName,
        since: Millis,
        until: Millis,
        limit: u32,
    ) -> anyhow::Result<Vec<HistoryRow>> {
        let sql = format!(
            "{SELECT} WHERE unit = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 \
             ORDER BY ts_ms DESC, id DESC LIMIT ?4"
        );
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(&sql)
            .map_err(|e| self.sql_error(e, "preparing the history range query"))?;
        let rows = stmt
            .query_map(
                rusqlite::params![unit.as_str(), since.0, until.0, limit],
                |r| from_row(unit, r),
            )
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql_error(e, format_args!("reading the history of {unit}")))?;
        Ok(rows)
    }

    /// How many actions of `unit` there were, ever, by (action, status): the status
    /// endpoint's counts and Prometheus' counters both come from these.
    pub fn action_counts(&self, unit: &UnitName) -> anyhow::Result<Vec<(String, String, u64)>> {
        self.reader()
            .prepare_cached(
                "SELECT action, status, count(*) FROM autoscaler_history
                 WHERE unit = ?1 GROUP BY action, status ORDER BY action, status",
            )
            .and_then(|mut stmt| {
                stmt.query_map(rusqlite::params![unit.as_str()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, U64>(2)?.0,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.sql_error(e, format_args!("counting the actions of {unit}")))
    }

    /// The newest successful action of `unit` of any kind (automatic or manual): where a
    /// restarted daemon's cooldown starts.
    pub fn last_action(&self, unit: &UnitName) -> anyhow::Result<Option<HistoryRow>> {
        let sql = format!(
            "{SELECT} WHERE unit = ?1 AND status = ?2 ORDER BY ts_ms DESC, id DESC LIMIT 1"
        );
        self.reader()
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_row(rusqlite::params![unit.as_str(), STATUS_SUCCESS], |r| {
                    from_row(unit, r)
                })
                .optional()
            })
            .map_err(|e| self.sql_error(e, format_args!("reading the last action of {unit}")))
    }
}

/// One side's limits as the spec's three columns plus the exact memory bytes.
struct LimitValues {
    cpu: Value,
    memory_gib: Value,
    tasks: Value,
    memory_bytes: Value,
}

fn limit_values(l: &Limits, side: &str) -> anyhow::Result<LimitValues> {
    let memory_gib = match l.memory_max {
        None => Value::Integer(0),
        Some(b) if b % GIB == 0 => Value::Integer((b / GIB) as i64),
        Some(b) => Value::Real(b as f64 / GIB as f64),
    };
    Ok(LimitValues {
        cpu: Value::Integer(l.cpu_quota.map_or(0, i64::from)),
        memory_gib,
        tasks: Value::Integer(
            l.tasks_max
                .map_or(Ok(0), |t| sql_int(t, &format!("{side}_tasks_max")))?,
        ),
        memory_bytes: l.memory_max.map_or(Ok(Value::Null), |b| {
            sql_int(b, &format!("{side}_memory_max_bytes")).map(Value::Integer)
        })?,
    })
}

/// Limits from the spec's columns at `i..i + 3` and the bytes column at `bytes`.
fn limits_from(r: &Row<'_>, i: usize, bytes: usize) -> rusqlite::Result<Limits> {
    let nonzero = |v: u64| (v != 0).then_some(v);
    let cpu: u32 = r.get(i)?;
    let memory_max = match r.get::<_, Option<U64>>(bytes)? {
        Some(U64(b)) => Some(b),
        None => {
            let gib: f64 = r.get(i + 1)?;
            // Rows written by other tools have no bytes column; their GiB is all there is.
            (gib > 0.0).then(|| (gib * GIB as f64).round() as u64)
        }
    };
    Ok(Limits {
        cpu_quota: (cpu != 0).then_some(cpu),
        memory_max,
        tasks_max: nonzero(r.get::<_, U64>(i + 2)?.0),
    })
}

fn from_row(unit: &UnitName, r: &Row<'_>) -> rusqlite::Result<HistoryRow> {
    Ok(HistoryRow {
        id: r.get(0)?,
        unit: unit.clone(),
        at: Millis(r.get(1)?),
        action: r.get(2)?,
        trigger_type: r.get(3)?,
        reason: r.get(4)?,
        old: limits_from(r, 5, 13)?,
        new: limits_from(r, 8, 14)?,
        status: r.get(11)?,
        error_message: r.get(12)?,
    })
}
