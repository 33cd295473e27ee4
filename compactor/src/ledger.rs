//! The delivery ledger in the bucket: immutable Parquet objects of message-life events
//! (`segment_writer::manifest::ledger`), written in batches by the sequencer, read back by
//! `/trace`, and deleted after their topic's retention.
//!
//! Layout: `ledger/topic=<t>/date=<YYYY-MM-DD>/hour=<HH>/<first seq>-<last seq>.parquet`
//! (partitioned by the event's time, as the archive is by publish time), so that DuckDB reads
//! the whole ledger with `read_parquet('<root>/ledger/**/*.parquet', hive_partitioning=true)`.
//! Columns: `seq int64, time timestamp(ms, UTC), event string, topic string, queue int32?,
//! offset int64?, count int32, message_id string?, group string?, consumer string?,
//! attempt int32?, gateway string?, detail string?`, rows in `seq` order, zstd.
//!
//! A flush writes one object per (topic, hour) of the events it covers; its rows are exactly
//! the pending events from the state, so a flush repeated after a sequencer crash writes rows
//! with the same `seq` again (possibly in an object of another name): readers keep one row per
//! `seq`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use segment_writer::manifest::{EventKind, LedgerEvent};
use segment_writer::paths::{Paths, utc_date_hour};
use segment_writer::store::Store;

use crate::{Error, Result};

/// Column names, in order.
pub const COLUMNS: [&str; 13] = [
    "seq",
    "time",
    "event",
    "topic",
    "queue",
    "offset",
    "count",
    "message_id",
    "group",
    "consumer",
    "attempt",
    "gateway",
    "detail",
];

/// Ledger objects read at once by a trace lookup.
const READ_PARALLELISM: usize = 16;

/// The ledger schema.
pub fn schema() -> SchemaRef {
    let s = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        s("event", false),
        s("topic", false),
        Field::new("queue", DataType::Int32, true),
        Field::new("offset", DataType::Int64, true),
        Field::new("count", DataType::Int32, false),
        s("message_id", true),
        s("group", true),
        s("consumer", true),
        Field::new("attempt", DataType::Int32, true),
        s("gateway", true),
        s("detail", true),
    ]))
}

fn to_i32(v: u32, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::Invalid(format!("{what} {v} does not fit a ledger row")))
}

fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Invalid(format!("{what} {v} does not fit a ledger row")))
}

/// Events as one Parquet file's bytes (rows in the order given).
pub fn encode(events: &[LedgerEvent]) -> Result<Vec<u8>> {
    let n = events.len();
    let mut seq = Int64Builder::with_capacity(n);
    let mut time = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut event = StringBuilder::new();
    let mut topic = StringBuilder::new();
    let mut queue = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut count = Int32Builder::with_capacity(n);
    let (mut id, mut group, mut consumer, mut gateway, mut detail) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut attempt = Int32Builder::with_capacity(n);
    for e in events {
        seq.append_value(to_i64(e.seq, "seq")?);
        time.append_value(e.time_ms);
        event.append_value(e.event.as_str());
        topic.append_value(&e.topic);
        queue.append_option(e.queue.map(|q| to_i32(q, "queue")).transpose()?);
        offset.append_option(e.offset.map(|o| to_i64(o, "offset")).transpose()?);
        count.append_value(to_i32(e.count, "count")?);
        id.append_option(e.message_id.as_deref());
        group.append_option(e.group.as_deref());
        consumer.append_option(e.consumer.as_deref());
        attempt.append_option(e.attempt.map(|a| to_i32(a, "attempt")).transpose()?);
        gateway.append_option(e.gateway.as_deref());
        detail.append_option(e.detail.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(seq.finish()),
        Arc::new(time.finish()),
        Arc::new(event.finish()),
        Arc::new(topic.finish()),
        Arc::new(queue.finish()),
        Arc::new(offset.finish()),
        Arc::new(count.finish()),
        Arc::new(id.finish()),
        Arc::new(group.finish()),
        Arc::new(consumer.finish()),
        Arc::new(attempt.finish()),
        Arc::new(gateway.finish()),
        Arc::new(detail.finish()),
    ];
    let batch = RecordBatch::try_new(schema(), columns)
        .map_err(|e| Error::Invalid(format!("ledger batch: {e}")))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(format!("FerryMQ ledger {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema(), Some(props))
        .map_err(|e| Error::Invalid(format!("ledger writer: {e}")))?;
    w.write(&batch)
        .map_err(|e| Error::Invalid(format!("ledger write: {e}")))?;
    w.close()
        .map_err(|e| Error::Invalid(format!("ledger close: {e}")))?;
    Ok(out)
}

/// The events of one ledger object (`path` names it in errors).
pub fn decode(path: &str, bytes: Bytes) -> Result<Vec<LedgerEvent>> {
    let bad = |why: String| Error::corrupt(path, why);
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| bad(format!("not Parquet: {e}")))?
        .build()
        .map_err(|e| bad(format!("unreadable: {e}")))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(format!("unreadable: {e}")))?;
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| bad(format!("no column {name}")))
        };
        let i64s = |name: &str| -> Result<Vec<Option<i64>>> {
            let c = col(name)?;
            let a = c
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| bad(format!("{name} is not int64")))?;
            Ok((0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i)))
                .collect())
        };
        let i32s = |name: &str| -> Result<Vec<Option<i32>>> {
            let c = col(name)?;
            let a = c
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(|| bad(format!("{name} is not int32")))?;
            Ok((0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i)))
                .collect())
        };
        let strs = |name: &str| -> Result<Vec<Option<String>>> {
            let c = col(name)?;
            let a = c
                .as_string_opt::<i32>()
                .ok_or_else(|| bad(format!("{name} is not a string")))?;
            Ok((0..a.len())
                .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
                .collect())
        };
        let time_col = col("time")?;
        let times = time_col
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| bad("time is not a timestamp(ms)".into()))?;
        let (seq, event, topic) = (i64s("seq")?, strs("event")?, strs("topic")?);
        let (queue, offset, count) = (i32s("queue")?, i64s("offset")?, i32s("count")?);
        let (id, group, consumer) = (strs("message_id")?, strs("group")?, strs("consumer")?);
        let (attempt, gateway, detail) = (i32s("attempt")?, strs("gateway")?, strs("detail")?);
        for i in 0..batch.num_rows() {
            let kind = event[i]
                .as_deref()
                .and_then(EventKind::parse)
                .ok_or_else(|| bad(format!("row {i}: unknown event {:?}", event[i])))?;
            let non_neg = |v: Option<i64>, what: &str| {
                v.and_then(|v| u64::try_from(v).ok())
                    .ok_or_else(|| bad(format!("row {i}: bad {what}")))
            };
            out.push(LedgerEvent {
                seq: non_neg(seq[i], "seq")?,
                time_ms: times.value(i),
                event: kind,
                topic: topic[i]
                    .clone()
                    .ok_or_else(|| bad(format!("row {i}: no topic")))?,
                queue: queue[i].and_then(|q| u32::try_from(q).ok()),
                offset: offset[i].and_then(|o| u64::try_from(o).ok()),
                count: count[i].and_then(|c| u32::try_from(c).ok()).unwrap_or(1),
                message_id: id[i].clone(),
                group: group[i].clone(),
                consumer: consumer[i].clone(),
                attempt: attempt[i].and_then(|a| u32::try_from(a).ok()),
                gateway: gateway[i].clone(),
                detail: detail[i].clone(),
            });
        }
    }
    Ok(out)
}

/// What one flush wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flushed {
    /// The objects, relative to the store root.
    pub objects: Vec<String>,
    /// Their bytes, summed.
    pub bytes: u64,
}

/// Writes `events` (pending events of the state, in `seq` order) as one object per topic and
/// hour of event time. Objects are written in parallel; an error leaves the ones written
/// (the next flush writes the same rows again).
pub async fn write(store: &Store, events: &[LedgerEvent]) -> Result<Flushed> {
    let mut parts: BTreeMap<(&str, String, u32), Vec<LedgerEvent>> = BTreeMap::new();
    for e in events {
        let (date, hour) = utc_date_hour(e.time_ms);
        parts
            .entry((e.topic.as_str(), date, hour))
            .or_default()
            .push(e.clone());
    }
    let mut jobs = Vec::with_capacity(parts.len());
    for ((topic, date, hour), rows) in parts {
        let (first, last) = match (rows.first(), rows.last()) {
            (Some(f), Some(l)) => (f.seq, l.seq),
            _ => continue,
        };
        let name = Paths::ledger_name(topic, &date, hour, first, last);
        let bytes = encode(&rows)?;
        jobs.push((name, bytes));
    }
    let written = futures::stream::iter(jobs)
        .map(|(name, bytes)| async move {
            let path = store.paths.relative(&name);
            let size = bytes.len() as u64;
            store
                .inner
                .put(&path, bytes.into())
                .await
                .map_err(|e| Error::store("put", &path, e))?;
            Ok::<_, Error>((name, size))
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    let mut out = Flushed::default();
    for (name, size) in written {
        out.objects.push(name);
        out.bytes += size;
    }
    out.objects.sort();
    Ok(out)
}

/// Every hour (date, hour) from `from_ms` to `to_ms`, both included, at most `max` (the
/// earliest: a message's life is mostly in its first hours).
fn hours(from_ms: i64, to_ms: i64, max: usize) -> Vec<(String, u32)> {
    const HOUR: i64 = 3_600_000;
    let first = from_ms.div_euclid(HOUR);
    let last = to_ms
        .div_euclid(HOUR)
        .min(first.saturating_add(max as i64 - 1));
    (first..=last).map(|h| utc_date_hour(h * HOUR)).collect()
}

/// The events of `topic` in ledger objects of the hours `from_ms..=to_ms` (at most `max_hours`,
/// the earliest) that `keep` accepts, one per `seq`, in `seq` order.
pub async fn read(
    store: &Store,
    topic: &str,
    (from_ms, to_ms, max_hours): (i64, i64, usize),
    keep: impl Fn(&LedgerEvent) -> bool,
) -> Result<Vec<LedgerEvent>> {
    let dirs: Vec<_> = hours(from_ms, to_ms, max_hours)
        .into_iter()
        .map(|(date, hour)| store.paths.ledger_dir(topic, Some((&date, Some(hour)))))
        .collect();
    let objects: Vec<object_store::path::Path> = futures::stream::iter(dirs)
        .map(|dir| async move {
            store
                .inner
                .list(Some(&dir))
                .map_ok(|m| m.location)
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| Error::store("list", &dir, e))
        })
        .buffer_unordered(READ_PARALLELISM)
        .try_collect::<Vec<Vec<_>>>()
        .await?
        .into_iter()
        .flatten()
        .filter(|p| p.as_ref().ends_with(".parquet"))
        .collect();
    let keep = &keep;
    let found = futures::stream::iter(objects)
        .map(|path| async move {
            let bytes = match store.inner.get(&path).await {
                Ok(r) => r.bytes().await.map_err(|e| Error::store("get", &path, e))?,
                // Collected by retention meanwhile.
                Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
                Err(e) => return Err(Error::store("get", &path, e)),
            };
            Ok::<_, Error>(
                decode(path.as_ref(), bytes)?
                    .into_iter()
                    .filter(|e| keep(e))
                    .collect::<Vec<_>>(),
            )
        })
        .buffer_unordered(READ_PARALLELISM)
        .try_collect::<Vec<_>>()
        .await?;
    let mut by_seq: BTreeMap<u64, LedgerEvent> = BTreeMap::new();
    for e in found.into_iter().flatten() {
        by_seq.entry(e.seq).or_insert(e);
    }
    Ok(by_seq.into_values().collect())
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    pub objects: u64,
}

/// Deletes the ledger objects whose hour ended before `now_ms` minus their topic's retention
/// (`retention_hours(topic)`; `None`: the topic is gone, and its ledger goes once its hour
/// is older than `orphan_hours`). LISTs the topics and each topic's dates (with a delimiter),
/// then only the dates at or before the cut-off: the objects still kept are never listed
/// beyond one date.
pub async fn collect(
    store: &Store,
    now_ms: i64,
    orphan_hours: u32,
    retention_hours: impl Fn(&str) -> Option<u32>,
) -> Result<Collected> {
    let dirs = |dir: object_store::path::Path| async move {
        store
            .inner
            .list_with_delimiter(Some(&dir))
            .await
            .map(|l| l.common_prefixes)
            .map_err(|e| Error::store("list", &dir, e))
    };
    let mut out = Collected::default();
    for tdir in dirs(store.paths.ledger_root()).await? {
        let Some(topic) = tdir.filename().and_then(|f| f.strip_prefix("topic=")) else {
            continue;
        };
        let keep_hours = retention_hours(topic).unwrap_or(orphan_hours);
        // An hour is kept while any of it is within retention.
        let cutoff = now_ms - i64::from(keep_hours) * 3_600_000 - 3_600_000;
        let (cut_date, cut_hour) = utc_date_hour(cutoff);
        for ddir in dirs(tdir.clone()).await? {
            let Some(date) = ddir.filename().and_then(|f| f.strip_prefix("date=")) else {
                continue;
            };
            if date > cut_date.as_str() {
                continue;
            }
            let whole_day = date < cut_date.as_str();
            let listed = store
                .inner
                .list(Some(&ddir))
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| Error::store("list", &ddir, e))?;
            for path in listed.into_iter().map(|m| m.location) {
                let hour = path
                    .parts()
                    .find_map(|p| p.as_ref().strip_prefix("hour=")?.parse::<u32>().ok());
                if !(whole_day || hour.is_some_and(|h| h < cut_hour)) {
                    continue;
                }
                match store.inner.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => out.objects += 1,
                    Err(e) => return Err(Error::store("delete", &path, e)),
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(seq: u64, time_ms: i64, topic: &str) -> LedgerEvent {
        LedgerEvent {
            seq,
            time_ms,
            ..LedgerEvent::new(EventKind::Delivered, topic)
                .at(3, 77)
                .of_group("g", "c")
                .attempt(2)
        }
    }

    fn arb_event() -> impl Strategy<Value = LedgerEvent> {
        let opt_s = || proptest::option::of("[a-zA-Z0-9._ -]{0,24}");
        (
            (
                0u64..i64::MAX as u64,
                -10_000_000_000i64..10_000_000_000_000,
            ),
            0usize..EventKind::ALL.len(),
            "[A-Za-z0-9._-]{1,20}",
            (
                proptest::option::of(0u32..1024),
                proptest::option::of(0u64..i64::MAX as u64),
                1u32..1000,
            ),
            (opt_s(), opt_s(), opt_s()),
            (proptest::option::of(1u32..100), opt_s(), opt_s()),
        )
            .prop_map(
                |(
                    (seq, time_ms),
                    k,
                    topic,
                    (queue, offset, count),
                    (id, group, consumer),
                    (attempt, gateway, detail),
                )| {
                    LedgerEvent {
                        seq,
                        time_ms,
                        event: EventKind::ALL[k],
                        topic,
                        queue,
                        offset,
                        count,
                        message_id: id,
                        group,
                        consumer,
                        attempt,
                        gateway,
                        detail,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn events_round_trip_through_parquet(events in proptest::collection::vec(arb_event(), 0..40)) {
            let bytes = encode(&events).expect("encodes");
            let back = decode("x", Bytes::from(bytes)).expect("decodes");
            prop_assert_eq!(back, events);
        }
    }

    #[test]
    fn garbage_and_foreign_parquet_are_refused_as_corrupt() {
        assert!(matches!(
            decode("x", Bytes::from_static(b"not parquet")),
            Err(Error::Corrupt { .. })
        ));
        // A Parquet file of another schema (the archive's columns) is not a ledger object.
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("seq", DataType::Utf8, false)])),
            vec![Arc::new(arrow_array::StringArray::from(vec!["a"])) as ArrayRef],
        )
        .expect("batch");
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, other.schema(), None).expect("writer");
        w.write(&other).expect("write");
        w.close().expect("close");
        assert!(matches!(
            decode("x", Bytes::from(buf)),
            Err(Error::Corrupt { .. })
        ));
        // An unknown event name is refused too.
        let mut bad = encode(&[event(1, 5, "t")]).expect("encodes");
        let at = bad
            .windows(9)
            .position(|w| w == b"delivered")
            .expect("the event name is stored plain");
        bad[at..at + 9].copy_from_slice(b"xxxxxxxxx");
        assert!(decode("x", Bytes::from(bad)).is_err());
    }

    #[tokio::test]
    async fn a_flush_writes_one_object_per_topic_and_hour_and_reads_back_once_per_seq() {
        let store = Store::memory();
        const H: i64 = 3_600_000;
        let t0 = 1_767_225_600_000; // 2026-01-01T00:00Z
        let events = vec![
            event(0, t0 + 10, "a"),
            event(1, t0 + 20, "b"),
            event(2, t0 + H + 5, "a"),
        ];
        let flushed = write(&store, &events).await.expect("writes");
        assert_eq!(
            flushed.objects,
            vec![
                "ledger/topic=a/date=2026-01-01/hour=00/00000000000000000000-00000000000000000000.parquet",
                "ledger/topic=a/date=2026-01-01/hour=01/00000000000000000002-00000000000000000002.parquet",
                "ledger/topic=b/date=2026-01-01/hour=00/00000000000000000001-00000000000000000001.parquet",
            ]
        );
        // A repeated flush (a sequencer that died before committing) writes the same rows again,
        // under the same name or, with more events by then, another: read back once.
        write(&store, &events[..1]).await.expect("writes");
        write(&store, &[events[0].clone(), event(3, t0 + 30, "a")])
            .await
            .expect("writes");
        let got = read(&store, "a", (t0, t0 + 2 * H, 100), |_| true)
            .await
            .expect("reads");
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 2, 3]);
        assert_eq!(
            read(&store, "a", (t0, t0 + 2 * H, 1), |_| true)
                .await
                .expect("reads")
                .len(),
            2,
            "the earliest hour only"
        );
        let only_first_hour = read(&store, "a", (t0, t0 + 10, 100), |e| e.seq != 3)
            .await
            .expect("reads");
        assert_eq!(only_first_hour.len(), 1);
        // Retention: topic a keeps 1 hour, b is gone (orphan after 0 hours). One object of a
        // the day before goes with its whole date.
        write(&store, &[event(9, t0 - 20 * H, "a")])
            .await
            .expect("writes");
        let now = t0 + 3 * H + 1;
        let c = collect(&store, now, 0, |t| (t == "a").then_some(1))
            .await
            .expect("collects");
        // a's hour 00 (two objects: the repeat of 0-0 overwrote it) ended at t0 + H, older than
        // now - 1 h - 1 h; hour 01 is kept; b's goes; so does the day before.
        assert_eq!(c.objects, 4);
        let left = read(&store, "a", (t0, now, 100), |_| true)
            .await
            .expect("reads");
        assert_eq!(left.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);
    }
}
