//! One compaction pass: archive everything committed before the pass began, then apply
//! retention and collect garbage.
//!
//! 1. Take the compactor lease (a manifest command; one active compactor cluster-wide). The
//!    version that grants it is the pass's cut: per queue, offsets `archived_to..next_offset`
//!    as of that version are archived, nothing later.
//! 2. Per queue, in offset order, write files (split at each UTC hour of publish time and at
//!    `max_file_rows`), each **first written, then catalogued** with
//!    [`Command::ArchiveFile`]. The manifest refuses an entry that does not start at the
//!    queue's archived-to offset, so a retried or raced commit never archives twice; a refused
//!    file is deleted at once. Up to `open_files` queues are archived together, round by
//!    round, so that the segments they share are fetched (ahead, several GETs at once) and
//!    cached once, messages go from the segment's bytes straight into Arrow columns
//!    ([`CheckedSegment::decode`]: only the blocks holding the queue's messages are read,
//!    their checksums checked once per segment), and
//!    each open file's encoder runs on its own task, on any core.
//! 3. A queue's oldest listed files fold into catalogue objects, whose runs merge by levels
//!    ([`segment_writer::manifest::catalogue`]), so the manifest's catalogue stays small.
//!    Retention ([`crate::gc::expire`]): offset ranges past retention are dropped, archive
//!    files past the archive retention leave the catalogue.
//! 4. The Iceberg table is made equal to the catalogue ([`crate::iceberg::sync`]).
//! 5. Only then are files deleted: orphans (archive files no catalogue entry names, older than
//!    a grace: a compactor died between writing a file and committing it), expired archive
//!    files, and unreferenced segments ([`crate::gc`]).
//! 6. Release the lease.
//!
//! A crash anywhere leaves the catalogue consistent: a file is either catalogued whole or an
//! orphan that step 2 of a later pass deletes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use object_store::ObjectStoreExt;
use segment_writer::clock::new_ulid;
use segment_writer::manifest::catalogue::{self, CatalogueCache, CatalogueSettings};
use segment_writer::manifest::index::{IndexCache, QueueSnapshot};
use segment_writer::manifest::{Command, OffsetRange, Outcome, Rejection, State};
use segment_writer::node::Node;
use segment_writer::paths::Paths;
use segment_writer::segment::CheckedSegment;

use segment_writer::store::Store;
use tracing::{debug, info, warn};

use crate::iceberg::{IcebergSettings, SyncReport};
use crate::writer::{FileSettings, FileWriter, WrittenFile};
use crate::{Error, Result};

/// Settings of a pass. Defaults suit a cron job or the background compactor.
#[derive(Debug, Clone)]
pub struct CompactSettings {
    /// This compactor's id in the lease.
    pub holder: String,
    /// The lease lasts this long (delta time) and is renewed before each file. Default 5 min.
    pub lease_ttl: Duration,
    /// Parquet layout.
    pub file: FileSettings,
    /// Rows per archive file at most. Default 10,000,000.
    pub max_file_rows: u64,
    /// Raw segments kept in memory while archiving (a segment holds many queues). Larger:
    /// fewer repeated GETs of one segment. Default 256 MiB.
    pub segment_cache_bytes: usize,
    /// Queues archived together, each with its file open and its own encoder task: they
    /// share the segments they read, and their encoders use every core. Memory grows with
    /// it: each open file buffers up to a row group of encoded (compressed) columns, about
    /// 0.2 × `row_group_bytes`, besides an 8 MiB upload buffer. Default 16.
    pub open_files: usize,
    /// An uncatalogued archive file is deleted once older than this. It must exceed the time
    /// from a file's write to its commit. Default 1 h.
    pub orphan_grace: Duration,
    /// An unreferenced segment is deleted once older than this. It must exceed the time from
    /// a segment's PUT to its commit (a submit times out after 10 s). Default 1 h.
    pub segment_grace: Duration,
    /// Archive files whose newest message is older than this are deleted (with their
    /// catalogue entries). Default: never.
    pub archive_retention: Option<Duration>,
    /// Apply retention and collect segments after archiving. Default true.
    pub retention: bool,
    /// Keep the archive's Iceberg table ([`crate::iceberg`]) equal to the catalogue; `None`
    /// leaves the table as it is. Default on.
    pub iceberg: Option<IcebergSettings>,
    /// When a queue's listed archive files fold into catalogue objects, so the manifest's
    /// catalogue stays small ([`segment_writer::manifest::catalogue`]). Default 64, 64, 8.
    pub catalogue: CatalogueSettings,
}

impl CompactSettings {
    /// Defaults with this holder id.
    pub fn new(holder: impl Into<String>) -> Self {
        CompactSettings {
            holder: holder.into(),
            lease_ttl: Duration::from_secs(300),
            file: FileSettings::default(),
            max_file_rows: 10_000_000,
            segment_cache_bytes: 256 * 1024 * 1024,
            open_files: 16,
            orphan_grace: Duration::from_secs(3600),
            segment_grace: Duration::from_secs(3600),
            archive_retention: None,
            retention: true,
            iceberg: Some(IcebergSettings::default()),
            catalogue: CatalogueSettings::default(),
        }
    }
}

/// Watches a pass: progress for a progress line, and named steps (tests crash at them).
pub trait Observer: Send + Sync {
    /// The pass will archive `rows` messages.
    fn planned(&self, _rows: u64) {}
    /// `rows` more messages (`bytes` message bytes) were archived.
    fn archived(&self, _rows: u64, _bytes: u64) {}
    /// A step of the pass is about to happen (e.g. `"commit file"`).
    fn step(&self, _what: &str) {}
}

/// An observer that does nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;
impl Observer for Quiet {}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Files written and catalogued.
    pub files: u64,
    pub rows: u64,
    /// Message bytes archived.
    pub message_bytes: u64,
    /// Parquet bytes written.
    pub parquet_bytes: u64,
    /// Queues whose offset ranges were dropped after retention.
    pub queues_trimmed: u64,
    pub segments_deleted: u64,
    pub orphans_deleted: u64,
    pub archive_files_expired: u64,
    /// Catalogue runs installed (folds and merges).
    pub catalogue_runs: u64,
    /// What the Iceberg sync did.
    pub iceberg: SyncReport,
    /// The manifest version the pass archived up to.
    pub cut_version: u64,
    pub elapsed: Duration,
}

/// A byte-bounded LRU of raw segments (their bytes and parsed block index): messages are
/// borrowed from them ([`CheckedSegment::decode`]) straight into Arrow columns.
struct SegmentCache {
    /// Where inline segments (still in the log) are found.
    state: Arc<std::sync::RwLock<State>>,
    store: Store,
    max_bytes: usize,
    map: HashMap<String, CachedSegment>,
    total: usize,
    tick: u64,
}

struct CachedSegment {
    segment: Arc<CheckedSegment>,
    used: u64,
}

impl SegmentCache {
    fn new(store: Store, state: Arc<std::sync::RwLock<State>>, max_bytes: usize) -> Self {
        SegmentCache {
            store,
            state,
            max_bytes,
            map: HashMap::new(),
            total: 0,
            tick: 0,
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// GETs the segments `names` not cached yet, [`PREFETCH_GETS`] at a time, and caches them.
    async fn prefetch(&mut self, names: &[&str]) -> Result<()> {
        let missing: Vec<String> = {
            let mut seen = std::collections::HashSet::new();
            names
                .iter()
                .filter(|n| !self.contains(n) && seen.insert(**n))
                .map(|n| (*n).to_string())
                .collect()
        };
        let (store, state) = (&self.store, &self.state);
        let mut fetched = futures::stream::iter(missing)
            .map(|name| async move {
                let bytes =
                    segment_writer::inline::segment_bytes_anywhere(store, state, &name).await?;
                let segment =
                    CheckedSegment::new(bytes).map_err(|e| segment_corrupt(store, &name, e))?;
                Ok::<_, Error>((name, segment))
            })
            .buffered(PREFETCH_GETS);
        let mut got = Vec::new();
        while let Some(r) = fetched.next().await {
            got.push(r?);
        }
        drop(fetched);
        for (name, segment) in got {
            self.insert(name, segment);
        }
        Ok(())
    }

    fn insert(&mut self, name: String, segment: CheckedSegment) -> Arc<CheckedSegment> {
        self.tick += 1;
        let size = segment.size();
        while self.total + size > self.max_bytes && !self.map.is_empty() {
            let victim = self
                .map
                .iter()
                .min_by_key(|(_, v)| v.used)
                .map(|(k, _)| k.clone())
                .expect("the map is not empty");
            if let Some(v) = self.map.remove(&victim) {
                self.total -= v.segment.size();
            }
        }
        self.total += size;
        let segment = Arc::new(segment);
        self.map.insert(
            name,
            CachedSegment {
                segment: segment.clone(),
                used: self.tick,
            },
        );
        segment
    }

    async fn get(&mut self, name: &str) -> Result<Arc<CheckedSegment>> {
        self.tick += 1;
        if let Some(v) = self.map.get_mut(name) {
            v.used = self.tick;
            return Ok(v.segment.clone());
        }
        let bytes =
            segment_writer::inline::segment_bytes_anywhere(&self.store, &self.state, name).await?;
        let segment =
            CheckedSegment::new(bytes).map_err(|e| segment_corrupt(&self.store, name, e))?;
        Ok(self.insert(name.to_string(), segment))
    }
}

/// A segment that does not decode: the data is corrupt (not an archive file).
fn segment_corrupt(store: &Store, name: &str, e: impl ToString) -> Error {
    Error::Core(segment_writer::Error::Corrupt {
        path: store.paths.segment(name).to_string(),
        reason: e.to_string(),
    })
}

/// `YYYY-MM-DD` and hour (UTC) of a Unix millisecond time.
pub fn date_hour(ms: i64) -> (String, u32) {
    segment_writer::paths::utc_date_hour(ms)
}

/// Submits commands and waits until this node has applied them.
pub(crate) async fn submit(node: &Node, commands: Vec<Command>) -> Result<(u64, Vec<Outcome>)> {
    let c = node.submit(commands).await?;
    if !node.wait_applied(c.version, Duration::from_secs(30)).await {
        return Err(Error::Core(segment_writer::Error::CommitFailed(format!(
            "version {} committed but not applied here within 30 s",
            c.version
        ))));
    }
    Ok((c.version, c.outcomes))
}

/// Takes or renews the lease; returns the version that granted it.
pub(crate) async fn take_lease(node: &Node, s: &CompactSettings) -> Result<u64> {
    let (v, mut out) = submit(
        node,
        vec![Command::CompactorLease {
            holder: s.holder.clone(),
            ttl_ms: s.lease_ttl.as_millis() as i64,
        }],
    )
    .await?;
    match out.pop() {
        Some(Outcome::Done) => Ok(v),
        Some(Outcome::Rejected {
            rejection: Rejection::Conflict(m),
        }) => Err(Error::LeaseHeld(m)),
        Some(Outcome::Rejected { rejection }) => Err(Error::Rejected(rejection)),
        other => Err(Error::Rejected(Rejection::Invalid(format!(
            "unexpected lease outcome {other:?}"
        )))),
    }
}

/// One queue's work: offsets `from..to`, found in the index runs and inline ranges of `snap`.
struct QueueWork {
    topic: String,
    queue: u32,
    from: u64,
    to: u64,
    snap: QueueSnapshot,
}

/// Decoded index sections a pass keeps in memory.
const INDEX_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Offsets whose ranges are looked up at once while archiving a queue (a queue being archived
/// holds at most this many ranges: a few MB).
const RANGES_PER_LOOKUP: u64 = 1 << 16;

/// Ranges whose segments are fetched ahead of archiving them.
const PREFETCH_RANGES: usize = 64;

/// Segment GETs in flight while fetching ahead.
const PREFETCH_GETS: usize = 8;

fn plan(state: &State) -> Result<Vec<QueueWork>> {
    let mut out = Vec::new();
    for (name, t) in &state.topics {
        for (qi, q) in t.queues.iter().enumerate() {
            let queue = qi as u32;
            let from = state.archive.archived_to(name, queue).max(q.min_offset);
            if from >= q.next_offset {
                continue;
            }
            if q.first_held() > from {
                return Err(Error::Core(segment_writer::Error::Invalid(format!(
                    "{name}/{queue}: offset {from} is neither archived nor in a segment"
                ))));
            }
            out.push(QueueWork {
                topic: name.clone(),
                queue,
                from,
                to: q.next_offset,
                snap: QueueSnapshot::of(q, from, u64::MAX),
            });
        }
    }
    Ok(out)
}

/// Runs one pass on `node` (a running manifest node on the store).
pub async fn run_pass(
    node: &Node,
    settings: &CompactSettings,
    observer: &dyn Observer,
) -> Result<PassReport> {
    let started = node.clock().instant();
    let store = node.store().clone();
    observer.step("take lease");
    let cut = take_lease(node, settings).await?;
    let mut report = PassReport {
        cut_version: cut,
        ..PassReport::default()
    };
    let work = plan(&node.state())?;
    observer.planned(work.iter().map(|w| w.to - w.from).sum());
    info!(cut, queues = work.len(), "compaction pass: archiving");

    let mut cache = SegmentCache::new(
        store.clone(),
        node.shared_state(),
        settings.segment_cache_bytes,
    );
    let index = IndexCache::new(INDEX_CACHE_BYTES);
    let mut last_lease = node.clock().instant();
    let mut ctx = Ctx {
        node,
        s: settings,
        observer,
        cache: &mut cache,
        index: &index,
        last_lease: &mut last_lease,
        report: &mut report,
    };
    for group in work.chunks(settings.open_files.max(1)) {
        archive_group(&mut ctx, group).await?;
    }

    let catalogues = CatalogueCache::new(CATALOGUE_CACHE_BYTES);
    fold_catalogue(node, settings, &catalogues, observer, &mut report).await?;
    let expired = if settings.retention {
        crate::gc::expire(node, settings, &catalogues, observer, &mut report).await?
    } else {
        Vec::new()
    };
    // The table first, deletions second: the current snapshot never names a deleted file.
    if let Some(iceberg) = &settings.iceberg {
        take_lease(node, settings).await?;
        observer.step("iceberg sync");
        report.iceberg = crate::iceberg::sync(
            node,
            iceberg,
            &catalogues,
            settings.archive_retention,
            settings.orphan_grace,
            observer,
        )
        .await?;
    }
    if settings.retention {
        crate::gc::delete_expired(node, observer, expired, &mut report).await?;
    }
    report.orphans_deleted =
        crate::gc::collect_orphans(node, settings, &catalogues, observer).await?;
    if settings.retention {
        crate::gc::collect_segments(node, settings, observer, &mut report).await?;
    }
    observer.step("release lease");
    if let Err(e) = node
        .submit(vec![Command::ReleaseCompactorLease {
            holder: settings.holder.clone(),
        }])
        .await
    {
        warn!(error = %e, "releasing the compactor lease failed; it expires on its own");
    }
    report.elapsed = started.elapsed();
    info!(
        files = report.files,
        rows = report.rows,
        message_bytes = report.message_bytes,
        parquet_bytes = report.parquet_bytes,
        segments_deleted = report.segments_deleted,
        orphans_deleted = report.orphans_deleted,
        elapsed = ?report.elapsed,
        "compaction pass done"
    );
    Ok(report)
}

/// Catalogue objects' file lists kept in memory during a pass (reading every run's once for
/// the Iceberg sync and orphan collection, and the runs a merge replaces).
const CATALOGUE_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Folds queues' oldest listed archive files into catalogue objects and merges their runs
/// ([`segment_writer::manifest::catalogue`]): objects written first, then committed; a
/// refused run's object is left to index collection.
async fn fold_catalogue(
    node: &Node,
    settings: &CompactSettings,
    catalogues: &CatalogueCache,
    observer: &dyn Observer,
    report: &mut PassReport,
) -> Result<()> {
    let plan = catalogue::plan(&node.state(), &settings.catalogue);
    if plan.is_empty() {
        return Ok(());
    }
    observer.step("fold catalogue");
    take_lease(node, settings).await?;
    let clock = node.clock().clone();
    let commands = catalogue::build(node.store(), catalogues, plan, || {
        Paths::catalogue_name(&new_ulid(&*clock))
    })
    .await?;
    let (_, outcomes) = submit(node, commands).await?;
    report.catalogue_runs = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Done))
        .count() as u64;
    Ok(())
}

/// What archiving needs besides the queue at hand.
struct Ctx<'a> {
    node: &'a Node,
    s: &'a CompactSettings,
    observer: &'a dyn Observer,
    cache: &'a mut SegmentCache,
    index: &'a IndexCache,
    last_lease: &'a mut tokio::time::Instant,
    report: &'a mut PassReport,
}

/// A queue being archived: where it is, its open file, the ranges ahead of it.
struct Cursor<'w> {
    w: &'w QueueWork,
    at: u64,
    /// The open file and the hour (since the epoch) of its messages.
    file: Option<(FileWriter, i64)>,
    ranges: Vec<OffsetRange>,
    /// The next range of `ranges` to archive.
    next: usize,
    /// Ranges from `next` up to this one have their segments fetched (or being cached).
    fetched_to: usize,
    /// Where the queue was when `ranges` were looked up.
    lookup_at: u64,
    done: bool,
}

/// Message bytes of one queue a round at most: about one record batch, so that every open
/// file's encoder gets work in turn (rounds of many batches fed one encoder at a time while
/// the others waited, and the pass used little more than one core).
const ROUND_BYTES: usize = 1 << 20;

/// Archives the queues of `group` together, round by round, each queue about
/// [`ROUND_BYTES`] a round (less if `segment_cache_bytes / 2` shared by the group is less):
/// the queues of a topic share segments, so they advance through them together and each
/// segment is fetched and cached once for all of them, and the files' encoders (a thread
/// each) keep every core busy while this task decodes.
async fn archive_group(ctx: &mut Ctx<'_>, group: &[QueueWork]) -> Result<()> {
    let round_bytes =
        (ctx.s.segment_cache_bytes / 2 / group.len().max(1)).clamp(64 << 10, ROUND_BYTES) as u64;
    let mut cursors: Vec<Cursor<'_>> = group
        .iter()
        .map(|w| Cursor {
            w,
            at: w.from,
            file: None,
            ranges: Vec::new(),
            next: 0,
            fetched_to: 0,
            lookup_at: w.from,
            done: false,
        })
        .collect();
    while cursors.iter().any(|c| !c.done) {
        // Files stay open across rounds: renew the lease here too, not only when opening one.
        if ctx.last_lease.elapsed() > ctx.s.lease_ttl / 3 {
            take_lease(ctx.node, ctx.s).await?;
            *ctx.last_lease = ctx.node.clock().instant();
        }
        for c in cursors.iter_mut().filter(|c| !c.done) {
            advance(ctx, c, round_bytes).await?;
        }
    }
    Ok(())
}

/// Archives about `budget` message bytes of `c` (opening, splitting and committing files as it
/// goes); marks it done at its end, or when the manifest refused a file (someone else archived
/// these offsets: the queue is left alone).
async fn advance(ctx: &mut Ctx<'_>, c: &mut Cursor<'_>, budget: u64) -> Result<()> {
    let store = ctx.node.store().clone();
    let w = c.w;
    let mut spent = 0u64;
    while c.at < w.to && spent < budget {
        if c.next >= c.ranges.len() {
            if !c.ranges.is_empty() && c.at == c.lookup_at {
                // The last lookup's ranges moved nothing: stop rather than loop.
                break;
            }
            c.lookup_at = c.at;
            c.ranges = ctx
                .index
                .ranges_from(&store, &w.topic, w.queue, &w.snap, c.at, RANGES_PER_LOOKUP)
                .await?;
            c.next = 0;
            c.fetched_to = 0;
            if c.ranges.is_empty() {
                break;
            }
        }
        if c.next >= c.fetched_to {
            c.fetched_to = (c.next + PREFETCH_RANGES).min(c.ranges.len());
            let names: Vec<&str> = c.ranges[c.next..c.fetched_to]
                .iter()
                .map(|r| r.segment.as_str())
                .collect();
            ctx.cache.prefetch(&names).await?;
        }
        let r = c.ranges[c.next].clone();
        c.next += 1;
        match archive_range(ctx, c, &r).await? {
            Some(bytes) => spent += bytes,
            None => {
                c.done = true;
                return Ok(());
            }
        }
    }
    if c.at >= w.to || spent < budget {
        c.done = true;
        if let Some((f, _)) = c.file.take() {
            commit_file(ctx.node, ctx.observer, f, w, ctx.report).await?;
        }
    }
    Ok(())
}

/// Archives the messages of range `r` from `c.at` on; the message bytes archived, or `None`
/// if the manifest refused a file.
async fn archive_range(
    ctx: &mut Ctx<'_>,
    c: &mut Cursor<'_>,
    r: &OffsetRange,
) -> Result<Option<u64>> {
    let (node, s, w) = (ctx.node, ctx.s, c.w);
    let store = node.store().clone();
    let start = c.at.max(r.base);
    let stop = (r.base + u64::from(r.count)).min(w.to);
    if stop <= start {
        return Ok(Some(0));
    }
    let seg = ctx.cache.get(&r.segment).await?;
    let first = r.first_ordinal as u64 + (start - r.base);
    let last = r.first_ordinal as u64 + (stop - r.base);
    let corrupt = |reason: String| segment_corrupt(&store, &r.segment, reason);
    let ordinals = u32::try_from(first)
        .ok()
        .zip(u32::try_from(last).ok())
        .filter(|(_, l)| *l <= seg.message_count())
        .ok_or_else(|| {
            corrupt(format!(
                "holds {} messages, the manifest needs {last}",
                seg.message_count()
            ))
        })?;
    let msgs = seg
        .decode(ordinals.0..ordinals.1)
        .map_err(|e| corrupt(e.to_string()))?;
    let mut bytes = 0;
    for m in msgs.iter() {
        let hour_index = m.publish_time_ms.div_euclid(3_600_000);
        let split = c
            .file
            .as_ref()
            .is_some_and(|(f, h)| *h != hour_index || f.rows() >= s.max_file_rows);
        if split {
            let (f, _) = c.file.take().expect("a file is open");
            if !commit_file(node, ctx.observer, f, w, ctx.report).await? {
                return Ok(None);
            }
        }
        if c.file.is_none() {
            if ctx.last_lease.elapsed() > s.lease_ttl / 3 {
                take_lease(node, s).await?;
                *ctx.last_lease = node.clock().instant();
            }
            let (date, hour) = date_hour(m.publish_time_ms);
            let id = new_ulid(&**node.clock()).to_string();
            let name = Paths::archive_name(&w.topic, &date, hour, &id);
            ctx.observer.step("open file");
            let f = FileWriter::create(&store, name, &w.topic, w.queue, c.at, &s.file)?;
            c.file = Some((f, hour_index));
        }
        let (f, _) = c.file.as_mut().expect("a file is open");
        bytes += f.push_ref(&m, r.origin_topic.as_deref()).await?;
        c.at += 1;
        if f.rows().is_multiple_of(4096) {
            ctx.observer.step("write rows");
        }
    }
    Ok(Some(bytes))
}

/// Finishes a file and catalogues it; false if the manifest refused it (someone else archived
/// these offsets), in which case the file was deleted and the queue is left alone.
async fn commit_file(
    node: &Node,
    observer: &dyn Observer,
    f: FileWriter,
    w: &QueueWork,
    report: &mut PassReport,
) -> Result<bool> {
    let store = node.store().clone();
    observer.step("finish file");
    let written: WrittenFile = f.finish(&store).await?;
    observer.step("commit file");
    let (_, mut out) = submit(
        node,
        vec![Command::ArchiveFile {
            topic: w.topic.clone(),
            queue: w.queue,
            path: written.path.clone(),
            min_offset: written.min_offset,
            max_offset: written.max_offset,
            min_time_ms: written.min_time_ms,
            max_time_ms: written.max_time_ms,
            rows: written.rows,
            bytes: written.bytes,
        }],
    )
    .await?;
    match out.pop() {
        Some(Outcome::Done) => {
            observer.step("file committed");
            debug!(path = %written.path, rows = written.rows, "archived");
            report.files += 1;
            report.rows += written.rows;
            report.message_bytes += written.message_bytes;
            report.parquet_bytes += written.bytes;
            observer.archived(written.rows, written.message_bytes);
            Ok(true)
        }
        Some(Outcome::Rejected { rejection }) => {
            warn!(path = %written.path, %rejection, "archive file refused; deleting it");
            if !node.state().archive.contains_path(&written.path) {
                let key = store.paths.relative(&written.path);
                store
                    .inner
                    .delete(&key)
                    .await
                    .map_err(|e| Error::store("delete", &key, e))?;
            }
            match rejection {
                Rejection::Conflict(_) => Ok(false),
                r => Err(Error::Rejected(r)),
            }
        }
        other => Err(Error::Rejected(Rejection::Invalid(format!(
            "unexpected archive outcome {other:?}"
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_and_hour_are_utc() {
        assert_eq!(date_hour(0), ("1970-01-01".to_string(), 0));
        assert_eq!(
            date_hour(1_767_225_600_000 + 13 * 3_600_000 + 59_999),
            ("2026-01-01".to_string(), 13)
        );
        assert_eq!(
            date_hour(1_709_164_800_000 - 1),
            ("2024-02-28".to_string(), 23)
        );
    }
}
