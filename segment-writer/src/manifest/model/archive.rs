//! The archive catalogue: which Parquet files hold which offsets of each queue, the files of
//! deleted topics, and the compactor lease. Its invariants are enforced at apply
//! (`manifest::state::archive`).
//!
//! A queue's newest files are listed here one by one; older ones are folded into immutable
//! catalogue objects in the bucket (`manifest::catalogue`), of which the state keeps one
//! [`CatalogueRun`] summary each, merged by levels as the offset index's runs are, so that
//! years of hourly files cost a queue a few dozen entries.
//!
//! Plain data: part of the stored format of checkpoints.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::index::Fnv1a;

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

/// The state's summary of a run of one queue's consecutive archive files, listed in a
/// catalogue object (`index/<ulid>.cat`, see `manifest::catalogue`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueRun {
    /// The object (relative name).
    pub object: String,
    /// The offsets its files hold: `min_offset..max_offset`.
    pub min_offset: u64,
    pub max_offset: u64,
    /// Publish-time span of its files' rows (inclusive).
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    /// How many files it lists, their rows and bytes.
    pub files: u32,
    pub rows: u64,
    pub bytes: u64,
    /// 0 for a fold of listed files, one more per merge.
    pub level: u8,
    /// [`files_digest`] of the files it lists: apply of a fold compares it with the files it
    /// replaces, a reader with what it read.
    pub digest: u64,
}

impl CatalogueRun {
    /// The summary of `files` (non-empty, consecutive) written to `object`.
    pub fn summarize(object: &str, level: u8, files: &[ArchivedFile]) -> Self {
        CatalogueRun {
            object: object.to_string(),
            min_offset: files.first().map_or(0, |f| f.min_offset),
            max_offset: files.last().map_or(0, |f| f.max_offset),
            min_time_ms: files.iter().map(|f| f.min_time_ms).min().unwrap_or(0),
            max_time_ms: files.iter().map(|f| f.max_time_ms).max().unwrap_or(0),
            files: files.len() as u32,
            rows: files.iter().map(|f| f.rows).sum(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            level,
            digest: files_digest(files),
        }
    }

    /// Whether `offset` lies in its files.
    pub fn holds(&self, offset: u64) -> bool {
        (self.min_offset..self.max_offset).contains(&offset)
    }
}

/// 64-bit FNV-1a over every field of `files`.
pub fn files_digest(files: &[ArchivedFile]) -> u64 {
    let mut h = Fnv1a::new();
    let mut eat = |bytes: &[u8]| h.eat(bytes);
    for f in files {
        eat(&(f.path.len() as u64).to_le_bytes());
        eat(f.path.as_bytes());
        eat(&f.min_offset.to_le_bytes());
        eat(&f.max_offset.to_le_bytes());
        eat(&f.min_time_ms.to_le_bytes());
        eat(&f.max_time_ms.to_le_bytes());
        eat(&f.rows.to_le_bytes());
        eat(&f.bytes.to_le_bytes());
    }
    h.0
}

/// The file of `files` (consecutive, in offset order) holding `offset`.
pub fn file_holding(files: &[ArchivedFile], offset: u64) -> Option<&ArchivedFile> {
    let i = files
        .partition_point(|f| f.min_offset <= offset)
        .checked_sub(1)?;
    let f = &files[i];
    (offset < f.max_offset).then_some(f)
}

/// One queue's archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QueueArchive {
    /// Every offset below is archived, in exactly one file.
    pub archived_to: u64,
    /// The newest files, in offset order (after every run's).
    pub files: Vec<ArchivedFile>,
    /// The older files, as runs in offset order (oldest first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<CatalogueRun>,
}

impl QueueArchive {
    /// The file holding `offset`, if it is one of the files listed here.
    pub fn file_for(&self, offset: u64) -> Option<&ArchivedFile> {
        file_holding(&self.files, offset)
    }

    /// The run whose files hold `offset`.
    pub fn run_for(&self, offset: u64) -> Option<&CatalogueRun> {
        let i = self
            .runs
            .partition_point(|r| r.min_offset <= offset)
            .checked_sub(1)?;
        let r = &self.runs[i];
        r.holds(offset).then_some(r)
    }

    /// How many files it holds, listed and in runs.
    pub fn file_count(&self) -> u64 {
        self.files.len() as u64 + self.runs.iter().map(|r| u64::from(r.files)).sum::<u64>()
    }
}

/// A file of a deleted topic: still catalogued (so it is kept and listed) but no longer read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedFile {
    pub topic: String,
    pub queue: u32,
    pub file: ArchivedFile,
}

/// A run of a deleted topic's files: still catalogued, no longer read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedRun {
    pub topic: String,
    pub queue: u32,
    pub run: CatalogueRun,
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
    /// Runs of deleted topics' files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detached_runs: Vec<DetachedRun>,
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

    /// Whether `path` is listed in the state (attached or detached; files in runs are not).
    pub fn contains_path(&self, path: &str) -> bool {
        self.queues
            .values()
            .flat_map(|qs| qs.values())
            .flat_map(|q| q.files.iter())
            .chain(self.detached.iter().map(|d| &d.file))
            .any(|f| f.path == path)
    }

    /// Every path listed in the state (files in runs are not: see
    /// `manifest::catalogue::all_paths`).
    pub fn paths(&self) -> BTreeSet<String> {
        self.queues
            .values()
            .flat_map(|qs| qs.values())
            .flat_map(|q| q.files.iter())
            .chain(self.detached.iter().map(|d| &d.file))
            .map(|f| f.path.clone())
            .collect()
    }

    /// Every run, attached or detached, with its topic and queue.
    pub fn all_runs(&self) -> impl Iterator<Item = (&str, u32, &CatalogueRun)> {
        self.queues
            .iter()
            .flat_map(|(t, qs)| {
                qs.iter()
                    .flat_map(move |(q, qa)| qa.runs.iter().map(move |r| (t.as_str(), *q, r)))
            })
            .chain(
                self.detached_runs
                    .iter()
                    .map(|d| (d.topic.as_str(), d.queue, &d.run)),
            )
    }
}
