//! Pinned samples of the log's formats: a delta and a checkpoint committed under
//! `segment-writer/tests/fixtures/` must decode, and re-encode byte for byte, so that a change of
//! format is always deliberate. `FERRYMQ_UPDATE_SAMPLES=1 cargo test -p segment-writer samples`
//! rewrites them (review the diff: a changed sample means old data directories meet new code).

use std::path::PathBuf;

use super::command::{Command, Delta, Entry, FORMAT, PublishMode, RequestId};
use super::log::{CHECKPOINT_MAGIC, checkpoint_json, decode_checkpoint, encode_checkpoint};
use super::model::{
    GroupDef, GroupMode, IndexRun, NewRun, OffsetRange, QueueOffset, StartFrom, Subscription,
    TopicDef, TopicKind,
};
use super::sim::Sim;

fn fixture(name: &str) -> PathBuf {
    // Found when the test runs: a shared target directory may hold a binary built elsewhere.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("tests/fixtures")
        .join(name)
}

fn range(base: u64, count: u32, segment: &str) -> OffsetRange {
    OffsetRange {
        base,
        count,
        segment: segment.into(),
        first_ordinal: 0,
        publish_time_ms: 1_000,
        origin_topic: None,
        origin: None,
        appended_ms: None,
    }
}

/// A delta with one command of every common kind.
fn sample_delta() -> Delta {
    let at = |offset| QueueOffset {
        topic: "orders".into(),
        queue: 1,
        offset,
    };
    Delta {
        format: FORMAT,
        version: 42,
        time_ms: 1_767_225_600_000,
        writer: "gw-1".into(),
        nonce: 7,
        parent: None,
        entries: vec![
            Entry {
                request: Some(RequestId {
                    origin: "gw-2".into(),
                    seq: 9,
                }),
                commands: vec![
                    Command::Append {
                        topic: "orders".into(),
                        queue: 1,
                        segment: "segments/2026-01-01/01J0000000000000000000000.seg".into(),
                        first_ordinal: 0,
                        count: 3,
                        publish_time_ms: 1_767_225_599_990,
                    },
                    Command::PublishOne {
                        topic: "later".into(),
                        queue: 0,
                        segment: "segments/2026-01-01/01J0000000000000000000000.seg".into(),
                        ordinal: 3,
                        publish_time_ms: 1_767_225_599_990,
                        message_id: "01J0000000000000000000000A".into(),
                        dedup_id: Some("order-7".into()),
                        mode: PublishMode::Timer {
                            deliver_at_ms: 1_767_225_700_000,
                        },
                    },
                ],
            },
            Entry {
                request: None,
                commands: vec![
                    Command::Lease {
                        group: "billing".into(),
                        consumer: String::new(),
                        invisible_ms: 30_000,
                        max: 2,
                        candidates: vec![at(0), at(1)],
                        skipped: vec![at(2)],
                        message_groups: vec![],
                        located: vec![Some(range(0, 1, "segments/old.seg")), None],
                        max_in_flight: Some(100_000),
                    },
                    Command::FoldIndex {
                        object: "index/01J0000000000000000000000B.idx".into(),
                        runs: vec![NewRun {
                            topic: "orders".into(),
                            queue: 0,
                            run: IndexRun::summarize(
                                "index/01J0000000000000000000000B.idx",
                                0,
                                120,
                                0,
                                &[range(0, 5, "segments/a.seg")],
                            ),
                            replaces: vec![],
                        }],
                    },
                    Command::LedgerFlushed {
                        through_seq: 42,
                        objects: vec![
                            "ledger/topic=orders/date=2026-01-01/hour=00/00000000000000000000-00000000000000000041.parquet"
                                .into(),
                        ],
                    },
                ],
            },
        ],
    }
}

/// A state with topics, folded runs, a group with intervals and a folded lease, a timer, a
/// half message and dedup ids.
fn sample_state() -> super::model::State {
    let mut s = Sim::new();
    for (topic, kind) in [
        ("orders", TopicKind::Normal),
        ("later", TopicKind::Delay),
        ("pay", TopicKind::Transaction),
    ] {
        s.one(Command::CreateTopic {
            topic: topic.into(),
            def: TopicDef {
                kind,
                queues: 2,
                retention_hours: 72,
            },
        });
    }
    for i in 0..6 {
        s.one(Command::Append {
            topic: "orders".into(),
            queue: 0,
            segment: format!("segments/2026-01-01/s{i}.seg"),
            first_ordinal: 0,
            count: 5,
            publish_time_ms: 1_000 + i,
        });
    }
    let folded: Vec<OffsetRange> = s.state.topics["orders"].queues[0].ranges[..3].to_vec();
    s.one(Command::FoldIndex {
        object: "index/i.idx".into(),
        runs: vec![NewRun {
            topic: "orders".into(),
            queue: 0,
            run: IndexRun::summarize("index/i.idx", 0, 200, 0, &folded),
            replaces: vec![],
        }],
    });
    s.one(Command::CreateGroup {
        group: "billing".into(),
        def: GroupDef {
            subscriptions: vec![Subscription {
                topic: "orders".into(),
                filter: Some("a || b".into()),
                sql: None,
            }],
            mode: GroupMode::Clustering,
            start_from: StartFrom::Earliest,
            max_retries: 3,
            invisible_ms: 30_000,
            retry_backoff_ms: vec![1_000, 5_000],
            push: None,
        },
        resolved: Default::default(),
    });
    let at = |offset| QueueOffset {
        topic: "orders".into(),
        queue: 0,
        offset,
    };
    s.one(Command::Lease {
        group: "billing".into(),
        consumer: String::new(),
        invisible_ms: 30_000,
        max: 1,
        candidates: vec![at(2)],
        skipped: vec![at(3), at(4), at(5), at(9)],
        message_groups: vec![],
        located: vec![super::index::single(&folded, 2)],
        max_in_flight: None,
    });
    for (id, mode) in [
        (
            "m-timer",
            PublishMode::Timer {
                deliver_at_ms: 99_999_999,
            },
        ),
        (
            "m-half",
            PublishMode::Half {
                transaction_id: "tx-1".into(),
                producer_group: "pg".into(),
                check_immunity_ms: None,
            },
        ),
    ] {
        s.one(Command::PublishOne {
            topic: if id == "m-half" { "pay" } else { "later" }.into(),
            queue: 1,
            segment: "segments/2026-01-01/s9.seg".into(),
            ordinal: 0,
            publish_time_ms: 2_000,
            message_id: id.into(),
            dedup_id: Some(format!("d-{id}")),
            mode,
        });
    }
    s.state
}

fn check(name: &str, encoded: &[u8]) {
    let path = fixture(name);
    if std::env::var_os("FERRYMQ_UPDATE_SAMPLES").is_some() {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
        std::fs::write(&path, encoded).expect("write sample");
        return;
    }
    let pinned = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (FERRYMQ_UPDATE_SAMPLES=1 writes it)",
            path.display()
        )
    });
    assert!(
        pinned == encoded,
        "{name} no longer encodes as pinned: a format change must be deliberate (see this module)"
    );
}

#[test]
fn the_pinned_delta_decodes_and_re_encodes_byte_for_byte() {
    let encoded = serde_json::to_vec_pretty(&sample_delta()).expect("encodes");
    check("sample-delta.json", &encoded);
    let pinned = std::fs::read(fixture("sample-delta.json")).expect("sample");
    let decoded: Delta = serde_json::from_slice(&pinned).expect("decodes");
    assert_eq!(decoded, sample_delta());
    assert_eq!(
        serde_json::to_vec_pretty(&decoded).expect("encodes"),
        pinned
    );
}

#[test]
fn the_pinned_checkpoint_decodes_and_re_encodes_byte_for_byte() {
    let state = sample_state();
    let encoded = encode_checkpoint(&state).expect("encodes");
    assert!(encoded.starts_with(CHECKPOINT_MAGIC));
    let path = object_store::path::Path::from("sample");
    // The JSON inside is what is pinned: zstd's bytes may change with the library.
    check(
        "sample-checkpoint.json",
        &checkpoint_json(&path, &encoded).expect("decompresses"),
    );
    let pinned_json = std::fs::read(fixture("sample-checkpoint.json")).expect("sample");
    let decoded = decode_checkpoint(&path, &pinned_json).expect("plain JSON still opens");
    assert_eq!(decoded, state);
    let again = encode_checkpoint(&decoded).expect("encodes");
    assert_eq!(
        checkpoint_json(&path, &again).expect("decompresses"),
        pinned_json
    );
    assert_eq!(decode_checkpoint(&path, &again).expect("decodes"), state);
    // Damage is refused, not misread.
    let mut bad = again.clone();
    let n = bad.len();
    bad[n / 2] ^= 0x55;
    assert!(decode_checkpoint(&path, &bad).is_err());
    assert!(decode_checkpoint(&path, b"garbage").is_err());
}
