//! Black-box tests of `ferrymq serve` configuration: JWT keys of every kind, the generated
//! first-start secret and `ferrymq token`, the TOML config file, refusal to run S3 without a
//! key, and back-pressure.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code: a panic is the failure report; tests drive tokio time directly

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferrymq_tests::common::gateway::{Api, Gateway, binary, free_port};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    ferrymq_tests::common::package_dir()
        .join("fixtures")
        .join(name)
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, exp_in_s: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(
        &header,
        &json!({"sub": "t", "exp": now + exp_in_s, "perms": ["admin:*"]}),
        key,
    )
    .unwrap()
}

async fn status_with(gw: &Gateway, token: String) -> u16 {
    Api::with_token(&gw.base, token)
        .get("/v1/topics")
        .await
        .status
}

#[tokio::test]
async fn rs256_es256_and_jwks_keys_verify_tokens() {
    let rsa =
        EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-private.pem")).unwrap()).unwrap();
    let ec = EncodingKey::from_ec_pem(&std::fs::read(fixture("ec-private.pem")).unwrap()).unwrap();
    let hs = EncodingKey::from_secret(b"not-the-key");
    for (flag, file) in [
        ("--jwt-public-key", "rsa-public.pem"),
        ("--jwt-public-key", "ec-public.pem"),
        ("--jwks", "jwks.json"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let path = fixture(file);
        let gw = Gateway::start_without_secret(&url, &[flag, path.to_str().unwrap()]).await;
        let good = if file.starts_with("ec") {
            sign(Algorithm::ES256, &ec, None, 600)
        } else {
            sign(Algorithm::RS256, &rsa, Some("test-rsa"), 600)
        };
        assert_eq!(status_with(&gw, good).await, 200, "{flag} {file}");
        let expired = if file.starts_with("ec") {
            sign(Algorithm::ES256, &ec, None, -600)
        } else {
            sign(Algorithm::RS256, &rsa, Some("test-rsa"), -600)
        };
        assert_eq!(
            status_with(&gw, expired).await,
            401,
            "{flag} {file}: expired"
        );
        assert_eq!(
            status_with(&gw, sign(Algorithm::HS256, &hs, None, 600)).await,
            401,
            "{flag} {file}: wrong algorithm"
        );
        let wrong = if file.starts_with("ec") {
            sign(Algorithm::RS256, &rsa, None, 600)
        } else {
            sign(Algorithm::ES256, &ec, None, 600)
        };
        assert_eq!(
            status_with(&gw, wrong).await,
            401,
            "{flag} {file}: another key"
        );
    }
}

#[tokio::test]
async fn first_start_writes_a_private_secret_and_prints_a_working_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(binary())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env_remove("FERRYMQ_JWT_SECRET")
        .env_remove("FERRYMQ_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let printed = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("eyJ"))
    });
    let token = tokio::time::timeout(Duration::from_secs(30), printed)
        .await
        .unwrap()
        .unwrap()
        .expect("an admin token is printed");
    let secret = dir.path().join("ferrymq-data/jwt-secret");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let api = Api::with_token(&format!("http://127.0.0.1:{port}"), token);
    assert_eq!(api.put("/v1/topics/first", json!({})).await.status, 201);
    // `ferrymq token` mints from the same generated secret.
    let out = Command::new(binary())
        .args([
            "token",
            "--sub",
            "svc",
            "--perm",
            "pub:topic/first",
            "--ttl",
            "5m",
        ])
        .current_dir(dir.path())
        .env_remove("FERRYMQ_JWT_SECRET")
        .env_remove("FERRYMQ_STORE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let minted = Api::with_token(
        &api.base,
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
    );
    assert_eq!(
        minted
            .post(
                "/v1/topics/first/messages",
                json!({"messages": [{"body": "x"}]})
            )
            .await
            .status,
        200
    );
    assert_eq!(minted.put("/v1/topics/other", json!({})).await.status, 403);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_config_file_sets_what_flags_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("ferrymq.toml");
    std::fs::write(&cfg, format!("store = \"file://{}/data\"\nlisten = \"127.0.0.1:{port}\"\njwt_secret = \"from-file\"\nmax_body_bytes = 10\n", dir.path().display())).unwrap();
    let mut child = Command::new(binary())
        .args([
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--max-body-bytes",
            "20",
        ])
        .env_remove("FERRYMQ_JWT_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = jsonwebtoken::encode(
        &Header::default(),
        &json!({"sub": "t", "exp": now + 600, "perms": ["admin:*"]}),
        &EncodingKey::from_secret(b"from-file"),
    )
    .unwrap();
    let api = Api::with_token(&base, token);
    let mut ok = false;
    for _ in 0..200 {
        if api
            .http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "listening where the file says");
    assert_eq!(
        api.put("/v1/topics/c", json!({})).await.status,
        201,
        "the file's secret verifies tokens"
    );
    // The flag (20) beats the file (10).
    assert_eq!(
        api.post(
            "/v1/topics/c/messages",
            json!({"messages": [{"body": "x".repeat(15)}]})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        api.post(
            "/v1/topics/c/messages",
            json!({"messages": [{"body": "x".repeat(25)}]})
        )
        .await
        .status,
        413
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn refuses_to_start_against_s3_without_a_key() {
    let out = Command::new(binary())
        .args([
            "serve",
            "--store",
            "s3://some-bucket/prefix",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env_remove("FERRYMQ_JWT_SECRET")
        .env_remove("FERRYMQ_JWT_PUBLIC_KEY")
        .env_remove("FERRYMQ_JWKS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without a JWT key"), "{err}");
}

#[tokio::test]
async fn publishes_beyond_the_in_flight_bound_get_429_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let gw = Gateway::start(
        &url,
        &[
            "--store-profile",
            "s3-standard",
            "--max-inflight-bytes",
            "8192",
        ],
    )
    .await;
    let api = Api::admin(&gw);
    api.put("/v1/topics/bp", json!({"queues": 1})).await;
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            api.post(
                "/v1/topics/bp/messages",
                json!({"messages": [{"body": "y".repeat(3000)}]}),
            )
            .await
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => ok += 1,
            429 => {
                assert_eq!(r.code(), "TooManyRequests");
                refused += 1;
            }
            s => panic!("unexpected {s}: {:?}", r.body),
        }
    }
    assert!(refused > 0, "some publishes were refused");
    let stats = api.get("/v1/topics/bp").await.body;
    assert_eq!(
        stats["queue_stats"][0]["max_offset"], ok,
        "exactly the acknowledged publishes are stored"
    );
}

/// Long-polls are bounded: beyond `--max-long-polls` a waiting receive gets 429 at once, a
/// non-waiting one is served, and a slot frees when a waiter returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_polls_beyond_the_bound_get_429() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let gw = Gateway::start(&url, &["--max-long-polls", "2"]).await;
    let api = Api::admin(&gw);
    assert_eq!(api.put("/v1/topics/lp", json!({})).await.status, 201);
    assert_eq!(
        api.put(
            "/v1/groups/lpg",
            json!({"subscriptions": [{"topic": "lp"}]})
        )
        .await
        .status,
        201
    );
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                api.post("/v1/groups/lpg/receive", json!({"wait_ms": 2000}))
                    .await
                    .status
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = api
        .post("/v1/groups/lpg/receive", json!({"wait_ms": 2000}))
        .await;
    assert_eq!((third.status, third.code()), (429, "TooManyRequests"));
    let pull = api
        .get("/v1/topics/lp/queues/0/messages?wait_ms=1000")
        .await;
    assert_eq!(pull.status, 429);
    assert_eq!(
        api.post("/v1/groups/lpg/receive", json!({"wait_ms": 0}))
            .await
            .status,
        200
    );
    for w in waiters {
        assert_eq!(w.await.unwrap(), 200);
    }
    assert_eq!(
        api.post("/v1/groups/lpg/receive", json!({"wait_ms": 100}))
            .await
            .status,
        200
    );
}

/// Files under `dir` (recursively), or 0 if it does not exist.
fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap())
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                files_under(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// `deploy/cost-first.toml` as a user runs it (with batches inline, as on S3): concurrent
/// publishes share one manifest delta, the inline batches go out as one pack object, and
/// every message reads back from it after a restart.
#[tokio::test]
async fn the_cost_first_setting_shares_deltas_and_packs_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().display());
    let cfg = ferrymq_tests::common::package_dir().join("../deploy/cost-first.toml");
    let cfg = cfg.to_str().unwrap();
    // Small batches inline even on a local directory; no batch of two publishers shared.
    let args = [
        "--config",
        cfg,
        "--inline-max-bytes",
        "65536",
        "--max-inflight-batches",
        "16",
    ];
    let mut gw = Gateway::start(&store, &args).await;
    let api = Api::admin(&gw);
    assert_eq!(
        api.put("/v1/topics/cf", json!({"queues": 2})).await.status,
        201
    );
    let version = |api: &Api| {
        let api = api.clone();
        async move {
            api.get("/v1/cluster").await.body["manifest_version"]
                .as_u64()
                .unwrap()
        }
    };
    let before = version(&api).await;
    // 40 publishers at once, 3 rounds (the linger is 250 ms).
    let mut sent = BTreeMap::new();
    for round in 0..3 {
        let calls = (0..40).map(|i| {
            let api = api.clone();
            async move {
                let body = format!("m-{round}-{i}");
                let r = api
                    .post(
                        "/v1/topics/cf/messages",
                        json!({"messages": [{"body": body.clone()}]}),
                    )
                    .await;
                assert_eq!(r.status, 200, "{:?}", r.body);
                (
                    r.body["results"][0]["message_id"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    body,
                )
            }
        });
        sent.extend(futures::future::join_all(calls).await);
    }
    assert_eq!(sent.len(), 120);
    let deltas = version(&api).await - before;
    assert!(
        deltas <= 12,
        "120 publishes in 3 rounds took {deltas} deltas (a linger of 250 ms shares them)"
    );
    // The write-out (every second) packs every batch into one object per round.
    let segments = dir.path().join("segments");
    let mut inline_left = u64::MAX;
    for _ in 0..100 {
        inline_left = api.get("/v1/cluster").await.body["inline_segments"]
            .as_u64()
            .unwrap();
        if inline_left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(inline_left, 0, "written out");
    let objects = files_under(&segments);
    assert!(
        (1..=3).contains(&objects),
        "{objects} segment objects for 3 rounds of batches"
    );
    // After a restart (empty hot tail) every message reads back, from the pack.
    gw.restart().await;
    let api = Api::admin(&gw);
    let mut read = BTreeMap::new();
    for q in 0..2 {
        let r = api
            .get(&format!(
                "/v1/topics/cf/queues/{q}/messages?offset=0&max=1000"
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for m in r.body["messages"].as_array().unwrap() {
            read.insert(
                m["message_id"].as_str().unwrap().to_string(),
                m["body"].as_str().unwrap().to_string(),
            );
        }
    }
    assert_eq!(read, sent);
}
