//! The request span of every HTTP call, with the OpenTelemetry messaging attributes as span
//! fields (semantic conventions for messaging, `messaging.*`) where the route is a messaging
//! operation: `messaging.system` = `ferrymq`, `messaging.operation.type` (`send`, `receive`,
//! `settle`), `messaging.destination.name` (the topic), `messaging.consumer.group.name` and
//! `messaging.message.id`.
//!
//! They are read from the method and path alone, before routing, so that every handler gets
//! them for free; a subscriber that exports spans (OTLP through `tracing-opentelemetry`,
//! [`crate::otlp`]) maps the fields to attributes, `otel.name` to the span's name, and makes
//! the span a child of the request's `traceparent`. Nothing here allocates for routes outside `/v1/topics` and
//! `/v1/groups` beyond the span itself.

use axum::http::{Method, Request};
use tower_http::trace::MakeSpan;
use tracing::Span;
use tracing::field::Empty;

/// What a messaging route is, by the OpenTelemetry names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Messaging<'a> {
    /// `messaging.operation.type`.
    pub operation: Option<&'static str>,
    /// `messaging.destination.name`: the topic.
    pub destination: Option<&'a str>,
    /// `messaging.consumer.group.name`.
    pub group: Option<&'a str>,
    /// `messaging.message.id`.
    pub message_id: Option<&'a str>,
}

/// The messaging attributes of a request, or `None` when it is no messaging operation.
pub fn classify<'a>(method: &Method, path: &'a str) -> Option<Messaging<'a>> {
    let rest = path.strip_prefix("/v1/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let m = match (method, parts.as_slice()) {
        (&Method::POST, ["topics", topic, "messages"]) => Messaging {
            operation: Some("send"),
            destination: Some(topic),
            ..Messaging::default()
        },
        (&Method::GET, ["topics", topic, "queues", _, "messages"]) => Messaging {
            operation: Some("receive"),
            destination: Some(topic),
            ..Messaging::default()
        },
        (_, ["topics", topic, "messages", id, ..]) => Messaging {
            destination: Some(topic),
            message_id: Some(id),
            ..Messaging::default()
        },
        (_, ["topics", topic, "messages"]) => Messaging {
            destination: Some(topic),
            ..Messaging::default()
        },
        (&Method::POST, ["groups", group, "receive"]) => Messaging {
            operation: Some("receive"),
            group: Some(group),
            ..Messaging::default()
        },
        (&Method::POST, ["groups", group, "ack" | "nack" | "invisibility"]) => Messaging {
            operation: Some("settle"),
            group: Some(group),
            ..Messaging::default()
        },
        (_, ["groups", group, ..]) => Messaging {
            group: Some(group),
            ..Messaging::default()
        },
        _ => return None,
    };
    Some(m)
}

/// `tower_http`'s [`MakeSpan`] for the gateway: the usual request fields, plus the messaging
/// attributes of [`classify`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            uri = %request.uri(),
            version = ?request.version(),
            "messaging.system" = Empty,
            "messaging.operation.type" = Empty,
            "messaging.destination.name" = Empty,
            "messaging.consumer.group.name" = Empty,
            "messaging.message.id" = Empty,
            "otel.name" = Empty,
            "otel.kind" = "server",
        );
        if span.is_disabled() {
            return span;
        }
        crate::otlp::set_parent(&span, request.headers());
        if let Some(m) = classify(request.method(), request.uri().path()) {
            span.record("messaging.system", "ferrymq");
            if let Some(v) = m.operation {
                span.record("messaging.operation.type", v);
                // The messaging conventions' span name: `<operation> <destination>`.
                if let Some(d) = m.destination.or(m.group) {
                    span.record("otel.name", format!("{v} {d}"));
                }
            }
            if let Some(v) = m.destination {
                span.record("messaging.destination.name", v);
            }
            if let Some(v) = m.group {
                span.record("messaging.consumer.group.name", v);
            }
            if let Some(v) = m.message_id {
                span.record("messaging.message.id", v);
            }
        }
        span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messaging_routes_get_their_attributes() {
        let publish = classify(&Method::POST, "/v1/topics/orders/messages").expect("messaging");
        assert_eq!(publish.operation, Some("send"));
        assert_eq!(publish.destination, Some("orders"));
        let pull = classify(&Method::GET, "/v1/topics/orders/queues/3/messages").expect("pull");
        assert_eq!(pull.operation, Some("receive"));
        let receive = classify(&Method::POST, "/v1/groups/billing/receive").expect("receive");
        assert_eq!(
            (receive.operation, receive.group),
            (Some("receive"), Some("billing"))
        );
        let ack = classify(&Method::POST, "/v1/groups/billing/ack").expect("ack");
        assert_eq!(ack.operation, Some("settle"));
        let trace = classify(&Method::GET, "/v1/topics/orders/messages/01J/trace").expect("trace");
        assert_eq!(
            (trace.destination, trace.message_id, trace.operation),
            (Some("orders"), Some("01J"), None)
        );
        assert_eq!(classify(&Method::GET, "/healthz"), None);
        assert_eq!(classify(&Method::GET, "/v1/cluster"), None);
    }
}
