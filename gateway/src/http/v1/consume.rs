//! `/v1/groups/{group}/{receive,ack,nack,invisibility}`: consuming with leases.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::{GroupPath, MessageOut, MessagesOut, json_body};
use crate::auth::Action;
use crate::http::auth::{Caller, Resource};
use crate::http::error::ApiError;
use crate::service::{AppState, consume};
use crate::wire::{
    AckRequest, ErrorBody, InvisibilityRequest, InvisibilityResponse, Messages, ReceiveRequest,
    SettleRequest, SettleResponse,
};

/// Lease visible messages (long-polls up to `wait_ms` while none is).
#[utoipa::path(post, path = "/v1/groups/{group}/receive", tag = "consume", params(GroupPath),
    request_body = Option<ReceiveRequest>,
    responses(
        (status = 200, description = "Messages with `delivery_attempt` and `receipt_handle`", body = Messages),
        (status = 400, description = "Malformed body; no `consumer` in broadcast mode", body = ErrorBody),
        (status = 404, description = "GroupNotFound", body = ErrorBody),
        (status = 409, description = "A push group: its messages are pushed, not received", body = ErrorBody),
        (status = 413, description = "Request too large", body = ErrorBody),
        (status = 429, description = "The group's in-flight cap, or too many long-polls", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn receive(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(group): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Action::Sub, Resource::Group(&group))?;
    let b: ReceiveRequest = json_body(&st, body).await?;
    let received = consume::receive(&st, &group, b).await?;
    let messages = received
        .deliveries
        .iter()
        .map(|d| {
            let mut m = MessageOut::of(&d.message);
            m.delivery_attempt = Some(d.attempt);
            m.receipt_handle = Some(&d.receipt_handle);
            m
        })
        .collect();
    Ok(Json(MessagesOut {
        messages,
        next_offset: None,
        ack_results: received.ack_results,
    })
    .into_response())
}

/// Acknowledge received messages: one result per handle.
#[utoipa::path(post, path = "/v1/groups/{group}/ack", tag = "consume", params(GroupPath),
    request_body = AckRequest,
    responses(
        (status = 200, description = "`ok`, or `ReceiptExpired` / `InvalidReceipt` per handle", body = SettleResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 404, description = "GroupNotFound", body = ErrorBody),
        (status = 413, description = "Request too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn ack(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(group): Path<String>,
    body: Body,
) -> Result<Json<SettleResponse>, ApiError> {
    caller.require(Action::Sub, Resource::Group(&group))?;
    let b: AckRequest = json_body(&st, body).await?;
    let results = consume::ack(&st, &group, b.receipt_handles).await?;
    Ok(Json(SettleResponse { results }))
}

/// Give received messages back, redelivered after `delay_ms` (default: the group's backoff).
#[utoipa::path(post, path = "/v1/groups/{group}/nack", tag = "consume", params(GroupPath),
    request_body = SettleRequest,
    responses(
        (status = 200, description = "`ok`, or `ReceiptExpired` / `InvalidReceipt` per handle", body = SettleResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 404, description = "GroupNotFound", body = ErrorBody),
        (status = 413, description = "Request too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn nack(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(group): Path<String>,
    body: Body,
) -> Result<Json<SettleResponse>, ApiError> {
    caller.require(Action::Sub, Resource::Group(&group))?;
    let b: SettleRequest = json_body(&st, body).await?;
    let results = consume::nack(&st, &group, b.receipt_handles, b.delay_ms).await?;
    Ok(Json(SettleResponse { results }))
}

/// Change a lease's invisibility: the new handle.
#[utoipa::path(post, path = "/v1/groups/{group}/invisibility", tag = "consume", params(GroupPath),
    request_body = InvisibilityRequest,
    responses(
        (status = 200, description = "The handle that now holds the lease", body = InvisibilityResponse),
        (status = 400, description = "Malformed body, InvalidReceipt or ReceiptExpired", body = ErrorBody),
        (status = 404, description = "GroupNotFound", body = ErrorBody),
        (status = 413, description = "Request too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn invisibility(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(group): Path<String>,
    body: Body,
) -> Result<Json<InvisibilityResponse>, ApiError> {
    caller.require(Action::Sub, Resource::Group(&group))?;
    let b: InvisibilityRequest = json_body(&st, body).await?;
    let receipt_handle =
        consume::invisibility(&st, &group, &b.receipt_handle, b.invisible_ms).await?;
    Ok(Json(InvisibilityResponse { receipt_handle }))
}
