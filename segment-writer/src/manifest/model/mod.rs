//! The manifest's plain data: the replicated [`State`] and the types it is made of (topics,
//! queues and ranges, groups and cursors, timers and spills, half messages, the archive
//! catalogue, ledger events, recorded outcomes).
//!
//! Invariants: nothing here imports a behaviour module (`manifest::state`, the log, the store);
//! there is no `impl State` here. The serde encoding of these types is the stored format of
//! checkpoints (and, for the types a command carries, of deltas), pinned by a committed sample
//! (`manifest::samples`): renaming, reordering or retyping a field is a format change.
//!
//! Order of the files (each imports only files before it): [`defs`], [`intervals`],
//! [`range`], [`index`], [`queue`], [`cursor`], [`messaging`], [`timers`], [`archive`],
//! [`ledger`], [`outcome`], then [`state`], the root.

pub mod archive;
pub mod cursor;
pub mod defs;
pub mod index;
pub mod intervals;
pub mod ledger;
pub mod messaging;
pub mod outcome;
pub mod queue;
pub mod range;
pub mod state;
pub mod timers;

pub use archive::{
    Archive, ArchivedFile, CatalogueRun, CompactorLease, DetachedFile, DetachedRun, QueueArchive,
    files_digest,
};
pub use cursor::{Cursor, DEFAULT_MAX_IN_FLIGHT, Group, Lease, PUSH_CONSUMER, PushProgress, Retry};
pub use defs::{
    GroupDef, GroupMode, PushDef, PushFormat, StartFrom, Subscription, TopicDef, TopicKind,
};
pub use index::{IndexRun, NewRun, digest, single};
pub use intervals::OffsetSet;
pub use ledger::{EventKind, Ledger, LedgerEvent};
pub use messaging::{
    DECISION_WINDOW_MS, DECISIONS_KEPT, DEDUP_PER_TOPIC, DEDUP_WINDOW_MS, Decision, DedupRecord,
    Half, MAX_PENDING_TRANSACTIONS, Pending, ProducerGroup, ProducerInstance, ProducerSettings,
    SWEEP_EVERY, timer_key,
};
pub use outcome::{CheckDue, Grant, Outcome, Rejection};
pub use queue::{DLQ_PREFIX, QueueLog, Topic, dlq_topic};
pub use range::{OffsetRange, QueueOffset};
pub use state::{
    DeltaId, REQUEST_WINDOW_MS, REQUESTS_PER_ORIGIN, RecordedRequest, SequencerInfo, State,
};
pub use timers::{SpillFile, SpilledTimer, TimerSpill};
