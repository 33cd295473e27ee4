//! `/v1/transactions/{id}` and `/v1/producer-groups/…`: decisions on half messages, check-back
//! settings, instance registration and polling for checks.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};

use super::{InstancePath, ProducerGroupPath, TransactionPath, json_body};
use crate::auth::Action;
use crate::http::auth::{Caller, Resource};
use crate::http::error::ApiError;
use crate::service::{AppState, transactions};
use crate::wire::{
    Checks, ChecksRequest, DecisionRequest, DecisionResponse, ErrorBody, InstanceInfo,
    InstanceRequest, ProducerGroupInfo, ProducerGroupRequest, TransactionInfo,
};

/// Commit or roll back a transaction (the same decision again is idempotent).
#[utoipa::path(post, path = "/v1/transactions/{transaction_id}", tag = "transactions",
    params(TransactionPath), request_body = DecisionRequest,
    responses(
        (status = 200, description = "The transaction's state", body = DecisionResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 404, description = "TransactionNotFound", body = ErrorBody),
        (status = 409, description = "Contradicts an earlier decision", body = ErrorBody),
        (status = 413, description = "Request too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn decide(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(transaction_id): Path<String>,
    body: Body,
) -> Result<Json<DecisionResponse>, ApiError> {
    let b: DecisionRequest = json_body(&st, body).await?;
    // The permission is on the transaction's producer group, known from the manifest.
    let producer_group = transactions::producer_group_of(&st, &transaction_id).await?;
    caller.require(Action::Pub, Resource::Producer(&producer_group))?;
    let state = transactions::decide(&st, &transaction_id, b.action).await?;
    Ok(Json(DecisionResponse { state }))
}

/// A transaction's state (an extension of API.md, for producers that lost track).
#[utoipa::path(get, path = "/v1/transactions/{transaction_id}", tag = "transactions",
    params(TransactionPath),
    responses(
        (status = 200, description = "The state", body = TransactionInfo),
        (status = 404, description = "TransactionNotFound", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn get_transaction(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(transaction_id): Path<String>,
) -> Result<Json<TransactionInfo>, ApiError> {
    let info = transactions::transaction(&st, &transaction_id).await?;
    caller.require(Action::Pub, Resource::Producer(&info.producer_group))?;
    Ok(Json(info))
}

/// Set a producer group's check-back timing.
#[utoipa::path(put, path = "/v1/producer-groups/{group}", tag = "transactions",
    params(ProducerGroupPath), request_body = Option<ProducerGroupRequest>,
    responses(
        (status = 200, description = "The settings now", body = ProducerGroupInfo),
        (status = 400, description = "Malformed body or bad name", body = ErrorBody),
        (status = 413, description = "Request too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn put_producer_group(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(group): Path<String>,
    body: Body,
) -> Result<Json<ProducerGroupInfo>, ApiError> {
    caller.require(Action::Pub, Resource::Producer(&group))?;
    crate::service::check_name("producer group", &group, 120)?;
    let b: ProducerGroupRequest = json_body(&st, body).await?;
    Ok(Json(transactions::configure(&st, &group, b).await?))
}

/// Register (or renew) a producer instance's check-back URL.
#[utoipa::path(put, path = "/v1/producer-groups/{group}/instances/{instance}", tag = "transactions",
    params(InstancePath), request_body = InstanceRequest,
    responses(
        (status = 200, description = "Registered", body = InstanceInfo),
        (status = 400, description = "Malformed body, bad name or URL", body = ErrorBody),
        (status = 413, description = "Request too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn put_producer_instance(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path((group, instance)): Path<(String, String)>,
    body: Body,
) -> Result<Json<InstanceInfo>, ApiError> {
    caller.require(Action::Pub, Resource::Producer(&group))?;
    crate::service::check_name("producer group", &group, 120)?;
    crate::service::check_name("instance", &instance, 120)?;
    let b: InstanceRequest = json_body(&st, body).await?;
    let ttl_ms = transactions::register(&st, &group, &instance, b).await?;
    Ok(Json(InstanceInfo {
        producer_group: group,
        instance,
        ttl_ms,
    }))
}

/// Claim due check-backs of a producer group (long-polls up to `wait_ms`).
#[utoipa::path(post, path = "/v1/producer-groups/{group}/checks", tag = "transactions",
    params(ProducerGroupPath), request_body = Option<ChecksRequest>,
    responses(
        (status = 200, description = "Checks to answer with a decision", body = Checks),
        (status = 400, description = "Malformed body or bad name", body = ErrorBody),
        (status = 413, description = "Request too large", body = ErrorBody),
        (status = 429, description = "Too many long-polls waiting on this gateway", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn poll_checks(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(group): Path<String>,
    body: Body,
) -> Result<Json<Checks>, ApiError> {
    caller.require(Action::Pub, Resource::Producer(&group))?;
    crate::service::check_name("producer group", &group, 120)?;
    let b: ChecksRequest = json_body(&st, body).await?;
    let checks = transactions::poll_checks(&st, &group, b).await?;
    Ok(Json(Checks { checks }))
}
