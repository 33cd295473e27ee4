//! `/v1/topics/{topic}/messages…`: publish, pull from a queue, lookup by id or key, cancel a
//! delayed message, a message's trace.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{MessageOut, MessagesOut, TopicMessagePath, TopicPath, TopicQueuePath, body_bytes};
use crate::auth::Action;
use crate::http::auth::{Caller, Resource};
use crate::http::error::ApiError;
use crate::service::{AppState, lookup, publish as publishing, trace};
use crate::wire::{
    ErrorBody, KeyQuery, Message, Messages, PublishRequest, PublishResponse, PullQuery, Trace,
};

/// The query, else 400.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad(format!("bad query: {e}")))
}

/// Publish messages; a 200 means every one is durable in the object store.
#[utoipa::path(post, path = "/v1/topics/{topic}/messages", tag = "messages", params(TopicPath),
    request_body = PublishRequest,
    responses(
        (status = 200, description = "One result per message, in order", body = PublishResponse),
        (status = 400, description = "Malformed body or message", body = ErrorBody),
        (status = 404, description = "TopicNotFound", body = ErrorBody),
        (status = 413, description = "A message, its properties or the request too large, or more than 1,000 messages", body = ErrorBody),
        (status = 422, description = "MessageTypeMismatch: a message that does not fit the topic's type", body = ErrorBody),
        (status = 429, description = "Too many publishes in flight on this gateway", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn publish(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(topic): Path<String>,
    body: Body,
) -> Result<Json<PublishResponse>, ApiError> {
    caller.require(Action::Pub, Resource::Topic(&topic))?;
    let raw = body_bytes(&st, body).await?;
    Ok(Json(publishing::publish(&st, &topic, raw).await?))
}

/// Read one queue from an offset (a stream read; long-polls up to `wait_ms`).
#[utoipa::path(get, path = "/v1/topics/{topic}/queues/{queue}/messages", tag = "messages",
    params(TopicQueuePath, PullQuery),
    responses(
        (status = 200, description = "Messages and `next_offset`", body = Messages),
        (status = 400, description = "Bad queue or query", body = ErrorBody),
        (status = 404, description = "TopicNotFound", body = ErrorBody),
        (status = 429, description = "Too many long-polls waiting on this gateway", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn pull(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path((topic, queue)): Path<(String, String)>,
    q: Result<Query<PullQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Action::Sub, Resource::Topic(&topic))?;
    let pulled = lookup::pull(&st, &topic, &queue, query(q)?).await?;
    Ok(Json(MessagesOut {
        messages: pulled.messages.iter().map(MessageOut::of).collect(),
        next_offset: Some(pulled.next_offset),
        ack_results: Vec::new(),
    })
    .into_response())
}

/// Find messages by key within a publish-time window.
#[utoipa::path(get, path = "/v1/topics/{topic}/messages", tag = "messages",
    params(TopicPath, KeyQuery),
    responses(
        (status = 200, description = "The messages found", body = Messages),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 404, description = "TopicNotFound", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn lookup_by_key(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(topic): Path<String>,
    q: Result<Query<KeyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Action::Sub, Resource::Topic(&topic))?;
    let found = lookup::by_key(&st, &topic, query(q)?).await?;
    Ok(Json(MessagesOut {
        messages: found.iter().map(MessageOut::of).collect(),
        next_offset: None,
        ack_results: Vec::new(),
    })
    .into_response())
}

/// A visible message by id.
#[utoipa::path(get, path = "/v1/topics/{topic}/messages/{message_id}", tag = "messages",
    params(TopicMessagePath),
    responses(
        (status = 200, description = "The message", body = Message),
        (status = 404, description = "TopicNotFound or MessageNotFound", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn lookup_message(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path((topic, message_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require(Action::Sub, Resource::Topic(&topic))?;
    let m = lookup::message(&st, &topic, &message_id).await?;
    Ok(Json(MessageOut::of(&m)).into_response())
}

/// Cancel a delayed message not yet due.
#[utoipa::path(delete, path = "/v1/topics/{topic}/messages/{message_id}", tag = "messages",
    params(TopicMessagePath),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 404, description = "TopicNotFound or MessageNotFound", body = ErrorBody),
        (status = 409, description = "Already due (visible)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn cancel_message(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path((topic, message_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::Pub, Resource::Topic(&topic))?;
    lookup::cancel(&st, &topic, &message_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A message's life as the manifest recorded it (the delivery ledger), oldest event first:
/// publish (or half and decision, or schedule and due or cancel), then per group deliveries,
/// acks, nacks, lease expiries, dead-lettering and re-drives. Kept for the topic's retention,
/// also after the manifest log that decided them was collected.
#[utoipa::path(get, path = "/v1/topics/{topic}/messages/{message_id}/trace", tag = "messages",
    params(TopicMessagePath),
    responses(
        (status = 200, description = "The events, in time order", body = Trace),
        (status = 404, description = "TopicNotFound or MessageNotFound", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn trace_message(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path((topic, message_id)): Path<(String, String)>,
) -> Result<Json<Trace>, ApiError> {
    caller.require(Action::Sub, Resource::Topic(&topic))?;
    Ok(Json(trace::trace(&st, &topic, &message_id).await?))
}
