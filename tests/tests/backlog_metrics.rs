//! Black-box tests of the backlog metrics (API.md "Operations"): real `ferrymq` processes,
//! scraped over HTTP. One gateway, and three on one store, where only the sequencer exports
//! the families, so the sum over the gateways is the single figure.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report; tests drive tokio time directly

use std::time::{Duration, Instant};

use ferrymq_tests::common::gateway::{Api, Gateway};
use ferrymq_tests::common::stores::{self, Backend};
use ferrymq_tests::on_real_stores;
use serde_json::{Value, json};

async fn scrape(gw: &Gateway) -> String {
    let r = reqwest::get(format!("{}/metrics", gw.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The value of `name{group="…",topic="…"}` in a scrape, if present.
fn sample(text: &str, name: &str, group: &str, topic: &str) -> Option<f64> {
    let prefix = format!("{name}{{group=\"{group}\",topic=\"{topic}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

/// The figure summed over every gateway's scrape (absent counts 0), and how many had it.
async fn summed(gws: &[&Gateway], name: &str, group: &str, topic: &str) -> (f64, usize) {
    let mut sum = 0.0;
    let mut exporters = 0;
    for gw in gws {
        if let Some(v) = sample(&scrape(gw).await, name, group, topic) {
            sum += v;
            exporters += 1;
        }
    }
    (sum, exporters)
}

/// Polls until the summed figures of `want` hold (a follower applies a little later), or
/// fails naming what differs.
async fn eventually(gws: &[&Gateway], group: &str, topic: &str, want: &[(&str, f64)]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut got = Vec::new();
        for (name, _) in want {
            got.push(summed(gws, name, group, topic).await);
        }
        let ok = want
            .iter()
            .zip(&got)
            .all(|((_, w), (v, exporters))| v == w && *exporters == 1);
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "wanted {want:?} from exactly one gateway, got (sum, exporters) {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn handles(r: &Value) -> Vec<Value> {
    r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["receipt_handle"].clone())
        .collect()
}

/// Publish 10, receive 4 without acking: ready 6, in flight 4, lag 10, and the oldest unacked
/// message is at least as old as the time waited; ack them: lag 6. `apis` are the gateways
/// to publish through, receive through and ack through (the same one, or three different).
async fn ten_published_four_received(gws: &[&Gateway], apis: [&Api; 3]) {
    let [publisher, receiver, acker] = apis;
    assert_eq!(
        publisher
            .put("/v1/topics/orders", json!({"type": "normal", "queues": 4}))
            .await
            .status,
        201
    );
    assert_eq!(
        publisher
            .put(
                "/v1/groups/billing",
                json!({"subscriptions": [{"topic": "orders"}], "start_from": "earliest"})
            )
            .await
            .status,
        201
    );
    let messages: Vec<Value> = (0..10).map(|i| json!({"body": format!("m{i}")})).collect();
    let r = publisher
        .post("/v1/topics/orders/messages", json!({"messages": messages}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let acked_at = Instant::now();
    let mut received = Vec::new();
    while received.len() < 4 {
        let r = receiver
            .post(
                "/v1/groups/billing/receive",
                json!({"max_messages": 4 - received.len(), "wait_ms": 2000, "invisible_ms": 60000}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        received.extend(handles(&r.body));
    }
    assert_eq!(received.len(), 4);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    eventually(
        gws,
        "billing",
        "orders",
        &[
            ("ferrymq_consumer_ready_messages", 6.0),
            ("ferrymq_consumer_inflight_messages", 4.0),
            ("ferrymq_consumer_lag_messages", 10.0),
            ("ferrymq_consumer_delayed_messages", 0.0),
        ],
    )
    .await;
    let waited = acked_at.elapsed().as_secs_f64();
    let (age, exporters) = summed(
        gws,
        "ferrymq_consumer_oldest_unacked_age_seconds",
        "billing",
        "orders",
    )
    .await;
    assert_eq!(exporters, 1);
    // Stored (the delta's time) before the publish was acknowledged, and scraped after
    // `waited` was measured: a little slack for millisecond rounding.
    assert!(
        age + 0.01 >= waited && age >= 1.5,
        "oldest unacked age {age} s after waiting {waited} s"
    );
    assert!(age < waited + 5.0, "age {age} s is not from this test");
    let r = acker
        .post(
            "/v1/groups/billing/ack",
            json!({"receipt_handles": received}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["ok"] == true),
        "{:?}",
        r.body
    );
    eventually(
        gws,
        "billing",
        "orders",
        &[
            ("ferrymq_consumer_lag_messages", 6.0),
            ("ferrymq_consumer_inflight_messages", 0.0),
            ("ferrymq_consumer_ready_messages", 6.0),
        ],
    )
    .await;
}

async fn backlog_gauges_on_one_gateway(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let gw = Gateway::start(&ts.url, &[]).await;
    let api = Api::admin(&gw);
    ten_published_four_received(&[&gw], [&api, &api, &api]).await;

    // Counters: a redelivery after a nack, then a dead letter (one retry allowed).
    assert_eq!(
        api.put("/v1/topics/audit", json!({"type": "normal", "queues": 1}))
            .await
            .status,
        201
    );
    assert_eq!(
        api.put(
            "/v1/groups/strict",
            json!({"subscriptions": [{"topic": "audit"}], "start_from": "earliest",
                   "max_retries": 1, "retry_backoff_ms": [0]})
        )
        .await
        .status,
        201
    );
    let r = api
        .post(
            "/v1/topics/audit/messages",
            json!({"messages": [{"body": "x"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for expect_attempt in [1, 2] {
        let r = api
            .post(
                "/v1/groups/strict/receive",
                json!({"max_messages": 1, "wait_ms": 2000}),
            )
            .await;
        assert_eq!(r.body["messages"][0]["delivery_attempt"], expect_attempt);
        let r = api
            .post(
                "/v1/groups/strict/nack",
                json!({"receipt_handles": handles(&r.body), "delay_ms": 0}),
            )
            .await;
        assert_eq!(r.body["results"][0]["ok"], true, "{:?}", r.body);
    }
    eventually(
        &[&gw],
        "strict",
        "audit",
        &[
            ("ferrymq_redeliveries_total", 1.0),
            ("ferrymq_dead_letters_total", 1.0),
            ("ferrymq_consumer_lag_messages", 0.0),
        ],
    )
    .await;
    let g = api.get("/v1/groups").await;
    let strict = g.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "strict")
        .unwrap()
        .clone();
    assert_eq!(strict["dead_letters"], 1);
}
on_real_stores!(backlog_gauges_on_one_gateway);

async fn backlog_gauges_on_three_gateways_sum_to_the_same(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let args = ["--lease-ttl", "1s", "--tail-interval", "30ms"];
    let a = Gateway::start(&ts.url, &args).await;
    let b = Gateway::start(&ts.url, &args).await;
    let c = Gateway::start(&ts.url, &args).await;
    let (api_a, api_b, api_c) = (Api::admin(&a), Api::admin(&b), Api::admin(&c));
    ten_published_four_received(&[&a, &b, &c], [&api_b, &api_c, &api_a]).await;
}
on_real_stores!(backlog_gauges_on_three_gateways_sum_to_the_same);

/// `--metrics-per-queue`: the gauges carry a `queue` label, one sample per queue, and add up
/// to the per-topic figure; the counters keep `group` and `topic` only.
async fn backlog_gauges_per_queue_when_asked(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let gw = Gateway::start(&ts.url, &["--metrics-per-queue"]).await;
    let api = Api::admin(&gw);
    assert_eq!(
        api.put("/v1/topics/orders", json!({"type": "normal", "queues": 3}))
            .await
            .status,
        201
    );
    assert_eq!(
        api.put(
            "/v1/groups/billing",
            json!({"subscriptions": [{"topic": "orders"}], "start_from": "earliest"})
        )
        .await
        .status,
        201
    );
    let messages: Vec<Value> = (0..9).map(|i| json!({"body": format!("m{i}")})).collect();
    let r = api
        .post("/v1/topics/orders/messages", json!({"messages": messages}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let per_queue: Vec<u64> =
        r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .fold(vec![0; 3], |mut v, x| {
                v[x["queue"].as_u64().unwrap() as usize] += 1;
                v
            });
    let text = scrape(&gw).await;
    for (q, n) in per_queue.iter().enumerate() {
        let line = format!(
            "ferrymq_consumer_lag_messages{{group=\"billing\",topic=\"orders\",queue=\"{q}\"}} {n}"
        );
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert_eq!(
        sample(&text, "ferrymq_consumer_lag_messages", "billing", "orders"),
        None,
        "no per-topic sample beside the per-queue ones"
    );
    assert!(text.contains("# TYPE ferrymq_dead_letters_total counter"));
}
on_real_stores!(backlog_gauges_per_queue_when_asked);
