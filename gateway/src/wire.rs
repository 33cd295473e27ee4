//! The `/v1` wire format as Rust types: the request and response bodies the `ferrymq` shell
//! client sends and reads (API.md). They describe what the gateway speaks today, field for
//! field, so that the server's handlers can adopt them in place of hand-built JSON.
//!
//! Invariants: these types know nothing of the manifest (no conversions here) and nothing of
//! the transport; a field the server omits when absent is `skip_serializing_if` here too, and
//! a field it always writes (even as `null`) is always written here. Answers are read leniently
//! (unknown fields ignored, figures the server adds later defaulted) so that an older client
//! keeps working against a newer gateway.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The error body of every non-2xx answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The code and message.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable code such as `TopicNotFound`, `BadRequest`, `Unauthorized`.
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

// ---------- topics ----------

/// A topic's message type (RocketMQ 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicRequest {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TopicType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_hours: Option<u32>,
}

/// A topic's definition: the answer to create, an entry of the list, the head of a get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    pub queue: u32,
    pub min_offset: u64,
    pub max_offset: u64,
}

/// `GET /v1/topics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicList {
    pub topics: Vec<TopicInfo>,
}

// ---------- publish ----------

/// `POST /v1/topics/{topic}/messages`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishRequest {
    pub messages: Vec<PublishMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_group: Option<String>,
}

/// One message to publish: exactly one of `body` and `body_base64`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishResponse {
    pub results: Vec<PublishResult>,
}

/// One message's result: `queue` and `offset` once visible (not for delayed or half
/// messages), `transaction_id` for a half message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullQuery {
    pub offset: u64,
    pub max: u32,
    pub wait_ms: u64,
}

/// The answer to a pull, a receive (without `next_offset`) or a lookup by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Messages {
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
    /// A receive's answers to its `ack_receipt_handles`, one per handle, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ack_results: Vec<SettleResult>,
}

/// `GET /v1/topics/{topic}/messages/{message_id}/trace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub events: Vec<TraceEvent>,
}

/// One event in a message's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub topic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// `earliest` or `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedPosition {
    Earliest,
    Latest,
}

/// Where a group starts or is reset to: `"earliest"`, `"latest"` or `{"timestamp_ms": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// `PUT /v1/groups/{group}`: omitted fields take the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroupRequest {
    pub subscriptions: Vec<Subscription>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<GroupMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_from: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invisible_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff_ms: Option<Vec<i64>>,
}

/// A group's definition, with its lag (get) or backlog summary (list) when the server adds
/// them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group: String,
    pub subscriptions: Vec<Subscription>,
    pub mode: GroupMode,
    pub start_from: Position,
    pub max_retries: u32,
    pub invisible_ms: i64,
    pub retry_backoff_ms: Vec<i64>,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupList {
    pub groups: Vec<GroupInfo>,
}

/// `POST /v1/groups/{group}/receive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiveRequest {
    pub max_messages: u32,
    pub wait_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invisible_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// Receipts to ack before receiving, in the same commit (the previous batch's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ack_receipt_handles: Vec<String>,
}

/// `POST /v1/groups/{group}/ack` (and `nack`, with `delay_ms`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleRequest {
    pub receipt_handles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<i64>,
}

/// The answer to ack or nack: one result per handle, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleResponse {
    pub results: Vec<SettleResult>,
}

/// `{"ok": true}` or `{"ok": false, "error": "ReceiptExpired" | "InvalidReceipt"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRequest {
    pub topic: String,
    pub to: Position,
}

/// The answer to a reset: `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetResponse {}

/// `POST /v1/groups/{group}/redrive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveRequest {
    pub max_messages: u32,
}

/// The answer to a re-drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveResponse {
    pub moved: u64,
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
