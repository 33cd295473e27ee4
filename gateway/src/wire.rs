//! The `/v1` wire format as Rust types: the request and response bodies of every route
//! (API.md), spoken by the gateway's handlers (`http::v1`), by the `ferrymq` shell client, and
//! described by `/openapi.json` (each type derives `ToSchema`: the document is generated from
//! these definitions).
//!
//! Invariants: these types know nothing of the manifest (conversions live at the edge, in
//! `http::v1`) and nothing of the transport; a field the server omits when absent is
//! `skip_serializing_if` here too, and a field it always writes (even as `null`) is always
//! written here. Requests are read strictly by the server (`deny_unknown_fields`: a misspelt
//! field is a 400, not silently ignored); answers are read leniently by the client (unknown
//! fields ignored, figures the server adds later defaulted) so that an older client keeps
//! working against a newer gateway.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The error body of every non-2xx answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The code and message.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code such as `TopicNotFound`, `BadRequest`, `Unauthorized` (read as a string, so
    /// that a client keeps working when a gateway adds a code).
    #[schema(value_type = ErrorCode)]
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
}

/// A parse error of one of the string-valued enums below (from a command-line flag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not one of {expected}")]
pub struct ParseEnumError {
    value: String,
    expected: &'static str,
}

/// Implements `Display` and `FromStr` through the serde names of a unit-variant enum.
macro_rules! names {
    ($ty:ident, $expected:literal, $($variant:ident = $name:literal),+ $(,)?) => {
        impl $ty {
            /// The name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = ParseEnumError;

            fn from_str(s: &str) -> Result<Self, ParseEnumError> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(ParseEnumError { value: s.to_string(), expected: $expected }),
                }
            }
        }
    };
}

/// Every error code the gateway answers with, each with one HTTP status (the exhaustive match
/// in `http::error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ErrorCode {
    /// 400: malformed request (bad JSON, missing or wrong-typed fields, out-of-range numbers).
    BadRequest,
    /// 400: a topic, group, consumer or instance name outside `[A-Za-z0-9._-]`, too long, or
    /// reserved (`DLQ.`).
    InvalidName,
    /// 400: a tag expression or SQL92 filter that does not parse.
    InvalidFilter,
    /// 400: a forged, garbled or other group's receipt handle.
    InvalidReceipt,
    /// 400: a receipt handle whose lease ran out or was superseded.
    ReceiptExpired,
    /// 401: no, an invalid or an expired token.
    Unauthorized,
    /// 403: the token does not permit this.
    Forbidden,
    /// 404: no such route.
    NotFound,
    /// 404.
    TopicNotFound,
    /// 404.
    GroupNotFound,
    /// 404.
    TransactionNotFound,
    /// 404.
    MessageNotFound,
    /// 409: a definition that conflicts with the existing one, or a decision that contradicts
    /// an earlier one.
    Conflict,
    /// 413: a message or request too large.
    PayloadTooLarge,
    /// 422: a message that does not fit its topic's type.
    MessageTypeMismatch,
    /// 429: back-pressure; retry later.
    TooManyRequests,
    /// 503: the object store (or the sequencer) is unavailable; nothing was acknowledged.
    Unavailable,
    /// 500: a bug or a corrupt object.
    Internal,
}

names!(
    ErrorCode,
    "an error code",
    BadRequest = "BadRequest",
    InvalidName = "InvalidName",
    InvalidFilter = "InvalidFilter",
    InvalidReceipt = "InvalidReceipt",
    ReceiptExpired = "ReceiptExpired",
    Unauthorized = "Unauthorized",
    Forbidden = "Forbidden",
    NotFound = "NotFound",
    TopicNotFound = "TopicNotFound",
    GroupNotFound = "GroupNotFound",
    TransactionNotFound = "TransactionNotFound",
    MessageNotFound = "MessageNotFound",
    Conflict = "Conflict",
    PayloadTooLarge = "PayloadTooLarge",
    MessageTypeMismatch = "MessageTypeMismatch",
    TooManyRequests = "TooManyRequests",
    Unavailable = "Unavailable",
    Internal = "Internal",
);

// ---------- topics ----------

/// A topic's message type (RocketMQ 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TopicType {
    Normal,
    Fifo,
    Delay,
    Transaction,
}

names!(
    TopicType,
    "normal, fifo, delay, transaction",
    Normal = "normal",
    Fifo = "fifo",
    Delay = "delay",
    Transaction = "transaction"
);

/// `PUT /v1/topics/{topic}`: omitted fields take the server's defaults (normal, 8, 72).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"type": "normal", "queues": 8, "retention_hours": 72}))]
pub struct CreateTopicRequest {
    /// Default `normal`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TopicType>,
    /// Default 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1024)]
    pub queues: Option<u32>,
    /// Default 72.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_hours: Option<u32>,
}

/// A topic's definition: the answer to create, an entry of the list, the head of a get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"topic": "orders", "type": "normal", "queues": 8, "retention_hours": 72}))]
pub struct TopicInfo {
    pub topic: String,
    #[serde(rename = "type")]
    pub kind: TopicType,
    pub queues: u32,
    pub retention_hours: u32,
    /// Readable messages over all queues (list only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// Offsets per queue (get only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_stats: Option<Vec<QueueStats>>,
}

/// One queue's offsets: `min_offset` the first still readable, `max_offset` the next to be
/// assigned (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueueStats {
    pub queue: u32,
    pub min_offset: u64,
    pub max_offset: u64,
}

/// `GET /v1/topics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TopicList {
    pub topics: Vec<TopicInfo>,
}

// ---------- publish ----------

/// `POST /v1/topics/{topic}/messages`. (The server reads it through a borrowing twin of this
/// type, `service::publish`, so that text bodies are not copied; the black-box tests and the
/// conformance run guard that the two accept the same documents.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"messages": [{"body": "hello", "tag": "TagA", "keys": ["order-1"],
    "properties": {"region": "hz"}}]}))]
pub struct PublishRequest {
    /// 1 to 1,000 messages (more: 413).
    #[schema(min_items = 1)]
    pub messages: Vec<PublishMessage>,
    /// Required on transaction topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_group: Option<String>,
}

/// One message to publish: exactly one of `body` and `body_base64`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
}

/// The answer to a publish: one result per message, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"results": [{"message_id": "01KBMX3V3A5W3E8R9GQ5Y4J2ZC", "queue": 3, "offset": 1041}]}))]
pub struct PublishResponse {
    pub results: Vec<PublishResult>,
}

/// One message's result: `queue` and `offset` once visible (not for delayed or half
/// messages), `transaction_id` for a half message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishResult {
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
}

// ---------- messages (receive, pull, lookup) ----------

/// A stored message as the API shows it. `body` when the bytes are UTF-8, else
/// `body_base64`; never both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub topic: String,
    pub queue: u32,
    pub offset: u64,
    pub message_id: String,
    pub tag: Option<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    pub message_group: Option<String>,
    pub publish_time_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// A dead letter's original topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_topic: Option<String>,
    /// Receive only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_attempt: Option<u32>,
    /// Receive only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_handle: Option<String>,
}

/// `GET /v1/topics/{topic}/queues/{queue}/messages?offset=&max=&wait_ms=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PullQuery {
    /// The first offset to read (default 0; below the queue's first readable offset: from it).
    #[serde(default)]
    pub offset: u64,
    /// At most this many messages (default 100).
    #[serde(default = "default_pull_max")]
    #[param(minimum = 1, maximum = 1000)]
    pub max: u32,
    /// Long-poll up to this long when nothing is there (default 0).
    #[serde(default)]
    #[param(maximum = 30000)]
    pub wait_ms: u64,
}

fn default_pull_max() -> u32 {
    100
}

/// `GET /v1/topics/{topic}/messages?key=&begin_ms=&end_ms=&max=`: messages by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyQuery {
    /// One of the message's keys.
    pub key: String,
    /// Published at or after (epoch ms).
    #[serde(default)]
    pub begin_ms: Option<i64>,
    /// Published at or before (epoch ms).
    #[serde(default)]
    pub end_ms: Option<i64>,
    /// At most this many (default 1000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub max: Option<usize>,
}

/// `GET /v1/archive?topic=`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ArchiveQuery {
    /// Only this topic's files.
    #[serde(default)]
    #[param(pattern = "^[A-Za-z0-9._-]{1,127}$")]
    pub topic: Option<String>,
    /// At most this many files (default 1000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// The `next` of the previous page: the files after it.
    #[serde(default)]
    pub after: Option<String>,
}

/// The answer to a pull, a receive (without `next_offset`) or a lookup by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Messages {
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
    /// A receive's answers to its `ack_receipt_handles`, one per handle, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ack_results: Vec<SettleResult>,
}

/// `GET /v1/topics/{topic}/messages/{message_id}/trace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Trace {
    pub events: Vec<TraceEvent>,
}

/// One event in a message's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TraceEvent {
    pub time_ms: i64,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

// ---------- consumer groups ----------

/// How a group consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupMode {
    Clustering,
    Broadcast,
}

names!(
    GroupMode,
    "clustering, broadcast",
    Clustering = "clustering",
    Broadcast = "broadcast"
);

/// One subscription: a topic and at most one of a tag expression and a SQL92 filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,127}$")]
    pub topic: String,
    /// A RocketMQ tag expression (`*`, `A`, `A || B`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// A SQL92 filter over properties (and `TAGS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// `earliest` or `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NamedPosition {
    Earliest,
    Latest,
}

/// Where a group starts or is reset to: `"earliest"`, `"latest"` or `{"timestamp_ms": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Position {
    Named(NamedPosition),
    Timestamp { timestamp_ms: i64 },
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Named(NamedPosition::Earliest) => f.write_str("earliest"),
            Position::Named(NamedPosition::Latest) => f.write_str("latest"),
            Position::Timestamp { timestamp_ms } => write!(f, "{timestamp_ms}"),
        }
    }
}

impl FromStr for Position {
    type Err = ParseEnumError;

    /// `earliest`, `latest` or epoch milliseconds.
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        match s {
            "earliest" => Ok(Position::Named(NamedPosition::Earliest)),
            "latest" => Ok(Position::Named(NamedPosition::Latest)),
            _ => s
                .parse()
                .map(|timestamp_ms| Position::Timestamp { timestamp_ms })
                .map_err(|_| ParseEnumError {
                    value: s.to_string(),
                    expected: "earliest, latest, epoch milliseconds",
                }),
        }
    }
}

/// How a push carries a message (CloudEvents 1.0 HTTP binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushFormat {
    /// The body as is, attributes as `ce-*` headers.
    #[default]
    Binary,
    /// `application/cloudevents+json`.
    Structured,
}

names!(
    PushFormat,
    "binary, structured",
    Binary = "binary",
    Structured = "structured"
);

/// A group's push endpoint (API.md "Push subscriptions"): omitted fields take the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "http://127.0.0.1:8080/hooks/orders", "max_in_flight": 64,
    "rate_per_s": 0, "timeout_ms": 10000, "format": "binary"}))]
pub struct PushConfig {
    /// Must match one of the gateways' `--push-allow` patterns.
    pub url: String,
    /// Pushes outstanding at once, across all gateways (default 64).
    #[serde(default = "default_push_in_flight")]
    #[schema(minimum = 1, maximum = 10000)]
    pub max_in_flight: u32,
    /// Pushes started per second across all gateways; 0 (the default): no cap.
    #[serde(default)]
    #[schema(maximum = 100000)]
    pub rate_per_s: u32,
    /// A push not answered within this long failed (default 10,000).
    #[serde(default = "default_push_timeout")]
    #[schema(minimum = 100, maximum = 600000)]
    pub timeout_ms: u64,
    #[serde(default)]
    pub format: PushFormat,
}

impl PushConfig {
    /// Pushes to `url` with the defaults.
    pub fn new(url: String) -> Self {
        PushConfig {
            url,
            max_in_flight: default_push_in_flight(),
            rate_per_s: 0,
            timeout_ms: default_push_timeout(),
            format: PushFormat::default(),
        }
    }
}

fn default_push_in_flight() -> u32 {
    64
}

fn default_push_timeout() -> u64 {
    10_000
}

/// A push group's endpoint as the API shows it; `signing_secret` only in the answer to the
/// request that set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PushInfo {
    pub url: String,
    pub max_in_flight: u32,
    pub rate_per_s: u32,
    pub timeout_ms: u64,
    pub format: PushFormat,
    /// Standard Webhooks secret (`whsec_…`): shown once, when push is turned on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// How a push group's deliveries are going, over all gateways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PushStatus {
    /// Pushes outstanding (leased, not settled).
    pub in_flight: u64,
    /// Pushes answered 2xx.
    pub delivered_total: u64,
    /// Pushes that failed (non-2xx, timeout, refused connection).
    pub failed_total: u64,
    pub last_error: Option<String>,
    pub last_error_time_ms: Option<i64>,
    /// While an endpoint's `Retry-After` (a 429 or 503) holds a gateway's pushes of the
    /// group: until when (the latest such pause any gateway reported); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until_ms: Option<i64>,
}

/// `PUT /v1/groups/{group}`: omitted fields take the server's defaults (clustering, latest,
/// 16 retries, 30 s, RocketMQ's backoff ladder or 3 s on FIFO topics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"subscriptions": [{"topic": "orders", "filter": "TagA || TagB"}],
    "mode": "clustering", "start_from": "latest", "max_retries": 16, "invisible_ms": 30000}))]
pub struct CreateGroupRequest {
    #[schema(min_items = 1)]
    pub subscriptions: Vec<Subscription>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<GroupMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_from: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 1000)]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 43200000)]
    pub invisible_ms: Option<i64>,
    /// The wait before attempt 2, 3, …, its last entry repeating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1)]
    pub retry_backoff_ms: Option<Vec<i64>>,
    /// Push delivery to an endpoint instead of `receive` (clustering groups). A PUT that
    /// differs from the existing group only here switches it between pull and push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushConfig>,
}

/// A group's definition, with its lag (get) or backlog summary (list) when the server adds
/// them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupInfo {
    pub group: String,
    pub subscriptions: Vec<Subscription>,
    pub mode: GroupMode,
    pub start_from: Position,
    pub max_retries: u32,
    pub invisible_ms: i64,
    pub retry_backoff_ms: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushInfo>,
    /// A push group's deliveries (get only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_status: Option<PushStatus>,
    /// Per topic and queue (get only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<Vec<QueueLag>>,
    /// Per topic (list only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<Vec<TopicBacklog>>,
    /// Messages in the group's dead-letter topic (list only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<u64>,
}

/// A group's progress on one queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueLag {
    pub topic: String,
    pub queue: u32,
    pub committed_offset: u64,
    pub max_offset: u64,
    pub inflight: u64,
    #[serde(default)]
    pub lag: u64,
    #[serde(default)]
    pub ready: u64,
    #[serde(default)]
    pub retrying: u64,
    #[serde(default)]
    pub oldest_ready_age_ms: Option<i64>,
    #[serde(default)]
    pub oldest_unacked_age_ms: Option<i64>,
}

/// A group's backlog on one topic, summed over its queues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopicBacklog {
    pub topic: String,
    pub lag: u64,
    pub ready: u64,
    pub inflight: u64,
    pub delayed: u64,
    #[serde(default)]
    pub oldest_ready_age_ms: Option<i64>,
    #[serde(default)]
    pub oldest_unacked_age_ms: Option<i64>,
}

/// `GET /v1/groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupInfo>,
}

/// `POST /v1/groups/{group}/receive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"max_messages": 32, "wait_ms": 20000, "invisible_ms": 30000, "consumer": "instance-7"}))]
pub struct ReceiveRequest {
    /// Default 32.
    #[serde(default = "default_receive_max")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_messages: u32,
    /// Long-poll up to this long when nothing is visible (default 0).
    #[serde(default)]
    #[schema(maximum = 30000)]
    pub wait_ms: u64,
    /// Default: the group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 43200000)]
    pub invisible_ms: Option<i64>,
    /// Required in broadcast mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,120}$")]
    pub consumer: Option<String>,
    /// Receipts to ack before receiving, in the same commit (the previous batch's); the
    /// answer's `ack_results` has one result per handle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 1000)]
    pub ack_receipt_handles: Vec<String>,
}

fn default_receive_max() -> u32 {
    32
}

/// `POST /v1/groups/{group}/ack` (and `nack`, with `delay_ms`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    /// 1 to 1,000 handles.
    #[schema(min_items = 1, max_items = 1000)]
    pub receipt_handles: Vec<String>,
    /// Nack only: redeliver after this long (default: the group's backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 3456000000_i64)]
    pub delay_ms: Option<i64>,
}

/// `POST /v1/groups/{group}/ack`: only the handles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// 1 to 1,000 handles.
    #[schema(min_items = 1, max_items = 1000)]
    pub receipt_handles: Vec<String>,
}

/// The answer to ack or nack: one result per handle, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SettleResponse {
    pub results: Vec<SettleResult>,
}

/// `{"ok": true}` or `{"ok": false, "error": "ReceiptExpired" | "InvalidReceipt"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SettleResult {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SettleResult {
    /// Settled (or already settled).
    pub fn ok() -> Self {
        SettleResult {
            ok: true,
            error: None,
        }
    }

    /// Not settled, for the reason `code` names (`ReceiptExpired`, `InvalidReceipt`).
    pub fn error(code: &str) -> Self {
        SettleResult {
            ok: false,
            error: Some(code.to_string()),
        }
    }
}

/// `POST /v1/groups/{group}/reset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,127}$")]
    pub topic: String,
    pub to: Position,
}

/// The answer to a reset: `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResetResponse {}

/// `POST /v1/groups/{group}/redrive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// Default 1000.
    #[serde(default = "default_redrive_max")]
    #[schema(minimum = 1, maximum = 100000)]
    pub max_messages: u32,
}

fn default_redrive_max() -> u32 {
    1000
}

/// The answer to a re-drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RedriveResponse {
    pub moved: u64,
}

/// `POST /v1/groups/{group}/invisibility`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvisibilityRequest {
    pub receipt_handle: String,
    #[schema(minimum = 1, maximum = 43200000)]
    pub invisible_ms: i64,
}

/// The answer to a change of invisibility: the handle that now holds the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvisibilityResponse {
    pub receipt_handle: String,
}

// ---------- transactions ----------

/// A producer's decision on a half message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Commit,
    Rollback,
}

/// `POST /v1/transactions/{transaction_id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "commit"}))]
pub struct DecisionRequest {
    pub action: Decision,
}

/// A transaction's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransactionState {
    Pending,
    Committed,
    RolledBack,
}

/// The answer to a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DecisionResponse {
    /// `committed` or `rolled_back`.
    pub state: TransactionState,
}

/// `GET /v1/transactions/{transaction_id}`: a transaction's state (`message_id`, `topic` and
/// `check_times` while pending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransactionInfo {
    pub transaction_id: String,
    pub state: TransactionState,
    pub producer_group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_times: Option<u32>,
}

/// `PUT /v1/producer-groups/{group}`: omitted fields keep their values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"check_immunity_ms": 6000, "check_interval_ms": 10000, "max_checks": 15}))]
pub struct ProducerGroupRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400000)]
    pub check_immunity_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400000)]
    pub check_interval_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 1000)]
    pub max_checks: Option<u32>,
}

/// A producer group's check-back settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProducerGroupInfo {
    pub producer_group: String,
    pub check_immunity_ms: i64,
    pub check_interval_ms: i64,
    pub max_checks: u32,
}

/// `PUT /v1/producer-groups/{group}/instances/{instance}`: a check-back endpoint (re-sent as a
/// heartbeat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"check_url": "http://127.0.0.1:9000/check", "ttl_ms": 30000}))]
pub struct InstanceRequest {
    /// An http or https URL.
    pub check_url: String,
    /// Default 30,000.
    #[serde(default = "default_instance_ttl")]
    #[schema(minimum = 1000, maximum = 3600000)]
    pub ttl_ms: i64,
}

fn default_instance_ttl() -> i64 {
    30_000
}

/// The answer to an instance registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceInfo {
    pub producer_group: String,
    pub instance: String,
    pub ttl_ms: i64,
}

/// `POST /v1/producer-groups/{group}/checks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecksRequest {
    /// Long-poll up to this long (default 0).
    #[serde(default)]
    #[schema(maximum = 30000)]
    pub wait_ms: u64,
    /// Default 16.
    #[serde(default = "default_checks_max")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max: u32,
}

fn default_checks_max() -> u32 {
    16
}

/// One check-back of a half message: what the gateway POSTs to a `check_url`, and an entry of
/// a poll's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Check {
    pub transaction_id: String,
    pub message_id: String,
    pub topic: String,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// 1 on the first check.
    pub check_times: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

/// The answer to a poll for checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Checks {
    pub checks: Vec<Check>,
}

// ---------- cluster, archive ----------

/// One gateway of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GatewayInfo {
    pub gateway: String,
    pub address: String,
    pub sequencer: bool,
}

/// Delayed messages held by the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimerCounts {
    /// In the manifest's state.
    pub inline: u64,
    /// In spill objects.
    pub spilled: u64,
    pub spill_objects: u64,
}

/// `GET /v1/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterInfo {
    pub manifest_version: u64,
    /// This gateway, then the sequencer if another.
    pub gateways: Vec<GatewayInfo>,
    pub store: String,
    pub sequencer_epoch: Option<u64>,
    pub delayed_messages: TimerCounts,
    pub inline_segments: u64,
}

/// One Parquet file of the archive: offsets half-open, times the publish-time range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArchiveFile {
    /// Relative to the store root.
    pub path: String,
    pub topic: String,
    pub queue: u32,
    pub min_offset: u64,
    pub max_offset: u64,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub rows: u64,
    pub bytes: u64,
}

/// `GET /v1/archive`: a page of files, the attached archive first (by topic, queue and
/// offset), then files of deleted topics not yet collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArchiveList {
    pub files: Vec<ArchiveFile>,
    /// Present when more files follow: pass it as `after` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_read_and_write_as_the_api_spells_them() {
        for (text, wire) in [
            ("earliest", json!("earliest")),
            ("latest", json!("latest")),
            ("1767225600000", json!({"timestamp_ms": 1767225600000_i64})),
        ] {
            let p: Position = text.parse().expect("valid");
            assert_eq!(serde_json::to_value(p).expect("serializes"), wire);
            assert_eq!(serde_json::from_value::<Position>(wire).expect("reads"), p);
            assert_eq!(p.to_string(), text);
        }
        assert!("yesterday".parse::<Position>().is_err());
        assert!(serde_json::from_value::<Position>(json!("oldest")).is_err());
    }

    #[test]
    fn enums_parse_their_wire_names_only() {
        assert_eq!("fifo".parse(), Ok(TopicType::Fifo));
        assert_eq!(
            serde_json::to_value(TopicType::Transaction).expect("ok"),
            json!("transaction")
        );
        assert!("FIFO".parse::<TopicType>().is_err());
        assert_eq!("broadcast".parse(), Ok(GroupMode::Broadcast));
    }

    #[test]
    fn requests_omit_what_is_not_set_and_messages_keep_null_fields() {
        let req = PublishRequest {
            messages: vec![PublishMessage {
                body: Some("x".into()),
                ..Default::default()
            }],
            producer_group: None,
        };
        assert_eq!(
            serde_json::to_value(&req).expect("ok"),
            json!({"messages": [{"body": "x"}]})
        );
        let served = json!({"topic": "t", "queue": 1, "offset": 2, "message_id": "m",
            "tag": null, "keys": [], "properties": {}, "message_group": null,
            "publish_time_ms": 5, "body": "b", "delivery_attempt": 1, "receipt_handle": "r"});
        let m: Message = serde_json::from_value(served.clone()).expect("reads");
        assert_eq!(serde_json::to_value(&m).expect("writes"), served);
    }
}
