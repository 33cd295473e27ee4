//! `/v1/groups…`: consumer group definitions with their lag, offset resets and re-drives.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use segment_writer::manifest::{GroupDef, GroupMode, PushFormat, StartFrom};

use super::{GroupPath, json_body};
use crate::auth::Action;
use crate::http::auth::{Caller, Resource};
use crate::http::error::ApiError;
use crate::service::{self, AppState, definitions};
use crate::wire::{
    self, CreateGroupRequest, ErrorBody, GroupInfo, GroupList, NamedPosition, Position, PushInfo,
    RedriveRequest, RedriveResponse, ResetRequest, ResetResponse, Subscription,
};

/// A group's definition as the API shows it.
pub(crate) fn group_info(name: &str, def: &GroupDef) -> GroupInfo {
    GroupInfo {
        group: name.to_string(),
        subscriptions: def
            .subscriptions
            .iter()
            .map(|s| Subscription {
                topic: s.topic.clone(),
                filter: s.filter.clone(),
                sql: s.sql.clone(),
            })
            .collect(),
        mode: match def.mode {
            GroupMode::Clustering => wire::GroupMode::Clustering,
            GroupMode::Broadcast => wire::GroupMode::Broadcast,
        },
        start_from: match def.start_from {
            StartFrom::Earliest => Position::Named(NamedPosition::Earliest),
            StartFrom::Latest => Position::Named(NamedPosition::Latest),
            StartFrom::Timestamp(timestamp_ms) => Position::Timestamp { timestamp_ms },
        },
        max_retries: def.max_retries,
        invisible_ms: def.invisible_ms,
        retry_backoff_ms: def.retry_backoff_ms.clone(),
        push: def.push.as_ref().map(|p| PushInfo {
            url: p.url.clone(),
            max_in_flight: p.max_in_flight,
            rate_per_s: p.rate_per_s,
            timeout_ms: p.timeout_ms,
            format: match p.format {
                PushFormat::Binary => wire::PushFormat::Binary,
                PushFormat::Structured => wire::PushFormat::Structured,
            },
            signing_secret: None,
        }),
        push_status: None,
        lag: None,
        backlog: None,
        dead_letters: None,
    }
}

/// Create a consumer group (201), confirm an identical definition (200), or switch an
/// existing group between pull and push (200: a definition that differs only in `push`).
#[utoipa::path(put, path = "/v1/groups/{group}", tag = "groups", params(GroupPath),
    request_body = CreateGroupRequest,
    responses(
        (status = 201, description = "Created", body = GroupInfo),
        (status = 200, description = "An identical definition existed, or only `push` changed", body = GroupInfo),
        (status = 400, description = "Malformed body, bad or reserved name, bad filter, a push URL outside --push-allow", body = ErrorBody),
        (status = 404, description = "TopicNotFound: a subscribed topic does not exist", body = ErrorBody),
        (status = 409, description = "A different definition exists", body = ErrorBody),
        (status = 413, description = "Request too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn put_group(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(group): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<GroupInfo>), ApiError> {
    caller.require(Action::Admin, Resource::Group(&group))?;
    service::check_name("group", &group, 120)?;
    service::reserved("group", &group)?;
    let b: CreateGroupRequest = json_body(&st, body).await?;
    let defined = definitions::define_group(&st, &group, b).await?;
    let status = if defined.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut info = group_info(&group, &defined.def);
    if let Some(p) = info.push.as_mut() {
        p.signing_secret = defined.signing_secret;
    }
    Ok((status, Json(info)))
}

/// Every group with its backlog per topic and its dead letters.
#[utoipa::path(get, path = "/v1/groups", tag = "groups",
    responses((status = 200, description = "The groups", body = GroupList)),
    security(("bearer" = [])))]
pub(crate) async fn list_groups(
    State(st): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<GroupList>, ApiError> {
    caller.require(Action::Admin, Resource::Groups)?;
    let groups = definitions::groups(&st)
        .into_iter()
        .map(|g| GroupInfo {
            backlog: Some(g.backlog),
            dead_letters: Some(g.dead_letters),
            ..group_info(&g.name, &g.def)
        })
        .collect();
    Ok(Json(GroupList { groups }))
}

/// A group's definition and its lag per topic and queue.
#[utoipa::path(get, path = "/v1/groups/{group}", tag = "groups", params(GroupPath),
    responses(
        (status = 200, description = "The definition with `lag`", body = GroupInfo),
        (status = 404, description = "GroupNotFound", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn get_group(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(group): Path<String>,
) -> Result<Json<GroupInfo>, ApiError> {
    caller.require(Action::Sub, Resource::Group(&group))?;
    let (def, lag) = definitions::group(&st, &group).await?;
    Ok(Json(GroupInfo {
        lag: Some(lag),
        push_status: definitions::push_status(&st, &group),
        ..group_info(&group, &def)
    }))
}

/// Delete a group.
#[utoipa::path(delete, path = "/v1/groups/{group}", tag = "groups", params(GroupPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "GroupNotFound", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn delete_group(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(group): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::Admin, Resource::Group(&group))?;
    definitions::delete_group(&st, &group).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move a group's offsets on one topic.
#[utoipa::path(post, path = "/v1/groups/{group}/reset", tag = "groups", params(GroupPath),
    request_body = ResetRequest,
    responses(
        (status = 200, description = "Reset", body = ResetResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 404, description = "GroupNotFound or TopicNotFound", body = ErrorBody),
        (status = 413, description = "Request too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn reset(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(group): Path<String>,
    body: Body,
) -> Result<Json<ResetResponse>, ApiError> {
    caller.require(Action::Admin, Resource::Group(&group))?;
    let b: ResetRequest = json_body(&st, body).await?;
    definitions::reset(&st, &group, &b.topic, b.to).await?;
    Ok(Json(ResetResponse {}))
}

/// Make a group's dead letters visible to it again.
#[utoipa::path(post, path = "/v1/groups/{group}/redrive", tag = "groups", params(GroupPath),
    request_body = Option<RedriveRequest>,
    responses(
        (status = 200, description = "How many moved", body = RedriveResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 404, description = "GroupNotFound", body = ErrorBody),
        (status = 413, description = "Request too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn redrive(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    Path(group): Path<String>,
    body: Body,
) -> Result<Json<RedriveResponse>, ApiError> {
    caller.require(Action::Admin, Resource::Group(&group))?;
    let b: RedriveRequest = json_body(&st, body).await?;
    let moved = definitions::redrive(&st, &group, b.max_messages).await?;
    Ok(Json(RedriveResponse { moved }))
}
