//! Black-box tests of the contract the gateway serves at `/openapi.json`: every operation of
//! the document is routed with its method and guarded by the token it declares, and tools
//! nobody here wrote agree with it: schemathesis (conformance and negative data, against a
//! live gateway), a Python client generated from the document by `openapi-python-client` and
//! a TypeScript one typed by `openapi-typescript` on `openapi-fetch`, checked by `tsc --strict`
//! (publish, receive, ack, lag, lookup). The Python tools come from `scripts/test`'s pinned
//! virtualenv (`FERRYMQ_TEST_PYTHON`), the node packages from `tests/ts-client/package-lock.json`
//! installed by `scripts/test` (`FERRYMQ_TEST_TS_NODE_DIR`); without them those tests say so
//! and pass, unless `FERRYMQ_REQUIRE_PYTHON_TOOLS=1` or `FERRYMQ_REQUIRE_TS_CLIENT=1`.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::process::Command;

use ferrymq_tests::common::gateway::{Api, Gateway, token};
use serde_json::Value;

/// `path` with each `{param}` replaced by a value of the right shape.
fn concrete(path: &str) -> String {
    path.replace("{topic}", "t-none")
        .replace("{group}", "g-none")
        .replace("{queue}", "0")
        .replace("{message_id}", "01KBMX3V3A5W3E8R9GQ5Y4J2ZC")
        .replace("{transaction_id}", "01KBMX3V3A5W3E8R9GQ5Y4J2ZD")
        .replace("{instance}", "i-none")
}

/// Every (method, path) of the document, with whether it declares bearer security.
fn operations(spec: &Value) -> Vec<(String, String, bool)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            ops.push((method.to_uppercase(), path.clone(), secured));
        }
    }
    ops
}

/// Every operation of the served document is routed with its method: a secured one answers
/// 401 without a token and 403 with a token that grants nothing (the two transaction
/// routes, whose permission depends on the transaction, 404 for an unknown one), with the
/// error body; an open one answers 2xx (or `/readyz` 503). A route missing from the router
/// would answer 404 `NotFound` or 405, a handler that forgot its `Caller` 2xx or 4xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_routed_and_guarded_as_the_document_says() {
    let gw = Gateway::start("memory://", &[]).await;
    let open = Api::with_token(&gw.base, String::new());
    let r = open.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    let spec = r.body;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let ops = operations(&spec);
    assert!(ops.len() >= 30, "{} operations", ops.len());
    let nothing = Api::with_token(&gw.base, token(&[]));
    for (method, path, secured) in &ops {
        let url = concrete(path);
        // A body the route accepts (a decision's is required; the rest have defaults or are
        // refused after the permission check).
        let body = matches!(method.as_str(), "POST" | "PUT").then(|| {
            if path.starts_with("/v1/transactions/") {
                br#"{"action": "commit"}"#.to_vec()
            } else {
                b"{}".to_vec()
            }
        });
        let r = open.raw(method, &url, body.clone()).await.unwrap();
        if !*secured {
            assert!(
                r.status < 300 || (path == "/readyz" && r.status == 503),
                "{method} {path}: {}",
                r.status
            );
            continue;
        }
        assert_eq!(
            (r.status, r.code()),
            (401, "Unauthorized"),
            "{method} {path} without a token"
        );
        let r = nothing.raw(method, &url, body).await.unwrap();
        let expected = if path.starts_with("/v1/transactions/") {
            (404, "TransactionNotFound")
        } else {
            (403, "Forbidden")
        };
        assert_eq!(
            (r.status, r.code()),
            expected,
            "{method} {path} with a token that grants nothing"
        );
    }
    // And a path the document does not name is the error body's 404.
    let r = open.get("/v1/nowhere").await;
    assert_eq!((r.status, r.code()), (404, "NotFound"));
}

/// The pinned Python of `scripts/test`, or `None` (and a note) when it is not there.
fn python() -> Option<PathBuf> {
    match std::env::var_os("FERRYMQ_TEST_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("FERRYMQ_REQUIRE_PYTHON_TOOLS").is_some() => {
            panic!("FERRYMQ_TEST_PYTHON is not set (scripts/test sets it)")
        }
        None => {
            eprintln!("skipping: FERRYMQ_TEST_PYTHON is not set (scripts/test sets it)");
            None
        }
    }
}

fn script(name: &str) -> PathBuf {
    ferrymq_tests::common::package_dir()
        .join("conformance")
        .join(name)
}

/// Runs `python script args…`, panicking with its output unless it succeeds.
fn run_python(python: &PathBuf, name: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(script(name))
        .args(args)
        .output()
        .expect("run python");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} failed:\n{text}");
    text
}

/// schemathesis against a live gateway with an admin token: every operation, positive and
/// negative data, checks `not_a_server_error`, `status_code_conformance`,
/// `content_type_conformance`, `response_schema_conformance` and `negative_data_rejection`;
/// zero failures. Bounded (examples per operation) to keep CI short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure() {
    let Some(python) = python() else { return };
    let gw = Gateway::start("memory://", &[]).await;
    let out = run_python(
        &python,
        "schemathesis_run.py",
        &[&gw.base, &token(&["admin:*"])],
    );
    eprintln!("{out}");
}

/// A client generated from the served document by openapi-python-client publishes,
/// receives, acks, reads the group's lag and looks the message up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_publishes_receives_acks_and_looks_up() {
    let Some(python) = python() else { return };
    let gw = Gateway::start("memory://", &[]).await;
    let out = run_python(
        &python,
        "python_client.py",
        &[&gw.base, &token(&["admin:*"])],
    );
    eprintln!("{out}");
}

/// `tests/ts-client` installed by `scripts/test` (`npm ci` of its lockfile), or `None` (and a
/// note) when it is not there.
fn ts_node_dir() -> Option<PathBuf> {
    match std::env::var_os("FERRYMQ_TEST_TS_NODE_DIR") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("FERRYMQ_REQUIRE_TS_CLIENT").is_some() => {
            panic!("FERRYMQ_TEST_TS_NODE_DIR is not set (scripts/test sets it)")
        }
        None => {
            eprintln!("skipping: FERRYMQ_TEST_TS_NODE_DIR is not set (scripts/test sets it)");
            None
        }
    }
}

/// A TypeScript client: types generated from the served document by openapi-typescript, the
/// scenario (`tests/ts-client/scenario.ts`, openapi-fetch) type-checked against them with
/// `tsc --noEmit --strict`, compiled and run with node: it publishes (key, tag, properties),
/// receives, acks, reads the group's lag (0 after the ack), looks the message up and reads a
/// `404 TopicNotFound` as the typed error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_typescript_client_publishes_receives_acks_and_looks_up() {
    let Some(node_dir) = ts_node_dir() else {
        return;
    };
    let gw = Gateway::start("memory://", &[]).await;
    let run = ferrymq_tests::common::package_dir()
        .join("ts-client")
        .join("run.mjs");
    let out = Command::new("node")
        .arg(run)
        .args([&gw.base, &token(&["admin:*"])])
        .env("FERRYMQ_TEST_TS_NODE_DIR", node_dir)
        .output()
        .expect("run node (is it on PATH?)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "tests/ts-client/run.mjs failed:\n{text}"
    );
    eprintln!("{text}");
}

/// What a client can observe of the seeded topic, group and producer group (ages removed:
/// they grow with time, not with requests).
async fn observable(api: &Api) -> Value {
    let mut group = api.get("/v1/groups/g1").await.body;
    for q in group["lag"].as_array_mut().unwrap() {
        let q = q.as_object_mut().unwrap();
        q.retain(|k, _| !k.ends_with("_age_ms"));
    }
    serde_json::json!({
        "topics": api.get("/v1/topics").await.body,
        "topic": api.get("/v1/topics/t1").await.body,
        "group": group,
        "groups": api.get("/v1/groups").await.body["groups"].as_array().unwrap().len(),
        "messages": api.get("/v1/topics/t1/queues/0/messages?max=1000").await.body,
        "producer": api.put("/v1/producer-groups/p1", serde_json::json!({})).await.body,
    })
}

/// Item 5 of the typed layer: on every route that takes a body or a query, malformed requests
/// of the kinds schemathesis generates (an array for an object, unknown fields, wrong types,
/// out-of-range numbers, bad enum values, oversized integers) get a 400 with the error body,
/// and nothing a client can observe changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_on_every_route_are_400_and_change_nothing() {
    let gw = Gateway::start("memory://", &[]).await;
    let api = Api::admin(&gw);
    assert_eq!(
        api.put("/v1/topics/t1", serde_json::json!({"queues": 2}))
            .await
            .status,
        201
    );
    let g = serde_json::json!({"subscriptions": [{"topic": "t1"}], "start_from": "earliest"});
    assert_eq!(api.put("/v1/groups/g1", g).await.status, 201);
    let m = serde_json::json!({"messages": [{"body": "a"}, {"body": "b"}]});
    assert_eq!(api.post("/v1/topics/t1/messages", m).await.status, 200);
    let before = observable(&api).await;
    let cases: &[(&str, &str, &str)] = &[
        ("PUT", "/v1/topics/t2", "[null, null]"),
        ("PUT", "/v1/topics/t2", r#"{"retention_hours": 2147483648}"#),
        ("PUT", "/v1/topics/t2", r#"{"type": "queue"}"#),
        ("PUT", "/v1/topics/t2", r#"{"queues": "8"}"#),
        ("PUT", "/v1/groups/g2", "[[]]"),
        (
            "PUT",
            "/v1/groups/g2",
            r#"{"subscriptions": [{"topic": "t1", "x": 1}]}"#,
        ),
        (
            "PUT",
            "/v1/groups/g2",
            r#"{"subscriptions": [{"topic": "t1"}], "start_from": "yesterday"}"#,
        ),
        (
            "POST",
            "/v1/topics/t1/messages",
            r#"[[{"body": "x"}], null]"#,
        ),
        (
            "POST",
            "/v1/topics/t1/messages",
            r#"{"messages": [{"body": "x", "colour": 1}]}"#,
        ),
        (
            "POST",
            "/v1/topics/t1/messages",
            r#"{"messages": [{"body": 1}]}"#,
        ),
        ("POST", "/v1/groups/g1/receive", "[null]"),
        ("POST", "/v1/groups/g1/receive", r#"{"max_messages": 0}"#),
        ("POST", "/v1/groups/g1/receive", r#"{"wait_ms": 30001}"#),
        ("POST", "/v1/groups/g1/receive", r#"{"invisible_ms": -1}"#),
        (
            "POST",
            "/v1/groups/g1/ack",
            r#"{"receipt_handles": ["x"], "delay_ms": 1}"#,
        ),
        ("POST", "/v1/groups/g1/ack", r#"{"receipt_handles": []}"#),
        (
            "POST",
            "/v1/groups/g1/nack",
            r#"{"receipt_handles": ["x"], "delay_ms": -1}"#,
        ),
        (
            "POST",
            "/v1/groups/g1/invisibility",
            r#"{"receipt_handle": "x", "invisible_ms": 0}"#,
        ),
        (
            "POST",
            "/v1/groups/g1/reset",
            r#"{"topic": "t1", "to": "yesterday"}"#,
        ),
        ("POST", "/v1/groups/g1/reset", "[]"),
        ("POST", "/v1/groups/g1/redrive", r#"{"max_messages": 0}"#),
        (
            "POST",
            "/v1/transactions/01KBMX3V3A5W3E8R9GQ5Y4J2ZD",
            r#"{"action": "maybe"}"#,
        ),
        (
            "PUT",
            "/v1/producer-groups/p1",
            r#"{"check_interval_ms": 0}"#,
        ),
        ("PUT", "/v1/producer-groups/p1", "[1, 2, 3]"),
        (
            "PUT",
            "/v1/producer-groups/p1/instances/i1",
            r#"{"check_url": "ftp://x"}"#,
        ),
        (
            "PUT",
            "/v1/producer-groups/p1/instances/i1",
            r#"{"check_url": "http://x", "ttl_ms": 1}"#,
        ),
        ("POST", "/v1/producer-groups/p1/checks", r#"{"max": 0}"#),
        (
            "POST",
            "/v1/producer-groups/p1/checks",
            r#"{"wait_ms": "soon"}"#,
        ),
        (
            "GET",
            "/v1/topics/t1/queues/0/messages?offset=9223372036854775808",
            "",
        ),
        ("GET", "/v1/topics/t1/queues/0/messages?max=0", ""),
        ("GET", "/v1/topics/t1/queues/x/messages", ""),
        ("GET", "/v1/topics/t1/messages?begin_ms=1", ""),
        ("GET", "/v1/topics/t1/messages?key=k&max=1001", ""),
        ("GET", "/v1/archive?topic=bad%20name", ""),
        ("GET", "/v1/archive?limit=0", ""),
        ("GET", "/v1/archive?limit=10001", ""),
        ("GET", "/v1/archive?after=not-a-token", ""),
    ];
    for (method, path, body) in cases {
        let body = (!body.is_empty()).then(|| body.as_bytes().to_vec());
        let r = api.raw(method, path, body).await.unwrap();
        assert_eq!(r.status, 400, "{method} {path}: {:?}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{method} {path}: no error body: {:?}",
            r.body
        );
    }
    assert_eq!(
        observable(&api).await,
        before,
        "a refused request changed something"
    );
}
