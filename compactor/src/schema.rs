//! The archive's columns (API.md, "Command line") and the conversion of messages to Arrow
//! record batches and back. Only types that DuckDB, Spark and Trino all read: no unsigned
//! integers; times are `timestamp(ms, UTC)`; `properties` is a Parquet map with the standard
//! `key_value`/`key`/`value` names. A round trip returns byte-identical messages.
//!
//! Besides the twelve columns API.md names, `original_topic` (nullable) keeps a dead letter's
//! original topic (the field `original_topic` of a `DLQ.<group>` message), so that a dead
//! letter read back from the archive is the message the hot tail served. Files written
//! before it existed have no such column and read back as `None`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, MapBuilder, MapFieldNames,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use segment_writer::segment::{Message, MessageRef};

/// Column names, in order.
pub const COLUMNS: [&str; 13] = [
    "topic",
    "queue",
    "offset",
    "message_id",
    "tag",
    "keys",
    "properties",
    "body",
    "publish_time",
    "deliver_time",
    "producer_group",
    "message_group",
    "original_topic",
];

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn map_names() -> MapFieldNames {
    MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    }
}

/// The archive schema.
pub fn schema() -> SchemaRef {
    let keys_item = Arc::new(Field::new("item", DataType::Utf8, true));
    let entries = Field::new(
        "key_value",
        DataType::Struct(
            vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ]
            .into(),
        ),
        false,
    );
    Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("queue", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("message_id", DataType::Utf8, false),
        Field::new("tag", DataType::Utf8, true),
        Field::new("keys", DataType::List(keys_item), false),
        Field::new("properties", DataType::Map(Arc::new(entries), false), false),
        Field::new("body", DataType::Binary, false),
        Field::new("publish_time", ts(), false),
        Field::new("deliver_time", ts(), true),
        Field::new("producer_group", DataType::Utf8, true),
        Field::new("message_group", DataType::Utf8, true),
        Field::new("original_topic", DataType::Utf8, true),
    ]))
}

/// One archived row: a message at its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub topic: String,
    pub queue: u32,
    pub offset: u64,
    pub message: Message,
    /// For a dead letter: the topic it was published to.
    pub original_topic: Option<String>,
}

/// Accumulates rows into a record batch.
pub struct BatchBuilder {
    topic: StringBuilder,
    queue: Int32Builder,
    offset: Int64Builder,
    message_id: StringBuilder,
    tag: StringBuilder,
    keys: ListBuilder<StringBuilder>,
    properties: MapBuilder<StringBuilder, StringBuilder>,
    body: BinaryBuilder,
    publish_time: TimestampMillisecondBuilder,
    deliver_time: TimestampMillisecondBuilder,
    producer_group: StringBuilder,
    message_group: StringBuilder,
    original_topic: StringBuilder,
    rows: usize,
}

impl std::fmt::Debug for BatchBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchBuilder")
            .field("rows", &self.rows)
            .finish()
    }
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        let keys_item = Field::new("item", DataType::Utf8, true);
        BatchBuilder {
            topic: StringBuilder::new(),
            queue: Int32Builder::new(),
            offset: Int64Builder::new(),
            message_id: StringBuilder::new(),
            tag: StringBuilder::new(),
            keys: ListBuilder::new(StringBuilder::new()).with_field(keys_item),
            properties: MapBuilder::new(
                Some(map_names()),
                StringBuilder::new(),
                StringBuilder::new(),
            )
            .with_values_field(Field::new("value", DataType::Utf8, true)),
            body: BinaryBuilder::new(),
            publish_time: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            deliver_time: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            producer_group: StringBuilder::new(),
            message_group: StringBuilder::new(),
            original_topic: StringBuilder::new(),
            rows: 0,
        }
    }

    /// Rows appended since the last [`BatchBuilder::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one message of `topic`/`queue` at `offset` (a dead letter with the topic it
    /// was published to).
    pub fn push(
        &mut self,
        topic: &str,
        queue: u32,
        offset: u64,
        m: &Message,
        original_topic: Option<&str>,
    ) {
        self.topic.append_value(topic);
        self.queue.append_value(queue as i32);
        self.offset.append_value(offset as i64);
        self.message_id.append_value(&m.message_id);
        self.tag.append_option(m.tag.as_deref());
        for k in &m.keys {
            self.keys.values().append_value(k);
        }
        self.keys.append(true);
        for (k, v) in &m.properties {
            self.properties.keys().append_value(k);
            self.properties.values().append_value(v);
        }
        self.properties
            .append(true)
            .expect("keys and values are appended in pairs");
        self.body.append_value(&m.body);
        self.publish_time.append_value(m.publish_time_ms);
        self.deliver_time.append_option(m.deliver_at_ms);
        self.producer_group
            .append_option(m.producer_group.as_deref());
        self.message_group.append_option(m.message_group.as_deref());
        self.original_topic.append_option(original_topic);
        self.rows += 1;
    }

    /// Appends a message borrowed from a segment's bytes (the same row as
    /// [`BatchBuilder::push`] of the owned message; nothing is copied twice).
    pub fn push_ref(
        &mut self,
        topic: &str,
        queue: u32,
        offset: u64,
        m: &MessageRef<'_>,
        original_topic: Option<&str>,
    ) {
        self.topic.append_value(topic);
        self.queue.append_value(queue as i32);
        self.offset.append_value(offset as i64);
        self.message_id.append_value(m.message_id);
        self.tag.append_option(m.tag);
        for k in m.keys {
            self.keys.values().append_value(k);
        }
        self.keys.append(true);
        for (k, v) in m.properties {
            self.properties.keys().append_value(k);
            self.properties.values().append_value(v);
        }
        self.properties
            .append(true)
            .expect("keys and values are appended in pairs");
        self.body.append_value(m.body);
        self.publish_time.append_value(m.publish_time_ms);
        self.deliver_time.append_option(m.deliver_at_ms);
        self.producer_group.append_option(m.producer_group);
        self.message_group.append_option(m.message_group);
        self.original_topic.append_option(original_topic);
        self.rows += 1;
    }

    /// The rows appended so far as a batch; the builder is empty again.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        // Finishing leaves the builders with no capacity: the next batch of about the same
        // size gets its large buffers at once instead of by repeated doubling and copying.
        let rows = self.rows;
        let body_bytes = self.body.values_slice().len();
        let id_bytes = self.message_id.values_slice().len();
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.topic.finish()),
            Arc::new(self.queue.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.message_id.finish()),
            Arc::new(self.tag.finish()),
            Arc::new(self.keys.finish()),
            Arc::new(self.properties.finish()),
            Arc::new(self.body.finish()),
            Arc::new(self.publish_time.finish()),
            Arc::new(self.deliver_time.finish()),
            Arc::new(self.producer_group.finish()),
            Arc::new(self.message_group.finish()),
            Arc::new(self.original_topic.finish()),
        ];
        self.body = BinaryBuilder::with_capacity(rows, body_bytes + body_bytes / 8);
        self.message_id = StringBuilder::with_capacity(rows, id_bytes + id_bytes / 8);
        RecordBatch::try_new(schema(), columns)
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("no column {name}"))
}

fn opt_str(a: &arrow_array::StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_string())
}

/// The rows of a batch read from an archive file (any column order, extra columns ignored).
pub fn rows(batch: &RecordBatch) -> Result<Vec<Row>, String> {
    let wrong = |name: &str| format!("column {name} has an unexpected type");
    let topic = column(batch, "topic")?
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("topic"))?;
    let queue = column(batch, "queue")?
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| wrong("queue"))?;
    let offset = column(batch, "offset")?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| wrong("offset"))?;
    let message_id = column(batch, "message_id")?
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("message_id"))?;
    let tag = column(batch, "tag")?
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("tag"))?;
    let keys = column(batch, "keys")?
        .as_list_opt::<i32>()
        .ok_or_else(|| wrong("keys"))?;
    let properties = column(batch, "properties")?
        .as_map_opt()
        .ok_or_else(|| wrong("properties"))?;
    let body = column(batch, "body")?
        .as_binary_opt::<i32>()
        .ok_or_else(|| wrong("body"))?;
    let publish = column(batch, "publish_time")?
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| wrong("publish_time"))?;
    let deliver = column(batch, "deliver_time")?
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| wrong("deliver_time"))?;
    let producer_group = column(batch, "producer_group")?
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("producer_group"))?;
    let message_group = column(batch, "message_group")?
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("message_group"))?;
    // Optional: files written before the column existed have none.
    let original_topic = match batch.column_by_name("original_topic") {
        Some(c) => Some(
            c.as_string_opt::<i32>()
                .ok_or_else(|| wrong("original_topic"))?,
        ),
        None => None,
    };
    let map_keys = properties
        .keys()
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("properties.key"))?;
    let map_values = properties
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong("properties.value"))?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let key_list = keys.value(i);
        let key_list = key_list
            .as_string_opt::<i32>()
            .ok_or_else(|| wrong("keys.item"))?;
        let offsets = properties.value_offsets();
        let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
        let props: BTreeMap<String, String> = (start..end)
            .map(|j| {
                (
                    map_keys.value(j).to_string(),
                    map_values.value(j).to_string(),
                )
            })
            .collect();
        let t = topic.value(i).to_string();
        let q = u32::try_from(queue.value(i)).map_err(|_| "negative queue".to_string())?;
        let o = u64::try_from(offset.value(i)).map_err(|_| "negative offset".to_string())?;
        out.push(Row {
            message: Message {
                topic: t.clone(),
                message_id: message_id.value(i).to_string(),
                body: Bytes::copy_from_slice(body.value(i)),
                tag: opt_str(tag, i),
                keys: key_list.iter().flatten().map(str::to_string).collect(),
                properties: props,
                message_group: opt_str(message_group, i),
                producer_group: opt_str(producer_group, i),
                publish_time_ms: publish.value(i),
                deliver_at_ms: deliver.is_valid(i).then(|| deliver.value(i)),
            },
            topic: t,
            queue: q,
            offset: o,
            original_topic: original_topic.and_then(|a| opt_str(a, i)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample(i: u64) -> Message {
        Message {
            topic: "t".into(),
            message_id: format!("id-{i}"),
            body: Bytes::from(if i.is_multiple_of(3) {
                vec![0xff, 0, i as u8]
            } else {
                format!("{{\"n\":{i}}}").into_bytes()
            }),
            tag: i.is_multiple_of(2).then(|| "TagA".to_string()),
            keys: (0..i % 3).map(|k| format!("k{k}")).collect(),
            properties: (0..i % 4)
                .map(|k| (format!("p{k}"), format!("v{i}")))
                .collect(),
            message_group: i.is_multiple_of(5).then(|| "mg".to_string()),
            producer_group: i.is_multiple_of(7).then(|| "pg".to_string()),
            publish_time_ms: 1_700_000_000_000 + i as i64,
            deliver_at_ms: (i % 2 == 1).then_some(1_800_000_000_000),
        }
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            (
                "\\PC{0,12}",
                "[A-Za-z0-9]{1,26}",
                proptest::collection::vec(any::<u8>(), 0..64),
                proptest::option::of("\\PC{0,8}"),
                proptest::collection::vec("\\PC{0,6}", 0..3),
            ),
            (
                proptest::collection::btree_map("\\PC{0,6}", "\\PC{0,6}", 0..3),
                proptest::option::of("\\PC{0,8}"),
                proptest::option::of("\\PC{0,8}"),
                any::<i64>(),
                proptest::option::of(any::<i64>()),
            ),
        )
            .prop_map(
                |(
                    (topic, message_id, body, tag, keys),
                    (properties, message_group, producer_group, publish, deliver),
                )| Message {
                    topic,
                    message_id,
                    body: Bytes::from(body),
                    tag,
                    keys,
                    properties,
                    message_group,
                    producer_group,
                    publish_time_ms: publish,
                    deliver_at_ms: deliver,
                },
            )
    }

    proptest! {
        #[test]
        fn any_messages_round_trip_through_a_batch(
            msgs in proptest::collection::vec(
                (arb_message(), proptest::option::of("\\PC{0,8}")),
                0..20,
            ),
            queue in 0u32..1024,
            first in 0u64..(1 << 62),
        ) {
            let mut b = BatchBuilder::new();
            for (i, (m, origin)) in msgs.iter().enumerate() {
                b.push(&m.topic, queue, first + i as u64, m, origin.as_deref());
            }
            let back = rows(&b.finish().expect("batch")).expect("rows");
            prop_assert_eq!(back.len(), msgs.len());
            for (i, r) in back.into_iter().enumerate() {
                prop_assert_eq!(r.offset, first + i as u64);
                prop_assert_eq!(r.queue, queue);
                prop_assert_eq!(&r.message, &msgs[i].0);
                prop_assert_eq!(&r.original_topic, &msgs[i].1);
            }
        }
    }

    #[test]
    fn a_batch_round_trips_every_field() {
        let mut b = BatchBuilder::new();
        let msgs: Vec<Message> = (0..50).map(sample).collect();
        for (i, m) in msgs.iter().enumerate() {
            b.push("t", 3, 100 + i as u64, m, None);
        }
        let batch = b.finish().expect("batch");
        assert_eq!(batch.schema(), schema());
        assert_eq!(
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>(),
            COLUMNS
        );
        let back = rows(&batch).expect("rows");
        assert_eq!(back.len(), 50);
        for (i, r) in back.iter().enumerate() {
            assert_eq!(r.offset, 100 + i as u64);
            assert_eq!(r.queue, 3);
            assert_eq!(r.message, msgs[i]);
        }
        assert!(b.is_empty());
    }

    #[test]
    fn files_without_the_original_topic_column_read_back_without_one() {
        let mut b = BatchBuilder::new();
        b.push("DLQ.g", 0, 7, &sample(1), Some("orders"));
        let batch = b.finish().expect("batch");
        let with = rows(&batch).expect("rows");
        assert_eq!(with[0].original_topic.as_deref(), Some("orders"));
        // A file written before the column existed: the first twelve columns only.
        let old = batch
            .project(&(0..12).collect::<Vec<_>>())
            .expect("projection");
        let without = rows(&old).expect("rows");
        assert_eq!(without[0].original_topic, None);
        assert_eq!(without[0].message, with[0].message);
        // A column of that name with another type is refused, not misread.
        let mut fields: Vec<_> = old.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(
            "original_topic",
            DataType::Int32,
            true,
        )));
        let mut cols = old.columns().to_vec();
        cols.push(Arc::new(arrow_array::Int32Array::from(vec![Some(1)])));
        let odd = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("batch");
        assert!(rows(&odd).unwrap_err().contains("original_topic"));
    }
}
