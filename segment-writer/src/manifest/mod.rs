//! The manifest: a replicated state machine whose log lives in the bucket.
//!
//! Its rooms, each depending only on those above it:
//!
//! - [`model`]: the plain data: the replicated [`State`] and the types it is made of (their
//!   encoding is the checkpoint format); no behaviour, no I/O.
//! - [`command`]: what a delta carries (its encoding is the delta format).
//! - [`state`]: every `impl State`: the deterministic [`State::apply`] and the queries, by
//!   area (delivery, messaging, timers, index, archive, ledger); pure, no I/O.
//! - [`backlog`]: backlog figures of consumer groups, derived from the state.
//! - [`index`], [`timers`], [`catalogue`]: the objects the state summarises (index runs, timer
//!   spills, the archive's older files), read and written in the bucket.
//! - [`log`]: reading, committing (create-if-absent) and checkpointing the log.
//!
//! So edges run one way: model ← command ← state ← (index, timers, catalogue, log) ← `crate::node`.
//!
//! Invariant: the state at version `v` is a pure function of versions `1..=v` (or of a
//! checkpoint at `c` and versions `c+1..=v`). Times come from the deltas, never from the clock
//! of the replica that applies them.

pub mod backlog;
pub mod byte_lru;
pub mod catalogue;
pub mod command;
pub mod index;
pub mod log;
pub mod model;
#[cfg(test)]
mod samples;
#[cfg(test)]
mod sim;
pub mod state;
pub mod timers;

pub use command::{
    Command, Delta, Entry, FORMAT, PackedPart, PublishMode, RequestId, ResetTarget, ResolvedOffset,
    SettleAction,
};
pub use index::{IndexCache, IndexSettings, IndexWork, QueueSnapshot};
pub use log::{AppliedDelta, CommitAttempt, Created, LogSettings, ManifestLog, PreparedDelta};
pub use model::{
    Archive, ArchivedFile, CatalogueRun, CheckDue, Cursor, DEDUP_WINDOW_MS, DedupRecord, DeltaId,
    EventKind, Grant, GroupDef, GroupMode, Half, IndexRun, Lease, Ledger, LedgerEvent, NewRun,
    OffsetRange, Outcome, PUSH_CONSUMER, Pending, ProducerGroup, ProducerSettings, PushDef,
    PushFormat, PushProgress, QueueArchive, QueueLog, QueueOffset, Rejection, Retry, SpillFile,
    StartFrom, State, Subscription, Topic, TopicDef, TopicKind, dlq_topic, timer_key,
};
pub use state::VersionGap;
pub use timers::SpillSettings;
