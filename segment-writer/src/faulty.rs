//! `FaultyStore`: an [`ObjectStore`] wrapper that injects latency (jittered, per profile, plus
//! per byte), errors, timeouts, outages and "the write landed but the response was lost", all
//! drawn from one seeded random generator, and counts the calls it passes on. Used by tests,
//! simulation and `--store-profile` benchmarks; never a mock: the wrapped store is real.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::clock::Clock;

/// A latency distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// No added latency.
    None,
    /// Always this long.
    Fixed(Duration),
    /// Lognormal with the given median and 99th percentile (milliseconds): jitter matters,
    /// a fixed model hides the tail.
    LogNormal { p50_ms: f64, p99_ms: f64 },
}

impl Latency {
    fn sample(&self, rng: &mut SmallRng) -> Duration {
        match *self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::LogNormal { p50_ms, p99_ms } => {
                let mu = p50_ms.ln();
                let sigma = (p99_ms / p50_ms).ln() / 2.326;
                // Box-Muller.
                let u1: f64 = rng.random_range(f64::EPSILON..1.0);
                let u2: f64 = rng.random();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                Duration::from_secs_f64((mu + sigma * z).exp() / 1000.0)
            }
        }
    }
}

/// What to inject. `Default` injects nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Latency of puts (and deletes).
    pub put_latency: Latency,
    /// Latency of gets, heads and lists.
    pub get_latency: Latency,
    /// Added per KiB transferred (put payload or get result).
    pub per_kib: Duration,
    /// Fraction of calls that fail before reaching the store.
    pub error_rate: f64,
    /// Fraction of puts that land in the store but report an error.
    pub lost_response_rate: f64,
    /// Fraction of calls that hang for `timeout` and then fail without reaching the store.
    pub timeout_rate: f64,
    /// How long a timed-out call hangs.
    pub timeout: Duration,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            put_latency: Latency::None,
            get_latency: Latency::None,
            per_kib: Duration::ZERO,
            error_rate: 0.0,
            lost_response_rate: 0.0,
            timeout_rate: 0.0,
            timeout: Duration::from_secs(2),
        }
    }
}

impl FaultConfig {
    /// A named latency profile: `s3-standard` (PUT p50 30 ms / p99 90 ms, GET p50 15 ms),
    /// `s3-express` (PUT p50 5 ms / p99 10 ms), `minio-lan` (p50 5 ms / p99 20 ms), `none`.
    pub fn profile(name: &str) -> Option<FaultConfig> {
        let (put, get) = match name {
            "none" => (Latency::None, Latency::None),
            "s3-standard" => (
                Latency::LogNormal {
                    p50_ms: 30.0,
                    p99_ms: 90.0,
                },
                Latency::LogNormal {
                    p50_ms: 15.0,
                    p99_ms: 60.0,
                },
            ),
            "s3-express" => (
                Latency::LogNormal {
                    p50_ms: 5.0,
                    p99_ms: 10.0,
                },
                Latency::LogNormal {
                    p50_ms: 3.0,
                    p99_ms: 8.0,
                },
            ),
            "minio-lan" => (
                Latency::LogNormal {
                    p50_ms: 5.0,
                    p99_ms: 20.0,
                },
                Latency::LogNormal {
                    p50_ms: 3.0,
                    p99_ms: 15.0,
                },
            ),
            _ => return None,
        };
        Some(FaultConfig {
            put_latency: put,
            get_latency: get,
            ..FaultConfig::default()
        })
    }
}

/// Calls passed to the wrapped store, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallCounts {
    pub puts: u64,
    pub gets: u64,
    pub lists: u64,
    pub deletes: u64,
    /// Calls failed by injection (errors, timeouts, lost responses, outage).
    pub injected_faults: u64,
}

#[derive(Debug, Default)]
struct Counters {
    puts: AtomicU64,
    gets: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    faults: AtomicU64,
}

/// The fault-injecting wrapper.
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    config: Mutex<FaultConfig>,
    rng: Mutex<SmallRng>,
    clock: Arc<dyn Clock>,
    outage: AtomicBool,
    counters: Counters,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .finish()
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

enum Plan {
    Pass(Duration),
    Fail(Duration),
    LoseResponse(Duration),
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultyStore",
        source: format!("injected {what}").into(),
    }
}

impl FaultyStore {
    /// Wraps `inner`; every random choice comes from `seed`.
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        config: FaultConfig,
        seed: u64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        FaultyStore {
            inner,
            config: Mutex::new(config),
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            clock,
            outage: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    /// Replaces what is injected from now on.
    pub fn set_config(&self, config: FaultConfig) {
        *self.config.lock().expect("fault config lock poisoned") = config;
    }

    /// While on, every call fails at once, as when the store is unreachable.
    pub fn set_outage(&self, on: bool) {
        self.outage.store(on, Ordering::SeqCst);
    }

    /// Calls so far.
    pub fn counts(&self) -> CallCounts {
        let c = &self.counters;
        CallCounts {
            puts: c.puts.load(Ordering::Relaxed),
            gets: c.gets.load(Ordering::Relaxed),
            lists: c.lists.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            injected_faults: c.faults.load(Ordering::Relaxed),
        }
    }

    fn plan(&self, is_put: bool, bytes: usize) -> Plan {
        if self.outage.load(Ordering::SeqCst) {
            return Plan::Fail(Duration::ZERO);
        }
        let config = self
            .config
            .lock()
            .expect("fault config lock poisoned")
            .clone();
        let mut rng = self.rng.lock().expect("fault rng lock poisoned");
        let base = if is_put {
            config.put_latency
        } else {
            config.get_latency
        };
        let delay = base.sample(&mut rng) + config.per_kib.mul_f64(bytes as f64 / 1024.0);
        let roll: f64 = rng.random();
        if roll < config.error_rate {
            Plan::Fail(delay)
        } else if roll < config.error_rate + config.timeout_rate {
            Plan::Fail(config.timeout)
        } else if is_put
            && roll < config.error_rate + config.timeout_rate + config.lost_response_rate
        {
            Plan::LoseResponse(delay)
        } else {
            Plan::Pass(delay)
        }
    }

    async fn before(&self, is_put: bool, bytes: usize) -> object_store::Result<bool> {
        match self.plan(is_put, bytes) {
            Plan::Pass(d) => {
                self.wait(d).await;
                Ok(false)
            }
            Plan::LoseResponse(d) => {
                self.wait(d).await;
                Ok(true)
            }
            Plan::Fail(d) => {
                self.wait(d).await;
                self.counters.faults.fetch_add(1, Ordering::Relaxed);
                Err(injected("error"))
            }
        }
    }

    async fn wait(&self, d: Duration) {
        if !d.is_zero() {
            self.clock.sleep(d).await;
        }
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let lose = self.before(true, payload.content_length()).await?;
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.put_opts(location, payload, opts).await;
        if lose && result.is_ok() {
            self.counters.faults.fetch_add(1, Ordering::Relaxed);
            return Err(injected("lost response"));
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.before(true, 0).await?;
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.before(false, 0).await?;
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let bytes: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        self.before(false, bytes as usize).await?;
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        if self.outage.load(Ordering::SeqCst) {
            return futures::stream::once(async { Err(injected("outage")) }).boxed();
        }
        let n = Arc::new(AtomicU64::new(0));
        let counter = n.clone();
        let counted = locations.inspect_ok(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        self.counters.deletes.fetch_add(1, Ordering::Relaxed);
        self.inner.delete_stream(counted.boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if self.outage.load(Ordering::SeqCst) {
            return futures::stream::once(async { Err(injected("outage")) }).boxed();
        }
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if self.outage.load(Ordering::SeqCst) {
            return futures::stream::once(async { Err(injected("outage")) }).boxed();
        }
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.before(false, 0).await?;
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.before(true, 0).await?;
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutMode};

    #[tokio::test]
    async fn lost_response_lands_but_reports_error_and_counts() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let config = FaultConfig {
            lost_response_rate: 1.0,
            ..FaultConfig::default()
        };
        let f = FaultyStore::new(inner.clone(), config, 7, TokioClock::shared());
        let p = Path::from("a");
        assert!(
            f.put_opts(&p, "x".into(), PutMode::Create.into())
                .await
                .is_err()
        );
        assert_eq!(inner.get(&p).await.unwrap().bytes().await.unwrap(), "x");
        assert_eq!(f.counts().puts, 1);
        assert_eq!(f.counts().injected_faults, 1);
    }

    #[tokio::test]
    async fn outage_fails_everything_without_touching_the_store() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let f = FaultyStore::new(
            inner.clone(),
            FaultConfig::default(),
            1,
            TokioClock::shared(),
        );
        f.set_outage(true);
        assert!(f.put(&Path::from("a"), "x".into()).await.is_err());
        assert!(inner.head(&Path::from("a")).await.is_err());
        f.set_outage(false);
        assert!(f.put(&Path::from("a"), "x".into()).await.is_ok());
    }

    #[test]
    fn lognormal_profile_has_the_named_median_and_tail() {
        let lat = FaultConfig::profile("s3-standard").unwrap().put_latency;
        let mut rng = SmallRng::seed_from_u64(3);
        let mut v: Vec<f64> = (0..20_000)
            .map(|_| lat.sample(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let p50 = v[v.len() / 2];
        let p99 = v[v.len() * 99 / 100];
        assert!((27.0..33.0).contains(&p50), "p50 {p50}");
        assert!((80.0..100.0).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn same_seed_same_plan() {
        let config = FaultConfig {
            error_rate: 0.3,
            lost_response_rate: 0.2,
            ..FaultConfig::profile("s3-express").unwrap()
        };
        let run = || {
            let f = FaultyStore::new(
                Arc::new(InMemory::new()),
                config.clone(),
                42,
                TokioClock::shared(),
            );
            (0..100)
                .map(|_| match f.plan(true, 10) {
                    Plan::Pass(d) => (0, d),
                    Plan::Fail(d) => (1, d),
                    Plan::LoseResponse(d) => (2, d),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
