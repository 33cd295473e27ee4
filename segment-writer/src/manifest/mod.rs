//! The manifest: a replicated state machine whose log lives in the bucket.
//!
//! - [`command`]: what a delta carries and what applying it answers.
//! - [`state`]: the state and its deterministic [`State::apply`].
//! - [`messaging`]: timers, half messages, producer groups, dedup and re-drive.
//! - [`timers`]: timers due far ahead spilled to objects and loaded back.
//! - [`index`]: old offset ranges folded into index objects, summaries in the state.
//! - [`intervals`]: offset sets as intervals (cursors' consumed offsets).
//! - [`backlog`]: backlog figures of consumer groups, derived from the state.
//! - [`ledger`]: delivery-ledger events pending in the state until written to `ledger/`.
//! - [`archive`]: the archive catalogue, retention of offset ranges, the compactor lease.
//! - [`log`]: reading, committing (create-if-absent) and checkpointing the log.
//!
//! Invariant: the state at version `v` is a pure function of versions `1..=v` (or of a
//! checkpoint at `c` and versions `c+1..=v`). Times come from the deltas, never from the clock
//! of the replica that applies them.

pub mod archive;
pub mod backlog;
pub mod command;
pub mod index;
pub mod intervals;
pub mod ledger;
pub mod log;
pub mod messaging;
#[cfg(test)]
mod samples;
#[cfg(test)]
mod sim;
pub mod state;
pub mod timers;

pub use archive::{Archive, ArchivedFile, QueueArchive};
pub use command::Grant;
pub use command::{
    CheckDue, Command, DedupRecord, Delta, DeltaId, Entry, GroupDef, GroupMode, Outcome,
    PackedPart, PublishMode, PushDef, PushFormat, QueueOffset, Rejection, RequestId, ResetTarget,
    SettleAction, StartFrom, Subscription, TopicDef, TopicKind,
};
pub use ledger::{EventKind, Ledger, LedgerEvent};
pub use log::{AppliedDelta, CommitAttempt, Created, LogSettings, ManifestLog, PreparedDelta};
pub use messaging::{Half, Pending, ProducerGroup, ProducerSettings, timer_key};
pub use state::{Cursor, Lease, OffsetRange, PushProgress, QueueLog, Retry, State, Topic};
