//! Consumer groups and their progress: a cursor per (consumer, topic, queue) with its
//! consumed offsets, leases and retries, and a push group's counters.
//!
//! Plain data with the small queries and updates a cursor makes of itself; which lease is
//! granted when is decided by apply (`manifest::state::delivery`). Part of the stored format
//! of checkpoints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::defs::{GroupDef, GroupMode};
use super::intervals::OffsetSet;
use super::range::OffsetRange;

/// A granted lease on one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Which delivery this is, from 1.
    pub attempt: u32,
    /// The version that granted (or last extended) it: receipts name it.
    pub version: u64,
    pub deadline_ms: i64,
    /// The message's range (of just its offset) when that is no longer inline: a dead-letter
    /// move needs its bytes (`manifest::index`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub located: Option<Box<OffsetRange>>,
}

/// A message waiting to be delivered again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// Deliveries so far.
    pub attempts: u32,
    pub visible_at_ms: i64,
    /// As [`Lease::located`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub located: Option<Box<OffsetRange>>,
}

/// The consumer name of the gateways' pushers in their leases (API.md "Push subscriptions");
/// not a name a client can give (`:` is not allowed in one).
pub const PUSH_CONSUMER: &str = "ferrymq:push";

/// Messages a group may have leased or waiting for a retry at once when the receive does not
/// say (SQS allows 120,000 in flight per queue). A receive past it grants nothing and the
/// gateway answers 429.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 100_000;

/// A group's (or broadcast instance's) progress on one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Cursor {
    /// Every offset below is consumed.
    pub committed: u64,
    /// Consumed offsets at or above `committed`, as intervals.
    pub done: OffsetSet,
    pub leases: BTreeMap<u64, Lease>,
    pub retries: BTreeMap<u64, Retry>,
    /// Ordered topics: message group → the offset of it in flight (leased or waiting for a
    /// retry); no other offset of that message group is leased until this one is done.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fifo_inflight: BTreeMap<String, u64>,
}

impl Cursor {
    pub(crate) fn at(offset: u64) -> Self {
        Cursor {
            committed: offset,
            ..Cursor::default()
        }
    }

    pub(crate) fn is_done(&self, offset: u64) -> bool {
        if self.leases.contains_key(&offset) || self.retries.contains_key(&offset) {
            // A re-driven dead letter may sit below `committed`.
            return false;
        }
        offset < self.committed || self.done.contains(offset)
    }

    /// Leased plus waiting for a retry.
    pub fn in_flight(&self) -> usize {
        self.leases.len() + self.retries.len()
    }

    /// The range of a leased or retrying `offset` kept with it, if it was folded.
    pub(crate) fn located(&self, offset: u64) -> Option<&OffsetRange> {
        self.leases
            .get(&offset)
            .and_then(|l| l.located.as_deref())
            .or_else(|| self.retries.get(&offset).and_then(|r| r.located.as_deref()))
    }

    pub(crate) fn mark_done(&mut self, offset: u64) {
        self.leases.remove(&offset);
        self.retries.remove(&offset);
        if !self.fifo_inflight.is_empty() {
            self.fifo_inflight.retain(|_, o| *o != offset);
        }
        if offset >= self.committed {
            self.done.insert(offset);
        }
        if let Some(end) = self.done.take_from(self.committed) {
            self.committed = end;
        }
    }

    /// The delivery attempt `offset` would get if leased at `now`, or `None` if it is not free.
    /// `exhausted` is true when its deliveries are used up (it is due for the dead-letter queue).
    pub(crate) fn availability(
        &self,
        offset: u64,
        now: i64,
        def: &GroupDef,
    ) -> Option<(u32, bool)> {
        if self.is_done(offset) {
            return None;
        }
        let used = if let Some(lease) = self.leases.get(&offset) {
            if lease.deadline_ms > now || now < lease.deadline_ms + def.backoff_ms(lease.attempt) {
                return None;
            }
            lease.attempt
        } else if let Some(retry) = self.retries.get(&offset) {
            if now < retry.visible_at_ms {
                return None;
            }
            retry.attempts
        } else {
            0
        };
        let exhausted = def.mode == GroupMode::Clustering && used >= def.max_deliveries();
        Some((used + 1, exhausted))
    }
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub def: GroupDef,
    /// consumer instance ("" in clustering mode) → topic → cursor per queue.
    pub cursors: BTreeMap<String, BTreeMap<String, Vec<Cursor>>>,
    /// A push group's counters and rate limiter (`None` for a pull group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushProgress>,
}

/// What a push group's deliveries came to, over all gateways, and its rate limiter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PushProgress {
    pub delivered_total: u64,
    pub failed_total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_time_ms: Option<i64>,
    /// The latest end of a pause a pusher reported (an endpoint's `Retry-After`): until then
    /// that gateway pushes none of the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until_ms: Option<i64>,
    /// Leases the rate cap allows, in thousandths, as of `refilled_ms` (a token bucket of one
    /// second's worth).
    #[serde(default)]
    pub tokens_milli: u64,
    #[serde(default)]
    pub refilled_ms: i64,
    /// Gateways pushing this group → when they last reported; entries older than
    /// [`PushProgress::PUSHER_TTL_MS`] are dropped at the next report (so bounded by the
    /// gateways alive in that window). The pushers share the group's queues among these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pushers: BTreeMap<String, i64>,
}

impl PushProgress {
    /// Longest `last_error` kept, in bytes.
    pub const MAX_ERROR_BYTES: usize = 512;
    /// A pusher that has not reported for this long is no longer counted.
    pub const PUSHER_TTL_MS: i64 = 15_000;

    /// The gateways counted as pushing at `now`, in order.
    pub fn live_pushers(&self, now: i64) -> impl Iterator<Item = &str> {
        self.pushers
            .iter()
            .filter(move |(_, t)| **t > now - Self::PUSHER_TTL_MS)
            .map(|(g, _)| g.as_str())
    }

    /// Leases the rate cap would allow at `now` (`u32::MAX` without a cap).
    pub fn available(&self, rate_per_s: u32, now: i64) -> u32 {
        self.clone().refill(rate_per_s, now)
    }

    /// Leases the rate cap allows now (`u32::MAX` without a cap), after refilling.
    pub(crate) fn refill(&mut self, rate_per_s: u32, now: i64) -> u32 {
        if rate_per_s == 0 {
            return u32::MAX;
        }
        let burst = u64::from(rate_per_s) * 1000;
        let elapsed = now.saturating_sub(self.refilled_ms).max(0) as u64;
        self.tokens_milli = self
            .tokens_milli
            .saturating_add(elapsed.saturating_mul(u64::from(rate_per_s)))
            .min(burst);
        self.refilled_ms = now.max(self.refilled_ms);
        (self.tokens_milli / 1000).min(u64::from(u32::MAX)) as u32
    }
}
