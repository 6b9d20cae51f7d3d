//! The OpenAPI document, generated: `utoipa` reads the `#[utoipa::path]` of every handler and
//! the shapes of `schema.rs`; this module assembles them, writes the schemas that come from
//! other crates' lists (modes, policies and their words from the core, config fields from its
//! table, systemd's strategies and managers), and gives every per-unit route its twin under
//! `/api/autoscaler/units/{unit}`. It serves what it built, once, as JSON.
//!
//! It describes; it must not decide anything. Which routes exist is the router's business:
//! `tests/api.rs` checks that every route is in the document and nothing else is, and
//! `tests/openapi.rs` that the document is valid and that real answers match it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use autoscaler_core::config::FIELDS;
use autoscaler_core::forecast::Model;
use autoscaler_core::trend::Trend;
use autoscaler_core::{Action, Mode, Policy, Status, TriggerType, manual};
use autoscaler_systemd::{Bus, Strategy};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, LicenseBuilder, PathItem, Ref, RefOr, Required, ServerBuilder,
};
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use super::schema;

/// The tag of the operations on the default unit; each gets a twin for any unit.
const DEFAULT_UNIT: &str = "default unit";
const ANY_UNIT: &str = "any unit";

#[derive(OpenApi)]
#[openapi(
    paths(
        super::status,
        super::metrics,
        super::history,
        super::get_config,
        super::put_config,
        super::prediction,
        super::set_mode,
        super::set_policy,
        super::scale,
        super::units,
        openapi,
        super::prometheus::metrics,
        super::healthz,
        super::dashboard::metrics_history,
        super::dashboard::index,
        super::dashboard::config_fields,
        super::dashboard::asset,
    ),
    components(
        schemas(
            ModeName,
            PolicyName,
            schema::ErrorBody,
            schema::UnavailableError,
            schema::UnknownUnitError,
            schema::ApplyFailedError,
            schema::RateLimitedError,
        ),
        responses(
            schema::BadRequest,
            schema::Unauthorized,
            UnknownUnit,
            schema::TooLarge,
            schema::UnsupportedMediaType,
            schema::Unavailable,
            schema::RateLimited,
            schema::ApplyFailed,
        )
    ),
    modifiers(&Assemble)
)]
struct Doc;

/// The document as served, built once.
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        // Serialising types made of strings, numbers and maps cannot fail; should it, the
        // answer says so rather than the daemon stopping.
        serde_json::to_string_pretty(&document())
            .unwrap_or_else(|e| format!("{{\"error\": \"the OpenAPI document: {e}\"}}"))
    })
}

/// The document: what `utoipa` derived, assembled by [`Assemble`].
pub fn document() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/autoscaler/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1.", body = Object)),
)]
pub(super) async fn openapi() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

struct Assemble;

impl Modify for Assemble {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.info = InfoBuilder::new()
            .title("autoscaler")
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(
                "A vertical autoscaler for systemd services: the spec's `/api/autoscaler/*` \
                 endpoints, the same endpoints for any managed unit under \
                 `/api/autoscaler/units/{unit}/`, and Prometheus `/metrics`. POST and PUT \
                 bodies must be sent as `Content-Type: application/json` (415 otherwise). When \
                 the daemon has a token, every POST and PUT needs `Authorization: Bearer \
                 <token>` (401 otherwise); GETs never do.",
            ))
            .license(Some(
                LicenseBuilder::new()
                    .name(env!("CARGO_PKG_LICENSE"))
                    .identifier(Some(env!("CARGO_PKG_LICENSE")))
                    .build(),
            ))
            .build();
        doc.servers = Some(vec![
            ServerBuilder::new().url("http://127.0.0.1:8888").build(),
        ]);
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Needed on POST and PUT when the daemon runs with a token.",
                    ))
                    .build(),
            ),
        );
        twin_unit_paths(&mut doc.paths);
    }
}

/// Every operation tagged [`DEFAULT_UNIT`] is served again under
/// `/api/autoscaler/units/{unit}` for the unit named in the path (the router nests the same
/// handlers there); its twin follows it, so the two read side by side.
fn twin_unit_paths(paths: &mut utoipa::openapi::Paths) {
    let old = std::mem::take(&mut paths.paths);
    for (path, item) in old {
        let twin = is_default_unit(&item)
            .then(|| path.strip_prefix("/api/autoscaler/"))
            .flatten()
            .map(|rest| {
                (
                    format!("/api/autoscaler/units/{{unit}}/{rest}"),
                    unit_twin(&item),
                )
            });
        paths.paths.insert(path, item);
        if let Some((p, i)) = twin {
            paths.paths.insert(p, i);
        }
    }
}

fn operations_mut(
    item: &mut PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn is_default_unit(item: &PathItem) -> bool {
    let mut item = item.clone();
    operations_mut(&mut item).any(|op| {
        op.tags
            .as_ref()
            .is_some_and(|t| t.iter().any(|t| t == DEFAULT_UNIT))
    })
}

fn unit_twin(item: &PathItem) -> PathItem {
    let mut twin = item.clone();
    for op in operations_mut(&mut twin) {
        op.operation_id = op.operation_id.as_ref().map(|id| format!("{id}OfUnit"));
        op.summary = op
            .summary
            .as_ref()
            .map(|s| format!("{s} For the unit named in the path."));
        if let Some(tags) = &mut op.tags {
            for t in tags.iter_mut().filter(|t| *t == DEFAULT_UNIT) {
                *t = ANY_UNIT.to_string();
            }
        }
    }
    twin.parameters = Some(vec![RefOr::T(unit_parameter())]);
    twin
}

fn unit_parameter() -> Parameter {
    ParameterBuilder::new()
        .name("unit")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("A managed systemd unit, e.g. `autocoder-ui.service`."))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255)),
        ))
        .build()
}

/// A schema written by hand, named in the components (by default as its type).
macro_rules! named {
    ($ty:ident) => {
        named!($ty = stringify!($ty));
    };
    ($ty:ident = $name:expr) => {
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

/// A closed vocabulary: a string schema listing `words`, named `name` in the components.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $ty:ident = $name:literal, $words:expr, $description:expr) => {
        $(#[$doc])*
        pub struct $ty;
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                let description: Option<String> = $description;
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some($words))
                    .description(description)
                    .into()
            }
        }
        named!($ty = $name);
    };
}

vocabulary!(
    /// The core's modes, with the words every front shows.
    ModeName = "Mode",
    Mode::ALL.map(Mode::as_str),
    Some(Mode::summary())
);
vocabulary!(
    /// Every policy a user can choose, with what it sets, from the core's bundles.
    PolicyName = "Policy",
    Policy::CHOICES.map(Policy::as_str),
    Some(Policy::summary())
);
vocabulary!(
    /// What set an action off.
    TriggerName = "TriggerType",
    TriggerType::ALL.iter().map(|t| t.as_str()),
    Some(words(TriggerType::ALL.iter().map(|t| t.as_str())))
);
vocabulary!(
    ActionName = "Action",
    Action::ALL.iter().map(|a| a.as_str()),
    Some(words(Action::ALL.iter().map(|a| a.as_str())))
);
vocabulary!(
    /// How an action ended.
    StatusName = "HistoryStatus",
    Status::ALL.iter().map(|s| s.as_str()),
    None
);
vocabulary!(
    BusName = "Manager",
    Bus::NAMES,
    Some("Which systemd manager the unit belongs to.".to_string())
);
vocabulary!(
    StrategyName = "Strategy",
    Strategy::NAMES,
    Some("How limits are applied.".to_string())
);
vocabulary!(
    ForecastModel = "ForecastModel",
    Model::ALL.map(Model::as_str),
    Some(
        "The model chosen at this horizon by its recent error; regression: the least-squares \
         line, shown before the online models have seen the series."
            .to_string()
    )
);
vocabulary!(TrendName = "Trend", Trend::ALL.map(Trend::as_str), None);
vocabulary!(
    /// The mode a failed apply leaves the unit in.
    DisabledMode = "DisabledMode",
    [Mode::Disabled.as_str()],
    None
);

fn words<'a>(w: impl Iterator<Item = &'a str>) -> String {
    w.collect::<Vec<_>>().join(", ")
}

/// A config field's schema, from the core's table: its type, range and doc.
fn field_schemas() -> Vec<(String, RefOr<Schema>)> {
    let mut out: Vec<(String, RefOr<Schema>)> = vec![
        (
            "mode".into(),
            Ref::from_schema_name(ModeName::name()).into(),
        ),
        (
            "policy".into(),
            Ref::from_schema_name(PolicyName::name()).into(),
        ),
    ];
    for f in FIELDS {
        out.push((
            f.name.into(),
            ObjectBuilder::new()
                .schema_type(if f.integer {
                    Type::Integer
                } else {
                    Type::Number
                })
                .minimum(Some(f.min))
                .maximum(Some(f.max))
                .description(Some(f.doc.trim()))
                .into(),
        ));
    }
    out.push((
        "predictive".into(),
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .description(Some(
                "Scale up before a breach when the forecast's upper bound crosses the threshold.",
            ))
            .into(),
    ));
    out
}

/// The configuration in force: every field, always.
pub struct Config;

impl PartialSchema for Config {
    fn schema() -> RefOr<Schema> {
        let mut o =
            ObjectBuilder::new().additional_properties(Some(AdditionalProperties::FreeForm(false)));
        for (name, s) in field_schemas() {
            o = o.property(name.clone(), s).required(name);
        }
        o.into()
    }
}

named!(Config);

/// A config change: any subset of the fields.
pub struct ConfigUpdate;

impl PartialSchema for ConfigUpdate {
    fn schema() -> RefOr<Schema> {
        let mut o = ObjectBuilder::new()
            .min_properties(Some(1))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .description(Some(
                "Any subset of the configuration's fields. Checked whole (ranges, scale-down \
                 below scale-up, min not above max, bounds feasible on this host) and applied \
                 atomically: one bad field changes nothing. A `policy` here is applied first, \
                 so explicit fields in the same request override its bundle. The loop uses the \
                 new values from its next check.",
            ));
        for (name, s) in field_schemas() {
            o = o.property(name, s);
        }
        o.into()
    }
}

named!(ConfigUpdate);

/// `POST scale`: at least one limit, which the derive cannot say, hence written here.
pub struct ScaleRequest;

impl PartialSchema for ScaleRequest {
    fn schema() -> RefOr<Schema> {
        let integer = |d: Option<&str>| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .description(d)
        };
        let fields = ObjectBuilder::new()
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .property("cpu_quota", integer(Some("Percent of one core.")))
            .property(
                "memory_max",
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .exclusive_minimum(Some(0))
                    .maximum(Some(manual::MAX_MEMORY_GIB))
                    .description(Some("GiB.")),
            )
            .property("tasks_max", integer(None))
            .property(
                "reason",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(manual::MAX_REASON_CHARS)),
            );
        let mut one_of_them = AnyOfBuilder::new();
        for limit in ["cpu_quota", "memory_max", "tasks_max"] {
            one_of_them = one_of_them.item(ObjectBuilder::new().required(limit));
        }
        AllOfBuilder::new()
            .description(Some(
                "Limits to set (unset ones keep their value); switches the unit to manual \
                 mode. Each must lie in the unit's `bounds` (see status).",
            ))
            .item(fields)
            .item(one_of_them)
            .into()
    }
}

named!(ScaleRequest);

/// `[min, max]` of a limit.
pub struct Range;

impl PartialSchema for Range {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::Number))
            .min_items(Some(2))
            .max_items(Some(2))
            .description(Some("[min, max]"))
            .into()
    }
}

named!(Range);

/// A 404: no such unit (with the managed ones), or no such endpoint.
pub struct UnknownUnit;

impl<'r> ToResponse<'r> for UnknownUnit {
    fn response() -> (&'r str, RefOr<Response>) {
        let either = AnyOfBuilder::new()
            .item(Ref::from_schema_name(schema::UnknownUnitError::name()))
            .item(Ref::from_schema_name(schema::ErrorBody::name()));
        (
            "UnknownUnit",
            ResponseBuilder::new()
                .description("No such unit is managed by this daemon (or no such endpoint).")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(either)).build(),
                )
                .into(),
        )
    }
}

/// What any request on a unit can get besides its answer: a bad request (an invalid unit
/// name, a bad query) and an unknown unit.
pub struct UnitErrors;

impl IntoResponses for UnitErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        references(&[
            ("400", schema::BadRequest::response().0),
            ("404", UnknownUnit::response().0),
        ])
    }
}

/// What any request with a body can get as well: no token, too large, not JSON.
pub struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut r = UnitErrors::responses();
        r.extend(references(&[
            ("401", schema::Unauthorized::response().0),
            ("413", schema::TooLarge::response().0),
            ("415", schema::UnsupportedMediaType::response().0),
        ]));
        r
    }
}

/// Status codes pointing at the response components of these names.
fn references(r: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    r.iter()
        .map(|(status, name)| (status.to_string(), Ref::from_response_name(*name).into()))
        .collect()
}
