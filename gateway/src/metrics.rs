//! Prometheus metrics, one `observe_*` function per metric, served at `/metrics`.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

struct Metrics {
    registry: Registry,
    published: IntCounter,
    publish_ack: Histogram,
    batches: IntCounter,
    inline_written: IntCounter,
    inline_declined: IntCounter,
    batch_bytes: Histogram,
    store_requests: IntCounterVec,
    injected_faults: IntCounter,
    corrupt: IntCounter,
    http: IntCounterVec,
    push: IntCounterVec,
    ledger_events: IntCounter,
    ledger_objects: IntCounter,
    ledger_bytes: IntCounter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let published = IntCounter::new(
        "ferrymq_messages_published_total",
        "Messages acknowledged to publishers",
    )
    .expect("metric");
    let publish_ack = Histogram::with_opts(
        HistogramOpts::new(
            "ferrymq_publish_ack_seconds",
            "Publish request to acknowledgement",
        )
        .buckets(vec![
            0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
        ]),
    )
    .expect("metric");
    let batches = IntCounter::new(
        "ferrymq_batches_total",
        "Publish batches written (as segment objects, or inline in a manifest delta)",
    )
    .expect("metric");
    let inline_written = IntCounter::new(
        "ferrymq_inline_segments_written_total",
        "Inline segments (small batches carried in manifest deltas) written out as objects by this gateway as sequencer",
    )
    .expect("metric");
    let inline_declined = IntCounter::new(
        "ferrymq_inline_declined_total",
        "Small publish batches written as segment objects because the inline backlog (--inline-backlog) was full",
    )
    .expect("metric");
    let batch_bytes = Histogram::with_opts(
        HistogramOpts::new("ferrymq_batch_bytes", "Bytes per publish batch")
            .buckets(prometheus::exponential_buckets(1024.0, 4.0, 8).expect("buckets")),
    )
    .expect("metric");
    let store_requests = IntCounterVec::new(
        Opts::new(
            "ferrymq_store_requests_total",
            "Object store requests by kind",
        ),
        &["op"],
    )
    .expect("metric");
    let injected_faults = IntCounter::new(
        "ferrymq_store_injected_faults_total",
        "Store calls failed on purpose by --store-faults or an outage (tests only)",
    )
    .expect("metric");
    let corrupt = IntCounter::new(
        "ferrymq_corrupt_objects_total",
        "Reads that found a damaged or missing object",
    )
    .expect("metric");
    let http = IntCounterVec::new(
        Opts::new(
            "ferrymq_http_responses_total",
            "HTTP responses by status class",
        ),
        &["class"],
    )
    .expect("metric");
    let push = IntCounterVec::new(
        Opts::new(
            "ferrymq_push_deliveries_total",
            "Pushes to push groups' endpoints by this gateway, by result (delivered: a 2xx answer; failed: anything else, a timeout or a refused connection)",
        ),
        &["result"],
    )
    .expect("metric");
    for result in ["delivered", "failed"] {
        push.with_label_values(&[result]);
    }
    let ledger_events = IntCounter::new(
        "ferrymq_ledger_events_written_total",
        "Delivery-ledger events written to ledger objects by this gateway as sequencer",
    )
    .expect("metric");
    let ledger_objects = IntCounter::new(
        "ferrymq_ledger_objects_written_total",
        "Delivery-ledger objects (Parquet, under ledger/) written by this gateway as sequencer",
    )
    .expect("metric");
    let ledger_bytes = IntCounter::new(
        "ferrymq_ledger_written_bytes_total",
        "Bytes of delivery-ledger objects written by this gateway as sequencer",
    )
    .expect("metric");
    for c in [
        Box::new(push.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(published.clone()),
        Box::new(publish_ack.clone()),
        Box::new(batches.clone()),
        Box::new(inline_written.clone()),
        Box::new(inline_declined.clone()),
        Box::new(batch_bytes.clone()),
        Box::new(store_requests.clone()),
        Box::new(injected_faults.clone()),
        Box::new(corrupt.clone()),
        Box::new(http.clone()),
        Box::new(ledger_events.clone()),
        Box::new(ledger_objects.clone()),
        Box::new(ledger_bytes.clone()),
    ] {
        registry.register(c).expect("register metric");
    }
    Metrics {
        registry,
        published,
        publish_ack,
        batches,
        inline_written,
        inline_declined,
        batch_bytes,
        store_requests,
        injected_faults,
        corrupt,
        http,
        push,
        ledger_events,
        ledger_objects,
        ledger_bytes,
    }
});

/// One push answered (`delivered`) or not.
pub fn observe_push(delivered: bool) {
    let result = if delivered { "delivered" } else { "failed" };
    METRICS.push.with_label_values(&[result]).inc();
}

/// One flush of the delivery ledger: events, objects and bytes written.
pub fn observe_ledger_flush(events: usize, objects: usize, bytes: u64) {
    METRICS.ledger_events.inc_by(events as u64);
    METRICS.ledger_objects.inc_by(objects as u64);
    METRICS.ledger_bytes.inc_by(bytes);
}

/// Messages acknowledged, and the ack latency of their request.
pub fn observe_publish(messages: usize, seconds: f64) {
    METRICS.published.inc_by(messages as u64);
    METRICS.publish_ack.observe(seconds);
}

/// Inline segments written out as objects.
pub fn observe_inline_written(n: usize) {
    METRICS.inline_written.inc_by(n as u64);
}

/// One small batch written as an object because the inline backlog was full.
pub fn observe_inline_declined() {
    METRICS.inline_declined.inc();
}

/// One batch written.
pub fn observe_batch(bytes: usize) {
    METRICS.batches.inc();
    METRICS.batch_bytes.observe(bytes as f64);
}

/// Object store calls so far, by kind (set from the counting wrapper).
pub fn observe_store_requests(puts: u64, gets: u64, lists: u64, deletes: u64) {
    for (op, n) in [
        ("put", puts),
        ("get", gets),
        ("list", lists),
        ("delete", deletes),
    ] {
        let c = METRICS.store_requests.with_label_values(&[op]);
        let have = c.get();
        if n > have {
            c.inc_by(n - have);
        }
    }
}

/// Store calls failed by fault injection so far (set from the counting wrapper).
pub fn observe_store_injected_faults(n: u64) {
    let have = METRICS.injected_faults.get();
    if n > have {
        METRICS.injected_faults.inc_by(n - have);
    }
}

/// A damaged or missing object was found.
pub fn observe_corrupt_object() {
    METRICS.corrupt.inc();
}

/// An HTTP response.
pub fn observe_http(status: u16) {
    let class = match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    };
    METRICS.http.with_label_values(&[class]).inc();
}

/// The text exposition.
pub fn render() -> String {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&METRICS.registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
