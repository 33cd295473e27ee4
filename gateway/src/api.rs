//! The `/v1` handlers (API.md), the internal forwarding endpoint, and the operational routes.
//!
//! Every handler authenticates first (401/403), then validates (400/404/413/422) before it
//! changes anything, so a refused request leaves no state behind.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use segment_writer::manifest::backlog;
use segment_writer::manifest::index::QueueSnapshot;
use segment_writer::manifest::messaging::DEDUP_WINDOW_MS;
use segment_writer::manifest::{
    CheckDue, Command, DedupRecord, GroupDef, GroupMode, OffsetRange, Outcome, PublishMode,
    QueueOffset, ResetTarget, SettleAction, StartFrom, Subscription, TopicDef, TopicKind,
};
use segment_writer::node::{ForwardRequest, Node};
use segment_writer::segment::Message;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::{Action, Verifier};
use crate::batcher::{Batcher, Placed, PublishItem};
use crate::error::ApiError;
use crate::forward::{FORWARD_PATH, ForwardKey, SIGNATURE_HEADER};
use crate::reader::{Reader, Stored};
use crate::receipt::{Receipt, ReceiptKey};
use crate::settle::SettlePlan;

/// Request limits (API.md "Limits").
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_request_bytes: usize,
    pub max_messages_per_publish: usize,
    pub max_receive: u32,
    pub max_wait_ms: u64,
    pub max_properties_bytes: usize,
    pub max_delay_ms: i64,
    /// Leased plus retrying messages per group ([`Command::Lease`]`::max_in_flight`).
    pub max_in_flight_per_group: u32,
}

/// A long-poll's place among the bounded number of waiters (`None` for a request that does
/// not wait); beyond the bound a waiting request gets 429 at once.
fn long_poll_slot(
    st: &AppState,
    wait_ms: u64,
) -> Result<Option<tokio::sync::SemaphorePermit<'_>>, ApiError> {
    if wait_ms == 0 {
        return Ok(None);
    }
    st.long_polls.try_acquire().map(Some).map_err(|_| {
        ApiError::TooManyRequests("too many long-polls waiting on this gateway; retry later".into())
    })
}

/// Everything a handler needs.
#[derive(Debug)]
pub struct AppState {
    pub node: Node,
    pub batcher: Batcher,
    pub reader: Arc<Reader>,
    pub verifier: Verifier,
    pub receipts: ReceiptKey,
    pub forward_key: ForwardKey,
    pub limits: Limits,
    pub round_robin: AtomicU64,
    /// Bounds the long-polls waiting at once (`--max-long-polls`).
    pub long_polls: tokio::sync::Semaphore,
    /// Offsets this gateway's receives are leasing right now (`claims`).
    pub claims: Arc<crate::claims::Claims>,
    pub ready: AtomicBool,
    pub store_url: String,
    /// `--metrics-per-queue`: backlog gauges with a `queue` label.
    pub metrics_per_queue: bool,
}

impl AppState {
    /// Verifies the request's bearer token (401) and that it grants `action` on `resource`
    /// (403): the prologue of every `/v1` handler whose resource is known from its path.
    fn authorize(
        &self,
        headers: &HeaderMap,
        action: Action,
        resource: &str,
    ) -> Result<(), ApiError> {
        self.verifier.verify(headers)?.require(action, resource)
    }
}

type St = State<Arc<AppState>>;
type ApiResult = Result<Response, ApiError>;

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/topics", get(list_topics))
        .route(
            "/v1/topics/{topic}",
            put(put_topic).get(get_topic).delete(delete_topic),
        )
        .route(
            "/v1/topics/{topic}/messages",
            post(publish).get(lookup_by_key),
        )
        .route(
            "/v1/topics/{topic}/messages/{message_id}",
            get(lookup_message).delete(cancel_message),
        )
        .route(
            "/v1/transactions/{transaction_id}",
            post(decide).get(get_transaction),
        )
        .route("/v1/producer-groups/{group}", put(put_producer_group))
        .route(
            "/v1/producer-groups/{group}/instances/{instance}",
            put(put_producer_instance),
        )
        .route("/v1/producer-groups/{group}/checks", post(poll_checks))
        .route("/v1/groups/{group}/redrive", post(redrive))
        .route("/v1/topics/{topic}/queues/{queue}/messages", get(pull))
        .route("/v1/groups", get(list_groups))
        .route(
            "/v1/groups/{group}",
            put(put_group).get(get_group).delete(delete_group),
        )
        .route("/v1/groups/{group}/receive", post(receive))
        .route("/v1/groups/{group}/ack", post(ack))
        .route("/v1/groups/{group}/nack", post(nack))
        .route("/v1/groups/{group}/invisibility", post(invisibility))
        .route("/v1/groups/{group}/reset", post(reset))
        .route("/v1/cluster", get(cluster))
        .route("/v1/archive", get(archive))
        .route(FORWARD_PATH, post(forward))
        .merge(crate::console::router())
        .fallback(|| async {
            ApiError::NotFound {
                code: "NotFound",
                message: "no such route".into(),
            }
        })
        .with_state(state)
}

async fn readyz(State(st): St) -> Response {
    if st.ready.load(Ordering::SeqCst) && !st.node.is_stopped() && st.node.store_healthy() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

/// `/metrics`: the process's figures, and on the sequencer the backlog of every group.
async fn metrics(State(st): St) -> Response {
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
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
        .into_response()
}

// ---------- helpers ----------

async fn body_json<T: DeserializeOwned>(body: Body, limit: usize) -> Result<T, ApiError> {
    parse_json(&body_bytes(body, limit).await?)
}

/// The request body, at most `limit` bytes (else 413).
async fn body_bytes(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge(format!("request larger than {limit} bytes")))
}

/// Whether a request's text bodies may be kept as slices of it: a slice keeps the whole request
/// buffer alive (in the hot tail) while only the bodies are counted, so only when they are at
/// least half of it. Otherwise, e.g. a short body in a request padded with whitespace or with
/// large `body_base64` messages, a slice would hold far more memory than the hot tail's bound
/// accounts for.
fn bodies_may_share_request(body_bytes: usize, request_bytes: usize) -> bool {
    body_bytes.saturating_mul(2) >= request_bytes
}

/// `s` as bytes: a slice of `raw` (no copy) when `s` was borrowed from it, else a copy.
fn slice_or_copy(raw: &bytes::Bytes, s: &str) -> bytes::Bytes {
    let within = raw.as_ptr_range();
    let range = s.as_bytes().as_ptr_range();
    if within.start <= range.start && range.end <= within.end {
        raw.slice_ref(s.as_bytes())
    } else {
        bytes::Bytes::copy_from_slice(s.as_bytes())
    }
}

/// `bytes` as JSON (an empty body as `{}`); the result may borrow from `bytes`.
fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return serde_json::from_slice(b"{}")
            .map_err(|e| ApiError::bad(format!("a JSON body is required: {e}")));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
}

fn check_name(kind: &str, name: &str, max: usize) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest {
            code: "InvalidName",
            message: format!("invalid {kind} name {name:?}: use 1..={max} of A-Z a-z 0-9 . _ -"),
        })
    }
}

fn reserved(kind: &str, name: &str) -> Result<(), ApiError> {
    if name.starts_with("DLQ.") {
        return Err(ApiError::BadRequest {
            code: "InvalidName",
            message: format!("{kind} names starting with DLQ. are reserved"),
        });
    }
    Ok(())
}

/// On a follower a definition made on another gateway arrives within a tail interval: before
/// answering 404 for a name this gateway does not know, catch up with the log, i.e. apply
/// everything committed before this request (`Node::catch_up`: a tail round that began after
/// the request read the log to its end). A store failing meanwhile delays the answer (at most
/// 5 s) rather than turn a transient error into a false 404.
async fn refresh_unless(st: &AppState, known: impl Fn(&segment_writer::manifest::State) -> bool) {
    if !known(&st.node.state()) {
        st.node.catch_up(Duration::from_secs(5)).await;
    }
}

fn topic_not_found(topic: &str) -> ApiError {
    ApiError::NotFound {
        code: "TopicNotFound",
        message: format!("topic {topic} does not exist"),
    }
}

fn group_not_found(group: &str) -> ApiError {
    ApiError::NotFound {
        code: "GroupNotFound",
        message: format!("group {group} does not exist"),
    }
}

fn kind_name(k: TopicKind) -> &'static str {
    match k {
        TopicKind::Normal => "normal",
        TopicKind::Fifo => "fifo",
        TopicKind::Delay => "delay",
        TopicKind::Transaction => "transaction",
    }
}

fn topic_json(name: &str, def: &TopicDef) -> Value {
    json!({"topic": name, "type": kind_name(def.kind), "queues": def.queues, "retention_hours": def.retention_hours})
}

/// Submits and returns the outcomes, mapping failures to 503.
async fn submit(st: &AppState, commands: Vec<Command>) -> Result<(u64, Vec<Outcome>), ApiError> {
    let c = st.node.submit(commands).await?;
    Ok((c.version, c.outcomes))
}

/// Submits, then waits until this gateway has applied the version (read your writes).
async fn submit_and_apply(st: &AppState, commands: Vec<Command>) -> Result<Vec<Outcome>, ApiError> {
    let (version, outcomes) = submit(st, commands).await?;
    st.node.wait_applied(version, Duration::from_secs(5)).await;
    Ok(outcomes)
}

fn one(outcomes: Vec<Outcome>) -> Result<Outcome, ApiError> {
    match outcomes.into_iter().next() {
        Some(Outcome::Rejected { rejection }) => Err(rejection.into()),
        Some(o) => Ok(o),
        None => Err(ApiError::Internal("no outcome".into())),
    }
}

/// Commits a definition: 201 with `shown` if it created it, 200 if an identical one existed.
async fn define(st: &AppState, command: Command, shown: Value) -> ApiResult {
    let status = match one(submit_and_apply(st, vec![command]).await?)? {
        Outcome::Defined { created: true } => StatusCode::CREATED,
        Outcome::Defined { created: false } => StatusCode::OK,
        o => return Err(ApiError::Internal(format!("unexpected outcome {o:?}"))),
    };
    Ok((status, Json(shown)).into_response())
}

/// A stored message as the API shows it, borrowed from the message: serialized straight into
/// the response (no intermediate `Value` per message on the receive and pull paths).
#[derive(serde::Serialize)]
struct MessageOut<'a> {
    topic: &'a str,
    queue: u32,
    offset: u64,
    message_id: &'a str,
    tag: Option<&'a str>,
    keys: &'a [String],
    properties: &'a BTreeMap<String, String>,
    message_group: Option<&'a str>,
    publish_time_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_topic: Option<&'a str>,
    /// Receive only.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_attempt: Option<u32>,
    /// Receive only.
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt_handle: Option<String>,
}

impl<'a> MessageOut<'a> {
    fn of(s: &'a Stored) -> Self {
        let m = &s.message;
        let text = std::str::from_utf8(&m.body).ok();
        MessageOut {
            topic: &s.topic,
            queue: s.queue,
            offset: s.offset,
            message_id: &m.message_id,
            tag: m.tag.as_deref(),
            keys: &m.keys,
            properties: &m.properties,
            message_group: m.message_group.as_deref(),
            publish_time_ms: m.publish_time_ms,
            body: text,
            body_base64: text.is_none().then(|| B64.encode(&m.body)),
            original_topic: s.origin_topic.as_deref(),
            delivery_attempt: None,
            receipt_handle: None,
        }
    }
}

/// The body of a receive or pull answer.
#[derive(serde::Serialize)]
struct MessagesOut<'a> {
    messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_offset: Option<u64>,
    /// A receive's answers to its `ack_receipt_handles`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ack_results: Vec<crate::wire::SettleResult>,
}

fn message_json(s: &Stored) -> Value {
    serde_json::to_value(MessageOut::of(s)).unwrap_or(Value::Null)
}

// ---------- topics ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicBody {
    #[serde(rename = "type", default = "default_kind")]
    kind: TopicKind,
    #[serde(default = "default_queues")]
    queues: u32,
    #[serde(default = "default_retention")]
    retention_hours: u32,
}

fn default_kind() -> TopicKind {
    TopicKind::Normal
}
fn default_queues() -> u32 {
    8
}
fn default_retention() -> u32 {
    72
}

async fn put_topic(
    State(st): St,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    st.authorize(&headers, Action::Admin, &format!("topic/{topic}"))?;
    check_name("topic", &topic, 127)?;
    reserved("topic", &topic)?;
    let b: TopicBody = body_json(body, st.limits.max_request_bytes).await?;
    if !(1..=1024).contains(&b.queues) {
        return Err(ApiError::bad("queues must be between 1 and 1024"));
    }
    let def = TopicDef {
        kind: b.kind,
        queues: b.queues,
        retention_hours: b.retention_hours,
    };
    let shown = topic_json(&topic, &def);
    define(&st, Command::CreateTopic { topic, def }, shown).await
}

async fn list_topics(State(st): St, headers: HeaderMap) -> ApiResult {
    st.authorize(&headers, Action::Admin, "topic/*")?;
    let s = st.node.state();
    let topics: Vec<Value> = s
        .topics
        .iter()
        .map(|(n, t)| {
            let mut v = topic_json(n, &t.def);
            v["messages"] = json!(
                t.queues
                    .iter()
                    .map(|q| q.next_offset - q.min_offset.min(q.next_offset))
                    .sum::<u64>()
            );
            v
        })
        .collect();
    Ok(Json(json!({"topics": topics})).into_response())
}

async fn get_topic(State(st): St, Path(topic): Path<String>, headers: HeaderMap) -> ApiResult {
    st.authorize(&headers, Action::Admin, &format!("topic/{topic}"))?;
    refresh_unless(&st, |s| s.topics.contains_key(&topic)).await;
    let s = st.node.state();
    let t = s
        .topics
        .get(&topic)
        .ok_or_else(|| topic_not_found(&topic))?;
    let mut v = topic_json(&topic, &t.def);
    v["queue_stats"] = t
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| json!({"queue": i, "min_offset": q.min_offset, "max_offset": q.next_offset}))
        .collect();
    Ok(Json(v).into_response())
}

async fn delete_topic(State(st): St, Path(topic): Path<String>, headers: HeaderMap) -> ApiResult {
    st.authorize(&headers, Action::Admin, &format!("topic/{topic}"))?;
    if !st.node.state().topics.contains_key(&topic) {
        return Err(topic_not_found(&topic));
    }
    one(submit_and_apply(&st, vec![Command::DeleteTopic { topic }]).await?)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------- publish ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody<'a> {
    #[serde(borrow)]
    messages: Vec<MessageIn<'a>>,
    #[serde(default)]
    producer_group: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageIn<'a> {
    /// Borrowed from the request when it has no escapes: the stored body is then a slice of
    /// the request's bytes, not a copy.
    #[serde(default, borrow)]
    body: Option<Cow<'a, str>>,
    #[serde(default)]
    body_base64: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    message_group: Option<String>,
    #[serde(default)]
    deliver_at: Option<i64>,
    #[serde(default)]
    delay_ms: Option<i64>,
    #[serde(default)]
    dedup_id: Option<String>,
}

async fn publish(
    State(st): St,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let started = std::time::Instant::now();
    st.authorize(&headers, Action::Pub, &format!("topic/{topic}"))?;
    let raw = body_bytes(body, st.limits.max_request_bytes).await?;
    let b: PublishBody = parse_json(&raw)?;
    if b.messages.is_empty() {
        return Err(ApiError::bad("messages must not be empty"));
    }
    let borrowed: usize = b
        .messages
        .iter()
        .filter_map(|m| match &m.body {
            Some(Cow::Borrowed(t)) => Some(t.len()),
            _ => None,
        })
        .sum();
    let share = bodies_may_share_request(borrowed, raw.len());
    if b.messages.len() > st.limits.max_messages_per_publish {
        return Err(ApiError::TooLarge(format!(
            "at most {} messages per publish",
            st.limits.max_messages_per_publish
        )));
    }
    if let Some(g) = &b.producer_group {
        check_name("producer group", g, 120)?;
    }
    refresh_unless(&st, |s| s.topics.contains_key(&topic)).await;
    let (kind, queues) = {
        let s = st.node.state();
        let t = s
            .topics
            .get(&topic)
            .ok_or_else(|| topic_not_found(&topic))?;
        (t.def.kind, t.def.queues)
    };
    let now = st.node.clock().now_ms();
    if kind == TopicKind::Transaction && b.producer_group.is_none() {
        return Err(ApiError::MessageTypeMismatch(format!(
            "transaction topic {topic} needs a producer_group"
        )));
    }
    let mut items = Vec::with_capacity(b.messages.len());
    let mut shown = Vec::with_capacity(b.messages.len());
    for m in b.messages {
        let body = match (m.body, m.body_base64) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad("give either body or body_base64, not both"));
            }
            (Some(Cow::Borrowed(t)), None) if share => slice_or_copy(&raw, t),
            (Some(Cow::Borrowed(t)), None) => bytes::Bytes::copy_from_slice(t.as_bytes()),
            (Some(Cow::Owned(t)), None) => bytes::Bytes::from(t.into_bytes()),
            (None, Some(b)) => B64
                .decode(b.as_bytes())
                .map_err(|e| ApiError::bad(format!("bad body_base64: {e}")))?
                .into(),
            (None, None) => return Err(ApiError::bad("each message needs body or body_base64")),
        };
        if body.len() > st.limits.max_body_bytes {
            return Err(ApiError::TooLarge(format!(
                "message body of {} bytes exceeds {}",
                body.len(),
                st.limits.max_body_bytes
            )));
        }
        let props: usize = m.properties.iter().map(|(k, v)| k.len() + v.len()).sum();
        if props > st.limits.max_properties_bytes {
            return Err(ApiError::TooLarge(format!(
                "properties exceed {} bytes",
                st.limits.max_properties_bytes
            )));
        }
        if let Some(d) = &m.dedup_id {
            if d.is_empty() || d.len() > 256 {
                return Err(ApiError::bad("dedup_id must be 1..=256 bytes"));
            }
        }
        match (kind, &m.message_group) {
            (TopicKind::Fifo, None) => {
                return Err(ApiError::MessageTypeMismatch(format!(
                    "fifo topic {topic} needs a message_group on every message"
                )));
            }
            (TopicKind::Fifo, Some(g)) if g.is_empty() || g.len() > 256 => {
                return Err(ApiError::bad("message_group must be 1..=256 bytes"));
            }
            (k, Some(_)) if k != TopicKind::Fifo => {
                return Err(ApiError::MessageTypeMismatch(format!(
                    "message_group on {} topic {topic}",
                    kind_name(kind)
                )));
            }
            _ => {}
        }
        let deliver_at = match (m.deliver_at, m.delay_ms) {
            (None, None) => None,
            _ if kind != TopicKind::Delay => {
                return Err(ApiError::MessageTypeMismatch(format!(
                    "a delay on {} topic {topic}",
                    kind_name(kind)
                )));
            }
            (Some(_), Some(_)) => {
                return Err(ApiError::bad("give deliver_at or delay_ms, not both"));
            }
            (Some(at), None) => Some(at),
            (None, Some(d)) if d < 0 => return Err(ApiError::bad("delay_ms must not be negative")),
            (None, Some(d)) => Some(now.saturating_add(d)),
        };
        if let Some(at) = deliver_at {
            if at - now > st.limits.max_delay_ms {
                return Err(ApiError::bad(format!(
                    "a delay may be at most {} ms",
                    st.limits.max_delay_ms
                )));
            }
        }
        let message_id = ulid::Ulid::new().to_string();
        let queue = match &m.message_group {
            Some(g) => (fnv1a(g.as_bytes()) % u64::from(queues)) as u32,
            None => (st.round_robin.fetch_add(1, Ordering::Relaxed) % u64::from(queues)) as u32,
        };
        let mode = if kind == TopicKind::Transaction {
            let immunity = match m.properties.get("check_immunity_ms") {
                None => None,
                Some(v) => Some(v.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                    ApiError::bad("property check_immunity_ms must be a non-negative integer")
                })?),
            };
            PublishMode::Half {
                transaction_id: ulid::Ulid::new().to_string(),
                producer_group: b.producer_group.clone().unwrap_or_default(),
                check_immunity_ms: immunity,
            }
        } else if let Some(at) = deliver_at {
            PublishMode::Timer { deliver_at_ms: at }
        } else {
            PublishMode::Visible
        };
        // A dedup id already in the window answers the first result, storing nothing.
        if let Some(first) = m.dedup_id.as_ref().and_then(|d| {
            let s = st.node.state();
            s.dedup
                .get(&topic)
                .and_then(|w| w.get(d))
                .filter(|r| s.time_ms.max(now) - r.time_ms <= DEDUP_WINDOW_MS)
                .cloned()
        }) {
            shown.push(Shown::Known(first));
            continue;
        }
        shown.push(Shown::New(items.len()));
        items.push(PublishItem {
            queue,
            message: Message {
                topic: topic.clone(),
                message_id,
                body,
                tag: m.tag,
                keys: m.keys,
                properties: m.properties,
                message_group: m.message_group,
                producer_group: b.producer_group.clone(),
                publish_time_ms: now,
                deliver_at_ms: deliver_at,
            },
            dedup_id: m.dedup_id,
            mode,
        });
    }
    // What the answers need of each item (the items themselves go to the batcher).
    let answers: Vec<(String, u32, Option<String>)> = items
        .iter()
        .map(|i| {
            let transaction = match &i.mode {
                PublishMode::Half { transaction_id, .. } => Some(transaction_id.clone()),
                _ => None,
            };
            (i.message.message_id.clone(), i.queue, transaction)
        })
        .collect();
    let placed = if items.is_empty() {
        Vec::new()
    } else {
        st.batcher.publish(items).await?
    };
    let results: Vec<PublishResult> = shown
        .iter()
        .map(|s| match s {
            Shown::Known(first) => PublishResult::from_dedup(first),
            Shown::New(i) => {
                let (message_id, queue, transaction) = &answers[*i];
                match &placed[*i] {
                    Placed::Offset(o) => PublishResult {
                        message_id,
                        queue: Some(*queue),
                        offset: Some(*o),
                        transaction_id: None,
                    },
                    Placed::Duplicate(first) => PublishResult::from_dedup(first),
                    Placed::Pending => PublishResult {
                        message_id,
                        queue: None,
                        offset: None,
                        transaction_id: transaction.as_deref(),
                    },
                }
            }
        })
        .collect();
    crate::metrics::observe_publish(results.len(), started.elapsed().as_secs_f64());
    Ok(Json(PublishResponse { results }).into_response())
}

/// The answer to a publish (API.md "Publish").
#[derive(serde::Serialize)]
struct PublishResponse<'a> {
    results: Vec<PublishResult<'a>>,
}

/// One message's result: its id; `queue` and `offset` once visible; `transaction_id` for a
/// half message.
#[derive(serde::Serialize)]
struct PublishResult<'a> {
    message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_id: Option<&'a str>,
}

impl<'a> PublishResult<'a> {
    /// The first result of a repeated `dedup_id`.
    fn from_dedup(first: &'a DedupRecord) -> Self {
        let (queue, offset) = match (first.queue, first.offset) {
            (Some(q), Some(o)) => (Some(q), Some(o)),
            _ => (None, None),
        };
        PublishResult {
            message_id: &first.message_id,
            queue,
            offset,
            transaction_id: first.transaction_id.as_deref(),
        }
    }
}

/// How one published message is answered.
enum Shown {
    /// The first result of its `dedup_id`.
    Known(DedupRecord),
    /// The result of this batch item.
    New(usize),
}

/// A stable hash (FNV-1a, 64 bit): a message group maps to the same queue on every gateway.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---------- pull ----------

#[derive(Deserialize)]
struct PullQuery {
    #[serde(default)]
    offset: u64,
    #[serde(default = "default_pull_max")]
    max: usize,
    #[serde(default)]
    wait_ms: u64,
}

fn default_pull_max() -> usize {
    100
}

/// A long-poll's wait for something to change: false once `deadline` has passed. Wakes on a
/// new version (a publish, a due timer, an expiry) or after at most a second (time-based
/// visibility such as retry backoff needs no new version).
async fn wait_longer(st: &AppState, deadline: tokio::time::Instant) -> bool {
    if tokio::time::Instant::now() >= deadline {
        return false;
    }
    let wake = deadline.min(tokio::time::Instant::now() + Duration::from_millis(1000));
    wait_for_change(st, wake).await;
    true
}

async fn wait_for_change(st: &AppState, deadline: tokio::time::Instant) -> bool {
    let mut rx = st.node.watch_version();
    rx.borrow_and_update();
    tokio::time::timeout_at(deadline, rx.changed())
        .await
        .is_ok()
}

async fn pull(
    State(st): St,
    Path((topic, queue)): Path<(String, String)>,
    headers: HeaderMap,
    query: Result<Query<PullQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    st.authorize(&headers, Action::Sub, &format!("topic/{topic}"))?;
    let Query(q) = query.map_err(|e| ApiError::bad(format!("bad query: {e}")))?;
    let queue: u32 = queue
        .parse()
        .map_err(|_| ApiError::bad(format!("bad queue {queue:?}")))?;
    if q.max == 0 || q.max > 1000 {
        return Err(ApiError::bad("max must be 1..=1000"));
    }
    if q.wait_ms > st.limits.max_wait_ms {
        return Err(ApiError::bad(format!(
            "wait_ms must be at most {}",
            st.limits.max_wait_ms
        )));
    }
    let _waiter = long_poll_slot(&st, q.wait_ms)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(q.wait_ms);
    refresh_unless(&st, |s| s.topics.contains_key(&topic)).await;
    loop {
        let (min, next) = {
            let s = st.node.state();
            let t = s
                .topics
                .get(&topic)
                .ok_or_else(|| topic_not_found(&topic))?;
            let qq = t
                .queues
                .get(queue as usize)
                .ok_or_else(|| ApiError::bad(format!("topic {topic} has no queue {queue}")))?;
            (qq.min_offset, qq.next_offset)
        };
        let from = q.offset.max(min);
        if from < next {
            let msgs = st
                .reader
                .read(&st.node.shared_state(), &topic, queue, from, q.max)
                .await?;
            let next_offset = msgs.last().map_or(from, |m| m.offset + 1);
            return Ok(Json(MessagesOut {
                messages: msgs.iter().map(MessageOut::of).collect(),
                next_offset: Some(next_offset),
                ack_results: Vec::new(),
            })
            .into_response());
        }
        if tokio::time::Instant::now() >= deadline || !wait_for_change(&st, deadline).await {
            return Ok(Json(json!({"messages": [], "next_offset": from})).into_response());
        }
    }
}

// ---------- groups ----------

#[derive(Deserialize)]
#[serde(untagged)]
enum StartFromIn {
    Named(String),
    Timestamp { timestamp_ms: i64 },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    subscriptions: Vec<Subscription>,
    #[serde(default = "default_mode")]
    mode: GroupMode,
    #[serde(default)]
    start_from: Option<StartFromIn>,
    #[serde(default = "default_max_retries")]
    max_retries: u32,
    #[serde(default = "default_invisible")]
    invisible_ms: i64,
    #[serde(default)]
    retry_backoff_ms: Option<Vec<i64>>,
}

fn default_mode() -> GroupMode {
    GroupMode::Clustering
}
fn default_max_retries() -> u32 {
    16
}
fn default_invisible() -> i64 {
    30_000
}

/// RocketMQ's retry ladder: 10 s, 30 s, 1 m, 2 m, 3 m, 4 m, 5 m, 6 m, 7 m, 8 m, 9 m, 10 m, 20 m, 30 m, 1 h, 2 h.
fn rocketmq_ladder() -> Vec<i64> {
    let s = 1000;
    let m = 60 * s;
    vec![
        10 * s,
        30 * s,
        m,
        2 * m,
        3 * m,
        4 * m,
        5 * m,
        6 * m,
        7 * m,
        8 * m,
        9 * m,
        10 * m,
        20 * m,
        30 * m,
        60 * m,
        120 * m,
    ]
}

async fn put_group(
    State(st): St,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    st.authorize(&headers, Action::Admin, &format!("group/{group}"))?;
    check_name("group", &group, 120)?;
    reserved("group", &group)?;
    let b: GroupBody = body_json(body, st.limits.max_request_bytes).await?;
    if b.subscriptions.is_empty() {
        return Err(ApiError::bad("subscriptions must not be empty"));
    }
    for s in &b.subscriptions {
        check_name("topic", &s.topic, 127)?;
        crate::filter::parse(s.filter.as_deref(), s.sql.as_deref())?;
    }
    let start_from = match b.start_from {
        None => StartFrom::Latest,
        Some(StartFromIn::Named(n)) if n == "earliest" => StartFrom::Earliest,
        Some(StartFromIn::Named(n)) if n == "latest" => StartFrom::Latest,
        Some(StartFromIn::Named(n)) => {
            return Err(ApiError::bad(format!(
                "start_from must be earliest, latest or {{\"timestamp_ms\": …}}, not {n:?}"
            )));
        }
        Some(StartFromIn::Timestamp { timestamp_ms }) => StartFrom::Timestamp(timestamp_ms),
    };
    if b.invisible_ms <= 0 || b.invisible_ms > 12 * 3600 * 1000 {
        return Err(ApiError::bad("invisible_ms must be 1..=43200000"));
    }
    // A group reading a FIFO topic retries on a fixed 3 s by default (RocketMQ 5).
    let reads_fifo = {
        let state = st.node.state();
        b.subscriptions.iter().any(|sub| {
            state
                .topics
                .get(&sub.topic)
                .is_some_and(|t| t.def.kind == TopicKind::Fifo)
        })
    };
    let backoff = b.retry_backoff_ms.unwrap_or_else(|| {
        if reads_fifo {
            vec![3_000]
        } else {
            rocketmq_ladder()
        }
    });
    if backoff.is_empty() || backoff.iter().any(|&x| x < 0) {
        return Err(ApiError::bad(
            "retry_backoff_ms must be a non-empty list of non-negative numbers",
        ));
    }
    if b.max_retries > 1000 {
        return Err(ApiError::bad("max_retries must be at most 1000"));
    }
    let def = GroupDef {
        subscriptions: b.subscriptions,
        mode: b.mode,
        start_from,
        max_retries: b.max_retries,
        invisible_ms: b.invisible_ms,
        retry_backoff_ms: backoff,
    };
    let shown = group_json(&group, &def);
    define(&st, Command::CreateGroup { group, def }, shown).await
}

fn group_json(name: &str, def: &GroupDef) -> Value {
    let start = match def.start_from {
        StartFrom::Earliest => json!("earliest"),
        StartFrom::Latest => json!("latest"),
        StartFrom::Timestamp(t) => json!({"timestamp_ms": t}),
    };
    json!({
        "group": name,
        "subscriptions": def.subscriptions,
        "mode": def.mode,
        "start_from": start,
        "max_retries": def.max_retries,
        "invisible_ms": def.invisible_ms,
        "retry_backoff_ms": def.retry_backoff_ms,
    })
}

async fn get_group(State(st): St, Path(group): Path<String>, headers: HeaderMap) -> ApiResult {
    st.authorize(&headers, Action::Sub, &format!("group/{group}"))?;
    refresh_unless(&st, |s| s.groups.contains_key(&group)).await;
    let s = st.node.state();
    let g = s
        .groups
        .get(&group)
        .ok_or_else(|| group_not_found(&group))?;
    let mut v = group_json(&group, &g.def);
    let now = st.node.clock().now_ms().max(s.time_ms);
    let age = |t: Option<i64>| t.map(|t| (now - t).max(0));
    let mut lag = Vec::new();
    for sub in &g.def.subscriptions {
        let Some(t) = s.topics.get(&sub.topic) else {
            continue;
        };
        let backlog = backlog::topic_queues(&s, &group, &sub.topic, now).unwrap_or_default();
        for (qi, q) in t.queues.iter().enumerate() {
            let c = s
                .cursor(&group, "", &sub.topic, qi as u32)
                .unwrap_or_default();
            let c = c.as_ref();
            let b = backlog.get(qi).copied().unwrap_or_default();
            lag.push(
                json!({"topic": sub.topic, "queue": qi, "committed_offset": c.committed,
                "max_offset": q.next_offset, "inflight": c.leases.len(), "lag": b.lag,
                "ready": b.ready, "retrying": b.retrying,
                "oldest_ready_age_ms": age(b.oldest_ready_ms),
                "oldest_unacked_age_ms": age(b.oldest_unacked_ms)}),
            );
        }
    }
    v["lag"] = json!(lag);
    Ok(Json(v).into_response())
}

/// `GET /v1/groups` (admin): every group's definition and its backlog summed per topic.
async fn list_groups(State(st): St, headers: HeaderMap) -> ApiResult {
    st.authorize(&headers, Action::Admin, "group/*")?;
    let s = st.node.state();
    let now = st.node.clock().now_ms().max(s.time_ms);
    let age = |t: Option<i64>| t.map(|t| (now - t).max(0));
    let mut per_group: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for l in backlog::all(&s, now) {
        let b = l.backlog;
        per_group
            .entry(l.group)
            .or_default()
            .push(json!({"topic": l.topic,
            "lag": b.lag, "ready": b.ready, "inflight": b.inflight, "delayed": l.delayed,
            "oldest_ready_age_ms": age(b.oldest_ready_ms),
            "oldest_unacked_age_ms": age(b.oldest_unacked_ms)}));
    }
    let groups: Vec<Value> = s
        .groups
        .iter()
        .map(|(name, g)| {
            let mut v = group_json(name, &g.def);
            v["backlog"] = json!(per_group.remove(name).unwrap_or_default());
            let dlq = s
                .topics
                .get(&segment_writer::manifest::state::dlq_topic(name))
                .and_then(|t| t.queues.first())
                .map_or(0, |q| q.next_offset - q.min_offset.min(q.next_offset));
            v["dead_letters"] = json!(dlq);
            v
        })
        .collect();
    Ok(Json(json!({"groups": groups})).into_response())
}

async fn delete_group(State(st): St, Path(group): Path<String>, headers: HeaderMap) -> ApiResult {
    st.authorize(&headers, Action::Admin, &format!("group/{group}"))?;
    if !st.node.state().groups.contains_key(&group) {
        return Err(group_not_found(&group));
    }
    one(submit_and_apply(&st, vec![Command::DeleteGroup { group }]).await?)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------- receive / ack ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiveBody {
    #[serde(default = "default_receive_max")]
    max_messages: u32,
    #[serde(default)]
    wait_ms: u64,
    #[serde(default)]
    invisible_ms: Option<i64>,
    #[serde(default)]
    consumer: Option<String>,
    /// Receipts to ack in the same commit as this receive's lease (or before it waits).
    #[serde(default)]
    ack_receipt_handles: Vec<String>,
}

/// Candidates a receive considers per queue of a FIFO topic (past message groups that have
/// one in flight).
const FIFO_LOOK_AHEAD: usize = 512;

fn default_receive_max() -> u32 {
    32
}

async fn receive(
    State(st): St,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    st.authorize(&headers, Action::Sub, &format!("group/{group}"))?;
    let b: ReceiveBody = body_json(body, st.limits.max_request_bytes).await?;
    if b.max_messages == 0 || b.max_messages > st.limits.max_receive {
        return Err(ApiError::bad(format!(
            "max_messages must be 1..={}",
            st.limits.max_receive
        )));
    }
    if b.wait_ms > st.limits.max_wait_ms {
        return Err(ApiError::bad(format!(
            "wait_ms must be at most {}",
            st.limits.max_wait_ms
        )));
    }
    if let Some(c) = &b.consumer {
        check_name("consumer", c, 120)?;
    }
    if b.ack_receipt_handles.len() > crate::settle::MAX_HANDLES {
        return Err(ApiError::bad(
            "ack_receipt_handles must hold at most 1000 handles",
        ));
    }
    refresh_unless(&st, |s| s.groups.contains_key(&group)).await;
    let (def, filters, ordered) = {
        let s = st.node.state();
        let g = s
            .groups
            .get(&group)
            .ok_or_else(|| group_not_found(&group))?;
        let mut filters = BTreeMap::new();
        let mut ordered = std::collections::BTreeSet::new();
        for sub in &g.def.subscriptions {
            filters.insert(
                sub.topic.clone(),
                crate::filter::parse(sub.filter.as_deref(), sub.sql.as_deref())?,
            );
            if s.topics
                .get(&sub.topic)
                .is_some_and(|t| t.def.kind == TopicKind::Fifo)
            {
                ordered.insert(sub.topic.clone());
            }
        }
        (g.def.clone(), filters, ordered)
    };
    let consumer = match (def.mode, b.consumer) {
        (GroupMode::Broadcast, None) => {
            return Err(ApiError::bad("consumer is required in broadcast mode"));
        }
        (GroupMode::Broadcast, Some(c)) => c,
        (GroupMode::Clustering, c) => c.unwrap_or_default(),
    };
    let invisible_ms = b.invisible_ms.unwrap_or(def.invisible_ms);
    if invisible_ms <= 0 || invisible_ms > 12 * 3600 * 1000 {
        return Err(ApiError::bad("invisible_ms must be 1..=43200000"));
    }
    let _waiter = long_poll_slot(&st, b.wait_ms)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(b.wait_ms);
    // The previous batch's acks ride this receive: committed with its first lease (before
    // it, in the same delta, so that a FIFO message group they free can be leased at once),
    // or alone before the receive waits.
    let mut ack_results = Vec::new();
    let mut pending_acks = None;
    if !b.ack_receipt_handles.is_empty() {
        let plan = SettlePlan::new(
            &st.receipts,
            &group,
            &def,
            &b.ack_receipt_handles,
            |_, _| SettleAction::Ack,
        );
        if plan.is_empty() {
            ack_results = plan.all_invalid();
        } else {
            pending_acks = Some(plan);
        }
    }
    let cursor_key = GroupDef::cursor_key(def.mode, &consumer).to_string();
    let mut fruitless_look = None;
    // Receives of one cursor on this gateway claim their candidates (`claims`).
    let claim_key = format!("{group}\n{}", GroupDef::cursor_key(def.mode, &consumer));
    // Filters and ordered topics pass candidates over: a lease asks for up to twice what it
    // may grant there, and for what it may grant elsewhere.
    let filtered = def
        .subscriptions
        .iter()
        .any(|s| s.filter.is_some() || s.sql.is_some());
    let window = if filtered || !ordered.is_empty() {
        (b.max_messages as usize) * 2
    } else {
        b.max_messages as usize
    };
    'look: loop {
        let now = st.node.clock().now_ms();
        // Ordered topics look further ahead in each queue: a message group with one in flight
        // is passed over.
        let (candidates, blocked, mut claim) = {
            let mut held = st.claims.lock();
            let s = st.node.state();
            let mine = held.get(&claim_key);
            let candidates = s.candidates_looking_ahead(
                &group,
                &consumer,
                now,
                window,
                |t| ordered.contains(t).then_some(window.max(FIFO_LOOK_AHEAD)),
                // Ordered topics are claimed by message group below, never by offset.
                |t, q, o| !ordered.contains(t) && crate::claims::claimed(mine, t, q, o),
            );
            let unordered = candidates.iter().filter(|c| !ordered.contains(&c.topic));
            let claim = st.claims.claim(&mut held, &claim_key, unordered);
            let mut blocked: BTreeMap<(String, u32), BTreeMap<String, u64>> = BTreeMap::new();
            for c in candidates.iter().filter(|c| ordered.contains(&c.topic)) {
                let key = (c.topic.clone(), c.queue);
                blocked.entry(key).or_insert_with(|| {
                    s.cursor(&group, &consumer, &c.topic, c.queue)
                        .map(|c| c.fifo_inflight.clone())
                        .unwrap_or_default()
                });
            }
            // Message groups whose message in flight this request acks are free once the
            // acks apply, which they do before the lease.
            if let Some(acks) = &pending_acks {
                for (topic, queue, offset) in acks.acked_by(&def, &cursor_key) {
                    if let Some(b) = blocked.get_mut(&(topic.to_string(), queue)) {
                        b.retain(|_, o| *o != offset);
                    }
                }
            }
            (candidates, blocked, claim)
        };
        // What this look found, when it found nothing to lease: the same candidates with the
        // same message groups in flight will find nothing again, so the next look after a
        // change reads them only if one of those differs.
        let look = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            candidates.hash(&mut h);
            blocked.hash(&mut h);
            h.finish()
        };
        'lease: {
            if candidates.is_empty() || fruitless_look == Some(look) {
                break 'lease;
            }
            // Read the candidates and apply the tag filters.
            let mut by_queue: BTreeMap<(String, u32), Vec<u64>> = BTreeMap::new();
            for c in &candidates {
                by_queue
                    .entry((c.topic.clone(), c.queue))
                    .or_default()
                    .push(c.offset);
            }
            // What was read, per queue, in offset order.
            let mut read: Vec<((String, u32), Vec<Stored>)> = Vec::with_capacity(by_queue.len());
            for ((topic, queue), mut offsets) in by_queue {
                offsets.sort_unstable();
                let msgs = match st
                    .reader
                    .read_offsets(&st.node.shared_state(), &topic, queue, &offsets)
                    .await
                {
                    Ok(m) => m,
                    // A corrupt segment must not stall the group: read one by one and pass
                    // over (and count) what cannot be read; a store outage still fails.
                    Err(segment_writer::Error::Corrupt { .. }) => {
                        let mut ok = Vec::new();
                        for &o in &offsets {
                            match st
                                .reader
                                .read_offsets(&st.node.shared_state(), &topic, queue, &[o])
                                .await
                            {
                                Ok(m) => ok.extend(m),
                                Err(e @ segment_writer::Error::Corrupt { .. }) => {
                                    crate::metrics::observe_corrupt_object();
                                    tracing::error!(error = %e, %topic, queue, offset = o, "unreadable message passed over");
                                }
                                Err(e) => return Err(e.into()),
                            }
                        }
                        ok
                    }
                    Err(e) => return Err(e.into()),
                };
                read.push(((topic, queue), msgs));
            }
            let read_at = |at: &QueueOffset| -> Option<&Stored> {
                let (_, msgs) = read
                    .iter()
                    .find(|((t, q), _)| *q == at.queue && *t == at.topic)?;
                let i = msgs.binary_search_by_key(&at.offset, |m| m.offset).ok()?;
                Some(&msgs[i])
            };
            let mut wanted = Vec::new();
            let mut located = Vec::new();
            let mut message_groups = Vec::new();
            let mut skipped = Vec::new();
            // Message groups in this batch, borrowed from what was read.
            let mut taken: std::collections::HashSet<(&str, u32, &str)> = Default::default();
            let blocked_in = |topic: &str, queue: u32| {
                blocked
                    .iter()
                    .find(|((t, q), _)| *q == queue && t == topic)
                    .map(|(_, b)| b)
            };
            for c in candidates {
                if wanted.len() >= window {
                    // Full: the rest stays for the next receive (filtered ones included).
                    break;
                }
                let Some(m) = read_at(&c) else { continue };
                let passes = filters
                    .get(&c.topic)
                    .is_none_or(|f| f.matches(m.message.tag.as_deref(), &m.message.properties));
                if !passes {
                    skipped.push(c);
                    continue;
                }
                let mg = match (&m.message.message_group, ordered.contains(&c.topic)) {
                    (Some(g), true) => {
                        // One in flight per message group, in publish order, and a receive
                        // batch never holds two of one group.
                        let inflight = blocked_in(&c.topic, c.queue).and_then(|b| b.get(g));
                        if inflight.is_some_and(|&o| o != c.offset)
                            || !taken.insert((m.topic.as_str(), m.queue, g.as_str()))
                        {
                            continue;
                        }
                        // Another receive on this gateway is leasing this group's head.
                        if !claim.claim_group(&c.topic, c.queue, g) {
                            continue;
                        }
                        Some(g.clone())
                    }
                    _ => None,
                };
                located.push(m.located.as_deref().cloned());
                wanted.push(c);
                message_groups.push(mg);
            }
            if ordered.is_empty() {
                message_groups.clear();
            }
            if located.iter().all(Option::is_none) {
                located.clear();
            }
            let had_skips = !skipped.is_empty();
            if wanted.is_empty() && !had_skips {
                // Every candidate's message group is in flight (or claimed here): nothing to
                // commit; wait for a change.
                fruitless_look = Some(look);
                break 'lease;
            }
            let lease = Command::Lease {
                group: group.clone(),
                consumer: consumer.clone(),
                invisible_ms,
                max: b.max_messages,
                candidates: wanted,
                skipped,
                message_groups,
                located,
                max_in_flight: Some(st.limits.max_in_flight_per_group),
            };
            let mut commands = pending_acks
                .as_ref()
                .map(SettlePlan::commands)
                .unwrap_or_default();
            commands.push(lease);
            let (_, mut outcomes) = submit(&st, commands).await?;
            let leased = outcomes.pop().into_iter().collect();
            let acked = pending_acks.take().is_some_and(|acks| {
                ack_results = acks.answer(&outcomes);
                true
            });
            let (version, grants) = match one(leased)? {
                Outcome::Leased {
                    grants,
                    capped: true,
                    version,
                } if grants.is_empty() && acked => {
                    // The acks are in: answer them, with no messages.
                    st.node.wait_applied(version, Duration::from_secs(2)).await;
                    return Ok(Json(MessagesOut {
                        messages: Vec::new(),
                        next_offset: None,
                        ack_results,
                    })
                    .into_response());
                }
                Outcome::Leased {
                    grants,
                    capped: true,
                    ..
                } if grants.is_empty() => {
                    return Err(ApiError::TooManyRequests(format!(
                        "group {group} has {} messages leased or waiting for a retry, its cap: ack or nack some first",
                        st.limits.max_in_flight_per_group
                    )));
                }
                Outcome::Leased {
                    version, grants, ..
                } => (version, grants),
                o => return Err(ApiError::Internal(format!("unexpected outcome {o:?}"))),
            };
            if !grants.is_empty() {
                let messages: Vec<MessageOut> = grants
                    .iter()
                    .filter_map(|g| {
                        let m = read_at(&g.at)?;
                        let mut v = MessageOut::of(m);
                        let r = Receipt {
                            group: group.clone(),
                            consumer: consumer.clone(),
                            topic: g.at.topic.clone(),
                            queue: g.at.queue,
                            offset: g.at.offset,
                            version,
                            attempt: g.attempt,
                        };
                        v.delivery_attempt = Some(g.attempt);
                        v.receipt_handle = Some(st.receipts.sign(&r));
                        Some(v)
                    })
                    .collect();
                let body = Json(MessagesOut {
                    messages,
                    next_offset: None,
                    ack_results,
                })
                .into_response();
                st.node.wait_applied(version, Duration::from_secs(2)).await;
                return Ok(body);
            }
            st.node.wait_applied(version, Duration::from_secs(2)).await;
            if had_skips {
                continue 'look;
            }
        }
        if let Some(acks) = pending_acks.take() {
            // Nothing to lease now: commit the acks before waiting.
            let (version, outcomes) = submit(&st, acks.commands()).await?;
            ack_results = acks.answer(&outcomes);
            st.node.wait_applied(version, Duration::from_secs(2)).await;
        }
        if !wait_longer(&st, deadline).await {
            return Ok(Json(MessagesOut {
                messages: Vec::new(),
                next_offset: None,
                ack_results,
            })
            .into_response());
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettleBody {
    receipt_handles: Vec<String>,
    #[serde(default)]
    delay_ms: Option<i64>,
}

async fn settle_many(
    st: &AppState,
    group: &str,
    handles: Vec<String>,
    action: impl Fn(&Receipt, &GroupDef) -> SettleAction,
) -> ApiResult {
    if handles.is_empty() || handles.len() > crate::settle::MAX_HANDLES {
        return Err(ApiError::bad("receipt_handles must hold 1..=1000 handles"));
    }
    let def = st
        .node
        .state()
        .groups
        .get(group)
        .map(|g| g.def.clone())
        .ok_or_else(|| group_not_found(group))?;
    let plan = SettlePlan::new(&st.receipts, group, &def, &handles, action);
    let results = if plan.is_empty() {
        plan.all_invalid()
    } else {
        let (_, outcomes) = submit(st, plan.commands()).await?;
        plan.answer(&outcomes)
    };
    Ok(Json(crate::wire::SettleResponse { results }).into_response())
}

async fn ack(
    State(st): St,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    st.authorize(&headers, Action::Sub, &format!("group/{group}"))?;
    let b: SettleBody = body_json(body, st.limits.max_request_bytes).await?;
    if b.delay_ms.is_some() {
        return Err(ApiError::bad("ack takes no delay_ms"));
    }
    settle_many(&st, &group, b.receipt_handles, |_, _| SettleAction::Ack).await
}

async fn nack(
    State(st): St,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    st.authorize(&headers, Action::Sub, &format!("group/{group}"))?;
    let b: SettleBody = body_json(body, st.limits.max_request_bytes).await?;
    if b.delay_ms
        .is_some_and(|d| !(0..=40 * 86_400_000).contains(&d))
    {
        return Err(ApiError::bad("delay_ms must be 0..=3456000000"));
    }
    let delay = b.delay_ms;
    settle_many(&st, &group, b.receipt_handles, move |r, def| {
        SettleAction::Nack {
            delay_ms: delay.unwrap_or_else(|| def.backoff_ms(r.attempt)),
        }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvisibilityBody {
    receipt_handle: String,
    invisible_ms: i64,
}

async fn invisibility(
    State(st): St,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    st.authorize(&headers, Action::Sub, &format!("group/{group}"))?;
    let b: InvisibilityBody = body_json(body, st.limits.max_request_bytes).await?;
    if b.invisible_ms <= 0 || b.invisible_ms > 12 * 3600 * 1000 {
        return Err(ApiError::bad("invisible_ms must be 1..=43200000"));
    }
    if !st.node.state().groups.contains_key(&group) {
        return Err(group_not_found(&group));
    }
    let r = st
        .receipts
        .verify(&b.receipt_handle)
        .filter(|r| r.group == group)
        .ok_or_else(|| ApiError::BadRequest {
            code: "InvalidReceipt",
            message: "not a receipt handle of this group".into(),
        })?;
    let cmd = Command::Settle {
        group: group.clone(),
        consumer: r.consumer.clone(),
        at: QueueOffset {
            topic: r.topic.clone(),
            queue: r.queue,
            offset: r.offset,
        },
        lease_version: r.version,
        action: SettleAction::Extend {
            invisible_ms: b.invisible_ms,
        },
    };
    match one(submit(&st, vec![cmd]).await?.1)? {
        Outcome::Settled { lease_version } => {
            let new = Receipt {
                version: lease_version,
                ..r
            };
            Ok(Json(json!({"receipt_handle": st.receipts.sign(&new)})).into_response())
        }
        o => Err(ApiError::Internal(format!("unexpected outcome {o:?}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    topic: String,
    to: StartFromIn,
}

async fn reset(
    State(st): St,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    st.authorize(&headers, Action::Admin, &format!("group/{group}"))?;
    let b: ResetBody = body_json(body, st.limits.max_request_bytes).await?;
    let to = match b.to {
        StartFromIn::Named(n) if n == "earliest" => ResetTarget::Earliest,
        StartFromIn::Named(n) if n == "latest" => ResetTarget::Latest,
        StartFromIn::Named(n) => {
            return Err(ApiError::bad(format!(
                "to must be earliest, latest or {{\"timestamp_ms\": …}}, not {n:?}"
            )));
        }
        StartFromIn::Timestamp { timestamp_ms } => ResetTarget::Timestamp(timestamp_ms),
    };
    {
        let s = st.node.state();
        s.groups
            .get(&group)
            .ok_or_else(|| group_not_found(&group))?;
        s.topics
            .get(&b.topic)
            .ok_or_else(|| topic_not_found(&b.topic))?;
    }
    one(submit_and_apply(
        &st,
        vec![Command::ResetOffsets {
            group,
            topic: b.topic,
            to,
        }],
    )
    .await?)?;
    Ok(Json(json!({})).into_response())
}

// ---------- cluster, internal ----------

async fn cluster(State(st): St, headers: HeaderMap) -> ApiResult {
    st.authorize(&headers, Action::Admin, "cluster")?;
    let s = st.node.state();
    let me = st.node.settings();
    let mut gateways = vec![
        json!({"gateway": me.gateway_id, "address": me.address, "sequencer": s.sequencer.as_ref().is_some_and(|q| q.gateway == me.gateway_id)}),
    ];
    if let Some(q) = s.sequencer.as_ref().filter(|q| q.gateway != me.gateway_id) {
        gateways.push(json!({"gateway": q.gateway, "address": q.address, "sequencer": true}));
    }
    let (inline, spilled) = s.timer_counts();
    let timers =
        json!({"inline": inline, "spilled": spilled, "spill_objects": s.spilled_timers.len()});
    Ok(Json(json!({"manifest_version": s.version, "gateways": gateways, "store": st.store_url, "sequencer_epoch": s.sequencer.as_ref().map(|q| q.epoch), "delayed_messages": timers, "inline_segments": s.inline_segments.len()})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveQuery {
    #[serde(default)]
    topic: Option<String>,
}

/// The archive catalogue: every Parquet file with its queue, offsets and publish times.
async fn archive(
    State(st): St,
    headers: HeaderMap,
    query: Result<Query<ArchiveQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    st.authorize(&headers, Action::Admin, "archive")?;
    let Query(q) = query.map_err(|e| ApiError::bad(format!("bad query: {e}")))?;
    if let Some(t) = &q.topic {
        check_name("topic", t, 127)?;
    }
    let s = st.node.state();
    let wanted = |t: &str| q.topic.as_deref().is_none_or(|w| w == t);
    let file_json = |topic: &str, queue: u32, f: &segment_writer::manifest::ArchivedFile| {
        json!({"path": f.path, "topic": topic, "queue": queue, "min_offset": f.min_offset,
               "max_offset": f.max_offset, "min_time_ms": f.min_time_ms,
               "max_time_ms": f.max_time_ms, "rows": f.rows, "bytes": f.bytes})
    };
    let mut files = Vec::new();
    for (topic, queues) in s.archive.queues.iter().filter(|(t, _)| wanted(t)) {
        for (queue, qa) in queues {
            files.extend(qa.files.iter().map(|f| file_json(topic, *queue, f)));
        }
    }
    for d in s.archive.detached.iter().filter(|d| wanted(&d.topic)) {
        files.push(file_json(&d.topic, d.queue, &d.file));
    }
    Ok(Json(json!({ "files": files })).into_response())
}

async fn forward(State(st): St, headers: HeaderMap, body: Body) -> ApiResult {
    let bytes = axum::body::to_bytes(body, 256 * 1024 * 1024)
        .await
        .map_err(|_| ApiError::TooLarge("forward too large".into()))?;
    let sig = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !st.forward_key.verify(&bytes, sig) {
        return Err(ApiError::Unauthorized(
            "internal endpoint: bad or missing gateway signature".into(),
        ));
    }
    let req: ForwardRequest =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("bad forward: {e}")))?;
    Ok(Json(st.node.submit_forwarded(req).await).into_response())
}

// ---------- delayed messages: cancel; lookup ----------

/// How far around a message id's time a lookup scans (publish times come from the gateway
/// that took the message; ids are ULIDs minted at the same moment).
const LOOKUP_SLACK_MS: i64 = 60_000;

/// At most this many messages are read by one lookup.
const LOOKUP_MAX_SCAN: usize = 200_000;

/// Messages of `topic` whose ranges were published within `[begin, end]`, filtered by `keep`.
async fn scan_topic(
    st: &AppState,
    topic: &str,
    begin: i64,
    end: i64,
    keep: impl Fn(&Stored) -> bool,
    limit: usize,
) -> Result<Vec<Stored>, ApiError> {
    // (queue, first offset, count) of every range published in the window: inline, and in
    // the index runs whose publish times overlap it (read through the index cache).
    let queues: Vec<QueueSnapshot> = {
        let s = st.node.state();
        let t = s.topics.get(topic).ok_or_else(|| topic_not_found(topic))?;
        t.queues
            .iter()
            .map(|q| QueueSnapshot::of(q, q.min_offset, u64::MAX))
            .collect()
    };
    let in_window = |r: &OffsetRange| r.publish_time_ms >= begin && r.publish_time_ms <= end;
    let mut spans: Vec<(u32, u64, u64)> = Vec::new();
    for (qi, q) in queues.iter().enumerate() {
        let mut ranges = Vec::new();
        for run in &q.index {
            if run.max_publish_ms >= begin && run.min_publish_ms <= end {
                let section = st
                    .reader
                    .index()
                    .run(st.reader.store(), topic, qi as u32, run)
                    .await?;
                ranges.extend(section.ranges().into_iter().filter(|r| in_window(r)));
            }
        }
        ranges.extend(q.ranges.iter().filter(|r| in_window(r)).cloned());
        for r in ranges {
            let from = r.base.max(q.min_offset);
            let to = r.base + u64::from(r.count);
            if to > from {
                spans.push((qi as u32, from, to - from));
            }
        }
    }
    let mut found = Vec::new();
    let mut scanned = 0usize;
    for (queue, from, count) in spans {
        let mut at = from;
        while at < from + count {
            if scanned >= LOOKUP_MAX_SCAN || found.len() >= limit {
                return Ok(found);
            }
            let n = (from + count - at).min(1000) as usize;
            let msgs = st
                .reader
                .read(&st.node.shared_state(), topic, queue, at, n)
                .await?;
            if msgs.is_empty() {
                break;
            }
            scanned += msgs.len();
            at = msgs.last().map_or(at + n as u64, |m| m.offset + 1);
            found.extend(msgs.into_iter().filter(|m| keep(m)));
        }
    }
    found.truncate(limit);
    Ok(found)
}

fn ulid_time(message_id: &str) -> Option<i64> {
    ulid::Ulid::from_string(message_id)
        .ok()
        .map(|u| u.timestamp_ms() as i64)
}

async fn find_message(
    st: &AppState,
    topic: &str,
    message_id: &str,
) -> Result<Option<Stored>, ApiError> {
    let Some(t) = ulid_time(message_id) else {
        return Ok(None);
    };
    let id = message_id.to_string();
    Ok(scan_topic(
        st,
        topic,
        t - LOOKUP_SLACK_MS,
        t + LOOKUP_SLACK_MS,
        move |m| m.message.message_id == id,
        1,
    )
    .await?
    .pop())
}

async fn lookup_message(
    State(st): St,
    Path((topic, message_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    st.authorize(&headers, Action::Sub, &format!("topic/{topic}"))?;
    refresh_unless(&st, |s| s.topics.contains_key(&topic)).await;
    match find_message(&st, &topic, &message_id).await? {
        Some(m) => Ok(Json(message_json(&m)).into_response()),
        None => Err(ApiError::NotFound {
            code: "MessageNotFound",
            message: format!("no visible message {message_id} in topic {topic}"),
        }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyQuery {
    key: String,
    #[serde(default)]
    begin_ms: Option<i64>,
    #[serde(default)]
    end_ms: Option<i64>,
    #[serde(default)]
    max: Option<usize>,
}

async fn lookup_by_key(
    State(st): St,
    Path(topic): Path<String>,
    headers: HeaderMap,
    query: Result<Query<KeyQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    st.authorize(&headers, Action::Sub, &format!("topic/{topic}"))?;
    let Query(q) = query.map_err(|e| ApiError::bad(format!("bad query: {e}")))?;
    let begin = q.begin_ms.unwrap_or(0);
    let end = q.end_ms.unwrap_or(i64::MAX);
    if begin > end {
        return Err(ApiError::bad("begin_ms must not be after end_ms"));
    }
    let max = q.max.unwrap_or(1000);
    if max == 0 || max > 1000 {
        return Err(ApiError::bad("max must be 1..=1000"));
    }
    refresh_unless(&st, |s| s.topics.contains_key(&topic)).await;
    let key = q.key;
    let found = scan_topic(
        &st,
        &topic,
        begin.saturating_sub(LOOKUP_SLACK_MS),
        end,
        move |m| {
            m.message.keys.contains(&key)
                && m.message.publish_time_ms >= begin
                && m.message.publish_time_ms <= end
        },
        max,
    )
    .await?;
    let messages: Vec<Value> = found.iter().map(message_json).collect();
    Ok(Json(json!({"messages": messages})).into_response())
}

async fn cancel_message(
    State(st): St,
    Path((topic, message_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    st.authorize(&headers, Action::Pub, &format!("topic/{topic}"))?;
    refresh_unless(&st, |s| s.topics.contains_key(&topic)).await;
    let (inline, spills) = {
        let s = st.node.state();
        if !s.topics.contains_key(&topic) {
            return Err(topic_not_found(&topic));
        }
        let inline = s
            .timers
            .values()
            .any(|p| p.topic == topic && p.message_id == message_id);
        (inline, s.spills_holding(&message_id))
    };
    // Not inline: the spills whose fingerprints match may hold it (immutable objects; a
    // fingerprint can match by chance, so look).
    let mut spilled_in = None;
    if !inline {
        for object in spills {
            let file = segment_writer::manifest::timers::get_spill(st.node.store(), &object)
                .await
                .map_err(ApiError::from)?;
            if file
                .timers
                .iter()
                .any(|t| t.message.message_id == message_id && t.message.topic == topic)
            {
                spilled_in = Some(object);
                break;
            }
        }
    }
    if inline || spilled_in.is_some() {
        let cancel = Command::CancelTimer {
            topic: topic.clone(),
            message_id: message_id.clone(),
            spilled_in,
        };
        match one(submit_and_apply(&st, vec![cancel]).await?) {
            Ok(_) => return Ok(StatusCode::NO_CONTENT.into_response()),
            // Fired meanwhile: fall through to tell 409 from 404.
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if find_message(&st, &topic, &message_id).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "message {message_id} is already due (visible)"
        )));
    }
    Err(ApiError::NotFound {
        code: "MessageNotFound",
        message: format!("no delayed message {message_id} in topic {topic}"),
    })
}

// ---------- transactions ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    action: String,
}

async fn decide(
    State(st): St,
    Path(transaction_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let claims = st.verifier.verify(&headers)?;
    let b: DecisionBody = body_json(body, st.limits.max_request_bytes).await?;
    let commit = match b.action.as_str() {
        "commit" => true,
        "rollback" => false,
        other => {
            return Err(ApiError::bad(format!(
                "action must be commit or rollback, not {other:?}"
            )));
        }
    };
    let known = |s: &segment_writer::manifest::State| {
        s.halves
            .get(&transaction_id)
            .map(|h| h.producer_group.clone())
            .or_else(|| {
                s.decisions
                    .get(&transaction_id)
                    .map(|d| d.producer_group.clone())
            })
    };
    refresh_unless(&st, |s| known(s).is_some()).await;
    let Some(producer_group) = known(&st.node.state()) else {
        return Err(ApiError::NotFound {
            code: "TransactionNotFound",
            message: format!("transaction {transaction_id} does not exist"),
        });
    };
    claims.require(Action::Pub, &format!("producer/{producer_group}"))?;
    let cmd = Command::Decide {
        transaction_id,
        commit,
    };
    match one(submit_and_apply(&st, vec![cmd]).await?)? {
        Outcome::Decided { committed } => Ok(Json(
            json!({"state": if committed { "committed" } else { "rolled_back" }}),
        )
        .into_response()),
        o => Err(ApiError::Internal(format!("unexpected outcome {o:?}"))),
    }
}

/// `GET /v1/transactions/{id}` (an extension): the state of a transaction, for operators and
/// producers that lost track of a decision.
async fn get_transaction(
    State(st): St,
    Path(transaction_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let claims = st.verifier.verify(&headers)?;
    let view = |s: &segment_writer::manifest::State| {
        if let Some(h) = s.halves.get(&transaction_id) {
            Some((
                h.producer_group.clone(),
                json!({"transaction_id": transaction_id, "state": "pending", "producer_group": h.producer_group, "message_id": h.message.message_id, "topic": h.message.topic, "check_times": h.checks}),
            ))
        } else {
            s.decisions.get(&transaction_id).map(|d| {
                (
                    d.producer_group.clone(),
                    json!({"transaction_id": transaction_id, "state": if d.committed { "committed" } else { "rolled_back" }, "producer_group": d.producer_group}),
                )
            })
        }
    };
    refresh_unless(&st, |s| view(s).is_some()).await;
    let Some((group, v)) = view(&st.node.state()) else {
        return Err(ApiError::NotFound {
            code: "TransactionNotFound",
            message: format!("transaction {transaction_id} does not exist"),
        });
    };
    claims.require(Action::Pub, &format!("producer/{group}"))?;
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProducerGroupBody {
    #[serde(default)]
    check_immunity_ms: Option<i64>,
    #[serde(default)]
    check_interval_ms: Option<i64>,
    #[serde(default)]
    max_checks: Option<u32>,
}

async fn put_producer_group(
    State(st): St,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    st.authorize(&headers, Action::Pub, &format!("producer/{group}"))?;
    check_name("producer group", &group, 120)?;
    let b: ProducerGroupBody = body_json(body, st.limits.max_request_bytes).await?;
    let day = 86_400_000;
    for (name, v) in [
        ("check_immunity_ms", b.check_immunity_ms),
        ("check_interval_ms", b.check_interval_ms),
    ] {
        if v.is_some_and(|v| !(1..=day).contains(&v)) {
            return Err(ApiError::bad(format!("{name} must be 1..={day}")));
        }
    }
    if b.max_checks.is_some_and(|m| m > 1000) {
        return Err(ApiError::bad("max_checks must be at most 1000"));
    }
    let cmd = Command::ConfigureProducerGroup {
        producer_group: group.clone(),
        check_immunity_ms: b.check_immunity_ms,
        check_interval_ms: b.check_interval_ms,
        max_checks: b.max_checks,
    };
    one(submit_and_apply(&st, vec![cmd]).await?)?;
    let p = st.node.state().producer_settings(&group);
    Ok(Json(json!({"producer_group": group, "check_immunity_ms": p.check_immunity_ms, "check_interval_ms": p.check_interval_ms, "max_checks": p.max_checks})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceBody {
    check_url: String,
    #[serde(default = "default_instance_ttl")]
    ttl_ms: i64,
}

fn default_instance_ttl() -> i64 {
    30_000
}

async fn put_producer_instance(
    State(st): St,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    st.authorize(&headers, Action::Pub, &format!("producer/{group}"))?;
    check_name("producer group", &group, 120)?;
    check_name("instance", &instance, 120)?;
    let b: InstanceBody = body_json(body, st.limits.max_request_bytes).await?;
    let url =
        url::Url::parse(&b.check_url).map_err(|e| ApiError::bad(format!("bad check_url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::bad("check_url must be http or https"));
    }
    if !(1_000..=3_600_000).contains(&b.ttl_ms) {
        return Err(ApiError::bad("ttl_ms must be 1000..=3600000"));
    }
    let cmd = Command::RegisterProducer {
        producer_group: group.clone(),
        instance: instance.clone(),
        check_url: b.check_url,
        ttl_ms: b.ttl_ms,
    };
    one(submit(&st, vec![cmd]).await?.1)?;
    Ok(
        Json(json!({"producer_group": group, "instance": instance, "ttl_ms": b.ttl_ms}))
            .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksBody {
    #[serde(default)]
    wait_ms: u64,
    #[serde(default = "default_checks_max")]
    max: u32,
}

fn default_checks_max() -> u32 {
    16
}

async fn poll_checks(
    State(st): St,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    st.authorize(&headers, Action::Pub, &format!("producer/{group}"))?;
    check_name("producer group", &group, 120)?;
    let b: ChecksBody = body_json(body, st.limits.max_request_bytes).await?;
    if b.max == 0 || b.max > 1000 {
        return Err(ApiError::bad("max must be 1..=1000"));
    }
    if b.wait_ms > st.limits.max_wait_ms {
        return Err(ApiError::bad(format!(
            "wait_ms must be at most {}",
            st.limits.max_wait_ms
        )));
    }
    let _waiter = long_poll_slot(&st, b.wait_ms)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(b.wait_ms);
    loop {
        if st.node.state().checks_waiting(&group) {
            let claim = Command::ClaimChecks {
                producer_group: group.clone(),
                max: b.max,
            };
            let checks: Vec<CheckDue> = match one(submit_and_apply(&st, vec![claim]).await?)? {
                Outcome::Checks { checks } => checks,
                o => return Err(ApiError::Internal(format!("unexpected outcome {o:?}"))),
            };
            let mut out = Vec::new();
            for due in &checks {
                if let Some(v) = crate::scheduler::check_json(&st.node, &st.reader, due).await {
                    out.push(v);
                }
            }
            if !out.is_empty() {
                return Ok(Json(json!({"checks": out})).into_response());
            }
        }
        if !wait_longer(&st, deadline).await {
            return Ok(Json(json!({"checks": []})).into_response());
        }
    }
}

// ---------- dead letters ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveBody {
    #[serde(default = "default_redrive_max")]
    max_messages: u32,
}

fn default_redrive_max() -> u32 {
    1000
}

/// The ranges of the group's dead-letter queue from its first readable offset (up to `max`
/// offsets) that are folded into index objects: a re-drive carries them, as apply cannot read
/// objects.
async fn folded_dead_letters(
    st: &AppState,
    group: &str,
    max: u32,
) -> Result<Vec<OffsetRange>, ApiError> {
    let dlq = segment_writer::manifest::state::dlq_topic(group);
    let (snap, inline_from) = {
        let s = st.node.state();
        match s.topics.get(&dlq).and_then(|t| t.queues.first()) {
            Some(q) if q.min_offset < q.first_inline() && !q.index.is_empty() => {
                (QueueSnapshot::of(q, q.min_offset, 0), q.first_inline())
            }
            _ => return Ok(Vec::new()),
        }
    };
    let from = snap.min_offset;
    let n = (inline_from - from).min(u64::from(max));
    let mut ranges = st
        .reader
        .index()
        .ranges_from(st.reader.store(), &dlq, 0, &snap, from, n)
        .await?;
    ranges.retain(|r| r.base < inline_from);
    Ok(ranges)
}

async fn redrive(
    State(st): St,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    st.authorize(&headers, Action::Admin, &format!("group/{group}"))?;
    let b: RedriveBody = body_json(body, st.limits.max_request_bytes).await?;
    if b.max_messages == 0 || b.max_messages > 100_000 {
        return Err(ApiError::bad("max_messages must be 1..=100000"));
    }
    refresh_unless(&st, |s| s.groups.contains_key(&group)).await;
    if !st.node.state().groups.contains_key(&group) {
        return Err(group_not_found(&group));
    }
    let folded = folded_dead_letters(&st, &group, b.max_messages).await?;
    let cmd = Command::Redrive {
        group,
        max: b.max_messages,
        folded,
    };
    match one(submit_and_apply(&st, vec![cmd]).await?)? {
        Outcome::Redriven { moved } => Ok(Json(json!({"moved": moved})).into_response()),
        o => Err(ApiError::Internal(format!("unexpected outcome {o:?}"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bodies_share_their_request_only_when_they_are_most_of_it() {
        // 100 messages of 1 KiB in ~110 KiB of JSON: slices.
        assert!(super::bodies_may_share_request(100 * 1024, 110 * 1024));
        // 10 bytes of body in 4 MiB of padding or base64: copies.
        assert!(!super::bodies_may_share_request(10, 4 << 20));
        assert!(super::bodies_may_share_request(0, 0));
    }
}
