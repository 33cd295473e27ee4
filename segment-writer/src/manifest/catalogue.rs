//! Catalogue objects in the bucket (`index/<ulid>.cat`): a queue's older archive files, so the
//! state's archive catalogue stays small however long the archive grows.
//!
//! A queue's archive lists its newest files in the state one by one (`QueueArchive::files`).
//! Once `keep_listed + chunk` are listed, the oldest `chunk` are written to a catalogue object
//! and replaced in the state by one [`CatalogueRun`] summary (span of offsets and publish
//! times, file, row and byte counts, a digest of the files); once the newest `fan_in` runs have
//! the same level they are merged into one run of the next level, as an LSM merges its runs
//! (and as `manifest::index` does for offset ranges). A queue therefore holds fewer than
//! `keep_listed + chunk` listed files and at most `(fan_in - 1)` runs per level, with
//! `log_fan_in(files / chunk)` levels: with the defaults (64, 64, 8), a queue archived every
//! 5 minutes for ten years (about a million files) holds under 128 files and 35 runs.
//!
//! The compactor, which holds the lease, plans ([`plan`]), writes ([`build`]) and commits the
//! runs ([`Command::FoldCatalogue`]); apply checks each against the state
//! (`manifest::state::archive`). Readers of old offsets, the Iceberg sync and garbage
//! collection read a run's files through a byte-bounded [`CatalogueCache`]. Index garbage
//! collection deletes objects no run names (merged away, expired, or of a refused commit).
//!
//! The object: a 16-byte header (magic `FMQC`, format, payload length, CRC32C of the payload)
//! and a JSON payload of the topic, the queue and the files in offset order.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use super::byte_lru::ByteLru;
use super::command::Command;
use super::model::archive::file_holding;
use super::model::{Archive, ArchivedFile, CatalogueRun, QueueArchive, State, files_digest};
use crate::store::Store;
use crate::{Error, Result};

/// The format of catalogue objects this code writes.
pub const CATALOGUE_FORMAT: u32 = 1;

const MAGIC: &[u8; 4] = b"FMQC";
const HEADER: usize = 16;

/// When a queue's listed archive files fold into catalogue runs, and runs merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueSettings {
    /// Newest files of a queue kept listed in the state. Default 64.
    pub keep_listed: usize,
    /// Files folded into one run of level 0, once `keep_listed + chunk` are listed.
    /// Default 64.
    pub chunk: usize,
    /// Runs of one level merged into one of the next. Default 8.
    pub fan_in: usize,
}

impl Default for CatalogueSettings {
    fn default() -> Self {
        CatalogueSettings {
            keep_listed: 64,
            chunk: 64,
            fan_in: 8,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    topic: String,
    queue: u32,
    files: Vec<ArchivedFile>,
}

/// Encodes a queue's consecutive files as a catalogue object.
pub fn encode(topic: &str, queue: u32, files: &[ArchivedFile]) -> Bytes {
    let payload = serde_json::to_vec(&Payload {
        topic: topic.to_string(),
        queue,
        files: files.to_vec(),
    })
    .expect("archive files always encode");
    let mut out = BytesMut::with_capacity(HEADER + payload.len());
    out.put_slice(MAGIC);
    out.put_u32_le(CATALOGUE_FORMAT);
    out.put_u32_le(payload.len() as u32);
    out.put_u32_le(crc32c::crc32c(&payload));
    out.put_slice(&payload);
    out.freeze()
}

/// Decodes a catalogue object: its topic, queue and files. Any damage (magic, format, length,
/// checksum, JSON, files out of order) is an error naming it.
pub fn decode(bytes: &[u8]) -> std::result::Result<(String, u32, Vec<ArchivedFile>), String> {
    if bytes.len() < HEADER {
        return Err(format!("{} bytes: shorter than the header", bytes.len()));
    }
    let mut h = &bytes[..HEADER];
    if &h[..4] != MAGIC {
        return Err("not a catalogue object (bad magic)".into());
    }
    h.advance(4);
    let format = h.get_u32_le();
    if format != CATALOGUE_FORMAT {
        return Err(format!("unknown catalogue format {format}"));
    }
    let len = h.get_u32_le() as usize;
    let crc = h.get_u32_le();
    let payload = &bytes[HEADER..];
    if payload.len() != len {
        return Err(format!(
            "payload is {} bytes, the header says {len}",
            payload.len()
        ));
    }
    if crc32c::crc32c(payload) != crc {
        return Err("checksum mismatch".into());
    }
    let p: Payload = serde_json::from_slice(payload).map_err(|e| format!("payload: {e}"))?;
    if p.files.is_empty() {
        return Err("lists no file".into());
    }
    if p.files
        .windows(2)
        .any(|w| w[0].max_offset != w[1].min_offset)
        || p.files.iter().any(|f| f.max_offset <= f.min_offset)
    {
        return Err("files are not consecutive".into());
    }
    Ok((p.topic, p.queue, p.files))
}

/// Reads runs' files through a byte-bounded cache (key: the object; objects are immutable, so
/// an entry never goes stale). Least recently used entries go first.
#[derive(Debug)]
pub struct CatalogueCache {
    lru: ByteLru<String, Arc<Vec<ArchivedFile>>>,
}

/// What a cached file list costs, about.
fn size_of(files: &[ArchivedFile]) -> usize {
    files
        .iter()
        .map(|f| f.path.len() + std::mem::size_of::<ArchivedFile>())
        .sum()
}

impl CatalogueCache {
    /// A cache holding at most `max_bytes` of file lists.
    pub fn new(max_bytes: usize) -> Self {
        CatalogueCache {
            lru: ByteLru::new(max_bytes),
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lru.bytes()
    }

    /// Objects read from the store so far.
    pub fn gets(&self) -> u64 {
        self.lru.loads()
    }

    /// The files of `run` of `topic`/`queue` (one GET when not cached). An object that is
    /// missing, damaged or not the run's is [`Error::Corrupt`].
    pub async fn files(
        &self,
        store: &Store,
        topic: &str,
        queue: u32,
        run: &CatalogueRun,
    ) -> Result<Arc<Vec<ArchivedFile>>> {
        if let Some(v) = self.lru.get(&run.object) {
            return Ok(v);
        }
        let path = store.paths.relative(&run.object);
        let bytes = crate::store::retrying(
            &crate::clock::TokioClock::starting_at(0),
            3,
            |n| std::time::Duration::from_millis(20 << n),
            "catalogue get",
            || async {
                let got = store.inner.get(&path).await.map_err(|e| match e {
                    object_store::Error::NotFound { .. } => {
                        Error::corrupt(&path, "catalogue object is missing")
                    }
                    e => Error::store("get", &path, e),
                })?;
                got.bytes().await.map_err(|e| Error::store("get", &path, e))
            },
        )
        .await?;
        self.lru.loaded();
        let (t, q, files) = decode(&bytes).map_err(|e| Error::corrupt(&path, e))?;
        if t != topic || q != queue || files_digest(&files) != run.digest {
            return Err(Error::corrupt(
                &path,
                format!(
                    "not the catalogue run of {topic}/{queue} from offset {}",
                    run.min_offset
                ),
            ));
        }
        let v = Arc::new(files);
        self.lru.insert(run.object.clone(), v.clone(), size_of(&v));
        Ok(v)
    }

    /// The file of `qa` holding `offset`: a listed one, or one of the run holding it.
    pub async fn file_for(
        &self,
        store: &Store,
        topic: &str,
        queue: u32,
        qa: &QueueArchive,
        offset: u64,
    ) -> Result<Option<ArchivedFile>> {
        if let Some(f) = qa.file_for(offset) {
            return Ok(Some(f.clone()));
        }
        let Some(run) = qa.run_for(offset) else {
            return Ok(None);
        };
        let files = self.files(store, topic, queue, run).await?;
        Ok(file_holding(&files, offset).cloned())
    }
}

/// Every archive file the state catalogues (attached and detached, listed and in runs) with
/// its topic and queue, the runs' read through `cache`: [`list_page`] without a limit. For
/// garbage collection and the Iceberg sync, which must know every file.
pub async fn all_files(
    store: &Store,
    cache: &CatalogueCache,
    archive: &Archive,
) -> Result<Vec<(String, u32, ArchivedFile)>> {
    Ok(list_page(store, cache, archive, None, usize::MAX - 1)
        .await?
        .0)
}

/// Where a page of [`list_page`] ended: the listing's order is the attached archive first
/// (by topic, queue and offset), then deleted topics' files (by topic, queue, offset and path).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ListPosition {
    pub detached: bool,
    pub topic: String,
    pub queue: u32,
    pub min_offset: u64,
    pub path: String,
}

impl ListPosition {
    fn of(detached: bool, topic: &str, queue: u32, f: &ArchivedFile) -> Self {
        ListPosition {
            detached,
            topic: topic.to_string(),
            queue,
            min_offset: f.min_offset,
            path: f.path.clone(),
        }
    }

    /// Whether every file of `topic`/`queue` in `detached`'s section from `min_offset` up to
    /// (not including) `max_offset` lies at or before this position.
    fn covers(&self, detached: bool, topic: &str, queue: u32, max_offset: u64) -> bool {
        (detached, topic, queue) < (self.detached, self.topic.as_str(), self.queue)
            || ((detached, topic, queue) == (self.detached, self.topic.as_str(), self.queue)
                && max_offset <= self.min_offset)
    }
}

/// One page of the files the state catalogues, in [`ListPosition`] order: at most `limit`
/// files after `after`, and where the next page starts if more follow. Runs wholly before
/// `after` are not read, and the attached archive's runs are read only until the page is
/// full (deleted topics' runs, which are few and collected, are read whole when reached).
pub async fn list_page(
    store: &Store,
    cache: &CatalogueCache,
    archive: &Archive,
    after: Option<&ListPosition>,
    limit: usize,
) -> Result<(Vec<(String, u32, ArchivedFile)>, Option<ListPosition>)> {
    // Past `after`, compared field by field as `ListPosition`'s order does (no allocation).
    let wanted = |detached: bool, topic: &str, queue: u32, f: &ArchivedFile| {
        after.is_none_or(|a| {
            (detached, topic, queue, f.min_offset, f.path.as_str())
                > (
                    a.detached,
                    a.topic.as_str(),
                    a.queue,
                    a.min_offset,
                    a.path.as_str(),
                )
        })
    };
    let skip = |detached, topic: &str, queue, max_offset| {
        after.is_some_and(|a| a.covers(detached, topic, queue, max_offset))
    };
    // Each file with the section it was listed in.
    let mut out: Vec<(bool, String, u32, ArchivedFile)> = Vec::new();
    'attached: for (topic, qs) in &archive.queues {
        for (&queue, qa) in qs {
            if skip(false, topic, queue, u64::MAX) {
                continue;
            }
            for run in &qa.runs {
                if skip(false, topic, queue, run.max_offset) {
                    continue;
                }
                let files = cache.files(store, topic, queue, run).await?;
                for f in files.iter() {
                    if wanted(false, topic, queue, f) {
                        out.push((false, topic.clone(), queue, f.clone()));
                        if out.len() > limit {
                            break 'attached;
                        }
                    }
                }
            }
            for f in &qa.files {
                if wanted(false, topic, queue, f) {
                    out.push((false, topic.clone(), queue, f.clone()));
                    if out.len() > limit {
                        break 'attached;
                    }
                }
            }
        }
    }
    if out.len() <= limit {
        let mut detached = Vec::new();
        for d in &archive.detached_runs {
            if skip(true, &d.topic, d.queue, d.run.max_offset) {
                continue;
            }
            let files = cache.files(store, &d.topic, d.queue, &d.run).await?;
            detached.extend(
                files
                    .iter()
                    .filter(|f| wanted(true, &d.topic, d.queue, f))
                    .map(|f| (true, d.topic.clone(), d.queue, f.clone())),
            );
        }
        detached.extend(
            archive
                .detached
                .iter()
                .filter(|d| wanted(true, &d.topic, d.queue, &d.file))
                .map(|d| (true, d.topic.clone(), d.queue, d.file.clone())),
        );
        detached.sort_by(|a, b| {
            (&a.1, a.2, a.3.min_offset, &a.3.path).cmp(&(&b.1, b.2, b.3.min_offset, &b.3.path))
        });
        detached.truncate(limit + 1 - out.len());
        out.extend(detached);
    }
    let next = (out.len() > limit).then(|| {
        out.truncate(limit);
        out.last()
            .map(|(detached, topic, queue, f)| ListPosition::of(*detached, topic, *queue, f))
    });
    let files = out.into_iter().map(|(_, t, q, f)| (t, q, f)).collect();
    Ok((files, next.flatten()))
}

/// A run to write: its files, and the runs it replaces (none for a fold).
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogueWork {
    pub topic: String,
    pub queue: u32,
    pub level: u8,
    /// The files of a fold; empty for a merge, whose files are the replaced runs'.
    pub files: Vec<ArchivedFile>,
    /// The runs a merge replaces, in offset order: in the state, or written earlier in the
    /// same plan (by a fold or merge before it).
    pub replaces: Vec<CatalogueRun>,
}

/// What to fold and merge, queue by queue, in the order to write and commit it: folds of the
/// oldest `chunk` listed files while `keep_listed + chunk` are listed, each followed by the
/// merges it completes (the newest `fan_in` runs of one level). Runs written earlier in the
/// plan are named by placeholders (`object` empty) that [`build`] fills in.
pub fn plan(state: &State, s: &CatalogueSettings) -> Vec<CatalogueWork> {
    let chunk = s.chunk.max(1);
    let fan_in = s.fan_in.max(2);
    let mut out = Vec::new();
    for (topic, qs) in &state.archive.queues {
        for (queue, qa) in qs {
            let mut runs: Vec<CatalogueRun> = qa.runs.clone();
            let mut listed = &qa.files[..];
            merge_full_levels(topic, *queue, &mut runs, fan_in, &mut out);
            while listed.len() >= s.keep_listed + chunk {
                let (fold, rest) = listed.split_at(chunk);
                listed = rest;
                out.push(CatalogueWork {
                    topic: topic.clone(),
                    queue: *queue,
                    level: 0,
                    files: fold.to_vec(),
                    replaces: Vec::new(),
                });
                runs.push(CatalogueRun::summarize("", 0, fold));
                merge_full_levels(topic, *queue, &mut runs, fan_in, &mut out);
            }
        }
    }
    out
}

/// Plans merges while the newest `fan_in` runs share a level.
fn merge_full_levels(
    topic: &str,
    queue: u32,
    runs: &mut Vec<CatalogueRun>,
    fan_in: usize,
    out: &mut Vec<CatalogueWork>,
) {
    while runs.len() >= fan_in {
        let tail = &runs[runs.len() - fan_in..];
        let level = tail[0].level;
        if level == u8::MAX || tail.iter().any(|r| r.level != level) {
            return;
        }
        let replaces = tail.to_vec();
        runs.truncate(runs.len() - fan_in);
        runs.push(merged_summary(&replaces, level + 1));
        out.push(CatalogueWork {
            topic: topic.to_string(),
            queue,
            level: level + 1,
            files: Vec::new(),
            replaces,
        });
    }
}

/// The summary of a merge of `runs` (without object or digest: [`build`] fills them in).
fn merged_summary(runs: &[CatalogueRun], level: u8) -> CatalogueRun {
    CatalogueRun {
        object: String::new(),
        min_offset: runs[0].min_offset,
        max_offset: runs[runs.len() - 1].max_offset,
        min_time_ms: runs.iter().map(|r| r.min_time_ms).min().unwrap_or(0),
        max_time_ms: runs.iter().map(|r| r.max_time_ms).max().unwrap_or(0),
        files: runs.iter().map(|r| r.files).sum(),
        rows: runs.iter().map(|r| r.rows).sum(),
        bytes: runs.iter().map(|r| r.bytes).sum(),
        level,
        digest: 0,
    }
}

/// A run written earlier in a plan, with its files.
type WrittenRun = (CatalogueRun, Arc<Vec<ArchivedFile>>);

/// Writes the objects of `plan` in order (reading the state's runs a merge replaces through
/// `cache`; runs written earlier in the plan from memory) and returns the commands that
/// install them, in the same order. `name` gives each object its unique relative name.
pub async fn build(
    store: &Store,
    cache: &CatalogueCache,
    plan: Vec<CatalogueWork>,
    mut name: impl FnMut() -> String,
) -> Result<Vec<Command>> {
    // Runs written by this plan, per queue, oldest first, with their files.
    let mut written: HashMap<(String, u32), Vec<WrittenRun>> = HashMap::new();
    let mut out = Vec::new();
    for w in plan {
        let key = (w.topic.clone(), w.queue);
        let mine = written.entry(key).or_default();
        let (files, replaces) = if w.replaces.is_empty() {
            (w.files, Vec::new())
        } else {
            // Placeholders are the newest runs this plan wrote for the queue, in order.
            let fresh = w.replaces.iter().filter(|r| r.object.is_empty()).count();
            let taken: Vec<_> = mine.drain(mine.len() - fresh..).collect();
            let mut taken = taken.into_iter();
            let mut files = Vec::new();
            let mut replaces = Vec::new();
            for r in &w.replaces {
                if r.object.is_empty() {
                    let (run, f) = taken.next().expect("a placeholder per run written");
                    files.extend(f.iter().cloned());
                    replaces.push(run.object);
                } else {
                    files.extend(
                        cache
                            .files(store, &w.topic, w.queue, r)
                            .await?
                            .iter()
                            .cloned(),
                    );
                    replaces.push(r.object.clone());
                }
            }
            (files, replaces)
        };
        let object = name();
        let bytes = encode(&w.topic, w.queue, &files);
        super::index::put_object(store, &object, bytes).await?;
        let run = CatalogueRun::summarize(&object, w.level, &files);
        mine.push((run.clone(), Arc::new(files)));
        out.push(Command::FoldCatalogue {
            topic: w.topic,
            queue: w.queue,
            run,
            replaces,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(i: u64) -> ArchivedFile {
        ArchivedFile {
            path: format!("archive/topic=t/date=2026-01-01/hour=00/{i:026}.parquet"),
            min_offset: i * 10,
            max_offset: i * 10 + 10,
            min_time_ms: i as i64 * 1_000,
            max_time_ms: i as i64 * 1_000 + 999,
            rows: 10,
            bytes: 4_096,
        }
    }

    #[test]
    fn an_object_round_trips_and_any_damage_is_refused() {
        let files: Vec<_> = (0..5).map(file).collect();
        let bytes = encode("t", 3, &files);
        assert_eq!(decode(&bytes), Ok(("t".to_string(), 3, files.clone())));
        for at in [0, 5, 9, 13, 20, bytes.len() - 1] {
            let mut bad = bytes.to_vec();
            bad[at] ^= 0x40;
            assert!(decode(&bad).is_err(), "a flipped byte at {at} was accepted");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&bytes[..8]).is_err());
        let gap = [file(0), file(2)];
        assert!(decode(&encode("t", 0, &gap)).is_err());
    }

    #[test]
    fn the_plan_folds_the_oldest_chunks_and_merges_full_levels() {
        let s = CatalogueSettings {
            keep_listed: 4,
            chunk: 2,
            fan_in: 2,
        };
        let mut state = State::default();
        let qa = state
            .archive
            .queues
            .entry("t".into())
            .or_default()
            .entry(0)
            .or_default();
        qa.files = (0..9).map(file).collect();
        qa.archived_to = 90;
        let plan = plan(&state, &s);
        // 9 listed, keep 4: two folds of 2 (files 0-1, 2-3), the second completing a merge.
        let shape: Vec<(u8, usize, usize)> = plan
            .iter()
            .map(|w| (w.level, w.files.len(), w.replaces.len()))
            .collect();
        assert_eq!(shape, vec![(0, 2, 0), (0, 2, 0), (1, 0, 2)]);
        assert_eq!(plan[0].files, vec![file(0), file(1)]);
        assert_eq!(plan[2].replaces[0].min_offset, 0);
        assert_eq!(plan[2].replaces[1].max_offset, 40);
    }

    /// `file(i)` of `topic`/`queue`, named after them.
    fn file_of(topic: &str, queue: u32, i: u64, tag: &str) -> ArchivedFile {
        ArchivedFile {
            path: format!(
                "archive/topic={topic}/date=2026-01-01/hour=00/{queue}-{i:04}{tag}.parquet"
            ),
            ..file(i)
        }
    }

    /// A run of `files` written to the store as object `name`.
    async fn run_of(
        store: &Store,
        name: &str,
        topic: &str,
        queue: u32,
        files: &[ArchivedFile],
    ) -> CatalogueRun {
        super::super::index::put_object(store, name, encode(topic, queue, files))
            .await
            .expect("put");
        CatalogueRun::summarize(name, 0, files)
    }

    #[tokio::test]
    async fn pages_list_every_file_once_in_order_and_skip_what_lies_before() {
        use crate::manifest::model::{DetachedFile, DetachedRun};
        let store = Store::open("memory://").expect("memory");
        let mut archive = Archive::default();
        let a0: Vec<_> = (0..7).map(|i| file_of("a", 0, i, "")).collect();
        let run = run_of(&store, "index/a0.cat", "a", 0, &a0[..5]).await;
        let qa = archive
            .queues
            .entry("a".into())
            .or_default()
            .entry(0)
            .or_default();
        qa.runs.push(run);
        qa.files = a0[5..].to_vec();
        let qa = archive
            .queues
            .entry("a".into())
            .or_default()
            .entry(1)
            .or_default();
        qa.files = (0..2).map(|i| file_of("a", 1, i, "")).collect();
        let qa = archive
            .queues
            .entry("b".into())
            .or_default()
            .entry(0)
            .or_default();
        qa.files = (0..3).map(|i| file_of("b", 0, i, "")).collect();
        // A deleted incarnation of `a`: a run and a listed file whose offsets interleave.
        let old: Vec<_> = (0..3).map(|i| file_of("a", 0, i, "-old")).collect();
        archive.detached_runs.push(DetachedRun {
            topic: "a".into(),
            queue: 0,
            run: run_of(&store, "index/old.cat", "a", 0, &old).await,
        });
        archive.detached.push(DetachedFile {
            topic: "a".into(),
            queue: 0,
            file: file_of("a", 0, 1, "-older"),
        });
        let everything = {
            let cache = CatalogueCache::new(1 << 20);
            let mut v = all_files(&store, &cache, &archive).await.expect("all");
            v.sort_by(|x, y| x.2.path.cmp(&y.2.path));
            v
        };
        assert_eq!(everything.len(), 7 + 2 + 3 + 3 + 1);
        for limit in 1..=everything.len() + 1 {
            let cache = CatalogueCache::new(1 << 20);
            let (mut listed, mut after, mut pages) = (Vec::new(), None, 0);
            loop {
                let (page, next) = list_page(&store, &cache, &archive, after.as_ref(), limit)
                    .await
                    .expect("page");
                assert!(page.len() <= limit);
                pages += 1;
                listed.extend(page);
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            assert_eq!(
                pages,
                everything.len().div_ceil(limit).max(1),
                "limit {limit}"
            );
            // The attached archive in (topic, queue, offset) order, then the deleted topic's.
            let order: Vec<_> = listed
                .iter()
                .map(|(t, q, f)| (t.clone(), *q, f.min_offset))
                .collect();
            assert_eq!(
                order[..12]
                    .iter()
                    .filter(|k| k.0 == "a" && k.1 == 0)
                    .count(),
                7
            );
            assert!(order[..12].windows(2).all(|w| w[0] < w[1]), "{order:?}");
            assert!(order[12..].windows(2).all(|w| w[0] <= w[1]), "{order:?}");
            assert!(listed[12..].iter().all(|(_, _, f)| f.path.contains("-old")));
            listed.sort_by(|x, y| x.2.path.cmp(&y.2.path));
            assert_eq!(listed, everything, "limit {limit}");
        }
        // A page that starts past the folded run does not read it.
        let cache = CatalogueCache::new(1 << 20);
        let past = ListPosition::of(false, "a", 0, &a0[5]);
        let (page, _) = list_page(&store, &cache, &archive, Some(&past), 3)
            .await
            .expect("page");
        assert_eq!(page[0].2, a0[6]);
        assert_eq!(cache.gets(), 0);
    }
}
