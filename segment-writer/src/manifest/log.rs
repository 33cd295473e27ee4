//! The manifest log in the bucket: `manifest/log/<v>` objects created only if absent, and
//! `manifest/checkpoints/<v>` snapshots.
//!
//! - **Open**: newest checkpoint (one LIST, one GET) + LIST of the log after it + parallel GETs.
//! - **Commit**: [`ManifestLog::try_commit`] creates version v+1. On `AlreadyExists` it reads the
//!   winner: if the winner carries my nonce it was my own write (a lost response or a retried
//!   put) and succeeded; otherwise it applies the winner and reports a conflict so the caller
//!   re-evaluates its commands on the new state.
//! - **Garbage collection** never reopens a version to a stale writer: versions are deleted only
//!   behind a checkpoint older than `gc_grace`, and a writer whose last full refresh is older
//!   than half that grace LISTs the checkpoints again before it writes.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutMode, PutPayload};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::command::{Delta, Entry, FORMAT};
use super::model::{Outcome, State};
use crate::clock::Clock;
use crate::hedge::Hedger;
use crate::paths::Paths;
use crate::store::Store;
use crate::{Error, Result};

/// Settings of the log. The defaults suit S3 and a local directory alike.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    /// Write a checkpoint every this many versions. Larger: fewer checkpoint PUTs; start-up
    /// replays up to this many deltas. Default 500.
    pub checkpoint_every: u64,
    /// ... and no sooner than this after the previous one. A checkpoint is the whole state
    /// (tens of KB compressed under load, the offset index being folded out: 15 to 60 KB in
    /// docs/benchmarks.md); at 1,000 versions/s, 500 versions would still mean writing one
    /// twice a second. Start-up replays at most this long's deltas more. Default 2 s.
    pub checkpoint_min_interval: Duration,
    /// Delete log versions and checkpoints only this long behind a retained checkpoint. A
    /// writer stalled longer than half of it re-reads before writing. Default 10 min.
    pub gc_grace: Duration,
    /// Parallel GETs when replaying. Default 32.
    pub replay_parallelism: usize,
    /// Attempts of one put before the commit fails as unavailable. Default 3.
    pub put_attempts: u32,
    /// Send a second identical create when one takes longer than the recent p90 (hedged
    /// PUTs). Default true.
    pub hedge: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            checkpoint_every: 500,
            checkpoint_min_interval: Duration::from_secs(2),
            gc_grace: Duration::from_secs(600),
            replay_parallelism: 32,
            put_attempts: 3,
            hedge: true,
        }
    }
}

/// A checkpoint object's content.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    format: u32,
    state: State,
}

/// The first bytes of a compressed checkpoint; what follows is a zstd frame (with its content
/// checksum) of the JSON of the state with its format. A checkpoint that starts with `{` is
/// the plain JSON written before.
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"FMQCKZ1\n";

/// zstd level of checkpoints: JSON of a state compresses about 8x at level 3, at a few
/// hundred MB/s.
const CHECKPOINT_ZSTD_LEVEL: i32 = 3;

/// Encodes a state as a checkpoint object: the magic, then zstd of its JSON.
pub fn encode_checkpoint(state: &State) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        format: u32,
        state: &'a State,
    }
    let json = serde_json::to_vec(&Borrowed {
        format: FORMAT,
        state,
    })
    .map_err(|e| Error::Invalid(format!("cannot encode checkpoint: {e}")))?;
    let compress = || -> std::io::Result<Vec<u8>> {
        let mut e = zstd::stream::Encoder::new(CHECKPOINT_MAGIC.to_vec(), CHECKPOINT_ZSTD_LEVEL)?;
        // A damaged checkpoint fails its checksum rather than decoding to other JSON.
        e.include_checksum(true)?;
        std::io::Write::write_all(&mut e, &json)?;
        e.finish()
    };
    compress().map_err(|e| Error::Invalid(format!("cannot compress checkpoint: {e}")))
}

/// The JSON inside a checkpoint object (compressed or plain).
pub fn checkpoint_json(path: &object_store::path::Path, bytes: &[u8]) -> Result<Vec<u8>> {
    if let Some(z) = bytes.strip_prefix(CHECKPOINT_MAGIC.as_slice()) {
        zstd::stream::decode_all(z)
            .map_err(|e| Error::corrupt(path, format!("checkpoint does not decompress: {e}")))
    } else if bytes.first() == Some(&b'{') {
        Ok(bytes.to_vec())
    } else {
        Err(Error::corrupt(path, "not a checkpoint"))
    }
}

/// Decodes a checkpoint object of either encoding.
pub fn decode_checkpoint(path: &object_store::path::Path, bytes: &[u8]) -> Result<State> {
    let json = checkpoint_json(path, bytes)?;
    let c: Checkpoint = serde_json::from_slice(&json)
        .map_err(|e| Error::corrupt(path, format!("not a checkpoint: {e}")))?;
    if c.format != FORMAT {
        return Err(Error::corrupt(
            path,
            format!("unsupported checkpoint format {}", c.format),
        ));
    }
    Ok(c.state)
}

/// One delta as applied, with its outcomes.
#[derive(Debug, Clone)]
pub struct AppliedDelta {
    pub delta: Arc<Delta>,
    pub outcomes: Vec<Vec<Outcome>>,
    /// It did not follow the head it named ([`State::is_orphan`]): it changed nothing.
    pub orphan: bool,
}

/// A delta encoded for its version, not yet written ([`ManifestLog::prepare`]).
#[derive(Debug, Clone)]
pub struct PreparedDelta {
    pub delta: Delta,
    bytes: Bytes,
    path: object_store::path::Path,
    /// When it was prepared: if it lands as mine, what the writer knew of the head then was
    /// the truth (see [`ManifestLog::is_stale`]).
    prepared_at: tokio::time::Instant,
}

/// What creating a prepared delta's version found.
#[derive(Debug)]
pub enum Created {
    /// The create succeeded: the version is mine.
    Written,
    /// The version exists: mine (a lost response) or another writer's.
    Taken,
    /// The store failed every attempt: the version may or may not hold my delta.
    Failed(Error),
}

/// The result of one commit attempt.
#[derive(Debug)]
pub enum CommitAttempt {
    /// My delta is version `applied.delta.version`.
    Committed(AppliedDelta),
    /// Another writer's delta took the version; it has been applied. Re-evaluate and retry.
    Conflict(AppliedDelta),
}

/// The log and the state replayed from it.
#[derive(Debug)]
pub struct ManifestLog {
    store: Store,
    settings: LogSettings,
    clock: Arc<dyn Clock>,
    state: Arc<RwLock<State>>,
    writer: String,
    rng: rand::rngs::SmallRng,
    last_full_refresh: tokio::time::Instant,
    last_checkpoint: u64,
    /// When this writer last started a checkpoint (`None`: not yet).
    last_checkpoint_at: Option<tokio::time::Instant>,
    hedger: Arc<Hedger>,
    /// The lowest log version that may still exist below the collected ones (0: unknown, the
    /// next collection LISTs the log once), shared with the checkpoint jobs.
    collected_from: Arc<AtomicU64>,
}

pub(crate) fn decode_delta(path: &object_store::path::Path, bytes: &[u8]) -> Result<Delta> {
    let d: Delta = serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(path, format!("not a manifest delta: {e}")))?;
    if d.format != FORMAT {
        return Err(Error::corrupt(
            path,
            format!("unsupported delta format {}", d.format),
        ));
    }
    Ok(d)
}

/// GETs an immutable object (`None` if absent), retrying a failed call a few times with a
/// short backoff: opening a log reads hundreds of objects, and one transient store error among
/// them must not fail the whole open (found by the history checker at 5% store errors).
pub(crate) async fn get_retrying(
    store: &Store,
    clock: &Arc<dyn Clock>,
    path: &object_store::path::Path,
) -> Result<Option<Bytes>> {
    const ATTEMPTS: u32 = 4;
    let backoff = |n: u32| Duration::from_millis(20 << n);
    crate::store::retrying(
        clock.as_ref(),
        ATTEMPTS,
        backoff,
        "manifest get",
        || async {
            match store.inner.get(path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
            .map_err(|e| Error::store("get", path, e))
        },
    )
    .await
}

impl ManifestLog {
    /// Opens the log: newest checkpoint plus the versions after it. `writer` names this
    /// incarnation in the deltas it writes; `seed` seeds its nonces.
    pub async fn open(
        store: Store,
        settings: LogSettings,
        clock: Arc<dyn Clock>,
        writer: String,
        seed: u64,
    ) -> Result<Self> {
        let mut log = ManifestLog {
            store,
            hedger: Arc::new(Hedger::new(settings.hedge, Duration::from_millis(2))),
            settings,
            last_full_refresh: clock.instant(),
            clock,
            state: Arc::new(RwLock::new(State::default())),
            writer,
            rng: rand::rngs::SmallRng::seed_from_u64(seed),
            last_checkpoint: 0,
            last_checkpoint_at: None,
            collected_from: Arc::new(AtomicU64::new(0)),
        };
        log.full_refresh().await?;
        Ok(log)
    }

    /// The shared state (read it; only the log writes it).
    pub fn state(&self) -> Arc<RwLock<State>> {
        self.state.clone()
    }

    /// The applied version.
    pub fn version(&self) -> u64 {
        self.read().version
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().expect("state lock poisoned")
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn newest_checkpoint(&self) -> Result<Option<u64>> {
        let dir = self.store.paths.checkpoint_dir();
        Ok(list_versions(&self.store, &dir, None).await?.pop())
    }

    /// LISTs the checkpoints; loads a newer one than the state if there is; then replays the
    /// log after it.
    pub async fn full_refresh(&mut self) -> Result<Vec<AppliedDelta>> {
        let started = self.clock.instant();
        if let Some(cp) = self.newest_checkpoint().await? {
            if cp > self.version() {
                let path = self.store.paths.checkpoint(cp);
                let bytes = self
                    .get(&path)
                    .await?
                    .ok_or_else(|| Error::corrupt(&path, "listed checkpoint vanished"))?;
                let state = decode_checkpoint(&path, &bytes)?;
                if state.version != cp {
                    return Err(Error::corrupt(&path, "checkpoint version mismatch"));
                }
                info!(
                    version = cp,
                    bytes = bytes.len(),
                    "loaded manifest checkpoint"
                );
                *self.state.write().expect("state lock poisoned") = state;
                self.last_checkpoint = cp;
            }
        }
        let applied = self.replay_listed().await?;
        // What was written after the LIST is chased one GET at a time; against a busy
        // sequencer that can be hundreds of GETs, and one failing must not fail the open (found
        // by the history checker: a restarted gateway never got ready at 5% store errors while
        // the log grew by ~400 versions/s). Tailing catches up the rest.
        let mut more = match self.catch_up().await {
            Ok(more) => more,
            Err(e) => {
                warn!(error = %e, version = self.version(), "catching up after the listed log failed; tailing will go on");
                Vec::new()
            }
        };
        self.last_full_refresh = started;
        let mut all = applied;
        all.append(&mut more);
        Ok(all)
    }

    /// LIST of the log after the state's version, then parallel GETs, applied in order.
    async fn replay_listed(&mut self) -> Result<Vec<AppliedDelta>> {
        let from = self.version();
        let run = match self.store.local_dir() {
            // A local directory's LIST walks every file of the log (at 1,000 versions/s that
            // is 600,000 within the collection grace, seconds of a restart): look the next
            // versions up by name instead, a stat each.
            Some(root) => {
                let paths = self.store.paths.clone();
                tokio::task::spawn_blocking(move || {
                    (from + 1..)
                        .take_while(|v| root.join(paths.log_version(*v).as_ref()).exists())
                        .collect::<Vec<u64>>()
                })
                .await
                .map_err(|e| Error::Invalid(format!("log probe failed: {e}")))?
            }
            None => {
                let dir = self.store.paths.log_dir();
                let offset = self.store.paths.log_version(from);
                let mut versions = list_versions(&self.store, &dir, Some(&offset)).await?;
                versions.retain(|v| *v > from);
                // Only the contiguous run after `from`; anything beyond a gap is read by
                // catch_up.
                versions
                    .iter()
                    .copied()
                    .enumerate()
                    .take_while(|(i, v)| *v == from + 1 + *i as u64)
                    .map(|(_, v)| v)
                    .collect()
            }
        };
        let store = self.store.clone();
        let clock = self.clock.clone();
        let mut fetched = futures::stream::iter(run.into_iter().map(|v| {
            let (store, clock) = (store.clone(), clock.clone());
            async move {
                let path = store.paths.log_version(v);
                let bytes = get_retrying(&store, &clock, &path)
                    .await?
                    .ok_or_else(|| Error::corrupt(&path, "listed log version vanished"))?;
                decode_delta(&path, &bytes)
            }
        }))
        // Unordered, so one slow GET does not hold back the others' slots; applied in order
        // from a reorder buffer.
        .buffer_unordered(self.settings.replay_parallelism.max(1));
        let mut applied = Vec::new();
        let mut ready: std::collections::BTreeMap<u64, Delta> = std::collections::BTreeMap::new();
        while let Some(d) = fetched.next().await {
            let d = d?;
            ready.insert(d.version, d);
            while let Some(next) = ready.remove(&(self.version() + 1)) {
                applied.push(self.apply(next)?);
            }
        }
        if let Some((&v, _)) = ready.first_key_value() {
            let path = self.store.paths.log_version(v);
            return Err(Error::corrupt(
                path,
                "a listed log version does not follow its predecessor",
            ));
        }
        if !applied.is_empty() {
            debug!(from, to = self.version(), "replayed manifest log");
        }
        Ok(applied)
    }

    fn apply(&mut self, delta: Delta) -> Result<AppliedDelta> {
        let path = self.store.paths.log_version(delta.version);
        let mut state = self.state.write().expect("state lock poisoned");
        let orphan = state.is_orphan(&delta);
        let outcomes = state.apply(&delta).map_err(|e| Error::corrupt(path, e))?;
        drop(state);
        Ok(AppliedDelta {
            delta: Arc::new(delta),
            outcomes,
            orphan,
        })
    }

    async fn get(&self, path: &object_store::path::Path) -> Result<Option<Bytes>> {
        get_retrying(&self.store, &self.clock, path).await
    }

    /// GETs the versions after the state's until one is not found.
    pub async fn catch_up(&mut self) -> Result<Vec<AppliedDelta>> {
        let mut applied = Vec::new();
        self.catch_up_each(0, |a| applied.push(a.clone())).await?;
        Ok(applied)
    }

    /// Like [`ManifestLog::catch_up`], calling `on_apply` as each version is applied.
    /// Versions up to `known` (known to exist) are fetched in parallel, up to 32 at a time.
    /// Beyond it each version is a guess, and a guess that is not there costs a GET: the
    /// first round asks for the next version alone (an idle tail costs one GET), the next
    /// for one more, and only while every round finds all it asked for does the width double
    /// (to 16), so a follower catches up with a busy sequencer without chasing it one round
    /// trip at a time, and one that is a version behind wastes one GET, not two.
    pub async fn catch_up_each(
        &mut self,
        known: u64,
        mut on_apply: impl FnMut(&AppliedDelta),
    ) -> Result<usize> {
        let mut guess = 1u64;
        let mut full_rounds = 0u32;
        let mut n = 0;
        loop {
            let from = self.version() + 1;
            let width = if known >= from {
                (known - from + 1).min(32)
            } else {
                guess
            };
            let (store, clock) = (self.store.clone(), self.clock.clone());
            let mut fetched = futures::stream::iter((from..from + width).map(|v| {
                let (store, clock) = (store.clone(), clock.clone());
                async move {
                    let path = store.paths.log_version(v);
                    let bytes = get_retrying(&store, &clock, &path).await?;
                    Ok::<_, Error>((path, bytes))
                }
            }))
            .buffered(width as usize);
            while let Some(r) = fetched.next().await {
                let (path, bytes) = r?;
                let Some(bytes) = bytes else { return Ok(n) };
                let applied = self.apply(decode_delta(&path, &bytes)?)?;
                on_apply(&applied);
                n += 1;
            }
            if known < from {
                full_rounds += 1;
                if full_rounds >= 2 {
                    guess = (guess * 2).min(16);
                }
            }
        }
    }

    /// The median latency of this writer's recent creates (`None` until it has made a few).
    pub fn typical_create(&self) -> Option<Duration> {
        self.hedger.median()
    }

    /// Whether what this writer knows of the head is older than half the GC grace: its last
    /// full refresh, or the preparing of its last delta that applied, is that old.
    pub fn is_stale(&self) -> bool {
        self.last_full_refresh.elapsed() > self.settings.gc_grace / 2
    }

    /// Tries once to write `entries` as the next version (nothing else in flight).
    pub async fn try_commit(&mut self, entries: Vec<Entry>) -> Result<CommitAttempt> {
        if let Some(last) = self.refresh_if_stale().await? {
            return Ok(CommitAttempt::Conflict(last));
        }
        let prepared = self.prepare(entries, None)?;
        let created = self.create(&prepared).await;
        self.settle(prepared, created).await
    }

    /// Re-reads the log (checkpoints first) when the last full refresh is older than half the
    /// GC grace, so a stalled writer never creates a version GC has deleted; the last delta
    /// that re-read applied, if any. Call only with nothing in flight.
    pub async fn refresh_if_stale(&mut self) -> Result<Option<AppliedDelta>> {
        if !self.is_stale() {
            return Ok(None);
        }
        Ok(self.full_refresh().await?.into_iter().last())
    }

    /// Encodes `entries` as the version after `after` (a delta prepared and still in flight),
    /// or else after the state's version, naming that delta (or the state's head) as parent.
    pub fn prepare(
        &mut self,
        entries: Vec<Entry>,
        after: Option<&PreparedDelta>,
    ) -> Result<PreparedDelta> {
        let (version, time_ms, parent) = match after {
            Some(p) => (
                p.delta.version + 1,
                p.delta.time_ms.max(self.clock.now_ms()),
                Some(p.delta.id()),
            ),
            None => {
                let s = self.read();
                (
                    s.version + 1,
                    s.time_ms.max(self.clock.now_ms()),
                    s.head.clone(),
                )
            }
        };
        let delta = Delta {
            format: FORMAT,
            version,
            time_ms,
            writer: self.writer.clone(),
            nonce: self.rng.random(),
            parent,
            entries,
        };
        let bytes = Bytes::from(
            serde_json::to_vec(&delta)
                .map_err(|e| Error::Invalid(format!("cannot encode delta: {e}")))?,
        );
        let path = self.store.paths.log_version(version);
        Ok(PreparedDelta {
            delta,
            bytes,
            path,
            prepared_at: self.clock.instant(),
        })
    }

    /// Creates `prepared` only if its version is absent: hedged, and retried with the same
    /// bytes up to `put_attempts` times. Owns what it needs, so it can run on its own task
    /// while the writer prepares the next delta.
    pub fn create(&self, prepared: &PreparedDelta) -> impl Future<Output = Created> + 'static {
        let (store, clock, hedger) = (self.store.clone(), self.clock.clone(), self.hedger.clone());
        let (path, bytes) = (prepared.path.clone(), prepared.bytes.clone());
        let (attempts, version) = (self.settings.put_attempts, prepared.delta.version);
        async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let inner = &store.inner;
                let put = hedger
                    .run(
                        clock.as_ref(),
                        || {
                            inner.put_opts(
                                &path,
                                PutPayload::from(bytes.clone()),
                                PutMode::Create.into(),
                            )
                        },
                        |r| {
                            matches!(
                                r,
                                Ok(_)
                                    | Err(object_store::Error::AlreadyExists { .. }
                                        | object_store::Error::Precondition { .. })
                            )
                        },
                    )
                    .await;
                match put {
                    Ok(_) => return Created::Written,
                    Err(
                        object_store::Error::AlreadyExists { .. }
                        | object_store::Error::Precondition { .. },
                    ) => return Created::Taken,
                    Err(e) if attempt < attempts => {
                        warn!(error = %e, attempt, version, "manifest put failed; retrying the same bytes");
                        clock
                            .sleep(Duration::from_millis(5 * u64::from(attempt)))
                            .await;
                    }
                    Err(e) => return Created::Failed(Error::store("put", &path, e)),
                }
            }
        }
    }

    /// Applies the result of creating `prepared`, which must be the next version: mine if it
    /// was written (or the version holds my nonce: a lost response or a hedged duplicate),
    /// else the winner that holds the version. A failed create is returned as the error (the
    /// delta may or may not have landed).
    pub async fn settle(
        &mut self,
        prepared: PreparedDelta,
        created: Created,
    ) -> Result<CommitAttempt> {
        let PreparedDelta {
            delta,
            path,
            prepared_at,
            ..
        } = prepared;
        // A delta of mine that applies proves the log was as I knew it when I prepared it.
        let mine = |log: &mut Self, delta: Delta| -> Result<CommitAttempt> {
            let applied = log.apply(delta)?;
            if !applied.orphan {
                log.last_full_refresh = log.last_full_refresh.max(prepared_at);
            }
            Ok(CommitAttempt::Committed(applied))
        };
        match created {
            Created::Written => mine(self, delta),
            Created::Failed(e) => Err(e),
            Created::Taken => {
                // Someone holds the version: me (a lost response) or another writer.
                let winner = self.get(&path).await?.ok_or_else(|| {
                    Error::corrupt(&path, "create conflicted but the version is absent")
                })?;
                let winner = decode_delta(&path, &winner)?;
                if winner.nonce == delta.nonce && winner.writer == delta.writer {
                    return mine(self, delta);
                }
                Ok(CommitAttempt::Conflict(self.apply(winner)?))
            }
        }
    }

    /// Whether a checkpoint is due at the current version.
    pub fn checkpoint_due(&self) -> bool {
        let v = self.version();
        v > 0
            && v >= self.last_checkpoint + self.settings.checkpoint_every
            && self
                .last_checkpoint_at
                .is_none_or(|at| self.clock.instant() >= at + self.settings.checkpoint_min_interval)
    }

    /// Writes a checkpoint of the current state, then deletes what it makes unnecessary.
    pub async fn checkpoint_and_gc(&mut self) -> Result<()> {
        self.checkpoint_job().await
    }

    /// A snapshot of the current state and the work of writing it as a checkpoint and then
    /// collecting what it makes unnecessary, as a future that owns what it needs: the
    /// sequencer runs it on its own task so a checkpoint never holds up commits.
    pub fn checkpoint_job(&mut self) -> impl Future<Output = Result<()>> + Send + 'static {
        let state = self.read().clone();
        let version = state.version;
        self.last_checkpoint = version;
        self.last_checkpoint_at = Some(self.clock.instant());
        let (store, clock, grace, floor) = (
            self.store.clone(),
            self.clock.clone(),
            self.settings.gc_grace,
            self.collected_from.clone(),
        );
        async move {
            let (time_ms, inline_from) = (state.time_ms, oldest_inline(&state));
            let path = store.paths.checkpoint(version);
            let bytes = tokio::task::spawn_blocking(move || encode_checkpoint(&state))
                .await
                .map_err(|e| Error::Invalid(format!("checkpoint encoder failed: {e}")))??;
            match store
                .inner
                .put_opts(&path, PutPayload::from(bytes), PutMode::Create.into())
                .await
            {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(Error::store("put", &path, e)),
            }
            debug!(version, "wrote manifest checkpoint");
            collect(&store, &clock, grace, time_ms, inline_from, &floor).await
        }
    }

    /// Deletes log versions and checkpoints behind the newest checkpoint older than the grace.
    pub async fn gc(&mut self) -> Result<()> {
        let (time_ms, inline_from) = {
            let s = self.read();
            (s.time_ms, oldest_inline(&s))
        };
        collect(
            &self.store,
            &self.clock,
            self.settings.gc_grace,
            time_ms,
            inline_from,
            &self.collected_from,
        )
        .await
    }
}

/// The versions named by the objects LISTed under `dir` (after `offset`), ascending.
async fn list_versions(
    store: &Store,
    dir: &object_store::path::Path,
    offset: Option<&object_store::path::Path>,
) -> Result<Vec<u64>> {
    let listed = match offset {
        Some(offset) => store.inner.list_with_offset(Some(dir), offset),
        None => store.inner.list(Some(dir)),
    };
    let metas: Vec<_> = listed
        .try_collect()
        .await
        .map_err(|e| Error::store("list", dir, e))?;
    let mut versions: Vec<u64> = metas
        .iter()
        .filter_map(|m| Paths::parse_version(&m.location))
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

/// The oldest log version still holding an inline segment that is not yet its own object.
fn oldest_inline(state: &State) -> u64 {
    state
        .inline_segments
        .values()
        .min()
        .copied()
        .unwrap_or(u64::MAX)
}

/// Deletes log versions and checkpoints behind the newest checkpoint older than `grace` before
/// `time_ms` (judged by delta time, read from the log version the checkpoint is at), keeping
/// every version from `inline_from` on (they hold inline segments' bytes). Log versions are
/// deleted by name from `floor` (the lowest that may still exist) up; only when `floor` is
/// unknown (0, after a start) is the log LISTed, once: at hundreds of versions per second a
/// LIST of the whole log at every checkpoint would be most of the GC's cost.
async fn collect(
    store: &Store,
    clock: &Arc<dyn Clock>,
    grace: Duration,
    time_ms: i64,
    inline_from: u64,
    floor: &AtomicU64,
) -> Result<()> {
    let cps = list_versions(store, &store.paths.checkpoint_dir(), None).await?;
    let cutoff = time_ms - grace.as_millis() as i64;
    // The retained checkpoint: the newest one whose version is older than the grace.
    let mut retained = None;
    for &v in cps.iter().rev() {
        let path = store.paths.log_version(v);
        let time = match get_retrying(store, clock, &path).await? {
            Some(b) => decode_delta(&path, &b)?.time_ms,
            None => i64::MIN,
        };
        if time <= cutoff {
            retained = Some(v);
            break;
        }
    }
    let Some(retained) = retained else {
        return Ok(());
    };
    // A version that holds an inline segment not yet written as its own object is still
    // where that segment's bytes are: keep it and everything after it.
    let mut doomed: Vec<object_store::path::Path> = cps
        .iter()
        .filter(|v| **v < retained)
        .map(|v| store.paths.checkpoint(*v))
        .collect();
    let log_dir = store.paths.log_dir();
    // Every version up to `upper` goes (none at or after the oldest inline one).
    let upper = retained.min(inline_from.saturating_sub(1));
    let from = floor.load(Ordering::SeqCst);
    if from == 0 {
        let listed = list_versions(store, &log_dir, None).await?;
        doomed.extend(
            listed
                .into_iter()
                .filter(|v| *v <= upper)
                .map(|v| store.paths.log_version(v)),
        );
    } else {
        doomed.extend((from..=upper).map(|v| store.paths.log_version(v)));
    }
    let n = doomed.len();
    if n > 0 {
        let stream = futures::stream::iter(doomed.into_iter().map(Ok)).boxed();
        store
            .inner
            .delete_stream(stream)
            // Deleting by name may name a version already gone.
            .or_else(|e| async move {
                match e {
                    object_store::Error::NotFound { path, .. } => Ok(path.into()),
                    e => Err(e),
                }
            })
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| Error::store("delete", &log_dir, e))?;
        info!(retained, deleted = n, "manifest garbage collected");
    }
    floor.fetch_max(upper.saturating_add(1), Ordering::SeqCst);
    Ok(())
}
