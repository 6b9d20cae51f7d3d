//! The dashboard: the page at `/`, its static assets under `/assets/`, and the range endpoint
//! the charts read (`GET /api/autoscaler[/units/{unit}]/metrics/history?since=..&step=..`).
//!
//! Everything the page needs is compiled into the binary (`include_str!`/`include_bytes!`):
//! the HTML, CSS and JS beside this file and the vendored uPlot 1.6.32 (MIT, its licence is
//! served at `/assets/uPlot-LICENSE`), so the dashboard works on a host with no network. The
//! page is plain JS with no build step; it changes things only through the same API calls
//! as every other client, so it holds no logic of its own. The range endpoint only reads the
//! store: it downsamples in SQL (`Store::metrics_downsampled`) and answers with one array per
//! series, so a day of 1 s samples comes back as about 720 points. This module must not
//! decide or validate limits; that is the engine's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::json::num;
use super::{ApiError, AppState, Target, history_json};
use autoscaler_core::config::FIELDS;
use autoscaler_core::{GIB, Millis, UnitName};
use autoscaler_store::{MetricBucket, Store, format_ts};

/// The most points a default step gives; one per pixel of a wide chart is plenty.
const TARGET_POINTS: i64 = 720;
/// The most points an explicit `step` may ask for, so an answer stays well under 1 MB.
const MAX_POINTS: i64 = 10_000;
/// The longest range one request may cover (the store keeps at most a year).
const MAX_RANGE_MS: i64 = 366 * 86_400_000;
/// How many history rows are searched for the markers of a range.
const MAX_ACTIONS: u32 = 1000;
/// Steps a default is rounded up to, in seconds, so bucket edges fall on round times.
const NICE_STEPS: [i64; 16] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 86_400,
];

const SINCE_ALLOWED: &str =
    "a duration such as 15m, 1h or 24h, or a time such as 2026-01-25T10:00:00Z (UTC)";
const STEP_ALLOWED: &str =
    "a duration of at least 1s such as 5s or 2m, or whole seconds; at most 10000 points per range";

/// A static file served under `/assets/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

static ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("style.css"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("uPlot.min.css"),
    },
    Asset {
        name: "uPlot-LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("LICENSE"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("favicon.svg"),
    },
];

/// The dashboard's routes; the API router merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/config-fields.json", get(config_fields))
        .route("/assets/{name}", get(asset))
        .route("/api/autoscaler/metrics/history", get(metrics_history))
        .route(
            "/api/autoscaler/units/{unit}/metrics/history",
            get(metrics_history),
        )
        .layer(Extension(Arc::new(BucketCache::default())))
}

/// How far behind the clock a bucket must end before it is taken as final: samples are
/// stored a moment after they are taken.
const SETTLE_MS: i64 = 10_000;
/// Cached (unit, step) series; past this many the cache starts over.
const MAX_CACHED_SERIES: usize = 32;

/// Finished buckets of the series the page asked for, so a refresh every 5 s reads only the
/// newest buckets from SQLite instead of a whole day of samples. Buckets are aligned to
/// multiples of their step (see [`parse_range`]), so a bucket once finished never changes;
/// pruning only removes samples older than any range worth showing.
#[derive(Default)]
struct BucketCache {
    series: Mutex<HashMap<(UnitName, i64), CachedSeries>>,
}

/// Every bucket in `[from, to)` is known: stored here, or empty.
struct CachedSeries {
    from: i64,
    to: i64,
    buckets: BTreeMap<i64, MetricBucket>,
}

impl BucketCache {
    fn read(&self, store: &Store, unit: &UnitName, r: Range) -> anyhow::Result<Vec<MetricBucket>> {
        let step = r.step_ms;
        let settled = (r.until.0 - SETTLE_MS).div_euclid(step) * step;
        let key = (unit.clone(), step);
        let (mut out, query_from) = {
            let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
            match series.get(&key) {
                Some(c) if c.from <= r.since.0 && r.since.0 <= c.to => (
                    c.buckets
                        .range(r.since.0..c.to)
                        .map(|(_, b)| b.clone())
                        .collect::<Vec<_>>(),
                    c.to,
                ),
                _ => (Vec::new(), r.since.0),
            }
        };
        let fresh = store.metrics_downsampled(unit, Millis(query_from), r.until, step)?;
        if settled > query_from {
            let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
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

/// Headers every dashboard file carries. The CSP keeps the page to its own origin (no CDN
/// can sneak in); inline styles stay allowed because uPlot positions its elements with them.
fn page_headers(content_type: &'static str) -> [(header::HeaderName, HeaderValue); 4] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        // The files change with the binary; revalidating costs one small request.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        ),
    ]
}

async fn index() -> Response {
    (
        page_headers("text/html; charset=utf-8"),
        include_str!("index.html"),
    )
        .into_response()
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => (page_headers(a.content_type), a.body).into_response(),
        None => ApiError {
            status: StatusCode::NOT_FOUND,
            body: json!({ "error": format!("no dashboard asset {name:?}") }),
        }
        .into_response(),
    }
}

/// The config fields with their ranges and docs, so the page's editor labels and hints come
/// from the same table the engine validates against.
async fn config_fields() -> Response {
    let fields: Vec<Value> = FIELDS
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "min": f.min,
                "max": f.max,
                "integer": f.integer,
                "doc": f.doc.trim(),
                "allowed": f.allowed(),
            })
        })
        .collect();
    (page_headers("application/json"), Json(Value::Array(fields))).into_response()
}

#[derive(serde::Deserialize)]
struct RangeQuery {
    since: Option<String>,
    step: Option<String>,
}

/// The buckets `[since, until)` of `step_ms` a range request reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    since: Millis,
    until: Millis,
    step_ms: i64,
}

async fn metrics_history(
    State(s): State<AppState>,
    Extension(cache): Extension<Arc<BucketCache>>,
    Target(unit): Target,
    q: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) =
        q.map_err(|e| ApiError::bad_request(e.body_text(), Some("since"), Some(SINCE_ALLOWED)))?;
    let range = parse_range(q.since.as_deref(), q.step.as_deref(), s.engine.now())?;
    let store = s.engine.store().clone();
    let unit2 = unit.clone();
    // SQLite calls block (a cold day of samples takes a good part of a second on a busy
    // host); they run off the async workers.
    let (buckets, actions) = tokio::task::spawn_blocking(move || {
        let buckets = cache.read(&store, &unit2, range)?;
        let actions = store.history(&unit2, MAX_ACTIONS)?;
        anyhow::Ok((buckets, actions))
    })
    .await
    .map_err(|e| internal(format!("the metrics query task failed: {e}")))?
    .map_err(|e| internal(format!("{e:#}")))?;

    let mut actions: Vec<Value> = actions
        .iter()
        .filter(|h| h.at >= range.since && h.at < range.until)
        .map(|h| {
            let mut v = history_json(h);
            v["time"] = json!(h.at.0 as f64 / 1000.0);
            v
        })
        .collect();
    actions.reverse();

    let mut body = Map::new();
    body.insert("unit".into(), json!(unit.as_str()));
    body.insert("since".into(), json!(format_ts(range.since)));
    body.insert("until".into(), json!(format_ts(range.until)));
    body.insert("step_seconds".into(), num(range.step_ms as f64 / 1000.0, 3));
    body.insert("points".into(), json!(buckets.len()));
    body.insert("series".into(), series_json(&buckets));
    body.insert("actions".into(), Value::Array(actions));
    Ok(Json(Value::Object(body)))
}

fn internal(message: String) -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: json!({ "error": message }),
    }
}

/// One array per series, index-aligned with `time` (bucket starts, unix seconds): what uPlot
/// takes as is, and a tenth of the bytes of an object per point.
fn series_json(buckets: &[MetricBucket]) -> Value {
    let gib = |b: f64| b / GIB as f64;
    let col = |f: &dyn Fn(&MetricBucket) -> Value| -> Value {
        Value::Array(buckets.iter().map(f).collect())
    };
    let opt = |v: Option<f64>, d: i32| v.map_or(Value::Null, |v| num(v, d));
    json!({
        "time": col(&|b| num(b.start.0 as f64 / 1000.0, 3)),
        "samples": col(&|b| json!(b.samples)),
        "cpu_cores": col(&|b| num(b.cpu_cores.avg, 3)),
        "cpu_cores_max": col(&|b| num(b.cpu_cores.max, 3)),
        "cpu_percent": col(&|b| num(b.cpu_percent.avg, 1)),
        "cpu_quota_cores": col(&|b| opt(b.limits.cpu_quota.map(|q| f64::from(q) / 100.0), 2)),
        "memory_gib": col(&|b| num(gib(b.memory_bytes.avg), 4)),
        "memory_gib_max": col(&|b| num(gib(b.memory_bytes.max), 4)),
        "memory_max_gib": col(&|b| opt(b.limits.memory_max.map(|m| gib(m as f64)), 3)),
        "tasks": col(&|b| num(b.tasks.avg, 1)),
        "tasks_peak": col(&|b| num(b.tasks.max, 0)),
        "tasks_max": col(&|b| b.limits.tasks_max.map_or(Value::Null, |t| json!(t))),
        "process_count": col(&|b| num(b.process_count.avg, 1)),
        "throttled_percent": col(&|b| opt(b.throttled_ratio_max.map(|r| r * 100.0), 1)),
        "cpu_pressure": col(&|b| opt(b.cpu_pressure_max, 2)),
        "memory_pressure": col(&|b| opt(b.memory_pressure_max, 2)),
        "oom_kills": col(&|b| json!(b.oom_kills)),
    })
}

/// Reads `since` (default 1h) and `step` (default: a round step giving at most
/// [`TARGET_POINTS`] points). `since` is aligned down to a multiple of the step so bucket
/// edges stay put from one refresh to the next and a chart does not shimmer.
fn parse_range(since: Option<&str>, step: Option<&str>, now: Millis) -> Result<Range, ApiError> {
    let bad_since =
        |message: String| ApiError::bad_request(message, Some("since"), Some(SINCE_ALLOWED));
    let bad_step =
        |message: String| ApiError::bad_request(message, Some("step"), Some(STEP_ALLOWED));
    let until = Millis(now.0.saturating_add(1));
    let since_ms = match since.map(str::trim) {
        None | Some("") => now.0 - 3_600_000,
        Some(text) => match duration_ms(text) {
            Some(ms) => now.0.saturating_sub(ms),
            None => time_ms(text).ok_or_else(|| {
                bad_since(format!("since {text:?} is neither a duration nor a time"))
            })?,
        },
    };
    let window = now.0.saturating_sub(since_ms);
    if window <= 0 {
        return Err(bad_since(format!(
            "since {} is not in the past",
            since.unwrap_or_default().trim()
        )));
    }
    if window > MAX_RANGE_MS {
        return Err(bad_since(format!(
            "since {} reaches back more than 366 days",
            since.unwrap_or_default().trim()
        )));
    }
    let step_ms = match step.map(str::trim) {
        None | Some("") => {
            let wanted = (window + TARGET_POINTS - 1) / TARGET_POINTS;
            NICE_STEPS
                .iter()
                .map(|s| s * 1000)
                .find(|s| *s >= wanted)
                .unwrap_or((wanted + 86_399_999) / 86_400_000 * 86_400_000)
        }
        Some(text) => {
            let ms = match text.parse::<i64>() {
                Ok(secs) => secs.checked_mul(1000),
                Err(_) => duration_ms(text),
            }
            .ok_or_else(|| bad_step(format!("step {text:?} is not a duration")))?;
            if ms < 1000 {
                return Err(bad_step(format!("step {text:?} is shorter than 1s")));
            }
            if window / ms > MAX_POINTS {
                return Err(bad_step(format!(
                    "step {text:?} would give {} points for this range",
                    window / ms
                )));
            }
            ms
        }
    };
    Ok(Range {
        since: Millis(since_ms.div_euclid(step_ms) * step_ms),
        until,
        step_ms,
    })
}

fn duration_ms(text: &str) -> Option<i64> {
    humantime::parse_duration(text)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

/// RFC 3339 (`2026-01-25T10:00:00Z`, `...+02:00`), or the spec's `2026-01-25T10:00:00` (UTC).
fn time_ms(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let spec = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let t = time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| {
            time::PrimitiveDateTime::parse(text, &spec)
                .ok()
                .map(|t| t.assume_utc())
        })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Ok((since, step_ms))` or `Err(field)`.
    fn check(since: Option<&str>, step: Option<&str>, want: Result<(i64, i64), &str>) {
        let now = Millis(1_800_000_000_000);
        let got = parse_range(since, step, now).map(|r| {
            assert_eq!(r.until, Millis(now.0 + 1));
            (r.since.0, r.step_ms)
        });
        let got = got.map_err(|e| {
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            e.body["field"].as_str().unwrap_or("").to_string()
        });
        match (&got, &want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "since={since:?} step={step:?}"),
            (Err(g), Err(w)) => assert_eq!(g, w, "since={since:?} step={step:?}"),
            _ => panic!("since={since:?} step={step:?}: got {got:?}, want {want:?}"),
        }
    }

    fn sample(unit: &UnitName, at: i64) -> autoscaler_store::MetricRow {
        autoscaler_store::MetricRow {
            unit: unit.clone(),
            at: Millis(at),
            cpu_percent: (at % 7_000) as f64 / 100.0,
            cpu_cores: (at % 13_000) as f64 / 10_000.0,
            memory_bytes: (at % 5_000) as u64 * 1000,
            tasks: (at % 3_000) as u64,
            process_count: 3,
            agent_count: 0,
            testing_agent_count: 0,
            api_quota_remaining: None,
            features_pending: None,
            cpu_quota: Some(100),
            memory_max: Some(GIB),
            tasks_max: Some(100),
            throttled_ratio: Some(0.1),
            cpu_pressure: None,
            memory_pressure: Some(1.0),
            oom_kills: 0,
        }
    }

    /// The cache answers exactly what the store does, as samples keep arriving.
    #[test]
    fn cache_matches_the_store() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let unit = UnitName::parse("cache.service")?;
        let store = Store::open(&dir.path().join("a.db"), &unit)?;
        let cache = BucketCache::default();
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
                .map(|at| sample(&unit, at))
                .collect();
            store.insert_metrics(&rows)?;
            written = now + 1000;
            let r = parse_range(Some(since), Some(step), Millis(now))
                .map_err(|e| anyhow::anyhow!("{:?}", e.body))?;
            let want = store.metrics_downsampled(&unit, r.since, r.until, r.step_ms)?;
            assert!(!want.is_empty());
            assert_eq!(
                cache.read(&store, &unit, r)?,
                want,
                "now={now} since={since} step={step}"
            );
        }
        Ok(())
    }

    /// `since`, `step`, and `Ok((since ms, step ms))` or `Err(field)`.
    type Case = (
        Option<&'static str>,
        Option<&'static str>,
        Result<(i64, i64), &'static str>,
    );

    #[test]
    fn ranges() {
        let now = 1_800_000_000_000;
        let cases: &[Case] = &[
            // Defaults: an hour in 5 s steps (720 points).
            (None, None, Ok((now - 3_600_000, 5_000))),
            (Some("15m"), None, Ok((now - 900_000, 2_000))),
            (Some("24h"), None, Ok((now - 86_400_000, 120_000))),
            (Some(" 1h "), Some("10s"), Ok((now - 3_600_000, 10_000))),
            (Some("1h"), Some("30"), Ok((now - 3_600_000, 30_000))),
            // Aligned down to the step.
            (Some("61s"), Some("2s"), Ok((now - 62_000, 2_000))),
            (
                Some("2027-01-15T07:00:00Z"),
                Some("1m"),
                Ok((now - 3_600_000, 60_000)),
            ),
            (
                Some("2027-01-15T07:00:00"),
                Some("1m"),
                Ok((now - 3_600_000, 60_000)),
            ),
            (
                Some("2027-01-15T09:00:00+02:00"),
                Some("1m"),
                Ok((now - 3_600_000, 60_000)),
            ),
            (Some("2027-01-15T08:00:00Z"), None, Err("since")),
            (Some("yesterday"), None, Err("since")),
            (Some("-5m"), None, Err("since")),
            (Some("0s"), None, Err("since")),
            (Some("2030-01-01T00:00:00Z"), None, Err("since")),
            (Some("400days"), None, Err("since")),
            (Some("1h"), Some("fast"), Err("step")),
            (Some("1h"), Some("500ms"), Err("step")),
            (Some("1h"), Some("0"), Err("step")),
            (Some("1h"), Some("-5"), Err("step")),
            (Some("24h"), Some("1s"), Err("step")),
        ];
        for (since, step, want) in cases {
            check(*since, *step, *want);
        }
    }
}
