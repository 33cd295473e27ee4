//! Black-box tests of `ferrymq` as the shell client: the real binary against a real gateway.
//! Stdin lines are published in order and in batches, consumed back as JSON lines and acked;
//! topics and groups round-trip as JSON and render as aligned tables; failures exit non-zero
//! with the API's error code; a local gateway's generated secret is found without a token.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report; tests drive tokio time directly

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use ferrymq_tests::common::gateway::{Gateway, binary, free_port, token};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// What one run of the client left behind.
#[derive(Debug)]
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Stdout as JSON lines.
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?} ({e})")))
            .collect()
    }

    /// Stdout as one JSON document.
    fn json(&self) -> Value {
        let lines = self.json_lines();
        assert_eq!(lines.len(), 1, "one JSON document: {self:?}");
        lines.into_iter().next().unwrap()
    }
}

/// Runs `ferrymq ARGS` against `url` with `token` (none: no `FERRYMQ_TOKEN`), feeding `stdin`.
async fn ferrymq(url: &str, token: Option<&str>, args: &[&str], stdin: &str) -> Run {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(args)
        .env("FERRYMQ_URL", url)
        .env("FERRYMQ_LOG", "warn")
        .env_remove("FERRYMQ_TOKEN")
        .env_remove("FERRYMQ_STORE")
        .env_remove("FERRYMQ_JWT_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(t) = token {
        cmd.env("FERRYMQ_TOKEN", t);
    }
    let mut child = cmd.spawn().expect("start ferrymq");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("ferrymq {args:?} did not finish in 30 s"))
        .unwrap();
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(!run.stderr.contains("panicked"), "{args:?}: {run:?}");
    run
}

/// Runs and expects success.
async fn ok(url: &str, token: &str, args: &[&str], stdin: &str) -> Run {
    let run = ferrymq(url, Some(token), args, stdin).await;
    assert!(run.ok, "ferrymq {args:?} failed: {run:?}");
    run
}

/// Total lag of `group lag --output json`.
fn total_lag(lag: &Value) -> u64 {
    lag["lag"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["max_offset"].as_u64().unwrap() - q["committed_offset"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn stdin_lines_publish_in_batches_and_consume_back_as_json_lines() {
    let gw = Gateway::start("memory://", &[]).await;
    let (url, t) = (gw.base.as_str(), token(&["admin:*"]));
    let json = ["--output", "json"];
    let created = ok(
        url,
        &t,
        &[&["topic", "create", "orders", "--queues", "2"][..], &json].concat(),
        "",
    )
    .await;
    assert_eq!(
        created.json(),
        json!({"topic": "orders", "type": "normal", "queues": 2, "retention_hours": 72})
    );
    ok(
        url,
        &t,
        &[
            "group",
            "create",
            "billing",
            "--topic",
            "orders",
            "--start-from",
            "earliest",
        ],
        "",
    )
    .await;

    // Three lines, published in order (fewer requests than lines), one result line each.
    let published = ok(url, &t, &["publish", "orders"], "one\ntwo\nthree\n")
        .await
        .json_lines();
    assert_eq!(published.len(), 3, "{published:?}");
    assert!(
        gw.metric("ferrymq_publish_ack_seconds_count").await < 3.0,
        "stdin lines go out in batches"
    );
    let mut expected: BTreeMap<String, (&str, u64, u64)> = BTreeMap::new();
    let mut last_offset: BTreeMap<u64, u64> = BTreeMap::new();
    for (r, body) in published.iter().zip(["one", "two", "three"]) {
        let (queue, offset) = (r["queue"].as_u64().unwrap(), r["offset"].as_u64().unwrap());
        if let Some(prev) = last_offset.insert(queue, offset) {
            assert!(
                offset > prev,
                "publish order kept within queue {queue}: {published:?}"
            );
        }
        expected.insert(
            r["message_id"].as_str().unwrap().to_string(),
            (body, queue, offset),
        );
    }

    let lag = ok(
        url,
        &t,
        &["group", "lag", "billing", "--output", "json"],
        "",
    )
    .await
    .json();
    assert_eq!(total_lag(&lag), 3, "{lag}");

    // Consumed as the API's message objects, per queue in publish order, then acked.
    let consumed = ok(
        url,
        &t,
        &["consume", "billing", "--max", "3", "--wait-ms", "5000"],
        "",
    )
    .await
    .json_lines();
    assert_eq!(consumed.len(), 3, "{consumed:?}");
    let mut seen_offset: BTreeMap<u64, u64> = BTreeMap::new();
    for m in &consumed {
        let (body, queue, offset) = expected[m["message_id"].as_str().unwrap()];
        assert_eq!(m["body"], body, "{m}");
        assert_eq!(
            (m["queue"].as_u64().unwrap(), m["offset"].as_u64().unwrap()),
            (queue, offset)
        );
        assert_eq!(m["topic"], "orders");
        assert_eq!(m["delivery_attempt"], 1);
        assert!(m["receipt_handle"].is_string(), "{m}");
        if let Some(prev) = seen_offset.insert(queue, offset) {
            assert!(offset > prev, "queue {queue} out of order: {consumed:?}");
        }
    }
    let lag = ok(
        url,
        &t,
        &["group", "lag", "billing", "--output", "json"],
        "",
    )
    .await
    .json();
    assert_eq!(
        total_lag(&lag),
        0,
        "the consumed messages were acked: {lag}"
    );
    let again = ok(
        url,
        &t,
        &["consume", "billing", "--until-empty", "--wait-ms", "100"],
        "",
    )
    .await;
    assert_eq!(again.stdout, "", "nothing left to deliver");

    // The whole topic from the beginning, without following.
    let dump = ok(
        url,
        &t,
        &["tail", "orders", "--from-beginning", "--no-follow"],
        "",
    )
    .await
    .json_lines();
    let mut bodies: Vec<&str> = dump.iter().map(|m| m["body"].as_str().unwrap()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, ["one", "three", "two"]);

    // Following from the end: only what is published after it started.
    let follower = tokio::process::Command::new(binary())
        .args(["tail", "orders", "--max", "1", "--wait-ms", "1000"])
        .env("FERRYMQ_URL", url)
        .env("FERRYMQ_TOKEN", &t)
        .env("FERRYMQ_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::spawn(follower.wait_with_output());
    for _ in 0..50 {
        if output.is_finished() {
            break;
        }
        ok(url, &t, &["publish", "orders", "--body", "late"], "").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let followed = tokio::time::timeout(Duration::from_secs(10), output)
        .await
        .expect("tail --max 1 stops after one message")
        .unwrap()
        .unwrap();
    assert!(followed.status.success(), "{followed:?}");
    let line: Value = serde_json::from_slice(&followed.stdout).unwrap();
    assert_eq!(line["body"], "late", "{line}");

    // An unknown topic: non-zero, the API's code on stderr, nothing on stdout.
    let unknown = ferrymq(url, Some(&t), &["publish", "nope", "--body", "x"], "").await;
    assert!(!unknown.ok);
    assert!(unknown.stderr.contains("TopicNotFound"), "{unknown:?}");
    assert_eq!(unknown.stdout, "");
}

#[tokio::test]
async fn topics_round_trip_as_json_and_render_as_aligned_tables() {
    let gw = Gateway::start("memory://", &[]).await;
    let (url, t) = (gw.base.as_str(), token(&["admin:*"]));
    ok(
        url,
        &t,
        &[
            "topic", "create", "payments", "--type", "fifo", "--queues", "3",
        ],
        "",
    )
    .await;
    let list = ok(url, &t, &["topic", "list", "--output", "json"], "")
        .await
        .json();
    let entry = list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["topic"] == "payments")
        .cloned()
        .unwrap_or_else(|| panic!("payments listed: {list}"));
    assert_eq!(
        (entry["type"].clone(), entry["queues"].clone()),
        (json!("fifo"), json!(3))
    );
    let got = ok(
        url,
        &t,
        &["topic", "get", "payments", "--output", "json"],
        "",
    )
    .await
    .json();
    assert_eq!(got["queue_stats"].as_array().unwrap().len(), 3, "{got}");

    // A table: a header, then rows whose cells start under their titles.
    let table = ok(url, &t, &["topic", "list", "--output", "table"], "")
        .await
        .stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("TOPIC"), "{table}");
    let row = lines.iter().find(|l| l.starts_with("payments")).unwrap();
    for (title, cell) in [("TYPE", "fifo"), ("QUEUES", "3")] {
        assert_eq!(
            lines[0].find(title),
            row.find(cell),
            "{title} aligned:\n{table}"
        );
    }

    // A FIFO publish needs its message group; lag shows it before anything is consumed.
    ok(
        url,
        &t,
        &[
            "group",
            "create",
            "ledger",
            "--topic",
            "payments",
            "--start-from",
            "earliest",
        ],
        "",
    )
    .await;
    let mismatch = ferrymq(url, Some(&t), &["publish", "payments", "--body", "x"], "").await;
    assert!(
        !mismatch.ok && mismatch.stderr.contains("MessageTypeMismatch"),
        "{mismatch:?}"
    );
    let r = ok(
        url,
        &t,
        &[
            "publish",
            "payments",
            "--message-group",
            "o-1",
            "--tag",
            "paid",
            "--key",
            "k-1",
            "--property",
            "amount=10",
            "--body",
            "created",
            "--output",
            "json",
        ],
        "",
    )
    .await
    .json();
    let lag = ok(
        url,
        &t,
        &["group", "lag", "ledger", "--output", "table"],
        "",
    )
    .await
    .stdout;
    assert!(
        lag.starts_with("TOPIC") && lag.lines().count() == 5,
        "3 queues and a total:\n{lag}"
    );
    let total = lag.lines().last().unwrap();
    assert_eq!(
        total.split_whitespace().nth(1),
        Some("1"),
        "a lag of 1:\n{lag}"
    );

    // Lookup by id returns the message as published; a trace either lists its events or, on a
    // gateway without the trace route, fails with the API's error.
    let id = r["message_id"].as_str().unwrap();
    let m = ok(
        url,
        &t,
        &["message", "get", "payments", id, "--output", "json"],
        "",
    )
    .await
    .json();
    assert_eq!(
        (
            m["body"].clone(),
            m["tag"].clone(),
            m["keys"].clone(),
            m["properties"].clone(),
            m["message_group"].clone()
        ),
        (
            json!("created"),
            json!("paid"),
            json!(["k-1"]),
            json!({"amount": "10"}),
            json!("o-1")
        )
    );
    let trace = ferrymq(
        url,
        Some(&t),
        &["message", "trace", "payments", id, "--output", "json"],
        "",
    )
    .await;
    if trace.ok {
        assert_eq!(trace.json()["events"][0]["event"], "published", "{trace:?}");
    } else {
        assert!(
            trace.stderr.contains("NotFound") && trace.stdout.is_empty(),
            "{trace:?}"
        );
    }

    ok(url, &t, &["group", "delete", "ledger"], "").await;
    ok(url, &t, &["topic", "delete", "payments"], "").await;
    let list = ok(url, &t, &["topic", "list", "--output", "json"], "")
        .await
        .json();
    assert!(!list.to_string().contains("\"payments\""), "{list}");
    let gone = ferrymq(url, Some(&t), &["topic", "get", "payments"], "").await;
    assert!(
        !gone.ok && gone.stderr.contains("TopicNotFound"),
        "{gone:?}"
    );

    // No gateway there: a clear message, non-zero.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let refused = ferrymq(&closed, Some(&t), &["topic", "list"], "").await;
    assert!(
        !refused.ok && refused.stderr.contains("cannot reach the gateway"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_local_gateway_s_generated_secret_authenticates_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().display());
    let gw = Gateway::start_without_secret(&store, &[]).await;
    let created = ferrymq(
        &gw.base,
        None,
        &[
            "topic", "create", "local", "--store", &store, "--output", "json",
        ],
        "",
    )
    .await;
    assert!(created.ok, "{created:?}");
    assert_eq!(created.json()["topic"], "local");

    // Elsewhere there is no secret: the gateway's 401, and why no token was minted.
    let other = tempfile::tempdir().unwrap();
    let denied = ferrymq(
        &gw.base,
        None,
        &["topic", "list", "--store", other.path().to_str().unwrap()],
        "",
    )
    .await;
    assert!(!denied.ok, "{denied:?}");
    assert!(
        denied.stderr.contains("Unauthorized") && denied.stderr.contains("jwt-secret"),
        "{denied:?}"
    );
}
