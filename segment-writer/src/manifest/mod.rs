//! The manifest: a replicated state machine whose log lives in the bucket.
//!
//! - [`command`]: what a delta carries and what applying it answers.
//! - [`state`]: the state and its deterministic [`State::apply`].
//! - [`archive`]: the archive catalogue, retention of offset ranges, the compactor lease.
//! - [`log`]: reading, committing (create-if-absent) and checkpointing the log.
//!
//! Invariant: the state at version `v` is a pure function of versions `1..=v` (or of a
//! checkpoint at `c` and versions `c+1..=v`). Times come from the deltas, never from the clock
//! of the replica that applies them.

pub mod archive;
pub mod command;
pub mod log;
pub mod state;

pub use archive::{Archive, ArchivedFile, QueueArchive};
pub use command::Grant;
pub use command::{
    Command, Delta, Entry, GroupDef, GroupMode, Outcome, QueueOffset, Rejection, RequestId,
    ResetTarget, SettleAction, StartFrom, Subscription, TopicDef, TopicKind,
};
pub use log::{AppliedDelta, CommitAttempt, LogSettings, ManifestLog};
pub use state::{Cursor, Lease, OffsetRange, QueueLog, Retry, State, Topic};
