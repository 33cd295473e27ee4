//! The archive as an Apache Iceberg table (format v2), kept equal to the manifest's archive
//! catalogue by every compaction pass, so that Spark, Trino, Athena, DuckDB, pyiceberg or
//! Snowflake find schema, partitions and files from the table's metadata instead of listing
//! the bucket.
//!
//! **One table for every topic**, at `<store>/archive`, partitioned by `topic` (identity) and
//! `hour(publish_time)`: the split the archive files already have (each holds one queue's
//! messages of one UTC hour), so the table adds metadata and rewrites no data. One table
//! rather than one per topic because every topic has the same columns, a query across topics
//! (a dead-letter topic beside its origin) stays one scan, partition pruning on `topic` costs
//! a reader nothing, and a pass commits once instead of once per topic.
//!
//! The files under `archive/metadata/` (see [`segment_writer::paths::Paths`]):
//! - `v<N>.metadata.json`: the table metadata, version `N`. Version `N + 1` is written
//!   **create-if-absent**, as the manifest log is: two compactors (one whose lease lapsed) cannot
//!   both commit version `N + 1`, so the table's history cannot fork; the loser's pass fails and
//!   the next pass starts from the winner's version.
//! - `version-hint.text`: the newest `N`, for readers that look there (DuckDB's
//!   `iceberg_scan`, Hadoop catalogs). Only a hint: the newest `v<N>` is found by listing.
//! - `snap-<snapshot id>-<ulid>.avro`: a snapshot's manifest list.
//! - `<snapshot id>-m<k>-<ulid>.avro`: a manifest, named after the snapshot that wrote it.
//!
//! **A sync** ([`sync`]) reads the current snapshot's manifests, compares their live files with
//! the catalogue (attached and detached files), and when they differ commits one snapshot:
//! an `append` for newly catalogued files, a `delete` for files archive retention removed, an
//! `overwrite` for both. Manifests with no removed file are carried over; a manifest with one is
//! rewritten; past [`IcebergSettings::max_manifests`] all are merged into one, as Iceberg's
//! merge-append does. The pass syncs after archiving and archive retention, and deletes expired
//! or orphaned archive files only after the sync succeeded, so the current snapshot never names
//! a deleted file.
//!
//! **What stays bounded**: manifests per snapshot (`max_manifests + 1`), snapshots (those newer
//! than [`IcebergSettings::snapshot_max_age`], capped by the archive retention, and always the
//! current one), metadata files ([`IcebergSettings::metadata_versions`] besides the current),
//! and the objects under `archive/metadata/`: `collect_garbage` deletes manifest lists of
//! expired snapshots and manifests no retained snapshot references, after the orphan grace.
//! What grows is what the catalogue holds anyway: one manifest entry per archive file.
//!
//! The files hold no Iceberg field ids: the table's `schema.name-mapping.default` maps column
//! names to ids, as the spec provides for files written without them. Times are Parquet
//! `TIMESTAMP(MILLIS, UTC)`, read as `timestamptz`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, FormatVersion, ListType,
    Literal, ManifestEntry, ManifestFile, ManifestList, ManifestListWriter, ManifestWriterBuilder,
    MapType, MappedField, NameMapping, NestedField, Operation, PrimitiveType, Schema, SchemaRef,
    Snapshot, SnapshotReference, SnapshotRetention, SortOrder, Struct, Summary, TableMetadata,
    TableMetadataBuilder, Transform, Type, UnboundPartitionSpec,
};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutPayload};
use segment_writer::clock::{Clock, new_ulid};
use segment_writer::manifest::ArchivedFile;
use segment_writer::manifest::catalogue::{self, CatalogueCache};
use segment_writer::node::Node;
use segment_writer::paths::{IcebergObject, Paths};
use segment_writer::store::Store;
use tracing::{debug, info};

use crate::pass::Observer;
use crate::{Error, Result};

/// How the Iceberg table is kept. Defaults suit any store.
#[derive(Debug, Clone)]
pub struct IcebergSettings {
    /// Manifests a snapshot references at most before they are merged into one. Default 16.
    pub max_manifests: usize,
    /// Snapshots older than this are expired (the current one is always kept); at most the
    /// archive retention when that is shorter. Default 1 day (288 snapshots at one pass every
    /// 5 minutes).
    pub snapshot_max_age: Duration,
    /// Table metadata files kept besides the current one. Default 10.
    pub metadata_versions: usize,
}

impl Default for IcebergSettings {
    fn default() -> Self {
        IcebergSettings {
            max_manifests: 16,
            snapshot_max_age: Duration::from_secs(24 * 3600),
            metadata_versions: 10,
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// The table's metadata version after the sync (0: no table yet).
    pub version: u64,
    /// Data files added to and removed from the table.
    pub added: u64,
    pub removed: u64,
    /// Snapshots expired.
    pub expired_snapshots: u64,
    /// Objects under `archive/metadata/` deleted.
    pub metadata_deleted: u64,
}

/// The table's columns, their ids fixed: a new table gets these ids, and every later version
/// keeps them.
pub fn table_schema() -> Result<Schema> {
    let string = || Type::Primitive(PrimitiveType::String);
    let ts = || Type::Primitive(PrimitiveType::Timestamptz);
    let fields = vec![
        NestedField::required(1, "topic", string()),
        NestedField::required(2, "queue", Type::Primitive(PrimitiveType::Int)),
        NestedField::required(3, "offset", Type::Primitive(PrimitiveType::Long)),
        NestedField::required(4, "message_id", string()),
        NestedField::optional(5, "tag", string()),
        NestedField::required(
            6,
            "keys",
            Type::List(ListType::new(
                NestedField::list_element(14, string(), false).into(),
            )),
        ),
        NestedField::required(
            7,
            "properties",
            Type::Map(MapType::new(
                NestedField::map_key_element(15, string()).into(),
                NestedField::map_value_element(16, string(), false).into(),
            )),
        ),
        NestedField::required(8, "body", Type::Primitive(PrimitiveType::Binary)),
        NestedField::required(9, "publish_time", ts()),
        NestedField::optional(10, "deliver_time", ts()),
        NestedField::optional(11, "producer_group", string()),
        NestedField::optional(12, "message_group", string()),
        NestedField::optional(13, "original_topic", string()),
    ];
    Schema::builder()
        .with_fields(fields.into_iter().map(Arc::new))
        .build()
        .map_err(|e| iceberg_error("the table schema", e))
}

/// The table's name mapping (`schema.name-mapping.default`): column names to field ids, for
/// files written without ids. A list's element answers to `element` (Iceberg's name) and
/// `item` (Arrow's, which the files use).
pub fn name_mapping(schema: &Schema) -> NameMapping {
    fn mapped(field: &NestedField) -> MappedField {
        let children = match field.field_type.as_ref() {
            Type::List(l) => vec![MappedField::new(
                Some(l.element_field.id),
                vec!["element".into(), "item".into()],
                Vec::new(),
            )],
            Type::Map(m) => vec![
                MappedField::new(Some(m.key_field.id), vec!["key".into()], Vec::new()),
                MappedField::new(Some(m.value_field.id), vec!["value".into()], Vec::new()),
            ],
            Type::Struct(s) => s.fields().iter().map(|f| mapped(f)).collect(),
            Type::Primitive(_) => Vec::new(),
        };
        MappedField::new(Some(field.id), vec![field.name.clone()], children)
    }
    NameMapping::new(
        schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| mapped(f))
            .collect(),
    )
}

fn partition_spec() -> Result<UnboundPartitionSpec> {
    UnboundPartitionSpec::builder()
        .add_partition_field(1, "topic", Transform::Identity)
        .and_then(|b| b.add_partition_field(9, "publish_time_hour", Transform::Hour))
        .map(|b| b.build())
        .map_err(|e| iceberg_error("the partition spec", e))
}

fn iceberg_error(what: &str, e: iceberg::Error) -> Error {
    Error::Iceberg(format!("{what}: {e}"))
}

/// The table's location and the absolute form of keys under the store's prefix (Iceberg
/// names every file by its full URI).
#[derive(Debug, Clone)]
pub(crate) struct Locations {
    /// The store URL without a trailing slash.
    base: String,
}

impl Locations {
    pub(crate) fn of(store: &Store) -> Self {
        Locations {
            base: store.url.trim_end_matches('/').to_string(),
        }
    }

    fn table(&self) -> String {
        format!("{}/{}", self.base, segment_writer::paths::ARCHIVE)
    }

    fn absolute(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// The name relative to the prefix of a file the table names.
    pub(crate) fn relative<'a>(&self, uri: &'a str) -> Result<&'a str> {
        uri.strip_prefix(self.base.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| {
                Error::Iceberg(format!(
                    "the table names {uri}, outside the store {}: was the store moved?",
                    self.base
                ))
            })
    }
}

/// The newest table version and its metadata, if the table exists.
pub(crate) struct Current {
    pub(crate) version: u64,
    location: String,
    pub(crate) metadata: TableMetadata,
}

async fn get(store: &Store, name: &str) -> Result<Bytes> {
    let key = store.paths.relative(name);
    let got = store
        .inner
        .get(&key)
        .await
        .map_err(|e| Error::store("get", &key, e))?;
    got.bytes().await.map_err(|e| Error::store("get", &key, e))
}

async fn put(store: &Store, name: &str, bytes: Bytes, mode: PutMode) -> Result<()> {
    let key = store.paths.relative(name);
    match store
        .inner
        .put_opts(&key, PutPayload::from(bytes), mode.into())
        .await
    {
        Ok(_) => Ok(()),
        Err(object_store::Error::AlreadyExists { .. }) => Err(Error::IcebergConflict(format!(
            "{key} exists: another compactor committed this table version"
        ))),
        Err(e) => Err(Error::store("put", &key, e)),
    }
}

async fn list_metadata(store: &Store) -> Result<Vec<object_store::ObjectMeta>> {
    let dir = store.paths.relative(Paths::ICEBERG_METADATA);
    store
        .inner
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| Error::store("list", &dir, e))
}

/// The newest table version in the bucket, by listing (the hint may lag).
pub(crate) async fn load_current(store: &Store, at: &Locations) -> Result<Option<Current>> {
    let newest = list_metadata(store)
        .await?
        .iter()
        .filter_map(
            |m| match m.location.filename().map(Paths::parse_iceberg_object) {
                Some(IcebergObject::Metadata(v)) => Some(v),
                _ => None,
            },
        )
        .max();
    let Some(version) = newest else {
        return Ok(None);
    };
    let name = Paths::iceberg_metadata_name(version);
    let bytes = get(store, &name).await?;
    let metadata: TableMetadata = serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(store.paths.relative(&name), e))?;
    Ok(Some(Current {
        version,
        location: at.absolute(&name),
        metadata,
    }))
}

/// A file of the catalogue, as the table will name it.
struct Catalogued<'a> {
    topic: &'a str,
    queue: u32,
    file: &'a ArchivedFile,
}

/// The catalogue's files (attached and detached, listed and in runs) by their names
/// relative to the prefix.
fn catalogue(files: &[(String, u32, ArchivedFile)]) -> BTreeMap<&str, Catalogued<'_>> {
    files
        .iter()
        .map(|(topic, queue, file)| {
            (
                file.path.as_str(),
                Catalogued {
                    topic,
                    queue: *queue,
                    file,
                },
            )
        })
        .collect()
}

/// The Iceberg data file of a catalogued archive file, with the bounds the catalogue knows
/// (topic, queue, offsets, publish times) for pruning.
fn data_file(
    at: &Locations,
    schema: &Schema,
    spec_id: i32,
    name: &str,
    c: &Catalogued<'_>,
) -> Result<DataFile> {
    let id = |column: &str| {
        schema
            .field_id_by_name(column)
            .ok_or_else(|| Error::Iceberg(format!("the table has no column {column}")))
    };
    let f = c.file;
    let hour = i32::try_from(f.min_time_ms.div_euclid(3_600_000))
        .map_err(|_| Error::corrupt(name, "publish time out of range"))?;
    let queue = i32::try_from(c.queue).unwrap_or(i32::MAX);
    let micros = |ms: i64| ms.saturating_mul(1000);
    let lower = HashMap::from([
        (id("topic")?, Datum::string(c.topic)),
        (id("queue")?, Datum::int(queue)),
        (id("offset")?, Datum::long(f.min_offset as i64)),
        (
            id("publish_time")?,
            Datum::timestamptz_micros(micros(f.min_time_ms)),
        ),
    ]);
    let upper = HashMap::from([
        (id("topic")?, Datum::string(c.topic)),
        (id("queue")?, Datum::int(queue)),
        (
            id("offset")?,
            Datum::long(f.max_offset.saturating_sub(1) as i64),
        ),
        (
            id("publish_time")?,
            Datum::timestamptz_micros(micros(f.max_time_ms)),
        ),
    ]);
    DataFileBuilder::default()
        .content(DataContentType::Data)
        .file_path(at.absolute(name))
        .file_format(DataFileFormat::Parquet)
        .partition(Struct::from_iter([
            Some(Literal::string(c.topic)),
            Some(Literal::int(hour)),
        ]))
        .partition_spec_id(spec_id)
        .record_count(f.rows)
        .file_size_in_bytes(f.bytes)
        .lower_bounds(lower)
        .upper_bounds(upper)
        .build()
        .map_err(|e| Error::Iceberg(format!("data file {name}: {e}")))
}

/// Objects written into memory by the crate's Avro writers, then PUT to the store.
struct Writer<'a> {
    store: &'a Store,
    /// Names of the manifests and lists written carry its time.
    clock: &'a dyn Clock,
    at: &'a Locations,
    io: FileIO,
    snapshot_id: i64,
    sequence: i64,
    schema: SchemaRef,
    spec: iceberg::spec::PartitionSpec,
}

/// One entry of a manifest being written.
enum Entry {
    /// Catalogued since the last snapshot.
    Added(DataFile),
    /// Carried over from an earlier snapshot (its sequence numbers kept).
    Existing(ManifestEntry),
    /// Removed by this snapshot.
    Deleted(ManifestEntry),
}

impl Writer<'_> {
    /// Moves what the crate wrote at `uri` into memory out to the store.
    async fn flush(&self, uri: &str, name: &str) -> Result<()> {
        let input = self.io.new_input(uri).map_err(|e| iceberg_error(name, e))?;
        let bytes = input.read().await.map_err(|e| iceberg_error(name, e))?;
        self.io
            .delete(uri)
            .await
            .map_err(|e| iceberg_error(name, e))?;
        put(self.store, name, bytes, PutMode::Overwrite).await
    }

    async fn manifest(&self, k: usize, entries: Vec<Entry>) -> Result<ManifestFile> {
        let name = Paths::iceberg_manifest_name(self.snapshot_id, k, &new_ulid(self.clock));
        let uri = self.at.absolute(&name);
        let output = self
            .io
            .new_output(&uri)
            .map_err(|e| iceberg_error(&name, e))?;
        let mut w = ManifestWriterBuilder::new(
            output,
            Some(self.snapshot_id),
            self.schema.clone(),
            self.spec.clone(),
        )
        .build_v2_data();
        let sequence_numbers = |e: &ManifestEntry| {
            e.sequence_number.zip(e.snapshot_id).ok_or_else(|| {
                Error::Iceberg(format!(
                    "manifest entry {} has no sequence number",
                    e.data_file.file_path()
                ))
            })
        };
        for entry in entries {
            let added = match entry {
                Entry::Added(f) => w.add_file(f, self.sequence),
                Entry::Existing(e) => {
                    let (sequence, snapshot) = sequence_numbers(&e)?;
                    w.add_existing_file(e.data_file, snapshot, sequence, e.file_sequence_number)
                }
                Entry::Deleted(e) => {
                    let (sequence, _) = sequence_numbers(&e)?;
                    w.add_delete_file(e.data_file, sequence, e.file_sequence_number)
                }
            };
            added.map_err(|e| iceberg_error(&name, e))?;
        }
        let file = w
            .write_manifest_file()
            .await
            .map_err(|e| iceberg_error(&name, e))?;
        self.flush(&uri, &name).await?;
        Ok(file)
    }

    async fn manifest_list(
        &self,
        parent: Option<i64>,
        manifests: Vec<ManifestFile>,
    ) -> Result<String> {
        let name = Paths::iceberg_manifest_list_name(self.snapshot_id, &new_ulid(self.clock));
        let uri = self.at.absolute(&name);
        let out = self
            .io
            .new_output(&uri)
            .map_err(|e| iceberg_error(&name, e))?;
        let file = out.writer().await.map_err(|e| iceberg_error(&name, e))?;
        let mut w = ManifestListWriter::v2(file, self.snapshot_id, parent, self.sequence);
        w.add_manifests(manifests.into_iter())
            .map_err(|e| iceberg_error(&name, e))?;
        w.close().await.map_err(|e| iceberg_error(&name, e))?;
        self.flush(&uri, &name).await?;
        Ok(uri)
    }
}

/// Manifest GETs in flight while reading the current snapshot.
const MANIFEST_GETS: usize = 8;

/// The current snapshot's manifests and their entries (sequence numbers inherited from the
/// manifest list, as readers see them).
pub(crate) async fn read_snapshot(
    store: &Store,
    at: &Locations,
    metadata: &TableMetadata,
) -> Result<Vec<(ManifestFile, Vec<ManifestEntry>)>> {
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok(Vec::new());
    };
    let list_name = at.relative(snapshot.manifest_list())?;
    let bytes = get(store, list_name).await?;
    let list = ManifestList::parse_with_version(&bytes, metadata.format_version())
        .map_err(|e| Error::corrupt(store.paths.relative(list_name), e))?;
    // A Vec: the crate's iterator is not `Send`, and a pass runs on a spawned task.
    let files: Vec<ManifestFile> = list.consume_entries().into_iter().collect();
    let io = FileIO::new_with_memory();
    let io = &io;
    futures::stream::iter(files)
        .map(|mf| async move {
            let name = at.relative(&mf.manifest_path)?;
            let bytes = get(store, name).await?;
            let corrupt = |e: iceberg::Error| Error::corrupt(store.paths.relative(name), e);
            io.new_output(&mf.manifest_path)
                .map_err(corrupt)?
                .write(bytes)
                .await
                .map_err(corrupt)?;
            let manifest = mf.load_manifest(io).await.map_err(corrupt)?;
            io.delete(&mf.manifest_path).await.map_err(corrupt)?;
            let (entries, _) = manifest.into_parts();
            let entries = entries.into_iter().map(Arc::unwrap_or_clone).collect();
            Ok::<_, Error>((mf, entries))
        })
        .buffered(MANIFEST_GETS)
        .try_collect()
        .await
}

/// A snapshot id no snapshot of `metadata` has: positive, random.
fn new_snapshot_id(metadata: Option<&TableMetadata>, clock: &dyn Clock) -> i64 {
    loop {
        let id = (new_ulid(clock).random() as u64 & i64::MAX as u64) as i64;
        if id != 0 && metadata.is_none_or(|m| m.snapshot_by_id(id).is_none()) {
            return id;
        }
    }
}

/// The table's properties: the name mapping for files without field ids, how many metadata
/// files the log keeps, and what the files are.
fn properties(schema: &Schema, s: &IcebergSettings) -> Result<HashMap<String, String>> {
    let mapping = serde_json::to_string(&name_mapping(schema))
        .map_err(|e| Error::Iceberg(format!("the name mapping: {e}")))?;
    Ok(HashMap::from([
        (
            iceberg::spec::DEFAULT_SCHEMA_NAME_MAPPING.to_string(),
            mapping,
        ),
        (
            iceberg::spec::TableProperties::PROPERTY_METADATA_PREVIOUS_VERSIONS_MAX.to_string(),
            s.metadata_versions.to_string(),
        ),
        (
            "write.parquet.compression-codec".to_string(),
            "zstd".to_string(),
        ),
        (
            "comment".to_string(),
            "FerryMQ's message archive, maintained by the compactor".to_string(),
        ),
    ]))
}

/// Makes the table equal to the catalogue (one snapshot if they differ), expires snapshots
/// past their age, then collects unreferenced metadata objects older than `grace`.
pub async fn sync(
    node: &Node,
    s: &IcebergSettings,
    catalogues: &CatalogueCache,
    archive_retention: Option<Duration>,
    grace: Duration,
    observer: &dyn Observer,
) -> Result<SyncReport> {
    let store = node.store().clone();
    let at = Locations::of(&store);
    let current = load_current(&store, &at).await?;
    let manifests = match &current {
        Some(c) => read_snapshot(&store, &at, &c.metadata).await?,
        None => Vec::new(),
    };
    let mut report = SyncReport {
        version: current.as_ref().map_or(0, |c| c.version),
        ..SyncReport::default()
    };

    // What the table holds, what the catalogue holds, and the difference.
    let mut in_table: HashSet<&str> = HashSet::new();
    for (_, entries) in &manifests {
        for e in entries.iter().filter(|e| e.is_alive()) {
            in_table.insert(at.relative(e.data_file.file_path())?);
        }
    }
    let (added, removed, total) = {
        let archive = node.state().archive.clone();
        let files = catalogue::all_files(&store, catalogues, &archive).await?;
        let live = catalogue(&files);
        let removed: HashSet<String> = in_table
            .iter()
            .filter(|n| !live.contains_key(**n))
            .map(|n| n.to_string())
            .collect();
        let added: Vec<(String, String, u32, ArchivedFile)> = live
            .iter()
            .filter(|(n, _)| !in_table.contains(**n))
            .map(|(n, c)| (n.to_string(), c.topic.to_string(), c.queue, c.file.clone()))
            .collect();
        (added, removed, live.len())
    };
    if added.is_empty() && removed.is_empty() {
        if let Some(c) = &current {
            report.metadata_deleted = collect_garbage(node, &at, c, s, grace).await?;
        }
        return Ok(report);
    }
    observer.step("iceberg commit");

    // The schema and partition spec the manifests are written with: the table's, or a new
    // table's (the builder assigns the same ids every time).
    let base = match &current {
        Some(c) => c.metadata.clone(),
        None => {
            TableMetadataBuilder::new(
                table_schema()?,
                partition_spec()?,
                SortOrder::unsorted_order(),
                at.table(),
                FormatVersion::V2,
                HashMap::new(),
            )
            .and_then(|b| b.build())
            .map_err(|e| iceberg_error("a new table", e))?
            .metadata
        }
    };
    let schema = base.current_schema().clone();
    let spec = (**base.default_partition_spec()).clone();
    let existing = current.as_ref().map(|c| &c.metadata);
    let snapshot_id = new_snapshot_id(existing, &**node.clock());
    let parent = existing.and_then(|m| m.current_snapshot_id());
    let sequence = existing.map_or(1, |m| m.next_sequence_number());
    let w = Writer {
        store: &store,
        clock: &**node.clock(),
        at: &at,
        io: FileIO::new_with_memory(),
        snapshot_id,
        sequence,
        schema: schema.clone(),
        spec: spec.clone(),
    };

    // New data files.
    let mut added_rows = 0u64;
    let mut added_bytes = 0u64;
    let mut new_files = Vec::with_capacity(added.len());
    for (name, topic, queue, file) in &added {
        let c = Catalogued {
            topic,
            queue: *queue,
            file,
        };
        added_rows += file.rows;
        added_bytes += file.bytes;
        new_files.push(data_file(&at, &schema, spec.spec_id(), name, &c)?);
    }

    // Manifests: carried over, rewritten without removed files, or all merged into one.
    let mut removed_rows = 0u64;
    let mut removed_bytes = 0u64;
    let touched = |entries: &[ManifestEntry]| {
        entries.iter().any(|e| {
            e.is_alive()
                && at
                    .relative(e.data_file.file_path())
                    .is_ok_and(|n| removed.contains(n))
        })
    };
    let rewritten = manifests.iter().filter(|(_, e)| touched(e)).count();
    let kept = manifests.len() - rewritten;
    let merge = kept + rewritten + usize::from(!new_files.is_empty()) > s.max_manifests;
    let mut out: Vec<ManifestFile> = Vec::new();
    let mut merged: Vec<Entry> = Vec::new();
    let mut k = 0;
    for (mf, entries) in manifests {
        if !merge && !touched(&entries) {
            out.push(mf);
            continue;
        }
        let mut rewrite = Vec::with_capacity(entries.len());
        for e in entries.into_iter().filter(ManifestEntry::is_alive) {
            let name = at.relative(e.data_file.file_path())?;
            if removed.contains(name) {
                removed_rows += e.data_file.record_count();
                removed_bytes += e.data_file.file_size_in_bytes();
                rewrite.push(Entry::Deleted(e));
            } else {
                rewrite.push(Entry::Existing(e));
            }
        }
        if merge {
            merged.extend(rewrite);
        } else if !rewrite.is_empty() {
            out.push(w.manifest(k, rewrite).await?);
            k += 1;
        }
    }
    merged.extend(new_files.into_iter().map(Entry::Added));
    if !merged.is_empty() {
        out.push(w.manifest(k, merged).await?);
    }
    let manifest_list = w.manifest_list(parent, out).await?;

    // The snapshot and the metadata that makes it current.
    let now = node.clock().now_ms();
    let timestamp = existing.map_or(now, |m| now.max(m.last_updated_ms()));
    let operation = match (added.is_empty(), removed.is_empty()) {
        (false, true) => Operation::Append,
        (true, false) => Operation::Delete,
        _ => Operation::Overwrite,
    };
    let total_before: (u64, u64) =
        existing
            .and_then(|m| m.current_snapshot())
            .map_or((0, 0), |sn| {
                let get = |k: &str| {
                    sn.summary()
                        .additional_properties
                        .get(k)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                (get("total-records"), get("total-files-size"))
            });
    let summary = Summary {
        operation,
        additional_properties: HashMap::from([
            ("added-data-files".into(), added.len().to_string()),
            ("deleted-data-files".into(), removed.len().to_string()),
            ("added-records".into(), added_rows.to_string()),
            ("deleted-records".into(), removed_rows.to_string()),
            ("added-files-size".into(), added_bytes.to_string()),
            ("removed-files-size".into(), removed_bytes.to_string()),
            ("total-data-files".into(), total.to_string()),
            (
                "total-records".into(),
                (total_before.0 + added_rows)
                    .saturating_sub(removed_rows)
                    .to_string(),
            ),
            (
                "total-files-size".into(),
                (total_before.1 + added_bytes)
                    .saturating_sub(removed_bytes)
                    .to_string(),
            ),
            ("total-delete-files".into(), "0".into()),
            ("total-position-deletes".into(), "0".into()),
            ("total-equality-deletes".into(), "0".into()),
        ]),
    };
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent)
        .with_sequence_number(sequence)
        .with_timestamp_ms(timestamp)
        .with_manifest_list(manifest_list)
        .with_summary(summary)
        .with_schema_id(schema.schema_id())
        .build();
    let max_age = archive_retention.map_or(s.snapshot_max_age, |r| r.min(s.snapshot_max_age));
    let expired: Vec<i64> = existing
        .map(|m| {
            m.snapshots()
                .filter(|sn| sn.timestamp_ms() < timestamp - max_age.as_millis() as i64)
                .map(|sn| sn.snapshot_id())
                .collect()
        })
        .unwrap_or_default();
    let builder = match &current {
        Some(c) => Ok(TableMetadataBuilder::new_from_metadata(
            c.metadata.clone(),
            Some(c.location.clone()),
        )),
        None => TableMetadataBuilder::new(
            table_schema()?,
            partition_spec()?,
            SortOrder::unsorted_order(),
            at.table(),
            FormatVersion::V2,
            properties(&schema, s)?,
        )
        .map(|b| b.assign_uuid(base.uuid())),
    };
    let metadata = builder
        .and_then(|b| b.add_snapshot(snapshot))
        .and_then(|b| {
            b.set_ref(
                iceberg::spec::MAIN_BRANCH,
                SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
            )
        })
        .map(|b| b.remove_snapshots(&expired))
        .and_then(|b| b.build())
        .map_err(|e| iceberg_error("the new table metadata", e))?
        .metadata;
    let json = serde_json::to_vec(&metadata)
        .map_err(|e| Error::Iceberg(format!("the new table metadata: {e}")))?;
    let version = report.version + 1;
    let name = Paths::iceberg_metadata_name(version);
    observer.step("iceberg metadata");
    put(&store, &name, Bytes::from(json), PutMode::Create).await?;
    put(
        &store,
        &Paths::iceberg_version_hint_name(),
        Bytes::from(version.to_string()),
        PutMode::Overwrite,
    )
    .await?;
    info!(
        version,
        snapshot_id,
        added = added.len(),
        removed = removed.len(),
        expired = expired.len(),
        "iceberg table committed"
    );
    report.version = version;
    report.added = added.len() as u64;
    report.removed = removed.len() as u64;
    report.expired_snapshots = expired.len() as u64;
    let now_current = Current {
        version,
        location: at.absolute(&name),
        metadata,
    };
    report.metadata_deleted = collect_garbage(node, &at, &now_current, s, grace).await?;
    Ok(report)
}

/// Deletes, once older than `grace`, metadata files more than `metadata_versions` behind the
/// current one, manifest lists of expired snapshots, and manifests that no retained snapshot
/// references. A manifest is referenced by a run of consecutive snapshots from the one that
/// wrote it (until a later one rewrites or merges it), so one written by an expired snapshot
/// is referenced by a retained one exactly when the oldest retained snapshot lists it: one GET.
async fn collect_garbage(
    node: &Node,
    at: &Locations,
    current: &Current,
    s: &IcebergSettings,
    grace: Duration,
) -> Result<u64> {
    let store = node.store();
    let listed = list_metadata(store).await?;
    let m = &current.metadata;
    let retained: HashSet<i64> = m.snapshots().map(|sn| sn.snapshot_id()).collect();
    let mut oldest_lists: HashSet<String> = HashSet::new();
    if let Some(oldest) = m.snapshots().min_by_key(|sn| sn.sequence_number()) {
        let name = at.relative(oldest.manifest_list())?;
        let bytes = get(store, name).await?;
        let list = ManifestList::parse_with_version(&bytes, m.format_version())
            .map_err(|e| Error::corrupt(store.paths.relative(name), e))?;
        for mf in list.entries() {
            oldest_lists.insert(at.relative(&mf.manifest_path)?.to_string());
        }
    }
    let cutoff = node.clock().now_ms() - grace.as_millis() as i64;
    let keep_from = current.version.saturating_sub(s.metadata_versions as u64);
    let doomed: Vec<Path> = listed
        .into_iter()
        .filter(|o| o.last_modified.timestamp_millis() <= cutoff)
        .filter(|o| {
            let Some(name) = store.paths.strip_prefix(&o.location) else {
                return false;
            };
            let file = o.location.filename().unwrap_or_default();
            match Paths::parse_iceberg_object(file) {
                IcebergObject::Metadata(v) => v < keep_from,
                IcebergObject::ManifestList(id) => !retained.contains(&id),
                IcebergObject::Manifest(id) => {
                    !retained.contains(&id) && !oldest_lists.contains(&name)
                }
                IcebergObject::Other => false,
            }
        })
        .map(|o| o.location)
        .collect();
    if doomed.is_empty() {
        return Ok(0);
    }
    debug!(
        count = doomed.len(),
        "deleting unreferenced iceberg metadata"
    );
    let n = doomed.len() as u64;
    let first = doomed[0].clone();
    store
        .inner
        .delete_stream(futures::stream::iter(doomed.into_iter().map(Ok)).boxed())
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| Error::store("delete", first, e))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's columns are the files' columns: same names, order and nullability, and types
    /// that read the files' values (times as `timestamptz`).
    #[test]
    fn the_table_schema_matches_the_files() {
        let table = table_schema().expect("schema");
        let files = crate::schema::schema();
        let columns: Vec<&str> = table
            .as_struct()
            .fields()
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(columns, crate::schema::COLUMNS);
        for (t, f) in table.as_struct().fields().iter().zip(files.fields()) {
            assert_eq!(t.required, !f.is_nullable(), "{}", t.name);
            let expected = match f.data_type() {
                arrow_schema::DataType::Utf8 => "string",
                arrow_schema::DataType::Int32 => "int",
                arrow_schema::DataType::Int64 => "long",
                arrow_schema::DataType::Binary => "binary",
                arrow_schema::DataType::Timestamp(..) => "timestamptz",
                arrow_schema::DataType::List(_) => "list",
                arrow_schema::DataType::Map(..) => "map",
                other => panic!("{}: {other}", t.name),
            };
            let got = match t.field_type.as_ref() {
                Type::Primitive(p) => p.to_string(),
                Type::List(_) => "list".into(),
                Type::Map(_) => "map".into(),
                Type::Struct(_) => "struct".into(),
            };
            assert_eq!(got, expected, "{}", t.name);
        }
        // Every field id, nested ones included, is in the name mapping.
        let mapping = serde_json::to_value(name_mapping(&table)).expect("json");
        let text = mapping.to_string();
        for id in 1..=16 {
            assert!(
                text.contains(&format!("\"field-id\":{id},")),
                "{id}: {text}"
            );
        }
    }
}
