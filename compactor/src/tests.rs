//! End-to-end tests of a pass on an in-memory store: archive, read back byte-equal, never
//! twice, orphans and segments collected, needed segments kept.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use segment_writer::clock::TokioClock;
use segment_writer::manifest::{
    Command, GroupDef, GroupMode, StartFrom, Subscription, TopicDef, TopicKind,
};
use segment_writer::node::{LocalForwarder, Node, NodeSettings};
use segment_writer::paths::Paths;
use segment_writer::segment::{self, Message};
use segment_writer::segment_store;
use segment_writer::store::Store;

use crate::writer::FileSettings;
use crate::{ArchiveReader, CompactSettings, Quiet, run_pass};

async fn node(store: &Store) -> Node {
    let fwd = Arc::new(LocalForwarder::default());
    let n = Node::start(
        store.clone(),
        NodeSettings::new("n1", "a1"),
        TokioClock::shared(),
        fwd.clone(),
        1,
    )
    .await
    .expect("node");
    fwd.register(&n);
    n
}

fn msg(topic: &str, i: u64, time: i64) -> Message {
    Message {
        topic: topic.into(),
        message_id: format!("m-{topic}-{i}"),
        body: Bytes::from(format!("{{\"order\":{i},\"amount\":{}}}", i * 7)),
        tag: i.is_multiple_of(2).then(|| "A".into()),
        keys: vec![format!("k{i}")],
        properties: [("p".to_string(), i.to_string())].into(),
        publish_time_ms: time,
        ..Message::default()
    }
}

/// Publishes `n` messages per queue of `topic` in segments of `per_segment`, the first
/// `n / 2` an hour earlier than the rest (so files split by hour).
async fn publish(
    node: &Node,
    topic: &str,
    queues: u32,
    n: u64,
    per_segment: u64,
) -> Vec<Vec<Message>> {
    let store = node.store().clone();
    let mut all = vec![Vec::new(); queues as usize];
    let base = 1_767_225_600_000;
    let mut i = 0;
    while i < n {
        let count = per_segment.min(n - i);
        let mut msgs = Vec::new();
        for q in 0..queues {
            for k in 0..count {
                let time = if i + k < n / 2 {
                    base
                } else {
                    base + 3_600_000
                };
                let m = msg(topic, (i + k) * 100 + u64::from(q), time);
                all[q as usize].push(m.clone());
                msgs.push(m);
            }
        }
        #[allow(clippy::disallowed_methods)] // a test segment needs no injected time
        let name = Paths::segment_name("2026-01-01", &ulid::Ulid::new());
        segment_store::put_segment(&store, &name, segment::encode(&msgs))
            .await
            .expect("put segment");
        let commands = (0..queues)
            .map(|q| Command::Append {
                topic: topic.into(),
                queue: q,
                segment: name.clone(),
                first_ordinal: (u64::from(q) * count) as u32,
                count: count as u32,
                publish_time_ms: base,
            })
            .collect();
        node.submit(commands).await.expect("append");
        i += count;
    }
    all
}

async fn create_topic(node: &Node, topic: &str, queues: u32, retention_hours: u32) {
    node.submit(vec![Command::CreateTopic {
        topic: topic.into(),
        def: TopicDef {
            kind: TopicKind::Normal,
            queues,
            retention_hours,
        },
    }])
    .await
    .expect("topic");
}

fn settings() -> CompactSettings {
    let mut s = CompactSettings::new("test");
    s.file = FileSettings {
        row_group_rows: 100,
        page_rows: 16,
        ..FileSettings::default()
    };
    s.orphan_grace = Duration::ZERO;
    s.segment_grace = Duration::ZERO;
    s
}

async fn keys(store: &Store, dir: object_store::path::Path) -> Vec<String> {
    let mut v: Vec<String> = store
        .inner
        .list(Some(&dir))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    // The Iceberg table's metadata is not the catalogue's (see `iceberg_*` below).
    v.retain(|k| !k.starts_with(Paths::ICEBERG_METADATA));
    v.sort();
    v
}

#[tokio::test]
async fn a_pass_archives_every_offset_once_and_reads_back_identical_bytes() {
    let store = Store::memory();
    let n = node(&store).await;
    create_topic(&n, "t", 2, 1_000_000).await;
    let published = publish(&n, "t", 2, 250, 40).await;

    let report = run_pass(&n, &settings(), &Quiet).await.expect("pass");
    assert_eq!(report.rows, 500);
    // Two hours per queue: two files each.
    assert_eq!(report.files, 4);
    assert_eq!(report.segments_deleted, 0, "retention not reached");

    let reader = ArchiveReader::new(store.clone());
    for q in 0..2u32 {
        let qa = n.state().archive.queue("t", q).cloned().expect("archived");
        assert_eq!(qa.archived_to, 250);
        assert!(
            qa.files[0]
                .path
                .contains("topic=t/date=2026-01-01/hour=00/")
        );
        assert!(qa.files[1].path.contains("/hour=01/"));
        let all = reader
            .read("t", q, &qa, 0, 250, 1000)
            .await
            .expect("read all");
        let got: Vec<Message> = all.iter().map(|r| r.message.clone()).collect();
        assert!(all.iter().all(|r| r.original_topic.is_none()));
        assert_eq!(got, published[q as usize]);
        // A few offsets from the middle of a row group, across a file boundary.
        let some = reader
            .read("t", q, &qa, 120, 250, 10)
            .await
            .expect("read some");
        assert_eq!(
            some.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (120..130).collect::<Vec<_>>()
        );
        assert_eq!(some[0].message, published[q as usize][120]);
    }

    // A second pass has nothing to do.
    let again = run_pass(&n, &settings(), &Quiet).await.expect("pass");
    assert_eq!((again.files, again.rows), (0, 0));
    // New messages are archived incrementally from where the last pass stopped.
    publish(&n, "t", 2, 10, 10).await;
    let third = run_pass(&n, &settings(), &Quiet).await.expect("pass");
    assert_eq!(third.rows, 20);
    assert_eq!(n.state().archive.archived_to("t", 0), 260);
    n.shutdown().await;
}

#[tokio::test]
async fn a_file_for_already_archived_offsets_is_refused_and_deleted() {
    let store = Store::memory();
    let n = node(&store).await;
    create_topic(&n, "t", 1, 1_000_000).await;
    publish(&n, "t", 1, 20, 20).await;
    run_pass(&n, &settings(), &Quiet).await.expect("pass");
    let before = keys(&store, store.paths.archive_dir()).await;
    let out = n
        .submit(vec![Command::ArchiveFile {
            topic: "t".into(),
            queue: 0,
            path: "archive/topic=t/date=x/hour=00/dup.parquet".into(),
            min_offset: 0,
            max_offset: 20,
            min_time_ms: 0,
            max_time_ms: 0,
            rows: 20,
            bytes: 1,
        }])
        .await
        .expect("submit");
    assert!(matches!(
        out.outcomes[0],
        segment_writer::manifest::Outcome::Rejected { .. }
    ));
    assert_eq!(keys(&store, store.paths.archive_dir()).await, before);
    n.shutdown().await;
}

#[tokio::test]
async fn orphans_are_collected_and_catalogued_files_kept() {
    let store = Store::memory();
    let n = node(&store).await;
    create_topic(&n, "t", 1, 1_000_000).await;
    publish(&n, "t", 1, 20, 20).await;
    run_pass(&n, &settings(), &Quiet).await.expect("pass");
    let kept = keys(&store, store.paths.archive_dir()).await;
    assert_eq!(kept.len(), 2, "one file per hour");
    let orphan = store
        .paths
        .relative(&Paths::archive_name("t", "2026-01-01", 0, "orphan"));
    store
        .inner
        .put(&orphan, PutPayload::from_static(b"half"))
        .await
        .expect("put");
    let mut young = settings();
    young.orphan_grace = Duration::from_secs(3600);
    assert_eq!(
        run_pass(&n, &young, &Quiet)
            .await
            .expect("pass")
            .orphans_deleted,
        0
    );
    // The grace compares the store's wall-clock times with the node's clock (wall time read
    // once, then monotonic): let a few milliseconds pass so they cannot straddle the put.
    #[allow(clippy::disallowed_methods)] // a test waits in real time on purpose
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        run_pass(&n, &settings(), &Quiet)
            .await
            .expect("pass")
            .orphans_deleted,
        1
    );
    assert_eq!(keys(&store, store.paths.archive_dir()).await, kept);
    n.shutdown().await;
}

#[tokio::test]
async fn retention_deletes_exactly_the_segments_no_one_needs() {
    let store = Store::memory();
    let n = node(&store).await;
    create_topic(&n, "t", 1, 0).await;
    create_topic(&n, "u", 1, 0).await;
    publish(&n, "t", 1, 30, 10).await;
    publish(&n, "u", 1, 30, 10).await;
    // A group on u has consumed nothing: u's segments stay.
    n.submit(vec![Command::CreateGroup {
        group: "g".into(),
        def: GroupDef {
            subscriptions: vec![Subscription {
                topic: "u".into(),
                filter: None,
                sql: None,
            }],
            mode: GroupMode::Clustering,
            start_from: StartFrom::Earliest,
            max_retries: 1,
            invisible_ms: 1000,
            retry_backoff_ms: vec![1],
            push: None,
        },
        resolved: Default::default(),
    }])
    .await
    .expect("group");
    // A stray segment that nothing references (a failed publish) goes.
    #[allow(clippy::disallowed_methods)] // a test segment needs no injected time
    let stray = Paths::segment_name("2026-01-01", &ulid::Ulid::new());
    segment_store::put_segment(&store, &stray, segment::encode(&[msg("t", 1, 0)]))
        .await
        .expect("put");
    let report = run_pass(&n, &settings(), &Quiet).await.expect("pass");
    assert_eq!(
        report.segments_deleted, 4,
        "t's three segments and the stray one"
    );
    let st = n.state().clone();
    assert!(st.topics["t"].queues[0].ranges.is_empty());
    assert_eq!(st.topics["t"].queues[0].min_offset, 0);
    let left = keys(&store, store.paths.segment_dir()).await;
    let referenced: Vec<String> = st.referenced_segments().into_iter().collect();
    assert_eq!(left, referenced, "exactly the referenced segments remain");
    assert_eq!(referenced.len(), 3);
    // t's dropped offsets are still readable from the archive.
    let qa = st.archive.queue("t", 0).cloned().expect("archived");
    let got = ArchiveReader::new(store.clone())
        .read("t", 0, &qa, 0, 30, 100)
        .await
        .expect("read");
    assert_eq!(got.len(), 30);
    n.shutdown().await;
}

#[tokio::test]
async fn ranged_reads_return_exactly_the_offsets_asked_for_across_row_groups() {
    let store = Store::memory();
    let settings = FileSettings {
        row_group_rows: 128,
        page_rows: 16,
        ..FileSettings::default()
    };
    let msgs: Vec<Message> = (0..1000).map(|i| msg("t", i, 1_000 + i as i64)).collect();
    let name = Paths::archive_name("t", "1970-01-01", 0, "f");
    let mut w =
        crate::writer::FileWriter::create(&store, name, "t", 2, 5_000, &settings).expect("writer");
    for m in &msgs {
        w.push(m, None).await.expect("push");
    }
    let written = w.finish(&store).await.expect("finish");
    assert_eq!(written.row_groups, 8);
    assert_eq!((written.min_offset, written.max_offset), (5_000, 6_000));
    assert_eq!((written.min_time_ms, written.max_time_ms), (1_000, 1_999));
    let file = segment_writer::manifest::ArchivedFile {
        path: written.path,
        min_offset: written.min_offset,
        max_offset: written.max_offset,
        min_time_ms: written.min_time_ms,
        max_time_ms: written.max_time_ms,
        rows: written.rows,
        bytes: written.bytes,
    };
    let reader = ArchiveReader::new(store.clone());
    for (start, len) in [
        (5_000, 1),
        (5_127, 2),
        (5_128, 128),
        (5_500, 300),
        (5_999, 5),
        (4_990, 20),
    ] {
        let got = reader
            .read_file(&file, start..start + len)
            .await
            .expect("read");
        let want: Vec<(u64, Message)> = (start.max(5_000)..(start + len).min(6_000))
            .map(|o| (o, msgs[(o - 5_000) as usize].clone()))
            .collect();
        let got: Vec<(u64, Message)> = got.into_iter().map(|r| (r.offset, r.message)).collect();
        assert_eq!(got, want, "offsets {start}..{}", start + len);
    }
    // A catalogue entry that disagrees with the file is refused, not misread.
    let wrong = segment_writer::manifest::ArchivedFile {
        rows: 999,
        max_offset: 5_999,
        ..file
    };
    assert!(matches!(
        reader.read_file(&wrong, 5_000..5_010).await,
        Err(crate::Error::Corrupt { .. })
    ));
}

#[tokio::test]
async fn segments_of_pending_timers_and_half_messages_are_kept() {
    use segment_writer::manifest::PublishMode;
    let store = Store::memory();
    let n = node(&store).await;
    create_topic(&n, "t", 1, 0).await;
    let mut names = Vec::new();
    for mode in [
        PublishMode::Timer {
            deliver_at_ms: i64::MAX / 2,
        },
        PublishMode::Half {
            transaction_id: "tx".into(),
            producer_group: "p".into(),
            check_immunity_ms: Some(86_400_000),
        },
    ] {
        #[allow(clippy::disallowed_methods)] // a test segment needs no injected time
        let name = Paths::segment_name("2026-01-01", &ulid::Ulid::new());
        segment_store::put_segment(&store, &name, segment::encode(&[msg("t", 1, 0)]))
            .await
            .expect("put");
        n.submit(vec![Command::PublishOne {
            topic: "t".into(),
            queue: 0,
            segment: name.clone(),
            ordinal: 0,
            publish_time_ms: 0,
            message_id: format!("m-{}", names.len()),
            dedup_id: None,
            mode,
        }])
        .await
        .expect("publish");
        names.push(name);
    }
    let report = run_pass(&n, &settings(), &Quiet).await.expect("pass");
    assert_eq!(report.segments_deleted, 0);
    let left = keys(&store, store.paths.segment_dir()).await;
    for name in &names {
        assert!(
            left.iter()
                .any(|k| k.ends_with(name.rsplit('/').next().unwrap_or(name))),
            "{name} was deleted while pending: {left:?}"
        );
    }
    n.shutdown().await;
}

#[tokio::test]
async fn a_writer_dropped_unfinished_never_completes_its_file() {
    let store = Store::memory();
    let name = Paths::archive_name("t", "1970-01-01", 0, "abandoned");
    let mut w = crate::writer::FileWriter::create(
        &store,
        name.clone(),
        "t",
        0,
        0,
        &FileSettings::default(),
    )
    .expect("writer");
    // Incompressible bodies past the 8 MiB upload buffer: a multipart upload is under way.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..12_000 {
        let body: Vec<u8> = (0..1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let m = Message {
            body: Bytes::from(body),
            ..msg("t", i, 1_000)
        };
        w.push(&m, None).await.expect("push");
    }
    drop(w);
    // The encoder notices the closed channel on its own thread: give it time to (wrongly)
    // complete the upload.
    #[allow(clippy::disallowed_methods)] // a test waits in real time on purpose
    tokio::time::sleep(Duration::from_millis(500)).await;
    let key = store.paths.relative(&name);
    assert!(
        matches!(
            store.inner.head(&key).await,
            Err(object_store::Error::NotFound { .. })
        ),
        "an abandoned file became visible"
    );

    // The same rows, finished, do become a file.
    let mut w = crate::writer::FileWriter::create(
        &store,
        name.clone(),
        "t",
        0,
        0,
        &FileSettings::default(),
    )
    .expect("writer");
    for i in 0..12_000 {
        w.push(&msg("t", i, 1_000), None).await.expect("push");
    }
    let written = w.finish(&store).await.expect("finish");
    assert_eq!(written.rows, 12_000);
    assert!(store.inner.head(&key).await.is_ok());
}

/// The Iceberg table as a reader sees it: version, live files (relative name → rows, partition
/// topic and hour) and the number of manifests of the current snapshot.
type Table = (u64, BTreeMap<String, (u64, String, i32)>, usize);

async fn table(store: &Store) -> Table {
    use iceberg::spec::Literal;
    let at = crate::iceberg::Locations::of(store);
    let Some(current) = crate::iceberg::load_current(store, &at)
        .await
        .expect("load")
    else {
        return (0, BTreeMap::new(), 0);
    };
    let manifests = crate::iceberg::read_snapshot(store, &at, &current.metadata)
        .await
        .expect("read the snapshot");
    let mut files = BTreeMap::new();
    for (_, entries) in &manifests {
        for e in entries.iter().filter(|e| e.is_alive()) {
            let f = e.data_file();
            let p: Vec<_> = f.partition().iter().collect();
            let (Some(Some(Literal::Primitive(topic))), Some(Some(Literal::Primitive(hour)))) =
                (p.first(), p.get(1))
            else {
                panic!("partition {:?}", f.partition());
            };
            let topic = match topic {
                iceberg::spec::PrimitiveLiteral::String(t) => t.clone(),
                other => panic!("topic {other:?}"),
            };
            let hour = match hour {
                iceberg::spec::PrimitiveLiteral::Int(h) => *h,
                other => panic!("hour {other:?}"),
            };
            let name = at.relative(f.file_path()).expect("inside the store");
            let old = files.insert(name.to_string(), (f.record_count(), topic, hour));
            assert!(old.is_none(), "{name} twice in the table");
        }
    }
    (current.version, files, manifests.len())
}

/// The catalogue as the table should hold it.
fn catalogued(n: &Node) -> BTreeMap<String, (u64, String, i32)> {
    let state = n.state();
    let mut out = BTreeMap::new();
    for (topic, qs) in &state.archive.queues {
        for qa in qs.values() {
            for f in &qa.files {
                let hour = (f.min_time_ms / 3_600_000) as i32;
                out.insert(f.path.clone(), (f.rows, topic.clone(), hour));
            }
        }
    }
    out
}

async fn metadata_objects(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = store
        .inner
        .list(Some(&store.paths.relative(Paths::ICEBERG_METADATA)))
        .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
        .try_collect()
        .await
        .expect("list");
    v.sort();
    v
}

#[tokio::test]
async fn iceberg_table_follows_the_catalogue_through_appends_and_archive_retention() {
    let store = Store::memory();
    let n = node(&store).await;
    create_topic(&n, "t", 2, 1_000_000).await;
    create_topic(&n, "u", 1, 1_000_000).await;
    publish(&n, "t", 2, 40, 20).await;
    publish(&n, "u", 1, 10, 10).await;

    let first = run_pass(&n, &settings(), &Quiet).await.expect("pass");
    assert_eq!((first.iceberg.version, first.iceberg.added), (1, 6));
    let (version, files, manifests) = table(&store).await;
    assert_eq!(version, 1);
    assert_eq!(files, catalogued(&n), "the table holds the catalogue");
    assert_eq!(files.values().map(|f| f.0).sum::<u64>(), 90);
    assert_eq!(manifests, 1);
    let base_hour = (1_767_225_600_000i64 / 3_600_000) as i32;
    assert!(
        files
            .iter()
            .all(|(p, f)| p.contains(&format!("topic={}/", f.1))
                && (f.2 == base_hour || f.2 == base_hour + 1)),
        "{files:?}"
    );

    // Nothing new: no new version.
    let idle = run_pass(&n, &settings(), &Quiet).await.expect("pass");
    assert_eq!((idle.iceberg.version, idle.iceberg.added), (1, 0));
    assert_eq!(
        metadata_objects(&store).await.len(),
        4,
        "v1, hint, list, manifest"
    );

    // More messages: a second snapshot appends a manifest, the first is carried over.
    publish(&n, "t", 2, 10, 10).await;
    let second = run_pass(&n, &settings(), &Quiet).await.expect("pass");
    assert_eq!((second.iceberg.version, second.iceberg.added), (2, 4));
    let (_, files, manifests) = table(&store).await;
    assert_eq!(files, catalogued(&n));
    assert_eq!(manifests, 2);

    // Archive retention (every message is from January 2026): the table drops every file
    // before the files are deleted.
    let mut expire = settings();
    expire.archive_retention = Some(Duration::from_secs(1));
    let third = run_pass(&n, &expire, &Quiet).await.expect("pass");
    assert_eq!(third.archive_files_expired, 10);
    assert_eq!((third.iceberg.version, third.iceberg.removed), (3, 10));
    let (version, files, _) = table(&store).await;
    assert_eq!(version, 3);
    assert!(files.is_empty(), "{files:?}");
    assert!(keys(&store, store.paths.archive_dir()).await.is_empty());
    let hint = store
        .inner
        .get(&store.paths.relative(&Paths::iceberg_version_hint_name()))
        .await
        .expect("hint")
        .bytes()
        .await
        .expect("hint");
    assert_eq!(&hint[..], b"3");
    n.shutdown().await;
}

#[tokio::test]
async fn iceberg_manifests_merge_and_old_metadata_is_collected() {
    let store = Store::memory();
    let n = node(&store).await;
    create_topic(&n, "t", 1, 1_000_000).await;
    let mut s = settings();
    s.iceberg = Some(crate::IcebergSettings {
        max_manifests: 2,
        snapshot_max_age: Duration::ZERO,
        metadata_versions: 2,
    });
    for round in 1..=6u64 {
        publish(&n, "t", 1, 4, 4).await;
        // Snapshot times are milliseconds: keep them apart so that expiry has an order.
        #[allow(clippy::disallowed_methods)] // a test waits in real time on purpose
        tokio::time::sleep(Duration::from_millis(5)).await;
        let r = run_pass(&n, &s, &Quiet).await.expect("pass");
        assert_eq!(r.iceberg.version, round);
        let (_, files, manifests) = table(&store).await;
        assert_eq!(files, catalogued(&n), "round {round}");
        assert!(manifests <= 3, "round {round}: {manifests} manifests");
        // Only the current snapshot is retained (age zero): one manifest list, the manifests
        // it names, the newest metadata files and the hint.
        let objects = metadata_objects(&store).await;
        let lists = objects.iter().filter(|o| o.starts_with("snap-")).count();
        let metadata = objects
            .iter()
            .filter(|o| o.ends_with(".metadata.json"))
            .count();
        let written = objects.len() - lists - metadata - 1;
        assert_eq!(lists, 1, "round {round}: {objects:?}");
        assert!(metadata <= 3, "round {round}: {objects:?}");
        assert_eq!(written, manifests, "round {round}: {objects:?}");
    }
    n.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_table_version_fails_the_pass_before_anything_is_deleted() {
    let store = Store::memory();
    let n = node(&store).await;
    create_topic(&n, "t", 1, 0).await;
    publish(&n, "t", 1, 20, 10).await;
    let mut no_retention = settings();
    no_retention.retention = false;
    run_pass(&n, &no_retention, &Quiet).await.expect("pass");
    let planted = store.paths.relative(&Paths::iceberg_metadata_name(2));
    store
        .inner
        .put(&planted, PutPayload::from_static(b"{not json"))
        .await
        .expect("put");
    // New messages: the failing pass archives them, then cannot update the table.
    publish(&n, "t", 1, 10, 10).await;
    let segments = keys(&store, store.paths.segment_dir()).await;
    let err = run_pass(&n, &settings(), &Quiet)
        .await
        .expect_err("a corrupt table version");
    assert!(matches!(err, crate::Error::Corrupt { .. }), "{err}");
    assert_eq!(
        keys(&store, store.paths.segment_dir()).await,
        segments,
        "no segment deleted"
    );
    let archive = keys(&store, store.paths.archive_dir()).await;
    assert_eq!(archive.len(), 4, "the new files are archived: {archive:?}");
    // Once the bad object is gone, the next pass commits version 2 and collects segments.
    store.inner.delete(&planted).await.expect("delete");
    let r = run_pass(&n, &settings(), &Quiet).await.expect("pass");
    assert_eq!(r.iceberg.version, 2);
    assert!(r.segments_deleted > 0);
    assert_eq!(table(&store).await.1, catalogued(&n));
    n.shutdown().await;
}

/// Every catalogued file with its rows, topic and hour, runs' files read from their objects.
async fn catalogued_all(n: &Node) -> BTreeMap<String, (u64, String, i32)> {
    let archive = n.state().archive.clone();
    let cache = segment_writer::manifest::catalogue::CatalogueCache::new(1 << 20);
    segment_writer::manifest::catalogue::all_files(n.store(), &cache, &archive)
        .await
        .expect("catalogue objects")
        .into_iter()
        .map(|(topic, _, f)| {
            let hour = (f.min_time_ms / 3_600_000) as i32;
            (f.path, (f.rows, topic, hour))
        })
        .collect()
}

#[tokio::test]
async fn catalogue_runs_keep_every_file_readable_tabled_kept_and_expirable() {
    let store = Store::memory();
    let n = node(&store).await;
    create_topic(&n, "t", 1, 1_000_000).await;
    let mut s = settings();
    s.catalogue = segment_writer::manifest::catalogue::CatalogueSettings {
        keep_listed: 2,
        chunk: 2,
        fan_in: 2,
    };
    let mut published = Vec::new();
    let mut files = 0;
    let mut runs_installed = 0;
    for _ in 0..9 {
        published.extend(publish(&n, "t", 1, 10, 10).await.remove(0));
        let r = run_pass(&n, &s, &Quiet).await.expect("pass");
        files += r.files;
        runs_installed += r.catalogue_runs;
    }
    assert_eq!(files, 18, "two hours a pass");
    assert!(runs_installed >= 8, "{runs_installed} runs installed");
    let qa = n.state().archive.queue("t", 0).cloned().expect("archived");
    assert!(qa.files.len() < 4, "{} listed", qa.files.len());
    assert!(!qa.runs.is_empty() && qa.runs.len() <= 4, "{:?}", qa.runs);
    assert_eq!(qa.file_count(), 18);

    // Every offset reads back from the files the runs list.
    let got = ArchiveReader::new(store.clone())
        .read("t", 0, &qa, 0, 90, 1_000)
        .await
        .expect("read");
    let got: Vec<Message> = got.into_iter().map(|r| r.message).collect();
    assert_eq!(got, published);

    // The table holds every file; none was collected as an orphan; merged-away catalogue
    // objects were, the referenced ones kept.
    let all = catalogued_all(&n).await;
    assert_eq!(all.len(), 18);
    let (_, tabled, _) = table(&store).await;
    assert_eq!(tabled, all);
    let on_disk = keys(&store, store.paths.archive_dir()).await;
    let expected: Vec<String> = all
        .keys()
        .map(|p| store.paths.relative(p).to_string())
        .collect();
    assert_eq!(on_disk, expected);
    let objects: Vec<String> = keys(&store, store.paths.index_dir())
        .await
        .into_iter()
        .filter(|k| k.ends_with(".cat"))
        .collect();
    let mut referenced: Vec<String> = qa
        .runs
        .iter()
        .map(|r| store.paths.relative(&r.object).to_string())
        .collect();
    referenced.sort();
    assert_eq!(objects, referenced);

    // Archive retention (every message is from January 2026) expires the runs and the listed
    // files, the table first.
    let mut expire = s.clone();
    expire.archive_retention = Some(Duration::from_secs(1));
    let r = run_pass(&n, &expire, &Quiet).await.expect("pass");
    assert_eq!(r.archive_files_expired, 18);
    assert_eq!(r.iceberg.removed, 18);
    let qa = n.state().archive.queue("t", 0).cloned().expect("archived");
    assert_eq!((qa.files.len(), qa.runs.len()), (0, 0));
    assert!(keys(&store, store.paths.archive_dir()).await.is_empty());
    let (_, tabled, _) = table(&store).await;
    assert!(tabled.is_empty());
    // The next pass collects the expired runs' objects.
    run_pass(&n, &expire, &Quiet).await.expect("pass");
    let objects = keys(&store, store.paths.index_dir()).await;
    assert!(objects.iter().all(|k| !k.ends_with(".cat")), "{objects:?}");
    n.shutdown().await;
}

#[tokio::test]
async fn a_damaged_catalogue_object_fails_the_pass_before_anything_is_deleted() {
    let store = Store::memory();
    let n = node(&store).await;
    create_topic(&n, "t", 1, 1_000_000).await;
    let mut s = settings();
    s.catalogue = segment_writer::manifest::catalogue::CatalogueSettings {
        keep_listed: 1,
        chunk: 1,
        fan_in: 4,
    };
    for _ in 0..3 {
        publish(&n, "t", 1, 10, 10).await;
        run_pass(&n, &s, &Quiet).await.expect("pass");
    }
    let qa = n.state().archive.queue("t", 0).cloned().expect("archived");
    let run = qa.runs.first().expect("a run").clone();
    let path = store.paths.relative(&run.object);
    let good = store
        .inner
        .get(&path)
        .await
        .expect("object")
        .bytes()
        .await
        .expect("bytes");
    let mut bad = good.to_vec();
    let last = bad.len() - 2;
    bad[last] ^= 0x01;
    store
        .inner
        .put(&path, PutPayload::from(bad))
        .await
        .expect("put");
    let archive_before = keys(&store, store.paths.archive_dir()).await;
    let state_before = n.state().archive.clone();

    let mut expire = s.clone();
    expire.archive_retention = Some(Duration::from_secs(1));
    let err = run_pass(&n, &expire, &Quiet)
        .await
        .expect_err("a damaged object");
    assert!(err.to_string().contains(run.object.as_str()), "{err}");
    assert_eq!(
        keys(&store, store.paths.archive_dir()).await,
        archive_before
    );
    assert_eq!(n.state().archive.queues, state_before.queues);
    // Reads of its offsets fail as corrupt, never answer wrong messages.
    let read = ArchiveReader::new(store.clone())
        .read("t", 0, &qa, run.min_offset, run.max_offset, 10)
        .await;
    assert!(read.is_err());
    n.shutdown().await;
}
