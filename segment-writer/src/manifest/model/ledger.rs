//! The delivery ledger's pending events: every applied command that changes a message's life
//! (publish, schedule, due, half, commit, rollback, cancel, delivery, ack, nack, lease expiry,
//! dead-lettering, re-drive) records an event here, with the delta's time, as part of the
//! replicated state.
//!
//! Why in the state: an event is then exactly as durable as the delta that caused it. It is in
//! every replica and every checkpoint until the sequencer has written it to a ledger object
//! (`ledger/…`, Parquet, by `compactor::ledger`) and committed
//! [`Command::LedgerFlushed`](crate::manifest::Command::LedgerFlushed), which drops the events it covers. A sequencer killed between the
//! object write and that commit loses nothing: the next one writes the same events again
//! (readers drop the duplicate rows by `seq`), and log garbage collection needs no new rule
//! because a checkpoint carries whatever is not flushed yet.
//!
//! Invariants: `seq` grows by one per event, in apply order (which is time order: delta times
//! never go back); `bytes` is the sum of [`LedgerEvent::approx_bytes`] of `events`, which never
//! exceeds [`MAX_PENDING_BYTES`]: past it, new events are counted in `dropped` and not kept
//! (only if ledger writes fail for long while commits succeed).

//!
//! Plain data: part of the stored format of checkpoints. The state records events through
//! `manifest::state::ledger`.

use serde::{Deserialize, Serialize};

/// Bytes of pending events kept at most (about 70,000 events of ~120 bytes): the bound on what the ledger
/// adds to the state and its checkpoints while the sequencer cannot write ledger objects.
pub const MAX_PENDING_BYTES: u64 = 8 * 1024 * 1024;

/// What happened to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Stored and visible: appended to its queue (for a batch, `count` messages from `offset`).
    Published,
    /// Stored as a half message of a transaction (`detail`: the transaction id).
    Half,
    /// Its transaction committed: appended to its queue.
    Committed,
    /// Its transaction rolled back (`detail` says why when not by a decision).
    RolledBack,
    /// Stored as a delayed message (`detail`: when it is due).
    Scheduled,
    /// Its delay passed: appended to its queue.
    Due,
    /// A delayed message cancelled before it was due.
    Cancelled,
    /// Leased to a consumer of `group` (`attempt`, `consumer`).
    Delivered,
    /// Acknowledged by `group`.
    Acked,
    /// Negatively acknowledged by `group` (`detail`: the redelivery delay).
    Nacked,
    /// A lease of `group` ran out unacknowledged (`time_ms` is its deadline).
    LeaseExpired,
    /// Moved to `DLQ.<group>` (`detail`: where).
    DeadLettered,
    /// Made visible to `group` again from its dead-letter queue, attempts reset.
    Redriven,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 13] = [
        EventKind::Published,
        EventKind::Half,
        EventKind::Committed,
        EventKind::RolledBack,
        EventKind::Scheduled,
        EventKind::Due,
        EventKind::Cancelled,
        EventKind::Delivered,
        EventKind::Acked,
        EventKind::Nacked,
        EventKind::LeaseExpired,
        EventKind::DeadLettered,
        EventKind::Redriven,
    ];

    /// The name API.md uses (`published`, `lease_expired`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Published => "published",
            EventKind::Half => "half",
            EventKind::Committed => "committed",
            EventKind::RolledBack => "rolled_back",
            EventKind::Scheduled => "scheduled",
            EventKind::Due => "due",
            EventKind::Cancelled => "cancelled",
            EventKind::Delivered => "delivered",
            EventKind::Acked => "acked",
            EventKind::Nacked => "nacked",
            EventKind::LeaseExpired => "lease_expired",
            EventKind::DeadLettered => "dead_lettered",
            EventKind::Redriven => "redriven",
        }
    }

    /// The kind named `name` ([`EventKind::as_str`]).
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// One event of a message's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEvent {
    /// Cluster-wide sequence number of the event, from 0: identifies it (a row written twice
    /// after a sequencer crash has the same `seq`).
    pub seq: u64,
    /// The delta's time (for [`EventKind::LeaseExpired`], the lease's deadline).
    pub time_ms: i64,
    pub event: EventKind,
    pub topic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Messages `offset..offset + count` this event is about (a published batch); 1 else.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u32,
    /// Known where the command names the message (delayed, transactional, deduplicated
    /// messages); else the message is named by `queue` and `offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The gateway incarnation that asked for it (the sequencer for its own tickers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl LedgerEvent {
    /// An event of `kind` on `topic`, everything else unset.
    pub fn new(event: EventKind, topic: &str) -> Self {
        LedgerEvent {
            seq: 0,
            time_ms: 0,
            event,
            topic: topic.to_string(),
            queue: None,
            offset: None,
            count: 1,
            message_id: None,
            group: None,
            consumer: None,
            attempt: None,
            gateway: None,
            detail: None,
        }
    }

    /// At `queue`, `offset`.
    pub fn at(mut self, queue: u32, offset: u64) -> Self {
        self.queue = Some(queue);
        self.offset = Some(offset);
        self
    }

    /// Of `group` (and `consumer`, when not empty).
    pub fn of_group(mut self, group: &str, consumer: &str) -> Self {
        self.group = Some(group.to_string());
        if !consumer.is_empty() {
            self.consumer = Some(consumer.to_string());
        }
        self
    }

    /// Naming the message.
    pub fn id(mut self, message_id: &str) -> Self {
        self.message_id = Some(message_id.to_string());
        self
    }

    /// With delivery `attempt`.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }

    /// With `detail`.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// With `detail`, unless it has one.
    pub fn detail_or(mut self, detail: impl Into<String>) -> Self {
        if self.detail.is_none() {
            self.detail = Some(detail.into());
        }
        self
    }

    /// At `time_ms` instead of the delta's time.
    pub fn time(mut self, time_ms: i64) -> Self {
        self.time_ms = time_ms;
        self
    }

    /// What the event costs the state, about (its fields plus its strings).
    pub fn approx_bytes(&self) -> u64 {
        let s = |o: &Option<String>| o.as_ref().map_or(0, String::len);
        (72 + self.topic.len()
            + s(&self.message_id)
            + s(&self.group)
            + s(&self.consumer)
            + s(&self.gateway)
            + s(&self.detail)) as u64
    }

    /// Whether the event is about message `message_id`, which is at `position` (queue,
    /// offset) of `topic` when known.
    pub fn concerns(&self, topic: &str, message_id: &str, position: Option<(u32, u64)>) -> bool {
        if self.topic != topic {
            return false;
        }
        if self.message_id.as_deref() == Some(message_id) {
            return true;
        }
        match (position, self.queue, self.offset) {
            (Some((q, o)), Some(eq), Some(eo)) => {
                q == eq && o >= eo && o < eo.saturating_add(u64::from(self.count))
            }
            _ => false,
        }
    }
}

/// The events not yet written to ledger objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Ledger {
    /// The `seq` of the next event.
    pub next_seq: u64,
    /// Pending events, in `seq` order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<LedgerEvent>,
    /// [`LedgerEvent::approx_bytes`] of `events`, summed.
    #[serde(default)]
    pub bytes: u64,
    /// Events not kept because `bytes` was at [`MAX_PENDING_BYTES`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// The gateway of the entry being applied (set and cleared around each entry).
    #[serde(skip)]
    pub(crate) origin: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Ledger {
    /// Whether nothing was ever recorded (the state's encoding then leaves the ledger out).
    pub fn is_unused(&self) -> bool {
        self.next_seq == 0 && self.events.is_empty() && self.dropped == 0
    }

    /// The time of the oldest pending event.
    pub fn oldest_ms(&self) -> Option<i64> {
        self.events.iter().map(|e| e.time_ms).min()
    }

    /// Records `event` at `now` (unless it carries its own time), with the next `seq`.
    pub(crate) fn push(&mut self, mut event: LedgerEvent, now: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if event.time_ms == 0 {
            event.time_ms = now;
        }
        if event.gateway.is_none() {
            event.gateway.clone_from(&self.origin);
        }
        event.seq = seq;
        let size = event.approx_bytes();
        if self.bytes + size > MAX_PENDING_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += size;
        self.events.push(event);
    }

    /// Drops the events below `through_seq` (written to ledger objects).
    pub(crate) fn flushed(&mut self, through_seq: u64) {
        let n = self.events.partition_point(|e| e.seq < through_seq);
        let freed: u64 = self.events.drain(..n).map(|e| e.approx_bytes()).sum();
        self.bytes = self.bytes.saturating_sub(freed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_back_from_their_names() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).expect("encode");
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(EventKind::parse("nope"), None);
    }

    #[test]
    fn pending_bytes_are_bounded_and_freed_by_a_flush() {
        let mut l = Ledger::default();
        let ev = LedgerEvent::new(EventKind::Acked, "t").at(0, 1);
        let each = ev.approx_bytes();
        let fits = MAX_PENDING_BYTES / each;
        for _ in 0..fits + 10 {
            l.push(ev.clone(), 5);
        }
        assert_eq!(l.events.len() as u64, fits);
        assert_eq!(l.dropped, 10);
        assert!(l.bytes <= MAX_PENDING_BYTES);
        assert_eq!(l.next_seq, fits + 10);
        l.flushed(100);
        assert_eq!(l.events.first().map(|e| e.seq), Some(100));
        assert_eq!(l.bytes, (fits - 100) * each);
    }

    #[test]
    fn an_event_concerns_its_message_by_id_or_by_position() {
        let batch = LedgerEvent {
            count: 4,
            ..LedgerEvent::new(EventKind::Published, "t").at(2, 10)
        };
        assert!(batch.concerns("t", "x", Some((2, 13))));
        assert!(!batch.concerns("t", "x", Some((2, 14))));
        assert!(!batch.concerns("t", "x", Some((1, 10))));
        assert!(!batch.concerns("u", "x", Some((2, 10))));
        assert!(!batch.concerns("t", "x", None));
        let named = LedgerEvent::new(EventKind::Scheduled, "t").id("m1");
        assert!(named.concerns("t", "m1", None));
        assert!(!named.concerns("t", "m2", Some((0, 0))));
    }
}
