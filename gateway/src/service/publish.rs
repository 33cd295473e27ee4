//! Publish (API.md "Publish"): validates every message against its topic's type and the
//! limits, answers repeated `dedup_id`s with their first result, picks each message's queue
//! (by message group on FIFO topics, round robin elsewhere), and hands the batch to the
//! [`Batcher`](crate::batcher::Batcher), which answers once it is durable and committed.
//!
//! Invariant: every check runs before anything is handed to the batcher, so a refused publish
//! stores nothing. Text bodies are kept as slices of the request when they are most of it
//! (no copy on the hot path).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use segment_writer::clock::new_ulid;
use segment_writer::manifest::{DEDUP_WINDOW_MS, DedupRecord, PublishMode, TopicKind};
use segment_writer::segment::Message;
use serde::Deserialize;

use super::{AppState, Error, Result, check_name, refresh_unless};
use crate::batcher::{Placed, PublishItem};
use crate::wire::{PublishResponse, PublishResult};

/// The request (`wire::PublishRequest`), read borrowing its text bodies from the request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody<'a> {
    #[serde(borrow)]
    messages: Vec<MessageIn<'a>>,
    #[serde(default)]
    producer_group: Option<String>,
}

/// One message (`wire::PublishMessage`).
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

/// `bytes` as a JSON object (an empty body as `{}`); the result may borrow from `bytes`.
/// Anything but an object is refused: serde would otherwise read a struct from an array of
/// its fields' values (`[null, null]`), which the API does not speak.
pub fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    if bytes.is_empty() {
        return serde_json::from_slice(b"{}")
            .map_err(|e| Error::bad(format!("a JSON body is required: {e}")));
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(Error::bad("the body must be a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| Error::bad(format!("invalid JSON body: {e}")))
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

/// The wire name of a topic type.
pub(crate) fn kind_name(k: TopicKind) -> &'static str {
    match k {
        TopicKind::Normal => "normal",
        TopicKind::Fifo => "fifo",
        TopicKind::Delay => "delay",
        TopicKind::Transaction => "transaction",
    }
}

/// Publishes the messages of `raw` (a `wire::PublishRequest`) to `topic`.
pub async fn publish(st: &AppState, topic: &str, raw: bytes::Bytes) -> Result<PublishResponse> {
    let started = std::time::Instant::now();
    let topic = topic.to_string();
    let b: PublishBody = parse_json(&raw)?;
    if b.messages.is_empty() {
        return Err(Error::bad("messages must not be empty"));
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
        return Err(Error::TooLarge(format!(
            "at most {} messages per publish",
            st.limits.max_messages_per_publish
        )));
    }
    if let Some(g) = &b.producer_group {
        check_name("producer group", g, 120)?;
    }
    refresh_unless(st, |s| s.topics.contains_key(&topic)).await;
    let (kind, queues) = {
        let s = st.node.state();
        let t = s
            .topics
            .get(&topic)
            .ok_or_else(|| Error::topic_not_found(&topic))?;
        (t.def.kind, t.def.queues)
    };
    let now = st.node.clock().now_ms();
    if kind == TopicKind::Transaction && b.producer_group.is_none() {
        return Err(Error::TypeMismatch(format!(
            "transaction topic {topic} needs a producer_group"
        )));
    }
    let mut items = Vec::with_capacity(b.messages.len());
    let mut shown = Vec::with_capacity(b.messages.len());
    for m in b.messages {
        let body = match (m.body, m.body_base64) {
            (Some(_), Some(_)) => {
                return Err(Error::bad("give either body or body_base64, not both"));
            }
            (Some(Cow::Borrowed(t)), None) if share => slice_or_copy(&raw, t),
            (Some(Cow::Borrowed(t)), None) => bytes::Bytes::copy_from_slice(t.as_bytes()),
            (Some(Cow::Owned(t)), None) => bytes::Bytes::from(t.into_bytes()),
            (None, Some(b)) => B64
                .decode(b.as_bytes())
                .map_err(|e| Error::bad(format!("bad body_base64: {e}")))?
                .into(),
            (None, None) => return Err(Error::bad("each message needs body or body_base64")),
        };
        if body.len() > st.limits.max_body_bytes {
            return Err(Error::TooLarge(format!(
                "message body of {} bytes exceeds {}",
                body.len(),
                st.limits.max_body_bytes
            )));
        }
        let props: usize = m.properties.iter().map(|(k, v)| k.len() + v.len()).sum();
        if props > st.limits.max_properties_bytes {
            return Err(Error::TooLarge(format!(
                "properties exceed {} bytes",
                st.limits.max_properties_bytes
            )));
        }
        super::trace_context::validate(&m.properties).map_err(Error::Invalid)?;
        if let Some(d) = &m.dedup_id {
            if d.is_empty() || d.len() > 256 {
                return Err(Error::bad("dedup_id must be 1..=256 bytes"));
            }
        }
        match (kind, &m.message_group) {
            (TopicKind::Fifo, None) => {
                return Err(Error::TypeMismatch(format!(
                    "fifo topic {topic} needs a message_group on every message"
                )));
            }
            (TopicKind::Fifo, Some(g)) if g.is_empty() || g.len() > 256 => {
                return Err(Error::bad("message_group must be 1..=256 bytes"));
            }
            (k, Some(_)) if k != TopicKind::Fifo => {
                return Err(Error::TypeMismatch(format!(
                    "message_group on {} topic {topic}",
                    kind_name(kind)
                )));
            }
            _ => {}
        }
        let deliver_at = match (m.deliver_at, m.delay_ms) {
            (None, None) => None,
            _ if kind != TopicKind::Delay => {
                return Err(Error::TypeMismatch(format!(
                    "a delay on {} topic {topic}",
                    kind_name(kind)
                )));
            }
            (Some(_), Some(_)) => {
                return Err(Error::bad("give deliver_at or delay_ms, not both"));
            }
            (Some(at), None) => Some(at),
            (None, Some(d)) if d < 0 => return Err(Error::bad("delay_ms must not be negative")),
            (None, Some(d)) => Some(now.saturating_add(d)),
        };
        if let Some(at) = deliver_at {
            if at.saturating_sub(now) > st.limits.max_delay_ms {
                return Err(Error::bad(format!(
                    "a delay may be at most {} ms",
                    st.limits.max_delay_ms
                )));
            }
        }
        let message_id = new_ulid(&**st.node.clock()).to_string();
        let queue = match &m.message_group {
            Some(g) => (fnv1a(g.as_bytes()) % u64::from(queues)) as u32,
            None => (st.round_robin.fetch_add(1, Ordering::Relaxed) % u64::from(queues)) as u32,
        };
        let mode = if kind == TopicKind::Transaction {
            let immunity = match m.properties.get("check_immunity_ms") {
                None => None,
                Some(v) => Some(v.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                    Error::bad("property check_immunity_ms must be a non-negative integer")
                })?),
            };
            PublishMode::Half {
                transaction_id: new_ulid(&**st.node.clock()).to_string(),
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
    let mut answers: Vec<Option<(String, u32, Option<String>)>> =
        answers.into_iter().map(Some).collect();
    let results: Vec<PublishResult> = shown
        .into_iter()
        .map(|s| match s {
            Shown::Known(first) => from_dedup(first),
            Shown::New(i) => {
                let (message_id, queue, transaction) =
                    answers[i].take().expect("each item is answered once");
                match &placed[i] {
                    Placed::Offset(o) => PublishResult {
                        message_id,
                        queue: Some(queue),
                        offset: Some(*o),
                        transaction_id: None,
                    },
                    Placed::Duplicate(first) => from_dedup(first.clone()),
                    Placed::Pending => PublishResult {
                        message_id,
                        queue: None,
                        offset: None,
                        transaction_id: transaction,
                    },
                }
            }
        })
        .collect();
    crate::metrics::observe_publish(results.len(), started.elapsed().as_secs_f64());
    Ok(PublishResponse { results })
}

/// The first result of a repeated `dedup_id`.
fn from_dedup(first: DedupRecord) -> PublishResult {
    let (queue, offset) = match (first.queue, first.offset) {
        (Some(q), Some(o)) => (Some(q), Some(o)),
        _ => (None, None),
    };
    PublishResult {
        message_id: first.message_id,
        queue,
        offset,
        transaction_id: first.transaction_id,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Optional {
        #[serde(default)]
        a: Option<u32>,
    }

    #[test]
    fn only_a_json_object_is_a_body() {
        assert_eq!(parse_json::<Optional>(b"").map(|o| o.a).ok(), Some(None));
        assert_eq!(
            parse_json::<Optional>(b" {\"a\": 1}").map(|o| o.a).ok(),
            Some(Some(1))
        );
        for bad in [
            &b"[null]"[..],
            b"null",
            b"1",
            b"\"x\"",
            b"[]",
            b"{\"b\": 1}",
        ] {
            assert!(
                matches!(parse_json::<Optional>(bad), Err(Error::Invalid(_))),
                "{:?}",
                std::str::from_utf8(bad)
            );
        }
    }

    #[test]
    fn bodies_share_their_request_only_when_they_are_most_of_it() {
        // 100 messages of 1 KiB in ~110 KiB of JSON: slices.
        assert!(bodies_may_share_request(100 * 1024, 110 * 1024));
        // 10 bytes of body in 4 MiB of padding or base64: copies.
        assert!(!bodies_may_share_request(10, 4 << 20));
        assert!(bodies_may_share_request(0, 0));
    }
}
