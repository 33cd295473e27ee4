//! The archive catalogue: which Parquet files hold which offsets of each queue, the files of
//! deleted topics, and the compactor lease. Its invariants are enforced at apply
//! (`manifest::state::archive`).
//!
//! Plain data: part of the stored format of checkpoints.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One Parquet file of the archive: a contiguous run of one queue's offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedFile {
    /// Key relative to the store root (`archive/topic=…/date=…/hour=…/<id>.parquet`).
    pub path: String,
    /// First offset held.
    pub min_offset: u64,
    /// One past the last offset held (half-open).
    pub max_offset: u64,
    /// Publish-time range of its rows (inclusive).
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub rows: u64,
    /// The file's size.
    pub bytes: u64,
}

/// One queue's archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QueueArchive {
    /// Every offset below is archived, in exactly one file.
    pub archived_to: u64,
    /// Files in offset order.
    pub files: Vec<ArchivedFile>,
}

impl QueueArchive {
    /// The file holding `offset`.
    pub fn file_for(&self, offset: u64) -> Option<&ArchivedFile> {
        let i = self
            .files
            .partition_point(|f| f.min_offset <= offset)
            .checked_sub(1)?;
        let f = &self.files[i];
        (offset < f.max_offset).then_some(f)
    }
}

/// A file of a deleted topic: still catalogued (so it is kept and listed) but no longer read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedFile {
    pub topic: String,
    pub queue: u32,
    pub file: ArchivedFile,
}

/// The compactor lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactorLease {
    pub holder: String,
    /// Delta time after which another compactor may take it.
    pub until_ms: i64,
}

/// The archive catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Archive {
    /// topic → queue → its archive.
    #[serde(default)]
    pub queues: BTreeMap<String, BTreeMap<u32, QueueArchive>>,
    /// Files of deleted topics.
    #[serde(default)]
    pub detached: Vec<DetachedFile>,
    #[serde(default)]
    pub lease: Option<CompactorLease>,
}

impl Archive {
    /// The archive of one queue, if anything of it was archived.
    pub fn queue(&self, topic: &str, queue: u32) -> Option<&QueueArchive> {
        self.queues.get(topic).and_then(|q| q.get(&queue))
    }

    /// How far a queue is archived (0: nothing).
    pub fn archived_to(&self, topic: &str, queue: u32) -> u64 {
        self.queue(topic, queue).map_or(0, |q| q.archived_to)
    }

    /// Whether `path` is catalogued (attached or detached).
    pub fn contains_path(&self, path: &str) -> bool {
        self.queues
            .values()
            .flat_map(|qs| qs.values())
            .flat_map(|q| q.files.iter())
            .chain(self.detached.iter().map(|d| &d.file))
            .any(|f| f.path == path)
    }

    /// Every catalogued path.
    pub fn paths(&self) -> BTreeSet<String> {
        self.queues
            .values()
            .flat_map(|qs| qs.values())
            .flat_map(|q| q.files.iter())
            .chain(self.detached.iter().map(|d| &d.file))
            .map(|f| f.path.clone())
            .collect()
    }
}
