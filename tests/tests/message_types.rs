//! Black-box tests of RocketMQ's message types and consumption modes on the real binary, on a
//! local directory and on the S3 server: FIFO, delayed (with cancel and a restart),
//! transactions (commit, rollback, webhook and poll check-back, max-checks rollback, a
//! decision on another gateway), broadcast, tag and SQL filters, dedup, reset to a
//! timestamp, lookup, and re-drive from the dead-letter queue.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report; tests drive tokio time directly

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrymq_tests::common::gateway::{Api, Gateway};
use ferrymq_tests::common::stores::{self, Backend};
use ferrymq_tests::on_real_stores;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn receive(api: &Api, group: &str, body: Value) -> Vec<Value> {
    let r = api.post(&format!("/v1/groups/{group}/receive"), body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["messages"].as_array().unwrap().clone()
}

async fn ack(api: &Api, group: &str, handles: Vec<Value>) {
    let r = api
        .post(
            &format!("/v1/groups/{group}/ack"),
            json!({"receipt_handles": handles}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for x in r.body["results"].as_array().unwrap() {
        assert_eq!(x["ok"], true, "{:?}", r.body);
    }
}

/// The next offsets of every queue of `topic`, summed.
async fn total_offsets(api: &Api, topic: &str) -> u64 {
    let t = api.get(&format!("/v1/topics/{topic}")).await.body;
    t["queue_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["max_offset"].as_u64().unwrap())
        .sum()
}

/// Everything visible in `topic`, by pulling every queue from 0.
async fn pull_all(api: &Api, topic: &str) -> Vec<Value> {
    let t = api.get(&format!("/v1/topics/{topic}")).await.body;
    let mut out = Vec::new();
    for q in 0..t["queues"].as_u64().unwrap() {
        let r = api
            .get(&format!(
                "/v1/topics/{topic}/queues/{q}/messages?offset=0&max=1000"
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        out.extend(r.body["messages"].as_array().unwrap().iter().cloned());
    }
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---------- FIFO ----------

/// Creates FIFO topic `f` with `queues` queues and group `fg` as `group` defines it.
async fn fifo_topic_and_group(api: &Api, queues: u32, group: Value) {
    let r = api
        .put("/v1/topics/f", json!({"type": "fifo", "queues": queues}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = api.put("/v1/groups/fg", group).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

async fn fifo_order_with_concurrent_consumers_and_nacks(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let gw = Gateway::start(&ts.url, &[]).await;
    let api = Api::admin(&gw);
    fifo_topic_and_group(
        &api,
        4,
        json!({"subscriptions": [{"topic": "f"}], "start_from": "earliest",
               "max_retries": 1000, "invisible_ms": 5000, "retry_backoff_ms": [0]}),
    )
    .await;
    // 12 message groups × 15 messages, interleaved, in batches.
    let (groups, per_group) = (12, 15);
    let mut published: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for round in 0..per_group {
        let msgs: Vec<Value> = (0..groups)
            .map(|g| json!({"body": format!("g{g}-{round}"), "message_group": format!("g{g}")}))
            .collect();
        let r = api
            .post("/v1/topics/f/messages", json!({"messages": msgs}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for (g, res) in r.body["results"].as_array().unwrap().iter().enumerate() {
            published
                .entry(format!("g{g}"))
                .or_default()
                .push(res["message_id"].as_str().unwrap().to_string());
        }
    }
    // A message group always lands on one queue.
    let all = pull_all(&api, "f").await;
    let mut queue_of: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for m in &all {
        queue_of
            .entry(m["message_group"].as_str().unwrap().to_string())
            .or_default()
            .insert(m["queue"].as_u64().unwrap());
    }
    assert!(queue_of.values().all(|qs| qs.len() == 1), "{queue_of:?}");

    // 3 consumers, each nacking about a third of what it gets.
    let acked: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let total = groups * per_group;
    let mut tasks = Vec::new();
    for c in 0..3u64 {
        let (api, acked) = (api.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(c);
            let deadline = Instant::now() + Duration::from_secs(60);
            while acked.lock().unwrap().values().map(Vec::len).sum::<usize>() < total {
                assert!(Instant::now() < deadline, "consumers did not finish");
                let msgs = receive(
                    &api,
                    "fg",
                    json!({"max_messages": 8, "wait_ms": 200, "consumer": format!("c{c}")}),
                )
                .await;
                let mut seen = BTreeSet::new();
                for m in &msgs {
                    let g = m["message_group"].as_str().unwrap().to_string();
                    assert!(seen.insert(g.clone()), "two of {g} in one receive");
                }
                for m in msgs {
                    let g = m["message_group"].as_str().unwrap().to_string();
                    let handle = m["receipt_handle"].clone();
                    if rng.random_bool(0.3) {
                        let r = api
                            .post(
                                "/v1/groups/fg/nack",
                                json!({"receipt_handles": [handle], "delay_ms": 0}),
                            )
                            .await;
                        assert_eq!(r.status, 200);
                        continue;
                    }
                    // Record before the ack is sent: once acked, the next of the group may be
                    // delivered to another consumer at once.
                    acked
                        .lock()
                        .unwrap()
                        .entry(g)
                        .or_default()
                        .push(m["message_id"].as_str().unwrap().to_string());
                    ack(&api, "fg", vec![handle]).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        acked, published,
        "each group acked once each, in publish order"
    );

    // A slow message group does not stall the others.
    for g in ["slow", "fast1", "fast2"] {
        let msgs: Vec<Value> = (0..3)
            .map(|i| json!({"body": format!("{g}-{i}"), "message_group": g}))
            .collect();
        assert_eq!(
            api.post("/v1/topics/f/messages", json!({"messages": msgs}))
                .await
                .status,
            200
        );
    }
    let first = receive(&api, "fg", json!({"max_messages": 1000, "wait_ms": 1000})).await;
    let held: Vec<&Value> = first
        .iter()
        .filter(|m| m["message_group"] == "slow")
        .collect();
    assert_eq!(held.len(), 1, "one of the slow group in flight");
    ack(
        &api,
        "fg",
        first
            .iter()
            .filter(|m| m["message_group"] != "slow")
            .map(|m| m["receipt_handle"].clone())
            .collect(),
    )
    .await;
    let mut fast = 2; // one of each fast group was in the first receive
    let deadline = Instant::now() + Duration::from_secs(20);
    while fast < 6 {
        assert!(
            Instant::now() < deadline,
            "fast groups stalled behind the slow one"
        );
        let msgs = receive(&api, "fg", json!({"max_messages": 1000, "wait_ms": 500})).await;
        assert!(
            msgs.iter().all(|m| m["message_group"] != "slow"),
            "the slow group's next message is delivered while its first is in flight"
        );
        fast += msgs.len();
        ack(
            &api,
            "fg",
            msgs.iter().map(|m| m["receipt_handle"].clone()).collect(),
        )
        .await;
    }
    assert_eq!(fast, 6);
}
on_real_stores!(fifo_order_with_concurrent_consumers_and_nacks);

/// A receive that acks the previous batch (`ack_receipt_handles`) commits those acks with its
/// lease, so the next message of each FIFO message group it frees comes in the same answer.
async fn a_receive_acks_the_previous_batch(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let gw = Gateway::start(&ts.url, &[]).await;
    let api = Api::admin(&gw);
    fifo_topic_and_group(
        &api,
        2,
        json!({"subscriptions": [{"topic": "f"}], "start_from": "earliest"}),
    )
    .await;
    let (groups, per_group) = (5, 4);
    for round in 0..per_group {
        let msgs: Vec<Value> = (0..groups)
            .map(|g| json!({"body": format!("g{g}-{round}"), "message_group": format!("g{g}")}))
            .collect();
        let r = api
            .post("/v1/topics/f/messages", json!({"messages": msgs}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let lag = |api: Api| async move {
        let g = api.get("/v1/groups/fg").await.body;
        let lag = g["lag"].as_array().unwrap().clone();
        let committed: u64 = lag
            .iter()
            .map(|q| q["committed_offset"].as_u64().unwrap())
            .sum();
        let inflight: u64 = lag.iter().map(|q| q["inflight"].as_u64().unwrap()).sum();
        (committed, inflight)
    };

    // Refused: too many handles. Nothing changes.
    let first = receive(&api, "fg", json!({"max_messages": 10})).await;
    assert_eq!(first.len(), groups, "one of each message group");
    let before = lag(api.clone()).await;
    let too_many: Vec<Value> = (0..1001)
        .map(|_| first[0]["receipt_handle"].clone())
        .collect();
    let r = api
        .post(
            "/v1/groups/fg/receive",
            json!({"max_messages": 10, "ack_receipt_handles": too_many}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(lag(api.clone()).await, before);
    assert_eq!(before, (0, groups as u64));

    // Each receive acks the batch before it and gets the next message of every group at once
    // (no wait: without the acks applied first, every group would still be in flight).
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut batch = first;
    for round in 1..=per_group {
        for m in &batch {
            got.entry(m["message_group"].as_str().unwrap().to_string())
                .or_default()
                .push(m["body"].as_str().unwrap().to_string());
        }
        let mut handles: Vec<Value> = batch.iter().map(|m| m["receipt_handle"].clone()).collect();
        handles.push(json!("not-a-receipt"));
        let r = api
            .post(
                "/v1/groups/fg/receive",
                json!({"max_messages": 10, "wait_ms": 0, "ack_receipt_handles": handles}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let results = r.body["ack_results"].as_array().unwrap();
        assert_eq!(results.len(), groups + 1, "{:?}", r.body);
        assert!(
            results[..groups].iter().all(|x| x["ok"] == true),
            "{:?}",
            r.body
        );
        assert_eq!(results[groups]["error"], "InvalidReceipt");
        batch = r.body["messages"].as_array().unwrap().clone();
        let expected = if round < per_group { groups } else { 0 };
        assert_eq!(batch.len(), expected, "round {round}: {:?}", r.body);
    }
    let expected: BTreeMap<String, Vec<String>> = (0..groups)
        .map(|g| {
            (
                format!("g{g}"),
                (0..per_group).map(|r| format!("g{g}-{r}")).collect(),
            )
        })
        .collect();
    assert_eq!(got, expected, "every message once, in order per group");
    assert_eq!(lag(api.clone()).await, ((groups * per_group) as u64, 0));
}
on_real_stores!(a_receive_acks_the_previous_batch);

/// A gateway remembers the message groups of FIFO messages it read, to pass over groups in
/// flight without reading them again. A deleted and re-created topic reuses offsets: what was
/// remembered of the old topic's offset must not make a receive pass over the new topic's
/// message there (which would lease the next message of its group first).
async fn fifo_groups_remembered_do_not_outlive_their_topic(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let gw = Gateway::start(&ts.url, &[]).await;
    let api = Api::admin(&gw);
    let group = json!({"subscriptions": [{"topic": "f"}], "start_from": "earliest"});
    fifo_topic_and_group(&api, 1, group.clone()).await;
    let publish = |bodies: &'static [(&'static str, &'static str)]| {
        let api = api.clone();
        async move {
            let msgs: Vec<Value> = bodies
                .iter()
                .map(|(b, g)| json!({"body": b, "message_group": g}))
                .collect();
            let r = api
                .post("/v1/topics/f/messages", json!({"messages": msgs}))
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
    };
    let bodies = |msgs: &[Value]| -> Vec<String> {
        msgs.iter()
            .map(|m| m["body"].as_str().unwrap().to_string())
            .collect()
    };
    // The old topic: offsets 0-2, with offset 2 in group A, read (and passed over) while A's
    // offset 0 is in flight.
    publish(&[("old-0", "A"), ("old-1", "B"), ("old-2", "A")]).await;
    let got = receive(&api, "fg", json!({"max_messages": 10})).await;
    assert_eq!(bodies(&got), ["old-0", "old-1"]);
    let got = receive(&api, "fg", json!({"max_messages": 10, "wait_ms": 0})).await;
    assert!(got.is_empty(), "{got:?}");

    let r = api.call("DELETE", "/v1/topics/f", None).await;
    assert!(r.status == 200 || r.status == 204, "{:?}", r.body);
    let r = api
        .put("/v1/topics/f", json!({"type": "fifo", "queues": 1}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The new topic: group A in flight at offset 0 again, then offset 2 is group D's first
    // message and offset 3 its second.
    publish(&[("new-0", "A")]).await;
    let got = receive(&api, "fg", json!({"max_messages": 10})).await;
    assert_eq!(bodies(&got), ["new-0"]);
    publish(&[("new-1", "B"), ("new-2", "D"), ("new-3", "D")]).await;
    let got = receive(&api, "fg", json!({"max_messages": 10, "wait_ms": 0})).await;
    assert_eq!(
        bodies(&got),
        ["new-1", "new-2"],
        "D's first message before its second"
    );
}
on_real_stores!(fifo_groups_remembered_do_not_outlive_their_topic);

// ---------- delayed ----------

/// Creates the delay topic `d` (2 queues) and the group `dg` on it, from the earliest.
async fn delay_topic_and_group(api: &Api) {
    assert_eq!(
        api.put("/v1/topics/d", json!({"type": "delay", "queues": 2}))
            .await
            .status,
        201
    );
    assert_eq!(
        api.put(
            "/v1/groups/dg",
            json!({"subscriptions": [{"topic": "d"}], "start_from": "earliest"})
        )
        .await
        .status,
        201
    );
}

async fn delayed_messages_cancel_and_restart(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let mut gw = Gateway::start(&ts.url, &[]).await;
    let api = Api::admin(&gw);
    delay_topic_and_group(&api).await;
    let t0 = now_ms();
    let r = api
        .post(
            "/v1/topics/d/messages",
            json!({"messages": [
                {"body": "in 1.5 s", "delay_ms": 1500},
                {"body": "at +1.5 s", "deliver_at": t0 + 1500},
                {"body": "cancel me", "delay_ms": 60_000},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let results = r.body["results"].as_array().unwrap().clone();
    assert!(
        results
            .iter()
            .all(|x| x.get("offset").is_none() && x["message_id"].is_string()),
        "delayed results carry no offset: {results:?}"
    );
    let id = |i: usize| results[i]["message_id"].as_str().unwrap().to_string();
    // Not visible early: not to pull, receive or lookup.
    assert_eq!(total_offsets(&api, "d").await, 0);
    assert!(receive(&api, "dg", json!({"wait_ms": 0})).await.is_empty());
    assert_eq!(
        api.get(&format!("/v1/topics/d/messages/{}", id(0)))
            .await
            .status,
        404
    );
    // Cancel: 204, then 404; an unknown id is 404.
    assert_eq!(
        api.call("DELETE", &format!("/v1/topics/d/messages/{}", id(2)), None)
            .await
            .status,
        204
    );
    assert_eq!(
        api.call("DELETE", &format!("/v1/topics/d/messages/{}", id(2)), None)
            .await
            .status,
        404
    );
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/v1/topics/d/messages/{}", ulid::Ulid::new()),
            None
        )
        .await
        .status,
        404
    );
    // Visible on time.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 2 && Instant::now() < deadline {
        for m in receive(&api, "dg", json!({"wait_ms": 2000})).await {
            assert!(now_ms() >= t0 + 1500, "delivered before due");
            got.push(m);
        }
    }
    let lag = now_ms() - (t0 + 1500);
    assert_eq!(got.len(), 2, "both due messages delivered");
    assert!(lag < 2000, "delivered {lag} ms after due");
    let bodies: BTreeSet<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, BTreeSet::from(["in 1.5 s", "at +1.5 s"]));
    // Cancelling a due message is 409; lookup finds it.
    assert_eq!(
        api.call("DELETE", &format!("/v1/topics/d/messages/{}", id(0)), None)
            .await
            .status,
        409
    );
    let found = api.get(&format!("/v1/topics/d/messages/{}", id(0))).await;
    assert_eq!(found.status, 200);
    assert_eq!(found.body["body"], "in 1.5 s");

    // A timer survives a SIGKILL of the gateway that took it.
    let due = now_ms() + 2000;
    let r = api
        .post(
            "/v1/topics/d/messages",
            json!({"messages": [{"body": "after restart", "delay_ms": 2000}]}),
        )
        .await;
    assert_eq!(r.status, 200);
    gw.kill9();
    gw.restart().await;
    let api = Api::admin(&gw);
    let mut late = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while late.is_empty() && Instant::now() < deadline {
        late = receive(&api, "dg", json!({"wait_ms": 2000})).await;
    }
    assert!(now_ms() >= due);
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["body"], "after restart");
}
on_real_stores!(delayed_messages_cancel_and_restart);

/// `GET /v1/cluster`'s count of delayed messages (inline, spilled).
async fn timer_counts(api: &Api) -> (u64, u64) {
    let c = api.get("/v1/cluster").await.body;
    (
        c["delayed_messages"]["inline"].as_u64().unwrap(),
        c["delayed_messages"]["spilled"].as_u64().unwrap(),
    )
}

async fn delayed_messages_spill_to_objects_and_back(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    // Tiny thresholds: at most 20 + 16 timers inline, spills of 16, loaded 1 s before due.
    let flags = [
        "--timer-keep-inline",
        "20",
        "--timer-spill-chunk",
        "16",
        "--timer-spill-horizon",
        "3s",
        "--timer-load-ahead",
        "1s",
    ];
    let mut gw = Gateway::start(&ts.url, &flags).await;
    let api = Api::admin(&gw);
    delay_topic_and_group(&api).await;
    // 120 messages due from 5 s to about 12 s from now, published in four batches.
    let t0 = now_ms();
    let mut due: BTreeMap<String, i64> = BTreeMap::new();
    let mut ids = Vec::new();
    for b in 0..4 {
        let messages: Vec<Value> = (0..30)
            .map(|i| {
                let n = b * 30 + i;
                json!({"body": format!("t{n}"), "deliver_at": t0 + 5_000 + n * 60})
            })
            .collect();
        let r = api
            .post("/v1/topics/d/messages", json!({ "messages": messages }))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for (i, x) in r.body["results"].as_array().unwrap().iter().enumerate() {
            let n = b * 30 + i as i64;
            due.insert(format!("t{n}"), t0 + 5_000 + n * 60);
            ids.push(x["message_id"].as_str().unwrap().to_string());
        }
    }
    // The keeper spills those due last until at most 36 are inline.
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut counts = timer_counts(&api).await;
    while counts.0 > 36 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        counts = timer_counts(&api).await;
    }
    assert!(
        counts.0 <= 36 && counts.1 >= 84,
        "inline, spilled: {counts:?}"
    );
    assert_eq!(counts.0 + counts.1, 120);
    // Cancel the message due last (spilled): 204, then 404; it never arrives.
    let last = ids.last().unwrap().clone();
    let path = format!("/v1/topics/d/messages/{last}");
    assert_eq!(api.call("DELETE", &path, None).await.status, 204);
    assert_eq!(api.call("DELETE", &path, None).await.status, 404);
    assert_eq!(timer_counts(&api).await.1, counts.1 - 1);
    due.remove("t119");
    // The spills survive a SIGKILL (they are in the bucket and the manifest).
    gw.kill9();
    gw.restart().await;
    let api = Api::admin(&gw);
    assert_eq!(timer_counts(&api).await.1, counts.1 - 1);
    // Every message arrives once, never before it is due.
    let mut got: BTreeMap<String, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < due.len() && Instant::now() < deadline {
        let ms = receive(&api, "dg", json!({"wait_ms": 1000, "max_messages": 64})).await;
        let at = now_ms();
        let mut handles = Vec::new();
        for m in ms {
            let body = m["body"].as_str().unwrap().to_string();
            let d = due[&body];
            assert!(at >= d, "{body} delivered {} ms early", d - at);
            assert!(got.insert(body.clone(), at - d).is_none(), "{body} twice");
            handles.push(m["receipt_handle"].clone());
        }
        if !handles.is_empty() {
            ack(&api, "dg", handles).await;
        }
    }
    assert_eq!(got.len(), 119, "every message but the cancelled one");
    let worst = got.values().max().copied().unwrap_or(0);
    assert!(worst < 5_000, "a message came {worst} ms after due");
    assert!(
        receive(&api, "dg", json!({"wait_ms": 500}))
            .await
            .is_empty()
    );
    assert_eq!(timer_counts(&api).await, (0, 0));
}
on_real_stores!(delayed_messages_spill_to_objects_and_back);

async fn a_damaged_timer_spill_does_not_hold_up_the_others(backend: Backend) {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    use segment_writer::manifest::timers::SpillFile;
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let flags = [
        "--timer-keep-inline",
        "4",
        "--timer-spill-chunk",
        "4",
        "--timer-spill-horizon",
        "2s",
        "--timer-load-ahead",
        "1s",
    ];
    let gw = Gateway::start(&ts.url, &flags).await;
    let api = Api::admin(&gw);
    delay_topic_and_group(&api).await;
    // 16 messages due 4-5.5 s from now: 4 stay inline, 12 spill into 3 objects.
    let t0 = now_ms();
    let messages: Vec<Value> = (0..16)
        .map(|n| json!({"body": format!("t{n}"), "deliver_at": t0 + 4_000 + n * 100}))
        .collect();
    let r = api
        .post("/v1/topics/d/messages", json!({ "messages": messages }))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let deadline = Instant::now() + Duration::from_secs(3);
    while timer_counts(&api).await != (4, 12) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(timer_counts(&api).await, (4, 12));
    // Damage the spill due first (it would be loaded first).
    let store = ts.reopen();
    let listed: Vec<_> = store
        .inner
        .list(Some(&store.paths.timer_spill_dir()))
        .try_collect()
        .await
        .unwrap();
    let mut spills = Vec::new();
    for m in listed {
        let bytes = store
            .inner
            .get(&m.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let file: SpillFile = serde_json::from_slice(&bytes).unwrap();
        spills.push((file.timers[0].key.clone(), m.location, file));
    }
    spills.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(spills.len(), 3, "three spill objects");
    let (_, damaged, lost) = &spills[0];
    store
        .inner
        .put(damaged, b"{not json".to_vec().into())
        .await
        .unwrap();
    let lost: BTreeSet<String> = lost
        .timers
        .iter()
        .map(|t| t.message.message_id.clone())
        .collect();
    // Everything else arrives; the damaged spill's four never do, and are counted.
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 12 && Instant::now() < deadline {
        let ms = receive(&api, "dg", json!({"wait_ms": 1000, "max_messages": 32})).await;
        let mut handles = Vec::new();
        for m in ms {
            let id = m["message_id"].as_str().unwrap().to_string();
            assert!(
                !lost.contains(&id),
                "a message of the damaged spill appeared"
            );
            assert!(got.insert(id), "delivered twice");
            handles.push(m["receipt_handle"].clone());
        }
        if !handles.is_empty() {
            ack(&api, "dg", handles).await;
        }
    }
    assert_eq!(
        got.len(),
        12,
        "the spills after the damaged one still loaded"
    );
    let corrupt = gw.metric("ferrymq_corrupt_objects_total").await;
    assert!(corrupt >= 1.0, "the damaged spill is counted");
}
on_real_stores!(a_damaged_timer_spill_does_not_hold_up_the_others);

// ---------- transactions ----------

/// A check-back webhook answering `action`, recording what it was sent.
async fn webhook(action: &'static str) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/check", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap_or(0));
                    if buf.len() >= end + 4 + len {
                        break buf[end + 4..end + 4 + len].to_vec();
                    }
                };
                record
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                let answer = json!({"action": action}).to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

async fn publish_half(api: &Api, topic: &str, body: &str, producer: &str) -> (String, String) {
    let r = api
        .post(
            &format!("/v1/topics/{topic}/messages"),
            json!({"messages": [{"body": body}], "producer_group": producer}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let x = &r.body["results"][0];
    assert!(x.get("offset").is_none());
    (
        x["message_id"].as_str().unwrap().to_string(),
        x["transaction_id"].as_str().unwrap().to_string(),
    )
}

async fn bodies(api: &Api, topic: &str) -> BTreeSet<String> {
    pull_all(api, topic)
        .await
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect()
}

async fn transactions_commit_rollback_and_check_backs(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let a = Gateway::start(&ts.url, &[]).await;
    let b = Gateway::start(&ts.url, &["--tail-interval", "50ms"]).await;
    let (api, api_b) = (Api::admin(&a), Api::admin(&b));
    assert_eq!(
        api.put("/v1/topics/tx", json!({"type": "transaction", "queues": 2}))
            .await
            .status,
        201
    );
    // No producer group on a transaction topic: 422, nothing stored.
    let r = api
        .post(
            "/v1/topics/tx/messages",
            json!({"messages": [{"body": "x"}]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "MessageTypeMismatch"));
    // Checks far away for the manual decisions.
    assert_eq!(
        api.put(
            "/v1/producer-groups/manual",
            json!({"check_immunity_ms": 600_000})
        )
        .await
        .status,
        200
    );
    let (_, commit_tx) = publish_half(&api, "tx", "committed", "manual").await;
    let (_, rollback_tx) = publish_half(&api, "tx", "rolled back", "manual").await;
    assert!(
        bodies(&api, "tx").await.is_empty(),
        "half messages are invisible"
    );
    // The decision goes to the other gateway.
    let decide = |api: &Api, tx: &str, action: &str| {
        let (api, path, body) = (
            api.clone(),
            format!("/v1/transactions/{tx}"),
            json!({"action": action}),
        );
        async move { api.post(&path, body).await }
    };
    let r = decide(&api_b, &commit_tx, "commit").await;
    assert_eq!(
        (r.status, r.body["state"].as_str()),
        (200, Some("committed")),
        "{:?}",
        r.body
    );
    let r = decide(&api_b, &rollback_tx, "rollback").await;
    assert_eq!(
        (r.status, r.body["state"].as_str()),
        (200, Some("rolled_back"))
    );
    assert_eq!(
        decide(&api, &commit_tx, "commit").await.status,
        200,
        "idempotent"
    );
    assert_eq!(decide(&api, &commit_tx, "rollback").await.status, 409);
    assert_eq!(decide(&api, &rollback_tx, "commit").await.status, 409);
    let r = decide(&api, "01JUNKNOWNTRANSACTION00000", "commit").await;
    assert_eq!((r.status, r.code()), (404, "TransactionNotFound"));
    let r = decide(&api, &commit_tx, "maybe").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        bodies(&api, "tx").await,
        BTreeSet::from(["committed".to_string()])
    );

    // Webhook check-back: a live instance answers commit.
    let (url, calls) = webhook("commit").await;
    assert_eq!(
        api.put(
            "/v1/producer-groups/hooked",
            json!({"check_immunity_ms": 300, "check_interval_ms": 300})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        api_b
            .put(
                "/v1/producer-groups/hooked/instances/i1",
                json!({"check_url": url, "ttl_ms": 60_000})
            )
            .await
            .status,
        200
    );
    // A dead instance of the same group (nothing listens there): the live one answers instead.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/check", l.local_addr().unwrap())
    };
    assert_eq!(
        api.put(
            "/v1/producer-groups/hooked/instances/i0",
            json!({"check_url": dead, "ttl_ms": 60_000})
        )
        .await
        .status,
        200
    );
    let (hooked_id, _) = publish_half(&api, "tx", "by webhook", "hooked").await;
    // Poll check-back: nobody registered; the poller answers commit.
    assert_eq!(
        api.put(
            "/v1/producer-groups/polled",
            json!({"check_immunity_ms": 300, "check_interval_ms": 300})
        )
        .await
        .status,
        200
    );
    let (polled_id, polled_tx) = publish_half(&api, "tx", "by poll", "polled").await;
    // Max checks: nobody answers; rolled back after 2 checks.
    assert_eq!(
        api.put(
            "/v1/producer-groups/silent",
            json!({"check_immunity_ms": 200, "check_interval_ms": 200, "max_checks": 2})
        )
        .await
        .status,
        200
    );
    let (_, silent_tx) = publish_half(&api, "tx", "never", "silent").await;

    let r = api_b
        .post(
            "/v1/producer-groups/polled/checks",
            json!({"wait_ms": 10_000, "max": 16}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let checks = r.body["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0]["transaction_id"], polled_tx.as_str());
    assert_eq!(checks[0]["message_id"], polled_id.as_str());
    assert_eq!(checks[0]["body"], "by poll");
    assert_eq!(checks[0]["topic"], "tx");
    assert!(checks[0]["check_times"].as_u64().unwrap() >= 1);
    assert_eq!(decide(&api_b, &polled_tx, "commit").await.status, 200);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = bodies(&api, "tx").await;
        let silent = api.get(&format!("/v1/transactions/{silent_tx}")).await;
        let rolled_back = silent.body["state"] == "rolled_back";
        if seen.contains("by webhook") && seen.contains("by poll") && rolled_back {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "check-backs did not finish: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(decide(&api, &silent_tx, "commit").await.status, 409);
    let calls = calls.lock().unwrap().clone();
    assert!(!calls.is_empty());
    assert_eq!(calls[0]["message_id"], hooked_id.as_str());
    assert_eq!(calls[0]["check_times"], 1);
    assert_eq!(calls[0]["body"], "by webhook");
    assert_eq!(
        bodies(&api, "tx").await,
        BTreeSet::from([
            "committed".to_string(),
            "by webhook".to_string(),
            "by poll".to_string()
        ]),
        "no rolled-back message is ever visible"
    );
}
on_real_stores!(transactions_commit_rollback_and_check_backs);

// ---------- broadcast, filters, dedup, reset, lookup, re-drive ----------

async fn broadcast_filters_dedup_reset_lookup_redrive(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let gw = Gateway::start(&ts.url, &[]).await;
    let api = Api::admin(&gw);
    assert_eq!(
        api.put("/v1/topics/n", json!({"queues": 3})).await.status,
        201
    );
    let define = |name: &str, body: Value| {
        let (api, path) = (api.clone(), format!("/v1/groups/{name}"));
        async move { api.put(&path, body).await }
    };
    assert_eq!(define("bc", json!({"subscriptions": [{"topic": "n"}], "mode": "broadcast", "start_from": "earliest"})).await.status, 201);
    assert_eq!(define("tags", json!({"subscriptions": [{"topic": "n", "filter": "TagA || TagB"}], "start_from": "earliest"})).await.status, 201);
    assert_eq!(define("sql", json!({"subscriptions": [{"topic": "n", "sql": "amount > 100 AND (region = 'hz' OR region IS NULL)"}], "start_from": "earliest"})).await.status, 201);
    let bad = define(
        "badsql",
        json!({"subscriptions": [{"topic": "n", "sql": "amount > > 1"}]}),
    )
    .await;
    assert_eq!((bad.status, bad.code()), (400, "InvalidFilter"));
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("column"),
        "{:?}",
        bad.body
    );
    assert_eq!(
        api.get("/v1/groups/badsql").await.status,
        404,
        "a refused definition leaves nothing"
    );

    let msgs = json!([
        {"body": "a1", "tag": "TagA", "properties": {"amount": "150", "region": "hz"}, "keys": ["order-1"]},
        {"body": "b1", "tag": "TagB", "properties": {"amount": "50"}},
        {"body": "c1", "tag": "TagC", "properties": {"amount": "500"}, "keys": ["order-2"]},
        {"body": "c2", "tag": "TagC", "properties": {"amount": "lots", "region": "hz"}},
        {"body": "a2", "tag": "TagA", "properties": {"amount": "101", "region": "sh"}, "keys": ["order-1"]},
    ]);
    let r = api
        .post("/v1/topics/n/messages", json!({"messages": msgs}))
        .await;
    assert_eq!(r.status, 200);
    let a1_id = r.body["results"][0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let drain = |group: &'static str, consumer: Option<&'static str>| {
        let api = api.clone();
        async move {
            let mut out = BTreeSet::new();
            loop {
                let mut body = json!({"max_messages": 100, "wait_ms": 300});
                if let Some(c) = consumer {
                    body["consumer"] = json!(c);
                }
                let got = receive(&api, group, body).await;
                if got.is_empty() {
                    return out;
                }
                for m in &got {
                    out.insert(m["body"].as_str().unwrap().to_string());
                }
                ack(
                    &api,
                    group,
                    got.iter().map(|m| m["receipt_handle"].clone()).collect(),
                )
                .await;
            }
        }
    };
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(drain("tags", None).await, set(&["a1", "b1", "a2"]));
    assert_eq!(drain("sql", None).await, set(&["a1", "c1"]));
    // Filtered-out messages advanced the group's offsets.
    let lag = api.get("/v1/groups/tags").await.body;
    for q in lag["lag"].as_array().unwrap() {
        assert_eq!(q["committed_offset"], q["max_offset"], "{lag:?}");
    }
    // Broadcast: every instance gets every message; a consumer is required.
    let r = api.post("/v1/groups/bc/receive", json!({})).await;
    assert_eq!(r.status, 400);
    let all = set(&["a1", "b1", "c1", "c2", "a2"]);
    for c in ["i1", "i2", "i3"] {
        assert_eq!(drain("bc", Some(c)).await, all, "instance {c}");
    }

    // Dedup: a repeat answers the first result and stores nothing.
    let before = total_offsets(&api, "n").await;
    let first = api
        .post(
            "/v1/topics/n/messages",
            json!({"messages": [{"body": "once", "dedup_id": "d-1"}]}),
        )
        .await;
    let again = api
        .post(
            "/v1/topics/n/messages",
            json!({"messages": [{"body": "twice", "dedup_id": "d-1"}]}),
        )
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["results"], again.body["results"]);
    assert_eq!(total_offsets(&api, "n").await, before + 1);

    // Lookup by id and by key within a time range.
    let m = api.get(&format!("/v1/topics/n/messages/{a1_id}")).await;
    assert_eq!((m.status, m.body["body"].as_str()), (200, Some("a1")));
    assert_eq!(
        api.get(&format!("/v1/topics/n/messages/{}", ulid::Ulid::new()))
            .await
            .status,
        404
    );
    let by_key = api
        .get(&format!(
            "/v1/topics/n/messages?key=order-1&begin_ms=0&end_ms={}",
            now_ms() + 1000
        ))
        .await;
    assert_eq!(by_key.status, 200);
    let found: BTreeSet<String> = by_key.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(found, set(&["a1", "a2"]));
    let none = api
        .get(&format!(
            "/v1/topics/n/messages?key=order-1&begin_ms={}&end_ms={}",
            now_ms() + 60_000,
            now_ms() + 120_000
        ))
        .await;
    assert_eq!(none.body["messages"].as_array().map(Vec::len), Some(0));

    // Reset to a timestamp: only what was published after it is delivered again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        api.post(
            "/v1/topics/n/messages",
            json!({"messages": [{"body": "late", "tag": "TagA"}]})
        )
        .await
        .status,
        200
    );
    assert_eq!(drain("tags", None).await, set(&["late"]));
    let r = api
        .post(
            "/v1/groups/tags/reset",
            json!({"topic": "n", "to": {"timestamp_ms": t}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(drain("tags", None).await, set(&["late"]));
    let r = api
        .post(
            "/v1/groups/tags/reset",
            json!({"topic": "n", "to": "earliest"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(drain("tags", None).await, set(&["a1", "b1", "a2", "late"]));

    // Re-drive: a message dead-lettered after its one delivery comes back to the group.
    assert_eq!(define("dl", json!({"subscriptions": [{"topic": "n"}], "start_from": "latest", "max_retries": 0, "invisible_ms": 300, "retry_backoff_ms": [0]})).await.status, 201);
    assert_eq!(
        api.post(
            "/v1/topics/n/messages",
            json!({"messages": [{"body": "doomed"}]})
        )
        .await
        .status,
        200
    );
    let got = receive(&api, "dl", json!({"wait_ms": 2000})).await;
    assert_eq!(got.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dead = pull_all(&api, "DLQ.dl").await;
        if dead.len() == 1 {
            assert_eq!(dead[0]["body"], "doomed");
            assert_eq!(dead[0]["original_topic"], "n");
            break;
        }
        assert!(Instant::now() < deadline, "not dead-lettered");
        assert!(
            receive(&api, "dl", json!({"wait_ms": 100}))
                .await
                .is_empty(),
            "redelivered past max_retries"
        );
    }
    let r = api
        .post("/v1/groups/dl/redrive", json!({"max_messages": 10}))
        .await;
    assert_eq!(
        (r.status, r.body["moved"].as_u64()),
        (200, Some(1)),
        "{:?}",
        r.body
    );
    let back = receive(&api, "dl", json!({"wait_ms": 2000})).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0]["body"], "doomed");
    assert_eq!(back[0]["delivery_attempt"], 1);
    ack(&api, "dl", vec![back[0]["receipt_handle"].clone()]).await;
    assert!(
        pull_all(&api, "DLQ.dl").await.is_empty(),
        "removed from the DLQ"
    );
    let r = api.post("/v1/groups/nope/redrive", json!({})).await;
    assert_eq!(r.status, 404);
}
on_real_stores!(broadcast_filters_dedup_reset_lookup_redrive);
