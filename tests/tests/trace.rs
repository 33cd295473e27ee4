//! Black-box tests of message trace on the real binary, on a local directory and on the S3
//! server: W3C trace context properties checked at publish and returned unchanged by every
//! read, and `GET …/messages/{id}/trace` telling a message's whole life from the delivery
//! ledger, also after the manifest log versions that decided it were collected, and after the
//! sequencer holding unwritten events was killed (SIGKILL) and another took over; ledger
//! objects deleted with their topic's retention.

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

/// Log versions left in the bucket, oldest first.
async fn log_versions(store: &segment_writer::store::Store) -> Vec<u64> {
    use futures::TryStreamExt;
    let dir = store.paths.log_dir();
    let mut v: Vec<u64> = store
        .inner
        .list(Some(&dir))
        .map_ok(|m| segment_writer::paths::Paths::parse_version(&m.location))
        .try_collect::<Vec<_>>()
        .await
        .expect("list the log")
        .into_iter()
        .flatten()
        .collect();
    v.sort_unstable();
    v
}

/// Keys under `ledger/`.
async fn ledger_objects(store: &segment_writer::store::Store) -> Vec<String> {
    use futures::TryStreamExt;
    store
        .inner
        .list(Some(&store.paths.ledger_root()))
        .map_ok(|m| store.paths.strip_prefix(&m.location).unwrap())
        .try_collect()
        .await
        .expect("list the ledger")
}

/// The ledger rows of `message` at queue 0, offset `offset` of `topic`, as DuckDB reads them
/// from the local directory `root`: `event,group,attempt` lines in time order.
fn duckdb_story(root: &str, topic: &str, offset: u64) -> Vec<String> {
    let python = std::env::var("FERRYMQ_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("FERRYMQ_TEST_PYTHON is not set: run scripts/test (it installs DuckDB)")
    });
    let script = format!(
        r#"
import duckdb, sys
rows = duckdb.sql(f"""
  select distinct on (seq) seq, epoch_ms(time) as ms, event, "group", attempt
  from read_parquet('{{sys.argv[1]}}/ledger/**/*.parquet', hive_partitioning = true)
  where topic = '{topic}' and queue = 0 and {offset} >= "offset" and {offset} < "offset" + "count"
  order by seq""").fetchall()
for seq, ms, event, group, attempt in sorted(rows, key=lambda r: (r[1], r[0])):
    print(f"{{event}},{{group or ''}},{{attempt or ''}}")
"#
    );
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(root)
        .output()
        .expect("run DuckDB");
    assert!(
        out.status.success(),
        "DuckDB failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn settle(api: &Api, group: &str, how: &str, handle: &Value) {
    let body = if how == "nack" {
        json!({"receipt_handles": [handle], "delay_ms": 0})
    } else {
        json!({"receipt_handles": [handle]})
    };
    let r = api.post(&format!("/v1/groups/{group}/{how}"), body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["results"][0]["ok"], true, "{:?}", r.body);
}

async fn trace_survives_log_collection(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    // Checkpoints every few versions and a one-second GC grace: the log versions that decided
    // the message's life are collected within seconds; the ledger is written twice a second.
    let flags = [
        "--gc-grace",
        "1s",
        "--checkpoint-every",
        "4",
        "--checkpoint-min-interval",
        "100ms",
        "--ledger-flush-interval",
        "500ms",
    ];
    let mut gw = Gateway::start(&ts.url, &flags).await;
    let api = Api::admin(&gw);
    let r = api
        .put("/v1/topics/tr", json!({"type": "normal", "queues": 1}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = api
        .put(
            "/v1/groups/trg",
            json!({"subscriptions": [{"topic": "tr"}], "start_from": "earliest",
                   "max_retries": 1, "invisible_ms": 30000, "retry_backoff_ms": [0]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = api
        .post(
            "/v1/topics/tr/messages",
            json!({"messages": [{"body": "other"}, {"body": "doomed",
                "properties": {"traceparent": TRACEPARENT}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.body["results"][1]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let offset = r.body["results"][1]["offset"].as_u64().unwrap();
    let r = api
        .post(
            "/v1/topics/tr/messages",
            json!({"messages": [{"body": "bystander"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The other two are acked at once; "doomed" is nacked on both of its deliveries, so it is
    // dead-lettered, then re-driven and acked on its first new delivery.
    let doomed = |ms: &[Value]| -> Value {
        let mut handle = None;
        for m in ms {
            if m["body"] == "doomed" {
                handle = Some(m.clone());
            }
        }
        handle.unwrap_or_else(|| panic!("doomed not in {ms:?}"))
    };
    let body = json!({"max_messages": 10, "wait_ms": 3000, "consumer": "c1"});
    let first = receive(&api, "trg", body.clone()).await;
    assert_eq!(first.len(), 3, "{first:?}");
    for m in &first {
        if m["body"] != "doomed" {
            settle(&api, "trg", "ack", &m["receipt_handle"]).await;
        }
    }
    let m = doomed(&first);
    assert_eq!(m["delivery_attempt"], 1);
    settle(&api, "trg", "nack", &m["receipt_handle"]).await;
    let m = doomed(&receive(&api, "trg", json!({"wait_ms": 3000, "consumer": "c2"})).await);
    assert_eq!(m["delivery_attempt"], 2);
    settle(&api, "trg", "nack", &m["receipt_handle"]).await;
    let dlq = api
        .get("/v1/topics/DLQ.trg/queues/0/messages?offset=0&max=10")
        .await;
    assert_eq!(
        dlq.body["messages"].as_array().unwrap().len(),
        1,
        "{:?}",
        dlq.body
    );
    let r = api.post("/v1/groups/trg/redrive", json!({})).await;
    assert_eq!(r.body["moved"], 1, "{:?}", r.body);
    let m = doomed(&receive(&api, "trg", json!({"wait_ms": 3000, "consumer": "c3"})).await);
    assert_eq!(m["delivery_attempt"], 1);
    settle(&api, "trg", "ack", &m["receipt_handle"]).await;
    let decided = api.get("/v1/cluster").await.body["manifest_version"]
        .as_u64()
        .unwrap();

    // Wait until every log version up to the last decision is collected and no event of the
    // message is pending in the state any more (all in ledger objects).
    let store = ts.reopen();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let versions = log_versions(&store).await;
        let state = stores::manifest(&store).await;
        let pending = state.pending_events("tr", &id, Some((0, offset)));
        if versions.first().is_some_and(|&v| v > decided) && pending.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log was not collected past {decided} (left: {:?}…) or events are pending: {pending:?}",
            versions.first()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        ledger_objects(&store)
            .await
            .iter()
            .any(|k| k.starts_with("ledger/topic=tr/date=")),
        "ledger objects under ledger/topic=tr/"
    );
    // A restarted gateway (a new sequencer) answers from the ledger objects alone.
    gw.kill9();
    gw.restart().await;
    let api = Api::admin(&gw);
    let r = api.get(&format!("/v1/topics/tr/messages/{id}/trace")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let events = r.body["events"].as_array().unwrap();
    let story: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{},{},{}",
                e["event"].as_str().unwrap(),
                e["group"].as_str().unwrap_or(""),
                e["attempt"]
                    .as_u64()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        story,
        vec![
            "published,,",
            "delivered,trg,1",
            "nacked,trg,1",
            "delivered,trg,2",
            "nacked,trg,2",
            "dead_lettered,trg,",
            "redriven,trg,",
            "delivered,trg,1",
            "acked,trg,1",
        ],
        "{events:?}"
    );
    let consumers: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "delivered")
        .map(|e| e["consumer"].as_str().unwrap())
        .collect();
    assert_eq!(consumers, vec!["c1", "c2", "c3"]);
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["time_ms"].as_i64() <= w[1]["time_ms"].as_i64()),
        "time order"
    );
    assert!(events.iter().all(|e| e["gateway"].is_string()));
    assert!(
        events[5]["detail"]
            .as_str()
            .unwrap()
            .starts_with("DLQ.trg queue 0 offset 0"),
        "{:?}",
        events[5]
    );
    // The trace of the dead-letter copy lives on the DLQ topic.
    let r = api
        .get(&format!("/v1/topics/DLQ.trg/messages/{id}/trace"))
        .await;
    assert_eq!(
        r.status, 404,
        "the DLQ copy was removed by the re-drive: {:?}",
        r.body
    );
    // Unknown ids and topics.
    let r = api
        .get("/v1/topics/tr/messages/01J00000000000000000000000/trace")
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert_eq!(r.code(), "MessageNotFound");
    let r = api
        .get(&format!("/v1/topics/nope/messages/{id}/trace"))
        .await;
    assert_eq!(r.code(), "TopicNotFound");
    // A token without sub on the topic is refused.
    let other = Api::with_token(
        &gw.base,
        ferrymq_tests::common::gateway::token(&["sub:topic/else"]),
    );
    let r = other
        .get(&format!("/v1/topics/tr/messages/{id}/trace"))
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    // SQL over the ledger: the same story, read by DuckDB straight from the directory.
    if backend == Backend::Local {
        let root = ts.url.trim_start_matches("file://");
        assert_eq!(duckdb_story(root, "tr", offset), story);
    }
}
on_real_stores!(trace_survives_log_collection);

/// The events of `id` in `topic` as `event,group,attempt` strings.
async fn story(api: &Api, topic: &str, id: &str) -> Vec<String> {
    let r = api
        .get(&format!("/v1/topics/{topic}/messages/{id}/trace"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{},{},{}",
                e["event"].as_str().unwrap(),
                e["group"].as_str().unwrap_or(""),
                e["attempt"]
                    .as_u64()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            )
        })
        .collect()
}

async fn delayed_and_transactional_messages_have_their_own_story(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let gw = Gateway::start(&ts.url, &["--ledger-flush-interval", "300ms"]).await;
    let api = Api::admin(&gw);
    for (t, kind) in [("dl", "delay"), ("tx", "transaction")] {
        let r = api
            .put(
                &format!("/v1/topics/{t}"),
                json!({"type": kind, "queues": 2}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let r = api
        .put(
            "/v1/groups/dg",
            json!({"subscriptions": [{"topic": "dl"}, {"topic": "tx"}], "start_from": "earliest"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = api
        .post(
            "/v1/topics/dl/messages",
            json!({"messages": [{"body": "soon", "delay_ms": 300}, {"body": "never", "delay_ms": 600_000}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let soon = r.body["results"][0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let never = r.body["results"][1]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .call("DELETE", &format!("/v1/topics/dl/messages/{never}"), None)
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let mut ids = Vec::new();
    for body in ["commit me", "roll me back"] {
        let r = api
            .post(
                "/v1/topics/tx/messages",
                json!({"messages": [{"body": body}], "producer_group": "pg"}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let res = &r.body["results"][0];
        ids.push((
            res["message_id"].as_str().unwrap().to_string(),
            res["transaction_id"].as_str().unwrap().to_string(),
        ));
    }
    for ((_, tx), action) in ids.iter().zip(["commit", "rollback"]) {
        let r = api
            .post(&format!("/v1/transactions/{tx}"), json!({"action": action}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    // Receive and ack both visible ones (the delayed one once due).
    let mut acked = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while acked < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {acked} received"
        );
        for m in receive(&api, "dg", json!({"wait_ms": 1000, "max_messages": 10})).await {
            let r = api
                .post(
                    "/v1/groups/dg/ack",
                    json!({"receipt_handles": [m["receipt_handle"]]}),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            acked += 1;
        }
    }
    // Some of it pending in the state, some in ledger objects: the same answer either way.
    assert_eq!(
        story(&api, "dl", &soon).await,
        vec!["scheduled,,", "due,,", "delivered,dg,1", "acked,dg,1"]
    );
    assert_eq!(
        story(&api, "dl", &never).await,
        vec!["scheduled,,", "cancelled,,"]
    );
    assert_eq!(
        story(&api, "tx", &ids[0].0).await,
        vec!["half,,", "committed,,", "delivered,dg,1", "acked,dg,1"]
    );
    assert_eq!(
        story(&api, "tx", &ids[1].0).await,
        vec!["half,,", "rolled_back,,"]
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        story(&api, "tx", &ids[0].0).await,
        vec!["half,,", "committed,,", "delivered,dg,1", "acked,dg,1"],
        "after the flush"
    );
}
on_real_stores!(delayed_and_transactional_messages_have_their_own_story);

/// Which of `gws` is the sequencer, as `/v1/cluster` on `api` says (`None`: none alive yet).
async fn sequencer_of(api: &Api, gws: &[&Gateway]) -> Option<usize> {
    let c = api.get("/v1/cluster").await.body;
    let addr = c["gateways"]
        .as_array()?
        .iter()
        .find(|g| g["sequencer"] == true)?["address"]
        .as_str()?
        .to_string();
    gws.iter()
        .position(|g| addr.ends_with(&format!(":{}", g.port)))
}

async fn a_killed_sequencer_loses_no_pending_event(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    // Nothing is flushed on its own within the test: every event stays pending in the state.
    let args = [
        "--lease-ttl",
        "2s",
        "--tail-interval",
        "50ms",
        "--ledger-flush-interval",
        "1h",
    ];
    let mut first = Gateway::start(&ts.url, &args).await;
    let mut second = Gateway::start(&ts.url, &args).await;
    let (a, b) = (Api::admin(&first), Api::admin(&second));
    assert_eq!(sequencer_of(&b, &[&first, &second]).await, Some(0));
    let r = a
        .put("/v1/topics/k", json!({"type": "normal", "queues": 2}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = a
        .put(
            "/v1/groups/kg",
            json!({"subscriptions": [{"topic": "k"}], "start_from": "earliest",
                   "retry_backoff_ms": [0]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // Through the follower: its requests are forwarded to the sequencer.
    let mut r = b
        .post(
            "/v1/topics/k/messages",
            json!({"messages": [{"body": "x"}]}),
        )
        .await;
    while r.status == 404 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        r = b
            .post(
                "/v1/topics/k/messages",
                json!({"messages": [{"body": "x"}]}),
            )
            .await;
    }
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.body["results"][0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = receive(&b, "kg", json!({"wait_ms": 3000, "consumer": "c"})).await;
    settle(&b, "kg", "nack", &m[0]["receipt_handle"]).await;
    let m = receive(&b, "kg", json!({"wait_ms": 3000, "consumer": "c"})).await;
    assert_eq!(m[0]["delivery_attempt"], 2);
    settle(&b, "kg", "ack", &m[0]["receipt_handle"]).await;
    let expected = vec![
        "published,,",
        "delivered,kg,1",
        "nacked,kg,1",
        "delivered,kg,2",
        "acked,kg,2",
    ];
    assert_eq!(story(&b, "k", &id).await, expected);
    assert!(
        ledger_objects(&ts.reopen()).await.is_empty(),
        "nothing flushed yet"
    );
    // SIGKILL the sequencer: the follower takes over with the same pending events.
    first.kill9();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sequencer_of(&b, &[&first, &second]).await != Some(1) {
        assert!(std::time::Instant::now() < deadline, "no takeover");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(story(&b, "k", &id).await, expected, "after the takeover");
    // The new sequencer, restarted with a short flush interval, writes them to the ledger.
    let mut fast = args.to_vec();
    fast[5] = "200ms";
    second.restart_with(&fast).await;
    let store = ts.reopen();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let state = stores::manifest(&store).await;
        if state.ledger.events.is_empty() && !ledger_objects(&store).await.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never flushed");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let b = Api::admin(&second);
    assert_eq!(
        story(&b, "k", &id).await,
        expected,
        "from the ledger objects"
    );
    drop(first);
}
on_real_stores!(a_killed_sequencer_loses_no_pending_event);

async fn ledger_objects_go_with_their_topic_retention(backend: Backend) {
    let Some(ts) = stores::fresh(backend) else {
        return;
    };
    let mut gw = Gateway::start(&ts.url, &["--ledger-flush-interval", "200ms"]).await;
    let api = Api::admin(&gw);
    for (t, hours) in [("short", 1), ("long", 72)] {
        let r = api
            .put(
                &format!("/v1/topics/{t}"),
                json!({"type": "normal", "queues": 1, "retention_hours": hours}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let r = api
            .post(
                &format!("/v1/topics/{t}/messages"),
                json!({"messages": [{"body": "x"}]}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let store = ts.reopen();
    let of = |keys: &[String], t: &str| {
        keys.iter()
            .filter(|k| k.starts_with(&format!("ledger/topic={t}/")))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let keys = ledger_objects(&store).await;
        if of(&keys, "short") > 0 && of(&keys, "long") > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not flushed: {keys:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Four hours later (the gateway's clock ahead): the short topic's ledger is past its
    // retention and deleted by the keeper's first pass; the long one's stays.
    gw.restart_with(&[
        "--ledger-flush-interval",
        "200ms",
        "--test-clock-ahead",
        "4h",
    ])
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let keys = ledger_objects(&store).await;
        if of(&keys, "short") == 0 {
            assert!(of(&keys, "long") > 0, "{keys:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not collected: {keys:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
on_real_stores!(ledger_objects_go_with_their_topic_retention);
