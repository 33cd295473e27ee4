//! Commands, deltas and outcomes: the vocabulary of the manifest log.
//!
//! A [`Delta`] is one log version: a time, the writer, a nonce, and entries of commands. Each
//! entry may carry a [`RequestId`] (a forwarded request); an entry whose id was already applied
//! is not applied again and answers the recorded outcome. Encoded as JSON (`serde_json`), which
//! is deterministic here because every map in the state is a `BTreeMap`.
//!
//! Plain data: the stored format of deltas (pinned by `manifest::samples`). Imports only the
//! model types a command carries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{
    CatalogueRun, DeltaId, GroupDef, NewRun, OffsetRange, QueueOffset, SpilledTimer, TimerSpill,
    TopicDef,
};

/// The format version of deltas and checkpoints this code writes.
pub const FORMAT: u32 = 1;

/// One inline segment inside a pack ([`Command::Packed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedPart {
    /// The inline segment's name.
    pub segment: String,
    /// The pack's ordinal of its first message.
    pub first_ordinal: u32,
}

/// Where a reset moves a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetTarget {
    Earliest,
    Latest,
    Timestamp(i64),
}

/// The first offset of `queue` stored at or after a reset's time, found in the index run that
/// starts at `run_base` in `run_object`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedOffset {
    pub queue: u32,
    pub run_object: String,
    pub run_base: u64,
    pub offset: u64,
}

/// What to do with a leased message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettleAction {
    /// Consumed: never deliver again.
    Ack,
    /// Failed: deliver again after `delay_ms` (counts as an attempt).
    Nack { delay_ms: i64 },
    /// Keep the lease `invisible_ms` from now; the receipt changes.
    Extend { invisible_ms: i64 },
}

/// One change of state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Create a topic, or confirm an identical one.
    CreateTopic { topic: String, def: TopicDef },
    /// Delete a topic and every group cursor on it.
    DeleteTopic { topic: String },
    /// Append `count` messages stored at ordinals `first_ordinal..` of `segment` to a queue;
    /// offsets are assigned here, at apply.
    Append {
        topic: String,
        queue: u32,
        segment: String,
        first_ordinal: u32,
        count: u32,
        publish_time_ms: i64,
    },
    /// Create a consumer group (and its dead-letter topic), or confirm an identical one.
    CreateGroup {
        group: String,
        def: GroupDef,
        /// For a group starting at a time that falls in folded index runs: per subscribed
        /// topic, the exact offsets the gateway read from the runs' objects, used as
        /// [`Command::ResetOffsets`]`::resolved` is (only while each run is still the one the
        /// time falls in, else the cursor starts at the run's start).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        resolved: BTreeMap<String, Vec<ResolvedOffset>>,
    },
    /// Delete a group and its cursors.
    DeleteGroup { group: String },
    /// Lease up to `max` of `candidates` to a consumer for `invisible_ms`; mark `skipped`
    /// (filtered out) as consumed. Candidates no longer free are passed over.
    Lease {
        group: String,
        consumer: String,
        invisible_ms: i64,
        max: u32,
        candidates: Vec<QueueOffset>,
        skipped: Vec<QueueOffset>,
        /// For ordered (FIFO) topics: each candidate's message group, parallel to
        /// `candidates`; a candidate whose message group has another offset in flight is
        /// passed over.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        message_groups: Vec<Option<String>>,
        /// For candidates no longer inline (folded into index objects): the range of just that
        /// offset, as the receiving gateway read it, parallel to `candidates` (empty: none).
        /// A folded candidate without one is passed over.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        located: Vec<Option<OffsetRange>>,
        /// The group's cap on messages leased or waiting for a retry (`None`: the default,
        /// [`DEFAULT_MAX_IN_FLIGHT`](super::model::DEFAULT_MAX_IN_FLIGHT)).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_in_flight: Option<u32>,
    },
    /// What a gateway's pushes of a group came to since its last report (counters shown in
    /// `push_status`); committed with the settles of those pushes.
    PushReport {
        group: String,
        /// The reporting gateway: it counts as one of the group's pushers for a while.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        gateway: String,
        delivered: u64,
        failed: u64,
        /// The newest failure's description, if any failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_error: Option<String>,
        /// Until when this gateway holds the group's pushes after an endpoint's `Retry-After`
        /// (a 429 or 503), if it does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paused_until_ms: Option<i64>,
    },
    /// Ack, nack or extend the lease granted at `lease_version`.
    Settle {
        group: String,
        consumer: String,
        at: QueueOffset,
        lease_version: u64,
        action: SettleAction,
    },
    /// [`Command::Settle`] for several offsets of one queue leased at one version (the receipts
    /// of one receive): one command per queue instead of one per message. Each offset is settled
    /// on its own; those whose lease expired or was superseded are answered in
    /// [`Outcome::SettledMany::expired`](super::model::Outcome::SettledMany::expired).
    SettleMany {
        group: String,
        consumer: String,
        topic: String,
        queue: u32,
        lease_version: u64,
        action: SettleAction,
        offsets: Vec<u64>,
    },
    /// Move the group's offsets on `topic`.
    ResetOffsets {
        group: String,
        topic: String,
        to: ResetTarget,
        /// For a reset to a time that falls in a queue's folded index run, the exact offset
        /// the gateway read from the run's object (apply cannot read objects); used only if
        /// the run is still the one the time falls in, else apply resets to the run's start.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        resolved: Vec<ResolvedOffset>,
    },
    /// Dead-letter every message whose last allowed lease has expired (issued by the sequencer's ticker).
    ExpireLeases,
    /// Claim leadership of the log with a higher epoch.
    Sequencer {
        gateway: String,
        address: String,
        epoch: u64,
    },
    /// One message that is deduplicated, delayed or transactional, stored at `ordinal` of
    /// `segment`: appended, scheduled or held as a half message per `mode`, unless its
    /// `dedup_id` was seen on the topic within the window (then the first result is answered).
    PublishOne {
        topic: String,
        queue: u32,
        segment: String,
        ordinal: u32,
        publish_time_ms: i64,
        message_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dedup_id: Option<String>,
        mode: PublishMode,
    },
    /// The bytes of a small segment, carried in the delta itself instead of a segment object
    /// (one PUT on the publish path instead of two). The state records that `segment` lives in
    /// this version until [`Command::Materialized`]; the commands after it name `segment` as
    /// any other.
    InlineSegment {
        segment: String,
        #[serde(with = "base64_bytes")]
        data: bytes::Bytes,
        /// It may be written out inside a pack ([`Command::Packed`]): only stored messages
        /// name it (no timer or half message, whose pointers the pack could not rewrite).
        /// Without it (deltas of older gateways) it becomes an object of its own
        /// ([`Command::Materialized`]).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        packable: bool,
    },
    /// These inline segments now also exist as their own objects under their names (the
    /// sequencer wrote them): reads go there, and the log versions that held them may be
    /// collected.
    Materialized { segments: Vec<String> },
    /// These packable inline segments were written out together as one segment object,
    /// `pack`, each part's messages from its `first_ordinal` on: the ranges that named a part
    /// now name the pack (ordinals shifted), and the log versions that held them may be
    /// collected. A part no longer inline (packed or written out already) is skipped.
    Packed {
        pack: String,
        parts: Vec<PackedPart>,
    },
    /// Append every timer due at the delta time to its queue (issued by the sequencer's ticker).
    FireTimers,
    /// Cancel a delayed message not yet due: inline, or else in the spill `spilled_in` (where
    /// the gateway found it).
    CancelTimer {
        topic: String,
        message_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spilled_in: Option<String>,
    },
    /// Move the inline timers of `spill`'s key range to the spill object `object`
    /// (`manifest::timers`); refused unless they match `spill` exactly.
    SpillTimers { object: String, spill: TimerSpill },
    /// Put the timers of spill object `object` back inline (all of them, as read from it).
    LoadTimers {
        object: String,
        timers: Vec<SpilledTimer>,
    },
    /// Commit or roll back a half message.
    Decide {
        transaction_id: String,
        commit: bool,
    },
    /// Count a check-back for every half message due for one; roll back those past
    /// `max_checks` (issued by the sequencer's ticker).
    CheckTransactions,
    /// Hand up to `max` checked, unclaimed half messages of a producer group to a poller.
    ClaimChecks { producer_group: String, max: u32 },
    /// Set a producer group's check-back timing (omitted fields keep theirs).
    ConfigureProducerGroup {
        producer_group: String,
        check_immunity_ms: Option<i64>,
        check_interval_ms: Option<i64>,
        max_checks: Option<u32>,
    },
    /// Register (or heartbeat) a producer instance that answers check-backs at `check_url`.
    RegisterProducer {
        producer_group: String,
        instance: String,
        check_url: String,
        ttl_ms: i64,
    },
    /// Make up to `max` dead letters of `group` visible to it again, attempts reset, and
    /// remove them from `DLQ.<group>`.
    Redrive {
        group: String,
        max: u32,
        /// The dead-letter queue's ranges from its first readable offset on that are folded
        /// into index objects, as the gateway read them (apply cannot read objects).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        folded: Vec<OffsetRange>,
    },
    /// Install index runs written to `object` (`manifest::index`): folds of queues' oldest
    /// inline ranges and merges of runs; each is checked against the state and applied or
    /// passed over on its own.
    FoldIndex { object: String, runs: Vec<NewRun> },
    /// Catalogue a Parquet file holding offsets `min_offset..max_offset` of a queue; refused
    /// unless `min_offset` is the queue's archived-up-to offset (see `manifest::archive`).
    ArchiveFile {
        topic: String,
        queue: u32,
        path: String,
        min_offset: u64,
        max_offset: u64,
        min_time_ms: i64,
        max_time_ms: i64,
        rows: u64,
        bytes: u64,
    },
    /// Drop the queue's offset ranges below `below` that are archived, past retention and
    /// consumed by every cursor (apply decides how far; archived offsets stay readable).
    DropRanges {
        topic: String,
        queue: u32,
        below: u64,
    },
    /// Take or renew the compactor lease for `ttl_ms` of delta time.
    CompactorLease { holder: String, ttl_ms: i64 },
    /// Give the compactor lease up, if held by `holder`.
    ReleaseCompactorLease { holder: String },
    /// Ledger events with `seq` below `through_seq` are written to the ledger objects
    /// `objects` (`manifest::ledger`): the state drops them.
    LedgerFlushed {
        through_seq: u64,
        objects: Vec<String>,
    },
    /// Forget the queue's oldest archive file (archive retention); offsets no longer held by a
    /// segment become unreadable.
    ExpireArchive {
        topic: String,
        queue: u32,
        path: String,
    },
    /// Install a catalogue run written to `run.object` (`manifest::catalogue`): with
    /// `replaces` empty, a fold of the queue's oldest listed files; otherwise a merge of the
    /// consecutive runs whose objects `replaces` names. Refused when the state no longer
    /// matches (a stale plan); the object then waits for garbage collection.
    FoldCatalogue {
        topic: String,
        queue: u32,
        run: CatalogueRun,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        replaces: Vec<String>,
    },
    /// Forget the queue's oldest catalogue run, which lists its oldest files (archive
    /// retention, as [`Command::ExpireArchive`] for a listed file); with `rest`, only the
    /// files before it: `rest` (written to its own object) lists the newer ones and takes the
    /// run's place.
    ExpireCatalogueRun {
        topic: String,
        queue: u32,
        object: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rest: Option<CatalogueRun>,
    },
}

/// What [`Command::PublishOne`] does with its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "as", rename_all = "snake_case")]
pub enum PublishMode {
    /// Visible at once.
    Visible,
    /// Appended to its queue at `deliver_at_ms`.
    Timer { deliver_at_ms: i64 },
    /// Invisible until committed.
    Half {
        transaction_id: String,
        producer_group: String,
        /// The message's own `check_immunity_ms` property, when larger than its group's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check_immunity_ms: Option<i64>,
    },
}

/// The idempotency id of a forwarded request: the gateway incarnation and its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    pub origin: String,
    pub seq: u64,
}

/// Commands applied together, with their request id if forwarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestId>,
    pub commands: Vec<Command>,
}

/// One version of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub format: u32,
    pub version: u64,
    /// Delta time: max(previous delta's time, the writer's clock).
    pub time_ms: i64,
    /// The gateway incarnation that wrote it.
    pub writer: String,
    /// Distinguishes my write from another's identical-looking one after a lost response.
    pub nonce: u64,
    /// The delta this one was written to follow (the writer's view of the head when it wrote
    /// it). When the state's head is another delta, this one is an orphan: it takes its
    /// version but changes nothing (DESIGN.md, "Several deltas in flight"). `None` (deltas of
    /// older writers) always applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<DeltaId>,
    pub entries: Vec<Entry>,
}

impl Delta {
    /// This delta's identity, as a child names it.
    pub fn id(&self) -> DeltaId {
        DeltaId {
            writer: self.writer.clone(),
            nonce: self.nonce,
        }
    }
}

/// Bytes as standard base64 in JSON (inline segments).
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(data: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(data))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bytes::Bytes, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map(bytes::Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}
