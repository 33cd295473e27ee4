//! FerryMQ's compactor: turns committed segments into a Hive-partitioned Parquet archive and
//! garbage-collects segments past retention. (Being built: see issue 6.)

pub use segment_writer::paths::Paths;
