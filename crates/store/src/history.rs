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

use autoscaler_core::{Action, GIB, Limits, Millis, Status, TriggerType, UnitName};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row};

use crate::{Store, U64, format_ts, sql_int};

/// A history row to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct NewHistory {
    pub unit: UnitName,
    pub at: Millis,
    pub action: Action,
    pub trigger_type: TriggerType,
    pub reason: String,
    pub old: Limits,
    pub new: Limits,
    pub status: Status,
    pub error_message: Option<String>,
}

/// A stored history row.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub id: i64,
    pub unit: UnitName,
    pub at: Millis,
    pub action: Action,
    pub trigger_type: TriggerType,
    pub reason: String,
    pub old: Limits,
    pub new: Limits,
    pub status: Status,
    pub error_message: Option<String>,
}

/// An insert of the history's columns as [`history_params`] binds them (`?1` to `?17`), into
/// the history or the journal, which has the same columns and one more.
macro_rules! insert_history_into {
    ($table:literal $(, $column:literal = $value:literal)?) => {
        concat!(
            "INSERT INTO ", $table, " (
                timestamp, action, trigger_type, reason, old_cpu_quota, old_memory_max,
                old_tasks_max, new_cpu_quota, new_memory_max, new_tasks_max, status,
                error_message, unit, ts_ms, old_memory_max_bytes, new_memory_max_bytes, id",
            $(", ", $column,)? "
            ) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17",
            $(", ", $value,)? ")"
        )
    };
}

const INSERT: &str = insert_history_into!("autoscaler_history");
/// A change about to be made, in the journal (see `schema::V3`).
const INSERT_INTENT: &str = insert_history_into!("autoscaler_intents", "was_running" = "?18");

/// The journal's columns in [`from_row`]'s order (status and error are the planned success).
const SELECT_INTENT: &str = "SELECT id, ts_ms, action, trigger_type, reason,
    old_cpu_quota, old_memory_max, old_tasks_max, new_cpu_quota, new_memory_max, new_tasks_max,
    status, error_message, old_memory_max_bytes, new_memory_max_bytes, unit, was_running
    FROM autoscaler_intents ORDER BY id";

/// A change that was journalled and never finished: the daemon stopped while making it.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    /// The id its history row gets.
    pub id: i64,
    /// The row as it would read had the change succeeded.
    pub planned: NewHistory,
    /// Whether the unit was running when the change began.
    pub was_running: bool,
}

/// The columns [`from_row`] reads, in its order.
const SELECT: &str = "SELECT id, ts_ms, action, trigger_type, reason,
    old_cpu_quota, old_memory_max, old_tasks_max, new_cpu_quota, new_memory_max, new_tasks_max,
    status, error_message, old_memory_max_bytes, new_memory_max_bytes
    FROM autoscaler_history";

impl Store {
    /// Appends a history row under a new id; returns the id.
    pub fn insert_history(&self, h: &NewHistory) -> anyhow::Result<i64> {
        let id = self.reserve_history_id();
        self.insert_history_as(id, h)?;
        Ok(id)
    }

    /// Appends a history row under `id`, one from [`Store::reserve_history_id`].
    pub fn insert_history_as(&self, id: i64, h: &NewHistory) -> anyhow::Result<()> {
        let params = history_params(id, h)?;
        self.writer()
            .prepare_cached(INSERT)
            .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(params)))
            .map(|_| ())
            .map_err(|e| {
                self.sql_error(
                    e,
                    format_args!("recording a {} of {} in the history", h.action, h.unit),
                )
            })
    }

    /// Journals a change before it is made: `planned` is its history row as it will read if
    /// it succeeds, under `id`. Until [`Store::finish_change`], a restarted daemon finds it in
    /// [`Store::unfinished_changes`].
    pub fn begin_change(
        &self,
        id: i64,
        planned: &NewHistory,
        was_running: bool,
    ) -> anyhow::Result<()> {
        let mut params = history_params(id, planned)?;
        params.push(Value::Integer(i64::from(was_running)));
        self.writer()
            .prepare_cached(INSERT_INTENT)
            .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(params)))
            .map(|_| ())
            .map_err(|e| {
                self.sql_error(
                    e,
                    format_args!("journalling a {} of {}", planned.action, planned.unit),
                )
            })
    }

    /// Ends a journalled change: its history row `row` is written under `id` and the journal
    /// entry removed, in one transaction. Finishing an id twice is refused by SQLite (the
    /// history id is unique), so a retry after an unknown outcome cannot write two rows.
    pub fn finish_change(&self, id: i64, row: &NewHistory) -> anyhow::Result<()> {
        let params = history_params(id, row)?;
        let mut conn = self.writer();
        let what = || format!("recording the end of a {} of {}", row.action, row.unit);
        let tx = conn.transaction().map_err(|e| self.sql_error(e, what()))?;
        tx.prepare_cached(INSERT)
            .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(params)))
            .and_then(|_| tx.execute("DELETE FROM autoscaler_intents WHERE id = ?1", [id]))
            .and_then(|_| tx.commit())
            .map_err(|e| self.sql_error(e, what()))
    }

    /// The journalled changes that never finished, oldest first.
    pub fn unfinished_changes(&self) -> anyhow::Result<Vec<Intent>> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(SELECT_INTENT)
            .map_err(|e| self.sql_error(e, "preparing the journal query"))?;
        stmt.query_map([], |r| {
            let unit: String = r.get(15)?;
            let unit = UnitName::parse(&unit).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    15,
                    rusqlite::types::Type::Text,
                    e.to_string().into(),
                )
            })?;
            let row = from_row(&unit, r)?;
            Ok(Intent {
                id: row.id,
                planned: NewHistory {
                    unit,
                    at: row.at,
                    action: row.action,
                    trigger_type: row.trigger_type,
                    reason: row.reason,
                    old: row.old,
                    new: row.new,
                    status: row.status,
                    error_message: None,
                },
                was_running: r.get::<_, i64>(16)? != 0,
            })
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| self.sql_error(e, "reading the journal of unfinished changes"))
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
    pub fn action_counts(&self, unit: &UnitName) -> anyhow::Result<Vec<(Action, Status, u64)>> {
        self.reader()
            .prepare_cached(
                "SELECT action, status, count(*) FROM autoscaler_history
                 WHERE unit = ?1 GROUP BY action, status ORDER BY action, status",
            )
            .and_then(|mut stmt| {
                stmt.query_map(rusqlite::params![unit.as_str()], |r| {
                    Ok((
                        spelled(r, 0, Action::parse)?,
                        spelled(r, 1, Status::parse)?,
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
                stmt.query_row(
                    rusqlite::params![unit.as_str(), Status::Success.as_str()],
                    |r| from_row(unit, r),
                )
                .optional()
            })
            .map_err(|e| self.sql_error(e, format_args!("reading the last action of {unit}")))
    }
}

/// A history row's parameters for [`INSERT`], under `id`.
fn history_params(id: i64, h: &NewHistory) -> anyhow::Result<Vec<Value>> {
    let (old, new) = (limit_values(&h.old, "old")?, limit_values(&h.new, "new")?);
    Ok(vec![
        Value::Text(format_ts(h.at)),
        Value::Text(h.action.as_str().to_string()),
        Value::Text(h.trigger_type.as_str().to_string()),
        Value::Text(h.reason.clone()),
        old.cpu,
        old.memory_gib,
        old.tasks,
        new.cpu,
        new.memory_gib,
        new.tasks,
        Value::Text(h.status.as_str().to_string()),
        h.error_message.clone().map_or(Value::Null, Value::Text),
        Value::Text(h.unit.as_str().to_string()),
        Value::Integer(h.at.0),
        old.memory_bytes,
        new.memory_bytes,
        Value::Integer(id),
    ])
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
        action: spelled(r, 2, Action::parse)?,
        trigger_type: spelled(r, 3, TriggerType::parse)?,
        reason: r.get(4)?,
        old: limits_from(r, 5, 13)?,
        new: limits_from(r, 8, 14)?,
        status: spelled(r, 11, Status::parse)?,
        error_message: r.get(12)?,
    })
}

/// A closed vocabulary's column, parsed back into its enum. A spelling this version does not
/// know (a row written by another tool) is an error that names it, not a silent default.
fn spelled<T>(r: &Row<'_>, i: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown value {text:?} in column {i} of autoscaler_history").into(),
        )
    })
}
