//! What the `adaptive` policy learned about each unit (`autoscaler_learned`), so a restarted
//! daemon goes on from where it was. The state is opaque text written and read by
//! `autoscaler_core::Learned`; this module only keeps the latest one per unit and must not
//! interpret it.

use autoscaler_core::{Millis, UnitName};
use rusqlite::OptionalExtension;

use crate::Store;

impl Store {
    /// Keeps `state` as the unit's learned state, replacing the previous one.
    pub fn save_learned(&self, unit: &UnitName, state: &str, at: Millis) -> anyhow::Result<()> {
        self.writer()
            .prepare_cached(
                "INSERT INTO autoscaler_learned (unit, state, ts_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(unit) DO UPDATE SET state = excluded.state, ts_ms = excluded.ts_ms",
            )
            .and_then(|mut stmt| stmt.execute(rusqlite::params![unit.as_str(), state, at.0]))
            .map(|_| ())
            .map_err(|e| {
                self.sql_error(
                    e,
                    format_args!("saving what {unit} taught the adaptive policy"),
                )
            })
    }

    /// The unit's learned state and when it was saved, if any.
    pub fn load_learned(&self, unit: &UnitName) -> anyhow::Result<Option<(String, Millis)>> {
        self.reader()
            .prepare_cached("SELECT state, ts_ms FROM autoscaler_learned WHERE unit = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([unit.as_str()], |r| Ok((r.get(0)?, Millis(r.get(1)?))))
                    .optional()
            })
            .map_err(|e| {
                self.sql_error(
                    e,
                    format_args!("reading what {unit} taught the adaptive policy"),
                )
            })
    }
}
