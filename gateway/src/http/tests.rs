//! The contract's guards: the generated document equals the committed snapshot, and the
//! router and the document name the same routes.

use std::collections::BTreeSet;

use super::*;

/// The committed snapshot, found when the test runs (a shared target directory may hold a
/// binary built in another checkout).
fn snapshot() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("openapi.json")
}

/// `cargo test` fails when the generated document differs from `gateway/openapi.json`;
/// `UPDATE_OPENAPI=1 cargo test -p gateway openapi` rewrites the snapshot.
#[test]
fn the_openapi_snapshot_is_current() {
    let generated = SPEC_JSON.as_str();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(snapshot(), generated).expect("write the snapshot");
        return;
    }
    let committed = std::fs::read_to_string(snapshot()).unwrap_or_default();
    assert!(
        committed == generated,
        "gateway/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p gateway openapi` \
         and commit the result"
    );
}

/// The paths axum routes, read from the router's `Debug` (axum has no other way to list
/// them): every quoted string in the `paths` map of its path router (not of the fallback
/// router that follows it, whose catch-all paths are axum's own).
fn routed_paths<S>(router: &Router<S>) -> BTreeSet<String> {
    let text = format!("{router:?}");
    let text = text.split("fallback_router").next().unwrap_or_default();
    let mut paths = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("paths: {") {
        rest = &rest[i + "paths: {".len()..];
        // Path templates hold `{…}`: the map's end is the first `}` not in quotes.
        let mut in_quotes = false;
        let mut close = rest.len();
        for (k, c) in rest.char_indices() {
            match c {
                '"' => in_quotes = !in_quotes,
                '}' if !in_quotes => {
                    close = k;
                    break;
                }
                _ => {}
            }
        }
        for (n, part) in rest[..close].split('"').enumerate() {
            if n % 2 == 1 {
                paths.insert(part.to_string());
            }
        }
        rest = &rest[close..];
    }
    paths
}

/// Every route of the router is in the spec (or deliberately undocumented), and every path
/// of the spec is routed.
#[test]
fn every_route_is_in_the_spec_and_every_spec_path_is_routed() {
    let (documented, _) = documented().split_for_parts();
    let router: Router<Arc<AppState>> = documented
        .route(FORWARD_PATH, post(forward))
        .merge(crate::console::router());
    let routed = routed_paths(&router);
    assert!(
        routed.contains("/v1/topics/{topic}"),
        "the router's Debug no longer lists its paths: {routed:?}"
    );
    let spec: BTreeSet<String> = spec().paths.paths.keys().cloned().collect();
    let undocumented: BTreeSet<String> = UNDOCUMENTED.iter().map(|s| s.to_string()).collect();
    let missing: Vec<_> = routed
        .difference(&spec)
        .filter(|p| !undocumented.contains(*p))
        .collect();
    assert!(
        missing.is_empty(),
        "routed but not in the spec: {missing:?}"
    );
    let unrouted: Vec<_> = spec.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "in the spec but not routed: {unrouted:?}"
    );
}

/// The document is OpenAPI 3.1, declares bearer security, lists every error code, and gives
/// every operation that needs a token the statuses any of them can answer.
#[test]
fn the_spec_is_3_1_with_bearer_security_and_error_codes() {
    let doc: serde_json::Value = serde_json::from_str(&SPEC_JSON).expect("JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode is an enum");
    for code in [
        "TopicNotFound",
        "MessageTypeMismatch",
        "PayloadTooLarge",
        "TooManyRequests",
    ] {
        assert!(codes.iter().any(|c| c == code), "{code} missing");
    }
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("an item") {
            operations += 1;
            let ok = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .any(|s| s.starts_with('2'));
            assert!(ok, "{method} {path} has no success response");
            if path.starts_with("/v1/") {
                assert!(op["security"].is_array(), "{method} {path} is not secured");
                for status in ["401", "403", "503"] {
                    assert!(
                        op["responses"][status]["content"]["application/json"].is_object(),
                        "{method} {path} lacks {status}"
                    );
                }
            }
        }
    }
    assert!(operations >= 30, "only {operations} operations");
}
