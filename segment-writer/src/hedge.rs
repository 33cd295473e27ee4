//! Hedged requests (DESIGN.md, "Latency budget"): once a PUT has taken longer than the recent
//! p90, a second identical PUT is sent and the first decisive answer wins. Object-store PUT
//! latency has a long tail; a duplicate request cuts it at the cost of about 10% more PUTs.
//!
//! Safe for our writes because both requests carry the same bytes: a segment is immutable
//! under a fresh name, and a manifest delta is a create-if-absent whose loser finds its own
//! nonce in the winner (`ManifestLog::try_commit`).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::{Either, select};

use crate::clock::Clock;

/// Samples kept for the percentile.
const WINDOW: usize = 256;
/// Samples needed before hedging starts.
const WARM_UP: usize = 32;

/// Tracks recent latencies of one kind of request and hedges the slow ones.
#[derive(Debug)]
pub struct Hedger {
    enabled: bool,
    /// Never hedge sooner than this.
    floor: Duration,
    samples: Mutex<VecDeque<Duration>>,
    hedged: std::sync::atomic::AtomicU64,
}

impl Hedger {
    /// A hedger; `enabled: false` sends every request once.
    pub fn new(enabled: bool, floor: Duration) -> Self {
        Hedger {
            enabled,
            floor,
            samples: Mutex::new(VecDeque::with_capacity(WINDOW)),
            hedged: Default::default(),
        }
    }

    /// How many requests were hedged so far.
    pub fn hedged(&self) -> u64 {
        self.hedged.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When to send the second request: the p90 of recent latencies, or `None` (no hedging:
    /// disabled, or too few samples yet).
    pub fn delay(&self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        Some(self.quantile(9, 10)?.max(self.floor))
    }

    /// The median of recent latencies (`None` before the warm-up), enabled or not.
    pub fn median(&self) -> Option<Duration> {
        self.quantile(1, 2)
    }

    /// The `num/den` quantile of recent latencies, `None` before the warm-up.
    fn quantile(&self, num: usize, den: usize) -> Option<Duration> {
        let s = self.samples.lock().expect("hedge samples poisoned");
        if s.len() < WARM_UP {
            return None;
        }
        let mut v: Vec<Duration> = s.iter().copied().collect();
        let i = v.len() * num / den;
        let (_, q, _) = v.select_nth_unstable(i);
        Some(*q)
    }

    fn record(&self, d: Duration) {
        let mut s = self.samples.lock().expect("hedge samples poisoned");
        if s.len() == WINDOW {
            s.pop_front();
        }
        s.push_back(d);
    }

    /// Runs `make()`; if it has not answered after [`Hedger::delay`], runs it again and returns
    /// the first answer that `decisive` accepts (else the other one's).
    pub async fn run<T, E, F, Fut>(
        &self,
        clock: &dyn Clock,
        make: F,
        decisive: impl Fn(&Result<T, E>) -> bool,
    ) -> Result<T, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let start = clock.instant();
        let first = Box::pin(make());
        let Some(after) = self.delay() else {
            let r = first.await;
            self.record(clock.instant().saturating_duration_since(start));
            return r;
        };
        let first = match select(first, clock.sleep(after)).await {
            Either::Left((r, _)) => {
                self.record(clock.instant().saturating_duration_since(start));
                return r;
            }
            Either::Right(((), first)) => first,
        };
        self.hedged
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let second = Box::pin(make());
        let (r, other) = match select(first, second).await {
            Either::Left((r, other)) | Either::Right((r, other)) => (r, other),
        };
        let r = if decisive(&r) { r } else { other.await };
        self.record(clock.instant().saturating_duration_since(start));
        r
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::clock::TokioClock;

    #[tokio::test(start_paused = true)]
    async fn a_slow_request_is_sent_again_and_the_first_answer_wins() {
        let clock = TokioClock::shared();
        let h = Hedger::new(true, Duration::from_millis(1));
        let calls = Arc::new(AtomicU32::new(0));
        // Warm up with 10 ms requests.
        for _ in 0..WARM_UP {
            let c = clock.clone();
            let r: Result<(), ()> = h
                .run(
                    clock.as_ref(),
                    || {
                        let c = c.clone();
                        async move {
                            c.sleep(Duration::from_millis(10)).await;
                            Ok(())
                        }
                    },
                    Result::is_ok,
                )
                .await;
            assert!(r.is_ok());
        }
        assert_eq!(h.delay(), Some(Duration::from_millis(10)));
        // The first attempt takes 1 s, the hedge 10 ms: done after about 20 ms.
        let start = clock.instant();
        let (c, n) = (clock.clone(), calls.clone());
        let r: Result<u32, ()> = h
            .run(
                clock.as_ref(),
                || {
                    let (c, n) = (c.clone(), n.clone());
                    async move {
                        let k = n.fetch_add(1, Ordering::SeqCst);
                        let d = if k == 0 { 1000 } else { 10 };
                        c.sleep(Duration::from_millis(d)).await;
                        Ok(k)
                    }
                },
                Result::is_ok,
            )
            .await;
        assert_eq!(r, Ok(1), "the hedge answered first");
        assert!(clock.instant() - start < Duration::from_millis(50));
        assert_eq!(h.hedged(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_answer_waits_for_the_other_and_disabled_never_hedges() {
        let clock = TokioClock::shared();
        let h = Hedger::new(true, Duration::from_millis(1));
        for _ in 0..WARM_UP {
            h.record(Duration::from_millis(10));
        }
        let (c, n) = (clock.clone(), Arc::new(AtomicU32::new(0)));
        let r: Result<u32, u32> = h
            .run(
                clock.as_ref(),
                || {
                    let (c, n) = (c.clone(), n.clone());
                    async move {
                        let k = n.fetch_add(1, Ordering::SeqCst);
                        if k == 0 {
                            c.sleep(Duration::from_millis(100)).await;
                            Ok(k)
                        } else {
                            Err(k)
                        }
                    }
                },
                Result::is_ok,
            )
            .await;
        assert_eq!(r, Ok(0), "the hedge's error is not decisive");
        let off = Hedger::new(false, Duration::from_millis(1));
        for _ in 0..WARM_UP {
            off.record(Duration::from_millis(10));
        }
        assert_eq!(off.delay(), None);
    }
}
