//! `/v1/topics`, `/v1/topics/{topic}`: topic definitions (admin).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use segment_writer::manifest::TopicDef;

use super::{TopicPath, json_body};
use crate::auth::Action;
use crate::http::auth::{Caller, Resource};
use crate::http::error::ApiError;
use crate::service::{self, AppState, definitions};
use crate::wire::{CreateTopicRequest, ErrorBody, TopicInfo, TopicList};

/// A topic's definition as the API shows it.
pub(crate) fn topic_info(name: &str, def: &TopicDef) -> TopicInfo {
    TopicInfo {
        topic: name.to_string(),
        kind: definitions::topic_type(def.kind),
        queues: def.queues,
        retention_hours: def.retention_hours,
        messages: None,
        queue_stats: None,
    }
}

/// Create a topic (201), or confirm an identical definition (200).
#[utoipa::path(put, path = "/v1/topics/{topic}", tag = "topics", params(TopicPath),
    request_body = Option<CreateTopicRequest>,
    responses(
        (status = 201, description = "Created", body = TopicInfo),
        (status = 200, description = "An identical definition existed", body = TopicInfo),
        (status = 400, description = "Malformed body, bad or reserved (`DLQ.`) name", body = ErrorBody),
        (status = 409, description = "A different definition exists", body = ErrorBody),
        (status = 413, description = "Request too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn put_topic(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(topic): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<TopicInfo>), ApiError> {
    caller.require(Action::Admin, Resource::Topic(&topic))?;
    service::check_name("topic", &topic, 127)?;
    service::reserved("topic", &topic)?;
    let b: CreateTopicRequest = json_body(&st, body).await?;
    let (created, def) = definitions::define_topic(&st, &topic, b).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(topic_info(&topic, &def))))
}

/// Every topic with its readable messages.
#[utoipa::path(get, path = "/v1/topics", tag = "topics",
    responses((status = 200, description = "The topics", body = TopicList)),
    security(("bearer" = [])))]
pub(crate) async fn list_topics(
    State(st): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<TopicList>, ApiError> {
    caller.require(Action::Admin, Resource::Topics)?;
    let topics = definitions::topics(&st)
        .into_iter()
        .map(|(name, def, messages)| TopicInfo {
            messages: Some(messages),
            ..topic_info(&name, &def)
        })
        .collect();
    Ok(Json(TopicList { topics }))
}

/// A topic's definition and its queues' offsets.
#[utoipa::path(get, path = "/v1/topics/{topic}", tag = "topics", params(TopicPath),
    responses(
        (status = 200, description = "The definition with `queue_stats`", body = TopicInfo),
        (status = 404, description = "TopicNotFound", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn get_topic(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(topic): Path<String>,
) -> Result<Json<TopicInfo>, ApiError> {
    caller.require(Action::Admin, Resource::Topic(&topic))?;
    let (def, stats) = definitions::topic(&st, &topic).await?;
    Ok(Json(TopicInfo {
        queue_stats: Some(stats),
        ..topic_info(&topic, &def)
    }))
}

/// Delete a topic.
#[utoipa::path(delete, path = "/v1/topics/{topic}", tag = "topics", params(TopicPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "TopicNotFound", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn delete_topic(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(topic): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::Admin, Resource::Topic(&topic))?;
    definitions::delete_topic(&st, &topic).await?;
    Ok(StatusCode::NO_CONTENT)
}
