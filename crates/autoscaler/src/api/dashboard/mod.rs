//! The dashboard: the page at `/`, its static assets under `/assets/`, and the range endpoint
//! the charts read (`GET /api/autoscaler[/units/{unit}]/metrics/history?since=..&step=..`).
//!
//! Everything the page needs is compiled into the binary (`include_str!`/`include_bytes!`):
//! the HTML, CSS and JS beside this file and the vendored uPlot 1.6.32 (MIT, its licence is
//! served at `/assets/uPlot-LICENSE`), so the dashboard works on a host with no network. The
//! page is plain JS with no build step; it changes things only through the same API calls
//! as every other client, so it holds no logic of its own. The range endpoint is one engine
//! call (`EngineHandle::metrics_range`: parsing, checks, downsampling in SQL and its cache
//! live there) and answers with one array per series, so a day of 1 s samples comes back as
//! about 720 points. This module must not decide or validate anything; it translates.

use std::sync::OnceLock;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::json::num;
use super::{ApiError, AppState, Target, history_json};
use autoscaler_core::config::FIELDS;
use autoscaler_core::{GIB, Mode, Policy};
use autoscaler_store::{MetricBucket, format_ts};

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

/// The web dashboard (HTML).
#[utoipa::path(get, path = "/", operation_id = "dashboard", tag = "dashboard",
    responses((status = 200, description = "The page.", body = String, content_type = "text/html")))]
pub(in crate::api) async fn index() -> Response {
    (page_headers("text/html; charset=utf-8"), page()).into_response()
}

/// The page, with the modes and policies and their words filled in from the core once, so
/// the page lists exactly what the engine accepts.
fn page() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        let option = |name: &str, title: &str| {
            format!("          <option value=\"{name}\" title=\"{title}\">{name}</option>\n")
        };
        let modes: String = Mode::ALL
            .iter()
            .map(|m| option(m.as_str(), m.description()))
            .collect();
        let policies: String = Policy::CHOICES
            .iter()
            .map(|p| option(p.as_str(), &p.description()))
            .collect();
        let words: String = Mode::ALL
            .iter()
            .map(|m| {
                format!(
                    "        <dt>{}</dt><dd>{}</dd>\n",
                    m.as_str(),
                    m.description()
                )
            })
            .collect();
        include_str!("index.html")
            .replace("{{mode_options}}\n", &modes)
            .replace("{{policy_options}}\n", &policies)
            .replace("{{mode_descriptions}}\n", &words)
    })
}

/// A file of the dashboard (script, style).
#[utoipa::path(get, path = "/assets/{name}", operation_id = "dashboardAsset", tag = "dashboard",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The file.", body = String, content_type = "*/*"),
        (status = 404, description = "No such asset.", body = super::schema::ErrorBody),
    ))]
pub(in crate::api) async fn asset(
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => (page_headers(a.content_type), a.body).into_response(),
        None => ApiError {
            status: StatusCode::NOT_FOUND,
            body: json!({ "error": format!("no dashboard asset {name:?}") }),
        }
        .into_response(),
    }
}

/// The config fields with their ranges and docs, for the dashboard's editor.
// So the page's editor labels and hints come from the same table the engine validates against.
#[utoipa::path(get, path = "/assets/config-fields.json", operation_id = "dashboardConfigFields", tag = "dashboard",
    responses((status = 200, description = "One entry per numeric field.", body = Vec<super::schema::ConfigFieldDoc>)))]
pub(in crate::api) async fn config_fields() -> Response {
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

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(in crate::api) struct RangeQuery {
    /// How far back: a duration such as 1h or 30m, or a time.
    since: Option<String>,
    /// Bucket width: a duration of at least 1s such as 5s or 2m, or whole seconds.
    step: Option<String>,
}

/// Stored samples downsampled into buckets, one array per series (what the dashboard charts), and the actions in the range.
#[utoipa::path(get, path = "/api/autoscaler/metrics/history", operation_id = "getMetricsHistory",
    tags = ["default unit", "dashboard"],
    params(RangeQuery),
    responses(
        (status = 200, description = "Series and actions.", body = super::schema::MetricsRange),
        super::openapi::UnitErrors,
    ))]
pub(in crate::api) async fn metrics_history(
    State(s): State<AppState>,
    Target(unit): Target,
    q: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| {
        ApiError::bad_request(
            e.body_text(),
            Some("since"),
            Some(autoscaler_core::range::SINCE_ALLOWED),
        )
    })?;
    let data = s
        .engine
        .metrics_range(&unit, q.since.as_deref(), q.step.as_deref())
        .await?;
    let range = data.range;
    let actions: Vec<Value> = data
        .actions
        .iter()
        .map(|h| {
            let mut v = history_json(h);
            v["time"] = json!(h.at.0 as f64 / 1000.0);
            v
        })
        .collect();

    let mut body = Map::new();
    body.insert("unit".into(), json!(unit.as_str()));
    body.insert("since".into(), json!(format_ts(range.since())));
    body.insert("until".into(), json!(format_ts(range.until())));
    body.insert(
        "step_seconds".into(),
        num(range.step_ms() as f64 / 1000.0, 3),
    );
    body.insert("points".into(), json!(data.buckets.len()));
    body.insert("series".into(), series_json(&data.buckets));
    body.insert("actions".into(), Value::Array(actions));
    Ok(Json(Value::Object(body)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_lists_every_mode_and_policy_of_the_core() {
        let page = page();
        assert!(!page.contains("{{"), "a placeholder was left");
        for m in Mode::ALL {
            assert!(page.contains(&format!("<option value=\"{}\"", m.as_str())));
            assert!(page.contains(m.description()));
        }
        for p in Policy::CHOICES {
            assert!(page.contains(&format!("<option value=\"{}\"", p.as_str())));
        }
    }
}
