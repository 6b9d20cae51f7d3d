//! The SQLite store of `autoscaler`: the spec's three tables, migrations and retention.
//!
//! # Layout
//!
//! - [`Store`] (this file): opening, pragmas, migrations, the two connections, error context.
//! - `schema`: the migrations (SQL text only).
//! - [`config`]: one [`Config`] per unit, loaded and saved field by field through
//!   `autoscaler_core::config::FIELDS`, validated on load.
//! - [`metrics`]: [`MetricRow`] samples, retention, and downsampling in SQL ([`MetricBucket`]).
//! - [`history`]: the audit log of scaling actions ([`HistoryRow`]); never pruned.
//! - `range`: what a chart reads for a [`Range`]: downsampled buckets (finished ones cached)
//!   and the actions in the range, one call ([`Store::metrics_range`]).
//! - [`when`]: the one parser and formatter of times and durations as users write them.
//!
//! [`Range`]: autoscaler_core::Range
//!
//! Architecture invariant: the store holds data, it decides nothing. It knows no JSON, no
//! HTTP and no clock: every time is a [`Millis`] argument. Methods are synchronous and short
//! (one statement or one transaction), so an async caller may call them directly or through
//! `spawn_blocking`, but must never hold a lock of ours across an `.await` (no guard escapes).
//!
//! Concurrency: one writer connection and one reader connection, each behind a mutex. The
//! database runs in WAL mode, so readers never wait for the writer and a second process (or a
//! second [`Store`]) can open the same file; writers from several processes wait up to
//! [`BUSY_TIMEOUT`] for each other.
//!
//! [`Config`]: autoscaler_core::Config

pub mod config;
pub mod history;
pub mod learned;
pub mod metrics;
mod range;
mod schema;
#[cfg(test)]
mod tests;
pub mod when;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use autoscaler_core::UnitName;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use rusqlite_migration::SchemaVersion;

pub use history::{HistoryRow, Intent, NewHistory};
pub use metrics::{MetricBucket, MetricRow, Stat};
pub use range::RangeData;
pub use when::format_ts;

/// How long a write waits for another process's write before failing with "locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite database of the daemon. Cheap to clone; all clones share the connections.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    default_unit: UnitName,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Finished buckets of the ranges charts asked for (see `range`).
    buckets: range::BucketCache,
    /// The last history id handed out: ids are given before a row is written, so a change is
    /// journalled under the id its history row will have (see [`Store::begin_change`]).
    last_history_id: AtomicI64,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("default_unit", &self.inner.default_unit)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// Creates missing parent directories, runs the migrations, and inserts the spec's
    /// default config row (id = 1) if it is missing. `default_unit` is the unit whose config
    /// lives in that row (the spec's single-unit table); other units get rows in
    /// `autoscaler_unit_config`. The row belongs to whichever unit is the default at open:
    /// changing the default unit between runs hands it the old default's config, and a row
    /// the new default has in `autoscaler_unit_config` is then not read.
    ///
    /// A file written by a newer autoscaler (a higher schema version), a file with the
    /// prototype's tables but no schema version, or a file that is not SQLite is refused
    /// with an error saying so, and left unchanged.
    pub fn open(path: &Path, default_unit: &UnitName) -> anyhow::Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "creating the directory {} for the autoscaler database; check its \
                     permissions or choose another database path",
                    dir.display()
                )
            })?;
        }
        let mut writer = connect(path, OpenFlags::default())?;
        check_version(&writer, path)?;
        check_integrity(&writer, path)?;
        set_pragmas(&writer, path)?;
        set_cache_size(&writer, path)?;
        schema::migrations().to_latest(&mut writer).map_err(|e| {
            let hint = match &e {
                rusqlite_migration::Error::RusqliteError { err, .. } => busy_hint(err),
                _ => "",
            };
            anyhow::Error::new(e).context(format!(
                "migrating {} to schema version {}{hint}",
                path.display(),
                schema::VERSION
            ))
        })?;
        writer
            .execute(
                "INSERT OR IGNORE INTO autoscaler_config (id) VALUES (1)",
                [],
            )
            .map_err(|e| sql_error(e, path, "inserting the default config row"))?;

        let reader = connect(path, OpenFlags::default())?;
        // The reader never writes; saying so lets SQLite refuse a write by mistake.
        reader
            .pragma_update(None, "query_only", true)
            .map_err(|e| sql_error(e, path, "setting the reader connection query_only"))?;
        set_cache_size(&reader, path)?;

        let last_history_id = writer
            .query_row(
                "SELECT max(coalesce((SELECT max(id) FROM autoscaler_history), 0),
                            coalesce((SELECT max(id) FROM autoscaler_intents), 0),
                            coalesce((SELECT seq FROM sqlite_sequence
                                      WHERE name = 'autoscaler_history'), 0))",
                [],
                |r| r.get(0),
            )
            .map_err(|e| sql_error(e, path, "reading the last history id"))?;

        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                default_unit: default_unit.clone(),
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
                buckets: range::BucketCache::default(),
                last_history_id: AtomicI64::new(last_history_id),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The unit whose config is the spec's row id = 1.
    pub fn default_unit(&self) -> &UnitName {
        &self.inner.default_unit
    }

    /// A new history id, never handed out before by this store (nor stored in the file when
    /// it was opened). This process is the history's only writer.
    pub fn reserve_history_id(&self) -> i64 {
        self.inner.last_history_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The schema version this build writes.
    pub fn schema_version() -> usize {
        schema::VERSION
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable: SQLite rolls back an
        // unfinished transaction when its guard drops, so poisoning carries no meaning here.
        self.inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.inner
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// An error from SQLite while doing `what`, with the file and a hint when it was locked.
    fn sql_error(&self, e: rusqlite::Error, what: impl fmt::Display) -> anyhow::Error {
        sql_error(e, &self.inner.path, what)
    }
}

/// Whether a store error is one that passes: the database busy or locked by another writer,
/// the disk full, the file read-only or an I/O error. A write that failed so may succeed if
/// tried again; any other failure (a constraint, a value SQLite cannot hold) will not.
pub fn passes(e: &anyhow::Error) -> bool {
    use rusqlite::ErrorCode::*;
    e.chain().any(|c| {
        c.downcast_ref::<rusqlite::Error>().is_some_and(|e| {
            matches!(
                e.sqlite_error_code(),
                Some(
                    DatabaseBusy
                        | DatabaseLocked
                        | DiskFull
                        | ReadOnly
                        | SystemIoFailure
                        | CannotOpen
                        | FileLockingProtocolFailed
                        | OutOfMemory
                )
            )
        })
    })
}

/// Refuses a database whose pages fail SQLite's `quick_check`, with how to move it aside: a
/// damaged file is not written to (that could spread the damage), and nothing in it is lost
/// until someone decides.
fn check_integrity(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    let found: Vec<String> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| sql_error(e, path, "checking the database's integrity (quick_check)"))?;
    if found != ["ok"] {
        bail!(
            "{} is damaged (SQLite's quick_check: {}). It is left as it is. Move it aside \
             (`mv {0} {0}.damaged`) and start again for a new one, or repair it with \
             `sqlite3 {0} .recover`",
            path.display(),
            found.join("; ")
        );
    }
    Ok(())
}

fn connect(path: &Path, flags: OpenFlags) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags).with_context(|| {
        format!(
            "opening the autoscaler database {}; check that the path is writable or choose \
             another database path",
            path.display()
        )
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_error(e, path, "setting busy_timeout"))?;
    Ok(conn)
}

/// Each connection's page cache, as SQLite counts it: negative means KiB. The default is
/// 2 MiB per connection, and the writer's fills up within minutes of samples; writes append
/// to the newest pages and reads go through the OS's page cache anyway. Set once the file is
/// known to be a database this build opens (the pragma reads its header).
const CACHE_KIB: i64 = -512;

fn set_cache_size(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    conn.pragma_update(None, "cache_size", CACHE_KIB)
        .map_err(|e| sql_error(e, path, "setting cache_size"))
}

/// Refuses, before anything is written, a file this build must not migrate.
fn check_version(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    let version = schema::migrations().current_version(conn).map_err(|e| {
        let not_db = matches!(
            &e,
            rusqlite_migration::Error::RusqliteError { err, .. }
                if err.sqlite_error_code() == Some(ErrorCode::NotADatabase)
        );
        let hint = if not_db {
            "; the file is not an SQLite database: move it aside or choose another database path"
        } else {
            ""
        };
        anyhow::Error::new(e).context(format!(
            "reading the schema version of {}{hint}",
            path.display()
        ))
    })?;
    match version {
        SchemaVersion::Outside(v) => bail!(
            "{} has schema version {v}, but this autoscaler knows versions up to {}: it was \
             written by a newer autoscaler. Upgrade autoscaler or choose another database \
             path; the file was not changed",
            path.display(),
            schema::VERSION
        ),
        SchemaVersion::NoneSet => {
            let tables: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master \
                     WHERE type = 'table' AND name LIKE 'autoscaler\\_%' ESCAPE '\\'",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| sql_error(e, path, "listing existing tables"))?;
            if tables > 0 {
                bail!(
                    "{} already holds autoscaler tables but no schema version (written by \
                     the Python AutoCoder autoscaler?); this autoscaler will not guess their \
                     layout. Move the file aside (it keeps that history) or choose another \
                     database path; the file was not changed",
                    path.display()
                );
            }
            Ok(())
        }
        SchemaVersion::Inside(_) => Ok(()),
    }
}

fn set_pragmas(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| sql_error(e, path, "switching to WAL journal mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Some file systems (network mounts) cannot do WAL; the store still works, but
        // readers then wait for writers.
        tracing::warn!(path = %path.display(), journal_mode = %mode, "SQLite refused WAL mode");
    }
    // NORMAL loses at most the last transactions on power loss, never consistency (WAL).
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| sql_error(e, path, "setting synchronous=NORMAL"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|e| sql_error(e, path, "enabling foreign keys"))?;
    Ok(())
}

fn busy_hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "; the database stayed locked for 5 s: is another autoscaler writing to it?"
        }
        Some(ErrorCode::ReadOnly) => "; the file is read-only: check its permissions",
        Some(ErrorCode::DiskFull) => "; the disk is full",
        Some(ErrorCode::SystemIoFailure) => {
            "; the system refused to write the file: is its filesystem read-only or failing?"
        }
        _ => "",
    }
}

fn sql_error(e: rusqlite::Error, path: &Path, what: impl fmt::Display) -> anyhow::Error {
    let hint = busy_hint(&e);
    anyhow::Error::new(e).context(format!("{what} in {}{hint}", path.display()))
}

/// A `u64` as SQLite's signed INTEGER, or an error naming the value.
fn sql_int(v: u64, what: &str) -> anyhow::Result<i64> {
    i64::try_from(v)
        .with_context(|| format!("{what} = {v} does not fit in SQLite's signed 64-bit INTEGER"))
}

/// A float that SQLite stores as itself (it turns NaN into NULL), or an error naming it.
fn sql_real(v: f64, what: &str) -> anyhow::Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        bail!("{what} = {v} is not a finite number; the store keeps finite numbers only")
    }
}

/// Reads an INTEGER column as `u64` (rusqlite reads u64 only with a feature we do not need).
struct U64(u64);

impl rusqlite::types::FromSql for U64 {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let i = i64::column_result(v)?;
        u64::try_from(i)
            .map(U64)
            .map_err(|_| rusqlite::types::FromSqlError::OutOfRange(i))
    }
}
