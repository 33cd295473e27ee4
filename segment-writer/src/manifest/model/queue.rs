//! Topics and their queues: a queue's offsets, as summaries of index runs and then the newest
//! ranges inline, in offset order.
//!
//! Plain data with the queries a queue answers of itself: part of the stored format of
//! checkpoints. Offsets are assigned by apply (`manifest::state`), never here.

use serde::{Deserialize, Serialize};

use super::defs::TopicDef;
use super::index::IndexRun;
use super::range::OffsetRange;

/// The prefix of dead-letter topics.
pub const DLQ_PREFIX: &str = "DLQ.";

/// The dead-letter topic of a group.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_PREFIX}{group}")
}

/// One queue's offsets: summaries of runs of ranges held in index objects (`manifest::index`),
/// then the newest ranges inline. Together they hold offsets `first_held()..next_offset`
/// contiguously; below, offsets live only in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QueueLog {
    /// The next offset to assign.
    pub next_offset: u64,
    /// The first still readable.
    pub min_offset: u64,
    /// Runs folded into index objects, in offset order, followed by `ranges`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index: Vec<IndexRun>,
    pub ranges: Vec<OffsetRange>,
}

impl QueueLog {
    /// The first offset held by a run or an inline range (`next_offset` when none is).
    pub fn first_held(&self) -> u64 {
        self.index
            .first()
            .map(|r| r.base)
            .or(self.ranges.first().map(|r| r.base))
            .unwrap_or(self.next_offset)
    }

    /// The first offset held inline (below it, in index runs).
    pub fn first_inline(&self) -> u64 {
        self.ranges.first().map_or(self.next_offset, |r| r.base)
    }

    /// The inline range holding `offset` and the offset's ordinal in its segment (folded
    /// offsets: `manifest::index::IndexCache::locate`).
    pub fn locate(&self, offset: u64) -> Option<(&OffsetRange, u32)> {
        if offset < self.min_offset || offset >= self.next_offset {
            return None;
        }
        let i = self
            .ranges
            .partition_point(|r| r.base <= offset)
            .checked_sub(1)?;
        let r = &self.ranges[i];
        (offset < r.base + u64::from(r.count))
            .then(|| (r, r.first_ordinal + (offset - r.base) as u32))
    }

    /// The first offset stored at or after `time_ms` (range granularity: a publish batch, or
    /// the delayed messages due in one tick), or `next_offset`. Store times grow with offsets
    /// (a delayed message is stored when due), so this is a binary search.
    /// In folded runs the granularity is the run: a reset to a time carries the exact offset
    /// the gateway read from the run's object ([`Command::ResetOffsets`]`::resolved`).
    ///
    /// [`Command::ResetOffsets`]: crate::manifest::Command::ResetOffsets
    pub fn offset_at_time(&self, time_ms: i64) -> u64 {
        if let Some(r) = self.run_at_time(time_ms) {
            return r.base.max(self.min_offset);
        }
        let i = self.ranges.partition_point(|r| r.stored_ms() < time_ms);
        self.ranges
            .get(i)
            .map_or(self.next_offset, |r| r.base.max(self.min_offset))
    }

    /// The folded index run holding the first offset stored at or after `time_ms`, if that
    /// offset is folded.
    pub fn run_at_time(&self, time_ms: i64) -> Option<&IndexRun> {
        let i = self.index.partition_point(|r| r.last_stored_ms < time_ms);
        self.index.get(i)
    }

    pub(crate) fn append(&mut self, range: OffsetRange) -> u64 {
        let base = self.next_offset;
        self.next_offset += u64::from(range.count);
        self.ranges.push(OffsetRange { base, ..range });
        base
    }
}

/// A topic and its queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub def: TopicDef,
    pub queues: Vec<QueueLog>,
}
