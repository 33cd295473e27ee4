//! Black-box tests of the contract the gateway serves at `/openapi.json`: every operation of
//! the document is routed with its method and guarded by the token it declares, and tools
//! nobody here wrote agree with it: schemathesis (conformance and negative data, against a
//! live gateway) and a Python client generated from the document by `openapi-python-client`
//! (publish, receive, ack, lag, lookup). The Python tools come from `scripts/test`'s pinned
//! virtualenv (`FERRYMQ_TEST_PYTHON`); without it those two tests say so and pass, unless
//! `FERRYMQ_REQUIRE_PYTHON_TOOLS=1`.

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
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
