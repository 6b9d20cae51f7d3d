//! What a chart reads for a [`Range`]: the samples downsampled into the range's buckets, and
//! the actions taken in it, in one call.
//!
//! Finished buckets are cached, so a page refreshing a day-long chart every few seconds reads
//! only the newest buckets from SQLite. Ranges are aligned to their step
//! ([`Range::plan`]), so a bucket once finished never changes; pruning only removes samples
//! older than any range worth showing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use autoscaler_core::range::MAX_RANGE_MS;
use autoscaler_core::{Millis, Range, UnitName};

use crate::{HistoryRow, MetricBucket, Store};

/// How far behind the range's end a bucket must end before it is taken as final: samples
/// are stored a moment after they are taken.
const SETTLE_MS: i64 = 10_000;
/// Cached (unit, step) series; past this many the cache starts over.
const MAX_CACHED_SERIES: usize = 32;
/// The most actions one range returns (newest kept): markers on a chart, not an audit.
pub const MAX_RANGE_ACTIONS: u32 = 1000;

/// A range's data: buckets oldest first, and the actions in the range, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeData {
    pub range: Range,
    pub buckets: Vec<MetricBucket>,
    pub actions: Vec<HistoryRow>,
}

#[derive(Default)]
pub(crate) struct BucketCache {
    series: Mutex<HashMap<(UnitName, i64), CachedSeries>>,
}

/// Every bucket in `[from, to)` is known: stored here, or empty.
struct CachedSeries {
    from: i64,
    to: i64,
    buckets: BTreeMap<i64, MetricBucket>,
}

impl Store {
    /// The buckets and actions of `unit` in `range`.
    pub fn metrics_range(&self, unit: &UnitName, range: Range) -> anyhow::Result<RangeData> {
        let buckets = self.cached_buckets(unit, range)?;
        let mut actions =
            self.history_between(unit, range.since(), range.until(), MAX_RANGE_ACTIONS)?;
        actions.reverse();
        Ok(RangeData {
            range,
            buckets,
            actions,
        })
    }

    fn cached_buckets(&self, unit: &UnitName, r: Range) -> anyhow::Result<Vec<MetricBucket>> {
        let cache = &self.inner.buckets;
        let step = r.step_ms();
        let settled = (r.until().0 - SETTLE_MS).div_euclid(step) * step;
        let key = (unit.clone(), step);
        let (mut out, query_from) = {
            let series = cache.series.lock().unwrap_or_else(|e| e.into_inner());
            match series.get(&key) {
                Some(c) if c.from <= r.since().0 && r.since().0 <= c.to => (
                    c.buckets
                        .range(r.since().0..c.to)
                        .map(|(_, b)| b.clone())
                        .collect::<Vec<_>>(),
                    c.to,
                ),
                _ => (Vec::new(), r.since().0),
            }
        };
        // The SQL bucket index counts from `query_from`, which is a multiple of the step.
        let fresh = self.metrics_downsampled(unit, Millis(query_from), r.until(), step)?;
        if settled > query_from {
            let mut series = cache.series.lock().unwrap_or_else(|e| e.into_inner());
            if series.len() >= MAX_CACHED_SERIES && !series.contains_key(&key) {
                series.clear();
            }
            let c = series.entry(key).or_insert_with(|| CachedSeries {
                from: query_from,
                to: query_from,
                buckets: BTreeMap::new(),
            });
            // Only extend a series that ends where this query started; else start it over.
            if c.to != query_from {
                *c = CachedSeries {
                    from: query_from,
                    to: query_from,
                    buckets: BTreeMap::new(),
                };
            }
            for b in fresh.iter().filter(|b| b.start.0 + step <= settled) {
                c.buckets.insert(b.start.0, b.clone());
            }
            c.to = settled;
            // Keep at most a range's worth of buckets.
            let floor = settled - MAX_RANGE_MS;
            if c.from < floor {
                c.buckets = c.buckets.split_off(&floor);
                c.from = floor;
            }
        }
        out.extend(fresh);
        Ok(out)
    }
}
