//! FerryMQ's compactor: turns committed segments into a Hive-partitioned Parquet archive that
//! DuckDB, Spark, Trino or Athena query straight from the bucket, reads archived offsets back,
//! and applies retention and garbage collection of segments.
//!
//! - [`schema`]: the archive's columns and the message ↔ Arrow conversion.
//! - [`writer`]: one archive file (zstd, row groups, statistics and page index on offsets and times).
//! - [`reader`]: ranged reads of archived offsets through the footer and page index.
//! - [`pass`]: one compaction pass under the cluster-wide compactor lease.
//! - [`ledger`]: the delivery ledger's Parquet objects: written in batches, read by trace, retained.
//! - [`gc`]: retention of offset ranges, segment and orphan collection, archive retention.
//! - [`iceberg`]: the archive as an Apache Iceberg table, synced with the catalogue each pass.
//!
//! The catalogue (which file holds which offsets) lives in the manifest
//! (`segment_writer::manifest::archive`): a file is written first and catalogued second, and
//! the manifest refuses an entry that would archive an offset twice.

pub mod error;
pub mod gc;
pub mod iceberg;
pub mod ledger;
pub mod pass;
pub mod reader;
pub mod schema;
pub mod writer;

pub use error::{Error, Result};
pub use iceberg::{IcebergSettings, SyncReport};
pub use pass::{CompactSettings, Observer, PassReport, Quiet, run_pass};
pub use reader::ArchiveReader;
pub use segment_writer::paths::Paths;

#[cfg(test)]
mod tests;
