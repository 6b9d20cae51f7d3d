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
    let from = parse_since(&since, now)?;
    let rows = store.metrics_since(&unit, from, Millis(i64::MAX))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    autoscaler_sim::write_export_header(&mut out)?;
    for r in &rows {
        let gib = r.memory_bytes as f64 / GIB as f64;
        autoscaler_sim::write_export_row(
            &mut out,
            r.at.0.div_euclid(1000),
            r.cpu_cores,
            Some(gib),
        )?;
    }
    out.flush()?;
    eprintln!(
        "exported {} sample(s) of {unit} since {}",
        rows.len(),
        autoscaler_store::format_ts(from)
    );
    Ok(())
}

/// "24h" (that long before `now`) or "2026-01-25T10:00:00" (UTC).
pub fn parse_since(text: &str, now: Millis) -> anyhow::Result<Millis> {
    if let Ok(d) = humantime::parse_duration(text) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        return Ok(Millis(now.0.saturating_sub(ms)));
    }
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let t = time::PrimitiveDateTime::parse(text.trim_end_matches('Z'), &format).with_context(|| {
        format!("--since {text:?}: expected a duration such as 24h or 90m, or a UTC time such as 2026-01-25T10:00:00")
    })?;
    Ok(Millis(
        (t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_table() {
        let now = Millis(1_800_000_000_000);
        let cases: [(&str, Option<i64>); 5] = [
            ("24h", Some(now.0 - 86_400_000)),
            ("90m", Some(now.0 - 5_400_000)),
            ("2026-01-25T10:00:00", Some(1_769_335_200_000)),
            ("2026-01-25T10:00:00Z", Some(1_769_335_200_000)),
            ("yesterday", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_since(text, now).ok().map(|m| m.0), want, "{text}");
        }
    }
}
