//! Index objects in the bucket (`index/<ulid>.idx`): the binary, CRC-checked section codec,
//! building an object for the keeper's plan, writing it, and reading runs back through a
//! byte-bounded cache. What the state keeps of them is `manifest::model::index`, and when
//! ranges fold and runs merge is planned and applied by `manifest::state::index` (which tells
//! the whole design).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use object_store::ObjectStoreExt;

use super::byte_lru::ByteLru;
use super::command::Command;
pub use super::model::index::{IndexRun, NewRun, digest, single};
use super::model::{OffsetRange, QueueLog, State};
pub use super::state::index::{IndexSettings, IndexWork};
use crate::store::Store;
use crate::{Error, Result};

/// The format of index sections this code writes.
pub const INDEX_FORMAT: u32 = 1;

/// The magic number at the start of every section.
const MAGIC: &[u8; 4] = b"FMQX";

/// The fixed header of a section: magic, format, payload length, CRC32C of the payload.
const HEADER: usize = 16;

// ---------- the section codec ----------

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_u32_le(s.len() as u32);
    b.put_slice(s.as_bytes());
}

/// Bytes of one record: first offset, count, segment, first ordinal, publish time, flags,
/// store time, origin topic, origin queue and offset (absent optional fields are zero and
/// flagged off). Fixed width, so a lookup binary-searches the encoded section without
/// decoding it.
const RECORD: usize = 53;

/// Encodes one queue's contiguous ranges as a section: a header (magic, format, payload
/// length, CRC32C of the payload) and a payload of the topic, queue, range count, a string
/// table (segments and origin topics) and fixed-width records (`RECORD` bytes each).
pub fn encode_section(topic: &str, queue: u32, ranges: &[OffsetRange]) -> Bytes {
    let mut strings: Vec<&str> = Vec::new();
    let mut table: HashMap<&str, u32> = HashMap::new();
    for r in ranges {
        for s in std::iter::once(r.segment.as_str()).chain(r.origin_topic.as_deref()) {
            if !table.contains_key(s) {
                table.insert(s, strings.len() as u32);
                strings.push(s);
            }
        }
    }
    let text: usize = strings.iter().map(|s| 4 + s.len()).sum();
    let mut p = BytesMut::with_capacity(16 + topic.len() + text + ranges.len() * RECORD);
    put_str(&mut p, topic);
    p.put_u32_le(queue);
    p.put_u32_le(ranges.len() as u32);
    p.put_u32_le(strings.len() as u32);
    for s in &strings {
        put_str(&mut p, s);
    }
    for r in ranges {
        p.put_u64_le(r.base);
        p.put_u32_le(r.count);
        p.put_u32_le(table[r.segment.as_str()]);
        p.put_u32_le(r.first_ordinal);
        p.put_i64_le(r.publish_time_ms);
        let flags = u8::from(r.appended_ms.is_some())
            | (u8::from(r.origin_topic.is_some()) << 1)
            | (u8::from(r.origin.is_some()) << 2);
        p.put_u8(flags);
        p.put_i64_le(r.appended_ms.unwrap_or(0));
        p.put_u32_le(r.origin_topic.as_deref().map_or(0, |t| table[t]));
        let (q, o) = r.origin.unwrap_or((0, 0));
        p.put_u32_le(q);
        p.put_u64_le(o);
    }
    let payload = p.freeze();
    let mut out = BytesMut::with_capacity(HEADER + payload.len());
    out.put_slice(MAGIC);
    out.put_u32_le(INDEX_FORMAT);
    out.put_u32_le(payload.len() as u32);
    out.put_u32_le(crc32c::crc32c(&payload));
    out.put_slice(&payload);
    out.freeze()
}

/// A checked section, read in place: its queue, string table and records.
#[derive(Debug, Clone)]
pub struct Section {
    pub topic: String,
    pub queue: u32,
    strings: Vec<String>,
    /// The records, [`RECORD`] bytes each.
    records: Bytes,
}

fn need(b: &[u8], n: usize, what: &str) -> std::result::Result<(), String> {
    if b.remaining() < n {
        Err(format!("truncated at {what}"))
    } else {
        Ok(())
    }
}

fn get_str(b: &mut &[u8]) -> std::result::Result<String, String> {
    need(b, 4, "a string length")?;
    let n = b.get_u32_le() as usize;
    need(b, n, "a string")?;
    let s = std::str::from_utf8(&b[..n])
        .map_err(|_| "a string is not UTF-8".to_string())?
        .to_string();
    b.advance(n);
    Ok(s)
}

/// Checks a section (magic, format, length, checksum, string table, and that the records are
/// contiguous, non-empty and name strings that exist); any damage is an error naming it.
pub fn decode_section(bytes: &Bytes) -> std::result::Result<Section, String> {
    let mut b: &[u8] = bytes;
    need(b, HEADER, "the header")?;
    if &b[..4] != MAGIC {
        return Err("not an index section (bad magic)".into());
    }
    b.advance(4);
    let format = b.get_u32_le();
    if format != INDEX_FORMAT {
        return Err(format!("index format {format} is not {INDEX_FORMAT}"));
    }
    let len = b.get_u32_le() as usize;
    let crc = b.get_u32_le();
    if b.len() != len {
        return Err(format!("payload is {} bytes, header says {len}", b.len()));
    }
    if crc32c::crc32c(b) != crc {
        return Err("checksum mismatch".into());
    }
    let topic = get_str(&mut b)?;
    need(b, 12, "the queue")?;
    let queue = b.get_u32_le();
    let n = b.get_u32_le() as usize;
    let nstrings = b.get_u32_le() as usize;
    if nstrings > b.len() / 4 {
        return Err("string count exceeds the payload".into());
    }
    let mut strings = Vec::with_capacity(nstrings);
    for _ in 0..nstrings {
        strings.push(get_str(&mut b)?);
    }
    if b.len() != n * RECORD {
        return Err(format!(
            "{} bytes of records for {n} records of {RECORD}",
            b.len()
        ));
    }
    let start = bytes.len() - b.len();
    let section = Section {
        topic,
        queue,
        strings,
        records: bytes.slice(start..),
    };
    let mut next = None;
    for i in 0..n {
        let r = section.record_bytes(i);
        let (base, count) = (read_u64(r, 0), read_u32(r, 8));
        if count == 0 {
            return Err(format!("record {i} is empty"));
        }
        if next.is_some_and(|n| n != base) {
            return Err(format!("record {i} does not follow its predecessor"));
        }
        next = Some(
            base.checked_add(u64::from(count))
                .ok_or("offsets overflow")?,
        );
        let flags = r[28];
        if read_u32(r, 12) as usize >= nstrings
            || (flags & 2 != 0 && read_u32(r, 37) as usize >= nstrings)
        {
            return Err(format!("record {i} names a string out of range"));
        }
    }
    Ok(section)
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

impl Section {
    fn record_bytes(&self, i: usize) -> &[u8] {
        &self.records[i * RECORD..(i + 1) * RECORD]
    }

    /// How many ranges it holds.
    pub fn len(&self) -> usize {
        self.records.len() / RECORD
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The first offset of range `i`.
    pub fn base(&self, i: usize) -> u64 {
        read_u64(self.record_bytes(i), 0)
    }

    /// One past the last offset of range `i`.
    pub fn end(&self, i: usize) -> u64 {
        let r = self.record_bytes(i);
        read_u64(r, 0) + u64::from(read_u32(r, 8))
    }

    /// Range `i`, decoded.
    pub fn get(&self, i: usize) -> OffsetRange {
        let r = self.record_bytes(i);
        let flags = r[28];
        let i64_at = |at| read_u64(r, at) as i64;
        OffsetRange {
            base: read_u64(r, 0),
            count: read_u32(r, 8),
            segment: self.strings[read_u32(r, 12) as usize].clone(),
            first_ordinal: read_u32(r, 16),
            publish_time_ms: i64_at(20),
            appended_ms: (flags & 1 != 0).then(|| i64_at(29)),
            origin_topic: (flags & 2 != 0).then(|| self.strings[read_u32(r, 37) as usize].clone()),
            origin: (flags & 4 != 0).then(|| (read_u32(r, 41), read_u64(r, 45))),
        }
    }

    /// Range `i`'s store time (what reset to a time goes by).
    fn stored_ms(&self, i: usize) -> i64 {
        let r = self.record_bytes(i);
        if r[28] & 1 != 0 {
            read_u64(r, 29) as i64
        } else {
            read_u64(r, 20) as i64
        }
    }

    /// The number of leading ranges for which `pred` holds (it must hold for a prefix).
    fn partition(&self, pred: impl Fn(usize) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if pred(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The index of the first range ending after `offset`.
    pub fn first_ending_after(&self, offset: u64) -> usize {
        self.partition(|i| self.end(i) <= offset)
    }

    /// The index of the first range stored at or after `time_ms`.
    pub fn first_stored_at(&self, time_ms: i64) -> usize {
        self.partition(|i| self.stored_ms(i) < time_ms)
    }

    /// Every range, decoded.
    pub fn ranges(&self) -> Vec<OffsetRange> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }

    /// The string table: every segment (and origin topic) its ranges name.
    pub fn strings(&self) -> &[String] {
        &self.strings
    }

    /// Bytes it holds in memory.
    fn size(&self) -> usize {
        self.records.len() + self.strings.iter().map(|s| s.len() + 24).sum::<usize>()
    }
}

/// An index object being built: sections appended, each run summarized at its byte offset.
#[derive(Debug, Default)]
pub struct ObjectBuilder {
    bytes: BytesMut,
    runs: Vec<NewRun>,
}

impl ObjectBuilder {
    /// Appends one queue's ranges (non-empty) as a section of level `level` replacing
    /// `replaces` (empty: a fold of inline ranges).
    pub fn add(
        &mut self,
        object: &str,
        topic: &str,
        queue: u32,
        level: u8,
        ranges: &[OffsetRange],
        replaces: Vec<String>,
    ) {
        let section = encode_section(topic, queue, ranges);
        let at = self.bytes.len() as u64;
        self.bytes.put_slice(&section);
        self.runs.push(NewRun {
            topic: topic.to_string(),
            queue,
            run: IndexRun::summarize(object, at, section.len() as u64, level, ranges),
            replaces,
        });
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The object's bytes and its runs.
    pub fn finish(self) -> (Bytes, Vec<NewRun>) {
        (self.bytes.freeze(), self.runs)
    }
}

// ---------- reading ----------

/// Reads run sections through a byte-bounded cache of decoded ranges (key: object and section
/// offset; objects are immutable, so an entry never goes stale).
#[derive(Debug)]
pub struct IndexCache {
    lru: ByteLru<(String, u64), Arc<Section>>,
}

impl IndexCache {
    /// A cache holding at most `max_bytes` of decoded ranges.
    pub fn new(max_bytes: usize) -> Self {
        IndexCache {
            lru: ByteLru::new(max_bytes),
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lru.bytes()
    }

    /// Sections read from the store so far.
    pub fn gets(&self) -> u64 {
        self.lru.loads()
    }

    /// The ranges of `run` of `topic`/`queue` (one ranged GET when not cached). A section that
    /// is missing, damaged or not the run's is [`Error::Corrupt`].
    pub async fn run(
        &self,
        store: &Store,
        topic: &str,
        queue: u32,
        run: &IndexRun,
    ) -> Result<Arc<Section>> {
        let key = (run.object.clone(), run.at);
        if let Some(v) = self.lru.get(&key) {
            return Ok(v);
        }
        let path = store.paths.relative(&run.object);
        let bytes = crate::store::retrying(
            &crate::clock::TokioClock::starting_at(0),
            3,
            |n| std::time::Duration::from_millis(20 << n),
            "index get",
            || async {
                store
                    .inner
                    .get_range(&path, run.at..run.at + run.len)
                    .await
                    .map_err(|e| match e {
                        object_store::Error::NotFound { .. } => {
                            Error::corrupt(&path, "index object is missing")
                        }
                        e => Error::store("get", &path, e),
                    })
            },
        )
        .await?;
        self.lru.loaded();
        let section = decode_section(&bytes).map_err(|e| Error::corrupt(&path, e))?;
        let n = section.len();
        if section.topic != topic
            || section.queue != queue
            || n != run.ranges as usize
            || n == 0
            || section.base(0) != run.base
            || section.end(n - 1) != run.end
        {
            return Err(Error::corrupt(
                &path,
                format!(
                    "section at {} is not the run of {topic}/{queue} from {}",
                    run.at, run.base
                ),
            ));
        }
        let v = Arc::new(section);
        self.lru.insert(key, v.clone(), v.size());
        Ok(v)
    }

    /// Up to `max` ranges of the queue holding offsets from `from` on (the first may start
    /// below it), read from the runs (through the cache) and then the inline ranges of `q`, a
    /// snapshot of the queue taken by the caller.
    pub async fn ranges_from(
        &self,
        store: &Store,
        topic: &str,
        queue: u32,
        q: &QueueSnapshot,
        from: u64,
        max_offsets: u64,
    ) -> Result<Vec<OffsetRange>> {
        let mut out = Vec::new();
        let mut at = from;
        let stop = from.saturating_add(max_offsets).min(q.next_offset);
        let mut i = q.index.partition_point(|r| r.end <= at);
        while at < stop && i < q.index.len() {
            let run = &q.index[i];
            let section = self.run(store, topic, queue, run).await?;
            for k in section.first_ending_after(at)..section.len() {
                if section.base(k) >= stop {
                    break;
                }
                at = section.end(k);
                out.push(section.get(k));
            }
            at = at.max(run.end);
            i += 1;
        }
        let j = q
            .ranges
            .partition_point(|r| r.base + u64::from(r.count) <= at);
        for r in &q.ranges[j..] {
            if r.base >= stop {
                break;
            }
            out.push(r.clone());
        }
        Ok(out)
    }

    /// The range holding `offset` and the offset's ordinal in its segment.
    pub async fn locate(
        &self,
        store: &Store,
        topic: &str,
        queue: u32,
        q: &QueueSnapshot,
        offset: u64,
    ) -> Result<Option<OffsetRange>> {
        let ranges = self.ranges_from(store, topic, queue, q, offset, 1).await?;
        Ok(single(&ranges, offset))
    }

    /// The first offset stored at or after `time_ms` (range granularity), or `next_offset`.
    pub async fn offset_at_time(
        &self,
        store: &Store,
        topic: &str,
        queue: u32,
        q: &QueueSnapshot,
        time_ms: i64,
    ) -> Result<u64> {
        let i = q.index.partition_point(|r| r.last_stored_ms < time_ms);
        if let Some(run) = q.index.get(i) {
            let section = self.run(store, topic, queue, run).await?;
            let j = section.first_stored_at(time_ms);
            if j < section.len() {
                return Ok(section.base(j).max(q.min_offset));
            }
        }
        let j = q.ranges.partition_point(|r| r.stored_ms() < time_ms);
        Ok(q.ranges
            .get(j)
            .map_or(q.next_offset, |r| r.base.max(q.min_offset)))
    }
}

/// What a read needs of a queue, copied out of the state under its lock.
#[derive(Debug, Clone, Default)]
pub struct QueueSnapshot {
    pub next_offset: u64,
    pub min_offset: u64,
    pub index: Vec<IndexRun>,
    pub ranges: Vec<OffsetRange>,
}

impl QueueSnapshot {
    /// The part of `q` a read of `max` offsets from `from` needs: the inline ranges holding
    /// them and all the summaries (which are few).
    pub fn of(q: &QueueLog, from: u64, max: u64) -> Self {
        let j = q
            .ranges
            .partition_point(|r| r.base + u64::from(r.count) <= from);
        let stop = from.saturating_add(max);
        let k = j + q.ranges[j..].partition_point(|r| r.base < stop);
        QueueSnapshot {
            next_offset: q.next_offset,
            min_offset: q.min_offset,
            index: q.index.clone(),
            ranges: q.ranges[j..k].to_vec(),
        }
    }

    /// The first offset held inline.
    pub fn first_inline(&self) -> u64 {
        self.ranges.first().map_or(self.next_offset, |r| r.base)
    }

    /// The first offset held by a run or an inline range (below it: only in the archive).
    pub fn first_held(&self) -> u64 {
        self.index
            .first()
            .map(|r| r.base)
            .or(self.ranges.first().map(|r| r.base))
            .unwrap_or(self.next_offset)
    }
}

/// Writes an index object under its relative name (unique, so a plain put suffices, as for a
/// segment).
pub async fn put_object(store: &Store, name: &str, bytes: Bytes) -> Result<()> {
    crate::segment_store::put_segment(store, name, bytes).await
}

/// Builds the object for `work` (reading the runs a merge replaces through `cache`) and the
/// command that installs it; `None` when there is nothing to do.
pub async fn build(
    store: &Store,
    cache: &IndexCache,
    object: &str,
    work: &[IndexWork],
) -> Result<Option<(Bytes, Command)>> {
    let mut b = ObjectBuilder::default();
    for w in work {
        match w {
            IndexWork::Fold {
                topic,
                queue,
                ranges,
            } => {
                if !ranges.is_empty() {
                    b.add(object, topic, *queue, 0, ranges, Vec::new());
                }
            }
            IndexWork::Merge {
                topic,
                queue,
                level,
                runs,
            } => {
                let mut all = Vec::new();
                for r in runs {
                    all.extend(cache.run(store, topic, *queue, r).await?.ranges());
                }
                if !all.is_empty() {
                    let replaces = runs.iter().map(|r| r.object.clone()).collect();
                    b.add(object, topic, *queue, *level, &all, replaces);
                }
            }
        }
    }
    if b.is_empty() {
        return Ok(None);
    }
    let (bytes, runs) = b.finish();
    Ok(Some((
        bytes,
        Command::FoldIndex {
            object: object.to_string(),
            runs,
        },
    )))
}

/// The segments the index objects of `state` point into (for garbage collection), read
/// through `cache`.
pub async fn indexed_segments(
    store: &Store,
    cache: &IndexCache,
    state: &State,
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for (name, t) in &state.topics {
        for (qi, q) in t.queues.iter().enumerate() {
            for run in &q.index {
                // Origin topics share the string table: naming them too keeps nothing extra
                // (no segment key is a topic name).
                for s in cache.run(store, name, qi as u32, run).await?.strings() {
                    if !out.contains(s) {
                        out.insert(s.clone());
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::command::*;
    use crate::manifest::model::*;
    use crate::manifest::sim::Sim;

    fn range(base: u64, count: u32, seg: &str) -> OffsetRange {
        OffsetRange {
            base,
            count,
            segment: seg.into(),
            first_ordinal: 3,
            publish_time_ms: 1_000 + base as i64,
            origin_topic: None,
            origin: None,
            appended_ms: None,
        }
    }

    #[test]
    fn a_section_round_trips_and_damage_is_refused() {
        let mut rs = vec![range(10, 2, "a"), range(12, 5, "b"), range(17, 1, "a")];
        rs[1].appended_ms = Some(1_015);
        rs[2].origin_topic = Some("t0".into());
        rs[2].origin = Some((3, 77));
        let bytes = encode_section("t", 4, &rs);
        let s = decode_section(&bytes).expect("decodes");
        assert_eq!((s.topic.as_str(), s.queue), ("t", 4));
        assert_eq!(s.ranges(), rs);
        assert_eq!((s.first_ending_after(12), s.first_ending_after(17)), (1, 2));
        assert_eq!(s.first_stored_at(1_013), 1, "range 1 is stored at 1,015");
        for i in [0, 5, 17, bytes.len() - 1] {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x40;
            assert!(
                decode_section(&Bytes::from(bad)).is_err(),
                "flipped byte {i}"
            );
        }
        assert!(decode_section(&bytes.slice(..bytes.len() - 3)).is_err());
        assert!(decode_section(&Bytes::new()).is_err());
    }

    #[test]
    fn single_cuts_one_offset_out_of_a_range() {
        let rs = vec![range(10, 2, "a"), range(12, 5, "b")];
        let one = single(&rs, 14).expect("held");
        assert_eq!((one.base, one.count, one.first_ordinal), (14, 1, 5));
        assert_eq!(one.segment, "b");
        assert!(single(&rs, 17).is_none());
        assert!(single(&rs, 9).is_none());
    }

    const SMALL: IndexSettings = IndexSettings {
        keep_inline: 4,
        chunk: 8,
        min_chunk: 2,
        fold_age_ms: 1_000_000,
        fan_in: 3,
        max_run_ranges: 1_000,
    };

    /// A topic `t` of one queue with `n` appends of 2 messages, each in its own segment.
    fn sim_with(n: u64) -> Sim {
        let mut s = Sim::new();
        s.one(Command::CreateTopic {
            topic: "t".into(),
            def: TopicDef {
                kind: TopicKind::Normal,
                queues: 1,
                retention_hours: 1,
            },
        });
        for i in 0..n {
            s.now += 10;
            s.one(Command::Append {
                topic: "t".into(),
                queue: 0,
                segment: format!("seg{i}"),
                first_ordinal: 1,
                count: 2,
                publish_time_ms: s.now,
            });
        }
        s
    }

    /// Runs the keeper's rounds until there is nothing to do; the store holds the objects.
    async fn keep(s: &mut Sim, store: &Store, cache: &IndexCache) -> u32 {
        let mut installed = 0;
        for round in 0..100 {
            let work = s.state.plan_index(s.now, &SMALL, 20);
            if work.is_empty() {
                return installed;
            }
            let object = format!("index/o{round}.idx");
            let (bytes, command) = build(store, cache, &object, &work)
                .await
                .expect("built")
                .expect("work");
            put_object(store, &object, bytes).await.expect("put");
            match s.one(command) {
                Outcome::Indexed { runs } => installed += runs,
                o => panic!("{o:?}"),
            }
        }
        panic!("the keeper never settles");
    }

    async fn all_ranges(s: &Sim, store: &Store, cache: &IndexCache) -> Vec<OffsetRange> {
        let q = &s.state.topics["t"].queues[0];
        let snap = QueueSnapshot::of(q, 0, u64::MAX);
        cache
            .ranges_from(store, "t", 0, &snap, 0, u64::MAX)
            .await
            .expect("read")
    }

    #[tokio::test]
    async fn folded_and_merged_ranges_read_back_the_same() {
        let store = Store::open("memory://").expect("memory");
        let cache = IndexCache::new(1 << 20);
        let mut s = sim_with(200);
        let before = s.state.topics["t"].queues[0].ranges.clone();
        assert!(keep(&mut s, &store, &cache).await > 0);
        let q = &s.state.topics["t"].queues[0];
        assert!(q.ranges.len() <= SMALL.keep_inline + SMALL.chunk);
        assert!(q.index.iter().any(|r| r.level > 0), "runs were merged");
        assert!(q.index.len() < 12, "{} runs", q.index.len());
        assert_eq!(all_ranges(&s, &store, &cache).await, before);
        // Point lookups and time lookups agree with the inline answer of before.
        let fresh = IndexCache::new(1 << 20);
        let snap = QueueSnapshot::of(q, 0, u64::MAX);
        let at = fresh
            .locate(&store, "t", 0, &snap, 123)
            .await
            .expect("read")
            .expect("held");
        assert_eq!((at.segment.as_str(), at.first_ordinal), ("seg61", 2));
        assert_eq!(fresh.gets(), 1, "a cold read costs one GET");
        let t = before[70].publish_time_ms;
        assert_eq!(
            fresh
                .offset_at_time(&store, "t", 0, &snap, t)
                .await
                .expect("read"),
            140
        );
        assert!(
            q.offset_at_time(t) <= 140,
            "the state's answer is coarser, never later"
        );

        // A reset to that time carries the exact offset read here; apply takes it while the
        // run it was read from is still the one the time falls in, else the run's start.
        let run = q.run_at_time(t).cloned().expect("folded");
        assert!(run.base < 140, "the time falls inside the run");
        assert_eq!(
            s.one(Command::CreateGroup {
                group: "g".into(),
                def: crate::manifest::sim::group_def(1),
                resolved: Default::default(),
            }),
            Outcome::Defined { created: true }
        );
        let reset = |object: &str, offset: u64| Command::ResetOffsets {
            group: "g".into(),
            topic: "t".into(),
            to: ResetTarget::Timestamp(t),
            resolved: vec![ResolvedOffset {
                queue: 0,
                run_object: object.into(),
                run_base: run.base,
                offset,
            }],
        };
        let committed = |s: &Sim| s.state.groups["g"].cursors[""]["t"][0].committed;
        assert_eq!(s.one(reset(&run.object, 140)), Outcome::Done);
        assert_eq!(committed(&s), 140);
        s.one(reset("index/another.idx", 140));
        assert_eq!(committed(&s), run.base, "a stale hint: the run's start");
        s.one(reset(&run.object, run.end + 5));
        assert_eq!(committed(&s), run.base, "a hint outside the run is ignored");

        // A group created to start at that time takes the same hint, on the same terms.
        let create = |group: &str, object: &str, offset: u64| Command::CreateGroup {
            group: group.into(),
            def: GroupDef {
                start_from: StartFrom::Timestamp(t),
                ..crate::manifest::sim::group_def(1)
            },
            resolved: [(
                "t".to_string(),
                vec![ResolvedOffset {
                    queue: 0,
                    run_object: object.into(),
                    run_base: run.base,
                    offset,
                }],
            )]
            .into(),
        };
        let start = |s: &Sim, group: &str| s.state.groups[group].cursors[""]["t"][0].committed;
        s.one(create("exact", &run.object, 140));
        assert_eq!(start(&s, "exact"), 140);
        s.one(create("stale", "index/another.idx", 140));
        assert_eq!(
            start(&s, "stale"),
            run.base,
            "a stale hint: the run's start"
        );
        let before = s.state.clone();
        assert_eq!(
            s.one(create("exact", &run.object, 141)),
            Outcome::Defined { created: false },
            "the same definition again: nothing moves, whatever the hint"
        );
        assert_eq!(s.state.groups, before.groups);
    }

    #[tokio::test]
    async fn a_fold_whose_prefix_changed_is_refused() {
        let store = Store::open("memory://").expect("memory");
        let cache = IndexCache::new(1 << 20);
        let mut s = sim_with(20);
        let work = s.state.plan_index(s.now, &SMALL, usize::MAX);
        let (_, command) = build(&store, &cache, "index/a.idx", &work)
            .await
            .expect("built")
            .expect("work");
        assert_eq!(s.one(command.clone()), Outcome::Indexed { runs: 1 });
        let before = s.state.clone();
        assert_eq!(
            s.one(command),
            Outcome::Indexed { runs: 0 },
            "applied twice"
        );
        assert_eq!(s.state.topics, before.topics);
    }

    fn group() -> Command {
        Command::CreateGroup {
            group: "g".into(),
            def: GroupDef {
                subscriptions: vec![Subscription {
                    topic: "t".into(),
                    filter: None,
                    sql: None,
                }],
                mode: GroupMode::Clustering,
                start_from: StartFrom::Earliest,
                max_retries: 0,
                invisible_ms: 1000,
                retry_backoff_ms: vec![10],
                push: None,
            },
            resolved: Default::default(),
        }
    }

    fn at(offset: u64) -> QueueOffset {
        QueueOffset {
            topic: "t".into(),
            queue: 0,
            offset,
        }
    }

    fn lease(offsets: &[u64], located: Vec<Option<OffsetRange>>) -> Command {
        Command::Lease {
            group: "g".into(),
            consumer: String::new(),
            invisible_ms: 100,
            max: 100,
            candidates: offsets.iter().map(|&o| at(o)).collect(),
            skipped: vec![],
            message_groups: vec![],
            located,
            max_in_flight: None,
        }
    }

    fn granted(o: Outcome) -> Vec<u64> {
        match o {
            Outcome::Leased { grants, .. } => grants.iter().map(|g| g.at.offset).collect(),
            o => panic!("{o:?}"),
        }
    }

    #[tokio::test]
    async fn leases_of_folded_offsets_keep_their_range_and_dead_letter_to_the_right_bytes() {
        let store = Store::open("memory://").expect("memory");
        let cache = IndexCache::new(1 << 20);
        let mut s = sim_with(40);
        s.one(group());
        // Offsets 0 and 1 leased while inline; then folded.
        assert_eq!(granted(s.one(lease(&[0, 1], vec![]))), vec![0, 1]);
        keep(&mut s, &store, &cache).await;
        assert!(s.state.topics["t"].queues[0].first_inline() > 10);
        let c = s.state.cursor("g", "", "t", 0).expect("cursor");
        assert_eq!(
            c.leases[&1]
                .located
                .as_ref()
                .map(|r| (r.segment.as_str(), r.first_ordinal)),
            Some(("seg0", 2)),
            "the fold gave the lease its range"
        );
        // A folded offset is granted only with its range.
        assert_eq!(granted(s.one(lease(&[5], vec![None]))), Vec::<u64>::new());
        let snap = QueueSnapshot::of(&s.state.topics["t"].queues[0], 0, u64::MAX);
        let r5 = cache.locate(&store, "t", 0, &snap, 5).await.expect("read");
        assert_eq!(granted(s.one(lease(&[5], vec![r5]))), vec![5]);
        // Every lease expires; max_retries 0 sends them to the dead-letter queue, pointing at
        // the same bytes.
        s.now += 10_000;
        s.one(Command::ExpireLeases);
        let dlq = &s.state.topics["DLQ.g"].queues[0];
        type Moved = (String, u32, Option<(u32, u64)>);
        let moved: Vec<Moved> = dlq
            .ranges
            .iter()
            .map(|r| (r.segment.clone(), r.first_ordinal, r.origin))
            .collect();
        assert_eq!(
            moved,
            vec![
                ("seg0".into(), 1, Some((0, 0))),
                ("seg0".into(), 2, Some((0, 1))),
                ("seg2".into(), 2, Some((0, 5))),
            ]
        );
        // Re-drive them back: the origin ranges are folded, so the retries keep the range.
        let folded = Vec::new();
        assert_eq!(
            s.one(Command::Redrive {
                group: "g".into(),
                max: 10,
                folded,
            }),
            Outcome::Redriven { moved: 3 }
        );
        let c = s.state.cursor("g", "", "t", 0).expect("cursor");
        assert_eq!(
            c.retries[&5]
                .located
                .as_ref()
                .map(|r| (r.segment.as_str(), r.first_ordinal)),
            Some(("seg2", 2))
        );
        assert_eq!(
            granted(s.one(lease(&[5], vec![None]))),
            vec![5],
            "kept range"
        );
        let v = s.state.version;
        s.one(Command::Settle {
            group: "g".into(),
            consumer: String::new(),
            at: at(5),
            lease_version: v,
            action: SettleAction::Ack,
        });
        assert!(
            !s.state
                .cursor("g", "", "t", 0)
                .expect("cursor")
                .leases
                .contains_key(&5)
        );
    }

    #[tokio::test]
    async fn a_redrive_of_a_folded_dead_letter_queue_needs_its_ranges() {
        let store = Store::open("memory://").expect("memory");
        let cache = IndexCache::new(1 << 20);
        let mut s = sim_with(40);
        s.one(group());
        let all: Vec<u64> = (0..30).collect();
        assert_eq!(granted(s.one(lease(&all, vec![]))).len(), 30);
        s.now += 10_000;
        s.one(Command::ExpireLeases);
        assert_eq!(s.state.topics["DLQ.g"].queues[0].next_offset, 30);
        keep(&mut s, &store, &cache).await;
        let dlq = s.state.topics["DLQ.g"].queues[0].clone();
        assert!(!dlq.index.is_empty(), "the dead-letter queue folded too");
        let before = s.state.clone();
        let refused = s.one(Command::Redrive {
            group: "g".into(),
            max: 30,
            folded: vec![],
        });
        assert!(matches!(refused, Outcome::Rejected { .. }), "{refused:?}");
        assert_eq!(s.state.groups, before.groups);
        assert_eq!(s.state.topics, before.topics);
        let snap = QueueSnapshot::of(&dlq, 0, 0);
        let folded: Vec<OffsetRange> = cache
            .ranges_from(&store, "DLQ.g", 0, &snap, 0, dlq.first_inline())
            .await
            .expect("read")
            .into_iter()
            .filter(|r| r.base < dlq.first_inline())
            .collect();
        assert_eq!(
            s.one(Command::Redrive {
                group: "g".into(),
                max: 30,
                folded,
            }),
            Outcome::Redriven { moved: 30 }
        );
        let q = &s.state.topics["DLQ.g"].queues[0];
        assert_eq!((q.min_offset, q.index.len(), q.ranges.len()), (30, 0, 0));
    }
}
