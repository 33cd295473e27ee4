//! The whole replicated state: the root of the checkpoint encoding, whose fields are the other
//! `model` types. What changes it is [`State::apply`] (`manifest::state`).
//!
//! Every map is a `BTreeMap`, so equal states encode to equal bytes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::archive::Archive;
use super::cursor::Group;
use super::ledger::Ledger;
use super::messaging::{Decision, DedupRecord, Half, Pending, ProducerGroup};
use super::outcome::Outcome;
use super::queue::Topic;
use super::timers::TimerSpill;

/// How long a forwarded request's outcome is remembered (a retry within it applies once).
/// A follower gives up on a forward well within this (its submit timeout).
pub const REQUEST_WINDOW_MS: i64 = 2 * 60 * 1000;

/// How many forwarded request outcomes are remembered per origin. A follower has only a few
/// forwards in flight, and only those can be retried.
pub const REQUESTS_PER_ORIGIN: usize = 256;

/// Names one written delta: its writer and nonce. A delta names its parent this way
/// ([`Delta::parent`](crate::manifest::Delta::parent)), so that a writer can have several deltas in flight at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeltaId {
    pub writer: String,
    pub nonce: u64,
}

/// The current sequencer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencerInfo {
    pub gateway: String,
    pub address: String,
    pub epoch: u64,
    /// The version that made it sequencer.
    pub since_version: u64,
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
    pub spilled_timers: BTreeMap<String, TimerSpill>,
    /// Half messages by transaction id.
    #[serde(default)]
    pub halves: BTreeMap<String, Half>,
    /// Transaction decisions, remembered for [`DECISION_WINDOW_MS`](super::messaging::DECISION_WINDOW_MS).
    #[serde(default)]
    pub decisions: BTreeMap<String, Decision>,
    #[serde(default)]
    pub producer_groups: BTreeMap<String, ProducerGroup>,
    /// topic → dedup id → first result, for [`DEDUP_WINDOW_MS`](super::messaging::DEDUP_WINDOW_MS).
    #[serde(default)]
    pub dedup: BTreeMap<String, BTreeMap<String, DedupRecord>>,
    /// The archive catalogue, retention progress and compactor lease (`manifest::archive`).
    #[serde(default)]
    pub archive: Archive,
    /// Segments whose bytes live in a log version ([`Command::InlineSegment`](crate::manifest::Command::InlineSegment)), not yet
    /// written as their own objects: name → version. The log is not collected from the
    /// oldest of these versions on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inline_segments: BTreeMap<String, u64>,
    /// The inline segments that may be packed ([`Command::Packed`](crate::manifest::Command::Packed)), each with the queues
    /// whose ranges name it (so that packing rewrites those ranges without a scan). Bounded
    /// like `inline_segments`, of which it is a subset.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packable: BTreeMap<String, BTreeSet<(String, u32)>>,
    /// Delivery-ledger events not yet written to ledger objects (`manifest::ledger`).
    #[serde(default, skip_serializing_if = "Ledger::is_unused")]
    pub ledger: Ledger,
}
