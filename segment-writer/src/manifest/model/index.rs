//! The state's summaries of index runs: a queue's old offset ranges live in index objects
//! (read and written by `manifest::index`), and the state keeps one [`IndexRun`] per run of
//! them; [`NewRun`] is what [`Command::FoldIndex`] installs.
//!
//! Plain data and pure functions over ranges: part of the stored format of deltas and
//! checkpoints.
//!
//! [`Command::FoldIndex`]: crate::manifest::Command::FoldIndex

use serde::{Deserialize, Serialize};

use super::range::OffsetRange;

/// The state's summary of one run of a queue's ranges held in an index object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRun {
    /// The object (relative name, `index/<ulid>.idx`).
    pub object: String,
    /// Where its section starts in the object, and its length in bytes.
    pub at: u64,
    pub len: u64,
    /// Its offsets: `base..end`.
    pub base: u64,
    pub end: u64,
    /// How many ranges it holds.
    pub ranges: u32,
    /// 0 for a fold, one more per merge.
    pub level: u8,
    /// Store times of its first and last range (what reset to a time and retention go by).
    pub first_stored_ms: i64,
    pub last_stored_ms: i64,
    /// The span of its publish times (lookup by message id and key scans by publish time).
    pub min_publish_ms: i64,
    pub max_publish_ms: i64,
    /// A digest of its ranges ([`digest`]): apply of a fold compares it with the inline ranges
    /// it replaces.
    pub digest: u64,
}

impl IndexRun {
    /// The summary of `ranges` (non-empty, contiguous) written at `at..at + len` of `object`.
    pub fn summarize(object: &str, at: u64, len: u64, level: u8, ranges: &[OffsetRange]) -> Self {
        let first = ranges.first();
        let last = ranges.last();
        IndexRun {
            object: object.to_string(),
            at,
            len,
            base: first.map_or(0, |r| r.base),
            end: last.map_or(0, |r| r.base + u64::from(r.count)),
            ranges: ranges.len() as u32,
            level,
            first_stored_ms: first.map_or(0, OffsetRange::stored_ms),
            last_stored_ms: ranges.iter().map(OffsetRange::stored_ms).max().unwrap_or(0),
            min_publish_ms: ranges.iter().map(|r| r.publish_time_ms).min().unwrap_or(0),
            max_publish_ms: ranges.iter().map(|r| r.publish_time_ms).max().unwrap_or(0),
            digest: digest(ranges),
        }
    }
}

/// A run to install: a fold of the queue's oldest inline ranges (`replaces` empty) or a merge
/// of the consecutive runs in objects `replaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRun {
    pub topic: String,
    pub queue: u32,
    pub run: IndexRun,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
}

/// 64-bit FNV-1a, fed bytes in pieces (the digests of index and catalogue runs).
pub(crate) struct Fnv1a(pub(crate) u64);

impl Fnv1a {
    pub(crate) fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn eat(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// 64-bit FNV-1a over the fields of `ranges` that a reader uses: equal digests mean the same
/// pointers (a fold's snapshot still matches the state).
pub fn digest(ranges: &[OffsetRange]) -> u64 {
    let mut f = Fnv1a::new();
    let mut eat = |bytes: &[u8]| f.eat(bytes);
    for r in ranges {
        eat(&r.base.to_le_bytes());
        eat(&r.count.to_le_bytes());
        eat(r.segment.as_bytes());
        eat(&r.first_ordinal.to_le_bytes());
        eat(&r.publish_time_ms.to_le_bytes());
        eat(&r.appended_ms.unwrap_or(i64::MIN).to_le_bytes());
        eat(r.origin_topic.as_deref().unwrap_or("").as_bytes());
        let (q, o) = r.origin.unwrap_or((u32::MAX, u64::MAX));
        eat(&q.to_le_bytes());
        eat(&o.to_le_bytes());
    }
    f.0
}

/// The range of just `offset`, cut from the contiguous `ranges` holding it.
pub fn single(ranges: &[OffsetRange], offset: u64) -> Option<OffsetRange> {
    let i = ranges
        .partition_point(|r| r.base <= offset)
        .checked_sub(1)?;
    let r = &ranges[i];
    if offset >= r.base + u64::from(r.count) {
        return None;
    }
    let k = offset - r.base;
    Some(OffsetRange {
        base: offset,
        count: 1,
        segment: r.segment.clone(),
        first_ordinal: r.first_ordinal + k as u32,
        publish_time_ms: r.publish_time_ms,
        origin_topic: r.origin_topic.clone(),
        origin: match &r.origin_topic {
            Some(_) => r.origin.map(|(q, o)| (q, o + k)),
            None => r.origin,
        },
        appended_ms: r.appended_ms,
    })
}
