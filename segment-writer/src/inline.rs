//! Small segments carried inside manifest deltas ([`Command::InlineSegment`]): where their
//! bytes are read from, and the sequencer's job of writing them out as their own objects.
//!
//! A publish batch below the gateway's inline threshold rides in the delta that appends it:
//! one PUT on the acknowledgement path instead of a segment PUT followed by a commit. The
//! segment keeps its ordinary name, so offset ranges, timers and half messages point at it as
//! at any segment. Shortly after, the sequencer GETs the version, writes the bytes under that
//! name and commits [`Command::Materialized`]; from then on reads go to the object and the log
//! version may be collected (`ManifestLog::gc` keeps every version from the oldest one still
//! holding an inline segment).

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::StreamExt;
use object_store::{PutMode, PutPayload};

use crate::manifest::{Command, Delta, PackedPart, State, log::decode_delta, log::get_retrying};
use crate::node::Node;
use crate::segment::{self, Message};
use crate::segment_store;
use crate::store::Store;
use crate::{Error, Result};

/// Inline segments written out per round at most (one `Materialized` delta each).
const PER_ROUND: usize = 256;

/// Rounds per [`materialize`] call at most, so that a call returns (and its caller checks it
/// is still the sequencer) even when publishers keep the backlog full.
const MAX_ROUNDS: usize = 16;

/// Segment PUTs in flight while writing out.
const PUTS_IN_FLIGHT: usize = 32;

/// The inline segments a delta carries: (segment name, bytes).
pub fn inline_segments(delta: &Delta) -> impl Iterator<Item = (&str, &Bytes)> {
    delta
        .entries
        .iter()
        .flat_map(|e| &e.commands)
        .filter_map(|c| match c {
            Command::InlineSegment { segment, data, .. } => Some((segment.as_str(), data)),
            _ => None,
        })
}

/// Log version `version`, which holds inline segments (it must exist: GC keeps it).
async fn read_version(
    store: &Store,
    clock: &Arc<dyn crate::clock::Clock>,
    version: u64,
) -> Result<(object_store::path::Path, Delta)> {
    let path = store.paths.log_version(version);
    let bytes = get_retrying(store, clock, &path)
        .await?
        .ok_or_else(|| Error::corrupt(&path, "a log version holding inline segments is missing"))?;
    let delta = decode_delta(&path, &bytes)?;
    Ok((path, delta))
}

/// Where segment `name`'s bytes are now: the log version holding it inline, if it is inline.
pub fn inline_version(state: &RwLock<State>, name: &str) -> Option<u64> {
    state
        .read()
        .expect("state lock poisoned")
        .inline_segments
        .get(name)
        .copied()
}

/// Reads a whole segment wherever it is: inline in a log version, or its own object.
pub async fn read_segment_anywhere(
    store: &Store,
    state: &RwLock<State>,
    name: &str,
) -> Result<Vec<Message>> {
    match inline_version(state, name) {
        Some(version) => read_inline(store, version, name).await,
        None => segment_store::read_segment(store, name).await,
    }
}

/// The raw bytes of a segment wherever it is: inline in a log version, or its own object
/// (for [`segment::CheckedSegment`], which borrows messages from them).
pub async fn segment_bytes_anywhere(
    store: &Store,
    state: &RwLock<State>,
    name: &str,
) -> Result<Bytes> {
    match inline_version(state, name) {
        Some(version) => {
            let (path, delta) =
                read_version(store, &crate::clock::TokioClock::shared(), version).await?;
            inline_segments(&delta)
                .find(|(n, _)| *n == name)
                .map(|(_, b)| b.clone())
                .ok_or_else(|| Error::corrupt(&path, format!("holds no inline segment {name}")))
        }
        None => segment_store::get_segment_bytes(store, name).await,
    }
}

/// Reads inline segment `name` from log version `version`, which holds it.
pub async fn read_inline(store: &Store, version: u64, name: &str) -> Result<Vec<Message>> {
    let (path, delta) = read_version(store, &crate::clock::TokioClock::shared(), version).await?;
    let bytes = inline_segments(&delta)
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b)
        .ok_or_else(|| Error::corrupt(&path, format!("holds no inline segment {name}")))?;
    segment::decode(bytes).map_err(|e| Error::corrupt(store.paths.segment(name), e))
}

/// The bytes of recent inline segments, kept from the deltas this gateway applies so that the
/// sequencer writes them out without reading the log back. Bounded in bytes: beyond the bound
/// a segment is not kept, and [`materialize`] GETs its log version instead.
#[derive(Debug)]
pub struct InlineBytes {
    max_bytes: usize,
    kept: std::sync::Mutex<(usize, std::collections::HashMap<String, Bytes>)>,
}

impl InlineBytes {
    /// Keeps at most `max_bytes` of inline segments.
    pub fn new(max_bytes: usize) -> Self {
        InlineBytes {
            max_bytes,
            kept: Default::default(),
        }
    }

    /// Keeps the inline segments `delta` carries (while there is room).
    pub fn remember(&self, delta: &Delta) {
        let mut kept = self.kept.lock().expect("inline bytes lock poisoned");
        for (name, data) in inline_segments(delta) {
            if kept.0 + data.len() <= self.max_bytes && !kept.1.contains_key(name) {
                kept.0 += data.len();
                kept.1.insert(name.to_string(), data.clone());
            }
        }
    }

    fn get(&self, name: &str) -> Option<Bytes> {
        let kept = self.kept.lock().expect("inline bytes lock poisoned");
        kept.1.get(name).cloned()
    }

    /// Drops what is no longer inline in `state` (written out, or never applied).
    fn retain_inline(&self, state: &State) {
        let mut kept = self.kept.lock().expect("inline bytes lock poisoned");
        let (total, map) = &mut *kept;
        map.retain(|name, data| {
            let keep = state.inline_segments.contains_key(name);
            if !keep {
                *total -= data.len();
            }
            keep
        });
    }

    /// Bytes kept now.
    pub fn bytes(&self) -> usize {
        self.kept.lock().expect("inline bytes lock poisoned").0
    }
}

/// On the sequencer: writes inline segments out as their own objects and commits
/// [`Command::Materialized`] for them. Returns how many it wrote. Their bytes come from
/// `known` (kept as their deltas were applied), else from a GET of the log version holding
/// them. A create that finds the object there already is fine (the same bytes, written by an
/// earlier round whose commit failed). Rounds follow each other at once while there is a full
/// round's worth left (up to 16 rounds a call): the write-out keeps up with publishing as long
/// as the store does, and the gateways' `--inline-backlog` bounds what it leaves behind.
pub async fn materialize(node: &Node, known: &InlineBytes) -> Result<usize> {
    let mut total = 0;
    for _ in 0..MAX_ROUNDS {
        let n = materialize_round(node, known).await?;
        total += n;
        if n < PER_ROUND || !node.is_sequencer() {
            break;
        }
    }
    Ok(total)
}

/// One round of [`materialize`]: at most [`PER_ROUND`] segments, one commit. The packable
/// ones go out together as one pack object ([`Command::Packed`]), the rest as objects of
/// their own ([`Command::Materialized`]).
async fn materialize_round(node: &Node, known: &InlineBytes) -> Result<usize> {
    known.retain_inline(&node.state());
    let mut writes = Vec::new();
    let mut by_version: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    let packable: std::collections::HashSet<String> = {
        let state = node.state();
        for (name, v) in state.inline_segments.iter().take(PER_ROUND) {
            match known.get(name) {
                Some(data) => writes.push((name.clone(), data)),
                None => by_version.entry(*v).or_default().push(name.clone()),
            }
        }
        writes
            .iter()
            .map(|(n, _)| n)
            .chain(by_version.values().flatten())
            .filter(|n| state.packable.contains_key(*n))
            .cloned()
            .collect()
    };
    if writes.is_empty() && by_version.is_empty() {
        return Ok(0);
    }
    let store = node.store().clone();
    for (version, names) in by_version {
        let (_, delta) = read_version(&store, node.clock(), version).await?;
        for (name, data) in inline_segments(&delta) {
            if names.iter().any(|n| n == name) {
                writes.push((name.to_string(), data.clone()));
            }
        }
    }
    let (to_pack, own): (Vec<_>, Vec<_>) = writes
        .into_iter()
        .partition(|(name, _)| packable.contains(name));
    let mut commands = Vec::new();
    let n = to_pack.len() + own.len();
    if !to_pack.is_empty() {
        let now = node.clock().now_ms();
        let pack = crate::paths::Paths::segment_name(
            &crate::paths::utc_date_hour(now).0,
            &crate::clock::new_ulid(&**node.clock()),
        );
        let (bytes, parts) = encode_pack(&store, to_pack)?;
        put_once(&store, &pack, bytes).await?;
        commands.push(Command::Packed { pack, parts });
    }
    let written: Vec<String> = futures::stream::iter(own.into_iter().map(|(name, data)| {
        let store = store.clone();
        async move { put_once(&store, &name, data).await.map(|()| name) }
    }))
    .buffer_unordered(PUTS_IN_FLIGHT)
    .collect::<Vec<Result<String>>>()
    .await
    .into_iter()
    .collect::<Result<_>>()?;
    if !written.is_empty() {
        commands.push(Command::Materialized { segments: written });
    }
    node.submit(commands).await?;
    known.retain_inline(&node.state());
    Ok(n)
}

/// Writes a segment object under `name` unless it exists: one that does holds the same bytes
/// (written by an earlier round whose commit failed).
async fn put_once(store: &Store, name: &str, data: Bytes) -> Result<()> {
    let path = store.paths.segment(name);
    match store
        .inner
        .put_opts(&path, PutPayload::from(data), PutMode::Create.into())
        .await
    {
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(Error::store("put", &path, e)),
    }
}

/// One segment holding the messages of `segments` one after another, and where each begins.
fn encode_pack(store: &Store, segments: Vec<(String, Bytes)>) -> Result<(Bytes, Vec<PackedPart>)> {
    let total: usize = segments.iter().map(|(_, b)| b.len()).sum();
    let mut builder = segment::SegmentBuilder::with_capacity(64 * 1024, total);
    let mut parts = Vec::with_capacity(segments.len());
    let mut next = 0u32;
    for (name, bytes) in segments {
        let messages =
            segment::decode(&bytes).map_err(|e| Error::corrupt(store.paths.segment(&name), e))?;
        for m in &messages {
            builder.push(m);
        }
        parts.push(PackedPart {
            segment: name,
            first_ordinal: next,
        });
        next += messages.len() as u32;
    }
    Ok((builder.finish(), parts))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use std::time::Duration;

    use object_store::ObjectStoreExt;

    use super::*;
    use crate::clock::{Clock, TokioClock};
    use crate::manifest::{LogSettings, TopicDef, TopicKind};
    use crate::node::{LocalForwarder, NodeSettings};
    use crate::paths::Paths;

    async fn version_exists(store: &Store, v: u64) -> bool {
        store.inner.head(&store.paths.log_version(v)).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn an_inline_segment_is_read_from_the_log_until_written_out_and_keeps_its_version() {
        let clock: Arc<dyn Clock> = TokioClock::shared();
        let store = Store::memory();
        let mut settings = NodeSettings::new("n0", "n0");
        settings.log = LogSettings {
            checkpoint_every: 4,
            checkpoint_min_interval: Duration::ZERO,
            gc_grace: Duration::from_secs(2),
            ..LogSettings::default()
        };
        let local = Arc::new(LocalForwarder::default());
        let node = Node::start(store.clone(), settings, clock.clone(), local.clone(), 1)
            .await
            .unwrap();
        while !node.is_sequencer() {
            clock.sleep(Duration::from_millis(10)).await;
        }
        create_topic(&node, 1).await;
        let messages: Vec<Message> = (0..3u8)
            .map(|i| Message {
                topic: "t".into(),
                body: vec![i; 100].into(),
                ..Message::default()
            })
            .collect();
        let name = Paths::segment_name("2026-12-01", &crate::clock::new_ulid(&*clock));
        let committed = node
            .submit(vec![
                Command::InlineSegment {
                    segment: name.clone(),
                    data: segment::encode(&messages),
                    packable: false,
                },
                Command::Append {
                    topic: "t".into(),
                    queue: 0,
                    segment: name.clone(),
                    first_ordinal: 0,
                    count: 3,
                    publish_time_ms: 0,
                },
            ])
            .await
            .unwrap();
        let held_in = committed.version;
        assert_eq!(inline_version(&node.shared_state(), &name), Some(held_in));
        let state = node.shared_state();
        assert_eq!(
            read_segment_anywhere(&store, &state, &name).await.unwrap(),
            messages
        );
        // No object yet: the bytes are only in the log.
        assert!(segment_store::read_segment(&store, &name).await.is_err());
        // Checkpoints and GC run past it (grace 2 s): the version holding it stays.
        for _ in 0..12 {
            clock.sleep(Duration::from_millis(500)).await;
            node.submit(vec![]).await.unwrap();
        }
        assert!(
            !version_exists(&store, 1).await,
            "GC ran and collected older versions"
        );
        assert!(
            version_exists(&store, held_in).await,
            "the inline segment's version is kept"
        );
        // Written out: the object holds the same bytes and the log may go.
        assert_eq!(materialize(&node, &InlineBytes::new(0)).await.unwrap(), 1);
        assert_eq!(inline_version(&state, &name), None);
        assert_eq!(
            segment_store::read_segment(&store, &name).await.unwrap(),
            messages
        );
        assert_eq!(
            read_segment_anywhere(&store, &state, &name).await.unwrap(),
            messages
        );
        assert_eq!(
            materialize(&node, &InlineBytes::new(0)).await.unwrap(),
            0,
            "nothing left to write"
        );
        for _ in 0..12 {
            clock.sleep(Duration::from_millis(500)).await;
            node.submit(vec![]).await.unwrap();
        }
        assert!(
            !version_exists(&store, held_in).await,
            "collected once written out"
        );
        // Collected by name from where the last collection stopped (no LIST): nothing below
        // the inline version was left behind.
        for v in 1..=held_in + 1 {
            assert!(!version_exists(&store, v).await, "version {v} collected");
        }
        node.shutdown().await;
    }

    /// Creates topic `t` with `queues` queues.
    async fn create_topic(node: &Node, queues: u32) {
        let def = TopicDef {
            kind: TopicKind::Normal,
            queues,
            retention_hours: 1,
        };
        node.submit(vec![Command::CreateTopic {
            topic: "t".into(),
            def,
        }])
        .await
        .unwrap();
    }

    /// A node on `store` with default settings, once it is the sequencer.
    async fn sequencer(store: &Store) -> Node {
        let clock: Arc<dyn Clock> = TokioClock::shared();
        let local = Arc::new(LocalForwarder::default());
        let node = Node::start(
            store.clone(),
            NodeSettings::new("n0", "n0"),
            clock.clone(),
            local,
            1,
        )
        .await
        .unwrap();
        while !node.is_sequencer() {
            clock.sleep(Duration::from_millis(10)).await;
        }
        node
    }

    #[tokio::test(start_paused = true)]
    async fn the_sequencer_writes_out_what_it_kept_without_reading_the_log() {
        let store = Store::memory();
        let node = sequencer(&store).await;
        let mut applied = node.subscribe();
        let data = segment::encode(&[Message {
            topic: "t".into(),
            body: vec![9; 10].into(),
            ..Message::default()
        }]);
        let c = node
            .submit(vec![Command::InlineSegment {
                segment: "s1".into(),
                data: data.clone(),
                packable: false,
            }])
            .await
            .unwrap();
        let known = InlineBytes::new(1024);
        let delta = applied.recv().await.unwrap().delta.clone();
        assert_eq!(delta.version, c.version);
        known.remember(&delta);
        assert_eq!(known.bytes(), data.len());
        // Without the log version, only the kept bytes can write it out.
        store
            .inner
            .delete(&store.paths.log_version(c.version))
            .await
            .unwrap();
        assert_eq!(materialize(&node, &known).await.unwrap(), 1);
        assert_eq!(
            segment_store::get_segment_bytes(&store, "s1")
                .await
                .unwrap(),
            data
        );
        assert_eq!(known.bytes(), 0, "forgotten once written out");
        // A bound of 0 keeps nothing.
        let none = InlineBytes::new(0);
        none.remember(&delta);
        assert_eq!(none.bytes(), 0);
        node.shutdown().await;
    }

    /// Messages of `topic` with bodies `[tag; 10]`, one per tag.
    fn tagged(topic: &str, tags: &[u8]) -> Vec<Message> {
        tags.iter()
            .map(|&t| Message {
                topic: topic.into(),
                body: vec![t; 10].into(),
                ..Message::default()
            })
            .collect()
    }

    fn append(segment: &str, queue: u32, first_ordinal: u32, count: u32) -> Command {
        Command::Append {
            topic: "t".into(),
            queue,
            segment: segment.into(),
            first_ordinal,
            count,
            publish_time_ms: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn packable_segments_go_out_as_one_pack_and_their_ranges_follow() {
        let store = Store::memory();
        let node = sequencer(&store).await;
        create_topic(&node, 2).await;
        // a: queue 0 gets ordinals 0-1, queue 1 ordinal 2; b: queue 0 gets both; c (not
        // packable) goes out on its own.
        let inline = |name: &str, tags: &[u8], packable| Command::InlineSegment {
            segment: name.into(),
            data: segment::encode(&tagged("t", tags)),
            packable,
        };
        node.submit(vec![
            inline("segments/d/a.seg", &[1, 2, 3], true),
            append("segments/d/a.seg", 0, 0, 2),
            append("segments/d/a.seg", 1, 2, 1),
            inline("segments/d/b.seg", &[4, 5], true),
            append("segments/d/b.seg", 0, 0, 2),
            inline("segments/d/c.seg", &[6], false),
            append("segments/d/c.seg", 1, 0, 1),
        ])
        .await
        .unwrap();
        let state = node.shared_state();
        let bodies = |queue: usize| {
            let state = state.read().unwrap();
            let q = &state.topics["t"].queues[queue];
            (q.min_offset..q.next_offset)
                .map(|o| {
                    let (r, ordinal) = q.locate(o).unwrap();
                    (r.segment.clone(), ordinal)
                })
                .collect::<Vec<_>>()
        };
        let read_all = |queue: usize| {
            let store = store.clone();
            let state = state.clone();
            let at = bodies(queue);
            async move {
                let mut out = Vec::new();
                for (name, ordinal) in at {
                    let all = read_segment_anywhere(&store, &state, &name).await.unwrap();
                    out.push(all[ordinal as usize].body[0]);
                }
                out
            }
        };
        assert_eq!(read_all(0).await, vec![1, 2, 4, 5]);
        assert_eq!(read_all(1).await, vec![3, 6]);
        assert_eq!(state.read().unwrap().packable.len(), 2);

        assert_eq!(materialize(&node, &InlineBytes::new(0)).await.unwrap(), 3);
        let s = node.state().clone();
        assert!(
            s.inline_segments.is_empty() && s.packable.is_empty(),
            "{s:?}"
        );
        let objects: Vec<String> = store
            .inner
            .list(Some(&store.paths.segment_dir()))
            .map(|m| m.unwrap().location.to_string())
            .collect()
            .await;
        assert_eq!(objects.len(), 2, "one pack and c: {objects:?}");
        let q0 = bodies(0);
        let pack = &q0[0].0;
        assert!(
            !pack.ends_with("/a.seg") && !pack.ends_with("/b.seg"),
            "{q0:?}"
        );
        assert_eq!(q0.iter().map(|(_, o)| *o).collect::<Vec<_>>(), [0, 1, 3, 4]);
        assert!(q0.iter().all(|(n, _)| n == pack), "{q0:?}");
        assert_eq!(
            bodies(1),
            vec![(pack.clone(), 2), ("segments/d/c.seg".into(), 0)]
        );
        // The same messages, now from the pack's object and c's.
        assert_eq!(read_all(0).await, vec![1, 2, 4, 5]);
        assert_eq!(read_all(1).await, vec![3, 6]);
        // A pack naming parts no longer inline changes nothing.
        let before = node.state().clone();
        node.submit(vec![Command::Packed {
            pack: "segments/d/other.seg".into(),
            parts: vec![PackedPart {
                segment: "segments/d/a.seg".into(),
                first_ordinal: 0,
            }],
        }])
        .await
        .unwrap();
        let after = node.state().clone();
        assert_eq!(after.topics, before.topics);
        node.shutdown().await;
    }

    #[test]
    fn inline_bytes_round_trip_through_json_and_bad_base64_is_refused() {
        let c = Command::InlineSegment {
            segment: "s".into(),
            data: Bytes::from_static(&[0, 1, 2, 255]),
            packable: false,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("AAEC/w=="), "{json}");
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), c);
        let bad = json.replace("AAEC/w==", "not base64!");
        assert!(serde_json::from_str::<Command>(&bad).is_err());
    }
}
