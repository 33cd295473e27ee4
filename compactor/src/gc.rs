//! Retention and garbage collection, run by the lease holder at the end of a pass.
//!
//! - **Retention**: each queue's offset ranges that are archived, past the topic's
//!   `retention_hours` and consumed by every cursor are dropped ([`Command::DropRanges`]; the
//!   manifest re-checks all three at apply). Their offsets stay readable from Parquet.
//! - **Segments**: a segment object is deleted only when no state pointer names it
//!   ([`segment_writer::manifest::State::referenced_segments`], read *after* the LIST, through
//!   a commit, so the state is at least as new as the listing) and it is older than a grace
//!   (segments are written before the commit that references them).
//! - **Orphans**: archive files that no catalogue entry names, and timer spill objects the
//!   state no longer references (loaded back, or their commit failed), older than a grace; on
//!   a local directory also the staging files (`x#1`) of puts a crash interrupted.
//! - **Archive retention** (off by default): the oldest files of a queue whose newest message
//!   is older than the setting are removed from the catalogue ([`expire`]; a catalogue run
//!   goes whole, once its newest message is), then, once the Iceberg table no longer names
//!   them, deleted ([`delete_expired`]).
//! - **The Iceberg table's metadata** under `archive/metadata/` is not the catalogue's: orphan
//!   collection leaves it to [`crate::iceberg`].

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use object_store::path::Path;
use segment_writer::clock::new_ulid;
use segment_writer::manifest::CatalogueRun;
use segment_writer::manifest::catalogue::{self, CatalogueCache};
use segment_writer::manifest::index::{IndexCache, put_object};
use segment_writer::manifest::{Command, Outcome, State};
use segment_writer::node::Node;
use segment_writer::paths::Paths;
use tracing::info;

use crate::pass::{CompactSettings, Observer, PassReport, submit, take_lease};
use crate::{Error, Result};

async fn list(node: &Node, dir: &Path) -> Result<Vec<ObjectMeta>> {
    node.store()
        .inner
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(|e| Error::store("list", dir, e))
}

/// Deletes `paths`; one already gone (a crashed pass's, or another step's) is not an error.
async fn delete(node: &Node, paths: Vec<Path>) -> Result<u64> {
    if paths.is_empty() {
        return Ok(0);
    }
    let n = paths.len() as u64;
    let results: Vec<_> = node
        .store()
        .inner
        .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed())
        .collect()
        .await;
    for r in results {
        match r {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store("delete", "objects", e)),
        }
    }
    Ok(n)
}

/// Deletes archive files that no catalogue entry names and timer spill objects the state does
/// not reference, older than the grace.
pub async fn collect_orphans(
    node: &Node,
    s: &CompactSettings,
    catalogues: &CatalogueCache,
    observer: &dyn Observer,
) -> Result<u64> {
    let paths = node.store().paths.clone();
    let archive = Unreferenced {
        dir: paths.archive_dir(),
        grace: s.orphan_grace,
        step: "delete orphans",
        what: "orphan archive files",
        keep_under: Some(Paths::ICEBERG_METADATA),
    };
    let store = node.store().clone();
    let deleted = archive
        .collect(node, s, observer, async |st| {
            Ok(catalogue::all_files(&store, catalogues, &st.archive)
                .await?
                .into_iter()
                .map(|(_, _, f)| f.path)
                .collect())
        })
        .await?;
    // Timer spill objects loaded back, or written by a spill whose commit failed.
    let spills = Unreferenced {
        dir: paths.timer_spill_dir(),
        grace: s.orphan_grace,
        step: "delete timer spills",
        what: "timer spill objects no longer referenced",
        keep_under: None,
    };
    let deleted = deleted
        + spills
            .collect(node, s, observer, async |st| {
                Ok(st.referenced_timer_spills())
            })
            .await?;
    // Index objects no run names any more (merged, dropped by retention, or written by a
    // fold whose commit failed), after the segment grace.
    let index = Unreferenced {
        dir: paths.index_dir(),
        grace: s.segment_grace,
        step: "delete index objects",
        what: "index objects no longer referenced",
        keep_under: None,
    };
    let deleted = deleted
        + index
            .collect(node, s, observer, async |st| {
                Ok(st.referenced_index_objects())
            })
            .await?;
    // A local directory's staging files (LIST never shows them) of puts a crash interrupted.
    let Some(dir) = node.store().local_dir() else {
        return Ok(deleted);
    };
    let cutoff_ms = node.clock().now_ms() - s.orphan_grace.as_millis() as i64;
    let root = dir.clone();
    let staged = tokio::task::spawn_blocking(move || {
        segment_writer::store::remove_staging_leftovers(&root, cutoff_ms)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r)
    .map_err(|source| Error::LocalDir {
        path: dir.display().to_string(),
        source,
    })?;
    if staged > 0 {
        observer.step("delete staging files");
        info!(count = staged, "deleted staging files of interrupted puts");
    }
    Ok(deleted + staged)
}

/// Objects under `dir` that the state does not name and that are older than `grace` (they
/// are written before the commit that names them).
struct Unreferenced {
    dir: Path,
    grace: std::time::Duration,
    step: &'static str,
    what: &'static str,
    /// Names under this folder (relative to the prefix) are not the state's to name: kept.
    keep_under: Option<&'static str>,
}

impl Unreferenced {
    /// Deletes them; `named` is read from the state after the LIST, through a lease commit,
    /// so the state is at least as new as the listing.
    async fn collect(
        &self,
        node: &Node,
        s: &CompactSettings,
        observer: &dyn Observer,
        named: impl AsyncFnOnce(State) -> Result<BTreeSet<String>>,
    ) -> Result<u64> {
        let store = node.store().clone();
        let listed = list(node, &self.dir).await?;
        take_lease(node, s).await?;
        let state = node.state().clone();
        let named = named(state).await?;
        let cutoff = node.clock().now_ms() - self.grace.as_millis() as i64;
        let doomed: Vec<Path> = listed
            .into_iter()
            .filter(|m| m.last_modified.timestamp_millis() <= cutoff)
            .filter(|m| {
                store.paths.strip_prefix(&m.location).is_some_and(|rel| {
                    !named.contains(&rel)
                        && self.keep_under.is_none_or(|k| {
                            !rel.strip_prefix(k).is_some_and(|r| r.starts_with('/'))
                        })
                })
            })
            .map(|m| m.location)
            .collect();
        if !doomed.is_empty() {
            observer.step(self.step);
            info!(count = doomed.len(), "deleting {}", self.what);
        }
        delete(node, doomed).await
    }
}

/// Drops ranges past retention and removes archive files past the archive retention from the
/// catalogue; returns those files, to delete once the Iceberg table no longer names them
/// ([`delete_expired`]).
pub async fn expire(
    node: &Node,
    s: &CompactSettings,
    catalogues: &CatalogueCache,
    observer: &dyn Observer,
    report: &mut PassReport,
) -> Result<Vec<Path>> {
    // 1. Offset ranges.
    let commands: Vec<Command> = {
        let state = node.state();
        let now = state.time_ms.max(node.clock().now_ms());
        let mut out = Vec::new();
        for (topic, t) in &state.topics {
            for (qi, q) in t.queues.iter().enumerate() {
                if q.index.is_empty() && q.ranges.is_empty() {
                    continue;
                }
                let to = state.droppable_to(topic, qi as u32, now);
                if to > q.first_held() {
                    out.push(Command::DropRanges {
                        topic: topic.clone(),
                        queue: qi as u32,
                        below: to,
                    });
                }
            }
        }
        out
    };
    if !commands.is_empty() {
        observer.step("drop ranges");
        report.queues_trimmed = commands.len() as u64;
        submit(node, commands).await?;
    }

    // 2. Archive retention.
    let Some(keep) = s.archive_retention else {
        return Ok(Vec::new());
    };
    // Oldest first: a queue's runs (whole once their newest message is past the cutoff; the
    // first run still holding newer files is cut, what is left written as a run of its own),
    // then its listed files; each command with the files it forgets.
    let (cutoff, runs, files) = {
        let state = node.state();
        let cutoff = state.time_ms.max(node.clock().now_ms()) - keep.as_millis() as i64;
        let mut runs = Vec::new();
        let mut files = Vec::new();
        for (topic, qs) in &state.archive.queues {
            for (queue, qa) in qs {
                let mut expired = 0;
                for r in qa.runs.iter().take_while(|r| r.min_time_ms < cutoff) {
                    runs.push((topic.clone(), *queue, r.clone()));
                    expired += 1;
                    if r.max_time_ms >= cutoff {
                        break;
                    }
                }
                if expired < qa.runs.len()
                    || qa.runs.last().is_some_and(|r| r.max_time_ms >= cutoff)
                {
                    continue;
                }
                for f in qa.files.iter().take_while(|f| f.max_time_ms < cutoff) {
                    files.push((
                        Command::ExpireArchive {
                            topic: topic.clone(),
                            queue: *queue,
                            path: f.path.clone(),
                        },
                        vec![f.path.clone()],
                    ));
                }
            }
        }
        (cutoff, runs, files)
    };
    let store = node.store().clone();
    let mut doomed = Vec::with_capacity(runs.len() + files.len());
    for (topic, queue, run) in runs {
        let listed = catalogues.files(&store, &topic, queue, &run).await?;
        let gone = listed.iter().take_while(|f| f.max_time_ms < cutoff).count();
        if gone == 0 {
            continue;
        }
        let rest = if gone < listed.len() {
            let object = Paths::catalogue_name(&new_ulid(&**node.clock()));
            let left = &listed[gone..];
            put_object(&store, &object, catalogue::encode(&topic, queue, left)).await?;
            Some(CatalogueRun::summarize(&object, run.level, left))
        } else {
            None
        };
        doomed.push((
            Command::ExpireCatalogueRun {
                topic,
                queue,
                object: run.object.clone(),
                rest,
            },
            listed[..gone]
                .iter()
                .map(|f| f.path.clone())
                .collect::<Vec<_>>(),
        ));
    }
    doomed.extend(files);
    if doomed.is_empty() {
        return Ok(Vec::new());
    }
    observer.step("expire archive");
    let (commands, paths): (Vec<Command>, Vec<Vec<String>>) = doomed.into_iter().unzip();
    let (_, outcomes) = submit(node, commands).await?;
    // A file still catalogued (listed: runs and files never share one) is not deleted.
    let catalogued = node.state().archive.paths();
    Ok(paths
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, Outcome::Done))
        .flat_map(|(ps, _)| ps.iter())
        .filter(|p| !catalogued.contains(*p))
        .map(|p| store.paths.relative(p))
        .collect())
}

/// Deletes the archive files [`expire`] removed from the catalogue.
pub async fn delete_expired(
    node: &Node,
    observer: &dyn Observer,
    doomed: Vec<Path>,
    report: &mut PassReport,
) -> Result<()> {
    if !doomed.is_empty() {
        observer.step("delete expired archive");
        report.archive_files_expired = delete(node, doomed).await?;
    }
    Ok(())
}

/// Deletes segments no longer referenced, older than the segment grace.
pub async fn collect_segments(
    node: &Node,
    s: &CompactSettings,
    observer: &dyn Observer,
    report: &mut PassReport,
) -> Result<()> {
    let segments = Unreferenced {
        dir: node.store().paths.segment_dir(),
        grace: s.segment_grace,
        step: "delete segments",
        what: "unreferenced segments",
        keep_under: None,
    };
    let store = node.store().clone();
    let index = IndexCache::new(64 * 1024 * 1024);
    report.segments_deleted = segments
        .collect(node, s, observer, async |st| {
            let mut named = st.referenced_segments();
            named.extend(
                segment_writer::manifest::index::indexed_segments(&store, &index, &st).await?,
            );
            Ok(named)
        })
        .await?;
    Ok(())
}
