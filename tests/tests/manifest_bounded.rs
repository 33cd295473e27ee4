//! A manifest that stays small, against real processes and real stores: old offset ranges fold
//! into index objects (`index/`) while everything stays readable over HTTP (pull from offset 0,
//! lookup by id and key, group receive and ack of folded offsets, dead letters and re-drive,
//! reset to a time), also after a SIGKILL and restart; and a data directory written by the
//! previous release opens in this one.
//!
//! The gateways run with a tiny index (`--index-keep-inline 2 --index-chunk 4
//! --index-fan-in 2`) so that a few hundred publishes fold and merge many times.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report; real processes run on real time

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use segment_writer::store::Store;
use serde_json::{Value, json};

use ferrymq_tests::common::gateway::{Api, Gateway};
use ferrymq_tests::common::stores::{Backend, fresh, manifest};
use ferrymq_tests::on_real_stores;

const TINY_INDEX: [&str; 6] = [
    "--index-keep-inline",
    "2",
    "--index-chunk",
    "4",
    "--index-fan-in",
    "2",
];

async fn index_objects(store: &Store) -> usize {
    store
        .inner
        .list(Some(&store.paths.index_dir()))
        .try_collect::<Vec<_>>()
        .await
        .expect("list")
        .len()
}

/// Every message of `topic`/`queue` pulled from offset 0: offset → (message_id, body).
async fn pull_all(api: &Api, topic: &str, queue: u32) -> BTreeMap<u64, (String, String)> {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let r = api
            .get(&format!(
                "/v1/topics/{topic}/queues/{queue}/messages?offset={offset}&max=37"
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let msgs = r.body["messages"].as_array().unwrap();
        if msgs.is_empty() {
            return out;
        }
        for m in msgs {
            out.insert(
                m["offset"].as_u64().unwrap(),
                (
                    m["message_id"].as_str().unwrap().to_string(),
                    m["body"].as_str().unwrap().to_string(),
                ),
            );
        }
        offset = r.body["next_offset"].as_u64().unwrap();
    }
}

async fn receive(api: &Api, max: u32) -> Vec<Value> {
    let r = api
        .post(
            "/v1/groups/g/receive",
            json!({"max_messages": max, "wait_ms": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["messages"].as_array().unwrap().clone()
}

async fn old_offsets_fold_into_index_objects_and_stay_readable(backend: Backend) {
    let Some(ts) = fresh(backend) else { return };
    let mut gw = Gateway::start(&ts.url, &TINY_INDEX).await;
    let api = Api::admin(&gw);
    let r = api.put("/v1/topics/t", json!({"queues": 2})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // One publish at a time: each is its own batch, so each is its own range.
    let mut published: BTreeMap<String, (u32, u64, String)> = BTreeMap::new();
    let started_ms = chrono_ms();
    let mut mid_ms = 0;
    for i in 0..160 {
        if i == 80 {
            // Every message before is stored before this time, every one from here after it.
            tokio::time::sleep(Duration::from_millis(5)).await;
            mid_ms = chrono_ms();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let body = format!("message {i}");
        let r = api
            .post(
                "/v1/topics/t/messages",
                json!({"messages": [{"body": body, "keys": [format!("key-{i}")]}]}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let m = &r.body["results"][0];
        published.insert(
            m["message_id"].as_str().unwrap().to_string(),
            (
                m["queue"].as_u64().unwrap() as u32,
                m["offset"].as_u64().unwrap(),
                body,
            ),
        );
    }
    // The keeper folds within a few of its 200 ms rounds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = loop {
        let s = manifest(&ts.store).await;
        let inline: usize = s.topics["t"].queues.iter().map(|q| q.ranges.len()).sum();
        let merged = s.topics["t"]
            .queues
            .iter()
            .flat_map(|q| &q.index)
            .any(|r| r.level > 0);
        if inline <= 2 * 6 && merged && s.topics["t"].queues.iter().all(|q| !q.index.is_empty()) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "ranges never folded: {inline} inline"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let runs: usize = state.topics["t"].queues.iter().map(|q| q.index.len()).sum();
    assert!(
        runs < 40,
        "{runs} runs for 160 ranges: merges keep them few"
    );
    assert!(index_objects(&ts.store).await > 0);

    // Pull from offset 0: every message, in order, from index objects and inline ranges.
    let check_pulls = async |api: &Api| {
        let mut seen = 0;
        for q in 0..2 {
            let got = pull_all(api, "t", q).await;
            for (offset, (id, body)) in &got {
                let (pq, po, pb) = &published[id];
                assert_eq!((*pq, *po, pb), (q, *offset, body), "message {id}");
            }
            seen += got.len();
        }
        assert_eq!(seen, published.len());
    };
    check_pulls(&api).await;
    // Lookup by id and by key of the oldest message (its range is folded).
    let (first_id, (_, _, first_body)) = published
        .iter()
        .find(|(_, (q, o, _))| *q == 0 && *o == 0)
        .unwrap();
    let r = api.get(&format!("/v1/topics/t/messages/{first_id}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["body"].as_str(), Some(first_body.as_str()));
    let key = format!("key-{}", first_body.trim_start_matches("message "));
    let r = api.get(&format!("/v1/topics/t/messages?key={key}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["messages"].as_array().map(Vec::len), Some(1));

    // A group from the earliest offset leases folded offsets, acks some and dead-letters the
    // rest (max_retries 0), then re-drives them back.
    let r = api
        .put(
            "/v1/groups/g",
            json!({"subscriptions": [{"topic": "t"}], "start_from": "earliest", "max_retries": 0, "invisible_ms": 1000, "retry_backoff_ms": [0]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let got = receive(&api, 40).await;
    assert_eq!(got.len(), 40);
    let (ack, nack): (Vec<&Value>, Vec<&Value>) = got
        .iter()
        .partition(|m| m["offset"].as_u64().unwrap() % 2 == 0);
    let handles =
        |v: &[&Value]| -> Vec<Value> { v.iter().map(|m| m["receipt_handle"].clone()).collect() };
    let r = api
        .post(
            "/v1/groups/g/ack",
            json!({"receipt_handles": handles(&ack)}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api
        .post(
            "/v1/groups/g/nack",
            json!({"receipt_handles": handles(&nack)}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The nacked ones are dead letters now: readable from DLQ.g with the same bodies.
    let dlq = pull_all(&api, "DLQ.g", 0).await;
    assert_eq!(dlq.len(), nack.len());
    for (id, body) in dlq.values() {
        assert_eq!(
            &published[id].2, body,
            "dead letter {id} points at its bytes"
        );
    }
    // SIGKILL and restart: the same answers from the replayed state.
    gw.kill9();
    gw.restart().await;
    check_pulls(&api).await;
    let r = api
        .post("/v1/groups/g/redrive", json!({"max_messages": 1000}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["moved"].as_u64(), Some(nack.len() as u64));
    // Everything not acked is delivered again (the re-driven ones and the rest), once.
    let mut again = BTreeMap::new();
    for _ in 0..20 {
        for m in receive(&api, 100).await {
            let id = m["message_id"].as_str().unwrap().to_string();
            assert!(
                again.insert(id, m["body"].clone()).is_none(),
                "delivered twice"
            );
            let r = api
                .post(
                    "/v1/groups/g/ack",
                    json!({"receipt_handles": [m["receipt_handle"]]}),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
        if again.len() + ack.len() == published.len() {
            break;
        }
    }
    assert_eq!(again.len() + ack.len(), published.len());
    // Reset to a time in the middle, which falls inside folded runs: each queue's offset is
    // exactly its first message published after that time, not the start of the run.
    let mut expected = [u64::MAX; 2];
    for (queue, offset, body) in published.values() {
        let i: u64 = body.trim_start_matches("message ").parse().unwrap();
        if i >= 80 {
            expected[*queue as usize] = expected[*queue as usize].min(*offset);
        }
    }
    let state = manifest(&ts.store).await;
    for (q, want) in expected.iter().enumerate() {
        let run = state.topics["t"].queues[q].run_at_time(mid_ms);
        assert!(
            run.is_some_and(|r| r.base <= *want && *want < r.end),
            "queue {q}: offset {want} should be folded: {run:?}"
        );
    }
    let r = api
        .post(
            "/v1/groups/g/reset",
            json!({"topic": "t", "to": {"timestamp_ms": mid_ms}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(committed_offsets(&api, "g").await, expected);
    // A group created to start at that time starts there too.
    let r = api
        .put(
            "/v1/groups/late",
            json!({"subscriptions": [{"topic": "t"}], "start_from": {"timestamp_ms": mid_ms}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(committed_offsets(&api, "late").await, expected);
    // Reset to a time before everything: the group sees every message again.
    let r = api
        .post(
            "/v1/groups/g/reset",
            json!({"topic": "t", "to": {"timestamp_ms": started_ms - 1000}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let lag = api.get("/v1/groups/g").await;
    let committed: u64 = lag.body["lag"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["committed_offset"].as_u64().unwrap())
        .sum();
    assert_eq!(committed, 0, "{:?}", lag.body);
}

on_real_stores!(old_offsets_fold_into_index_objects_and_stay_readable);

/// The committed offset of each of topic `t`'s two queues for `group`.
async fn committed_offsets(api: &Api, group: &str) -> [u64; 2] {
    let lag = api.get(&format!("/v1/groups/{group}")).await;
    let mut committed = [u64::MAX; 2];
    for l in lag.body["lag"].as_array().unwrap() {
        committed[l["queue"].as_u64().unwrap() as usize] = l["committed_offset"].as_u64().unwrap();
    }
    committed
}

/// Small batches ride inline in the manifest delta until the sequencer writes them out; while
/// `--inline-backlog` of them wait, new batches are written as objects first instead, so the
/// state's map of inline segments (and the log kept for them) never passes the bound, and
/// every message stays readable. A restart with the write-out on drains the backlog.
async fn the_inline_backlog_has_a_bound(backend: Backend) {
    let Some(ts) = fresh(backend) else { return };
    // No write-out at all: only the bound keeps the backlog from growing.
    let mut gw = Gateway::start(
        &ts.url,
        &[
            "--inline-max-bytes",
            "65536",
            "--inline-backlog",
            "5",
            "--inline-write-out-every",
            "1h",
        ],
    )
    .await;
    let api = Api::admin(&gw);
    let r = api.put("/v1/topics/t", json!({"queues": 1})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let mut bodies = BTreeMap::new();
    for i in 0..30 {
        let body = format!("message {i}");
        let r = api
            .post(
                "/v1/topics/t/messages",
                json!({"messages": [{"body": body}]}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        bodies.insert(r.body["results"][0]["offset"].as_u64().unwrap(), body);
    }
    let state = manifest(&ts.store).await;
    assert_eq!(
        state.inline_segments.len(),
        5,
        "the backlog stops at its bound"
    );
    let cluster = api.get("/v1/cluster").await;
    assert_eq!(cluster.body["inline_segments"], 5, "{:?}", cluster.body);
    assert_eq!(gw.metric("ferrymq_inline_declined_total").await, 25.0);
    let read = |m: BTreeMap<u64, (String, String)>| -> BTreeMap<u64, String> {
        m.into_iter().map(|(o, (_, b))| (o, b)).collect()
    };
    assert_eq!(read(pull_all(&api, "t", 0).await), bodies);

    // With the write-out back on, the backlog drains and nothing moves.
    gw.restart_with(&["--inline-write-out-every", "100ms"])
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !manifest(&ts.store).await.inline_segments.is_empty() {
        assert!(Instant::now() < deadline, "the backlog never drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read(pull_all(&Api::admin(&gw), "t", 0).await), bodies);
}

on_real_stores!(the_inline_backlog_has_a_bound);

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Copies a directory tree.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// `tests/fixtures/data-v1/` was written by the release before this format change (plain JSON
/// checkpoints, cursors' consumed offsets as a list); `data-v1.json` says what it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_data_directory_of_the_previous_release_opens_and_reads_back() {
    let fixtures = ferrymq_tests::common::package_dir().join("fixtures");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("data-v1.json")).unwrap()).unwrap();
    let secret = expected["jwt_secret"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixtures.join("data-v1"), dir.path());
    let url = format!("file://{}", dir.path().display());
    let gw = Gateway::start_without_secret(&url, &["--jwt-secret", secret]).await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "test", "exp": exp, "perms": ["admin:*"]}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let api = Api::with_token(&gw.base, token);
    // Every message, at its queue and offset, with its body and id.
    for m in expected["messages"].as_array().unwrap() {
        if m["offset"].is_null() {
            continue; // the delayed message, due days later
        }
        let (topic, queue, offset) = (
            m["topic"].as_str().unwrap(),
            m["queue"].as_u64().unwrap(),
            m["offset"].as_u64().unwrap(),
        );
        let r = api
            .get(&format!(
                "/v1/topics/{topic}/queues/{queue}/messages?offset={offset}&max=1"
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let got = &r.body["messages"][0];
        assert_eq!(
            got["message_id"], m["message_id"],
            "{topic}/{queue}@{offset}"
        );
        assert_eq!(got["body"], m["body"]);
        assert_eq!(got["keys"], m["keys"]);
    }
    // billing: orders/0 committed 2 with 3 and 5 consumed above it; orders/1 committed 5.
    let g = api.get("/v1/groups/billing").await;
    assert_eq!(g.status, 200, "{:?}", g.body);
    let committed: BTreeMap<u64, u64> = g.body["lag"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["topic"] == "orders")
        .map(|l| {
            (
                l["queue"].as_u64().unwrap(),
                l["committed_offset"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(committed, BTreeMap::from([(0, 2), (1, 5)]));
    // Its old leases expired long ago: a receive delivers exactly what was not acked.
    let mut delivered = Vec::new();
    for _ in 0..5 {
        let r = api
            .post(
                "/v1/groups/billing/receive",
                json!({"max_messages": 100, "wait_ms": 0}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for m in r.body["messages"].as_array().unwrap() {
            delivered.push((m["queue"].as_u64().unwrap(), m["offset"].as_u64().unwrap()));
        }
    }
    delivered.sort_unstable();
    let mut want: Vec<(u64, u64)> = vec![(0, 2), (0, 4), (1, 5)];
    want.extend((6..10).flat_map(|o| [(0, o), (1, o)]));
    want.sort_unstable();
    assert_eq!(delivered, want);
    // And it goes on: a new message gets the next offset.
    let r = api
        .post(
            "/v1/topics/fifo/messages",
            json!({"messages": [{"body": "after upgrade", "message_group": "g-a"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["results"][0]["offset"].as_u64(), Some(5));
}
