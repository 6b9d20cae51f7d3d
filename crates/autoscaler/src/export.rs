//! `autoscaler export metrics`: stored samples as the CSV `autoscaler simulate` reads, so a
//! user can replay their own day. The format is defined once, in `autoscaler-sim`.

use std::io::Write;

use anyhow::Context;
use autoscaler_core::{GIB, Millis, UnitName};
use autoscaler_store::Store;

use crate::cli::ExportWhat;

pub fn run(what: ExportWhat) -> anyhow::Result<()> {
    let ExportWhat::Metrics { db, unit, since } = what;
    let unit = UnitName::parse(&unit).map_err(|e| anyhow::anyhow!("--unit: {e}"))?;
    let db = db.unwrap_or_else(|| crate::settings::home().join(".autocoder/autoscaler.db"));
    anyhow::ensure!(
        db.exists(),
        "no store at {} (pass --db or AUTOSCALER_DB)",
        db.display()
    );
    let store = Store::open(&db, &unit).with_context(|| format!("opening {}", db.display()))?;
    let now = crate::engine::now();
    let from = autoscaler_store::when::parse_since(&since, now).with_context(|| {
        format!(
            "--since {since:?}: expected a duration such as 24h or 90m, or a UTC time such as \
             2026-01-25T10:00:00"
        )
    })?;
    let rows = store.metrics_since(&unit, from, Millis(i64::MAX))?;
    let mut out = autoscaler_sim::ExportWriter::new(std::io::stdout().lock())?;
    for r in &rows {
        let gib = r.memory_bytes as f64 / GIB as f64;
        out.row(r.at.0.div_euclid(1000), r.cpu_cores, Some(gib))?;
    }
    out.finish()?.flush()?;
    eprintln!(
        "exported {} sample(s) of {unit} since {}",
        rows.len(),
        autoscaler_store::format_ts(from)
    );
    Ok(())
}
