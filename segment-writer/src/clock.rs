//! Injected time. Library code asks a [`Clock`] for the wall time and for sleeps, so tests can
//! run on tokio's paused clock (virtual time) and simulations stay deterministic.

use std::sync::Arc;
use std::time::Duration;

/// Wall time in Unix milliseconds plus sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Unix epoch milliseconds.
    fn now_ms(&self) -> i64;
    /// A monotonic instant.
    fn instant(&self) -> tokio::time::Instant;
    /// Sleep for `d`.
    fn sleep(&self, d: Duration) -> futures::future::BoxFuture<'static, ()>;
}

/// The clock of a real process: wall time read once at start, then advanced by tokio's
/// monotonic clock. Under `tokio::time::pause()` the whole clock is virtual, which is how the
/// tests drive lease expiry and takeovers without waiting.
#[derive(Debug, Clone)]
pub struct TokioClock {
    base_ms: i64,
    base: tokio::time::Instant,
}

impl TokioClock {
    /// A clock starting at the system's wall time.
    #[allow(clippy::disallowed_methods)] // the one place that reads the system clock
    pub fn new() -> Self {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self::starting_at(base_ms)
    }

    /// A clock whose wall time starts at `base_ms`.
    pub fn starting_at(base_ms: i64) -> Self {
        TokioClock {
            base_ms,
            base: tokio::time::Instant::now(),
        }
    }

    /// A shared handle.
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(Self::new())
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.base_ms + self.base.elapsed().as_millis() as i64
    }

    fn instant(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    #[allow(clippy::disallowed_methods)] // the one place that sleeps
    fn sleep(&self, d: Duration) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}
