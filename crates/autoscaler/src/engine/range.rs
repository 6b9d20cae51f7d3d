//! The range a chart reads, as one engine call: parse the user's `since` and `step`, plan the
//! [`Range`] in the core, read it from the store off the async workers.

use autoscaler_core::{Range, UnitName};
use autoscaler_store::RangeData;
use autoscaler_store::when::{parse_since, parse_step_ms};

use super::{EngineError, EngineHandle};

impl EngineHandle {
    /// The samples (downsampled) and actions of `unit` from `since` (default: the last
    /// hour) in buckets of `step` (default: a round step giving about 720 points).
    pub async fn metrics_range(
        &self,
        unit: &UnitName,
        since: Option<&str>,
        step: Option<&str>,
    ) -> Result<RangeData, EngineError> {
        let now = self.now();
        let bad = |e: autoscaler_core::RangeError| EngineError::BadRequest {
            allowed: Some(e.allowed().into()),
            field: Some(e.field.into()),
            message: e.message,
        };
        let since_text = since.map(str::trim).filter(|t| !t.is_empty());
        let step_text = step.map(str::trim).filter(|t| !t.is_empty());
        let since_at = since_text
            .map(|t| {
                parse_since(t, now).ok_or_else(|| autoscaler_core::RangeError {
                    field: "since",
                    message: format!("since {t:?} is neither a duration nor a time"),
                })
            })
            .transpose()
            .map_err(bad)?;
        let step_ms = step_text
            .map(|t| {
                parse_step_ms(t).ok_or_else(|| autoscaler_core::RangeError {
                    field: "step",
                    message: format!("step {t:?} is not a duration"),
                })
            })
            .transpose()
            .map_err(bad)?;
        let range = Range::plan(
            since_at,
            step_ms,
            now,
            since_text.unwrap_or_default(),
            step_text.unwrap_or_default(),
        )
        .map_err(bad)?;
        let unit = unit.clone();
        self.query("metrics", move |store| store.metrics_range(&unit, range))
            .await
    }
}
