//! The offset index out of the state: a queue's old offset ranges live in immutable, binary,
//! CRC-checked index objects in the bucket (`index/<ulid>.idx`), and the state keeps one
//! summary per run of them ([`IndexRun`]), as an LSM keeps SSTs (DESIGN.md, "What stays
//! bounded").
//!
//! - **Fold.** The sequencer's index keeper takes, for every queue whose inline ranges exceed
//!   [`IndexSettings::keep_inline`] by a chunk (or whose oldest foldable range is older than
//!   [`IndexSettings::fold_age_ms`]), the oldest ranges but the newest `keep_inline`, writes
//!   them as one section per queue into one object, and commits [`Command::FoldIndex`](crate::manifest::Command::FoldIndex). Apply
//!   re-checks each queue's prefix against the run (first offset, end, count and a digest of
//!   the ranges), so a range dropped or re-driven between the snapshot and the commit is never
//!   lost: that queue's run is refused and planned again.
//! - **Merge.** When a queue has [`IndexSettings::fan_in`] consecutive runs of one level, the
//!   keeper reads them, writes their ranges as one section of the next level and commits the
//!   run with the objects it replaces; apply checks they are still there. Runs stop growing at
//!   [`IndexSettings::max_run_ranges`], so a section is read whole in one GET. A queue holds at
//!   most `fan_in - 1` runs per level below the top, plus one per `max_run_ranges` ranges held:
//!   retention bounds the latter (see `docs/benchmarks.md` for measured sizes).
//! - **Leases of folded offsets.** Apply cannot read objects, and a dead-letter move needs the
//!   message's segment and ordinal. So an offset that is leased or waiting for a retry always
//!   knows its range: inline, or in its [`Lease::located`](crate::manifest::model::Lease::located): a
//!   receive of a folded offset carries the range it read ([`Command::Lease`](crate::manifest::Command::Lease)`::located`), and
//!   a fold attaches it to the leases and retries of the offsets it moves out.
//! - **Reads** ([`IndexCache`](crate::manifest::index::IndexCache)) find the run by binary search over the summaries and read its
//!   section (one ranged GET) through a byte-bounded cache.
//! - **Garbage.** Objects no summary names are deleted by the compactor after the segment
//!   grace ([`State::referenced_index_objects`]); retention drops whole runs.

use std::collections::BTreeSet;

use crate::manifest::model::{
    IndexRun, NewRun, OffsetRange, Outcome, QueueLog, Rejection, State, digest, single,
};

/// When ranges fold into index objects and runs merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSettings {
    /// Newest ranges of each queue kept inline (reads of recent data need no index object).
    /// Default 256.
    pub keep_inline: usize,
    /// A queue folds once it has this many ranges beyond `keep_inline`. Default 1,024.
    pub chunk: usize,
    /// ... or at least `min_chunk` of them whose newest is older than `fold_age_ms`, so slow
    /// queues do not keep `keep_inline + chunk` ranges inline for ever. Defaults 32 and 60 s.
    pub min_chunk: usize,
    pub fold_age_ms: i64,
    /// Consecutive runs of one level merged into one of the next. Default 8 (1,024-range folds
    /// become runs of 8,192, then 65,536).
    pub fan_in: usize,
    /// Runs are merged up to about this many ranges (at most 1.5 times it: a section of a few
    /// MB, read whole in one GET). Default 65,536.
    pub max_run_ranges: u32,
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            keep_inline: 256,
            chunk: 1_024,
            min_chunk: 32,
            fold_age_ms: 60_000,
            fan_in: 8,
            max_run_ranges: 65_536,
        }
    }
}

/// One queue's work for the keeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexWork {
    /// Fold these inline ranges (the queue's oldest).
    Fold {
        topic: String,
        queue: u32,
        ranges: Vec<OffsetRange>,
    },
    /// Merge these consecutive runs into one of `level`.
    Merge {
        topic: String,
        queue: u32,
        level: u8,
        runs: Vec<IndexRun>,
    },
}

impl State {
    /// What the index keeper should do now: folds (at most `max_ranges` ranges in all) and
    /// merges (at most `max_ranges` ranges read in all, but at least one merge when one is due).
    pub fn plan_index(&self, now: i64, s: &IndexSettings, max_ranges: usize) -> Vec<IndexWork> {
        let mut out = Vec::new();
        let mut budget = max_ranges;
        for (name, t) in &self.topics {
            for (qi, q) in t.queues.iter().enumerate() {
                if budget == 0 {
                    return out;
                }
                // A range naming a segment still inline stays in the state: packing it
                // rewrites the ranges that name it, which an index object could not follow.
                let foldable = q.ranges.len().saturating_sub(s.keep_inline);
                let foldable = q.ranges[..foldable]
                    .iter()
                    .position(|r| self.inline_segments.contains_key(&r.segment))
                    .unwrap_or(foldable);
                let old = foldable >= s.min_chunk.max(1)
                    && q.ranges
                        .get(foldable - 1)
                        .is_some_and(|r| r.stored_ms() + s.fold_age_ms <= now);
                if foldable >= s.chunk.max(1) || old {
                    let n = foldable.min(budget).min(s.max_run_ranges as usize);
                    budget -= n;
                    out.push(IndexWork::Fold {
                        topic: name.clone(),
                        queue: qi as u32,
                        ranges: q.ranges[..n].to_vec(),
                    });
                }
            }
        }
        let mut budget = max_ranges;
        let mut merges = 0;
        for (name, t) in &self.topics {
            for (qi, q) in t.queues.iter().enumerate() {
                if let Some((level, runs)) = mergeable(q, s) {
                    let n: usize = runs.iter().map(|r| r.ranges as usize).sum();
                    if n > budget && merges > 0 {
                        return out;
                    }
                    budget = budget.saturating_sub(n);
                    merges += 1;
                    out.push(IndexWork::Merge {
                        topic: name.clone(),
                        queue: qi as u32,
                        level,
                        runs,
                    });
                }
            }
        }
        out
    }

    /// Every index object a summary names.
    pub fn referenced_index_objects(&self) -> BTreeSet<String> {
        self.topics
            .values()
            .flat_map(|t| t.queues.iter())
            .flat_map(|q| q.index.iter())
            .map(|r| r.object.clone())
            // The archive's catalogue objects live beside index objects.
            .chain(self.archive.all_runs().map(|(_, _, r)| r.object.clone()))
            .collect()
    }

    /// Installs the runs of [`Command::FoldIndex`](crate::manifest::Command::FoldIndex); each is checked and applied on its own.
    pub(crate) fn apply_index(&mut self, runs: &[NewRun]) -> Result<Outcome, Rejection> {
        let mut applied = 0u32;
        for n in runs {
            if self.install_run(n).is_ok() {
                applied += 1;
            }
        }
        Ok(Outcome::Indexed { runs: applied })
    }

    fn install_run(&mut self, n: &NewRun) -> Result<(), Rejection> {
        let q = self
            .topics
            .get_mut(&n.topic)
            .and_then(|t| t.queues.get_mut(n.queue as usize))
            .ok_or_else(|| Rejection::TopicNotFound(n.topic.clone()))?;
        let stale = || Rejection::Conflict("the index changed since the plan".into());
        if n.run.ranges == 0 || n.run.end <= n.run.base {
            return Err(Rejection::Invalid("an empty index run".into()));
        }
        if n.replaces.is_empty() {
            // A fold: the run must be exactly the queue's oldest inline ranges, and follow the
            // last run.
            let k = n.run.ranges as usize;
            if k > q.ranges.len()
                || q.ranges[0].base != n.run.base
                || q.index.last().is_some_and(|r| r.end != n.run.base)
            {
                return Err(stale());
            }
            let last = &q.ranges[k - 1];
            if last.base + u64::from(last.count) != n.run.end
                || digest(&q.ranges[..k]) != n.run.digest
            {
                return Err(stale());
            }
            let folded: Vec<OffsetRange> = q.ranges.drain(..k).collect();
            q.index.push(n.run.clone());
            self.locate_pending(&n.topic, n.queue, &folded);
            Ok(())
        } else {
            // A merge: the replaced runs must still be consecutive, in order, spanning the run.
            let i = q
                .index
                .iter()
                .position(|r| r.object == n.replaces[0] && r.base == n.run.base)
                .ok_or_else(stale)?;
            let j = i + n.replaces.len();
            if j > q.index.len() {
                return Err(stale());
            }
            let old = &q.index[i..j];
            let same = old.iter().zip(&n.replaces).all(|(r, o)| &r.object == o)
                && old.windows(2).all(|w| w[0].end == w[1].base)
                && old.last().is_some_and(|r| r.end == n.run.end)
                && old.iter().map(|r| r.ranges).sum::<u32>() == n.run.ranges;
            if !same {
                return Err(stale());
            }
            q.index.splice(i..j, [n.run.clone()]);
            Ok(())
        }
    }

    /// Gives every lease and retry of an offset in `folded` (ranges leaving the state) its
    /// range, so a dead-letter move still finds the message's bytes.
    fn locate_pending(&mut self, topic: &str, queue: u32, folded: &[OffsetRange]) {
        let (Some(first), Some(last)) = (folded.first(), folded.last()) else {
            return;
        };
        let span = first.base..last.base + u64::from(last.count);
        for g in self.groups.values_mut() {
            for per_topic in g.cursors.values_mut() {
                let Some(c) = per_topic
                    .get_mut(topic)
                    .and_then(|v| v.get_mut(queue as usize))
                else {
                    continue;
                };
                for (&offset, lease) in c.leases.range_mut(span.clone()) {
                    if lease.located.is_none() {
                        lease.located = single(folded, offset).map(Box::new);
                    }
                }
                for (&offset, retry) in c.retries.range_mut(span.clone()) {
                    if retry.located.is_none() {
                        retry.located = single(folded, offset).map(Box::new);
                    }
                }
            }
        }
    }
}

/// The oldest `fan_in` consecutive runs of one level that may merge, and the level they make.
fn mergeable(q: &QueueLog, s: &IndexSettings) -> Option<(u8, Vec<IndexRun>)> {
    let fan_in = s.fan_in.max(2);
    let mut i = 0;
    while i < q.index.len() {
        let level = q.index[i].level;
        let mut j = i;
        while j < q.index.len() && q.index[j].level == level {
            j += 1;
        }
        if j - i >= fan_in {
            let runs = &q.index[i..i + fan_in];
            let total: u64 = runs.iter().map(|r| u64::from(r.ranges)).sum();
            // Folds are a little over a chunk each: half a run of slack lets eight of the
            // level below still make one.
            if total <= u64::from(s.max_run_ranges) * 3 / 2 {
                return Some((level.saturating_add(1), runs.to_vec()));
            }
        }
        i = j;
    }
    None
}
