//! The HTTP front: the spec's `/api/autoscaler/*` endpoints, the per-unit paths, health,
//! Prometheus `/metrics`, the OpenAPI document and the dashboard.
//!
//! Handlers are thin: parse and check the shape of the input, call one [`EngineHandle`]
//! method, turn the answer into the spec's JSON. They hold no logic of their own: validation of
//! values (ranges, bounds, relations) is the core's, reached through the engine, so HTTP, MCP
//! and the CLI give the same answers and the same error messages.

pub mod body;
mod dashboard;
pub mod guard;
mod json;
pub mod openapi;
mod prometheus;
mod schema;
pub mod server;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::engine::{EngineError, EngineHandle};
use autoscaler_core::{ManualScale, UnitName};
pub use body::Body;
pub use guard::guard;
pub use json::{config_json, history_json, metrics_json, prediction_json, status_json};
pub use server::{ServerLimits, serve};

/// Settings of the HTTP front.
#[derive(Debug, Clone, Default)]
pub struct ApiSettings {
    /// When set, every request but the dashboard's static files and `/healthz` needs
    /// `Authorization: Bearer <token>` ([`guard`]).
    pub token: Option<String>,
    /// Origins allowed by CORS; none means CORS stays off.
    pub cors_origins: Vec<String>,
}

#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub settings: ApiSettings,
}

/// The whole router, without the network guard: the daemon puts [`guard`] in front of it
/// and `/mcp`; in-process callers (the `/mcp` tools, the fakes) call it directly.
pub fn router(state: AppState) -> Router {
    let unit_routes = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/prediction", get(prediction))
        .route("/history", get(history))
        .route("/config", get(get_config).put(put_config))
        .route("/mode", axum::routing::post(set_mode))
        .route("/policy", axum::routing::post(set_policy))
        .route("/scale", axum::routing::post(scale));
    let mut r = Router::new()
        .nest("/api/autoscaler", unit_routes.clone())
        .nest("/api/autoscaler/units/{unit}", unit_routes)
        .route("/api/autoscaler/units", get(units))
        .route("/api/autoscaler/openapi.json", get(openapi::openapi))
        .route("/metrics", get(prometheus::metrics))
        .merge(dashboard::routes())
        .route("/healthz", get(healthz))
        .fallback(not_found);
    if !state.settings.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = state
            .settings
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        r = r.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST, Method::PUT])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
        );
    }
    r.with_state(state)
}

/// An error as the API shows it: a status and `{"error": ..., "field": ..., "allowed": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiError {
    pub fn bad_request(
        message: impl Into<String>,
        field: Option<&str>,
        allowed: Option<&str>,
    ) -> ApiError {
        let mut body = json!({ "error": message.into() });
        if let Some(f) = field {
            body["field"] = json!(f);
        }
        if let Some(a) = allowed {
            body["allowed"] = json!(a);
        }
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let message = e.to_string();
        match e {
            EngineError::BadRequest { field, allowed, .. } => {
                ApiError::bad_request(message, field.as_deref(), allowed.as_deref())
            }
            EngineError::Unavailable { unit, reason } => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                body: json!({ "error": message, "unit": unit, "reason": reason }),
            },
            EngineError::UnknownUnit { unit, managed } => ApiError {
                status: StatusCode::NOT_FOUND,
                body: json!({ "error": message, "unit": unit, "managed_units": managed }),
            },
            EngineError::ApplyFailed { history_id, .. } => ApiError {
                status: StatusCode::BAD_GATEWAY,
                body: json!({ "error": message, "history_id": history_id, "mode": "disabled" }),
            },
            EngineError::RateLimited {
                retry_after_secs, ..
            } => ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                body: json!({ "error": message, "retry_after_seconds": retry_after_secs }),
            },
            EngineError::StoreUnavailable { reason } => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                body: json!({ "error": message, "reason": reason }),
            },
            EngineError::Internal(_) => ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                body: json!({ "error": message }),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The unit a request addresses: `/units/{unit}/...`, or the default unit.
pub struct Target(pub UnitName);

impl FromRequestParts<AppState> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let name = match Path::<std::collections::HashMap<String, String>>::from_request_parts(
            parts, state,
        )
        .await
        {
            Ok(Path(params)) => params.get("unit").cloned(),
            // Only a route without `{unit}` means the default unit; a segment that cannot be
            // read (not UTF-8 once decoded) is a bad name, never the default unit.
            Err(PathRejection::MissingPathParams(_)) => None,
            Err(e) => {
                return Err(ApiError::bad_request(
                    format!("the unit in the path cannot be read: {}", e.body_text()),
                    Some("unit"),
                    Some("a systemd unit name such as autocoder-ui.service"),
                ));
            }
        };
        Ok(Target(state.engine.unit(name.as_deref())?))
    }
}

/// Current autoscaler state, limits, last failure, strategy and unit.
#[utoipa::path(get, path = "/api/autoscaler/status", operation_id = "getStatus", tag = "default unit",
    responses(
        (status = 200, description = "The unit's status.", body = schema::Status),
        openapi::UnitErrors,
    ))]
async fn status(State(s): State<AppState>, Target(unit): Target) -> ApiResult {
    let snap = s.engine.snapshot();
    let u = s.engine.unit_snapshot(&unit)?;
    Ok(Json(status_json(&u, &snap, &s.engine.store_state())))
}

/// The last sample of the unit's cgroup.
#[utoipa::path(get, path = "/api/autoscaler/metrics", operation_id = "getMetrics", tag = "default unit",
    responses(
        (status = 200, description = "The last sample.", body = schema::Metrics),
        (status = 503, response = schema::Unavailable),
        openapi::UnitErrors,
    ))]
async fn metrics(State(s): State<AppState>, Target(unit): Target) -> ApiResult {
    let o = s.engine.metrics(&unit)?;
    Ok(Json(metrics_json(&o)))
}

/// Phase 2/3: trends, forecasts with intervals, workload profiles and the recommended limits.
#[utoipa::path(get, path = "/api/autoscaler/prediction", operation_id = "getPrediction", tag = "default unit",
    responses(
        (status = 200, description = "The prediction: per series (cpu_cores, memory_gb, tasks, agents, features_pending) the trend and `forecast`, a list of ForecastPoint (one per horizon: 5, 15, 30 min) or null with `error` saying what is missing. Its `adaptive` member is the adaptive policy's current recommendation and chosen model per resource (null under other policies).", body = schema::Prediction),
        (status = 503, response = schema::Unavailable),
        openapi::UnitErrors,
    ))]
async fn prediction(State(s): State<AppState>, Target(unit): Target) -> ApiResult {
    let (u, p) = s.engine.prediction(&unit)?;
    Ok(Json(prediction_json(&u, &p)))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// How many rows, newest first.
    // Read as text so a bad value gets our error message, not the extractor's.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 20)]
    limit: Option<String>,
}

/// Scaling actions, newest first.
#[utoipa::path(get, path = "/api/autoscaler/history", operation_id = "getHistory", tag = "default unit",
    params(HistoryQuery),
    responses(
        (status = 200, description = "History rows, newest first.", body = Vec<schema::HistoryRow>),
        openapi::UnitErrors,
    ))]
async fn history(
    State(s): State<AppState>,
    Target(unit): Target,
    q: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| {
        ApiError::bad_request(e.body_text(), Some("limit"), Some("an integer in 1..=1000"))
    })?;
    let limit = match q.limit {
        None => 20,
        Some(text) => text.trim().parse::<u32>().map_err(|_| {
            ApiError::bad_request(
                format!("limit {text:?} is not a whole number"),
                Some("limit"),
                Some("an integer in 1..=1000"),
            )
        })?,
    };
    let rows = s.engine.history(&unit, limit).await?;
    Ok(Json(Value::Array(rows.iter().map(history_json).collect())))
}

/// The configuration in force.
#[utoipa::path(get, path = "/api/autoscaler/config", operation_id = "getConfig", tag = "default unit",
    responses(
        (status = 200, description = "The configuration.", body = openapi::Config),
        openapi::UnitErrors,
    ))]
async fn get_config(State(s): State<AppState>, Target(unit): Target) -> ApiResult {
    let u = s.engine.unit_snapshot(&unit)?;
    Ok(Json(config_json(&u.config)))
}

/// Change configuration fields, checked whole and applied atomically.
#[utoipa::path(put, path = "/api/autoscaler/config", operation_id = "putConfig", tag = "default unit",
    request_body(content = openapi::ConfigUpdate,
        example = json!({"scale_up_cpu_percent": 75, "consecutive_scale_up_checks": 2, "scale_cooldown_seconds": 120})),
    responses(
        (status = 200, description = "The new configuration.", body = openapi::Config),
        openapi::BodyErrors,
    ))]
async fn put_config(State(s): State<AppState>, Target(unit): Target, body: Body) -> ApiResult {
    let changes = body.config_changes()?;
    let c = s.engine.set_config(unit, changes).await?;
    Ok(Json(config_json(&c)))
}

/// Set the mode; also acknowledges a failure.
#[utoipa::path(post, path = "/api/autoscaler/mode", operation_id = "setMode", tag = "default unit",
    request_body(content = schema::ModeRequest, example = json!({"mode": "enabled"})),
    responses(
        (status = 200, description = "The unit's status after the change.", body = schema::Status),
        openapi::BodyErrors,
    ))]
async fn set_mode(State(s): State<AppState>, Target(unit): Target, body: Body) -> ApiResult {
    let mode = body.mode()?;
    let u = s.engine.set_mode(unit, mode).await?;
    Ok(Json(status_json(
        &u,
        &s.engine.snapshot(),
        &s.engine.store_state(),
    )))
}

/// Set the policy: applies its bundle of thresholds, streak, cooldown and factor.
#[utoipa::path(post, path = "/api/autoscaler/policy", operation_id = "setPolicy", tag = "default unit",
    request_body(content = schema::PolicyRequest, example = json!({"policy": "balanced"})),
    responses(
        (status = 200, description = "The unit's status after the change.", body = schema::Status),
        openapi::BodyErrors,
    ))]
async fn set_policy(State(s): State<AppState>, Target(unit): Target, body: Body) -> ApiResult {
    let policy = body.policy()?;
    let u = s.engine.set_policy(unit, policy).await?;
    Ok(Json(status_json(
        &u,
        &s.engine.snapshot(),
        &s.engine.store_state(),
    )))
}

/// Set limits by hand; switches to manual mode.
#[utoipa::path(post, path = "/api/autoscaler/scale", operation_id = "scale", tag = "default unit",
    request_body(content = openapi::ScaleRequest,
        example = json!({"cpu_quota": 100, "memory_max": 8, "tasks_max": 500, "reason": "Complex ML model training"})),
    responses(
        (status = 200, description = "The history row of the action.", body = schema::HistoryRow),
        (status = 429, response = schema::RateLimited),
        (status = 502, response = schema::ApplyFailed),
        (status = 503, response = schema::Unavailable),
        openapi::BodyErrors,
    ))]
async fn scale(State(s): State<AppState>, Target(unit): Target, body: Body) -> ApiResult {
    let req: ManualScale = body.scale_request()?;
    let row = s.engine.scale(unit, req).await?;
    Ok(Json(history_json(&row)))
}

/// The status of every managed unit, the default one first.
#[utoipa::path(get, path = "/api/autoscaler/units", operation_id = "listUnits", tag = "any unit",
    responses((status = 200, description = "One status per unit.", body = Vec<schema::Status>)))]
async fn units(State(s): State<AppState>) -> ApiResult {
    let snap = s.engine.snapshot();
    Ok(Json(Value::Array({
        let store = s.engine.store_state();
        snap.units
            .iter()
            .map(|u| status_json(u, &snap, &store))
            .collect()
    })))
}

/// Liveness: `ok` once the daemon serves; `degraded: <why>` (503) while the database refuses
/// its writes (they are queued and retried, and the daemon goes on).
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "meta",
    responses(
        (status = 200, description = "`ok`.", body = String, content_type = "text/plain"),
        (status = 503, description = "`degraded: ` and why.", body = String, content_type = "text/plain"),
    ))]
async fn healthz(State(s): State<AppState>) -> (StatusCode, String) {
    match s.engine.store_state().degraded() {
        None => (StatusCode::OK, "ok\n".into()),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("degraded: {why}\n"),
        ),
    }
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        body: json!({ "error": "no such endpoint; see /api/autoscaler/openapi.json" }),
    }
}
