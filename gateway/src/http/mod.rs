//! The HTTP layer: one router whose `/v1` routes and `/openapi.json` are built from the same
//! declarations. Every API handler carries a `#[utoipa::path]` and is mounted with
//! `routes!` on an [`OpenApiRouter`], so a route cannot exist without its spec entry (the
//! tests below check both directions, and compare the generated document with the committed
//! snapshot `gateway/openapi.json`).
//!
//! - [`auth`]: the [`auth::Caller`] extractor (401) and `require` (403).
//! - [`error`]: [`error::ErrorCode`] → status in one exhaustive match; the error body.
//! - [`otel`]: the request span, with the OpenTelemetry messaging attributes.
//! - [`v1`]: the handlers, by resource.
//!
//! Outside the spec, on purpose: the web console's static files (`/console…`) and the
//! gateway-to-gateway endpoint [`FORWARD_PATH`] (signed with the cluster secret, not a JWT).

pub mod auth;
pub mod error;
pub mod otel;
pub mod v1;

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use segment_writer::node::ForwardRequest;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Spec, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::forward::{FORWARD_PATH, SIGNATURE_HEADER};
use crate::service::AppState;
use crate::wire::ErrorBody;
use error::{ApiError, ErrorCode};

/// The routes that are deliberately not in the spec (see the module's doc).
pub const UNDOCUMENTED: &[&str] = &["/console", "/console/", "/console/{*path}", FORWARD_PATH];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FerryMQ",
        version = "1",
        description = "RocketMQ semantics over HTTP, durable in object storage. Generated from \
            the gateway's handlers; the prose is docs/api.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ErrorCode, ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "topics", description = "Topic definitions"),
        (name = "messages", description = "Publish, pull, lookup, cancel"),
        (name = "groups", description = "Consumer groups, offsets, dead letters"),
        (name = "consume", description = "Receive, ack, nack, invisibility"),
        (name = "transactions", description = "Transactional messages and check-backs"),
        (name = "cluster", description = "Cluster and archive (admin)"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    ),
)]
struct ApiDoc;

/// Declares the bearer scheme, and on every operation that needs a token the statuses any of
/// them can answer: 401, 403, 500 and 503 with the error body.
struct Security;

impl Modify for Security {
    fn modify(&self, spec: &mut Spec) {
        let components = spec.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Adds the statuses every secured operation can answer (see [`Security`]).
fn common_errors(spec: &mut Spec) {
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            "ErrorBody",
                        ))))
                        .build(),
                )
                .build(),
        )
    };
    for item in spec.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            if op.security.as_ref().is_none_or(|s| s.is_empty()) {
                continue;
            }
            for (status, description) in [
                ("401", "Unauthorized: no, an invalid or an expired token"),
                ("403", "Forbidden: the token does not permit this"),
                ("500", "Internal: a bug or a corrupt object"),
                (
                    "503",
                    "Unavailable: the object store or the sequencer; nothing was acknowledged",
                ),
            ] {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error(description));
            }
        }
    }
}

/// The documented routes, each with its spec entry.
fn documented() -> OpenApiRouter<Arc<AppState>> {
    use v1::{cluster, consume, groups, messages, topics, transactions};
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .routes(routes!(topics::list_topics))
        .routes(routes!(
            topics::put_topic,
            topics::get_topic,
            topics::delete_topic
        ))
        .routes(routes!(messages::publish, messages::lookup_by_key))
        .routes(routes!(messages::lookup_message, messages::cancel_message))
        .routes(routes!(messages::trace_message))
        .routes(routes!(messages::pull))
        .routes(routes!(groups::list_groups))
        .routes(routes!(
            groups::put_group,
            groups::get_group,
            groups::delete_group
        ))
        .routes(routes!(groups::reset))
        .routes(routes!(groups::redrive))
        .routes(routes!(consume::receive))
        .routes(routes!(consume::ack))
        .routes(routes!(consume::nack))
        .routes(routes!(consume::invisibility))
        .routes(routes!(transactions::decide, transactions::get_transaction))
        .routes(routes!(transactions::put_producer_group))
        .routes(routes!(transactions::put_producer_instance))
        .routes(routes!(transactions::poll_checks))
        .routes(routes!(cluster::cluster))
        .routes(routes!(cluster::archive))
}

/// The OpenAPI document this gateway serves.
pub fn spec() -> Spec {
    let mut spec = documented().split_for_parts().1;
    common_errors(&mut spec);
    spec
}

/// The served document, rendered once.
static SPEC_JSON: LazyLock<String> = LazyLock::new(|| {
    let mut text = spec()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    text.push('\n');
    text
});

/// The router: the documented routes, the console, the internal endpoint, and a 404 with the
/// error body for anything else.
pub fn router(state: Arc<AppState>) -> Router {
    let (documented, _) = documented().split_for_parts();
    documented
        .route(FORWARD_PATH, post(forward))
        .merge(crate::console::router())
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .with_state(state)
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Running", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: 200 once the manifest is caught up and the store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "Not ready", body = String, content_type = "text/plain"),
    ))]
async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    if st.ready.load(Ordering::SeqCst) && !st.node.is_stopped() && st.node.store_healthy() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

/// Prometheus metrics: the process's figures, and on the sequencer every group's backlog.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String,
        content_type = "text/plain")))]
async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let mut text = crate::metrics::render();
    if st.node.is_sequencer() {
        let now = st.node.clock().now_ms();
        let started = std::time::Instant::now();
        let snap = crate::backlog::snapshot(&st.node.state(), now);
        let locked = started.elapsed();
        text.push_str(&crate::backlog::render(&snap, st.metrics_per_queue));
        tracing::debug!(
            ?locked,
            total = ?started.elapsed(),
            bytes = text.len(),
            "backlog metrics"
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// This document (OpenAPI 3.1), generated from the handlers that serve it.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        SPEC_JSON.as_str(),
    )
        .into_response()
}

/// Gateway-to-sequencer forwarding, signed with the cluster secret.
async fn forward(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match axum::body::to_bytes(body, 256 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(ErrorCode::PayloadTooLarge, "forward too large").into_response();
        }
    };
    let sig = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !st.forward_key.verify(&bytes, sig) {
        return ApiError::new(
            ErrorCode::Unauthorized,
            "internal endpoint: bad or missing gateway signature",
        )
        .into_response();
    }
    match serde_json::from_slice::<ForwardRequest>(&bytes) {
        Ok(req) => Json(st.node.submit_forwarded(req).await).into_response(),
        Err(e) => ApiError::bad(format!("bad forward: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests;
