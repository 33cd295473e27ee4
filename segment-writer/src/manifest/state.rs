//! The manifest state and its deterministic `apply`.
//!
//! Everything here is a function of the deltas applied: times come from [`Delta::time_ms`],
//! offsets are assigned in apply order, leases are granted only if still free when applied.
//! Every map is a `BTreeMap`, so equal states encode to equal bytes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use super::messaging::{
    DECISION_WINDOW_MS, DEDUP_PER_TOPIC, DEDUP_WINDOW_MS, Decision, Half, Pending, ProducerGroup,
    ProducerInstance, ProducerSettings,
};

use super::command::{
    Command, DedupRecord, Delta, DeltaId, Entry, Grant, GroupDef, GroupMode, Outcome, PushDef,
    QueueOffset, Rejection, RequestId, ResetTarget, SettleAction, StartFrom, TopicDef, TopicKind,
};
use super::index::IndexRun;
use super::intervals::OffsetSet;
use super::ledger::{EventKind, LedgerEvent};

/// How long a forwarded request's outcome is remembered (a retry within it applies once).
/// A follower gives up on a forward well within this (its submit timeout).
pub const REQUEST_WINDOW_MS: i64 = 2 * 60 * 1000;

/// How many forwarded request outcomes are remembered per origin. A follower has only a few
/// forwards in flight, and only those can be retried.
pub const REQUESTS_PER_ORIGIN: usize = 256;

/// The prefix of dead-letter topics.
pub const DLQ_PREFIX: &str = "DLQ.";

/// The current sequencer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencerInfo {
    pub gateway: String,
    pub address: String,
    pub epoch: u64,
    /// The version that made it sequencer.
    pub since_version: u64,
}

/// A run of offsets stored contiguously in one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    pub base: u64,
    pub count: u32,
    pub segment: String,
    pub first_ordinal: u32,
    pub publish_time_ms: i64,
    /// For dead letters: the topic the message was published to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_topic: Option<String>,
    /// For dead letters: the queue and offset of the first message in its original topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<(u32, u64)>,
    /// When the range was appended, where that is not its publish time: delayed messages
    /// when due, committed half messages, dead letters (the delta time of the append).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appended_ms: Option<i64>,
}

impl OffsetRange {
    /// When its messages entered the queue (RocketMQ's store time): what reset to a
    /// timestamp and retention go by.
    pub fn stored_ms(&self) -> i64 {
        self.appended_ms.unwrap_or(self.publish_time_ms)
    }
}

/// One queue's offsets: summaries of runs of ranges held in index objects (`manifest::index`),
/// then the newest ranges inline. Together they hold offsets `first_held()..next_offset`
/// contiguously; below, offsets live only in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QueueLog {
    /// The next offset to assign.
    pub next_offset: u64,
    /// The first still readable.
    pub min_offset: u64,
    /// Runs folded into index objects, in offset order, followed by `ranges`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index: Vec<IndexRun>,
    pub ranges: Vec<OffsetRange>,
}

impl QueueLog {
    /// The first offset held by a run or an inline range (`next_offset` when none is).
    pub fn first_held(&self) -> u64 {
        self.index
            .first()
            .map(|r| r.base)
            .or(self.ranges.first().map(|r| r.base))
            .unwrap_or(self.next_offset)
    }

    /// The first offset held inline (below it, in index runs).
    pub fn first_inline(&self) -> u64 {
        self.ranges.first().map_or(self.next_offset, |r| r.base)
    }

    /// The inline range holding `offset` and the offset's ordinal in its segment (folded
    /// offsets: `manifest::index::IndexCache::locate`).
    pub fn locate(&self, offset: u64) -> Option<(&OffsetRange, u32)> {
        if offset < self.min_offset || offset >= self.next_offset {
            return None;
        }
        let i = self
            .ranges
            .partition_point(|r| r.base <= offset)
            .checked_sub(1)?;
        let r = &self.ranges[i];
        (offset < r.base + u64::from(r.count))
            .then(|| (r, r.first_ordinal + (offset - r.base) as u32))
    }

    /// The first offset stored at or after `time_ms` (range granularity: a publish batch, or
    /// the delayed messages due in one tick), or `next_offset`. Store times grow with offsets
    /// (a delayed message is stored when due), so this is a binary search.
    /// In folded runs the granularity is the run (a reset may deliver up to one run's earlier
    /// messages again); gateways resolve the exact offset through the index first.
    pub fn offset_at_time(&self, time_ms: i64) -> u64 {
        let i = self.index.partition_point(|r| r.last_stored_ms < time_ms);
        if let Some(r) = self.index.get(i) {
            return r.base.max(self.min_offset);
        }
        let i = self.ranges.partition_point(|r| r.stored_ms() < time_ms);
        self.ranges
            .get(i)
            .map_or(self.next_offset, |r| r.base.max(self.min_offset))
    }

    fn append(&mut self, range: OffsetRange) -> u64 {
        let base = self.next_offset;
        self.next_offset += u64::from(range.count);
        self.ranges.push(OffsetRange { base, ..range });
        base
    }
}

/// A topic and its queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub def: TopicDef,
    pub queues: Vec<QueueLog>,
}

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
    fn at(offset: u64) -> Self {
        Cursor {
            committed: offset,
            ..Cursor::default()
        }
    }

    fn is_done(&self, offset: u64) -> bool {
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
    fn located(&self, offset: u64) -> Option<&OffsetRange> {
        self.leases
            .get(&offset)
            .and_then(|l| l.located.as_deref())
            .or_else(|| self.retries.get(&offset).and_then(|r| r.located.as_deref()))
    }

    fn mark_done(&mut self, offset: u64) {
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
    fn availability(&self, offset: u64, now: i64, def: &GroupDef) -> Option<(u32, bool)> {
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
    fn refill(&mut self, rate_per_s: u32, now: i64) -> u32 {
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

/// A forwarded request's recorded outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub time_ms: i64,
    pub outcomes: Vec<Outcome>,
}

/// The whole replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct State {
    /// The last applied version (0: nothing applied).
    pub version: u64,
    /// The last applied delta's time.
    pub time_ms: i64,
    /// The last delta applied as a change (orphans do not count): what a delta written to
    /// follow it names as its parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<DeltaId>,
    pub sequencer: Option<SequencerInfo>,
    pub topics: BTreeMap<String, Topic>,
    pub groups: BTreeMap<String, Group>,
    /// origin → seq → outcome, for the idempotency window.
    pub requests: BTreeMap<String, BTreeMap<u64, RecordedRequest>>,
    /// Delayed messages not yet due, keyed `<deliver_at_ms, 20 digits>/<message_id>` so the
    /// map is in due order.
    #[serde(default)]
    pub timers: BTreeMap<String, Pending>,
    /// Timers moved to spill objects (`manifest::timers`), by object name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub spilled_timers: BTreeMap<String, super::timers::TimerSpill>,
    /// Half messages by transaction id.
    #[serde(default)]
    pub halves: BTreeMap<String, Half>,
    /// Transaction decisions, remembered for [`DECISION_WINDOW_MS`].
    #[serde(default)]
    pub decisions: BTreeMap<String, Decision>,
    #[serde(default)]
    pub producer_groups: BTreeMap<String, ProducerGroup>,
    /// topic → dedup id → first result, for [`DEDUP_WINDOW_MS`].
    #[serde(default)]
    pub dedup: BTreeMap<String, BTreeMap<String, DedupRecord>>,
    /// The archive catalogue, retention progress and compactor lease (`manifest::archive`).
    #[serde(default)]
    pub archive: super::archive::Archive,
    /// Segments whose bytes live in a log version ([`Command::InlineSegment`]), not yet
    /// written as their own objects: name → version. The log is not collected from the
    /// oldest of these versions on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inline_segments: BTreeMap<String, u64>,
    /// The inline segments that may be packed ([`Command::Packed`]), each with the queues
    /// whose ranges name it (so that packing rewrites those ranges without a scan). Bounded
    /// like `inline_segments`, of which it is a subset.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packable: BTreeMap<String, BTreeSet<(String, u32)>>,
    /// Delivery-ledger events not yet written to ledger objects (`manifest::ledger`).
    #[serde(default, skip_serializing_if = "super::ledger::Ledger::is_unused")]
    pub ledger: super::ledger::Ledger,
}

/// Why a delta cannot be applied to this state (the log is damaged or skipped a version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delta version {got} cannot follow state version {have}")]
pub struct VersionGap {
    pub have: u64,
    pub got: u64,
}

/// The dead-letter topic of a group.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_PREFIX}{group}")
}

impl State {
    /// Whether `delta` was written to follow another delta than this state's head: then it
    /// takes its version and changes nothing else.
    pub fn is_orphan(&self, delta: &Delta) -> bool {
        delta
            .parent
            .as_ref()
            .is_some_and(|p| self.head.as_ref() != Some(p))
    }

    /// Applies one delta; returns each entry's outcomes (one per command). An orphan
    /// ([`State::is_orphan`]) only advances the version and answers no outcomes (an empty list
    /// per entry): its commands were never applied, and its writer retries them.
    pub fn apply(&mut self, delta: &Delta) -> Result<Vec<Vec<Outcome>>, VersionGap> {
        if delta.version != self.version + 1 {
            return Err(VersionGap {
                have: self.version,
                got: delta.version,
            });
        }
        self.version = delta.version;
        if self.is_orphan(delta) {
            return Ok(vec![Vec::new(); delta.entries.len()]);
        }
        self.head = Some(delta.id());
        self.time_ms = self.time_ms.max(delta.time_ms);
        let now = self.time_ms;
        self.prune_requests(now);
        self.sweep_windows(now);
        let mut out = Vec::with_capacity(delta.entries.len());
        for entry in &delta.entries {
            self.ledger.origin = Some(
                entry
                    .request
                    .as_ref()
                    .map_or(&delta.writer, |r| &r.origin)
                    .clone(),
            );
            out.push(self.apply_entry(entry, now));
        }
        self.ledger.origin = None;
        Ok(out)
    }

    fn apply_entry(&mut self, entry: &Entry, now: i64) -> Vec<Outcome> {
        if let Some(RequestId { origin, seq }) = &entry.request {
            if let Some(done) = self.requests.get(origin).and_then(|m| m.get(seq)) {
                return done.outcomes.clone();
            }
        }
        let outcomes: Vec<Outcome> = entry
            .commands
            .iter()
            .map(|c| self.apply_command(c, now))
            .collect();
        if let Some(RequestId { origin, seq }) = &entry.request {
            self.requests.entry(origin.clone()).or_default().insert(
                *seq,
                RecordedRequest {
                    time_ms: now,
                    outcomes: outcomes.clone(),
                },
            );
        }
        outcomes
    }

    fn prune_requests(&mut self, now: i64) {
        for m in self.requests.values_mut() {
            m.retain(|_, r| now - r.time_ms <= REQUEST_WINDOW_MS);
            while m.len() > REQUESTS_PER_ORIGIN {
                m.pop_first();
            }
        }
        self.requests.retain(|_, m| !m.is_empty());
    }

    fn apply_command(&mut self, command: &Command, now: i64) -> Outcome {
        match self.try_apply(command, now) {
            Ok(o) => o,
            Err(r) => Outcome::rejected(r),
        }
    }

    fn try_apply(&mut self, command: &Command, now: i64) -> Result<Outcome, Rejection> {
        match command {
            Command::CreateTopic { topic, def } => self.create_topic(topic, def),
            Command::DeleteTopic { topic } => {
                self.topics
                    .remove(topic)
                    .ok_or_else(|| Rejection::TopicNotFound(topic.clone()))?;
                self.detach_archive(topic);
                for g in self.groups.values_mut() {
                    for per_topic in g.cursors.values_mut() {
                        per_topic.remove(topic);
                    }
                }
                Ok(Outcome::Done)
            }
            Command::Append {
                topic,
                queue,
                segment,
                first_ordinal,
                count,
                publish_time_ms,
            } => {
                let t = self
                    .topics
                    .get_mut(topic)
                    .ok_or_else(|| Rejection::TopicNotFound(topic.clone()))?;
                let q = t.queues.get_mut(*queue as usize).ok_or_else(|| {
                    Rejection::Invalid(format!("topic {topic} has no queue {queue}"))
                })?;
                if *count == 0 {
                    return Err(Rejection::Invalid("empty append".into()));
                }
                let base = q.append(OffsetRange {
                    base: 0,
                    count: *count,
                    segment: segment.clone(),
                    first_ordinal: *first_ordinal,
                    publish_time_ms: *publish_time_ms,
                    origin_topic: None,
                    origin: None,
                    appended_ms: None,
                });
                self.note_packable_ref(segment, topic, *queue);
                self.record(LedgerEvent {
                    count: *count,
                    ..LedgerEvent::new(EventKind::Published, topic).at(*queue, base)
                });
                Ok(Outcome::Appended { base_offset: base })
            }
            Command::CreateGroup { group, def } => self.create_group(group, def),
            Command::DeleteGroup { group } => {
                self.groups
                    .remove(group)
                    .ok_or_else(|| Rejection::GroupNotFound(group.clone()))?;
                Ok(Outcome::Done)
            }
            Command::Lease {
                group,
                consumer,
                invisible_ms,
                max,
                candidates,
                skipped,
                message_groups,
                located,
                max_in_flight,
            } => self.lease(
                group,
                consumer,
                (
                    *invisible_ms,
                    *max,
                    max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
                ),
                (candidates, message_groups, located),
                skipped,
                now,
            ),
            Command::Settle {
                group,
                consumer,
                at,
                lease_version,
                action,
            } => self.settle(group, consumer, at, *lease_version, *action, now),
            Command::PushReport {
                group,
                gateway,
                delivered,
                failed,
                last_error,
            } => {
                let g = self
                    .groups
                    .get_mut(group)
                    .ok_or_else(|| Rejection::GroupNotFound(group.clone()))?;
                // A report after the group turned to pull is dropped.
                if let Some(p) = g.push.as_mut() {
                    p.pushers
                        .retain(|_, t| *t > now - PushProgress::PUSHER_TTL_MS);
                    if !gateway.is_empty() {
                        p.pushers.insert(gateway.clone(), now);
                    }
                    p.delivered_total = p.delivered_total.saturating_add(*delivered);
                    p.failed_total = p.failed_total.saturating_add(*failed);
                    if let Some(e) = last_error {
                        let mut end = e.len().min(PushProgress::MAX_ERROR_BYTES);
                        while !e.is_char_boundary(end) {
                            end -= 1;
                        }
                        p.last_error = Some(e[..end].to_string());
                        p.last_error_time_ms = Some(now);
                    }
                }
                Ok(Outcome::Done)
            }
            Command::SettleMany {
                group,
                consumer,
                topic,
                queue,
                lease_version,
                action,
                offsets,
            } => {
                // Everything that would refuse the whole command is checked before anything
                // changes; past this, an offset is settled or expired on its own.
                self.cursor_mut(group, consumer, topic, *queue)?;
                if matches!(action, SettleAction::Extend { invisible_ms } if *invisible_ms <= 0) {
                    return Err(Rejection::Invalid("invisible_ms must be positive".into()));
                }
                let mut at = QueueOffset {
                    topic: topic.clone(),
                    queue: *queue,
                    offset: 0,
                };
                let mut expired = Vec::new();
                let mut version = *lease_version;
                for &offset in offsets {
                    at.offset = offset;
                    match self.settle(group, consumer, &at, *lease_version, *action, now) {
                        Ok(Outcome::Settled { lease_version }) => version = lease_version,
                        Ok(_) | Err(Rejection::ReceiptExpired) => expired.push(offset),
                        Err(e) => return Err(e),
                    }
                }
                Ok(Outcome::SettledMany {
                    lease_version: version,
                    expired,
                })
            }
            Command::ResetOffsets { group, topic, to } => {
                let t = self
                    .topics
                    .get(topic)
                    .ok_or_else(|| Rejection::TopicNotFound(topic.clone()))?;
                let targets: Vec<u64> = t
                    .queues
                    .iter()
                    .map(|q| match to {
                        ResetTarget::Earliest => q.min_offset,
                        ResetTarget::Latest => q.next_offset,
                        ResetTarget::Timestamp(ts) => q.offset_at_time(*ts),
                    })
                    .collect();
                let g = self
                    .groups
                    .get_mut(group)
                    .ok_or_else(|| Rejection::GroupNotFound(group.clone()))?;
                if !g.def.subscriptions.iter().any(|s| &s.topic == topic) {
                    return Err(Rejection::Invalid(format!(
                        "group {group} does not subscribe to {topic}"
                    )));
                }
                let consumers: Vec<String> = match g.def.mode {
                    GroupMode::Clustering => vec![String::new()],
                    GroupMode::Broadcast => g.cursors.keys().cloned().collect(),
                };
                for c in consumers {
                    let cursors = targets.iter().map(|&o| Cursor::at(o)).collect();
                    g.cursors
                        .entry(c)
                        .or_default()
                        .insert(topic.clone(), cursors);
                }
                Ok(Outcome::Done)
            }
            Command::ExpireLeases => {
                self.expire_leases(now);
                Ok(Outcome::Done)
            }
            Command::PublishOne {
                topic,
                queue,
                segment,
                ordinal,
                publish_time_ms,
                message_id,
                dedup_id,
                mode,
            } => self.publish_one(
                Pending {
                    topic: topic.clone(),
                    queue: *queue,
                    segment: segment.clone(),
                    ordinal: *ordinal,
                    publish_time_ms: *publish_time_ms,
                    message_id: message_id.clone(),
                },
                dedup_id.as_deref(),
                mode,
                now,
            ),
            Command::InlineSegment {
                segment, packable, ..
            } => {
                if segment.is_empty() {
                    return Err(Rejection::Invalid("an inline segment needs a name".into()));
                }
                self.inline_segments.insert(segment.clone(), self.version);
                if *packable {
                    self.packable.insert(segment.clone(), BTreeSet::new());
                }
                Ok(Outcome::Done)
            }
            Command::Materialized { segments } => {
                for s in segments {
                    self.inline_segments.remove(s);
                    self.packable.remove(s);
                }
                Ok(Outcome::Done)
            }
            Command::Packed { pack, parts } => {
                if pack.is_empty() {
                    return Err(Rejection::Invalid("a pack needs a name".into()));
                }
                for part in parts {
                    self.pack_part(pack, part);
                }
                Ok(Outcome::Done)
            }
            Command::FireTimers => {
                self.fire_timers(now);
                Ok(Outcome::Done)
            }
            Command::CancelTimer {
                topic,
                message_id,
                spilled_in,
            } => self.cancel_timer(topic, message_id, spilled_in.as_deref()),
            Command::SpillTimers { object, spill } => self.spill_timers(object, spill),
            Command::LoadTimers { object, timers } => self.load_timers(object, timers),
            Command::Decide {
                transaction_id,
                commit,
            } => self.decide(transaction_id, *commit, now),
            Command::CheckTransactions => Ok(self.check_transactions(now)),
            Command::ClaimChecks {
                producer_group,
                max,
            } => Ok(self.claim_checks(producer_group, *max)),
            Command::ConfigureProducerGroup {
                producer_group,
                check_immunity_ms,
                check_interval_ms,
                max_checks,
            } => self.configure_producer_group(
                producer_group,
                *check_immunity_ms,
                *check_interval_ms,
                *max_checks,
            ),
            Command::RegisterProducer {
                producer_group,
                instance,
                check_url,
                ttl_ms,
            } => self.register_producer(producer_group, instance, check_url, *ttl_ms, now),
            Command::Redrive { group, max, folded } => self.redrive(group, *max, folded, now),
            Command::FoldIndex { runs, .. } => self.apply_index(runs),
            Command::LedgerFlushed { through_seq, .. } => {
                self.ledger.flushed(*through_seq);
                Ok(Outcome::Done)
            }
            Command::Sequencer {
                gateway,
                address,
                epoch,
            } => {
                let current = self.sequencer.as_ref().map_or(0, |s| s.epoch);
                if *epoch <= current {
                    return Err(Rejection::StaleEpoch {
                        claimed: *epoch,
                        current,
                    });
                }
                self.sequencer = Some(SequencerInfo {
                    gateway: gateway.clone(),
                    address: address.clone(),
                    epoch: *epoch,
                    since_version: self.version,
                });
                Ok(Outcome::Done)
            }
            Command::ArchiveFile { .. }
            | Command::DropRanges { .. }
            | Command::CompactorLease { .. }
            | Command::ReleaseCompactorLease { .. }
            | Command::ExpireArchive { .. } => self.apply_archive(command, now),
        }
    }

    fn create_topic(&mut self, topic: &str, def: &TopicDef) -> Result<Outcome, Rejection> {
        if def.queues == 0 || def.queues > 1024 {
            return Err(Rejection::Invalid("queues must be 1..=1024".into()));
        }
        if let Some(t) = self.topics.get(topic) {
            return if &t.def == def {
                Ok(Outcome::Defined { created: false })
            } else {
                Err(Rejection::Conflict(format!(
                    "topic {topic} exists with another definition"
                )))
            };
        }
        let queues = (0..def.queues).map(|_| QueueLog::default()).collect();
        self.topics.insert(
            topic.to_string(),
            Topic {
                def: def.clone(),
                queues,
            },
        );
        Ok(Outcome::Defined { created: true })
    }

    fn create_group(&mut self, group: &str, def: &GroupDef) -> Result<Outcome, Rejection> {
        if def.push.is_some() && def.mode != GroupMode::Clustering {
            return Err(Rejection::Invalid(
                "push delivery needs a clustering group".into(),
            ));
        }
        if let Some(g) = self.groups.get_mut(group) {
            if &g.def == def {
                return Ok(Outcome::Defined { created: false });
            }
            if !g.def.differs_only_in_push(def) {
                return Err(Rejection::Conflict(format!(
                    "group {group} exists with another definition"
                )));
            }
            // Switching between pull and push, or changing the endpoint or limits: the
            // cursors stay; an endpoint that only changes keeps its signing secret.
            g.def.push = match (g.def.push.take(), &def.push) {
                (Some(old), Some(new)) => Some(PushDef {
                    secret_nonce: old.secret_nonce,
                    ..new.clone()
                }),
                (_, new) => new.clone(),
            };
            g.push = g
                .def
                .push
                .as_ref()
                .map(|_| g.push.take().unwrap_or_default());
            return Ok(Outcome::Defined { created: false });
        }
        for s in &def.subscriptions {
            if !self.topics.contains_key(&s.topic) {
                return Err(Rejection::TopicNotFound(s.topic.clone()));
            }
        }
        let mut g = Group {
            def: def.clone(),
            cursors: BTreeMap::new(),
            push: def.push.as_ref().map(|_| PushProgress::default()),
        };
        if def.mode == GroupMode::Clustering {
            let mut per_topic = BTreeMap::new();
            for s in &def.subscriptions {
                per_topic.insert(
                    s.topic.clone(),
                    self.start_cursors(&s.topic, def.start_from),
                );
            }
            g.cursors.insert(String::new(), per_topic);
            let dlq = dlq_topic(group);
            self.topics.entry(dlq).or_insert_with(|| Topic {
                def: TopicDef {
                    kind: TopicKind::Normal,
                    queues: 1,
                    retention_hours: 24 * 14,
                },
                queues: vec![QueueLog::default()],
            });
        }
        self.groups.insert(group.to_string(), g);
        Ok(Outcome::Defined { created: true })
    }

    /// Where a new cursor on `topic` starts, per queue.
    pub fn start_cursors(&self, topic: &str, from: StartFrom) -> Vec<Cursor> {
        self.topics.get(topic).map_or_else(Vec::new, |t| {
            t.queues
                .iter()
                .map(|q| {
                    Cursor::at(match from {
                        StartFrom::Earliest => q.min_offset,
                        StartFrom::Latest => q.next_offset,
                        StartFrom::Timestamp(ts) => q.offset_at_time(ts),
                    })
                })
                .collect()
        })
    }

    /// The cursor of `consumer` on `topic`/`queue`, as it is (borrowed) or as it would start.
    pub fn cursor(
        &self,
        group: &str,
        consumer: &str,
        topic: &str,
        queue: u32,
    ) -> Option<std::borrow::Cow<'_, Cursor>> {
        let g = self.groups.get(group)?;
        let key = self.cursor_key(g, consumer);
        if let Some(c) = g
            .cursors
            .get(key)
            .and_then(|m| m.get(topic))
            .and_then(|v| v.get(queue as usize))
        {
            return Some(std::borrow::Cow::Borrowed(c));
        }
        self.start_cursors(topic, g.def.start_from)
            .into_iter()
            .nth(queue as usize)
            .map(std::borrow::Cow::Owned)
    }

    fn cursor_key<'a>(&self, g: &Group, consumer: &'a str) -> &'a str {
        GroupDef::cursor_key(g.def.mode, consumer)
    }

    pub(super) fn cursor_mut(
        &mut self,
        group: &str,
        consumer: &str,
        topic: &str,
        queue: u32,
    ) -> Result<&mut Cursor, Rejection> {
        let (from, key) = {
            let g = self
                .groups
                .get(group)
                .ok_or_else(|| Rejection::GroupNotFound(group.to_string()))?;
            if !g.def.subscriptions.iter().any(|s| s.topic == topic) {
                return Err(Rejection::Invalid(format!(
                    "group {group} does not subscribe to {topic}"
                )));
            }
            (g.def.start_from, self.cursor_key(g, consumer).to_string())
        };
        let queues = self
            .topics
            .get(topic)
            .ok_or_else(|| Rejection::TopicNotFound(topic.to_string()))?
            .queues
            .len();
        if queue as usize >= queues {
            return Err(Rejection::Invalid(format!(
                "topic {topic} has no queue {queue}"
            )));
        }
        let short = self.groups[group]
            .cursors
            .get(&key)
            .and_then(|m| m.get(topic))
            .is_none_or(|v| v.len() < queues);
        // Start cursors only for queues the group has no cursor on yet (not on every call:
        // this is the path of every lease and settle).
        let start = if short {
            self.start_cursors(topic, from)
        } else {
            Vec::new()
        };
        let g = self.groups.get_mut(group).expect("checked above");
        let cursors = g
            .cursors
            .entry(key)
            .or_default()
            .entry(topic.to_string())
            .or_default();
        // Queues added to the topic since the cursor was made start where the group would.
        while cursors.len() < queues {
            cursors.push(start[cursors.len()].clone());
        }
        Ok(&mut cursors[queue as usize])
    }

    /// Messages of `group` leased or waiting for a retry, over all its cursors.
    pub fn in_flight(&self, group: &str) -> usize {
        self.groups.get(group).map_or(0, |g| {
            g.cursors
                .values()
                .flat_map(|per_topic| per_topic.values())
                .flatten()
                .map(Cursor::in_flight)
                .sum()
        })
    }

    /// Messages of `group` leased now (pushes outstanding, for a push group).
    pub fn leased(&self, group: &str) -> usize {
        self.groups.get(group).map_or(0, |g| {
            g.cursors
                .values()
                .flat_map(|per_topic| per_topic.values())
                .flatten()
                .map(|c| c.leases.len())
                .sum()
        })
    }

    #[allow(clippy::type_complexity)]
    fn lease(
        &mut self,
        group: &str,
        consumer: &str,
        (invisible_ms, max, cap): (i64, u32, u32),
        (candidates, message_groups, located): (
            &[QueueOffset],
            &[Option<String>],
            &[Option<OffsetRange>],
        ),
        skipped: &[QueueOffset],
        now: i64,
    ) -> Result<Outcome, Rejection> {
        let def = self
            .groups
            .get(group)
            .ok_or_else(|| Rejection::GroupNotFound(group.to_string()))?
            .def
            .clone();
        if invisible_ms <= 0 {
            return Err(Rejection::Invalid("invisible_ms must be positive".into()));
        }
        // A push group's messages go to its pushers only, a pull group's to receives only,
        // as of this version: a lease asked for before the group switched grants nothing.
        if (consumer == PUSH_CONSUMER) != def.push.is_some() {
            return Err(Rejection::Conflict(if def.push.is_some() {
                format!("group {group} is a push group")
            } else {
                format!("group {group} is not a push group")
            }));
        }
        let version = self.version;
        for at in skipped {
            let Some(next) = self
                .topics
                .get(&at.topic)
                .and_then(|t| t.queues.get(at.queue as usize))
                .map(|q| q.next_offset)
            else {
                continue;
            };
            let Ok(c) = self.cursor_mut(group, consumer, &at.topic, at.queue) else {
                continue;
            };
            if at.offset < next
                && c.availability(at.offset, now, &def)
                    .is_some_and(|(attempt, _)| attempt == 1)
            {
                c.mark_done(at.offset);
            }
        }
        let mut grants = Vec::new();
        let mut dead = Vec::new();
        let mut events = Vec::new();
        let mut in_flight = self.in_flight(group);
        let mut capped = false;
        // A push group's `max_in_flight` bounds its leases (pushes outstanding) across all
        // gateways, and its `rate_per_s` the leases granted per second.
        let (mut max, mut leased) = (max as usize, 0usize);
        let push_cap = match &def.push {
            Some(p) => {
                leased = self.leased(group);
                let allowed = self
                    .groups
                    .get_mut(group)
                    .map(|g| g.push.get_or_insert_with(PushProgress::default))
                    .map_or(u32::MAX, |progress| progress.refill(p.rate_per_s, now));
                // Out of tokens: say so (capped) rather than grant nothing silently, so that
                // the pusher waits instead of asking again at once.
                capped |= allowed == 0;
                max = max.min(allowed as usize);
                p.max_in_flight as usize
            }
            None => usize::MAX,
        };
        for (i, at) in candidates.iter().enumerate() {
            if grants.len() >= max {
                break;
            }
            let message_group = message_groups.get(i).and_then(Option::as_ref);
            let Some((next, held_from, inline_from)) = self
                .topics
                .get(&at.topic)
                .and_then(|t| t.queues.get(at.queue as usize))
                .map(|q| (q.next_offset, q.first_held(), q.first_inline()))
            else {
                continue;
            };
            if at.offset >= next {
                continue;
            }
            // A folded offset must come with its range (or have it from an earlier lease).
            let given = located
                .get(i)
                .and_then(Option::as_ref)
                .filter(|r| r.base == at.offset && r.count == 1);
            let Ok(c) = self.cursor_mut(group, consumer, &at.topic, at.queue) else {
                continue;
            };
            if let Some(mg) = message_group {
                if c.fifo_inflight.get(mg).is_some_and(|&o| o != at.offset) {
                    continue;
                }
            }
            // Offsets only archived (below every run) have no segment pointer to keep.
            let kept = c.located(at.offset).cloned();
            let folded = at.offset >= held_from && at.offset < inline_from;
            if folded && kept.is_none() && given.is_none() {
                continue;
            }
            let fresh = !c.leases.contains_key(&at.offset) && !c.retries.contains_key(&at.offset);
            // A lease that ran out unacknowledged is on record from its deadline.
            let expired = |c: &Cursor| {
                c.leases
                    .get(&at.offset)
                    .filter(|l| l.deadline_ms <= now)
                    .map(|l| {
                        LedgerEvent::new(EventKind::LeaseExpired, &at.topic)
                            .at(at.queue, at.offset)
                            .of_group(group, "")
                            .attempt(l.attempt)
                            .time(l.deadline_ms)
                    })
            };
            match c.availability(at.offset, now, &def) {
                None => {}
                Some((_, true)) => {
                    events.extend(expired(c));
                    dead.push(at.clone());
                }
                Some((_, false)) if fresh && in_flight >= cap as usize => capped = true,
                Some((_, false)) if !c.leases.contains_key(&at.offset) && leased >= push_cap => {
                    capped = true;
                }
                Some((attempt, false)) => {
                    leased += usize::from(!c.leases.contains_key(&at.offset));
                    events.extend(expired(c));
                    // A push delivery names the endpoint as its consumer.
                    let shown = def.push.as_ref().map_or(consumer, |p| p.url.as_str());
                    events.push(
                        LedgerEvent::new(EventKind::Delivered, &at.topic)
                            .at(at.queue, at.offset)
                            .of_group(group, shown)
                            .attempt(attempt),
                    );
                    if let Some(mg) = message_group {
                        c.fifo_inflight.insert(mg.clone(), at.offset);
                    }
                    c.retries.remove(&at.offset);
                    in_flight += usize::from(fresh);
                    let located = folded
                        .then(|| kept.or_else(|| given.cloned()).map(Box::new))
                        .flatten();
                    c.leases.insert(
                        at.offset,
                        Lease {
                            attempt,
                            version,
                            deadline_ms: now + invisible_ms,
                            located,
                        },
                    );
                    grants.push(Grant {
                        at: at.clone(),
                        attempt,
                    });
                }
            }
        }
        if def.push.as_ref().is_some_and(|p| p.rate_per_s > 0) {
            if let Some(p) = self.groups.get_mut(group).and_then(|g| g.push.as_mut()) {
                p.tokens_milli = p.tokens_milli.saturating_sub(grants.len() as u64 * 1000);
            }
        }
        for e in events {
            self.record(e);
        }
        for at in dead {
            self.dead_letter(group, &at, now);
        }
        Ok(Outcome::Leased {
            version,
            grants,
            capped,
        })
    }

    fn settle(
        &mut self,
        group: &str,
        consumer: &str,
        at: &QueueOffset,
        lease_version: u64,
        action: SettleAction,
        now: i64,
    ) -> Result<Outcome, Rejection> {
        let (mode, max_deliveries) = self
            .groups
            .get(group)
            .map(|g| (g.def.mode, g.def.max_deliveries()))
            .ok_or_else(|| Rejection::GroupNotFound(group.to_string()))?;
        let version = self.version;
        let c = self.cursor_mut(group, consumer, &at.topic, at.queue)?;
        if c.is_done(at.offset) {
            return match action {
                SettleAction::Ack => Ok(Outcome::Settled { lease_version }),
                _ => Err(Rejection::ReceiptExpired),
            };
        }
        let lease = match c.leases.get(&at.offset) {
            Some(l) if l.version == lease_version && l.deadline_ms > now => l.clone(),
            _ => return Err(Rejection::ReceiptExpired),
        };
        let event = |kind| {
            LedgerEvent::new(kind, &at.topic)
                .at(at.queue, at.offset)
                .of_group(group, consumer)
                .attempt(lease.attempt)
        };
        match action {
            SettleAction::Ack => {
                c.mark_done(at.offset);
                self.record(event(EventKind::Acked));
                Ok(Outcome::Settled { lease_version })
            }
            SettleAction::Nack { delay_ms } => {
                let last = mode == GroupMode::Clustering && lease.attempt >= max_deliveries;
                self.record(event(EventKind::Nacked).detail(if last {
                    "no delivery left".to_string()
                } else {
                    format!("redelivery in {} ms", delay_ms.max(0))
                }));
                if last {
                    // The lease still holds the range of a folded offset: the move needs it.
                    self.dead_letter(group, at, now);
                } else {
                    let c = self.cursor_mut(group, consumer, &at.topic, at.queue)?;
                    c.leases.remove(&at.offset);
                    c.retries.insert(
                        at.offset,
                        Retry {
                            attempts: lease.attempt,
                            visible_at_ms: now + delay_ms.max(0),
                            located: lease.located,
                        },
                    );
                }
                Ok(Outcome::Settled { lease_version })
            }
            SettleAction::Extend { invisible_ms } => {
                if invisible_ms <= 0 {
                    return Err(Rejection::Invalid("invisible_ms must be positive".into()));
                }
                let c = self.cursor_mut(group, consumer, &at.topic, at.queue)?;
                c.leases.insert(
                    at.offset,
                    Lease {
                        attempt: lease.attempt,
                        version,
                        deadline_ms: now + invisible_ms,
                        located: lease.located,
                    },
                );
                Ok(Outcome::Settled {
                    lease_version: version,
                })
            }
        }
    }

    /// Moves a message to its group's dead-letter topic (a pointer to the same bytes) and marks
    /// it consumed for the group.
    /// Records that a range of `topic`'s queue `queue` names `segment`, if it is packable.
    pub(crate) fn note_packable_ref(&mut self, segment: &str, topic: &str, queue: u32) {
        if let Some(queues) = self.packable.get_mut(segment) {
            if !queues.contains(&(topic.to_string(), queue)) {
                queues.insert((topic.to_string(), queue));
            }
        }
    }

    /// A pointer other than a range (a timer, a half message) names `segment`: it is written
    /// out as an object of its own, never packed.
    pub(crate) fn unpackable(&mut self, segment: &str) {
        self.packable.remove(segment);
    }

    /// [`Command::Packed`] for one part: the ranges naming it name the pack instead.
    fn pack_part(&mut self, pack: &str, part: &super::command::PackedPart) {
        let Some(queues) = self.packable.remove(&part.segment) else {
            return;
        };
        self.inline_segments.remove(&part.segment);
        for (topic, queue) in queues {
            let Some(q) = self
                .topics
                .get_mut(&topic)
                .and_then(|t| t.queues.get_mut(queue as usize))
            else {
                continue;
            };
            for r in q.ranges.iter_mut().filter(|r| r.segment == part.segment) {
                r.segment = pack.to_string();
                r.first_ordinal += part.first_ordinal;
            }
        }
    }

    fn dead_letter(&mut self, group: &str, at: &QueueOffset, now: i64) {
        let inline = self
            .topics
            .get(&at.topic)
            .and_then(|t| t.queues.get(at.queue as usize))
            .and_then(|q| q.locate(at.offset))
            .map(|(r, o)| (r.clone(), o));
        let kept = || {
            let g = self.groups.get(group)?;
            let c = g.cursors.get("")?.get(&at.topic)?.get(at.queue as usize)?;
            c.located(at.offset).map(|r| (r.clone(), r.first_ordinal))
        };
        let dead = LedgerEvent::new(EventKind::DeadLettered, &at.topic)
            .at(at.queue, at.offset)
            .of_group(group, "");
        let Some((range, ordinal)) = inline.or_else(kept) else {
            // Only in the archive (retention dropped its range): nothing to point the dead
            // letter at; it is consumed rather than redelivered for ever.
            if let Ok(c) = self.cursor_mut(group, "", &at.topic, at.queue) {
                c.mark_done(at.offset);
            }
            self.record(dead.detail("only archived: consumed, not moved"));
            return;
        };
        let dlq = dlq_topic(group);
        let mut moved_to = None;
        if let Some(q) = self.topics.get_mut(&dlq).and_then(|t| t.queues.get_mut(0)) {
            moved_to = Some(q.next_offset);
            let segment = range.segment;
            if let Some(queues) = self.packable.get_mut(&segment) {
                queues.insert((dlq.clone(), 0));
            }
            q.append(OffsetRange {
                base: 0,
                count: 1,
                segment,
                first_ordinal: ordinal,
                publish_time_ms: range.publish_time_ms,
                appended_ms: Some(now),
                origin: match &range.origin_topic {
                    Some(_) => range.origin.map(|(q, o)| (q, o + (at.offset - range.base))),
                    None => Some((at.queue, at.offset)),
                },
                origin_topic: Some(range.origin_topic.unwrap_or_else(|| at.topic.clone())),
            });
        }
        if let Ok(c) = self.cursor_mut(group, "", &at.topic, at.queue) {
            c.mark_done(at.offset);
        }
        match moved_to {
            Some(o) => {
                self.record(dead.detail(format!("{dlq} queue 0 offset {o}")));
                self.record(
                    LedgerEvent::new(EventKind::Published, &dlq)
                        .at(0, o)
                        .of_group(group, "")
                        .detail(format!(
                            "dead letter of {} queue {} offset {}",
                            at.topic, at.queue, at.offset
                        )),
                );
            }
            None => self.record(dead.detail(format!("{dlq} is missing: consumed, not moved"))),
        }
    }

    /// Messages whose last allowed lease has expired, per clustering group.
    pub fn exhausted_leases(&self, now: i64) -> Vec<(String, QueueOffset)> {
        let mut out = Vec::new();
        for (name, g) in &self.groups {
            if g.def.mode != GroupMode::Clustering {
                continue;
            }
            for (topic, cursors) in g.cursors.get("").into_iter().flatten() {
                for (queue, c) in cursors.iter().enumerate() {
                    for (&offset, lease) in &c.leases {
                        if lease.deadline_ms <= now && lease.attempt >= g.def.max_deliveries() {
                            out.push((
                                name.clone(),
                                QueueOffset {
                                    topic: topic.clone(),
                                    queue: queue as u32,
                                    offset,
                                },
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    fn expire_leases(&mut self, now: i64) {
        for (group, at) in self.exhausted_leases(now) {
            let lease = self
                .cursor(&group, "", &at.topic, at.queue)
                .and_then(|c| c.leases.get(&at.offset).map(|l| (l.attempt, l.deadline_ms)));
            if let Some((attempt, deadline)) = lease {
                self.record(
                    LedgerEvent::new(EventKind::LeaseExpired, &at.topic)
                        .at(at.queue, at.offset)
                        .of_group(&group, "")
                        .attempt(attempt)
                        .time(deadline),
                );
            }
            self.dead_letter(&group, &at, now);
        }
    }

    /// Offsets a receive could lease now for `consumer` of `group`, oldest first per queue and
    /// interleaved across queues, at most `limit`. Apply re-checks each one.
    pub fn candidates(
        &self,
        group: &str,
        consumer: &str,
        now: i64,
        limit: usize,
    ) -> Vec<QueueOffset> {
        self.candidates_looking_ahead(
            group,
            consumer,
            now,
            limit,
            |_| None,
            |_, _| true,
            |_, _, _| false,
        )
    }

    /// [`State::candidates`], except that the queues of a topic for which `ahead` answers
    /// `Some(n)` give up to `n` candidates each, outside the shared `limit` (FIFO topics: a
    /// receive looks past message groups that have one in flight, in every queue). Offsets
    /// for which `skip(topic, queue, offset)` answers true are passed over (a gateway's own
    /// receives in flight claim theirs, so that concurrent receives do not all ask for the
    /// same offsets).
    #[allow(clippy::too_many_arguments)] // each closure is one question the caller answers
    pub fn candidates_looking_ahead(
        &self,
        group: &str,
        consumer: &str,
        now: i64,
        limit: usize,
        ahead: impl Fn(&str) -> Option<usize>,
        queues: impl Fn(&str, u32) -> bool,
        skip: impl Fn(&str, u32, u64) -> bool,
    ) -> Vec<QueueOffset> {
        let Some(g) = self.groups.get(group) else {
            return Vec::new();
        };
        // Each queue's candidates, and whether they count against `limit`.
        let mut per_queue: Vec<(Vec<QueueOffset>, bool)> = Vec::new();
        for s in &g.def.subscriptions {
            let Some(t) = self.topics.get(&s.topic) else {
                continue;
            };
            let wide = ahead(&s.topic);
            let limit = wide.unwrap_or(limit);
            for (qi, q) in t.queues.iter().enumerate() {
                if !queues(&s.topic, qi as u32) {
                    continue;
                }
                let Some(c) = self.cursor(group, consumer, &s.topic, qi as u32) else {
                    continue;
                };
                let mut found = Vec::new();
                // Only expired leases and due retries can be available (a scan without
                // allocating per lease: most of them are not).
                let mut pending: Vec<u64> = c
                    .leases
                    .iter()
                    .filter(|(_, l)| l.deadline_ms <= now)
                    .map(|(&o, _)| o)
                    .chain(
                        c.retries
                            .iter()
                            .filter(|(_, r)| r.visible_at_ms <= now)
                            .map(|(&o, _)| o),
                    )
                    .collect();
                pending.sort_unstable();
                for offset in pending {
                    if found.len() >= limit {
                        break;
                    }
                    if c.availability(offset, now, &g.def).is_some()
                        && !skip(&s.topic, qi as u32, offset)
                    {
                        found.push(offset);
                    }
                }
                let mut offset = c.committed.max(q.min_offset);
                while found.len() < limit && offset < q.next_offset {
                    offset = c.done.next_absent(offset);
                    if offset >= q.next_offset {
                        break;
                    }
                    if !c.leases.contains_key(&offset)
                        && !c.retries.contains_key(&offset)
                        && !skip(&s.topic, qi as u32, offset)
                    {
                        found.push(offset);
                    }
                    offset += 1;
                }
                found.sort_unstable();
                per_queue.push((
                    found
                        .into_iter()
                        .map(|offset| QueueOffset {
                            topic: s.topic.clone(),
                            queue: qi as u32,
                            offset,
                        })
                        .collect(),
                    wide.is_none(),
                ));
            }
        }
        let mut out = Vec::new();
        let mut shared = 0;
        let mut i = 0;
        while per_queue.iter().any(|(v, _)| i < v.len()) {
            for (v, counted) in &per_queue {
                if *counted && shared >= limit {
                    continue;
                }
                if let Some(x) = v.get(i) {
                    out.push(x.clone());
                    shared += usize::from(*counted);
                }
            }
            i += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::command::{FORMAT, PublishMode};
    use crate::manifest::sim::{Sim, delta, group_def, topic};

    fn append(t: &str, queue: u32, count: u32) -> Command {
        Command::Append {
            topic: t.into(),
            queue,
            segment: "s".into(),
            first_ordinal: 0,
            count,
            publish_time_ms: 0,
        }
    }

    impl Sim {
        fn lease_all(&mut self, consumer: &str) -> Vec<Grant> {
            let push = self
                .state
                .groups
                .get("g")
                .is_some_and(|g| g.def.push.is_some());
            let consumer = if push { PUSH_CONSUMER } else { consumer };
            let candidates = self.state.candidates("g", consumer, self.now, 100);
            match self.one(Command::Lease {
                group: "g".into(),
                consumer: consumer.into(),
                invisible_ms: 1000,
                max: 100,
                candidates,
                skipped: vec![],
                message_groups: vec![],
                located: vec![],
                max_in_flight: None,
            }) {
                Outcome::Leased { grants, .. } => grants,
                o => panic!("{o:?}"),
            }
        }
    }

    #[test]
    fn offsets_are_dense_per_queue_in_apply_order() {
        let mut s = Sim::new();
        s.one(topic("t", 2));
        assert_eq!(
            s.one(append("t", 0, 3)),
            Outcome::Appended { base_offset: 0 }
        );
        assert_eq!(
            s.one(append("t", 1, 1)),
            Outcome::Appended { base_offset: 0 }
        );
        assert_eq!(
            s.one(append("t", 0, 2)),
            Outcome::Appended { base_offset: 3 }
        );
        let q = &s.state.topics["t"].queues[0];
        assert_eq!(q.next_offset, 5);
        assert_eq!(q.locate(4).map(|(r, o)| (r.base, o)), Some((3, 1)));
        assert_eq!(q.locate(5), None);
    }

    #[test]
    fn refused_commands_change_nothing() {
        let mut s = Sim::new();
        s.one(topic("t", 1));
        let before = s.state.clone();
        assert!(matches!(
            s.one(append("nope", 0, 1)),
            Outcome::Rejected { .. }
        ));
        assert!(matches!(s.one(append("t", 9, 1)), Outcome::Rejected { .. }));
        assert!(matches!(
            s.one(topic("t", 2)),
            Outcome::Rejected {
                rejection: Rejection::Conflict(_)
            }
        ));
        assert_eq!(s.state.topics, before.topics);
        assert_eq!(s.one(topic("t", 1)), Outcome::Defined { created: false });
    }

    fn push_def(max_in_flight: u32, rate_per_s: u32, nonce: &str) -> GroupDef {
        GroupDef {
            push: Some(PushDef {
                url: "http://127.0.0.1:9/hook".into(),
                max_in_flight,
                rate_per_s,
                timeout_ms: 1000,
                format: super::super::command::PushFormat::Binary,
                secret_nonce: nonce.into(),
            }),
            ..group_def(3)
        }
    }

    fn acked(s: &mut Sim, grants: &[Grant], version: u64) {
        for g in grants {
            s.one(Command::Settle {
                group: "g".into(),
                consumer: String::new(),
                at: g.at.clone(),
                lease_version: version,
                action: SettleAction::Ack,
            });
        }
    }

    #[test]
    fn a_push_group_has_at_most_max_in_flight_leases_whoever_asks() {
        let mut s = Sim::new();
        s.one(topic("t", 2));
        s.one(append("t", 0, 10));
        s.one(append("t", 1, 10));
        let def = push_def(3, 0, "n1");
        s.one(Command::CreateGroup {
            group: "g".into(),
            def,
        });
        // Two gateways ask for everything: the first gets 3, the second nothing.
        let first = s.lease_all("");
        let v = s.state.version;
        assert_eq!(first.len(), 3);
        assert!(s.lease_all("").is_empty());
        assert_eq!(s.state.leased("g"), 3);
        // Two acks make room for two more.
        acked(&mut s, &first[..2], v);
        assert_eq!(s.lease_all("").len(), 2);
        assert_eq!(s.state.leased("g"), 3);
    }

    #[test]
    fn a_push_groups_rate_cap_holds_over_time() {
        let mut s = Sim::new();
        s.one(topic("t", 1));
        s.one(append("t", 0, 100));
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: push_def(1000, 5, "n1"),
        });
        // A second's worth at once, then one per 200 ms.
        assert_eq!(s.lease_all("").len(), 5);
        assert!(s.lease_all("").is_empty());
        s.now += 200;
        assert_eq!(s.lease_all("").len(), 1);
        s.now += 10_000;
        assert_eq!(s.lease_all("").len(), 5, "the burst is one second's worth");
    }

    #[test]
    fn a_group_switches_between_pull_and_push_keeping_its_cursors_and_secret() {
        let mut s = Sim::new();
        s.one(topic("t", 1));
        s.one(append("t", 0, 4));
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: group_def(3),
        });
        let grants = s.lease_all("");
        let v = s.state.version;
        acked(&mut s, &grants[..2], v);
        let cursors = s.state.groups["g"].cursors.clone();
        // Pull to push: same cursors, a nonce, counters from zero.
        assert_eq!(
            s.one(Command::CreateGroup {
                group: "g".into(),
                def: push_def(8, 0, "n1")
            }),
            Outcome::Defined { created: false }
        );
        let g = &s.state.groups["g"];
        assert_eq!(g.cursors, cursors);
        assert_eq!(
            g.def.push.as_ref().map(|p| p.secret_nonce.as_str()),
            Some("n1")
        );
        assert_eq!(g.push, Some(PushProgress::default()));
        // Another endpoint keeps the secret; the same settings with a new nonce change nothing.
        let mut other = push_def(16, 0, "n2");
        if let Some(p) = other.push.as_mut() {
            p.url = "http://127.0.0.1:9/other".into();
        }
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: other,
        });
        let p = s.state.groups["g"].def.push.clone().expect("push");
        assert_eq!((p.max_in_flight, p.secret_nonce.as_str()), (16, "n1"));
        // Counters add up; a long error is cut at a char boundary.
        s.one(Command::PushReport {
            group: "g".into(),
            gateway: "gw1".into(),
            delivered: 3,
            failed: 1,
            last_error: Some("é".repeat(400)),
        });
        let progress = s.state.groups["g"].push.clone().expect("progress");
        assert_eq!((progress.delivered_total, progress.failed_total), (3, 1));
        assert_eq!(progress.live_pushers(s.now).collect::<Vec<_>>(), ["gw1"]);
        assert_eq!(
            progress
                .live_pushers(s.now + PushProgress::PUSHER_TTL_MS)
                .count(),
            0
        );
        assert_eq!(progress.last_error.map(|e| e.len()), Some(512));
        assert_eq!(progress.last_error_time_ms, Some(s.now));
        // Back to pull: the cursors are still those of before; a late report is dropped.
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: group_def(3),
        });
        assert_eq!(s.state.groups["g"].cursors, cursors);
        assert_eq!(s.state.groups["g"].push, None);
        s.one(Command::PushReport {
            group: "g".into(),
            gateway: "gw1".into(),
            delivered: 1,
            failed: 0,
            last_error: None,
        });
        assert_eq!(s.state.groups["g"].push, None);
        // Anything but push still conflicts, and a broadcast group cannot push.
        let before = s.state.clone();
        let mut changed = group_def(4);
        changed.push = push_def(8, 0, "n3").push;
        assert_eq!(
            s.one(Command::CreateGroup {
                group: "g".into(),
                def: changed
            }),
            Outcome::rejected(Rejection::Conflict(
                "group g exists with another definition".into()
            ))
        );
        let broadcast = GroupDef {
            mode: GroupMode::Broadcast,
            ..push_def(8, 0, "n4")
        };
        assert!(matches!(
            s.one(Command::CreateGroup {
                group: "b".into(),
                def: broadcast
            }),
            Outcome::Rejected {
                rejection: Rejection::Invalid(_)
            }
        ));
        assert_eq!(s.state.groups, before.groups);
    }

    #[test]
    fn a_version_gap_is_refused() {
        let mut st = State::default();
        assert_eq!(
            st.apply(&delta(2, 0, vec![])),
            Err(VersionGap { have: 0, got: 2 })
        );
    }

    #[test]
    fn settle_many_is_the_same_as_one_settle_per_offset() {
        // Two replicas lease the same six messages; one settles per offset, the other with
        // one command per action. Offset 5's receipt is stale on both.
        let setup = || {
            let mut s = Sim::new();
            s.one(topic("t", 1));
            s.one(append("t", 0, 6));
            s.one(Command::CreateGroup {
                group: "g".into(),
                def: group_def(1),
            });
            assert_eq!(s.lease_all("").len(), 6);
            s
        };
        let (mut one, mut many) = (setup(), setup());
        let v = one.state.version;
        let at = |offset| QueueOffset {
            topic: "t".into(),
            queue: 0,
            offset,
        };
        let settle = |offset, version, action| Command::Settle {
            group: "g".into(),
            consumer: String::new(),
            at: at(offset),
            lease_version: version,
            action,
        };
        let settle_full = |topic: &str, version, offsets: Vec<u64>, action| Command::SettleMany {
            group: "g".into(),
            consumer: String::new(),
            topic: topic.into(),
            queue: 0,
            lease_version: version,
            action,
            offsets,
        };
        let settle_many = |offsets, action| settle_full("t", v, offsets, action);
        let nack = SettleAction::Nack { delay_ms: 50 };
        for o in [0, 2, 3] {
            assert_eq!(
                one.one(settle(o, v, SettleAction::Ack)),
                Outcome::Settled { lease_version: v }
            );
        }
        one.one(settle(1, v, nack));
        one.one(settle(4, v, nack));
        assert_eq!(
            one.one(settle(5, v - 1, SettleAction::Ack)),
            Outcome::rejected(Rejection::ReceiptExpired)
        );
        assert_eq!(
            many.one(settle_many(vec![0, 2, 3, 0], SettleAction::Ack)),
            Outcome::SettledMany {
                lease_version: v,
                expired: vec![]
            },
            "a repeated ack is idempotent"
        );
        many.one(settle_many(vec![1, 4], nack));
        let stale = settle_full("t", v - 1, vec![5], SettleAction::Ack);
        assert_eq!(
            many.one(stale),
            Outcome::SettledMany {
                lease_version: v - 1,
                expired: vec![5]
            }
        );
        let cursor = |s: &Sim| s.state.cursor("g", "", "t", 0).map(|c| c.into_owned());
        assert_eq!(cursor(&one), cursor(&many));
        // A second nack of 1 finds no lease: expired, and nothing changes.
        let before = many.state.clone();
        assert_eq!(
            many.one(settle_many(vec![1], nack)),
            Outcome::SettledMany {
                lease_version: v,
                expired: vec![1]
            }
        );
        assert_eq!(
            cursor(&many),
            before.cursor("g", "", "t", 0).map(|c| c.into_owned())
        );
        // Refused whole, changing nothing: a topic the group does not read, a bad extend.
        let before = many.state.clone();
        let other = settle_full("u", v, vec![1], SettleAction::Ack);
        assert!(matches!(many.one(other), Outcome::Rejected { .. }));
        let bad = settle_many(vec![5, 1], SettleAction::Extend { invisible_ms: 0 });
        assert!(matches!(
            many.one(bad),
            Outcome::Rejected {
                rejection: Rejection::Invalid(_)
            }
        ));
        assert_eq!(many.state.groups, before.groups);
    }

    #[test]
    fn lease_ack_and_redelivery_after_expiry_then_dead_letter() {
        let mut s = Sim::new();
        s.one(topic("t", 1));
        s.one(append("t", 0, 2));
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: group_def(1),
        });
        let g = s.lease_all("");
        assert_eq!(g.len(), 2);
        let v = s.state.version;
        // Ack offset 0.
        let ack = |offset, v| Command::Settle {
            group: "g".into(),
            consumer: String::new(),
            at: QueueOffset {
                topic: "t".into(),
                queue: 0,
                offset,
            },
            lease_version: v,
            action: SettleAction::Ack,
        };
        assert_eq!(s.one(ack(0, v)), Outcome::Settled { lease_version: v });
        assert_eq!(
            s.one(ack(0, v)),
            Outcome::Settled { lease_version: v },
            "ack is idempotent"
        );
        // Nothing free until offset 1's lease expires plus backoff.
        assert!(s.lease_all("").is_empty());
        s.now += 1000;
        assert!(s.lease_all("").is_empty(), "backoff not yet over");
        s.now += 100;
        let g = s.lease_all("");
        assert_eq!(
            g,
            vec![Grant {
                at: QueueOffset {
                    topic: "t".into(),
                    queue: 0,
                    offset: 1
                },
                attempt: 2
            }]
        );
        // The stale receipt is refused.
        assert_eq!(
            s.one(ack(1, v)),
            Outcome::rejected(Rejection::ReceiptExpired)
        );
        // Second expiry: max_retries 1 means two deliveries, then the DLQ.
        s.now += 1000;
        s.one(Command::ExpireLeases);
        assert_eq!(s.state.topics["DLQ.g"].queues[0].next_offset, 1);
        assert_eq!(
            s.state.topics["DLQ.g"].queues[0].ranges[0]
                .origin_topic
                .as_deref(),
            Some("t")
        );
        assert_eq!(s.state.groups["g"].cursors[""]["t"][0].committed, 2);
        s.now += 10_000;
        assert!(s.lease_all("").is_empty());
    }

    #[test]
    fn a_pack_rewrites_every_range_naming_its_parts_dead_letters_included() {
        let inline = |name: &str| Command::InlineSegment {
            segment: name.into(),
            data: bytes::Bytes::from_static(b"not read here"),
            packable: true,
        };
        let at = |segment: &str, queue, first_ordinal, count| Command::Append {
            topic: "t".into(),
            queue,
            segment: segment.into(),
            first_ordinal,
            count,
            publish_time_ms: 0,
        };
        let mut s = Sim::new();
        s.one(topic("t", 2));
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: group_def(0),
        });
        s.one(inline("a"));
        s.one(at("a", 0, 0, 2));
        s.one(at("a", 1, 2, 1));
        // No retries: offset 0 of queue 0 dead-letters at once, its range naming `a`.
        let grants = s.lease_all("");
        assert_eq!(grants.len(), 3);
        s.now += 1000;
        s.one(Command::ExpireLeases);
        assert_eq!(s.state.topics["DLQ.g"].queues[0].ranges[0].segment, "a");
        // A delayed message in `b` keeps `b` out of packs.
        s.one(inline("b"));
        s.one(Command::PublishOne {
            topic: "t".into(),
            queue: 0,
            segment: "b".into(),
            ordinal: 0,
            publish_time_ms: 0,
            message_id: "m".into(),
            dedup_id: None,
            mode: PublishMode::Timer {
                deliver_at_ms: s.now + 60_000,
            },
        });
        assert_eq!(s.state.packable.keys().collect::<Vec<_>>(), ["a"]);
        let packed = s.one(Command::Packed {
            pack: "p".into(),
            parts: vec![
                super::super::command::PackedPart {
                    segment: "b".into(),
                    first_ordinal: 0,
                },
                super::super::command::PackedPart {
                    segment: "a".into(),
                    first_ordinal: 5,
                },
            ],
        });
        assert_eq!(packed, Outcome::Done);
        let ranges = |t: &str, q: usize| -> Vec<(String, u32)> {
            s.state.topics[t].queues[q]
                .ranges
                .iter()
                .map(|r| (r.segment.clone(), r.first_ordinal))
                .collect()
        };
        assert_eq!(ranges("t", 0), [("p".to_string(), 5)]);
        assert_eq!(ranges("t", 1), [("p".to_string(), 7)]);
        assert_eq!(
            ranges("DLQ.g", 0),
            [
                ("p".to_string(), 5),
                ("p".to_string(), 6),
                ("p".to_string(), 7)
            ]
        );
        assert!(s.state.packable.is_empty());
        assert_eq!(
            s.state.inline_segments.keys().collect::<Vec<_>>(),
            ["b"],
            "b is not packable: it waits for its own object"
        );
        assert_eq!(s.state.timers.values().next().unwrap().segment, "b");
    }

    #[test]
    fn sequencer_claims_need_a_higher_epoch() {
        let mut s = Sim::new();
        let claim = |e| Command::Sequencer {
            gateway: format!("g{e}"),
            address: "a".into(),
            epoch: e,
        };
        assert_eq!(s.one(claim(1)), Outcome::Done);
        assert!(matches!(
            s.one(claim(1)),
            Outcome::Rejected {
                rejection: Rejection::StaleEpoch { .. }
            }
        ));
        assert_eq!(s.state.sequencer.as_ref().unwrap().gateway, "g1");
    }

    #[test]
    fn fifo_leases_one_per_message_group_in_order() {
        let mut s = Sim::new();
        s.one(topic("t", 1));
        s.one(append("t", 0, 3));
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: group_def(5),
        });
        let at = |o: u64| QueueOffset {
            topic: "t".into(),
            queue: 0,
            offset: o,
        };
        let a = || Some("A".to_string());
        let b = || Some("B".to_string());
        let lease = |s: &mut Sim, offsets: &[u64], groups: Vec<Option<String>>| match s.one(
            Command::Lease {
                group: "g".into(),
                consumer: String::new(),
                invisible_ms: 1000,
                max: 10,
                candidates: offsets.iter().map(|&o| at(o)).collect(),
                skipped: vec![],
                message_groups: groups,
                located: vec![],
                max_in_flight: None,
            },
        ) {
            Outcome::Leased {
                version, grants, ..
            } => (
                version,
                grants.iter().map(|g| g.at.offset).collect::<Vec<_>>(),
            ),
            o => panic!("{o:?}"),
        };
        // 0 and 1 are of A, 2 of B: A's second waits for its first.
        let (v, got) = lease(&mut s, &[0, 1, 2], vec![a(), a(), b()]);
        assert_eq!(got, vec![0, 2]);
        assert_eq!(lease(&mut s, &[1], vec![a()]).1, Vec::<u64>::new());
        // A nack keeps the group blocked until the same message is delivered again and acked.
        s.one(Command::Settle {
            group: "g".into(),
            consumer: String::new(),
            at: at(0),
            lease_version: v,
            action: SettleAction::Nack { delay_ms: 0 },
        });
        assert_eq!(lease(&mut s, &[1], vec![a()]).1, Vec::<u64>::new());
        let (v2, got) = lease(&mut s, &[0], vec![a()]);
        assert_eq!(got, vec![0]);
        s.one(Command::Settle {
            group: "g".into(),
            consumer: String::new(),
            at: at(0),
            lease_version: v2,
            action: SettleAction::Ack,
        });
        assert_eq!(lease(&mut s, &[1], vec![a()]).1, vec![1]);
    }

    #[test]
    fn a_repeated_request_applies_once_and_answers_the_same() {
        let mut s = Sim::new();
        s.one(topic("t", 1));
        let entry = Entry {
            request: Some(RequestId {
                origin: "o".into(),
                seq: 1,
            }),
            commands: vec![append("t", 0, 1)],
        };
        let mk = |v| Delta {
            format: FORMAT,
            version: v,
            time_ms: 5,
            writer: "w".into(),
            nonce: 0,
            parent: None,
            entries: vec![entry.clone(), entry.clone()],
        };
        let out = s.state.apply(&mk(2)).unwrap();
        assert_eq!(out[0], out[1]);
        let again = s.state.apply(&mk(3)).unwrap();
        assert_eq!(again[0], out[0]);
        assert_eq!(s.state.topics["t"].queues[0].next_offset, 1);
    }

    #[test]
    fn a_delta_that_names_another_parent_is_an_orphan_and_changes_nothing() {
        let mut s = Sim::new();
        s.one(topic("t", 1));
        let head = s.state.head.clone().expect("a head after a delta");
        let request = Some(RequestId {
            origin: "o".into(),
            seq: 7,
        });
        let mk = |v, nonce, parent| Delta {
            format: FORMAT,
            version: v,
            time_ms: 9_999,
            writer: "w2".into(),
            nonce,
            parent,
            entries: vec![Entry {
                request: request.clone(),
                commands: vec![append("t", 0, 1)],
            }],
        };
        // Written to follow a delta that never became version 2.
        let lost = DeltaId {
            writer: "w2".into(),
            nonce: 41,
        };
        let orphan = mk(2, 42, Some(lost));
        assert!(s.state.is_orphan(&orphan));
        let before = s.state.clone();
        assert_eq!(s.state.apply(&orphan).unwrap(), vec![Vec::<Outcome>::new()]);
        let mut expected = before;
        expected.version = 2;
        assert_eq!(
            s.state, expected,
            "only the version moved: no time, head, offset or request id"
        );
        // Its child is an orphan too; a delta naming the real head applies (and its request
        // id, not recorded by the orphan, is applied for the first time).
        assert!(s.state.is_orphan(&mk(3, 43, Some(orphan.id()))));
        let real = mk(3, 44, Some(head));
        let out = s.state.apply(&real).unwrap();
        assert_eq!(out[0], vec![Outcome::Appended { base_offset: 0 }]);
        assert_eq!(s.state.head, Some(real.id()));
        assert_eq!(s.state.time_ms, 9_999);
        // A delta of an older writer (no parent) always applies.
        assert!(!s.state.is_orphan(&mk(4, 45, None)));
    }

    #[test]
    fn a_stuck_message_and_a_million_acked_after_it_cost_a_handful_of_entries() {
        let mut s = Sim::new();
        s.one(topic("t", 1));
        for _ in 0..1_000 {
            s.one(append("t", 0, 1_001));
        }
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: group_def(1_000),
        });
        // Offset 0 is leased and never settled; every later one is consumed (as filtered-out
        // skips, 10,000 per receive: the same path to `done` as an ack).
        let lease = |candidates: Vec<u64>, skipped: Vec<u64>| {
            let q = |o| QueueOffset {
                topic: "t".into(),
                queue: 0,
                offset: o,
            };
            Command::Lease {
                group: "g".into(),
                consumer: String::new(),
                invisible_ms: 1000,
                max: 1,
                candidates: candidates.into_iter().map(q).collect(),
                skipped: skipped.into_iter().map(q).collect(),
                message_groups: vec![],
                located: vec![],
                max_in_flight: None,
            }
        };
        s.one(lease(vec![0], vec![]));
        for chunk in (1..1_001_000u64).collect::<Vec<_>>().chunks(10_000) {
            s.one(lease(vec![], chunk.to_vec()));
        }
        let c = &s.state.groups["g"].cursors[""]["t"][0];
        assert_eq!(c.committed, 0);
        assert_eq!((c.done.intervals(), c.done.len()), (1, 1_000_999));
        let bytes = serde_json::to_vec(&s.state.groups["g"]).expect("encodes");
        assert!(
            bytes.len() < 1024,
            "the group encodes in {} bytes",
            bytes.len()
        );
        let checkpoint = super::super::log::encode_checkpoint(&s.state).expect("encodes");
        assert!(
            checkpoint.len() < 1 << 20,
            "checkpoint {} bytes",
            checkpoint.len()
        );
    }

    #[test]
    fn receives_past_the_in_flight_cap_grant_nothing() {
        let mut s = Sim::new();
        s.one(topic("t", 2));
        s.one(append("t", 0, 10));
        s.one(append("t", 1, 10));
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: group_def(5),
        });
        let lease = |s: &mut Sim, cap| {
            let candidates = s.state.candidates("g", "", s.now, 100);
            s.one(Command::Lease {
                group: "g".into(),
                consumer: String::new(),
                invisible_ms: 1000,
                max: 100,
                candidates,
                skipped: vec![],
                message_groups: vec![],
                located: vec![],
                max_in_flight: Some(cap),
            })
        };
        let Outcome::Leased { grants, capped, .. } = lease(&mut s, 15) else {
            panic!()
        };
        assert_eq!((grants.len(), capped), (15, true));
        assert_eq!(s.state.in_flight("g"), 15);
        let before = s.state.groups.clone();
        let Outcome::Leased { grants, capped, .. } = lease(&mut s, 15) else {
            panic!()
        };
        assert!(grants.is_empty() && capped);
        assert_eq!(s.state.groups, before, "a capped receive changes nothing");
        // An expired lease may be leased again at the cap: it is already in flight.
        s.now += 2_000;
        let Outcome::Leased { grants, .. } = lease(&mut s, 15) else {
            panic!()
        };
        assert_eq!(grants.len(), 15);
    }
}
