//! The archive catalogue and retention in the manifest: which Parquet files hold which offsets,
//! how far each queue is archived, which offset ranges were dropped after retention, and the
//! compactor lease (one active compactor cluster-wide).
//!
//! Invariants, all enforced at apply (so every replica agrees and a retried or raced command
//! cannot break them):
//! - **Never archived twice.** [`Command::ArchiveFile`] is accepted only if its `min_offset`
//!   equals the queue's `archived_to` and its rows are exactly its offsets; it moves
//!   `archived_to` to its `max_offset`. A second compactor, or a retry of a commit whose
//!   response was lost, is refused, and its file stays an orphan for the collector.
//! - **Never drop what is needed.** [`Command::DropRanges`] drops a prefix of a queue's offset
//!   ranges, only ranges that are wholly archived, past the topic's retention (by delta time)
//!   and below every cursor's committed offset on that queue.
//! - A segment may be deleted only if no state pointer names it: [`State::referenced_segments`].
//! - **Catalogue runs replace exactly what they list.** [`Command::FoldCatalogue`] folds a
//!   queue's oldest listed files only if the run's count, span and digest match them, and a
//!   merge replaces only consecutive runs of the same span, files and rows; anything else is a
//!   stale plan, refused. Archive retention expires runs oldest first, before any listed file.

use std::collections::BTreeSet;

use crate::manifest::command::Command;
use crate::manifest::model::{
    ArchivedFile, CatalogueRun, CompactorLease, DetachedFile, DetachedRun, Outcome, QueueArchive,
    Rejection, State, files_digest,
};

/// Milliseconds in an hour.
const HOUR_MS: i64 = 3_600_000;

impl State {
    /// Segments that some state pointer still names. Garbage collection deletes only segments
    /// outside this set (and older than a grace: a segment is written before its commit).
    /// Segments of ranges folded into index objects are not here: see
    /// `manifest::index::indexed_segments`.
    pub fn referenced_segments(&self) -> BTreeSet<String> {
        let cursors = self
            .groups
            .values()
            .flat_map(|g| g.cursors.values())
            .flat_map(|per_topic| per_topic.values())
            .flatten();
        let located = cursors.flat_map(|c| {
            c.leases
                .values()
                .filter_map(|l| l.located.as_deref())
                .chain(c.retries.values().filter_map(|r| r.located.as_deref()))
        });
        self.topics
            .values()
            .flat_map(|t| t.queues.iter())
            .flat_map(|q| q.ranges.iter())
            .chain(located)
            .map(|r| r.segment.clone())
            // Delayed messages not yet due and half messages point into segments too.
            .chain(self.timers.values().map(|p| p.segment.clone()))
            .chain(self.halves.values().map(|h| h.message.segment.clone()))
            .chain(
                self.spilled_timers
                    .values()
                    .flat_map(|t| t.segments.iter().cloned()),
            )
            .collect()
    }

    /// The lowest committed offset of any cursor on `topic`/`queue` (`None`: no cursor).
    pub fn min_committed(&self, topic: &str, queue: u32) -> Option<u64> {
        self.groups
            .values()
            .flat_map(|g| g.cursors.values())
            .filter_map(|per_topic| per_topic.get(topic))
            .filter_map(|cursors| cursors.get(queue as usize))
            // A re-driven dead letter may wait (as a retry or lease) below `committed`.
            .map(|c| {
                let pending = c.leases.keys().chain(c.retries.keys()).min().copied();
                pending.map_or(c.committed, |p| p.min(c.committed))
            })
            .min()
    }

    /// How far the ranges of `topic`/`queue` may be dropped at delta time `now`: the end of
    /// the longest prefix of index runs and then ranges that are wholly archived, past
    /// retention and below every cursor. Equal to the first held offset when nothing may be
    /// dropped.
    pub fn droppable_to(&self, topic: &str, queue: u32, now: i64) -> u64 {
        let Some(t) = self.topics.get(topic) else {
            return 0;
        };
        let Some(q) = t.queues.get(queue as usize) else {
            return 0;
        };
        let limit = self
            .archive
            .archived_to(topic, queue)
            .min(self.min_committed(topic, queue).unwrap_or(u64::MAX));
        let retention_ms = i64::from(t.def.retention_hours) * HOUR_MS;
        let mut to = q.first_held();
        for r in &q.index {
            if r.end > limit || r.last_stored_ms.saturating_add(retention_ms) > now {
                return to;
            }
            to = r.end;
        }
        for r in &q.ranges {
            let end = r.base + u64::from(r.count);
            if end > limit || r.stored_ms().saturating_add(retention_ms) > now {
                break;
            }
            to = end;
        }
        to
    }

    /// Applies an archive command (called from [`State::apply`]).
    pub(crate) fn apply_archive(
        &mut self,
        command: &Command,
        now: i64,
    ) -> Result<Outcome, Rejection> {
        match command {
            Command::ArchiveFile {
                topic,
                queue,
                path,
                min_offset,
                max_offset,
                min_time_ms,
                max_time_ms,
                rows,
                bytes,
            } => {
                let t = self
                    .topics
                    .get(topic)
                    .ok_or_else(|| Rejection::TopicNotFound(topic.clone()))?;
                let q = t.queues.get(*queue as usize).ok_or_else(|| {
                    Rejection::Invalid(format!("topic {topic} has no queue {queue}"))
                })?;
                if max_offset <= min_offset || *rows != max_offset - min_offset {
                    return Err(Rejection::Invalid(format!(
                        "archive file {path}: {rows} rows for offsets {min_offset}..{max_offset}"
                    )));
                }
                if *max_offset > q.next_offset {
                    return Err(Rejection::Invalid(format!(
                        "archive file {path} reaches offset {max_offset}, past {}",
                        q.next_offset
                    )));
                }
                if self.archive.contains_path(path) {
                    return Err(Rejection::Conflict(format!(
                        "archive file {path} is already catalogued"
                    )));
                }
                let qa = self
                    .archive
                    .queues
                    .entry(topic.clone())
                    .or_default()
                    .entry(*queue)
                    .or_default();
                if *min_offset != qa.archived_to {
                    return Err(Rejection::Conflict(format!(
                        "{topic}/{queue} is archived to {}, not {min_offset}",
                        qa.archived_to
                    )));
                }
                qa.archived_to = *max_offset;
                qa.files.push(ArchivedFile {
                    path: path.clone(),
                    min_offset: *min_offset,
                    max_offset: *max_offset,
                    min_time_ms: *min_time_ms,
                    max_time_ms: *max_time_ms,
                    rows: *rows,
                    bytes: *bytes,
                });
                Ok(Outcome::Done)
            }
            Command::DropRanges {
                topic,
                queue,
                below,
            } => {
                let to = self.droppable_to(topic, *queue, now).min(*below);
                let q = self
                    .topics
                    .get_mut(topic)
                    .ok_or_else(|| Rejection::TopicNotFound(topic.clone()))?
                    .queues
                    .get_mut(*queue as usize)
                    .ok_or_else(|| {
                        Rejection::Invalid(format!("topic {topic} has no queue {queue}"))
                    })?;
                let n = q.index.partition_point(|r| r.end <= to);
                q.index.drain(..n);
                let n = q
                    .ranges
                    .partition_point(|r| r.base + u64::from(r.count) <= to);
                q.ranges.drain(..n);
                Ok(Outcome::Done)
            }
            Command::CompactorLease { holder, ttl_ms } => {
                if *ttl_ms <= 0 {
                    return Err(Rejection::Invalid("lease ttl must be positive".into()));
                }
                match &self.archive.lease {
                    Some(l) if l.holder != *holder && l.until_ms > now => {
                        Err(Rejection::Conflict(format!(
                            "compactor {} holds the lease until {}",
                            l.holder, l.until_ms
                        )))
                    }
                    _ => {
                        self.archive.lease = Some(CompactorLease {
                            holder: holder.clone(),
                            until_ms: now + ttl_ms,
                        });
                        Ok(Outcome::Done)
                    }
                }
            }
            Command::ReleaseCompactorLease { holder } => {
                if self
                    .archive
                    .lease
                    .as_ref()
                    .is_some_and(|l| l.holder == *holder)
                {
                    self.archive.lease = None;
                }
                Ok(Outcome::Done)
            }
            Command::ExpireArchive { topic, queue, path } => {
                let qa = queue_archive(&mut self.archive, topic, *queue)?;
                match qa.files.first() {
                    // Runs hold older files: those expire first, as runs.
                    Some(f) if f.path == *path && qa.runs.is_empty() => {}
                    _ => {
                        return Err(Rejection::Conflict(format!(
                            "{path} is not the oldest archive file of {topic}/{queue}"
                        )));
                    }
                }
                let f = qa.files.remove(0);
                self.forget_below(topic, *queue, f.max_offset);
                Ok(Outcome::Done)
            }
            Command::FoldCatalogue {
                topic,
                queue,
                run,
                replaces,
            } => {
                install_catalogue_run(
                    queue_archive(&mut self.archive, topic, *queue)?,
                    run,
                    replaces,
                )?;
                Ok(Outcome::Done)
            }
            Command::ExpireCatalogueRun {
                topic,
                queue,
                object,
                rest,
            } => {
                let qa = queue_archive(&mut self.archive, topic, *queue)?;
                let expired_to = match (qa.runs.first(), rest) {
                    (Some(r), None) if r.object == *object => r.max_offset,
                    (Some(r), Some(rest))
                        if r.object == *object
                            && rest.max_offset == r.max_offset
                            && rest.min_offset > r.min_offset
                            && rest.files > 0
                            && rest.files < r.files
                            && rest.rows == r.max_offset - rest.min_offset =>
                    {
                        rest.min_offset
                    }
                    _ => {
                        return Err(Rejection::Conflict(format!(
                            "{object} is not the oldest catalogue run of {topic}/{queue}, \
                             or what is left of it does not end it"
                        )));
                    }
                };
                match rest {
                    Some(rest) => qa.runs[0] = rest.clone(),
                    None => {
                        qa.runs.remove(0);
                    }
                }
                self.forget_below(topic, *queue, expired_to);
                Ok(Outcome::Done)
            }
            _ => Err(Rejection::Invalid("not an archive command".into())),
        }
    }

    /// Archive retention forgot the queue's files below `expired_to`: offsets below it that no
    /// segment holds either are gone for good.
    fn forget_below(&mut self, topic: &str, queue: u32, expired_to: u64) {
        if let Some(q) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.queues.get_mut(queue as usize))
        {
            q.min_offset = q.min_offset.max(expired_to.min(q.first_held()));
        }
    }

    /// A deleted topic's files stay catalogued (kept, listed) but detached from any queue, so a
    /// topic created again under the name archives from offset 0.
    pub(crate) fn detach_archive(&mut self, topic: &str) {
        if let Some(qs) = self.archive.queues.remove(topic) {
            for (queue, qa) in qs {
                for run in qa.runs {
                    self.archive.detached_runs.push(DetachedRun {
                        topic: topic.to_string(),
                        queue,
                        run,
                    });
                }
                for file in qa.files {
                    self.archive.detached.push(DetachedFile {
                        topic: topic.to_string(),
                        queue,
                        file,
                    });
                }
            }
        }
    }
}

/// The archive of `topic`/`queue`, which an archive command needs to exist.
fn queue_archive<'a>(
    archive: &'a mut crate::manifest::model::Archive,
    topic: &str,
    queue: u32,
) -> Result<&'a mut QueueArchive, Rejection> {
    archive
        .queues
        .get_mut(topic)
        .and_then(|qs| qs.get_mut(&queue))
        .ok_or_else(|| Rejection::Invalid(format!("{topic}/{queue} has no archive")))
}

/// Installs `run` in `qa`: a fold of its oldest listed files (`replaces` empty) or a merge
/// of its consecutive runs named by `replaces`. Checked against the state first, so a stale
/// or repeated command changes nothing.
fn install_catalogue_run(
    qa: &mut QueueArchive,
    run: &CatalogueRun,
    replaces: &[String],
) -> Result<(), Rejection> {
    let stale = |why: &str| {
        Rejection::Conflict(format!(
            "catalogue run {} no longer matches: {why}",
            run.object
        ))
    };
    if run.files == 0 || run.max_offset <= run.min_offset {
        return Err(Rejection::Invalid(format!(
            "catalogue run {} is empty",
            run.object
        )));
    }
    if replaces.is_empty() {
        let n = run.files as usize;
        let Some(folded) = qa.files.get(..n) else {
            return Err(stale("fewer files are listed"));
        };
        if files_digest(folded) != run.digest
            || folded[0].min_offset != run.min_offset
            || folded[n - 1].max_offset != run.max_offset
        {
            return Err(stale("the oldest listed files differ"));
        }
        if qa
            .runs
            .last()
            .is_some_and(|r| r.max_offset != run.min_offset)
        {
            return Err(stale("it does not follow the newest run"));
        }
        qa.files.drain(..n);
        qa.runs.push(run.clone());
        return Ok(());
    }
    let Some(i) = qa.runs.iter().position(|r| r.object == replaces[0]) else {
        return Err(stale("a run it replaces is gone"));
    };
    let merged = qa
        .runs
        .get(i..i + replaces.len())
        .filter(|rs| rs.iter().zip(replaces).all(|(r, o)| r.object == *o))
        .ok_or_else(|| stale("the runs it replaces are not consecutive"))?;
    let files: u32 = merged.iter().map(|r| r.files).sum();
    let rows: u64 = merged.iter().map(|r| r.rows).sum();
    if merged[0].min_offset != run.min_offset
        || merged[merged.len() - 1].max_offset != run.max_offset
        || files != run.files
        || rows != run.rows
    {
        return Err(stale("its span differs from the runs it replaces"));
    }
    qa.runs.splice(i..i + replaces.len(), [run.clone()]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::command::*;
    use crate::manifest::model::*;
    use crate::manifest::sim::Sim;

    fn topic() -> Command {
        Command::CreateTopic {
            topic: "t".into(),
            def: TopicDef {
                kind: TopicKind::Normal,
                queues: 1,
                retention_hours: 1,
            },
        }
    }

    fn append(segment: &str, count: u32, time: i64) -> Command {
        Command::Append {
            topic: "t".into(),
            queue: 0,
            segment: segment.into(),
            first_ordinal: 0,
            count,
            publish_time_ms: time,
        }
    }

    fn file(path: &str, min: u64, max: u64) -> Command {
        Command::ArchiveFile {
            topic: "t".into(),
            queue: 0,
            path: path.into(),
            min_offset: min,
            max_offset: max,
            min_time_ms: 0,
            max_time_ms: 0,
            rows: max - min,
            bytes: 10,
        }
    }

    fn drop_all() -> Command {
        Command::DropRanges {
            topic: "t".into(),
            queue: 0,
            below: u64::MAX,
        }
    }

    fn rejected(o: &Outcome) -> bool {
        matches!(o, Outcome::Rejected { .. })
    }

    #[test]
    fn a_file_is_catalogued_only_at_the_archived_to_offset() {
        let mut s = Sim::new();
        s.one(topic());
        s.one(append("a", 10, 0));
        assert_eq!(s.one(file("f1", 0, 4)), Outcome::Done);
        assert!(rejected(&s.one(file("f2", 0, 4))), "archived twice");
        assert!(rejected(&s.one(file("f1", 4, 6))), "same path twice");
        assert!(rejected(&s.one(file("f3", 5, 6))), "gap");
        assert!(rejected(&s.one(file("f4", 4, 11))), "past next_offset");
        assert_eq!(s.one(file("f5", 4, 10)), Outcome::Done);
        let qa = s.state.archive.queue("t", 0).expect("archived");
        assert_eq!(qa.archived_to, 10);
        assert_eq!(qa.file_for(3).map(|f| f.path.as_str()), Some("f1"));
        assert_eq!(qa.file_for(4).map(|f| f.path.as_str()), Some("f5"));
        assert_eq!(qa.file_for(10), None);
    }

    #[test]
    fn ranges_drop_only_when_archived_past_retention_and_consumed() {
        let mut s = Sim::new();
        s.one(topic());
        s.one(append("a", 5, 0));
        s.one(append("b", 5, 0));
        s.one(append("c", 5, 2 * HOUR_MS));
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: GroupDef {
                subscriptions: vec![Subscription {
                    topic: "t".into(),
                    filter: None,
                    sql: None,
                }],
                mode: GroupMode::Clustering,
                start_from: StartFrom::Earliest,
                max_retries: 1,
                invisible_ms: 1000,
                retry_backoff_ms: vec![1],
                push: None,
            },
            resolved: Default::default(),
        });
        s.one(file("f", 0, 15));
        // Before retention: nothing drops.
        s.one(drop_all());
        assert_eq!(s.state.topics["t"].queues[0].ranges.len(), 3);
        // Past retention, but the group has consumed nothing.
        s.now = 3 * HOUR_MS + 1;
        s.one(drop_all());
        assert_eq!(s.state.referenced_segments().len(), 3);
        // The group consumes 7: only the first range (0..5) is wholly below.
        s.state
            .groups
            .get_mut("g")
            .and_then(|g| g.cursors.get_mut(""))
            .and_then(|c| c.get_mut("t"))
            .expect("the group's cursor")[0]
            .committed = 7;
        s.one(drop_all());
        let q = &s.state.topics["t"].queues[0];
        assert_eq!(q.ranges.first().map(|r| r.base), Some(5));
        assert_eq!(q.min_offset, 0, "archived offsets stay readable");
        assert_eq!(
            s.state.referenced_segments(),
            ["b", "c"].iter().map(|x| x.to_string()).collect()
        );
    }

    #[test]
    fn unarchived_ranges_never_drop() {
        let mut s = Sim::new();
        s.one(topic());
        s.one(append("a", 5, 0));
        s.one(append("b", 5, 0));
        s.one(file("f", 0, 7));
        s.now = 10 * HOUR_MS;
        s.one(drop_all());
        assert_eq!(s.state.referenced_segments().len(), 1);
        assert_eq!(s.state.droppable_to("t", 0, s.now), 5);
    }

    #[test]
    fn the_compactor_lease_has_one_holder_until_it_expires() {
        let mut s = Sim::new();
        let lease = |h: &str| Command::CompactorLease {
            holder: h.into(),
            ttl_ms: 100,
        };
        assert_eq!(s.one(lease("a")), Outcome::Done);
        assert!(rejected(&s.one(lease("b"))));
        assert_eq!(s.one(lease("a")), Outcome::Done, "renewal");
        s.now += 101;
        assert_eq!(s.one(lease("b")), Outcome::Done, "expired");
        s.one(Command::ReleaseCompactorLease { holder: "a".into() });
        assert_eq!(
            s.state.archive.lease.as_ref().map(|l| l.holder.as_str()),
            Some("b")
        );
        s.one(Command::ReleaseCompactorLease { holder: "b".into() });
        assert_eq!(s.one(lease("a")), Outcome::Done);
    }

    #[test]
    fn a_deleted_topic_keeps_its_files_detached_and_restarts_at_zero() {
        let mut s = Sim::new();
        s.one(topic());
        s.one(append("a", 5, 0));
        s.one(file("f", 0, 5));
        s.one(Command::DeleteTopic { topic: "t".into() });
        assert!(s.state.archive.contains_path("f"));
        s.one(topic());
        s.one(append("b", 2, 0));
        assert_eq!(s.one(file("g", 0, 2)), Outcome::Done);
    }

    #[test]
    fn expiring_the_oldest_file_raises_min_offset_only_past_dropped_ranges() {
        let mut s = Sim::new();
        s.one(topic());
        s.one(append("a", 5, 0));
        s.one(append("b", 5, 0));
        s.one(file("f", 0, 5));
        s.one(file("g", 5, 10));
        let expire = |p: &str| Command::ExpireArchive {
            topic: "t".into(),
            queue: 0,
            path: p.into(),
        };
        assert!(rejected(&s.one(expire("g"))), "not the oldest");
        assert_eq!(s.one(expire("f")), Outcome::Done);
        // Segments still hold 0..5, so they stay readable.
        assert_eq!(s.state.topics["t"].queues[0].min_offset, 0);
    }

    /// The summary and command folding `files` (the queue's oldest listed) into `object`.
    fn fold_of(object: &str, files: &[ArchivedFile]) -> Command {
        Command::FoldCatalogue {
            topic: "t".into(),
            queue: 0,
            run: CatalogueRun::summarize(object, 0, files),
            replaces: Vec::new(),
        }
    }

    fn listed(s: &Sim) -> Vec<ArchivedFile> {
        s.state
            .archive
            .queue("t", 0)
            .expect("archived")
            .files
            .clone()
    }

    #[test]
    fn a_fold_replaces_exactly_the_oldest_listed_files() {
        let mut s = Sim::new();
        s.one(topic());
        s.one(append("a", 10, 0));
        for i in 0..5 {
            s.one(file(&format!("f{i}"), i * 2, i * 2 + 2));
        }
        let files = listed(&s);
        let before = s.state.archive.clone();
        // Stale or wrong folds change nothing.
        assert!(
            rejected(&s.one(fold_of("index/x.cat", &files[1..3]))),
            "not the oldest"
        );
        let mut other = files[..2].to_vec();
        other[1].rows += 1;
        assert!(
            rejected(&s.one(fold_of("index/x.cat", &other))),
            "digest differs"
        );
        assert!(rejected(&s.one(fold_of("index/x.cat", &[]))), "empty");
        assert_eq!(s.state.archive, before);

        assert_eq!(s.one(fold_of("index/a.cat", &files[..2])), Outcome::Done);
        assert!(
            rejected(&s.one(fold_of("index/a.cat", &files[..2]))),
            "repeated"
        );
        assert_eq!(s.one(fold_of("index/b.cat", &files[2..4])), Outcome::Done);
        let qa = s.state.archive.queue("t", 0).expect("archived");
        assert_eq!(qa.files, files[4..].to_vec());
        assert_eq!(qa.runs.len(), 2);
        assert_eq!(
            qa.run_for(3).map(|r| r.object.as_str()),
            Some("index/a.cat")
        );
        assert_eq!(
            qa.run_for(7).map(|r| r.object.as_str()),
            Some("index/b.cat")
        );
        assert_eq!(qa.run_for(8), None, "listed, not in a run");
        assert_eq!(qa.file_count(), 5);
        assert!(
            s.state.referenced_index_objects().contains("index/b.cat"),
            "index collection keeps catalogue objects"
        );

        // A merge replaces consecutive runs with the same span, files and rows.
        let merged = CatalogueRun::summarize("index/m.cat", 1, &files[..4]);
        let merge = |replaces: &[&str], run: &CatalogueRun| Command::FoldCatalogue {
            topic: "t".into(),
            queue: 0,
            run: run.clone(),
            replaces: replaces.iter().map(|r| r.to_string()).collect(),
        };
        let before = s.state.archive.clone();
        assert!(rejected(
            &s.one(merge(&["index/b.cat", "index/a.cat"], &merged))
        ));
        assert!(
            rejected(&s.one(merge(&["index/a.cat"], &merged))),
            "span differs"
        );
        assert!(rejected(
            &s.one(merge(&["index/a.cat", "index/zz.cat"], &merged))
        ));
        assert_eq!(s.state.archive, before);
        assert_eq!(
            s.one(merge(&["index/a.cat", "index/b.cat"], &merged)),
            Outcome::Done
        );
        let qa = s.state.archive.queue("t", 0).expect("archived");
        assert_eq!(qa.runs, vec![merged]);
        assert_eq!(qa.file_count(), 5);
    }

    #[test]
    fn archive_retention_expires_runs_before_listed_files() {
        let mut s = Sim::new();
        s.one(topic());
        s.one(append("a", 10, 0));
        for i in 0..5 {
            s.one(file(&format!("f{i}"), i * 2, i * 2 + 2));
        }
        s.now = 10 * HOUR_MS;
        s.one(drop_all());
        let files = listed(&s);
        s.one(fold_of("index/a.cat", &files[..2]));
        let expire_run = |o: &str| Command::ExpireCatalogueRun {
            topic: "t".into(),
            queue: 0,
            object: o.into(),
            rest: None,
        };
        let expire_file = |p: &str| Command::ExpireArchive {
            topic: "t".into(),
            queue: 0,
            path: p.into(),
        };
        assert!(rejected(&s.one(expire_file("f2"))), "a run is older");
        assert!(rejected(&s.one(expire_run("index/zz.cat"))));
        // Part of a run: what is left must end it and list fewer files.
        let trim = |rest: &[ArchivedFile]| Command::ExpireCatalogueRun {
            topic: "t".into(),
            queue: 0,
            object: "index/a.cat".into(),
            rest: Some(CatalogueRun::summarize("index/r.cat", 0, rest)),
        };
        let before = s.state.archive.clone();
        assert!(rejected(&s.one(trim(&files[..1]))), "does not end the run");
        assert!(rejected(&s.one(trim(&files[..2]))), "all of it");
        assert!(rejected(&s.one(trim(&files[1..3]))), "past the run");
        assert_eq!(s.state.archive, before);
        assert_eq!(s.one(trim(&files[1..2])), Outcome::Done);
        let qa = s.state.archive.queue("t", 0).expect("archived");
        assert_eq!(qa.runs[0].object, "index/r.cat");
        assert_eq!(qa.run_for(1), None);
        assert_eq!(s.state.topics["t"].queues[0].min_offset, 2);
        assert_eq!(s.one(expire_run("index/r.cat")), Outcome::Done);
        let qa = s.state.archive.queue("t", 0).expect("archived");
        assert!(qa.runs.is_empty());
        assert_eq!(qa.files.len(), 3);
        assert_eq!(s.one(expire_file("f2")), Outcome::Done);
    }

    #[test]
    fn a_deleted_topic_keeps_its_runs_detached() {
        let mut s = Sim::new();
        s.one(topic());
        s.one(append("a", 10, 0));
        for i in 0..3 {
            s.one(file(&format!("f{i}"), i * 2, i * 2 + 2));
        }
        let files = listed(&s);
        s.one(fold_of("index/a.cat", &files[..2]));
        s.one(Command::DeleteTopic { topic: "t".into() });
        assert_eq!(s.state.archive.detached.len(), 1);
        assert_eq!(s.state.archive.detached_runs.len(), 1);
        assert_eq!(
            s.state
                .archive
                .all_runs()
                .map(|(t, q, r)| (t, q, r.object.as_str()))
                .collect::<Vec<_>>(),
            vec![("t", 0, "index/a.cat")]
        );
        assert!(s.state.referenced_index_objects().contains("index/a.cat"));
    }

    /// Ten years of a queue archived every 5 minutes, through apply and the compactor's plan:
    /// the catalogue the state holds stays a few dozen entries.
    #[test]
    fn years_of_files_keep_the_catalogue_small() {
        use crate::manifest::catalogue::{CatalogueSettings, plan};
        let settings = CatalogueSettings::default();
        let mut s = Sim::new();
        s.one(topic());
        let passes: u64 = 10 * 365 * 24 * 12;
        let mut peak_entries = 0;
        let mut peak_bytes = 0;
        s.one(append("a", passes as u32, 0));
        for i in 0..passes {
            let f = file(
                &format!("archive/topic=t/date=x/hour=00/{i:026}.parquet"),
                i,
                i + 1,
            );
            assert_eq!(s.one(f), Outcome::Done);
            let work = plan(&s.state, &settings);
            if work.is_empty() {
                continue;
            }
            // What `catalogue::build` would commit: a merge's summary from the runs it
            // replaces (apply checks spans and counts; the digest only of folds).
            let mut written: Vec<CatalogueRun> = Vec::new();
            for (k, w) in work.into_iter().enumerate() {
                let object = format!("index/{i}-{k}.cat");
                let (run, replaces) = if w.replaces.is_empty() {
                    (CatalogueRun::summarize(&object, 0, &w.files), Vec::new())
                } else {
                    let fresh = w.replaces.iter().filter(|r| r.object.is_empty()).count();
                    let mut taken = written.drain(written.len() - fresh..);
                    let runs: Vec<CatalogueRun> = w
                        .replaces
                        .iter()
                        .map(|r| {
                            if r.object.is_empty() {
                                taken.next().expect("a placeholder per run written")
                            } else {
                                r.clone()
                            }
                        })
                        .collect();
                    drop(taken);
                    let run = CatalogueRun {
                        object: object.clone(),
                        min_offset: runs[0].min_offset,
                        max_offset: runs[runs.len() - 1].max_offset,
                        min_time_ms: 0,
                        max_time_ms: 0,
                        files: runs.iter().map(|r| r.files).sum(),
                        rows: runs.iter().map(|r| r.rows).sum(),
                        bytes: runs.iter().map(|r| r.bytes).sum(),
                        level: w.level,
                        digest: 0,
                    };
                    (run, runs.into_iter().map(|r| r.object).collect())
                };
                let cmd = Command::FoldCatalogue {
                    topic: "t".into(),
                    queue: 0,
                    run: run.clone(),
                    replaces,
                };
                assert_eq!(s.one(cmd), Outcome::Done);
                written.push(run);
            }
            let qa = s.state.archive.queue("t", 0).expect("archived");
            assert_eq!(qa.file_count(), i + 1);
            peak_entries = peak_entries.max(qa.files.len() + qa.runs.len());
            if i % 100_000 == 0 || i + 1 == passes {
                peak_bytes = peak_bytes.max(serde_json::to_vec(&s.state.archive).unwrap().len());
            }
        }
        let qa = s.state.archive.queue("t", 0).expect("archived");
        println!(
            "{passes} files: {} listed, {} runs (levels {:?}), peak {peak_entries} entries, \
             catalogue at most {peak_bytes} bytes of JSON",
            qa.files.len(),
            qa.runs.len(),
            qa.runs.iter().map(|r| r.level).collect::<Vec<_>>()
        );
        assert!(qa.files.len() < 128, "{} listed", qa.files.len());
        assert!(qa.runs.len() <= 7 * 5, "{} runs", qa.runs.len());
        assert!(peak_entries < 128 + 35, "{peak_entries} entries");
        assert!(peak_bytes < 64 * 1024, "{peak_bytes} bytes");
    }
}
