//! Commands, deltas and outcomes: the vocabulary of the manifest log.
//!
//! A [`Delta`] is one log version: a time, the writer, a nonce, and entries of commands. Each
//! entry may carry a [`RequestId`] (a forwarded request); an entry whose id was already applied
//! is not applied again and answers the recorded outcome. Encoded as JSON (`serde_json`), which
//! is deterministic here because every map in the state is a `BTreeMap`.

use serde::{Deserialize, Serialize};

/// The format version of deltas and checkpoints this code writes.
pub const FORMAT: u32 = 1;

/// RocketMQ 5 topic message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicKind {
    Normal,
    Fifo,
    Delay,
    Transaction,
}

/// A topic's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDef {
    pub kind: TopicKind,
    pub queues: u32,
    pub retention_hours: u32,
}

/// How a consumer group consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMode {
    /// Each message to one consumer of the group, with retries and dead letters.
    Clustering,
    /// Every consumer instance gets every message; offsets per instance.
    Broadcast,
}

/// Where a new cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    Earliest,
    Latest,
    Timestamp(i64),
}

/// One subscription of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub topic: String,
    /// A RocketMQ tag expression (`*`, `A || B`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// A SQL92 filter over properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// A consumer group's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDef {
    pub subscriptions: Vec<Subscription>,
    pub mode: GroupMode,
    pub start_from: StartFrom,
    pub max_retries: u32,
    pub invisible_ms: i64,
    pub retry_backoff_ms: Vec<i64>,
    /// Push delivery (API.md "Push subscriptions"): the gateways POST the group's messages to
    /// a URL instead of waiting for receives. Clustering groups only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushDef>,
}

/// A push group's endpoint and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushDef {
    pub url: String,
    /// Pushes outstanding at once across all gateways (leases of the group), enforced at apply.
    pub max_in_flight: u32,
    /// Leases granted per second across all gateways (0: no cap), enforced at apply.
    pub rate_per_s: u32,
    /// How long a push may take before it counts as failed.
    pub timeout_ms: u64,
    pub format: PushFormat,
    /// The gateways derive the group's signing secret from this and the cluster secret; the
    /// secret itself is never stored in the bucket. A new nonce is a new secret.
    pub secret_nonce: String,
}

impl PushDef {
    /// Whether `other` asks for the same delivery (the nonce aside).
    pub fn same_settings(&self, other: &PushDef) -> bool {
        PushDef {
            secret_nonce: String::new(),
            ..self.clone()
        } == PushDef {
            secret_nonce: String::new(),
            ..other.clone()
        }
    }
}

/// How a push carries a message: a CloudEvents 1.0 HTTP binding mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushFormat {
    /// The body as is, attributes as `ce-*` headers.
    Binary,
    /// `application/cloudevents+json`.
    Structured,
}

impl GroupDef {
    /// Which cursors a consumer reads: clustering groups share one (key `""`), each consumer of
    /// a broadcast group has its own (key: the consumer).
    pub fn cursor_key(mode: GroupMode, consumer: &str) -> &str {
        match mode {
            GroupMode::Clustering => "",
            GroupMode::Broadcast => consumer,
        }
    }

    /// The wait before delivery attempt `attempt + 1`, after `attempt` deliveries.
    pub fn backoff_ms(&self, attempt: u32) -> i64 {
        let i = (attempt.max(1) - 1) as usize;
        self.retry_backoff_ms
            .get(i)
            .or(self.retry_backoff_ms.last())
            .copied()
            .unwrap_or(0)
    }

    /// Deliveries allowed before a message is dead-lettered.
    pub fn max_deliveries(&self) -> u32 {
        self.max_retries.saturating_add(1)
    }

    /// Whether `other` differs from this definition in its push settings alone (switching
    /// between pull and push, or changing the endpoint or limits, keeps the cursors).
    pub fn differs_only_in_push(&self, other: &GroupDef) -> bool {
        GroupDef {
            push: None,
            ..self.clone()
        } == GroupDef {
            push: None,
            ..other.clone()
        }
    }
}

/// One inline segment inside a pack ([`Command::Packed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedPart {
    /// The inline segment's name.
    pub segment: String,
    /// The pack's ordinal of its first message.
    pub first_ordinal: u32,
}

/// A message position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueOffset {
    pub topic: String,
    pub queue: u32,
    pub offset: u64,
}

/// Where a reset moves a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetTarget {
    Earliest,
    Latest,
    Timestamp(i64),
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
    CreateGroup { group: String, def: GroupDef },
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
        located: Vec<Option<super::state::OffsetRange>>,
        /// The group's cap on messages leased or waiting for a retry (`None`: the default,
        /// [`super::state::DEFAULT_MAX_IN_FLIGHT`]).
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
    /// [`Outcome::SettledMany::expired`].
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
    SpillTimers {
        object: String,
        spill: super::timers::TimerSpill,
    },
    /// Put the timers of spill object `object` back inline (all of them, as read from it).
    LoadTimers {
        object: String,
        timers: Vec<super::timers::SpilledTimer>,
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
        folded: Vec<super::state::OffsetRange>,
    },
    /// Install index runs written to `object` (`manifest::index`): folds of queues' oldest
    /// inline ranges and merges of runs; each is checked against the state and applied or
    /// passed over on its own.
    FoldIndex {
        object: String,
        runs: Vec<super::index::NewRun>,
    },
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

/// One granted lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub at: QueueOffset,
    /// 1 for the first delivery.
    pub attempt: u32,
}

/// Why a command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", content = "message")]
pub enum Rejection {
    #[error("topic {0} does not exist")]
    TopicNotFound(String),
    #[error("group {0} does not exist")]
    GroupNotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the receipt's lease expired or was superseded")]
    ReceiptExpired,
    #[error("transaction {0} does not exist")]
    TransactionNotFound(String),
    #[error("message {0} does not exist")]
    MessageNotFound(String),
    #[error("stale sequencer claim: epoch {claimed} is not above {current}")]
    StaleEpoch { claimed: u64, current: u64 },
    /// A bounded part of the state is full; retry once it has drained.
    #[error("{0}")]
    Full(String),
}

/// What applying a command answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Done, nothing to report.
    Done,
    /// A topic or group definition: `created` is false when an identical one existed.
    Defined { created: bool },
    /// Messages appended at `base_offset..base_offset + count`.
    Appended { base_offset: u64 },
    /// Leases granted at this delta's version; `capped` when the group's in-flight cap kept
    /// any from being granted.
    Leased {
        version: u64,
        grants: Vec<Grant>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        capped: bool,
    },
    /// A settle applied; for an extend, the new lease version.
    Settled { lease_version: u64 },
    /// A [`Command::SettleMany`] applied: every offset settled except `expired` (their receipts
    /// had expired or been superseded); for an extend, the new lease version.
    SettledMany {
        lease_version: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        expired: Vec<u64>,
    },
    /// Nothing changed, for this reason.
    Rejected { rejection: Rejection },
    /// A repeated `dedup_id`: nothing stored, this was the first result.
    Duplicate { first: DedupRecord },
    /// A transaction's decision.
    Decided { committed: bool },
    /// Half messages handed out for a check-back.
    Checks { checks: Vec<CheckDue> },
    /// Dead letters made visible again.
    Redriven { moved: u32 },
    /// Index runs installed.
    Indexed { runs: u32 },
}

/// The first result of a deduplicated publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupRecord {
    pub time_ms: i64,
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
}

/// One check-back to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDue {
    pub transaction_id: String,
    pub producer_group: String,
    /// 1 on the first check.
    pub check_times: u32,
    /// Whether a live registered instance should be called (else it waits for a poller).
    pub webhook: bool,
}

impl Outcome {
    /// A rejected outcome.
    pub fn rejected(rejection: Rejection) -> Self {
        Outcome::Rejected { rejection }
    }
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

/// Names one written delta: its writer and nonce. A delta names its parent this way
/// ([`Delta::parent`]), so that a writer can have several deltas in flight at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeltaId {
    pub writer: String,
    pub nonce: u64,
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
