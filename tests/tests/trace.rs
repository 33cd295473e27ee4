//! Black-box tests of message trace on the real binary, on a local directory and on the S3
//! server: W3C trace context properties checked at publish and returned unchanged by every
//! read, and `GET …/messages/{id}/trace` telling a message's whole life from the delivery
//! ledger, also after the manifest log versions that decided it were collected.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report; tests poll on real time

use ferrymq_tests::common::gateway::{Api, Gateway};
use ferrymq_tests::common::stores::{self, Backend};
use ferrymq_tests::on_real_stores;
use serde_json::{Value, json};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE";

async fn receive(api: &Api, group: &str, body: Value) -> Vec<Value> {
    let r = api.post(&format!("/v1/groups/{group}/receive"), body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["messages"].as_array().unwrap().clone()
}

async fn max_offset(api: &Api, topic: &str) -> u64 {
    let t = api.get(&format!("/v1/topics/{topic}")).await.body;
    t["queue_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["max_offset"].as_u64().unwrap())
        .sum()
}

async fn trace_context_is_checked_and_returned_by_every_read(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let gw = Gateway::start(&ts.url, &[]).await;
    let api = Api::admin(&gw);
    let r = api
        .put("/v1/topics/tc", json!({"type": "normal", "queues": 1}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = api
        .put(
            "/v1/groups/tcg",
            json!({"subscriptions": [{"topic": "tc"}], "start_from": "earliest"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    // Malformed trace context: 400, naming the property, and nothing of the request published
    // (the good message before the bad one included).
    let bad_parents = [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ];
    for bad in bad_parents {
        let r = api
            .post(
                "/v1/topics/tc/messages",
                json!({"messages": [
                    {"body": "fine", "properties": {"traceparent": TRACEPARENT}},
                    {"body": "bad", "properties": {"traceparent": bad}}]}),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
        let text = r.body["error"]["message"].as_str().unwrap();
        assert!(text.contains("traceparent"), "{text}");
    }
    for bad in ["Rojo=1", "rojo", &format!("k={}", "v".repeat(600))] {
        let r = api
            .post(
                "/v1/topics/tc/messages",
                json!({"messages": [{"body": "bad",
                    "properties": {"traceparent": TRACEPARENT, "tracestate": bad}}]}),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("tracestate")
        );
    }
    assert_eq!(max_offset(&api, "tc").await, 0, "nothing was published");

    // A valid one is kept as given and comes back on pull, lookup and receive.
    let r = api
        .post(
            "/v1/topics/tc/messages",
            json!({"messages": [{"body": "traced",
                "properties": {"traceparent": TRACEPARENT, "tracestate": TRACESTATE, "k": "v"}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.body["results"][0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let check = |m: &Value, how: &str| {
        assert_eq!(m["properties"]["traceparent"], TRACEPARENT, "{how}: {m:?}");
        assert_eq!(m["properties"]["tracestate"], TRACESTATE, "{how}: {m:?}");
        assert_eq!(m["properties"]["k"], "v", "{how}: {m:?}");
    };
    let r = api
        .get("/v1/topics/tc/queues/0/messages?offset=0&max=10")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    check(&r.body["messages"][0], "pull");
    let r = api.get(&format!("/v1/topics/tc/messages/{id}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    check(&r.body, "lookup");
    let got = receive(&api, "tcg", json!({"wait_ms": 3000})).await;
    assert_eq!(got.len(), 1);
    check(&got[0], "receive");
}
on_real_stores!(trace_context_is_checked_and_returned_by_every_read);
