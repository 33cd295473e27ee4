//! Injected time. Library code asks a [`Clock`] for the wall time and for sleeps, so tests can
//! run on tokio's paused clock (virtual time) and simulations stay deterministic. Ids that carry
//! a time (ULIDs: message and transaction ids, object names) come from [`new_ulid`], so they
//! carry the clock's time too; `clippy.toml` bans `ulid::Ulid::new`, which reads the system clock.

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

/// A new ULID: the time part is `clock`'s wall time (clamped at the epoch), the 80 random bits
/// from `rand::random`.
pub fn new_ulid(clock: &dyn Clock) -> ulid::Ulid {
    ulid::Ulid::from_parts(clock.now_ms().max(0) as u64, rand::random())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ulids_carry_the_time_of_the_clock_they_are_made_with() {
        let clock = TokioClock::starting_at(1_700_000_000_123);
        let a = new_ulid(&clock);
        assert_eq!(a.timestamp_ms(), 1_700_000_000_123);
        clock.sleep(Duration::from_millis(5)).await;
        let b = new_ulid(&clock);
        assert_eq!(b.timestamp_ms(), 1_700_000_000_128);
        assert!(a < b, "later ids sort after earlier ones");
        assert_ne!(new_ulid(&clock), new_ulid(&clock), "random bits differ");
        // A clock before the epoch (a bad mock) still makes an id, at time 0.
        assert_eq!(new_ulid(&TokioClock::starting_at(-5)).timestamp_ms(), 0);
    }
}
