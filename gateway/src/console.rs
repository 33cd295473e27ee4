//! The web console at `/console/`: static assets compiled into the binary (`gateway/console/`),
//! served by every gateway without a token. The console is a client of the `/v1` API: every
//! call it makes carries the token the user signed in with (kept in the browser's
//! `sessionStorage`), so the API's permissions hold and nothing here reads the state.
//!
//! Assets are not fingerprinted: each answer carries an `ETag` (a hash of its bytes) and
//! `Cache-Control: no-cache`, so a browser revalidates and a new binary's console is seen at
//! once. Unknown paths under `/console/` are 404.

use axum::Router;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One compiled-in file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../console/index.html"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../console/app.js"),
    },
    Asset {
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../console/style.css"),
    },
    Asset {
        path: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../console/favicon.svg"),
    },
];

/// What the console's pages may load and call: only this origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The console's routes (merged into the API router; no state, no token).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(redirect))
        .route(
            "/console/",
            get(|h: HeaderMap| async move { serve("index.html", &h) }),
        )
        .route(
            "/console/{*path}",
            get(|Path(p): Path<String>, h: HeaderMap| async move { serve(&p, &h) }),
        )
}

async fn redirect() -> Response {
    (StatusCode::PERMANENT_REDIRECT, [(LOCATION, "/console/")]).into_response()
}

/// A strong validator for `bytes` (FNV-1a, 64 bits).
fn etag(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return (
            StatusCode::NOT_FOUND,
            [
                (CONTENT_TYPE, "text/plain; charset=utf-8"),
                (CACHE_CONTROL, "no-store"),
            ],
            format!("no console asset {path:?}\n"),
        )
            .into_response();
    };
    let tag = etag(asset.bytes);
    let common = [
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            ETAG,
            HeaderValue::from_str(&tag).expect("an etag is ASCII hex in quotes"),
        ),
        (
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            axum::http::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            axum::http::header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    let matches = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        StatusCode::OK,
        common,
        [(CONTENT_TYPE, asset.content_type)],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_type_and_unknown_paths_are_404() {
        for a in ASSETS {
            let r = serve(a.path, &HeaderMap::new());
            assert_eq!(r.status(), StatusCode::OK, "{}", a.path);
            assert_eq!(r.headers()[CONTENT_TYPE], a.content_type);
            assert_eq!(r.headers()[CACHE_CONTROL], "no-cache");
            assert!(!a.bytes.is_empty());
        }
        for p in ["nope.js", "../Cargo.toml", "", "index.html/x"] {
            assert_eq!(serve(p, &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
        }
    }

    #[test]
    fn a_matching_etag_is_answered_304() {
        let r = serve("app.js", &HeaderMap::new());
        let tag = r.headers()[ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, tag);
        assert_eq!(serve("app.js", &h).status(), StatusCode::NOT_MODIFIED);
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(serve("app.js", &h).status(), StatusCode::OK);
    }

    #[test]
    fn the_page_loads_only_its_own_assets() {
        let html = std::str::from_utf8(ASSETS[0].bytes).expect("utf-8");
        for a in &ASSETS[1..] {
            assert!(html.contains(a.path), "index.html names {}", a.path);
        }
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
