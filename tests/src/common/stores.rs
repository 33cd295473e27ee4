//! The stores every scenario runs against: in-memory, a local directory, and the S3 server the
//! test command starts (moto). The S3 run is skipped only when `FERRYMQ_TEST_S3_BUCKET` is unset
//! and `FERRYMQ_REQUIRE_S3` is not set: the test command sets both, so in CI a missing S3
//! server fails the test instead of skipping it.

use segment_writer::store::Store;

/// A backend to run a scenario against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Local,
    S3,
}

/// A store for one test, and what keeps it alive.
#[derive(Debug)]
pub struct TestStore {
    pub store: Store,
    /// The URL a `ferrymq` process would be given (`memory://` is per process).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// Another handle on the same store, as a second process would open it.
    pub fn reopen(&self) -> Store {
        if self.url.starts_with("memory://") {
            self.store.clone()
        } else {
            Store::open(&self.url).expect("reopen test store")
        }
    }
}

/// The S3 bucket of the test server, if configured; panics if it is required but missing.
pub fn s3_bucket() -> Option<String> {
    match std::env::var("FERRYMQ_TEST_S3_BUCKET") {
        Ok(b) if !b.is_empty() => Some(b),
        _ if std::env::var("FERRYMQ_REQUIRE_S3").is_ok() => {
            panic!(
                "FERRYMQ_REQUIRE_S3 is set but FERRYMQ_TEST_S3_BUCKET is not: the S3 server is missing"
            )
        }
        _ => None,
    }
}

/// A fresh, empty store of `backend`, or `None` to skip (S3 not configured outside CI).
pub fn fresh(backend: Backend) -> Option<TestStore> {
    match backend {
        Backend::Memory => Some(TestStore {
            store: Store::memory(),
            url: "memory://".into(),
            _dir: None,
        }),
        Backend::Local => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("file://{}", dir.path().display());
            Some(TestStore {
                store: Store::open(&url).expect("open local store"),
                url,
                _dir: Some(dir),
            })
        }
        Backend::S3 => {
            let Some(bucket) = s3_bucket() else {
                eprintln!(
                    "skipping: no S3 server (set FERRYMQ_TEST_S3_BUCKET, or run scripts/test)"
                );
                return None;
            };
            #[allow(clippy::disallowed_methods)] // a test prefix needs no injected time
            let url = format!("s3://{bucket}/t-{}", ulid::Ulid::new());
            Some(TestStore {
                store: Store::open(&url).expect("open S3 store"),
                url,
                _dir: None,
            })
        }
    }
}

/// Runs a scenario `async fn(Backend)` against every backend, as three tests.
#[macro_export]
macro_rules! on_every_store {
    ($scenario:ident) => {
        mod $scenario {
            use $crate::common::stores::Backend;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn memory() {
                super::$scenario(Backend::Memory).await
            }
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

/// The manifest state as a fresh reader of `store` sees it (newest checkpoint plus the log).
pub async fn manifest(store: &Store) -> segment_writer::manifest::State {
    let log = segment_writer::manifest::ManifestLog::open(
        store.clone(),
        segment_writer::manifest::LogSettings::default(),
        segment_writer::clock::TokioClock::shared(),
        "test-reader".into(),
        0,
    )
    .await
    .expect("open manifest");
    log.state().read().expect("state lock").clone()
}
