//! What applying a command answers: an [`Outcome`], or why it changed nothing ([`Rejection`]).
//!
//! Plain data: outcomes of forwarded requests are kept in the state for the idempotency window
//! ([`super::RecordedRequest`]), so their encoding is part of the stored format of checkpoints.

use serde::{Deserialize, Serialize};

use super::messaging::DedupRecord;
use super::range::QueueOffset;

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
    /// A [`Command::SettleMany`](crate::manifest::Command::SettleMany) applied: every offset settled except `expired` (their receipts
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
