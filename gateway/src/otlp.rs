//! Export of the gateway's spans over OTLP: off by default, compiled in with the cargo feature
//! `otlp`, switched on with `--otlp-endpoint` (or the standard `OTEL_EXPORTER_OTLP_ENDPOINT`).
//!
//! The request spans of [`crate::http::otel`], with their `messaging.*` fields, become spans of
//! the service `--otlp-service-name` (default `ferrymq`), named `<operation> <destination>` as
//! the messaging conventions ask, each the child of the caller's W3C `traceparent` when the
//! request carries one. OTLP/HTTP with protobuf to `<endpoint>/v1/traces`, batched on the SDK's
//! own thread; the batch queue is bounded (the SDK's 2,048 spans: beyond it spans are dropped,
//! never buffered without bound). Logs stay on stderr.
//!
//! Without the feature, asking for an endpoint is a startup error that says how to build it,
//! so a deployment that expects traces never runs silently without them.

use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Export settings, from the command line.
#[derive(Debug, Clone, Default)]
pub struct OtlpSettings {
    /// The collector's base URL (`http://collector:4318`); `None`: no export.
    pub endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

/// Flushes and stops the exporter when dropped (at the end of `main`).
#[must_use = "dropping the guard stops the export"]
pub struct OtlpGuard {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for OtlpGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("OTLP export: flushing the last spans failed: {e}");
        }
    }
}

/// A boxed tracing layer over the subscriber `S`.
pub type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync>;

/// The tracing layer that exports spans, if an endpoint is set.
pub fn layer<S>(settings: &OtlpSettings) -> anyhow::Result<(Option<BoxedLayer<S>>, OtlpGuard)>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let Some(endpoint) = settings.endpoint.as_deref() else {
        return Ok((
            None,
            OtlpGuard {
                #[cfg(feature = "otlp")]
                provider: None,
            },
        ));
    };
    #[cfg(feature = "otlp")]
    {
        let exporter = enabled::http_exporter(endpoint)?;
        let provider = enabled::provider(exporter, &settings.service_name);
        let layer = enabled::layer_for(&provider);
        Ok((
            Some(layer),
            OtlpGuard {
                provider: Some(provider),
            },
        ))
    }
    #[cfg(not(feature = "otlp"))]
    {
        anyhow::bail!(
            "--otlp-endpoint {endpoint}: this ferrymq was built without OTLP export; \
             build it with `cargo build --release --features otlp`"
        )
    }
}

/// Makes `span` the child of the trace context in `headers` (`traceparent`, `tracestate`), if
/// any and if spans are exported; otherwise does nothing.
pub fn set_parent(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    #[cfg(feature = "otlp")]
    enabled::set_parent(span, headers);
    #[cfg(not(feature = "otlp"))]
    let _ = (span, headers);
}

#[cfg(feature = "otlp")]
pub(crate) mod enabled {
    use opentelemetry::propagation::{Extractor, TextMapPropagator};
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
    use tracing::Subscriber;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::registry::LookupSpan;

    /// OTLP/HTTP (protobuf) to `<endpoint>/v1/traces`.
    pub(crate) fn http_exporter(
        endpoint: &str,
    ) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .build()
            .map_err(|e| anyhow::anyhow!("OTLP exporter for {url}: {e}"))
    }

    /// A provider that batches spans to `exporter`, as the service `service_name`.
    pub(crate) fn provider(
        exporter: impl SpanExporter + 'static,
        service_name: &str,
    ) -> SdkTracerProvider {
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(service_name.to_string())
                    .build(),
            )
            .build()
    }

    /// The layer exporting the gateway's request spans (debug level, so they are exported
    /// whatever `--log` says) and everything at info and above.
    pub(crate) fn layer_for<S>(provider: &SdkTracerProvider) -> super::BoxedLayer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let filter = Targets::new()
            .with_target("gateway::http", tracing::Level::DEBUG)
            .with_default(tracing::Level::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("ferrymq"))
            .with_filter(filter)
            .boxed()
    }

    struct Headers<'a>(&'a axum::http::HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }

    pub(crate) fn set_parent(span: &tracing::Span, headers: &axum::http::HeaderMap) {
        if !headers.contains_key("traceparent") {
            return;
        }
        let cx = TraceContextPropagator::new().extract(&Headers(headers));
        // An unparsable traceparent leaves the span a root (the HTTP layer refuses it anyway).
        let _ = span.set_parent(cx);
    }
}

#[cfg(all(test, feature = "otlp-test"))]
mod tests {
    use opentelemetry::Value;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tower_http::trace::MakeSpan as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use crate::http::otel::RequestSpan;

    /// A request span goes out through the same layer `serve` installs, to an in-memory
    /// exporter: named by the messaging conventions, with their attributes, as the child of the
    /// caller's `traceparent`; a request without one starts a trace of its own.
    #[test]
    fn otlp_exports_request_spans_with_messaging_attributes_under_the_callers_trace() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(super::enabled::layer_for(&provider));
        tracing::subscriber::with_default(subscriber, || {
            for (path, parent) in [
                (
                    "/v1/topics/orders/messages",
                    Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                ),
                ("/v1/groups/billing/receive", None),
            ] {
                let mut request = axum::http::Request::post(path);
                if let Some(p) = parent {
                    request = request.header("traceparent", p);
                }
                let request = request.body(()).expect("request");
                let span = RequestSpan.make_span(&request);
                span.in_scope(|| tracing::info!("handled"));
            }
        });
        provider.force_flush().expect("flush");
        let spans = exporter.get_finished_spans().expect("spans");
        assert_eq!(spans.len(), 2, "{spans:?}");
        let attr = |i: usize, key: &str| {
            spans[i]
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.clone())
        };
        let send = &spans[0];
        assert_eq!(send.name, "send orders");
        assert_eq!(send.span_kind, opentelemetry::trace::SpanKind::Server);
        assert_eq!(attr(0, "messaging.system"), Some(Value::from("ferrymq")));
        assert_eq!(
            attr(0, "messaging.operation.type"),
            Some(Value::from("send"))
        );
        assert_eq!(
            attr(0, "messaging.destination.name"),
            Some(Value::from("orders"))
        );
        assert_eq!(
            send.span_context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(send.parent_span_id.to_string(), "b7ad6b7169203331");
        let receive = &spans[1];
        assert_eq!(receive.name, "receive billing");
        assert_eq!(
            attr(1, "messaging.consumer.group.name"),
            Some(Value::from("billing"))
        );
        assert_ne!(
            receive.span_context.trace_id(),
            send.span_context.trace_id(),
            "no traceparent: a trace of its own"
        );
        assert_eq!(
            receive.parent_span_id,
            opentelemetry::trace::SpanId::INVALID
        );
    }

    /// Without an endpoint nothing is installed and nothing is exported.
    #[test]
    fn otlp_is_off_without_an_endpoint() {
        let (layer, _guard) =
            super::layer::<tracing_subscriber::Registry>(&super::OtlpSettings::default())
                .expect("no endpoint is fine");
        assert!(layer.is_none());
    }
}
