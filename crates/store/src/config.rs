//! One [`Config`] per unit: the spec's `autoscaler_config` row for the default unit, and
//! `autoscaler_unit_config` rows for the others.
//!
//! Columns are read and written by iterating `autoscaler_core::config::FIELDS`, so a field is
//! declared once, in the core. A stored row is rebuilt through [`Config::apply`], which
//! validates it: a bad value is an error naming the table and column, never silently replaced
//! by a default (the user would lose a setting without knowing). This module must not decide
//! what a valid config is; the core does.

use anyhow::anyhow;
use autoscaler_core::config::FIELDS;
use autoscaler_core::{Config, FieldValue, UnitName};
use rusqlite::OptionalExtension;
use rusqlite::types::Value;

use crate::Store;

/// The non-numeric columns, read and written before the `FIELDS` columns.
const HEAD: [&str; 3] = ["mode", "policy", "predictive"];

fn columns() -> impl Iterator<Item = &'static str> {
    HEAD.into_iter().chain(FIELDS.iter().map(|f| f.name))
}

impl Store {
    /// The stored config of `unit`: always `Some` for the default unit (row id = 1), `None`
    /// for a unit whose config was never saved.
    ///
    /// A stored value that fails validation is an error naming its column.
    pub fn load_config(&self, unit: &UnitName) -> anyhow::Result<Option<Config>> {
        let (table, key_sql) = self.config_table(unit);
        let sql = format!(
            "SELECT {} FROM {table} WHERE {key_sql}",
            columns().collect::<Vec<_>>().join(", ")
        );
        let key = self.config_key(unit);
        let conn = self.reader();
        let values: Option<Vec<Value>> = conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_row([key], |row| {
                    (0..row.as_ref().column_count())
                        .map(|i| row.get::<_, Value>(i))
                        .collect()
                })
                .optional()
            })
            .map_err(|e| self.sql_error(e, format_args!("reading the config of {unit}")))?;
        drop(conn);
        let Some(values) = values else {
            if table == "autoscaler_config" {
                return Err(anyhow!(
                    "the config row id = 1 is missing from autoscaler_config in {}; it is \
                     created when the store opens, so something deleted it: restart the \
                     autoscaler to recreate it with the spec's defaults",
                    self.path().display()
                ));
            }
            return Ok(None);
        };
        let changes = columns()
            .zip(&values)
            .map(|(name, v)| Ok((name.to_string(), field_value(name, v)?)))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|msg| self.bad_row(table, unit, &msg))?;
        let config = Config::default().apply(&changes).map_err(|e| {
            self.bad_row(
                table,
                unit,
                &format!("column {}: {}; allowed: {}", e.field, e.message, e.allowed),
            )
        })?;
        Ok(Some(config))
    }

    /// Stores `config` as the config of `unit`, replacing what was there.
    pub fn save_config(&self, unit: &UnitName, config: &Config) -> anyhow::Result<()> {
        let mut values: Vec<Value> = vec![
            Value::Text(config.mode().as_str().to_string()),
            Value::Text(config.policy().as_str().to_string()),
            Value::Integer(i64::from(config.predictive())),
        ];
        for f in FIELDS {
            let v = (f.get)(config);
            // Whole numbers go in as INTEGER so the spec's INTEGER columns hold integers.
            values.push(if f.integer {
                Value::Integer(v as i64)
            } else {
                Value::Real(crate::sql_real(v, f.name)?)
            });
        }
        let names: Vec<&str> = columns().collect();
        let sql = if self.is_default(unit) {
            let sets: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{n} = ?{}", i + 1))
                .collect();
            format!(
                "UPDATE autoscaler_config SET {} WHERE id = 1",
                sets.join(", ")
            )
        } else {
            let marks: Vec<String> = (1..=names.len() + 1).map(|i| format!("?{i}")).collect();
            let sets: Vec<String> = names
                .iter()
                .map(|n| format!("{n} = excluded.{n}"))
                .collect();
            values.push(Value::Text(unit.as_str().to_string()));
            format!(
                "INSERT INTO autoscaler_unit_config ({}, unit) VALUES ({}) \
                 ON CONFLICT (unit) DO UPDATE SET {}",
                names.join(", "),
                marks.join(", "),
                sets.join(", ")
            )
        };
        let conn = self.writer();
        let changed = conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(values)))
            .map_err(|e| self.sql_error(e, format_args!("saving the config of {unit}")))?;
        if changed != 1 {
            return Err(anyhow!(
                "saving the config of {unit} in {} changed {changed} rows instead of 1; the \
                 config row id = 1 is missing: restart the autoscaler to recreate it",
                self.path().display()
            ));
        }
        Ok(())
    }

    /// The units other than the default one that have a stored config, sorted by name.
    pub fn configured_units(&self) -> anyhow::Result<Vec<UnitName>> {
        let names: Vec<String> = self
            .reader()
            .prepare_cached("SELECT unit FROM autoscaler_unit_config ORDER BY unit")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .map_err(|e| self.sql_error(e, "listing the units with a stored config"))?;
        names
            .iter()
            .map(|n| {
                UnitName::parse(n).map_err(|e| {
                    anyhow!(
                        "autoscaler_unit_config in {} holds a bad unit name: {e}; delete that row",
                        self.path().display()
                    )
                })
            })
            .collect()
    }

    fn is_default(&self, unit: &UnitName) -> bool {
        unit == self.default_unit()
    }

    fn config_table(&self, unit: &UnitName) -> (&'static str, &'static str) {
        if self.is_default(unit) {
            ("autoscaler_config", "id = ?1")
        } else {
            ("autoscaler_unit_config", "unit = ?1")
        }
    }

    fn config_key(&self, unit: &UnitName) -> Value {
        if self.is_default(unit) {
            Value::Integer(1)
        } else {
            Value::Text(unit.as_str().to_string())
        }
    }

    fn bad_row(&self, table: &str, unit: &UnitName, msg: &str) -> anyhow::Error {
        anyhow!(
            "the stored config of {unit} in {} (table {table}) is invalid: {msg}. Fix the \
             value (PUT /api/autoscaler/config, or sqlite3) or delete the row to start from \
             the defaults",
            self.path().display()
        )
    }
}

/// A stored value as the front ends would send it, or a message naming the column.
fn field_value(column: &str, v: &Value) -> Result<FieldValue, String> {
    let shown = || match v {
        Value::Null => "NULL".to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => format!("{t:?}"),
        Value::Blob(b) => format!("a {}-byte blob", b.len()),
    };
    match (column, v) {
        ("mode" | "policy", Value::Text(t)) => Ok(FieldValue::Text(t.clone())),
        ("mode" | "policy", _) => Err(format!("column {column}: {} is not text", shown())),
        ("predictive", Value::Integer(0)) => Ok(FieldValue::Bool(false)),
        ("predictive", Value::Integer(1)) => Ok(FieldValue::Bool(true)),
        ("predictive", _) => Err(format!("column predictive: {} is not 0 or 1", shown())),
        (_, Value::Integer(i)) => Ok(FieldValue::Number(*i as f64)),
        (_, Value::Real(f)) => Ok(FieldValue::Number(*f)),
        (_, _) => Err(format!("column {column}: {} is not a number", shown())),
    }
}
