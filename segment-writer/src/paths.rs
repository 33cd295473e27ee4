//! Every object key FerryMQ writes, under one configurable prefix. Nothing else builds keys.
//!
//! Versions are zero-padded to 20 digits so that LIST order is version order.

use object_store::path::Path;

const SEGMENTS: &str = "segments";
const LOG: &str = "manifest/log";
const CHECKPOINTS: &str = "manifest/checkpoints";
/// The archive's folder, relative to the prefix; also the Iceberg table's location.
pub const ARCHIVE: &str = "archive";
const TIMERS: &str = "timers";
const INDEX: &str = "index";
const LEDGER: &str = "ledger";

/// Builds and parses the keys of one FerryMQ bucket prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    prefix: String,
}

impl Paths {
    /// Keys under `prefix` (empty for the bucket root; no leading or trailing `/`).
    pub fn new(prefix: &str) -> Self {
        Paths {
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    fn join(&self, rest: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rest)
        } else {
            Path::from(format!("{}/{}", self.prefix, rest))
        }
    }

    /// `segments/<date>/<ulid>.seg`: the relative name recorded in the manifest.
    pub fn segment_name(date: &str, id: &ulid::Ulid) -> String {
        format!("{SEGMENTS}/{date}/{id}.seg")
    }

    /// The full key of a segment from its relative name.
    pub fn segment(&self, name: &str) -> Path {
        self.join(name)
    }

    /// `manifest/log/<version>`.
    pub fn log_version(&self, version: u64) -> Path {
        self.join(&format!("{LOG}/{version:020}"))
    }

    /// The folder of the log, for LIST.
    pub fn log_dir(&self) -> Path {
        self.join(LOG)
    }

    /// `manifest/checkpoints/<version>`.
    pub fn checkpoint(&self, version: u64) -> Path {
        self.join(&format!("{CHECKPOINTS}/{version:020}"))
    }

    /// The folder of the checkpoints, for LIST.
    pub fn checkpoint_dir(&self) -> Path {
        self.join(CHECKPOINTS)
    }

    /// The folder of all segments, for LIST (garbage collection).
    pub fn segment_dir(&self) -> Path {
        self.join(SEGMENTS)
    }

    /// `archive/topic=<t>/date=<d>/hour=<h>/<id>.parquet`, relative to the prefix.
    pub fn archive_name(topic: &str, date: &str, hour: u32, id: &str) -> String {
        format!("{ARCHIVE}/topic={topic}/date={date}/hour={hour:02}/{id}.parquet")
    }

    /// `ledger/topic=<t>/date=<d>/hour=<h>/<first seq>-<last seq>.parquet`: events of the
    /// delivery ledger `first..=last` (20 digits each) of one topic and hour, relative to the
    /// prefix. The same layout as the archive, so that one `read_parquet` glob with Hive
    /// partitioning reads either.
    pub fn ledger_name(
        topic: &str,
        date: &str,
        hour: u32,
        first_seq: u64,
        last_seq: u64,
    ) -> String {
        format!(
            "{LEDGER}/topic={topic}/date={date}/hour={hour:02}/{first_seq:020}-{last_seq:020}.parquet"
        )
    }

    /// The folder of one topic's ledger objects (`date=<d>/hour=<h>` or coarser), for LIST.
    pub fn ledger_dir(&self, topic: &str, partition: Option<(&str, Option<u32>)>) -> Path {
        match partition {
            None => self.join(&format!("{LEDGER}/topic={topic}")),
            Some((date, None)) => self.join(&format!("{LEDGER}/topic={topic}/date={date}")),
            Some((date, Some(hour))) => self.join(&format!(
                "{LEDGER}/topic={topic}/date={date}/hour={hour:02}"
            )),
        }
    }

    /// The folder of the whole ledger, for LIST (retention).
    pub fn ledger_root(&self) -> Path {
        self.join(LEDGER)
    }

    /// `timers/<ulid>.json`: a timer spill object, relative to the prefix.
    pub fn timer_spill_name(id: &ulid::Ulid) -> String {
        format!("{TIMERS}/{id}.json")
    }

    /// `index/<ulid>.idx`: an offset index object, relative to the prefix.
    pub fn index_name(id: &ulid::Ulid) -> String {
        format!("{INDEX}/{id}.idx")
    }

    /// `index/<ulid>.cat`: an archive catalogue object, relative to the prefix (beside the
    /// index objects, and collected with them).
    pub fn catalogue_name(id: &ulid::Ulid) -> String {
        format!("{INDEX}/{id}.cat")
    }

    /// The folder of index objects, for LIST (garbage collection).
    pub fn index_dir(&self) -> Path {
        self.join(INDEX)
    }

    /// The folder of timer spill objects, for LIST (garbage collection).
    pub fn timer_spill_dir(&self) -> Path {
        self.join(TIMERS)
    }

    /// The folder of the Parquet archive, for LIST (orphan collection).
    pub fn archive_dir(&self) -> Path {
        self.join(ARCHIVE)
    }

    /// The Iceberg table's metadata folder, relative to the prefix.
    pub const ICEBERG_METADATA: &'static str = "archive/metadata";

    /// `archive/metadata/v<version>.metadata.json`: the Iceberg table's metadata, relative to
    /// the prefix (the Hadoop-table name that DuckDB's `iceberg_scan` and Spark look for).
    pub fn iceberg_metadata_name(version: u64) -> String {
        format!("{}/v{version}.metadata.json", Self::ICEBERG_METADATA)
    }

    /// `archive/metadata/version-hint.text`: the newest metadata version, as a hint.
    pub fn iceberg_version_hint_name() -> String {
        format!("{}/version-hint.text", Self::ICEBERG_METADATA)
    }

    /// `archive/metadata/snap-<snapshot id>-<ulid>.avro`: a snapshot's manifest list.
    pub fn iceberg_manifest_list_name(snapshot_id: i64, id: &ulid::Ulid) -> String {
        format!("{}/snap-{snapshot_id}-{id}.avro", Self::ICEBERG_METADATA)
    }

    /// `archive/metadata/<snapshot id>-m<k>-<ulid>.avro`: the `k`-th manifest the snapshot
    /// wrote.
    pub fn iceberg_manifest_name(snapshot_id: i64, k: usize, id: &ulid::Ulid) -> String {
        format!("{}/{snapshot_id}-m{k}-{id}.avro", Self::ICEBERG_METADATA)
    }

    /// What a file name under `archive/metadata/` is.
    pub fn parse_iceberg_object(filename: &str) -> IcebergObject {
        let parse = || -> Option<IcebergObject> {
            if let Some(v) = filename
                .strip_prefix('v')
                .and_then(|r| r.strip_suffix(".metadata.json"))
            {
                return v.parse().ok().map(IcebergObject::Metadata);
            }
            let stem = filename.strip_suffix(".avro")?;
            if let Some(rest) = stem.strip_prefix("snap-") {
                let (id, _) = rest.split_once('-')?;
                return id.parse().ok().map(IcebergObject::ManifestList);
            }
            let (id, rest) = stem.split_once('-')?;
            rest.starts_with('m')
                .then(|| id.parse().ok().map(IcebergObject::Manifest))
                .flatten()
        };
        parse().unwrap_or(IcebergObject::Other)
    }

    /// The name relative to the prefix of a full key under it (inverse of [`Paths::relative`]).
    pub fn strip_prefix(&self, path: &Path) -> Option<String> {
        let s = path.as_ref();
        if self.prefix.is_empty() {
            return Some(s.to_string());
        }
        s.strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .map(str::to_string)
    }

    /// The full key of a file given its name relative to the prefix.
    pub fn relative(&self, name: &str) -> Path {
        self.join(name)
    }

    /// The version a log or checkpoint key names, if it is one.
    pub fn parse_version(path: &Path) -> Option<u64> {
        let name = path.filename()?;
        if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        name.parse().ok()
    }
}

/// `YYYY-MM-DD` and hour (UTC) of a Unix millisecond time: the date parts of segment and
/// archive keys.
pub fn utc_date_hour(ms: i64) -> (String, u32) {
    let days = ms.div_euclid(86_400_000);
    let hour = (ms.rem_euclid(86_400_000) / 3_600_000) as u32;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (format!("{y:04}-{m:02}-{d:02}"), hour)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iceberg_names_parse_back() {
        let id = ulid::Ulid::from_parts(1, 2);
        let file = |name: String| {
            name.rsplit('/')
                .next()
                .map(str::to_string)
                .unwrap_or_default()
        };
        for (name, what) in [
            (
                Paths::iceberg_metadata_name(12),
                IcebergObject::Metadata(12),
            ),
            (
                Paths::iceberg_manifest_list_name(77, &id),
                IcebergObject::ManifestList(77),
            ),
            (
                Paths::iceberg_manifest_name(77, 3, &id),
                IcebergObject::Manifest(77),
            ),
            (Paths::iceberg_version_hint_name(), IcebergObject::Other),
        ] {
            assert!(name.starts_with("archive/metadata/"), "{name}");
            assert_eq!(Paths::parse_iceberg_object(&file(name)), what);
        }
        for other in [
            "vx.metadata.json",
            "snap-x-y.avro",
            "12-x.avro",
            "a.parquet",
        ] {
            assert_eq!(Paths::parse_iceberg_object(other), IcebergObject::Other);
        }
    }

    #[test]
    fn versions_sort_by_key_and_parse_back() {
        let p = Paths::new("/pre/fix/");
        let a = p.log_version(9);
        let b = p.log_version(10);
        assert!(a.as_ref() < b.as_ref());
        assert_eq!(a.as_ref(), "pre/fix/manifest/log/00000000000000000009");
        assert_eq!(Paths::parse_version(&b), Some(10));
        assert_eq!(Paths::parse_version(&Path::from("manifest/log/x")), None);
    }

    #[test]
    fn empty_prefix_has_no_leading_slash() {
        let p = Paths::new("");
        assert_eq!(
            p.checkpoint(1).as_ref(),
            "manifest/checkpoints/00000000000000000001"
        );
        assert_eq!(
            Paths::archive_name("t", "2026-11-25", 7, "x"),
            "archive/topic=t/date=2026-11-25/hour=07/x.parquet"
        );
        let q = Paths::new("pre");
        let name = Paths::archive_name("t", "d", 1, "x");
        assert_eq!(q.strip_prefix(&q.relative(&name)), Some(name.clone()));
        assert_eq!(p.strip_prefix(&p.relative(&name)), Some(name));
        assert_eq!(q.strip_prefix(&Path::from("other/x")), None);
    }
}

/// A file under the Iceberg table's metadata folder, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcebergObject {
    /// `v<N>.metadata.json`.
    Metadata(u64),
    /// `snap-<snapshot id>-<ulid>.avro`.
    ManifestList(i64),
    /// `<snapshot id>-m<k>-<ulid>.avro`: written by that snapshot.
    Manifest(i64),
    /// Anything else (`version-hint.text`).
    Other,
}
