//! Writing one archive file: the rows of one queue's contiguous offsets, zstd-compressed, in
//! row groups of at most `row_group_rows` rows or about `row_group_bytes` bytes, with page
//! statistics (and the page index) on `offset` and the times, sorted by `offset`.
//!
//! The file goes to its final key through `object_store::buffered::BufWriter`: a small file is
//! one PUT, a large one a multipart upload that becomes visible only when completed. So a
//! compactor that dies mid-write leaves nothing (or an invisible upload), and one that dies
//! after the write but before the catalogue commit leaves an orphan that the next pass
//! collects after a grace.

use arrow_array::RecordBatch;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use segment_writer::segment::{Message, MessageRef};
use segment_writer::store::Store;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::schema::{BatchBuilder, schema};
use crate::{Error, Result};

/// Rows per record batch handed to the Parquet writer.
const BATCH_ROWS: usize = 4096;

/// Layout settings of archive files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    /// Rows per row group at most. Default 1,000,000 (analytics engines like big row groups).
    pub row_group_rows: usize,
    /// Encoded bytes per row group, about. Default 128 MiB. Smaller: less writer memory.
    pub row_group_bytes: usize,
    /// Rows per data page at most. Smaller: a pull of a few offsets reads less; larger: a
    /// slightly smaller file. Default 8192.
    pub page_rows: usize,
    /// zstd level. Default 1: on message-like data (JSON bodies, ids) it compressed as well
    /// as 3 (0.151 vs 0.155 of the message bytes) at about two thirds of the CPU of a pass
    /// (docs/benchmarks.md, "Compaction throughput (issue 20)").
    pub zstd_level: i32,
}

impl Default for FileSettings {
    fn default() -> Self {
        FileSettings {
            row_group_rows: 1_000_000,
            row_group_bytes: 128 * 1024 * 1024,
            page_rows: 8192,
            zstd_level: 1,
        }
    }
}

fn properties(s: &FileSettings) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(s.zstd_level)
        .map_err(|e| Error::Invalid(format!("zstd level {}: {e}", s.zstd_level)))?;
    let offset_col = crate::schema::COLUMNS
        .iter()
        .position(|c| *c == "offset")
        .expect("offset is a column") as i32;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(s.row_group_rows.max(1)))
        .set_max_row_group_bytes(Some(s.row_group_bytes.max(1)))
        .set_data_page_row_count_limit(s.page_rows.max(1))
        .set_statistics_enabled(EnabledStatistics::Page)
        // Statistics on bodies are large and useless.
        .set_column_statistics_enabled(ColumnPath::from("body"), EnabledStatistics::None)
        // Columns whose values are (nearly) all distinct: a dictionary only costs hashing
        // every value until it overflows and the writer falls back to plain encoding.
        .set_column_dictionary_enabled(ColumnPath::from("body"), false)
        .set_column_dictionary_enabled(ColumnPath::from("message_id"), false)
        .set_column_dictionary_enabled(ColumnPath::from("offset"), false)
        .set_column_dictionary_enabled(ColumnPath::from("publish_time"), false)
        .set_column_dictionary_enabled(
            ColumnPath::new(vec!["keys".into(), "list".into(), "item".into()]),
            false,
        )
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: offset_col,
            descending: false,
            nulls_first: false,
        }]))
        .set_created_by(format!("FerryMQ compactor {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Key relative to the store root.
    pub path: String,
    pub min_offset: u64,
    pub max_offset: u64,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub rows: u64,
    /// The file's size.
    pub bytes: u64,
    /// Message bytes archived (bodies, ids, tags, keys, properties, groups).
    pub message_bytes: u64,
    /// Row groups written.
    pub row_groups: usize,
}

/// Writes one archive file of `topic`/`queue` starting at `first_offset`.
pub struct FileWriter {
    /// Batches to the encoder; `None` once finished.
    tx: Option<mpsc::Sender<ToEncoder>>,
    /// Encodes and uploads on a blocking-pool thread ([`encode_and_upload`]), so decoding
    /// segments and building batches (this side) overlaps encoding and compressing (that
    /// side) on another core. If the writer is dropped unfinished, the encoder sees its
    /// channel close without [`ToEncoder::Finish`] and aborts the upload, so an abandoned
    /// file is never completed.
    task: Option<JoinHandle<Result<usize>>>,
    batch: BatchBuilder,
    path: String,
    topic: String,
    queue: u32,
    first_offset: u64,
    next_offset: u64,
    min_time_ms: i64,
    max_time_ms: i64,
    message_bytes: u64,
}

impl std::fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWriter")
            .field("path", &self.path)
            .field("next_offset", &self.next_offset)
            .finish()
    }
}

/// A failed upload of the file's bytes: the store's (retry).
fn upload_error(path: &str, e: std::io::Error) -> Error {
    Error::Unavailable {
        operation: "put",
        path: path.to_string(),
        source: object_store::Error::Generic {
            store: "archive",
            source: Box::new(e),
        },
    }
}

/// Encoded bytes the encoder accumulates before handing them to the upload buffer.
const FLUSH_BYTES: usize = 1 << 20;

/// What the writer sends its encoder.
enum ToEncoder {
    Batch(RecordBatch),
    /// Write the footer and complete the upload. Without it (the writer was dropped), the
    /// upload is aborted: an abandoned file never becomes visible.
    Finish,
}

/// Encodes batches and uploads the bytes, on a blocking-pool thread (encoding and zstd are
/// CPU work that must not hold up a runtime worker serving requests); the upload's async
/// calls are driven from that thread through `rt`.
fn encode_and_upload(
    rt: &tokio::runtime::Handle,
    mut rx: mpsc::Receiver<ToEncoder>,
    mut writer: ArrowWriter<Vec<u8>>,
    mut sink: BufWriter,
    path: &str,
) -> Result<usize> {
    loop {
        match rx.blocking_recv() {
            Some(ToEncoder::Batch(b)) => {
                writer.write(&b).map_err(|e| Error::corrupt(path, e))?;
                if writer.inner().len() >= FLUSH_BYTES {
                    let buf =
                        std::mem::replace(writer.inner_mut(), Vec::with_capacity(2 * FLUSH_BYTES));
                    rt.block_on(sink.write_all(&buf))
                        .map_err(|e| upload_error(path, e))?;
                }
            }
            Some(ToEncoder::Finish) => break,
            None => {
                if let Err(e) = rt.block_on(sink.abort()) {
                    warn!(path, error = %e, "aborting the upload of an abandoned archive file failed");
                }
                return Err(Error::corrupt(path, "abandoned before it was finished"));
            }
        }
    }
    let meta = writer.finish().map_err(|e| Error::corrupt(path, e))?;
    let buf = std::mem::take(writer.inner_mut());
    rt.block_on(async {
        sink.write_all(&buf).await?;
        sink.shutdown().await
    })
    .map_err(|e| upload_error(path, e))?;
    Ok(meta.num_row_groups())
}

/// Message bytes of one message (what "MB/s of message bytes" counts).
pub fn message_bytes(m: &Message) -> u64 {
    (m.approx_size() as u64).saturating_sub(64)
}

impl FileWriter {
    /// Starts a file at `path` (relative to the store root).
    pub fn create(
        store: &Store,
        path: String,
        topic: &str,
        queue: u32,
        first_offset: u64,
        settings: &FileSettings,
    ) -> Result<FileWriter> {
        let key = store.paths.relative(&path);
        let sink = BufWriter::with_capacity(store.inner.clone(), key, 8 * 1024 * 1024);
        let writer = ArrowWriter::try_new(
            Vec::with_capacity(2 * FLUSH_BYTES),
            schema(),
            Some(properties(settings)?),
        )
        .map_err(|e| Error::corrupt(&path, e))?;
        let (tx, rx) = mpsc::channel::<ToEncoder>(2);
        let task_path = path.clone();
        let rt = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            encode_and_upload(&rt, rx, writer, sink, &task_path)
        });
        Ok(FileWriter {
            tx: Some(tx),
            task: Some(task),
            batch: BatchBuilder::new(),
            path,
            topic: topic.to_string(),
            queue,
            first_offset,
            next_offset: first_offset,
            min_time_ms: i64::MAX,
            max_time_ms: i64::MIN,
            message_bytes: 0,
        })
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.next_offset - self.first_offset
    }

    /// Appends the message at the next offset (a dead letter with its original topic).
    pub async fn push(&mut self, m: &Message, original_topic: Option<&str>) -> Result<()> {
        self.batch
            .push(&self.topic, self.queue, self.next_offset, m, original_topic);
        self.next_offset += 1;
        self.min_time_ms = self.min_time_ms.min(m.publish_time_ms);
        self.max_time_ms = self.max_time_ms.max(m.publish_time_ms);
        self.message_bytes += message_bytes(m);
        if self.batch.len() >= BATCH_ROWS {
            self.write_batch().await?;
        }
        Ok(())
    }

    /// Appends the message at the next offset, borrowed from a segment's bytes; returns its
    /// message bytes.
    pub async fn push_ref(
        &mut self,
        m: &MessageRef<'_>,
        original_topic: Option<&str>,
    ) -> Result<u64> {
        self.batch
            .push_ref(&self.topic, self.queue, self.next_offset, m, original_topic);
        self.next_offset += 1;
        self.min_time_ms = self.min_time_ms.min(m.publish_time_ms);
        self.max_time_ms = self.max_time_ms.max(m.publish_time_ms);
        let bytes = (m.approx_size() as u64).saturating_sub(64);
        self.message_bytes += bytes;
        if self.batch.len() >= BATCH_ROWS {
            self.write_batch().await?;
        }
        Ok(bytes)
    }

    async fn write_batch(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let b = self
            .batch
            .finish()
            .map_err(|e| Error::corrupt(&self.path, e))?;
        let sent = match &self.tx {
            Some(tx) => tx.send(ToEncoder::Batch(b)).await.is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The encoding task stopped: its error says why.
            self.tx = None;
            Err(self.join().await.err().unwrap_or_else(|| {
                Error::corrupt(
                    &self.path,
                    "the encoder stopped before the file was finished",
                )
            }))
        }
    }

    async fn join(&mut self) -> Result<usize> {
        let task = self
            .task
            .take()
            .ok_or_else(|| Error::corrupt(&self.path, "the file was already finished"))?;
        task.await
            .map_err(|e| Error::corrupt(&self.path, format!("the encoder failed: {e}")))?
    }

    /// Writes the footer and completes the upload; returns what the file holds.
    pub async fn finish(mut self, store: &Store) -> Result<WrittenFile> {
        self.write_batch().await?;
        let path = self.path.clone();
        if let Some(tx) = self.tx.take() {
            // If the encoder already stopped, joining it returns its error.
            let _ = tx.send(ToEncoder::Finish).await;
        }
        let row_groups = self.join().await?;
        let key = store.paths.relative(&path);
        let head = store
            .inner
            .head(&key)
            .await
            .map_err(|e| Error::store("head", &key, e))?;
        Ok(WrittenFile {
            path,
            min_offset: self.first_offset,
            max_offset: self.next_offset,
            min_time_ms: self.min_time_ms,
            max_time_ms: self.max_time_ms,
            rows: self.next_offset - self.first_offset,
            bytes: head.size,
            message_bytes: self.message_bytes,
            row_groups,
        })
    }
}
