//! Reading messages by (topic, queue, offset) through the hot tail.
//!
//! The hot tail is a byte-bounded cache of recent segments, decoded: filled by this gateway's
//! own batches as it writes them and, on followers, by fetching each new segment once when the
//! delta that appends it is applied. A read of recent data costs no object-store GET; older
//! data is read from its segment: a small one (≤ 1 MiB) whole, in one GET, and kept in the
//! hot tail (a lagging consumer reads on into it); a big one with ranged GETs (footer, index,
//! the blocks needed). Offsets
//! whose ranges retention dropped are read from the Parquet archive through the catalogue
//! (also when a segment vanished between planning a read and reading it: it was archived).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use compactor::ArchiveReader;
use futures::StreamExt;
use segment_writer::manifest::index::{self, IndexCache, QueueSnapshot};
use segment_writer::manifest::{OffsetRange, QueueArchive, State};
use segment_writer::segment::Message;
use segment_writer::segment_store::{self, SegmentRead};
use segment_writer::store::Store;

/// Tries of a segment read that failed with a transient store error.
const READ_ATTEMPTS: u32 = 4;

/// Segments up to this size are read whole (one GET) and kept in the hot tail; larger ones are
/// read with ranged GETs of the blocks needed.
const WHOLE_SEGMENT_BELOW: u64 = 1024 * 1024;

/// Decoded index sections kept in memory (about 1.5 MB per full run).
const INDEX_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Segment reads in flight for one read of a queue.
const PIECES_IN_FLIGHT: usize = 8;

/// `read_offsets` reads the whole span between its first and last offset when that span is at
/// most this many times the offsets asked for (or 64): messages in between are passed over.
const SPAN_PER_OFFSET: u64 = 4;

/// A message inside a decoded segment shared with the hot tail: reading it copies nothing (a
/// receive reads up to thousands of candidates, most of which it does not answer with).
#[derive(Debug, Clone)]
pub struct MessageRef {
    segment: Arc<Vec<Message>>,
    index: usize,
}

impl MessageRef {
    /// A message on its own (read from the archive, say).
    pub fn owned(message: Message) -> Self {
        MessageRef {
            segment: Arc::new(vec![message]),
            index: 0,
        }
    }

    /// Messages `range` of `segment`, or `None` if it holds fewer.
    fn slice(segment: &Arc<Vec<Message>>, range: Range<u32>) -> Option<Vec<MessageRef>> {
        let range = range.start as usize..range.end as usize;
        (range.end <= segment.len()).then(|| {
            range
                .map(|index| MessageRef {
                    segment: segment.clone(),
                    index,
                })
                .collect()
        })
    }

    /// All of `messages`.
    fn all(messages: Vec<Message>) -> Vec<MessageRef> {
        let n = messages.len() as u32;
        MessageRef::slice(&Arc::new(messages), 0..n).unwrap_or_default()
    }
}

impl std::ops::Deref for MessageRef {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.segment[self.index]
    }
}

/// A decoded segment in the hot tail: its runs of messages, each at its first ordinal. A
/// segment has one run; a pack ([`Command::Packed`](segment_writer::manifest::Command)) the
/// runs of the inline segments it was written from, so it joins the hot tail without a copy.
#[derive(Debug, Clone)]
struct Cached(Arc<[(u32, Arc<Vec<Message>>)]>);

impl Cached {
    fn whole(messages: Arc<Vec<Message>>) -> Self {
        Cached(Arc::new([(0, messages)]))
    }

    /// Messages `range`, or `None` if it holds fewer.
    fn slice(&self, range: Range<u32>) -> Option<Vec<MessageRef>> {
        if let [(0, all)] = &self.0[..] {
            return MessageRef::slice(all, range);
        }
        range
            .map(|ordinal| {
                let i = self
                    .0
                    .partition_point(|(first, _)| *first <= ordinal)
                    .checked_sub(1)?;
                let (first, run) = &self.0[i];
                let index = (ordinal - first) as usize;
                (index < run.len()).then(|| MessageRef {
                    segment: run.clone(),
                    index,
                })
            })
            .collect()
    }
}

/// A message read at an offset.
#[derive(Debug, Clone)]
pub struct Stored {
    pub topic: String,
    pub queue: u32,
    pub offset: u64,
    pub message: MessageRef,
    /// For dead letters: the topic it was published to.
    pub origin_topic: Option<String>,
    /// Its range (of just this offset) when it was read through an index object: a lease of it
    /// carries this (`manifest::index`). Boxed: a receive reads thousands of `Stored`s, most
    /// without one.
    pub located: Option<Box<OffsetRange>>,
}

/// Segments by name with their size and last use; `by_use` orders names by last use, so an
/// eviction is O(log n).
#[derive(Debug, Default)]
struct Lru {
    map: HashMap<String, (Cached, usize, u64)>,
    by_use: BTreeMap<u64, String>,
    total: usize,
    tick: u64,
}

/// Inline segments packed lately, by name: where their messages are now. A read planned
/// before a [`Command::Packed`](segment_writer::manifest::Command) was applied still names
/// the inline segment, which never becomes an object of its own; it is redirected here.
/// Bounded by [`RECENTLY_PACKED`] names, oldest forgotten first (a read is planned and done
/// within moments; this is minutes of write-out rounds).
#[derive(Debug, Default)]
struct Packed {
    to: HashMap<String, (Arc<str>, u32)>,
    order: std::collections::VecDeque<String>,
}

/// Names [`Packed`] keeps.
const RECENTLY_PACKED: usize = 65_536;

/// The hot tail and the segment reader.
#[derive(Debug)]
pub struct Reader {
    store: Store,
    /// The replicated state, to find segments still inline in the log (none in unit tests).
    state: Option<Arc<std::sync::RwLock<State>>>,
    max_bytes: usize,
    cache: Mutex<Lru>,
    packed: Mutex<Packed>,
    archive: ArchiveReader,
    index: Arc<IndexCache>,
    /// Topics read here lately, and when last: new segments are fetched ahead into the hot
    /// tail only for these ([`Reader::wants_ahead`]).
    read_lately: Mutex<HashMap<String, tokio::time::Instant>>,
}

/// How long after its last read through this gateway a topic's new segments are still fetched
/// ahead (a gateway serving no consumer of a topic never GETs its segments before a read).
const READ_LATELY: Duration = Duration::from_secs(300);

/// Topics remembered as read lately at most; beyond it the stale ones are forgotten.
const READ_LATELY_TOPICS: usize = 4_096;

/// One piece of a read: ordinals of one segment.
struct Piece {
    segment: String,
    ordinals: Range<u32>,
    first_offset: u64,
    origin_topic: Option<String>,
}

impl Reader {
    /// A reader keeping at most `max_bytes` of segments in memory.
    pub fn new(store: Store, max_bytes: usize) -> Self {
        Reader {
            archive: ArchiveReader::new(store.clone()),
            store,
            state: None,
            max_bytes,
            cache: Mutex::new(Lru::default()),
            packed: Mutex::new(Packed::default()),
            index: Arc::new(IndexCache::new(INDEX_CACHE_BYTES)),
            read_lately: Mutex::new(HashMap::new()),
        }
    }

    /// Notes that `topic` is read through this gateway.
    fn note_read(&self, topic: &str) {
        let now = tokio::time::Instant::now();
        let mut m = self.read_lately.lock().expect("read-lately lock poisoned");
        if let Some(at) = m.get_mut(topic) {
            *at = now;
            return;
        }
        if m.len() >= READ_LATELY_TOPICS {
            m.retain(|_, at| now.duration_since(*at) < READ_LATELY);
            if m.len() >= READ_LATELY_TOPICS {
                return;
            }
        }
        m.insert(topic.to_string(), now);
    }

    /// Whether new segments of `topic` should be fetched into the hot tail ahead of any read:
    /// the topic was read through this gateway within the last five minutes. Prefetching every
    /// segment on every gateway costs each follower a GET per segment another gateway writes,
    /// whether or not anything reads it there (the cost-first table's three-gateway GETs).
    pub fn wants_ahead(&self, topic: &str) -> bool {
        self.read_lately
            .lock()
            .expect("read-lately lock poisoned")
            .get(topic)
            .is_some_and(|at| at.elapsed() < READ_LATELY)
    }

    /// The cache of index sections (shared with the index keeper).
    pub fn index(&self) -> &Arc<IndexCache> {
        &self.index
    }

    /// The store it reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Looks segments up in `state` first: one still inline in a log version is read from
    /// there.
    pub fn with_state(mut self, state: Arc<std::sync::RwLock<State>>) -> Self {
        self.state = Some(state);
        self
    }

    /// The log version holding `segment` inline, if it is inline.
    fn inline_version(&self, segment: &str) -> Option<u64> {
        let state = self.state.as_ref()?;
        segment_writer::inline::inline_version(state, segment)
    }

    /// Puts a decoded segment in the hot tail.
    pub fn insert(&self, name: &str, messages: Arc<Vec<Message>>) {
        let bytes: usize = messages.iter().map(Message::approx_size).sum();
        self.insert_sized(name, messages, bytes);
    }

    /// Puts a decoded segment in the hot tail whose size (the sum of its messages'
    /// [`Message::approx_size`]) the caller already knows.
    pub fn insert_sized(&self, name: &str, messages: Arc<Vec<Message>>, bytes: usize) {
        self.insert_cached(name, Cached::whole(messages), bytes);
    }

    fn insert_cached(&self, name: &str, segment: Cached, bytes: usize) {
        if bytes > self.max_bytes {
            return;
        }
        let mut c = self.cache.lock().expect("cache lock poisoned");
        c.tick += 1;
        let tick = c.tick;
        if let Some(old) = c.map.insert(name.to_string(), (segment, bytes, tick)) {
            c.total -= old.1;
            c.by_use.remove(&old.2);
        }
        c.by_use.insert(tick, name.to_string());
        c.total += bytes;
        while c.total > self.max_bytes {
            let Some((_, victim)) = c.by_use.pop_first() else {
                break;
            };
            if let Some(v) = c.map.remove(&victim) {
                c.total -= v.1;
            }
        }
    }

    /// Whether a segment is in the hot tail.
    pub fn contains(&self, name: &str) -> bool {
        self.cache
            .lock()
            .expect("cache lock poisoned")
            .map
            .contains_key(name)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.cache.lock().expect("cache lock poisoned").total
    }

    /// A pack was committed ([`Command::Packed`](segment_writer::manifest::Command)): its parts
    /// in the hot tail become the pack's entry (no copy), and reads still naming a part are
    /// sent to the pack.
    pub fn packed(&self, pack: &str, parts: &[segment_writer::manifest::PackedPart]) {
        let to: Arc<str> = Arc::from(pack);
        {
            let mut p = self.packed.lock().expect("packed lock poisoned");
            for part in parts {
                p.to.insert(part.segment.clone(), (to.clone(), part.first_ordinal));
                p.order.push_back(part.segment.clone());
            }
            while p.order.len() > RECENTLY_PACKED {
                if let Some(old) = p.order.pop_front() {
                    p.to.remove(&old);
                }
            }
        }
        let mut c = self.cache.lock().expect("cache lock poisoned");
        let mut runs = Vec::with_capacity(parts.len());
        let mut bytes = 0;
        for part in parts {
            let Some((Cached(r), size, _)) = c.map.get(&part.segment) else {
                return; // not all in memory: the pack is read from the store when asked for
            };
            let [(0, run)] = &r[..] else {
                return;
            };
            runs.push((part.first_ordinal, run.clone()));
            bytes += size;
        }
        for part in parts {
            if let Some((_, size, tick)) = c.map.remove(&part.segment) {
                c.total -= size;
                c.by_use.remove(&tick);
            }
        }
        drop(c);
        self.insert_cached(pack, Cached(runs.into()), bytes);
    }

    /// Where a read naming `segment` goes: the pack holding it if it was packed lately
    /// ([`Reader::packed`]), with the ordinals shifted, or itself.
    fn resolve(&self, segment: &str, ordinals: Range<u32>) -> (Option<Arc<str>>, Range<u32>) {
        let p = self.packed.lock().expect("packed lock poisoned");
        match p.to.get(segment) {
            Some((pack, first)) => (
                Some(pack.clone()),
                ordinals.start + first..ordinals.end + first,
            ),
            None => (None, ordinals),
        }
    }

    fn cached(&self, name: &str) -> Option<Cached> {
        let mut c = self.cache.lock().expect("cache lock poisoned");
        c.tick += 1;
        let tick = c.tick;
        let (messages, last) = {
            let v = c.map.get_mut(name)?;
            let last = std::mem::replace(&mut v.2, tick);
            (v.0.clone(), last)
        };
        c.by_use.remove(&last);
        c.by_use.insert(tick, name.to_string());
        Some(messages)
    }

    /// Fetches a whole segment into the hot tail (followers, when its delta is applied).
    pub async fn prefetch(&self, name: &str) -> segment_writer::Result<()> {
        if self.contains(name) {
            return Ok(());
        }
        let messages = match &self.state {
            Some(state) => {
                segment_writer::inline::read_segment_anywhere(&self.store, state, name).await?
            }
            None => segment_store::read_segment(&self.store, name).await?,
        };
        self.insert(name, Arc::new(messages));
        Ok(())
    }

    /// Messages `ordinals` of `segment`, wherever they are: the hot tail, the segment's log
    /// version while it is inline, its object, or the pack it was written into.
    async fn read_piece(
        &self,
        segment: &str,
        ordinals: Range<u32>,
    ) -> segment_writer::Result<Vec<MessageRef>> {
        // The hot tail first: most reads end there, without the packed names' lock.
        if let Some(slice) = self.cached(segment).and_then(|c| c.slice(ordinals.clone())) {
            return Ok(slice);
        }
        if let (Some(pack), shifted) = self.resolve(segment, ordinals.clone()) {
            return self.read_stored(&pack, shifted).await;
        }
        match self.read_stored(segment, ordinals.clone()).await {
            // Packed after this read was planned: the state forgets an inline segment before
            // this reader hears of its pack (`Reader::packed`, from the applied delta).
            Err(e) if self.inline_version(segment).is_none() => {
                use segment_writer::clock::Clock;
                let clock = segment_writer::clock::TokioClock::starting_at(0);
                clock.sleep(Duration::from_millis(100)).await;
                match self.resolve(segment, ordinals) {
                    (Some(pack), shifted) => self.read_stored(&pack, shifted).await,
                    _ => Err(e),
                }
            }
            read => read,
        }
    }

    /// [`Reader::read_piece`] of a segment under its own name.
    async fn read_stored(
        &self,
        segment: &str,
        ordinals: Range<u32>,
    ) -> segment_writer::Result<Vec<MessageRef>> {
        if let Some(slice) = self.cached(segment).and_then(|c| c.slice(ordinals.clone())) {
            return Ok(slice);
        }
        // A read spans many segments and each costs a few ranged GETs: one transient store
        // error among them must not fail the whole receive or pull (found by the history
        // checker: at 5% store errors a restarted gateway, its hot tail empty, failed nearly
        // every receive of a lagging group). The store's own retries come first; this is the
        // last resort, so it retries at once, a few times.
        let (store, ordinals_wanted) = (&self.store, &ordinals);
        let read = segment_writer::store::retrying(
            &segment_writer::clock::TokioClock::starting_at(0),
            READ_ATTEMPTS,
            |_| Duration::ZERO,
            "segment read",
            || async move {
                // A segment still inline in the log is small: read whole from its log version.
                match self.inline_version(segment) {
                    Some(version) => segment_writer::inline::read_inline(store, version, segment)
                        .await
                        .map(SegmentRead::Whole),
                    None => {
                        segment_store::read_ordinals_or_whole(
                            store,
                            segment,
                            ordinals_wanted.clone(),
                            WHOLE_SEGMENT_BELOW,
                        )
                        .await
                    }
                }
            },
        )
        .await?;
        match read {
            SegmentRead::Some(messages) => Ok(MessageRef::all(messages)),
            // A small segment is read and kept whole: the next read of a lagging consumer
            // (or the next look of a receive that was not granted everything) hits memory.
            SegmentRead::Whole(all) => {
                let all = Arc::new(all);
                let slice = MessageRef::slice(&all, ordinals.clone()).ok_or_else(|| {
                    segment_writer::Error::Corrupt {
                        path: segment.to_string(),
                        reason: format!("ordinals {ordinals:?} beyond its {} messages", all.len()),
                    }
                })?;
                self.insert(segment, all);
                Ok(slice)
            }
        }
    }

    /// The message at `ordinal` of `segment` (a timer or a half message).
    pub async fn read_one(&self, segment: &str, ordinal: u32) -> segment_writer::Result<Message> {
        self.read_piece(segment, ordinal..ordinal + 1)
            .await?
            .pop()
            .map(|m| (*m).clone())
            .ok_or_else(|| segment_writer::Error::Corrupt {
                path: segment.to_string(),
                reason: format!("no message at ordinal {ordinal}"),
            })
    }

    /// Up to `max` messages of `topic`/`queue` from `offset` on (never past `next_offset`).
    pub async fn read(
        &self,
        state: &std::sync::RwLock<State>,
        topic: &str,
        queue: u32,
        offset: u64,
        max: usize,
    ) -> segment_writer::Result<Vec<Stored>> {
        self.note_read(topic);
        let (from, snap, archive) = {
            let s = state.read().expect("state lock poisoned");
            let Some(q) = s
                .topics
                .get(topic)
                .and_then(|t| t.queues.get(queue as usize))
            else {
                return Ok(Vec::new());
            };
            let from = offset.max(q.min_offset);
            let archive = s.archive.queue(topic, queue).cloned();
            (from, QueueSnapshot::of(q, from, max as u64), archive)
        };
        let (segments_from, next) = (snap.first_held(), snap.next_offset);
        let stored = |offset: u64, message: Message, origin_topic: Option<String>| Stored {
            topic: topic.to_string(),
            queue,
            offset,
            message: MessageRef::owned(message),
            origin_topic,
            located: None,
        };
        let mut out =
            Vec::with_capacity(next.saturating_sub(from).min(max as u64).min(4096) as usize);
        // Offsets below the first range were dropped by retention: the archive holds them.
        if from < segments_from {
            let Some(qa) = &archive else {
                return Err(segment_writer::Error::Corrupt {
                    path: format!("manifest {topic}/{queue}"),
                    reason: format!("offset {from} has no segment and no archive file"),
                });
            };
            let end = segments_from.min(next);
            let got = self
                .archive
                .read(topic, queue, qa, from, end, max)
                .await
                .map_err(segment_writer::Error::from)?;
            for r in got {
                out.push(stored(r.offset, r.message, r.original_topic));
            }
            if out.len() >= max || out.last().is_none_or(|s| s.offset + 1 < end) {
                return Ok(out);
            }
        }
        let at = out.last().map_or(from, |s| s.offset + 1);
        let left = max - out.len();
        let ranges = self
            .index
            .ranges_from(&self.store, topic, queue, &snap, at, left as u64)
            .await?;
        let inline_from = snap.first_inline();
        let pieces = plan(&ranges, at, next, left);
        // Pieces are read concurrently (a cold read spans many small segments), in order.
        let mut reads = futures::stream::iter(pieces)
            .map(|p| async move {
                let r = self.read_piece(&p.segment, p.ordinals.clone()).await;
                (p, r)
            })
            .buffered(PIECES_IN_FLIGHT);
        while let Some((p, read)) = reads.next().await {
            let msgs = match read {
                Ok(m) => m,
                Err(e) => {
                    // Retention may have dropped the range and deleted the segment since the
                    // plan: read the archived copy.
                    let n = u64::from(p.ordinals.end - p.ordinals.start);
                    let end = p.first_offset + n;
                    let archived = |qa: &QueueArchive| qa.archived_to >= end;
                    let fresh = state
                        .read()
                        .expect("state lock poisoned")
                        .archive
                        .queue(topic, queue)
                        .cloned();
                    match fresh.filter(archived) {
                        Some(qa) => self
                            .archive
                            .read(topic, queue, &qa, p.first_offset, end, n as usize)
                            .await
                            .map_err(segment_writer::Error::from)?
                            .into_iter()
                            .map(|r| MessageRef::owned(r.message))
                            .collect(),
                        None => return Err(e),
                    }
                }
            };
            for (i, message) in msgs.into_iter().enumerate() {
                let offset = p.first_offset + i as u64;
                out.push(Stored {
                    topic: topic.to_string(),
                    queue,
                    offset,
                    message,
                    origin_topic: p.origin_topic.clone(),
                    located: (offset < inline_from)
                        .then(|| index::single(&ranges, offset))
                        .flatten()
                        .map(Box::new),
                });
            }
        }
        Ok(out)
    }

    /// The messages at exactly these offsets (sorted, unique) of one queue (receive
    /// candidates); offsets no longer readable are left out.
    pub async fn read_offsets(
        &self,
        state: &std::sync::RwLock<State>,
        topic: &str,
        queue: u32,
        offsets: &[u64],
    ) -> segment_writer::Result<Vec<Stored>> {
        self.note_read(topic);
        let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
            return Ok(Vec::new());
        };
        // Offsets close together (a receive's candidates between leased ones) are read as one
        // span and picked from it: one plan instead of one per run.
        let span = last.saturating_sub(first).saturating_add(1);
        if span
            <= (offsets.len() as u64)
                .saturating_mul(SPAN_PER_OFFSET)
                .max(64)
        {
            let mut wanted = offsets.iter().copied().peekable();
            let all = self.read(state, topic, queue, first, span as usize).await?;
            return Ok(all
                .into_iter()
                .filter(|m| {
                    while wanted.next_if(|&o| o < m.offset).is_some() {}
                    wanted.next_if_eq(&m.offset).is_some()
                })
                .collect());
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < offsets.len() {
            // Read runs of consecutive offsets together.
            let mut j = i + 1;
            while j < offsets.len() && offsets[j] == offsets[j - 1] + 1 {
                j += 1;
            }
            out.extend(self.read(state, topic, queue, offsets[i], j - i).await?);
            i = j;
        }
        Ok(out)
    }
}

fn plan(ranges: &[OffsetRange], from: u64, end: u64, max: usize) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut left = max as u64;
    let mut i = ranges.partition_point(|r| r.base + u64::from(r.count) <= from);
    let mut at = from;
    while left > 0 && at < end && i < ranges.len() {
        let r = &ranges[i];
        let start = at.max(r.base);
        let stop = (r.base + u64::from(r.count)).min(end).min(start + left);
        if stop > start {
            let first = r.first_ordinal + (start - r.base) as u32;
            out.push(Piece {
                segment: r.segment.clone(),
                ordinals: first..first + (stop - start) as u32,
                first_offset: start,
                origin_topic: r.origin_topic.clone(),
            });
            left -= stop - start;
            at = stop;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(body_bytes: usize) -> Arc<Vec<Message>> {
        Arc::new(vec![Message {
            topic: "t".into(),
            message_id: "m".into(),
            body: vec![0u8; body_bytes].into(),
            tag: None,
            keys: Vec::new(),
            properties: Default::default(),
            message_group: None,
            producer_group: None,
            publish_time_ms: 0,
            deliver_at_ms: None,
        }])
    }

    #[test]
    fn the_hot_tail_evicts_the_least_recently_used_within_its_bound() {
        let store = Store::open("memory://").expect("memory store");
        let one = segment(1000)
            .iter()
            .map(Message::approx_size)
            .sum::<usize>();
        let reader = Reader::new(store, one * 3);
        reader.insert("a", segment(1000));
        reader.insert("b", segment(1000));
        reader.insert("c", segment(1000));
        assert!(
            reader.cached("a").is_some(),
            "a used again: b is now the oldest"
        );
        reader.insert("d", segment(1000));
        assert!(!reader.contains("b"));
        assert!(reader.contains("a") && reader.contains("c") && reader.contains("d"));
        assert_eq!(reader.bytes(), one * 3);
        // Re-inserting a name replaces it without counting it twice.
        reader.insert("d", segment(1000));
        assert_eq!(reader.bytes(), one * 3);
        // A segment bigger than the whole bound is not kept.
        reader.insert("huge", segment(one * 4));
        assert!(!reader.contains("huge"));
        assert_eq!(reader.bytes(), one * 3);
    }

    fn run(ids: &[&str]) -> Arc<Vec<Message>> {
        Arc::new(
            ids.iter()
                .map(|id| Message {
                    message_id: (*id).into(),
                    ..(*segment(10))[0].clone()
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn a_pack_joins_the_hot_tail_from_its_parts_and_reads_of_a_part_find_it() {
        let store = Store::open("memory://").expect("memory store");
        let reader = Reader::new(store, 1 << 20);
        reader.insert("a", run(&["a0", "a1"]));
        reader.insert("b", run(&["b0", "b1", "b2"]));
        let bytes = reader.bytes();
        let part = |segment: &str, first_ordinal| segment_writer::manifest::PackedPart {
            segment: segment.into(),
            first_ordinal,
        };
        reader.packed("p", &[part("a", 0), part("b", 2)]);
        assert!(reader.contains("p") && !reader.contains("a") && !reader.contains("b"));
        assert_eq!(reader.bytes(), bytes, "moved, not copied");
        let ids = |m: Vec<MessageRef>| m.iter().map(|m| m.message_id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(reader.read_piece("p", 1..4).await.unwrap()),
            ["a1", "b0", "b1"]
        );
        assert!(
            reader.cached("p").unwrap().slice(4..6).is_none(),
            "past its end"
        );
        // A read planned before the pack still names a part: it is sent to the pack.
        assert_eq!(
            ids(reader.read_piece("b", 1..3).await.unwrap()),
            ["b1", "b2"]
        );
        assert_eq!(ids(reader.read_piece("a", 0..1).await.unwrap()), ["a0"]);
        // A pack whose parts are not all in memory is left to the store.
        reader.packed("q", &[part("x", 0)]);
        assert!(!reader.contains("q"));
    }
}
