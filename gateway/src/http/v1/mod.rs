//! The `/v1` handlers, grouped by resource. Each is thin: a [`Caller`] (401), its permission
//! (403), the request read into a `wire` type (400/413), one call of a `service`, and the
//! answer converted to a `wire` type. Each carries its `#[utoipa::path]`: method, path,
//! parameters, bodies and statuses, from which `/openapi.json` is generated.
//!
//! - [`topics`]: `/v1/topics…` definitions; [`messages`]: publish, pull, lookup, cancel.
//! - [`groups`]: `/v1/groups…` definitions, reset, re-drive; [`consume`]: receive, ack,
//!   nack, invisibility.
//! - [`transactions`]: decisions, producer groups, checks; [`cluster`]: cluster and archive.

pub mod cluster;
pub mod consume;
pub mod groups;
pub mod messages;
pub mod topics;
pub mod transactions;

use std::collections::BTreeMap;

use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::DeserializeOwned;

use crate::http::error::{ApiError, ErrorCode};
use crate::reader::Stored;
use crate::service::AppState;

#[cfg(doc)]
use crate::http::auth::Caller;

/// `{topic}` in a path.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by the spec only (handlers take `Path<String>`)
pub(crate) struct TopicPath {
    /// A topic name.
    #[param(pattern = "^[A-Za-z0-9._-]{1,127}$")]
    topic: String,
}

/// `{topic}` and `{message_id}` in a path.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct TopicMessagePath {
    /// A topic name.
    #[param(pattern = "^[A-Za-z0-9._-]{1,127}$")]
    topic: String,
    /// A message id (a ULID).
    message_id: String,
}

/// `{topic}` and `{queue}` in a path.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct TopicQueuePath {
    /// A topic name.
    #[param(pattern = "^[A-Za-z0-9._-]{1,127}$")]
    topic: String,
    /// A queue of the topic, from 0.
    queue: u32,
}

/// `{group}` in a path: a consumer group.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct GroupPath {
    /// A consumer group name.
    #[param(pattern = "^[A-Za-z0-9._-]{1,120}$")]
    group: String,
}

/// `{group}` in a path: a producer group.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct ProducerGroupPath {
    /// A producer group name.
    #[param(pattern = "^[A-Za-z0-9._-]{1,120}$")]
    group: String,
}

/// `{group}` and `{instance}` in a path.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct InstancePath {
    /// A producer group name.
    #[param(pattern = "^[A-Za-z0-9._-]{1,120}$")]
    group: String,
    /// A producer instance name.
    #[param(pattern = "^[A-Za-z0-9._-]{1,120}$")]
    instance: String,
}

/// `{transaction_id}` in a path.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct TransactionPath {
    /// A transaction id from a publish's result.
    transaction_id: String,
}

/// The request body, at most the request limit (else 413).
pub(crate) async fn body_bytes(st: &AppState, body: Body) -> Result<bytes::Bytes, ApiError> {
    let limit = st.limits.max_request_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request larger than {limit} bytes"),
        )
    })
}

/// The request body as a `wire` request (an empty body as `{}`), else 400 (or 413).
pub(crate) async fn json_body<T: DeserializeOwned>(
    st: &AppState,
    body: Body,
) -> Result<T, ApiError> {
    let bytes = body_bytes(st, body).await?;
    Ok(crate::service::publish::parse_json(&bytes)?)
}

/// A stored message as the API shows it (`wire::Message`), borrowed from the message:
/// serialized straight into the response (no copy of each body on the receive and pull
/// paths). A unit test checks it reads back as `wire::Message`.
#[derive(serde::Serialize)]
pub(crate) struct MessageOut<'a> {
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
    pub(crate) delivery_attempt: Option<u32>,
    /// Receive only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) receipt_handle: Option<&'a str>,
}

impl<'a> MessageOut<'a> {
    pub(crate) fn of(s: &'a Stored) -> Self {
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

/// The body of a receive, pull or lookup answer (`wire::Messages`).
#[derive(serde::Serialize)]
pub(crate) struct MessagesOut<'a> {
    pub(crate) messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_offset: Option<u64>,
    /// A receive's answers to its `ack_receipt_handles`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) ack_results: Vec<crate::wire::SettleResult>,
}

#[cfg(test)]
mod tests {
    use segment_writer::segment::Message;

    use super::*;
    use crate::wire;

    fn stored(body: &[u8]) -> Stored {
        Stored {
            topic: "t".into(),
            queue: 1,
            offset: 7,
            message: crate::reader::MessageRef::owned(Message {
                topic: "t".into(),
                message_id: "m".into(),
                body: bytes::Bytes::copy_from_slice(body),
                tag: Some("A".into()),
                keys: vec!["k".into()],
                properties: BTreeMap::from([("p".into(), "v".into())]),
                message_group: None,
                producer_group: None,
                publish_time_ms: 5,
                deliver_at_ms: None,
            }),
            origin_topic: None,
            located: None,
        }
    }

    /// The borrowed answer and the wire type are one format: what the server writes reads
    /// back as `wire::Message` and writes again byte for byte.
    #[test]
    fn served_messages_are_the_wire_type() {
        for body in [&b"text"[..], &[0xff, 0xfe][..]] {
            let s = stored(body);
            let mut out = MessageOut::of(&s);
            out.delivery_attempt = Some(2);
            out.receipt_handle = Some("r");
            let served = serde_json::to_value(&out).expect("serializes");
            let m: wire::Message = serde_json::from_value(served.clone()).expect("a wire message");
            assert_eq!(serde_json::to_value(&m).expect("serializes"), served);
            assert_eq!(m.body.is_some(), body == b"text");
        }
    }
}
