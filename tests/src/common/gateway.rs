//! A real `ferrymq serve` process for black-box tests, and a small HTTP client for it.

#![allow(clippy::disallowed_methods)] // test helpers poll real processes on real time

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The JWT secret every test gateway uses.
pub const SECRET: &str = "test-secret-0123456789";

/// The `ferrymq` binary: `FERRYMQ_BIN`, else next to the test executable's target directory.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("FERRYMQ_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join("ferrymq");
    assert!(
        p.exists(),
        "build the binary first (cargo build -p gateway) or set FERRYMQ_BIN; looked for {}",
        p.display()
    );
    p
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A running gateway, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Gateway {
    child: Option<Child>,
    pub port: u16,
    pub store: String,
    pub base: String,
    log: PathBuf,
    args: Vec<String>,
    /// Whether to pass `--jwt-secret SECRET`.
    with_secret: bool,
}

impl Gateway {
    /// Starts a gateway on `store` and waits until `/readyz` answers 200.
    pub async fn start(store: &str, extra: &[&str]) -> Gateway {
        Self::start_on(store, free_port(), extra).await
    }

    /// Starts a gateway on `store` listening on `port`.
    pub async fn start_on(store: &str, port: u16, extra: &[&str]) -> Gateway {
        Self::start_full(store, port, extra, true).await
    }

    /// Starts a gateway without the test JWT secret (the test passes its own key flags).
    pub async fn start_without_secret(store: &str, extra: &[&str]) -> Gateway {
        Self::start_full(store, free_port(), extra, false).await
    }

    async fn start_full(store: &str, port: u16, extra: &[&str], with_secret: bool) -> Gateway {
        let log =
            std::env::temp_dir().join(format!("ferrymq-test-{port}-{}.log", ulid::Ulid::new()));
        let mut g = Gateway {
            child: None,
            port,
            store: store.to_string(),
            base: format!("http://127.0.0.1:{port}"),
            log,
            args: extra.iter().map(|s| s.to_string()).collect(),
            with_secret,
        };
        g.spawn();
        g.wait_ready(Duration::from_secs(30)).await;
        g
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(binary())
            .arg("serve")
            .arg("--store")
            .arg(&self.store)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(if self.with_secret {
                vec!["--jwt-secret", SECRET]
            } else {
                vec![]
            })
            .args(&self.args)
            .env("FERRYMQ_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ferrymq");
        self.child = Some(child);
    }

    /// Waits for `/readyz` 200, panicking with the log after `max`.
    pub async fn wait_ready(&mut self, max: Duration) {
        let start = Instant::now();
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client
                .get(format!("{}/readyz", self.base))
                .timeout(Duration::from_secs(1))
                .send()
                .await
            {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("gateway exited with {status}:\n{}", self.log_text());
            }
            assert!(
                start.elapsed() < max,
                "gateway not ready after {max:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The gateway's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().ok()
    }

    /// Starts the process again with these extra flags instead of the ones it had.
    pub async fn restart_with(&mut self, extra: &[&str]) {
        self.args = extra.iter().map(|s| s.to_string()).collect();
        self.restart().await;
    }

    /// Starts the process again with the same settings.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_ready(Duration::from_secs(30)).await;
    }

    /// The value of an unlabelled metric in `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Mints a token signed with [`SECRET`].
pub fn token(perms: &[&str]) -> String {
    token_with_exp(perms, 3600)
}

/// Mints a token expiring `exp_in_s` seconds from now (negative: already expired).
#[allow(clippy::disallowed_methods)] // token expiry is wall time
pub fn token_with_exp(perms: &[&str], exp_in_s: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let claims = serde_json::json!({"sub": "test", "exp": now + exp_in_s, "perms": perms});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("mint")
}

/// An HTTP client bound to one gateway and one token.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

/// A response: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Resp {
    /// The error code of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Api {
    /// A client for `gateway` with an admin token.
    pub fn admin(gateway: &Gateway) -> Api {
        Api::with_token(&gateway.base, token(&["admin:*"]))
    }

    /// A client with a given token.
    pub fn with_token(base: &str, token: String) -> Api {
        Api {
            base: base.to_string(),
            token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        }
    }

    /// Sends a request with a raw body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Resp, reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if !self.token.is_empty() {
            rb = rb.bearer_auth(&self.token);
        }
        if let Some(b) = body {
            if b.len() > 1024 * 1024 {
                // A server may answer a large body early (413) and close the connection
                // without reading the rest: never put that connection back in the pool, or
                // the next request on it fails with IncompleteMessage (seen in CI).
                rb = rb.header("connection", "close");
            }
            rb = rb.header("content-type", "application/json").body(b);
        }
        let r = rb.send().await?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        Ok(Resp {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// Sends JSON; panics on a transport error.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.raw(
            method,
            path,
            body.map(|b| serde_json::to_vec(&b).expect("json")),
        )
        .await
        .expect("request")
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.call("PUT", path, Some(body)).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call("POST", path, Some(body)).await
    }
}

/// Runs a scenario `async fn(Backend)` against a local directory and the S3 server (the
/// stores a real process can share and restart on).
#[macro_export]
macro_rules! on_real_stores {
    ($scenario:ident) => {
        mod $scenario {
            use $crate::common::stores::Backend;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn local_dir() {
                super::$scenario(Backend::Local).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn s3() {
                super::$scenario(Backend::S3).await
            }
        }
    };
}
