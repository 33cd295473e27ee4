//! A leased message as the HTTP request that pushes it: a CloudEvents 1.0 event in the HTTP
//! binding's binary mode (the body as is, attributes as `ce-*` headers) or structured mode
//! (`application/cloudevents+json`), signed as Standard Webhooks 1.0 specifies.
//!
//! Besides the CloudEvents attributes a push carries FerryMQ's own: `ferrymq-topic`,
//! `-queue`, `-offset`, `-message-group`, `-delivery-attempt`, `-publish-time-ms`, and
//! `-keys` (a JSON array) and `-properties` (a JSON object), where header values cannot hold a
//! byte (controls, `%`, anything beyond ASCII) percent-encoded. In structured mode they are
//! extension attributes (`ferrymqtopic`, …; keys and properties as JSON text). W3C
//! `traceparent` / `tracestate` properties go out as headers (and attributes) of those names.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use segment_writer::manifest::PushFormat;
use serde_json::{Map, Value, json};

use super::signing::Secret;
use crate::reader::Stored;

/// What CloudEvents' HTTP binding percent-encodes in a `ce-*` header: space, `"`, `%` and
/// everything outside printable ASCII.
const CE_HEADER: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');
/// What FerryMQ's JSON-valued headers percent-encode: controls, `%` and non-ASCII.
const JSON_HEADER: &AsciiSet = &CONTROLS.add(b'%');

/// One push, ready to send.
#[derive(Debug, Clone)]
pub struct PushRequest {
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    /// `webhook-id`: `<message_id>.<attempt>`.
    pub webhook_id: String,
}

fn ce(v: &str) -> String {
    utf8_percent_encode(v, CE_HEADER).to_string()
}

fn json_header(v: &Value) -> String {
    utf8_percent_encode(&v.to_string(), JSON_HEADER).to_string()
}

/// RFC 3339 with milliseconds, UTC.
fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// The body's media type: the message's `content-type` property, else text or bytes.
fn content_type(m: &Stored) -> String {
    let props = &m.message.properties;
    match props
        .get("content-type")
        .or_else(|| props.get("content_type"))
    {
        Some(t) => t.clone(),
        None if std::str::from_utf8(&m.message.body).is_ok() => "text/plain; charset=utf-8".into(),
        None => "application/octet-stream".into(),
    }
}

fn is_json(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
}

/// Builds the push of `m`, delivery `attempt`, signed with `secret` at `now_ms`.
pub fn build(
    m: &Stored,
    attempt: u32,
    format: PushFormat,
    secret: &Secret,
    now_ms: i64,
) -> PushRequest {
    let msg = &m.message;
    let webhook_id = format!("{}.{attempt}", msg.message_id);
    let media = content_type(m);
    let source = format!("ferrymq://{}", m.topic);
    let time = rfc3339(msg.publish_time_ms);
    let keys = Value::from(msg.keys.clone());
    let props = Value::Object(
        msg.properties
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    );
    let mut headers: Vec<(&'static str, String)> = Vec::with_capacity(20);
    let body = match format {
        PushFormat::Binary => {
            headers.extend([
                ("content-type", media),
                ("ce-specversion", "1.0".into()),
                ("ce-id", ce(&msg.message_id)),
                ("ce-source", ce(&source)),
                ("ce-type", "ferrymq.message".into()),
                ("ce-time", time),
            ]);
            if let Some(tag) = &msg.tag {
                headers.push(("ce-subject", ce(tag)));
            }
            msg.body.clone()
        }
        PushFormat::Structured => {
            let mut event = Map::new();
            event.insert("specversion".into(), json!("1.0"));
            event.insert("id".into(), json!(msg.message_id));
            event.insert("source".into(), json!(source));
            event.insert("type".into(), json!("ferrymq.message"));
            event.insert("time".into(), json!(time));
            if let Some(tag) = &msg.tag {
                event.insert("subject".into(), json!(tag));
            }
            let text = std::str::from_utf8(&msg.body).ok();
            let data = match text {
                Some(t) if is_json(&media) => serde_json::from_str::<Value>(t).ok(),
                Some(t) => Some(Value::String(t.to_string())),
                None => None,
            };
            match data {
                Some(d) => {
                    event.insert("data".into(), d);
                }
                None if text.is_some() => {
                    // JSON promised but not given: the text as is.
                    event.insert("data".into(), json!(text));
                }
                None => {
                    event.insert("data_base64".into(), json!(B64.encode(&msg.body)));
                }
            }
            event.insert("datacontenttype".into(), json!(media));
            event.insert("ferrymqtopic".into(), json!(m.topic));
            event.insert("ferrymqqueue".into(), json!(m.queue));
            event.insert("ferrymqoffset".into(), json!(m.offset.to_string()));
            event.insert("ferrymqattempt".into(), json!(attempt));
            event.insert(
                "ferrymqpublishtime".into(),
                json!(msg.publish_time_ms.to_string()),
            );
            if let Some(g) = &msg.message_group {
                event.insert("ferrymqmessagegroup".into(), json!(g));
            }
            if !msg.keys.is_empty() {
                event.insert("ferrymqkeys".into(), json!(keys.to_string()));
            }
            if !msg.properties.is_empty() {
                event.insert("ferrymqproperties".into(), json!(props.to_string()));
            }
            for name in ["traceparent", "tracestate"] {
                if let Some(v) = msg.properties.get(name) {
                    event.insert(name.into(), json!(v));
                }
            }
            headers.push((
                "content-type",
                "application/cloudevents+json; charset=utf-8".into(),
            ));
            Bytes::from(Value::Object(event).to_string())
        }
    };
    headers.extend([
        ("ferrymq-topic", ce(&m.topic)),
        ("ferrymq-queue", m.queue.to_string()),
        ("ferrymq-offset", m.offset.to_string()),
        ("ferrymq-delivery-attempt", attempt.to_string()),
        ("ferrymq-publish-time-ms", msg.publish_time_ms.to_string()),
    ]);
    if let Some(g) = &msg.message_group {
        headers.push(("ferrymq-message-group", ce(g)));
    }
    if !msg.keys.is_empty() {
        headers.push(("ferrymq-keys", json_header(&keys)));
    }
    if !msg.properties.is_empty() {
        headers.push(("ferrymq-properties", json_header(&props)));
    }
    for name in ["traceparent", "tracestate"] {
        if let Some(v) = msg.properties.get(name) {
            headers.push((name, ce(v)));
        }
    }
    let timestamp = now_ms.div_euclid(1000);
    headers.extend([
        ("webhook-id", webhook_id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            secret.sign(&webhook_id, timestamp, &body),
        ),
    ]);
    PushRequest {
        headers,
        body,
        webhook_id,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use segment_writer::segment::Message;

    use super::*;
    use crate::push::signing::PushKey;

    fn stored(body: &[u8], props: &[(&str, &str)]) -> Stored {
        Stored {
            topic: "orders".into(),
            queue: 2,
            offset: 7,
            message: crate::reader::MessageRef::owned(Message {
                topic: "orders".into(),
                message_id: "01ABC".into(),
                tag: Some("Tag A".into()),
                keys: vec!["k,1".into(), "ключ".into()],
                properties: props
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
                message_group: Some("g1".into()),
                publish_time_ms: 1_700_000_000_123,
                body: Bytes::copy_from_slice(body),
                ..Message::default()
            }),
            origin_topic: None,
            located: None,
        }
    }

    fn header<'a>(r: &'a PushRequest, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn binary_mode_sends_the_body_as_is_with_attributes_as_headers() {
        let secret = PushKey::new(b"c").secret("g", "n");
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let m = stored(
            b"{\"amount\":5}",
            &[
                ("content-type", "application/json"),
                ("traceparent", tp),
                ("note", "100% é"),
            ],
        );
        let r = build(&m, 3, PushFormat::Binary, &secret, 1_700_000_100_999);
        assert_eq!(&r.body[..], b"{\"amount\":5}");
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        assert_eq!(header(&r, "ce-id"), Some("01ABC"));
        assert_eq!(header(&r, "ce-source"), Some("ferrymq://orders"));
        assert_eq!(header(&r, "ce-subject"), Some("Tag%20A"));
        assert_eq!(header(&r, "ce-time"), Some("2023-11-14T22:13:20.123Z"));
        assert_eq!(header(&r, "ferrymq-offset"), Some("7"));
        assert_eq!(header(&r, "ferrymq-delivery-attempt"), Some("3"));
        assert_eq!(header(&r, "traceparent"), Some(tp));
        assert_eq!(header(&r, "webhook-id"), Some("01ABC.3"));
        assert_eq!(header(&r, "webhook-timestamp"), Some("1700000100"));
        let keys = percent_encoding::percent_decode_str(header(&r, "ferrymq-keys").expect("keys"))
            .decode_utf8()
            .expect("utf-8");
        assert_eq!(
            serde_json::from_str::<Vec<String>>(&keys).expect("json"),
            ["k,1", "ключ"]
        );
        let props =
            percent_encoding::percent_decode_str(header(&r, "ferrymq-properties").expect("props"))
                .decode_utf8()
                .expect("utf-8");
        let props: BTreeMap<String, String> = serde_json::from_str(&props).expect("json");
        assert_eq!(props["note"], "100% é");
        // Every value is a legal header value.
        for (n, v) in &r.headers {
            assert!(axum::http::HeaderValue::from_str(v).is_ok(), "{n}: {v}");
        }
        assert_eq!(
            header(&r, "webhook-signature").map(str::to_string),
            Some(secret.sign("01ABC.3", 1_700_000_100, &r.body))
        );
    }

    #[test]
    fn structured_mode_carries_json_data_text_or_base64() {
        let secret = PushKey::new(b"c").secret("g", "n");
        let event = |body: &[u8], props: &[(&str, &str)]| -> Value {
            let r = build(&stored(body, props), 1, PushFormat::Structured, &secret, 0);
            assert_eq!(
                header(&r, "content-type"),
                Some("application/cloudevents+json; charset=utf-8")
            );
            serde_json::from_slice(&r.body).expect("json")
        };
        let e = event(b"{\"a\":1}", &[("content-type", "application/json")]);
        assert_eq!(e["data"], json!({"a": 1}));
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["id"], "01ABC");
        assert_eq!(e["subject"], "Tag A");
        assert_eq!(e["ferrymqoffset"], "7");
        assert_eq!(event(b"plain", &[])["data"], "plain");
        let binary = event(&[0xff, 0x00], &[]);
        assert_eq!(binary["data_base64"], B64.encode([0xff, 0x00]));
        assert_eq!(binary["datacontenttype"], "application/octet-stream");
    }
}
