//! Messages that are not (yet) in a queue, and the windows that remember what was done:
//! delayed messages (timers), half messages of transactions, transaction decisions, producer
//! groups and the `dedup_id` window. Their behaviour is in `manifest::state::messaging`.
//!
//! Plain data: part of the stored format of checkpoints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How long a `dedup_id` is remembered per topic (API.md: 10 minutes).
pub const DEDUP_WINDOW_MS: i64 = 10 * 60 * 1000;

/// At most this many `dedup_id`s are remembered per topic; beyond it the oldest are forgotten
/// early, which bounds the manifest (about 100 bytes each).
pub const DEDUP_PER_TOPIC: usize = 100_000;

/// How long a transaction decision is remembered (API.md: 24 h).
pub const DECISION_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// At most this many decisions are remembered; beyond it the oldest are forgotten early (a
/// later contradicting decision of those is then a 404, not a 409).
pub const DECISIONS_KEPT: usize = 100_000;

/// At most this many transactions are pending (half messages) cluster-wide; a half message
/// beyond it is refused ([`Rejection::Full`](super::outcome::Rejection::Full)) until some are decided, checked out or rolled
/// back. Each lives at most its check immunity plus `max_checks` check intervals, so this is
/// reached only by a stuck producer group; it bounds the manifest (about 200 bytes each).
pub const MAX_PENDING_TRANSACTIONS: usize = 100_000;

/// Expired dedup ids and decisions are swept every this many versions (and whenever a map
/// outgrows its bound), so a publish does not scan the window.
pub const SWEEP_EVERY: u64 = 1024;

/// A message stored in a segment but not in a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub topic: String,
    pub queue: u32,
    pub segment: String,
    pub ordinal: u32,
    pub publish_time_ms: i64,
    pub message_id: String,
}

/// A half message: invisible until its transaction is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Half {
    pub message: Pending,
    pub producer_group: String,
    /// Check-backs made so far.
    pub checks: u32,
    /// Check-backs handed to a webhook call or a poller (`claimed < checks`: one waits).
    pub claimed: u32,
    pub next_check_ms: i64,
}

/// A transaction's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub committed: bool,
    pub time_ms: i64,
    pub producer_group: String,
}

/// A producer group's check-back timing (API.md defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerSettings {
    pub check_immunity_ms: i64,
    pub check_interval_ms: i64,
    pub max_checks: u32,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        ProducerSettings {
            check_immunity_ms: 6_000,
            check_interval_ms: 10_000,
            max_checks: 15,
        }
    }
}

/// A registered producer instance that answers check-backs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerInstance {
    pub check_url: String,
    pub expires_ms: i64,
}

/// A producer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProducerGroup {
    pub settings: ProducerSettings,
    pub instances: BTreeMap<String, ProducerInstance>,
}

impl ProducerGroup {
    /// The live instances at `now`, by name.
    pub fn live(&self, now: i64) -> impl Iterator<Item = (&String, &ProducerInstance)> {
        self.instances
            .iter()
            .filter(move |(_, i)| i.expires_ms > now)
    }
}

/// The key of a timer: due order, then message id.
pub fn timer_key(deliver_at_ms: i64, message_id: &str) -> String {
    format!("{:020}/{message_id}", deliver_at_ms.max(0))
}

pub(crate) fn timer_due(key: &str) -> i64 {
    key.split('/')
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
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
