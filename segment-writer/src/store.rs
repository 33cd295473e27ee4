//! Opening the object store a gateway runs on, from a URL:
//!
//! - `file:///path`: a local directory; every put is fsynced (file and parent directory) before
//!   it returns, so an acknowledgement survives a power cut, not only a process crash.
//! - `s3://bucket/prefix`: AWS S3 or any S3-compatible server (MinIO, moto). Credentials,
//!   region, endpoint and `AWS_ALLOW_HTTP` come from the usual `AWS_*` variables. Conditional
//!   create (`If-None-Match: *`) is what makes the manifest log safe.
//! - `memory://`: in-process, for unit tests and simulation (lost on exit).
//!
//! Also [`retrying`]: the one retry loop for store calls whose failure would otherwise fail a
//! whole open, read or batch.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};

use crate::paths::Paths;
use crate::{Error, Result};

/// An opened store: the object store, the key layout under its prefix and the URL it came from.
#[derive(Debug, Clone)]
pub struct Store {
    /// The object store.
    pub inner: Arc<dyn ObjectStore>,
    /// Keys under the configured prefix.
    pub paths: Paths,
    /// The URL as given, for display (`GET /v1/cluster`).
    pub url: String,
}

/// What kind of store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `file://`.
    Local,
    /// `s3://`.
    S3,
    /// `memory://`.
    Memory,
}

/// The kind of store `url` names, or an error for an unsupported scheme.
pub fn kind_of(url: &str) -> Result<StoreKind> {
    if url.starts_with("file://") {
        Ok(StoreKind::Local)
    } else if url.starts_with("s3://") {
        Ok(StoreKind::S3)
    } else if url.starts_with("memory://") {
        Ok(StoreKind::Memory)
    } else {
        Err(Error::Invalid(format!(
            "unsupported store URL {url:?}: expected file:///path, s3://bucket/prefix or memory://"
        )))
    }
}

impl Store {
    /// Opens the store `url` names. A local directory is created if missing.
    pub fn open(url: &str) -> Result<Store> {
        match kind_of(url)? {
            StoreKind::Local => {
                let parsed = url::Url::parse(url)
                    .map_err(|e| Error::Invalid(format!("bad store URL {url:?}: {e}")))?;
                let dir = parsed.to_file_path().map_err(|()| {
                    Error::Invalid(format!("bad file URL {url:?}: needs an absolute path"))
                })?;
                std::fs::create_dir_all(&dir).map_err(|e| {
                    Error::Invalid(format!(
                        "cannot create store directory {}: {e}",
                        dir.display()
                    ))
                })?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| Error::Invalid(format!("cannot open {}: {e}", dir.display())))?
                    .with_fsync(true);
                Ok(Store {
                    inner: Arc::new(fs),
                    paths: Paths::new(""),
                    url: url.to_string(),
                })
            }
            StoreKind::S3 => {
                let rest = &url["s3://".len()..];
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(Error::Invalid(format!("store URL {url:?} names no bucket")));
                }
                // Bounded retries and timeouts: an unreachable store must fail requests within
                // seconds (503 to the client, who retries), not after object_store's default
                // of up to 3 minutes. Explicit AWS_* settings still win where given.
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(RetryConfig {
                        backoff: BackoffConfig {
                            init_backoff: Duration::from_millis(50),
                            max_backoff: Duration::from_secs(1),
                            base: 2.0,
                        },
                        max_retries: 3,
                        retry_timeout: Duration::from_secs(10),
                    });
                for (key, default, env) in [
                    (ClientConfigKey::Timeout, "30s", "AWS_TIMEOUT"),
                    (ClientConfigKey::ConnectTimeout, "3s", "AWS_CONNECT_TIMEOUT"),
                ] {
                    if std::env::var_os(env).is_none() {
                        builder = builder.with_config(AmazonS3ConfigKey::Client(key), default);
                    }
                }
                let s3 = builder
                    .build()
                    .map_err(|e| Error::Invalid(format!("cannot configure S3 for {url:?}: {e}")))?;
                Ok(Store {
                    inner: Arc::new(s3),
                    paths: Paths::new(prefix),
                    url: url.to_string(),
                })
            }
            StoreKind::Memory => Ok(Store::memory()),
        }
    }

    /// A fresh in-memory store.
    pub fn memory() -> Store {
        Store::from_object_store(Arc::new(InMemory::new()), "memory://")
    }

    /// Wraps an existing object store (e.g. a [`crate::faulty::FaultyStore`]) with the root prefix.
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, url: &str) -> Store {
        Store {
            inner,
            paths: Paths::new(""),
            url: url.to_string(),
        }
    }

    /// The same store with another object store in front (a wrapper such as `FaultyStore`).
    pub fn wrapped(&self, inner: Arc<dyn ObjectStore>) -> Store {
        Store {
            inner,
            paths: self.paths.clone(),
            url: self.url.clone(),
        }
    }

    /// The directory of a `file://` store; `None` for any other.
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        if kind_of(&self.url).ok()? != StoreKind::Local {
            return None;
        }
        url::Url::parse(&self.url).ok()?.to_file_path().ok()
    }
}

/// Runs a store call up to `attempts` times while it fails with a retryable error
/// ([`Error::is_retryable`]), pausing `backoff(n)` after the `n`-th failure (no sleep for a zero
/// pause); returns the first success or the last error. `what` names the call in the debug log.
pub async fn retrying<T, F, Fut>(
    clock: &dyn crate::clock::Clock,
    attempts: u32,
    backoff: impl Fn(u32) -> Duration,
    what: &str,
    mut call: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if e.is_retryable() && attempt < attempts => {
                tracing::debug!(error = %e, attempt, "{what} failed; retrying");
                let pause = backoff(attempt);
                if !pause.is_zero() {
                    clock.sleep(pause).await;
                }
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Whether `name` is a local directory's staging file: object_store writes an object `x` to
/// `x#<n>` first (n all digits) and then renames or links it, so such a file outlives its put
/// only when the process died during that put. LIST never shows them (object_store skips
/// them), so nothing else ever deletes them. The same test as object_store's: what follows the
/// first `#` is all digits (anything else is an object LIST shows, never deleted here).
fn is_staging_file(name: &str) -> bool {
    name.split_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Deletes the staging files under `dir` (a local directory store) last modified at or before
/// `cutoff_ms` (Unix ms): left by puts that a crash interrupted. Blocking: call it off the
/// async runtime. Returns how many it deleted. Running gateways rename their staging files
/// away while it walks: a file or directory that vanished meanwhile is skipped, not an error.
pub fn remove_staging_leftovers(dir: &std::path::Path, cutoff_ms: i64) -> std::io::Result<u64> {
    fn gone<T>(r: &std::io::Result<T>) -> bool {
        matches!(r, Err(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
    let mut deleted = 0;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = std::fs::read_dir(&d);
        if gone(&entries) {
            continue;
        }
        for entry in entries? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            if !kind.is_file() || !entry.file_name().to_str().is_some_and(is_staging_file) {
                continue;
            }
            let modified = entry.metadata().and_then(|m| m.modified());
            if gone(&modified) {
                continue;
            }
            let modified_ms = modified?
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            if modified_ms > cutoff_ms {
                continue;
            }
            let removed = std::fs::remove_file(entry.path());
            if !gone(&removed) {
                removed?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_schemes_and_bucketless_s3() {
        assert!(matches!(Store::open("ftp://x"), Err(Error::Invalid(_))));
        assert!(matches!(Store::open("s3://"), Err(Error::Invalid(_))));
        assert!(matches!(
            Store::open("file://relative"),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn staging_leftovers_older_than_the_cutoff_are_deleted_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let day = root.join("segments/2026-12-01");
        std::fs::create_dir_all(&day).unwrap();
        let old = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let make = |path: &std::path::Path, old_enough: bool| {
            let f = std::fs::File::create(path).unwrap();
            if old_enough {
                f.set_modified(old).unwrap();
            }
        };
        make(&day.join("a.seg#1"), true); // a crashed put: deleted
        make(&root.join("log#12"), true); // at the root too: deleted
        make(&day.join("b.seg#2"), false); // a put in progress: kept
        make(&day.join("c.seg"), true); // an object: kept
        make(&day.join("d#x1"), true); // an object whose name has a '#': kept
        make(&day.join("e#"), true); // likewise
        make(&day.join("f#2#3"), true); // likewise (object_store lists it)
        let cutoff = 1_700_000_000_000 + 1;
        assert_eq!(remove_staging_leftovers(root, cutoff).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(&day)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["b.seg#2", "c.seg", "d#x1", "e#", "f#2#3"]);
        assert!(!root.join("log#12").exists());
        assert_eq!(remove_staging_leftovers(root, cutoff).unwrap(), 0);
        // A directory that is not there (removed while a walk ran) is nothing to delete.
        assert_eq!(
            remove_staging_leftovers(&root.join("gone"), cutoff).unwrap(),
            0
        );
    }

    #[test]
    fn only_a_file_url_has_a_local_directory() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        assert_eq!(
            Store::open(&url).unwrap().local_dir().as_deref(),
            Some(dir.path())
        );
        assert_eq!(Store::memory().local_dir(), None);
        assert_eq!(Store::open("s3://b/p").unwrap().local_dir(), None);
    }

    #[test]
    fn s3_url_splits_bucket_and_prefix() {
        let s = Store::open("s3://bucket/some/prefix").expect("s3 builder needs no network");
        assert_eq!(s.paths, Paths::new("some/prefix"));
    }
}
