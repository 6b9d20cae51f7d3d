//! Tests of the store, on real SQLite files in temporary directories.
//!
//! Each test is a table of cases run through one `check` helper; raw `rusqlite` connections
//! are used only to look at, or to spoil, what the store wrote.

use std::path::{Path, PathBuf};

use autoscaler_core::config::FIELDS;
use autoscaler_core::{Config, FieldValue, GIB, Limits, MIB, Millis, UnitName};
use rusqlite::Connection;
use rusqlite::types::Value;

use autoscaler_core::{Action, Status, TriggerType};

const STATUS_SUCCESS: &str = "success";
const STATUS_FAILED: &str = "failed";
use crate::{MetricRow, NewHistory, Store, format_ts};

/// 2026-01-25T10:30:00Z, the spec's example time.
const T0: i64 = 1_769_337_000_000;

fn unit(name: &str) -> UnitName {
    UnitName::parse(name).expect("test unit names are valid")
}

fn default_unit() -> UnitName {
    unit("autocoder-ui.service")
}

/// A fresh database path in its own temporary directory (kept alive by the `TempDir`).
fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("autoscaler.db");
    (dir, path)
}

fn open(path: &Path) -> Store {
    Store::open(path, &default_unit()).expect("store opens")
}

fn raw(path: &Path) -> Connection {
    Connection::open(path).expect("raw connection")
}

fn sample(u: &UnitName, at: i64) -> MetricRow {
    MetricRow {
        unit: u.clone(),
        at: Millis(at),
        cpu_percent: 45.2,
        cpu_cores: 0.9,
        memory_bytes: 12 * GIB + 300 * MIB,
        tasks: 120,
        process_count: 87,
        agent_count: 2,
        testing_agent_count: 0,
        api_quota_remaining: Some(1_000_000),
        features_pending: Some(15),
        cpu_quota: Some(200),
        memory_max: Some(32 * GIB),
        tasks_max: Some(250),
        throttled_ratio: Some(0.25),
        cpu_pressure: Some(3.5),
        memory_pressure: None,
        oom_kills: 0,
    }
}

fn history_entry(u: &UnitName, at: i64, action: &str, status: &str) -> NewHistory {
    NewHistory {
        unit: u.clone(),
        at: Millis(at),
        action: Action::parse(action).expect("a known action"),
        trigger_type: TriggerType::Threshold,
        reason: "Thresholds breached: CPU=90.0%".to_string(),
        old: Limits::new(200, 32, 250),
        new: Limits::new(300, 40, 350),
        status: Status::parse(status).expect("a known status"),
        error_message: (status == STATUS_FAILED).then(|| "restart failed".to_string()),
    }
}

#[test]
fn store_is_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<Store>();
}

#[test]
fn format_ts_writes_the_spec_format_in_utc() {
    fn check(ms: i64, want: &str) {
        assert_eq!(format_ts(Millis(ms)), want, "{ms} ms");
    }
    check(0, "1970-01-01T00:00:00");
    check(999, "1970-01-01T00:00:00");
    check(-1, "1969-12-31T23:59:59");
    check(T0, "2026-01-25T10:30:00");
    check(T0 + 59_999, "2026-01-25T10:30:59");
    check(i64::MAX, "9999-12-31T23:59:59");
    check(i64::MIN, "0000-01-01T00:00:00");
}

/// The spec's columns, in the spec's order, with their declared type and NOT NULL.
const SPEC_METRICS: &[(&str, &str, bool)] = &[
    ("id", "INTEGER", false),
    ("timestamp", "DATETIME", false),
    ("cpu_percent", "REAL", true),
    ("memory_gb", "REAL", true),
    ("process_count", "INTEGER", true),
    ("agent_count", "INTEGER", true),
    ("testing_agent_count", "INTEGER", true),
    // Decided exception: nullable, NULL is "unknown".
    ("api_quota_remaining", "INTEGER", false),
    // Decided exception: nullable, NULL is "unknown" (no project known or readable).
    ("features_pending", "INTEGER", false),
];

const SPEC_HISTORY: &[(&str, &str, bool)] = &[
    ("id", "INTEGER", false),
    ("timestamp", "DATETIME", false),
    ("action", "TEXT", true),
    ("trigger_type", "TEXT", true),
    ("reason", "TEXT", true),
    ("old_cpu_quota", "INTEGER", true),
    ("old_memory_max", "INTEGER", true),
    ("old_tasks_max", "INTEGER", true),
    ("new_cpu_quota", "INTEGER", true),
    ("new_memory_max", "INTEGER", true),
    ("new_tasks_max", "INTEGER", true),
    ("status", "TEXT", true),
    ("error_message", "TEXT", false),
];

const SPEC_CONFIG: &[(&str, &str, bool)] = &[
    ("id", "INTEGER", false),
    ("mode", "TEXT", false),
    ("policy", "TEXT", false),
    ("scale_up_cpu_percent", "INTEGER", false),
    ("scale_up_memory_percent", "INTEGER", false),
    ("scale_up_tasks_percent", "INTEGER", false),
    ("scale_down_cpu_percent", "INTEGER", false),
    ("scale_down_memory_percent", "INTEGER", false),
    ("scale_down_tasks_percent", "INTEGER", false),
    ("check_interval_seconds", "INTEGER", false),
    ("scale_cooldown_seconds", "INTEGER", false),
    ("consecutive_scale_up_checks", "INTEGER", false),
    ("consecutive_scale_down_checks", "INTEGER", false),
    ("scale_up_factor", "REAL", false),
    ("scale_down_factor", "REAL", false),
    ("min_cpu_quota", "INTEGER", false),
    ("max_cpu_quota", "INTEGER", false),
    ("min_memory_max", "INTEGER", false),
    ("max_memory_max", "INTEGER", false),
    ("min_tasks_max", "INTEGER", false),
    ("max_tasks_max", "INTEGER", false),
    ("system_cpu_cores", "INTEGER", false),
    ("system_memory_gb", "INTEGER", false),
    ("system_processes", "INTEGER", false),
];

fn table_info(conn: &Connection, table: &str) -> Vec<(String, String, bool)> {
    let mut stmt = conn
        .prepare("SELECT name, type, \"notnull\" FROM pragma_table_info(?1) ORDER BY cid")
        .expect("prepare");
    stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .expect("table info")
}

#[test]
fn open_creates_the_spec_tables_with_the_spec_columns_first() {
    let (dir, _) = temp_db();
    // Parent directories are created, as ~/.autocoder/ would be.
    let path = dir.path().join("home/.autocoder/autoscaler.db");
    let store = open(&path);
    let conn = raw(&path);
    let check = |table: &str, spec: &[(&str, &str, bool)]| {
        let have = table_info(&conn, table);
        assert!(have.len() >= spec.len(), "{table} has only {have:?}");
        for (h, (name, ty, notnull)) in have.iter().zip(spec) {
            assert_eq!(
                (h.0.as_str(), h.1.as_str(), h.2),
                (*name, *ty, *notnull),
                "{table}"
            );
        }
    };
    check("autoscaler_metrics", SPEC_METRICS);
    check("autoscaler_history", SPEC_HISTORY);
    check("autoscaler_config", SPEC_CONFIG);
    // The per-unit table has the same columns as the spec's, keyed by unit.
    let unit_table = table_info(&conn, "autoscaler_unit_config");
    assert_eq!(unit_table[0].0, "unit");
    assert_eq!(unit_table[1..], table_info(&conn, "autoscaler_config")[1..]);

    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, Store::schema_version() as i64);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
    drop(store);
}

#[test]
fn every_config_field_has_a_column() {
    let (_dir, path) = temp_db();
    let _store = open(&path);
    let conn = raw(&path);
    for table in ["autoscaler_config", "autoscaler_unit_config"] {
        let names: Vec<String> = table_info(&conn, table).into_iter().map(|c| c.0).collect();
        for name in FIELDS
            .iter()
            .map(|f| f.name)
            .chain(["mode", "policy", "predictive"])
        {
            assert!(
                names.iter().any(|n| n == name),
                "{table} has no column {name}: add a migration (schema.rs) that adds it"
            );
        }
    }
}

#[test]
fn a_new_store_has_the_default_config_for_the_default_unit_only() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let check = |u: &str, want: Option<Config>| {
        assert_eq!(store.load_config(&unit(u)).expect("load"), want, "{u}");
    };
    // The column defaults in schema.rs must be the core's defaults.
    check("autocoder-ui.service", Some(Config::default()));
    check("other.service", None);
}

#[test]
fn config_round_trips_through_a_restart() {
    let (_dir, path) = temp_db();
    let n = |k: &str, v: f64| (k.to_string(), FieldValue::Number(v));
    let t = |k: &str, v: &str| (k.to_string(), FieldValue::Text(v.to_string()));
    let check = |u: &str, changes: &[(String, FieldValue)]| {
        let want = Config::default()
            .apply(changes)
            .expect("test changes are valid");
        open(&path).save_config(&unit(u), &want).expect("save");
        // A new Store, as after a daemon restart.
        let got = open(&path).load_config(&unit(u)).expect("load");
        assert_eq!(got, Some(want), "{u}: {changes:?}");
    };
    check(
        "autocoder-ui.service",
        &[
            n("scale_up_cpu_percent", 75.0),
            n("consecutive_scale_up_checks", 2.0),
            n("scale_cooldown_seconds", 120.0),
        ],
    );
    check(
        "autocoder-ui.service",
        &[
            t("policy", "aggressive"),
            t("mode", "manual"),
            n("oom_bump_factor", 1.75),
        ],
    );
    check(
        "autocoder-ui.service",
        &[
            ("predictive".to_string(), FieldValue::Bool(true)),
            n("min_step_memory_gb", 4.0),
            n("api_quota_floor", 2_000_000_000.0),
        ],
    );
    check(
        "other.service",
        &[
            n("metrics_retention_hours", 48.0),
            n("scale_down_factor", 0.55),
        ],
    );
    // Saving again replaces the unit's row.
    check(
        "other.service",
        &[t("policy", "conservative"), t("mode", "disabled")],
    );
    check("other.service", &[]);
    // The default unit's row kept its last save.
    let store = open(&path);
    let last = Config::default()
        .apply(&[
            ("predictive".to_string(), FieldValue::Bool(true)),
            n("min_step_memory_gb", 4.0),
            n("api_quota_floor", 2_000_000_000.0),
        ])
        .expect("valid");
    assert_eq!(
        store.load_config(&default_unit()).expect("load"),
        Some(last)
    );
    let rows: i64 = raw(&path)
        .query_row("SELECT count(*) FROM autoscaler_unit_config", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(rows, 1);
    assert_eq!(
        store.configured_units().expect("units"),
        vec![unit("other.service")]
    );
}

#[test]
fn an_invalid_stored_config_is_an_error_naming_the_column() {
    fn check(table: &str, column: &str, value: &str, want: &str) {
        let (_dir, path) = temp_db();
        let store = open(&path);
        let u = if table == "autoscaler_config" {
            default_unit()
        } else {
            unit("other.service")
        };
        store.save_config(&u, &Config::default()).expect("save");
        raw(&path)
            .execute(&format!("UPDATE {table} SET {column} = {value}"), [])
            .expect("spoil the row");
        let err = format!(
            "{:#}",
            store.load_config(&u).expect_err("invalid row must fail")
        );
        assert!(
            err.contains(&format!("column {want}")),
            "{column} = {value}: {err}"
        );
        assert!(
            err.contains(table) && err.contains(&path.display().to_string()),
            "{err}"
        );
    }
    check(
        "autoscaler_config",
        "scale_up_cpu_percent",
        "150",
        "scale_up_cpu_percent",
    );
    check(
        "autoscaler_config",
        "scale_up_cpu_percent",
        "85.5",
        "scale_up_cpu_percent",
    );
    check(
        "autoscaler_config",
        "scale_up_factor",
        "NULL",
        "scale_up_factor",
    );
    check(
        "autoscaler_config",
        "oom_bump_factor",
        "'abc'",
        "oom_bump_factor",
    );
    check("autoscaler_config", "mode", "'on'", "mode");
    check("autoscaler_config", "policy", "NULL", "policy");
    check("autoscaler_config", "predictive", "7", "predictive");
    // A relation between two columns: the lower one is named.
    check(
        "autoscaler_config",
        "scale_down_cpu_percent",
        "90",
        "scale_down_cpu_percent",
    );
    check(
        "autoscaler_unit_config",
        "metrics_retention_hours",
        "0",
        "metrics_retention_hours",
    );
}

#[test]
fn history_limits_round_trip_and_fill_the_spec_columns() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let u = default_unit();
    // (limits, the spec's three columns as stored)
    let check = |limits: Limits, spec: [Value; 3]| {
        let mut h = history_entry(&u, T0, "scale_up", STATUS_SUCCESS);
        h.old = limits;
        let id = store.insert_history(&h).expect("insert");
        let got = store.history(&u, 1).expect("history");
        assert_eq!(got[0].id, id);
        assert_eq!(got[0].old, limits, "{limits:?}");
        let stored: [Value; 3] = raw(&path)
            .query_row(
                "SELECT old_cpu_quota, old_memory_max, old_tasks_max FROM autoscaler_history WHERE id = ?1",
                [id],
                |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]),
            )
            .expect("spec columns");
        assert_eq!(stored, spec, "{limits:?}");
    };
    check(
        Limits::new(200, 32, 250),
        [Value::Integer(200), Value::Integer(32), Value::Integer(250)],
    );
    check(
        Limits {
            cpu_quota: Some(150),
            memory_max: Some(GIB + GIB / 2),
            tasks_max: Some(7),
        },
        [Value::Integer(150), Value::Real(1.5), Value::Integer(7)],
    );
    // Not a whole number of anything: the bytes column keeps it exact.
    check(
        Limits {
            cpu_quota: Some(1),
            memory_max: Some(8 * GIB + 1),
            tasks_max: Some(u64::from(u32::MAX) + 1),
        },
        [
            Value::Integer(1),
            Value::Real((8 * GIB + 1) as f64 / GIB as f64),
            Value::Integer(1 << 32),
        ],
    );
    check(
        Limits::default(),
        [Value::Integer(0), Value::Integer(0), Value::Integer(0)],
    );
    check(
        Limits {
            cpu_quota: None,
            memory_max: Some(512 * MIB),
            tasks_max: None,
        },
        [Value::Integer(0), Value::Real(0.5), Value::Integer(0)],
    );
}

#[test]
fn history_rows_without_byte_columns_read_their_gib() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    raw(&path)
        .execute(
            "INSERT INTO autoscaler_history (timestamp, action, trigger_type, reason,
                old_cpu_quota, old_memory_max, old_tasks_max, new_cpu_quota, new_memory_max,
                new_tasks_max, status, ts_ms)
             VALUES ('2026-01-25T10:30:00', 'scale_up', 'threshold', 'r', 200, 32, 250, 300, 40, 350, 'success', ?1)",
            [T0],
        )
        .expect("insert as another tool would");
    let row = store
        .last_action(&default_unit())
        .expect("read")
        .expect("a row");
    assert_eq!(
        (row.old, row.new),
        (Limits::new(200, 32, 250), Limits::new(300, 40, 350))
    );
    assert_eq!(row.error_message, None);
}

#[test]
fn a_restart_keeps_history_counts_and_the_last_action() {
    let (_dir, path) = temp_db();
    let (a, b) = (default_unit(), unit("other.service"));
    // (unit, seconds after T0, action, status)
    let log = [
        (&a, 0, "scale_up", STATUS_SUCCESS),
        (&a, 60, "scale_up", STATUS_SUCCESS),
        (&b, 70, "scale_down", STATUS_SUCCESS),
        (&a, 120, "scale_down", STATUS_SUCCESS),
        (&a, 180, "scale_up", STATUS_FAILED),
        (&a, 240, "manual_scale", STATUS_SUCCESS),
        (&a, 300, "scale_down", STATUS_FAILED),
    ];
    {
        let store = open(&path);
        for (u, s, action, status) in log {
            store
                .insert_history(&history_entry(u, T0 + s * 1000, action, status))
                .expect("insert");
        }
    }
    let store = open(&path);
    let check =
        |u: &UnitName, counts: &[(&str, &str, u64)], newest: &[i64], last_at: Option<i64>| {
            let got = store.action_counts(u).expect("counts");
            let got: Vec<_> = got
                .iter()
                .map(|(a, s, n)| (a.as_str(), s.as_str(), *n))
                .collect();
            assert_eq!(got, counts, "{u}");
            let times: Vec<i64> = store
                .history(u, 3)
                .expect("history")
                .iter()
                .map(|h| (h.at.0 - T0) / 1000)
                .collect();
            assert_eq!(times, newest, "{u}");
            let last = store.last_action(u).expect("last action");
            assert_eq!(last.as_ref().map(|h| (h.at.0 - T0) / 1000), last_at, "{u}");
        };
    check(
        &a,
        &[
            ("manual_scale", "success", 1),
            ("scale_down", "failed", 1),
            ("scale_down", "success", 1),
            ("scale_up", "failed", 1),
            ("scale_up", "success", 2),
        ],
        &[300, 240, 180],
        Some(240),
    );
    check(&b, &[("scale_down", "success", 1)], &[70], Some(70));
    check(&unit("none.service"), &[], &[], None);
    let failed = &store.history(&a, 1).expect("history")[0];
    assert_eq!(
        (failed.status.as_str(), failed.error_message.as_deref()),
        ("failed", Some("restart failed"))
    );
    let ts: String = raw(&path)
        .query_row(
            "SELECT timestamp FROM autoscaler_history ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("timestamp");
    assert_eq!(ts, "2026-01-25T10:30:00");
}

#[test]
fn metrics_round_trip_and_fill_the_spec_columns() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let u = default_unit();
    let check = |row: MetricRow| {
        store.insert_metric(&row).expect("insert");
        let got = store
            .metrics_since(&u, row.at, Millis(row.at.0 + 1))
            .expect("read");
        assert_eq!(got, vec![row.clone()]);
        assert_eq!(store.latest_metric(&u).expect("latest"), Some(row.clone()));
        let (ts, gb, quota): (String, f64, Option<i64>) = raw(&path)
            .query_row(
                "SELECT timestamp, memory_gb, api_quota_remaining FROM autoscaler_metrics WHERE ts_ms = ?1",
                [row.at.0],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("spec columns");
        assert_eq!(ts, format_ts(row.at));
        assert_eq!(gb, row.memory_bytes as f64 / GIB as f64);
        assert_eq!(quota, row.api_quota_remaining.map(|q| q as i64));
    };
    check(sample(&u, T0));
    check(MetricRow {
        api_quota_remaining: None,
        cpu_quota: None,
        memory_max: None,
        tasks_max: None,
        throttled_ratio: None,
        cpu_pressure: None,
        memory_pressure: Some(12.5),
        oom_kills: 3,
        ..sample(&u, T0 + 1000)
    });
    // One transaction over three seconds, two samples in one of them: each row has its own
    // second's text (the text of a second is made once per run of samples in it).
    let at = [T0 + 5_000, T0 + 5_999, T0 + 7_000, T0 + 4_500];
    let rows: Vec<MetricRow> = at.iter().map(|&t| sample(&u, t)).collect();
    store.insert_metrics(&rows).expect("insert four");
    for t in at {
        let ts: String = raw(&path)
            .query_row(
                "SELECT timestamp FROM autoscaler_metrics WHERE ts_ms = ?1",
                [t],
                |r| r.get(0),
            )
            .expect("timestamp");
        assert_eq!(ts, format_ts(Millis(t)), "{t}");
    }
}

#[test]
fn metrics_that_cannot_be_stored_are_refused_whole() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let u = default_unit();
    let check = |bad: MetricRow, field: &str| {
        let err = format!(
            "{:#}",
            store
                .insert_metrics(&[sample(&u, T0), bad])
                .expect_err("refused")
        );
        assert!(err.contains(field), "{field}: {err}");
        assert_eq!(
            store
                .metrics_since(&u, Millis(0), Millis(i64::MAX))
                .expect("read"),
            vec![]
        );
    };
    check(
        MetricRow {
            cpu_percent: f64::NAN,
            ..sample(&u, T0)
        },
        "cpu_percent",
    );
    check(
        MetricRow {
            cpu_cores: f64::INFINITY,
            ..sample(&u, T0)
        },
        "cpu_cores",
    );
    check(
        MetricRow {
            cpu_pressure: Some(f64::NAN),
            ..sample(&u, T0)
        },
        "cpu_pressure",
    );
    check(
        MetricRow {
            memory_max: Some(u64::MAX),
            ..sample(&u, T0)
        },
        "memory_max",
    );
}

#[test]
fn retention_prunes_only_old_rows_of_the_unit_it_is_for() {
    fn check(older_than_secs: i64, deleted: usize, left: usize) {
        let (_dir, path) = temp_db();
        let store = open(&path);
        let units = [default_unit(), unit("other.service")];
        let rows: Vec<MetricRow> = (0..10)
            .flat_map(|s| units.iter().map(move |u| sample(u, T0 + s * 1000)))
            .collect();
        store.insert_metrics(&rows).expect("insert");
        let got = store
            .prune_older_than(&units[0], Millis(T0 + older_than_secs * 1000))
            .expect("prune");
        assert_eq!(got, deleted, "older than {older_than_secs} s");
        let rest = store
            .metrics_since(&units[0], Millis(0), Millis(i64::MAX))
            .expect("read");
        assert_eq!(rest.len(), left);
        assert!(rest.iter().all(|r| r.at.0 >= T0 + older_than_secs * 1000));
        // Each unit has its own retention: the other unit's samples are all still there.
        let other = store
            .metrics_since(&units[1], Millis(0), Millis(i64::MAX))
            .expect("read");
        assert_eq!(other.len(), 10);
    }
    check(-1, 0, 10);
    check(0, 0, 10);
    check(5, 5, 5);
    check(9, 9, 1);
    check(10, 10, 0);
}

#[test]
fn metrics_since_is_a_half_open_range_in_time_order() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let u = default_unit();
    // Inserted out of order: reads come back by time.
    let rows: Vec<MetricRow> = [3, 1, 4, 0, 2]
        .iter()
        .map(|s| sample(&u, T0 + s * 1000))
        .collect();
    store.insert_metrics(&rows).expect("insert");
    store
        .insert_metric(&sample(&unit("other.service"), T0 + 2000))
        .expect("insert");
    let check = |since: i64, until: i64, want: &[i64]| {
        let got: Vec<i64> = store
            .metrics_since(&u, Millis(T0 + since * 1000), Millis(T0 + until * 1000))
            .expect("read")
            .iter()
            .map(|r| (r.at.0 - T0) / 1000)
            .collect();
        assert_eq!(got, want, "[{since}, {until})");
    };
    check(0, 5, &[0, 1, 2, 3, 4]);
    check(1, 3, &[1, 2]);
    check(4, 100, &[4]);
    check(3, 3, &[]);
    check(5, 1, &[]);
}

/// A day of 1 s samples whose values cycle every minute, with known averages per minute.
fn a_day_of_samples(u: &UnitName) -> Vec<MetricRow> {
    (0..86_400i64)
        .map(|i| {
            let m = (i % 60) as u64;
            MetricRow {
                cpu_cores: m as f64 / 10.0,
                cpu_percent: m as f64,
                memory_bytes: GIB + m * MIB,
                tasks: m,
                process_count: m,
                // The quota changes in the middle of minute 720.
                cpu_quota: Some(if i < 720 * 60 + 30 { 200 } else { 300 }),
                throttled_ratio: (i == 61).then_some(0.5),
                oom_kills: u64::from(i == 100),
                ..sample(u, T0 + i * 1000)
            }
        })
        .collect()
}

#[test]
fn downsampling_a_day_of_seconds() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let u = default_unit();
    store
        .insert_metrics(&a_day_of_samples(&u))
        .expect("insert a day");
    store
        .insert_metric(&sample(&unit("other.service"), T0))
        .expect("insert");

    let check = |since_s: i64, until_s: i64, step_s: i64, buckets: usize, samples: u64| {
        let got = store
            .metrics_downsampled(
                &u,
                Millis(T0 + since_s * 1000),
                Millis(T0 + until_s * 1000),
                step_s * 1000,
            )
            .expect("downsample");
        assert_eq!(got.len(), buckets, "[{since_s}, {until_s}) step {step_s}");
        for (k, b) in got.iter().enumerate() {
            assert_eq!(b.start, Millis(T0 + (since_s + k as i64 * step_s) * 1000));
            assert_eq!(b.samples, samples);
        }
        got
    };
    let minutes = check(0, 86_400, 60, 1440, 60);
    let m0 = &minutes[0];
    assert!(
        (m0.cpu_cores.avg - 2.95).abs() < 1e-9 && (m0.cpu_cores.max - 5.9).abs() < 1e-9,
        "{m0:?}"
    );
    assert_eq!((m0.cpu_percent.avg, m0.cpu_percent.max), (29.5, 59.0));
    assert_eq!((m0.tasks.avg, m0.tasks.max), (29.5, 59.0));
    assert_eq!((m0.process_count.avg, m0.process_count.max), (29.5, 59.0));
    assert_eq!(m0.memory_bytes.avg, GIB as f64 + 29.5 * MIB as f64);
    assert_eq!(m0.memory_bytes.max, (GIB + 59 * MIB) as f64);
    assert_eq!((m0.throttled_ratio_max, m0.oom_kills), (None, 0));
    assert_eq!(
        (minutes[1].throttled_ratio_max, minutes[1].oom_kills),
        (Some(0.5), 1)
    );
    assert_eq!(
        (m0.cpu_pressure_max, m0.memory_pressure_max),
        (Some(3.5), None)
    );
    // The last sample's limits: the change half-way through minute 720 shows there.
    let quota = |k: usize| minutes[k].limits.cpu_quota;
    assert_eq!(
        (quota(719), quota(720), quota(721)),
        (Some(200), Some(300), Some(300))
    );
    assert_eq!(minutes[0].limits, Limits::new(200, 32, 250));

    check(0, 86_400, 3600, 24, 3600);
    check(0, 86_400, 86_400, 1, 86_400);
    check(0, 86_400, 1, 86_400, 1);
    // Buckets start at `since`, not at a multiple of the step; the last one is partial.
    check(30, 150, 60, 2, 60);
    check(85_800, 86_400, 300, 2, 300);
    let tail = store
        .metrics_downsampled(
            &u,
            Millis(T0 + 86_000_000),
            Millis(T0 + 90_000_000),
            300_000,
        )
        .expect("downsample");
    let counts: Vec<u64> = tail.iter().map(|b| b.samples).collect();
    assert_eq!(counts, [300, 100], "the data ends inside the second bucket");
    check(-600, 0, 60, 0, 0);
    assert!(
        store
            .metrics_downsampled(&u, Millis(T0), Millis(T0 + 1), 0)
            .is_err()
    );
}

/// Asserts that `u`'s buckets over `[T0, T0 + 1 day)` read from the minute rollup (with the
/// samples not rolled up yet) are the ones read from the samples, at several steps.
fn assert_the_rollup_matches_the_samples(store: &Store, u: &UnitName) {
    let run = |sql: &str, step_s: i64| {
        let conn = store.reader();
        let mut stmt = conn.prepare(sql).expect("prepare");
        let since = Millis(T0);
        stmt.query_map(
            rusqlite::params![u.as_str(), T0, T0 + 86_400_000, step_s * 1000],
            |r| crate::metrics::bucket_from_row(since, step_s * 1000, r),
        )
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .expect("query")
    };
    for step_s in [60, 300, 3600, 86_400] {
        let exact = run(crate::metrics::DOWNSAMPLE, step_s);
        let rolled = run(crate::metrics::DOWNSAMPLE_MINUTES, step_s);
        assert_eq!(exact.len(), rolled.len(), "step {step_s}");
        for (a, b) in exact.iter().zip(&rolled) {
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-6 * x.abs().max(1.0);
            assert_eq!(
                (a.start, a.samples, a.limits, a.oom_kills),
                (b.start, b.samples, b.limits, b.oom_kills),
                "step {step_s}"
            );
            assert_eq!(
                (
                    a.throttled_ratio_max,
                    a.cpu_pressure_max,
                    a.memory_pressure_max
                ),
                (
                    b.throttled_ratio_max,
                    b.cpu_pressure_max,
                    b.memory_pressure_max
                )
            );
            for (x, y) in [
                (a.cpu_cores, b.cpu_cores),
                (a.cpu_percent, b.cpu_percent),
                (a.memory_bytes, b.memory_bytes),
                (a.tasks, b.tasks),
                (a.process_count, b.process_count),
            ] {
                assert!(
                    close(x.avg, y.avg) && close(x.max, y.max),
                    "step {step_s}: {x:?} vs {y:?}"
                );
            }
        }
    }
}

/// Where the rollup stands, and how many minute rows it holds for `u`.
fn rolled(store: &Store, u: &UnitName) -> (i64, i64) {
    let conn = store.reader();
    let until = conn
        .query_row("SELECT until_ms FROM autoscaler_metrics_rolled", [], |r| {
            r.get(0)
        })
        .expect("until_ms");
    let minutes = conn
        .query_row(
            "SELECT count(*) FROM autoscaler_metrics_minute WHERE unit = ?1",
            [u.as_str()],
            |r| r.get(0),
        )
        .expect("count");
    (until, minutes)
}

#[test]
fn the_minute_rollup_gives_the_same_buckets_as_the_samples() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let u = default_unit();
    store
        .insert_metrics(&a_day_of_samples(&u))
        .expect("insert a day");
    // Rolled up to the last whole minute ROLL_UP_AFTER_MS (10 s) before the newest sample.
    assert_eq!(rolled(&store, &u), (T0 + 1439 * 60_000, 1439));
    assert_the_rollup_matches_the_samples(&store, &u);
    // Retention drops whole minutes only once all their samples are gone.
    store
        .prune_older_than(&u, Millis(T0 + 90_000))
        .expect("prune");
    let first = store
        .metrics_downsampled(&u, Millis(T0), Millis(T0 + 86_400_000), 60_000)
        .expect("downsample");
    assert_eq!(
        (first[0].start, first[0].samples),
        (Millis(T0 + 60_000), 60)
    );
}

/// Samples stored as the daemon's writer stores them (a round at a time, out of order
/// within a round), and some only after their minute was rolled up, read the same as from
/// the samples themselves.
#[test]
fn the_minute_rollup_holds_with_rounds_out_of_order_and_late_samples() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let u = default_unit();
    let day = a_day_of_samples(&u);
    let (mut late, mut rounds): (Vec<_>, Vec<_>) = day
        .chunks(7)
        .map(|c| c.iter().rev().cloned().collect::<Vec<_>>())
        .enumerate()
        .partition(|(i, _)| i % 97 == 3);
    let mut held = Vec::new();
    for (i, round) in rounds.drain(..) {
        store.insert_metrics(&round).expect("insert a round");
        // A held round comes 40 rounds (280 s) late: its minute is rolled up by then.
        if let Some(pos) = late.iter().position(|(j, _)| *j + 40 == i) {
            held.push(late.remove(pos).1);
            store
                .insert_metrics(&held[held.len() - 1])
                .expect("insert late");
        }
    }
    for (_, round) in late {
        store
            .insert_metrics(&round)
            .expect("insert the last late ones");
    }
    assert!(held.len() > 100, "{} late rounds", held.len());
    assert_eq!(rolled(&store, &u), (T0 + 1439 * 60_000, 1439));
    assert_the_rollup_matches_the_samples(&store, &u);
}

/// A database written by a build whose trigger rolled up every sample (schema 3) is rolled up
/// from the minute after its newest sample on: no sample counted twice or left out.
#[test]
fn a_database_rolled_up_by_the_old_trigger_reads_the_same_after_the_migration() {
    let (_dir, path) = temp_db();
    let u = default_unit();
    let day = a_day_of_samples(&u);
    let half = 43_200 + 17;
    {
        let mut conn = raw(&path);
        crate::schema::migrations()
            .to_version(&mut conn, 3)
            .expect("schema 3");
        drop(conn);
        // Schema 3's writes were plain inserts, the trigger rolling each one up.
        let store_v3 = raw(&path);
        let tx = store_v3.unchecked_transaction().expect("tx");
        for r in &day[..half] {
            tx.execute(
                "INSERT INTO autoscaler_metrics (cpu_percent, memory_gb, process_count,
                 agent_count, testing_agent_count, unit, ts_ms, cpu_cores, memory_bytes, tasks,
                 cpu_quota, throttled_ratio, oom_kills)
                 VALUES (?1, 1, ?2, 0, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params![
                    r.cpu_percent,
                    r.process_count as i64,
                    u.as_str(),
                    r.at.0,
                    r.cpu_cores,
                    r.memory_bytes as i64,
                    r.tasks as i64,
                    r.cpu_quota.map(|q| q as i64),
                    r.throttled_ratio,
                    r.oom_kills as i64
                ],
            )
            .expect("insert at schema 3");
        }
        tx.commit().expect("commit");
    }
    let store = open(&path);
    let newest = day[half - 1].at.0;
    let after = newest - newest.rem_euclid(60_000) + 60_000;
    assert_eq!(rolled(&store, &u), (after, 721));
    // The rest of the minute of the newest sample comes after the migration.
    for round in day[half..].chunks(50) {
        store
            .insert_metrics(round)
            .expect("insert after the migration");
    }
    assert_the_rollup_matches_the_samples(&store, &u);
    assert_eq!(rolled(&store, &u), (T0 + 1439 * 60_000, 1439));
}

/// The lines of SQLite's plan for `sql` with these parameters.
fn query_plan(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
    conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .and_then(|mut stmt| {
            stmt.query_map(params, |r| r.get(3))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
        })
        .expect("plan")
}

/// A day's range of the default unit, by the minute: `DOWNSAMPLE*`'s parameters.
const A_DAY: (&str, i64, i64, i64) = ("autocoder-ui.service", T0, T0 + 86_400_000, 60_000);

#[test]
fn downsampling_reads_through_the_unit_time_index() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let plan = query_plan(&store.reader(), crate::metrics::DOWNSAMPLE, A_DAY);
    let text = plan.join("\n");
    assert!(
        text.contains("INDEX autoscaler_metrics_unit_ts (unit=? AND ts_ms>? AND ts_ms<?)"),
        "{text}"
    );
    // No full scan of the metrics table, under its name or its alias.
    assert!(
        !plan
            .iter()
            .any(|l| l.starts_with("SCAN autoscaler_metrics") || l.starts_with("SCAN m")),
        "{text}"
    );
}

/// The rollup reads the minutes it rolls up through the time index, and the minute query
/// the samples not rolled up yet through the unit/time index: neither scans the samples.
#[test]
fn the_rollup_and_its_readers_read_through_indexes() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let roll = query_plan(&store.writer(), crate::metrics::ROLL_UP, [T0, T0]).join("\n");
    assert!(
        roll.contains("INDEX autoscaler_metrics_ts (ts_ms>? AND ts_ms<?)"),
        "{roll}"
    );
    let late = query_plan(&store.writer(), crate::metrics::ROLL_UP_LATE, [1, T0]).join("\n");
    assert!(late.contains("INTEGER PRIMARY KEY (rowid>?)"), "{late}");
    let read = query_plan(&store.reader(), crate::metrics::DOWNSAMPLE_MINUTES, A_DAY);
    let text = read.join("\n");
    // (`autoscaler_metrics_rolled` is one row.)
    let scans = |l: &String| {
        l.split_whitespace().take(2).collect::<Vec<_>>() == ["SCAN", "autoscaler_metrics"]
            || l.starts_with("SCAN autoscaler_metrics_minute")
    };
    assert!(!read.iter().any(scans), "{text}");
    assert!(
        text.contains("INDEX autoscaler_metrics_unit_ts (unit=? AND ts_ms>? AND ts_ms<?)"),
        "{text}"
    );
}

#[test]
fn two_stores_on_one_file_see_each_other() {
    let (_dir, path) = temp_db();
    let (a, b) = (open(&path), open(&path));
    let u = default_unit();
    a.insert_metric(&sample(&u, T0)).expect("a writes");
    assert_eq!(
        b.metrics_since(&u, Millis(T0), Millis(T0 + 1))
            .expect("b reads")
            .len(),
        1
    );
    let id = b
        .insert_history(&history_entry(&u, T0, "scale_up", STATUS_SUCCESS))
        .expect("b writes");
    assert_eq!(a.last_action(&u).expect("a reads").map(|h| h.id), Some(id));
    let cfg = Config::default().with_policy(autoscaler_core::Policy::Aggressive);
    a.save_config(&u, &cfg).expect("a saves");
    assert_eq!(b.load_config(&u).expect("b loads"), Some(cfg));
    // Clones on other threads share the connections.
    let threads: Vec<_> = (1..=4)
        .map(|t| {
            let s = a.clone();
            let u = u.clone();
            std::thread::spawn(move || s.insert_metric(&sample(&u, T0 + t * 1000)))
        })
        .collect();
    for t in threads {
        t.join().expect("thread").expect("insert");
    }
    assert_eq!(
        b.metrics_since(&u, Millis(0), Millis(i64::MAX))
            .expect("read")
            .len(),
        5
    );
}

#[test]
fn files_this_build_must_not_migrate_are_refused_untouched() {
    fn check(setup: fn(&Path), want: &str) {
        let (_dir, path) = temp_db();
        setup(&path);
        let before = std::fs::read(&path).expect("read file");
        let err = format!(
            "{:#}",
            Store::open(&path, &default_unit()).expect_err("refused")
        );
        assert!(
            err.contains(want) && err.contains(&path.display().to_string()),
            "{err}"
        );
        assert!(
            std::fs::read(&path).expect("read file") == before,
            "{want}: the file changed"
        );
    }
    check(
        |p| {
            drop(open(p));
            raw(p)
                .pragma_update(None, "user_version", 99)
                .expect("set version");
        },
        "schema version 99",
    );
    check(
        |p| {
            raw(p)
                .execute_batch(
                    "CREATE TABLE autoscaler_history (id INTEGER PRIMARY KEY, action TEXT)",
                )
                .expect("prototype table");
        },
        "no schema version",
    );
    check(
        |p| std::fs::write(p, "not a database\n".repeat(300)).expect("write"),
        "not an SQLite database",
    );
}

#[test]
fn learned_state_survives_a_restart_and_is_kept_per_unit() {
    let (_dir, path) = temp_db();
    let (a, b) = (unit("a.service"), unit("b.service"));
    {
        let s = open(&path);
        assert_eq!(s.load_learned(&a).expect("read"), None);
        s.save_learned(&a, "adaptive1 | one", Millis(1))
            .expect("save");
        s.save_learned(&a, "adaptive1 | two", Millis(2))
            .expect("replace");
        s.save_learned(&b, "adaptive1 | other", Millis(3))
            .expect("save");
    }
    let s = open(&path);
    assert_eq!(
        s.load_learned(&a).expect("read"),
        Some(("adaptive1 | two".to_string(), Millis(2)))
    );
    assert_eq!(
        s.load_learned(&b).expect("read").map(|x| x.0),
        Some("adaptive1 | other".to_string())
    );
}

/// A sample whose figures change with time, so buckets differ from one another.
fn varied(u: &UnitName, at: i64) -> MetricRow {
    MetricRow {
        cpu_percent: (at % 7_000) as f64 / 100.0,
        cpu_cores: (at % 13_000) as f64 / 10_000.0,
        memory_bytes: (at % 5_000) as u64 * 1000,
        tasks: (at % 3_000) as u64,
        oom_kills: u64::from(at % 60_000 == 0),
        ..sample(u, at)
    }
}

fn plan(since: &str, step: &str, now: i64) -> autoscaler_core::Range {
    let now = Millis(now);
    let since_at = crate::when::parse_since(since, now).expect("test ranges parse");
    let step_ms = crate::when::parse_step_ms(step).expect("test steps parse");
    autoscaler_core::Range::plan(Some(since_at), Some(step_ms), now, since, step)
        .expect("test ranges are valid")
}

/// The cached buckets of a range are exactly what the store downsamples, as samples keep
/// arriving and the page refreshes, changes its step or its range.
#[test]
fn range_cache_matches_the_store() -> anyhow::Result<()> {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let u = unit("cache.service");
    let t0 = 1_800_000_000_000;
    let mut written = t0 - 600_000;
    // (clock, since, step): refreshes of the same range, another step, another range.
    let cases = [
        (t0, "5m", "2s"),
        (t0 + 3_000, "5m", "2s"),
        (t0 + 25_000, "5m", "2s"),
        (t0 + 25_000, "5m", "5s"),
        (t0 + 40_000, "2m", "2s"),
        (t0 + 41_000, "9m", "2s"),
        (t0 + 60_000, "5m", "2s"),
    ];
    for (now, since, step) in cases {
        let rows: Vec<_> = (written..=now)
            .step_by(1000)
            .map(|at| varied(&u, at))
            .collect();
        store.insert_metrics(&rows)?;
        written = now + 1000;
        let r = plan(since, step, now);
        let want = store.metrics_downsampled(&u, r.since(), r.until(), r.step_ms())?;
        assert!(!want.is_empty());
        let got = store.metrics_range(&u, r)?;
        assert_eq!(got.buckets, want, "now={now} since={since} step={step}");
        assert_eq!(got.range, r);
    }
    Ok(())
}

/// A range's actions are those in `[since, until)`, oldest first, filtered in SQL.
#[test]
fn range_actions_are_the_ones_in_the_range() -> anyhow::Result<()> {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let u = unit("actions.service");
    let other = unit("other.service");
    for k in 0..10 {
        store.insert_history(&history_entry(
            &u,
            T0 + k * 60_000,
            "scale_up",
            STATUS_SUCCESS,
        ))?;
        store.insert_history(&history_entry(
            &other,
            T0 + k * 60_000,
            "scale_up",
            STATUS_SUCCESS,
        ))?;
    }
    let now = T0 + 9 * 60_000;
    // The last 5 minutes, aligned to 1 minute: the actions at minutes 4..=9.
    let r = plan("5m", "1m", now);
    let got = store.metrics_range(&u, r)?;
    let at: Vec<i64> = got.actions.iter().map(|h| (h.at.0 - T0) / 60_000).collect();
    assert_eq!(at, vec![4, 5, 6, 7, 8, 9]);
    assert!(got.actions.iter().all(|h| h.unit == u));
    let between = store.history_between(&u, Millis(T0), Millis(T0 + 120_000), 1)?;
    assert_eq!(between.len(), 1, "the limit keeps the newest");
    assert_eq!(between[0].at, Millis(T0 + 60_000));
    Ok(())
}

/// The journal: a change begun and never finished is found after a reopen; finishing it
/// moves it to the history under the id it was given, once; ids never repeat across reopens.
#[test]
fn journalled_changes_survive_a_restart_and_finish_once() {
    let (_dir, path) = temp_db();
    let u = unit("web.service");
    let mut planned = history_entry(&u, T0, "scale_up", STATUS_SUCCESS);
    planned.old = Limits::new(100, 2, 100);
    planned.new = Limits::new(250, 3, 100);
    let begun = {
        let store = open(&path);
        let done = store.insert_history(&history_entry(&u, T0 - 1000, "scale_up", STATUS_SUCCESS));
        let done = done.expect("history row");
        let begun = store.reserve_history_id();
        assert!(begun > done, "{begun} after {done}");
        store.begin_change(begun, &planned, true).expect("journal");
        begun
    };

    let store = open(&path);
    let left = store.unfinished_changes().expect("journal");
    assert_eq!(
        left,
        vec![crate::Intent {
            id: begun,
            planned: planned.clone(),
            was_running: true,
        }]
    );
    assert!(store.reserve_history_id() > begun);
    assert!(
        store
            .history(&u, 10)
            .expect("history")
            .iter()
            .all(|h| h.id != begun)
    );

    let mut ended = planned.clone();
    ended.status = Status::Failed;
    ended.error_message = Some("the daemon stopped during this change".into());
    store.finish_change(begun, &ended).expect("finish");
    assert!(store.unfinished_changes().expect("journal").is_empty());
    let row = store.history(&u, 1).expect("history").remove(0);
    assert_eq!(
        (row.id, row.status, row.new),
        (begun, Status::Failed, planned.new)
    );
    assert_eq!(row.error_message, ended.error_message);
    assert!(
        store.finish_change(begun, &ended).is_err(),
        "a change finishes once"
    );
    assert_eq!(store.history(&u, 10).expect("history").len(), 2);
}

/// Retention counts back from the newest sample when the clock says later: a wall clock that
/// jumps two days ahead keeps the last day of a 24 h retention, not nothing.
#[test]
fn retention_never_deletes_the_newest_kept_samples_after_a_clock_jump() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    let u = default_unit();
    for h in 0..30 {
        store
            .insert_metric(&sample(&u, T0 + h * 3_600_000))
            .expect("sample");
    }
    let day = 24 * 3_600_000;
    let newest = T0 + 29 * 3_600_000;
    let gone = store
        .prune_metrics(&u, Millis(newest + 2 * day), day)
        .expect("prune");
    assert_eq!(
        gone, 5,
        "only the samples over a day older than the newest one go"
    );
    let left = store
        .metrics_since(&u, Millis(0), Millis(i64::MAX))
        .expect("metrics");
    assert_eq!(left.first().map(|m| m.at.0), Some(newest - day));
    assert_eq!(left.len(), 25);
    // In step with the clock (a new sample an hour later), retention works as before.
    store
        .insert_metric(&sample(&u, newest + 3_600_000))
        .expect("sample");
    let gone = store
        .prune_metrics(&u, Millis(newest + 3_600_000), day)
        .expect("prune");
    assert_eq!(gone, 1);
}

/// A file whose interior pages are damaged is refused at open, with how to move it aside,
/// and left byte for byte as it was.
#[test]
fn a_damaged_database_is_refused_and_left_alone() {
    let (_dir, path) = temp_db();
    {
        let store = open(&path);
        let u = default_unit();
        for k in 0..2000 {
            store
                .insert_metric(&sample(&u, T0 + k * 1000))
                .expect("sample");
        }
    }
    {
        // Fold the WAL into the file, then spoil a page in the middle of it.
        let c = raw(&path);
        c.pragma_update(None, "journal_mode", "DELETE")
            .expect("checkpoint");
    }
    let mut bytes = std::fs::read(&path).expect("read");
    let page = 4096;
    let middle = (bytes.len() / page / 2) * page;
    for b in &mut bytes[middle + 8..middle + 200] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).expect("write");
    let err = Store::open(&path, &default_unit()).expect_err("a damaged file is refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("is damaged") && msg.contains(".damaged"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(&path).expect("read"),
        bytes,
        "the file was changed"
    );
}
