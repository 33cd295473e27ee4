//! Reading archived messages back: given a catalogued file and a run of offsets, only the
//! footer (cached per file), then the pages that hold those rows (ranged GETs through the
//! page index), decoded to the same [`Message`](segment_writer::segment::Message) values,
//! byte for byte, that the segments held (with a dead letter's original topic beside them).
//!
//! Rows of a file are its offsets in order, one per offset (the catalogue guarantees
//! `rows == max_offset - min_offset`), so an offset's row number is `offset - min_offset`; the
//! decoded `offset` column is checked against it, so a file that does not hold what the
//! catalogue says is an [`Error::Corrupt`], never a wrong message.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use segment_writer::manifest::catalogue::CatalogueCache;
use segment_writer::manifest::{ArchivedFile, QueueArchive};
use segment_writer::store::Store;

use crate::schema::{Row, rows};
use crate::{Error, Result};

/// Footers kept in memory (each a few KiB to a few hundred KiB).
const METADATA_CACHE_FILES: usize = 256;

/// Ranged reads of one object, for the Parquet reader.
struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

fn external(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let meta = ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Optional)
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(meta))
        }
        .boxed()
    }
}

/// Reads archived offsets; cheap to share.
#[derive(Debug)]
pub struct ArchiveReader {
    store: Store,
    metadata: Mutex<HashMap<String, ArrowReaderMetadata>>,
    /// File lists of catalogue runs (older files), at most [`CATALOGUE_CACHE_BYTES`].
    catalogues: CatalogueCache,
}

/// Bytes of catalogue runs' file lists a reader keeps (about 30,000 files).
const CATALOGUE_CACHE_BYTES: usize = 8 * 1024 * 1024;

impl ArchiveReader {
    /// A reader over `store`.
    pub fn new(store: Store) -> Self {
        ArchiveReader {
            store,
            metadata: Mutex::new(HashMap::new()),
            catalogues: CatalogueCache::new(CATALOGUE_CACHE_BYTES),
        }
    }

    async fn metadata(&self, file: &ArchivedFile) -> Result<ArrowReaderMetadata> {
        if let Some(m) = self
            .metadata
            .lock()
            .expect("metadata cache lock poisoned")
            .get(&file.path)
        {
            return Ok(m.clone());
        }
        let mut r = self.object(file);
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let m = ArrowReaderMetadata::load_async(&mut r, options)
            .await
            .map_err(|e| self.error(file, e))?;
        let mut cache = self.metadata.lock().expect("metadata cache lock poisoned");
        if cache.len() >= METADATA_CACHE_FILES {
            cache.clear();
        }
        cache.insert(file.path.clone(), m.clone());
        Ok(m)
    }

    fn object(&self, file: &ArchivedFile) -> ObjectReader {
        ObjectReader {
            store: self.store.inner.clone(),
            path: self.store.paths.relative(&file.path),
            size: file.bytes,
        }
    }

    fn error(&self, file: &ArchivedFile, e: parquet::errors::ParquetError) -> Error {
        match e {
            parquet::errors::ParquetError::External(inner) => {
                match inner.downcast::<object_store::Error>() {
                    Ok(os) => Error::store("get", &file.path, *os),
                    Err(other) => Error::corrupt(&file.path, other),
                }
            }
            e => Error::corrupt(&file.path, e),
        }
    }

    /// The messages at `offsets` (clipped to the file), in offset order.
    pub async fn read_file(&self, file: &ArchivedFile, offsets: Range<u64>) -> Result<Vec<Row>> {
        let start = offsets.start.max(file.min_offset);
        let end = offsets.end.min(file.max_offset);
        if start >= end {
            return Ok(Vec::new());
        }
        let meta = self.metadata(file).await?;
        // Row groups overlapping the rows wanted, and the selection within them.
        let (first_row, last_row) = (start - file.min_offset, end - file.min_offset);
        let mut groups = Vec::new();
        let mut selectors = Vec::new();
        let mut at = 0u64;
        for (i, rg) in meta.metadata().row_groups().iter().enumerate() {
            let n = rg.num_rows() as u64;
            let (rg_start, rg_end) = (at, at + n);
            at = rg_end;
            if rg_end <= first_row || rg_start >= last_row {
                continue;
            }
            groups.push(i);
            let sel_start = first_row.max(rg_start);
            let sel_end = last_row.min(rg_end);
            selectors.push(RowSelector::skip((sel_start - rg_start) as usize));
            selectors.push(RowSelector::select((sel_end - sel_start) as usize));
            selectors.push(RowSelector::skip((rg_end - sel_end) as usize));
        }
        if at != file.rows {
            return Err(Error::corrupt(
                &file.path,
                format!("holds {at} rows, the catalogue says {}", file.rows),
            ));
        }
        let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(self.object(file), meta)
            .with_row_groups(groups)
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(8192)
            .build()
            .map_err(|e| self.error(file, e))?;
        let batches: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|e| self.error(file, e))?;
        let mut out = Vec::with_capacity((end - start) as usize);
        for b in &batches {
            out.extend(rows(b).map_err(|e| Error::corrupt(&file.path, e))?);
        }
        let expected: Vec<u64> = (start..end).collect();
        let got: Vec<u64> = out.iter().map(|r| r.offset).collect();
        if got != expected {
            return Err(Error::corrupt(
                &file.path,
                format!("asked for offsets {start}..{end}, the file returned others"),
            ));
        }
        Ok(out)
    }

    /// Up to `max` messages of `topic`/`queue`'s archive from `from`, stopping before `end`.
    /// A file in a catalogue run costs one GET of its catalogue object first (cached).
    pub async fn read(
        &self,
        topic: &str,
        queue: u32,
        archive: &QueueArchive,
        from: u64,
        end: u64,
        max: usize,
    ) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        let mut at = from;
        while out.len() < max && at < end {
            let Some(file) = self
                .catalogues
                .file_for(&self.store, topic, queue, archive, at)
                .await?
            else {
                break;
            };
            let stop = end.min(at + (max - out.len()) as u64);
            let got = self.read_file(&file, at..stop).await?;
            at = got.last().map_or(stop, |r| r.offset + 1);
            out.extend(got);
        }
        Ok(out)
    }
}
