//! `/v1/cluster` and `/v1/archive` (admin): the gateways, the manifest's version and the
//! archive's catalogue.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};

use crate::auth::Action;
use crate::http::auth::{Caller, Resource};
use crate::http::error::ApiError;
use crate::service::{self, AppState};
use segment_writer::manifest::catalogue::{self, CatalogueCache};

use crate::wire::{
    ArchiveFile, ArchiveList, ArchiveQuery, ClusterInfo, ErrorBody, GatewayInfo, TimerCounts,
};

/// The gateways (this one, and the sequencer), the manifest's version and the store.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses((status = 200, description = "The cluster", body = ClusterInfo)),
    security(("bearer" = [])))]
pub(crate) async fn cluster(
    State(st): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<ClusterInfo>, ApiError> {
    caller.require(Action::Admin, Resource::Cluster)?;
    let s = st.node.state();
    let me = st.node.settings();
    let mut gateways = vec![GatewayInfo {
        gateway: me.gateway_id.clone(),
        address: me.address.clone(),
        sequencer: s
            .sequencer
            .as_ref()
            .is_some_and(|q| q.gateway == me.gateway_id),
    }];
    if let Some(q) = s.sequencer.as_ref().filter(|q| q.gateway != me.gateway_id) {
        gateways.push(GatewayInfo {
            gateway: q.gateway.clone(),
            address: q.address.clone(),
            sequencer: true,
        });
    }
    let (inline, spilled) = s.timer_counts();
    Ok(Json(ClusterInfo {
        manifest_version: s.version,
        gateways,
        store: st.store_url.clone(),
        sequencer_epoch: s.sequencer.as_ref().map(|q| q.epoch),
        delayed_messages: TimerCounts {
            inline: inline as u64,
            spilled: spilled as u64,
            spill_objects: s.spilled_timers.len() as u64,
        },
        inline_segments: s.inline_segments.len() as u64,
    }))
}

/// Files of the archive listed per page of `limit`.
const DEFAULT_ARCHIVE_PAGE: u32 = 1000;
const MAX_ARCHIVE_PAGE: u32 = 10_000;

/// The archive's catalogue, a page at a time: Parquet files with their queue, offsets and
/// publish times.
#[utoipa::path(get, path = "/v1/archive", tag = "cluster", params(ArchiveQuery),
    responses(
        (status = 200, description = "A page of files", body = ArchiveList),
        (status = 400, description = "Bad query, topic name, limit or page token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn archive(
    State(st): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<ArchiveQuery>, QueryRejection>,
) -> Result<Json<ArchiveList>, ApiError> {
    caller.require(Action::Admin, Resource::Archive)?;
    let Query(q) = q.map_err(|e| ApiError::bad(format!("bad query: {e}")))?;
    if let Some(t) = &q.topic {
        service::check_name("topic", t, 127)?;
    }
    let limit = q.limit.unwrap_or(DEFAULT_ARCHIVE_PAGE);
    if !(1..=MAX_ARCHIVE_PAGE).contains(&limit) {
        return Err(ApiError::bad(format!(
            "limit must be 1..={MAX_ARCHIVE_PAGE}"
        )));
    }
    let after = q.after.as_deref().map(page_token::decode).transpose()?;
    let wanted = |t: &str| q.topic.as_deref().is_none_or(|w| w == t);
    // The wanted part of the catalogue; older files are in catalogue objects, read here.
    let archive = {
        let s = st.node.state();
        let mut a = s.archive.clone();
        a.queues.retain(|t, _| wanted(t));
        a.detached.retain(|d| wanted(&d.topic));
        a.detached_runs.retain(|d| wanted(&d.topic));
        a
    };
    let cache = CatalogueCache::new(16 * 1024 * 1024);
    let (page, next) = catalogue::list_page(
        st.node.store(),
        &cache,
        &archive,
        after.as_ref(),
        limit as usize,
    )
    .await?;
    let files = page
        .into_iter()
        .map(|(topic, queue, f)| ArchiveFile {
            path: f.path,
            topic,
            queue,
            min_offset: f.min_offset,
            max_offset: f.max_offset,
            min_time_ms: f.min_time_ms,
            max_time_ms: f.max_time_ms,
            rows: f.rows,
            bytes: f.bytes,
        })
        .collect();
    Ok(Json(ArchiveList {
        files,
        next: next.as_ref().map(page_token::encode),
    }))
}

/// `next`/`after` of `/v1/archive`: the position where a page ended, as URL-safe base64 of
/// its JSON. Opaque to clients; one that does not decode is refused as a bad request.
mod page_token {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use segment_writer::manifest::catalogue::ListPosition;

    use crate::http::error::ApiError;

    pub(super) fn encode(p: &ListPosition) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(p).expect("a position serializes"))
    }

    pub(super) fn decode(token: &str) -> Result<ListPosition, ApiError> {
        URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| ApiError::bad("after is not a page token of /v1/archive"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_token_round_trips_and_garbage_is_refused() {
            let p = ListPosition {
                detached: true,
                topic: "orders".into(),
                queue: 3,
                min_offset: 42,
                path: "archive/topic=orders/x.parquet".into(),
            };
            assert_eq!(decode(&encode(&p)).expect("decodes"), p);
            for bad in ["", "!!", "e30", "bm90IGpzb24"] {
                assert!(decode(bad).is_err(), "{bad} was accepted");
            }
        }
    }
}
